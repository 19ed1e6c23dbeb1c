//! Learning curves of a simulation: points per round, means over seeds, how many labels
//! each strategy needed to reach random sampling's final score, CSV and an SVG chart.

use std::collections::BTreeMap;
use std::fmt::Write;

use serde::{Deserialize, Serialize};

use crate::stats::Interval;

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

/// Per strategy, per round: mean labels and the score's interval over seeds.
pub fn interval_curves(points: &[Point], metric: Metric) -> BTreeMap<String, Vec<(f64, Interval)>> {
    let mut rounds: BTreeMap<(String, usize), (Vec<f64>, Vec<f64>)> = BTreeMap::new();
    for p in points {
        let e = rounds.entry((p.strategy.clone(), p.round)).or_default();
        e.0.push(p.labels as f64);
        e.1.push(metric.of(p));
    }
    let mut curves: BTreeMap<String, Vec<(f64, Interval)>> = BTreeMap::new();
    for ((strategy, _), (labels, scores)) in rounds {
        let labels = labels.iter().sum::<f64>() / labels.len() as f64;
        curves.entry(strategy).or_default().push((labels, Interval::of(&scores)));
    }
    curves
}

/// Per strategy, per round: (mean labels, mean score) over seeds.
pub fn mean_curves(points: &[Point], metric: Metric) -> BTreeMap<String, Vec<(f64, f64)>> {
    interval_curves(points, metric)
        .into_iter()
        .map(|(s, curve)| (s, curve.into_iter().map(|(l, i)| (l, i.mean)).collect()))
        .collect()
}

/// One seed's curve of one strategy: (labels, score) by round.
fn seed_curve(points: &[Point], strategy: &str, seed: u64, metric: Metric) -> Vec<(f64, f64)> {
    let mut curve: Vec<(usize, f64, f64)> = points
        .iter()
        .filter(|p| p.strategy == strategy && p.seed == seed)
        .map(|p| (p.round, p.labels as f64, metric.of(p)))
        .collect();
    curve.sort_by_key(|c| c.0);
    curve.into_iter().map(|(_, l, s)| (l, s)).collect()
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

/// One metric of one strategy, against random sampling's final mean score.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MetricSummary {
    pub metric: Metric,
    /// The last round's score over seeds.
    pub final_score: Interval,
    /// Labels the mean curve needs to reach random's final mean (none: never).
    pub labels_to_match_random: Option<f64>,
    /// That, as a share of the labels random sampling used.
    pub share_of_random_labels: Option<f64>,
    /// The labels each seed's own curve needs, over the seeds that reach it (`n` of them).
    pub per_seed: Interval,
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
    /// Seeds run.
    #[serde(default)]
    pub seeds: usize,
    /// Every metric, with intervals over seeds.
    #[serde(default)]
    pub metrics: Vec<MetricSummary>,
}

/// Each strategy against random sampling's final score, on every metric.
pub fn summarise(points: &[Point]) -> Vec<StrategySummary> {
    let seeds_of = |strategy: &str| {
        let mut seeds: Vec<u64> = points.iter().filter(|p| p.strategy == strategy).map(|p| p.seed).collect();
        seeds.sort_unstable();
        seeds.dedup();
        seeds
    };
    let by_metric: Vec<_> = Metric::ALL.iter().map(|&m| (m, interval_curves(points, m))).collect();
    let strategies: Vec<String> = by_metric[0].1.keys().cloned().collect();
    strategies
        .iter()
        .map(|strategy| {
            let seeds = seeds_of(strategy);
            let metrics: Vec<MetricSummary> = by_metric
                .iter()
                .map(|(metric, curves)| {
                    let curve: Vec<(f64, f64)> = curves[strategy].iter().map(|(l, i)| (*l, i.mean)).collect();
                    let random_final = curves.get("random").and_then(|c| c.last()).map(|(l, i)| (*l, i.mean));
                    let needed = random_final.and_then(|(_, target)| labels_to_reach(&curve, target));
                    let per_seed: Vec<f64> = random_final
                        .map(|(_, target)| {
                            seeds
                                .iter()
                                .filter_map(|&seed| {
                                    labels_to_reach(&seed_curve(points, strategy, seed, *metric), target)
                                })
                                .collect()
                        })
                        .unwrap_or_default();
                    MetricSummary {
                        metric: *metric,
                        final_score: curves[strategy].last().map(|c| c.1).unwrap_or_default(),
                        labels_to_match_random: needed,
                        share_of_random_labels: needed.zip(random_final).map(|(n, (l, _))| n / l),
                        per_seed: Interval::of(&per_seed),
                    }
                })
                .collect();
            let curve = &by_metric[1].1[strategy];
            let macro_ = &metrics[1];
            StrategySummary {
                strategy: strategy.clone(),
                final_labels: curve.last().map(|c| c.0).unwrap_or_default(),
                final_keyword_macro_f1: macro_.final_score.mean,
                mean_keyword_macro_f1: curve.iter().map(|p| p.1.mean).sum::<f64>()
                    / curve.len().max(1) as f64,
                labels_to_match_random: macro_.labels_to_match_random,
                share_of_random_labels: macro_.share_of_random_labels,
                seeds: seeds.len(),
                metrics,
            }
        })
        .collect()
}

