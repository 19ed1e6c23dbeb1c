//! Scoring (`reviewloop score`, the `score` and `score-chunk` jobs): the serving models
//! over the pool in batches, storing what the selection strategies need. Each batch is
//! committed on its own and only unscored reviews are read, so a crash loses at most
//! one batch, a rerun goes on where it stopped, and workers racing over the same ids
//! store each review once (the predictions' unique key). Clustering runs once every
//! review is scored, a page at a time (`cluster_version`).

pub mod anchors;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Serialize;
use serde_json::json;
use sqlx::PgPool;

use crate::analyze::{Analyzer, Scored};
use crate::cancel::Cancel;
use crate::config::StorageLocation;
use crate::select::{clusters, similar, strategies};
use crate::split::Split;
use crate::storage::{self, Storage};
use crate::store::models::ModelVersion;
use crate::store::predictions::{self, ClusterScores, Prediction};
use crate::store::{models, taxonomies};
use crate::taxonomy::Taxonomy;
use crate::text::rarity::{self, RarityModel};
use crate::train::data;

#[derive(Debug, Clone)]
pub struct ScoreOptions {
    pub taxonomy: String,
    /// This host's data dir: the cache versions are fetched into.
    pub models_dir: PathBuf,
    pub storage: StorageLocation,
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
            storage: StorageLocation::default(),
            rescore: false,
            batch_size: BATCH,
            clusters: None,
            seed: 42,
            cancel: Cancel::default(),
        }
    }
}

/// Reviews per stored batch unless asked otherwise.
pub const BATCH: usize = 256;

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

/// A version loaded to score reviews with, and what its scores need: the taxonomy's
/// rarity model and the current label counts.
pub struct Scorer {
    pub taxonomy: Taxonomy,
    pub version: ModelVersion,
    analyzer: Analyzer,
    rarity: RarityModel,
    labels: Vec<usize>,
}

impl Scorer {
    /// The version that serves `options.taxonomy`.
    pub async fn serving(pool: &PgPool, options: &ScoreOptions) -> anyhow::Result<Scorer> {
        let taxonomy = taxonomies::load_by_name(pool, &options.taxonomy).await?;
        let version = models::current_keyword(pool, taxonomy.id).await?.ok_or_else(|| {
            anyhow::anyhow!("no trained model for `{}` yet: run `reviewloop train` first", taxonomy.name)
        })?;
        let storage = Storage::open(pool, &options.storage)?;
        Scorer::load(&storage, &options.models_dir, taxonomy, version).await
    }

    /// `version` of `taxonomy`, fetched into `models_dir` when it is stored.
    pub async fn load(
        storage: &Storage,
        models_dir: &Path,
        taxonomy: Taxonomy,
        version: ModelVersion,
    ) -> anyhow::Result<Scorer> {
        let pool = storage.pool();
        let dir = storage.version_dir(models_dir, &version).await?;
        let analyzer = tokio::task::spawn_blocking(move || Analyzer::load(&dir)).await??;
        let rarity = rarity_model(storage, models_dir, &taxonomy).await?;
        let labels = label_counts(pool, &taxonomy, &analyzer.keyword.labels.keywords).await?;
        anchors::ensure(pool, &analyzer, &taxonomy, version.id).await?;
        Ok(Scorer { taxonomy, version, analyzer, rarity, labels })
    }

    /// The next unscored reviews with ids in `range`, at most `limit`.
    pub async fn unscored(
        &self,
        pool: &PgPool,
        range: (i64, i64),
        limit: usize,
    ) -> sqlx::Result<Vec<(i64, String)>> {
        predictions::unscored(pool, self.taxonomy.id, self.version.id, range, limit.max(1)).await
    }

