//! Composing a round from a pool too large to hold: the pool is read page by page and
//! only what a composition can reach is kept, so memory follows the round and the number
//! of mall / category groups, not the pool.
//!
//! Kept, by the strategies' own order (best score first, then lowest id): for each
//! strategy in the quotas and each group, the best `reach` reviews, where `reach` is
//! twice the group's share of the round plus a margin (the cell's own places, plus every
//! place other strategies may take from the group first); for keyword-quota the same per
//! group and keyword; for random the best per group and the best over all groups.
//! Keyword-quota ranks a review among every review sharing its keyword, so the kept ones
//! are ranked in a second pass that only counts.
//!
//! The composer then runs on the shortlist as on the whole pool. [`Shortlist::covers`]
//! checks afterwards that it never reached past a cut list: every pick at or above its
//! list's last kept review, no walk short in a group whose list was cut. Where it did
//! (a group whose best reviews are mostly duplicate texts), the pool is read again with
//! four times the reach, so the round is exactly the one composed over the whole pool.

use std::collections::{BinaryHeap, HashMap, HashSet};

use super::composer::{Composition, Pick, Pool, Quota};
use super::shares::allocate;
use super::strategies::{self, Strategy};
use crate::store::predictions::CandidatePage;

/// Places kept per group beyond twice its share, so small groups have room for
/// duplicates.
const MARGIN: usize = 16;

/// How much the reach grows each time a shortlist fell short.
const WIDEN: usize = 4;

/// A place in a strategy's order: a better review compares less.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Rank {
    score: f32,
    id: i64,
}

impl Eq for Rank {}

impl Ord for Rank {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        other.score.total_cmp(&self.score).then(self.id.cmp(&other.id))
    }
}

impl PartialOrd for Rank {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

/// The best `cap` reviews offered, and whether any was turned away.
#[derive(Debug, Clone)]
struct Best {
    cap: usize,
    /// Worst on top.
    heap: BinaryHeap<Rank>,
    cut: bool,
}

impl Best {
    fn new(cap: usize) -> Self {
        Best { cap, heap: BinaryHeap::new(), cut: false }
    }

    /// Keeps `rank` if it is among the best so far; whether it was kept.
    fn offer(&mut self, rank: Rank) -> bool {
        if self.heap.len() < self.cap {
            self.heap.push(rank);
            return true;
        }
        self.cut = true;
        match self.heap.peek() {
            Some(worst) if rank < *worst => {
                self.heap.pop();
                self.heap.push(rank);
                true
            }
            _ => false,
        }
    }

    /// Whether every review at or above `rank` in this order was kept.
    fn reaches(&self, rank: Rank) -> bool {
        !self.cut || self.heap.peek().is_some_and(|worst| rank <= *worst)
    }

    fn ids(&self) -> impl Iterator<Item = i64> + '_ {
        self.heap.iter().map(|r| r.id)
    }
}

/// What a kept review brings to the composer.
#[derive(Debug, Clone, Copy)]
struct Row {
    group: u32,
    text_key: i64,
    /// Boundary, uncertainty, rarity, outlier, balance, neighbours, anchored (NaN where
    /// none).
    scores: [f32; 7],
    keyword: i16,
}

/// The column of `Row::scores` a strategy ranks by (none for random and keyword-quota,
/// whose scores are computed).
fn column(strategy: Strategy) -> Option<usize> {
    match strategy {
        Strategy::KeywordBoundary => Some(0),
        Strategy::SentimentUncertainty => Some(1),
        Strategy::RareTokens => Some(2),
        Strategy::ClusterOutliers => Some(3),
        Strategy::ClassBalance => Some(4),
        Strategy::KeywordNeighbours => Some(5),
        Strategy::KeywordAnchors => Some(6),
        Strategy::KeywordQuota | Strategy::Random => None,
    }
}

