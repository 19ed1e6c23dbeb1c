//! The active-learning loop's commands: scoring the pool, the worker, jobs.

use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;

use reviewloop::cancel::Cancel;
use reviewloop::config::Settings;
use reviewloop::jobs::{self, NewJob, WorkerConfig};
use reviewloop::score::{self, ScoreOptions};
use reviewloop::store::jobs as queue;

#[derive(clap::Args)]
pub struct ScoreArgs {
    #[arg(long, default_value = "fashion")]
    taxonomy: String,
    /// Score every review again, not only those the serving version has not scored.
    #[arg(long)]
    all: bool,
    /// Reviews per batch (each batch is stored in one transaction).
    #[arg(long, default_value_t = 256)]
    batch_size: usize,
    /// k for the k-means outlier pass (default about √(n/2)).
    #[arg(long)]
    clusters: Option<usize>,
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Queue a scoring job for a worker instead of scoring here.
    #[arg(long)]
    queue: bool,
}

pub async fn score(pool: &sqlx::PgPool, settings: &Settings, args: ScoreArgs) -> anyhow::Result<()> {
    if args.queue {
        let payload = json!({"taxonomy": args.taxonomy, "rescore": args.all, "clusters": args.clusters});
        let mut job = NewJob::new("score", payload);
        job.dedup_key = Some(format!("score:{}", args.taxonomy));
        let mut conn = pool.acquire().await?;
        let id = queue::enqueue(&mut conn, &job).await?;
        println!("job {id} queued");
        return Ok(());
    }
    let mut options = ScoreOptions::new(&args.taxonomy, settings.data_dir.clone());
    options.storage = settings.storage.clone();
    options.rescore = args.all;
    options.batch_size = args.batch_size;
    options.clusters = args.clusters;
    options.seed = args.seed;
    let bar = ProgressBar::new(0);
    bar.set_style(ProgressStyle::with_template(
        "scoring {bar:40} {pos}/{len} reviews · {per_sec} · eta {eta}",
    )?);
    let summary = score::run(pool, &options, &mut |done, total| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
    })
    .await?;
    bar.finish_and_clear();
    println!(
        "version {}: scored {} reviews now, {}/{} in all{}",
        summary.version,
        summary.scored,
        summary.covered,
        summary.total,
        summary.clusters.map(|k| format!("; {k} clusters")).unwrap_or_default()
    );
    Ok(())
}

#[derive(clap::Args)]
pub struct WorkerArgs {
    /// Job kinds to take (default: all).
    #[arg(long, value_delimiter = ',', value_parser = jobs::KINDS)]
    kinds: Vec<String>,
    /// Run the jobs that are queued now, then exit.
    #[arg(long)]
    once: bool,
    /// Seconds a job's lease lasts without a heartbeat; a worker silent this long is
    /// taken for dead and its job goes back to the queue.
    #[arg(long, default_value_t = 60.0)]
    lease_seconds: f64,
    /// First retry delay in seconds (doubles with each attempt).
    #[arg(long, default_value_t = 30.0)]
    retry_seconds: f64,
}

pub async fn worker(pool: &sqlx::PgPool, settings: &Settings, args: WorkerArgs) -> anyhow::Result<()> {
    let mut config = WorkerConfig::new(settings.data_dir.clone());
    config.storage = settings.storage.clone();
    if !args.kinds.is_empty() {
        config.kinds = args.kinds;
    }
    config.lease_seconds = args.lease_seconds.max(5.0);
    config.heartbeat = Duration::from_secs_f64((config.lease_seconds / 10.0).clamp(1.0, 10.0));
    config.retry_base_seconds = args.retry_seconds.max(0.0);
    eprintln!("{}", describe(pool, &config)?);
    if args.once {
        while let Some((job, outcome)) = jobs::worker::run_next(pool, &config).await? {
            println!("job {} ({}): {outcome:?}", job.id, job.kind);
        }
        return Ok(());
    }
    let shutdown = Cancel::default();
    let stop = shutdown.clone();
    tokio::spawn(async move {
        let _ = tokio::signal::ctrl_c().await;
        eprintln!("stopping after the current job");
        stop.cancel();
    });
    jobs::worker::run(pool, &config, &shutdown).await
}

