//! Pages in a real browser (Debian's chromium driven by playwright-core): the
//! annotation page, keyboard only, including going back to correct an answer; a job's
//! page following progress live.

use std::process::Command;

use reviewloop::store::{self, users::Role};

use crate::helpers::{TestApp, PASSWORD};

/// Runs a playwright script from `tests/browser/` against the app; (success, output).
async fn run_script(app: &TestApp, script: &str, env: &[(&str, String)]) -> (bool, String) {
    let script = format!("{}/tests/browser/{script}", env!("CARGO_MANIFEST_DIR"));
    let mut command = Command::new("node");
    command
        .arg(script)
        .env("APP_URL", &app.address)
        .env("NODE_PATH", concat!(env!("CARGO_MANIFEST_DIR"), "/node_modules"))
        .envs(env.iter().map(|(k, v)| (k.to_string(), v.clone())));
    let output = tokio::task::spawn_blocking(move || command.output())
        .await
        .unwrap()
        .expect("node runs (see README: the test command installs it)");
    let log =
        format!("{}\n{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    (output.status.success(), log)
}

fn skipped() -> bool {
    let skip = std::env::var("REVIEWLOOP_SKIP_BROWSER").is_ok();
    if skip {
        eprintln!("skipped: REVIEWLOOP_SKIP_BROWSER is set");
    }
    skip
}

#[tokio::test]
async fn an_annotator_labels_three_reviews_with_the_keyboard_and_corrects_one() {
    if skipped() {
        return;
    }
    let app = TestApp::spawn().await;
    let round = crate::annotate::round(&app, 3, 0.0).await;
    let annotator = app.user(Role::Annotator).await;
    let env = [("APP_USER", annotator), ("APP_PASSWORD", PASSWORD.into()), ("APP_ROUND", round.to_string())];
    let (success, log) = run_script(&app, "annotate.mjs", &env).await;
    assert!(success, "browser script failed:\n{log}");

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

#[tokio::test]
async fn an_engineer_follows_a_job_live_until_it_ends() {
    if skipped() {
        return;
    }
    let app = TestApp::spawn().await;
    let engineer = app.user(Role::Engineer).await;
    let job: i64 = sqlx::query_scalar(
        "INSERT INTO jobs (kind, status, attempts, worker_id, started_at, progress)
         VALUES ('train', 'running', 1, 'w', now(), $1) RETURNING id",
    )
    .bind(serde_json::json!({"stage": "keyword", "epoch": 3, "step": 5, "total_steps": 10, "loss": 0.25, "eta_seconds": 12}))
    .fetch_one(&app.pool)
    .await
    .unwrap();
    sqlx::query("INSERT INTO job_logs (job_id, line) VALUES ($1, 'keyword: epoch 3 (step 5/10)')")
        .bind(job)
        .execute(&app.pool)
        .await
        .unwrap();
    let env = [("APP_USER", engineer), ("APP_PASSWORD", PASSWORD.into()), ("APP_JOB", job.to_string())];
    let browser = run_script(&app, "job.mjs", &env);
    let worker = async {
        // The job ends a few seconds after the engineer has logged in (a busy machine
        // may take longer than that to start the browser).
        while app.count("SELECT count(*) FROM sessions").await == 0 {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        tokio::time::sleep(std::time::Duration::from_secs(3)).await;
        sqlx::query(
            "UPDATE jobs SET status = 'succeeded', finished_at = now(), result = '{\"version\": \"browser-v1\"}',
                             progress = progress || '{\"step\": 10, \"eta_seconds\": 0}' WHERE id = $1",
        )
        .bind(job)
        .execute(&app.pool)
        .await
        .unwrap();
    };
    let ((success, log), ()) = tokio::join!(browser, worker);
    assert!(success, "browser script failed:\n{log}");
}

#[tokio::test]
async fn a_reviewer_fixes_one_suspect_and_dismisses_another_in_the_browser() {
    use reviewloop::store::label_issues::{self, NewIssue};
    if skipped() {
        return;
    }
    let app = TestApp::spawn().await;
    app.import_text(
        "fashion",
        reviewloop::import::Format::Csv,
        "text,labels\n배송이 빨라요,색상1\n색감이 예뻐요,색상2\n",
    )
    .await;
    let taxonomy = app.taxonomy("fashion").await;
    let delivery = taxonomy.keywords.iter().find(|k| k.name == "배송").unwrap().id;
    let items = reviewloop::train::data::labelled(&app.pool, &taxonomy, None).await.unwrap();
    let issues: Vec<NewIssue> = items
        .iter()
        .map(|i| {
            let (review_id, annotation_id) = i.stored.unwrap();
            let confidence = if i.text.starts_with("배송") { 0.9 } else { 0.3 };
            NewIssue {
                review_id,
                keyword_id: delivery,
                kind: "missing",
                annotation_id,
                suggested: 1,
                confidence,
            }
        })
        .collect();
    label_issues::record(&app.pool, &issues).await.unwrap();
    let reviewer = app.user(Role::Reviewer).await;
    let (success, log) =
        run_script(&app, "qa.mjs", &[("APP_USER", reviewer), ("APP_PASSWORD", PASSWORD.into())]).await;
    assert!(success, "browser script failed:\n{log}");
    let states: Vec<(String, String)> = sqlx::query_as(
        "SELECT r.text, i.status FROM label_issues i JOIN reviews r ON r.id = i.review_id ORDER BY i.confidence DESC",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap();
    assert_eq!(states[0], ("배송이 빨라요".to_string(), "fixed".to_string()), "{log}");
    assert_eq!(states[1].1, "dismissed", "{log}");
    assert_eq!(app.count("SELECT count(*) FROM annotations WHERE source = 'review'").await, 1, "{log}");
}
