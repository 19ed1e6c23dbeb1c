//! The seed's query strategies (docs/loop.md), each a pure function from what scoring
//! stored about a review to a number: higher means "label this first".

use serde::{Deserialize, Serialize};

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "kebab-case")]
pub enum Strategy {
    /// A keyword probability close to its decision threshold.
    KeywordBoundary,
    /// A flat sentiment distribution for a found keyword.
    SentimentUncertainty,
    /// Many unknown or rare SentencePiece pieces.
    RareTokens,
    /// Far from its k-means centroid, or in a tiny cluster.
    ClusterOutliers,
    /// Predicted to hold a keyword with few labels so far (class balancing).
    ClassBalance,
    /// Each keyword's own boundary reviews in turn, so rare keywords get their share.
    KeywordQuota,
    /// Each keyword's nearest reviews to its labelled ones in turn (`select::similar`).
    KeywordNeighbours,
    /// Each keyword's nearest reviews to its name, as the model reads it, in turn
    /// (`score::anchors`): needs no label of the keyword.
    KeywordAnchors,
    /// The baseline, and the first round.
    Random,
}

impl Strategy {
    pub const ALL: [Strategy; 9] = [
        Strategy::KeywordBoundary,
        Strategy::SentimentUncertainty,
        Strategy::RareTokens,
        Strategy::ClusterOutliers,
        Strategy::ClassBalance,
        Strategy::KeywordQuota,
        Strategy::KeywordNeighbours,
        Strategy::KeywordAnchors,
        Strategy::Random,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::KeywordBoundary => "keyword-boundary",
            Strategy::SentimentUncertainty => "sentiment-uncertainty",
            Strategy::RareTokens => "rare-tokens",
            Strategy::ClusterOutliers => "cluster-outliers",
            Strategy::ClassBalance => "class-balance",
            Strategy::KeywordQuota => "keyword-quota",
            Strategy::KeywordNeighbours => "keyword-neighbours",
            Strategy::KeywordAnchors => "keyword-anchors",
            Strategy::Random => "random",
        }
    }

    pub fn parse(name: &str) -> Option<Strategy> {
        Strategy::ALL.into_iter().find(|s| s.as_str() == name)
    }
}

/// `1 − min_k |p_k − t_k| / max(t_k, 1 − t_k)`: 1 when some keyword sits exactly on
/// its threshold, 0 when every keyword is certain. With every threshold at 0.5 this is
/// the seed's `1 − 2·min_k |p_k − 0.5|`; tuned thresholds move the boundary, so the
/// distance is measured to where the model actually decides.
pub fn keyword_boundary(probabilities: &[f32], thresholds: &[f32]) -> f32 {
    probabilities
        .iter()
        .enumerate()
        .map(|(k, &p)| {
            let t = thresholds.get(k).copied().unwrap_or(0.5).clamp(0.01, 0.99);
            1.0 - (p - t).abs() / t.max(1.0 - t)
        })
        .fold(0.0, f32::max)
}

/// The keyword whose probability sits nearest its threshold, measured as
/// [`keyword_boundary`] measures it; `None` without keywords.
pub fn least_certain_keyword(probabilities: &[f32], thresholds: &[f32]) -> Option<usize> {
    (0..probabilities.len()).min_by(|&a, &b| {
        let distance = |k: usize| {
            let t = thresholds.get(k).copied().unwrap_or(0.5).clamp(0.01, 0.99);
            (probabilities[k] - t).abs() / t.max(1.0 - t)
        };
        distance(a).total_cmp(&distance(b)).then(a.cmp(&b))
    })
}

/// Class balancing (after small-text's `ClassBalancer`): the largest
/// `p / (1 + labels so far)` over all keywords, so the review likeliest to hold a
/// keyword with few labels scores highest. No threshold: a keyword with three labels is
/// rarely predicted present, yet its most probable reviews are where its next labels
/// are. Requiring p ≥ threshold (as first built) left it the worst strategy on keyword
/// macro F1; without it, mixed with keyword-neighbours it ends highest on macro F1
/// (docs/benchmarks.md#simulation).
pub fn class_balance(probabilities: &[f32], labels: &[usize]) -> f32 {
    probabilities
        .iter()
        .enumerate()
        .map(|(k, &p)| p / (1 + labels.get(k).copied().unwrap_or(0)) as f32)
        .fold(0.0, f32::max)
}

/// A per-keyword quota of boundary reviews as one score: each review ranks among the
/// reviews sharing its least certain keyword (`keyword`, −1 for none: NaN), and the
/// score is minus that rank, plus half its boundary score to order equal ranks. Taking
/// the best scores then takes every keyword's nearest review first, then every
/// keyword's second, and so on: a rare keyword gets as many as a frequent one.
pub fn keyword_quota(boundary: &[f32], keyword: &[i16]) -> Vec<f32> {
    let mut order: Vec<usize> =
        (0..boundary.len()).filter(|&i| keyword[i] >= 0 && !boundary[i].is_nan()).collect();
    order.sort_by(|&a, &b| {
        keyword[a].cmp(&keyword[b]).then(boundary[b].total_cmp(&boundary[a])).then(a.cmp(&b))
    });
    let mut scores = vec![f32::NAN; boundary.len()];
    let mut rank = 0usize;
    for (n, &i) in order.iter().enumerate() {
        rank = if n > 0 && keyword[order[n - 1]] == keyword[i] { rank + 1 } else { 0 };
        scores[i] = quota_score(rank, boundary[i]);
    }
    scores
}

