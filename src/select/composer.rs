//! The round composer: mixes strategies by quota while keeping the pool's mall /
//! category proportions, and never picks the same text twice. Pure: the pool comes in
//! as columns (one entry per eligible review), the picks go out in order.

use std::borrow::Cow;
use std::cmp::Ordering;
use std::collections::{HashMap, HashSet};

use serde::{Deserialize, Serialize};

use super::shares::allocate;
use super::strategies::{self, Strategy};
use crate::store::predictions::CandidatePage;

/// Eligible reviews as columns, so a million of them stay compact.
#[derive(Debug, Clone, Default)]
pub struct Pool {
    pub review_ids: Vec<i64>,
    /// Index of the review's mall / category group.
    pub groups: Vec<u32>,
    /// Hash of the normalised text: equal keys are duplicates.
    pub text_keys: Vec<i64>,
    /// Text keys of reviews already labelled or queued: their duplicates are not picked.
    pub taken_texts: Vec<i64>,
    /// Score per strategy, NaN where the strategy has none (unscored review, no keyword
    /// found for sentiment uncertainty). Random needs none.
    pub scores: HashMap<Strategy, Vec<f32>>,
    /// The whole pool's group sizes where these columns are a shortlist of it
    /// (`shortlist`); `None`: counted from `groups`.
    pub group_sizes: Option<Vec<usize>>,
}

impl Pool {
    /// The whole pool from its pages, held at once, in id order: for small pools, and to
    /// check what a [`super::Shortlist`] composes. Groups are numbered in order of their
    /// keys, as the shortlist numbers them.
    pub fn from_pages(pages: &[CandidatePage], taken_texts: Vec<i64>) -> Pool {
        let ids: Vec<i64> = pages.iter().flat_map(|p| p.ids.iter().copied()).collect();
        let mut order: Vec<usize> = (0..ids.len()).collect();
        order.sort_unstable_by_key(|&i| ids[i]);
        fn column<T: Copy>(
            pages: &[CandidatePage],
            order: &[usize],
            f: fn(&CandidatePage) -> &Vec<T>,
        ) -> Vec<T> {
            let all: Vec<T> = pages.iter().flat_map(f).copied().collect();
            order.iter().map(|&i| all[i]).collect()
        }
        let keys = column(pages, &order, |p| &p.group_keys);
        let mut distinct = keys.clone();
        distinct.sort_unstable();
        distinct.dedup();
        let boundary = column(pages, &order, |p| &p.boundary);
        let keyword = column(pages, &order, |p| &p.boundary_keyword);
        let scores = HashMap::from([
            (Strategy::KeywordQuota, strategies::keyword_quota(&boundary, &keyword)),
            (Strategy::KeywordBoundary, boundary),
            (Strategy::SentimentUncertainty, column(pages, &order, |p| &p.uncertainty)),
            (Strategy::RareTokens, column(pages, &order, |p| &p.rarity)),
            (Strategy::ClusterOutliers, column(pages, &order, |p| &p.outlier)),
            (Strategy::ClassBalance, column(pages, &order, |p| &p.balance)),
            (Strategy::KeywordNeighbours, column(pages, &order, |p| &p.neighbours)),
            (Strategy::KeywordAnchors, column(pages, &order, |p| &p.anchored)),
        ]);
        Pool {
            review_ids: column(pages, &order, |p| &p.ids),
            groups: keys
                .iter()
                .map(|k| distinct.binary_search(k).expect("a key of the pool") as u32)
                .collect(),
            text_keys: column(pages, &order, |p| &p.text_keys),
            taken_texts,
            scores,
            group_sizes: None,
        }
    }

    pub fn len(&self) -> usize {
        self.review_ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.review_ids.is_empty()
    }

    /// How many reviews the pool holds in each group.
    pub fn group_sizes(&self) -> Vec<usize> {
        if let Some(sizes) = &self.group_sizes {
            return sizes.clone();
        }
        let count = self.groups.iter().copied().max().map_or(0, |g| g as usize + 1);
        let mut sizes = vec![0; count];
        for &g in &self.groups {
            sizes[g as usize] += 1;
        }
        sizes
    }

