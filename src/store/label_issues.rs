//! Suspected label errors and the reviewers' decisions on them.

use sqlx::PgPool;

use super::annotations::{self, Authorship};
use crate::consensus::LabelSource;
use crate::taxonomy::ResolvedLabels;

/// A suspect to record: the review's current annotation, the keyword, what kind of
/// error, what the model believes instead, and how confidently.
#[derive(Debug, Clone, PartialEq)]
pub struct NewIssue {
    pub review_id: i64,
    pub keyword_id: i64,
    pub kind: &'static str,
    pub annotation_id: i64,
    pub suggested: i16,
    pub confidence: f32,
}

/// Records suspects. One already open for the same label is refreshed, not doubled; one
/// a reviewer dismissed or confirmed is not raised again until the label changes (a new
/// annotation id). Returns how many were added.
pub async fn record(pool: &PgPool, issues: &[NewIssue]) -> sqlx::Result<usize> {
    let mut tx = pool.begin().await?;
    let mut added = 0;
    for issue in issues {
        let existing: Option<(i64, String)> = sqlx::query_as(
            "SELECT id, status FROM label_issues
             WHERE review_id = $1 AND keyword_id = $2 AND kind = $3 AND annotation_id = $4
             ORDER BY id DESC LIMIT 1",
        )
        .bind(issue.review_id)
        .bind(issue.keyword_id)
        .bind(issue.kind)
        .bind(issue.annotation_id)
        .fetch_optional(&mut *tx)
        .await?;
        match existing {
            Some((id, status)) if status == "open" => {
                sqlx::query("UPDATE label_issues SET confidence = $2, suggested = $3 WHERE id = $1")
                    .bind(id)
                    .bind(issue.confidence)
                    .bind(issue.suggested)
                    .execute(&mut *tx)
                    .await?;
            }
            Some(_) => {}
            None => {
                sqlx::query(
                    "INSERT INTO label_issues (review_id, keyword_id, kind, annotation_id, suggested, confidence)
                     VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(issue.review_id)
                .bind(issue.keyword_id)
                .bind(issue.kind)
                .bind(issue.annotation_id)
                .bind(issue.suggested)
                .bind(issue.confidence)
                .execute(&mut *tx)
                .await?;
                added += 1;
            }
        }
    }
    tx.commit().await?;
    Ok(added)
}

/// Closes open issues as `dismissed` or `confirmed` (the label stands), one or in bulk,
/// each decision in the audit log. Returns how many were open.
pub async fn decide(
    pool: &PgPool,
    issue_ids: &[i64],
    status: Decision,
    by: Option<i64>,
) -> sqlx::Result<u64> {
    let mut tx = pool.begin().await?;
    let closed = close(&mut tx, issue_ids, status.as_str(), by).await?;
    tx.commit().await?;
    Ok(closed)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// The model was wrong: the label stands.
    Dismissed,
    /// The label is right after all (the suspicion was worth checking).
    Confirmed,
}

impl Decision {
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Dismissed => "dismissed",
            Decision::Confirmed => "confirmed",
        }
    }
}

async fn close(tx: &mut sqlx::PgConnection, ids: &[i64], status: &str, by: Option<i64>) -> sqlx::Result<u64> {
    let closed: Vec<i64> = sqlx::query_scalar(
        "UPDATE label_issues SET status = $2, decided_by = $3, decided_at = now()
         WHERE id = ANY($1) AND status = 'open' RETURNING id",
    )
    .bind(ids)
    .bind(status)
    .bind(by)
    .fetch_all(&mut *tx)
    .await?;
    for id in &closed {
        let action = format!("label_issue.{status}");
        super::audit::record(&mut *tx, by, &action, &format!("label_issue:{id}"), serde_json::json!({}))
            .await?;
    }
    Ok(closed.len() as u64)
}

/// A reviewer's correction: the review's new label as a new annotation (source
/// `review`; nothing is overwritten) and the issue closed as `fixed`, together or not
/// at all. Returns the new annotation's id; `None` when the issue is not open.
pub async fn fix(
    pool: &PgPool,
    issue_id: i64,
    reviewer: i64,
    labels: &ResolvedLabels,
) -> sqlx::Result<Option<i64>> {
    let mut tx = pool.begin().await?;
    let issue: Option<(i64, i32)> = sqlx::query_as(
        "SELECT i.review_id, t.guideline_revision FROM label_issues i
         JOIN reviews r ON r.id = i.review_id JOIN taxonomies t ON t.id = r.taxonomy_id
         WHERE i.id = $1 AND i.status = 'open' FOR UPDATE OF i",
    )
    .bind(issue_id)
    .fetch_optional(&mut *tx)
    .await?;
    let Some((review_id, guideline_revision)) = issue else { return Ok(None) };
    let author = Authorship {
        source: LabelSource::Review,
        annotator_id: Some(reviewer),
        assignment_id: None,
        import_batch_id: None,
        guideline_revision,
        client_token: None,
        assist: None,
    };
    let annotation = annotations::insert(&mut tx, review_id, &author, labels).await?;
    close(&mut tx, &[issue_id], "fixed", Some(reviewer)).await?;
    tx.commit().await?;
    Ok(Some(annotation))
}

