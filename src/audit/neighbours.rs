//! The neighbours' vote: what the labels of a review's nearest neighbours say about a
//! keyword, by the pretrained base's sentence vectors (cosine). A second view of each
//! label beside the fold models', made without training (SimiFeat, Zhu et al. 2022;
//! deep k-NN, Bahri et al. 2020): a review whose ten closest reviews all hold a keyword
//! it lacks is suspect whatever a model fitted to the noisy labels says.
//!
//! Chosen on planted errors of seeds 8 and 9 (`bench audit`, e5-ko, fast mode), with
//! the sentence vectors of the package's own e5 engine: 10 neighbours, unweighted, 0.4
//! of the blend raised recall on both keywords and seeds by 4.0 to 6.0 points (mean
//! +4.8); 5, 15, 20 and 40 neighbours, similarity-weighted votes and other shares did
//! less. On seed 7, which took no part: 0.600 → 0.633 and 0.500 → 0.507
//! (docs/benchmarks.md#label-error-detection).

use crate::select::similar::{cosine_blocks, SIMILARITIES_AT_ONCE};

/// Neighbours whose labels vote.
pub const NEIGHBOURS: usize = 10;
/// The vote's share of the probability the audit ranks; the fold models' is the rest.
pub const WEIGHT: f32 = 0.4;

/// For each vector, the indices of the `k` most similar others (cosine), most similar
/// first, ties to the lower index (brute force: `select::similar`).
pub fn nearest(vectors: &[Vec<f32>], k: usize) -> candle_core::Result<Vec<Vec<usize>>> {
    nearest_within(vectors, k, SIMILARITIES_AT_ONCE)
}

/// [`nearest`], computing at most `at_once` similarities at a time.
fn nearest_within(vectors: &[Vec<f32>], k: usize, at_once: usize) -> candle_core::Result<Vec<Vec<usize>>> {
    let mut out = Vec::with_capacity(vectors.len());
    cosine_blocks(vectors, vectors, at_once, |start, block| {
        for (offset, row) in block.iter().enumerate() {
            out.push(top(row, start + offset, k));
        }
    })?;
    Ok(out)
}

/// The `k` highest of `row` but `itself`, highest first.
fn top(row: &[f32], itself: usize, k: usize) -> Vec<usize> {
    let mut others: Vec<usize> = (0..row.len()).filter(|&j| j != itself).collect();
    let order = |a: &usize, b: &usize| row[*b].total_cmp(&row[*a]).then(a.cmp(b));
    let k = k.min(others.len());
    if k < others.len() {
        others.select_nth_unstable_by(k, order);
        others.truncate(k);
    }
    others.sort_by(order);
    others
}

/// The share of each item's neighbours that hold the label.
pub fn vote(neighbours: &[Vec<usize>], labelled: &[bool]) -> Vec<f32> {
    neighbours
        .iter()
        .map(|near| match near.len() {
            0 => 0.0,
            n => near.iter().filter(|&&j| labelled[j]).count() as f32 / n as f32,
        })
        .collect()
}

/// The fold models' probability and the neighbours' vote, mixed.
pub fn blend(model: &[f32], vote: &[f32], weight: f32) -> Vec<f32> {
    model.iter().zip(vote).map(|(m, v)| (1.0 - weight) * m + weight * v).collect()
}

/// What the audit ranks a label by: the fold models' probability, blended with the
/// neighbours' vote ([`Neighbourhood::vote`]) when there is one.
pub fn ranked(model: &[f32], vote: Option<&[f32]>) -> Vec<f32> {
    match vote {
        Some(voted) => blend(model, voted, WEIGHT),
        None => model.to_vec(),
    }
}

/// Every review's neighbours, when the reviews have vectors: what a keyword's vote is
/// taken over.
pub struct Neighbourhood(Option<Vec<Vec<usize>>>);

impl Neighbourhood {
    /// The `k` nearest of each of `vectors` (none for no vectors or `k` 0: no vote).
    pub fn of(vectors: &[Vec<f32>], k: usize) -> candle_core::Result<Self> {
        if vectors.is_empty() || k == 0 {
            return Ok(Neighbourhood(None));
        }
        Ok(Neighbourhood(Some(nearest(vectors, k)?)))
    }

