//! k-means over the encoder's review embeddings (linfa), turned into outlier scores by
//! [`strategies::cluster_outliers`].

use linfa::traits::{Fit, Predict};
use linfa::DatasetBase;
use linfa_clustering::KMeans;
use ndarray::{Array2, Axis};
use rand::SeedableRng;

use super::strategies;

#[derive(Debug, Clone, PartialEq)]
pub struct Clustering {
    pub clusters: Vec<usize>,
    pub outlier_scores: Vec<f32>,
}

/// Clusters for `n` reviews when none is asked for: about √(n/2), between 2 and 64.
pub fn default_clusters(n: usize) -> usize {
    (((n as f64) / 2.0).sqrt().round() as usize).clamp(2, 64)
}

/// A cluster smaller than a tenth of the average cluster is "tiny" (at least 2 members
/// are needed to be a cluster at all).
fn tiny_size(n: usize, k: usize) -> usize {
    (n / (k * 10)).max(2)
}

/// k-means is fitted on at most this many reviews (a seeded sample) and then assigns
/// every review: centroids settle long before a million points, and fitting on all of
/// them would take minutes per pass.
const FIT_SAMPLE: usize = 20_000;

fn fitting_rows(data: &Array2<f64>, rng: &mut rand_xoshiro::Xoshiro256Plus) -> Array2<f64> {
    if data.nrows() <= FIT_SAMPLE {
        return data.clone();
    }
    let picked = rand::seq::index::sample(rng, data.nrows(), FIT_SAMPLE).into_vec();
    data.select(Axis(0), &picked)
}

/// Clusters `embeddings` (one row per review) into `k` groups and scores each review
/// by its standardised distance to its centroid. Fewer than 3 reviews: all score 0.
pub fn cluster(embeddings: &[Vec<f32>], k: usize, seed: u64) -> anyhow::Result<Clustering> {
    let n = embeddings.len();
    let dim = embeddings.first().map_or(0, Vec::len);
    if n < 3 || dim == 0 {
        return Ok(Clustering { clusters: vec![0; n], outlier_scores: vec![0.0; n] });
    }
    anyhow::ensure!(embeddings.iter().all(|e| e.len() == dim), "embeddings differ in length");
    let k = k.clamp(1, n - 1);
    let flat: Vec<f64> = embeddings.iter().flatten().map(|&x| x as f64).collect();
    let data = Array2::from_shape_vec((n, dim), flat)?;
    let mut rng = rand_xoshiro::Xoshiro256Plus::seed_from_u64(seed);
    let dataset = DatasetBase::from(fitting_rows(&data, &mut rng));
    let model = KMeans::params_with_rng(k, rng)
        .n_runs(3)
        .max_n_iterations(100)
        .tolerance(1e-4)
        .fit(&dataset)
        .map_err(|e| anyhow::anyhow!("k-means failed: {e}"))?;
    let assigned = model.predict(&data);
    let clusters: Vec<usize> = assigned.iter().copied().collect();
    let centroids = model.centroids();
    let distances: Vec<f32> = data
        .axis_iter(Axis(0))
        .zip(&clusters)
        .map(|(row, &c)| {
            let centre = centroids.row(c);
            row.iter().zip(centre.iter()).map(|(a, b)| (a - b) * (a - b)).sum::<f64>().sqrt() as f32
        })
        .collect();
    let outlier_scores = strategies::cluster_outliers(&distances, &clusters, tiny_size(n, k));
    Ok(Clustering { clusters, outlier_scores })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two blobs of 40 points around (0,0) and (10,10), a far point and one stray
    /// pair far from both.
    fn blobs() -> Vec<Vec<f32>> {
        let mut rows = Vec::new();
        for i in 0..40 {
            let jitter = (i % 7) as f32 * 0.1 - 0.3;
            rows.push(vec![jitter, -jitter * 0.5]);
            rows.push(vec![10.0 + jitter * 0.5, 10.0 - jitter]);
        }
        rows.push(vec![2.5, 2.5]); // index 80: inside cluster 0's reach, but far out
        rows
    }

    #[test]
    fn the_point_far_from_its_centroid_scores_highest() {
        let result = cluster(&blobs(), 2, 1).unwrap();
        let best = (0..result.outlier_scores.len())
            .max_by(|&a, &b| result.outlier_scores[a].total_cmp(&result.outlier_scores[b]))
            .unwrap();
        assert_eq!(best, 80);
        assert_ne!(result.clusters[0], result.clusters[1], "the blobs are separate clusters");
    }

    #[test]
    fn clustering_is_repeatable_for_a_seed() {
        assert_eq!(cluster(&blobs(), 3, 5).unwrap(), cluster(&blobs(), 3, 5).unwrap());
    }

    #[test]
    fn too_few_reviews_score_zero() {
        let result = cluster(&[vec![1.0], vec![2.0]], 4, 1).unwrap();
        assert_eq!(result.outlier_scores, vec![0.0, 0.0]);
        assert!(cluster(&[vec![1.0], vec![2.0, 3.0], vec![1.0]], 2, 1).is_err());
    }

    #[test]
    fn default_cluster_count_grows_with_the_pool() {
        assert_eq!(default_clusters(10), 2);
        assert_eq!(default_clusters(800), 20);
        assert_eq!(default_clusters(1_000_000), 64);
    }
}