    /// Scores a batch and stores it in one transaction.
    pub async fn store(&self, pool: &PgPool, batch: &[(i64, String)]) -> anyhow::Result<usize> {
        let started = std::time::Instant::now();
        let texts: Vec<String> = batch.iter().map(|(_, t)| t.clone()).collect();
        let results = self.analyzer.score_many(&texts)?;
        let rows: Vec<Prediction> =
            batch.iter().zip(results).map(|((id, text), s)| self.prediction(*id, text, s)).collect();
        let scored = started.elapsed();
        predictions::insert_batch(pool, self.version.id, &rows).await?;
        tracing::debug!(reviews = rows.len(), ?scored, stored = ?(started.elapsed() - scored), "batch");
        Ok(rows.len())
    }

    fn prediction(&self, review_id: i64, text: &str, s: Scored) -> Prediction {
        let keywords = &self.analyzer.keyword.labels.keywords;
        let thresholds = &self.analyzer.keyword.labels.thresholds;
        let distributions: Vec<Vec<f32>> = s.sentiments.iter().map(|(_, d)| d.clone()).collect();
        let sentiment: serde_json::Map<String, serde_json::Value> =
            s.sentiments.iter().map(|(k, d)| (keywords[*k].clone(), json!(d))).collect();
        Prediction {
            review_id,
            boundary: strategies::keyword_boundary(&s.probabilities, thresholds),
            balance: strategies::class_balance(&s.probabilities, &self.labels),
            boundary_keyword: strategies::least_certain_keyword(&s.probabilities, thresholds)
                .map(|k| k as i16),
            uncertainty: strategies::sentiment_uncertainty(&distributions),
            rarity: self.rarity.score(text),
            keyword_probs: s.probabilities,
            sentiment: serde_json::Value::Object(sentiment),
            embedding: s.embedding,
        }
    }
}

