//! The loop as a product (DESIGN.md §8): a policy per taxonomy (`store::loops::Policy`)
//! and its *cycles*. A cycle is a row whose state says which step it is in:
//!
//! ```text
//! training ─train job─▶ comparing ─compare job─▶ scoring ─score job─▶ waiting_round ─▶ composing ─compose job─▶ done
//!                                     └── held ──────────────────────▶ waiting_round
//! ```
//!
//! Each step's work is an ordinary job of the queue, and the cycle moves to its next
//! step in the transaction that records the job's success ([`advance`]): a worker
//! killed mid-step leaves the job to be run again and the cycle where it was, and a
//! step is never taken twice. Workers look at the policies whenever they are idle
//! ([`tick`]): a cycle starts when enough new labels came in (or its schedule is due),
//! and a cycle waiting for the open round to be mostly done composes the next one
//! when it is. The engineer's loop page reads these rows; nothing else decides what
//! happens next.

mod steps;

use serde_json::{json, Value};
use sqlx::{PgConnection, PgPool};

use crate::evidence::MIN_TRAINING_LABELS;
use crate::store::jobs::{self as queue, EnqueueError, Job, NewJob};
use crate::store::loops::{self, Cycle, NewCycle, Policy};
use crate::train::settings::TrainSettings;

pub use steps::{compare, compose};

/// A policy value out of its range (the pages say it in their language).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PolicyProblem {
    #[error("round_size: at least 1")]
    RoundSize,
    #[error("margin and max_drop: zero or more")]
    Negative,
    #[error("double_share and mostly_done: between 0 and 1")]
    Share,
    #[error("an enabled policy needs every_labels or every_hours")]
    NoTrigger,
}

/// A policy's values within their ranges.
pub fn check(policy: &Policy) -> Result<(), PolicyProblem> {
    let share = |v: f32| (0.0..=1.0).contains(&v);
    if policy.round_size < 1 {
        return Err(PolicyProblem::RoundSize);
    }
    if !(policy.margin >= 0.0 && policy.max_drop >= 0.0) {
        return Err(PolicyProblem::Negative);
    }
    if !(share(policy.double_share) && share(policy.mostly_done)) {
        return Err(PolicyProblem::Share);
    }
    if policy.enabled && policy.every_labels.is_none() && policy.every_hours.is_none() {
        return Err(PolicyProblem::NoTrigger);
    }
    Ok(())
}

/// Why no cycle was started.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Refusal {
    #[error("{labels} labelled reviews; a training needs {needed}")]
    TooFewLabels { labels: i64, needed: usize },
    #[error("cycle {0} is still running")]
    Running(i64),
}

/// Starts a cycle now (a person's button or command, or the first start), whatever
/// the policy's trigger says.
pub async fn start(
    pool: &PgPool,
    data_dir: &std::path::Path,
    taxonomy_id: i64,
    because: &str,
    actor: Option<i64>,
) -> anyhow::Result<Result<i64, Refusal>> {
    let mut tx = pool.begin().await?;
    let policy = loops::policy(pool, taxonomy_id).await?;
    let started = begin(&mut tx, data_dir, &policy, because, actor).await?;
    tx.commit().await?;
    Ok(started)
}

/// Records a cycle, its label snapshot and its training job, in `tx`.
async fn begin(
    tx: &mut PgConnection,
    data_dir: &std::path::Path,
    policy: &Policy,
    because: &str,
    actor: Option<i64>,
) -> anyhow::Result<Result<i64, Refusal>> {
    if let Some(open) = loops::open_cycle(tx, policy.taxonomy_id).await? {
        return Ok(Err(Refusal::Running(open.id)));
    }
    let labelled = crate::store::annotations::labelled_reviews(&mut *tx, policy.taxonomy_id, None).await?;
    if labelled < MIN_TRAINING_LABELS as i64 {
        return Ok(Err(Refusal::TooFewLabels { labels: labelled, needed: MIN_TRAINING_LABELS }));
    }
    let (snapshot_id, labels_through) =
        crate::store::models::snapshot(&mut *tx, policy.taxonomy_id, actor).await?;
    let cycle = NewCycle {
        taxonomy_id: policy.taxonomy_id,
        started_because: because,
        started_by: actor,
        snapshot_id,
        labels_through,
        labels: labelled as i32,
    };
    let Some(id) = loops::insert_cycle(tx, &cycle).await? else {
        let open = loops::open_cycle(tx, policy.taxonomy_id).await?.map_or(0, |c| c.id);
        return Ok(Err(Refusal::Running(open)));
    };
    let (settings, device) = training(tx, data_dir, policy, id, snapshot_id).await?;
    let mut payload = serde_json::to_value(&settings)?;
    payload["device"] = json!(device);
    payload["cycle"] = json!(id);
    let job = step_job("train", id, payload, actor);
    let job_id = enqueue(tx, &job).await?;
    loops::set_state(tx, id, "training", Some(("train_job", job_id))).await?;
    Ok(Ok(id))
}

