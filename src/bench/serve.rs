//! `reviewloop bench serve`: the analysis API under load over loopback HTTP. The app
//! runs in this process on a scratch database; N keep-alive clients each send one
//! review per request as fast as answers come, for a fixed time per setting.
//! Throughput counts answered reviews; latency is per request.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::config::Settings;
use crate::import::{self, Format, ImportOptions};
use crate::store::scratch;
use crate::train::pipeline;
use crate::train::settings::TrainSettings;

pub struct ServeBench {
    /// Labelled file: its texts are the requests; without `version` a small model of
    /// the default size is trained on it first.
    pub data: PathBuf,
    pub format: Format,
    pub taxonomy: String,
    /// A trained version folder to serve instead of training one.
    pub version: Option<PathBuf>,
    /// Training epochs when no version is given (sizes are the default's).
    pub epochs: usize,
    pub concurrency: Vec<usize>,
    pub seconds: f64,
    /// Instead of the grid: one client sending the largest allowed request with
    /// highlights in a loop beside `concurrency[0]` clients sending one review each.
    pub adversary: bool,
}

/// One measured setting.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LoadFigures {
    pub clients: usize,
    pub highlights: bool,
    pub requests: usize,
    pub errors: usize,
    pub reviews_per_second: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

pub async fn serve(settings: &Settings, bench: &ServeBench) -> anyhow::Result<serde_json::Value> {
    let url = scratch::url(&settings.database_url, &format!("reviewloop_bench_serve_{}", std::process::id()));
    let pool = scratch::fresh(&url).await?;
    let result = measure(settings, bench, &pool, &url).await;
    scratch::drop(pool, &url).await?;
    result
}

async fn measure(
    settings: &Settings,
    bench: &ServeBench,
    pool: &sqlx::PgPool,
    url: &str,
) -> anyhow::Result<serde_json::Value> {
    let file = std::fs::read(&bench.data).with_context(|| format!("cannot read {}", bench.data.display()))?;
    let options = ImportOptions::new(&bench.taxonomy, bench.format, "bench serve");
    import::import(pool, &file[..], &options).await?;
    let texts: Vec<String> =
        sqlx::query_scalar("SELECT text FROM reviews ORDER BY id").fetch_all(pool).await?;
    anyhow::ensure!(!texts.is_empty(), "no reviews in {}", bench.data.display());
    let models = std::env::temp_dir().join(format!("reviewloop-bench-serve-{}", std::process::id()));
    let version = served_version(pool, bench, &models).await?;
    eprintln!("serving {}", version.display());

    let mut app_settings = settings.clone();
    app_settings.database_url = url.to_string();
    app_settings.web.serve.default_taxonomy = bench.taxonomy.clone();
    let app = crate::web::Application::build(pool.clone(), app_settings, "127.0.0.1:0").await?;
    let endpoint = format!("http://127.0.0.1:{}/api/v1/analyze", app.port());
    let server = actix_web::rt::spawn(app.run_until_stopped());
    let (_, key) = crate::store::api_keys::create(pool, "bench", i32::MAX, None).await?;
    let texts = Arc::new(texts);
    let figures = if bench.adversary {
        let clients = bench.concurrency.first().copied().unwrap_or(8);
        serde_json::to_value(super::adversary::run(&endpoint, &key, &texts, clients, bench.seconds).await?)?
    } else {
        serde_json::to_value(grid(bench, &endpoint, &key, texts).await)?
    };
    server.abort();
    let _ = std::fs::remove_dir_all(&models);
    Ok(figures)
}

/// Each number of clients, without and with highlights.
async fn grid(bench: &ServeBench, endpoint: &str, key: &str, texts: Arc<Vec<String>>) -> Vec<LoadFigures> {
    let mut figures = Vec::new();
    for highlights in [false, true] {
        for &clients in &bench.concurrency {
            let load = Load { endpoint, key, texts: texts.clone(), highlights, clients };
            load.run(Duration::from_secs_f64(0.5)).await; // warm-up: first use loads the model
            let f = load.run(Duration::from_secs_f64(bench.seconds)).await;
            eprintln!(
                "{:>3} clients, highlights {:<5}: {:7.1} reviews/s  p50 {:7.1} ms  p99 {:7.1} ms  ({} requests, {} errors)",
                f.clients, f.highlights, f.reviews_per_second, f.p50_ms, f.p99_ms, f.requests, f.errors
            );
            figures.push(f);
        }
    }
    figures
}

