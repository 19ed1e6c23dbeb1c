//! `reviewloop audit`, `agreement` and `bench audit`: label quality for people.

use reviewloop::audit::power::{self, PowerOptions};
use reviewloop::config::Settings;
use reviewloop::names::SafeName;
use reviewloop::stats::Interval;
use reviewloop::store;
use reviewloop::train::settings::{EncoderSize, TrainSettings};

#[derive(clap::Args)]
pub struct AuditArgs {
    #[arg(long, default_value = "fashion")]
    taxonomy: String,
    #[arg(long, default_value_t = 5)]
    folds: usize,
    /// Epochs of each fold's models (no validation split: every label is scored).
    #[arg(long, default_value_t = 10)]
    epochs: usize,
    /// A base under <data dir>/base/ for the fold models; the offline small encoder
    /// when absent.
    #[arg(long)]
    base: Option<SafeName>,
    #[command(flatten)]
    fast: super::FastMode,
    /// Queue an audit job for a worker instead of auditing here.
    #[arg(long)]
    queue: bool,
}

pub async fn audit(pool: &sqlx::PgPool, settings: &Settings, args: AuditArgs) -> anyhow::Result<()> {
    if args.queue {
        let payload = serde_json::json!({
            "taxonomy": args.taxonomy, "folds": args.folds, "epochs": args.epochs, "base": args.base,
            "fast": args.fast.fast.then_some(args.fast.trained_layers),
        });
        let mut job = reviewloop::jobs::NewJob::new("audit", payload);
        job.dedup_key = Some(format!("audit:{}", args.taxonomy));
        let mut conn = pool.acquire().await?;
        let id = reviewloop::store::jobs::enqueue(&mut conn, &job).await?;
        println!("job {id} queued");
        return Ok(());
    }
    let mut train = TrainSettings::starting_from(&args.taxonomy, settings.data_dir.clone(), args.base);
    train.fit.epochs = args.epochs;
    args.fast.apply(&mut train)?;
    let summary = reviewloop::audit::finder::run(pool, &train, args.folds, &mut |stage, p| {
        if p.step == 1 {
            eprintln!("{stage}: {} steps", p.total_steps);
        }
    })
    .await?;
    println!("{} labelled reviews audited; {} new suspects", summary.reviews, summary.added);
    println!("{:<20} {:>8} {:>10}", "keyword", "keyword", "sentiment");
    for (name, keyword, sentiment) in summary.per_keyword.iter().filter(|k| k.1 + k.2 > 0) {
        println!("{name:<20} {keyword:>8} {sentiment:>10}");
    }
    Ok(())
}

#[derive(clap::Args)]
pub struct AgreementArgs {
    #[arg(long, default_value = "fashion")]
    taxonomy: String,
}

pub async fn agreement(pool: &sqlx::PgPool, args: AgreementArgs) -> anyhow::Result<()> {
    let taxonomy = args.taxonomy.as_str();
    use reviewloop::audit::agreement;
    let taxonomy = store::taxonomies::load_by_name(pool, taxonomy).await?;
    let answers = agreement::answers(pool, taxonomy.id).await?;
    let ids: Vec<i64> = taxonomy.keywords.iter().map(|k| k.id).collect();
    let show = |x: Option<f64>| x.map(|v| format!("{v:.3}")).unwrap_or_else(|| "–".into());
    println!("{} reviews labelled by two or more annotators", answers.len());
    println!("{:<20} {:>14} {:>14} {:>12}", "keyword", "presence κ", "presence α", "level α");
    for (k, a) in taxonomy.keywords.iter().zip(agreement::per_keyword(&ids, &answers)) {
        println!(
            "{:<20} {:>14} {:>14} {:>12}",
            k.name,
            show(a.presence_kappa),
            show(a.presence_alpha),
            show(a.level_alpha)
        );
    }
    Ok(())
}

