//! The model thread. Requests from every connection (the API, the try-it page, the QA
//! pages) queue on one channel; the thread keeps every request it has taken and runs
//! steps of at most a budget of token-passes, each filled round-robin from all of them
//! (`schedule`), so a request's reviews and masked variants are spread over steps
//! interleaved with other callers' work. A semaphore counts the token-passes queued or
//! running and turns the excess away at once; a request whose caller has gone is
//! dropped before its next step.

use std::collections::{BTreeMap, VecDeque};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc::{self, Receiver, Sender, TryRecvError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{oneshot, Semaphore};

use super::schedule::{self, Left, Unit};
use super::{ServeError, ServeLimits, Served};
use crate::analyze::{Analysis, Ask, Highlight, ReviewCost, Staged};

/// What a request is answered with.
enum Reply {
    Analyses(oneshot::Sender<Result<Vec<Analysis>, String>>),
    Highlights(usize, oneshot::Sender<Result<Vec<Vec<Highlight>>, String>>),
}

impl Reply {
    fn is_closed(&self) -> bool {
        match self {
            Reply::Analyses(s) => s.is_closed(),
            Reply::Highlights(_, s) => s.is_closed(),
        }
    }

    fn fail(self, error: String) {
        match self {
            Reply::Analyses(s) => drop(s.send(Err(error))),
            Reply::Highlights(_, s) => drop(s.send(Err(error))),
        }
    }
}

struct Job {
    model: Arc<Served>,
    texts: Vec<String>,
    ask: Ask,
    costs: Vec<ReviewCost>,
    reply: Reply,
}

pub struct Batcher {
    sender: Sender<Job>,
    permits: Arc<Semaphore>,
    /// All the permits: a request costing more than the whole queue may still run
    /// alone, taking them all.
    queue_cost: u32,
}

impl Batcher {
    /// Starts the model thread; it ends when the batcher is dropped.
    pub fn start(limits: &ServeLimits) -> Self {
        let (sender, receiver) = mpsc::channel();
        let (step, wait) = (limits.step_cost.max(1), Duration::from_millis(limits.batch_wait_ms));
        std::thread::Builder::new()
            .name("model".into())
            .spawn(move || run(receiver, step, wait))
            .expect("cannot start the model thread");
        let queue_cost = limits.queue_cost.clamp(1, u32::MAX as u64) as u32;
        Batcher { sender, permits: Arc::new(Semaphore::new(queue_cost as usize)), queue_cost }
    }

    /// Analyses `texts` with `model`; `costs` (from [`crate::analyze::Analyzer::cost`])
    /// are what it is charged and scheduled by.
    pub async fn analyze(
        &self,
        model: Arc<Served>,
        texts: Vec<String>,
        highlights: crate::analyze::Highlights,
        costs: Vec<ReviewCost>,
    ) -> Result<Vec<Analysis>, ServeError> {
        let (reply, answer) = oneshot::channel();
        let job = Job { model, texts, ask: Ask::Analysis(highlights), costs, reply: Reply::Analyses(reply) };
        self.queue(job, answer).await
    }

    /// The words that drive `keyword` in each of `texts`, found or not.
    pub async fn explain(
        &self,
        model: Arc<Served>,
        texts: Vec<String>,
        keyword: usize,
        costs: Vec<ReviewCost>,
    ) -> Result<Vec<Vec<Highlight>>, ServeError> {
        let (reply, answer) = oneshot::channel();
        let job =
            Job { model, texts, ask: Ask::Explain(keyword), costs, reply: Reply::Highlights(keyword, reply) };
        self.queue(job, answer).await
    }

    async fn queue<T>(
        &self,
        job: Job,
        answer: oneshot::Receiver<Result<T, String>>,
    ) -> Result<T, ServeError> {
        let cost: u64 = job.costs.iter().map(ReviewCost::total).sum();
        let permits = cost.clamp(1, self.queue_cost as u64) as u32;
        let _queued =
            self.permits.clone().try_acquire_many_owned(permits).map_err(|_| ServeError::Overloaded)?;
        self.sender.send(job).map_err(|_| ServeError::Model("the model thread has stopped".into()))?;
        answer
            .await
            .map_err(|_| ServeError::Model("the model thread dropped the request".into()))?
            .map_err(ServeError::Model)
    }
}

/// A request the model thread has taken, part-way through.
struct Active {
    job: Job,
    /// Reviews staged so far, in order.
    staged: Vec<Staged>,
}

impl Active {
    fn left(&self) -> Left {
        Left {
            to_stage: self.job.costs[self.staged.len()..].iter().map(|c| c.typical_stage).collect(),
            to_mask: (self.staged.iter().enumerate())
                .filter(|(_, s)| s.masks_left() > 0)
                .map(|(i, s)| (i, s.masks_left(), s.tokens as u64))
                .collect(),
        }
    }

    fn done(&self) -> bool {
        self.staged.len() == self.job.texts.len() && self.staged.iter().all(|s| s.masks_left() == 0)
    }

    fn answer(self) {
        let analyzer = &self.job.model.analyzer;
        match self.job.reply {
            Reply::Analyses(reply) => {
                drop(reply.send(Ok(self.staged.into_iter().map(|s| analyzer.finish(s)).collect())))
            }
            Reply::Highlights(keyword, reply) => {
                drop(reply.send(Ok(self.staged.iter().map(|s| analyzer.explain(s, keyword)).collect())))
            }
        }
    }
}

fn run(jobs: Receiver<Job>, step: u64, wait: Duration) {
    let mut active: VecDeque<Active> = VecDeque::new();
    loop {
        if active.is_empty() {
            // Idle: wait for a request, then a moment for others to join its first step.
            let Ok(first) = jobs.recv() else { return };
            active.push_back(Active { job: first, staged: Vec::new() });
            let deadline = Instant::now() + wait;
            while let Ok(job) = jobs.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                active.push_back(Active { job, staged: Vec::new() });
            }
        }
        loop {
            match jobs.try_recv() {
                Ok(job) => active.push_back(Active { job, staged: Vec::new() }),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) if active.is_empty() => return,
                Err(TryRecvError::Disconnected) => break,
            }
        }
        let waiting = active.len();
        active.retain(|a| !a.job.reply.is_closed());
        if active.len() < waiting {
            tracing::debug!(dropped = waiting - active.len(), "requests whose callers left");
        }
        if active.is_empty() {
            continue;
        }
        run_step(&mut active, step);
        // The next step starts from the next request.
        active.rotate_left(1.min(active.len()));
    }
}