/// The given version folder, or one trained here with the default sizes.
async fn served_version(
    pool: &sqlx::PgPool,
    bench: &ServeBench,
    models: &std::path::Path,
) -> anyhow::Result<PathBuf> {
    let taxonomy = crate::store::taxonomies::load_by_name(pool, &bench.taxonomy).await?;
    if let Some(dir) = &bench.version {
        // Registered as the serving version, pointing at the given folder.
        let mut tx = pool.begin().await?;
        let snapshot = crate::store::models::snapshot(&mut *tx, taxonomy.id, None).await?.0;
        for kind in ["keyword", "sentiment"] {
            let path = std::path::absolute(dir.join(kind))?.to_string_lossy().to_string();
            let version = crate::store::models::NewVersion {
                taxonomy_id: taxonomy.id,
                kind,
                name: "bench",
                path: &path,
                base_encoder: "",
                snapshot_id: snapshot,
                params: serde_json::json!({}),
                metrics: serde_json::json!({}),
                bundle_id: None,
            };
            crate::store::models::insert(&mut tx, &version).await?;
        }
        tx.commit().await?;
        return Ok(dir.clone());
    }
    let mut train = TrainSettings::defaults(&bench.taxonomy, models.to_path_buf());
    train.fit.epochs = bench.epochs;
    train.name = Some("bench".into());
    let outcome = pipeline::run(pool, &train, &mut |_, _| {}).await?;
    Ok(outcome.dir)
}

struct Load<'a> {
    endpoint: &'a str,
    key: &'a str,
    texts: Arc<Vec<String>>,
    highlights: bool,
    clients: usize,
}

impl Load<'_> {
    async fn run(&self, length: Duration) -> LoadFigures {
        let stop = Arc::new(AtomicBool::new(false));
        let started = Instant::now();
        let tasks: Vec<_> = (0..self.clients)
            .map(|c| {
                let (endpoint, key, texts) =
                    (self.endpoint.to_string(), self.key.to_string(), self.texts.clone());
                let (stop, highlights) = (stop.clone(), self.highlights);
                actix_web::rt::spawn(async move {
                    client_loop(c, &endpoint, &key, &texts, highlights, &stop).await
                })
            })
            .collect();
        actix_web::rt::time::sleep(length).await;
        stop.store(true, Ordering::Relaxed);
        let (mut times, mut errors) = (Vec::new(), 0);
        for task in tasks {
            if let Ok((t, e)) = task.await {
                times.extend(t);
                errors += e;
            }
        }
        let elapsed = started.elapsed().as_secs_f64();
        times.sort_by(f64::total_cmp);
        let at = |q: f64| quantile(&times, q);
        LoadFigures {
            clients: self.clients,
            highlights: self.highlights,
            requests: times.len(),
            errors,
            reviews_per_second: times.len() as f64 / elapsed,
            p50_ms: at(0.5),
            p99_ms: at(0.99),
        }
    }
}

/// The `q` quantile of sorted values (0 when there are none).
pub(super) fn quantile(sorted: &[f64], q: f64) -> f64 {
    match sorted.len() {
        0 => 0.0,
        n => sorted[((n - 1) as f64 * q).round() as usize],
    }
}

/// One client: a keep-alive connection sending reviews in turn until stopped. Returns
/// the latencies (ms) of answered requests and the number of failed ones.
async fn client_loop(
    client: usize,
    endpoint: &str,
    key: &str,
    texts: &[String],
    highlights: bool,
    stop: &AtomicBool,
) -> (Vec<f64>, usize) {
    let http = reqwest::Client::new();
    let (mut times, mut errors) = (Vec::new(), 0);
    let mut i = client * 7919;
    while !stop.load(Ordering::Relaxed) {
        let body = serde_json::json!({"text": texts[i % texts.len()], "highlights": highlights});
        i += 1;
        let started = Instant::now();
        let answered = match http.post(endpoint).bearer_auth(key).json(&body).send().await {
            Ok(r) if r.status().is_success() => r.bytes().await.is_ok(),
            _ => false,
        };
        if answered {
            times.push(started.elapsed().as_secs_f64() * 1000.0);
        } else {
            errors += 1;
        }
    }
    (times, errors)
}
