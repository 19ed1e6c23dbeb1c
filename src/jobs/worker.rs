//! The worker loop: claim a job, run it while a heartbeat thread renews its lease and
//! publishes progress, record the outcome. Panics are caught and recorded as failures;
//! a cancelled job (or one whose lease was lost) is stopped at the computation's next
//! step through its [`Cancel`] flag.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;
use sqlx::postgres::{PgConnectOptions, PgListener, PgPoolOptions};
use sqlx::PgPool;

use super::context::{JobContext, SharedState, WorkerConfig};
use super::{handlers, Job};
use crate::cancel::Cancel;
use crate::store::jobs as queue;

#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Succeeded,
    /// Failed this attempt (retried later unless it was the last).
    Failed(String),
    /// Cancelled, or no longer this worker's (lease lost): nothing recorded.
    Abandoned,
}

/// How often a worker says it is alive (the `workers` table: the loop looks for GPUs).
const SEEN_EVERY: Duration = Duration::from_secs(30);

/// Runs jobs until `shutdown` is set, sleeping on `LISTEN` (or the poll interval) when
/// the queue is empty.
pub async fn run(pool: &PgPool, config: &WorkerConfig, shutdown: &Cancel) -> anyhow::Result<()> {
    let removed = crate::model::version::remove_abandoned(&config.models_dir);
    if removed > 0 {
        tracing::warn!(removed, "removed version folders left half-written by killed processes");
    }
    let mut listener = PgListener::connect_with(pool).await?;
    listener.listen(queue::CHANNEL).await?;
    let mut seen = std::time::Instant::now() - SEEN_EVERY;
    while !shutdown.is_cancelled() {
        if seen.elapsed() >= SEEN_EVERY {
            crate::store::loops::worker_seen(pool, &config.id, &config.kinds, &config.devices).await?;
            seen = std::time::Instant::now();
        }
        if run_next(pool, config).await?.is_none() {
            // Idle: what the loop policies ask for next (a cycle to start, a round to compose).
            if let Err(e) = crate::cycles::tick(pool, &config.models_dir).await {
                tracing::error!("loop policies not checked: {e:#}");
            }
            tokio::select! {
                received = listener.recv() => {
                    // A lost connection is retried by the next recv; wait meanwhile.
                    if received.is_err() {
                        tokio::time::sleep(config.poll).await;
                    }
                }
                _ = tokio::time::sleep(config.poll) => {}
            }
        }
    }
    Ok(())
}

/// Runs a worker on a thread and runtime of its own, beside a web server whose threads
/// must stay free for requests while a job trains for minutes.
pub fn spawn(
    database_url: String,
    config: WorkerConfig,
    shutdown: Cancel,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new().name("worker".into()).spawn(move || {
        let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
            Ok(runtime) => runtime,
            Err(e) => return tracing::error!("worker not started: {e}"),
        };
        runtime.block_on(async move {
            let pool = match crate::store::connect(&database_url).await {
                Ok(pool) => pool,
                Err(e) => return tracing::error!("worker not started: {e:#}"),
            };
            if let Err(e) = run(&pool, &config, &shutdown).await {
                tracing::error!("worker stopped: {e:#}");
            }
        });
    })
}

/// Recovers jobs of dead workers, then claims and runs one job; `None` when there was
/// nothing to run.
pub async fn run_next(pool: &PgPool, config: &WorkerConfig) -> anyhow::Result<Option<(Job, Outcome)>> {
    let recovered = queue::recover_expired(pool, config.retry_base_seconds).await?;
    if recovered > 0 {
        tracing::warn!(recovered, "jobs of lost workers returned to the queue");
    }
    let Some(job) =
        queue::claim(pool, &config.id, &config.kinds, &config.devices, config.lease_seconds).await?
    else {
        return Ok(None);
    };
    tracing::info!(job = job.id, kind = %job.kind, attempt = job.attempts, "job started");
    let outcome = execute(pool, config, &job).await?;
    tracing::info!(job = job.id, ?outcome, "job ended");
    Ok(Some((job, outcome)))
}

