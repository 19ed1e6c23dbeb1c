//! Import of reviews and labels: streaming, idempotent and forgiving. Rows are read
//! one at a time and written in batches; a bad row is reported with its line number
//! while the good rows land.

pub mod formats;
pub mod reason;

use std::collections::HashSet;
use std::io::BufRead;

use sqlx::PgPool;

pub use formats::Format;
use formats::{RawRow, RowProblem};

use crate::consensus::LabelSource;
use crate::store::annotations;
use crate::store::reviews::{self, NewReview};
use crate::taxonomy::{ResolvedLabels, Taxonomy};
use crate::text;

#[derive(Debug, Clone)]
pub struct ImportOptions {
    pub taxonomy: String,
    pub format: Format,
    pub label_source: LabelSource,
    /// Used when a row names no mall / category.
    pub default_mall: String,
    pub default_category: String,
    /// Shown in the batch list and stored as each review's `source`.
    pub filename: String,
    pub created_by: Option<i64>,
    pub max_text_chars: usize,
    pub batch_size: usize,
}

impl ImportOptions {
    pub fn new(taxonomy: &str, format: Format, filename: &str) -> Self {
        ImportOptions {
            taxonomy: taxonomy.to_string(),
            format,
            label_source: LabelSource::Human,
            default_mall: String::new(),
            default_category: String::new(),
            filename: filename.to_string(),
            created_by: None,
            max_text_chars: crate::config::MAX_TEXT_CHARS,
            batch_size: 1000,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Problem {
    pub line: u64,
    pub severity: &'static str,
    /// The sentence, in English (the command line's, and older rows').
    pub reason: String,
    /// The same as data, for the pages to say in their language.
    pub detail: reason::Reason,
}

impl Problem {
    fn new(line: u64, severity: &'static str, detail: reason::Reason) -> Problem {
        Problem { line, severity, reason: detail.to_string(), detail }
    }
}

/// How many problems a summary keeps in memory; all of them are in `import_problems`.
const PROBLEMS_KEPT: usize = 1000;

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ImportSummary {
    pub batch_id: i64,
    pub imported: u64,
    pub duplicates: u64,
    pub updated: u64,
    pub rejected: u64,
    pub labels_added: u64,
    pub warnings: u64,
    pub problems: Vec<Problem>,
}

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error(transparent)]
    File(#[from] formats::FileError),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

/// A row that passed every check, ready for the database.
struct ValidRow {
    review: NewReview,
    labels: Option<ResolvedLabels>,
}

pub async fn import<R: BufRead + Send>(
    pool: &PgPool,
    reader: R,
    options: &ImportOptions,
) -> Result<ImportSummary, ImportError> {
    import_reporting(pool, reader, options, &mut |_| {}).await
}

/// [`import`], calling `progress` with the summary so far after each batch written.
pub async fn import_reporting<R: BufRead + Send>(
    pool: &PgPool,
    reader: R,
    options: &ImportOptions,
    progress: &mut (dyn FnMut(&ImportSummary) + Send),
) -> Result<ImportSummary, ImportError> {
    let taxonomy = crate::store::taxonomies::load_by_name(pool, &options.taxonomy).await?;
    let rows = formats::rows(options.format, reader)?;
    let batch_id = start_batch(pool, &taxonomy, options).await?;
    let mut run = ImportRun {
        pool,
        taxonomy: &taxonomy,
        options,
        batch: Vec::with_capacity(options.batch_size),
        problems: Vec::new(),
        summary: ImportSummary { batch_id, ..Default::default() },
    };
    for row in rows {
        match row.and_then(|raw| validate(raw, &taxonomy, options, &mut run.problems)) {
            Ok(valid) => run.batch.push(valid),
            Err(RowProblem { line, reason }) => run.problems.push(Problem::new(line, "rejected", reason)),
        }
        if run.batch.len() >= options.batch_size {
            run.flush().await?;
            progress(&run.summary);
        }
    }
    run.flush().await?;
    finish_batch(pool, &run.summary).await?;
    Ok(run.summary)
}

/// An import in progress: rows waiting to be written and problems not yet recorded.
struct ImportRun<'a> {
    pool: &'a PgPool,
    taxonomy: &'a Taxonomy,
    options: &'a ImportOptions,
    batch: Vec<ValidRow>,
    problems: Vec<Problem>,
    summary: ImportSummary,
}

impl ImportRun<'_> {
    /// Writes the waiting rows and problems in one transaction.
    async fn flush(&mut self) -> Result<(), ImportError> {
        let mut tx = self.pool.begin().await?;
        if !self.batch.is_empty() {
            self.write_rows(&mut tx).await?;
        }
        record_problems(&mut tx, &mut self.summary, &mut self.problems).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn write_rows(
        &mut self,
        tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    ) -> Result<(), ImportError> {
        let (taxonomy, summary) = (self.taxonomy, &mut self.summary);
        let new_reviews: Vec<NewReview> = self.batch.iter().map(|r| r.review.clone()).collect();
        let (ids, created) = reviews::insert_batch(tx, taxonomy.id, summary.batch_id, &new_reviews).await?;
        let mut created: HashSet<Vec<u8>> = created.into_iter().collect();
        let labelled: Vec<i64> =
            self.batch.iter().filter(|r| r.labels.is_some()).map(|r| ids[&r.review.content_hash]).collect();
        let source = self.options.label_source;
        let mut latest = annotations::latest_imported(tx, &labelled, source).await?;
        let mut new_labels = Vec::new();
        for row in self.batch.drain(..) {
            let review_id = ids[&row.review.content_hash];
            let is_new_review = created.remove(&row.review.content_hash);
            // A label counts as new unless it repeats this source's latest for the review.
            let adds_label = match row.labels {
                Some(labels) if latest.get(&review_id) != Some(&labels) => {
                    latest.insert(review_id, labels.clone());
                    new_labels.push((review_id, labels));
                    true
                }
                _ => false,
            };
            match (is_new_review, adds_label) {
                (true, _) => summary.imported += 1,
                (false, true) => summary.updated += 1,
                (false, false) => summary.duplicates += 1,
            }
        }
        summary.labels_added += new_labels.len() as u64;
        let revision = taxonomy.guideline_revision;
        annotations::insert_imported(tx, summary.batch_id, source, revision, &new_labels).await?;
        Ok(())
    }
}

fn validate(
    raw: RawRow,
    taxonomy: &Taxonomy,
    options: &ImportOptions,
    problems: &mut Vec<Problem>,
) -> Result<ValidRow, RowProblem> {
    let line = raw.line;
    let reject = |reason: reason::Reason| RowProblem { line, reason };
    let normalized = text::normalize(&raw.text);
    if normalized.is_empty() {
        return Err(reject(reason::Reason::MissingText));
    }
    let chars = normalized.chars().count();
    if chars > options.max_text_chars {
        return Err(reject(reason::Reason::TooLong { chars, limit: options.max_text_chars }));
    }
    let labels = match &raw.labels {
        Some(set) => Some(taxonomy.resolve(set).map_err(|e| reject(e.into()))?),
        None => None,
    };
    if let Some(reason) = raw.warning {
        problems.push(Problem::new(line, "warning", reason));
    }
    let mall = raw.mall.map(|m| m.trim().to_string()).unwrap_or_else(|| options.default_mall.clone());
    let category =
        raw.category.map(|c| c.trim().to_string()).unwrap_or_else(|| options.default_category.clone());
    let content_hash = text::content_hash(&mall, &category, &normalized);
    let split = raw.split.unwrap_or_else(|| crate::split::split_for(&content_hash));
    Ok(ValidRow {
        review: NewReview {
            text: normalized,
            mall,
            category,
            source: options.filename.clone(),
            external_id: raw.external_id,
            content_hash,
            split,
        },
        labels: labels.map(sorted),
    })
}

fn sorted(mut labels: ResolvedLabels) -> ResolvedLabels {
    labels.labels.sort();
    labels
}

async fn start_batch(pool: &PgPool, taxonomy: &Taxonomy, options: &ImportOptions) -> sqlx::Result<i64> {
    sqlx::query_scalar(
        "INSERT INTO import_batches (taxonomy_id, filename, format, label_source, created_by)
         VALUES ($1, $2, $3, $4, $5) RETURNING id",
    )
    .bind(taxonomy.id)
    .bind(&options.filename)
    .bind(options.format.as_str())
    .bind(options.label_source)
    .bind(options.created_by)
    .fetch_one(pool)
    .await
}

async fn record_problems(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    summary: &mut ImportSummary,
    problems: &mut Vec<Problem>,
) -> sqlx::Result<()> {
    if problems.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO import_problems (batch_id, line, severity, reason, detail)
         SELECT $1, * FROM UNNEST($2::bigint[], $3::text[], $4::text[], $5::jsonb[])",
    )
    .bind(summary.batch_id)
    .bind(problems.iter().map(|p| p.line as i64).collect::<Vec<_>>())
    .bind(problems.iter().map(|p| p.severity).collect::<Vec<_>>())
    .bind(problems.iter().map(|p| p.reason.clone()).collect::<Vec<_>>())
    .bind(problems.iter().map(|p| serde_json::to_value(&p.detail).unwrap_or_default()).collect::<Vec<_>>())
    .execute(&mut **tx)
    .await?;
    for p in problems.drain(..) {
        match p.severity {
            "rejected" => summary.rejected += 1,
            _ => summary.warnings += 1,
        }
        if summary.problems.len() < PROBLEMS_KEPT {
            summary.problems.push(p);
        }
    }
    Ok(())
}

async fn finish_batch(pool: &PgPool, summary: &ImportSummary) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE import_batches SET finished_at = now(), imported = $2, duplicates = $3, rejected = $4, labels_added = $5
         WHERE id = $1",
    )
    .bind(summary.batch_id)
    .bind(summary.imported as i32)
    .bind(summary.duplicates as i32)
    .bind(summary.rejected as i32)
    .bind(summary.labels_added as i32)
    .execute(pool)
    .await?;
    Ok(())
}

/// Problems of a past batch, for the upload page.
pub async fn problems_of(
    pool: &PgPool,
    batch_id: i64,
    limit: i64,
) -> sqlx::Result<Vec<(i64, String, String)>> {
    sqlx::query_as(
        "SELECT line, severity, reason FROM import_problems WHERE batch_id = $1 ORDER BY line LIMIT $2",
    )
    .bind(batch_id)
    .bind(limit)
    .fetch_all(pool)
    .await
}
