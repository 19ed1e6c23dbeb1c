//! The job queue and the worker, against a real PostgreSQL.

use std::collections::HashSet;
use std::time::Duration;

use reviewloop::import::Format;
use reviewloop::jobs::worker::{self, Outcome};
use reviewloop::jobs::{NewJob, WorkerConfig};
use reviewloop::store::jobs as queue;
use reviewloop::train::pipeline;
use serde_json::json;

use crate::helpers::TestApp;
use crate::train::{labelled_csv, scratch_dir, settings};

fn config(id: &str, models: &std::path::Path) -> WorkerConfig {
    let mut config = WorkerConfig::new(models.to_path_buf());
    config.id = id.into();
    config.heartbeat = Duration::from_millis(100);
    config.lease_seconds = 30.0;
    config.retry_base_seconds = 0.0;
    config
}

async fn enqueue(app: &TestApp, kind: &str, payload: serde_json::Value, max_attempts: i32) -> i64 {
    let mut job = NewJob::new(kind, payload);
    job.max_attempts = max_attempts;
    let mut conn = app.pool.acquire().await.unwrap();
    queue::enqueue(&mut conn, &job).await.unwrap()
}

async fn status(app: &TestApp, id: i64) -> (String, i32, Option<String>) {
    sqlx::query_as("SELECT status, attempts, last_error FROM jobs WHERE id = $1")
        .bind(id)
        .fetch_one(&app.pool)
        .await
        .unwrap()
}

/// A train job payload: the tests' tiny-model settings.
fn train_payload(models: &std::path::Path, name: &str, epochs: usize) -> serde_json::Value {
    let mut s = settings(models, name);
    s.fit.epochs = epochs;
    s.fit.patience = epochs;
    serde_json::to_value(s).unwrap()
}

#[tokio::test]
async fn two_workers_never_claim_the_same_job() {
    let app = TestApp::spawn().await;
    for i in 0..40 {
        enqueue(&app, "score", json!({"taxonomy": "fashion", "n": i}), 3).await;
    }
    let kinds = vec!["score".to_string()];
    let devices = vec!["any".to_string()];
    let claimers = (0..4).map(|w| {
        let (pool, kinds, devices) = (app.pool.clone(), kinds.clone(), devices.clone());
        tokio::spawn(async move {
            let mut mine = Vec::new();
            while let Some(job) = queue::claim(&pool, &format!("w{w}"), &kinds, &devices, 30.0).await.unwrap()
            {
                mine.push(job.id);
            }
            mine
        })
    });
    let mut all = Vec::new();
    for claimer in claimers {
        all.extend(claimer.await.unwrap());
    }
    let distinct: HashSet<i64> = all.iter().copied().collect();
    assert_eq!((all.len(), distinct.len()), (40, 40), "each job claimed exactly once");
    assert_eq!(app.count("SELECT count(*) FROM jobs WHERE status = 'running' AND attempts = 1").await, 40);
}

#[tokio::test]
async fn a_gpu_job_waits_for_a_gpu_worker() {
    let app = TestApp::spawn().await;
    enqueue(&app, "train", json!({"device": "cuda"}), 1).await;
    let cpu = vec!["any".to_string(), "cpu".to_string()];
    assert!(queue::claim(&app.pool, "cpu", &["train".into()], &cpu, 30.0).await.unwrap().is_none());
    let gpu = vec!["any".to_string(), "cpu".to_string(), "cuda".to_string()];
    assert!(queue::claim(&app.pool, "gpu", &["train".into()], &gpu, 30.0).await.unwrap().is_some());
}

#[tokio::test]
async fn a_training_job_reports_progress_and_records_its_version() {
    let app = TestApp::spawn().await;
    app.import_text("fashion", Format::Csv, &labelled_csv()).await;
    let models = scratch_dir();
    let id = enqueue(&app, "train", train_payload(&models, "from-job", 2), 3).await;
    let (job, outcome) = worker::run_next(&app.pool, &config("w1", &models)).await.unwrap().unwrap();
    assert_eq!((job.id, outcome), (id, Outcome::Succeeded));
    let (result, progress): (serde_json::Value, serde_json::Value) =
        sqlx::query_as("SELECT result, progress FROM jobs WHERE id = $1")
            .bind(id)
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(result["version"], "from-job");
    assert_eq!(progress["stage"], "sentiment");
    assert!(progress["total_steps"].as_u64().unwrap() > 0);
    assert!(app.count("SELECT count(*) FROM job_logs WHERE line LIKE 'keyword: epoch%'").await >= 2);
    assert!(models.join("fashion/from-job/keyword/model.safetensors").is_file());
    assert!(worker::run_next(&app.pool, &config("w1", &models)).await.unwrap().is_none(), "queue drained");
    let _ = std::fs::remove_dir_all(&models);
}

