//! Learning curves of a simulation: points per round, means over seeds, how many labels
//! each strategy needed to reach random sampling's final score, CSV and an SVG chart.

use std::collections::BTreeMap;
use std::fmt::Write;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Point {
    pub strategy: String,
    pub seed: u64,
    pub round: usize,
    /// Labelled reviews the model of this round was trained on.
    pub labels: usize,
    pub keyword_micro_f1: f64,
    pub keyword_macro_f1: f64,
    pub sentiment_macro_f1: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Metric {
    KeywordMicro,
    KeywordMacro,
    SentimentMacro,
}

impl Metric {
    pub const ALL: [Metric; 3] = [Metric::KeywordMicro, Metric::KeywordMacro, Metric::SentimentMacro];

    pub fn of(self, p: &Point) -> f64 {
        match self {
            Metric::KeywordMicro => p.keyword_micro_f1,
            Metric::KeywordMacro => p.keyword_macro_f1,
            Metric::SentimentMacro => p.sentiment_macro_f1,
        }
    }

    pub fn title(self) -> &'static str {
        match self {
            Metric::KeywordMicro => "keyword micro F1",
            Metric::KeywordMacro => "keyword macro F1",
            Metric::SentimentMacro => "sentiment macro F1",
        }
    }
}

/// Per strategy, per round: (mean labels, mean score) over seeds.
pub fn mean_curves(points: &[Point], metric: Metric) -> BTreeMap<String, Vec<(f64, f64)>> {
    let mut sums: BTreeMap<(String, usize), (f64, f64, usize)> = BTreeMap::new();
    for p in points {
        let e = sums.entry((p.strategy.clone(), p.round)).or_default();
        e.0 += p.labels as f64;
        e.1 += metric.of(p);
        e.2 += 1;
    }
    let mut curves: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
    for ((strategy, _), (labels, score, n)) in sums {
        curves.entry(strategy).or_default().push((labels / n as f64, score / n as f64));
    }
    curves
}

