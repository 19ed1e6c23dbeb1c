//! Assignments: an annotator's copy of a round item. Claiming is safe under
//! concurrency: an item is never handed out more often than it has copies.

use sqlx::PgPool;

use crate::consensus::LabelSource;
use crate::store::annotations::{self, Authorship};
use crate::taxonomy::ResolvedLabels;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Assignment {
    pub id: i64,
    pub round_id: i64,
    pub round_item_id: i64,
    pub review_id: i64,
    pub annotator_id: i64,
    pub status: String,
    pub taxonomy_id: i64,
    /// Why the review is in the round: the strategy that picked it, with its score.
    pub strategy: String,
    pub score: Option<f32>,
    /// The round's suggestion mode (`off`, `shown`, `prefilled`).
    pub assist: String,
    /// Whether this item gets the suggestions, and what they are once computed.
    pub assisted: bool,
    pub suggestion: Option<serde_json::Value>,
    pub suggestion_version_id: Option<i64>,
    /// Whether its round still takes answers.
    pub round_open: bool,
}

impl Assignment {
    /// The suggestion to show, when the round and the item have one.
    pub fn shown_suggestion(&self) -> Option<&serde_json::Value> {
        self.suggestion.as_ref().filter(|_| self.assisted && self.assist != "off")
    }
}

const SELECT: &str = "
    SELECT a.id, i.round_id, a.round_item_id, i.review_id, a.annotator_id, a.status, o.taxonomy_id, i.strategy, i.score,
           o.assist, i.assisted, i.suggestion, i.suggestion_version_id, o.status = 'open' AS round_open
    FROM assignments a JOIN round_items i ON i.id = a.round_item_id JOIN rounds o ON o.id = i.round_id";

pub async fn get(pool: &PgPool, id: i64) -> sqlx::Result<Option<Assignment>> {
    sqlx::query_as(&format!("{SELECT} WHERE a.id = $1")).bind(id).fetch_optional(pool).await
}

/// The annotator's open item in the round, claiming a new one if there is none.
/// `None` when the round has nothing left for them.
pub async fn next(pool: &PgPool, round_id: i64, annotator_id: i64) -> sqlx::Result<Option<i64>> {
    let pending: Option<i64> = sqlx::query_scalar(
        "SELECT a.id FROM assignments a JOIN round_items i ON i.id = a.round_item_id
         WHERE i.round_id = $1 AND a.annotator_id = $2 AND a.status = 'pending'
         ORDER BY a.id LIMIT 1",
    )
    .bind(round_id)
    .bind(annotator_id)
    .fetch_optional(pool)
    .await?;
    if pending.is_some() {
        return Ok(pending);
    }
    claim(pool, round_id, annotator_id).await
}

/// SQL: round item `i` has a free copy that the annotator (the query parameter
/// `annotator`, e.g. `$2`) has not taken. What [`claim`] takes, and what the rounds list
/// offers to start (`rounds::open_for`).
pub fn claimable(annotator: &str) -> String {
    format!(
        "i.assigned < i.copies
         AND NOT EXISTS (SELECT 1 FROM assignments a WHERE a.round_item_id = i.id AND a.annotator_id = {annotator})"
    )
}

/// Claims the first item with a free copy. Another claimer holding that item's row is
/// skipped, not waited for; the `assigned < copies` test is re-checked by PostgreSQL
/// against the newest row version once the lock is taken.
async fn claim(pool: &PgPool, round_id: i64, annotator_id: i64) -> sqlx::Result<Option<i64>> {
    sqlx::query_scalar(&format!(
        "WITH candidate AS (
             SELECT i.id FROM round_items i
             WHERE i.round_id = $1 AND {}
             ORDER BY i.position LIMIT 1
             FOR UPDATE SKIP LOCKED),
         bumped AS (
             UPDATE round_items SET assigned = assigned + 1 FROM candidate
             WHERE round_items.id = candidate.id RETURNING round_items.id)
         INSERT INTO assignments (round_item_id, annotator_id) SELECT id, $2 FROM bumped RETURNING id",
        claimable("$2")
    ))
    .bind(round_id)
    .bind(annotator_id)
    .fetch_optional(pool)
    .await
}

