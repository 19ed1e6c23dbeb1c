//! The engineer's retraining pages over HTTP: launch, follow, cancel; compare and promote.

use reviewloop::import::Format;
use reviewloop::store::users::Role;
use serde_json::json;

use crate::helpers::{location, pairs, ready_version, TestApp};

fn train_form(csrf: &str, snapshot: &str) -> Vec<(String, String)> {
    pairs(&[
        ("csrf", csrf),
        ("taxonomy", "fashion"),
        ("snapshot", snapshot),
        ("name", "from-page"),
        ("base", ""),
        ("epochs", "3"),
        ("learning_rate", "0.001"),
        ("batch_size", "16"),
        ("patience", "2"),
        ("seed", "7"),
        ("pooling", "mean"),
        ("sentiment_input", "pair"),
        ("pretrain_epochs", "0"),
        ("device", "cuda"),
    ])
}

#[tokio::test]
async fn an_engineer_launches_training_follows_it_and_cancels_it() {
    let app = TestApp::spawn().await;
    app.import_text("fashion", Format::Csv, "text,labels\n배송이 빨라요,배송1\n").await;
    let engineer = app.logged_in(Role::Engineer).await;
    // One labelled review: refused on the form, saying how many it needs, nothing queued.
    let csrf = engineer.csrf().await;
    let refused = engineer.post_form("/engineer/training", &train_form(&csrf, "new")).await;
    assert_eq!(refused.status(), 422);
    assert!(refused.text().await.unwrap().contains("라벨된 리뷰가 1개입니다. 학습하려면 10개가 필요합니다."));
    assert_eq!(app.count("SELECT count(*) FROM jobs").await, 0);
    app.import_text("fashion", Format::Csv, &crate::train::labelled_csv()).await;
    let engineer = app.logged_in(Role::Engineer).await;
    let page = engineer.get("/engineer/training?taxonomy=fashion").await.text().await.unwrap();
    assert!(page.contains("id=\"train-form\"") && page.contains("value=\"40\""), "defaults are shown");
    let csrf = engineer.csrf().await;

    let response = engineer.post_form("/engineer/training", &train_form(&csrf, "new")).await;
    assert_eq!(response.status(), 303);
    let job_url = location(&response);
    let id: i64 = job_url.trim_start_matches("/engineer/jobs/").parse().unwrap();
    let payload: serde_json::Value = sqlx::query_scalar("SELECT payload FROM jobs WHERE id = $1")
        .bind(id)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!((payload["fit"]["epochs"].as_u64(), payload["device"].as_str()), (Some(3), Some("cuda")));
    assert_eq!(payload["name"], "from-page");
    let snapshot = payload["snapshot"].as_i64().expect("a snapshot was recorded with the job");
    assert_eq!(app.count(&format!("SELECT count(*) FROM label_snapshots WHERE id = {snapshot}")).await, 1);

    let page = engineer.get(&job_url).await.text().await.unwrap();
    assert!(
        page.contains("/static/job.js") && page.contains("data-status=\"queued\"") && page.contains(">대기<")
    );
    sqlx::query("INSERT INTO job_logs (job_id, line) VALUES ($1, 'keyword: epoch 1')")
        .bind(id)
        .execute(&app.pool)
        .await
        .unwrap();
    sqlx::query("UPDATE jobs SET progress = $2 WHERE id = $1")
        .bind(id)
        .bind(json!({"stage": "keyword", "step": 3, "total_steps": 9, "eta_seconds": 12}))
        .execute(&app.pool)
        .await
        .unwrap();
    let status: serde_json::Value =
        engineer.get(&format!("{job_url}/status?after=0")).await.json().await.unwrap();
    assert_eq!(status["job"]["progress"]["step"], 3);
    assert_eq!(status["logs"][0]["line"], "keyword: epoch 1");
    let last = status["logs"][0]["id"].as_i64().unwrap();
    let later: serde_json::Value =
        engineer.get(&format!("{job_url}/status?after={last}")).await.json().await.unwrap();
    assert_eq!(later["logs"].as_array().unwrap().len(), 0, "only new lines");

    let response = engineer.post_form(&format!("{job_url}/cancel"), &pairs(&[("csrf", &csrf)])).await;
    assert_eq!(location(&response), job_url);
    assert_eq!(
        app.count(&format!("SELECT count(*) FROM jobs WHERE id = {id} AND status = 'cancelled'")).await,
        1
    );

    // A named snapshot is used as is; a bad value or a missing CSRF token is refused.
    let response = engineer.post_form("/engineer/training", &train_form(&csrf, &snapshot.to_string())).await;
    assert_eq!(response.status(), 303);
    assert_eq!(app.count("SELECT count(*) FROM label_snapshots").await, 1);
    assert_eq!(engineer.post_form("/engineer/training", &train_form(&csrf, "latest")).await.status(), 400);
    assert_eq!(engineer.post_form("/engineer/training", &train_form("forged", "new")).await.status(), 403);
    let mut bad_name = train_form(&csrf, "new");
    bad_name[3].1 = "../escape".into();
    assert_eq!(engineer.post_form("/engineer/training", &bad_name).await.status(), 400);
}

