//! Promoting a model version behind the F1 gate, and rolling back.

use reviewloop::promotion::{self, Gate, PromoteError};

use crate::helpers::{ready_version, TestApp};

async fn serving(app: &TestApp) -> Vec<String> {
    sqlx::query_scalar("SELECT name || '/' || kind FROM model_versions WHERE status = 'active' ORDER BY kind")
        .fetch_all(&app.pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn promotion_is_refused_when_a_keyword_falls_beyond_the_margin() {
    let app = TestApp::spawn().await;
    let taxonomy = app.taxonomy("fashion").await.id;
    ready_version(&app, "v1", &[("배송", 0.80), ("색상", 0.70)]).await;
    ready_version(&app, "v2", &[("배송", 0.90), ("색상", 0.60)]).await;
    let strict = Gate { margin: 0.05, override_reason: None };
    promotion::promote(&app.pool, taxonomy, "v1", None, &strict).await.unwrap();
    assert_eq!(serving(&app).await, ["v1/keyword", "v1/sentiment"]);

    let refused = promotion::promote(&app.pool, taxonomy, "v2", None, &strict).await.err().unwrap();
    assert!(
        matches!(&refused, PromoteError::Regressions { labels, .. } if labels.contains("색상")),
        "{refused}"
    );
    assert_eq!(serving(&app).await, ["v1/keyword", "v1/sentiment"], "nothing switched");

    let lenient = Gate { margin: 0.2, override_reason: None };
    promotion::promote(&app.pool, taxonomy, "v2", None, &lenient).await.unwrap();
    assert_eq!(serving(&app).await, ["v2/keyword", "v2/sentiment"]);
}

#[tokio::test]
async fn a_reason_overrides_the_gate_and_is_recorded() {
    let app = TestApp::spawn().await;
    let taxonomy = app.taxonomy("fashion").await.id;
    ready_version(&app, "v1", &[("배송", 0.80)]).await;
    ready_version(&app, "v2", &[("배송", 0.50)]).await;
    let gate = Gate { margin: 0.05, override_reason: None };
    promotion::promote(&app.pool, taxonomy, "v1", None, &gate).await.unwrap();
    let blank = Gate { margin: 0.05, override_reason: Some("  ") };
    assert!(
        promotion::promote(&app.pool, taxonomy, "v2", None, &blank).await.is_err(),
        "a blank reason is none"
    );
    let reasoned = Gate { margin: 0.05, override_reason: Some("배송 라벨 재검수 후 기준 변경") };
    let switched = promotion::promote(&app.pool, taxonomy, "v2", None, &reasoned).await.unwrap();
    assert_eq!(switched.from.as_deref(), Some("v1"));
    let details: serde_json::Value = sqlx::query_scalar(
        "SELECT details FROM audit_log WHERE action = 'model.promote' ORDER BY id DESC LIMIT 1",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(details["override_reason"], "배송 라벨 재검수 후 기준 변경");
    assert_eq!(details["from"], "v1");
}

#[tokio::test]
async fn rollback_serves_the_previous_version_again() {
    let app = TestApp::spawn().await;
    let taxonomy = app.taxonomy("fashion").await.id;
    assert!(matches!(
        promotion::rollback(&app.pool, taxonomy, None).await,
        Err(PromoteError::NothingToRollBack)
    ));
    ready_version(&app, "v1", &[("배송", 0.8)]).await;
    ready_version(&app, "v2", &[("배송", 0.9)]).await;
    let gate = Gate { margin: 0.05, override_reason: None };
    promotion::promote(&app.pool, taxonomy, "v1", None, &gate).await.unwrap();
    promotion::promote(&app.pool, taxonomy, "v2", None, &gate).await.unwrap();
    let back = promotion::rollback(&app.pool, taxonomy, None).await.unwrap();
    assert_eq!((back.from.as_deref(), back.to.as_str()), (Some("v2"), "v1"));
    assert_eq!(serving(&app).await, ["v1/keyword", "v1/sentiment"]);
    assert_eq!(app.count("SELECT count(*) FROM audit_log WHERE action = 'model.rollback'").await, 1);
    // Each switch queues a scoring pass by the new serving version (one at a time).
    assert_eq!(app.count("SELECT count(*) FROM jobs WHERE kind = 'score' AND status = 'queued'").await, 1);
    assert!(matches!(
        promotion::promote(&app.pool, taxonomy, "v1", None, &gate).await,
        Err(PromoteError::AlreadyActive(_))
    ));
    assert!(matches!(
        promotion::promote(&app.pool, taxonomy, "nope", None, &gate).await,
        Err(PromoteError::NotFound(_))
    ));
}

#[tokio::test]
async fn concurrent_promotions_take_turns_and_the_losers_are_told_why() {
    let app = TestApp::spawn().await;
    let taxonomy = app.taxonomy("fashion").await.id;
    ready_version(&app, "v1", &[("배송", 0.80)]).await;
    ready_version(&app, "v2", &[("배송", 0.90)]).await;
    let gate = Gate { margin: 0.05, override_reason: None };
    let names = ["v1", "v1", "v1", "v2", "v2", "v2", "v1", "v2"];
    let outcomes = futures_util::future::join_all(
        names.iter().map(|name| promotion::promote(&app.pool, taxonomy, name, None, &gate)),
    )
    .await;
    for outcome in &outcomes {
        assert!(
            matches!(outcome, Ok(_) | Err(PromoteError::AlreadyActive(_) | PromoteError::Regressions { .. })),
            "a clear answer, judged against what serves then, never a database error: {outcome:?}"
        );
    }
    assert!(outcomes.iter().any(|o| o.is_err()), "the same version twice in a row is refused");
    let active = serving(&app).await;
    assert_eq!(active.len(), 2, "one version serves, both of its kinds: {active:?}");
    assert_eq!(active[0].split('/').next(), active[1].split('/').next());
}
