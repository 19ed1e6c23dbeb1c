//! Agreement between annotators on nominal labels (a keyword present or not, a
//! sentiment level): Cohen's kappa for two, Krippendorff's alpha for any number with
//! missing ratings. Both are `None` where they are undefined: when the ratings show no
//! variation at all, chance agreement is perfect and the ratio is 0/0.

use std::collections::BTreeMap;

/// Cohen's kappa of two annotators over the same items: `(p_o − p_e) / (1 − p_e)`.
pub fn cohen_kappa<T: Ord + Clone>(pairs: &[(T, T)]) -> Option<f64> {
    if pairs.is_empty() {
        return None;
    }
    let n = pairs.len() as f64;
    let observed = pairs.iter().filter(|(a, b)| a == b).count() as f64 / n;
    let mut first: BTreeMap<T, f64> = BTreeMap::new();
    let mut second: BTreeMap<T, f64> = BTreeMap::new();
    for (a, b) in pairs {
        *first.entry(a.clone()).or_default() += 1.0;
        *second.entry(b.clone()).or_default() += 1.0;
    }
    let expected: f64 = first.iter().map(|(c, x)| x / n * second.get(c).copied().unwrap_or(0.0) / n).sum();
    if (1.0 - expected).abs() < 1e-12 {
        return None;
    }
    Some((observed - expected) / (1.0 - expected))
}

/// Krippendorff's alpha for nominal data. `units[u]` holds the ratings one unit got
/// (any number of annotators; a missing rating is simply absent). Units rated once
/// cannot be paired and are left out, as the method prescribes.
pub fn krippendorff_alpha<T: Ord + Clone>(units: &[Vec<T>]) -> Option<f64> {
    // Coincidences: each ordered pair of ratings within a unit, weighted 1 / (m_u − 1).
    let mut coincidences: BTreeMap<(T, T), f64> = BTreeMap::new();
    for ratings in units.iter().filter(|r| r.len() >= 2) {
        let weight = 1.0 / (ratings.len() - 1) as f64;
        for (i, a) in ratings.iter().enumerate() {
            for (j, b) in ratings.iter().enumerate() {
                if i != j {
                    *coincidences.entry((a.clone(), b.clone())).or_default() += weight;
                }
            }
        }
    }
    let mut marginals: BTreeMap<T, f64> = BTreeMap::new();
    for ((c, _), o) in &coincidences {
        *marginals.entry(c.clone()).or_default() += o;
    }
    let n: f64 = marginals.values().sum();
    if n < 2.0 {
        return None;
    }
    let disagreement: f64 = coincidences.iter().filter(|((c, k), _)| c != k).map(|(_, o)| o).sum::<f64>() / n;
    let total: f64 = marginals.values().sum::<f64>().powi(2) - marginals.values().map(|m| m * m).sum::<f64>();
    let expected = total / (n * (n - 1.0));
    if expected.abs() < 1e-12 {
        return None;
    }
    Some(1.0 - disagreement / expected)
}

/// Agreement on one keyword across the reviews several annotators labelled.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct KeywordAgreement {
    pub keyword_id: i64,
    /// Reviews with at least two annotators' answers.
    pub reviews: usize,
    /// Whether the keyword is present: kappa over reviews with exactly two answers,
    /// alpha over all.
    pub presence_kappa: Option<f64>,
    pub presence_alpha: Option<f64>,
    /// The sentiment level, among the annotators who marked the keyword.
    pub level_alpha: Option<f64>,
}

/// Per keyword, from each multiply-labelled review's answers (one per annotator; an
/// answer is the list of (keyword id, level) it marked).
pub fn per_keyword(keyword_ids: &[i64], answers: &[Vec<Vec<(i64, i16)>>]) -> Vec<KeywordAgreement> {
    let rated: Vec<&Vec<Vec<(i64, i16)>>> = answers.iter().filter(|a| a.len() >= 2).collect();
    keyword_ids
        .iter()
        .map(|&k| {
            let level = |answer: &Vec<(i64, i16)>| answer.iter().find(|(id, _)| *id == k).map(|(_, l)| *l);
            let presence: Vec<Vec<bool>> =
                rated.iter().map(|r| r.iter().map(|a| level(a).is_some()).collect()).collect();
            let pairs: Vec<(bool, bool)> =
                presence.iter().filter(|p| p.len() == 2).map(|p| (p[0], p[1])).collect();
            let levels: Vec<Vec<i16>> = rated.iter().map(|r| r.iter().filter_map(level).collect()).collect();
            KeywordAgreement {
                keyword_id: k,
                reviews: rated.len(),
                presence_kappa: cohen_kappa(&pairs),
                presence_alpha: krippendorff_alpha(&presence),
                level_alpha: krippendorff_alpha(&levels),
            }
        })
        .collect()
}

