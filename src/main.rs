//! The `reviewloop` command line: parses and dispatches. Each command area's clap
//! definitions sit beside their handlers in `cli/`.

use clap::{Parser, Subcommand};
use reviewloop::config::Settings;

mod cli;

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
    /// Run the web app (annotation, engineer pages, the analysis API) on --bind.
    Serve(cli::serve::ServeArgs),
    /// Create the database if missing and apply migrations, then exit.
    Migrate,
    /// Import reviews (and labels) from CSV, TSV, JSONL or the NIKL ABSA format.
    Import(cli::data::ImportArgs),
    /// Export the current label of each review as CSV or JSONL.
    Export(cli::data::ExportArgs),
    /// Create, list and close labelling rounds.
    #[command(subcommand)]
    Round(cli::rounds::RoundCommand),
    /// Manage user accounts.
    #[command(subcommand)]
    User(cli::users::UserCommand),
    /// Keys for the analysis API (/api/v1/analyze).
    #[command(subcommand)]
    Apikey(cli::api_keys::ApiKeyCommand),
    /// List or add keyword taxonomies.
    #[command(subcommand)]
    Taxonomy(cli::data::TaxonomyCommand),
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
    Eval(cli::models::EvalArgs),
    /// Analyse a review: keywords, sentiment per keyword, highlighted words.
    Analyze(cli::models::AnalyzeArgs),
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
    Agreement(cli::audit::AgreementArgs),
    /// Replay the loop on a labelled file: learning curves of each strategy against random.
    Simulate(cli::simulate::SimulateArgs),
    /// The loop policy of a taxonomy (retrain, compare, promote, score, compose by
    /// itself) and its cycles.
    #[command(subcommand)]
    Loop(cli::loop_policy::LoopCommand),
    /// List model versions, promote one (behind the F1 gate) or roll back.
    #[command(subcommand)]
    Model(cli::active::ModelCommand),
    /// List, inspect and cancel jobs.
    #[command(subcommand)]
    Job(cli::active::JobCommand),
    /// Measure performance.
    #[command(subcommand)]
    Bench(cli::bench::BenchCommand),
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
        // These make their own scratch databases, or work on disk only.
        Command::Bench(cmd) => cli::bench::run(&settings, cmd).await,
        Command::Base(cmd) => cli::bases::run(&settings, cmd).await,
        Command::Pretrain(args) => cli::pretrain::pretrain(&settings, args).await,
        command => {
            let pool = reviewloop::store::connect(&settings.database_url).await?;
            run(command, &settings, pool).await
        }
    }
}

async fn run(command: Command, settings: &Settings, pool: sqlx::PgPool) -> anyhow::Result<()> {
    match command {
        Command::Serve(args) => cli::serve::serve(pool, settings, args).await,
        Command::Migrate => {
            eprintln!("database is up to date");
            Ok(())
        }
        Command::Import(args) => cli::data::import(&pool, settings, args).await,
        Command::Export(args) => cli::data::export(&pool, args).await,
        Command::Taxonomy(cmd) => cli::data::taxonomy(&pool, cmd).await,
        Command::Round(cmd) => cli::rounds::round(&pool, cmd).await,
        Command::User(cmd) => cli::users::user(&pool, cmd).await,
        Command::Apikey(cmd) => cli::api_keys::run(&pool, cmd).await,
        Command::Train(args) => cli::models::train(&pool, settings, args).await,
        Command::Quantize(args) => cli::lighter::quantize(&pool, settings, args).await,
        Command::Distill(args) => cli::lighter::distill(&pool, settings, args).await,
        Command::Eval(args) => cli::models::eval(&pool, settings, args).await,
        Command::Analyze(args) => cli::models::analyze(&pool, settings, args).await,
        Command::Score(args) => cli::active::score(&pool, settings, args).await,
        Command::Worker(args) => cli::active::worker(&pool, settings, args).await,
        Command::Job(cmd) => cli::active::job(&pool, cmd).await,
        Command::Model(cmd) => cli::active::model(&pool, settings, cmd).await,
        Command::Loop(cmd) => cli::loop_policy::run(&pool, settings, cmd).await,
        Command::Agreement(args) => cli::audit::agreement(&pool, args).await,
        Command::Audit(args) => cli::audit::audit(&pool, settings, args).await,
        Command::Simulate(args) => cli::simulate::simulate(&pool, settings, args).await,
        Command::Bench(_) | Command::Base(_) | Command::Pretrain(_) => {
            unreachable!("handled before connecting")
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::Cli;

    fn help(path: &[&str]) -> String {
        let mut command = Cli::command();
        // Global options reach the subcommands when the command is built.
        command.build();
        let mut current = &mut command;
        for name in path {
            current = current.find_subcommand_mut(name).expect("a subcommand");
        }
        current.render_long_help().to_string()
    }

    #[test]
    fn only_serve_shows_the_web_apps_limits() {
        let serve = help(&["serve"]);
        assert!(serve.contains("--api-max-cost") && serve.contains("--promotion-margin"), "{serve}");
        for path in [&["import"][..], &["train"], &["round", "new"], &["bench", "annotate"]] {
            let text = help(path);
            assert!(!text.contains("--api-") && !text.contains("--max-upload-mb"), "{path:?}:\n{text}");
            assert!(text.contains("--database-url"), "global options stay everywhere: {path:?}");
        }
    }
}