/// The cycle's training: the fast profile (the base's encoder frozen, its states
/// computed once; minutes on two cores), or full fine-tuning when the policy asks for
/// it or, on `auto`, when a GPU worker is registered (then queued for CUDA). Without
/// a base, the small encoder trained here.
async fn training(
    tx: &mut PgConnection,
    data_dir: &std::path::Path,
    policy: &Policy,
    cycle: i64,
    snapshot: i64,
) -> anyhow::Result<(TrainSettings, &'static str)> {
    let name = crate::store::taxonomies::name_of(&mut *tx, policy.taxonomy_id).await?;
    let mut settings = TrainSettings::configured(&name, data_dir.to_path_buf())?;
    settings.name = Some(format!("loop-{cycle}"));
    settings.snapshot = Some(snapshot);
    let gpu = loops::gpu_worker_seen(tx).await?;
    let full = policy.profile == "full" || (policy.profile == "auto" && gpu);
    if !full && settings.base.is_some() {
        settings.make_fast(0)?;
    }
    Ok((settings, if full && gpu { "cuda" } else { "any" }))
}

/// New labels since the taxonomy's last cycle took its snapshot.
async fn labels_since(conn: &mut PgConnection, taxonomy_id: i64, through: i64) -> sqlx::Result<i64> {
    sqlx::query_scalar(
        "SELECT count(*) FROM annotations a JOIN reviews r ON r.id = a.review_id
         WHERE a.id > $2 AND r.taxonomy_id = $1",
    )
    .bind(taxonomy_id)
    .bind(through)
    .fetch_one(conn)
    .await
}

/// New labels since the taxonomy's last cycle took its snapshot (all of them before the
/// first): what the policy's trigger counts.
pub async fn labels_since_last(pool: &PgPool, taxonomy_id: i64) -> sqlx::Result<i64> {
    let mut conn = pool.acquire().await?;
    let through = loops::last_cycle(&mut conn, taxonomy_id).await?.map_or(0, |c| c.labels_through);
    labels_since(&mut conn, taxonomy_id, through).await
}

/// A step's job: deduplicated per cycle and step, so a step is queued once.
fn step_job(kind: &str, cycle: i64, payload: Value, actor: Option<i64>) -> NewJob<'_> {
    let mut job = NewJob::new(kind, payload);
    job.dedup_key = Some(format!("cycle:{cycle}:{kind}"));
    job.created_by = actor;
    job
}

/// Queues a step's job; the one already queued when it is (a step asked for twice).
async fn enqueue(tx: &mut PgConnection, job: &NewJob<'_>) -> sqlx::Result<i64> {
    match queue::enqueue(tx, job).await {
        Ok(id) | Err(EnqueueError::Duplicate(id)) => Ok(id),
        Err(EnqueueError::Database(e)) => Err(e),
    }
}

/// Looks at every enabled policy (each locked for this worker, skipped when another
/// holds it): a cycle whose step's job failed for good is closed as failed; one waiting
/// for the open round composes the next when it is mostly done; with no cycle open, one
/// starts when its trigger is due.
pub async fn tick(pool: &PgPool, data_dir: &std::path::Path) -> anyhow::Result<()> {
    let mut tx = pool.begin().await?;
    for policy in loops::lock_enabled(&mut tx).await? {
        match loops::open_cycle(&mut tx, policy.taxonomy_id).await? {
            Some(cycle) => follow(&mut tx, &policy, &cycle).await?,
            None => {
                if let Some(because) = due(&mut tx, &policy).await? {
                    if let Err(refused) = begin(&mut tx, data_dir, &policy, &because, None).await? {
                        tracing::debug!(taxonomy = policy.taxonomy_id, %refused, "no cycle started");
                    }
                }
            }
        }
    }
    tx.commit().await?;
    Ok(())
}

/// Why a new cycle is due, if one is.
async fn due(tx: &mut PgConnection, policy: &Policy) -> sqlx::Result<Option<String>> {
    let last = loops::last_cycle(tx, policy.taxonomy_id).await?;
    let through = last.as_ref().map_or(0, |c| c.labels_through);
    if let Some(every) = policy.every_labels {
        let new = labels_since(tx, policy.taxonomy_id, through).await?;
        if new >= every as i64 {
            return Ok(Some(format!("labels:{new}")));
        }
    }
    if let (Some(hours), Some(last)) = (policy.every_hours, &last) {
        let elapsed = chrono::Utc::now() - last.started_at;
        if elapsed.num_seconds() as f64 >= hours as f64 * 3600.0 {
            return Ok(Some("schedule".into()));
        }
    }
    Ok(None)
}

