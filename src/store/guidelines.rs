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

/// The labels with this keyword that predate its current definition and are still
/// their review's latest annotation (re-labelled reviews are done), in annotation
/// order after `after`, at most `limit`: (review, annotation, revision, text). Read
/// along the keyword's labels (`annotation_labels_keyword_idx`).
pub async fn labels_under_older_definition(
    pool: &PgPool,
    keyword_id: i64,
    after: i64,
    limit: i64,
) -> sqlx::Result<Vec<(i64, i64, i32, String)>> {
    sqlx::query_as(&format!(
        "{OLDER} SELECT a.review_id, a.id, a.guideline_revision, r.text FROM older a
         JOIN reviews r ON r.id = a.review_id WHERE a.id > $2 ORDER BY a.id LIMIT $3"
    ))
    .bind(keyword_id)
    .bind(after)
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// How many [`labels_under_older_definition`] there are, counted up to `cap` (a
/// count costs the labels it reads; past the cap a page says "cap+").
pub async fn count_labels_under_older_definition(
    pool: &PgPool,
    keyword_id: i64,
    cap: i64,
) -> sqlx::Result<i64> {
    sqlx::query_scalar(&format!("{OLDER} SELECT count(*) FROM (SELECT 1 FROM older LIMIT $2) capped"))
        .bind(keyword_id)
        .bind(cap)
        .fetch_one(pool)
        .await
}

/// Whether the keyword's definition was ever edited (only then can labels predate it).
pub async fn edited(pool: &PgPool, keyword_id: i64) -> sqlx::Result<bool> {
    sqlx::query_scalar("SELECT count(*) > 1 FROM keyword_guidelines WHERE keyword_id = $1")
        .bind(keyword_id)
        .fetch_one(pool)
        .await
}

/// The annotations behind [`labels_under_older_definition`] (keyword `$1`).
const OLDER: &str = "
    WITH older AS (
        SELECT l.annotation_id AS id, a.review_id, a.guideline_revision FROM annotation_labels l
        JOIN annotations a ON a.id = l.annotation_id
        WHERE l.keyword_id = $1
          AND a.guideline_revision < (SELECT max(taxonomy_revision) FROM keyword_guidelines WHERE keyword_id = $1)
          AND NOT EXISTS (SELECT 1 FROM annotations b WHERE b.review_id = a.review_id AND b.id > a.id))";