    /// Each review's share of neighbours holding the label, when there is a vote.
    pub fn vote(&self, labelled: &[bool]) -> Option<Vec<f32>> {
        self.0.as_ref().map(|near| vote(near, labelled))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::select::similar::unit;

    #[test]
    fn the_nearest_are_found_by_angle_not_length() {
        let vectors = vec![
            vec![1.0, 0.0],
            vec![10.0, 1.0], // close in angle to 0, far in length
            vec![0.0, 1.0],
            vec![0.1, 1.0],
            vec![-1.0, 0.0],
        ];
        let near = nearest(&vectors, 2).unwrap();
        assert_eq!(near[0], vec![1, 3]);
        assert_eq!(near[2], vec![3, 1]);
        assert_eq!(near[4], vec![2, 3], "the least unlike, never itself");
        assert!(near.iter().enumerate().all(|(i, n)| n.len() == 2 && !n.contains(&i)));
    }

    #[test]
    fn ties_and_small_sets_are_settled_the_same_way_every_time() {
        let same = vec![vec![1.0, 1.0]; 4];
        assert_eq!(nearest(&same, 2).unwrap(), vec![vec![1, 2], vec![0, 2], vec![0, 1], vec![0, 1]]);
        assert_eq!(nearest(&same, 10).unwrap()[3], vec![0, 1, 2], "k past the set: all others");
        assert!(nearest(&[], 3).unwrap().is_empty());
        assert_eq!(nearest(&[vec![0.0, 0.0]], 3).unwrap(), vec![Vec::<usize>::new()]);
    }

    #[test]
    fn chunks_give_what_one_product_gives() {
        let vectors: Vec<Vec<f32>> =
            (0..40).map(|i| vec![(i as f32 * 0.37).sin(), (i as f32 * 0.11).cos(), i as f32 % 3.0]).collect();
        let near = nearest_within(&vectors, 3, 40).unwrap(); // one row at a time
        assert_eq!(near, nearest(&vectors, 3).unwrap());
        for (i, got) in near.iter().enumerate() {
            let mut by_hand: Vec<usize> = (0..40).filter(|&j| j != i).collect();
            let cos = |j: usize| {
                let (a, b) = (unit(&vectors[i]), unit(&vectors[j]));
                a.iter().zip(&b).map(|(x, y)| x * y).sum::<f32>()
            };
            by_hand.sort_by(|&a, &b| cos(b).total_cmp(&cos(a)).then(a.cmp(&b)));
            assert_eq!(got, &by_hand[..3], "row {i}");
        }
    }

    #[test]
    fn a_review_among_labelled_neighbours_is_voted_up() {
        let near = vec![vec![1, 2], vec![0, 2], vec![0, 1], vec![]];
        let voted = vote(&near, &[false, true, true, true]);
        assert_eq!(voted, vec![1.0, 0.5, 0.5, 0.0]);
        let mixed = blend(&[0.2, 0.9, 0.5, 0.1], &voted, WEIGHT);
        assert!((mixed[0] - (0.6 * 0.2 + 0.4)).abs() < 1e-6);
        assert!((mixed[3] - 0.06).abs() < 1e-6);
    }

    #[test]
    fn without_vectors_the_models_alone_are_ranked() {
        let model = [0.3, 0.8];
        for none in [
            Neighbourhood::of(&[], NEIGHBOURS).unwrap(),
            Neighbourhood::of(&[vec![1.0], vec![2.0]], 0).unwrap(),
        ] {
            assert_eq!(none.vote(&[true, false]), None);
            assert_eq!(ranked(&model, none.vote(&[true, false]).as_deref()), model.to_vec());
        }
        let two = Neighbourhood::of(&[vec![1.0, 0.0], vec![0.9, 0.1]], NEIGHBOURS).unwrap();
        let voted = two.vote(&[true, false]);
        assert_eq!(voted, Some(vec![0.0, 1.0]));
        assert_eq!(ranked(&model, voted.as_deref()), blend(&model, &[0.0, 1.0], WEIGHT));
    }
}
