//! Sharded scoring. A `score` job coordinates a pass: it splits the reviews the serving
//! version has not scored into `score-chunk` jobs by review id range, which any worker
//! claims, and scores chunks itself while it waits, so one worker alone still finishes.
//! Its progress adds up the chunks'. A review is stored once per version however the
//! chunks race or die (`score`'s batches only read unscored reviews, and the
//! predictions' unique key keeps the first). When no chunk is left it clusters.
//!
//! A promotion cancels the old version's chunks that have not started; the coordinator
//! sees that its version no longer serves and goes on with the new one.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::context::{publish, with_eta, JobContext};
use super::Job;
use crate::score::{self, Scorer};
use crate::store::jobs::{self as queue, EnqueueError, NewJob, SCORE_CHUNK};
use crate::store::models::ModelVersion;
use crate::store::{models, predictions, taxonomies};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ScoreJob {
    pub taxonomy: String,
    #[serde(default)]
    pub rescore: bool,
    #[serde(default)]
    pub clusters: Option<usize>,
    /// Reviews per chunk job.
    #[serde(default = "default_chunk")]
    pub chunk_size: usize,
    /// Reviews per stored batch within a chunk.
    #[serde(default = "default_batch")]
    pub batch_size: usize,
    /// Cluster once every review is scored (benchmarks time it on its own).
    #[serde(default = "default_true")]
    pub cluster: bool,
}

/// About ten seconds of the int8 small model on two cores.
pub const CHUNK: usize = 5_000;

fn default_chunk() -> usize {
    CHUNK
}

fn default_batch() -> usize {
    score::BATCH
}

fn default_true() -> bool {
    true
}

/// One chunk of a pass: the unscored reviews of `from..=to` for `version_id`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ChunkJob {
    pub taxonomy: String,
    pub version_id: i64,
    pub from: i64,
    pub to: i64,
    pub batch_size: usize,
    /// The coordinating job: chunks of one pass share label counts (`Scorer`).
    pub pass: i64,
}

/// Where a pass ended.
enum Waited {
    Done,
    /// Another version serves now.
    Superseded,
}

pub async fn coordinate(cx: &JobContext<'_>) -> anyhow::Result<Value> {
    let request: ScoreJob = serde_json::from_value(cx.job.payload.clone())?;
    let mut rescore = request.rescore;
    let started = Instant::now();
    loop {
        let taxonomy = taxonomies::load_by_name(cx.pool, &request.taxonomy).await?;
        let version = models::current_keyword(cx.pool, taxonomy.id).await?.ok_or_else(|| {
            anyhow::anyhow!("no trained model for `{}` yet: run `reviewloop train` first", taxonomy.name)
        })?;
        if std::mem::take(&mut rescore) {
            predictions::clear(cx.pool, taxonomy.id, version.id).await?;
        }
        let ranges =
            predictions::unscored_ranges(cx.pool, taxonomy.id, version.id, request.chunk_size).await?;
        let queued = enqueue_chunks(cx, &request, version.id, &ranges).await?;
        log(
            cx,
            format!("version {}: {} chunks of {} reviews queued", version.name, queued, request.chunk_size),
        );
        match wait(cx, &taxonomy.name, &version, started).await? {
            Waited::Superseded => {
                log(cx, format!("version {} no longer serves: scoring the new one", version.name));
                continue;
            }
            Waited::Done => {}
        }
        let chunks = queue::chunks(cx.pool, version.id, cx.job.id).await?;
        anyhow::ensure!(
            chunks.failed == 0,
            "{} chunks failed after their last attempt (see their jobs)",
            chunks.failed
        );
        let clusters = if request.cluster && predictions::needs_clustering(cx.pool, version.id).await? {
            Some(score::cluster_version(cx.pool, version.id, request.clusters, 42, cx.cancel).await?)
        } else {
            None
        };
        let (covered, total) = predictions::coverage(cx.pool, taxonomy.id, version.id).await?;
        return Ok(json!({
            "version": version.name, "version_id": version.id, "covered": covered, "total": total,
            "clusters": clusters, "chunks": chunks, "seconds": started.elapsed().as_secs_f64(),
        }));
    }
}

/// Queues a chunk job per range (one already pending for the same range is kept).
async fn enqueue_chunks(
    cx: &JobContext<'_>,
    request: &ScoreJob,
    version_id: i64,
    ranges: &[(i64, i64)],
) -> anyhow::Result<usize> {
    let mut tx = cx.pool.begin().await?;
    let mut queued = 0;
    for &(from, to) in ranges {
        let chunk = ChunkJob {
            taxonomy: request.taxonomy.clone(),
            version_id,
            from,
            to,
            batch_size: request.batch_size.max(1),
            pass: cx.job.id,
        };
        let mut job = NewJob::new(SCORE_CHUNK, serde_json::to_value(&chunk)?);
        job.dedup_key = Some(format!("{SCORE_CHUNK}:{version_id}:{from}"));
        job.created_by = cx.job.created_by;
        match queue::enqueue(&mut tx, &job).await {
            Ok(_) => queued += 1,
            Err(EnqueueError::Duplicate(_)) => {}
            Err(EnqueueError::Database(e)) => return Err(e.into()),
        }
    }
    tx.commit().await?;
    Ok(queued)
}

