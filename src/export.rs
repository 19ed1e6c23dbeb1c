//! Export of the current labels per review, as CSV or JSONL, in a form that import
//! reads back unchanged. CSV cells that a spreadsheet would run as formulas are
//! marked (`csv_cells`).

use std::collections::HashMap;
use std::io::Write;

use serde_json::json;
use sqlx::PgPool;

use crate::consensus;
use crate::consensus::StoredAnnotation;
use crate::store::reviews::{self, Review};
use crate::taxonomy::Taxonomy;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ExportFormat {
    Csv,
    Jsonl,
}

#[derive(Debug, Clone)]
pub struct ExportOptions {
    pub taxonomy: String,
    pub format: ExportFormat,
    /// Also write reviews nobody has labelled yet (with an empty label).
    pub include_unlabelled: bool,
}

const PAGE: i64 = 1000;
const CSV_HEADER: [&str; 8] =
    ["external_id", "text", "mall", "category", "split", "labels", "label_source", "labellers"];

/// Writes every review of the taxonomy (labelled ones, unless asked otherwise) and
/// returns how many rows were written. Reads the database a page at a time.
pub async fn export<W: Write>(pool: &PgPool, writer: W, options: &ExportOptions) -> anyhow::Result<u64> {
    let taxonomy = crate::store::taxonomies::load_by_name(pool, &options.taxonomy).await?;
    let usernames = crate::store::users::usernames(pool).await?;
    let mut out = RowWriter::new(writer, options.format, &taxonomy)?;
    let (mut after, mut written) = (0i64, 0u64);
    loop {
        let page = reviews::page_with_annotations(pool, taxonomy.id, after, PAGE, None).await?;
        let Some((last, _)) = page.last() else { break };
        after = last.id;
        for (review, all) in &page {
            if all.is_empty() && !options.include_unlabelled {
                continue;
            }
            out.write(review, all, &taxonomy, &usernames)?;
            written += 1;
        }
    }
    out.finish()?;
    Ok(written)
}

enum RowWriter<W: Write> {
    Csv(Box<csv::Writer<W>>),
    Jsonl(W),
}

impl<W: Write> RowWriter<W> {
    fn new(writer: W, format: ExportFormat, taxonomy: &Taxonomy) -> anyhow::Result<Self> {
        Ok(match format {
            ExportFormat::Csv => {
                let mut w = csv::Writer::from_writer(writer);
                // Then one column per keyword holding its level, like the seed's tables.
                let keywords = taxonomy.keywords.iter().map(|k| k.name.as_str());
                w.write_record(CSV_HEADER.into_iter().chain(keywords))?;
                RowWriter::Csv(Box::new(w))
            }
            ExportFormat::Jsonl => RowWriter::Jsonl(writer),
        })
    }

    fn write(
        &mut self,
        review: &Review,
        all: &[StoredAnnotation],
        taxonomy: &Taxonomy,
        usernames: &HashMap<i64, String>,
    ) -> anyhow::Result<()> {
        let current = consensus::current(all);
        let label_set = current.map(|a| taxonomy.label_set(a.labels.no_keyword, &a.labels.labels));
        let latest = consensus::latest_per_labeller(all);
        match self {
            RowWriter::Csv(w) => {
                let fixed = [
                    review.external_id.clone().unwrap_or_default(),
                    review.text.clone(),
                    review.mall.clone(),
                    review.category.clone(),
                    review.split.as_str().to_string(),
                    label_set.as_ref().map(|s| s.to_compact()).unwrap_or_default(),
                    current.map(|a| a.source.as_str()).unwrap_or("").to_string(),
                    latest.len().to_string(),
                ];
                let levels = taxonomy.keywords.iter().map(|k| {
                    let level = current.and_then(|a| a.labels.labels.iter().find(|(id, _)| *id == k.id));
                    level.map(|(_, s)| s.to_string()).unwrap_or_default()
                });
                let cells = fixed.into_iter().chain(levels);
                w.write_record(cells.map(|c| crate::csv_cells::neutralise(&c).into_owned()))?
            }
            RowWriter::Jsonl(w) => {
                let per_labeller: Vec<_> = latest
                    .iter()
                    .map(|a| {
                        json!({
                            "annotator": a.annotator_id.and_then(|id| usernames.get(&id)),
                            "source": a.source.as_str(),
                            "labels": taxonomy.label_set(a.labels.no_keyword, &a.labels.labels).to_json(),
                            "at": a.created_at,
                        })
                    })
                    .collect();
                let line = json!({
                    "external_id": review.external_id,
                    "text": review.text,
                    "mall": review.mall,
                    "category": review.category,
                    "split": review.split.as_str(),
                    "labels": label_set.as_ref().map(|s| s.to_json()),
                    "label_source": current.map(|a| a.source.as_str()),
                    "annotations": per_labeller,
                });
                serde_json::to_writer(&mut *w, &line)?;
                w.write_all(b"\n")?;
            }
        }
        Ok(())
    }

    fn finish(self) -> anyhow::Result<()> {
        match self {
            RowWriter::Csv(mut w) => w.flush()?,
            RowWriter::Jsonl(mut w) => w.flush()?,
        }
        Ok(())
    }
}