/// The annotator's done item before `before` (or their latest), for "back".
pub async fn previous(
    pool: &PgPool,
    round_id: i64,
    annotator_id: i64,
    before: Option<i64>,
) -> sqlx::Result<Option<i64>> {
    sqlx::query_scalar(
        "SELECT a.id FROM assignments a JOIN round_items i ON i.id = a.round_item_id
         WHERE i.round_id = $1 AND a.annotator_id = $2 AND a.status = 'done' AND a.id < coalesce($3, 9223372036854775807)
         ORDER BY a.id DESC LIMIT 1",
    )
    .bind(round_id)
    .bind(annotator_id)
    .bind(before)
    .fetch_optional(pool)
    .await
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Submitted {
    New(i64),
    /// The same client token was submitted before: nothing new was written.
    Repeat(i64),
    /// The round was closed: its items take no more answers, and nothing was written.
    RoundClosed,
}

/// Stores an answer (or a correction of an earlier one) and marks the item done, in one
/// transaction. A repeated submit with the same token returns the first row.
pub async fn submit(
    pool: &PgPool,
    assignment: &Assignment,
    labels: &ResolvedLabels,
    guideline_revision: i32,
    client_token: uuid::Uuid,
    assist: Option<&serde_json::Value>,
) -> sqlx::Result<Submitted> {
    let mut tx = pool.begin().await?;
    // Serialises double submits of one item: the second waits here, then sees the first.
    sqlx::query("SELECT id FROM assignments WHERE id = $1 FOR UPDATE")
        .bind(assignment.id)
        .execute(&mut *tx)
        .await?;
    let existing: Option<i64> = sqlx::query_scalar("SELECT id FROM annotations WHERE client_token = $1")
        .bind(client_token)
        .fetch_optional(&mut *tx)
        .await?;
    if let Some(id) = existing {
        return Ok(Submitted::Repeat(id));
    }
    // Shares the round's row lock with closing it: an answer lands before the round
    // closes or not at all.
    let open: bool = sqlx::query_scalar("SELECT status = 'open' FROM rounds WHERE id = $1 FOR SHARE")
        .bind(assignment.round_id)
        .fetch_one(&mut *tx)
        .await?;
    if !open {
        return Ok(Submitted::RoundClosed);
    }
    let author = Authorship {
        source: LabelSource::Human,
        annotator_id: Some(assignment.annotator_id),
        assignment_id: Some(assignment.id),
        import_batch_id: None,
        guideline_revision,
        client_token: Some(client_token),
        assist: assist.cloned(),
    };
    let id = annotations::insert(&mut tx, assignment.review_id, &author, labels).await?;
    sqlx::query(
        "UPDATE assignments SET status = 'done', completed_at = coalesce(completed_at, now()) WHERE id = $1",
    )
    .bind(assignment.id)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Submitted::New(id))
}

/// Gives a pending item back: it goes to someone else, never again to this annotator.
pub async fn skip(pool: &PgPool, assignment: &Assignment) -> sqlx::Result<bool> {
    let mut tx = pool.begin().await?;
    let changed = sqlx::query("UPDATE assignments SET status = 'skipped', completed_at = now() WHERE id = $1 AND status = 'pending'")
        .bind(assignment.id)
        .execute(&mut *tx)
        .await?;
    if changed.rows_affected() == 1 {
        sqlx::query("UPDATE round_items SET assigned = assigned - 1 WHERE id = $1")
            .bind(assignment.round_item_id)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(changed.rows_affected() == 1)
}

#[derive(Debug, Clone, Default, sqlx::FromRow)]
pub struct MyProgress {
    pub done: i64,
    pub required: i64,
    pub last_hour: i64,
}

/// Done / total of the round, and this annotator's pace over the last hour.
pub async fn progress(pool: &PgPool, round_id: i64, annotator_id: i64) -> sqlx::Result<MyProgress> {
    sqlx::query_as(
        "SELECT
            (SELECT count(*) FROM assignments a JOIN round_items i ON i.id = a.round_item_id
              WHERE i.round_id = $1 AND a.status = 'done') AS done,
            (SELECT coalesce(sum(copies), 0)::bigint FROM round_items WHERE round_id = $1) AS required,
            (SELECT count(*) FROM assignments a WHERE a.annotator_id = $2 AND a.status = 'done'
               AND a.completed_at > now() - interval '1 hour') AS last_hour",
    )
    .bind(round_id)
    .bind(annotator_id)
    .fetch_one(pool)
    .await
}

pub async fn current_answer(pool: &PgPool, assignment_id: i64) -> sqlx::Result<Option<ResolvedLabels>> {
    Ok(annotations::latest_for_assignment(pool, assignment_id).await?.map(|a| a.labels))
}