/// What a worker says at start: who it is, which jobs, which device, which storage and
/// cache.
pub fn describe(pool: &sqlx::PgPool, config: &WorkerConfig) -> anyhow::Result<String> {
    let storage = reviewloop::storage::Storage::open(pool, &config.storage)?;
    Ok(format!(
        "worker {} takes {}\n  device: {} (job devices {})\n  storage: {}; local cache {}",
        config.id,
        config.kinds.join(", "),
        reviewloop::model::device_name(),
        config.devices.join("/"),
        storage.describe(),
        config.models_dir.display()
    ))
}

#[derive(clap::Subcommand)]
pub enum JobCommand {
    /// The latest jobs with status and progress.
    List {
        #[arg(long, default_value_t = 20)]
        limit: i64,
    },
    /// One job's details and log.
    Show { id: i64 },
    /// Cancel a queued or running job (a running one stops at its next step).
    Cancel { id: i64 },
}

pub async fn job(pool: &sqlx::PgPool, cmd: JobCommand) -> anyhow::Result<()> {
    match cmd {
        JobCommand::List { limit } => {
            println!(
                "{:>6}  {:<6} {:<10} {:>7}  {:<20} progress",
                "id", "kind", "status", "attempts", "created"
            );
            for j in queue::recent(pool, limit).await? {
                println!(
                    "{:>6}  {:<6} {:<10} {:>4}/{:<2}  {:<20} {}",
                    j.id,
                    j.kind,
                    j.status,
                    j.attempts,
                    j.max_attempts,
                    j.created_at.format("%Y-%m-%d %H:%M:%S"),
                    j.progress
                );
            }
        }
        JobCommand::Show { id } => {
            let j = queue::get(pool, id).await?.ok_or_else(|| anyhow::anyhow!("no job {id}"))?;
            println!("{}", serde_json::to_string_pretty(&j)?);
            for line in queue::logs(pool, id, 0).await? {
                println!("{} {}", line.at.format("%H:%M:%S"), line.line);
            }
        }
        JobCommand::Cancel { id } => {
            anyhow::ensure!(queue::cancel(pool, id).await?, "job {id} is not queued or running");
            println!("job {id} cancelled");
        }
    }
    Ok(())
}

#[derive(clap::Subcommand)]
pub enum ModelCommand {
    /// Versions of a taxonomy with status and keyword F1.
    List {
        #[arg(long, default_value = "fashion")]
        taxonomy: String,
    },
    /// Serve this version; refused when a keyword's F1 falls by more than
    /// --promotion-margin, unless --reason says why.
    Promote {
        name: String,
        #[arg(long, default_value = "fashion")]
        taxonomy: String,
        #[arg(long)]
        reason: Option<String>,
        /// Largest fall of a keyword's F1 accepted without a reason (as `serve`'s).
        #[arg(long, env = "REVIEWLOOP_PROMOTION_MARGIN", default_value_t = reviewloop::config::PROMOTION_MARGIN)]
        promotion_margin: f64,
    },
    /// Serve again the version that served before the current one.
    Rollback {
        #[arg(long, default_value = "fashion")]
        taxonomy: String,
    },
    /// Delete old versions' files (stored and cached), keeping the serving one, the one
    /// a rollback would serve, the last --keep made, pinned ones and those a job names.
    Prune {
        #[arg(long, default_value = "fashion")]
        taxonomy: String,
        #[arg(long, default_value_t = reviewloop::retention::KEEP_LAST)]
        keep: usize,
        /// Only say what would go.
        #[arg(long)]
        dry_run: bool,
    },
    /// Never prune this version.
    Pin {
        name: String,
        #[arg(long, default_value = "fashion")]
        taxonomy: String,
    },
    /// Let the rule prune this version again.
    Unpin {
        name: String,
        #[arg(long, default_value = "fashion")]
        taxonomy: String,
    },
}

