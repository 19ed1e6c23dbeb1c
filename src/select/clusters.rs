//! k-means over the encoder's review embeddings (linfa), turned into outlier scores by
//! [`strategies::cluster_outliers`].

use linfa::traits::Fit;
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
pub fn tiny_size(n: usize, k: usize) -> usize {
    (n / (k * 10)).max(2)
}

/// k-means is fitted on at most this many reviews (a seeded sample) and then assigns
/// every review: centroids settle long before a million points, and fitting on all of
/// them would take minutes per pass (and all their embeddings in memory).
pub const FIT_SAMPLE: usize = 20_000;

/// Fitted centroids: what assigns reviews, a page at a time.
pub struct Centroids {
    centres: Array2<f64>,
}

fn matrix(rows: &[Vec<f32>], dim: usize) -> anyhow::Result<Array2<f64>> {
    anyhow::ensure!(rows.iter().all(|e| e.len() == dim), "embeddings differ in length");
    let flat: Vec<f64> = rows.iter().flatten().map(|&x| x as f64).collect();
    Ok(Array2::from_shape_vec((rows.len(), dim), flat)?)
}

/// k-means with `k` clusters (at most one fewer than the rows) fitted on `sample`.
pub fn fit(sample: &[Vec<f32>], k: usize, seed: u64) -> anyhow::Result<Centroids> {
    let dim = sample.first().map_or(0, Vec::len);
    anyhow::ensure!(sample.len() >= 3 && dim > 0, "k-means needs 3 embeddings or more");
    let data = matrix(sample, dim)?;
    let k = k.clamp(1, sample.len() - 1);
    let rng = rand_xoshiro::Xoshiro256Plus::seed_from_u64(seed);
    let model = KMeans::params_with_rng(k, rng)
        .n_runs(3)
        .max_n_iterations(100)
        .tolerance(1e-4)
        .fit(&DatasetBase::from(data))
        .map_err(|e| anyhow::anyhow!("k-means failed: {e}"))?;
    Ok(Centroids { centres: model.centroids().clone() })
}

impl Centroids {
    /// Each row's nearest centroid and its distance to it, by |x|² − 2x·c + |c|² (one
    /// matrix product per page).
    pub fn assign(&self, rows: &[Vec<f32>]) -> anyhow::Result<(Vec<usize>, Vec<f32>)> {
        let data = matrix(rows, self.centres.ncols())?;
        let products = data.dot(&self.centres.t());
        let centre_norms: Vec<f64> = self.centres.axis_iter(Axis(0)).map(|c| c.dot(&c)).collect();
        let mut clusters = Vec::with_capacity(rows.len());
        let mut distances = Vec::with_capacity(rows.len());
        for (row, dots) in data.axis_iter(Axis(0)).zip(products.axis_iter(Axis(0))) {
            let norm = row.dot(&row);
            let (best, squared) = dots
                .iter()
                .zip(&centre_norms)
                .map(|(dot, c)| norm - 2.0 * dot + c)
                .enumerate()
                .fold((0, f64::INFINITY), |best, (i, d)| if d < best.1 { (i, d) } else { best });
            clusters.push(best);
            distances.push(squared.max(0.0).sqrt() as f32);
        }
        Ok((clusters, distances))
    }
}

/// Clusters `embeddings` (one row per review) into `k` groups and scores each review
/// by its standardised distance to its centroid. Fewer than 3 reviews: all score 0.
/// All in memory; `score` does the same a page at a time for a large pool.
pub fn cluster(embeddings: &[Vec<f32>], k: usize, seed: u64) -> anyhow::Result<Clustering> {
    let n = embeddings.len();
    if n < 3 || embeddings[0].is_empty() {
        return Ok(Clustering { clusters: vec![0; n], outlier_scores: vec![0.0; n] });
    }
    let sample = sample_rows(embeddings, seed);
    let centroids = fit(&sample, k, seed)?;
    let (clusters, distances) = centroids.assign(embeddings)?;
    let k = k.clamp(1, n - 1);
    let outlier_scores = strategies::cluster_outliers(&distances, &clusters, tiny_size(n, k));
    Ok(Clustering { clusters, outlier_scores })
}

fn sample_rows(rows: &[Vec<f32>], seed: u64) -> Vec<Vec<f32>> {
    if rows.len() <= FIT_SAMPLE {
        return rows.to_vec();
    }
    let mut rng = rand_xoshiro::Xoshiro256Plus::seed_from_u64(seed);
    rand::seq::index::sample(&mut rng, rows.len(), FIT_SAMPLE).into_iter().map(|i| rows[i].clone()).collect()
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
