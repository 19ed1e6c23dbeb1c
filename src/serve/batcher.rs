//! The model thread. Requests from every connection queue on one channel; the thread
//! takes what is waiting (up to a batch, waiting at most a few milliseconds for more)
//! and runs it as one batched analysis, so throughput grows with load. A semaphore
//! bounds the reviews queued or running and turns the excess away at once.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{oneshot, Semaphore};

use super::{ServeError, ServeLimits, Served};
use crate::analyze::{Analysis, Highlights};

struct Job {
    model: Arc<Served>,
    texts: Vec<String>,
    highlights: Highlights,
    reply: oneshot::Sender<Result<Vec<Analysis>, String>>,
}

pub struct Batcher {
    sender: Sender<Job>,
    permits: Arc<Semaphore>,
}

impl Batcher {
    /// Starts the model thread; it ends when the batcher is dropped.
    pub fn start(limits: &ServeLimits) -> Self {
        let (sender, receiver) = mpsc::channel();
        let (batch, wait) = (limits.model_batch.max(1), Duration::from_millis(limits.batch_wait_ms));
        std::thread::Builder::new()
            .name("model".into())
            .spawn(move || run(receiver, batch, wait))
            .expect("cannot start the model thread");
        Batcher { sender, permits: Arc::new(Semaphore::new(limits.queue_limit.max(1))) }
    }

    /// Analyses `texts` with `model`, batched with whatever else is waiting.
    pub async fn analyze(
        &self,
        model: Arc<Served>,
        texts: Vec<String>,
        highlights: Highlights,
    ) -> Result<Vec<Analysis>, ServeError> {
        let _queued = self
            .permits
            .clone()
            .try_acquire_many_owned(texts.len().max(1) as u32)
            .map_err(|_| ServeError::Overloaded)?;
        let (reply, answer) = oneshot::channel();
        self.sender
            .send(Job { model, texts, highlights, reply })
            .map_err(|_| ServeError::Model("the model thread has stopped".into()))?;
        answer
            .await
            .map_err(|_| ServeError::Model("the model thread dropped the request".into()))?
            .map_err(ServeError::Model)
    }
}

fn run(jobs: Receiver<Job>, batch: usize, wait: Duration) {
    while let Ok(first) = jobs.recv() {
        let deadline = Instant::now() + wait;
        let mut reviews = first.texts.len();
        let mut gathered = vec![first];
        while reviews < batch {
            match jobs.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(job) => {
                    reviews += job.texts.len();
                    gathered.push(job);
                }
                Err(RecvTimeoutError::Timeout) => break,
                Err(RecvTimeoutError::Disconnected) => break,
            }
        }
        answer(gathered);
    }
}

/// Runs gathered jobs, one batched analysis per model (a promotion can put two
/// versions in one gathering), and answers each job with its own reviews.
fn answer(mut jobs: Vec<Job>) {
    while let Some(model) = jobs.first().map(|j| j.model.clone()) {
        let (same, rest): (Vec<Job>, Vec<Job>) =
            jobs.into_iter().partition(|j| Arc::ptr_eq(&j.model, &model));
        jobs = rest;
        let texts: Vec<String> = same.iter().flat_map(|j| j.texts.iter().cloned()).collect();
        let highlights: Vec<Highlights> =
            same.iter().flat_map(|j| std::iter::repeat_n(j.highlights, j.texts.len())).collect();
        // A panic in the model answers this batch with an error; the thread lives on.
        let outcome = catch_unwind(AssertUnwindSafe(|| model.analyzer.analyze_many(&texts, &highlights)));
        match outcome {
            Ok(Ok(analyses)) => {
                let mut analyses = analyses.into_iter();
                for job in same {
                    let mine: Vec<Analysis> = analyses.by_ref().take(job.texts.len()).collect();
                    let _ = job.reply.send(Ok(mine));
                }
            }
            Ok(Err(e)) => same.into_iter().for_each(|j| drop(j.reply.send(Err(format!("{e:#}"))))),
            Err(_) => same.into_iter().for_each(|j| drop(j.reply.send(Err("the model panicked".into())))),
        }
    }
}
