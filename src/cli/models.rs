//! `reviewloop train` and `reviewloop eval`: progress and reports for people.

use std::fs::File;
use std::io::BufReader;
use std::path::PathBuf;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};

use reviewloop::config::Settings;
use reviewloop::import::Format;
use reviewloop::store;

#[derive(clap::Args)]
pub struct TrainArgs {
    #[arg(long, default_value = "fashion")]
    taxonomy: String,
    /// Version name (default: v<date>-<time>).
    #[arg(long)]
    name: Option<String>,
    /// A pretrained encoder folder (config.json, model.safetensors, tokenizer.json), e.g.
    /// klue/roberta-base on disk. Without it a tokenizer and a small RoBERTa are trained here.
    #[arg(long)]
    base: Option<PathBuf>,
    /// Train on train + validation, without early stopping.
    #[arg(long)]
    all_data: bool,
    /// Most epochs; early stopping usually ends sooner. The schedule decays over all of
    /// them, so more epochs also keep the learning rate up longer (on NIKL 40 beat 20).
    #[arg(long, default_value_t = 40)]
    epochs: usize,
    #[arg(long, default_value_t = 32)]
    batch_size: usize,
    /// Peak learning rate (5e-4 suits the small encoder trained here; a pretrained base
    /// such as klue/roberta-base wants about 3e-5).
    #[arg(long, default_value_t = 5e-4)]
    learning_rate: f64,
    /// Epochs without a better validation score before stopping.
    #[arg(long, default_value_t = 8)]
    patience: usize,
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Vocabulary size of the offline tokenizer.
    #[arg(long, default_value_t = 8000)]
    vocab_size: usize,
    #[arg(long, value_enum, default_value = "pair")]
    sentiment_input: reviewloop::train::data::SentimentInput,
    #[arg(long, default_value_t = 0.2)]
    dropout: f32,
    /// Share of tokens masked in each training batch (noise against memorising).
    #[arg(long, default_value_t = 0.0)]
    token_dropout: f32,
    #[arg(long, default_value_t = 0.01)]
    weight_decay: f64,
    /// Start the sentiment model from the trained keyword model's encoder.
    #[arg(long)]
    sentiment_from_keyword: bool,
    /// Masked-language-model epochs over all reviews before fine-tuning the offline encoder.
    #[arg(long, default_value_t = 0)]
    pretrain_epochs: usize,
    /// Sentence vector for the heads: mean over tokens (default; best for an encoder
    /// trained here) or the first token (the seed's choice for a pretrained encoder).
    #[arg(long, value_enum, default_value = "mean")]
    pooling: reviewloop::model::classifier::Pooling,
    /// Features of the classifiers' linear part over hashed character 1–3-grams of the
    /// words (0: none). Default: 65536 for an encoder trained here, 0 with --base.
    #[arg(long)]
    lexical_buckets: Option<usize>,
    /// Step size of the lexical part's plain gradient steps at the peak learning rate.
    #[arg(long, default_value_t = reviewloop::train::FitOptions::default().lexical_rate)]
    lexical_rate: f64,
    /// Epochs of the lexical part's own stage, before the encoder's.
    #[arg(long, default_value_t = reviewloop::train::FitOptions::default().lexical_epochs)]
    lexical_epochs: usize,
    /// Queue a training job for a worker instead of training here.
    #[arg(long)]
    queue: bool,
    /// With --queue: which workers may take it (`cuda` waits for a GPU worker).
    #[arg(long, default_value = "any", value_parser = ["any", "cpu", "cuda"])]
    device: String,
}

