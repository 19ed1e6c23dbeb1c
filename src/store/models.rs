//! Model versions and the label snapshots they were trained on.

use sqlx::{PgPool, Postgres, Transaction};

/// Freezes "every annotation so far" of a taxonomy as a training set; returns its id
/// and cut-off.
pub async fn snapshot<'e, E>(
    executor: E,
    taxonomy_id: i64,
    created_by: Option<i64>,
) -> sqlx::Result<(i64, i64)>
where
    E: sqlx::Executor<'e, Database = Postgres>,
{
    sqlx::query_as(
        "INSERT INTO label_snapshots (taxonomy_id, max_annotation_id, created_by)
         SELECT $1, coalesce(max(id), 0), $2 FROM annotations RETURNING id, max_annotation_id",
    )
    .bind(taxonomy_id)
    .bind(created_by)
    .fetch_one(executor)
    .await
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Snapshot {
    pub id: i64,
    pub max_annotation_id: i64,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

/// A taxonomy's label snapshots, newest first.
pub async fn snapshots(pool: &PgPool, taxonomy_id: i64, limit: i64) -> sqlx::Result<Vec<Snapshot>> {
    sqlx::query_as(
        "SELECT id, max_annotation_id, created_at FROM label_snapshots WHERE taxonomy_id = $1 ORDER BY id DESC LIMIT $2",
    )
    .bind(taxonomy_id)
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// The last annotation id of a taxonomy's snapshot.
pub async fn snapshot_cutoff(pool: &PgPool, taxonomy_id: i64, snapshot_id: i64) -> anyhow::Result<i64> {
    sqlx::query_scalar("SELECT max_annotation_id FROM label_snapshots WHERE id = $1 AND taxonomy_id = $2")
        .bind(snapshot_id)
        .bind(taxonomy_id)
        .fetch_optional(pool)
        .await?
        .ok_or_else(|| anyhow::anyhow!("label snapshot {snapshot_id} does not belong to this taxonomy"))
}

pub struct NewVersion<'a> {
    pub taxonomy_id: i64,
    pub kind: &'a str,
    pub name: &'a str,
    pub path: &'a str,
    pub base_encoder: &'a str,
    pub snapshot_id: i64,
    pub params: serde_json::Value,
    pub metrics: serde_json::Value,
    /// Its files in shared storage (`storage`).
    pub bundle_id: Option<i64>,
}

pub async fn insert(tx: &mut Transaction<'_, Postgres>, v: &NewVersion<'_>) -> sqlx::Result<i64> {
    sqlx::query_scalar(
        "INSERT INTO model_versions (taxonomy_id, kind, name, path, status, base_encoder, label_snapshot_id, params, metrics,
                                     bundle_id)
         VALUES ($1, $2, $3, $4, 'ready', $5, $6, $7, $8, $9) RETURNING id",
    )
    .bind(v.taxonomy_id)
    .bind(v.kind)
    .bind(v.name)
    .bind(v.path)
    .bind(v.base_encoder)
    .bind(v.snapshot_id)
    .bind(&v.params)
    .bind(&v.metrics)
    .bind(v.bundle_id)
    .fetch_one(&mut **tx)
    .await
}

#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize)]
pub struct ModelVersion {
    pub id: i64,
    pub taxonomy_id: i64,
    pub kind: String,
    pub name: String,
    /// The model's own folder (`<taxonomy>/<version>/keyword` under a host's data dir;
    /// absolute for versions from before shared storage). `storage` opens it.
    pub path: String,
    pub status: String,
    pub base_encoder: String,
    pub metrics: serde_json::Value,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub promoted_at: Option<chrono::DateTime<chrono::Utc>>,
    pub bundle_id: Option<i64>,
}

const VERSION_COLUMNS: &str =
    "v.id, v.taxonomy_id, v.kind, v.name, v.path, v.status, v.base_encoder, v.metrics, v.created_at, v.promoted_at,
     v.bundle_id";

/// The keyword model that serves a taxonomy: the active one, else the newest ready one.
pub async fn current_keyword(pool: &PgPool, taxonomy_id: i64) -> sqlx::Result<Option<ModelVersion>> {
    sqlx::query_as(&format!(
        "SELECT {VERSION_COLUMNS} FROM model_versions v
         WHERE v.taxonomy_id = $1 AND v.kind = 'keyword' AND v.status IN ('active', 'ready')
         ORDER BY v.status = 'active' DESC, v.id DESC LIMIT 1"
    ))
    .bind(taxonomy_id)
    .fetch_optional(pool)
    .await
}

/// The version that serves a taxonomy (the active one, else the newest ready one), or
/// an error that says how to get one.
pub async fn serving(pool: &PgPool, taxonomy: &str) -> anyhow::Result<ModelVersion> {
    let id = super::taxonomies::find_id(pool, taxonomy).await?;
    let version = match id {
        Some(id) => current_keyword(pool, id).await?,
        None => None,
    };
    version
        .ok_or_else(|| anyhow::anyhow!("no trained model for `{taxonomy}` yet: run `reviewloop train` first"))
}

/// The label cut-off (last annotation id) of the taxonomy's first snapshot: the first
/// training set, which the rarity model is trained on.
pub async fn first_snapshot(pool: &PgPool, taxonomy_id: i64) -> sqlx::Result<Option<i64>> {
    sqlx::query_scalar(
        "SELECT max_annotation_id FROM label_snapshots WHERE taxonomy_id = $1 ORDER BY id LIMIT 1",
    )
    .bind(taxonomy_id)
    .fetch_optional(pool)
    .await
}

/// The label snapshot a model version was trained on.
pub async fn snapshot_of(pool: &PgPool, version_id: i64) -> sqlx::Result<Option<i64>> {
    sqlx::query_scalar("SELECT label_snapshot_id FROM model_versions WHERE id = $1")
        .bind(version_id)
        .fetch_one(pool)
        .await
}

pub async fn get(pool: &PgPool, id: i64) -> sqlx::Result<Option<ModelVersion>> {
    sqlx::query_as(&format!("SELECT {VERSION_COLUMNS} FROM model_versions v WHERE v.id = $1"))
        .bind(id)
        .fetch_optional(pool)
        .await
}

pub async fn by_name<'e>(
    pool: impl sqlx::PgExecutor<'e>,
    taxonomy_id: i64,
    kind: &str,
    name: &str,
) -> sqlx::Result<Option<ModelVersion>> {
    sqlx::query_as(&format!(
        "SELECT {VERSION_COLUMNS} FROM model_versions v WHERE v.taxonomy_id = $1 AND v.kind = $2 AND v.name = $3"
    ))
    .bind(taxonomy_id)
    .bind(kind)
    .bind(name)
    .fetch_optional(pool)
    .await
}