    /// Every review's score under `strategy` (NaN where it has none).
    fn scores(&self, strategy: Strategy, seed: u64) -> Cow<'_, [f32]> {
        match strategy {
            Strategy::Random => {
                Cow::Owned(self.review_ids.iter().map(|&id| strategies::random(id, seed)).collect())
            }
            s => match self.scores.get(&s) {
                Some(v) => Cow::Borrowed(v.as_slice()),
                None => Cow::Owned(vec![f32::NAN; self.len()]),
            },
        }
    }
}

/// One strategy's share of a round.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Quota {
    pub strategy: Strategy,
    pub weight: f64,
}

impl Quota {
    /// Parses `keyword-boundary=0.4,random=0.1` (weights need not sum to one).
    pub fn parse_list(text: &str) -> Result<Vec<Quota>, String> {
        text.split(',')
            .filter(|part| !part.trim().is_empty())
            .map(|part| {
                let (name, weight) = part.split_once('=').unwrap_or((part, "1"));
                let strategy = Strategy::parse(name.trim()).ok_or_else(|| {
                    let known: Vec<&str> = Strategy::ALL.iter().map(|s| s.as_str()).collect();
                    format!("unknown strategy `{}` (known: {})", name.trim(), known.join(", "))
                })?;
                let weight: f64 =
                    weight.trim().parse().map_err(|_| format!("`{part}`: weight is not a number"))?;
                if !(weight >= 0.0 && weight.is_finite()) {
                    return Err(format!("`{part}`: weight must be zero or more"));
                }
                Ok(Quota { strategy, weight })
            })
            .collect()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Pick {
    pub review_id: i64,
    pub strategy: Strategy,
    pub score: f32,
}

/// Splits `total` over weights by largest remainder.
pub fn apportion(total: usize, weights: &[f64]) -> Vec<usize> {
    let sum: f64 = weights.iter().filter(|w| **w > 0.0).sum();
    if sum <= 0.0 {
        return vec![0; weights.len()];
    }
    let exact: Vec<f64> = weights.iter().map(|&w| total as f64 * w.max(0.0) / sum).collect();
    let mut counts: Vec<usize> = exact.iter().map(|e| e.floor() as usize).collect();
    let mut order: Vec<usize> = (0..weights.len()).collect();
    order.sort_by(|&a, &b| {
        (exact[b] - exact[b].floor()).total_cmp(&(exact[a] - exact[a].floor())).then(a.cmp(&b))
    });
    let mut left = total.saturating_sub(counts.iter().sum());
    for &i in order.iter().filter(|&&i| weights[i] > 0.0).cycle() {
        if left == 0 {
            break;
        }
        counts[i] += 1;
        left -= 1;
    }
    counts
}

/// How many items each (group, strategy) cell gets: rows sum to the groups' proportional
/// shares, columns to the strategies' quotas. Groups are filled in turn, each split by
/// what the strategies still need, so both margins come out exact.
fn cells(group_totals: &[usize], strategy_totals: &[usize]) -> Vec<Vec<usize>> {
    let mut needed: Vec<f64> = strategy_totals.iter().map(|&t| t as f64).collect();
    group_totals
        .iter()
        .map(|&g| {
            let row = apportion(g, &needed);
            for (n, r) in needed.iter_mut().zip(&row) {
                *n = (*n - *r as f64).max(0.0);
            }
            row
        })
        .collect()
}

/// Composes a round of `size` items. Each strategy takes its best-scored reviews inside
/// each group's share; a review already picked, or whose text was already picked, is
/// passed over; a strategy that runs out of scored reviews in a group leaves its places
/// to random picks from that group (then from any group).
pub fn compose(pool: &Pool, quotas: &[Quota], size: usize, seed: u64) -> Vec<Pick> {
    composition(pool, quotas, size, seed).picks
}

/// A composed round with where its strategies fell short, so a composition over a
/// shortlist can be checked against the whole pool (`shortlist::Shortlist::covers`).
#[derive(Debug, Clone, PartialEq)]
pub struct Composition {
    pub picks: Vec<Pick>,
    /// Per walk of a strategy over the groups (the quotas in order, then the random
    /// fill), the places each group was still short after it.
    pub short: Vec<(Strategy, Vec<usize>)>,
    /// How many of the last picks were taken from any group, and how many places even
    /// that left open.
    pub from_anywhere: usize,
    pub unfilled: usize,
}

/// [`compose`], reporting its shortfalls.
pub fn composition(pool: &Pool, quotas: &[Quota], size: usize, seed: u64) -> Composition {
    let sizes = pool.group_sizes();
    let size = size.min(sizes.iter().sum());
    let quotas: Vec<Quota> = if quotas.iter().any(|q| q.weight > 0.0) {
        quotas.to_vec()
    } else {
        vec![Quota { strategy: Strategy::Random, weight: 1.0 }]
    };
    let group_totals = allocate(size, &sizes);
    let weights: Vec<f64> = quotas.iter().map(|q| q.weight).collect();
    let table = cells(&group_totals, &apportion(size, &weights));
    let mut picker = Picker::new(pool, seed);
    let mut short = vec![0usize; group_totals.len()];
    let mut walks = Vec::new();
    for (s, quota) in quotas.iter().enumerate() {
        let wanted: Vec<usize> = table.iter().map(|row| row[s]).collect();
        let left = picker.take_best(quota.strategy, &wanted);
        for (g, l) in left.iter().enumerate() {
            short[g] += l;
        }
        walks.push((quota.strategy, left));
    }
    // Places no strategy could fill: random, first inside the group, then anywhere.
    let left = picker.take_best(Strategy::Random, &short);
    let mut unfilled = left.iter().sum::<usize>();
    walks.push((Strategy::Random, left));
    let before = picker.picks.len();
    if unfilled > 0 {
        unfilled -= picker.take_any(unfilled);
    }
    let from_anywhere = picker.picks.len() - before;
    Composition { picks: picker.picks, short: walks, from_anywhere, unfilled }
}

/// Picks with the bookkeeping that keeps them unique.
struct Picker<'a> {
    pool: &'a Pool,
    seed: u64,
    taken: Vec<bool>,
    texts: HashSet<i64>,
    picks: Vec<Pick>,
}

impl<'a> Picker<'a> {
    fn new(pool: &'a Pool, seed: u64) -> Self {
        let texts = pool.taken_texts.iter().copied().collect();
        Picker { pool, seed, taken: vec![false; pool.len()], texts, picks: Vec::new() }
    }

