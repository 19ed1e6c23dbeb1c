//! Settings from flags and environment. Every command shares these.

use std::path::PathBuf;

use clap::Args;

pub const DEFAULT_DATABASE_URL: &str = "postgres://127.0.0.1:5432/reviewloop";

#[derive(Debug, Clone, Args)]
pub struct Settings {
    /// PostgreSQL URL; the database is created if missing and migrated at start.
    #[arg(long, env = "DATABASE_URL", default_value = DEFAULT_DATABASE_URL, global = true)]
    pub database_url: String,

    /// Folder for model versions and other artefacts.
    #[arg(long, env = "REVIEWLOOP_DATA_DIR", default_value = "models", global = true)]
    pub data_dir: PathBuf,

    /// Longest review text accepted, in characters.
    #[arg(long, env = "REVIEWLOOP_MAX_TEXT_CHARS", default_value_t = 5000, global = true)]
    pub max_text_chars: usize,

    /// Promotion is refused when a keyword's F1 falls by more than this (unless a
    /// reason is given).
    #[arg(long, env = "REVIEWLOOP_PROMOTION_MARGIN", default_value_t = 0.05, global = true)]
    pub promotion_margin: f64,

    /// Largest file the import page accepts, in MB; a larger upload is refused (413)
    /// as it arrives and nothing of it is kept.
    #[arg(long, env = "REVIEWLOOP_MAX_UPLOAD_MB", default_value_t = MAX_UPLOAD_MB, global = true)]
    pub max_upload_mb: u64,

    #[command(flatten)]
    pub serve: crate::serve::ServeLimits,
}

pub const MAX_UPLOAD_MB: u64 = 512;

impl Settings {
    pub fn for_database(database_url: &str) -> Self {
        Settings {
            database_url: database_url.to_string(),
            data_dir: PathBuf::from("models"),
            max_text_chars: 5000,
            promotion_margin: 0.05,
            max_upload_mb: MAX_UPLOAD_MB,
            serve: crate::serve::ServeLimits::default(),
        }
    }
}

/// `host:pid`: who a worker is on job pages, and who is writing a version folder.
pub fn this_process() -> String {
    let host = std::fs::read_to_string("/etc/hostname").unwrap_or_default();
    let host = if host.trim().is_empty() { "localhost" } else { host.trim() };
    format!("{host}:{}", std::process::id())
}
