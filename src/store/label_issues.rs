//! Suspected label errors and the reviewers' decisions on them.

use sqlx::PgPool;

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

/// Closes an issue as `dismissed`, `confirmed` or `fixed`, recording who decided.
pub async fn decide(pool: &PgPool, issue_id: i64, status: &str, by: Option<i64>) -> sqlx::Result<bool> {
    let mut tx = pool.begin().await?;
    let done = sqlx::query(
        "UPDATE label_issues SET status = $2, decided_by = $3, decided_at = now() WHERE id = $1 AND status = 'open'",
    )
    .bind(issue_id)
    .bind(status)
    .bind(by)
    .execute(&mut *tx)
    .await?;
    super::audit::record(
        &mut *tx,
        by,
        &format!("label_issue.{status}"),
        &format!("label_issue:{issue_id}"),
        serde_json::json!({}),
    )
    .await?;
    tx.commit().await?;
    Ok(done.rows_affected() == 1)
}
