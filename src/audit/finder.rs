//! `reviewloop audit`: out-of-sample probabilities for every current label (k-fold
//! cross-validation), confident learning per keyword and per keyword's sentiment, and
//! the suspects recorded as label issues for reviewers.

use serde::Serialize;
use sqlx::PgPool;

use super::confident::{keyword_suspects, suspects};
use super::neighbours::{ranked, Neighbourhood, NEIGHBOURS};
use crate::evidence::MIN_AUDIT_LABELS;
use crate::store::label_issues::{self, NewIssue};
use crate::taxonomy::Taxonomy;
use crate::train::data::{self, LabelledText};
use crate::train::folds::{self, OutOfSample};
use crate::train::settings::TrainSettings;
use crate::train::Progress;

#[derive(Debug, Clone, Serialize)]
pub struct AuditSummary {
    pub reviews: usize,
    /// (keyword, keyword suspects, sentiment suspects)
    pub per_keyword: Vec<(String, usize, usize)>,
    /// New issues recorded (open ones refreshed, decided ones not raised again).
    pub added: usize,
    /// Keywords not judged, with their labels: fewer than `evidence::MIN_AUDIT_LABELS`.
    pub too_few: Vec<(String, usize)>,
}

pub async fn run(
    pool: &PgPool,
    settings: &TrainSettings,
    folds: usize,
    progress: &mut (dyn FnMut(&str, &Progress) + Send),
) -> anyhow::Result<AuditSummary> {
    let taxonomy = crate::store::taxonomies::load_by_name(pool, &settings.taxonomy).await?;
    let items = data::labelled(pool, &taxonomy, None).await?;
    anyhow::ensure!(items.len() >= folds * 2, "only {} labelled reviews: too few to audit", items.len());
    let out = folds::cross_validate(pool, settings, &taxonomy, &items, &folds::Plan::audit(folds), progress)
        .await?;
    let issues = find(&taxonomy, &items, &out, &Neighbourhood::of(&out.vectors, NEIGHBOURS)?);
    let count = |id: i64, sentiment: bool| {
        issues.iter().filter(|i| i.keyword_id == id && (i.kind == "sentiment") == sentiment).count()
    };
    let per_keyword =
        taxonomy.keywords.iter().map(|k| (k.name.clone(), count(k.id, false), count(k.id, true))).collect();
    let added = label_issues::record(pool, &issues).await?;
    let too_few = taxonomy
        .keywords
        .iter()
        .enumerate()
        .map(|(k, keyword)| (keyword.name.clone(), labels_of(&items, k)))
        .filter(|(_, n)| *n < MIN_AUDIT_LABELS)
        .collect();
    Ok(AuditSummary { reviews: items.len(), per_keyword, added, too_few })
}

/// Whether each of `items` is labelled with keyword `k`.
fn labelled_with(items: &[LabelledText], k: usize) -> Vec<bool> {
    items.iter().map(|i| i.labels.iter().any(|(kw, _)| *kw == k)).collect()
}

/// How many of `items` are labelled with keyword `k`.
fn labels_of(items: &[LabelledText], k: usize) -> usize {
    labelled_with(items, k).iter().filter(|l| **l).count()
}

/// Every suspect, keyword by keyword, most confident first within each. A keyword's
/// labels are judged by the fold models and the neighbours' vote; a level, by the
/// sentiment fold models alone.
pub fn find(
    taxonomy: &Taxonomy,
    items: &[LabelledText],
    out: &OutOfSample,
    neighbourhood: &Neighbourhood,
) -> Vec<NewIssue> {
    let mut issues = Vec::new();
    for (k, keyword) in taxonomy.keywords.iter().enumerate() {
        let labelled = labelled_with(items, k);
        // Too few labels to judge: the summary says which.
        if labelled.iter().filter(|l| **l).count() < MIN_AUDIT_LABELS {
            continue;
        }
        let present = ranked(&out.keyword_column(k), neighbourhood.vote(&labelled).as_deref());
        for s in keyword_suspects(&present, &labelled) {
            let Some((review_id, annotation_id)) = items[s.index].stored else { continue };
            let kind = if s.suggested == 1 { "missing" } else { "wrong" };
            let suggested = s.suggested as i16;
            issues.push(NewIssue {
                review_id,
                keyword_id: keyword.id,
                kind,
                annotation_id,
                suggested,
                confidence: s.excess,
            });
        }
        // Sentiment: the reviews labelled with this keyword, their level as the class.
        let rated: Vec<(usize, usize, &Vec<f32>)> = items
            .iter()
            .enumerate()
            .filter_map(|(i, item)| {
                let level = item.labels.iter().find(|(kw, _)| *kw == k)?.1;
                let dist = out.sentiment[i].iter().find(|(kw, _)| *kw == k).map(|(_, d)| d)?;
                Some((i, (level - taxonomy.scale_min) as usize, dist))
            })
            .collect();
        let dists: Vec<Vec<f32>> = rated.iter().map(|r| r.2.clone()).collect();
        let given: Vec<usize> = rated.iter().map(|r| r.1).collect();
        for s in suspects(&dists, &given) {
            let Some((review_id, annotation_id)) = items[rated[s.index].0].stored else { continue };
            let suggested = taxonomy.scale_min + s.suggested as i16;
            issues.push(NewIssue {
                review_id,
                keyword_id: keyword.id,
                kind: "sentiment",
                annotation_id,
                suggested,
                confidence: s.excess,
            });
        }
    }
    issues
}
