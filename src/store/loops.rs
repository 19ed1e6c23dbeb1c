//! Loop policies and their cycles (`cycles` decides what happens; this is their SQL),
//! and the registry of running workers.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::{PgConnection, PgPool};

/// When and how a taxonomy's models are retrained, promoted and followed by a round.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow, Serialize, Deserialize)]
pub struct Policy {
    pub taxonomy_id: i64,
    pub enabled: bool,
    pub every_labels: Option<i32>,
    pub every_hours: Option<f32>,
    /// `auto`, `fast` or `full`.
    pub profile: String,
    /// `auto` (by the rule) or `hold` (always a person).
    pub promote: String,
    pub margin: f32,
    pub max_drop: f32,
    pub round_size: i32,
    pub assist: String,
    pub double_share: f32,
    pub mostly_done: f32,
}

impl Policy {
    /// A taxonomy's policy before anyone set one: off, retrain every 50 labels, the
    /// fast profile (or full on a GPU), promote by the rule, rounds of 30 with
    /// suggestions shown.
    pub fn default_for(taxonomy_id: i64) -> Policy {
        Policy {
            taxonomy_id,
            enabled: false,
            every_labels: Some(50),
            every_hours: None,
            profile: "auto".into(),
            promote: "auto".into(),
            margin: 0.0,
            max_drop: 0.05,
            round_size: 30,
            assist: "shown".into(),
            double_share: 0.1,
            mostly_done: 0.8,
        }
    }
}

const POLICY: &str = "taxonomy_id, enabled, every_labels, every_hours, profile, promote, margin, max_drop,
    round_size, assist, double_share, mostly_done";

pub async fn policy<'e>(executor: impl sqlx::PgExecutor<'e>, taxonomy_id: i64) -> sqlx::Result<Policy> {
    let found: Option<Policy> =
        sqlx::query_as(&format!("SELECT {POLICY} FROM loop_policies WHERE taxonomy_id = $1"))
            .bind(taxonomy_id)
            .fetch_optional(executor)
            .await?;
    Ok(found.unwrap_or_else(|| Policy::default_for(taxonomy_id)))
}

pub async fn policy_saved(pool: &PgPool, taxonomy_id: i64) -> sqlx::Result<bool> {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM loop_policies WHERE taxonomy_id = $1)")
        .bind(taxonomy_id)
        .fetch_one(pool)
        .await
}

/// Enabled policies not held by another transaction, each locked until `tx` ends.
pub async fn lock_enabled(tx: &mut PgConnection) -> sqlx::Result<Vec<Policy>> {
    sqlx::query_as(&format!(
        "SELECT {POLICY} FROM loop_policies WHERE enabled ORDER BY taxonomy_id FOR UPDATE SKIP LOCKED"
    ))
    .fetch_all(&mut *tx)
    .await
}

pub async fn save_policy(pool: &PgPool, p: &Policy, by: Option<i64>) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO loop_policies (taxonomy_id, enabled, every_labels, every_hours, profile, promote, margin,
             max_drop, round_size, assist, double_share, mostly_done, updated_by)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
         ON CONFLICT (taxonomy_id) DO UPDATE SET enabled = $2, every_labels = $3, every_hours = $4,
             profile = $5, promote = $6, margin = $7, max_drop = $8, round_size = $9, assist = $10,
             double_share = $11, mostly_done = $12, updated_by = $13, updated_at = now()",
    )
    .bind(p.taxonomy_id)
    .bind(p.enabled)
    .bind(p.every_labels)
    .bind(p.every_hours)
    .bind(&p.profile)
    .bind(&p.promote)
    .bind(p.margin)
    .bind(p.max_drop)
    .bind(p.round_size)
    .bind(&p.assist)
    .bind(p.double_share)
    .bind(p.mostly_done)
    .bind(by)
    .execute(pool)
    .await?;
    Ok(())
}

/// One run of the loop.
#[derive(Debug, Clone, sqlx::FromRow, Serialize)]
pub struct Cycle {
    pub id: i64,
    pub taxonomy_id: i64,
    pub started_because: String,
    pub started_at: DateTime<Utc>,
    pub snapshot_id: i64,
    pub labels_through: i64,
    pub labels: i32,
    pub state: String,
    pub train_job: Option<i64>,
    pub compare_job: Option<i64>,
    pub score_job: Option<i64>,
    pub compose_job: Option<i64>,
    pub version: Option<String>,
    pub decision: Option<String>,
    pub decision_reason: Option<String>,
    pub comparison: Option<serde_json::Value>,
    pub round_id: Option<i64>,
    pub note: Option<String>,
    pub finished_at: Option<DateTime<Utc>>,
}

const CYCLE: &str =
    "id, taxonomy_id, started_because, started_at, snapshot_id, labels_through, labels, state,
    train_job, compare_job, score_job, compose_job, version, decision, decision_reason, comparison, round_id,
    note, finished_at";

pub struct NewCycle<'a> {
    pub taxonomy_id: i64,
    pub started_because: &'a str,
    pub started_by: Option<i64>,
    pub snapshot_id: i64,
    pub labels_through: i64,
    pub labels: i32,
}

