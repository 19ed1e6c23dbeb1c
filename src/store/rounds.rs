//! Rounds, their items, and the assignments annotators claim.

use serde_json::json;
use sqlx::PgPool;

use crate::rounds::{allocate, double_positions, Assist, RoundSpec, Sampling};
use crate::select::{compose, Strategy};

/// Reviews of a taxonomy that nobody has labelled and no open round holds.
const ELIGIBLE: &str = "
    SELECT r.id, r.mall, r.category FROM reviews r
    WHERE r.taxonomy_id = $1
      AND NOT EXISTS (SELECT 1 FROM annotations a WHERE a.review_id = r.id)
      AND NOT EXISTS (SELECT 1 FROM round_items i JOIN rounds o ON o.id = i.round_id
                      WHERE i.review_id = r.id AND o.status = 'open')";

#[derive(Debug, thiserror::Error)]
pub enum RoundError {
    #[error("a round needs at least one item")]
    Empty,
    #[error("the pool has no unlabelled reviews left for this taxonomy")]
    PoolEmpty,
    #[error("unknown annotator `{0}`")]
    UnknownMember(String),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct CreatedRound {
    pub id: i64,
    pub items: usize,
    pub doubled: usize,
}

pub async fn create(
    pool: &PgPool,
    taxonomy_id: i64,
    spec: &RoundSpec,
    created_by: Option<i64>,
) -> Result<CreatedRound, RoundError> {
    if spec.size == 0 {
        return Err(RoundError::Empty);
    }
    let members = member_ids(pool, &spec.members).await?;
    // Rounds of a taxonomy are composed one at a time: a second waits here until the
    // first has committed, then sees its items as taken.
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext('reviewloop round'), $1::int)")
        .bind(taxonomy_id as i32)
        .execute(&mut *tx)
        .await?;
    let mut items = if spec.quotas.is_empty() {
        sampled(pool, taxonomy_id, spec).await?
    } else {
        composed(pool, taxonomy_id, spec).await?
    };
    keep_eligible(&mut tx, taxonomy_id, &mut items).await?;
    if items.review_ids.is_empty() {
        return Err(RoundError::PoolEmpty);
    }
    let count = items.review_ids.len();
    let doubled = double_positions(count, spec.double_share, spec.seed);
    let copies: Vec<i16> = doubled.iter().map(|&d| if d { 2 } else { 1 }).collect();
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO rounds (taxonomy_id, name, sampling, params, created_by, assist)
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
    )
    .bind(taxonomy_id)
    .bind(&spec.name)
    .bind(&items.sampling)
    .bind(serde_json::to_value(spec).unwrap_or_default())
    .bind(created_by)
    .bind(spec.assist.as_str())
    .fetch_one(&mut *tx)
    .await?;
    // Items double-assigned for agreement measure unassisted labels unless asked.
    let assisted: Vec<bool> =
        doubled.iter().map(|&d| spec.assist != Assist::Off && (!d || spec.assist_doubled)).collect();
    sqlx::query(
        "INSERT INTO round_items (round_id, review_id, position, copies, strategy, score, assisted)
         SELECT $1, t.review_id, t.position - 1, t.copies, t.strategy, t.score, t.assisted
         FROM UNNEST($2::bigint[], $3::smallint[], $4::text[], $5::real[], $6::boolean[])
              WITH ORDINALITY AS t(review_id, copies, strategy, score, assisted, position)",
    )
    .bind(id)
    .bind(&items.review_ids)
    .bind(&copies)
    .bind(&items.strategies)
    .bind(&items.scores)
    .bind(&assisted)
    .execute(&mut *tx)
    .await?;
    if assisted.contains(&true) {
        // Suggestions are computed ahead by a job, queued with the round.
        let job = crate::jobs::NewJob::new("suggest", json!({"round_id": id}));
        crate::jobs::queue::enqueue(&mut tx, &job).await.map_err(|e| match e {
            crate::jobs::queue::EnqueueError::Database(e) => RoundError::Database(e),
            other => RoundError::Database(sqlx::Error::Protocol(other.to_string())),
        })?;
    }
    sqlx::query("INSERT INTO round_members (round_id, user_id) SELECT $1, UNNEST($2::bigint[])")
        .bind(id)
        .bind(&members)
        .execute(&mut *tx)
        .await?;
    let details = json!({"items": count, "spec": spec});
    super::audit::record(&mut *tx, created_by, "round.create", &format!("round:{id}"), details).await?;
    tx.commit().await?;
    Ok(CreatedRound { id, items: count, doubled: doubled.iter().filter(|&&d| d).count() })
}

/// Drops the items that are no longer eligible, checked inside the round's
/// transaction (under its lock, a last check; nothing should be dropped).
async fn keep_eligible(tx: &mut sqlx::PgConnection, taxonomy_id: i64, items: &mut Items) -> sqlx::Result<()> {
    let eligible: std::collections::HashSet<i64> =
        sqlx::query_scalar(&format!("SELECT e.id FROM ({ELIGIBLE}) e WHERE e.id = ANY($2)"))
            .bind(taxonomy_id)
            .bind(&items.review_ids)
            .fetch_all(&mut *tx)
            .await?
            .into_iter()
            .collect();
    let all = std::mem::take(&mut items.review_ids).into_iter();
    let picked = all.zip(std::mem::take(&mut items.strategies)).zip(std::mem::take(&mut items.scores));
    for ((id, strategy), score) in picked.filter(|((id, _), _)| eligible.contains(id)) {
        items.review_ids.push(id);
        items.strategies.push(strategy);
        items.scores.push(score);
    }
    Ok(())
}

