//! Rounds of reviews to label: how a round is sampled from the pool (random, or in
//! proportion to mall / category as in the seed's step 3) and how it is shared out.

use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};

pub mod assist;
pub mod compose;

pub use compose::{create, CreatedRound, RoundError};

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
    pub fn grouping(self) -> crate::store::predictions::Grouping {
        crate::store::predictions::Grouping { mall: self.uses_mall(), category: self.uses_category() }
    }
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
    /// With quotas: compose the round three times larger, then keep a core-set of each
    /// (strategy, group) cell over the embeddings, so no batch is near-duplicates.
    #[serde(default)]
    pub diverse: bool,
    /// The loop cycle that composed it (`cycles`), if one did.
    #[serde(default)]
    pub cycle: Option<i64>,
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
    fn the_double_share_is_seeded_and_sized() {
        let a = double_positions(100, 0.2, 7);
        assert_eq!(a.iter().filter(|&&d| d).count(), 20);
        assert_eq!(a, double_positions(100, 0.2, 7));
        assert_ne!(a, double_positions(100, 0.2, 8));
        assert!(double_positions(10, 0.0, 1).iter().all(|d| !d));
    }
}
