//! reviewloop as a small cluster whose only shared part is PostgreSQL: versions and
//! bases in shared storage, fetched into each host's data dir and checked; scoring
//! shared out in chunks among worker processes, one of them killed.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use reviewloop::config::StorageLocation;
use reviewloop::import::Format;
use reviewloop::promotion::{self, Gate};
use reviewloop::storage::Storage;
use reviewloop::store::api_keys;
use reviewloop::train::pipeline;
use serde_json::json;

use crate::helpers::{client, TestApp};
use crate::train::{labelled_csv, scratch_dir, settings, tiny_base};

/// A folder of a model's shape: nested files, one over several storage pieces, and a
/// hidden writer's file that is not part of it.
fn sample_folder() -> PathBuf {
    let dir = scratch_dir();
    std::fs::create_dir_all(dir.join("keyword")).unwrap();
    let big: Vec<u8> = (0..9_000_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8).collect();
    std::fs::write(dir.join("keyword/model.safetensors"), big).unwrap();
    std::fs::write(dir.join("keyword/labels.json"), r#"{"keywords": ["배송", "색상"]}"#).unwrap();
    std::fs::write(dir.join("README.md"), "# 모델 카드 👍").unwrap();
    std::fs::write(dir.join(".owner"), "host:1").unwrap();
    dir
}

fn same_files(a: &Path, b: &Path) {
    for file in ["keyword/model.safetensors", "keyword/labels.json", "README.md"] {
        assert!(
            std::fs::read(a.join(file)).unwrap() == std::fs::read(b.join(file)).unwrap(),
            "{file} differs"
        );
    }
}

/// Flips one byte in the middle of a file, keeping its size.
fn damage(path: &Path) {
    let mut bytes = std::fs::read(path).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(path, bytes).unwrap();
}

async fn round_trip(app: &TestApp, location: StorageLocation) {
    let storage = Storage::open(&app.pool, &location).unwrap();
    let source = sample_folder();
    let mut tx = app.pool.begin().await.unwrap();
    let stored = storage.put(&mut tx, "version/fashion/v1", &source).await.unwrap();
    tx.commit().await.unwrap();
    let bytes: u64 = ["keyword/model.safetensors", "keyword/labels.json", "README.md"]
        .iter()
        .map(|f| std::fs::metadata(source.join(f)).unwrap().len())
        .sum();
    assert_eq!((stored.files, stored.bytes), (3, bytes as i64));

    let cache = scratch_dir().join("fashion/v1");
    let first = storage.fetch(stored.bundle_id, &cache).await.unwrap();
    assert_eq!(first.files, 3);
    same_files(&source, &cache);
    assert!(!cache.join(".owner").exists(), "hidden files are not stored");
    assert_eq!(storage.fetch(stored.bundle_id, &cache).await.unwrap().files, 0, "a good cache is kept");

    damage(&cache.join("keyword/model.safetensors"));
    std::fs::write(cache.join("README.md"), "short").unwrap();
    let again = storage.fetch(stored.bundle_id, &cache).await.unwrap();
    assert_eq!(again.files, 2, "the damaged and the truncated file are fetched again");
    same_files(&source, &cache);

    let mut tx = app.pool.begin().await.unwrap();
    assert!(storage.put(&mut tx, "version/fashion/v1", &source).await.is_err(), "a name is stored once");
}

#[tokio::test]
async fn a_stored_folder_comes_back_checked_from_postgres_and_from_an_object_store() {
    let app = TestApp::spawn().await;
    round_trip(&app, StorageLocation::Postgres).await;
    let bucket = scratch_dir();
    let app = TestApp::spawn().await;
    round_trip(&app, format!("file://{}", bucket.display()).parse().unwrap()).await;
    assert!(
        bucket.join("version/fashion/v1/keyword/model.safetensors").is_file(),
        "the objects are in the folder"
    );
}

#[tokio::test]
async fn an_upload_that_never_commits_leaves_nothing_visible() {
    let app = TestApp::spawn().await;
    let storage = Storage::open(&app.pool, &StorageLocation::Postgres).unwrap();
    let mut tx = app.pool.begin().await.unwrap();
    storage.put(&mut tx, "version/fashion/killed", &sample_folder()).await.unwrap();
    // The writer dies before its commit: PostgreSQL rolls the transaction back.
    drop(tx);
    assert!(storage.find("version/fashion/killed").await.unwrap().is_none());
    assert_eq!(app.count("SELECT count(*) FROM bundle_chunks").await, 0);
}

fn binary() -> Command {
    Command::new(env!("CARGO_BIN_EXE_reviewloop"))
}

/// A `reviewloop worker` process with a data dir of its own (another "host").
fn worker(app: &TestApp, data_dir: &Path, once: bool) -> Child {
    let mut command = binary();
    command.arg("worker").args(["--lease-seconds", "5", "--retry-seconds", "0"]);
    if once {
        command.arg("--once");
    }
    command.arg("--data-dir").arg(data_dir).arg("--database-url").arg(&app.database_url);
    command.env("RUST_LOG", "warn").spawn().expect("the worker starts")
}

async fn job_status(app: &TestApp, id: i64) -> (String, Option<String>) {
    sqlx::query_as("SELECT status, last_error FROM jobs WHERE id = $1")
        .bind(id)
        .fetch_one(&app.pool)
        .await
        .unwrap()
}

async fn enqueue(app: &TestApp, kind: &str, payload: serde_json::Value) -> i64 {
    let job = reviewloop::jobs::NewJob::new(kind, payload);
    reviewloop::store::jobs::enqueue(&mut app.pool.acquire().await.unwrap(), &job).await.unwrap()
}

async fn analyze(app: &TestApp, key: &str) -> (u16, serde_json::Value) {
    let response = client()
        .post(app.url("/api/v1/analyze"))
        .bearer_auth(key)
        .json(&json!({"text": "배송이 빨라요 색감도 예뻐요"}))
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

#[tokio::test]
async fn a_version_trained_on_one_host_serves_from_another_and_a_damaged_cache_is_fetched_again() {
    // The web host: this test's app, with an empty data dir.
    let web = TestApp::spawn().await;
    web.import_text("fashion", Format::Csv, &labelled_csv()).await;
    // The base is imported on a third machine and stored; the training host has none.
    let elsewhere = scratch_dir();
    let base = tiny_base(&elsewhere);
    let storage = Storage::open(&web.pool, &StorageLocation::Postgres).unwrap();
    reviewloop::bases::store(&storage, &elsewhere, &base).await.unwrap().expect("stored");

    let gpu_host = scratch_dir();
    // The worker puts its own data dir in place of the payload's.
    let mut payload = serde_json::to_value(settings(&elsewhere, "two-hosts")).unwrap();
    payload["fit"]["epochs"] = json!(1);
    let job = enqueue(&web, "train", payload).await;
    let status = worker(&web, &gpu_host, true).wait().unwrap();
    assert!(status.success());
    assert_eq!(job_status(&web, job).await.0, "succeeded", "{:?}", job_status(&web, job).await.1);
    assert!(gpu_host.join("base/tiny-roberta/model.safetensors").is_file(), "the base was fetched");
    let (path, bundle): (String, Option<i64>) = sqlx::query_as(
        "SELECT path, bundle_id FROM model_versions WHERE name = 'two-hosts' AND kind = 'keyword'",
    )
    .fetch_one(&web.pool)
    .await
    .unwrap();
    assert_eq!((path.as_str(), bundle.is_some()), ("fashion/two-hosts/keyword", true));
    let cached = web.data_dir.join("fashion/two-hosts/keyword/model.safetensors");
    assert!(!cached.exists(), "nothing of it is on the web host yet");

    let taxonomy = web.taxonomy("fashion").await.id;
    let gate = Gate { margin: 1.0, override_reason: Some("test") };
    promotion::promote(&web.pool, taxonomy, "two-hosts", None, &gate).await.unwrap();
    let (_, key) = api_keys::create(&web.pool, "client", 10_000, None).await.unwrap();
    let (status, body) = analyze(&web, &key).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["model"]["version"], "two-hosts", "{body}");
    let good = std::fs::read(&cached).expect("fetched into the web host's cache");

    // A damaged cache: another app on the same data dir finds it out and fetches again.
    damage(&cached);
    let again = TestApp::beside(&web, web.data_dir.clone()).await;
    let (status, body) = analyze(&again, &key).await;
    assert_eq!(status, 200, "{body}");
    assert!(std::fs::read(&cached).unwrap() == good, "the damaged file was fetched again");
}

#[tokio::test]
async fn three_workers_share_a_scoring_pass_and_one_killed_mid_chunk_loses_nothing() {
    let app = TestApp::spawn().await;
    app.import_text("fashion", Format::Csv, &labelled_csv()).await;
    let pool_csv = String::from_utf8(reviewloop::bench::generated_csv(1500, false)).unwrap();
    app.import_text("fashion", Format::Csv, &pool_csv).await;
    let models = scratch_dir();
    let mut train = settings(&models, "shared");
    train.fit.epochs = 1;
    train.storage = Some(StorageLocation::Postgres);
    pipeline::run(&app.pool, &train, &mut |_, _| {}).await.unwrap();
    let job =
        enqueue(&app, "score", json!({"taxonomy": "fashion", "chunk_size": 100, "batch_size": 10})).await;

    let mut workers: Vec<Child> = (0..3).map(|_| worker(&app, &scratch_dir(), false)).collect();
    let victim = workers[0].id();
    let started = Instant::now();
    // Killed while it holds a chunk, with some of its batches stored.
    loop {
        assert!(started.elapsed() < Duration::from_secs(180), "worker {victim} never ran a chunk");
        let holding: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM jobs WHERE kind = 'score-chunk' AND status = 'running'
               AND worker_id LIKE '%:' || $1 AND (progress->>'done')::int > 0",
        )
        .bind(victim.to_string())
        .fetch_one(&app.pool)
        .await
        .unwrap();
        if holding > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    workers[0].kill().unwrap();
    workers[0].wait().unwrap();
    loop {
        assert!(started.elapsed() < Duration::from_secs(300), "the pass did not finish");
        let (status, error) = job_status(&app, job).await;
        assert_ne!(status, "failed", "{error:?}");
        if status == "succeeded" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for w in &mut workers[1..] {
        w.kill().unwrap();
        w.wait().unwrap();
    }

    let version = "(SELECT id FROM model_versions WHERE name = 'shared' AND kind = 'keyword')";
    let reviews = app.count("SELECT count(*) FROM reviews").await;
    assert_eq!(reviews, 1560);
    assert_eq!(
        app.count(&format!("SELECT count(*) FROM predictions WHERE model_version_id = {version}")).await,
        reviews
    );
    assert_eq!(
        app.count(&format!(
            "SELECT count(*) FROM review_scores WHERE model_version_id = {version} AND cluster IS NOT NULL"
        ))
        .await,
        reviews,
        "every review scored once and clustered"
    );
    assert_eq!(
        app.count("SELECT count(*) FROM jobs WHERE kind = 'score-chunk' AND status <> 'succeeded'").await,
        0
    );
    assert!(app.count("SELECT count(*) FROM jobs WHERE kind = 'score-chunk'").await >= 16);
    assert!(
        app.count("SELECT count(*) FROM jobs WHERE kind = 'score-chunk' AND last_error LIKE '%stopped renewing its lease%'").await >= 1,
        "the killed worker's chunk was taken over"
    );
    let workers_used =
        app.count("SELECT count(DISTINCT worker_id) FROM jobs WHERE kind = 'score-chunk'").await;
    assert!(workers_used >= 2, "chunks ran on {workers_used} workers");
    let result: serde_json::Value = sqlx::query_scalar("SELECT result FROM jobs WHERE id = $1")
        .bind(job)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(result["covered"], reviews, "{result}");
}

#[tokio::test]
async fn a_promotion_cancels_the_old_versions_chunks_that_have_not_started() {
    let app = TestApp::spawn().await;
    crate::helpers::ready_version(&app, "old", &[]).await;
    crate::helpers::ready_version(&app, "new", &[]).await;
    let id = |name: &'static str| {
        let pool = app.pool.clone();
        async move {
            sqlx::query_scalar::<_, i64>("SELECT id FROM model_versions WHERE name = $1 AND kind = 'keyword'")
                .bind(name)
                .fetch_one(&pool)
                .await
                .unwrap()
        }
    };
    let (old, new) = (id("old").await, id("new").await);
    let chunk = |version: i64, from: i64| json!({"taxonomy": "fashion", "version_id": version, "from": from, "to": from + 9, "batch_size": 5, "pass": 0});
    let queued_old = enqueue(&app, "score-chunk", chunk(old, 1)).await;
    let running_old = enqueue(&app, "score-chunk", chunk(old, 11)).await;
    sqlx::query("UPDATE jobs SET status = 'running' WHERE id = $1")
        .bind(running_old)
        .execute(&app.pool)
        .await
        .unwrap();
    let queued_new = enqueue(&app, "score-chunk", chunk(new, 1)).await;
    let taxonomy = app.taxonomy("fashion").await.id;
    let gate = Gate { margin: 1.0, override_reason: Some("test") };
    promotion::promote(&app.pool, taxonomy, "new", None, &gate).await.unwrap();
    assert_eq!(job_status(&app, queued_old).await.0, "cancelled");
    assert_eq!(job_status(&app, running_old).await.0, "running", "a started chunk finishes");
    assert_eq!(job_status(&app, queued_new).await.0, "queued");
}
