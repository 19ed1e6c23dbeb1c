//! `reviewloop train` and `reviewloop eval`: progress and reports for people.

use std::fs::File;
use std::io::BufReader;
use std::path::PathBuf;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};

use reviewloop::config::Settings;
use reviewloop::import::Format;
use reviewloop::names::SafeName;
use reviewloop::store;
use reviewloop::train::pipeline::TrainSettings;

#[derive(clap::Args)]
pub struct TrainArgs {
    #[arg(long, default_value = "fashion")]
    taxonomy: String,
    /// Version name (default: v<date>-<time>).
    #[arg(long)]
    name: Option<SafeName>,
    /// A base under <data dir>/base/ (`reviewloop base list`), or `none` for the small
    /// encoder trained here. Default: REVIEWLOOP_BASE, else base/default, else none.
    /// Every option below defaults to the chosen start's profile.
    #[arg(long)]
    base: Option<String>,
    /// Train on train + validation, without early stopping.
    #[arg(long)]
    all_data: bool,
    #[arg(long, help = profile_help("Most epochs; early stopping usually ends sooner", |s| s.fit.epochs.to_string()))]
    epochs: Option<usize>,
    #[arg(long, help = profile_help("Reviews per training batch", |s| s.fit.batch_size.to_string()))]
    batch_size: Option<usize>,
    #[arg(long, help = profile_help("Peak learning rate of the encoder", |s| s.fit.learning_rate.to_string()))]
    learning_rate: Option<f64>,
    #[arg(long, help = profile_help("The head's learning rate as a multiple of the encoder's", |s| s.fit.head_rate.to_string()))]
    head_rate: Option<f64>,
    #[arg(long, help = profile_help("Epochs without a better validation score before stopping", |s| s.fit.patience.to_string()))]
    patience: Option<usize>,
    #[arg(long, help = profile_help("Seed of weights, batches and dropout", |s| s.fit.seed.to_string()))]
    seed: Option<u64>,
    /// Keep the encoder's embeddings fixed (true/false).
    #[arg(long)]
    freeze_embeddings: Option<bool>,
    /// Keep the embeddings and the first N encoder layers fixed.
    #[arg(long)]
    frozen_layers: Option<usize>,
    /// Vocabulary size of the tokenizer trained here (without a base).
    #[arg(long)]
    vocab_size: Option<usize>,
    #[arg(long, value_enum)]
    sentiment_input: Option<reviewloop::train::data::SentimentInput>,
    #[arg(long, help = profile_help("Dropout on the sentence vector", |s| s.dropout.to_string()))]
    dropout: Option<f32>,
    /// Share of tokens masked in each training batch (noise against memorising).
    #[arg(long)]
    token_dropout: Option<f32>,
    #[arg(long)]
    weight_decay: Option<f64>,
    /// Start the sentiment model from the trained keyword model's encoder.
    #[arg(long)]
    sentiment_from_keyword: bool,
    /// Masked-language-model epochs over all reviews before fine-tuning the encoder
    /// trained here (without a base; `reviewloop pretrain` pre-trains a base).
    #[arg(long)]
    pretrain_epochs: Option<usize>,
    /// Sentence vector for the heads: mean over tokens or the first token.
    #[arg(long, value_enum)]
    pooling: Option<reviewloop::model::classifier::Pooling>,
    #[arg(long, help = profile_help("Hashed character 1–3-gram features of the classifiers' lexical part (0: none)", |s| s.lexical_buckets().to_string()))]
    lexical_buckets: Option<usize>,
    /// Step size of the lexical part's plain gradient steps at the peak learning rate.
    #[arg(long)]
    lexical_rate: Option<f64>,
    /// Epochs of the lexical part's own stage, before the encoder's.
    #[arg(long)]
    lexical_epochs: Option<usize>,
    /// Queue a training job for a worker instead of training here.
    #[arg(long)]
    queue: bool,
    /// With --queue: which workers may take it (`cuda` waits for a GPU worker).
    #[arg(long, default_value = "any", value_parser = ["any", "cpu", "cuda"])]
    device: String,
}

/// `--help` text naming the default of both starts, read from the profiles themselves.
fn profile_help(what: &str, value: fn(&TrainSettings) -> String) -> String {
    let scratch = TrainSettings::defaults("", PathBuf::new());
    let base = TrainSettings::pretrained("", PathBuf::new(), SafeName::parse("base").expect("valid"));
    format!("{what} (default: {} from scratch, {} from a base)", value(&scratch), value(&base))
}

impl TrainArgs {
    /// The chosen start's profile with every option given here applied.
    pub fn settings(self, data_dir: &std::path::Path) -> anyhow::Result<TrainSettings> {
        let dir = data_dir.to_path_buf();
        let mut s = match self.base.as_deref() {
            None => TrainSettings::configured(&self.taxonomy, dir)?,
            Some("none") => TrainSettings::defaults(&self.taxonomy, dir),
            Some(name) => {
                let name = SafeName::parse(name)?;
                reviewloop::bases::resolve(data_dir, &name)?;
                TrainSettings::pretrained(&self.taxonomy, dir, name)
            }
        };
        s.name = self.name.map(String::from);
        s.all_data = self.all_data;
        s.sentiment_from_keyword = self.sentiment_from_keyword;
        let f = &mut s.fit;
        set(&mut f.epochs, self.epochs);
        set(&mut f.batch_size, self.batch_size.map(|b| b.max(1)));
        set(&mut f.learning_rate, self.learning_rate);
        set(&mut f.head_rate, self.head_rate);
        set(&mut f.patience, self.patience);
        set(&mut f.seed, self.seed);
        set(&mut f.token_dropout, self.token_dropout);
        set(&mut f.weight_decay, self.weight_decay);
        set(&mut f.lexical_rate, self.lexical_rate);
        set(&mut f.lexical_epochs, self.lexical_epochs);
        set(&mut f.frozen.embeddings, self.freeze_embeddings);
        set(&mut f.frozen.layers, self.frozen_layers);
        set(&mut s.vocab_size, self.vocab_size);
        set(&mut s.sentiment_input, self.sentiment_input);
        set(&mut s.dropout, self.dropout);
        set(&mut s.pretrain_epochs, self.pretrain_epochs);
        set(&mut s.pooling, self.pooling);
        if self.lexical_buckets.is_some() {
            s.lexical_buckets = self.lexical_buckets;
        }
        Ok(s)
    }
}

fn set<T>(field: &mut T, given: Option<T>) {
    if let Some(value) = given {
        *field = value;
    }
}

pub async fn train(pool: &sqlx::PgPool, settings: &Settings, args: TrainArgs) -> anyhow::Result<()> {
    use reviewloop::train::pipeline;
    let (queue, device) = (args.queue, args.device.clone());
    let train_settings = args.settings(&settings.data_dir)?;
    if queue {
        let mut payload = serde_json::to_value(&train_settings)?;
        payload["device"] = device.into();
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
    if let Some(p) = &evaluation.pipeline {
        println!(
            "\nwhole chain, (keyword, level) pairs: precision {:.3} recall {:.3} F1 {:.3} ({} found, {} labelled, {} right)",
            p.precision, p.recall, p.f1, p.found, p.labelled, p.correct
        );
    }
    Ok(())
}
