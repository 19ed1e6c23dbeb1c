//! Intervals over seeds: a figure from a few seeds is a mean with a 95 % confidence
//! interval (Student's t, since seeds are few), reported with the number of seeds, so
//! a difference between strategies can be told from the seeds' scatter.

use serde::{Deserialize, Serialize};

/// A mean over `n` values with its 95 % confidence interval (`low` = `high` = `mean`
/// for a single value).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
pub struct Interval {
    pub mean: f64,
    pub low: f64,
    pub high: f64,
    pub n: usize,
}

impl Interval {
    pub fn of(values: &[f64]) -> Interval {
        let n = values.len();
        if n == 0 {
            return Interval::default();
        }
        let mean = values.iter().sum::<f64>() / n as f64;
        if n == 1 {
            return Interval { mean, low: mean, high: mean, n };
        }
        let variance = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
        let half = t_975(n - 1) * (variance / n as f64).sqrt();
        Interval { mean, low: mean - half, high: mean + half, n }
    }

    pub fn half_width(&self) -> f64 {
        (self.high - self.low) / 2.0
    }

    /// `mean [low, high]` with `digits` decimals: how the pages and commands show it.
    pub fn show(&self, digits: usize) -> String {
        format!("{:.digits$} [{:.digits$}, {:.digits$}]", self.mean, self.low, self.high)
    }
}

/// The 97.5 % quantile of Student's t with `df` degrees of freedom (two-sided 95 %).
fn t_975(df: usize) -> f64 {
    const TABLE: [f64; 30] = [
        12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145,
        2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048,
        2.045, 2.042,
    ];
    TABLE.get(df.saturating_sub(1)).copied().unwrap_or(1.96)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_interval_is_the_mean_plus_minus_t_standard_errors() {
        let i = Interval::of(&[1.0, 2.0, 3.0]);
        assert_eq!((i.mean, i.n), (2.0, 3));
        // sd 1, standard error 1/√3, t(2) = 4.303.
        assert!((i.half_width() - 4.303 / 3f64.sqrt()).abs() < 1e-9);
        assert_eq!(Interval::of(&[0.5]), Interval { mean: 0.5, low: 0.5, high: 0.5, n: 1 });
        assert_eq!(Interval::of(&[]).n, 0);
        assert_eq!(Interval { mean: 0.5, low: 0.25, high: 0.75, n: 2 }.show(2), "0.50 [0.25, 0.75]");
    }

    #[test]
    fn more_seeds_narrow_the_interval() {
        let few = Interval::of(&[0.1, 0.2, 0.3]);
        let many = Interval::of(&[0.1, 0.2, 0.3, 0.1, 0.2, 0.3, 0.1, 0.2, 0.3]);
        assert!(many.half_width() < few.half_width() / 2.0);
        assert!((t_975(1000) - 1.96).abs() < 1e-9);
    }
}
