//! The job table as a queue. A worker claims a job with `FOR UPDATE SKIP LOCKED` (two
//! workers never get the same one) and then holds a *lease* it renews by heartbeats,
//! not a row lock: training runs for minutes. A lease that runs out means the worker
//! died; any worker then puts the job back (or fails it after its last attempt).

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use sqlx::PgPool;

/// The channel `enqueue` notifies, so idle workers wake at once instead of polling.
pub const CHANNEL: &str = "reviewloop_jobs";

#[derive(Debug, Clone, sqlx::FromRow, Serialize)]
pub struct Job {
    pub id: i64,
    pub kind: String,
    pub payload: Value,
    pub status: String,
    pub attempts: i32,
    pub max_attempts: i32,
    pub run_after: DateTime<Utc>,
    pub worker_id: Option<String>,
    pub progress: Value,
    pub result: Option<Value>,
    pub last_error: Option<String>,
    pub created_by: Option<i64>,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
}

const COLUMNS: &str =
    "id, kind, payload, status, attempts, max_attempts, run_after, worker_id, progress, result,
                       last_error, created_by, created_at, started_at, finished_at";

pub struct NewJob<'a> {
    pub kind: &'a str,
    pub payload: Value,
    pub priority: i16,
    /// While a job with this key is queued or running, another is refused.
    pub dedup_key: Option<String>,
    pub max_attempts: i32,
    pub created_by: Option<i64>,
}

