//! The `reviewloop` command line: a thin layer over the library.

use std::fs::File;
use std::io::{BufReader, BufWriter, Write};
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};

use reviewloop::config::Settings;

mod cli;
use reviewloop::export::{ExportFormat, ExportOptions};
use reviewloop::import::{Format, ImportOptions, ImportSummary};
use reviewloop::rounds::{GroupBy, RoundSpec, Sampling};
use reviewloop::store::{self, annotations::LabelSource, users::Role};

#[derive(Parser)]
#[command(
    name = "reviewloop",
    version,
    about = "Label, train and serve Korean review analysis models in an active-learning loop"
)]
struct Cli {
    #[command(flatten)]
    settings: Settings,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the web app (annotation, engineer pages) on --bind.
    Serve {
        /// Address and port to listen on.
        #[arg(long, env = "REVIEWLOOP_BIND", default_value = "127.0.0.1:8080")]
        bind: String,
        /// Mark session cookies Secure (set this behind HTTPS).
        #[arg(long, env = "REVIEWLOOP_SECURE_COOKIES")]
        secure_cookies: bool,
        /// Do not run jobs in this process (run `reviewloop worker` elsewhere instead).
        #[arg(long, env = "REVIEWLOOP_NO_WORKER")]
        no_worker: bool,
    },
    /// Create the database if missing and apply migrations, then exit.
    Migrate,
    /// Import reviews (and labels) from CSV, TSV, JSONL or the NIKL ABSA format.
    Import(ImportArgs),
    /// Export the current label of each review as CSV or JSONL.
    Export(ExportArgs),
    /// Create, list and close labelling rounds.
    #[command(subcommand)]
    Round(RoundCommand),
    /// Manage user accounts.
    #[command(subcommand)]
    User(UserCommand),
    /// Keys for the analysis API (/api/v1/analyze).
    #[command(subcommand)]
    Apikey(cli::api_keys::ApiKeyCommand),
    /// List or add keyword taxonomies.
    #[command(subcommand)]
    Taxonomy(TaxonomyCommand),
    /// Pretrained encoders under <data dir>/base/: import, list, trim, pick the default.
    #[command(subcommand)]
    Base(cli::bases::BaseCommand),
    /// Continue masked-language training of a base on a corpus file or a taxonomy's
    /// reviews (domain-adaptive pre-training): checkpointed, resumable, a new base.
    Pretrain(cli::pretrain::PretrainArgs),
    /// Train a keyword model and a sentiment model from the current labels.
    Train(cli::models::TrainArgs),
    /// Copy a version with lighter weights (int8 linear layers, or f16 / bf16 files),
    /// scored on the same labels as the original.
    Quantize(cli::lighter::QuantizeArgs),
    /// Train a smaller version to reproduce a trained one (knowledge distillation), on
    /// its training reviews and on unlabelled ones.
    Distill(cli::lighter::DistillArgs),
    /// Report a version's precision / recall / F1 per keyword and per sentiment level, on
    /// a labelled file (not imported) or on the label store's test split.
    Eval {
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
    },
    /// Analyse a review: keywords, sentiment per keyword, highlighted words.
    Analyze {
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
    },
    /// Score the pool with the serving models: keyword probabilities, sentiment per found
    /// keyword, embeddings, rarity and cluster outliers, for the selection strategies.
    Score(cli::active::ScoreArgs),
    /// Run queued jobs (training, scoring, evaluation) until stopped; start one per
    /// machine, GPU hosts included, against the same database.
    Worker(cli::active::WorkerArgs),
    /// Find suspected label errors: k-fold cross-validation, then confident learning per
    /// keyword and per keyword's sentiment; suspects become label issues for reviewers.
    Audit(cli::audit::AuditArgs),
    /// Agreement between annotators per keyword (kappa, alpha) on multiply-labelled reviews.
    Agreement {
        #[arg(long, default_value = "fashion")]
        taxonomy: String,
    },
    /// Replay the loop on a labelled file: learning curves of each strategy against random.
    Simulate(cli::simulate::SimulateArgs),
    /// List model versions, promote one (behind the F1 gate) or roll back.
    #[command(subcommand)]
    Model(cli::active::ModelCommand),
    /// List, inspect and cancel jobs.
    #[command(subcommand)]
    Job(cli::active::JobCommand),
    /// Measure performance.
    #[command(subcommand)]
    Bench(BenchCommand),
}