    /// Walks the pool from `strategy`'s best score down, taking a review while its group
    /// still wants one. Returns how many each group is still short.
    fn take_best(&mut self, strategy: Strategy, wanted: &[usize]) -> Vec<usize> {
        let mut wanted = wanted.to_vec();
        let remaining: usize = wanted.iter().sum();
        if remaining == 0 {
            return wanted;
        }
        let pool = self.pool;
        let scores = pool.scores(strategy, self.seed);
        let ids = &pool.review_ids;
        let best_first = |a: &u32, b: &u32| -> Ordering {
            let (a, b) = (*a as usize, *b as usize);
            scores[b].total_cmp(&scores[a]).then(ids[a].cmp(&ids[b]))
        };
        let mut order: Vec<u32> = (0..pool.len() as u32).filter(|&i| !scores[i as usize].is_nan()).collect();
        // Usually the best few hundred fill the quota: order those first, the rest only
        // when groups or duplicates leave places open.
        let head = (remaining * 8).max(1024).min(order.len());
        if head < order.len() {
            order.select_nth_unstable_by(head, best_first);
        }
        order[..head].sort_unstable_by(best_first);
        let mut left = self.walk(&order[..head], strategy, &scores, &mut wanted);
        if left > 0 && head < order.len() {
            order[head..].sort_unstable_by(best_first);
            left = self.walk(&order[head..], strategy, &scores, &mut wanted);
        }
        debug_assert_eq!(left, wanted.iter().sum::<usize>());
        wanted
    }

