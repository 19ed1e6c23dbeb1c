//! Rounds, their items, and the assignments annotators claim: the SQL. How a round is
//! composed (sampling, strategies, doubling, assistance) is `rounds::compose`.

use std::collections::HashSet;

use serde_json::json;
use sqlx::{PgConnection, PgPool};

use super::predictions::Grouping;

/// Reviews of a taxonomy that nobody has labelled and no open round holds.
fn eligible() -> String {
    format!("SELECT r.id, r.mall, r.category FROM reviews r WHERE {}", super::predictions::ELIGIBLE)
}

/// Rounds of a taxonomy are composed one at a time: a second waits here until the
/// first has committed, then sees its items as taken.
pub async fn lock_taxonomy(tx: &mut PgConnection, taxonomy_id: i64) -> sqlx::Result<()> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext('reviewloop round'), $1::int)")
        .bind(taxonomy_id as i32)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

/// Which of `review_ids` are still eligible, asked inside the round's transaction.
pub async fn still_eligible(
    tx: &mut PgConnection,
    taxonomy_id: i64,
    review_ids: &[i64],
) -> sqlx::Result<HashSet<i64>> {
    let eligible = eligible();
    let ids: Vec<i64> = sqlx::query_scalar(&format!("SELECT e.id FROM ({eligible}) e WHERE e.id = ANY($2)"))
        .bind(taxonomy_id)
        .bind(review_ids)
        .fetch_all(&mut *tx)
        .await?;
    Ok(ids.into_iter().collect())
}

/// Up to `size` eligible review ids in a seeded random order.
pub async fn sample_random(
    pool: &PgPool,
    taxonomy_id: i64,
    seed: u64,
    size: usize,
) -> sqlx::Result<Vec<i64>> {
    let eligible = eligible();
    sqlx::query_scalar(&format!(
        "SELECT e.id FROM ({eligible}) e ORDER BY md5(e.id::text || $2), e.id LIMIT $3"
    ))
    .bind(taxonomy_id)
    .bind(seed.to_string())
    .bind(size as i64)
    .fetch_all(pool)
    .await
}

/// A group of eligible reviews: mall and category ('' where not grouped by), size.
pub type Group = (String, String, i64);

fn grouped() -> String {
    let eligible = eligible();
    format!(
        "SELECT e.id, CASE WHEN $2 THEN e.mall ELSE '' END AS g_mall,
                CASE WHEN $3 THEN e.category ELSE '' END AS g_category FROM ({eligible}) e"
    )
}

/// The eligible reviews' groups with their sizes, in a fixed order.
pub async fn eligible_groups(pool: &PgPool, taxonomy_id: i64, by: Grouping) -> sqlx::Result<Vec<Group>> {
    let grouped = grouped();
    sqlx::query_as(&format!(
        "SELECT g_mall, g_category, count(*) FROM ({grouped}) g GROUP BY 1, 2 ORDER BY 1, 2"
    ))
    .bind(taxonomy_id)
    .bind(by.mall)
    .bind(by.category)
    .fetch_all(pool)
    .await
}

/// `quotas[i]` eligible reviews of `groups[i]` each, in a seeded random order.
pub async fn sample_groups(
    pool: &PgPool,
    taxonomy_id: i64,
    by: Grouping,
    groups: &[Group],
    quotas: &[usize],
    seed: u64,
) -> sqlx::Result<Vec<i64>> {
    let grouped = grouped();
    sqlx::query_scalar(&format!(
        "WITH q AS (SELECT * FROM UNNEST($4::text[], $5::text[], $6::int[]) AS q(g_mall, g_category, quota)),
              ranked AS (SELECT g.id, g.g_mall, g.g_category,
                                row_number() OVER (PARTITION BY g.g_mall, g.g_category ORDER BY md5(g.id::text || $7), g.id) AS rn
                         FROM ({grouped}) g)
         SELECT r.id FROM ranked r JOIN q ON q.g_mall = r.g_mall AND q.g_category = r.g_category
         WHERE r.rn <= q.quota ORDER BY md5(r.id::text || $7), r.id"
    ))
    .bind(taxonomy_id)
    .bind(by.mall)
    .bind(by.category)
    .bind(groups.iter().map(|g| g.0.clone()).collect::<Vec<_>>())
    .bind(groups.iter().map(|g| g.1.clone()).collect::<Vec<_>>())
    .bind(quotas.iter().map(|&q| q as i32).collect::<Vec<_>>())
    .bind(seed.to_string())
    .fetch_all(pool)
    .await
}

