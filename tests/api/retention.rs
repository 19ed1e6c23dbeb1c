//! Retention: old versions lose their files by a rule, in PostgreSQL and in an object
//! store, while the serving one, the rollback target, the newest, pinned ones and those
//! a queued job names are kept.

use reviewloop::config::StorageLocation;
use reviewloop::promotion::{self, Gate};
use reviewloop::retention;
use reviewloop::storage::{version_bundle, Storage};

use crate::helpers::{ready_version, TestApp};
use crate::train::scratch_dir;

const NAMES: [&str; 6] = ["v1", "v2", "v3", "v4", "v5", "v6"];

/// Six versions, each stored (a 1,000-byte file per kind) and cached on this host.
async fn six_versions(app: &TestApp, storage: &Storage) {
    for name in NAMES {
        ready_version(app, name, &[("배송", 0.8)]).await;
        let folder = scratch_dir();
        for kind in ["keyword", "sentiment"] {
            std::fs::create_dir_all(folder.join(kind)).unwrap();
            std::fs::write(folder.join(kind).join("model.safetensors"), vec![7u8; 1000]).unwrap();
        }
        let stored = storage.put_once(&version_bundle("fashion", name), &folder).await.unwrap().unwrap();
        sqlx::query("UPDATE model_versions SET bundle_id = $1 WHERE name = $2")
            .bind(stored.bundle_id)
            .bind(name)
            .execute(&app.pool)
            .await
            .unwrap();
        let cache = app.data_dir.join("fashion").join(name).join("keyword");
        std::fs::create_dir_all(&cache).unwrap();
        std::fs::write(cache.join("model.safetensors"), vec![7u8; 1000]).unwrap();
    }
}

async fn prunes_only_what_the_rule_lets_go(app: &TestApp, storage: Storage) {
    six_versions(app, &storage).await;
    let taxonomy = app.taxonomy("fashion").await.id;
    let gate = Gate { margin: 1.0, override_reason: None };
    promotion::promote(&app.pool, taxonomy, "v1", None, &gate).await.unwrap();
    promotion::promote(&app.pool, taxonomy, "v2", None, &gate).await.unwrap(); // v1: rollback's
    assert!(retention::pin(&app.pool, taxonomy, "v3", true).await.unwrap());
    sqlx::query("INSERT INTO jobs (kind, payload) VALUES ('compare', '{\"cycle\": 1, \"version\": \"v4\"}')")
        .execute(&app.pool)
        .await
        .unwrap();

    let plan = retention::plan(&app.pool, taxonomy, 1).await.unwrap();
    assert_eq!(plan.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(), ["v5"], "v6 is the newest");
    assert_eq!(plan[0].bytes, 2000);
    let done = retention::prune(&storage, &app.data_dir, "fashion", taxonomy, 1).await.unwrap();
    assert_eq!(
        (done.versions.clone(), done.stored_bytes, done.cached_bytes),
        (vec!["v5".to_string()], 2000, 1000)
    );
    assert!(storage.find(&version_bundle("fashion", "v5")).await.unwrap().is_none(), "its bundle is gone");
    assert!(!app.data_dir.join("fashion/v5").exists(), "and its cached folder");
    let statuses: Vec<(String, String)> =
        sqlx::query_as("SELECT name, status FROM model_versions WHERE kind = 'keyword' ORDER BY name")
            .fetch_all(&app.pool)
            .await
            .unwrap();
    let pruned: Vec<&str> = statuses.iter().filter(|(_, s)| s == "pruned").map(|(n, _)| n.as_str()).collect();
    assert_eq!(pruned, ["v5"], "the row stays, marked: {statuses:?}");
    for kept in ["v1", "v2", "v3", "v4", "v6"] {
        assert!(storage.find(&version_bundle("fashion", kept)).await.unwrap().is_some(), "{kept} kept");
    }
    assert!(
        promotion::promote(&app.pool, taxonomy, "v5", None, &gate).await.is_err(),
        "a pruned one never serves"
    );

    // Unpinned and its job ended, v3 and v4 go on the next pass; a second pass with
    // nothing to prune frees nothing.
    assert!(retention::pin(&app.pool, taxonomy, "v3", false).await.unwrap());
    sqlx::query("UPDATE jobs SET status = 'succeeded'").execute(&app.pool).await.unwrap();
    let done = retention::prune(&storage, &app.data_dir, "fashion", taxonomy, 1).await.unwrap();
    assert_eq!(done.versions, ["v3", "v4"]);
    let again = retention::prune(&storage, &app.data_dir, "fashion", taxonomy, 1).await.unwrap();
    assert_eq!((again.versions.len(), again.stored_bytes), (0, 0));
}

