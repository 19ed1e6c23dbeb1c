//! Scoring (`reviewloop score`, the `score` job): the serving models over the pool in
//! batches, storing what the selection strategies need. Each batch is committed on its
//! own, so a crash loses at most one batch and a rerun goes on where it stopped.
//! Clustering runs over all the version's embeddings once every review is scored.

use std::path::PathBuf;

use serde::Serialize;
use serde_json::json;
use sqlx::PgPool;

use crate::analyze::{Analyzer, Scored};
use crate::cancel::Cancel;
use crate::select::{clusters, strategies};
use crate::split::Split;
use crate::store::predictions::{self, Prediction};
use crate::store::{models, taxonomies};
use crate::taxonomy::Taxonomy;
use crate::text::rarity::{self, RarityModel};
use crate::train::data;

#[derive(Debug, Clone)]
pub struct ScoreOptions {
    pub taxonomy: String,
    pub models_dir: PathBuf,
    /// Forget the version's earlier scores and score every review again.
    pub rescore: bool,
    pub batch_size: usize,
    /// k for k-means; about √(n/2) when absent.
    pub clusters: Option<usize>,
    pub seed: u64,
    pub cancel: Cancel,
}

impl ScoreOptions {
    pub fn new(taxonomy: &str, models_dir: PathBuf) -> Self {
        ScoreOptions {
            taxonomy: taxonomy.to_string(),
            models_dir,
            rescore: false,
            batch_size: 256,
            clusters: None,
            seed: 42,
            cancel: Cancel::default(),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ScoreSummary {
    pub version: String,
    pub version_id: i64,
    /// Reviews scored by this run.
    pub scored: usize,
    /// Reviews of the taxonomy the version has scored, of all.
    pub covered: i64,
    pub total: i64,
    /// k of the clustering pass, when it ran.
    pub clusters: Option<usize>,
}

/// Vocabulary of the rarity model (a soft limit: small training sets get fewer pieces).
const RARITY_VOCABULARY: usize = 8000;

pub async fn run(
    pool: &PgPool,
    options: &ScoreOptions,
    progress: &mut (dyn FnMut(i64, i64) + Send),
) -> anyhow::Result<ScoreSummary> {
    let taxonomy = taxonomies::load_by_name(pool, &options.taxonomy).await?;
    let version = models::current_keyword(pool, taxonomy.id).await?.ok_or_else(|| {
        anyhow::anyhow!("no trained model for `{}` yet: run `reviewloop train` first", taxonomy.name)
    })?;
    let analyzer = Analyzer::load(&version.version_dir())?;
    let rarity = rarity_model(pool, &taxonomy, options).await?;
    let labels = label_counts(pool, &taxonomy, &analyzer.keyword.labels.keywords).await?;
    if options.rescore {
        predictions::clear(pool, taxonomy.id, version.id).await?;
    }
    let (mut covered, total) = predictions::coverage(pool, taxonomy.id, version.id).await?;
    progress(covered, total);
    let mut scored = 0;
    loop {
        options.cancel.check()?;
        let batch = predictions::unscored(pool, taxonomy.id, version.id, options.batch_size.max(1)).await?;
        if batch.is_empty() {
            break;
        }
        let texts: Vec<String> = batch.iter().map(|(_, t)| t.clone()).collect();
        let results = analyzer.score_many(&texts)?;
        let rows: Vec<Prediction> = batch
            .iter()
            .zip(results)
            .map(|((id, text), s)| prediction(&analyzer, &rarity, &labels, *id, text, s))
            .collect();
        predictions::insert_batch(pool, version.id, &rows).await?;
        scored += rows.len();
        covered += rows.len() as i64;
        progress(covered, total);
    }
    let clusters = if predictions::needs_clustering(pool, version.id).await? {
        Some(cluster(pool, version.id, options).await?)
    } else {
        None
    };
    Ok(ScoreSummary { version: version.name, version_id: version.id, scored, covered, total, clusters })
}

fn prediction(
    analyzer: &Analyzer,
    rarity: &RarityModel,
    labels: &[usize],
    review_id: i64,
    text: &str,
    s: Scored,
) -> Prediction {
    let keywords = &analyzer.keyword.labels.keywords;
    let thresholds = &analyzer.keyword.labels.thresholds;
    let distributions: Vec<Vec<f32>> = s.sentiments.iter().map(|(_, d)| d.clone()).collect();
    let sentiment: serde_json::Map<String, serde_json::Value> =
        s.sentiments.iter().map(|(k, d)| (keywords[*k].clone(), json!(d))).collect();
    Prediction {
        review_id,
        boundary: strategies::keyword_boundary(&s.probabilities, thresholds),
        balance: strategies::class_balance(&s.probabilities, thresholds, labels),
        boundary_keyword: strategies::least_certain_keyword(&s.probabilities, thresholds).map(|k| k as i16),
        uncertainty: strategies::sentiment_uncertainty(&distributions),
        rarity: rarity.score(text),
        keyword_probs: s.probabilities,
        sentiment: serde_json::Value::Object(sentiment),
        embedding: s.embedding,
    }
}

/// Current labels per keyword of the model (by name), for class balancing: what the
/// next round should make less scarce.
async fn label_counts(pool: &PgPool, taxonomy: &Taxonomy, keywords: &[String]) -> anyhow::Result<Vec<usize>> {
    // The model's output index of each of the taxonomy's keywords.
    let output: Vec<Option<usize>> =
        taxonomy.keywords.iter().map(|k| keywords.iter().position(|n| *n == k.name)).collect();
    let mut counts = vec![0usize; keywords.len()];
    for item in data::labelled(pool, taxonomy, None).await? {
        for i in item.labels.iter().filter_map(|(k, _)| output[*k]) {
            counts[i] += 1;
        }
    }
    Ok(counts)
}

/// The taxonomy's rarity model, trained on its first training set the first time.
async fn rarity_model(
    pool: &PgPool,
    taxonomy: &Taxonomy,
    options: &ScoreOptions,
) -> anyhow::Result<RarityModel> {
    let path = rarity::model_path(&options.models_dir, &taxonomy.name);
    if !path.exists() {
        let cutoff = models::first_snapshot(pool, taxonomy.id).await?;
        let items = data::labelled(pool, taxonomy, cutoff).await?;
        let texts = items.iter().filter(|i| i.split == Split::Train).map(|i| i.text.as_str());
        rarity::train(texts, &path, RARITY_VOCABULARY)?;
    }
    RarityModel::load(&path)
}

/// k-means over every embedding of the version; stores clusters and outlier scores.
async fn cluster(pool: &PgPool, version_id: i64, options: &ScoreOptions) -> anyhow::Result<usize> {
    let (ids, embeddings) = predictions::embeddings(pool, version_id).await?;
    let k = options.clusters.unwrap_or_else(|| clusters::default_clusters(ids.len()));
    let seed = options.seed;
    let result = tokio::task::spawn_blocking(move || clusters::cluster(&embeddings, k, seed)).await??;
    let assigned: Vec<i32> = result.clusters.iter().map(|&c| c as i32).collect();
    predictions::set_clusters(pool, version_id, &ids, &assigned, &result.outlier_scores).await?;
    Ok(k)
}
