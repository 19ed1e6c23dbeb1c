//! `reviewloop pretrain`: domain-adaptive pre-training of a base, with a progress bar.

use std::path::PathBuf;

use indicatif::{ProgressBar, ProgressStyle};

use reviewloop::config::Settings;
use reviewloop::names::SafeName;
use reviewloop::train::adapt::{self, AdaptProgress, AdaptSettings, FileCorpus, StoreCorpus};

#[derive(clap::Args)]
pub struct PretrainArgs {
    /// The base to continue from (`reviewloop base list`).
    #[arg(long)]
    base: SafeName,
    /// A corpus file: one review per line, or a TSV with a `text` column; .gz allowed.
    #[arg(long, conflicts_with = "taxonomy")]
    corpus: Option<PathBuf>,
    /// Or the reviews of this taxonomy in the database, labelled or not.
    #[arg(long)]
    taxonomy: Option<String>,
    /// The new base (default: <base>-dapt).
    #[arg(long)]
    name: Option<SafeName>,
    /// Stop after this many hours (a resumed run counts its earlier time).
    #[arg(long)]
    hours: Option<f64>,
    /// Stop after this many steps; the learning rate decays to zero at the last.
    #[arg(long)]
    max_steps: Option<usize>,
    #[arg(long, default_value_t = 32)]
    batch_size: usize,
    #[arg(long, default_value_t = 5e-5)]
    learning_rate: f64,
    /// Longer texts are cut to this many tokens.
    #[arg(long, default_value_t = 128)]
    max_tokens: usize,
    /// Steps between checkpoints (a killed run resumes from the last).
    #[arg(long, default_value_t = 200)]
    checkpoint_every: usize,
    #[arg(long, default_value_t = 42)]
    seed: u64,
    #[command(flatten)]
    store: super::bases::StoreFlag,
}

pub async fn pretrain(settings: &Settings, args: PretrainArgs) -> anyhow::Result<()> {
    let name = match args.name {
        Some(name) => name,
        None => SafeName::parse(&format!("{}-dapt", args.base))?,
    };
    let source = match (&args.corpus, &args.taxonomy) {
        (Some(path), _) => path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
        (None, Some(taxonomy)) => format!("the reviews of taxonomy `{taxonomy}`"),
        (None, None) => anyhow::bail!("pass --corpus FILE or --taxonomy T"),
    };
    let mut adapt = AdaptSettings::new(args.base, name, source);
    adapt.hours = args.hours;
    adapt.max_steps = args.max_steps;
    adapt.batch_size = args.batch_size.max(1);
    adapt.learning_rate = args.learning_rate;
    adapt.max_tokens = args.max_tokens.max(3);
    adapt.checkpoint_every = args.checkpoint_every.max(1);
    adapt.seed = args.seed;
    let bar = ProgressBar::new(0);
    bar.set_style(ProgressStyle::with_template("{bar:30} {pos}/{len} steps · eta {eta} · loss {msg}")?);
    let mut logged = 0;
    let mut progress = |p: &AdaptProgress| {
        bar.set_length(p.expected_steps.unwrap_or(p.step) as u64);
        bar.set_position(p.step as u64);
        bar.set_message(format!("{:.3}", p.loss));
        if bar.is_hidden() && p.step >= logged + 100 {
            let of = p.expected_steps.map(|n| format!(" of {n}")).unwrap_or_default();
            eprintln!("step {}{of}, loss {:.3}, {:.0} s", p.step, p.loss, p.seconds);
            logged = p.step;
        }
    };
    let report = match (&args.corpus, &args.taxonomy) {
        (Some(path), _) => {
            adapt::run(&settings.data_dir, &adapt, &mut FileCorpus::open(path)?, &mut progress).await?
        }
        (None, Some(taxonomy)) => {
            let pool = reviewloop::store::connect(&settings.database_url).await?;
            let id = reviewloop::store::taxonomies::load_by_name(&pool, taxonomy).await?.id;
            adapt::run(&settings.data_dir, &adapt, &mut StoreCorpus::new(pool, id), &mut progress).await?
        }
        (None, None) => unreachable!("checked above"),
    };
    bar.finish_and_clear();
    args.store.store(settings, &adapt.name).await?;
    if let Some(step) = report.resumed_from {
        println!("resumed from the checkpoint at step {step}");
    }
    println!(
        "base {} written to {}: {} steps ({:.2} h, {} texts), held-out masked-token loss {:.3} → {:.3} on {} lines",
        adapt.name,
        report.dir.display(),
        report.steps,
        report.hours,
        report.texts_seen,
        report.held_out_loss_before,
        report.held_out_loss_after,
        report.held_out
    );
    Ok(())
}
