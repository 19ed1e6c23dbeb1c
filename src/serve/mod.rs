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
pub use crate::config::ServeLimits;

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
    /// Versions are read from `storage` through the cache in `data_dir`.
    pub fn start(
        storage: crate::storage::Storage,
        data_dir: std::path::PathBuf,
        limits: ServeLimits,
    ) -> Self {
        let registry = Arc::new(Registry::new(storage, data_dir));
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
