//! Keyword neighbours: each keyword's nearest unlabelled reviews to the reviews already
//! labelled with it, taken in turn, so a keyword with three labels gets as many picks as
//! one with three hundred. A frozen encoder's uncertainty about a keyword it has seen
//! twice says little about where its other reviews are (docs/benchmarks.md#simulation);
//! the reviews that read most like those two are the likeliest to hold it. This is the
//! candidate step of SEALS (Coleman et al. 2022, nearest neighbours of the labelled
//! positives for rare classes) used as a strategy of its own.
//!
//! Also the cosine primitive the audit's neighbours' vote stands on: brute force on the
//! tensor kernels, since sentence vectors have hundreds of dimensions, where tree
//! indexes search nearly everything anyway.

use std::collections::{HashMap, HashSet};

use candle_core::{Device, Tensor};

use super::strategies::quota_score;

/// Similarities computed at once: at most 2^26 (256 MB).
pub const SIMILARITIES_AT_ONCE: usize = 1 << 26;

/// Ranks kept per keyword: more than a round takes from one keyword.
pub const RANKS_KEPT: usize = 1000;

/// Labelled reviews compared with per keyword: a frequent keyword's first thousand
/// already span where it is written about.
pub const LABELLED_PER_KEYWORD: usize = 1000;

pub fn unit(v: &[f32]) -> Vec<f32> {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(f32::EPSILON);
    v.iter().map(|x| x / norm).collect()
}

/// Cosine similarities of every row against every column, in blocks of at most
/// `at_once`: `visit(first row, block)` gets the block's rows in order.
pub fn cosine_blocks(
    rows: &[Vec<f32>],
    columns: &[Vec<f32>],
    at_once: usize,
    mut visit: impl FnMut(usize, Vec<Vec<f32>>),
) -> candle_core::Result<()> {
    if rows.is_empty() || columns.is_empty() {
        return Ok(());
    }
    let width = columns[0].len();
    let matrix = |v: &[Vec<f32>]| {
        Tensor::from_vec(v.iter().flat_map(|x| unit(x)).collect::<Vec<f32>>(), (v.len(), width), &Device::Cpu)
    };
    let (left, right) = (matrix(rows)?, matrix(columns)?.t()?.contiguous()?);
    let chunk = (at_once / columns.len()).max(1);
    for start in (0..rows.len()).step_by(chunk) {
        let n = chunk.min(rows.len() - start);
        visit(start, left.narrow(0, start, n)?.matmul(&right)?.to_vec2::<f32>()?);
    }
    Ok(())
}

/// The labelled reviews' sentence vectors, each with the keywords its label holds.
#[derive(Debug, Clone, Default)]
pub struct Labelled {
    pub ids: HashSet<i64>,
    pub vectors: Vec<Vec<f32>>,
    pub keywords: Vec<Vec<usize>>,
    /// Keywords of the taxonomy (the width of [`Labelled::nearest`]'s rows).
    pub count: usize,
}

impl Labelled {
    /// Per vector of `page` (review `ids[i]`), per keyword, the cosine of its nearest
    /// labelled review holding the keyword; NaN for a keyword no labelled review holds,
    /// and for every keyword of a review that is labelled itself.
    pub fn nearest(&self, ids: &[i64], page: &[Vec<f32>]) -> candle_core::Result<Vec<Vec<f32>>> {
        let mut out = vec![vec![f32::NAN; self.count]; page.len()];
        cosine_blocks(page, &self.vectors, SIMILARITIES_AT_ONCE, |start, block| {
            for (offset, similarities) in block.into_iter().enumerate() {
                if self.ids.contains(&ids[start + offset]) {
                    continue;
                }
                let best = &mut out[start + offset];
                for (j, s) in similarities.into_iter().enumerate() {
                    for &k in &self.keywords[j] {
                        if best[k].is_nan() || s > best[k] {
                            best[k] = s;
                        }
                    }
                }
            }
        })?;
        Ok(out)
    }
}

/// The bound on the labelled reviews compared with: a review is worth keeping while one
/// of its keywords has fewer than `cap` kept, so a frequent keyword stops adding reviews
/// at `cap` and a rare one loses none.
#[derive(Debug, Clone)]
pub struct KeywordCap {
    kept: Vec<usize>,
    cap: usize,
}

impl KeywordCap {
    pub fn new(keywords: usize, cap: usize) -> KeywordCap {
        KeywordCap { kept: vec![0; keywords], cap }
    }

    pub fn open(&self, keywords: &[usize]) -> bool {
        keywords.iter().any(|&k| self.kept[k] < self.cap)
    }

    pub fn take(&mut self, keywords: &[usize]) {
        keywords.iter().for_each(|&k| self.kept[k] += 1);
    }
}

/// Each keyword's [`RANKS_KEPT`] most similar unlabelled reviews, gathered page by page.
#[derive(Debug, Clone)]
pub struct Nearest {
    kept: usize,
    /// Per keyword: (similarity, review id), best first once [`Nearest::scores`] sorts.
    tops: Vec<Vec<(f32, i64)>>,
}

impl Nearest {
    pub fn new(keywords: usize, kept: usize) -> Nearest {
        Nearest { kept: kept.max(1), tops: vec![Vec::new(); keywords] }
    }

