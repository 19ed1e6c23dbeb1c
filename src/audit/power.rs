//! How well the audit finds planted label errors (`reviewloop bench audit`): flip a
//! share of one keyword's labels in a labelled file, both directions, with a fixed
//! seed; run the audit's cross-validation and confident learning; count the flipped
//! reviews among the top 2 × (number flipped) suspects of that keyword.

use std::path::Path;

use anyhow::Context;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::Serialize;

use super::confident::keyword_suspects;
use super::neighbours::{ranked, Neighbourhood};
use crate::import::{self, Format, ImportOptions};
use crate::store::scratch;
use crate::train::data::{self, LabelledText};
use crate::train::folds;
use crate::train::settings::TrainSettings;

/// A planted error: the item's keyword was `removed` (the label had it) or added.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Flip {
    pub index: usize,
    pub removed: bool,
}

/// Flips the presence of `keyword` on `rate` × (number of items), half on items that
/// have it (removed) and half on items that do not (added with `level`), so both
/// directions are tested whatever the keyword's frequency.
pub fn flip(items: &mut [LabelledText], keyword: usize, rate: f64, level: i16, seed: u64) -> Vec<Flip> {
    let total = (items.len() as f64 * rate).round() as usize;
    let has = |i: &LabelledText| i.labels.iter().any(|(k, _)| *k == keyword);
    let (mut with, mut without): (Vec<usize>, Vec<usize>) = (0..items.len()).partition(|&i| has(&items[i]));
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    with.shuffle(&mut rng);
    without.shuffle(&mut rng);
    let removals = (total / 2).min(with.len());
    let additions = (total - removals).min(without.len());
    let mut flips: Vec<Flip> = with[..removals].iter().map(|&index| Flip { index, removed: true }).collect();
    flips.extend(without[..additions].iter().map(|&index| Flip { index, removed: false }));
    for f in &flips {
        let labels = &mut items[f.index].labels;
        if f.removed {
            labels.retain(|(k, _)| *k != keyword);
        } else {
            labels.push((keyword, level));
        }
    }
    flips.sort_by_key(|f| f.index);
    flips
}

/// Precision and recall of the planted errors among the top suspects.
#[derive(Debug, Clone, Serialize)]
pub struct Power {
    pub keyword: String,
    pub items: usize,
    pub flipped: usize,
    /// Suspects looked at: 2 × flipped (fewer when fewer were raised).
    pub top: usize,
    /// All suspects the audit raised for the keyword.
    pub raised: usize,
    pub found: usize,
    pub precision: f64,
    pub recall: f64,
    pub recall_removed: f64,
    pub recall_added: f64,
    /// Every item's out-of-sample probability of the keyword, for `--scores`.
    #[serde(skip)]
    pub scored: Vec<Scored>,
}

/// One item as the audit saw it: the probability of the keyword it ranked by, what the
/// fold models gave it and its neighbours' vote, whether the (flipped) labels hold it,
/// and which flip, if any, was planted on it.
#[derive(Debug, Clone, Serialize)]
pub struct Scored {
    pub present: f32,
    pub model: f32,
    /// Share of its nearest neighbours labelled with the keyword (none: no vote).
    pub neighbours: Option<f32>,
    pub labelled: bool,
    /// `removed`, `added` or none.
    pub flip: Option<&'static str>,
}

