//! What the active models said about each review (scoring), and the pool the round
//! composer picks from.

use std::collections::HashMap;

use futures_util::{StreamExt, TryStreamExt};
use sqlx::PgPool;

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
    pub balance: f32,
    pub boundary_keyword: Option<i16>,
}

/// Reviews of the taxonomy with ids in `from..=to` that `model_version_id` has not
/// scored yet, oldest first.
pub async fn unscored(
    pool: &PgPool,
    taxonomy_id: i64,
    model_version_id: i64,
    (from, to): (i64, i64),
    limit: usize,
) -> sqlx::Result<Vec<(i64, String)>> {
    sqlx::query_as(
        "SELECT r.id, r.text FROM reviews r
         WHERE r.taxonomy_id = $1 AND r.id BETWEEN $4 AND $5
           AND NOT EXISTS (SELECT 1 FROM predictions p WHERE p.review_id = r.id AND p.model_version_id = $2)
         ORDER BY r.id LIMIT $3",
    )
    .bind(taxonomy_id)
    .bind(model_version_id)
    .bind(limit as i64)
    .bind(from)
    .bind(to)
    .fetch_all(pool)
    .await
}

/// The id ranges of the reviews `model_version_id` has not scored, `size` reviews each
/// (the last one fewer): the chunks of a sharded scoring pass.
pub async fn unscored_ranges(
    pool: &PgPool,
    taxonomy_id: i64,
    model_version_id: i64,
    size: usize,
) -> sqlx::Result<Vec<(i64, i64)>> {
    sqlx::query_as(
        "SELECT min(id), max(id) FROM (
             SELECT r.id, (row_number() OVER (ORDER BY r.id) - 1) / $3 AS part FROM reviews r
             WHERE r.taxonomy_id = $1
               AND NOT EXISTS (SELECT 1 FROM predictions p WHERE p.review_id = r.id AND p.model_version_id = $2)
         ) t GROUP BY part ORDER BY part",
    )
    .bind(taxonomy_id)
    .bind(model_version_id)
    .bind(size.max(1) as i64)
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

/// Stores a batch (predictions and their strategy scores) in one transaction: a crash
/// keeps whole batches only, and scoring resumes after the last one stored.
pub async fn insert_batch(pool: &PgPool, model_version_id: i64, batch: &[Prediction]) -> sqlx::Result<()> {
    let mut tx = pool.begin().await?;
    for p in batch {
        let inserted = sqlx::query(
            "INSERT INTO predictions (review_id, model_version_id, keyword_probs, sentiment, embedding, rarity)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (review_id, model_version_id) DO NOTHING",
        )
        .bind(p.review_id)
        .bind(model_version_id)
        .bind(&p.keyword_probs)
        .bind(&p.sentiment)
        .bind(&p.embedding)
        .bind(p.rarity)
        .execute(&mut *tx)
        .await?;
        if inserted.rows_affected() == 0 {
            continue;
        }
        sqlx::query(
            "INSERT INTO review_scores (review_id, model_version_id, boundary, uncertainty, rarity, balance,
                                        boundary_keyword)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(p.review_id)
        .bind(model_version_id)
        .bind(p.boundary)
        .bind(p.uncertainty)
        .bind(p.rarity)
        .bind(p.balance)
        .bind(p.boundary_keyword)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await
}

/// Forgets a version's scores (before scoring everything again).
pub async fn clear(pool: &PgPool, taxonomy_id: i64, model_version_id: i64) -> sqlx::Result<u64> {
    let mut tx = pool.begin().await?;
    let mut deleted = 0;
    for table in ["review_scores", "predictions"] {
        let done = sqlx::query(&format!(
            "DELETE FROM {table} p USING reviews r
             WHERE r.id = p.review_id AND r.taxonomy_id = $1 AND p.model_version_id = $2"
        ))
        .bind(taxonomy_id)
        .bind(model_version_id)
        .execute(&mut *tx)
        .await?;
        deleted = done.rows_affected();
    }
    tx.commit().await?;
    Ok(deleted)
}

/// The version's embeddings with review ids above `after`, by review id, at most
/// `limit`: one page of a pass over all of them.
pub async fn embedding_page(
    pool: &PgPool,
    model_version_id: i64,
    after: i64,
    limit: usize,
) -> sqlx::Result<(Vec<i64>, Vec<Vec<f32>>)> {
    let rows: Vec<(i64, Vec<f32>)> = sqlx::query_as(
        "SELECT review_id, embedding FROM predictions
         WHERE model_version_id = $1 AND review_id > $2 AND embedding IS NOT NULL
         ORDER BY review_id LIMIT $3",
    )
    .bind(model_version_id)
    .bind(after)
    .bind(limit as i64)
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().unzip())
}

