//! `reviewloop train`: from the current labels in PostgreSQL to a model version (a
//! keyword model and a sentiment model) on disk and in `model_versions`.

use crate::storage::Storage;
use std::path::PathBuf;

use candle_core::DType;
use candle_nn::{VarBuilder, VarMap};
use serde::Serialize;
use serde_json::json;
use sqlx::PgPool;
use tokenizers::Tokenizer;

use super::data::{self, LabelledText};
use super::metrics::{self, Report};
use super::pretrain::{pretrain, Maskable, MaskedLm};
use super::settings::{EncoderSize, TrainSettings};
pub(super) use super::stages::train_model;
use super::{Dataset, FitOptions, FitReport, Progress, Targets};
use crate::model::classifier::{initialise, Classifier};
use crate::model::encoder::Config;
use crate::model::folder::ModelFolder;
use crate::model::inputs;
use crate::model::outputs::{argmax, probabilities};
use crate::model::version::{Labels, ModelFiles, PendingVersion};
use crate::model::{self, vocab};
use crate::split::Split;
use crate::store::{self, taxonomies};
use crate::taxonomy::Taxonomy;

/// The offline default encoder: small enough to train on two CPU cores in minutes,
/// large enough for short reviews. 4 layers × 256 hidden (about 1/20 of base size in
/// compute), 256 tokens (reviews are short; longer ones are cut).
pub fn small_config(vocab_size: usize) -> Config {
    sized_config(vocab_size, EncoderSize { layers: 4, hidden: 256 })
}