async fn execute(pool: &PgPool, config: &WorkerConfig, job: &Job) -> anyhow::Result<Outcome> {
    let cancel = Cancel::default();
    let state = SharedState::default();
    let beat =
        Heartbeat::start((*pool.connect_options()).clone(), job.id, config, state.clone(), cancel.clone());
    let storage = crate::storage::Storage::open(pool, &config.storage)?;
    let cx = JobContext { pool, config, job, cancel: &cancel, state: &state, storage: &storage };
    let ran = std::panic::AssertUnwindSafe(handlers::run(&cx)).catch_unwind().await;
    beat.stop();
    flush_logs(pool, job.id, &state).await?;
    let progress = state.lock().expect("job state lock").progress.clone();
    let error = match ran {
        Ok(Ok(result)) => {
            // The job's loop cycle (if any) moves on in the same transaction.
            let mut tx = pool.begin().await?;
            let recorded = queue::succeed(&mut *tx, job.id, &config.id, &result, &progress).await?;
            if recorded {
                crate::cycles::advance(&mut tx, job, &result).await?;
            }
            tx.commit().await?;
            return Ok(if recorded { Outcome::Succeeded } else { Outcome::Abandoned });
        }
        Ok(Err(e)) => format!("{e:#}"),
        Err(panic) => format!("panicked: {}", panic_message(&panic)),
    };
    if cancel.is_cancelled() {
        return Ok(Outcome::Abandoned);
    }
    queue::log(pool, job.id, &format!("attempt {} failed: {error}", job.attempts)).await?;
    let recorded = queue::fail(pool, job.id, &config.id, &error, config.retry_base_seconds).await?;
    Ok(if recorded { Outcome::Failed(error) } else { Outcome::Abandoned })
}

fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "unknown panic".into())
}

async fn flush_logs(pool: &PgPool, job_id: i64, state: &SharedState) -> sqlx::Result<()> {
    let lines = std::mem::take(&mut state.lock().expect("job state lock").logs);
    for line in lines {
        queue::log(pool, job_id, &line).await?;
    }
    Ok(())
}

/// Renews the lease from its own thread and connection: training keeps the worker's
/// own thread busy for minutes between awaits.
struct Heartbeat {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<()>,
}

impl Heartbeat {
    fn start(
        options: PgConnectOptions,
        job_id: i64,
        config: &WorkerConfig,
        state: SharedState,
        cancel: Cancel,
    ) -> Heartbeat {
        let stop = Arc::new(AtomicBool::new(false));
        let (flag, worker, lease, every) =
            (stop.clone(), config.id.clone(), config.lease_seconds, config.heartbeat);
        let thread = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread().enable_all().build() else {
                return cancel.cancel();
            };
            runtime.block_on(async move {
                // Lazy: a refused connection (server busy, too many clients) is retried
                // at every beat instead of silently ending the heartbeat.
                let pool = PgPoolOptions::new().max_connections(1).connect_lazy_with(options);
                let mut renewed = std::time::Instant::now();
                while !flag.load(Ordering::Relaxed) {
                    sleep_unless(&flag, every).await;
                    let progress = state.lock().expect("job state lock").progress.clone();
                    let _ = flush_logs(&pool, job_id, &state).await;
                    match queue::heartbeat(&pool, job_id, &worker, lease, &progress).await {
                        Ok(true) => renewed = std::time::Instant::now(),
                        Ok(false) => return cancel.cancel(),
                        Err(e) => {
                            tracing::warn!(job = job_id, "heartbeat failed: {e}");
                            // The lease is about to run out: another worker will take the
                            // job, so this one must stop rather than run it twice.
                            if renewed.elapsed().as_secs_f64() > lease * 0.8 {
                                return cancel.cancel();
                            }
                        }
                    }
                }
                pool.close().await;
            });
        });
        Heartbeat { stop, thread }
    }

    fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.thread.join();
    }
}

/// Sleeps `total`, waking early when `flag` is set.
async fn sleep_unless(flag: &AtomicBool, total: Duration) {
    let step = Duration::from_millis(50);
    let mut slept = Duration::ZERO;
    while slept < total && !flag.load(Ordering::Relaxed) {
        tokio::time::sleep(step).await;
        slept += step;
    }
}
