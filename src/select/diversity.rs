//! A diversity step after the strategies: a round composed larger than asked (each
//! strategy's best candidates, a few times over) is cut down to the asked size cell by
//! cell (strategy × mall/category group), each cell keeping a core-set of its
//! candidates (greedy k-center over their embeddings, starting from the best-scored),
//! so a batch is not a handful of near-duplicates that the model finds equally unsure.

use std::collections::{BTreeMap, HashMap, HashSet};

use super::composer::{Pick, Pool};
use super::strategies::Strategy;

/// Farthest-first traversal: `rows[0]`, then repeatedly the row farthest (in squared
/// Euclidean distance) from every row chosen so far; `n` of them, as indices.
pub fn farthest_first(rows: &[&[f32]], n: usize) -> Vec<usize> {
    let n = n.min(rows.len());
    if n == 0 {
        return Vec::new();
    }
    let distance = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum::<f32>();
    let mut chosen = vec![0];
    let mut nearest: Vec<f32> = rows.iter().map(|r| distance(r, rows[0])).collect();
    while chosen.len() < n {
        let next = (0..rows.len())
            .filter(|i| !chosen.contains(i))
            .max_by(|&a, &b| nearest[a].total_cmp(&nearest[b]).then(b.cmp(&a)))
            .expect("fewer chosen than rows");
        chosen.push(next);
        for (i, row) in rows.iter().enumerate() {
            nearest[i] = nearest[i].min(distance(row, rows[next]));
        }
    }
    chosen
}

/// A strategy and a mall / category group (none for a review outside the pool).
type Cell = (Strategy, Option<u32>);

/// Keeps, for every (strategy, group) cell, as many picks as `wanted` (the round of the
/// asked size) has there, chosen farthest-first among that cell's picks in `over` (the
/// larger round, best-scored first). Picks without an embedding keep their order; a
/// cell short of candidates is topped up from `wanted`'s own picks.
pub fn diversify(
    pool: &Pool,
    over: &[Pick],
    wanted: &[Pick],
    embedding: &HashMap<i64, Vec<f32>>,
) -> Vec<Pick> {
    // Where each pick sits in the pool: only the picks', not the whole pool's.
    let picked: HashSet<i64> = over.iter().chain(wanted).map(|p| p.review_id).collect();
    let index: HashMap<i64, usize> = pool
        .review_ids
        .iter()
        .enumerate()
        .filter(|(_, id)| picked.contains(id))
        .map(|(i, &id)| (id, i))
        .collect();
    let cell = |p: &Pick| (p.strategy, index.get(&p.review_id).map(|&i| pool.groups[i]));
    let mut quota: HashMap<Cell, usize> = HashMap::new();
    for p in wanted {
        *quota.entry(cell(p)).or_default() += 1;
    }
    let mut cells: BTreeMap<Cell, Vec<Pick>> = BTreeMap::new();
    for p in over {
        cells.entry(cell(p)).or_default().push(*p);
    }
    let mut kept: Vec<Pick> = Vec::new();
    for (key, mut picks) in cells {
        let n = quota.get(&key).copied().unwrap_or(0);
        picks.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.review_id.cmp(&b.review_id)));
        let (with, without): (Vec<Pick>, Vec<Pick>) =
            picks.into_iter().partition(|p| embedding.contains_key(&p.review_id));
        let rows: Vec<&[f32]> = with.iter().map(|p| embedding[&p.review_id].as_slice()).collect();
        let mut taken: Vec<Pick> = farthest_first(&rows, n).into_iter().map(|i| with[i]).collect();
        taken.extend(without.into_iter().take(n - taken.len()));
        kept.extend(taken);
    }
    top_up(pool, &index, kept, wanted)
}

/// Fills the cells the larger round left short from the asked round's own picks,
/// never taking a review or a text twice, in the asked round's order.
fn top_up(pool: &Pool, index: &HashMap<i64, usize>, mut kept: Vec<Pick>, wanted: &[Pick]) -> Vec<Pick> {
    let text = |id: i64| index.get(&id).map(|&i| pool.text_keys[i]);
    let mut ids: HashSet<i64> = kept.iter().map(|p| p.review_id).collect();
    let mut texts: HashSet<Option<i64>> = kept.iter().map(|p| text(p.review_id)).collect();
    for p in wanted {
        if kept.len() >= wanted.len() {
            break;
        }
        if !ids.contains(&p.review_id) && !texts.contains(&text(p.review_id)) {
            ids.insert(p.review_id);
            texts.insert(text(p.review_id));
            kept.push(*p);
        }
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn farthest_first_spreads_over_the_clusters() {
        let rows: Vec<Vec<f32>> = vec![
            vec![0.0, 0.0],
            vec![0.1, 0.0],
            vec![0.0, 0.1],
            vec![5.0, 5.0],
            vec![5.1, 5.0],
            vec![-5.0, 5.0],
        ];
        let refs: Vec<&[f32]> = rows.iter().map(|r| r.as_slice()).collect();
        let chosen = farthest_first(&refs, 3);
        assert_eq!(chosen[0], 0, "the best-scored first");
        let far = |i: &usize| [3, 4].contains(i);
        assert!(chosen[1..].contains(&5) && chosen[1..].iter().filter(|i| far(i)).count() == 1, "{chosen:?}");
        assert_eq!(farthest_first(&refs, 10).len(), 6);
    }

    fn pool(n: usize) -> Pool {
        Pool {
            review_ids: (0..n as i64).collect(),
            groups: vec![0; n],
            text_keys: (0..n as i64).collect(),
            taken_texts: vec![],
            scores: HashMap::new(),
            group_sizes: None,
        }
    }

    fn pick(id: i64, score: f32) -> Pick {
        Pick { review_id: id, strategy: Strategy::KeywordBoundary, score }
    }

    #[test]
    fn a_diverse_round_keeps_its_size_and_cells_and_drops_near_duplicates() {
        let pool = pool(6);
        // Reviews 0–2 are near-duplicates of each other, 3 and 4 lie elsewhere.
        let embedding: HashMap<i64, Vec<f32>> = [
            (0, vec![0.0, 0.0]),
            (1, vec![0.01, 0.0]),
            (2, vec![0.0, 0.01]),
            (3, vec![3.0, 0.0]),
            (4, vec![0.0, 3.0]),
        ]
        .into_iter()
        .collect();
        let over: Vec<Pick> = (0..5).map(|i| pick(i, 1.0 - i as f32 / 10.0)).collect();
        let wanted: Vec<Pick> = over[..3].to_vec();
        let kept = diversify(&pool, &over, &wanted, &embedding);
        let mut ids: Vec<i64> = kept.iter().map(|p| p.review_id).collect();
        ids.sort();
        assert_eq!(ids, [0, 3, 4], "the best, then the two far ones");
        // Short of candidates: topped up from the asked round.
        let few = diversify(&pool, &over[..1], &wanted, &embedding);
        assert_eq!(few.len(), 3);
    }
}
