//! `reviewloop simulate` end to end on a small labelled file, with the tiny encoder.

use std::path::Path;

use reviewloop::import::Format;
use reviewloop::simulate::{self, curves, SimulateOptions};

use crate::helpers::TestApp;
use crate::train::{scratch_dir, settings};

fn labelled_file(dir: &Path, name: &str, n: usize, offset: usize) -> std::path::PathBuf {
    let rows = [
        ("배송이 빨라요", "배송1"),
        ("배송이 늦어요", "배송-1"),
        ("색감이 예뻐요", "색상2"),
        ("그냥 그래요", "없음"),
    ];
    let mut csv = String::from("mall,text,labels\n");
    for i in offset..offset + n {
        let (text, labels) = rows[i % rows.len()];
        csv.push_str(&format!("몰{},{text} {i}번,\"{labels}\"\n", i % 2));
    }
    let path = dir.join(name);
    std::fs::write(&path, csv).unwrap();
    path
}

#[tokio::test]
async fn a_simulation_reveals_labels_round_by_round_and_draws_the_curves() {
    let app = TestApp::spawn().await;
    let dir = scratch_dir();
    let mut train = settings(&dir, "unused");
    train.fit.epochs = 2;
    let options = SimulateOptions {
        data: labelled_file(&dir, "pool.csv", 80, 0),
        format: Format::Csv,
        test: Some(labelled_file(&dir, "test.csv", 12, 1000)),
        holdout: None,
        taxonomy: "fashion".into(),
        strategies: vec!["random".into(), "mixed".into(), simulate::oracle::ORACLE.into()],
        rounds: 2,
        batch: 10,
        initial: 10,
        seeds: 1,
        // Seeds may continue an earlier run.
        first_seed: 3,
        out: dir.join("out"),
        train,
    };
    let mut lines = Vec::new();
    let points =
        simulate::run(&app.database_url, &options, &mut |l| lines.push(l.to_string())).await.unwrap();
    assert_eq!(points.len(), 9, "three strategies × (first set + two rounds)");
    for strategy in ["random", "mixed", simulate::oracle::ORACLE] {
        let labels: Vec<usize> = points.iter().filter(|p| p.strategy == strategy).map(|p| p.labels).collect();
        assert_eq!(labels, vec![10, 20, 30], "{strategy}: each round reveals one batch");
    }
    assert!(points.iter().all(|p| (0.0..=1.0).contains(&p.keyword_macro_f1)));
    assert_eq!(std::fs::read_to_string(dir.join("out/curves.csv")).unwrap().lines().count(), 10);
    assert!(curves::svg(&points, curves::Metric::KeywordMacro).contains("<polyline"));
    assert_eq!(curves::summarise(&points).len(), 3);
    assert!(lines.iter().any(|l| l.starts_with("mixed seed 3 round 2")));
    assert!(points.iter().all(|p| p.seed == 3));
    // This process's scratch database is gone; the app's own database saw nothing.
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_database WHERE datname = $1")
        .bind(format!("reviewloop_simulation_{}", std::process::id()))
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(left, 0);
    assert_eq!(app.count("SELECT count(*) FROM reviews").await, 0);
    let _ = std::fs::remove_dir_all(&dir);

    let wrong = SimulateOptions { strategies: vec!["nonsense".into()], ..options };
    assert!(simulate::run(&app.database_url, &wrong, &mut |_| {})
        .await
        .err()
        .unwrap()
        .to_string()
        .contains("unknown strategy"));
}

#[tokio::test]
async fn the_simulations_page_draws_bands_and_says_which_strategy_saved_labels() {
    use curves::Point;
    use reviewloop::store::users::Role;
    let app = TestApp::spawn().await;
    let mut points = Vec::new();
    for seed in [1, 2, 3] {
        for (round, labels) in [(0usize, 100usize), (1, 200), (2, 300)] {
            let noise = 0.01 * seed as f64;
            for (strategy, slope) in [("random", 0.1), ("mixed", 0.2)] {
                let f1 = slope * (round as f64 + 1.0) + noise;
                points.push(Point {
                    strategy: strategy.into(),
                    seed,
                    round,
                    labels,
                    keyword_micro_f1: f1,
                    keyword_macro_f1: f1,
                    sentiment_macro_f1: f1,
                });
            }
        }
    }
    let summary = curves::summarise(&points);
    let id = reviewloop::store::simulations::insert(
        &app.pool,
        "test run",
        &serde_json::json!({}),
        &serde_json::json!(points),
        &serde_json::json!(summary),
    )
    .await
    .unwrap();
    let engineer = app.logged_in(Role::Engineer).await;
    let page = engineer.get("/engineer/simulations").await.text().await.unwrap();
    assert!(page.contains(&format!("id=\"headline-{id}\"")), "{page}");
    // Random ends at 0.32 after 300 labels; mixed (0.22, 0.42, …) gets there at 150.
    assert!(
        page.contains(
            "keyword macro F1: mixed가 라벨 150개로 무작위의 최종값 0.320에 도달 (무작위가 쓴 300개의 50 %)"
        ),
        "{page}"
    );
    assert_eq!(page.matches("class=\"band\"").count(), 6, "a band per strategy and metric");
    assert!(page.contains("시드 3개"), "the number of seeds is said");
    assert!(page.contains("(3 / 3)"), "every seed of mixed reached random's final score");
    assert!(!page.contains("100 %"), "random is the reference, not a strategy measured against itself");
}