/// Ranks the keyword's suspects from its out-of-sample probabilities, the (flipped)
/// labels and the neighbours' vote on them, and counts the planted errors among the
/// first 2 × flipped.
pub fn score(
    keyword: &str,
    model: &[f32],
    neighbourhood: &Neighbourhood,
    items: &[LabelledText],
    index: usize,
    flips: &[Flip],
) -> Power {
    let labelled: Vec<bool> = items.iter().map(|i| i.labels.iter().any(|(k, _)| *k == index)).collect();
    let voted = neighbourhood.vote(&labelled);
    let present = ranked(model, voted.as_deref());
    let suspects = keyword_suspects(&present, &labelled);
    let top: Vec<usize> = suspects.iter().take(2 * flips.len()).map(|s| s.index).collect();
    let found = |removed: Option<bool>| {
        flips.iter().filter(|f| removed.is_none_or(|r| f.removed == r) && top.contains(&f.index)).count()
    };
    let share = |a: usize, b: usize| if b == 0 { 0.0 } else { a as f64 / b as f64 };
    let removed = flips.iter().filter(|f| f.removed).count();
    let planted = |i: usize| {
        let f = flips.binary_search_by_key(&i, |f| f.index).ok()?;
        Some(if flips[f].removed { "removed" } else { "added" })
    };
    let scored = (0..present.len())
        .map(|i| Scored {
            present: present[i],
            model: model[i],
            neighbours: voted.as_ref().map(|v| v[i]),
            labelled: labelled[i],
            flip: planted(i),
        })
        .collect();
    Power {
        keyword: keyword.to_string(),
        items: items.len(),
        flipped: flips.len(),
        top: top.len(),
        raised: suspects.len(),
        found: found(None),
        precision: share(found(None), top.len()),
        recall: share(found(None), flips.len()),
        recall_removed: share(found(Some(true)), removed),
        recall_added: share(found(Some(false)), flips.len() - removed),
        scored,
    }
}

/// What to plant and how to audit.
pub struct PowerOptions<'a> {
    pub data: &'a Path,
    pub format: Format,
    /// The most frequent keyword when absent.
    pub keyword: Option<String>,
    pub rate: f64,
    pub seed: u64,
    pub folds: usize,
    /// Keyword models per fold, averaged (`folds::Plan::repeats`).
    pub repeats: usize,
    /// Neighbours whose labels vote (0: the fold models alone).
    pub neighbours: usize,
    pub train: TrainSettings,
}

/// Imports the file into a scratch database, plants the errors and audits.
pub async fn measure(database_url: &str, options: &PowerOptions<'_>) -> anyhow::Result<Power> {
    let name = format!("reviewloop_audit_power_{}", std::process::id());
    let url = scratch::url(database_url, &name);
    let pool = scratch::fresh(&url).await?;
    let result = plant_and_audit(&pool, options).await;
    scratch::drop(pool, &url).await?;
    result
}

async fn plant_and_audit(pool: &sqlx::PgPool, options: &PowerOptions<'_>) -> anyhow::Result<Power> {
    let taxonomy_name = &options.train.taxonomy;
    let file = std::fs::File::open(options.data)
        .with_context(|| format!("cannot open {}", options.data.display()))?;
    let import_options = ImportOptions::new(taxonomy_name, options.format, "audit power");
    import::import(pool, std::io::BufReader::new(file), &import_options).await?;
    let taxonomy = crate::store::taxonomies::load_by_name(pool, taxonomy_name).await?;
    let mut items = data::labelled(pool, &taxonomy, None).await?;
    let index = match &options.keyword {
        Some(name) => taxonomy
            .keywords
            .iter()
            .position(|k| &k.name == name)
            .with_context(|| format!("no keyword {name} in {taxonomy_name}"))?,
        None => most_frequent(&items, taxonomy.keywords.len()),
    };
    let neutral = (taxonomy.scale_min + taxonomy.scale_max) / 2;
    let flips = flip(&mut items, index, options.rate, neutral, options.seed);
    // Only the keyword's probabilities are scored: no sentiment models.
    let plan = folds::Plan { folds: options.folds, repeats: options.repeats, sentiment: false };
    let out = folds::cross_validate(pool, &options.train, &taxonomy, &items, &plan, &mut |stage, p| {
        if p.step == 1 {
            eprintln!("{stage}: {} steps", p.total_steps);
        }
    })
    .await?;
    let neighbourhood = Neighbourhood::of(&out.vectors, options.neighbours)?;
    let model = out.keyword_column(index);
    Ok(score(&taxonomy.keywords[index].name, &model, &neighbourhood, &items, index, &flips))
}