/// [`keyword_quota`]'s score of a review ranked `rank` (0 = nearest its boundary) among
/// those sharing its least certain keyword.
pub fn quota_score(rank: usize, boundary: f32) -> f32 {
    -(rank as f32) + 0.5 * boundary
}

/// Normalised least confidence `(1 − max p) · N/(N − 1)` of one distribution: 0 when
/// certain, 1 when uniform.
pub fn least_confidence(distribution: &[f32]) -> f32 {
    let n = distribution.len();
    if n < 2 {
        return 0.0;
    }
    let top = distribution.iter().copied().fold(0.0, f32::max);
    (1.0 - top) * n as f32 / (n - 1) as f32
}

/// The most uncertain found keyword's least confidence (one unsure keyword is enough to
/// make a review worth labelling); `None` when no keyword was found.
pub fn sentiment_uncertainty(distributions: &[Vec<f32>]) -> Option<f32> {
    distributions.iter().map(|d| least_confidence(d)).reduce(f32::max)
}

/// Score of every member of a tiny cluster, at least: three standard deviations.
pub const TINY_CLUSTER_SCORE: f32 = 3.0;

/// Each review's distance to its own centroid, standardised within its cluster
/// (z-score), so a loose cluster does not hide the outliers of a tight one. Members of
/// clusters smaller than `tiny` score at least [`TINY_CLUSTER_SCORE`].
pub fn cluster_outliers(distances: &[f32], clusters: &[usize], tiny: usize) -> Vec<f32> {
    let mut spread = Spread::default();
    spread.add(distances, clusters);
    spread.scores(distances, clusters, tiny)
}

/// Distances to the centroid per cluster (count, sum, sum of squares), gathered a page
/// at a time when the reviews do not fit in memory at once.
#[derive(Debug, Clone, Default)]
pub struct Spread {
    sum: Vec<f64>,
    sq: Vec<f64>,
    size: Vec<usize>,
}

impl Spread {
    pub fn add(&mut self, distances: &[f32], clusters: &[usize]) {
        for (&d, &c) in distances.iter().zip(clusters) {
            if c >= self.size.len() {
                self.sum.resize(c + 1, 0.0);
                self.sq.resize(c + 1, 0.0);
                self.size.resize(c + 1, 0);
            }
            self.sum[c] += d as f64;
            self.sq[c] += (d as f64) * (d as f64);
            self.size[c] += 1;
        }
    }

    /// Outlier scores of reviews whose distances were all added before.
    pub fn scores(&self, distances: &[f32], clusters: &[usize], tiny: usize) -> Vec<f32> {
        distances
            .iter()
            .zip(clusters)
            .map(|(&d, &c)| {
                let n = self.size[c] as f64;
                let mean = self.sum[c] / n;
                let std = (self.sq[c] / n - mean * mean).max(0.0).sqrt();
                let z = if std > 1e-12 { ((d as f64 - mean) / std) as f32 } else { 0.0 };
                if self.size[c] < tiny {
                    z.max(TINY_CLUSTER_SCORE)
                } else {
                    z
                }
            })
            .collect()
    }
}

