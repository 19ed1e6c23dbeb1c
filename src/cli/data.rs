//! `import`, `export` and `taxonomy`: getting reviews and labels in and out.

use std::fs::File;
use std::io::{BufReader, BufWriter, Write};
use std::path::PathBuf;

use anyhow::Context;
use clap::Subcommand;
use indicatif::{ProgressBar, ProgressStyle};
use reviewloop::config::Settings;
use reviewloop::consensus::LabelSource;
use reviewloop::export::{ExportFormat, ExportOptions};
use reviewloop::import::{Format, ImportOptions, ImportSummary};
use reviewloop::store;

#[derive(clap::Args)]
pub struct ImportArgs {
    /// File to import.
    pub file: PathBuf,
    /// File format; guessed from the extension when omitted (NIKL needs `nikl-absa`).
    #[arg(long, value_enum)]
    pub format: Option<Format>,
    /// Taxonomy the reviews belong to (`nikl-absa` by default for that format, else `fashion`).
    #[arg(long)]
    pub taxonomy: Option<String>,
    /// Who made the labels in the file: human, silver (an external API's output) or gold.
    #[arg(long, default_value = "human", value_parser = ["human", "silver", "gold", "review"])]
    pub label_source: String,
    /// Mall for rows that name none.
    #[arg(long, default_value = "")]
    pub mall: String,
    /// Category for rows that name none.
    #[arg(long, default_value = "")]
    pub category: String,
    /// Rows written per transaction.
    #[arg(long, default_value_t = 1000)]
    pub batch_size: usize,
    /// Print every rejected row and warning (default: the first 20).
    #[arg(long)]
    pub all_problems: bool,
}

#[derive(clap::Args)]
pub struct ExportArgs {
    /// Output file; standard output when omitted.
    #[arg(long, short)]
    pub out: Option<PathBuf>,
    #[arg(long, value_enum, default_value = "jsonl")]
    pub format: ExportFormat,
    #[arg(long, default_value = "fashion")]
    pub taxonomy: String,
    /// Also export reviews without labels.
    #[arg(long)]
    pub include_unlabelled: bool,
}

#[derive(Subcommand)]
pub enum TaxonomyCommand {
    List,
    /// Add a taxonomy from a JSON file: {name, description, scale_min, scale_max, keywords: [{name, guideline}]}.
    Add {
        file: PathBuf,
    },
}

pub async fn import(pool: &sqlx::PgPool, settings: &Settings, args: ImportArgs) -> anyhow::Result<()> {
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

pub async fn export(pool: &sqlx::PgPool, args: ExportArgs) -> anyhow::Result<()> {
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

pub async fn taxonomy(pool: &sqlx::PgPool, cmd: TaxonomyCommand) -> anyhow::Result<()> {
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
