//! Background work in PostgreSQL: training, scoring and evaluation jobs, claimed by
//! `reviewloop worker` processes (any number per machine, CPU or GPU) against one
//! database; a scoring pass is shared out among them in chunks (`score_jobs`).

pub mod context;
pub mod handlers;
pub mod import_job;
pub mod score_jobs;
pub mod suggest_job;
pub mod worker;

pub use crate::store::jobs::{Job, NewJob};
pub use context::WorkerConfig;

/// The kinds of job a worker can run.
pub const KINDS: [&str; 9] =
    ["train", "score", "score-chunk", "eval", "audit", "import", "suggest", "compare", "compose"];
