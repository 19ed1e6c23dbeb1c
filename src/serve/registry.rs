//! The version that serves each taxonomy, loaded once and swapped atomically: a request
//! takes an `Arc` of the current model and keeps it until its answer is written, so a
//! promotion never drops or mixes in-flight requests; the old model is freed when its
//! last request ends.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock, Weak};
use std::time::Duration;

use sqlx::PgPool;

use super::ServeError;
use crate::analyze::Analyzer;
use crate::storage::Storage;
use crate::store;

/// A loaded version and what the API reports of it.
pub struct Served {
    pub version_id: i64,
    pub version: String,
    pub taxonomy: String,
    pub analyzer: Analyzer,
}

impl Served {
    /// The sentiment levels, lowest first: what each place of a distribution means.
    pub fn levels(&self) -> Vec<i16> {
        let labels = &self.analyzer.sentiment.labels;
        (labels.scale_min..=labels.scale_max).collect()
    }
}

pub struct Registry {
    pool: PgPool,
    /// Where versions are fetched from, into the local cache under `data_dir`.
    storage: Storage,
    data_dir: std::path::PathBuf,
    loaded: RwLock<HashMap<String, Arc<Served>>>,
    /// One load at a time: loading reads and maps a whole model.
    loading: tokio::sync::Mutex<()>,
    /// The taxonomies that exist: a request naming any other is answered from here,
    /// without the load lock. Re-read on a miss, one read at a time (misses waiting
    /// meanwhile use that read), so a new taxonomy is found at once and a caller
    /// naming made-up ones costs the database one small query at a time.
    names: RwLock<Names>,
    reading_names: tokio::sync::Mutex<()>,
}

#[derive(Default)]
struct Names {
    known: HashSet<String>,
    /// Bumped by each read.
    generation: u64,
}

impl Registry {
    pub fn new(storage: Storage, data_dir: std::path::PathBuf) -> Self {
        let pool = storage.pool().clone();
        Registry {
            pool,
            storage,
            data_dir,
            loaded: RwLock::default(),
            loading: tokio::sync::Mutex::new(()),
            names: RwLock::default(),
            reading_names: tokio::sync::Mutex::new(()),
        }
    }

    /// Whether a taxonomy of this name exists, from the names read last, or a new read
    /// when it is not among them.
    async fn exists(&self, taxonomy: &str) -> Result<bool, ServeError> {
        let seen = {
            let names = self.names.read().unwrap_or_else(|e| e.into_inner());
            if names.known.contains(taxonomy) {
                return Ok(true);
            }
            names.generation
        };
        let _one_read_at_a_time = self.reading_names.lock().await;
        let read_since = self.names.read().unwrap_or_else(|e| e.into_inner()).generation != seen;
        if !read_since {
            let known: HashSet<String> = store::taxonomies::names(&self.pool).await?.into_iter().collect();
            let mut names = self.names.write().unwrap_or_else(|e| e.into_inner());
            names.known = known;
            names.generation += 1;
        }
        Ok(self.names.read().unwrap_or_else(|e| e.into_inner()).known.contains(taxonomy))
    }

    /// Holds the load lock, as a load in progress does (for tests of what must not wait
    /// for it).
    #[doc(hidden)]
    pub async fn hold_loading(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.loading.lock().await
    }

    fn cached(&self, taxonomy: &str) -> Option<Arc<Served>> {
        self.loaded.read().unwrap_or_else(|e| e.into_inner()).get(taxonomy).cloned()
    }

    fn put(&self, served: Arc<Served>) {
        self.loaded.write().unwrap_or_else(|e| e.into_inner()).insert(served.taxonomy.clone(), served);
    }

    /// The serving model of a taxonomy, loaded on first use.
    pub async fn get(&self, taxonomy: &str) -> Result<Arc<Served>, ServeError> {
        if let Some(served) = self.cached(taxonomy) {
            return Ok(served);
        }
        if !self.exists(taxonomy).await? {
            return Err(ServeError::UnknownTaxonomy(taxonomy.to_string()));
        }
        let _one_at_a_time = self.loading.lock().await;
        if let Some(served) = self.cached(taxonomy) {
            return Ok(served);
        }
        let version = self.serving_version(taxonomy).await?;
        let served = self.load(taxonomy, version).await?;
        self.put(served.clone());
        Ok(served)
    }

    /// Checks each loaded taxonomy's serving version and swaps in those that changed.
    /// A version that fails to load is logged and the one in service stays.
    pub async fn refresh(&self) {
        let taxonomies: Vec<(String, i64)> = {
            let loaded = self.loaded.read().unwrap_or_else(|e| e.into_inner());
            loaded.values().map(|s| (s.taxonomy.clone(), s.version_id)).collect()
        };
        for (taxonomy, serving) in taxonomies {
            let _one_at_a_time = self.loading.lock().await;
            let version = match self.serving_version(&taxonomy).await {
                Ok(v) if v.id == serving => continue,
                Ok(v) => v,
                Err(e) => {
                    tracing::warn!(%taxonomy, error = %e, "cannot check the serving version");
                    continue;
                }
            };
            match self.load(&taxonomy, version).await {
                Ok(served) => {
                    tracing::info!(%taxonomy, version = %served.version, "now serving");
                    self.put(served);
                }
                Err(e) => tracing::error!(%taxonomy, error = %e, "new version failed to load; old one stays"),
            }
        }
    }

    async fn serving_version(&self, taxonomy: &str) -> Result<store::models::ModelVersion, ServeError> {
        let id = store::taxonomies::find_id(&self.pool, taxonomy)
            .await?
            .ok_or_else(|| ServeError::UnknownTaxonomy(taxonomy.to_string()))?;
        store::models::current_keyword(&self.pool, id)
            .await?
            .ok_or_else(|| ServeError::NoModel(taxonomy.to_string()))
    }

    /// Fetches a version into the local cache (or checks the cached one) and loads it
    /// off the async threads.
    async fn load(
        &self,
        taxonomy: &str,
        version: store::models::ModelVersion,
    ) -> Result<Arc<Served>, ServeError> {
        let taxonomy = taxonomy.to_string();
        let (dir, fetched) = self
            .storage
            .open_version(&self.data_dir, &version)
            .await
            .map_err(|e| ServeError::Model(format!("{e:#}")))?;
        if fetched.files > 0 {
            tracing::info!(version = %version.name, files = fetched.files, bytes = fetched.bytes, "fetched from storage");
        }
        let analyzer = tokio::task::spawn_blocking(move || Analyzer::load(&dir))
            .await
            .map_err(|e| ServeError::Model(e.to_string()))?
            .map_err(|e| ServeError::Model(format!("{e:#}")))?;
        Ok(Arc::new(Served { version_id: version.id, version: version.name, taxonomy, analyzer }))
    }
}

/// Checks for promotions every `every` while the registry is alive.
pub fn follow_promotions(registry: &Arc<Registry>, every: Duration) {
    let weak: Weak<Registry> = Arc::downgrade(registry);
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            let Some(registry) = weak.upgrade() else { return };
            registry.refresh().await;
        }
    });
}
