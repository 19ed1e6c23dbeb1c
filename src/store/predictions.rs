//! What the active models said about each review (scoring), and the pool the round
//! composer picks from.

use std::collections::HashMap;

use sqlx::PgPool;

use crate::rounds::GroupBy;
use crate::select::{Pool, Strategy};

/// One scored review, ready to store.
#[derive(Debug, Clone)]
pub struct Prediction {
    pub review_id: i64,
    pub keyword_probs: Vec<f32>,
    /// Level distribution per found keyword, by keyword name.
    pub sentiment: serde_json::Value,
    pub embedding: Vec<f32>,
    pub rarity: f32,
    pub boundary: f32,
    pub uncertainty: Option<f32>,
}

/// Reviews of the taxonomy that `model_version_id` has not scored yet, oldest first.
pub async fn unscored(
    pool: &PgPool,
    taxonomy_id: i64,
    model_version_id: i64,
    limit: usize,
) -> sqlx::Result<Vec<(i64, String)>> {
    sqlx::query_as(
        "SELECT r.id, r.text FROM reviews r
         WHERE r.taxonomy_id = $1
           AND NOT EXISTS (SELECT 1 FROM predictions p WHERE p.review_id = r.id AND p.model_version_id = $2)
         ORDER BY r.id LIMIT $3",
    )
    .bind(taxonomy_id)
    .bind(model_version_id)
    .bind(limit as i64)
    .fetch_all(pool)
    .await
}

/// (scored, all) reviews of the taxonomy for this version.
pub async fn coverage(pool: &PgPool, taxonomy_id: i64, model_version_id: i64) -> sqlx::Result<(i64, i64)> {
    sqlx::query_as(
        "SELECT (SELECT count(*) FROM predictions p JOIN reviews r ON r.id = p.review_id
                 WHERE p.model_version_id = $2 AND r.taxonomy_id = $1),
                (SELECT count(*) FROM reviews WHERE taxonomy_id = $1)",
    )
    .bind(taxonomy_id)
    .bind(model_version_id)
    .fetch_one(pool)
    .await
}

/// Stores a batch in one transaction: a crash keeps whole batches only, and scoring
/// resumes after the last one stored.
pub async fn insert_batch(pool: &PgPool, model_version_id: i64, batch: &[Prediction]) -> sqlx::Result<()> {
    let mut tx = pool.begin().await?;
    for p in batch {
        sqlx::query(
            "INSERT INTO predictions (review_id, model_version_id, keyword_probs, sentiment, embedding, rarity, boundary, uncertainty)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
             ON CONFLICT (review_id, model_version_id) DO NOTHING",
        )
        .bind(p.review_id)
        .bind(model_version_id)
        .bind(&p.keyword_probs)
        .bind(&p.sentiment)
        .bind(&p.embedding)
        .bind(p.rarity)
        .bind(p.boundary)
        .bind(p.uncertainty)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await
}

/// Forgets a version's scores (before scoring everything again).
pub async fn clear(pool: &PgPool, taxonomy_id: i64, model_version_id: i64) -> sqlx::Result<u64> {
    let done = sqlx::query(
        "DELETE FROM predictions p USING reviews r
         WHERE r.id = p.review_id AND r.taxonomy_id = $1 AND p.model_version_id = $2",
    )
    .bind(taxonomy_id)
    .bind(model_version_id)
    .execute(pool)
    .await?;
    Ok(done.rows_affected())
}

/// Every stored embedding of the version, by review id.
pub async fn embeddings(pool: &PgPool, model_version_id: i64) -> sqlx::Result<(Vec<i64>, Vec<Vec<f32>>)> {
    let rows: Vec<(i64, Vec<f32>)> = sqlx::query_as(
        "SELECT review_id, embedding FROM predictions
         WHERE model_version_id = $1 AND embedding IS NOT NULL ORDER BY review_id",
    )
    .bind(model_version_id)
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().unzip())
}

pub async fn set_clusters(
    pool: &PgPool,
    model_version_id: i64,
    review_ids: &[i64],
    clusters: &[i32],
    outliers: &[f32],
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE predictions p SET cluster = t.cluster, outlier = t.outlier
         FROM UNNEST($2::bigint[], $3::int[], $4::real[]) AS t(review_id, cluster, outlier)
         WHERE p.model_version_id = $1 AND p.review_id = t.review_id",
    )
    .bind(model_version_id)
    .bind(review_ids)
    .bind(clusters)
    .bind(outliers)
    .execute(pool)
    .await?;
    Ok(())
}

