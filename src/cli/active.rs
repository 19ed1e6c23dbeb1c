//! The active-learning loop's commands: scoring the pool.

use indicatif::{ProgressBar, ProgressStyle};

use reviewloop::config::Settings;
use reviewloop::score::{self, ScoreOptions};

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
}

pub async fn score(pool: &sqlx::PgPool, settings: &Settings, args: ScoreArgs) -> anyhow::Result<()> {
    let mut options = ScoreOptions::new(&args.taxonomy, settings.data_dir.clone());
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
