//! Serving the promoted models to other systems (`/api/v1/analyze`), the try-it page
//! and the QA pages: the serving version of each taxonomy, loaded once and swapped
//! atomically when another is promoted; one model thread that runs everyone's work in
//! interleaved steps; and every limit counted in what work costs the model: a budget
//! per request, a cap on queued work that answers "overloaded", and rate limits per
//! API key and per user charged by cost.

pub mod batcher;
pub mod rate;
pub mod registry;
mod schedule;

use std::sync::Arc;
use std::time::Duration;

pub use batcher::Batcher;
pub use rate::RateLimiter;
pub use registry::{Registry, Served};

use crate::analyze::{Ask, ReviewCost};

/// The limits of the analysis API, documented in the OpenAPI description. Work is
/// counted in token-passes (one token through one forward pass; see
/// [`crate::analyze::ReviewCost`]). Flags are global and prefixed `api-` so they never
/// collide with a subcommand's own flags; each default is the constant beside it.
#[derive(Debug, Clone, clap::Args)]
pub struct ServeLimits {
    /// Most reviews in one /api/v1/analyze request.
    #[arg(long = "api-max-reviews", env = "REVIEWLOOP_API_MAX_REVIEWS", default_value_t = MAX_REVIEWS, global = true)]
    pub max_reviews: usize,
    /// Most token-passes one request may cost; a costlier one is refused (over_budget).
    #[arg(long = "api-max-cost", env = "REVIEWLOOP_API_MAX_COST", default_value_t = MAX_COST, global = true)]
    pub max_cost: u64,
    /// Token-passes of one model step: the model thread's unit of work, shared
    /// round-robin among the waiting requests.
    #[arg(long = "api-step-cost", env = "REVIEWLOOP_API_STEP_COST", default_value_t = STEP_COST, global = true)]
    pub step_cost: u64,
    /// How long the idle model thread waits for company before its first step.
    #[arg(
        long = "api-batch-wait-ms",
        env = "REVIEWLOOP_API_BATCH_WAIT_MS",
        default_value_t = BATCH_WAIT_MS,
        global = true
    )]
    pub batch_wait_ms: u64,
    /// Token-passes waiting or running at once; beyond it requests are answered "overloaded".
    #[arg(long = "api-queue-cost", env = "REVIEWLOOP_API_QUEUE_COST", default_value_t = QUEUE_COST, global = true)]
    pub queue_cost: u64,
    /// Requests per minute (of rate::REQUEST_UNIT token-passes each) a user of the
    /// try-it page may send.
    #[arg(long = "try-per-minute", env = "REVIEWLOOP_TRY_PER_MINUTE", default_value_t = TRY_PER_MINUTE, global = true)]
    pub try_per_minute: u32,
    /// Taxonomy analysed when a request names none.
    #[arg(long = "api-taxonomy", env = "REVIEWLOOP_API_TAXONOMY", default_value = DEFAULT_TAXONOMY, global = true)]
    pub default_taxonomy: String,
    /// How often the serving version is checked for a promotion.
    #[arg(long = "api-refresh-ms", env = "REVIEWLOOP_API_REFRESH_MS", default_value_t = REFRESH_MS, global = true)]
    pub refresh_ms: u64,
}

pub const MAX_REVIEWS: usize = 64;
/// About 15 s of the default-size model alone on two cores (some 16,000 token-passes
/// a second): 64 one-sentence reviews with highlights cost about 100,000; one review
/// of 5,000 characters with every word inside its 256 tokens masked about 42,000.
pub const MAX_COST: u64 = 250_000;
/// About a fifth of a second of the default-size model on two cores.
pub const STEP_COST: u64 = 3_072;
pub const BATCH_WAIT_MS: u64 = 2;
pub const QUEUE_COST: u64 = 8 * MAX_COST;
pub const TRY_PER_MINUTE: u32 = 30;
pub const DEFAULT_TAXONOMY: &str = "fashion";
pub const REFRESH_MS: u64 = 2000;

impl Default for ServeLimits {
    fn default() -> Self {
        ServeLimits {
            max_reviews: MAX_REVIEWS,
            max_cost: MAX_COST,
            step_cost: STEP_COST,
            batch_wait_ms: BATCH_WAIT_MS,
            queue_cost: QUEUE_COST,
            try_per_minute: TRY_PER_MINUTE,
            default_taxonomy: DEFAULT_TAXONOMY.into(),
            refresh_ms: REFRESH_MS,
        }
    }
}

/// Everything the API handlers need, shared by all of the app's workers.
pub struct Serving {
    pub registry: Arc<Registry>,
    pub batcher: Batcher,
    /// API keys' limits, by key id.
    pub rate: RateLimiter<i64>,
    /// The try-it page's limits, by user id.
    pub try_rate: RateLimiter<i64>,
    pub limits: ServeLimits,
}

impl Serving {
    /// Starts the model thread and the task that follows promotions.
    pub fn start(pool: sqlx::PgPool, limits: ServeLimits) -> Self {
        let registry = Arc::new(Registry::new(pool));
        registry::follow_promotions(&registry, Duration::from_millis(limits.refresh_ms.max(50)));
        Serving {
            registry,
            batcher: Batcher::start(&limits),
            rate: RateLimiter::default(),
            try_rate: RateLimiter::default(),
            limits,
        }
    }

    /// What analysing `texts` as asked costs, review by review, worked out on a
    /// blocking thread (it tokenizes), and refused when the whole is over the budget.
    pub async fn cost(
        &self,
        model: &Arc<Served>,
        texts: &[String],
        ask: Ask,
    ) -> Result<Vec<ReviewCost>, ServeError> {
        let (model, texts) = (model.clone(), texts.to_vec());
        let costs = tokio::task::spawn_blocking(move || {
            texts.iter().map(|t| model.analyzer.cost(t, ask)).collect::<Vec<ReviewCost>>()
        })
        .await
        .map_err(|e| ServeError::Model(e.to_string()))?;
        let total: u64 = costs.iter().map(ReviewCost::total).sum();
        if total > self.limits.max_cost {
            return Err(ServeError::OverBudget { cost: total, budget: self.limits.max_cost });
        }
        Ok(costs)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("unknown taxonomy `{0}`")]
    UnknownTaxonomy(String),
    #[error("no trained model serves `{0}` yet")]
    NoModel(String),
    #[error("the server is overloaded; retry shortly")]
    Overloaded,
    #[error("this request costs {cost} token-passes; the budget of one request is {budget}: send fewer or shorter reviews, or no highlights")]
    OverBudget { cost: u64, budget: u64 },
    #[error("too many analyses in a short time; retry in {0} s")]
    RateLimited(u64),
    #[error("the model failed: {0}")]
    Model(String),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}