#[tokio::test]
async fn a_killed_workers_job_is_retried_and_completes() {
    let app = TestApp::spawn().await;
    app.import_text("fashion", Format::Csv, &labelled_csv()).await;
    let models = scratch_dir();
    let id = enqueue(&app, "train", train_payload(&models, "survivor", 1), 3).await;
    // Worker A claims it with a one-second lease and dies: no heartbeat, no outcome.
    let kinds = vec!["train".to_string()];
    let claimed = queue::claim(&app.pool, "A", &kinds, &["any".into()], 1.0).await.unwrap().unwrap();
    assert_eq!(claimed.id, id);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (job, outcome) = worker::run_next(&app.pool, &config("B", &models)).await.unwrap().unwrap();
    assert_eq!((job.id, outcome), (id, Outcome::Succeeded));
    let (state, attempts, error) = status(&app, id).await;
    assert_eq!((state.as_str(), attempts), ("succeeded", 2));
    assert!(error.unwrap().contains("worker A stopped renewing its lease"));
    assert_eq!(app.count("SELECT count(*) FROM model_versions WHERE name = 'survivor'").await, 2);
    let _ = std::fs::remove_dir_all(&models);
}

#[tokio::test]
async fn a_failed_training_job_leaves_the_serving_model_alone() {
    let app = TestApp::spawn().await;
    app.import_text("fashion", Format::Csv, &labelled_csv()).await;
    let models = scratch_dir();
    pipeline::run(&app.pool, &settings(&models, "serving"), &mut |_, _| {}).await.unwrap();
    sqlx::query("UPDATE model_versions SET status = 'active' WHERE name = 'serving'")
        .execute(&app.pool)
        .await
        .unwrap();
    let mut broken = settings(&models, "broken");
    broken.base = Some(reviewloop::names::SafeName::parse("nonexistent-encoder").unwrap());
    let id = enqueue(&app, "train", serde_json::to_value(broken).unwrap(), 2).await;
    let config = config("w", &models);
    for attempt in 1..=2 {
        let (_, outcome) = worker::run_next(&app.pool, &config).await.unwrap().unwrap();
        assert!(
            matches!(outcome, Outcome::Failed(ref e) if e.contains("nonexistent-encoder")),
            "{attempt}: {outcome:?}"
        );
    }
    let (state, attempts, _) = status(&app, id).await;
    assert_eq!((state.as_str(), attempts), ("failed", 2), "failed for good after its last attempt");
    assert!(worker::run_next(&app.pool, &config).await.unwrap().is_none());
    assert_eq!(
        app.count("SELECT count(*) FROM model_versions WHERE name = 'serving' AND status = 'active'").await,
        2
    );
    assert_eq!(app.count("SELECT count(*) FROM model_versions WHERE name = 'broken'").await, 0);
    let serving = reviewloop::store::models::serving(&app.pool, "fashion").await.unwrap();
    assert_eq!(serving.name, "serving");
    assert_eq!(app.count("SELECT count(*) FROM job_logs WHERE line LIKE 'attempt % failed:%'").await, 2);
    let _ = std::fs::remove_dir_all(&models);
}