/// Scores the whole pool here, in one process (the `score` command; simulations).
pub async fn run(
    pool: &PgPool,
    options: &ScoreOptions,
    progress: &mut (dyn FnMut(i64, i64) + Send),
) -> anyhow::Result<ScoreSummary> {
    let scorer = Scorer::serving(pool, options).await?;
    let (taxonomy_id, version_id) = (scorer.taxonomy.id, scorer.version.id);
    if options.rescore {
        predictions::clear(pool, taxonomy_id, version_id).await?;
    }
    let (mut covered, total) = predictions::coverage(pool, taxonomy_id, version_id).await?;
    progress(covered, total);
    let mut scored = 0;
    loop {
        options.cancel.check()?;
        let batch = scorer.unscored(pool, (i64::MIN, i64::MAX), options.batch_size).await?;
        if batch.is_empty() {
            break;
        }
        let n = scorer.store(pool, &batch).await?;
        scored += n;
        covered += n as i64;
        progress(covered, total);
    }
    let clusters = if predictions::needs_clustering(pool, version_id).await? {
        Some(cluster_version(pool, version_id, options.clusters, options.seed, &options.cancel).await?)
    } else {
        None
    };
    let version = scorer.version.name;
    Ok(ScoreSummary { version, version_id, scored, covered, total, clusters })
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

/// The taxonomy's rarity model: from storage when some host trained it, else trained
/// here on the first training set and stored, so every worker scores rarity alike.
async fn rarity_model(
    storage: &Storage,
    models_dir: &Path,
    taxonomy: &Taxonomy,
) -> anyhow::Result<RarityModel> {
    let path = rarity::model_path(models_dir, &taxonomy.name);
    let dir = path.parent().expect("the rarity model's folder").to_path_buf();
    let bundle = storage::rarity_bundle(&taxonomy.name);
    if let Some(stored) = storage.find(&bundle).await? {
        storage.fetch(stored.id, &dir).await?;
        return RarityModel::load(&path);
    }
    let pool = storage.pool();
    let cutoff = models::first_snapshot(pool, taxonomy.id).await?;
    let items = data::labelled(pool, taxonomy, cutoff).await?;
    let texts: Vec<String> = items.into_iter().filter(|i| i.split == Split::Train).map(|i| i.text).collect();
    let target = path.clone();
    tokio::task::spawn_blocking(move || {
        rarity::train(texts.iter().map(String::as_str), &target, RARITY_VOCABULARY)
    })
    .await??;
    let mut tx = pool.begin().await?;
    match storage.put(&mut tx, &bundle, &dir).await {
        Ok(_) => tx.commit().await?,
        Err(e) => {
            tx.rollback().await?;
            // Another worker stored its model first: use that one.
            let stored = storage.find(&bundle).await?.ok_or(e)?;
            storage.fetch(stored.id, &dir).await?;
        }
    }
    RarityModel::load(&path)
}

/// Embeddings read per page of the clustering pass.
const CLUSTER_PAGE: usize = 5_000;

/// k-means over the version's embeddings, in memory independent of the pool's size:
/// fitted on a seeded sample of at most [`clusters::FIT_SAMPLE`], then two passes a page
/// at a time (distances per cluster, then standardised scores stored). The first pass
/// also gathers each keyword's nearest unlabelled reviews to its labelled ones and to
/// its anchor, and the second stores their scores (the keyword-neighbours and
/// keyword-anchors strategies). Returns k.
pub async fn cluster_version(
    pool: &PgPool,
    version_id: i64,
    k: Option<usize>,
    seed: u64,
    cancel: &Cancel,
) -> anyhow::Result<usize> {
    cluster_in_pages(pool, version_id, k, seed, cancel, CLUSTER_PAGE).await
}

/// [`cluster_version`] with pages of `page_size` embeddings (tests use small ones).
pub async fn cluster_in_pages(
    pool: &PgPool,
    version_id: i64,
    k: Option<usize>,
    seed: u64,
    cancel: &Cancel,
    page_size: usize,
) -> anyhow::Result<usize> {
    let n = predictions::embedding_count(pool, version_id).await? as usize;
    let k = k.unwrap_or_else(|| clusters::default_clusters(n)).clamp(1, n.saturating_sub(1).max(1));
    if n < 3 {
        let (ids, _) = predictions::embedding_page(pool, version_id, i64::MIN, n).await?;
        let (clusters, outliers, none) = (vec![0; ids.len()], vec![0.0; ids.len()], vec![None; ids.len()]);
        let scores =
            ClusterScores { clusters: &clusters, outliers: &outliers, neighbours: &none, anchored: &none };
        predictions::set_clusters(pool, version_id, &ids, &scores).await?;
        return Ok(k);
    }
    let sample = predictions::embedding_sample(pool, version_id, clusters::FIT_SAMPLE, seed).await?;
    let centroids = Arc::new(tokio::task::spawn_blocking(move || clusters::fit(&sample, k, seed)).await??);
    let mut spread = strategies::Spread::default();
    let labelled = Arc::new(labelled_vectors(pool, version_id).await?);
    let anchored = Arc::new(anchors::as_references(predictions::anchors(pool, version_id).await?, &labelled));
    let references = [labelled, anchored];
    let mut nearest = references.clone().map(|r| similar::Nearest::new(r.count, similar::RANKS_KEPT));
    let mut after = i64::MIN;
    while let Some(page) = assigned_page(pool, version_id, &centroids, &references, after, page_size).await? {
        cancel.check()?;
        spread.add(&page.distances, &page.clusters);
        for (nearest, similarities) in nearest.iter_mut().zip(&page.similarities) {
            nearest.offer(&page.ids, similarities);
        }
        after = page.last();
    }
    let [neighbours, anchored] = nearest.map(similar::Nearest::scores);
    let tiny = clusters::tiny_size(n, k);
    let mut after = i64::MIN;
    while let Some(page) = assigned_page(pool, version_id, &centroids, &[], after, page_size).await? {
        cancel.check()?;
        let outliers = spread.scores(&page.distances, &page.clusters, tiny);
        let clusters: Vec<i32> = page.clusters.iter().map(|&c| c as i32).collect();
        let stored = |scores: &HashMap<i64, f32>| -> Vec<Option<f32>> {
            page.ids.iter().map(|id| scores.get(id).copied()).collect()
        };
        let (neighbours, anchored) = (stored(&neighbours), stored(&anchored));
        let scores = ClusterScores {
            clusters: &clusters,
            outliers: &outliers,
            neighbours: &neighbours,
            anchored: &anchored,
        };
        predictions::set_clusters(pool, version_id, &page.ids, &scores).await?;
        after = page.last();
    }
    Ok(k)
}

/// Labelled reviews whose embeddings are fetched at once.
const LABELLED_FETCHED_AT_ONCE: usize = 2_000;

/// The version's embeddings of the labelled reviews, with the keywords their labels
/// hold (by the taxonomy's keyword order). A review is kept while one of its keywords
/// has fewer than [`similar::LABELLED_PER_KEYWORD`] kept, which bounds the similarity
/// work by the taxonomy's size, not the label store's, and loses nothing a rare keyword
/// needs. Embeddings are fetched a slice at a time, only for reviews that may still be
/// kept, so the reads follow the same bound.
async fn labelled_vectors(pool: &PgPool, version_id: i64) -> anyhow::Result<similar::Labelled> {
    let version =
        models::get(pool, version_id).await?.ok_or_else(|| anyhow::anyhow!("no version {version_id}"))?;
    let taxonomy = taxonomies::load(pool, version.taxonomy_id).await?;
    let items: Vec<(i64, Vec<usize>)> = data::labelled(pool, &taxonomy, None)
        .await?
        .into_iter()
        .filter_map(|item| Some((item.stored?.0, item.labels.iter().map(|(k, _)| *k).collect())))
        .collect();
    let mut out = similar::Labelled { count: taxonomy.keywords.len(), ..Default::default() };
    out.ids.extend(items.iter().map(|(review, _)| *review));
    let mut cap = similar::KeywordCap::new(out.count, similar::LABELLED_PER_KEYWORD);
    for slice in items.chunks(LABELLED_FETCHED_AT_ONCE) {
        // Counts only grow: what is open now holds everything this slice keeps.
        let wanted: Vec<i64> =
            slice.iter().filter(|(_, ks)| cap.open(ks)).map(|(review, _)| *review).collect();
        if wanted.is_empty() {
            continue;
        }
        let mut vectors = predictions::embeddings_of(pool, version_id, &wanted).await?;
        for (review, keywords) in slice {
            if !cap.open(keywords) {
                continue;
            }
            if let Some(v) = vectors.remove(review) {
                cap.take(keywords);
                out.vectors.push(v);
                out.keywords.push(keywords.clone());
            }
        }
    }
    Ok(out)
}

/// One page of a version's embeddings, assigned to their nearest centroids, with their
/// similarities to each set of references asked for (labelled reviews get none).
struct AssignedPage {
    ids: Vec<i64>,
    clusters: Vec<usize>,
    distances: Vec<f32>,
    /// Per set of references, per review, per keyword ([`similar::Labelled::nearest`]).
    similarities: Vec<Vec<Vec<f32>>>,
}

impl AssignedPage {
    fn last(&self) -> i64 {
        *self.ids.last().expect("a page is never empty")
    }
}

async fn assigned_page(
    pool: &PgPool,
    version_id: i64,
    centroids: &Arc<clusters::Centroids>,
    references: &[Arc<similar::Labelled>],
    after: i64,
    size: usize,
) -> anyhow::Result<Option<AssignedPage>> {
    let (ids, embeddings) = predictions::embedding_page(pool, version_id, after, size.max(1)).await?;
    if ids.is_empty() {
        return Ok(None);
    }
    let (centroids, references, page_ids) = (centroids.clone(), references.to_vec(), ids.clone());
    let (clusters, distances, similarities) = tokio::task::spawn_blocking(move || {
        let (clusters, distances) = centroids.assign(&embeddings)?;
        let similarities = references
            .iter()
            .map(|r| r.nearest(&page_ids, &embeddings))
            .collect::<candle_core::Result<Vec<_>>>()?;
        anyhow::Ok((clusters, distances, similarities))
    })
    .await??;
    Ok(Some(AssignedPage { ids, clusters, distances, similarities }))
}
