//! Switching the serving version: promotion behind the F1 gate, and rollback to the
//! version that served before. Both kinds (keyword, sentiment) of a version switch in
//! one transaction, recorded in the audit log. [`judge`] is the promotion rule itself,
//! one function over two keyword reports on the same test reviews, that the loop
//! applies to each new version and the pages show.

use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::PgPool;

use crate::evidence::{Evidence, MIN_KEYWORD_SUPPORT, MIN_REPORT_SUPPORT};
use crate::store::jobs::{self, EnqueueError, NewJob};
use crate::store::{audit, models};
use crate::train::compare::{deltas, judged_report, regressions};
use crate::train::metrics::Report;

#[derive(Debug, thiserror::Error)]
pub enum PromoteError {
    #[error("no ready version `{0}`")]
    NotFound(String),
    #[error("`{0}` is already serving")]
    AlreadyActive(String),
    #[error("F1 falls by more than {margin} for: {labels}; give a reason to promote anyway")]
    Regressions { margin: f64, labels: String },
    #[error("no earlier version to roll back to")]
    NothingToRollBack,
    #[error("judged on {labels} test labels, fewer than the {needed} a promotion needs; give a reason to promote anyway")]
    TooFewLabels { labels: usize, needed: usize },
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

pub struct Gate<'a> {
    /// Largest F1 fall per keyword accepted without a reason.
    pub margin: f64,
    /// A non-empty reason promotes despite regressions (recorded).
    pub override_reason: Option<&'a str>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Switched {
    pub from: Option<String>,
    pub to: String,
}

/// Promotes `name`, its gate judged inside the switching transaction under the
/// taxonomy's lock: two promotions at once take turns, and the second is judged
/// against what the first made active (the same version twice: `AlreadyActive`).
pub async fn promote(
    pool: &PgPool,
    taxonomy_id: i64,
    name: &str,
    actor: Option<i64>,
    gate: &Gate<'_>,
) -> Result<Switched, PromoteError> {
    let mut tx = pool.begin().await?;
    let candidate = switchable(&mut tx, taxonomy_id, name).await?;
    let active = models::active(&mut *tx, taxonomy_id, "keyword").await?;
    let reason = gate.override_reason.map(str::trim).filter(|r| !r.is_empty());
    let new = judged_report(&candidate.metrics).unwrap_or_default();
    if new.micro.support < MIN_REPORT_SUPPORT && reason.is_none() {
        return Err(PromoteError::TooFewLabels { labels: new.micro.support, needed: MIN_REPORT_SUPPORT });
    }
    let old = active.as_ref().and_then(|a| judged_report(&a.metrics));
    let rows = deltas(&new, old.as_ref());
    let fallen: Vec<String> = regressions(&rows, gate.margin)
        .iter()
        .map(|d| format!("{} ({:+.3})", d.label, d.delta_f1.unwrap_or(f64::NAN)))
        .collect();
    if !fallen.is_empty() && reason.is_none() {
        return Err(PromoteError::Regressions { margin: gate.margin, labels: fallen.join(", ") });
    }
    let details = json!({"regressions": fallen, "override_reason": reason, "margin": gate.margin});
    let from = active.map(|a| a.name);
    switch(tx, taxonomy_id, from, name, actor, "model.promote", details).await
}

/// Promotes `name` as the loop's rule decided ([`judge`], on fresh evaluations of both
/// versions), recording that judgement instead of judging the stored reports again.
/// Already serving: `AlreadyActive` (a cycle's step run twice).
pub async fn promote_judged(
    pool: &PgPool,
    taxonomy_id: i64,
    name: &str,
    verdict: &Verdict,
) -> Result<Switched, PromoteError> {
    let mut tx = pool.begin().await?;
    switchable(&mut tx, taxonomy_id, name).await?;
    let from = models::active(&mut *tx, taxonomy_id, "keyword").await?.map(|a| a.name);
    let details = json!({"by": "loop", "verdict": verdict});
    switch(tx, taxonomy_id, from, name, None, "model.promote", details).await
}