#[tokio::test]
async fn a_cancelled_training_job_stops_and_writes_nothing() {
    let app = TestApp::spawn().await;
    app.import_text("fashion", Format::Csv, &labelled_csv()).await;
    let models = scratch_dir();
    let id = enqueue(&app, "train", train_payload(&models, "cancelled", 20_000), 3).await;
    // The worker runs on a thread and runtime of its own, as beside `serve`: training
    // keeps its thread busy between awaits.
    let (url, config) = (app.database_url.clone(), config("w", &models));
    let running = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            let pool = reviewloop::store::connect(&url).await.unwrap();
            worker::run_next(&pool, &config).await.unwrap().unwrap().1
        })
    });
    // Cancel once the job reports progress.
    for _ in 0..600 {
        let progress: serde_json::Value = sqlx::query_scalar("SELECT progress FROM jobs WHERE id = $1")
            .bind(id)
            .fetch_one(&app.pool)
            .await
            .unwrap();
        if progress.get("step").is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(queue::cancel(&app.pool, id).await.unwrap());
    for _ in 0..600 {
        if running.is_finished() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(running.is_finished(), "the training stops within a minute of the cancel");
    assert_eq!(running.join().unwrap(), Outcome::Abandoned);
    assert_eq!(status(&app, id).await.0, "cancelled");
    assert_eq!(app.count("SELECT count(*) FROM model_versions").await, 0);
    let left = std::fs::read_dir(models.join("fashion")).map(|d| d.count()).unwrap_or(0);
    assert_eq!(left, 0, "no half-written version folder");
    let _ = std::fs::remove_dir_all(&models);
}

#[tokio::test]
async fn a_duplicate_job_is_refused_while_the_first_is_pending() {
    let app = TestApp::spawn().await;
    let mut job = NewJob::new("score", json!({"taxonomy": "fashion"}));
    job.dedup_key = Some("score:fashion".into());
    let mut conn = app.pool.acquire().await.unwrap();
    let first = queue::enqueue(&mut conn, &job).await.unwrap();
    let second = queue::enqueue(&mut conn, &job).await;
    assert!(matches!(second, Err(queue::EnqueueError::Duplicate(id)) if id == first));
    queue::cancel(&app.pool, first).await.unwrap();
    assert!(queue::enqueue(&mut conn, &job).await.is_ok(), "allowed again once the first is done");
    // Racing enqueues of a new key: exactly one wins, the others are told which.
    let racers = (0..8).map(|_| {
        let pool = app.pool.clone();
        tokio::spawn(async move {
            let mut job = NewJob::new("score", json!({"taxonomy": "nikl-absa"}));
            job.dedup_key = Some("score:nikl-absa".into());
            let mut conn = pool.acquire().await.unwrap();
            queue::enqueue(&mut conn, &job).await
        })
    });
    let mut won = 0;
    for racer in racers {
        match racer.await.unwrap() {
            Ok(_) => won += 1,
            Err(queue::EnqueueError::Duplicate(_)) => {}
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(won, 1);
}

#[tokio::test]
async fn an_evaluation_job_reports_a_version_on_the_test_split() {
    let app = TestApp::spawn().await;
    app.import_text("fashion", Format::Csv, &labelled_csv()).await;
    let models = scratch_dir();
    let outcome = pipeline::run(&app.pool, &settings(&models, "judged"), &mut |_, _| {}).await.unwrap();
    let id = enqueue(&app, "eval", json!({"version_id": outcome.version_ids.0}), 1).await;
    let (_, result) = worker::run_next(&app.pool, &config("w", &models)).await.unwrap().unwrap();
    assert_eq!(result, Outcome::Succeeded);
    let report: serde_json::Value = sqlx::query_scalar("SELECT result FROM jobs WHERE id = $1")
        .bind(id)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(report["keyword"]["labels"].as_array().unwrap().len(), 15);
    let missing = enqueue(&app, "eval", json!({"version_id": 999_999}), 1).await;
    let (_, result) = worker::run_next(&app.pool, &config("w", &models)).await.unwrap().unwrap();
    assert!(matches!(result, Outcome::Failed(ref e) if e.contains("no model version 999999")), "{result:?}");
    assert_eq!(status(&app, missing).await.0, "failed");
    let _ = std::fs::remove_dir_all(&models);
}

#[tokio::test]
async fn an_audit_job_records_label_issues() {
    let app = TestApp::spawn().await;
    app.import_text("fashion", Format::Csv, &labelled_csv()).await;
    let models = scratch_dir();
    let id = enqueue(&app, "audit", json!({"taxonomy": "fashion", "folds": 2, "epochs": 1}), 1).await;
    let (_, outcome) = worker::run_next(&app.pool, &config("w", &models)).await.unwrap().unwrap();
    assert_eq!(outcome, Outcome::Succeeded);
    let result: serde_json::Value = sqlx::query_scalar("SELECT result FROM jobs WHERE id = $1")
        .bind(id)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(result["reviews"], 60);
    assert_eq!(
        result["added"].as_u64().unwrap() as i64,
        app.count("SELECT count(*) FROM label_issues").await
    );
    assert!(app.count("SELECT count(*) FROM job_logs WHERE line LIKE 'fold 1/2 keyword:%'").await >= 1);
    let _ = std::fs::remove_dir_all(&models);
}
