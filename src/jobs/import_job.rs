//! An uploaded file imported as a job: the upload request only streams the file into
//! the data dir's `uploads/` and queues this, so a file of a million rows never holds
//! a request open; the job page shows the rows written so far and the summary. The
//! file is removed when the job ends, however it ends.

use std::io::BufReader;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::context::{publish, JobContext};
use crate::consensus::LabelSource;
use crate::import::{self, Format, ImportOptions};

/// Where uploads wait for their import job.
pub fn uploads_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("uploads")
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ImportJob {
    /// The file's name inside the uploads folder (never a path).
    pub file: crate::names::SafeName,
    /// The name it was uploaded under, shown in the batch list.
    pub filename: String,
    pub taxonomy: String,
    pub format: Format,
    pub label_source: String,
    pub mall: String,
    pub category: String,
    pub created_by: Option<i64>,
    pub max_text_chars: usize,
}

pub async fn run(cx: &JobContext<'_>) -> anyhow::Result<Value> {
    let request: ImportJob = serde_json::from_value(cx.job.payload.clone())?;
    let path = request.file.under(&uploads_dir(&cx.config.models_dir))?;
    let outcome = import_file(cx, &request, &path).await;
    if let Err(e) = std::fs::remove_file(&path) {
        tracing::warn!(path = %path.display(), error = %e, "cannot remove an imported upload");
    }
    outcome
}

async fn import_file(cx: &JobContext<'_>, request: &ImportJob, path: &Path) -> anyhow::Result<Value> {
    let mut options = ImportOptions::new(&request.taxonomy, request.format, &request.filename);
    options.label_source = LabelSource::parse(&request.label_source).unwrap_or(LabelSource::Human);
    options.default_mall = request.mall.trim().to_string();
    options.default_category = request.category.trim().to_string();
    options.created_by = request.created_by;
    options.max_text_chars = request.max_text_chars;
    let file = std::fs::File::open(path)?;
    let size = file.metadata().map(|m| m.len()).unwrap_or(0);
    let state = cx.state;
    let summary = import::import_reporting(cx.pool, BufReader::new(file), &options, &mut |s| {
        let rows = s.imported + s.duplicates + s.updated + s.rejected;
        let progress = json!({"stage": "import", "rows": rows, "imported": s.imported, "rejected": s.rejected, "bytes": size});
        publish(state, progress, Some(format!("{rows} rows read, {} imported", s.imported)));
    })
    .await?;
    Ok(serde_json::to_value(summary)?)
}
