//! `reviewloop simulate`: learning curves of the selection strategies on a labelled file.

use std::path::PathBuf;

use anyhow::Context;
use serde_json::json;

use reviewloop::config::Settings;
use reviewloop::simulate::{self, curves, SimulateOptions};
use reviewloop::train::settings::{EncoderSize, TrainSettings};

#[derive(clap::Args)]
pub struct SimulateArgs {
    /// Labelled file whose labels are hidden and revealed round by round.
    #[command(flatten)]
    file: super::DataFile,
    /// Held-out labelled file; default: the fixed test split (10 %, by content hash) of --data.
    #[arg(long, conflicts_with = "holdout")]
    test: Option<PathBuf>,
    /// Keep N sentences of --data out of the pool as the test set instead (the first N
    /// by content hash: the same N on every run and machine).
    #[arg(long)]
    holdout: Option<usize>,
    /// Comma-separated: random, mixed, or strategy names (keyword-boundary,
    /// sentiment-uncertainty, rare-tokens, cluster-outliers, class-balance, keyword-quota,
    /// keyword-neighbours, keyword-anchors), each alone or as quotas joined by `+`
    /// (`keyword-quota=0.5+random=0.5`), `+diverse` for the diversity step, `>` to hand
    /// over to the next composition after a round (`keyword-anchors>class-balance`); or
    /// oracle-balance, a bound that reads the hidden gold labels to even out keywords.
    #[arg(long, value_delimiter = ',', default_value = "random,mixed")]
    strategy: Vec<String>,
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// Reviews labelled per round.
    #[arg(long, default_value_t = 100)]
    batch: usize,
    /// Size of the random first labelled set (default: --batch).
    #[arg(long)]
    initial: Option<usize>,
    #[arg(long, default_value_t = 3)]
    seeds: usize,
    /// The first seed: `--first-seed 4 --seeds 2` adds seeds 4 and 5 to a run of 3.
    #[arg(long, default_value_t = 1)]
    first_seed: u64,
    #[arg(long)]
    out: PathBuf,
    /// Training epochs per round (early stopping usually ends sooner).
    #[arg(long, default_value_t = 30)]
    epochs: usize,
    #[arg(long, default_value_t = 6)]
    patience: usize,
    /// Training batch: small, so that a few hundred labels still give enough steps.
    #[arg(long, default_value_t = 8)]
    train_batch: usize,
    /// Fewest validation reviews whose score may discard the encoder's training stage
    /// for the lexical part's alone (default 0: validation always decides). At a few
    /// hundred labels the validation split holds a few dozen reviews.
    #[arg(long, default_value_t = 0)]
    validation_floor: usize,
    /// Encoder size of the simulated models: many rounds must fit in minutes on a CPU.
    #[arg(long, default_value_t = 2)]
    layers: usize,
    #[arg(long, default_value_t = 128)]
    hidden: usize,
    #[arg(long, default_value_t = 4000)]
    vocab_size: usize,
    /// Fine-tune a base under <data dir>/base/ each round instead of training the small
    /// encoder (--layers, --hidden and --vocab-size then do not apply).
    #[arg(long)]
    base: Option<reviewloop::names::SafeName>,
    #[command(flatten)]
    fast: super::FastMode,
}

pub async fn simulate(pool: &sqlx::PgPool, settings: &Settings, args: SimulateArgs) -> anyhow::Result<()> {
    let taxonomy = args.file.taxonomy();
    let mut train = TrainSettings::starting_from(&taxonomy, settings.data_dir.clone(), args.base);
    train.fit.epochs = args.epochs;
    train.fit.patience = args.patience;
    train.fit.batch_size = args.train_batch.max(1);
    train.vocab_size = args.vocab_size;
    train.encoder_size = Some(EncoderSize { layers: args.layers, hidden: args.hidden });
    args.fast.apply(&mut train)?;
    train.fit.validation_floor = args.validation_floor;
    let options = SimulateOptions {
        data: args.file.data,
        format: args.file.format,
        test: args.test,
        holdout: args.holdout,
        taxonomy,
        strategies: args.strategy,
        rounds: args.rounds,
        batch: args.batch,
        initial: args.initial.unwrap_or(args.batch),
        seeds: args.seeds.max(1),
        first_seed: args.first_seed,
        out: args.out,
        train,
    };
    let started = std::time::Instant::now();
    let points = simulate::run(&settings.database_url, &options, &mut |line| {
        eprintln!("[{:>6.0} s] {line}", started.elapsed().as_secs_f64());
    })
    .await?;
    let summary = curves::summarise(&points);
    let name = format!(
        "{} · {} · {}",
        options.data.file_name().and_then(|n| n.to_str()).unwrap_or("data"),
        options.strategies.join(", "),
        models_trained(&options.train)
    );
    let id = reviewloop::store::simulations::insert(
        pool,
        &name,
        &serde_json::to_value(&options)?,
        &json!(points),
        &json!(summary),
    )
    .await
    .context("storing the simulation for the engineer page")?;
    print_summary(&summary);
    println!("curves in {} (simulation {id} on the engineer page)", options.out.display());
    Ok(())
}

/// What each round trains, for the run's name on the engineer page.
fn models_trained(train: &TrainSettings) -> String {
    match (&train.base, train.fit.frozen.layers) {
        (Some(base), 0) => format!("{base} fine-tuned"),
        (Some(base), frozen) => format!("{base}, fast mode ({frozen} layers frozen)"),
        (None, _) => {
            let size = train.encoder_size.map(|s| format!("{} × {}", s.layers, s.hidden)).unwrap_or_default();
            format!("{size} from scratch")
        }
    }
}

/// Per metric: each strategy's final score and the labels it needed to reach random's
/// final score, each with its 95 % interval over seeds; then the run in one sentence.
fn print_summary(summary: &[curves::StrategySummary]) {
    for (m, metric) in curves::Metric::ALL.iter().enumerate() {
        println!("{}", metric.title());
        for s in summary {
            let Some(x) = s.metrics.get(m) else { continue };
            let reach = match (x.labels_to_match_random, x.share_of_random_labels) {
                _ if s.strategy == "random" => "the reference".to_string(),
                (Some(l), Some(r)) => format!(
                    "reaches random's final at {l:.0} labels ({:.0} %), per seed {} in {} of {}",
                    r * 100.0,
                    x.per_seed.show(0),
                    x.per_seed.n,
                    s.seeds
                ),
                _ => format!("never reaches random's final ({} of {} seeds do)", x.per_seed.n, s.seeds),
            };
            println!(
                "  {:<22} final {} at {:.0} labels; {reach}",
                s.strategy,
                x.final_score.show(3),
                s.final_labels
            );
        }
    }
    let best = curves::best_against_random(summary);
    if best.is_empty() {
        println!("no random baseline in this run: nothing to compare against");
    } else {
        println!("{}.", reviewloop::web::simulations::headline(&reviewloop::web::i18n::EN, &best));
    }
}
