//! Composing a round: which eligible reviews it takes (seeded sampling, in proportion
//! to mall / category, or by strategy quotas over the serving model's scores), which
//! are double-assigned and which show suggestions, all stored in one transaction under
//! the taxonomy's lock, with the suggestion job queued in it.

use serde_json::json;
use sqlx::PgPool;

use super::{double_positions, Assist, RoundSpec, Sampling};
use crate::select::{allocate, composition, diversity, Composition, Pool, Shortlist, Strategy};
use crate::store::rounds::{NewItems, NewRound};
use crate::store::{self, jobs::EnqueueError, jobs::NewJob};

/// How many candidates per place a diverse round chooses its core-sets from.
const DIVERSITY_CANDIDATES: usize = 3;

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
    let mut tx = pool.begin().await?;
    store::rounds::lock_taxonomy(&mut tx, taxonomy_id).await?;
    let mut items = if spec.quotas.is_empty() {
        sampled(pool, taxonomy_id, spec).await?
    } else {
        composed(pool, taxonomy_id, spec).await?
    };
    // A last check under the lock; nothing should be dropped.
    let eligible = store::rounds::still_eligible(&mut tx, taxonomy_id, &items.review_ids).await?;
    items.keep(|id| eligible.contains(&id));
    if items.review_ids.is_empty() {
        return Err(RoundError::PoolEmpty);
    }
    let count = items.review_ids.len();
    let doubled = double_positions(count, spec.double_share, spec.seed);
    let copies: Vec<i16> = doubled.iter().map(|&d| if d { 2 } else { 1 }).collect();
    // Items double-assigned for agreement measure unassisted labels unless asked.
    let assisted: Vec<bool> =
        doubled.iter().map(|&d| spec.assist != Assist::Off && (!d || spec.assist_doubled)).collect();
    let round = NewRound {
        taxonomy_id,
        name: &spec.name,
        sampling: &items.sampling,
        params: serde_json::to_value(spec).unwrap_or_default(),
        created_by,
        assist: spec.assist.as_str(),
    };
    let new_items = NewItems {
        review_ids: &items.review_ids,
        copies: &copies,
        strategies: &items.strategies,
        scores: &items.scores,
        assisted: &assisted,
    };
    let id = store::rounds::insert(&mut tx, &round, &new_items, &members).await?;
    if assisted.contains(&true) {
        // Suggestions are computed ahead by a job, queued with the round.
        let job = NewJob::new("suggest", json!({"round_id": id}));
        store::jobs::enqueue(&mut tx, &job).await.map_err(|e| match e {
            EnqueueError::Database(e) => RoundError::Database(e),
            other => RoundError::Database(sqlx::Error::Protocol(other.to_string())),
        })?;
    }
    let details = json!({"items": count, "spec": spec});
    store::audit::record(&mut *tx, created_by, "round.create", &format!("round:{id}"), details).await?;
    tx.commit().await?;
    Ok(CreatedRound { id, items: count, doubled: doubled.iter().filter(|&&d| d).count() })
}

/// A round's items before they are stored: which review, picked by what, with what score.
struct Items {
    sampling: String,
    review_ids: Vec<i64>,
    strategies: Vec<String>,
    scores: Vec<Option<f32>>,
}

impl Items {
    fn keep(&mut self, keep: impl Fn(i64) -> bool) {
        let all = std::mem::take(&mut self.review_ids).into_iter();
        let picked = all.zip(std::mem::take(&mut self.strategies)).zip(std::mem::take(&mut self.scores));
        for ((id, strategy), score) in picked.filter(|((id, _), _)| keep(*id)) {
            self.review_ids.push(id);
            self.strategies.push(strategy);
            self.scores.push(score);
        }
    }
}

