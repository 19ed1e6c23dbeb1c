//! Serving the promoted models to other systems (`/api/v1/analyze`): the serving
//! version of each taxonomy, loaded once and swapped atomically when another is
//! promoted; one model thread that gathers concurrent requests into batches; a cap on
//! queued work that answers "overloaded"; and a per-key rate limit.

pub mod batcher;
pub mod rate;
pub mod registry;

use std::sync::Arc;
use std::time::Duration;

pub use batcher::Batcher;
pub use rate::RateLimiter;
pub use registry::{Registry, Served};

/// The limits of the analysis API, documented in the OpenAPI description. Flags are
/// global and prefixed `api-` so they never collide with a subcommand's own flags.
#[derive(Debug, Clone, clap::Args)]
pub struct ServeLimits {
    /// Most reviews in one /api/v1/analyze request.
    #[arg(long = "api-max-reviews", env = "REVIEWLOOP_API_MAX_REVIEWS", default_value_t = 64, global = true)]
    pub max_reviews: usize,
    /// Reviews gathered into one model batch from concurrent requests.
    #[arg(long = "api-batch", env = "REVIEWLOOP_API_BATCH", default_value_t = 64, global = true)]
    pub model_batch: usize,
    /// How long the model thread waits for more requests before running a batch.
    #[arg(
        long = "api-batch-wait-ms",
        env = "REVIEWLOOP_API_BATCH_WAIT_MS",
        default_value_t = 2,
        global = true
    )]
    pub batch_wait_ms: u64,
    /// Reviews waiting or running at once; beyond it requests are answered "overloaded".
    #[arg(long = "api-queue", env = "REVIEWLOOP_API_QUEUE", default_value_t = 2048, global = true)]
    pub queue_limit: usize,
    /// Taxonomy analysed when a request names none.
    #[arg(long = "api-taxonomy", env = "REVIEWLOOP_API_TAXONOMY", default_value = "fashion", global = true)]
    pub default_taxonomy: String,
    /// How often the serving version is checked for a promotion.
    #[arg(long = "api-refresh-ms", env = "REVIEWLOOP_API_REFRESH_MS", default_value_t = 2000, global = true)]
    pub refresh_ms: u64,
}

impl Default for ServeLimits {
    fn default() -> Self {
        ServeLimits {
            max_reviews: 64,
            model_batch: 64,
            batch_wait_ms: 2,
            queue_limit: 2048,
            default_taxonomy: "fashion".into(),
            refresh_ms: 2000,
        }
    }
}

/// Everything the API handlers need, shared by all of the app's workers.
pub struct Serving {
    pub registry: Arc<Registry>,
    pub batcher: Batcher,
    pub rate: RateLimiter,
    pub limits: ServeLimits,
}

impl Serving {
    /// Starts the model thread and the task that follows promotions.
    pub fn start(pool: sqlx::PgPool, limits: ServeLimits) -> Self {
        let registry = Arc::new(Registry::new(pool));
        registry::follow_promotions(&registry, Duration::from_millis(limits.refresh_ms.max(50)));
        Serving { registry, batcher: Batcher::start(&limits), rate: RateLimiter::default(), limits }
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
    #[error("the model failed: {0}")]
    Model(String),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}