    /// Offers a page: `similarities[i]` is review `ids[i]`'s row of [`Labelled::nearest`].
    pub fn offer(&mut self, ids: &[i64], similarities: &[Vec<f32>]) {
        for (&id, row) in ids.iter().zip(similarities) {
            for (top, &s) in self.tops.iter_mut().zip(row).filter(|(_, s)| !s.is_nan()) {
                top.push((s, id));
            }
        }
        for top in &mut self.tops {
            if top.len() > 2 * self.kept {
                keep_best(top, self.kept);
            }
        }
    }

    /// Every kept review's score: minus its best rank among any keyword's nearest, plus
    /// half that similarity ([`quota_score`], as the keyword quota ranks): taking the
    /// best takes each keyword's nearest review, then each one's second, and so on.
    pub fn scores(mut self) -> HashMap<i64, f32> {
        let mut out: HashMap<i64, f32> = HashMap::new();
        for top in &mut self.tops {
            keep_best(top, self.kept);
            for (rank, &(s, id)) in top.iter().enumerate() {
                let score = quota_score(rank, s);
                out.entry(id).and_modify(|best| *best = best.max(score)).or_insert(score);
            }
        }
        out
    }
}

/// Sorts best first (ties to the lower id) and keeps `n`.
fn keep_best(top: &mut Vec<(f32, i64)>, n: usize) {
    top.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    top.truncate(n);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cosine_blocks_cover_every_pair_whatever_the_block_size() {
        let rows: Vec<Vec<f32>> = (0..7).map(|i| vec![1.0, i as f32, (i * i) as f32 % 5.0]).collect();
        let columns: Vec<Vec<f32>> = (0..3).map(|j| vec![j as f32, 1.0, 2.0]).collect();
        let collect = |at_once| {
            let mut all = vec![Vec::new(); rows.len()];
            cosine_blocks(&rows, &columns, at_once, |start, block| {
                for (o, row) in block.into_iter().enumerate() {
                    all[start + o] = row;
                }
            })
            .unwrap();
            all
        };
        let whole = collect(1 << 20);
        assert_eq!(whole.len(), 7);
        for at_once in [1, 3, 4, 7] {
            let blocked = collect(at_once);
            for (a, b) in whole.iter().zip(&blocked) {
                assert!(a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-6));
            }
        }
        let expected = {
            let (a, b) = (unit(&rows[2]), unit(&columns[1]));
            a.iter().zip(&b).map(|(x, y)| x * y).sum::<f32>()
        };
        assert!((whole[2][1] - expected).abs() < 1e-5);
    }

    #[test]
    fn nearest_takes_the_closest_labelled_review_of_each_keyword() {
        let labelled = Labelled {
            ids: HashSet::from([1, 2, 3]),
            vectors: vec![vec![1.0, 0.0], vec![0.0, 1.0], vec![0.7, 0.7]],
            keywords: vec![vec![0], vec![1], vec![0, 1]],
            count: 3,
        };
        let near = labelled.nearest(&[9, 1], &[vec![1.0, 0.1], vec![1.0, 0.0]]).unwrap();
        assert!(near[0][0] > 0.99, "review 1 is nearly the same: {near:?}");
        let dot = |a: &[f32], b: &[f32]| unit(a).iter().zip(unit(b)).map(|(x, y)| x * y).sum::<f32>();
        assert!((near[0][1] - dot(&[1.0, 0.1], &[0.7, 0.7])).abs() < 1e-5, "keyword 1's nearest is review 3");
        assert!(near[0][2].is_nan(), "no labelled review holds keyword 2");
        assert!(near[1].iter().all(|s| s.is_nan()), "a labelled review is no one's neighbour: {near:?}");
    }

    #[test]
    fn a_rare_keyword_gets_its_nearest_review_before_a_frequent_ones_second() {
        // Keyword 0 (many labels) is near reviews 10-13; keyword 1 (one label) only
        // loosely near review 20.
        let mut nearest = Nearest::new(2, 10);
        let ids = [10, 11, 12, 13, 20];
        let rows = [vec![0.99, 0.1], vec![0.98, 0.1], vec![0.97, 0.1], vec![0.96, 0.1], vec![0.2, 0.4]];
        nearest.offer(&ids[..3], &rows[..3]);
        nearest.offer(&ids[3..], &rows[3..]);
        let scores = nearest.scores();
        let mut order: Vec<i64> = scores.keys().copied().collect();
        order.sort_by(|a, b| scores[b].total_cmp(&scores[a]).then(a.cmp(b)));
        assert_eq!(&order[..2], &[10, 20], "{scores:?}");
        assert_eq!(order.len(), 5);
    }

    #[test]
    fn the_cap_stops_a_frequent_keyword_and_keeps_every_review_of_a_rare_one() {
        let mut cap = KeywordCap::new(2, 2);
        let reviews: [&[usize]; 6] = [&[0], &[0], &[0, 1], &[0], &[1], &[1]];
        let kept: Vec<bool> = reviews
            .iter()
            .map(|keywords| {
                let open = cap.open(keywords);
                if open {
                    cap.take(keywords);
                }
                open
            })
            .collect();
        assert_eq!(kept, [true, true, true, false, true, false], "keyword 0 closes at 2, keyword 1 after it");
        assert!(!cap.open(&[0, 1]) && !cap.open(&[]), "nothing left open");
    }

    #[test]
    fn only_the_kept_ranks_get_a_score() {
        let mut nearest = Nearest::new(1, 2);
        for id in 0..10 {
            nearest.offer(&[id], &[vec![id as f32 / 10.0]]);
        }
        let scores = nearest.scores();
        assert_eq!(scores.len(), 2);
        assert!(scores[&9] > scores[&8]);
    }
}