/// At most `limit` of the version's embeddings, a sample fixed by `seed` (the order of
/// a hash of review id and seed; PostgreSQL keeps only the top `limit` while sorting),
/// by review id: all of them, in the order an in-memory pass reads them, when fewer.
pub async fn embedding_sample(
    pool: &PgPool,
    model_version_id: i64,
    limit: usize,
    seed: u64,
) -> sqlx::Result<Vec<Vec<f32>>> {
    sqlx::query_scalar(
        "SELECT embedding FROM (
             SELECT review_id, embedding FROM predictions
             WHERE model_version_id = $1 AND embedding IS NOT NULL
             ORDER BY hashint8(review_id # $3), review_id LIMIT $2
         ) s ORDER BY review_id",
    )
    .bind(model_version_id)
    .bind(limit as i64)
    .bind(seed as i64)
    .fetch_all(pool)
    .await
}

/// How many of the version's predictions have an embedding.
pub async fn embedding_count(pool: &PgPool, model_version_id: i64) -> sqlx::Result<i64> {
    sqlx::query_scalar(
        "SELECT count(*) FROM predictions WHERE model_version_id = $1 AND embedding IS NOT NULL",
    )
    .bind(model_version_id)
    .fetch_one(pool)
    .await
}

/// The clustering pass's scores of a page, one entry per review.
pub struct ClusterScores<'a> {
    pub clusters: &'a [i32],
    pub outliers: &'a [f32],
    /// Keyword-neighbours scores (`None`: not among any keyword's nearest).
    pub neighbours: &'a [Option<f32>],
    /// Keyword-anchors scores (`None`: not among any keyword's nearest to its anchor).
    pub anchored: &'a [Option<f32>],
}

/// Stores the clustering pass's scores of a page.
pub async fn set_clusters(
    pool: &PgPool,
    model_version_id: i64,
    review_ids: &[i64],
    scores: &ClusterScores<'_>,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE review_scores p
         SET cluster = t.cluster, outlier = t.outlier, neighbours = t.neighbours, anchored = t.anchored
         FROM UNNEST($2::bigint[], $3::int[], $4::real[], $5::real[], $6::real[])
              AS t(review_id, cluster, outlier, neighbours, anchored)
         WHERE p.model_version_id = $1 AND p.review_id = t.review_id",
    )
    .bind(model_version_id)
    .bind(review_ids)
    .bind(scores.clusters)
    .bind(scores.outliers)
    .bind(scores.neighbours)
    .bind(scores.anchored)
    .execute(pool)
    .await?;
    Ok(())
}

/// Whether the version's keyword anchors are stored (`score::anchors`).
pub async fn has_anchors(pool: &PgPool, model_version_id: i64) -> sqlx::Result<bool> {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM keyword_anchors WHERE model_version_id = $1)")
        .bind(model_version_id)
        .fetch_one(pool)
        .await
}

/// Stores the version's keyword anchors, (keyword index, embedding), in one
/// transaction. Scorers racing over one version compute the same anchors; the first
/// insert of each keyword stays.
pub async fn insert_anchors(
    pool: &PgPool,
    model_version_id: i64,
    anchors: &[(i32, Vec<f32>)],
) -> sqlx::Result<()> {
    let mut tx = pool.begin().await?;
    for (keyword, embedding) in anchors {
        sqlx::query(
            "INSERT INTO keyword_anchors (model_version_id, keyword, embedding) VALUES ($1, $2, $3)
             ON CONFLICT DO NOTHING",
        )
        .bind(model_version_id)
        .bind(keyword)
        .bind(embedding)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await
}

/// The version's keyword anchors: (keyword index, embedding), by keyword.
pub async fn anchors(pool: &PgPool, model_version_id: i64) -> sqlx::Result<Vec<(i32, Vec<f32>)>> {
    sqlx::query_as(
        "SELECT keyword, embedding FROM keyword_anchors WHERE model_version_id = $1 ORDER BY keyword",
    )
    .bind(model_version_id)
    .fetch_all(pool)
    .await
}

/// The embeddings of these reviews under the version (those it has).
pub async fn embeddings_of(
    pool: &PgPool,
    model_version_id: i64,
    review_ids: &[i64],
) -> sqlx::Result<HashMap<i64, Vec<f32>>> {
    let rows: Vec<(i64, Vec<f32>)> = sqlx::query_as(
        "SELECT review_id, embedding FROM predictions
         WHERE model_version_id = $1 AND review_id = ANY($2) AND embedding IS NOT NULL",
    )
    .bind(model_version_id)
    .bind(review_ids)
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().collect())
}

