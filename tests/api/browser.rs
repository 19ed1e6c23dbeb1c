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
    let named = |id: i64| by_name(&labels, &taxonomy, id);
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

/// An annotation's (keyword name, level) pairs, sorted.
fn by_name(
    labels: &std::collections::HashMap<i64, Vec<(i64, i16)>>,
    taxonomy: &reviewloop::taxonomy::Taxonomy,
    id: i64,
) -> Vec<(String, i16)> {
    let mut named: Vec<_> = labels
        .get(&id)
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .map(|(k, s)| (taxonomy.keyword_by_id(k).unwrap().name.clone(), s))
        .collect();
    named.sort();
    named
}

/// One stored annotation of an assisted round: its labels by name, its assist record,
/// and the suggestion its item carried.
struct AssistedAnswer {
    labels: Vec<(String, i16)>,
    record: serde_json::Value,
    suggested: Vec<(String, i16)>,
    version_id: Option<i64>,
}

async fn assisted_answers(app: &TestApp, round: i64) -> Vec<AssistedAnswer> {
    let taxonomy = app.taxonomy("fashion").await;
    let rows: Vec<(i64, Option<serde_json::Value>, serde_json::Value, Option<i64>)> = sqlx::query_as(
        "SELECT a.id, a.assist, i.suggestion, i.suggestion_version_id
         FROM annotations a JOIN assignments s ON s.id = a.assignment_id
         JOIN round_items i ON i.id = s.round_item_id WHERE i.round_id = $1 ORDER BY a.id",
    )
    .bind(round)
    .fetch_all(&app.pool)
    .await
    .unwrap();
    let ids: Vec<i64> = rows.iter().map(|r| r.0).collect();
    let labels = store::annotations::labels_of(&app.pool, &ids).await.unwrap();
    rows.into_iter()
        .map(|(id, record, suggestion, version_id)| {
            let named = by_name(&labels, &taxonomy, id);
            let suggested = suggestion["keywords"]
                .as_array()
                .unwrap()
                .iter()
                .map(|k| {
                    (k["keyword"].as_str().unwrap().to_string(), k["sentiment"].as_i64().unwrap() as i16)
                })
                .collect();
            AssistedAnswer {
                labels: named,
                record: record.expect("an assisted label records it"),
                suggested,
                version_id,
            }
        })
        .collect()
}