#[derive(clap::Args)]
pub struct PowerArgs {
    /// Labelled file (all of it is audited).
    #[command(flatten)]
    file: super::DataFile,
    /// Keyword whose labels are flipped (default: the most frequent).
    #[arg(long)]
    keyword: Option<String>,
    /// Share of the reviews whose keyword is flipped, half removed, half added.
    #[arg(long, default_value_t = 0.05)]
    rate: f64,
    /// First seed (which reviews are flipped, and the fold models' training).
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// Seeds run (--seed, --seed + 1, …); each figure is then given with its 95 %
    /// interval over them.
    #[arg(long, default_value_t = 1)]
    seeds: usize,
    #[arg(long, default_value_t = 5)]
    folds: usize,
    /// Keyword models trained per fold with successive seeds, their probabilities averaged.
    #[arg(long, default_value_t = 1)]
    repeats: usize,
    /// Nearest reviews (by the base's sentence vectors) whose labels vote beside the fold
    /// models; 0 for the fold models alone. Needs --base.
    #[arg(long, default_value_t = reviewloop::audit::neighbours::NEIGHBOURS)]
    neighbours: usize,
    /// Write every review's out-of-sample probability, label and planted flip (JSON lines,
    /// one file per seed: FILE with the seed before its extension when --seeds > 1).
    #[arg(long)]
    scores: Option<std::path::PathBuf>,
    #[arg(long, default_value_t = 10)]
    epochs: usize,
    #[arg(long, default_value_t = 16)]
    train_batch: usize,
    /// Encoder size of the fold models (the audit's own default is 4 × 256).
    #[arg(long, default_value_t = 4)]
    layers: usize,
    #[arg(long, default_value_t = 256)]
    hidden: usize,
    /// Masked-language-model epochs over all the file's texts before the folds train.
    #[arg(long, default_value_t = 0)]
    pretrain_epochs: usize,
    /// A base under <data dir>/base/ for the fold models (--layers, --hidden and
    /// --pretrain-epochs then do not apply).
    #[arg(long)]
    base: Option<SafeName>,
    #[command(flatten)]
    fast: super::FastMode,
}

/// Plants label errors in a file and reports how many the audit finds.
pub async fn power(settings: &Settings, args: PowerArgs) -> anyhow::Result<()> {
    let taxonomy = args.file.taxonomy();
    let mut train = TrainSettings::starting_from(&taxonomy, settings.data_dir.clone(), args.base.clone());
    train.fit.epochs = args.epochs;
    train.fit.batch_size = args.train_batch.max(1);
    train.encoder_size = Some(EncoderSize { layers: args.layers, hidden: args.hidden });
    train.pretrain_epochs = args.pretrain_epochs;
    args.fast.apply(&mut train)?;
    let mut runs = Vec::new();
    for seed in args.seed..args.seed + args.seeds.max(1) as u64 {
        train.fit.seed = seed;
        let options = PowerOptions {
            data: &args.file.data,
            format: args.file.format,
            keyword: args.keyword.clone(),
            rate: args.rate,
            seed,
            folds: args.folds,
            repeats: args.repeats,
            neighbours: args.neighbours,
            train: train.clone(),
        };
        let started = std::time::Instant::now();
        let p = power::measure(&settings.database_url, &options).await?;
        println!(
            "{}: {} of {} reviews flipped (seed {seed}); audit raised {} suspects for it",
            p.keyword, p.flipped, p.items, p.raised
        );
        println!(
            "top {}: {} flipped found — precision {:.3}, recall {:.3} (removed {:.3}, added {:.3}); {:.0} s",
            p.top,
            p.found,
            p.precision,
            p.recall,
            p.recall_removed,
            p.recall_added,
            started.elapsed().as_secs_f64()
        );
        println!("{}", serde_json::to_string(&p)?);
        if let Some(path) = &args.scores {
            let path = if args.seeds > 1 { per_seed(path, seed) } else { path.clone() };
            write_scores(&path, &p.scored)?;
        }
        runs.push(p);
    }
    if runs.len() > 1 {
        let over = |f: fn(&power::Power) -> f64| Interval::of(&runs.iter().map(f).collect::<Vec<_>>());
        println!(
            "over {} seeds (95 % intervals): precision {}, recall {} (removed {}, added {})",
            runs.len(),
            over(|p| p.precision).show(3),
            over(|p| p.recall).show(3),
            over(|p| p.recall_removed).show(3),
            over(|p| p.recall_added).show(3)
        );
    }
    Ok(())
}

/// `scores.jsonl` → `scores.7.jsonl`.
fn per_seed(path: &std::path::Path, seed: u64) -> std::path::PathBuf {
    let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    let name = match path.extension() {
        Some(ext) => format!("{stem}.{seed}.{}", ext.to_string_lossy()),
        None => format!("{stem}.{seed}"),
    };
    path.with_file_name(name)
}

fn write_scores(path: &std::path::Path, scored: &[power::Scored]) -> anyhow::Result<()> {
    use std::io::Write;
    let file =
        std::fs::File::create(path).map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
    let mut out = std::io::BufWriter::new(file);
    for s in scored {
        writeln!(out, "{}", serde_json::to_string(s)?)?;
    }
    out.flush()?;
    Ok(())
}
