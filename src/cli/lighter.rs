//! `reviewloop quantize` and `reviewloop distill`: lighter versions of a trained one.

use reviewloop::config::Settings;
use reviewloop::model::quantize::Precision;
use reviewloop::train::lighter::{self, DistillSettings, Lighter};
use reviewloop::train::settings::EncoderSize;
use reviewloop::train::FitOptions;

#[derive(clap::Args)]
pub struct QuantizeArgs {
    #[arg(long, default_value = "fashion")]
    taxonomy: String,
    /// The version to copy (its name, as `reviewloop models` lists it).
    #[arg(long)]
    version: String,
    /// int8: encoder linear layers in 8 bits (faster on the CPU); f16 / bf16: half-size files.
    #[arg(long, value_enum, default_value = "int8")]
    precision: Precision,
    /// Name of the new version (default: <version>-<precision>).
    #[arg(long)]
    name: Option<String>,
}

#[derive(clap::Args)]
pub struct DistillArgs {
    #[arg(long, default_value = "fashion")]
    taxonomy: String,
    /// The trained version to learn from.
    #[arg(long)]
    teacher: String,
    /// Name of the new version (default: <teacher>-student-<layers>x<hidden>).
    #[arg(long)]
    name: Option<String>,
    /// The student's encoder layers and hidden width (heads: hidden / 64, feed-forward: 4 × hidden).
    #[arg(long, default_value_t = 2)]
    layers: usize,
    #[arg(long, default_value_t = 128)]
    hidden: usize,
    #[arg(long, default_value_t = 20)]
    epochs: usize,
    #[arg(long, default_value_t = 5e-4)]
    learning_rate: f64,
    #[arg(long, default_value_t = 5)]
    patience: usize,
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// For labelled reviews, the weight of the human label against the teacher's output.
    #[arg(long, default_value_t = 0.5)]
    label_weight: f32,
    /// At most this many unlabelled reviews, taught by the teacher alone.
    #[arg(long, default_value_t = 50_000)]
    unlabelled: usize,
    /// Start the student from a base under <data dir>/base/ (its encoder and tokenizer)
    /// instead of a fresh --layers × --hidden encoder.
    #[arg(long)]
    base: Option<reviewloop::names::SafeName>,
}

pub async fn quantize(pool: &sqlx::PgPool, settings: &Settings, args: QuantizeArgs) -> anyhow::Result<()> {
    let place = lighter::Place { models_dir: &settings.data_dir, storage: Some(&settings.storage) };
    let made =
        lighter::quantize(pool, place, &args.taxonomy, &args.version, args.precision, args.name).await?;
    report(&made);
    Ok(())
}

pub async fn distill(pool: &sqlx::PgPool, settings: &Settings, args: DistillArgs) -> anyhow::Result<()> {
    let fit = FitOptions {
        epochs: args.epochs,
        learning_rate: args.learning_rate,
        patience: args.patience,
        seed: args.seed,
        ..reviewloop::train::settings::TrainSettings::defaults(&args.taxonomy, settings.data_dir.clone()).fit
    };
    let distill = DistillSettings {
        taxonomy: args.taxonomy,
        teacher: args.teacher,
        name: args.name,
        size: EncoderSize { layers: args.layers, hidden: args.hidden },
        fit,
        label_weight: args.label_weight.clamp(0.0, 1.0),
        unlabelled: args.unlabelled,
        models_dir: settings.data_dir.clone(),
        storage: Some(settings.storage.clone()),
        base: args.base,
    };
    let (bar, mut progress) = super::models::progress_bar()?;
    let made = lighter::distill(pool, &distill, &mut progress).await?;
    bar.finish_and_clear();
    report(&made);
    Ok(())
}

/// Each model's validation and test F1 next to its source's, then where it was written.
fn report(made: &Lighter) {
    for (kind, metrics) in ["keyword", "sentiment"].iter().zip(&made.metrics) {
        for split in ["validation", "test"] {
            let f1 = |m: &serde_json::Value, avg: &str| m[split][avg]["f1"].as_f64();
            let (Some(micro), Some(macro_)) = (f1(metrics, "micro"), f1(metrics, "macro_avg")) else {
                continue;
            };
            let source = &metrics["source"];
            let old = |avg| f1(source, avg).map(|v| format!("{v:.4}")).unwrap_or_else(|| "–".into());
            println!(
                "{kind:<9} {split:<10} micro F1 {micro:.4} (source {})   macro F1 {macro_:.4} (source {})",
                old("micro"),
                old("macro_avg")
            );
        }
    }
    println!("version {} written to {}", made.name, made.dir.display());
}