pub async fn model(
    pool: &sqlx::PgPool,
    settings: &reviewloop::config::Settings,
    cmd: ModelCommand,
) -> anyhow::Result<()> {
    use reviewloop::store::{models, taxonomies};
    use reviewloop::train::compare::judged_report;
    use reviewloop::{promotion, retention};
    match cmd {
        ModelCommand::List { taxonomy } => {
            let id = taxonomies::load_by_name(pool, &taxonomy).await?.id;
            println!("{:<28} {:<8} {:>9} {:>9}  created", "name", "status", "micro F1", "macro F1");
            for v in models::list(pool, id, "keyword").await? {
                let report = judged_report(&v.metrics).unwrap_or_default();
                println!(
                    "{:<28} {:<8} {:>9.3} {:>9.3}  {}",
                    v.name,
                    v.status,
                    report.micro.f1,
                    report.macro_avg.f1,
                    v.created_at.format("%Y-%m-%d %H:%M")
                );
            }
        }
        ModelCommand::Promote { name, taxonomy, reason, promotion_margin } => {
            let id = taxonomies::load_by_name(pool, &taxonomy).await?.id;
            let gate = promotion::Gate { margin: promotion_margin, override_reason: reason.as_deref() };
            let switched = promotion::promote(pool, id, &name, None, &gate).await?;
            println!("{} now serves (was {})", switched.to, switched.from.as_deref().unwrap_or("none"));
        }
        ModelCommand::Rollback { taxonomy } => {
            let id = taxonomies::load_by_name(pool, &taxonomy).await?.id;
            let switched = promotion::rollback(pool, id, None).await?;
            println!("{} serves again (was {})", switched.to, switched.from.as_deref().unwrap_or("none"));
        }
        ModelCommand::Prune { taxonomy, keep, dry_run } => {
            let id = taxonomies::load_by_name(pool, &taxonomy).await?.id;
            if dry_run {
                let plan = retention::plan(pool, id, keep).await?;
                let bytes: i64 = plan.iter().map(|p| p.bytes).sum();
                let names: Vec<&str> = plan.iter().map(|p| p.name.as_str()).collect();
                println!(
                    "would prune {} versions ({}), {:.1} MB stored",
                    names.len(),
                    names.join(", "),
                    mb(bytes)
                );
                return Ok(());
            }
            let storage = reviewloop::storage::Storage::open(pool, &settings.storage)?;
            let done = retention::prune(&storage, &settings.data_dir, &taxonomy, id, keep).await?;
            println!(
                "pruned {} versions ({}): {:.1} MB stored and {:.1} MB cached here freed",
                done.versions.len(),
                done.versions.join(", "),
                mb(done.stored_bytes),
                mb(done.cached_bytes as i64)
            );
        }
        ModelCommand::Pin { name, taxonomy } => pin(pool, &taxonomy, &name, true).await?,
        ModelCommand::Unpin { name, taxonomy } => pin(pool, &taxonomy, &name, false).await?,
    }
    Ok(())
}

async fn pin(pool: &sqlx::PgPool, taxonomy: &str, name: &str, pinned: bool) -> anyhow::Result<()> {
    let id = reviewloop::store::taxonomies::load_by_name(pool, taxonomy).await?.id;
    anyhow::ensure!(
        reviewloop::retention::pin(pool, id, name, pinned).await?,
        "no version `{name}` (or it was pruned)"
    );
    println!("{name} {}", if pinned { "pinned: never pruned" } else { "unpinned" });
    Ok(())
}

fn mb(bytes: i64) -> f64 {
    bytes as f64 / 1e6
}