impl<'a> NewJob<'a> {
    pub fn new(kind: &'a str, payload: Value) -> Self {
        NewJob { kind, payload, priority: 0, dedup_key: None, max_attempts: 3, created_by: None }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EnqueueError {
    #[error("the same job is already queued or running (job {0})")]
    Duplicate(i64),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// A duplicate is the caller's to hear about; a database failure is internal (logged,
/// never shown).
impl From<EnqueueError> for crate::error::AppError {
    fn from(e: EnqueueError) -> Self {
        match e {
            EnqueueError::Duplicate(_) => crate::error::AppError::Conflict(e.to_string()),
            EnqueueError::Database(e) => crate::error::AppError::Database(e),
        }
    }
}

/// Adds a job inside the caller's transaction, so it exists exactly when the domain
/// write that asked for it does.
pub async fn enqueue(tx: &mut sqlx::PgConnection, job: &NewJob<'_>) -> Result<i64, EnqueueError> {
    // ON CONFLICT against the partial unique index: two concurrent enqueues of the same
    // key cannot both insert, and the loser's transaction is not aborted by an error.
    let id: Option<i64> = sqlx::query_scalar(
        "INSERT INTO jobs (kind, payload, priority, dedup_key, max_attempts, created_by)
         VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (dedup_key) WHERE status IN ('queued', 'running') DO NOTHING
         RETURNING id",
    )
    .bind(job.kind)
    .bind(&job.payload)
    .bind(job.priority)
    .bind(&job.dedup_key)
    .bind(job.max_attempts.max(1))
    .bind(job.created_by)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(id) = id else {
        let existing: i64 = sqlx::query_scalar(
            "SELECT id FROM jobs WHERE dedup_key = $1 AND status IN ('queued', 'running')",
        )
        .bind(&job.dedup_key)
        .fetch_one(&mut *tx)
        .await?;
        return Err(EnqueueError::Duplicate(existing));
    };
    sqlx::query("SELECT pg_notify($1, $2)").bind(CHANNEL).bind(job.kind).execute(&mut *tx).await?;
    Ok(id)
}

/// What a failed or lost attempt does to its job: back in the queue after
/// `base · 2^(attempts − 1)` seconds (at most ten minutes; `$base` is bound by the
/// caller), or failed for good after the last attempt.
const RETRY_OR_FAIL: &str = "
    status = CASE WHEN attempts >= max_attempts THEN 'failed' ELSE 'queued' END,
    finished_at = CASE WHEN attempts >= max_attempts THEN now() END,
    run_after = now() + least(600, $base * power(2, greatest(attempts - 1, 0))) * interval '1 second',
    worker_id = NULL, lease_expires_at = NULL";

/// Puts jobs whose lease ran out back in the queue (or fails them after their last
/// attempt). Returns how many were recovered.
pub async fn recover_expired(pool: &PgPool, retry_base_seconds: f64) -> sqlx::Result<u64> {
    let done = sqlx::query(&format!(
        "UPDATE jobs SET
             last_error = 'worker ' || coalesce(worker_id, '?') || ' stopped renewing its lease (killed or lost)',
             {}
         WHERE status = 'running' AND lease_expires_at < now()",
        RETRY_OR_FAIL.replace("$base", "$1")
    ))
    .bind(retry_base_seconds)
    .execute(pool)
    .await?;
    Ok(done.rows_affected())
}

/// The claim of the most urgent runnable queued job that `filter` also admits: `$1` is
/// the worker, `$2` the lease in seconds, the filter's own parameters come after.
fn claiming(filter: &str) -> String {
    format!(
        "UPDATE jobs SET status = 'running', attempts = attempts + 1, worker_id = $1,
                         lease_expires_at = now() + $2 * interval '1 second',
                         started_at = coalesce(started_at, now()), progress = '{{}}'
         WHERE id = (SELECT id FROM jobs
                     WHERE status = 'queued' AND run_after <= now() AND {filter}
                     ORDER BY priority DESC, id
                     FOR UPDATE SKIP LOCKED LIMIT 1)
         RETURNING {COLUMNS}"
    )
}

/// Claims the most urgent runnable job of these kinds, or none.
pub async fn claim(
    pool: &PgPool,
    worker_id: &str,
    kinds: &[String],
    devices: &[String],
    lease_seconds: f64,
) -> sqlx::Result<Option<Job>> {
    sqlx::query_as(&claiming("kind = ANY($3) AND coalesce(payload->>'device', 'any') = ANY($4)"))
        .bind(worker_id)
        .bind(lease_seconds)
        .bind(kinds)
        .bind(devices)
        .fetch_optional(pool)
        .await
}

/// The kind of a scoring pass's chunk jobs; their payload names `version_id`.
pub const SCORE_CHUNK: &str = "score-chunk";

/// Claims a queued chunk of version `version_id`'s scoring pass, or none (the pass's
/// coordinator scores chunks itself while it waits for the others).
pub async fn claim_chunk(
    pool: &PgPool,
    worker_id: &str,
    version_id: i64,
    lease_seconds: f64,
) -> sqlx::Result<Option<Job>> {
    let filter = format!("kind = '{SCORE_CHUNK}' AND (payload->>'version_id')::bigint = $3");
    sqlx::query_as(&claiming(&filter))
        .bind(worker_id)
        .bind(lease_seconds)
        .bind(version_id)
        .fetch_optional(pool)
        .await
}

/// A scoring pass's chunk jobs by status.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Chunks {
    pub queued: i64,
    pub running: i64,
    pub succeeded: i64,
    pub failed: i64,
    pub cancelled: i64,
    /// Workers that ran or run one of them.
    pub workers: i64,
}

impl Chunks {
    pub fn pending(&self) -> i64 {
        self.queued + self.running
    }
}

/// The chunk jobs of version `version_id`: those created since job `since` (its pass),
/// and any earlier one still queued or running (a range the pass found pending already
/// and so did not queue again; the pass waits for it too).
pub async fn chunks(pool: &PgPool, version_id: i64, since: i64) -> sqlx::Result<Chunks> {
    let row: (i64, i64, i64, i64, i64, i64) = sqlx::query_as(&format!(
        "SELECT count(*) FILTER (WHERE status = 'queued'), count(*) FILTER (WHERE status = 'running'),
                count(*) FILTER (WHERE status = 'succeeded'), count(*) FILTER (WHERE status = 'failed'),
                count(*) FILTER (WHERE status = 'cancelled'), count(DISTINCT worker_id)
         FROM jobs WHERE kind = '{SCORE_CHUNK}' AND (payload->>'version_id')::bigint = $1
                     AND (id > $2 OR status IN ('queued', 'running'))"
    ))
    .bind(version_id)
    .bind(since)
    .fetch_one(pool)
    .await?;
    let (queued, running, succeeded, failed, cancelled, workers) = row;
    Ok(Chunks { queued, running, succeeded, failed, cancelled, workers })
}

/// Cancels the queued chunks of a taxonomy's scoring passes for versions other than
/// `keep` (a promotion made them moot); running ones finish their chunk.
pub async fn cancel_stale_chunks(
    tx: &mut sqlx::PgConnection,
    taxonomy: &str,
    keep: i64,
) -> sqlx::Result<u64> {
    let done = sqlx::query(&format!(
        "UPDATE jobs SET status = 'cancelled', finished_at = now(), last_error = 'another version was promoted'
         WHERE kind = '{SCORE_CHUNK}' AND status = 'queued' AND payload->>'taxonomy' = $1
           AND (payload->>'version_id')::bigint <> $2"
    ))
    .bind(taxonomy)
    .bind(keep)
    .execute(&mut *tx)
    .await?;
    Ok(done.rows_affected())
}

/// Renews the lease and stores progress. `false` when the job is no longer this
/// worker's to run (cancelled, or its lease ran out and it was handed back).
pub async fn heartbeat(
    pool: &PgPool,
    job_id: i64,
    worker_id: &str,
    lease_seconds: f64,
    progress: &Value,
) -> sqlx::Result<bool> {
    let done = sqlx::query(
        "UPDATE jobs SET lease_expires_at = now() + $3 * interval '1 second', progress = $4
         WHERE id = $1 AND worker_id = $2 AND status = 'running'",
    )
    .bind(job_id)
    .bind(worker_id)
    .bind(lease_seconds)
    .bind(progress)
    .execute(pool)
    .await?;
    Ok(done.rows_affected() == 1)
}

pub async fn succeed<'e, E>(
    executor: E,
    job_id: i64,
    worker_id: &str,
    result: &Value,
    progress: &Value,
) -> sqlx::Result<bool>
where
    E: sqlx::Executor<'e, Database = sqlx::Postgres>,
{
    let done = sqlx::query(
        "UPDATE jobs SET status = 'succeeded', finished_at = now(), result = $3, progress = $4, lease_expires_at = NULL
         WHERE id = $1 AND worker_id = $2 AND status = 'running'",
    )
    .bind(job_id)
    .bind(worker_id)
    .bind(result)
    .bind(progress)
    .execute(executor)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Records a failed attempt: queued again after a backoff, or failed for good after the
/// last attempt.
pub async fn fail(
    pool: &PgPool,
    job_id: i64,
    worker_id: &str,
    error: &str,
    retry_base_seconds: f64,
) -> sqlx::Result<bool> {
    let done = sqlx::query(&format!(
        "UPDATE jobs SET last_error = $3, {} WHERE id = $1 AND worker_id = $2 AND status = 'running'",
        RETRY_OR_FAIL.replace("$base", "$4")
    ))
    .bind(job_id)
    .bind(worker_id)
    .bind(error)
    .bind(retry_base_seconds)
    .execute(pool)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Cancels a queued or running job; a running one stops at its next heartbeat.
pub async fn cancel(pool: &PgPool, job_id: i64) -> sqlx::Result<bool> {
    let done = sqlx::query(
        "UPDATE jobs SET status = 'cancelled', finished_at = now(), lease_expires_at = NULL
         WHERE id = $1 AND status IN ('queued', 'running')",
    )
    .bind(job_id)
    .execute(pool)
    .await?;
    Ok(done.rows_affected() == 1)
}

pub async fn log(pool: &PgPool, job_id: i64, line: &str) -> sqlx::Result<()> {
    sqlx::query("INSERT INTO job_logs (job_id, line) VALUES ($1, $2)")
        .bind(job_id)
        .bind(line)
        .execute(pool)
        .await?;
    Ok(())
}

/// The newest job of a kind for a taxonomy (its payload's `taxonomy`).
pub async fn latest_for(pool: &PgPool, kind: &str, taxonomy: &str) -> sqlx::Result<Option<Job>> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM jobs WHERE kind = $1 AND payload->>'taxonomy' = $2 ORDER BY id DESC LIMIT 1"
    ))
    .bind(kind)
    .bind(taxonomy)
    .fetch_optional(pool)
    .await
}