#[derive(clap::Args)]
struct ImportArgs {
    /// File to import.
    file: PathBuf,
    /// File format; guessed from the extension when omitted (NIKL needs `nikl-absa`).
    #[arg(long, value_enum)]
    format: Option<Format>,
    /// Taxonomy the reviews belong to (`nikl-absa` by default for that format, else `fashion`).
    #[arg(long)]
    taxonomy: Option<String>,
    /// Who made the labels in the file: human, silver (an external API's output) or gold.
    #[arg(long, default_value = "human", value_parser = ["human", "silver", "gold", "review"])]
    label_source: String,
    /// Mall for rows that name none.
    #[arg(long, default_value = "")]
    mall: String,
    /// Category for rows that name none.
    #[arg(long, default_value = "")]
    category: String,
    /// Rows written per transaction.
    #[arg(long, default_value_t = 1000)]
    batch_size: usize,
    /// Print every rejected row and warning (default: the first 20).
    #[arg(long)]
    all_problems: bool,
}

#[derive(clap::Args)]
struct ExportArgs {
    /// Output file; standard output when omitted.
    #[arg(long, short)]
    out: Option<PathBuf>,
    #[arg(long, value_enum, default_value = "jsonl")]
    format: ExportFormat,
    #[arg(long, default_value = "fashion")]
    taxonomy: String,
    /// Also export reviews without labels.
    #[arg(long)]
    include_unlabelled: bool,
}

#[derive(Subcommand)]
enum RoundCommand {
    /// Sample a new round from the unlabelled, unqueued reviews.
    New {
        #[arg(long)]
        name: String,
        #[arg(long, default_value = "fashion")]
        taxonomy: String,
        /// Number of reviews.
        #[arg(long)]
        size: usize,
        #[arg(long, value_enum, default_value = "random")]
        sampling: Sampling,
        /// Groups kept in proportion with --sampling proportional.
        #[arg(long, value_enum, default_value = "mall-category")]
        by: GroupBy,
        /// Share of items given to two annotators (0–1), for agreement.
        #[arg(long, default_value_t = 0.0)]
        double_share: f64,
        /// Comma-separated annotator usernames; everyone when omitted.
        #[arg(long, value_delimiter = ',')]
        annotators: Vec<String>,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Pick by the serving model's scores with these quotas, e.g.
        /// `keyword-boundary=0.4,sentiment-uncertainty=0.2,rare-tokens=0.15,cluster-outliers=0.15,random=0.1`
        /// (or one name: `rare-tokens`). Mall / category shares follow --by.
        #[arg(long, value_parser = parse_quotas)]
        strategy: Option<Vec<reviewloop::select::Quota>>,
        /// The serving model's suggestions on the annotation page: off, shown (visible,
        /// nothing ticked) or prefilled (ticked, to confirm or correct).
        #[arg(long, value_enum, default_value_t = reviewloop::rounds::Assist::Off)]
        assist: reviewloop::rounds::Assist,
        /// Suggestions also on the items double-assigned for agreement.
        #[arg(long)]
        assist_doubled: bool,
    },
    /// Rounds with their progress.
    List,
    /// Close a round: its unlabelled reviews return to the pool.
    Close { id: i64 },
}

#[derive(Subcommand)]
enum UserCommand {
    /// Add a user; the password comes from --password or the REVIEWLOOP_PASSWORD variable.
    Add {
        username: String,
        #[arg(long, value_enum)]
        role: Role,
        #[arg(long, env = "REVIEWLOOP_PASSWORD", hide_env_values = true)]
        password: String,
    },
    /// Set a new password (ends the user's sessions).
    Passwd {
        username: String,
        #[arg(long, env = "REVIEWLOOP_PASSWORD", hide_env_values = true)]
        password: String,
    },
    List,
}

#[derive(Subcommand)]
enum TaxonomyCommand {
    List,
    /// Add a taxonomy from a JSON file: {name, description, scale_min, scale_max, keywords: [{name, guideline}]}.
    Add {
        file: PathBuf,
    },
}