/// Labels at which `curve` first reaches `target`, interpolated linearly between rounds.
pub fn labels_to_reach(curve: &[(f64, f64)], target: f64) -> Option<f64> {
    let first = curve.first()?;
    if first.1 >= target {
        return Some(first.0);
    }
    curve.windows(2).find(|w| w[1].1 >= target).map(|w| {
        let ((l0, s0), (l1, s1)) = (w[0], w[1]);
        l0 + (l1 - l0) * (target - s0) / (s1 - s0)
    })
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StrategySummary {
    pub strategy: String,
    pub final_labels: f64,
    pub final_keyword_macro_f1: f64,
    /// Mean over rounds (the area under the curve, per round): steadier than one end
    /// point when seeds scatter.
    #[serde(default)]
    pub mean_keyword_macro_f1: f64,
    /// Labels needed to reach random sampling's final keyword macro F1 (none: never).
    pub labels_to_match_random: Option<f64>,
    /// That, as a share of the labels random sampling used.
    pub share_of_random_labels: Option<f64>,
}

/// Each strategy against random sampling's final keyword macro F1.
pub fn summarise(points: &[Point]) -> Vec<StrategySummary> {
    let curves = mean_curves(points, Metric::KeywordMacro);
    let random_final = curves.get("random").and_then(|c| c.last().copied());
    curves
        .iter()
        .map(|(strategy, curve)| {
            let last = curve.last().copied().unwrap_or_default();
            let needed = random_final.and_then(|(_, target)| labels_to_reach(curve, target));
            StrategySummary {
                strategy: strategy.clone(),
                final_labels: last.0,
                final_keyword_macro_f1: last.1,
                mean_keyword_macro_f1: curve.iter().map(|p| p.1).sum::<f64>() / curve.len().max(1) as f64,
                labels_to_match_random: needed,
                share_of_random_labels: needed.zip(random_final).map(|(n, (l, _))| n / l),
            }
        })
        .collect()
}

pub fn to_csv(points: &[Point]) -> String {
    let mut out = csv::Writer::from_writer(Vec::new());
    let header =
        ["strategy", "seed", "round", "labels", "keyword_micro_f1", "keyword_macro_f1", "sentiment_macro_f1"];
    // Writing into a Vec cannot fail.
    let _ = out.write_record(header);
    for p in points {
        let f1 = |v: f64| format!("{v:.4}");
        let row = [
            p.strategy.clone(),
            p.seed.to_string(),
            p.round.to_string(),
            p.labels.to_string(),
            f1(p.keyword_micro_f1),
            f1(p.keyword_macro_f1),
            f1(p.sentiment_macro_f1),
        ];
        let _ = out.write_record(row);
    }
    String::from_utf8(out.into_inner().unwrap_or_default()).unwrap_or_default()
}

const COLOURS: [&str; 7] = ["#6e7781", "#0969da", "#cf222e", "#1a7f37", "#8250df", "#bf8700", "#d4a72c"];

/// A line chart of the mean curves (labels → score), random first in grey.
pub fn svg(points: &[Point], metric: Metric) -> String {
    let curves = mean_curves(points, metric);
    let (w, h, left, bottom, top, right) = (640.0, 360.0, 56.0, 40.0, 28.0, 150.0);
    let max_labels = curves.values().flatten().map(|p| p.0).fold(1.0, f64::max);
    let max_score = curves.values().flatten().map(|p| p.1).fold(0.1, f64::max).min(1.0);
    let x = |l: f64| left + (w - left - right) * l / max_labels;
    let y = |s: f64| h - bottom - (h - bottom - top) * s / max_score;
    let mut out = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {w} {h}\" role=\"img\" class=\"curve\">\
         <title>{}</title><text x=\"{left}\" y=\"18\" font-size=\"14\">{}</text>",
        metric.title(),
        metric.title()
    );
    let _ = write!(
        out,
        "<line x1=\"{left}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"#888\"/>",
        y(0.0),
        x(max_labels),
        y(0.0)
    );
    let _ = write!(out, "<line x1=\"{left}\" y1=\"{}\" x2=\"{left}\" y2=\"{top}\" stroke=\"#888\"/>", y(0.0));
    for i in 0..=4 {
        let s = max_score * i as f64 / 4.0;
        let _ = write!(
            out,
            "<text x=\"{}\" y=\"{:.1}\" font-size=\"11\" text-anchor=\"end\">{s:.2}</text>",
            left - 6.0,
            y(s) + 4.0
        );
        let l = max_labels * i as f64 / 4.0;
        let _ = write!(
            out,
            "<text x=\"{:.1}\" y=\"{}\" font-size=\"11\" text-anchor=\"middle\">{l:.0}</text>",
            x(l),
            h - bottom + 16.0
        );
    }
    let _ = write!(
        out,
        "<text x=\"{:.1}\" y=\"{}\" font-size=\"11\" text-anchor=\"middle\">labels</text>",
        x(max_labels / 2.0),
        h - 6.0
    );
    let ordered =
        curves.iter().filter(|(s, _)| *s == "random").chain(curves.iter().filter(|(s, _)| *s != "random"));
    for (i, (strategy, curve)) in ordered.enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        let path: Vec<String> = curve.iter().map(|&(l, s)| format!("{:.1},{:.1}", x(l), y(s))).collect();
        let _ = write!(
            out,
            "<polyline fill=\"none\" stroke=\"{colour}\" stroke-width=\"2\" points=\"{}\"/>",
            path.join(" ")
        );
        let ly = top + 18.0 * i as f64;
        let _ = write!(
            out,
            "<line x1=\"{}\" y1=\"{ly}\" x2=\"{}\" y2=\"{ly}\" stroke=\"{colour}\" stroke-width=\"2\"/>\
             <text x=\"{}\" y=\"{:.1}\" font-size=\"12\">{}</text>",
            w - right + 10.0,
            w - right + 30.0,
            w - right + 36.0,
            ly + 4.0,
            escape(strategy)
        );
    }
    out.push_str("</svg>");
    out
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(strategy: &str, seed: u64, round: usize, labels: usize, macro_f1: f64) -> Point {
        Point {
            strategy: strategy.into(),
            seed,
            round,
            labels,
            keyword_micro_f1: macro_f1,
            keyword_macro_f1: macro_f1,
            sentiment_macro_f1: macro_f1 / 2.0,
        }
    }

    fn points() -> Vec<Point> {
        let mut p = Vec::new();
        for seed in [1, 2] {
            for (round, labels) in [(0, 100), (1, 200), (2, 300)] {
                p.push(point("random", seed, round, labels, 0.1 * (round as f64 + 1.0)));
                p.push(point("mixed", seed, round, labels, 0.2 * (round as f64 + 1.0)));
            }
        }
        p
    }

    #[test]
    fn curves_average_over_seeds() {
        let mut p = points();
        p[0].keyword_macro_f1 = 0.3; // random, seed 1, round 0: mean with seed 2's 0.1 is 0.2
        let curves = mean_curves(&p, Metric::KeywordMacro);
        assert!((curves["random"][0].1 - 0.2).abs() < 1e-9);
        assert_eq!(curves["mixed"].len(), 3);
    }

    #[test]
    fn labels_to_reach_interpolates_between_rounds() {
        let curve = [(100.0, 0.2), (200.0, 0.4), (300.0, 0.6)];
        assert_eq!(labels_to_reach(&curve, 0.3), Some(150.0));
        assert_eq!(labels_to_reach(&curve, 0.1), Some(100.0));
        assert_eq!(labels_to_reach(&curve, 0.7), None);
    }

    #[test]
    fn the_summary_says_how_many_labels_match_random() {
        let summary = summarise(&points());
        let mixed = summary.iter().find(|s| s.strategy == "mixed").unwrap();
        // Random ends at 0.3 after 300 labels; mixed reaches 0.3 halfway from 100 to 200.
        assert!((mixed.labels_to_match_random.unwrap() - 150.0).abs() < 1e-6);
        assert!((mixed.share_of_random_labels.unwrap() - 0.5).abs() < 1e-6);
        let random = summary.iter().find(|s| s.strategy == "random").unwrap();
        assert_eq!(random.share_of_random_labels, Some(1.0));
        assert!((random.mean_keyword_macro_f1 - 0.2).abs() < 1e-9, "mean of 0.1, 0.2, 0.3");
    }

    #[test]
    fn csv_and_svg_carry_every_strategy() {
        let p = points();
        assert_eq!(to_csv(&p).lines().count(), 13);
        let chart = svg(&p, Metric::KeywordMacro);
        assert!(chart.starts_with("<svg") && chart.ends_with("</svg>"));
        assert_eq!(chart.matches("<polyline").count(), 2);
        assert!(chart.contains(">random<") && chart.contains(">mixed<"));
    }
}
