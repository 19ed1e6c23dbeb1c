//! `reviewloop eval`: a version's per-keyword report on labelled data that is not
//! imported — a file in any import format — or on the label store's test split.

use std::io::BufRead;

use serde::Serialize;

use super::data::{self, LabelledText};
use super::metrics::Report;
use super::pipeline::{keyword_report, sentiment_report};
use crate::analyze::Analyzer;
use crate::import::formats::{self, Format};
use crate::labels::LabelSet;
use crate::model::inputs;
use crate::model::outputs::{argmax, probabilities};
use crate::split::Split;

#[derive(Debug, Clone, Serialize)]
pub struct Evaluation {
    pub reviews: usize,
    /// Rows left out: unreadable, unlabelled, or with keywords or levels the version
    /// does not know.
    pub skipped: usize,
    pub keyword: Option<Report>,
    pub sentiment: Option<Report>,
    /// The whole chain, as the NIKL 2022 task scores it: (keyword, level) pairs found
    /// (keywords above their thresholds, each with its most likely level) against the
    /// labelled ones.
    #[serde(default)]
    pub pipeline: Option<PairScores>,
}

/// Micro precision, recall and F1 over (keyword, level) pairs.
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize)]
pub struct PairScores {
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    pub found: usize,
    pub labelled: usize,
    pub correct: usize,
}

impl PairScores {
    pub fn new(found: usize, labelled: usize, correct: usize) -> Self {
        let ratio = |a: usize, b: usize| if b == 0 { 0.0 } else { a as f64 / b as f64 };
        let (precision, recall) = (ratio(correct, found), ratio(correct, labelled));
        let f1 = if precision + recall > 0.0 { 2.0 * precision * recall / (precision + recall) } else { 0.0 };
        PairScores { precision, recall, f1, found, labelled, correct }
    }
}

/// Labelled rows of a file, checked against the version's keywords and scale.
pub fn read_file<R: BufRead + Send>(
    analyzer: &Analyzer,
    format: Format,
    reader: R,
) -> anyhow::Result<(Vec<LabelledText>, usize)> {
    let labels = &analyzer.keyword.labels;
    let (mut items, mut skipped) = (Vec::new(), 0);
    for row in formats::rows(format, reader)? {
        let Ok(row) = row else {
            skipped += 1;
            continue;
        };
        let resolved = row
            .labels
            .as_ref()
            .and_then(|set| resolve(set, &labels.keywords, labels.scale_min, labels.scale_max));
        match resolved {
            Some(found) if !row.text.trim().is_empty() => items.push(LabelledText {
                text: crate::text::normalize(&row.text),
                split: Split::Test,
                labels: found,
                stored: None,
            }),
            _ => skipped += 1,
        }
    }
    Ok((items, skipped))
}

fn resolve(set: &LabelSet, keywords: &[String], min: i16, max: i16) -> Option<Vec<(usize, i16)>> {
    set.labels()
        .iter()
        .map(|l| {
            let k = keywords.iter().position(|k| *k == l.keyword)?;
            (min..=max).contains(&l.sentiment).then_some((k, l.sentiment))
        })
        .collect()
}

pub fn evaluate(analyzer: &Analyzer, items: &[LabelledText], skipped: usize) -> anyhow::Result<Evaluation> {
    let refs: Vec<&LabelledText> = items.iter().collect();
    let kw = &analyzer.keyword;
    let st = &analyzer.sentiment;
    let keyword_data = data::keyword_dataset(&refs, &kw.tokenizer, kw.labels.keywords.len());
    let taxonomy = crate::taxonomy::Taxonomy {
        id: 0,
        name: kw.labels.taxonomy.clone(),
        scale_min: st.labels.scale_min,
        scale_max: st.labels.scale_max,
        guideline_revision: 0,
        keywords: kw
            .labels
            .keywords
            .iter()
            .enumerate()
            .map(|(i, name)| crate::taxonomy::Keyword {
                id: i as i64,
                name: name.clone(),
                position: i as i32,
                guideline: String::new(),
            })
            .collect(),
    };
    let input = st.labels.sentiment_input.unwrap_or(inputs::SentimentInput::Pair);
    let sentiment_data = data::sentiment_dataset(&refs, &st.tokenizer, &taxonomy, input);
    let levels: Vec<String> = taxonomy.levels().map(|l| l.to_string()).collect();
    let pipeline =
        (!items.is_empty()).then(|| pipeline_scores(analyzer, items, &keyword_data.rows)).transpose()?;
    Ok(Evaluation {
        pipeline,
        reviews: items.len(),
        skipped,
        keyword: keyword_report(
            &kw.classifier,
            &keyword_data,
            &kw.labels.thresholds,
            &kw.labels.keywords,
            32,
        )?,
        sentiment: sentiment_report(&st.classifier, &sentiment_data, &levels, 32)?,
    })
}

/// Runs the chain on `items` (whose keyword model rows are `rows`) and scores the
/// (keyword, level) pairs it finds.
fn pipeline_scores(
    analyzer: &Analyzer,
    items: &[LabelledText],
    rows: &[Vec<u32>],
) -> anyhow::Result<PairScores> {
    let (kw, st) = (&analyzer.keyword, &analyzer.sentiment);
    let input = st.labels.sentiment_input.unwrap_or(inputs::SentimentInput::Pair);
    let probs = probabilities(&kw.classifier, rows, true, 32)?;
    let mut found = Vec::new();
    for (i, p) in probs.iter().enumerate() {
        found.extend(
            p.iter().zip(&kw.labels.thresholds).enumerate().filter(|(_, (p, t))| p >= t).map(|(k, _)| (i, k)),
        );
    }
    let pairs: Vec<Vec<u32>> = found
        .iter()
        .map(|&(i, k)| inputs::encode_pair(&st.tokenizer, input, &items[i].text, &kw.labels.keywords[k]))
        .collect();
    let levels = probabilities(&st.classifier, &pairs, false, 32)?;
    let correct = found
        .iter()
        .zip(&levels)
        .filter(|((i, k), dist)| {
            let level = st.labels.scale_min + argmax(dist) as i16;
            items[*i].labels.contains(&(*k, level))
        })
        .count();
    let labelled = items.iter().map(|i| i.labels.len()).sum();
    Ok(PairScores::new(found.len(), labelled, correct))
}