#[derive(clap::Args)]
struct ModelBenchArgs {
    #[arg(long, default_value_t = 32)]
    batch: usize,
    #[arg(long, default_value_t = 64)]
    tokens: usize,
    /// Seconds to measure each configuration.
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    /// A Python with torch and transformers: also run the PyTorch reference and print ratios.
    #[arg(long)]
    python: Option<String>,
    /// Only this configuration (`small` or `base`); both when omitted.
    #[arg(long)]
    config: Option<String>,
    /// `bench infer` only: also measure the encoder with 8-bit linear layers.
    #[arg(long)]
    int8: bool,
    /// `bench infer` only: a trained model folder (`…/<version>/keyword`) instead of random
    /// weights; PyTorch loads the same folder.
    #[arg(long)]
    version: Option<PathBuf>,
    /// A base folder (e.g. models/base/multilingual-e5-small): a classifier on its
    /// pretrained weights; PyTorch (transformers' AutoModel) loads the same folder.
    #[arg(long, conflicts_with = "version")]
    base: Option<PathBuf>,
    /// With --base: keep the embeddings fixed (as `train --freeze-embeddings`).
    #[arg(long)]
    freeze_embeddings: bool,
    /// With --base: keep the embeddings and the first N layers fixed.
    #[arg(long, default_value_t = 0)]
    frozen_layers: usize,
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
enum BenchCommand {
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
    },
    /// Latency of next item / item page / submit over HTTP, on a scratch database.
    /// The analysis API under load over loopback HTTP: reviews/s, p50 and p99 latency at
    /// each number of concurrent clients, with and without highlights.
    Serve {
        /// Labelled file: its texts are sent; a default-size model is trained on it
        /// unless --version is given.
        #[command(flatten)]
        file: cli::DataFile,
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
    Audit(cli::audit::PowerArgs),
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
}

fn parse_quotas(text: &str) -> Result<Vec<reviewloop::select::Quota>, String> {
    reviewloop::select::Quota::parse_list(text)
}

fn main() -> std::process::ExitCode {
    reviewloop::model::memory::keep_freed_memory();
    // Errors are for people: the message and its causes, without a backtrace.
    match actix_web::rt::System::new().block_on(start()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn start() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,sqlx::postgres::notice=warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let settings = cli.settings;
    match cli.command {
        // Benchmarks make their own scratch databases.
        Command::Bench(BenchCommand::Import { rows }) => reviewloop::bench::import(&settings, rows).await,
        Command::Bench(BenchCommand::Infer(a)) => reviewloop::bench::models("infer", &a.spec()),
        Command::Bench(BenchCommand::Train(a)) => reviewloop::bench::models("train", &a.spec()),
        Command::Bench(BenchCommand::Select { pool, items, runs }) => {
            reviewloop::bench::select(&settings, pool, items, runs).await
        }
        Command::Bench(BenchCommand::Serve { file, version, epochs, clients, seconds, adversary }) => {
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
            let figures = reviewloop::bench::serve(&settings, &bench).await?;
            println!("{}", serde_json::to_string(&figures)?);
            Ok(())
        }
        Command::Bench(BenchCommand::Highlights { version, data, format, sample, candidates }) => {
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
        Command::Bench(BenchCommand::Audit(args)) => cli::audit::power(&settings, args).await,
        Command::Bench(BenchCommand::Annotate { pool, items, suggested }) => {
            reviewloop::bench::annotate(&settings, pool, items, suggested).await
        }
        // Bases live on disk; only trimming by a taxonomy reads the database.
        Command::Base(cmd) => cli::bases::run(&settings, cmd).await,
        Command::Pretrain(args) => cli::pretrain::pretrain(&settings, args).await,
        command => {
            let pool = store::connect(&settings.database_url).await?;
            run(command, &settings, pool).await
        }
    }
}

async fn run(command: Command, settings: &Settings, pool: sqlx::PgPool) -> anyhow::Result<()> {
    match command {
        Command::Serve { bind, secure_cookies, no_worker } => {
            if let Some(password) = store::users::create_first_admin(&pool).await? {
                eprintln!("first start: created user `admin` with password `{password}`");
                eprintln!("change it with `reviewloop user passwd admin --password …`");
            }
            let app =
                reviewloop::web::Application::build(pool, settings.clone(), &bind, secure_cookies).await?;
            eprintln!("reviewloop listening on http://{}", app.address());
            let shutdown = reviewloop::cancel::Cancel::default();
            if !no_worker {
                let config = reviewloop::jobs::WorkerConfig::new(settings.data_dir.clone());
                eprintln!("running jobs in this process as worker {}", config.id);
                reviewloop::jobs::worker::spawn(settings.database_url.clone(), config, shutdown.clone())?;
            }
            app.run_until_stopped().await?;
            shutdown.cancel();
        }
        Command::Migrate => eprintln!("database is up to date"),
        Command::Import(args) => import(&pool, settings, args).await?,
        Command::Export(args) => export(&pool, args).await?,
        Command::Round(cmd) => round(&pool, cmd).await?,
        Command::User(cmd) => user(&pool, cmd).await?,
        Command::Apikey(cmd) => cli::api_keys::run(&pool, cmd).await?,
        Command::Taxonomy(cmd) => taxonomy(&pool, cmd).await?,
        Command::Train(args) => cli::models::train(&pool, settings, args).await?,
        Command::Quantize(args) => cli::lighter::quantize(&pool, settings, args).await?,
        Command::Distill(args) => cli::lighter::distill(&pool, settings, args).await?,
        Command::Eval { data, format, version, taxonomy, json } => {
            cli::models::eval(&pool, data, format, version, &taxonomy, json).await?
        }
        Command::Analyze { text, version, taxonomy, no_highlights, json } => {
            let dir = match version {
                Some(dir) => dir,
                None => store::models::current_dir(&pool, &taxonomy).await?,
            };
            let analysis = reviewloop::analyze::Analyzer::load(&dir)?.analyze(&text, !no_highlights)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&analysis)?);
            } else {
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
            }
        }
        Command::Score(args) => cli::active::score(&pool, settings, args).await?,
        Command::Worker(args) => cli::active::worker(&pool, settings, args).await?,
        Command::Job(cmd) => cli::active::job(&pool, cmd).await?,
        Command::Model(cmd) => cli::active::model(&pool, settings, cmd).await?,
        Command::Agreement { taxonomy } => cli::audit::agreement(&pool, &taxonomy).await?,
        Command::Audit(args) => cli::audit::audit(&pool, settings, args).await?,
        Command::Simulate(args) => cli::simulate::simulate(&pool, settings, args).await?,
        Command::Bench(_) | Command::Base(_) | Command::Pretrain(_) => {
            unreachable!("handled before connecting")
        }
    }
    Ok(())
}