/// One step over the requests of the first request's model (a promotion can leave two
/// versions waiting); finished requests are answered and removed.
fn run_step(active: &mut VecDeque<Active>, step: u64) {
    let model = active[0].job.model.clone();
    let same: Vec<usize> = (0..active.len()).filter(|&i| Arc::ptr_eq(&active[i].job.model, &model)).collect();
    let left: Vec<Left> = same.iter().map(|&i| active[i].left()).collect();
    let units = schedule::plan(&left, step);
    let started = Instant::now();
    // A panic in the model fails this step's requests; the thread lives on.
    let outcome = catch_unwind(AssertUnwindSafe(|| execute(&model, active, &same, &units, step)));
    let ms = started.elapsed().as_millis() as u64;
    tracing::debug!(requests = same.len(), units = units.len(), ms, "model step");
    let failure = match outcome {
        Ok(Ok(())) => None,
        Ok(Err(e)) => Some(format!("{e:#}")),
        Err(_) => Some("the model panicked".to_string()),
    };
    let touched: Vec<usize> = units.iter().map(|(r, _)| same[*r]).collect();
    for i in (0..active.len()).rev() {
        let failed = failure.is_some() && touched.contains(&i);
        if failed || active[i].done() {
            let finished = active.remove(i).expect("index of an active request");
            match &failure {
                Some(error) if failed => finished.job.reply.fail(error.clone()),
                _ => finished.answer(),
            }
        }
    }
}

/// Runs a step's units: the staging of all its reviews in one batched call, then the
/// masking of all its words (and of the new short reviews) in another.
fn execute(
    model: &Served,
    active: &mut VecDeque<Active>,
    same: &[usize],
    units: &[(usize, Unit)],
    step: u64,
) -> anyhow::Result<()> {
    let analyzer = &model.analyzer;
    let (mut texts, mut asks) = (Vec::new(), Vec::new());
    let mut owners: Vec<usize> = Vec::new();
    for &(r, unit) in units {
        if unit == Unit::Stage {
            let request = &active[same[r]];
            let next = request.staged.len() + owners.iter().filter(|&&o| o == same[r]).count();
            texts.push(request.job.texts[next].clone());
            asks.push(request.job.ask);
            owners.push(same[r]);
        }
    }
    // The reviews masked before staging: those the plan names, staged in earlier steps.
    let mut words: BTreeMap<(usize, usize), usize> = BTreeMap::new();
    for &(r, unit) in units {
        if let Unit::Mask { review, words: n } = unit {
            *words.entry((same[r], review)).or_default() += n;
        }
    }
    if !texts.is_empty() {
        let staged = analyzer.stage(&texts, &asks)?;
        for (i, staged) in owners.into_iter().zip(staged) {
            // A short review's few masks run in this step too, so a one-sentence
            // request is answered after one step, not two.
            if (staged.masks_left() * staged.tokens) as u64 <= schedule::quantum(step) {
                words.insert((i, active[i].staged.len()), usize::MAX);
            }
            active[i].staged.push(staged);
        }
    }
    let mut work: Vec<(&mut Staged, usize)> = Vec::new();
    for (i, request) in active.iter_mut().enumerate() {
        for (review, staged) in request.staged.iter_mut().enumerate() {
            match words.get(&(i, review)) {
                Some(&n) if staged.masks_left() > 0 => work.push((staged, n)),
                _ => {}
            }
        }
    }
    if !work.is_empty() {
        analyzer.mask(&mut work)?;
    }
    Ok(())
}