    /// Takes reviews in `order` while their group wants one; returns the places left.
    fn walk(&mut self, order: &[u32], strategy: Strategy, scores: &[f32], wanted: &mut [usize]) -> usize {
        let mut remaining: usize = wanted.iter().sum();
        for &i in order {
            if remaining == 0 {
                break;
            }
            let i = i as usize;
            let g = self.pool.groups[i] as usize;
            if wanted[g] > 0 && self.try_take(i, strategy, scores[i]) {
                wanted[g] -= 1;
                remaining -= 1;
            }
        }
        remaining
    }

    /// Random picks from any group (when a group ran out of reviews); how many it took.
    fn take_any(&mut self, mut count: usize) -> usize {
        let before = self.picks.len();
        let mut order: Vec<usize> = (0..self.pool.len()).collect();
        let ids = &self.pool.review_ids;
        order.sort_unstable_by_key(|&i| {
            (std::cmp::Reverse(strategies::random(ids[i], self.seed).to_bits()), ids[i])
        });
        for i in order {
            if count == 0 {
                break;
            }
            let score = strategies::random(ids[i], self.seed);
            if self.try_take(i, Strategy::Random, score) {
                count -= 1;
            }
        }
        self.picks.len() - before
    }

    fn try_take(&mut self, i: usize, strategy: Strategy, score: f32) -> bool {
        if self.taken[i] || !self.texts.insert(self.pool.text_keys[i]) {
            return false;
        }
        self.taken[i] = true;
        self.picks.push(Pick { review_id: self.pool.review_ids[i], strategy, score });
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `n` reviews in `groups` groups (group = id % groups), unique texts, and a
    /// boundary score equal to the id (higher id, better).
    fn pool(n: usize, groups: u32) -> Pool {
        let review_ids: Vec<i64> = (1..=n as i64).collect();
        let mut scores = HashMap::new();
        scores.insert(Strategy::KeywordBoundary, review_ids.iter().map(|&i| i as f32).collect());
        scores.insert(Strategy::RareTokens, review_ids.iter().map(|&i| -(i as f32)).collect());
        Pool {
            groups: review_ids.iter().map(|&i| (i as u32) % groups).collect(),
            text_keys: review_ids.clone(),
            taken_texts: vec![],
            review_ids,
            scores,
            group_sizes: None,
        }
    }

    fn count(picks: &[Pick], strategy: Strategy) -> usize {
        picks.iter().filter(|p| p.strategy == strategy).count()
    }

    #[test]
    fn quotas_split_the_round_between_strategies() {
        let quotas = Quota::parse_list("keyword-boundary=0.5,rare-tokens=0.3,random=0.2").unwrap();
        let picks = compose(&pool(1000, 1), &quotas, 100, 1);
        assert_eq!(picks.len(), 100);
        assert_eq!(count(&picks, Strategy::KeywordBoundary), 50);
        assert_eq!(count(&picks, Strategy::RareTokens), 30);
        assert_eq!(count(&picks, Strategy::Random), 20);
        // Each strategy took its best: boundary the highest ids, rare tokens the lowest.
        assert!(picks.iter().filter(|p| p.strategy == Strategy::KeywordBoundary).all(|p| p.review_id > 950));
        assert!(picks.iter().filter(|p| p.strategy == Strategy::RareTokens).all(|p| p.review_id <= 30));
    }

    #[test]
    fn group_proportions_of_the_pool_are_kept() {
        // Groups of 600, 300 and 100 reviews.
        let mut p = pool(1000, 1);
        p.groups = (0..1000)
            .map(|i| {
                if i < 600 {
                    0
                } else if i < 900 {
                    1
                } else {
                    2
                }
            })
            .collect();
        let quotas = Quota::parse_list("keyword-boundary=1,random=1").unwrap();
        let picks = compose(&p, &quotas, 50, 3);
        let group_of = |id: i64| p.groups[(id - 1) as usize];
        let per_group: Vec<usize> =
            (0..3).map(|g| picks.iter().filter(|x| group_of(x.review_id) == g).count()).collect();
        assert_eq!(per_group, vec![30, 15, 5]);
        assert_eq!(count(&picks, Strategy::KeywordBoundary), 25);
    }

    #[test]
    fn a_review_or_its_text_is_never_picked_twice() {
        let mut p = pool(200, 2);
        // Reviews 199 and 200 share a text; both strategies would love review 200.
        p.text_keys[198] = 7777;
        p.text_keys[199] = 7777;
        p.scores.insert(Strategy::RareTokens, p.review_ids.iter().map(|&i| i as f32).collect());
        let quotas = Quota::parse_list("keyword-boundary,rare-tokens").unwrap();
        let picks = compose(&p, &quotas, 40, 1);
        let ids: HashSet<i64> = picks.iter().map(|x| x.review_id).collect();
        assert_eq!(ids.len(), 40);
        assert!(!(ids.contains(&199) && ids.contains(&200)));
    }

    #[test]
    fn duplicates_of_labelled_or_queued_texts_are_passed_over() {
        let mut p = pool(10, 1);
        p.taken_texts = vec![10, 9];
        let picks = compose(&p, &Quota::parse_list("keyword-boundary").unwrap(), 3, 1);
        let ids: Vec<i64> = picks.iter().map(|x| x.review_id).collect();
        assert_eq!(ids, vec![8, 7, 6]);
    }

    #[test]
    fn unscored_places_fall_back_to_random() {
        let mut p = pool(100, 1);
        p.scores.insert(
            Strategy::SentimentUncertainty,
            (0..100).map(|i| if i < 3 { 0.5 } else { f32::NAN }).collect(),
        );
        let quotas = Quota::parse_list("sentiment-uncertainty").unwrap();
        let picks = compose(&p, &quotas, 10, 1);
        assert_eq!(picks.len(), 10);
        assert_eq!(count(&picks, Strategy::SentimentUncertainty), 3);
        assert_eq!(count(&picks, Strategy::Random), 7);
    }

    #[test]
    fn a_round_larger_than_the_pool_takes_the_whole_pool() {
        let picks = compose(&pool(12, 3), &[], 50, 1);
        assert_eq!(picks.len(), 12);
        assert!(picks.iter().all(|p| p.strategy == Strategy::Random));
    }

    #[test]
    fn composing_is_repeatable_for_a_seed() {
        let quotas = Quota::parse_list("random").unwrap();
        let a = compose(&pool(500, 4), &quotas, 20, 9);
        assert_eq!(a, compose(&pool(500, 4), &quotas, 20, 9));
        assert_ne!(a, compose(&pool(500, 4), &quotas, 20, 10));
    }

    #[test]
    fn apportion_uses_largest_remainders() {
        assert_eq!(apportion(10, &[0.5, 0.3, 0.2]), vec![5, 3, 2]);
        assert_eq!(apportion(10, &[1.0, 1.0, 1.0]).iter().sum::<usize>(), 10);
        assert_eq!(apportion(3, &[0.0, 1.0]), vec![0, 3]);
        assert_eq!(apportion(5, &[0.0, 0.0]), vec![0, 0]);
    }

    #[test]
    fn quota_lists_report_what_is_wrong() {
        assert!(Quota::parse_list("boundary=1").unwrap_err().contains("unknown strategy `boundary`"));
        assert!(Quota::parse_list("random=x").unwrap_err().contains("not a number"));
        assert!(Quota::parse_list("random=-1").unwrap_err().contains("zero or more"));
        assert_eq!(Quota::parse_list("random").unwrap()[0].weight, 1.0);
    }
}
