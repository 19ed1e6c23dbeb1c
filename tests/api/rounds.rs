//! Sampling rounds from the pool.

use std::collections::HashMap;

use reviewloop::import::Format;
use reviewloop::rounds::{GroupBy, RoundSpec, Sampling};
use reviewloop::store::{self, users::Role};

use crate::helpers::{pairs, round_spec, TestApp};

fn spec(size: usize, sampling: Sampling, group_by: GroupBy) -> RoundSpec {
    RoundSpec { sampling, group_by, seed: 3, ..round_spec(size) }
}

async fn malls_of(app: &TestApp, round: i64) -> HashMap<String, i64> {
    let rows: Vec<(String, i64)> = sqlx::query_as(
        "SELECT r.mall, count(*) FROM round_items i JOIN reviews r ON r.id = i.review_id WHERE i.round_id = $1 GROUP BY 1",
    )
    .bind(round)
    .fetch_all(&app.pool)
    .await
    .unwrap();
    rows.into_iter().collect()
}

#[tokio::test]
async fn a_proportional_round_keeps_the_pools_mall_shares() {
    let app = TestApp::spawn().await;
    let mut csv = String::from("mall,text\n");
    for (mall, n) in [("큰몰", 600), ("중간몰", 300), ("작은몰", 100)] {
        for i in 0..n {
            csv.push_str(&format!("{mall},{mall} 리뷰 {i}\n"));
        }
    }
    app.import_text("fashion", Format::Csv, &csv).await;
    let round = app.create_round(&spec(100, Sampling::Proportional, GroupBy::Mall)).await.unwrap();
    let malls = malls_of(&app, round.id).await;
    assert_eq!((malls["큰몰"], malls["중간몰"], malls["작은몰"]), (60, 30, 10));
}

#[tokio::test]
async fn rounds_skip_labelled_and_queued_reviews() {
    let app = TestApp::spawn().await;
    app.import_text("fashion", Format::Csv, "text,labels\n이미 라벨 있음,배송1\n").await;
    app.import_text("fashion", Format::Csv, &crate::helpers::fashion_csv(10, 2)).await;
    let first = app.create_round(&spec(6, Sampling::Random, GroupBy::Mall)).await.unwrap();
    let second = app.create_round(&spec(6, Sampling::Random, GroupBy::Mall)).await.unwrap();
    assert_eq!((first.items, second.items), (6, 4), "only 10 unlabelled reviews exist");
    let overlap = app
        .count("SELECT count(*) FROM round_items a JOIN round_items b ON a.review_id = b.review_id AND a.round_id < b.round_id")
        .await;
    assert_eq!(overlap, 0);
    let labelled_in_round =
        app.count("SELECT count(*) FROM round_items i JOIN annotations a ON a.review_id = i.review_id").await;
    assert_eq!(labelled_in_round, 0);
    let error = app.create_round(&spec(1, Sampling::Random, GroupBy::Mall)).await;
    assert!(matches!(error, Err(reviewloop::rounds::RoundError::PoolEmpty)));
    // Closing a round returns its unlabelled reviews to the pool.
    store::rounds::close(&app.pool, first.id, None).await.unwrap();
    let third = app.create_round(&spec(10, Sampling::Random, GroupBy::Mall)).await.unwrap();
    assert_eq!(third.items, 6);
}

#[tokio::test]
async fn rounds_composed_at_the_same_time_never_share_a_review() {
    let app = TestApp::spawn().await;
    app.import_text("fashion", Format::Csv, &crate::helpers::fashion_csv(40, 2)).await;
    let taxonomy = app.taxonomy("fashion").await.id;
    // The same seed: without the lock both would pick the same reviews.
    let specs: Vec<RoundSpec> = (0..4).map(|_| spec(15, Sampling::Random, GroupBy::Mall)).collect();
    let created = futures_util::future::join_all(
        specs.iter().map(|spec| reviewloop::rounds::create(&app.pool, taxonomy, spec, None)),
    )
    .await;
    let sizes: Vec<usize> = created.iter().map(|c| c.as_ref().map(|c| c.items).unwrap_or(0)).collect();
    let overlap = app
        .count("SELECT count(*) FROM round_items a JOIN round_items b ON a.review_id = b.review_id AND a.round_id < b.round_id")
        .await;
    assert_eq!(overlap, 0, "rounds of {sizes:?}");
    assert_eq!(sizes.iter().sum::<usize>(), 40, "all 40 reviews, each once: {sizes:?}");
}

