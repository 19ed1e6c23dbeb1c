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

/// The folder of the version that serves a taxonomy: the active one, else the newest
/// ready one.
pub async fn current_dir(pool: &PgPool, taxonomy: &str) -> anyhow::Result<std::path::PathBuf> {
    let path: Option<String> = sqlx::query_scalar(
        "SELECT v.path FROM model_versions v JOIN taxonomies t ON t.id = v.taxonomy_id
         WHERE t.name = $1 AND v.kind = 'keyword' AND v.status IN ('active', 'ready')
         ORDER BY v.status = 'active' DESC, v.id DESC LIMIT 1",
    )
    .bind(taxonomy)
    .fetch_optional(pool)
    .await?;
    let path = path.ok_or_else(|| {
        anyhow::anyhow!("no trained model for `{taxonomy}` yet: run `reviewloop train` first")
    })?;
    let keyword_dir = std::path::PathBuf::from(path);
    Ok(keyword_dir.parent().map(|p| p.to_path_buf()).unwrap_or(keyword_dir))
}