#[tokio::test]
async fn old_versions_are_pruned_in_postgres_keeping_what_the_rule_keeps() {
    let app = TestApp::spawn().await;
    let storage = Storage::open(&app.pool, &StorageLocation::Postgres).unwrap();
    prunes_only_what_the_rule_lets_go(&app, storage).await;
    let chunks = app.count("SELECT count(*) FROM bundle_chunks").await;
    assert_eq!(chunks, 3 * 2, "three stored versions of two files left, one piece each");
}

#[tokio::test]
async fn old_versions_are_pruned_in_an_object_store() {
    let app = TestApp::spawn().await;
    let bucket = scratch_dir();
    let location: StorageLocation = format!("file://{}", bucket.display()).parse().unwrap();
    let storage = Storage::open(&app.pool, &location).unwrap();
    prunes_only_what_the_rule_lets_go(&app, storage).await;
    assert!(!bucket.join("version/fashion/v5/keyword/model.safetensors").exists(), "its objects are gone");
    assert!(bucket.join("version/fashion/v6/keyword/model.safetensors").is_file());
}

#[tokio::test]
async fn an_engineer_sees_what_would_go_pins_one_and_prunes_the_rest_from_the_versions_page() {
    let app = TestApp::spawn().await;
    let storage = Storage::open(&app.pool, &StorageLocation::Postgres).unwrap();
    six_versions(&app, &storage).await;
    let taxonomy = app.taxonomy("fashion").await.id;
    let gate = Gate { margin: 1.0, override_reason: None };
    promotion::promote(&app.pool, taxonomy, "v1", None, &gate).await.unwrap();
    let engineer = app.logged_in(reviewloop::store::users::Role::Engineer).await;
    let page = engineer.get("/engineer/models").await.text().await.unwrap();
    assert!(
        page.contains("지금 정리하면 지울 버전: v2, v3"),
        "the last three and the serving one stay: {page}"
    );

    let form = |csrf: &str, extra: &[(&str, &str)]| -> Vec<(String, String)> {
        [("csrf", csrf), ("taxonomy", "fashion")]
            .iter()
            .chain(extra)
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    let csrf = crate::helpers::csrf_in(&page).unwrap();
    let pinned =
        engineer.post_form("/engineer/models/pin", &form(&csrf, &[("name", "v3"), ("pinned", "on")])).await;
    assert_eq!(pinned.status(), 303);
    let page = engineer.get("/engineer/models").await.text().await.unwrap();
    assert!(page.contains("지울 버전: v2 (") && page.contains("고정됨"), "{page}");

    let pruned = engineer.post_form("/engineer/models/prune", &form(&csrf, &[])).await;
    assert_eq!(pruned.status(), 303);
    let page = engineer.get(&crate::helpers::location(&pruned)).await.text().await.unwrap();
    assert!(page.contains("버전 1개의 파일을 지웠습니다") && page.contains("지울 버전이 없습니다"), "{page}");
    assert!(page.contains("정리됨 (파일 삭제)"), "v2 is listed as pruned: {page}");
    assert_eq!(
        app.count("SELECT count(*) FROM model_versions WHERE status = 'pruned'").await,
        2,
        "both kinds of v2"
    );
    assert_eq!(app.count("SELECT count(*) FROM audit_log WHERE action = 'model.prune'").await, 1);
}