/// Open suspects per keyword id.
pub async fn open_counts(pool: &PgPool, taxonomy_id: i64) -> sqlx::Result<Vec<(i64, i64)>> {
    sqlx::query_as(
        "SELECT i.keyword_id, count(*) FROM label_issues i JOIN keywords k ON k.id = i.keyword_id
         WHERE k.taxonomy_id = $1 AND i.status = 'open' GROUP BY 1",
    )
    .bind(taxonomy_id)
    .fetch_all(pool)
    .await
}

/// An open suspect with what a reviewer needs to judge it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct OpenIssue {
    pub id: i64,
    pub review_id: i64,
    pub text: String,
    pub kind: String,
    pub suggested: Option<i16>,
    pub confidence: f32,
    pub annotation_id: Option<i64>,
    /// The label under suspicion, as parallel keyword-id and level columns.
    pub label_keywords: Vec<i64>,
    pub label_levels: Vec<i16>,
}

/// Where a page of a keyword's suspects starts: after this (confidence, id).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SuspectCursor {
    pub confidence: f32,
    pub id: i64,
}

/// A page of a keyword's open suspects, most confident first, after `after`;
/// `prefilled_only`: only those about labels made with prefilled suggestions (the labels
/// most exposed to automation bias). Read along `label_issues_open_idx`.
pub async fn open_for_keyword(
    pool: &PgPool,
    keyword_id: i64,
    prefilled_only: bool,
    after: Option<SuspectCursor>,
    limit: i64,
) -> sqlx::Result<Vec<OpenIssue>> {
    sqlx::query_as(
        "SELECT i.id, i.review_id, r.text, i.kind, i.suggested, i.confidence, i.annotation_id,
                coalesce(array_agg(l.keyword_id ORDER BY l.keyword_id) FILTER (WHERE l.keyword_id IS NOT NULL), '{}') AS label_keywords,
                coalesce(array_agg(l.sentiment ORDER BY l.keyword_id) FILTER (WHERE l.keyword_id IS NOT NULL), '{}') AS label_levels
         FROM (SELECT i.* FROM label_issues i
               WHERE i.keyword_id = $1 AND i.status = 'open'
                 AND ($3::real IS NULL OR i.confidence < $3 OR (i.confidence = $3 AND i.id > $4))
                 AND (NOT $2 OR EXISTS (SELECT 1 FROM annotations a
                                        WHERE a.id = i.annotation_id AND a.assist ->> 'mode' = 'prefilled'))
               ORDER BY i.confidence DESC, i.id LIMIT $5) i
         JOIN reviews r ON r.id = i.review_id
         LEFT JOIN annotation_labels l ON l.annotation_id = i.annotation_id
         GROUP BY i.id, i.review_id, i.kind, i.suggested, i.confidence, i.annotation_id, r.text
         ORDER BY i.confidence DESC, i.id",
    )
    .bind(keyword_id)
    .bind(prefilled_only)
    .bind(after.map(|c| c.confidence))
    .bind(after.map_or(0, |c| c.id))
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// How many open suspects a keyword has (of labels made with prefilled suggestions).
pub async fn count_open_for_keyword(
    pool: &PgPool,
    keyword_id: i64,
    prefilled_only: bool,
) -> sqlx::Result<i64> {
    sqlx::query_scalar(
        "SELECT count(*) FROM label_issues i
         WHERE i.keyword_id = $1 AND i.status = 'open'
           AND (NOT $2 OR EXISTS (SELECT 1 FROM annotations a
                                  WHERE a.id = i.annotation_id AND a.assist ->> 'mode' = 'prefilled'))",
    )
    .bind(keyword_id)
    .bind(prefilled_only)
    .fetch_one(pool)
    .await
}

/// The issue and the label it is about: (keyword id, kind, suggested, labels of its annotation).
pub async fn with_label(
    pool: &PgPool,
    issue_id: i64,
) -> sqlx::Result<Option<(i64, String, Option<i16>, Vec<(i64, i16)>)>> {
    let issue: Option<(i64, String, Option<i16>, Option<i64>)> =
        sqlx::query_as("SELECT keyword_id, kind, suggested, annotation_id FROM label_issues WHERE id = $1")
            .bind(issue_id)
            .fetch_optional(pool)
            .await?;
    let Some((keyword, kind, suggested, annotation)) = issue else { return Ok(None) };
    let labels: Vec<(i64, i16)> = sqlx::query_as(
        "SELECT keyword_id, sentiment FROM annotation_labels WHERE annotation_id = $1 ORDER BY keyword_id",
    )
    .bind(annotation.unwrap_or(0))
    .fetch_all(pool)
    .await?;
    Ok(Some((keyword, kind, suggested, labels)))
}