async fn import(pool: &sqlx::PgPool, settings: &Settings, args: ImportArgs) -> anyhow::Result<()> {
    let path = args.file.display().to_string();
    let format = args
        .format
        .or_else(|| Format::from_path(&path))
        .context("cannot guess the format from the file name: pass --format csv|tsv|jsonl|nikl-absa")?;
    let taxonomy = args
        .taxonomy
        .unwrap_or_else(|| if format == Format::NiklAbsa { "nikl-absa" } else { "fashion" }.into());
    let file = File::open(&args.file).with_context(|| format!("cannot open {path}"))?;
    let bar = ProgressBar::new(file.metadata()?.len());
    bar.set_style(ProgressStyle::with_template("{bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}")?);
    let mut options = ImportOptions::new(&taxonomy, format, &path);
    options.label_source = LabelSource::parse(&args.label_source).expect("clap checked the value");
    options.default_mall = args.mall;
    options.default_category = args.category;
    options.max_text_chars = settings.max_text_chars;
    options.batch_size = args.batch_size.max(1);
    let reader = BufReader::new(bar.wrap_read(file));
    let summary = reviewloop::import::import(pool, reader, &options).await?;
    bar.finish_and_clear();
    print_summary(&summary, args.all_problems);
    Ok(())
}

fn print_summary(summary: &ImportSummary, all: bool) {
    let shown = if all { usize::MAX } else { 20 };
    for p in summary.problems.iter().take(shown) {
        eprintln!("line {}: {}: {}", p.line, p.severity, p.reason);
    }
    let total = summary.rejected + summary.warnings;
    if total as usize > shown.min(summary.problems.len()) {
        eprintln!("… {} problems in all (stored with batch {})", total, summary.batch_id);
    }
    println!(
        "imported {} · duplicates {} · updated {} · rejected {} · labels added {} · warnings {} (batch {})",
        summary.imported,
        summary.duplicates,
        summary.updated,
        summary.rejected,
        summary.labels_added,
        summary.warnings,
        summary.batch_id
    );
}