/// A round's items before they are stored: which review, picked by what, with what score.
struct Items {
    sampling: String,
    review_ids: Vec<i64>,
    strategies: Vec<String>,
    scores: Vec<Option<f32>>,
}

async fn sampled(pool: &PgPool, taxonomy_id: i64, spec: &RoundSpec) -> sqlx::Result<Items> {
    let sampling = match spec.sampling {
        Sampling::Random => "random",
        Sampling::Proportional => "proportional",
    };
    let review_ids = sample(pool, taxonomy_id, spec).await?;
    Ok(Items {
        sampling: sampling.into(),
        strategies: vec![sampling.to_string(); review_ids.len()],
        scores: vec![None; review_ids.len()],
        review_ids,
    })
}

/// Picks by strategy quotas over the serving keyword model's scores.
async fn composed(pool: &PgPool, taxonomy_id: i64, spec: &RoundSpec) -> sqlx::Result<Items> {
    let version = super::models::current_keyword(pool, taxonomy_id).await?.map(|v| v.id);
    let candidates = super::predictions::candidates(pool, taxonomy_id, version, spec.group_by).await?;
    let picks = compose(&candidates, &spec.quotas, spec.size, spec.seed);
    let used: Vec<Strategy> = spec.quotas.iter().filter(|q| q.weight > 0.0).map(|q| q.strategy).collect();
    let sampling = match used.as_slice() {
        [one] => one.as_str().to_string(),
        _ => "mixed".to_string(),
    };
    Ok(Items {
        sampling,
        review_ids: picks.iter().map(|p| p.review_id).collect(),
        strategies: picks.iter().map(|p| p.strategy.as_str().to_string()).collect(),
        scores: picks.iter().map(|p| Some(p.score)).collect(),
    })
}

async fn member_ids(pool: &PgPool, usernames: &[String]) -> Result<Vec<i64>, RoundError> {
    let mut ids = Vec::with_capacity(usernames.len());
    for name in usernames {
        let user =
            super::users::find(pool, name).await?.ok_or_else(|| RoundError::UnknownMember(name.clone()))?;
        ids.push(user.id);
    }
    Ok(ids)
}

/// Review ids for a new round, in a seeded random order.
async fn sample(pool: &PgPool, taxonomy_id: i64, spec: &RoundSpec) -> sqlx::Result<Vec<i64>> {
    let seed = spec.seed.to_string();
    if spec.sampling == Sampling::Random {
        return sqlx::query_scalar(&format!(
            "SELECT e.id FROM ({ELIGIBLE}) e ORDER BY md5(e.id::text || $2), e.id LIMIT $3"
        ))
        .bind(taxonomy_id)
        .bind(&seed)
        .bind(spec.size as i64)
        .fetch_all(pool)
        .await;
    }
    let (by_mall, by_category) = (spec.group_by.uses_mall(), spec.group_by.uses_category());
    let grouped = format!(
        "SELECT e.id, CASE WHEN $2 THEN e.mall ELSE '' END AS g_mall,
                CASE WHEN $3 THEN e.category ELSE '' END AS g_category FROM ({ELIGIBLE}) e"
    );
    let groups: Vec<(String, String, i64)> = sqlx::query_as(&format!(
        "SELECT g_mall, g_category, count(*) FROM ({grouped}) g GROUP BY 1, 2 ORDER BY 1, 2"
    ))
    .bind(taxonomy_id)
    .bind(by_mall)
    .bind(by_category)
    .fetch_all(pool)
    .await?;
    let sizes: Vec<usize> = groups.iter().map(|g| g.2 as usize).collect();
    let quotas = allocate(spec.size, &sizes);
    sqlx::query_scalar(&format!(
        "WITH q AS (SELECT * FROM UNNEST($4::text[], $5::text[], $6::int[]) AS q(g_mall, g_category, quota)),
              ranked AS (SELECT g.id, g.g_mall, g.g_category,
                                row_number() OVER (PARTITION BY g.g_mall, g.g_category ORDER BY md5(g.id::text || $7), g.id) AS rn
                         FROM ({grouped}) g)
         SELECT r.id FROM ranked r JOIN q ON q.g_mall = r.g_mall AND q.g_category = r.g_category
         WHERE r.rn <= q.quota ORDER BY md5(r.id::text || $7), r.id"
    ))
    .bind(taxonomy_id)
    .bind(by_mall)
    .bind(by_category)
    .bind(groups.iter().map(|g| g.0.clone()).collect::<Vec<_>>())
    .bind(groups.iter().map(|g| g.1.clone()).collect::<Vec<_>>())
    .bind(quotas.iter().map(|&q| q as i32).collect::<Vec<_>>())
    .bind(&seed)
    .fetch_all(pool)
    .await
}

#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize)]
pub struct RoundProgress {
    pub id: i64,
    pub taxonomy_id: i64,
    pub name: String,
    pub sampling: String,
    pub status: String,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub items: i64,
    /// Annotations required: items × copies.
    pub required: i64,
    pub done: i64,
    pub skipped: i64,
}

const PROGRESS: &str = "
    SELECT o.id, o.taxonomy_id, o.name, o.sampling, o.status, o.created_at,
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

/// Open rounds this user may work on: those without members, or with them as member.
pub async fn open_for(pool: &PgPool, user_id: i64) -> sqlx::Result<Vec<RoundProgress>> {
    sqlx::query_as(&format!(
        "{PROGRESS} WHERE o.status = 'open' AND (
            NOT EXISTS (SELECT 1 FROM round_members m WHERE m.round_id = o.id)
            OR EXISTS (SELECT 1 FROM round_members m WHERE m.round_id = o.id AND m.user_id = $1))
         ORDER BY o.id"
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