/// An open cycle between jobs: failed when its step's job has ended without success,
/// composing once the open rounds are mostly done.
async fn follow(tx: &mut PgConnection, policy: &Policy, cycle: &Cycle) -> anyhow::Result<()> {
    let current = match cycle.state.as_str() {
        "training" => cycle.train_job,
        "comparing" => cycle.compare_job,
        "scoring" => cycle.score_job,
        "composing" => cycle.compose_job,
        _ => None,
    };
    if let Some(job) = current {
        let (status, error): (String, Option<String>) =
            sqlx::query_as("SELECT status, last_error FROM jobs WHERE id = $1")
                .bind(job)
                .fetch_one(&mut *tx)
                .await?;
        if matches!(status.as_str(), "failed" | "cancelled") {
            let note = format!("job {job} {status}: {}", error.unwrap_or_default());
            loops::record_end(tx, cycle.id, None, Some(&note)).await?;
            loops::set_state(tx, cycle.id, "failed", None).await?;
            return Ok(());
        }
    }
    if cycle.state == "waiting_round" {
        compose_when_ready(tx, policy, cycle.id).await?;
    }
    Ok(())
}

/// Queues the compose step once the taxonomy's open rounds are mostly done (or none is
/// open).
async fn compose_when_ready(tx: &mut PgConnection, policy: &Policy, cycle: i64) -> sqlx::Result<()> {
    let (required, done) = crate::store::rounds::open_progress(tx, policy.taxonomy_id).await?;
    if required > 0 && (done as f64) < policy.mostly_done as f64 * required as f64 {
        return Ok(());
    }
    let job = enqueue(tx, &step_job("compose", cycle, json!({"cycle": cycle}), None)).await?;
    loops::set_state(tx, cycle, "composing", Some(("compose_job", job))).await
}

/// Moves the job's cycle to its next step, in the transaction that records the job's
/// success. A job of no cycle changes nothing, but a scoring pass moves the cycle
/// that waits for one.
pub async fn advance(tx: &mut PgConnection, job: &Job, result: &Value) -> anyhow::Result<()> {
    let cycle_id = job.payload.get("cycle").and_then(Value::as_i64);
    match (job.kind.as_str(), cycle_id) {
        ("train", Some(id)) => trained(tx, id, result).await,
        ("compare", Some(id)) => compared(tx, id, result).await,
        ("compose", Some(id)) => {
            let round = result.get("round_id").and_then(Value::as_i64);
            let note = result.get("note").and_then(Value::as_str);
            loops::record_end(tx, id, round, note).await?;
            Ok(loops::set_state(tx, id, "done", None).await?)
        }
        ("score", _) => scored(tx, job).await,
        _ => Ok(()),
    }
}

async fn trained(tx: &mut PgConnection, id: i64, result: &Value) -> anyhow::Result<()> {
    let Some(cycle) = loops::cycle(tx, id).await?.filter(|c| c.state == "training") else { return Ok(()) };
    let version = result.get("version").and_then(Value::as_str).unwrap_or_default();
    loops::record_version(tx, cycle.id, version).await?;
    let job = enqueue(tx, &step_job("compare", id, json!({"cycle": id}), None)).await?;
    Ok(loops::set_state(tx, id, "comparing", Some(("compare_job", job))).await?)
}

async fn compared(tx: &mut PgConnection, id: i64, result: &Value) -> anyhow::Result<()> {
    let Some(cycle) = loops::cycle(tx, id).await?.filter(|c| c.state == "comparing") else { return Ok(()) };
    let decision = result.get("decision").and_then(Value::as_str).unwrap_or("held");
    let reason = result.pointer("/verdict/why").and_then(Value::as_str).unwrap_or_default();
    loops::record_decision(tx, id, decision, reason, result).await?;
    if decision == "promoted" {
        // The promotion queued the new version's scoring pass; the cycle follows it.
        let name = crate::store::taxonomies::name_of(&mut *tx, cycle.taxonomy_id).await?;
        let score: Option<i64> = sqlx::query_scalar(
            "SELECT id FROM jobs WHERE dedup_key = $1 AND status IN ('queued', 'running') ORDER BY id DESC LIMIT 1",
        )
        .bind(format!("score:{name}"))
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(score) = score {
            return Ok(loops::set_state(tx, id, "scoring", Some(("score_job", score))).await?);
        }
    }
    loops::set_state(tx, id, "waiting_round", None).await?;
    let policy = loops::policy(&mut *tx, cycle.taxonomy_id).await?;
    Ok(compose_when_ready(tx, &policy, id).await?)
}

async fn scored(tx: &mut PgConnection, job: &Job) -> anyhow::Result<()> {
    let Some(taxonomy) = job.payload.get("taxonomy").and_then(Value::as_str) else { return Ok(()) };
    let Some(taxonomy_id) = crate::store::taxonomies::find_id(&mut *tx, taxonomy).await? else {
        return Ok(());
    };
    let Some(cycle) = loops::open_cycle(tx, taxonomy_id).await?.filter(|c| c.state == "scoring") else {
        return Ok(());
    };
    loops::set_state(tx, cycle.id, "waiting_round", Some(("score_job", job.id))).await?;
    let policy = loops::policy(&mut *tx, taxonomy_id).await?;
    Ok(compose_when_ready(tx, &policy, cycle.id).await?)
}