/// The reviews a composition can reach, gathered page by page (module docs).
#[derive(Debug, Clone)]
pub struct Shortlist {
    seed: u64,
    /// The pool's group keys, sorted (a group's index is its place here), and sizes.
    keys: Vec<i64>,
    sizes: Vec<usize>,
    sizes_for: Vec<usize>,
    factor: usize,
    reach: Vec<usize>,
    /// Strategies ranked by a stored score, each with one list per group.
    ranked: Vec<Strategy>,
    lists: HashMap<(Strategy, u32), Best>,
    /// Keyword-quota's lists, per group and keyword, when the quotas use it.
    quota: Option<HashMap<(u32, i16), Best>>,
    anywhere: Best,
    rows: HashMap<i64, Row>,
    /// Keyword-quota rank of kept reviews with a keyword (second pass), and those
    /// reviews per keyword in order.
    ranks: HashMap<i64, usize>,
    ordered: HashMap<i16, Vec<Rank>>,
}

impl Shortlist {
    /// A shortlist for rounds of `sizes_for` items (a diverse round composes a larger one
    /// too) with `quotas`, over a pool whose groups are `groups` (key, eligible reviews).
    pub fn new(groups: &[(i64, usize)], quotas: &[Quota], sizes_for: &[usize], seed: u64) -> Self {
        let mut groups = groups.to_vec();
        groups.sort_unstable();
        let keys: Vec<i64> = groups.iter().map(|g| g.0).collect();
        let sizes: Vec<usize> = groups.iter().map(|g| g.1).collect();
        let used: Vec<Strategy> = quotas.iter().filter(|q| q.weight > 0.0).map(|q| q.strategy).collect();
        let mut ranked: Vec<Strategy> = used.iter().copied().filter(|&s| column(s).is_some()).collect();
        ranked.sort();
        ranked.dedup();
        let quota = used.contains(&Strategy::KeywordQuota);
        Self::with_reach(keys, sizes, sizes_for.to_vec(), ranked, quota, seed, 1)
    }

    fn with_reach(
        keys: Vec<i64>,
        sizes: Vec<usize>,
        sizes_for: Vec<usize>,
        ranked: Vec<Strategy>,
        quota: bool,
        seed: u64,
        factor: usize,
    ) -> Self {
        let mut reach = vec![0usize; sizes.len()];
        for &size in &sizes_for {
            for (r, share) in reach.iter_mut().zip(allocate(size, &sizes)) {
                *r = (*r).max(if share == 0 { 0 } else { factor * (2 * share + MARGIN) });
            }
        }
        let largest = sizes_for.iter().copied().max().unwrap_or(0);
        let mut lists = HashMap::new();
        for (g, &cap) in reach.iter().enumerate() {
            for &s in ranked.iter().chain([&Strategy::Random]) {
                lists.insert((s, g as u32), Best::new(cap));
            }
        }
        Shortlist {
            seed,
            keys,
            sizes,
            sizes_for,
            factor,
            reach,
            ranked,
            lists,
            quota: quota.then(HashMap::new),
            anywhere: Best::new(factor * (2 * largest + MARGIN)),
            rows: HashMap::new(),
            ranks: HashMap::new(),
            ordered: HashMap::new(),
        }
    }

    /// The same shortlist, empty, reaching four times as far.
    pub fn widened(&self) -> Self {
        Self::with_reach(
            self.keys.clone(),
            self.sizes.clone(),
            self.sizes_for.clone(),
            self.ranked.clone(),
            self.quota.is_some(),
            self.seed,
            self.factor * WIDEN,
        )
    }

    /// Whether the quotas need the second, counting pass ([`Shortlist::rank`]).
    pub fn needs_ranks(&self) -> bool {
        self.quota.is_some()
    }