/// The status of each of these jobs.
pub async fn statuses(pool: &PgPool, ids: &[i64]) -> sqlx::Result<std::collections::HashMap<i64, String>> {
    let rows: Vec<(i64, String)> =
        sqlx::query_as("SELECT id, status FROM jobs WHERE id = ANY($1)").bind(ids).fetch_all(pool).await?;
    Ok(rows.into_iter().collect())
}

pub async fn get(pool: &PgPool, job_id: i64) -> sqlx::Result<Option<Job>> {
    sqlx::query_as(&format!("SELECT {COLUMNS} FROM jobs WHERE id = $1"))
        .bind(job_id)
        .fetch_optional(pool)
        .await
}

pub async fn recent(pool: &PgPool, limit: i64) -> sqlx::Result<Vec<Job>> {
    sqlx::query_as(&format!("SELECT {COLUMNS} FROM jobs ORDER BY id DESC LIMIT $1"))
        .bind(limit)
        .fetch_all(pool)
        .await
}

#[derive(Debug, Clone, sqlx::FromRow, Serialize)]
pub struct LogLine {
    pub id: i64,
    pub at: DateTime<Utc>,
    pub line: String,
}

/// Log lines after `after` (an id), oldest first.
pub async fn logs(pool: &PgPool, job_id: i64, after: i64) -> sqlx::Result<Vec<LogLine>> {
    sqlx::query_as("SELECT id, at, line FROM job_logs WHERE job_id = $1 AND id > $2 ORDER BY id LIMIT 500")
        .bind(job_id)
        .bind(after)
        .fetch_all(pool)
        .await
}