#[tokio::test]
async fn a_share_of_items_is_double_assigned_and_the_seed_repeats_the_sample() {
    let app = TestApp::spawn().await;
    app.import_text("fashion", Format::Csv, &crate::helpers::fashion_csv(40, 2)).await;
    let mut double = spec(20, Sampling::Random, GroupBy::Mall);
    double.double_share = 0.3;
    let round = app.create_round(&double).await.unwrap();
    assert_eq!(round.doubled, 6);
    assert_eq!(app.count("SELECT count(*) FROM round_items WHERE copies = 2").await, 6);
    let picked: Vec<i64> = sqlx::query_scalar("SELECT review_id FROM round_items ORDER BY position")
        .fetch_all(&app.pool)
        .await
        .unwrap();

    let other = TestApp::spawn().await;
    other.import_text("fashion", Format::Csv, &crate::helpers::fashion_csv(40, 2)).await;
    other.create_round(&double).await.unwrap();
    let again: Vec<i64> = sqlx::query_scalar("SELECT review_id FROM round_items ORDER BY position")
        .fetch_all(&other.pool)
        .await
        .unwrap();
    assert_eq!(picked, again, "same pool, same seed, same round");
}

#[tokio::test]
async fn an_engineer_creates_a_round_from_the_page_and_sees_progress() {
    let app = TestApp::spawn().await;
    app.import_text("fashion", Format::Csv, &crate::helpers::fashion_csv(12, 3)).await;
    let engineer = app.logged_in(Role::Engineer).await;
    let csrf = engineer.csrf().await;
    let form = pairs(&[
        ("csrf", &csrf),
        ("taxonomy", "fashion"),
        ("name", "첫 라운드"),
        ("size", "9"),
        ("sampling", "proportional"),
        ("group_by", "mall"),
        ("double_share_percent", "0"),
        ("annotators", ""),
        ("seed", "5"),
    ]);
    let page = engineer.post_form("/engineer/rounds", &form).await.text().await.unwrap();
    assert!(page.contains("id=\"created\""), "{page}");
    assert!(
        page.contains(
            "첫 라운드: 무작위 → 다음 라운드: 키워드 이름·가이드라인과 닮은 리뷰 100% → \
             이후 모든 라운드: 키워드별 라벨과 닮은 리뷰 30% + 라벨 적은 키워드 우선 70%."
        ),
        "the measured order: {page}"
    );
    let malls = malls_of(&app, 1).await;
    assert_eq!(malls.values().copied().collect::<Vec<_>>(), vec![3, 3, 3]);
    let overview = engineer.get("/engineer?taxonomy=fashion").await.text().await.unwrap();
    assert!(overview.contains("첫 라운드") && overview.contains("0 / 9"));
    let json: serde_json::Value =
        engineer.get("/api/v1/overview?taxonomy=fashion").await.json().await.unwrap();
    assert_eq!(json["reviews"], 12);
    let bad = pairs(&[
        ("csrf", &csrf),
        ("taxonomy", "fashion"),
        ("name", "x"),
        ("size", "5"),
        ("sampling", "random"),
        ("group_by", "mall"),
        ("annotators", "nobody"),
    ]);
    let response = engineer.post_form("/engineer/rounds", &bad).await;
    assert_eq!(response.status(), 400);
    assert!(response.text().await.unwrap().contains("작업자 `nobody`이 없습니다"));
}