async fn sampled(pool: &PgPool, taxonomy_id: i64, spec: &RoundSpec) -> sqlx::Result<Items> {
    let (sampling, review_ids) = match spec.sampling {
        Sampling::Random => {
            ("random", store::rounds::sample_random(pool, taxonomy_id, spec.seed, spec.size).await?)
        }
        Sampling::Proportional => {
            let by = spec.group_by.grouping();
            let groups = store::rounds::eligible_groups(pool, taxonomy_id, by).await?;
            let sizes: Vec<usize> = groups.iter().map(|g| g.2 as usize).collect();
            let quotas = allocate(spec.size, &sizes);
            (
                "proportional",
                store::rounds::sample_groups(pool, taxonomy_id, by, &groups, &quotas, spec.seed).await?,
            )
        }
    };
    Ok(Items {
        sampling: sampling.into(),
        strategies: vec![sampling.to_string(); review_ids.len()],
        scores: vec![None; review_ids.len()],
        review_ids,
    })
}

/// Picks by strategy quotas over the serving keyword model's scores.
async fn composed(pool: &PgPool, taxonomy_id: i64, spec: &RoundSpec) -> sqlx::Result<Items> {
    let version = store::models::current_keyword(pool, taxonomy_id).await?.map(|v| v.id);
    // Diversity needs the version's embeddings: without a version the larger round is
    // neither composed nor shortlisted for.
    let over = spec.size * DIVERSITY_CANDIDATES;
    let diverse = spec.diverse && version.is_some();
    let sizes: &[usize] = if diverse { &[spec.size, over] } else { &[spec.size] };
    let (candidates, mut compositions) = shortlisted(pool, taxonomy_id, version, spec, sizes).await?;
    let mut picks = compositions.remove(0).picks;
    if let (true, Some(version)) = (diverse, version) {
        // Each cell's candidates three times over, cut down to a core-set of each.
        let over = compositions.remove(0).picks;
        let ids: Vec<i64> = over.iter().map(|p| p.review_id).collect();
        let embeddings = store::predictions::embeddings_of(pool, version, &ids).await?;
        picks = diversity::diversify(&candidates, &over, &picks, &embeddings);
    }
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

/// Rounds of each of `sizes` composed over a shortlist of the candidates read page by
/// page (`select::shortlist`), read again wider until the shortlist covers them; with
/// the shortlist as a pool.
async fn shortlisted(
    pool: &PgPool,
    taxonomy_id: i64,
    version: Option<i64>,
    spec: &RoundSpec,
    sizes: &[usize],
) -> sqlx::Result<(Pool, Vec<Composition>)> {
    let by = spec.group_by.grouping();
    let groups = store::predictions::candidate_groups(pool, taxonomy_id, by).await?;
    let taken = store::predictions::taken_texts(pool, taxonomy_id).await?;
    let mut list = Shortlist::new(&groups, &spec.quotas, sizes, spec.seed);
    loop {
        store::predictions::candidate_pages(pool, taxonomy_id, version, by, |page| list.add(page)).await?;
        if list.needs_ranks() {
            store::predictions::candidate_pages(pool, taxonomy_id, version, by, |page| list.rank(page))
                .await?;
        }
        let candidates = list.pool(taken.clone());
        let compositions: Vec<Composition> =
            sizes.iter().map(|&size| composition(&candidates, &spec.quotas, size, spec.seed)).collect();
        if compositions.iter().all(|c| list.covers(c)) {
            return Ok((candidates, compositions));
        }
        tracing::info!(
            kept = list.len(),
            "the shortlist did not cover the round: reading the pool again, wider"
        );
        list = list.widened();
    }
}

async fn member_ids(pool: &PgPool, usernames: &[String]) -> Result<Vec<i64>, RoundError> {
    let mut ids = Vec::with_capacity(usernames.len());
    for name in usernames {
        let user =
            store::users::find(pool, name).await?.ok_or_else(|| RoundError::UnknownMember(name.clone()))?;
        ids.push(user.id);
    }
    Ok(ids)
}
