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

/// The share done of work in a known number of stages run one after another, each
/// counting its own steps from 1 (a new stage name starts the next stage).
pub struct Stages {
    count: usize,
    current: String,
    finished: usize,
}

impl Stages {
    pub fn new(count: usize) -> Stages {
        Stages { count: count.max(1), current: String::new(), finished: 0 }
    }

    /// Step `step` of `total` in stage `stage`: the share of all the stages done (0–1).
    pub fn overall(&mut self, stage: &str, step: usize, total: usize) -> f64 {
        if stage != self.current {
            if !self.current.is_empty() {
                self.finished += 1;
            }
            self.current = stage.to_string();
        }
        let within = step.min(total) as f64 / total.max(1) as f64;
        ((self.finished as f64 + within) / self.count as f64).min(1.0)
    }
}

/// A progress value with an estimate of the time left from the rate so far.
pub fn with_eta(mut progress: Value, done: f64, total: f64, elapsed: Duration) -> Value {
    if done > 0.0 && total >= done {
        let eta = elapsed.as_secs_f64() / done * (total - done);
        progress["eta_seconds"] = json!(eta.round());
    }
    progress
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stages_add_up_to_the_whole_and_the_estimate_follows_it() {
        let mut stages = Stages::new(4);
        assert_eq!(stages.overall("fold 1/2 keyword", 5, 10), 0.125);
        assert_eq!(stages.overall("fold 1/2 keyword", 10, 10), 0.25);
        assert_eq!(stages.overall("fold 1/2 sentiment", 1, 4), 0.3125, "a new stage starts after the first");
        assert_eq!(stages.overall("fold 2/2 keyword", 10, 10), 0.75);
        // Half done in 60 s: 60 s left (not the hours a stage's own steps would give).
        let eta = with_eta(json!({}), 0.5, 1.0, Duration::from_secs(60));
        assert_eq!(eta["eta_seconds"], 60.0);
    }
}