/// The reviews a new round may take (not labelled, not queued in an open round; texts
/// of those that are, so their duplicates are passed over), with
/// the version's strategy scores (NaN where unscored) and their mall / category group.
/// Read as columns in one row: a million candidates arrive in well under a second.
pub async fn candidates(
    pool: &PgPool,
    taxonomy_id: i64,
    model_version_id: Option<i64>,
    group_by: GroupBy,
) -> sqlx::Result<Pool> {
    type Columns = (
        Option<Vec<i64>>,
        Option<Vec<i32>>,
        Option<Vec<i64>>,
        Option<Vec<f32>>,
        Option<Vec<f32>>,
        Option<Vec<f32>>,
        Option<Vec<f32>>,
    );
    let (ids, groups, keys, boundary, uncertainty, rarity, outlier): Columns = sqlx::query_as(
        "WITH eligible AS (
             SELECT r.id, r.text,
                    CASE WHEN $3 THEN r.mall ELSE '' END AS g_mall,
                    CASE WHEN $4 THEN r.category ELSE '' END AS g_category
             FROM reviews r
             WHERE r.taxonomy_id = $1
               AND NOT EXISTS (SELECT 1 FROM annotations a WHERE a.review_id = r.id)
               AND NOT EXISTS (SELECT 1 FROM round_items i JOIN rounds o ON o.id = i.round_id
                               WHERE i.review_id = r.id AND o.status = 'open')),
         grouped AS (
             SELECT e.*, (dense_rank() OVER (ORDER BY e.g_mall, e.g_category) - 1)::int AS g FROM eligible e)
         SELECT array_agg(g.id ORDER BY g.id), array_agg(g.g ORDER BY g.id),
                array_agg(hashtextextended(g.text, 0) ORDER BY g.id),
                array_agg(coalesce(p.boundary, 'NaN') ORDER BY g.id),
                array_agg(coalesce(p.uncertainty, 'NaN') ORDER BY g.id),
                array_agg(coalesce(p.rarity, 'NaN') ORDER BY g.id),
                array_agg(coalesce(p.outlier, 'NaN') ORDER BY g.id)
         FROM grouped g LEFT JOIN predictions p ON p.review_id = g.id AND p.model_version_id = $2",
    )
    .bind(taxonomy_id)
    .bind(model_version_id)
    .bind(group_by.uses_mall())
    .bind(group_by.uses_category())
    .fetch_one(pool)
    .await?;
    let taken_texts: Vec<i64> = sqlx::query_scalar(
        "SELECT DISTINCT hashtextextended(r.text, 0) FROM reviews r
         WHERE r.taxonomy_id = $1
           AND (EXISTS (SELECT 1 FROM annotations a WHERE a.review_id = r.id)
                OR EXISTS (SELECT 1 FROM round_items i JOIN rounds o ON o.id = i.round_id
                           WHERE i.review_id = r.id AND o.status = 'open'))",
    )
    .bind(taxonomy_id)
    .fetch_all(pool)
    .await?;
    let mut scores = HashMap::new();
    scores.insert(Strategy::KeywordBoundary, boundary.unwrap_or_default());
    scores.insert(Strategy::SentimentUncertainty, uncertainty.unwrap_or_default());
    scores.insert(Strategy::RareTokens, rarity.unwrap_or_default());
    scores.insert(Strategy::ClusterOutliers, outlier.unwrap_or_default());
    Ok(Pool {
        review_ids: ids.unwrap_or_default(),
        groups: groups.unwrap_or_default().into_iter().map(|g| g as u32).collect(),
        text_keys: keys.unwrap_or_default(),
        taken_texts,
        scores,
    })
}

/// Whether some of the version's predictions still lack a cluster (clustering runs
/// after the last batch; a crash in between leaves them so).
pub async fn needs_clustering(pool: &PgPool, model_version_id: i64) -> sqlx::Result<bool> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM predictions WHERE model_version_id = $1 AND cluster IS NULL)",
    )
    .bind(model_version_id)
    .fetch_one(pool)
    .await
}
