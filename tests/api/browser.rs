//! The annotation page in a real browser (Debian's chromium driven by playwright-core):
//! keyboard only, including going back to correct an answer.

use std::process::Command;

use reviewloop::store::{self, users::Role};

use crate::helpers::{TestApp, PASSWORD};

#[tokio::test]
async fn an_annotator_labels_three_reviews_with_the_keyboard_and_corrects_one() {
    if std::env::var("REVIEWLOOP_SKIP_BROWSER").is_ok() {
        eprintln!("skipped: REVIEWLOOP_SKIP_BROWSER is set");
        return;
    }
    let app = TestApp::spawn().await;
    let round = crate::annotate::round(&app, 3, 0.0).await;
    let annotator = app.user(Role::Annotator).await;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/browser/annotate.mjs");
    let address = app.address.clone();
    let output = tokio::task::spawn_blocking(move || {
        Command::new("node")
            .arg(script)
            .env("APP_URL", address)
            .env("APP_USER", annotator)
            .env("APP_PASSWORD", PASSWORD)
            .env("APP_ROUND", round.to_string())
            .env("NODE_PATH", concat!(env!("CARGO_MANIFEST_DIR"), "/node_modules"))
            .output()
    })
    .await
    .unwrap()
    .expect("node runs (see README: the test command installs it)");
    let log =
        format!("{}\n{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "browser script failed:\n{log}");

    // The script answered 1st 디자인+1 & 배송−1, 2nd 만족도+2, then on the 3rd went back
    // to the 2nd and changed it to 만족도+2 & 사이즈−1, then answered the 3rd: no keyword.
    let taxonomy = app.taxonomy("fashion").await;
    let rows: Vec<(i64, i64, bool)> =
        sqlx::query_as("SELECT a.id, a.assignment_id, a.no_keyword FROM annotations a ORDER BY a.id")
            .fetch_all(&app.pool)
            .await
            .unwrap();
    assert_eq!(rows.len(), 4, "three answers and one correction:\n{log}");
    let labels = store::annotations::labels_of(&app.pool, &rows.iter().map(|r| r.0).collect::<Vec<_>>())
        .await
        .unwrap();
    let named = |id: i64| -> Vec<(String, i16)> {
        let mut v: Vec<_> = labels
            .get(&id)
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .map(|(k, s)| (taxonomy.keyword_by_id(k).unwrap().name.clone(), s))
            .collect();
        v.sort();
        v
    };
    let kw = |pairs: &[(&str, i16)]| -> Vec<(String, i16)> {
        let mut v: Vec<_> = pairs.iter().map(|(k, s)| (k.to_string(), *s)).collect();
        v.sort();
        v
    };
    assert_eq!(named(rows[0].0), kw(&[("디자인", 1), ("배송", -1)]), "{log}");
    assert_eq!(named(rows[1].0), kw(&[("만족도", 2)]), "{log}");
    assert_eq!(rows[2].1, rows[1].1, "the correction belongs to the second item");
    assert_eq!(named(rows[2].0), kw(&[("만족도", 2), ("사이즈", -1)]), "{log}");
    assert!(rows[3].2 && named(rows[3].0).is_empty(), "third is 'no keyword': {log}");
    assert_eq!(app.count("SELECT count(*) FROM assignments WHERE status = 'done'").await, 3);
}