pub fn sized_config(vocab_size: usize, size: EncoderSize) -> Config {
    Config {
        vocab_size,
        hidden_size: size.hidden,
        num_hidden_layers: size.layers,
        num_attention_heads: (size.hidden / 64).max(1),
        intermediate_size: size.hidden * 4,
        hidden_act: "gelu".into(),
        hidden_dropout_prob: 0.1,
        attention_probs_dropout_prob: 0.1,
        max_position_embeddings: 258,
        type_vocab_size: 1,
        layer_norm_eps: 1e-5,
        pad_token_id: 1,
        bos_token_id: 0,
        eos_token_id: 2,
        model_type: "roberta".into(),
        embedding_size: None,
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ModelOutcome {
    pub fit: FitReport,
    pub validation: Option<Report>,
    pub test: Option<Report>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TrainOutcome {
    pub name: String,
    pub dir: PathBuf,
    pub keyword: ModelOutcome,
    pub sentiment: ModelOutcome,
    pub version_ids: (i64, i64),
    /// What storing its files for every host took (none: kept on this host).
    pub stored: Option<crate::storage::Stored>,
}

/// The encoder every model of this run starts from.
pub(super) struct Base {
    pub(super) config: Config,
    pub(super) tokenizer: Tokenizer,
    weights: Weights,
    label: String,
}

impl Base {
    /// A freshly initialised encoder of `config` reading `tokenizer`'s ids.
    pub(super) fn fresh(config: Config, tokenizer: Tokenizer, label: String) -> Base {
        Base { config, tokenizer, weights: Weights::Initial, label }
    }

    /// The pretrained encoder's weights, when the run starts from one.
    pub(super) fn weights_path(&self) -> Option<&std::path::Path> {
        self.weights.path()
    }
}

/// Where a base's encoder weights come from.
enum Weights {
    /// Fresh, seeded initialisation.
    Initial,
    /// A pretrained checkpoint on disk.
    File(PathBuf),
    /// Weights this run made (pre-training, the keyword model), removed with the base.
    Scratch(TempWeights),
}

impl Weights {
    fn path(&self) -> Option<&std::path::Path> {
        match self {
            Weights::Initial => None,
            Weights::File(path) => Some(path),
            Weights::Scratch(TempWeights(path)) => Some(path),
        }
    }
}

/// Weights in a temporary file, removed when dropped.
struct TempWeights(tempfile::TempPath);

impl TempWeights {
    fn save(varmap: &VarMap) -> anyhow::Result<Self> {
        let path = tempfile::Builder::new()
            .prefix("reviewloop-")
            .suffix(".safetensors")
            .tempfile()?
            .into_temp_path();
        varmap.save(&path)?;
        Ok(TempWeights(path))
    }
}

/// `[MASK]` (klue, the offline tokenizer) or `<mask>` (English RoBERTa).
pub(super) fn mask_token(tokenizer: &Tokenizer) -> u32 {
    tokenizer.token_to_id("[MASK]").or_else(|| tokenizer.token_to_id("<mask>")).unwrap_or(4)
}

pub(super) async fn base(
    pool: &PgPool,
    settings: &TrainSettings,
    taxonomy: &Taxonomy,
    progress: &mut (dyn FnMut(&str, &Progress) + Send),
) -> anyhow::Result<Base> {
    if let Some(name) = &settings.base {
        let bases_dir = settings.bases_dir.as_ref().unwrap_or(&settings.models_dir);
        let dir = match &settings.storage {
            // A worker on another host than the one that made the base fetches it.
            Some(location) => crate::bases::fetch(&Storage::open(pool, location)?, bases_dir, name).await?,
            None => crate::bases::resolve(bases_dir, name)?,
        };
        let folder = ModelFolder::open(&dir)?;
        let label = format!("base {name}");
        return Ok(Base {
            config: folder.config.clone(),
            weights: Weights::File(folder.weights_path()),
            tokenizer: folder.tokenizer,
            label,
        });
    }
    let texts = data::all_texts(pool, taxonomy.id).await?;
    let tokenizer = vocab::train_wordpiece(texts.iter().map(String::as_str), settings.vocab_size)
        .map_err(|e| anyhow::anyhow!("tokenizer training failed: {e}"))?;
    let vocab = tokenizer.get_vocab_size(true);
    let config = match settings.encoder_size {
        Some(size) => sized_config(vocab, size),
        None => small_config(vocab),
    };
    if settings.pretrain_epochs == 0 {
        return Ok(Base { config, tokenizer, weights: Weights::Initial, label: "offline-small".into() });
    }
    let truncated = inputs::truncating(&tokenizer, config.max_tokens());
    let rows: Vec<Vec<u32>> = texts.iter().map(|t| inputs::encode_review(&truncated, t)).collect();
    let varmap = VarMap::new();
    let mlm = MaskedLm::load(VarBuilder::from_varmap(&varmap, DType::F32, &model::device()), &config)?;
    initialise(&varmap, settings.fit.seed)?;
    let options = FitOptions { epochs: settings.pretrain_epochs, ..settings.fit.clone() };
    let maskable = Maskable::of(&tokenizer);
    pretrain(&mlm, &varmap, &rows, &maskable, &options, &mut |p| progress("pretrain", p))?;
    let weights = Weights::Scratch(TempWeights::save(&varmap)?);
    let label = format!("offline-small + MLM {} epochs on {} reviews", settings.pretrain_epochs, rows.len());
    Ok(Base { config, tokenizer, weights, label })
}

pub async fn run(
    pool: &PgPool,
    settings: &TrainSettings,
    progress: &mut (dyn FnMut(&str, &Progress) + Send),
) -> anyhow::Result<TrainOutcome> {
    let taxonomy = taxonomies::load_by_name(pool, &settings.taxonomy).await?;
    let (snapshot_id, up_to) = match settings.snapshot {
        Some(id) => (id, store::models::snapshot_cutoff(pool, taxonomy.id, id).await?),
        None => store::models::snapshot(pool, taxonomy.id, None).await?,
    };
    let items = data::labelled(pool, &taxonomy, Some(up_to)).await?;
    anyhow::ensure!(items.len() >= 10, "only {} labelled reviews: label more before training", items.len());
    let base = base(pool, settings, &taxonomy, progress).await?;
    train_from(pool, settings, &taxonomy, &items, &base, snapshot_id, progress).await
}

async fn train_from(
    pool: &PgPool,
    settings: &TrainSettings,
    taxonomy: &Taxonomy,
    items: &[LabelledText],
    base: &Base,
    snapshot_id: i64,
    progress: &mut (dyn FnMut(&str, &Progress) + Send),
) -> anyhow::Result<TrainOutcome> {
    let tokenizer = inputs::truncating(&base.tokenizer, base.config.max_tokens());
    let split = |wanted: &[Split]| -> Vec<&LabelledText> {
        items.iter().filter(|i| wanted.contains(&i.split)).collect()
    };
    let (train, valid) = if settings.all_data {
        (split(&[Split::Train, Split::Validation]), Vec::new())
    } else {
        (split(&[Split::Train]), split(&[Split::Validation]))
    };
    let test = split(&[Split::Test]);
    let name =
        settings.name.clone().unwrap_or_else(|| chrono::Utc::now().format("v%Y%m%d-%H%M%S").to_string());
    let version = PendingVersion::start(&settings.models_dir, &taxonomy.name, &name)?;

    let k = taxonomy.keywords.len();
    let keyword_sets = [&train, &valid, &test].map(|s| data::keyword_dataset(s, &tokenizer, k));
    let (kw_model, kw_vars, kw_fit) = train_model(base, settings, k, &keyword_sets, "keyword", progress)?;
    let thresholds = tune_thresholds(&kw_model, &keyword_sets[1], k, settings.fit.batch_size)?;
    let keyword_names: Vec<String> = taxonomy.keywords.iter().map(|k| k.name.clone()).collect();
    let kw_report =
        |d: &Dataset| keyword_report(&kw_model, d, &thresholds, &keyword_names, settings.fit.batch_size);
    let keyword = ModelOutcome {
        fit: kw_fit,
        validation: kw_report(&keyword_sets[1])?,
        test: kw_report(&keyword_sets[2])?,
    };

    let n = (taxonomy.scale_max - taxonomy.scale_min + 1) as usize;
    let sentiment_sets = [&train, &valid, &test]
        .map(|s| data::sentiment_dataset(s, &tokenizer, taxonomy, settings.sentiment_input));
    let (st_model, st_vars, st_fit) = if settings.sentiment_from_keyword {
        // The keyword model's encoder has already learnt these reviews' words.
        let from_keyword = Base {
            weights: Weights::Scratch(TempWeights::save(&kw_vars)?),
            label: format!("{} → keyword encoder", base.label),
            config: base.config.clone(),
            tokenizer: base.tokenizer.clone(),
        };
        train_model(&from_keyword, settings, n, &sentiment_sets, "sentiment", progress)?
    } else {
        train_model(base, settings, n, &sentiment_sets, "sentiment", progress)?
    };
    let level_names: Vec<String> = taxonomy.levels().map(|l| l.to_string()).collect();
    let st_report = |d: &Dataset| sentiment_report(&st_model, d, &level_names, settings.fit.batch_size);
    let sentiment = ModelOutcome {
        fit: st_fit,
        validation: st_report(&sentiment_sets[1])?,
        test: st_report(&sentiment_sets[2])?,
    };

    let labels = |kind: &str, thresholds: Vec<f32>| Labels {
        kind: kind.into(),
        taxonomy: taxonomy.name.clone(),
        keywords: keyword_names.clone(),
        thresholds,
        scale_min: taxonomy.scale_min,
        scale_max: taxonomy.scale_max,
        sentiment_input: (kind == "sentiment").then_some(settings.sentiment_input),
        pooling: settings.pooling,
        lexical_buckets: settings.lexical_buckets(),
        frozen_layers: settings.fit.frozen.within(base.config.num_hidden_layers).layers,
    };
    let card = |kind: &str, outcome: &ModelOutcome| {
        model_card(kind, &name, taxonomy, &base.label, settings, outcome, items.len())
    };
    let kw_metrics = serde_json::to_value(&keyword)?;
    let st_metrics = serde_json::to_value(&sentiment)?;
    let kw_labels = labels("keyword", thresholds.clone());
    let st_labels = labels("sentiment", Vec::new());
    version.write(&ModelFiles {
        subdir: "keyword",
        varmap: &kw_vars,
        config: &base.config,
        tokenizer: &base.tokenizer,
        labels: &kw_labels,
        metrics: &kw_metrics,
        card: card("keyword", &keyword),
    })?;
    version.write(&ModelFiles {
        subdir: "sentiment",
        varmap: &st_vars,
        config: &base.config,
        tokenizer: &base.tokenizer,
        labels: &st_labels,
        metrics: &st_metrics,
        card: card("sentiment", &sentiment),
    })?;
    // Last point of no return: a job cancelled while its files were written leaves none.
    settings.fit.cancel.check()?;
    let dir = version.commit()?;
    let recorded = Recorded {
        name: &name,
        dir: &dir,
        base: &base.label,
        snapshot_id,
        action: "model.train",
        storage: settings.storage.as_ref(),
    };
    let (version_ids, stored) =
        record(pool, taxonomy, &recorded, serde_json::to_value(settings)?, [&kw_metrics, &st_metrics])
            .await
            .inspect_err(|_| {
                // The database refused the version: take the folder away again.
                let _ = std::fs::remove_dir_all(&dir);
            })?;
    Ok(TrainOutcome { name, dir, keyword, sentiment, version_ids, stored })
}

pub(super) fn tune_thresholds(
    model: &Classifier,
    valid: &Dataset,
    k: usize,
    batch: usize,
) -> anyhow::Result<Vec<f32>> {
    if valid.is_empty() {
        return Ok(vec![0.5; k]);
    }
    let probs = probabilities(model, &valid.rows, true, batch)?;
    Ok(metrics::best_thresholds(&probs, &valid.truth_sets(), k))
}

pub fn keyword_report(
    model: &Classifier,
    data: &Dataset,
    thresholds: &[f32],
    names: &[String],
    batch: usize,
) -> anyhow::Result<Option<Report>> {
    if data.is_empty() {
        return Ok(None);
    }
    let probs = probabilities(model, &data.rows, true, batch)?;
    Ok(Some(metrics::multi_label(names, &data.truth_sets(), &metrics::decide(&probs, thresholds))))
}

pub fn sentiment_report(
    model: &Classifier,
    data: &Dataset,
    names: &[String],
    batch: usize,
) -> anyhow::Result<Option<Report>> {
    let Targets::SingleLabel(truth) = &data.targets else { unreachable!() };
    if data.is_empty() {
        return Ok(None);
    }
    let probs = probabilities(model, &data.rows, false, batch)?;
    let predicted: Vec<usize> = probs.iter().map(|p| argmax(p)).collect();
    let truth: Vec<usize> = truth.iter().map(|&c| c as usize).collect();
    Ok(Some(metrics::single_label(names, &truth, &predicted)))
}

/// A committed version folder about to get its rows in `model_versions`.
pub(super) struct Recorded<'a> {
    pub name: &'a str,
    pub dir: &'a std::path::Path,
    /// What the encoder started from (`base_encoder`).
    pub base: &'a str,
    pub snapshot_id: i64,
    /// The audit log's action.
    pub action: &'a str,
    /// Where the version's files are stored for every host; none: this host only.
    pub storage: Option<&'a crate::config::StorageLocation>,
}

/// Rows for the keyword and sentiment models of a version, its files in storage (when
/// asked) and the audit entry, in one transaction.
pub(super) async fn record(
    pool: &PgPool,
    taxonomy: &Taxonomy,
    version: &Recorded<'_>,
    params: serde_json::Value,
    [kw_metrics, st_metrics]: [&serde_json::Value; 2],
) -> anyhow::Result<((i64, i64), Option<crate::storage::Stored>)> {
    let Recorded { name, dir, base, snapshot_id, action, storage } = *version;
    let mut tx = pool.begin().await?;
    // The files first, in the same transaction: no host sees the version without them.
    let stored = match storage {
        Some(location) => {
            let storage = crate::storage::Storage::open(pool, location)?;
            let bundle = crate::storage::version_bundle(&taxonomy.name, name);
            let stored = storage.put(&mut tx, &bundle, dir).await?;
            tracing::info!(version = name, bytes = stored.bytes, seconds = stored.seconds, "version stored");
            Some(stored)
        }
        None => None,
    };
    let mut ids = Vec::new();
    for (kind, metrics) in [("keyword", kw_metrics), ("sentiment", st_metrics)] {
        // Relative to each host's data dir when stored; this host's own folder if not.
        let path = match stored {
            Some(_) => format!("{}/{name}/{kind}", taxonomy.name),
            None => std::path::absolute(dir.join(kind))?.display().to_string(),
        };
        let v = store::models::NewVersion {
            taxonomy_id: taxonomy.id,
            kind,
            name,
            path: &path,
            base_encoder: base,
            snapshot_id,
            params: params.clone(),
            metrics: metrics.clone(),
            bundle_id: stored.as_ref().map(|s| s.bundle_id),
        };
        ids.push(store::models::insert(&mut tx, &v).await?);
    }
    let details = json!({"ids": ids, "stored": stored});
    store::audit::record(&mut *tx, None, action, &format!("version:{name}"), details).await?;
    tx.commit().await?;
    Ok(((ids[0], ids[1]), stored))
}

fn model_card(
    kind: &str,
    name: &str,
    taxonomy: &Taxonomy,
    base: &str,
    settings: &TrainSettings,
    outcome: &ModelOutcome,
    labelled: usize,
) -> String {
    let table = |r: &Option<Report>| r.as_ref().map(metrics::table).unwrap_or_else(|| "(none)\n".into());
    format!(
        "# {kind} model {name}\n\nTaxonomy `{}` ({} keywords, levels {}…{}). Base encoder: {base}.\n\
         Trained on the current labels of {labelled} reviews (split by review: train / validation / test), \
         seed {}, {} epochs at most, batch {}, learning rate {}, best epoch {}. Lexical part: {} \
         hashed character n-grams weighed by TF-IDF (0: none; when present it is trained first, \
         alone, for {} epochs at most, and the epochs count on through the encoder's).\n\n\
         ## Validation\n```\n{}```\n\n## Test\n```\n{}```\n",
        taxonomy.name,
        taxonomy.keywords.len(),
        taxonomy.scale_min,
        taxonomy.scale_max,
        settings.fit.seed,
        settings.fit.epochs,
        settings.fit.batch_size,
        settings.fit.learning_rate,
        outcome.fit.best_epoch,
        settings.lexical_buckets(),
        settings.fit.lexical_epochs,
        table(&outcome.validation),
        table(&outcome.test),
    )
}
