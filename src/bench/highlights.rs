//! `reviewloop bench highlights`: fast highlights against full masking on a sample of
//! a labelled file — how often the top highlighted word of each found keyword is the
//! same, and what each costs against an analysis without highlights (one review per
//! call, as the API's single requests).

use std::path::Path;
use std::time::Instant;

use anyhow::Context;

use crate::analyze::{Analysis, Analyzer, Highlights};
use crate::import::{formats, Format};

#[derive(Debug, Clone, serde::Serialize)]
pub struct HighlightFigures {
    pub reviews: usize,
    /// Found keywords whose full masking gave a highlight.
    pub keywords: usize,
    pub keywords_agreeing: usize,
    /// Reviews with a highlighted keyword, and those where every keyword's top word agrees.
    pub reviews_compared: usize,
    pub reviews_agreeing: usize,
    pub seconds_none: f64,
    pub seconds_mask: f64,
    pub seconds_fast: f64,
}

pub fn highlights(
    version: &Path,
    data: &Path,
    format: Format,
    sample: usize,
    candidates: usize,
) -> anyhow::Result<HighlightFigures> {
    let mut analyzer = Analyzer::load(version)?;
    analyzer.fast_candidates = candidates;
    let file =
        std::io::BufReader::new(std::fs::File::open(data).with_context(|| data.display().to_string())?);
    let texts: Vec<String> =
        formats::rows(format, file)?.filter_map(Result::ok).map(|r| r.text).take(sample).collect();
    let run = |how: Highlights| -> anyhow::Result<(Vec<Analysis>, f64)> {
        let started = Instant::now();
        let out = texts
            .iter()
            .map(|t| analyzer.analyze_many(std::slice::from_ref(t), &[how]).map(|mut a| a.remove(0)));
        let out = out.collect::<anyhow::Result<Vec<_>>>()?;
        Ok((out, started.elapsed().as_secs_f64()))
    };
    run(Highlights::None)?; // warm-up
    let (_, seconds_none) = run(Highlights::None)?;
    let (mask, seconds_mask) = run(Highlights::Mask)?;
    let (fast, seconds_fast) = run(Highlights::Fast)?;
    let mut figures = HighlightFigures {
        reviews: texts.len(),
        keywords: 0,
        keywords_agreeing: 0,
        reviews_compared: 0,
        reviews_agreeing: 0,
        seconds_none,
        seconds_mask,
        seconds_fast,
    };
    for (m, f) in mask.iter().zip(&fast) {
        let mut compared = false;
        let mut all_agree = true;
        for (mk, fk) in m.keywords.iter().zip(&f.keywords) {
            let Some(top) = mk.highlights.first() else { continue };
            let agrees = fk.highlights.first().is_some_and(|h| (h.start, h.end) == (top.start, top.end));
            figures.keywords += 1;
            figures.keywords_agreeing += agrees as usize;
            compared = true;
            all_agree &= agrees;
        }
        figures.reviews_compared += compared as usize;
        figures.reviews_agreeing += (compared && all_agree) as usize;
    }
    Ok(figures)
}
