//! The seed's classification report: precision, recall, F1 and support per label, with
//! micro, macro and samples averages; and per-keyword decision thresholds.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Scores {
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    pub support: usize,
}

impl Scores {
    fn from_counts(tp: usize, fp: usize, fn_: usize) -> Scores {
        let ratio = |a: usize, b: usize| if b == 0 { 0.0 } else { a as f64 / b as f64 };
        let precision = ratio(tp, tp + fp);
        let recall = ratio(tp, tp + fn_);
        let f1 =
            if precision + recall == 0.0 { 0.0 } else { 2.0 * precision * recall / (precision + recall) };
        Scores { precision, recall, f1, support: tp + fn_ }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub labels: Vec<(String, Scores)>,
    pub micro: Scores,
    pub macro_avg: Scores,
    /// Per-example F1 averaged over examples (multi-label only; equals micro otherwise).
    pub samples: Scores,
}

/// A report for multi-label predictions: `truth[i][k]` and `predicted[i][k]`.
pub fn multi_label(names: &[String], truth: &[Vec<bool>], predicted: &[Vec<bool>]) -> Report {
    let k = names.len();
    let mut counts = vec![(0usize, 0usize, 0usize); k];
    let mut samples = (0.0, 0.0, 0.0);
    for (t, p) in truth.iter().zip(predicted) {
        let (mut tp, mut fp, mut fn_) = (0, 0, 0);
        for j in 0..k {
            match (t[j], p[j]) {
                (true, true) => tp += 1,
                (false, true) => fp += 1,
                (true, false) => fn_ += 1,
                _ => {}
            }
        }
        for (j, c) in counts.iter_mut().enumerate() {
            c.0 += (t[j] && p[j]) as usize;
            c.1 += (!t[j] && p[j]) as usize;
            c.2 += (t[j] && !p[j]) as usize;
        }
        // An example with nothing true and nothing predicted is perfectly right.
        let s = if tp + fp + fn_ == 0 {
            Scores { precision: 1.0, recall: 1.0, f1: 1.0, support: 0 }
        } else {
            Scores::from_counts(tp, fp, fn_)
        };
        samples = (samples.0 + s.precision, samples.1 + s.recall, samples.2 + s.f1);
    }
    let n = truth.len().max(1) as f64;
    let labels: Vec<(String, Scores)> = names
        .iter()
        .cloned()
        .zip(counts.iter().map(|&(tp, fp, fn_)| Scores::from_counts(tp, fp, fn_)))
        .collect();
    let (tp, fp, fn_) = counts.iter().fold((0, 0, 0), |a, c| (a.0 + c.0, a.1 + c.1, a.2 + c.2));
    let support = tp + fn_;
    Report {
        micro: Scores::from_counts(tp, fp, fn_),
        macro_avg: average(&labels, support),
        samples: Scores { precision: samples.0 / n, recall: samples.1 / n, f1: samples.2 / n, support },
        labels,
    }
}

/// A report for single-label predictions (class indices).
pub fn single_label(names: &[String], truth: &[usize], predicted: &[usize]) -> Report {
    let as_sets = |v: &[usize]| -> Vec<Vec<bool>> {
        v.iter().map(|&c| (0..names.len()).map(|j| j == c).collect()).collect()
    };
    let mut report = multi_label(names, &as_sets(truth), &as_sets(predicted));
    report.samples = report.micro.clone();
    report
}

/// Macro average over labels that occur (support > 0), as the seed's tables do.
fn average(labels: &[(String, Scores)], support: usize) -> Scores {
    let present: Vec<&Scores> = labels.iter().map(|l| &l.1).filter(|s| s.support > 0).collect();
    let n = present.len().max(1) as f64;
    Scores {
        precision: present.iter().map(|s| s.precision).sum::<f64>() / n,
        recall: present.iter().map(|s| s.recall).sum::<f64>() / n,
        f1: present.iter().map(|s| s.f1).sum::<f64>() / n,
        support,
    }
}

/// The threshold in 0.05…0.95 that maximises this keyword's F1 on validation data;
/// 0.5 when the keyword never occurs there.
pub fn best_threshold(probabilities: &[f32], truth: &[bool]) -> f32 {
    if !truth.iter().any(|&t| t) {
        return 0.5;
    }
    let mut best = (0.5f32, -1.0f64);
    for step in 1..20 {
        let threshold = step as f32 * 0.05;
        let (mut tp, mut fp, mut fn_) = (0, 0, 0);
        for (&p, &t) in probabilities.iter().zip(truth) {
            match (t, p >= threshold) {
                (true, true) => tp += 1,
                (false, true) => fp += 1,
                (true, false) => fn_ += 1,
                _ => {}
            }
        }
        let f1 = Scores::from_counts(tp, fp, fn_).f1;
        // Ties go to the threshold nearest 0.5.
        if f1 > best.1 + 1e-12
            || ((f1 - best.1).abs() < 1e-12 && (threshold - 0.5).abs() < (best.0 - 0.5).abs())
        {
            best = (threshold, f1);
        }
    }
    best.0
}

/// One threshold per keyword (columns of `probabilities`), each its best on this data.
pub fn best_thresholds(probabilities: &[Vec<f32>], truth: &[Vec<bool>], keywords: usize) -> Vec<f32> {
    (0..keywords)
        .map(|j| {
            let p: Vec<f32> = probabilities.iter().map(|r| r[j]).collect();
            let t: Vec<bool> = truth.iter().map(|r| r[j]).collect();
            best_threshold(&p, &t)
        })
        .collect()
}

/// Rows of probabilities cut at per-keyword thresholds.
pub fn decide(probabilities: &[Vec<f32>], thresholds: &[f32]) -> Vec<Vec<bool>> {
    probabilities.iter().map(|p| p.iter().zip(thresholds).map(|(x, t)| x >= t).collect()).collect()
}

/// A text table like the seed's.
pub fn table(report: &Report) -> String {
    let mut out =
        format!("{:<24} {:>9} {:>9} {:>9} {:>8}\n", "label", "precision", "recall", "f1", "support");
    let row = |name: &str, s: &Scores| {
        format!("{:<24} {:>9.3} {:>9.3} {:>9.3} {:>8}\n", name, s.precision, s.recall, s.f1, s.support)
    };
    for (name, s) in &report.labels {
        out.push_str(&row(name, s));
    }
    out.push_str(&row("micro avg", &report.micro));
    out.push_str(&row("macro avg", &report.macro_avg));
    out.push_str(&row("samples avg", &report.samples));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(n: &[&str]) -> Vec<String> {
        n.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn the_report_matches_hand_counts() {
        // 배송: tp 1, fn 1; 디자인: tp 1, fp 1.
        let truth = vec![vec![true, false], vec![true, true], vec![false, false]];
        let predicted = vec![vec![false, true], vec![true, true], vec![false, false]];
        let r = multi_label(&names(&["배송", "디자인"]), &truth, &predicted);
        assert_eq!(r.labels[0].1, Scores { precision: 1.0, recall: 0.5, f1: 2.0 / 3.0, support: 2 });
        assert_eq!(r.labels[1].1, Scores { precision: 0.5, recall: 1.0, f1: 2.0 / 3.0, support: 1 });
        assert!((r.micro.f1 - 2.0 / 3.0).abs() < 1e-12);
        assert!((r.macro_avg.f1 - 2.0 / 3.0).abs() < 1e-12);
        // samples: example 1 → 0, example 2 → 1, example 3 (empty, empty) → 1.
        assert!((r.samples.f1 - 2.0 / 3.0).abs() < 1e-12);
        assert!(table(&r).contains("macro avg"));
    }

    #[test]
    fn single_label_reports_per_class() {
        let r = single_label(&names(&["-1", "0", "1"]), &[2, 2, 0, 1], &[2, 0, 0, 1]);
        assert_eq!(r.labels[2].1.support, 2);
        assert!((r.micro.f1 - 0.75).abs() < 1e-12);
    }

    #[test]
    fn thresholds_follow_the_data() {
        let probabilities = [0.9, 0.35, 0.3, 0.1, 0.2];
        let truth = [true, true, true, false, false];
        let t = best_threshold(&probabilities, &truth);
        assert!(t > 0.2 && t <= 0.3, "{t}");
        assert_eq!(best_threshold(&[0.9, 0.1], &[false, false]), 0.5);
    }
}