fn most_frequent(items: &[LabelledText], keywords: usize) -> usize {
    let mut counts = vec![0usize; keywords];
    for (k, _) in items.iter().flat_map(|i| &i.labels) {
        counts[*k] += 1;
    }
    (0..keywords).max_by_key(|&k| (counts[k], std::cmp::Reverse(k))).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::split::Split;

    fn items(with_keyword: usize, without: usize) -> Vec<LabelledText> {
        (0..with_keyword + without)
            .map(|i| LabelledText {
                text: format!("리뷰 {i}"),
                split: Split::Train,
                labels: if i < with_keyword { vec![(0, 1), (1, 0)] } else { vec![(1, -1)] },
                stored: None,
            })
            .collect()
    }

    #[test]
    fn flips_half_each_way_and_only_the_chosen_keyword() {
        let mut set = items(30, 70);
        let flips = flip(&mut set, 0, 0.1, 0, 7);
        assert_eq!(flips.len(), 10);
        assert_eq!(flips.iter().filter(|f| f.removed).count(), 5);
        for f in &flips {
            let has = set[f.index].labels.iter().any(|(k, _)| *k == 0);
            assert_eq!(has, !f.removed, "item {} flipped the wrong way", f.index);
            assert!(set[f.index].labels.iter().any(|(k, _)| *k == 1), "other keywords stay");
        }
        assert_eq!(set.iter().filter(|i| i.labels.iter().any(|(k, _)| *k == 0)).count(), 30);
    }

    #[test]
    fn the_same_seed_plants_the_same_errors() {
        let (mut a, mut b, mut c) = (items(30, 70), items(30, 70), items(30, 70));
        assert_eq!(flip(&mut a, 0, 0.1, 0, 7), flip(&mut b, 0, 0.1, 0, 7));
        assert_ne!(flip(&mut a.clone(), 0, 0.1, 0, 7), flip(&mut c, 0, 0.1, 0, 8));
    }

    #[test]
    fn a_rare_keyword_gets_the_additions_it_lacks_removals_for() {
        let mut set = items(2, 98);
        let flips = flip(&mut set, 0, 0.1, 0, 1);
        assert_eq!((flips.len(), flips.iter().filter(|f| f.removed).count()), (10, 2));
    }

    #[test]
    fn a_model_that_saw_through_the_flips_finds_them_all() {
        let mut set = items(30, 70);
        let flips = flip(&mut set, 0, 0.1, 0, 7);
        // The "model" knows the truth: present on the first 30, with a little noise.
        let present: Vec<f32> = (0..100)
            .map(|i| if i < 30 { 0.9 - (i % 3) as f32 * 0.05 } else { 0.1 + (i % 4) as f32 * 0.02 })
            .collect();
        let power = score("배송", &present, &Neighbourhood::of(&[], 10).unwrap(), &set, 0, &flips);
        assert_eq!((power.flipped, power.found), (10, 10));
        assert!((power.recall - 1.0).abs() < 1e-9 && power.precision > 0.49);
        assert_eq!((power.recall_removed, power.recall_added), (1.0, 1.0));
        assert_eq!(power.scored.len(), 100, "every item is in --scores");
        for f in &flips {
            let s = &power.scored[f.index];
            assert_eq!(s.flip, Some(if f.removed { "removed" } else { "added" }));
            assert_eq!(s.labelled, !f.removed);
        }
        assert_eq!(power.scored.iter().filter(|s| s.flip.is_some()).count(), flips.len());
    }

    #[test]
    fn a_model_that_learnt_the_flips_finds_none() {
        let mut set = items(30, 70);
        let flips = flip(&mut set, 0, 0.1, 0, 7);
        let present: Vec<f32> =
            set.iter().map(|i| if i.labels.iter().any(|(k, _)| *k == 0) { 0.9 } else { 0.1 }).collect();
        let power = score("배송", &present, &Neighbourhood::of(&[], 10).unwrap(), &set, 0, &flips);
        assert_eq!((power.found, power.raised), (0, 0));
        assert_eq!(power.recall, 0.0);
    }
}