/// On one metric: random's final score and labels, and the strategy that reached that
/// score with the fewest labels (none: no strategy reached it).
#[derive(Debug, Clone, Serialize)]
pub struct Best {
    pub metric: Metric,
    pub target: f64,
    pub random_labels: f64,
    pub winner: Option<(String, f64, f64)>,
}

/// What a run says in one sentence: per metric, which strategy saved how many labels.
pub fn best_against_random(summary: &[StrategySummary]) -> Vec<Best> {
    let Some(random) = summary.iter().find(|s| s.strategy == "random") else { return Vec::new() };
    Metric::ALL
        .iter()
        .enumerate()
        .filter_map(|(i, &metric)| {
            let target = random.metrics.get(i)?.final_score.mean;
            let winner = summary
                .iter()
                .filter(|s| s.strategy != "random")
                .filter_map(|s| {
                    let m = s.metrics.get(i)?;
                    Some((s.strategy.clone(), m.labels_to_match_random?, m.share_of_random_labels?))
                })
                .min_by(|a, b| a.1.total_cmp(&b.1));
            Some(Best { metric, target, random_labels: random.final_labels, winner })
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

/// A line chart of the mean curves (labels → score) with each one's 95 % band over
/// seeds, random first in grey.
pub fn svg(points: &[Point], metric: Metric) -> String {
    let bands = interval_curves(points, metric);
    let curves = mean_curves(points, metric);
    // The right margin holds the legend: strategy entries such as `keyword-quota=0.5+…`.
    let (w, h, left, bottom, top, right) = (800.0, 360.0, 56.0, 40.0, 28.0, 300.0);
    let max_labels = curves.values().flatten().map(|p| p.0).fold(1.0, f64::max);
    let max_score = bands.values().flatten().map(|p| p.1.high).fold(0.1, f64::max).min(1.0);
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
        let band = &bands[strategy.as_str()];
        let edge = band.iter().map(|(l, i)| (*l, i.high)).chain(band.iter().rev().map(|(l, i)| (*l, i.low)));
        let outline: Vec<String> =
            edge.map(|(l, s)| format!("{:.1},{:.1}", x(l), y(s.clamp(0.0, max_score)))).collect();
        let _ = write!(
            out,
            "<polygon class=\"band\" fill=\"{colour}\" fill-opacity=\"0.15\" stroke=\"none\" points=\"{}\"/>",
            outline.join(" ")
        );
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
    fn each_metric_has_its_interval_over_seeds_and_its_labels_per_seed() {
        let mut p = points();
        // Mixed, seed 2 is better at round 0 (0.3): it reaches random's final 0.3 at once.
        p.iter_mut().filter(|x| x.strategy == "mixed" && x.seed == 2 && x.round == 0).for_each(|x| {
            x.keyword_macro_f1 = 0.3;
        });
        let summary = summarise(&p);
        let mixed = summary.iter().find(|s| s.strategy == "mixed").unwrap();
        assert_eq!((mixed.seeds, mixed.metrics.len()), (2, 3));
        let macro_ = &mixed.metrics[1];
        assert_eq!(macro_.metric, Metric::KeywordMacro);
        assert_eq!(macro_.final_score.n, 2);
        // Seed 1 reaches 0.3 at 150 labels, seed 2 at 100.
        assert_eq!(macro_.per_seed.n, 2);
        assert!((macro_.per_seed.mean - 125.0).abs() < 1e-9);
        assert!(macro_.per_seed.low < 125.0 && macro_.per_seed.high > 125.0);
    }

    #[test]
    fn the_run_names_the_strategy_that_saved_the_most_labels_per_metric() {
        let best = best_against_random(&summarise(&points()));
        assert_eq!(best.len(), 3);
        let macro_ = &best[1];
        assert_eq!(macro_.metric, Metric::KeywordMacro);
        assert!((macro_.target - 0.3).abs() < 1e-9 && macro_.random_labels == 300.0);
        let (name, labels, share) = macro_.winner.clone().unwrap();
        assert_eq!(name, "mixed");
        assert!((labels - 150.0).abs() < 1e-6 && (share - 0.5).abs() < 1e-6);
        let only_random: Vec<Point> = points().into_iter().filter(|p| p.strategy == "random").collect();
        assert!(best_against_random(&summarise(&only_random)).iter().all(|b| b.winner.is_none()));
    }

    #[test]
    fn csv_and_svg_carry_every_strategy() {
        let p = points();
        assert_eq!(to_csv(&p).lines().count(), 13);
        let chart = svg(&p, Metric::KeywordMacro);
        assert!(chart.starts_with("<svg") && chart.ends_with("</svg>"));
        assert_eq!(chart.matches("<polyline").count(), 2);
        assert_eq!(chart.matches("class=\"band\"").count(), 2, "an interval band per strategy");
        assert!(chart.contains(">random<") && chart.contains(">mixed<"));
    }
}