#[tokio::test]
async fn an_annotator_accepts_suggestions_with_one_key_and_corrects_others_in_the_browser() {
    use reviewloop::rounds::{Assist, RoundSpec};
    use serde_json::json;
    if skipped() {
        return;
    }
    let s = crate::analyze_api::serving(|_| {}, false).await;
    // Three keywords suggested (keys 1, 3 and 4), the others never: one is left to add.
    s.find_only(&["배송", "디자인", "색상"]);
    s.app.import_text("fashion", reviewloop::import::Format::Csv, &crate::helpers::fashion_csv(6, 1)).await;
    let taxonomy = s.app.taxonomy("fashion").await;
    let mut rounds = Vec::new();
    for assist in [Assist::Prefilled, Assist::Off, Assist::Shown] {
        let spec = RoundSpec { assist, ..crate::helpers::round_spec(2) };
        rounds.push(reviewloop::rounds::create(&s.app.pool, taxonomy.id, &spec, None).await.unwrap().id);
    }
    let config = reviewloop::jobs::WorkerConfig::new(s.app.data_dir.clone());
    while reviewloop::jobs::worker::run_next(&s.app.pool, &config).await.unwrap().is_some() {}
    let shots = std::env::var("REVIEWLOOP_SCREENSHOTS").map(std::path::PathBuf::from).unwrap_or_else(|_| {
        let dir = std::env::temp_dir().join(format!("reviewloop-shots-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    });
    let annotator = s.app.user(Role::Annotator).await;
    let env = [
        ("APP_USER", annotator),
        ("APP_PASSWORD", PASSWORD.into()),
        ("APP_PREFILLED", rounds[0].to_string()),
        ("APP_OFF", rounds[1].to_string()),
        ("APP_SHOWN", rounds[2].to_string()),
        ("APP_SHOTS", shots.display().to_string()),
    ];
    let (success, log) = run_script(&s.app, "assist.mjs", &env).await;
    assert!(success, "browser script failed:\n{log}");

    let answers = assisted_answers(&s.app, rounds[0]).await;
    assert_eq!(answers.len(), 2, "one answer per item:\n{log}");
    assert_eq!(
        s.app.count("SELECT count(*) FROM annotations WHERE assignment_id IS NOT NULL").await,
        2,
        "none in the off and shown rounds"
    );
    let version: i64 =
        sqlx::query_scalar("SELECT id FROM model_versions WHERE name = 'v1' AND kind = 'keyword'")
            .fetch_one(&s.app.pool)
            .await
            .unwrap();
    let names = |pairs: &[(String, i16)]| pairs.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
    // The first: exactly the suggestions, all accepted.
    let accepted = &answers[0];
    let mut expected = accepted.suggested.clone();
    expected.sort();
    assert_eq!(accepted.labels, expected, "{log}");
    assert_eq!(
        accepted.record,
        json!({"mode": "prefilled", "version_id": version, "accepted": names(&accepted.suggested),
               "changed": [], "removed": [], "added": []}),
        "{log}"
    );
    assert_eq!(accepted.version_id, Some(version));
    // The second: the first suggestion's level moved by one, the last removed, the
    // first keyword not suggested (가격, key 2) added at the neutral level.
    let corrected = &answers[1];
    let suggested = &corrected.suggested;
    assert_eq!(names(suggested), ["배송", "디자인", "색상"], "in taxonomy order");
    let (first, level) = &suggested[0];
    let moved = if *level == taxonomy.scale_max { level - 1 } else { level + 1 };
    let mut expected = vec![(first.clone(), moved), suggested[1].clone(), ("가격".to_string(), 0)];
    expected.sort();
    assert_eq!(corrected.labels, expected, "{log}");
    assert_eq!(
        corrected.record,
        json!({"mode": "prefilled", "version_id": version, "accepted": ["디자인"],
               "changed": ["배송"], "removed": ["색상"], "added": ["가격"]}),
        "{log}"
    );
    for lang in ["ko", "en"] {
        let png = std::fs::read(shots.join(format!("annotate-shown-{lang}.png"))).expect("photographed");
        assert!(png.starts_with(b"\x89PNG"), "{lang} is a PNG");
    }
}

/// Item 2 of the loop's issue, in a browser: the demo on a tiny base, its first cycle
/// started as `scripts/serve.sh` starts it, a worker running; every role's first steps
/// (see `tests/browser/journey.mjs`), no error page anywhere.
#[tokio::test]
async fn a_newcomer_sees_the_loop_work_as_every_role_without_an_error_page() {
    use reviewloop::store::loops::{self, Policy};
    if skipped() {
        return;
    }
    // A failed request's cause, printed with the test's output.
    let _ = tracing_subscriber::fmt().with_max_level(tracing::Level::WARN).with_test_writer().try_init();
    let app = TestApp::spawn().await;
    let base = crate::train::tiny_base(&app.data_dir);
    reviewloop::bases::set_default(&app.data_dir, &base).unwrap();
    let demo =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/demo/fashion-reviews.csv")).unwrap();
    app.import_text("fashion", reviewloop::import::Format::Csv, &demo).await;
    let taxonomy = app.taxonomy("fashion").await.id;
    let policy = Policy { enabled: true, round_size: 10, ..Policy::default_for(taxonomy) };
    loops::save_policy(&app.pool, &policy, None).await.unwrap();
    reviewloop::cycles::start(&app.pool, &app.data_dir, taxonomy, "first start", None)
        .await
        .unwrap()
        .unwrap();
    let mut config = reviewloop::jobs::WorkerConfig::new(app.data_dir.clone());
    config.poll = std::time::Duration::from_millis(200);
    let shutdown = reviewloop::cancel::Cancel::default();
    // On a thread and pool of its own, as `serve` runs it: training on this test's
    // runtime would stall the app's connections made here.
    let worker = reviewloop::jobs::worker::spawn(app.database_url.clone(), config, shutdown.clone()).unwrap();
    let env = [
        ("APP_PASSWORD", PASSWORD.to_string()),
        ("APP_ANNOTATOR", app.user(Role::Annotator).await),
        ("APP_ENGINEER", app.user(Role::Engineer).await),
        ("APP_REVIEWER", app.user(Role::Reviewer).await),
        ("APP_SHOTS", std::env::var("APP_SHOTS").unwrap_or_default()),
    ];
    let (success, log) = run_script(&app, "journey.mjs", &env).await;
    shutdown.cancel();
    tokio::task::spawn_blocking(move || worker.join()).await.unwrap().unwrap();
    assert!(success, "browser script failed:\n{log}");
    assert!(
        app.count("SELECT count(*) FROM annotations WHERE source = 'human' AND annotator_id IS NOT NULL")
            .await
            >= 3
    );
    assert_eq!(app.count("SELECT count(*) FROM rounds WHERE name = '빈칸 라운드'").await, 1, "{log}");
    assert!(app.count("SELECT count(*) FROM jobs WHERE kind = 'audit'").await >= 1, "{log}");
}