/// A uniform number in [0, 1) fixed by the review and the seed (SplitMix64), so a random
/// round can be recomposed exactly.
pub fn random(review_id: i64, seed: u64) -> f32 {
    let mut z = (review_id as u64) ^ seed.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z >> 40) as f32 / (1u64 << 24) as f32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ranked(scores: &[f32]) -> Vec<usize> {
        let mut order: Vec<usize> = (0..scores.len()).collect();
        order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
        order
    }

    #[test]
    fn keyword_boundary_ranks_the_undecided_review_first() {
        let t = [0.5, 0.5];
        let reviews = [[0.98, 0.01], [0.52, 0.0], [0.7, 0.1], [0.0, 0.0]];
        let scores: Vec<f32> = reviews.iter().map(|p| keyword_boundary(p, &t)).collect();
        assert_eq!(ranked(&scores), vec![1, 2, 0, 3]);
        assert!((keyword_boundary(&[0.5], &[0.5]) - 1.0).abs() < 1e-6);
        assert!(keyword_boundary(&[1.0, 0.0], &t).abs() < 1e-6);
        assert_eq!(keyword_boundary(&[], &[]), 0.0);
    }

    #[test]
    fn keyword_boundary_measures_from_the_tuned_threshold() {
        // At threshold 0.2, 0.25 is undecided and 0.5 is fairly sure.
        assert!(keyword_boundary(&[0.25], &[0.2]) > keyword_boundary(&[0.5], &[0.2]));
        assert!((keyword_boundary(&[0.2], &[0.2]) - 1.0).abs() < 1e-6);
    }

    #[test]
    fn least_confidence_is_normalised_to_the_number_of_levels() {
        assert!((least_confidence(&[0.2; 5]) - 1.0).abs() < 1e-6);
        assert!((least_confidence(&[1.0 / 3.0; 3]) - 1.0).abs() < 1e-6);
        assert!(least_confidence(&[0.0, 1.0, 0.0]).abs() < 1e-6);
        // (1 − 0.6) · 3/2
        assert!((least_confidence(&[0.3, 0.6, 0.1]) - 0.6).abs() < 1e-6);
        assert_eq!(least_confidence(&[1.0]), 0.0);
    }

    #[test]
    fn sentiment_uncertainty_takes_the_least_sure_found_keyword() {
        let sure = vec![0.0, 0.05, 0.95];
        let unsure = vec![0.3, 0.4, 0.3];
        let a = sentiment_uncertainty(&[sure.clone(), unsure.clone()]).unwrap();
        assert!((a - least_confidence(&unsure)).abs() < 1e-6);
        assert!(a > sentiment_uncertainty(&[sure]).unwrap());
        assert_eq!(sentiment_uncertainty(&[]), None);
    }

    #[test]
    fn cluster_outliers_are_standardised_within_their_cluster() {
        // Cluster 0 is tight with one far member; cluster 1 is loose and even.
        let distances = [1.0, 1.0, 1.0, 1.0, 3.0, 5.0, 9.0, 5.0, 9.0, 7.0];
        let clusters = [0, 0, 0, 0, 0, 1, 1, 1, 1, 1];
        let z = cluster_outliers(&distances, &clusters, 2);
        assert_eq!(ranked(&z)[0], 4, "the tight cluster's far member ranks above the loose cluster's");
        assert!(z[4] > z[6]);
        assert!(z[0] < 0.0);
    }

    #[test]
    fn members_of_tiny_clusters_count_as_outliers() {
        let distances = [1.0, 2.0, 1.5, 0.0];
        let clusters = [0, 0, 0, 1];
        let z = cluster_outliers(&distances, &clusters, 2);
        assert_eq!(z[3], TINY_CLUSTER_SCORE);
        assert_eq!(ranked(&z)[0], 3);
    }

    #[test]
    fn random_is_uniform_and_fixed_by_the_seed() {
        let a: Vec<f32> = (0..10_000).map(|id| random(id, 7)).collect();
        assert_eq!(a, (0..10_000).map(|id| random(id, 7)).collect::<Vec<_>>());
        assert_ne!(a, (0..10_000).map(|id| random(id, 8)).collect::<Vec<_>>());
        assert!(a.iter().all(|&x| (0.0..1.0).contains(&x)));
        let mean = a.iter().sum::<f32>() / a.len() as f32;
        assert!((mean - 0.5).abs() < 0.02, "mean {mean}");
    }

    #[test]
    fn strategy_names_round_trip() {
        for s in Strategy::ALL {
            assert_eq!(Strategy::parse(s.as_str()), Some(s));
        }
        assert_eq!(Strategy::parse("nope"), None);
    }

    #[test]
    fn the_least_certain_keyword_is_the_one_nearest_its_threshold() {
        assert_eq!(least_certain_keyword(&[0.9, 0.35, 0.05], &[0.5, 0.3, 0.5]), Some(1));
        assert_eq!(least_certain_keyword(&[], &[]), None);
    }

    #[test]
    fn class_balance_prefers_keywords_with_few_labels() {
        let labels = [500, 2, 40];
        let rare = class_balance(&[0.9, 0.8, 0.1], &labels);
        let common = class_balance(&[0.9, 0.1, 0.1], &labels);
        assert!(rare > common, "{rare} vs {common}");
        let faint = class_balance(&[0.99, 0.15, 0.0], &labels);
        assert!(
            faint > class_balance(&[0.99, 0.0, 0.6], &labels),
            "a faint rare keyword beats a likely common one"
        );
        assert!((faint - 0.05).abs() < 1e-6, "0.15 / (1 + 2): {faint}");
        assert_eq!(class_balance(&[0.0, 0.0, 0.0], &labels), 0.0);
    }

    #[test]
    fn a_keyword_quota_gives_a_rare_keyword_its_turn() {
        // Keyword 0: four reviews, all nearer their boundary than keyword 1's one review.
        let boundary = [0.9, 0.95, 0.8, 0.85, 0.3, 0.99];
        let keyword = [0, 0, 0, 0, 1, -1];
        let scores = keyword_quota(&boundary, &keyword);
        let mut order: Vec<usize> = (0..5).collect();
        order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
        assert_eq!(&order[..2], &[1, 4], "each keyword's best first: {scores:?}");
        assert!(scores[5].is_nan(), "no keyword, no score");
    }
}
