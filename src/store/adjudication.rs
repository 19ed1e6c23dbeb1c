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

/// Every review of a taxonomy that two or more annotators answered, oldest first: what
/// agreement is measured on and disagreements are settled from.
pub async fn multiply_answered(pool: &PgPool, taxonomy_id: i64) -> sqlx::Result<Vec<MultiplyAnswered>> {
    let mut out = Vec::new();
    let mut after = 0;
    loop {
        let page = super::reviews::page_with_annotations(pool, taxonomy_id, after, 2000, None).await?;
        let Some((last, _)) = page.last() else { break };
        after = last.id;
        for (review, all) in page {
            let answers: Vec<StoredAnnotation> = consensus::latest_per_labeller(&all)
                .into_iter()
                .filter(|a| a.source == LabelSource::Human && a.annotator_id.is_some())
                .cloned()
                .collect();
            if answers.len() >= 2 {
                let has_gold = all.iter().any(|a| a.source == LabelSource::Gold);
                out.push(MultiplyAnswered { review_id: review.id, text: review.text, answers, has_gold });
            }
        }
    }
    Ok(out)
}

/// Up to `limit` reviews whose annotators disagree and that have no gold label yet.
pub async fn disagreements(
    pool: &PgPool,
    taxonomy_id: i64,
    limit: usize,
) -> sqlx::Result<Vec<MultiplyAnswered>> {
    let all = multiply_answered(pool, taxonomy_id).await?;
    Ok(all.into_iter().filter(|r| !r.has_gold && r.disagree()).take(limit).collect())
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
#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize)]
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
             FROM annotation_labels GROUP BY annotation_id)
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