/// Records a new cycle in its training step; `None` when one is open already (the
/// unique index: one at a time per taxonomy).
pub async fn insert_cycle(tx: &mut PgConnection, c: &NewCycle<'_>) -> sqlx::Result<Option<i64>> {
    sqlx::query_scalar(
        "INSERT INTO loop_cycles (taxonomy_id, started_because, started_by, snapshot_id, labels_through, labels, state)
         VALUES ($1, $2, $3, $4, $5, $6, 'training')
         ON CONFLICT (taxonomy_id) WHERE state NOT IN ('done', 'failed') DO NOTHING RETURNING id",
    )
    .bind(c.taxonomy_id)
    .bind(c.started_because)
    .bind(c.started_by)
    .bind(c.snapshot_id)
    .bind(c.labels_through)
    .bind(c.labels)
    .fetch_optional(&mut *tx)
    .await
}

pub async fn cycle(conn: &mut PgConnection, id: i64) -> sqlx::Result<Option<Cycle>> {
    sqlx::query_as(&format!("SELECT {CYCLE} FROM loop_cycles WHERE id = $1 FOR UPDATE"))
        .bind(id)
        .fetch_optional(&mut *conn)
        .await
}

/// The taxonomy's cycle that is not over, locked.
pub async fn open_cycle(conn: &mut PgConnection, taxonomy_id: i64) -> sqlx::Result<Option<Cycle>> {
    sqlx::query_as(&format!(
        "SELECT {CYCLE} FROM loop_cycles WHERE taxonomy_id = $1 AND state NOT IN ('done', 'failed') FOR UPDATE"
    ))
    .bind(taxonomy_id)
    .fetch_optional(&mut *conn)
    .await
}

pub async fn last_cycle(conn: &mut PgConnection, taxonomy_id: i64) -> sqlx::Result<Option<Cycle>> {
    sqlx::query_as(&format!(
        "SELECT {CYCLE} FROM loop_cycles WHERE taxonomy_id = $1 ORDER BY id DESC LIMIT 1"
    ))
    .bind(taxonomy_id)
    .fetch_optional(&mut *conn)
    .await
}

/// The latest cycles of a taxonomy, newest first.
pub async fn cycles(pool: &PgPool, taxonomy_id: i64, limit: i64) -> sqlx::Result<Vec<Cycle>> {
    sqlx::query_as(&format!(
        "SELECT {CYCLE} FROM loop_cycles WHERE taxonomy_id = $1 ORDER BY id DESC LIMIT $2"
    ))
    .bind(taxonomy_id)
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// Moves a cycle to `state`, setting one of its job columns when given.
pub async fn set_state(
    conn: &mut PgConnection,
    id: i64,
    state: &str,
    job: Option<(&str, i64)>,
) -> sqlx::Result<()> {
    let column = match job.map(|j| j.0) {
        Some(c @ ("train_job" | "compare_job" | "score_job" | "compose_job")) => c,
        Some(other) => return Err(sqlx::Error::Protocol(format!("no job column {other}"))),
        None => "train_job",
    };
    let finished = matches!(state, "done" | "failed");
    sqlx::query(&format!(
        "UPDATE loop_cycles SET state = $2, {column} = coalesce($3, {column}),
             finished_at = CASE WHEN $4 THEN now() ELSE finished_at END WHERE id = $1"
    ))
    .bind(id)
    .bind(state)
    .bind(job.map(|j| j.1))
    .bind(finished)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// What the training made and what the comparison decided.
pub async fn record_version(conn: &mut PgConnection, id: i64, version: &str) -> sqlx::Result<()> {
    sqlx::query("UPDATE loop_cycles SET version = $2 WHERE id = $1")
        .bind(id)
        .bind(version)
        .execute(conn)
        .await?;
    Ok(())
}

pub async fn record_decision(
    conn: &mut PgConnection,
    id: i64,
    decision: &str,
    reason: &str,
    comparison: &serde_json::Value,
) -> sqlx::Result<()> {
    sqlx::query("UPDATE loop_cycles SET decision = $2, decision_reason = $3, comparison = $4 WHERE id = $1")
        .bind(id)
        .bind(decision)
        .bind(reason)
        .bind(comparison)
        .execute(conn)
        .await?;
    Ok(())
}

pub async fn record_end(
    conn: &mut PgConnection,
    id: i64,
    round: Option<i64>,
    note: Option<&str>,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE loop_cycles SET round_id = coalesce($2, round_id), note = coalesce($3, note) WHERE id = $1",
    )
    .bind(id)
    .bind(round)
    .bind(note)
    .execute(conn)
    .await?;
    Ok(())
}

/// A running worker, seen now.
pub async fn worker_seen(pool: &PgPool, id: &str, kinds: &[String], devices: &[String]) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO workers (id, kinds, devices) VALUES ($1, $2, $3)
         ON CONFLICT (id) DO UPDATE SET kinds = $2, devices = $3, last_seen = now()",
    )
    .bind(id)
    .bind(kinds)
    .bind(devices)
    .execute(pool)
    .await?;
    Ok(())
}

/// Whether a worker that trains on a GPU has been seen in the last few minutes.
pub async fn gpu_worker_seen(conn: &mut PgConnection) -> sqlx::Result<bool> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM workers WHERE 'cuda' = ANY(devices) AND 'train' = ANY(kinds)
                        AND last_seen > now() - interval '5 minutes')",
    )
    .fetch_one(conn)
    .await
}
