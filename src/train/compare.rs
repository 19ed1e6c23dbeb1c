//! A candidate version beside the serving one, label by label, and the promotion gate
//! built on it: no keyword may lose more than a margin of F1 without a reason given.

use serde::Serialize;
use serde_json::Value;

use super::metrics::{Report, Scores};

#[derive(Debug, Clone, Serialize)]
pub struct LabelDelta {
    pub label: String,
    pub active: Option<Scores>,
    pub candidate: Option<Scores>,
    /// Candidate F1 − active F1, when both have the label.
    pub delta_f1: Option<f64>,
}

/// The report a version is judged by: its test split when it has one (thresholds were
/// tuned on validation, so validation flatters), else its validation split.
pub fn judged_report(metrics: &Value) -> Option<Report> {
    ["test", "validation"]
        .iter()
        .find_map(|split| metrics.get(split).filter(|v| !v.is_null()).cloned())
        .and_then(|v| serde_json::from_value(v).ok())
}

/// Every label of either report, in the candidate's order, then labels only the active
/// version has.
pub fn deltas(candidate: &Report, active: Option<&Report>) -> Vec<LabelDelta> {
    let find = |report: Option<&Report>, label: &str| {
        report.and_then(|r| r.labels.iter().find(|(l, _)| l == label).map(|(_, s)| s.clone()))
    };
    let mut rows: Vec<LabelDelta> = candidate
        .labels
        .iter()
        .map(|(label, scores)| {
            let before = find(active, label);
            LabelDelta {
                label: label.clone(),
                delta_f1: before.as_ref().map(|b| scores.f1 - b.f1),
                active: before,
                candidate: Some(scores.clone()),
            }
        })
        .collect();
    for (label, scores) in active.map(|r| r.labels.as_slice()).unwrap_or_default() {
        if !candidate.labels.iter().any(|(l, _)| l == label) {
            rows.push(LabelDelta {
                label: label.clone(),
                active: Some(scores.clone()),
                candidate: None,
                delta_f1: None,
            });
        }
    }
    rows
}

/// Labels whose F1 falls by more than `margin`. Labels the active version was judged
/// on with fewer than `evidence::MIN_KEYWORD_SUPPORT` test labels are not judged: their
/// F1 is noise (a keyword with one test label moves by 1.0 on one review).
pub fn regressions(deltas: &[LabelDelta], margin: f64) -> Vec<&LabelDelta> {
    deltas
        .iter()
        .filter(|d| d.active.as_ref().is_some_and(|a| a.support >= crate::evidence::MIN_KEYWORD_SUPPORT))
        .filter(|d| match (d.delta_f1, &d.candidate) {
            (Some(delta), _) => delta < -margin,
            (None, None) => true,
            _ => false,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(labels: &[(&str, f64)]) -> Report {
        Report {
            labels: labels
                .iter()
                .map(|(l, f1)| (l.to_string(), Scores { precision: *f1, recall: *f1, f1: *f1, support: 10 }))
                .collect(),
            ..Report::default()
        }
    }

    #[test]
    fn deltas_pair_labels_and_subtract_f1() {
        let active = report(&[("배송", 0.8), ("색상", 0.6)]);
        let candidate = report(&[("배송", 0.9), ("색상", 0.5), ("핏", 0.7)]);
        let rows = deltas(&candidate, Some(&active));
        assert_eq!(rows.len(), 3);
        assert!((rows[0].delta_f1.unwrap() - 0.1).abs() < 1e-9);
        assert!((rows[1].delta_f1.unwrap() + 0.1).abs() < 1e-9);
        assert_eq!(rows[2].delta_f1, None);
    }

    #[test]
    fn the_gate_flags_only_falls_beyond_the_margin() {
        let active = report(&[("배송", 0.8), ("색상", 0.6), ("소재", 0.7)]);
        let candidate = report(&[("배송", 0.78), ("색상", 0.4)]);
        let rows = deltas(&candidate, Some(&active));
        let flagged: Vec<&str> = regressions(&rows, 0.05).iter().map(|d| d.label.as_str()).collect();
        assert_eq!(flagged, vec!["색상", "소재"], "a dropped keyword counts as a regression");
        assert!(regressions(&rows, 0.5).iter().all(|d| d.label == "소재"));
        assert!(regressions(&deltas(&candidate, None), 0.0).is_empty(), "nothing to compare with");
    }

    #[test]
    fn versions_are_judged_on_test_then_validation() {
        let test = serde_json::to_value(report(&[("배송", 0.9)])).unwrap();
        let valid = serde_json::to_value(report(&[("배송", 0.5)])).unwrap();
        let both = serde_json::json!({"test": test, "validation": valid});
        assert_eq!(judged_report(&both).unwrap().labels[0].1.f1, 0.9);
        let only_valid = serde_json::json!({"test": null, "validation": valid});
        assert_eq!(judged_report(&only_valid).unwrap().labels[0].1.f1, 0.5);
        assert!(judged_report(&serde_json::json!({})).is_none());
    }
}
