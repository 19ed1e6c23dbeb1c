//! Switching the serving version: promotion behind the F1 gate, and rollback to the
//! version that served before. Both kinds (keyword, sentiment) of a version switch in
//! one transaction, recorded in the audit log.

use serde_json::json;
use sqlx::PgPool;

use crate::store::jobs::{self, EnqueueError, NewJob};
use crate::store::{audit, models};
use crate::train::compare::{deltas, judged_report, regressions};

#[derive(Debug, thiserror::Error)]
pub enum PromoteError {
    #[error("no ready version `{0}`")]
    NotFound(String),
    #[error("`{0}` is already serving")]
    AlreadyActive(String),
    #[error("F1 falls by more than {margin} for: {labels}; give a reason to promote anyway")]
    Regressions { margin: f64, labels: String },
    #[error("no earlier version to roll back to")]
    NothingToRollBack,
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

pub struct Gate<'a> {
    /// Largest F1 fall per keyword accepted without a reason.
    pub margin: f64,
    /// A non-empty reason promotes despite regressions (recorded).
    pub override_reason: Option<&'a str>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Switched {
    pub from: Option<String>,
    pub to: String,
}

/// Promotes `name`, its gate judged inside the switching transaction under the
/// taxonomy's lock: two promotions at once take turns, and the second is judged
/// against what the first made active (the same version twice: `AlreadyActive`).
pub async fn promote(
    pool: &PgPool,
    taxonomy_id: i64,
    name: &str,
    actor: Option<i64>,
    gate: &Gate<'_>,
) -> Result<Switched, PromoteError> {
    let mut tx = pool.begin().await?;
    models::lock_switch(&mut tx, taxonomy_id).await?;
    let candidate = models::by_name(&mut *tx, taxonomy_id, "keyword", name)
        .await?
        .filter(|v| matches!(v.status.as_str(), "ready" | "active" | "retired"))
        .ok_or_else(|| PromoteError::NotFound(name.to_string()))?;
    if candidate.status == "active" {
        return Err(PromoteError::AlreadyActive(name.to_string()));
    }
    let active = models::active(&mut *tx, taxonomy_id, "keyword").await?;
    let reason = gate.override_reason.map(str::trim).filter(|r| !r.is_empty());
    let new = judged_report(&candidate.metrics).unwrap_or_default();
    let old = active.as_ref().and_then(|a| judged_report(&a.metrics));
    let rows = deltas(&new, old.as_ref());
    let fallen: Vec<String> = regressions(&rows, gate.margin)
        .iter()
        .map(|d| format!("{} ({:+.3})", d.label, d.delta_f1.unwrap_or(f64::NAN)))
        .collect();
    if !fallen.is_empty() && reason.is_none() {
        return Err(PromoteError::Regressions { margin: gate.margin, labels: fallen.join(", ") });
    }
    let details = json!({"regressions": fallen, "override_reason": reason, "margin": gate.margin});
    let from = active.map(|a| a.name);
    switch(tx, taxonomy_id, from, name, actor, "model.promote", details).await
}

/// Serves again the version that was promoted before the current one.
pub async fn rollback(pool: &PgPool, taxonomy_id: i64, actor: Option<i64>) -> Result<Switched, PromoteError> {
    let mut tx = pool.begin().await?;
    models::lock_switch(&mut tx, taxonomy_id).await?;
    let active = models::active(&mut *tx, taxonomy_id, "keyword").await?;
    let previous = models::promoted_before(&mut tx, taxonomy_id).await?;
    let previous = previous.ok_or(PromoteError::NothingToRollBack)?;
    switch(tx, taxonomy_id, active.map(|a| a.name), &previous, actor, "model.rollback", json!({})).await
}

async fn switch(
    mut tx: sqlx::Transaction<'static, sqlx::Postgres>,
    taxonomy_id: i64,
    from: Option<String>,
    to: &str,
    actor: Option<i64>,
    action: &str,
    mut details: serde_json::Value,
) -> Result<Switched, PromoteError> {
    if !models::activate(&mut tx, taxonomy_id, to).await? {
        return Err(PromoteError::NotFound(to.to_string()));
    }
    details["from"] = json!(from);
    audit::record(&mut *tx, actor, action, &format!("version:{to}"), details).await?;
    rescore(&mut tx, taxonomy_id, actor).await?;
    tx.commit().await?;
    Ok(Switched { from, to: to.to_string() })
}

/// The new serving version scores the pool next (strategies read its scores); queued
/// with the switch, so neither happens without the other.
async fn rescore(tx: &mut sqlx::PgConnection, taxonomy_id: i64, actor: Option<i64>) -> sqlx::Result<()> {
    let name: String = sqlx::query_scalar("SELECT name FROM taxonomies WHERE id = $1")
        .bind(taxonomy_id)
        .fetch_one(&mut *tx)
        .await?;
    // The old version's chunks that have not started are moot now.
    if let Some(serving) = models::active(&mut *tx, taxonomy_id, "keyword").await? {
        jobs::cancel_stale_chunks(tx, &name, serving.id).await?;
    }
    let mut job = NewJob::new("score", json!({"taxonomy": name}));
    job.dedup_key = Some(format!("score:{name}"));
    job.created_by = actor;
    match jobs::enqueue(tx, &job).await {
        Ok(_) | Err(EnqueueError::Duplicate(_)) => Ok(()),
        Err(EnqueueError::Database(e)) => Err(e),
    }
}