async fn export(pool: &sqlx::PgPool, args: ExportArgs) -> anyhow::Result<()> {
    let options = ExportOptions {
        taxonomy: args.taxonomy,
        format: args.format,
        include_unlabelled: args.include_unlabelled,
    };
    let writer: Box<dyn Write> = match &args.out {
        Some(path) => {
            Box::new(File::create(path).with_context(|| format!("cannot create {}", path.display()))?)
        }
        None => Box::new(std::io::stdout().lock()),
    };
    let rows = reviewloop::export::export(pool, BufWriter::new(writer), &options).await?;
    eprintln!("exported {rows} reviews");
    Ok(())
}

async fn round(pool: &sqlx::PgPool, cmd: RoundCommand) -> anyhow::Result<()> {
    match cmd {
        RoundCommand::New {
            name,
            taxonomy,
            size,
            sampling,
            by,
            double_share,
            annotators,
            seed,
            strategy,
            assist,
            assist_doubled,
        } => {
            let taxonomy_id = store::taxonomies::load_by_name(pool, &taxonomy).await?.id;
            let quotas = strategy.unwrap_or_default();
            let spec = RoundSpec {
                name,
                size,
                sampling,
                group_by: by,
                double_share,
                seed,
                members: annotators,
                quotas,
                assist,
                assist_doubled,
            };
            let round = store::rounds::create(pool, taxonomy_id, &spec, None).await?;
            println!("round {} created: {} items, {} double-assigned", round.id, round.items, round.doubled);
        }
        RoundCommand::List => {
            println!(
                "{:>5}  {:<24} {:<13} {:<7} {:>6} {:>9}",
                "id", "name", "sampling", "status", "items", "done"
            );
            for r in store::rounds::list(pool).await? {
                println!(
                    "{:>5}  {:<24} {:<13} {:<7} {:>6} {:>4}/{:<4}",
                    r.id, r.name, r.sampling, r.status, r.items, r.done, r.required
                );
            }
        }
        RoundCommand::Close { id } => {
            anyhow::ensure!(store::rounds::close(pool, id, None).await?, "round {id} is not open");
            println!("round {id} closed");
        }
    }
    Ok(())
}

async fn user(pool: &sqlx::PgPool, cmd: UserCommand) -> anyhow::Result<()> {
    match cmd {
        UserCommand::Add { username, role, password } => {
            let user = store::users::create(pool, &username, &password, role).await?;
            println!("user {} ({}) created", user.username, user.role.as_str());
        }
        UserCommand::Passwd { username, password } => {
            anyhow::ensure!(
                store::users::set_password(pool, &username, &password).await?,
                "no user named {username}"
            );
            println!("password of {username} changed");
        }
        UserCommand::List => {
            for u in store::users::list(pool).await? {
                println!("{:<24} {}", u.username, u.role.as_str());
            }
        }
    }
    Ok(())
}

async fn taxonomy(pool: &sqlx::PgPool, cmd: TaxonomyCommand) -> anyhow::Result<()> {
    match cmd {
        TaxonomyCommand::List => {
            for t in store::taxonomies::list(pool).await? {
                println!(
                    "{:<16} {:>3} keywords {:>9} reviews  {}",
                    t.name, t.keywords, t.reviews, t.description
                );
            }
        }
        TaxonomyCommand::Add { file } => {
            let text =
                std::fs::read_to_string(&file).with_context(|| format!("cannot read {}", file.display()))?;
            let def: reviewloop::taxonomy::TaxonomyDefinition =
                serde_json::from_str(&text).context("taxonomy file is not valid")?;
            let id = store::taxonomies::create(pool, &def).await?;
            println!("taxonomy {} created (id {id})", def.name);
        }
    }
    Ok(())
}