/// Each human annotator's latest answer on every review that two or more annotators
/// labelled, as (keyword id, level) lists.
pub async fn answers(pool: &sqlx::PgPool, taxonomy_id: i64) -> sqlx::Result<Vec<Vec<Vec<(i64, i16)>>>> {
    let reviews = crate::store::adjudication::all_multiply_answered(pool, taxonomy_id).await?;
    Ok(reviews.into_iter().map(|r| r.answers.into_iter().map(|a| a.labels.labels).collect()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: Option<f64>, b: f64, eps: f64) -> bool {
        a.is_some_and(|a| (a - b).abs() < eps)
    }

    #[test]
    fn kappa_matches_the_textbook_example() {
        // 50 items: yes/yes 20, yes/no 5, no/yes 10, no/no 15 → p_o 0.7, p_e 0.5, κ 0.4.
        let mut pairs = Vec::new();
        pairs.extend(std::iter::repeat_n((true, true), 20));
        pairs.extend(std::iter::repeat_n((true, false), 5));
        pairs.extend(std::iter::repeat_n((false, true), 10));
        pairs.extend(std::iter::repeat_n((false, false), 15));
        assert!(close(cohen_kappa(&pairs), 0.4, 1e-12));
    }

    #[test]
    fn kappa_edge_cases() {
        assert!(close(cohen_kappa(&[(1, 1), (2, 2), (3, 3)]), 1.0, 1e-12), "perfect agreement");
        // Systematic disagreement on a balanced binary task: κ = −1.
        assert!(close(cohen_kappa(&[(0, 1), (1, 0), (0, 1), (1, 0)]), -1.0, 1e-12));
        assert_eq!(cohen_kappa(&[(5, 5), (5, 5)]), None, "one class only: undefined");
        assert_eq!(cohen_kappa::<i32>(&[]), None);
    }

    #[test]
    fn alpha_matches_krippendorffs_worked_example_with_missing_ratings() {
        // Krippendorff (2011), "Computing Krippendorff's alpha-reliability": 4 observers,
        // 12 units, missing values; nominal α = 0.743.
        let units: Vec<Vec<u8>> = vec![
            vec![1, 1, 1],
            vec![2, 2, 3, 2],
            vec![3, 3, 3, 3],
            vec![3, 3, 3, 3],
            vec![2, 2, 2, 2],
            vec![1, 2, 3, 4],
            vec![4, 4, 4, 4],
            vec![1, 1, 2, 1],
            vec![2, 2, 2, 2],
            vec![5, 5, 5],
            vec![1, 1],
            vec![3],
        ];
        assert!(close(krippendorff_alpha(&units), 0.743, 5e-4), "{:?}", krippendorff_alpha(&units));
    }

    #[test]
    fn alpha_for_two_annotators_without_gaps_is_close_to_kappa() {
        let pairs = [(1, 1), (1, 0), (0, 0), (0, 0), (1, 1), (0, 1), (1, 1), (0, 0)];
        let units: Vec<Vec<i32>> = pairs.iter().map(|&(a, b)| vec![a, b]).collect();
        let (alpha, kappa) = (krippendorff_alpha(&units).unwrap(), cohen_kappa(&pairs).unwrap());
        // Alpha corrects for the sample size: slightly above kappa here.
        assert!((alpha - kappa).abs() < 0.05, "alpha {alpha}, kappa {kappa}");
    }

    #[test]
    fn per_keyword_agreement_separates_presence_from_level() {
        let (delivery, colour) = (1, 2);
        // Three reviews, two annotators: both always agree on 배송 being there but not on
        // its level; 색상 is marked by one annotator only, once.
        let answers = vec![
            vec![vec![(delivery, 1)], vec![(delivery, -1)]],
            vec![vec![(delivery, 1), (colour, 2)], vec![(delivery, 1)]],
            vec![vec![], vec![]],
            vec![vec![(delivery, 2)]], // one answer: not counted
        ];
        let result = per_keyword(&[delivery, colour], &answers);
        assert_eq!(result[0].reviews, 3);
        // 배송 present in 2 of 3 reviews for both: perfect presence agreement.
        assert!(close(result[0].presence_kappa, 1.0, 1e-12));
        assert!(close(result[0].presence_alpha, 1.0, 1e-12));
        // Levels: (1, −1) disagree, (1, 1) agree.
        assert!(result[0].level_alpha.unwrap() < 1.0);
        // 색상: the annotators never agree on it being there.
        assert!(result[1].presence_kappa.unwrap() <= 0.0);
        assert_eq!(result[1].level_alpha, None, "nobody's level can be compared");
    }

    #[test]
    fn alpha_edge_cases() {
        assert_eq!(krippendorff_alpha(&[vec![2, 2], vec![2, 2, 2]]), None, "one class only: undefined");
        assert_eq!(krippendorff_alpha(&[vec![1], vec![2]]), None, "nothing pairable");
        assert_eq!(krippendorff_alpha::<u8>(&[]), None);
        assert!(close(krippendorff_alpha(&[vec![1, 1], vec![2, 2]]), 1.0, 1e-12));
    }
}
