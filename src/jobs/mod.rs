//! Background work in PostgreSQL: training, scoring and evaluation jobs, claimed by
//! `reviewloop worker` processes (one per machine, CPU or GPU) against one database.

pub mod context;
pub mod handlers;
pub mod import_job;
pub mod suggest_job;
pub mod worker;

pub use crate::store::jobs::{Job, NewJob};
pub use context::WorkerConfig;

/// The kinds of job a worker can run.
pub const KINDS: [&str; 6] = ["train", "score", "eval", "audit", "import", "suggest"];