pub async fn train(pool: &sqlx::PgPool, settings: &Settings, args: TrainArgs) -> anyhow::Result<()> {
    use reviewloop::train::{pipeline, FitOptions};
    let fit = FitOptions {
        epochs: args.epochs,
        batch_size: args.batch_size.max(1),
        learning_rate: args.learning_rate,
        warmup_ratio: 0.1,
        weight_decay: args.weight_decay,
        patience: args.patience,
        seed: args.seed,
        token_dropout: args.token_dropout,
        mask_token: 4, // replaced by the base tokenizer's mask id
        lexical_rate: args.lexical_rate,
        lexical_epochs: args.lexical_epochs,
        parts: Default::default(),
        cancel: Default::default(),
    };
    let train_settings = pipeline::TrainSettings {
        taxonomy: args.taxonomy,
        name: args.name,
        base: args.base,
        all_data: args.all_data,
        fit,
        vocab_size: args.vocab_size,
        sentiment_input: args.sentiment_input,
        models_dir: settings.data_dir.clone(),
        dropout: args.dropout,
        pretrain_epochs: args.pretrain_epochs,
        pooling: args.pooling,
        sentiment_from_keyword: args.sentiment_from_keyword,
        snapshot: None,
        encoder_size: None,
        lexical_buckets: args.lexical_buckets,
    };
    if args.queue {
        let mut payload = serde_json::to_value(&train_settings)?;
        payload["device"] = args.device.into();
        let mut conn = pool.acquire().await?;
        let id =
            reviewloop::jobs::queue::enqueue(&mut conn, &reviewloop::jobs::NewJob::new("train", payload))
                .await?;
        println!("job {id} queued: `reviewloop job show {id}` follows it");
        return Ok(());
    }
    let (bar, mut progress) = progress_bar()?;
    let outcome = pipeline::run(pool, &train_settings, &mut progress).await?;
    bar.finish_and_clear();
    for (kind, model) in [("keyword", &outcome.keyword), ("sentiment", &outcome.sentiment)] {
        print_reports(kind, model);
    }
    println!("version {} written to {}", outcome.name, outcome.dir.display());
    Ok(())
}

/// A progress bar for training stages, and the callback that moves it. Without a
/// terminal the bar stays hidden and each epoch's start is logged instead.
pub fn progress_bar() -> anyhow::Result<(ProgressBar, impl FnMut(&str, &reviewloop::train::Progress) + Send)>
{
    let bar = ProgressBar::new(0);
    bar.set_style(ProgressStyle::with_template(
        "{prefix:>9} {bar:30} {pos}/{len} steps · eta {eta} · {msg}",
    )?);
    let mut logged = (String::new(), 0);
    let moved = bar.clone();
    let progress = move |model: &str, p: &reviewloop::train::Progress| {
        let valid = p.valid_score.map(|s| format!(", validation score {s:.3}")).unwrap_or_default();
        if moved.is_hidden() && (logged.0 != model || logged.1 != p.epoch) {
            eprintln!(
                "{model}: epoch {} (step {}/{}), batch loss {:.4}{valid}",
                p.epoch, p.step, p.total_steps, p.loss
            );
            logged = (model.to_string(), p.epoch);
        }
        moved.set_prefix(model.to_string());
        moved.set_length(p.total_steps as u64);
        moved.set_position(p.step as u64);
        moved.set_message(format!("epoch {} loss {:.4}{valid}", p.epoch, p.loss));
    };
    Ok((bar, progress))
}

/// The validation and test tables of one model.
pub fn print_reports(kind: &str, model: &reviewloop::train::pipeline::ModelOutcome) {
    for (split, report) in [("validation", &model.validation), ("test", &model.test)] {
        if let Some(report) = report {
            println!("{kind} model, {split} split:\n{}", reviewloop::train::metrics::table(report));
        }
    }
}

pub async fn eval(
    pool: &sqlx::PgPool,
    data: Option<PathBuf>,
    format: Option<Format>,
    version: Option<PathBuf>,
    taxonomy: &str,
    json: bool,
) -> anyhow::Result<()> {
    use reviewloop::train::{data as training_data, evaluate, metrics};
    let dir = match version {
        Some(dir) => dir,
        None => store::models::current_dir(pool, taxonomy).await?,
    };
    let analyzer = reviewloop::analyze::Analyzer::load(&dir)?;
    let (items, skipped) = match data {
        Some(path) => {
            let name = path.display().to_string();
            let format =
                format.or_else(|| Format::from_path(&name)).context("pass --format for this file")?;
            let file = BufReader::new(File::open(&path).with_context(|| format!("cannot open {name}"))?);
            evaluate::read_file(&analyzer, format, file)?
        }
        None => {
            let taxonomy = store::taxonomies::load_by_name(pool, &analyzer.keyword.labels.taxonomy).await?;
            let all = training_data::labelled(pool, &taxonomy, None).await?;
            (all.into_iter().filter(|i| i.split == store::reviews::Split::Test).collect(), 0)
        }
    };
    let evaluation = evaluate::evaluate(&analyzer, &items, skipped)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&evaluation)?);
        return Ok(());
    }
    println!(
        "{} reviews evaluated, {} rows skipped (unlabelled or unknown keywords)",
        evaluation.reviews, evaluation.skipped
    );
    for (name, report) in
        [("keywords", &evaluation.keyword), ("sentiment (gold keywords)", &evaluation.sentiment)]
    {
        if let Some(report) = report {
            println!("\n{name}\n{}", metrics::table(report));
        }
    }
    Ok(())
}
