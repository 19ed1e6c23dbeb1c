//! Disagreements between annotators, settled by a reviewer into a gold label, and each
//! annotator's agreement with those gold labels.

use sqlx::PgPool;

use super::annotations::{self, Authorship};
use crate::consensus;
use crate::consensus::{LabelSource, StoredAnnotation};

/// A review two or more annotators answered.
#[derive(Debug, Clone)]
pub struct MultiplyAnswered {
    pub review_id: i64,
    pub text: String,
    /// Each human annotator's latest answer.
    pub answers: Vec<StoredAnnotation>,
    pub has_gold: bool,
}

impl MultiplyAnswered {
    pub fn disagree(&self) -> bool {
        self.answers.iter().any(|a| a.labels != self.answers[0].labels)
    }
}

/// Reviews of a taxonomy that two or more annotators answered, in review order after
/// `after`, at most `limit`; `unsettled`: only those whose answers differ and that
/// have no gold label. Driven by the `multiply_answered` table, which a trigger keeps
/// as answers arrive (the same rule as `consensus::latest_per_labeller`), so a page
/// costs its own reviews, never the taxonomy's.
pub async fn multiply_answered(
    pool: &PgPool,
    taxonomy_id: i64,
    unsettled: bool,
    after: i64,
    limit: i64,
) -> sqlx::Result<Vec<MultiplyAnswered>> {
    let rows: Vec<(i64, String, bool)> = sqlx::query_as(
        "SELECT m.review_id, r.text, m.has_gold FROM multiply_answered m JOIN reviews r ON r.id = m.review_id
         WHERE m.taxonomy_id = $1 AND m.review_id > $2 AND (NOT $3 OR (m.disagree AND NOT m.has_gold))
         ORDER BY m.review_id LIMIT $4",
    )
    .bind(taxonomy_id)
    .bind(after)
    .bind(unsettled)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    let ids: Vec<i64> = rows.iter().map(|r| r.0).collect();
    let all = super::annotations::for_reviews(pool, &ids, None).await?;
    let mut by_review: std::collections::HashMap<i64, Vec<StoredAnnotation>> = Default::default();
    for a in all {
        by_review.entry(a.review_id).or_default().push(a);
    }
    Ok(rows
        .into_iter()
        .map(|(review_id, text, has_gold)| {
            let all = by_review.remove(&review_id).unwrap_or_default();
            MultiplyAnswered { review_id, text, answers: human_answers(&all), has_gold }
        })
        .collect())
}

/// Each annotator's latest answer, when it is a human one.
fn human_answers(all: &[StoredAnnotation]) -> Vec<StoredAnnotation> {
    consensus::latest_per_labeller(all)
        .into_iter()
        .filter(|a| a.source == LabelSource::Human && a.annotator_id.is_some())
        .cloned()
        .collect()
}

/// How many reviews' answers differ with no gold label yet.
pub async fn count_disagreements(pool: &PgPool, taxonomy_id: i64) -> sqlx::Result<i64> {
    sqlx::query_scalar(
        "SELECT count(*) FROM multiply_answered WHERE taxonomy_id = $1 AND disagree AND NOT has_gold",
    )
    .bind(taxonomy_id)
    .fetch_one(pool)
    .await
}

/// Every multiply-answered review's answers, a page at a time: what agreement is
/// measured on.
pub async fn all_multiply_answered(pool: &PgPool, taxonomy_id: i64) -> sqlx::Result<Vec<MultiplyAnswered>> {
    let mut out = Vec::new();
    loop {
        let after = out.last().map_or(0, |r: &MultiplyAnswered| r.review_id);
        let page = multiply_answered(pool, taxonomy_id, false, after, 2000).await?;
        if page.is_empty() {
            return Ok(out);
        }
        out.extend(page);
    }
}

/// Adopts one annotator's answer as the review's gold label (a new annotation by the
/// reviewer, source `gold`). Returns its id; `None` when the answer is not of that review.
pub async fn adjudicate(
    pool: &PgPool,
    review_id: i64,
    adopted: i64,
    reviewer: i64,
) -> sqlx::Result<Option<i64>> {
    let all = annotations::for_reviews(pool, &[review_id], None).await?;
    let Some(answer) = all.into_iter().find(|a| a.id == adopted && a.review_id == review_id) else {
        return Ok(None);
    };
    let revision: i32 = sqlx::query_scalar(
        "SELECT t.guideline_revision FROM reviews r JOIN taxonomies t ON t.id = r.taxonomy_id WHERE r.id = $1",
    )
    .bind(review_id)
    .fetch_one(pool)
    .await?;
    let author = Authorship {
        source: LabelSource::Gold,
        annotator_id: Some(reviewer),
        assignment_id: None,
        import_batch_id: None,
        guideline_revision: revision,
        client_token: None,
        assist: None,
    };
    let mut tx = pool.begin().await?;
    let id = annotations::insert(&mut tx, review_id, &author, &answer.labels).await?;
    let details = serde_json::json!({"adopted": adopted});
    super::audit::record(
        &mut *tx,
        Some(reviewer),
        "label.adjudicate",
        &format!("review:{review_id}"),
        details,
    )
    .await?;
    tx.commit().await?;
    Ok(Some(id))
}

/// Per annotator: answers in all, in the last 7 days, and how many of their answers on
/// reviews with a gold label match it exactly.
#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize, serde::Deserialize)]
pub struct AnnotatorStats {
    pub username: String,
    pub answers: i64,
    pub last_week: i64,
    pub judged: i64,
    pub matching_gold: i64,
}

pub async fn annotator_stats(pool: &PgPool, taxonomy_id: i64) -> sqlx::Result<Vec<AnnotatorStats>> {
    sqlx::query_as(
        "WITH latest AS (
             SELECT DISTINCT ON (a.review_id, a.annotator_id) a.id, a.review_id, a.annotator_id, a.no_keyword, a.created_at
             FROM annotations a JOIN reviews r ON r.id = a.review_id
             WHERE r.taxonomy_id = $1 AND a.source = 'human' AND a.annotator_id IS NOT NULL
             ORDER BY a.review_id, a.annotator_id, a.id DESC),
         gold AS (
             SELECT DISTINCT ON (a.review_id) a.id, a.review_id, a.no_keyword
             FROM annotations a JOIN reviews r ON r.id = a.review_id
             WHERE r.taxonomy_id = $1 AND a.source = 'gold' ORDER BY a.review_id, a.id DESC),
         labels AS (
             SELECT annotation_id, array_agg(keyword_id::text || ':' || sentiment ORDER BY keyword_id) AS set
             FROM annotation_labels
             -- Only the answers compared with a gold label, and the gold labels.
             WHERE annotation_id IN (SELECT l.id FROM latest l JOIN gold g ON g.review_id = l.review_id
                                     UNION ALL SELECT id FROM gold)
             GROUP BY annotation_id)
         SELECT u.username,
                count(*) AS answers,
                count(*) FILTER (WHERE l.created_at > now() - interval '7 days') AS last_week,
                count(g.id) AS judged,
                count(g.id) FILTER (WHERE l.no_keyword = g.no_keyword
                                      AND coalesce(ls.set, '{}') = coalesce(gs.set, '{}')) AS matching_gold
         FROM latest l JOIN users u ON u.id = l.annotator_id
         LEFT JOIN gold g ON g.review_id = l.review_id
         LEFT JOIN labels ls ON ls.annotation_id = l.id
         LEFT JOIN labels gs ON gs.annotation_id = g.id
         GROUP BY u.username ORDER BY u.username",
    )
    .bind(taxonomy_id)
    .fetch_all(pool)
    .await
}
