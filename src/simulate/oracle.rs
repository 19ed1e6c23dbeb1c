//! The balance oracle: a pick no strategy can make, since it reads the gold labels of
//! the reviews it has not revealed yet. Each pick is the hidden review whose keywords
//! have the fewest labels so far (the sum of `1 / (1 + labels)` over its keywords), so
//! the labelled set is as even across keywords as the pool allows. Its curve bounds
//! what any strategy that aims at label balance could save on keyword macro F1 with
//! this pool and these models (docs/benchmarks.md#simulation).

use std::collections::HashMap;

use rand::seq::SliceRandom;
use rand::SeedableRng;

use crate::import::formats::RawRow;

/// The strategy name `simulate` knows it by.
pub const ORACLE: &str = "oracle-balance";

/// Indices of `n` rows of `pool` not yet `revealed`, picked one at a time, each the
/// one whose keywords hold the fewest labels among the revealed rows and the picks
/// before it. Ties go in an order shuffled by `seed`.
pub fn balanced_picks(pool: &[RawRow], revealed: &[bool], n: usize, seed: u64) -> Vec<usize> {
    let keywords: Vec<Vec<&str>> = pool.iter().map(keywords_of).collect();
    let mut counts: HashMap<&str, usize> = HashMap::new();
    (0..pool.len()).filter(|&i| revealed[i]).for_each(|i| count(&mut counts, &keywords[i]));
    let mut hidden: Vec<usize> = (0..pool.len()).filter(|&i| !revealed[i]).collect();
    hidden.shuffle(&mut rand::rngs::StdRng::seed_from_u64(seed));
    let mut picks = Vec::with_capacity(n.min(hidden.len()));
    while picks.len() < n && !hidden.is_empty() {
        let gain = |i: usize| -> f64 {
            keywords[i].iter().map(|k| 1.0 / (1.0 + *counts.get(k).unwrap_or(&0) as f64)).sum()
        };
        // The first of the best in shuffled order: each gain computed once.
        let (best, _) = hidden.iter().enumerate().fold((0, f64::NEG_INFINITY), |(best, top), (j, &i)| {
            let g = gain(i);
            if g > top {
                (j, g)
            } else {
                (best, top)
            }
        });
        let pick = hidden.swap_remove(best);
        count(&mut counts, &keywords[pick]);
        picks.push(pick);
    }
    picks
}

fn count<'a>(counts: &mut HashMap<&'a str, usize>, keywords: &[&'a str]) {
    for k in keywords {
        *counts.entry(k).or_default() += 1;
    }
}

fn keywords_of(row: &RawRow) -> Vec<&str> {
    row.labels.as_ref().map(|l| l.labels().iter().map(|l| l.keyword.as_str()).collect()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::labels::LabelSet;

    fn row(keywords: &[&str]) -> RawRow {
        let compact: Vec<String> = keywords.iter().map(|k| format!("{k}1")).collect();
        RawRow {
            line: 0,
            text: compact.join(" "),
            mall: None,
            category: None,
            external_id: None,
            labels: LabelSet::parse_compact(&compact.join(",")).unwrap(),
            split: None,
            warning: None,
        }
    }

    #[test]
    fn the_oracle_takes_the_rare_keywords_reviews_first_and_spreads_its_picks() {
        // Revealed: three 배송 reviews. Hidden: more 배송, two 색상, one 사이즈.
        let pool = vec![
            row(&["배송"]),
            row(&["배송"]),
            row(&["배송"]),
            row(&["배송"]),
            row(&["배송"]),
            row(&["색상"]),
            row(&["색상"]),
            row(&["사이즈", "배송"]),
        ];
        let revealed = [true, true, true, false, false, false, false, false];
        let picks = balanced_picks(&pool, &revealed, 3, 1);
        let mut first_two = picks[..2].to_vec();
        first_two.sort();
        assert_eq!(first_two[1], 7, "사이즈 has no label yet: {picks:?}");
        assert!([5, 6].contains(&first_two[0]), "then one 색상 review: {picks:?}");
        assert!([5, 6].contains(&picks[2]), "the second 색상 still beats a fifth 배송: {picks:?}");
        assert!(picks.iter().all(|&p| !revealed[p]));
        assert_eq!(balanced_picks(&pool, &revealed, 10, 1).len(), 5, "no more than the hidden rows");
    }
}
