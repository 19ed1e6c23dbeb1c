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
use reviewloop::train::settings::{TrainOverrides, TrainSettings};

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
    /// Start the sentiment model from the trained keyword model's encoder.
    #[arg(long)]
    sentiment_from_keyword: bool,
    #[command(flatten)]
    overrides: TrainOverrides,
    /// Queue a training job for a worker instead of training here.
    #[arg(long)]
    queue: bool,
    /// With --queue: which workers may take it (`cuda` waits for a GPU worker).
    #[arg(long, default_value = "any", value_parser = ["any", "cpu", "cuda"])]
    device: String,
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
        self.overrides.apply(&mut s)?;
        Ok(s)
    }
}

pub async fn train(pool: &sqlx::PgPool, settings: &Settings, args: TrainArgs) -> anyhow::Result<()> {
    use reviewloop::train::pipeline;
    let (queue, device) = (args.queue, args.device.clone());
    let mut train_settings = args.settings(&settings.data_dir)?;
    train_settings.storage = Some(settings.storage.clone());
    if queue {
        let mut payload = serde_json::to_value(&train_settings)?;
        payload["device"] = device.into();
        let mut conn = pool.acquire().await?;
        let id =
            reviewloop::store::jobs::enqueue(&mut conn, &reviewloop::jobs::NewJob::new("train", payload))
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

#[derive(clap::Args)]
pub struct EvalArgs {
    /// Labelled file in an import format; default: the test split in the database.
    #[arg(long)]
    data: Option<PathBuf>,
    #[arg(long, value_enum)]
    format: Option<Format>,
    #[arg(long)]
    version: Option<PathBuf>,
    #[arg(long, default_value = "fashion")]
    taxonomy: String,
    /// Print JSON instead of tables.
    #[arg(long)]
    json: bool,
}

pub async fn eval(pool: &sqlx::PgPool, settings: &Settings, args: EvalArgs) -> anyhow::Result<()> {
    let EvalArgs { data, format, version, taxonomy, json } = args;
    let taxonomy = taxonomy.as_str();
    use reviewloop::train::{data as training_data, evaluate, metrics};
    let dir = match version {
        Some(dir) => dir,
        None => serving_dir(pool, settings, taxonomy).await?,
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
            (all.into_iter().filter(|i| i.split == reviewloop::split::Split::Test).collect(), 0)
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

#[derive(clap::Args)]
pub struct AnalyzeArgs {
    text: String,
    /// A version folder (with keyword/ and sentiment/); default: the taxonomy's
    /// active version, else its newest ready one.
    #[arg(long)]
    version: Option<PathBuf>,
    #[arg(long, default_value = "fashion")]
    taxonomy: String,
    #[arg(long)]
    no_highlights: bool,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

pub async fn analyze(pool: &sqlx::PgPool, settings: &Settings, args: AnalyzeArgs) -> anyhow::Result<()> {
    let dir = match args.version {
        Some(dir) => dir,
        None => serving_dir(pool, settings, &args.taxonomy).await?,
    };
    let analysis = reviewloop::analyze::Analyzer::load(&dir)?.analyze(&args.text, !args.no_highlights)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&analysis)?);
        return Ok(());
    }
    for k in &analysis.keywords {
        let words: Vec<String> =
            k.highlights.iter().map(|h| format!("{} (−{:.2})", h.word, h.drop)).collect();
        println!(
            "{:<16} p={:.2}  sentiment {:+}  {}",
            k.keyword,
            k.probability,
            k.sentiment,
            words.join(", ")
        );
    }
    if analysis.keywords.is_empty() {
        println!("no keyword found");
    }
    Ok(())
}

/// The serving version's folder on this host, fetched from storage when needed.
async fn serving_dir(pool: &sqlx::PgPool, settings: &Settings, taxonomy: &str) -> anyhow::Result<PathBuf> {
    let version = store::models::serving(pool, taxonomy).await?;
    let storage = reviewloop::storage::Storage::open(pool, &settings.storage)?;
    storage.version_dir(&settings.data_dir, &version).await
}
