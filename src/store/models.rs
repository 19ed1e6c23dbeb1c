//! Model versions and the label snapshots they were trained on.

use sqlx::{PgPool, Postgres, Transaction};

/// Freezes "every annotation so far" of a taxonomy as a training set.
pub async fn snapshot(pool: &PgPool, taxonomy_id: i64, created_by: Option<i64>) -> sqlx::Result<(i64, i64)> {
    let max: i64 = sqlx::query_scalar("SELECT coalesce(max(id), 0) FROM annotations").fetch_one(pool).await?;
    let id = sqlx::query_scalar(
        "INSERT INTO label_snapshots (taxonomy_id, max_annotation_id, created_by) VALUES ($1, $2, $3) RETURNING id",
    )
    .bind(taxonomy_id)
    .bind(max)
    .bind(created_by)
    .fetch_one(pool)
    .await?;
    Ok((id, max))
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
}

pub async fn insert(tx: &mut Transaction<'_, Postgres>, v: &NewVersion<'_>) -> sqlx::Result<i64> {
    sqlx::query_scalar(
        "INSERT INTO model_versions (taxonomy_id, kind, name, path, status, base_encoder, label_snapshot_id, params, metrics)
         VALUES ($1, $2, $3, $4, 'ready', $5, $6, $7, $8) RETURNING id",
    )
    .bind(v.taxonomy_id)
    .bind(v.kind)
    .bind(v.name)
    .bind(v.path)
    .bind(v.base_encoder)
    .bind(v.snapshot_id)
    .bind(&v.params)
    .bind(&v.metrics)
    .fetch_one(&mut **tx)
    .await
}