/// What the promotion rule weighs: how much better overall a new version must be, and
/// how much worse any keyword with enough test labels may get.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Rule {
    /// Micro F1 the candidate must gain over the serving version (0: not be worse).
    pub margin: f64,
    /// The most F1 a keyword with [`MIN_KEYWORD_SUPPORT`] test labels may lose.
    pub max_drop: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum Verdict {
    Promote {
        candidate: f64,
        serving: Option<f64>,
    },
    Hold {
        #[serde(flatten)]
        reason: HoldReason,
    },
}

/// Why a new version waits for a person.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "why", rename_all = "snake_case")]
pub enum HoldReason {
    /// The test reviews hold too few labels to judge on.
    TooFewTestLabels { labels: usize, needed: usize },
    /// Not better overall by the margin.
    NotBetter { candidate: f64, serving: f64, margin: f64 },
    /// Keywords (with enough test labels) that lose more than allowed.
    KeywordDrops { keywords: Vec<(String, f64)>, max_drop: f64 },
    /// The policy leaves every promotion to a person.
    PersonDecides,
}

/// The promotion rule: `candidate` against `serving` (none: nothing serves yet), both
/// keyword reports on the same test reviews. Promote when the candidate's micro F1
/// rests on enough labels, gains at least the margin, and no keyword with enough test
/// labels falls by more than the bound; otherwise hold, saying why.
pub fn judge(candidate: &Report, serving: Option<&Report>, rule: &Rule) -> Verdict {
    let hold = |reason| Verdict::Hold { reason };
    let micro = |r: &Report| Evidence::of(r.micro.f1, r.micro.support, MIN_REPORT_SUPPORT);
    let Some(new) = micro(candidate).value() else {
        return hold(HoldReason::TooFewTestLabels {
            labels: candidate.micro.support,
            needed: MIN_REPORT_SUPPORT,
        });
    };
    let Some(serving) = serving else { return Verdict::Promote { candidate: new, serving: None } };
    let old = serving.micro.f1;
    if new < old + rule.margin {
        return hold(HoldReason::NotBetter { candidate: new, serving: old, margin: rule.margin });
    }
    let drops: Vec<(String, f64)> = deltas(candidate, Some(serving))
        .into_iter()
        .filter(|d| d.active.as_ref().is_some_and(|a| a.support >= MIN_KEYWORD_SUPPORT))
        .filter_map(|d| Some((d.label, d.delta_f1?)))
        .filter(|(_, delta)| *delta < -rule.max_drop)
        .collect();
    if !drops.is_empty() {
        return hold(HoldReason::KeywordDrops { keywords: drops, max_drop: rule.max_drop });
    }
    Verdict::Promote { candidate: new, serving: Some(old) }
}

/// Takes the taxonomy's switch lock in `tx` and reads `name`'s keyword model: one that
/// finished training and is not already serving.
async fn switchable(
    tx: &mut sqlx::Transaction<'static, sqlx::Postgres>,
    taxonomy_id: i64,
    name: &str,
) -> Result<models::ModelVersion, PromoteError> {
    models::lock_switch(tx, taxonomy_id).await?;
    let candidate = models::by_name(&mut **tx, taxonomy_id, "keyword", name)
        .await?
        .filter(|v| matches!(v.status.as_str(), "ready" | "active" | "retired"))
        .ok_or_else(|| PromoteError::NotFound(name.to_string()))?;
    if candidate.status == "active" {
        return Err(PromoteError::AlreadyActive(name.to_string()));
    }
    Ok(candidate)
}

/// Serves again the version that was promoted before the current one.
pub async fn rollback(pool: &PgPool, taxonomy_id: i64, actor: Option<i64>) -> Result<Switched, PromoteError> {
    let mut tx = pool.begin().await?;
    models::lock_switch(&mut tx, taxonomy_id).await?;
    let active = models::active(&mut *tx, taxonomy_id, "keyword").await?;
    let previous = models::promoted_before(&mut tx, taxonomy_id).await?;
    let previous = previous.ok_or(PromoteError::NothingToRollBack)?;
    switch(tx, taxonomy_id, active.map(|a| a.name), &previous, actor, "model.rollback", json!({})).await
}

