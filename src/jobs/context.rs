//! What a running job works with, shared by the worker loop (which claims and runs
//! jobs) and the handlers (what each kind does), so neither imports the other: the
//! worker's configuration, the job, its cancellation flag, and the state it publishes.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use sqlx::PgPool;

use super::Job;
use crate::cancel::Cancel;
use crate::storage::Storage;

#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Shown on job pages: host and process.
    pub id: String,
    pub kinds: Vec<String>,
    /// Job devices this worker serves: `any` and `cpu`, plus `cuda` on a GPU build.
    pub devices: Vec<String>,
    pub lease_seconds: f64,
    pub heartbeat: Duration,
    pub poll: Duration,
    pub retry_base_seconds: f64,
    /// The local cache of versions and bases (the data dir).
    pub models_dir: PathBuf,
    /// Where versions and bases are stored for every host.
    pub storage: crate::config::StorageLocation,
}

impl WorkerConfig {
    pub fn new(models_dir: PathBuf) -> Self {
        let mut devices = vec!["any".to_string(), "cpu".to_string()];
        if crate::model::device().is_cuda() {
            devices.push("cuda".into());
        }
        WorkerConfig {
            id: crate::config::this_process(),
            kinds: super::KINDS.iter().map(|k| k.to_string()).collect(),
            devices,
            lease_seconds: 60.0,
            heartbeat: Duration::from_secs(2),
            poll: Duration::from_secs(5),
            retry_base_seconds: 30.0,
            models_dir,
            storage: Default::default(),
        }
    }
}

/// Progress and log lines a running job publishes; the heartbeat carries them over.
pub struct JobState {
    pub progress: Value,
    pub logs: Vec<String>,
}

impl Default for JobState {
    fn default() -> Self {
        JobState { progress: json!({}), logs: Vec::new() }
    }
}

pub type SharedState = Arc<Mutex<JobState>>;

pub fn publish(state: &SharedState, progress: Value, log: Option<String>) {
    let mut s = state.lock().expect("job state lock");
    s.progress = progress;
    s.logs.extend(log);
}

/// What a handler works with: the job, where to report, when to stop.
pub struct JobContext<'a> {
    pub pool: &'a PgPool,
    pub config: &'a WorkerConfig,
    pub job: &'a Job,
    pub cancel: &'a Cancel,
    pub state: &'a SharedState,
    pub storage: &'a Storage,
}

/// A progress value with an estimate of the time left from the rate so far.
pub fn with_eta(mut progress: Value, done: f64, total: f64, elapsed: Duration) -> Value {
    if done > 0.0 && total >= done {
        let eta = elapsed.as_secs_f64() / done * (total - done);
        progress["eta_seconds"] = json!(eta.round());
    }
    progress
}
