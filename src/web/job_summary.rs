//! What a finished job did, as lines a person reads (the job page shows these, never
//! the raw result): per kind, its figures in the user's language, with links to what
//! it made. F1s come with the labels behind them, shown as "too few labels" below the
//! evidence minimum.

use serde_json::Value;

use super::i18n::Tr;
use crate::evidence::{Evidence, MIN_REPORT_SUPPORT};
use crate::store::jobs::Job;

/// One line: what, how much, and where to see it.
pub struct Line {
    pub label: &'static str,
    pub value: String,
    pub link: Option<String>,
}

fn line(label: &'static str, value: impl ToString) -> Line {
    Line { label, value: value.to_string(), link: None }
}

fn linked(label: &'static str, value: impl ToString, link: String) -> Line {
    Line { label, value: value.to_string(), link: Some(link) }
}

/// An import's bad rows (the first 50), each as line number, severity and reason in
/// the user's language, for a table under the figures.
pub fn import_problems(t: &Tr, job: &Job) -> Vec<(u64, String, String)> {
    let Some(result) = job.result.as_ref().filter(|_| job.kind == "import") else { return Vec::new() };
    let problems = result["problems"].as_array().into_iter().flatten().take(50);
    problems
        .map(|p| {
            let severity = t.term(p["severity"].as_str().unwrap_or_default());
            // Older results hold only the English sentence.
            let reason = serde_json::from_value(p["detail"].clone())
                .map(|detail| t.import_reason(&detail))
                .unwrap_or_else(|_| p["reason"].as_str().unwrap_or_default().to_string());
            (p["line"].as_u64().unwrap_or(0), severity, reason)
        })
        .collect()
}

pub fn lines(t: &Tr, job: &Job) -> Vec<Line> {
    let Some(result) = job.result.as_ref() else { return Vec::new() };
    let text = |key: &str| result[key].as_str().unwrap_or_default().to_string();
    let count = |key: &str| result[key].as_u64().unwrap_or(0);
    let taxonomy = job.payload["taxonomy"].as_str().unwrap_or_default();
    match job.kind.as_str() {
        "train" => {
            let mut out = vec![linked(
                t.version,
                text("version"),
                format!(
                    "/engineer/models?taxonomy={}&compare={}",
                    super::query_value(taxonomy),
                    super::query_value(&text("version"))
                ),
            )];
            for (label, key) in [(t.keyword_micro_f1, "keyword"), (t.sentiment_micro_f1, "sentiment")] {
                if let Some(scores) = result.get(key).filter(|v| !v.is_null()) {
                    out.push(line(label, f1(t, scores, "micro_f1")));
                }
            }
            out
        }
        "score" => vec![line(t.reviews_scored, count("total")), line(t.version, text("version"))],
        "score-chunk" => vec![line(t.reviews_scored, count("scored"))],
        "suggest" => vec![line(t.items_suggested, count("suggested"))],
        "import" => {
            vec![
                line(t.imported, count("imported")),
                line(t.duplicates, count("duplicates")),
                line(t.rejected, count("rejected")),
                line(t.labels_added, count("labels_added")),
            ]
        }
        "audit" => {
            let mut out = vec![line(t.reviews, count("reviews")), line(t.new_suspects, count("added"))];
            let skipped: Vec<String> = result["too_few"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|k| Some(format!("{} ({})", k.get(0)?.as_str()?, k.get(1)?.as_u64()?)))
                .collect();
            if !skipped.is_empty() {
                out.push(line(t.audit_skipped, skipped.join(", ")));
            }
            out
        }
        "compare" => {
            let decision = match text("decision").as_str() {
                "promoted" => t.loop_promoted.to_string(),
                _ => format!("{}: {}", t.loop_held, t.hold_reason(Some(result))),
            };
            let mut out =
                vec![line(t.loop_step_decide, decision), line(t.test_reviews, count("test_reviews"))];
            out.push(line(t.loop_new_version, f1(t, &result["candidate_report"], "micro_f1")));
            if !result["serving_report"].is_null() {
                out.push(line(t.loop_serving, f1(t, &result["serving_report"], "micro_f1")));
            }
            out
        }
        "compose" => match result["round_id"].as_i64() {
            Some(round) => vec![linked(
                t.round,
                format!("#{round} ({} {})", count("items"), t.items),
                format!("/engineer/rounds/{round}"),
            )],
            None => vec![line(t.round, t.loop_pool_empty)],
        },
        "eval" => vec![line(t.reviews, count("reviews"))],
        _ => Vec::new(),
    }
}

/// An F1 of a result, with the labels behind it when the result says how many.
fn f1(t: &Tr, scores: &Value, key: &str) -> String {
    let value = scores[key].as_f64().unwrap_or(f64::NAN);
    match scores["labels"].as_u64() {
        Some(labels) => t.evidence(Evidence::of(value, labels as usize, MIN_REPORT_SUPPORT)),
        None => format!("{value:.3}"),
    }
}