    /// How many reviews it holds now.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    fn group(&self, key: i64) -> Option<u32> {
        self.keys.binary_search(&key).ok().map(|g| g as u32)
    }

    /// First pass: offers every review of a page to its lists. Reviews of groups the
    /// pool's count did not see (imported since) are left out.
    pub fn add(&mut self, page: &CandidatePage) {
        for i in 0..page.ids.len() {
            let Some(group) = self.group(page.group_keys[i]) else { continue };
            let id = page.ids[i];
            let row = Row {
                group,
                text_key: page.text_keys[i],
                scores: [
                    page.boundary[i],
                    page.uncertainty[i],
                    page.rarity[i],
                    page.outlier[i],
                    page.balance[i],
                    page.neighbours[i],
                    page.anchored[i],
                ],
                keyword: page.boundary_keyword[i],
            };
            if self.offer(id, &row) {
                self.rows.insert(id, row);
            }
        }
        self.forget_dropped();
    }

    fn offer(&mut self, id: i64, row: &Row) -> bool {
        let mut kept = false;
        for s in &self.ranked {
            let score = row.scores[column(*s).expect("ranked by a column")];
            if !score.is_nan() {
                kept |=
                    self.lists.get_mut(&(*s, row.group)).expect("a list per group").offer(Rank { score, id });
            }
        }
        let random = Rank { score: strategies::random(id, self.seed), id };
        kept |= self.lists.get_mut(&(Strategy::Random, row.group)).expect("a list per group").offer(random);
        kept |= self.anywhere.offer(random);
        let boundary = row.scores[0];
        if let Some(quota) = self.quota.as_mut() {
            if row.keyword >= 0 && !boundary.is_nan() {
                let cap = self.reach[row.group as usize];
                let list = quota.entry((row.group, row.keyword)).or_insert_with(|| Best::new(cap));
                kept |= list.offer(Rank { score: boundary, id });
            }
        }
        kept
    }

    /// Drops the rows no list holds any more.
    fn forget_dropped(&mut self) {
        let mut held: HashSet<i64> = self.lists.values().flat_map(Best::ids).collect();
        held.extend(self.anywhere.ids());
        if let Some(quota) = &self.quota {
            held.extend(quota.values().flat_map(Best::ids));
        }
        self.rows.retain(|id, _| held.contains(id));
    }

    /// Second pass, for keyword-quota: counts, for each kept review with a keyword, the
    /// page's reviews of that keyword ranked above it.
    pub fn rank(&mut self, page: &CandidatePage) {
        if self.ordered.is_empty() {
            self.order_for_ranking();
        }
        let mut above: HashMap<i16, Vec<usize>> = HashMap::new();
        for i in 0..page.ids.len() {
            let (k, boundary) = (page.boundary_keyword[i], page.boundary[i]);
            if k < 0 || boundary.is_nan() || self.group(page.group_keys[i]).is_none() {
                continue;
            }
            let Some(list) = self.ordered.get(&k) else { continue };
            let rank = Rank { score: boundary, id: page.ids[i] };
            // Every kept review from here on ranks below this one.
            let from = list.partition_point(|kept| *kept <= rank);
            above.entry(k).or_insert_with(|| vec![0; list.len() + 1])[from] += 1;
        }
        for (k, counts) in above {
            let mut running = 0;
            for (kept, count) in self.ordered[&k].iter().zip(counts) {
                running += count;
                *self.ranks.get_mut(&kept.id).expect("ranked") += running;
            }
        }
    }

    fn order_for_ranking(&mut self) {
        for (&id, row) in &self.rows {
            if row.keyword >= 0 && !row.scores[0].is_nan() {
                self.ranks.insert(id, 0);
                self.ordered.entry(row.keyword).or_default().push(Rank { score: row.scores[0], id });
            }
        }
        for list in self.ordered.values_mut() {
            list.sort_unstable();
        }
    }

    fn quota_score(&self, id: i64) -> f32 {
        match self.ranks.get(&id) {
            Some(&rank) => strategies::quota_score(rank, self.rows[&id].scores[0]),
            None => f32::NAN,
        }
    }

    /// The kept reviews as a pool for the composer, in id order, with the whole pool's
    /// group sizes and the text keys already taken.
    pub fn pool(&self, taken_texts: Vec<i64>) -> Pool {
        let mut ids: Vec<i64> = self.rows.keys().copied().collect();
        ids.sort_unstable();
        let rows: Vec<&Row> = ids.iter().map(|id| &self.rows[id]).collect();
        let mut scores: HashMap<Strategy, Vec<f32>> = Strategy::ALL
            .into_iter()
            .filter_map(|s| column(s).map(|c| (s, rows.iter().map(|r| r.scores[c]).collect())))
            .collect();
        scores.insert(Strategy::KeywordQuota, ids.iter().map(|&id| self.quota_score(id)).collect());
        Pool {
            groups: rows.iter().map(|r| r.group).collect(),
            text_keys: rows.iter().map(|r| r.text_key).collect(),
            taken_texts,
            scores,
            group_sizes: Some(self.sizes.clone()),
            review_ids: ids,
        }
    }

    /// Whether `composition`, composed over [`Shortlist::pool`], is the one the whole
    /// pool gives: it never reached past what a cut list kept (module docs).
    pub fn covers(&self, composition: &Composition) -> bool {
        if !self.anywhere.cut {
            return true; // every review was kept
        }
        let walks_fit = composition.short.iter().all(|(strategy, left)| {
            left.iter().enumerate().all(|(g, &l)| l == 0 || !self.cut(*strategy, g as u32))
        });
        let (in_groups, anywhere) =
            composition.picks.split_at(composition.picks.len() - composition.from_anywhere);
        walks_fit
            && composition.unfilled == 0
            && in_groups.iter().all(|p| self.reaches(p))
            && anywhere.iter().all(|p| self.anywhere.reaches(Rank { score: p.score, id: p.review_id }))
    }

    fn cut(&self, strategy: Strategy, group: u32) -> bool {
        match (strategy, &self.quota) {
            (Strategy::KeywordQuota, Some(quota)) => {
                quota.iter().any(|((g, _), list)| *g == group && list.cut)
            }
            (Strategy::KeywordQuota, None) => false,
            _ => self.lists.get(&(strategy, group)).is_some_and(|list| list.cut),
        }
    }

    fn reaches(&self, pick: &Pick) -> bool {
        let group = self.rows[&pick.review_id].group;
        let rank = Rank { score: pick.score, id: pick.review_id };
        match pick.strategy {
            Strategy::KeywordQuota => self.quota_reaches(group, pick.score),
            Strategy::Random => {
                self.lists[&(Strategy::Random, group)].reaches(rank) || self.anywhere.reaches(rank)
            }
            s => self.lists[&(s, group)].reaches(rank),
        }
    }

    /// A review left off a cut (group, keyword) list ranks below that list's last kept
    /// one in its keyword, so its quota score is lower than that one's.
    fn quota_reaches(&self, group: u32, score: f32) -> bool {
        let quota = self.quota.as_ref().expect("keyword-quota picks come with its lists");
        quota
            .iter()
            .filter(|((g, _), list)| *g == group && list.cut)
            .all(|(_, list)| list.heap.peek().is_none_or(|worst| score >= self.quota_score(worst.id)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::select::composer::composition;

    /// A pool of `n` reviews over uneven groups, with duplicate texts, unscored reviews,
    /// keywords and a few texts already taken, as pages of `page` reviews.
    fn pages(n: usize, page: usize, duplicates: impl Fn(i64) -> i64) -> Vec<CandidatePage> {
        let score = |id: i64, salt: u64, nan_every: i64| {
            if id % nan_every == 0 {
                f32::NAN
            } else {
                strategies::random(id, salt)
            }
        };
        let ids: Vec<i64> = (1..=n as i64).map(|i| i * 3).collect();
        ids.chunks(page)
            .map(|ids| CandidatePage {
                ids: ids.to_vec(),
                group_keys: ids
                    .iter()
                    .map(|&id| [100, 100, 100, 205, 205, 7, -4][(id % 7) as usize])
                    .collect(),
                text_keys: ids.iter().map(|&id| duplicates(id)).collect(),
                boundary: ids.iter().map(|&id| score(id, 1, 11)).collect(),
                uncertainty: ids.iter().map(|&id| score(id, 2, 5)).collect(),
                rarity: ids.iter().map(|&id| score(id, 3, 13)).collect(),
                outlier: ids.iter().map(|&id| score(id, 4, 17)).collect(),
                balance: ids.iter().map(|&id| score(id, 5, 19)).collect(),
                neighbours: ids.iter().map(|&id| score(id, 6, 23)).collect(),
                anchored: ids.iter().map(|&id| score(id, 7, 29)).collect(),
                boundary_keyword: ids.iter().map(|&id| ((id / 3) % 6) as i16 - 1).collect(),
            })
            .collect()
    }

    fn groups(pages: &[CandidatePage]) -> Vec<(i64, usize)> {
        let mut counts: HashMap<i64, usize> = HashMap::new();
        for key in pages.iter().flat_map(|p| &p.group_keys) {
            *counts.entry(*key).or_default() += 1;
        }
        counts.into_iter().collect()
    }

    /// Composes over shortlists as `rounds::compose` does; how many reads it took.
    fn paged(pages: &[CandidatePage], taken: &[i64], quotas: &[Quota], size: usize) -> (Composition, usize) {
        let mut list = Shortlist::new(&groups(pages), quotas, &[size], 9);
        for reads in 1.. {
            pages.iter().for_each(|p| list.add(p));
            if list.needs_ranks() {
                pages.iter().for_each(|p| list.rank(p));
            }
            let composed = composition(&list.pool(taken.to_vec()), quotas, size, 9);
            if list.covers(&composed) {
                return (composed, reads);
            }
            list = list.widened();
        }
        unreachable!()
    }

    const QUOTAS: &str = "keyword-boundary=0.3,sentiment-uncertainty=0.15,rare-tokens=0.1,\
                          cluster-outliers=0.1,class-balance=0.05,keyword-neighbours=0.05,keyword-anchors=0.05,keyword-quota=0.1,random=0.1";

    #[test]
    fn a_round_composed_over_shortlists_is_the_round_composed_over_the_whole_pool() {
        let pages = pages(6000, 700, |id| if id % 5 == 0 { id % 900 } else { id });
        let taken: Vec<i64> = (0..900).step_by(7).collect();
        let quotas = Quota::parse_list(QUOTAS).unwrap();
        for size in [1, 40, 120, 400] {
            let expected = composition(&Pool::from_pages(&pages, taken.clone()), &quotas, size, 9);
            let (got, _) = paged(&pages, &taken, &quotas, size);
            assert_eq!(got.picks, expected.picks, "size {size}");
        }
    }

    #[test]
    fn what_a_shortlist_keeps_does_not_grow_with_the_pool() {
        let quotas = Quota::parse_list(QUOTAS).unwrap();
        let kept = |n: usize| {
            let pages = pages(n, 1000, |id| id);
            let mut list = Shortlist::new(&groups(&pages), &quotas, &[40], 9);
            pages.iter().for_each(|p| list.add(p));
            list.len()
        };
        // The lists overlap less in a larger pool, so what is kept rises a little before
        // it levels off at the lists' sizes (about 1,600 here, from 48,000 on).
        let (small, large) = (kept(12_000), kept(48_000));
        assert!(small < 2000, "kept {small} of 12,000");
        assert!(large <= small + small / 10, "kept {large} of 48,000 against {small} of 12,000");
    }

    #[test]
    fn a_shortlist_full_of_duplicates_is_read_again_wider() {
        // The best boundary reviews of every group share a handful of texts.
        let pages = pages(6000, 500, |id| if id % 4 != 0 { id % 3 } else { id });
        let quotas = Quota::parse_list("keyword-boundary=0.7,random=0.3").unwrap();
        let expected = composition(&Pool::from_pages(&pages, vec![]), &quotas, 60, 9);
        let (got, reads) = paged(&pages, &[], &quotas, 60);
        assert_eq!(got.picks, expected.picks);
        assert!(reads > 1, "the first shortlist should not have covered the round");
    }

    #[test]
    fn a_group_that_runs_dry_is_filled_from_anywhere_as_over_the_whole_pool() {
        // Group 7 (ids ≡ 5 mod 7) holds only texts already taken.
        let pages = pages(3000, 400, |id| if id % 7 == 5 { -1 } else { id });
        let quotas = Quota::parse_list("rare-tokens=1").unwrap();
        let expected = composition(&Pool::from_pages(&pages, vec![-1]), &quotas, 300, 9);
        assert!(expected.from_anywhere > 0);
        let (got, _) = paged(&pages, &[-1], &quotas, 300);
        assert_eq!(got.picks, expected.picks);
    }
}