/// A round as stored.
pub struct NewRound<'a> {
    pub taxonomy_id: i64,
    pub name: &'a str,
    pub sampling: &'a str,
    pub params: serde_json::Value,
    pub created_by: Option<i64>,
    pub assist: &'a str,
}

/// A round's items, one entry per item in order.
pub struct NewItems<'a> {
    pub review_ids: &'a [i64],
    pub copies: &'a [i16],
    pub strategies: &'a [String],
    pub scores: &'a [Option<f32>],
    pub assisted: &'a [bool],
}

/// Inserts the round, its items and its members; returns its id.
pub async fn insert(
    tx: &mut PgConnection,
    round: &NewRound<'_>,
    items: &NewItems<'_>,
    members: &[i64],
) -> sqlx::Result<i64> {
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO rounds (taxonomy_id, name, sampling, params, created_by, assist)
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
    )
    .bind(round.taxonomy_id)
    .bind(round.name)
    .bind(round.sampling)
    .bind(&round.params)
    .bind(round.created_by)
    .bind(round.assist)
    .fetch_one(&mut *tx)
    .await?;
    sqlx::query(
        "INSERT INTO round_items (round_id, review_id, position, copies, strategy, score, assisted)
         SELECT $1, t.review_id, t.position - 1, t.copies, t.strategy, t.score, t.assisted
         FROM UNNEST($2::bigint[], $3::smallint[], $4::text[], $5::real[], $6::boolean[])
              WITH ORDINALITY AS t(review_id, copies, strategy, score, assisted, position)",
    )
    .bind(id)
    .bind(items.review_ids)
    .bind(items.copies)
    .bind(items.strategies)
    .bind(items.scores)
    .bind(items.assisted)
    .execute(&mut *tx)
    .await?;
    sqlx::query("INSERT INTO round_members (round_id, user_id) SELECT $1, UNNEST($2::bigint[])")
        .bind(id)
        .bind(members)
        .execute(&mut *tx)
        .await?;
    Ok(id)
}

#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize)]
pub struct RoundProgress {
    pub id: i64,
    pub taxonomy_id: i64,
    pub name: String,
    pub sampling: String,
    pub status: String,
    /// How items show the model's suggestions (`rounds::Assist`).
    pub assist: String,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub items: i64,
    /// Annotations required: items × copies.
    pub required: i64,
    pub done: i64,
    pub skipped: i64,
}

const PROGRESS: &str = "
    SELECT o.id, o.taxonomy_id, o.name, o.sampling, o.status, o.assist, o.created_at,
           (SELECT count(*) FROM round_items i WHERE i.round_id = o.id) AS items,
           (SELECT coalesce(sum(i.copies), 0)::bigint FROM round_items i WHERE i.round_id = o.id) AS required,
           (SELECT count(*) FROM assignments a JOIN round_items i ON i.id = a.round_item_id
             WHERE i.round_id = o.id AND a.status = 'done') AS done,
           (SELECT count(*) FROM assignments a JOIN round_items i ON i.id = a.round_item_id
             WHERE i.round_id = o.id AND a.status = 'skipped') AS skipped
    FROM rounds o";

pub async fn list(pool: &PgPool) -> sqlx::Result<Vec<RoundProgress>> {
    sqlx::query_as(&format!("{PROGRESS} ORDER BY o.id DESC")).fetch_all(pool).await
}

pub async fn get(pool: &PgPool, id: i64) -> sqlx::Result<Option<RoundProgress>> {
    sqlx::query_as(&format!("{PROGRESS} WHERE o.id = $1")).bind(id).fetch_optional(pool).await
}

/// An open round as one annotator sees it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct OpenRound {
    #[sqlx(flatten)]
    pub progress: RoundProgress,
    /// Whether anything is left for this annotator: an item they hold, or one with a
    /// free copy they have not answered (the others' copies of doubled items are not).
    pub left_for_me: bool,
}