pub async fn active<'e>(
    pool: impl sqlx::PgExecutor<'e>,
    taxonomy_id: i64,
    kind: &str,
) -> sqlx::Result<Option<ModelVersion>> {
    sqlx::query_as(&format!(
        "SELECT {VERSION_COLUMNS} FROM model_versions v WHERE v.taxonomy_id = $1 AND v.kind = $2 AND v.status = 'active'"
    ))
    .bind(taxonomy_id)
    .bind(kind)
    .fetch_optional(pool)
    .await
}

/// Versions of one kind, newest first.
pub async fn list(pool: &PgPool, taxonomy_id: i64, kind: &str) -> sqlx::Result<Vec<ModelVersion>> {
    sqlx::query_as(&format!(
        "SELECT {VERSION_COLUMNS} FROM model_versions v WHERE v.taxonomy_id = $1 AND v.kind = $2 ORDER BY v.id DESC"
    ))
    .bind(taxonomy_id)
    .bind(kind)
    .fetch_all(pool)
    .await
}

/// Takes the taxonomy's switch lock for the transaction: one promotion or rollback of a
/// taxonomy at a time.
pub async fn lock_switch(tx: &mut sqlx::PgConnection, taxonomy_id: i64) -> sqlx::Result<()> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext('reviewloop switch'), $1::int)")
        .bind(taxonomy_id as i32)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

/// The version that served before the current one (the latest promoted, now ready).
pub async fn promoted_before(tx: &mut sqlx::PgConnection, taxonomy_id: i64) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar(
        "SELECT name FROM model_versions
         WHERE taxonomy_id = $1 AND kind = 'keyword' AND status = 'ready' AND promoted_at IS NOT NULL
         ORDER BY promoted_at DESC LIMIT 1",
    )
    .bind(taxonomy_id)
    .fetch_optional(&mut *tx)
    .await
}

/// Makes `name` (both kinds) the serving version; the one serving goes back to
/// `ready`, so it can be promoted again. False when `name` is not ready or retired.
pub async fn activate(tx: &mut sqlx::PgConnection, taxonomy_id: i64, name: &str) -> sqlx::Result<bool> {
    sqlx::query("UPDATE model_versions SET status = 'ready' WHERE taxonomy_id = $1 AND status = 'active'")
        .bind(taxonomy_id)
        .execute(&mut *tx)
        .await?;
    let switched = sqlx::query(
        "UPDATE model_versions SET status = 'active', promoted_at = now()
         WHERE taxonomy_id = $1 AND name = $2 AND status IN ('ready', 'retired')",
    )
    .bind(taxonomy_id)
    .bind(name)
    .execute(&mut *tx)
    .await?;
    Ok(switched.rows_affected() > 0)
}