async fn switch(
    mut tx: sqlx::Transaction<'static, sqlx::Postgres>,
    taxonomy_id: i64,
    from: Option<String>,
    to: &str,
    actor: Option<i64>,
    action: &str,
    mut details: serde_json::Value,
) -> Result<Switched, PromoteError> {
    if !models::activate(&mut tx, taxonomy_id, to).await? {
        return Err(PromoteError::NotFound(to.to_string()));
    }
    details["from"] = json!(from);
    audit::record(&mut *tx, actor, action, &format!("version:{to}"), details).await?;
    rescore(&mut tx, taxonomy_id, actor).await?;
    tx.commit().await?;
    Ok(Switched { from, to: to.to_string() })
}

/// The new serving version scores the pool next (strategies read its scores); queued
/// with the switch, so neither happens without the other.
async fn rescore(tx: &mut sqlx::PgConnection, taxonomy_id: i64, actor: Option<i64>) -> sqlx::Result<()> {
    let name: String = sqlx::query_scalar("SELECT name FROM taxonomies WHERE id = $1")
        .bind(taxonomy_id)
        .fetch_one(&mut *tx)
        .await?;
    // The old version's chunks that have not started are moot now.
    if let Some(serving) = models::active(&mut *tx, taxonomy_id, "keyword").await? {
        jobs::cancel_stale_chunks(tx, &name, serving.id).await?;
    }
    let mut job = NewJob::new("score", json!({"taxonomy": name}));
    job.dedup_key = Some(format!("score:{name}"));
    job.created_by = actor;
    match jobs::enqueue(tx, &job).await {
        Ok(_) | Err(EnqueueError::Duplicate(_)) => Ok(()),
        Err(EnqueueError::Database(e)) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::metrics::Scores;

    fn report(micro: f64, support: usize, labels: &[(&str, f64, usize)]) -> Report {
        let scores = |f1: f64, support: usize| Scores { precision: f1, recall: f1, f1, support };
        Report {
            labels: labels.iter().map(|(l, f1, n)| (l.to_string(), scores(*f1, *n))).collect(),
            micro: scores(micro, support),
            ..Report::default()
        }
    }

    const RULE: Rule = Rule { margin: 0.01, max_drop: 0.05 };

    #[test]
    fn a_first_version_is_promoted_only_on_enough_test_labels() {
        let few = report(0.83, 12, &[("배송", 0.83, 12)]);
        assert_eq!(
            judge(&few, None, &RULE),
            Verdict::Hold { reason: HoldReason::TooFewTestLabels { labels: 12, needed: MIN_REPORT_SUPPORT } }
        );
        let enough = report(0.61, 96, &[("배송", 0.61, 96)]);
        assert_eq!(judge(&enough, None, &RULE), Verdict::Promote { candidate: 0.61, serving: None });
    }

    #[test]
    fn a_new_version_must_gain_the_margin_without_a_keyword_falling_past_the_bound() {
        let serving = report(0.70, 90, &[("배송", 0.80, 40), ("신축성", 0.60, 4), ("색상", 0.70, 46)]);
        let same = report(0.705, 90, &[("배송", 0.80, 40), ("신축성", 0.60, 4), ("색상", 0.70, 46)]);
        assert!(matches!(
            judge(&same, Some(&serving), &RULE),
            Verdict::Hold { reason: HoldReason::NotBetter { .. } }
        ));
        // Better overall, but 색상 (46 test labels) falls by 0.10; 신축성 (4 labels) is not judged.
        let mixed = report(0.75, 90, &[("배송", 0.95, 40), ("신축성", 0.0, 4), ("색상", 0.60, 46)]);
        let Verdict::Hold { reason: HoldReason::KeywordDrops { keywords, .. } } =
            judge(&mixed, Some(&serving), &RULE)
        else {
            panic!("색상 falls");
        };
        assert_eq!(keywords.iter().map(|k| k.0.as_str()).collect::<Vec<_>>(), ["색상"]);
        let better = report(0.75, 90, &[("배송", 0.95, 40), ("신축성", 0.0, 4), ("색상", 0.68, 46)]);
        assert_eq!(
            judge(&better, Some(&serving), &RULE),
            Verdict::Promote { candidate: 0.75, serving: Some(0.70) }
        );
    }
}