/// Open rounds this user may work on: those without members, or with them as member;
/// those with something left for them first.
pub async fn open_for(pool: &PgPool, user_id: i64) -> sqlx::Result<Vec<OpenRound>> {
    sqlx::query_as(&format!(
        "SELECT p.*,
                EXISTS (SELECT 1 FROM assignments a JOIN round_items i ON i.id = a.round_item_id
                        WHERE i.round_id = p.id AND a.annotator_id = $1 AND a.status = 'pending')
                OR EXISTS (SELECT 1 FROM round_items i WHERE i.round_id = p.id AND {claimable}) AS left_for_me
         FROM ({PROGRESS} WHERE o.status = 'open' AND (
            NOT EXISTS (SELECT 1 FROM round_members m WHERE m.round_id = o.id)
            OR EXISTS (SELECT 1 FROM round_members m WHERE m.round_id = o.id AND m.user_id = $1))) p
         ORDER BY left_for_me DESC, p.id",
        claimable = super::assignments::claimable("$1")
    ))
    .bind(user_id)
    .fetch_all(pool)
    .await
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// No such round, or it is closed.
    NotOpen,
    /// Open, but for its members only.
    NotMember,
    Allowed,
}

/// Whether this user may take items from the round; one cheap query, asked on every
/// "next item".
pub async fn access(pool: &PgPool, round_id: i64, user_id: i64) -> sqlx::Result<Access> {
    let row: Option<(bool,)> = sqlx::query_as(
        "SELECT NOT EXISTS (SELECT 1 FROM round_members m WHERE m.round_id = o.id)
                OR EXISTS (SELECT 1 FROM round_members m WHERE m.round_id = o.id AND m.user_id = $2)
         FROM rounds o WHERE o.id = $1 AND o.status = 'open'",
    )
    .bind(round_id)
    .bind(user_id)
    .fetch_optional(pool)
    .await?;
    Ok(match row {
        None => Access::NotOpen,
        Some((false,)) => Access::NotMember,
        Some((true,)) => Access::Allowed,
    })
}

pub async fn close(pool: &PgPool, round_id: i64, actor: Option<i64>) -> sqlx::Result<bool> {
    let mut tx = pool.begin().await?;
    let done = sqlx::query(
        "UPDATE rounds SET status = 'closed', closed_at = now() WHERE id = $1 AND status = 'open'",
    )
    .bind(round_id)
    .execute(&mut *tx)
    .await?;
    super::audit::record(&mut *tx, actor, "round.close", &format!("round:{round_id}"), json!({})).await?;
    tx.commit().await?;
    Ok(done.rows_affected() == 1)
}

/// How far the taxonomy's open rounds are: (answers required, answers given), across
/// all of them; (0, 0) when none is open.
pub async fn open_progress(conn: &mut PgConnection, taxonomy_id: i64) -> sqlx::Result<(i64, i64)> {
    sqlx::query_as(
        "SELECT (SELECT coalesce(sum(i.copies), 0) FROM round_items i JOIN rounds o ON o.id = i.round_id
                 WHERE o.taxonomy_id = $1 AND o.status = 'open')::bigint,
                (SELECT count(*) FROM assignments a JOIN round_items i ON i.id = a.round_item_id
                 JOIN rounds o ON o.id = i.round_id
                 WHERE o.taxonomy_id = $1 AND o.status = 'open' AND a.status = 'done')",
    )
    .bind(taxonomy_id)
    .fetch_one(&mut *conn)
    .await
}

/// The round a loop cycle composed, and how many the loop has composed for the taxonomy.
pub async fn of_cycle(conn: &mut PgConnection, cycle_id: i64) -> sqlx::Result<Option<i64>> {
    sqlx::query_scalar("SELECT id FROM rounds WHERE (params->>'cycle')::bigint = $1")
        .bind(cycle_id)
        .fetch_optional(&mut *conn)
        .await
}

pub async fn composed_by_loop(conn: &mut PgConnection, taxonomy_id: i64) -> sqlx::Result<i64> {
    sqlx::query_scalar("SELECT count(*) FROM rounds WHERE taxonomy_id = $1 AND params->>'cycle' IS NOT NULL")
        .bind(taxonomy_id)
        .fetch_one(&mut *conn)
        .await
}