/// The page offers the bases on disk (never a free path), shows the defaults of the one
/// chosen, and refuses any base that is not among them.
#[tokio::test]
async fn the_training_page_picks_a_base_from_those_on_disk_only() {
    let app = TestApp::spawn().await;
    app.import_text("fashion", Format::Csv, &crate::train::labelled_csv()).await;
    crate::train::tiny_base(&app.data_dir);
    let engineer = app.logged_in(Role::Engineer).await;
    let page = engineer.get("/engineer/training?taxonomy=fashion").await.text().await.unwrap();
    assert!(page.contains("<option value=\"tiny-roberta\""), "the base on disk is offered");
    assert!(!page.contains("name=\"base\" placeholder"), "no free path field");
    let chosen =
        engineer.get("/engineer/training?taxonomy=fashion&base=tiny-roberta").await.text().await.unwrap();
    assert!(
        chosen.contains("value=\"10\"") && chosen.contains("value=\"tiny-roberta\" selected"),
        "its defaults"
    );
    assert_eq!(engineer.get("/engineer/training?taxonomy=fashion&base=..%2Fetc").await.status(), 400);

    let csrf = engineer.csrf().await;
    let mut form = train_form(&csrf, "new");
    form[4].1 = "tiny-roberta".into();
    assert_eq!(engineer.post_form("/engineer/training", &form).await.status(), 303);
    let payload: serde_json::Value = sqlx::query_scalar("SELECT payload FROM jobs ORDER BY id DESC LIMIT 1")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(payload["base"], "tiny-roberta");
    for refused in ["/tmp/klue-roberta-base", "../base/tiny-roberta", "not-on-disk"] {
        form[4].1 = refused.into();
        let response = engineer.post_form("/engineer/training", &form).await;
        assert_eq!(response.status(), 400, "{refused}");
    }
    assert_eq!(app.count("SELECT count(*) FROM jobs").await, 1, "nothing queued for a refused base");
}

#[tokio::test]
async fn the_models_page_compares_and_promotion_passes_the_gate_only_with_a_reason() {
    let app = TestApp::spawn().await;
    ready_version(&app, "v1", &[("배송", 0.80), ("색상", 0.70)]).await;
    ready_version(&app, "v2", &[("배송", 0.90), ("색상", 0.50)]).await;
    let engineer = app.logged_in(Role::Engineer).await;
    let csrf = engineer.csrf().await;
    let promote = |name: &str, reason: &str| {
        pairs(&[("csrf", &csrf), ("taxonomy", "fashion"), ("name", name), ("reason", reason)])
    };
    assert_eq!(
        location(&engineer.post_form("/engineer/models/promote", &promote("v1", "")).await),
        "/engineer/models?taxonomy=fashion"
    );

    let page = engineer.get("/engineer/models?taxonomy=fashion&compare=v2").await.text().await.unwrap();
    assert!(page.contains("<tr class=\"better\">\n    <td>배송</td>"), "배송 improved");
    assert!(page.contains("<tr class=\"fallen\">\n    <td>색상</td>"), "색상 fell beyond the margin");
    assert!(page.contains("+0.100") && page.contains("-0.200"));

    let refused = engineer.post_form("/engineer/models/promote", &promote("v2", "")).await;
    assert_eq!(refused.status(), 409);
    assert!(refused.text().await.unwrap().contains("id=\"gate-error\""));
    let serving = "SELECT count(*) FROM model_versions WHERE name = 'v1' AND status = 'active'";
    assert_eq!(app.count(serving).await, 2);

    let accepted = engineer.post_form("/engineer/models/promote", &promote("v2", "색상 기준 변경")).await;
    assert_eq!(accepted.status(), 303);
    assert_eq!(
        app.count("SELECT count(*) FROM model_versions WHERE name = 'v2' AND status = 'active'").await,
        2
    );
    let actor: Option<i64> = sqlx::query_scalar(
        "SELECT actor_id FROM audit_log WHERE action = 'model.promote' ORDER BY id DESC LIMIT 1",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert!(actor.is_some(), "the audit log names who promoted");

    let rolled = engineer
        .post_form("/engineer/models/rollback", &pairs(&[("csrf", &csrf), ("taxonomy", "fashion")]))
        .await;
    assert_eq!(rolled.status(), 303);
    assert_eq!(app.count(serving).await, 2);
}
