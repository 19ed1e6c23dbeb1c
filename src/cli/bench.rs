//! `bench`: performance figures on scratch databases and generated or given data.

use std::path::PathBuf;

use clap::Subcommand;
use reviewloop::config::Settings;
use reviewloop::import::Format;

#[derive(clap::Args)]
pub struct ModelBenchArgs {
    #[arg(long, default_value_t = 32)]
    pub batch: usize,
    #[arg(long, default_value_t = 64)]
    pub tokens: usize,
    /// Seconds to measure each configuration.
    #[arg(long, default_value_t = 10.0)]
    pub seconds: f64,
    /// A Python with torch and transformers: also run the PyTorch reference and print ratios.
    #[arg(long)]
    pub python: Option<String>,
    /// Only this configuration (`small` or `base`); both when omitted.
    #[arg(long)]
    pub config: Option<String>,
    /// `bench infer` only: also measure the encoder with 8-bit linear layers.
    #[arg(long)]
    int8: bool,
    /// `bench infer` only: a trained model folder (`…/<version>/keyword`) instead of random
    /// weights; PyTorch loads the same folder.
    #[arg(long)]
    pub version: Option<PathBuf>,
    /// A base folder (e.g. models/base/multilingual-e5-small): a classifier on its
    /// pretrained weights; PyTorch (transformers' AutoModel) loads the same folder.
    #[arg(long, conflicts_with = "version")]
    pub base: Option<PathBuf>,
    /// With --base: keep the embeddings fixed (as `train --freeze-embeddings`).
    #[arg(long)]
    pub freeze_embeddings: bool,
    /// With --base: keep the embeddings and the first N layers fixed.
    #[arg(long, default_value_t = 0)]
    pub frozen_layers: usize,
}

impl ModelBenchArgs {
    fn spec(&self) -> reviewloop::bench::ModelBench {
        reviewloop::bench::ModelBench {
            batch: self.batch,
            seq: self.tokens,
            seconds: self.seconds,
            python: self.python.clone(),
            config: self.config.clone(),
            int8: self.int8,
            version: self.version.clone(),
            base: self.base.clone(),
            frozen: reviewloop::model::encoder::Frozen {
                embeddings: self.freeze_embeddings,
                layers: self.frozen_layers,
            },
        }
    }
}

#[derive(Subcommand)]
pub enum BenchCommand {
    /// Import N generated reviews into a scratch database and print rows/second.
    Import {
        #[arg(long, default_value_t = 100_000)]
        rows: usize,
    },
    /// Encoder + keyword head inference throughput (small and base-size configs).
    Infer(ModelBenchArgs),
    /// Training-step throughput (forward, backward, AdamW), small and base-size configs.
    Train(ModelBenchArgs),
    /// Composing a strategy round from a large generated scored pool (scratch database).
    Select {
        /// Scored reviews in the pool.
        #[arg(long, default_value_t = 1_000_000)]
        pool: usize,
        /// Items in the round.
        #[arg(long, default_value_t = 1000)]
        items: usize,
        #[arg(long, default_value_t = 5)]
        runs: usize,
        /// Strategy quotas, as `round new --strategy` takes them.
        #[arg(long, default_value = reviewloop::bench::SELECT_QUOTAS)]
        quotas: String,
    },
    /// A sharded scoring pass and the clustering pass over N generated reviews (scratch
    /// database, one worker): reviews/s, peak RSS and time of each, and what storing
    /// the version for every host took.
    Score {
        /// Generated reviews in the pool.
        #[arg(long, default_value_t = 100_000)]
        pool: usize,
        /// Train from this base (under the data dir) instead of the offline small encoder.
        #[arg(long)]
        base: Option<reviewloop::names::SafeName>,
        /// Score with the f32 model, not its int8 copy.
        #[arg(long)]
        f32: bool,
        /// Reviews per chunk job.
        #[arg(long, default_value_t = reviewloop::jobs::score_jobs::CHUNK)]
        chunk_size: usize,
        /// Reviews per stored batch.
        #[arg(long, default_value_t = reviewloop::score::BATCH)]
        batch_size: usize,
        /// Give this many reviews made-up predictions in SQL first; the model scores the
        /// rest (a pool of a million measured in minutes).
        #[arg(long, default_value_t = 0)]
        prescored: usize,
    },
    /// Latency of next item / item page / submit over HTTP, on a scratch database.
    /// The analysis API under load over loopback HTTP: reviews/s, p50 and p99 latency at
    /// each number of concurrent clients, with and without highlights.
    Serve {
        /// Labelled file: its texts are sent; a default-size model is trained on it
        /// unless --version is given.
        #[command(flatten)]
        file: super::DataFile,
        /// A trained version folder to serve.
        #[arg(long)]
        version: Option<PathBuf>,
        /// Training epochs of the model trained here (default sizes).
        #[arg(long, default_value_t = 3)]
        epochs: usize,
        #[arg(long, value_delimiter = ',', default_value = "1,8,64")]
        clients: Vec<usize>,
        /// Seconds measured per setting.
        #[arg(long, default_value_t = 10.0)]
        seconds: f64,
        /// One client sends the largest request accepted (long reviews, highlights) in
        /// a loop beside --clients (first value) clients sending one short review each.
        #[arg(long)]
        adversary: bool,
    },
    /// Fast highlights against full masking: top-word agreement and cost, on a sample.
    Highlights {
        /// A trained version folder.
        #[arg(long)]
        version: PathBuf,
        #[arg(long)]
        data: PathBuf,
        #[arg(long, value_enum)]
        format: Format,
        #[arg(long, default_value_t = 300)]
        sample: usize,
        /// Words the fast method masks per found keyword.
        #[arg(long, default_value_t = reviewloop::analyze::FAST_CANDIDATES)]
        candidates: usize,
    },
    /// Plants label errors in a labelled file (scratch database) and measures how many
    /// the audit finds among its top suspects.
    Audit(super::audit::PowerArgs),
    Annotate {
        /// Reviews in the pool.
        #[arg(long, default_value_t = 100_000)]
        pool: usize,
        /// Items in the round (each is claimed, shown and answered once).
        #[arg(long, default_value_t = 500)]
        items: usize,
        /// A round whose items carry stored model suggestions, shown on the page.
        #[arg(long)]
        suggested: bool,
    },
    /// The reviewer's pages (audit table, keyword pages, adjudication) over HTTP on a
    /// taxonomy of many reviews: p50 / p99 of each (scripts/bench_qa_data.sql).
    Qa {
        /// Reviews in the taxonomy; a tenth are re-labelled after a guideline change.
        #[arg(long, default_value_t = 100_000)]
        reviews: usize,
        /// Timed requests per page (after three untimed ones).
        #[arg(long, default_value_t = 100)]
        requests: usize,
        /// Time an app already serving a database that the script prepared (its
        /// DATABASE_URL), instead of a scratch database of its own.
        #[arg(long)]
        url: Option<String>,
    },
}

