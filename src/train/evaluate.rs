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
use crate::store::reviews::Split;

#[derive(Debug, Clone, Serialize)]
pub struct Evaluation {
    pub reviews: usize,
    /// Rows left out: unreadable, unlabelled, or with keywords or levels the version
    /// does not know.
    pub skipped: usize,
    pub keyword: Option<Report>,
    pub sentiment: Option<Report>,
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
    let input = st.labels.sentiment_input.unwrap_or(data::SentimentInput::Pair);
    let sentiment_data = data::sentiment_dataset(&refs, &st.tokenizer, &taxonomy, input);
    let levels: Vec<String> = taxonomy.levels().map(|l| l.to_string()).collect();
    Ok(Evaluation {
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