/// Which of mall and category make a review's group.
#[derive(Debug, Clone, Copy)]
pub struct Grouping {
    pub mall: bool,
    pub category: bool,
}

/// A review's group as one hash of its mall and category ('' for what is not grouped
/// by), with the two flags bound at `mall` and `category`.
fn group_key(mall: &str, category: &str) -> String {
    format!(
        "hashtextextended(CASE WHEN {mall} THEN r.mall ELSE '' END || E'\\x1f' ||
                          CASE WHEN {category} THEN r.category ELSE '' END, 0)"
    )
}

/// The reviews `r` a new round may take (not labelled, not queued in an open round),
/// with the taxonomy bound at `$1`.
pub(super) const ELIGIBLE: &str = "r.taxonomy_id = $1
    AND NOT EXISTS (SELECT 1 FROM annotations a WHERE a.review_id = r.id)
    AND NOT EXISTS (SELECT 1 FROM round_items i JOIN rounds o ON o.id = i.round_id
                    WHERE i.review_id = r.id AND o.status = 'open')";

/// The groups of the reviews a new round may take, by group key, with their sizes.
pub async fn candidate_groups(
    pool: &PgPool,
    taxonomy_id: i64,
    by: Grouping,
) -> sqlx::Result<Vec<(i64, usize)>> {
    let key = group_key("$2", "$3");
    let rows: Vec<(i64, i64)> =
        sqlx::query_as(&format!("SELECT {key}, count(*) FROM reviews r WHERE {ELIGIBLE} GROUP BY 1"))
            .bind(taxonomy_id)
            .bind(by.mall)
            .bind(by.category)
            .fetch_all(pool)
            .await?;
    Ok(rows.into_iter().map(|(key, n)| (key, n as usize)).collect())
}

/// The reviews a new round may take, with the version's strategy scores, handed to
/// `visit` a page of at most [`PAGE_IDS`] review ids at a time, in id order. A few pages
/// are read at once over several connections (a query runs on one core), so at most
/// that many are held.
pub async fn candidate_pages(
    pool: &PgPool,
    taxonomy_id: i64,
    model_version_id: Option<i64>,
    by: Grouping,
    mut visit: impl FnMut(&CandidatePage),
) -> sqlx::Result<()> {
    let (low, high): (Option<i64>, Option<i64>) =
        sqlx::query_as("SELECT min(id), max(id) FROM reviews WHERE taxonomy_id = $1")
            .bind(taxonomy_id)
            .fetch_one(pool)
            .await?;
    let (low, high) = (low.unwrap_or(0), high.unwrap_or(-1));
    let ranges = (low..=high).step_by(PAGE_IDS as usize).map(|from| (from, (from + PAGE_IDS - 1).min(high)));
    let mut pages = futures_util::stream::iter(ranges)
        .map(|(from, to)| candidate_page(pool, taxonomy_id, model_version_id, by, from, to))
        .buffered(PAGES_AT_ONCE);
    while let Some(page) = pages.try_next().await? {
        visit(&page);
    }
    Ok(())
}

/// Review ids per page of candidates.
pub const PAGE_IDS: i64 = 25_000;

/// Pages of candidates read at once.
const PAGES_AT_ONCE: usize = 4;

/// Candidates of one id range as columns (one entry per review): group and text keys
/// (equal keys: same group, duplicate texts), and each strategy's score (NaN where
/// there is none).
#[derive(Debug, Clone, Default, sqlx::FromRow)]
pub struct CandidatePage {
    pub ids: Vec<i64>,
    pub group_keys: Vec<i64>,
    pub text_keys: Vec<i64>,
    pub boundary: Vec<f32>,
    pub uncertainty: Vec<f32>,
    pub rarity: Vec<f32>,
    pub outlier: Vec<f32>,
    pub balance: Vec<f32>,
    pub neighbours: Vec<f32>,
    pub anchored: Vec<f32>,
    /// −1 where there is none.
    pub boundary_keyword: Vec<i16>,
}