/// Scores this version's chunks here while any are queued, then waits for those other
/// workers run; publishes the pass's progress meanwhile.
async fn wait(
    cx: &JobContext<'_>,
    taxonomy: &str,
    version: &ModelVersion,
    started: Instant,
) -> anyhow::Result<Waited> {
    let (pool, config) = (cx.pool, cx.config);
    loop {
        cx.cancel.check()?;
        let serving = models::current_keyword(pool, version.taxonomy_id).await?.map(|v| v.id);
        if serving != Some(version.id) {
            let mut conn = pool.acquire().await?;
            queue::cancel_stale_chunks(&mut conn, taxonomy, serving.unwrap_or(-1)).await?;
            return Ok(Waited::Superseded);
        }
        if let Some(chunk) = queue::claim_chunk(pool, &config.id, version.id, config.lease_seconds).await? {
            run_claimed(cx, &chunk).await?;
        } else {
            queue::recover_expired(pool, config.retry_base_seconds).await?;
        }
        let chunks = queue::chunks(pool, version.id, cx.job.id).await?;
        let (covered, total) = predictions::coverage(pool, version.taxonomy_id, version.id).await?;
        let progress = json!({"stage": "score", "done": covered, "total": total, "chunks": chunks});
        publish(cx.state, with_eta(progress, covered as f64, total as f64, started.elapsed()), None);
        if chunks.pending() == 0 {
            return Ok(Waited::Done);
        }
        if chunks.queued == 0 {
            // Other workers hold the last chunks; counting the pool's coverage takes a
            // moment at a million reviews, so look once a second.
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
}

/// A chunk the coordinator claimed: run here, its lease renewed batch by batch, and
/// its outcome recorded as a worker would.
async fn run_claimed(cx: &JobContext<'_>, chunk: &Job) -> anyhow::Result<()> {
    let (pool, config) = (cx.pool, cx.config);
    let outcome = async {
        let request: ChunkJob = serde_json::from_value(chunk.payload.clone())?;
        score_range(cx, &request, Some(chunk)).await
    }
    .await;
    match outcome {
        Ok(scored) => {
            queue::succeed(pool, chunk.id, &config.id, &json!({"scored": scored}), &json!({"done": scored}))
                .await?;
        }
        Err(e) => {
            cx.cancel.check()?;
            let error = format!("{e:#}");
            queue::log(pool, chunk.id, &format!("attempt {} failed: {error}", chunk.attempts)).await?;
            queue::fail(pool, chunk.id, &config.id, &error, config.retry_base_seconds).await?;
        }
    }
    Ok(())
}

/// A `score-chunk` job claimed by a worker's loop.
pub async fn chunk(cx: &JobContext<'_>) -> anyhow::Result<Value> {
    let request: ChunkJob = serde_json::from_value(cx.job.payload.clone())?;
    let scored = score_range(cx, &request, None).await?;
    Ok(json!({"scored": scored}))
}

/// Scores the chunk's unscored reviews a batch at a time; with `lease`, renews that
/// job's lease after each batch (and stops when it is no longer this worker's).
async fn score_range(cx: &JobContext<'_>, request: &ChunkJob, lease: Option<&Job>) -> anyhow::Result<usize> {
    let scorer = scorer(cx, request).await?;
    let mut scored = 0;
    loop {
        cx.cancel.check()?;
        let batch = scorer.unscored(cx.pool, (request.from, request.to), request.batch_size).await?;
        if batch.is_empty() {
            return Ok(scored);
        }
        scored += scorer.store(cx.pool, &batch).await?;
        let progress = json!({"stage": "score", "done": scored});
        match lease {
            Some(job) => {
                let ours =
                    queue::heartbeat(cx.pool, job.id, &cx.config.id, cx.config.lease_seconds, &progress)
                        .await?;
                anyhow::ensure!(
                    ours,
                    "chunk job {} is no longer this worker's (cancelled, or its lease ran out)",
                    job.id
                );
            }
            None => publish(cx.state, progress, None),
        }
    }
}

/// The scorer of the last pass this process worked on: loading a version (and checking
/// its files) once per pass, not once per chunk.
async fn scorer(cx: &JobContext<'_>, request: &ChunkJob) -> anyhow::Result<Arc<Scorer>> {
    /// Database, version, pass.
    type Key = (String, i64, i64);
    type Loaded = tokio::sync::Mutex<Option<(Key, Arc<Scorer>)>>;
    static LOADED: OnceLock<Loaded> = OnceLock::new();
    let mut loaded = LOADED.get_or_init(Default::default).lock().await;
    // Ids repeat across databases (tests run many in one process).
    let database = cx.pool.connect_options().get_database().unwrap_or_default().to_string();
    let key = (database, request.version_id, request.pass);
    if let Some((k, scorer)) = loaded.as_ref() {
        if *k == key {
            return Ok(scorer.clone());
        }
    }
    let version = models::get(cx.pool, request.version_id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("no model version {}", request.version_id))?;
    let taxonomy = taxonomies::load(cx.pool, version.taxonomy_id).await?;
    let scorer = Arc::new(Scorer::load(cx.storage, &cx.config.models_dir, taxonomy, version).await?);
    *loaded = Some((key, scorer.clone()));
    Ok(scorer)
}

fn log(cx: &JobContext<'_>, line: String) {
    let progress = cx.state.lock().expect("job state lock").progress.clone();
    publish(cx.state, progress, Some(line));
}
