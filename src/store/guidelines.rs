//! Keyword definitions, versioned: an edit is a new version, taking effect at a new
//! guideline revision of the taxonomy, which every later annotation records.

use serde_json::json;
use sqlx::PgPool;

#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize)]
pub struct GuidelineVersion {
    pub version: i32,
    pub body: String,
    pub taxonomy_revision: i32,
    pub created_by: Option<i64>,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

/// Saves a new definition of a keyword; returns its version.
pub async fn edit(pool: &PgPool, keyword_id: i64, body: &str, by: Option<i64>) -> anyhow::Result<i32> {
    let body = body.trim();
    anyhow::ensure!(!body.is_empty(), "a guideline cannot be empty");
    let mut tx = pool.begin().await?;
    let revision: i32 = sqlx::query_scalar(
        "UPDATE taxonomies SET guideline_revision = guideline_revision + 1
         WHERE id = (SELECT taxonomy_id FROM keywords WHERE id = $1) RETURNING guideline_revision",
    )
    .bind(keyword_id)
    .fetch_optional(&mut *tx)
    .await?
    .ok_or_else(|| anyhow::anyhow!("no keyword {keyword_id}"))?;
    let version: i32 = sqlx::query_scalar(
        "INSERT INTO keyword_guidelines (keyword_id, version, body, created_by, taxonomy_revision)
         SELECT $1, coalesce(max(version), 0) + 1, $2, $3, $4 FROM keyword_guidelines WHERE keyword_id = $1
         RETURNING version",
    )
    .bind(keyword_id)
    .bind(body)
    .bind(by)
    .bind(revision)
    .fetch_one(&mut *tx)
    .await?;
    let details = json!({"version": version, "taxonomy_revision": revision});
    super::audit::record(&mut *tx, by, "guideline.edit", &format!("keyword:{keyword_id}"), details).await?;
    tx.commit().await?;
    Ok(version)
}

/// Every version of a keyword's definition, newest first.
pub async fn history(pool: &PgPool, keyword_id: i64) -> sqlx::Result<Vec<GuidelineVersion>> {
    sqlx::query_as(
        "SELECT version, body, taxonomy_revision, created_by, created_at FROM keyword_guidelines
         WHERE keyword_id = $1 ORDER BY version DESC",
    )
    .bind(keyword_id)
    .fetch_all(pool)
    .await
}

/// Labels with this keyword made under an earlier definition than the current one:
/// (review id, annotation id, the guideline revision it was made under, review text).
pub async fn labels_under_older_definition(
    pool: &PgPool,
    keyword_id: i64,
) -> sqlx::Result<Vec<(i64, i64, i32, String)>> {
    sqlx::query_as(
        "SELECT a.review_id, a.id, a.guideline_revision, r.text FROM annotations a
         JOIN reviews r ON r.id = a.review_id
         JOIN annotation_labels l ON l.annotation_id = a.id AND l.keyword_id = $1
         WHERE a.guideline_revision < (SELECT max(taxonomy_revision) FROM keyword_guidelines WHERE keyword_id = $1)
         ORDER BY a.id",
    )
    .bind(keyword_id)
    .fetch_all(pool)
    .await
}