/// Benchmarks make their own scratch databases.
pub async fn run(settings: &Settings, command: BenchCommand) -> anyhow::Result<()> {
    match command {
        BenchCommand::Import { rows } => reviewloop::bench::import(settings, rows).await,
        BenchCommand::Infer(a) => reviewloop::bench::models("infer", &a.spec()),
        BenchCommand::Train(a) => reviewloop::bench::models("train", &a.spec()),
        BenchCommand::Select { pool, items, runs, quotas } => {
            reviewloop::bench::select(settings, pool, items, runs, &quotas).await
        }
        BenchCommand::Serve { file, version, epochs, clients, seconds, adversary } => {
            let bench = reviewloop::bench::ServeBench {
                taxonomy: file.taxonomy(),
                data: file.data,
                format: file.format,
                version,
                epochs,
                concurrency: clients,
                seconds,
                adversary,
            };
            let figures = reviewloop::bench::serve(settings, &bench).await?;
            println!("{}", serde_json::to_string(&figures)?);
            Ok(())
        }
        BenchCommand::Highlights { version, data, format, sample, candidates } => {
            let f = reviewloop::bench::highlights(&version, &data, format, sample, candidates)?;
            let share = |a: usize, b: usize| a as f64 / b.max(1) as f64;
            println!(
                "top word agrees: {:.1} % of {} found keywords, {:.1} % of {} reviews",
                100.0 * share(f.keywords_agreeing, f.keywords),
                f.keywords,
                100.0 * share(f.reviews_agreeing, f.reviews_compared),
                f.reviews_compared
            );
            println!(
                "cost against no highlights ({} reviews, {:.2} s): mask {:.2}×, fast {:.2}×",
                f.reviews,
                f.seconds_none,
                f.seconds_mask / f.seconds_none,
                f.seconds_fast / f.seconds_none
            );
            println!("{}", serde_json::to_string(&f)?);
            Ok(())
        }
        BenchCommand::Audit(args) => super::audit::power(settings, args).await,
        BenchCommand::Score { pool, base, f32, chunk_size, batch_size, prescored } => {
            let bench = reviewloop::bench::ScoreBench { pool, base, f32, chunk_size, batch_size, prescored };
            let f = reviewloop::bench::score(settings, &bench).await?;
            for u in &f.upload {
                println!("stored {}: {:.1} MB in {:.2} s", u.what, u.megabytes, u.seconds);
            }
            println!(
                "scoring {} reviews (a pool of {} and the labelled ones, less those prescored) with the {} \
                 on one worker ({} threads): {:.1} s, {:.0} reviews/s ({:.2} keywords found per review, \
                 each one more encoder pass), peak RSS {:.0} MB",
                f.scored,
                f.pool,
                f.model,
                f.threads,
                f.scoring_seconds,
                f.reviews_per_second,
                f.keywords_per_review,
                f.scoring_peak_rss_mb
            );
            println!(
                "clustering (k = {}): {:.1} s, peak RSS {:.0} MB",
                f.clusters, f.clustering_seconds, f.clustering_peak_rss_mb
            );
            println!("{}", serde_json::to_string(&f)?);
            Ok(())
        }
        BenchCommand::Annotate { pool, items, suggested } => {
            reviewloop::bench::annotate(settings, pool, items, suggested).await
        }
        BenchCommand::Qa { reviews, requests, url } => {
            println!("QA pages, {reviews} reviews, {requests} requests each, one at a time:");
            let bench = reviewloop::bench::QaBench { reviews, requests, url };
            reviewloop::bench::qa(settings, &bench).await.map(drop)
        }
    }
}
