//! How many labels a figure needs before it counts. An F1 measured on three test labels
//! is noise, and showing it as `0.000` or `0.83` invites a decision it cannot carry; so
//! a figure below its minimum is a typed [`Evidence::TooFew`], which the pages show as
//! "too few labels (n)" and the promotion rule and the loop refuse to act on. One
//! definition, here, for all of them.

use serde::{Deserialize, Serialize};

/// Labelled reviews a training needs (below it the splits hold nothing to learn from).
pub const MIN_TRAINING_LABELS: usize = 10;
/// A keyword's test labels before its F1 counts.
pub const MIN_KEYWORD_SUPPORT: usize = 10;
/// Test labels in all before a report's averages count.
pub const MIN_REPORT_SUPPORT: usize = 30;
/// Labels of a keyword before the audit judges them (fewer leave the fold models
/// nothing to learn the keyword from, and every label looks suspect).
pub const MIN_AUDIT_LABELS: usize = 10;

/// A score with the labels behind it, or too few labels to give one.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Evidence {
    Score { value: f64, labels: usize },
    TooFew { labels: usize, needed: usize },
}

impl Evidence {
    /// `value`, measured on `labels` labels, when there are at least `needed`.
    pub fn of(value: f64, labels: usize, needed: usize) -> Evidence {
        if labels >= needed && value.is_finite() {
            Evidence::Score { value, labels }
        } else {
            Evidence::TooFew { labels, needed }
        }
    }

    /// The score, when it counts.
    pub fn value(&self) -> Option<f64> {
        match self {
            Evidence::Score { value, .. } => Some(*value),
            Evidence::TooFew { .. } => None,
        }
    }

    pub fn labels(&self) -> usize {
        match self {
            Evidence::Score { labels, .. } | Evidence::TooFew { labels, .. } => *labels,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_score_on_too_few_labels_is_not_a_score() {
        assert_eq!(Evidence::of(0.83, 3, 10), Evidence::TooFew { labels: 3, needed: 10 });
        assert_eq!(Evidence::of(0.0, 1, 10).value(), None, "never 0.000 on one label");
        assert_eq!(Evidence::of(0.71, 40, 30).value(), Some(0.71));
        assert_eq!(Evidence::of(f64::NAN, 40, 30).value(), None);
        assert_eq!(Evidence::of(0.5, 7, 10).labels(), 7);
    }
}
