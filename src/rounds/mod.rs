//! Rounds of reviews to label: how a round is sampled from the pool (random, or in
//! proportion to mall / category as in the seed's step 3) and how it is shared out.

use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};

pub mod assist;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Sampling {
    /// Uniformly at random from the pool.
    Random,
    /// Each group gets its share of the pool.
    Proportional,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum GroupBy {
    Mall,
    Category,
    MallCategory,
}

impl GroupBy {
    pub fn uses_mall(self) -> bool {
        matches!(self, GroupBy::Mall | GroupBy::MallCategory)
    }
    pub fn uses_category(self) -> bool {
        matches!(self, GroupBy::Category | GroupBy::MallCategory)
    }
}

/// What an engineer asks for.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RoundSpec {
    pub name: String,
    pub size: usize,
    pub sampling: Sampling,
    pub group_by: GroupBy,
    /// Share of items given to two annotators, for agreement (0.0–1.0).
    pub double_share: f64,
    pub seed: u64,
    /// Usernames of the annotators who work on it; empty means everyone.
    pub members: Vec<String>,
    /// Strategy quotas: when given, the composer picks by the serving model's scores
    /// (keeping `group_by` proportions) instead of `sampling`.
    #[serde(default)]
    pub quotas: Vec<crate::select::Quota>,
    /// Model suggestions on the annotation page.
    #[serde(default)]
    pub assist: Assist,
    /// Suggestions also for the items double-assigned for agreement (which otherwise
    /// measure unassisted labels).
    #[serde(default)]
    pub assist_doubled: bool,
}

/// How a round's items show the serving model's suggestions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Assist {
    /// None (unassisted labels).
    #[default]
    Off,
    /// Visible beside the form, nothing ticked.
    Shown,
    /// Ticked in the form; the annotator confirms or corrects.
    Prefilled,
}

impl Assist {
    pub fn as_str(self) -> &'static str {
        match self {
            Assist::Off => "off",
            Assist::Shown => "shown",
            Assist::Prefilled => "prefilled",
        }
    }

    pub fn parse(s: &str) -> Option<Assist> {
        [Assist::Off, Assist::Shown, Assist::Prefilled].into_iter().find(|a| a.as_str() == s)
    }
}

/// Splits `total` over groups in proportion to their sizes (largest remainder), never
/// giving a group more than it has. Ties go to the larger group, then the earlier one.
pub fn allocate(total: usize, group_sizes: &[usize]) -> Vec<usize> {
    let pool: usize = group_sizes.iter().sum();
    if pool == 0 {
        return vec![0; group_sizes.len()];
    }
    let total = total.min(pool);
    let mut quotas: Vec<usize> = group_sizes.iter().map(|&g| total * g / pool).collect();
    let mut order: Vec<usize> = (0..group_sizes.len()).collect();
    // Remainders compared exactly as fractions with the common denominator `pool`.
    order.sort_by_key(|&i| {
        (std::cmp::Reverse((total * group_sizes[i]) % pool), std::cmp::Reverse(group_sizes[i]), i)
    });
    let mut left = total - quotas.iter().sum::<usize>();
    for &i in order.iter().cycle().take(order.len() * 2) {
        if left == 0 {
            break;
        }
        if quotas[i] < group_sizes[i] {
            quotas[i] += 1;
            left -= 1;
        }
    }
    quotas
}

/// Which item positions are double-assigned: a seeded random `share` of them.
pub fn double_positions(items: usize, share: f64, seed: u64) -> Vec<bool> {
    let count = ((items as f64) * share.clamp(0.0, 1.0)).round() as usize;
    let mut positions: Vec<usize> = (0..items).collect();
    positions.shuffle(&mut rand::rngs::StdRng::seed_from_u64(seed));
    let mut doubled = vec![false; items];
    for &p in &positions[..count] {
        doubled[p] = true;
    }
    doubled
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocation_follows_group_sizes_and_sums_to_the_total() {
        assert_eq!(allocate(10, &[50, 30, 20]), vec![5, 3, 2]);
        assert_eq!(allocate(10, &[1, 1, 1]).iter().sum::<usize>(), 3);
        let q = allocate(7, &[10, 10, 10]);
        assert_eq!(q.iter().sum::<usize>(), 7);
        assert!(q.iter().all(|&x| x == 2 || x == 3));
        assert_eq!(allocate(5, &[]), Vec::<usize>::new());
    }

    #[test]
    fn small_groups_are_not_overdrawn() {
        assert_eq!(allocate(10, &[100, 1]), vec![10, 0]);
        assert_eq!(allocate(100, &[3, 4]), vec![3, 4]);
    }

    #[test]
    fn the_double_share_is_seeded_and_sized() {
        let a = double_positions(100, 0.2, 7);
        assert_eq!(a.iter().filter(|&&d| d).count(), 20);
        assert_eq!(a, double_positions(100, 0.2, 7));
        assert_ne!(a, double_positions(100, 0.2, 8));
        assert!(double_positions(10, 0.0, 1).iter().all(|d| !d));
    }
}