/// Candidates with ids in `from..=to` as one row of arrays, unsorted: all aggregates of
/// one query see the rows in the same order. The range is repeated on the scores, or
/// the planner hashes all of the version's scores for every page.
async fn candidate_page(
    pool: &PgPool,
    taxonomy_id: i64,
    model_version_id: Option<i64>,
    by: Grouping,
    from: i64,
    to: i64,
) -> sqlx::Result<CandidatePage> {
    let key = group_key("$3", "$4");
    sqlx::query_as(&format!(
        "SELECT coalesce(array_agg(r.id), '{{}}') AS ids,
                coalesce(array_agg({key}), '{{}}') AS group_keys,
                coalesce(array_agg(hashtextextended(r.text, 0)), '{{}}') AS text_keys,
                coalesce(array_agg(coalesce(p.boundary, 'NaN')), '{{}}') AS boundary,
                coalesce(array_agg(coalesce(p.uncertainty, 'NaN')), '{{}}') AS uncertainty,
                coalesce(array_agg(coalesce(p.rarity, 'NaN')), '{{}}') AS rarity,
                coalesce(array_agg(coalesce(p.outlier, 'NaN')), '{{}}') AS outlier,
                coalesce(array_agg(coalesce(p.balance, 'NaN')), '{{}}') AS balance,
                coalesce(array_agg(coalesce(p.neighbours, 'NaN')), '{{}}') AS neighbours,
                coalesce(array_agg(coalesce(p.anchored, 'NaN')), '{{}}') AS anchored,
                coalesce(array_agg(coalesce(p.boundary_keyword, (-1)::smallint)), '{{}}') AS boundary_keyword
         FROM reviews r
         LEFT JOIN review_scores p ON p.review_id = r.id AND p.model_version_id = $2
                                  AND p.review_id BETWEEN $5 AND $6
         WHERE {ELIGIBLE} AND r.id BETWEEN $5 AND $6"
    ))
    .bind(taxonomy_id)
    .bind(model_version_id)
    .bind(by.mall)
    .bind(by.category)
    .bind(from)
    .bind(to)
    .fetch_one(pool)
    .await
}

/// Text keys of the taxonomy's labelled or queued reviews.
pub async fn taken_texts(pool: &PgPool, taxonomy_id: i64) -> sqlx::Result<Vec<i64>> {
    // Led by the labelled and queued ids (few), not by the pool.
    sqlx::query_scalar(
        "SELECT DISTINCT hashtextextended(r.text, 0) FROM reviews r
         WHERE r.taxonomy_id = $1
           AND r.id IN (SELECT a.review_id FROM annotations a
                        UNION SELECT i.review_id FROM round_items i JOIN rounds o ON o.id = i.round_id
                              WHERE o.status = 'open')",
    )
    .bind(taxonomy_id)
    .fetch_all(pool)
    .await
}

/// Whether some of the version's predictions still lack a cluster (clustering runs
/// after the last batch; a crash in between leaves them so).
pub async fn needs_clustering(pool: &PgPool, model_version_id: i64) -> sqlx::Result<bool> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM review_scores WHERE model_version_id = $1 AND cluster IS NULL)",
    )
    .bind(model_version_id)
    .fetch_one(pool)
    .await
}

/// Per keyword (in taxonomy order), the reviews this version predicts it for.
pub async fn predicted_counts(
    pool: &PgPool,
    model_version_id: i64,
    thresholds: &[f32],
) -> sqlx::Result<Vec<i64>> {
    let rows: Vec<(i64, i64)> = sqlx::query_as(
        "SELECT u.k, count(*) FROM predictions p, unnest(p.keyword_probs) WITH ORDINALITY AS u(prob, k)
         WHERE p.model_version_id = $1 AND u.prob >= coalesce(($2::real[])[u.k], 0.5) GROUP BY u.k",
    )
    .bind(model_version_id)
    .bind(thresholds)
    .fetch_all(pool)
    .await?;
    let mut counts = vec![0; thresholds.len()];
    for (k, n) in rows {
        if let Some(c) = counts.get_mut(k as usize - 1) {
            *c = n;
        }
    }
    Ok(counts)
}
