//! The work of a cycle's own steps, run by the `compare` and `compose` jobs. Each may
//! run twice (a worker killed before its success was recorded): a version already
//! promoted, or a round the cycle already composed, is found and reported again.

use serde_json::{json, Value};
use sqlx::PgPool;

use crate::analyze::Analyzer;
use crate::promotion::{self, HoldReason, PromoteError, Rule, Verdict};
use crate::rounds::{Assist, GroupBy, RoundError, RoundSpec, Sampling};
use crate::split::Split;
use crate::storage::Storage;
use crate::store::{loops, models};
use crate::train::{data, evaluate, metrics::Report};

/// Evaluates the cycle's new version and the serving one on the same test reviews (the
/// current labels' test split), applies the promotion rule and promotes when it says
/// so. Returns the decision with both evaluations.
pub async fn compare(
    pool: &PgPool,
    storage: &Storage,
    models_dir: &std::path::Path,
    cycle: i64,
) -> anyhow::Result<Value> {
    let mut conn = pool.acquire().await?;
    let cycle = loops::cycle(&mut conn, cycle).await?.ok_or_else(|| anyhow::anyhow!("no cycle {cycle}"))?;
    drop(conn);
    let name =
        cycle.version.clone().ok_or_else(|| anyhow::anyhow!("cycle {} trained no version", cycle.id))?;
    let taxonomy = crate::store::taxonomies::load(pool, cycle.taxonomy_id).await?;
    let candidate = models::by_name(pool, taxonomy.id, "keyword", &name)
        .await?
        .ok_or_else(|| anyhow::anyhow!("no version {name}"))?;
    let serving = models::active(pool, taxonomy.id, "keyword").await?.filter(|v| v.id != candidate.id);
    let test: Vec<_> =
        data::labelled(pool, &taxonomy, None).await?.into_iter().filter(|i| i.split == Split::Test).collect();
    let new = keyword_report(storage, models_dir, &candidate, &test).await?.unwrap_or_default();
    let old = match &serving {
        Some(version) => keyword_report(storage, models_dir, version, &test).await?,
        None => None,
    };
    let policy = loops::policy(pool, taxonomy.id).await?;
    let verdict = if policy.promote == "hold" {
        Verdict::Hold { reason: HoldReason::PersonDecides }
    } else {
        let rule = Rule { margin: policy.margin as f64, max_drop: policy.max_drop as f64 };
        promotion::judge(&new, old.as_ref(), &rule)
    };
    let promoted = match &verdict {
        Verdict::Promote { .. } => {
            match promotion::promote_judged(pool, taxonomy.id, &name, &verdict).await {
                Ok(_) | Err(PromoteError::AlreadyActive(_)) => true,
                Err(e) => return Err(e.into()),
            }
        }
        Verdict::Hold { .. } => false,
    };
    Ok(json!({
        "decision": if promoted { "promoted" } else { "held" },
        "verdict": verdict,
        "version": name,
        "serving": serving.map(|v| v.name),
        "test_reviews": test.len(),
        "candidate_report": summary(&new),
        "serving_report": old.as_ref().map(summary),
    }))
}

/// A version's keyword report on `test`, evaluated off the async threads.
async fn keyword_report(
    storage: &Storage,
    models_dir: &std::path::Path,
    version: &models::ModelVersion,
    test: &[data::LabelledText],
) -> anyhow::Result<Option<Report>> {
    let dir = storage.version_dir(models_dir, version).await?;
    let test = test.to_vec();
    tokio::task::spawn_blocking(move || Ok(evaluate::evaluate(&Analyzer::load(&dir)?, &test, 0)?.keyword))
        .await?
}

/// What the timeline shows of a report: micro and macro F1 with the labels behind them,
/// and each keyword's F1 and support.
fn summary(report: &Report) -> Value {
    json!({
        "micro_f1": report.micro.f1,
        "macro_f1": report.macro_avg.f1,
        "labels": report.micro.support,
        "keywords": report.labels.iter().map(|(k, s)| json!({"keyword": k, "f1": s.f1, "support": s.support})).collect::<Vec<_>>(),
    })
}

/// Composes the next round by the policy: its size, suggestions and agreement share;
/// picked by the serving model with the simulation's chosen mix (keyword anchors for the
/// loop's first round, then keyword neighbours and class balance), or at random in
/// proportion to mall and category when nothing serves yet.
pub async fn compose(pool: &PgPool, cycle: i64) -> anyhow::Result<Value> {
    let mut conn = pool.acquire().await?;
    if let Some(round) = crate::store::rounds::of_cycle(&mut conn, cycle).await? {
        return Ok(json!({"round_id": round}));
    }
    let record = loops::cycle(&mut conn, cycle).await?.ok_or_else(|| anyhow::anyhow!("no cycle {cycle}"))?;
    let earlier = crate::store::rounds::composed_by_loop(&mut conn, record.taxonomy_id).await? as usize;
    drop(conn);
    let policy = loops::policy(pool, record.taxonomy_id).await?;
    let serving = models::active(pool, record.taxonomy_id, "keyword").await?;
    let stages = crate::simulate::mixed_stages();
    let quotas = match serving {
        Some(_) => stages[earlier.min(stages.len() - 1)].clone(),
        None => Vec::new(),
    };
    let spec = RoundSpec {
        name: format!("루프 #{cycle}"),
        size: policy.round_size as usize,
        sampling: Sampling::Proportional,
        group_by: GroupBy::MallCategory,
        double_share: policy.double_share as f64,
        seed: cycle as u64,
        members: Vec::new(),
        quotas,
        assist: Assist::parse(&policy.assist).unwrap_or_default(),
        assist_doubled: false,
        diverse: false,
        cycle: Some(cycle),
    };
    match crate::rounds::create(pool, record.taxonomy_id, &spec, None).await {
        Ok(round) => Ok(json!({"round_id": round.id, "items": round.items, "asked": spec.size})),
        Err(RoundError::PoolEmpty) => Ok(json!({"round_id": null, "note": "pool_empty"})),
        Err(e) => Err(e.into()),
    }
}
