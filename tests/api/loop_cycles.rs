//! The loop running by itself: with the policy on, a worker starts a cycle when labels
//! come in (the import's, then an annotator's through the pages), trains, compares,
//! promotes or holds, scores, and composes the next round; two cycles go round with no
//! other command. Steps run twice (a worker killed before its success was recorded)
//! are taken once.

use std::time::Duration;

use reviewloop::cancel::Cancel;
use reviewloop::import::Format;
use reviewloop::jobs::WorkerConfig;
use reviewloop::store::loops::{self, Policy};
use reviewloop::store::users::Role;

use crate::annotate::{answer, next_item};
use crate::helpers::TestApp;

/// 400 labelled reviews in four kinds (enough test labels to judge a version on), and
/// a pool of 60 unlabelled ones.
fn reviews_csv() -> String {
    let kinds = [
        ("배송이 빨라요", "배송1"),
        ("배송이 너무 늦어요", "배송-2"),
        ("색감이 예뻐요", "색상2"),
        ("사이즈가 작아요", "사이즈-1"),
    ];
    let mut csv = String::from("mall,category,text,labels\n");
    for i in 0..400 {
        let (text, labels) = kinds[i % kinds.len()];
        csv.push_str(&format!("mall{},cat{},{text} {i},\"{labels}\"\n", i % 3, i % 2));
    }
    for i in 0..60 {
        let (text, _) = kinds[i % kinds.len()];
        csv.push_str(&format!("mall{},cat{},풀 {text} {i},\n", i % 3, i % 2));
    }
    csv
}

/// An app on the tiny base (the default base, so the loop trains from it), its data.
async fn app_on_the_tiny_base() -> TestApp {
    let app = TestApp::spawn().await;
    let base = crate::train::tiny_base(&app.data_dir);
    reviewloop::bases::set_default(&app.data_dir, &base).unwrap();
    app.import_text("fashion", Format::Csv, &reviews_csv()).await;
    app
}

fn worker(app: &TestApp) -> (Cancel, tokio::task::JoinHandle<()>) {
    let mut config = WorkerConfig::new(app.data_dir.clone());
    config.poll = Duration::from_millis(200);
    let (pool, shutdown) = (app.pool.clone(), Cancel::default());
    let stop = shutdown.clone();
    let handle =
        tokio::spawn(async move { reviewloop::jobs::worker::run(&pool, &config, &stop).await.unwrap() });
    (shutdown, handle)
}

/// Waits (up to several minutes on a busy machine) until `cycle` is over.
async fn finished(app: &TestApp, cycle: usize) -> loops::Cycle {
    let taxonomy = app.taxonomy("fashion").await.id;
    for _ in 0..1500 {
        let cycles = loops::cycles(&app.pool, taxonomy, 10).await.unwrap();
        if let Some(c) =
            cycles.iter().rev().nth(cycle - 1).filter(|c| matches!(c.state.as_str(), "done" | "failed"))
        {
            return c.clone();
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("cycle {cycle} did not finish: {:?}", loops::cycles(&app.pool, taxonomy, 10).await.unwrap());
}

#[tokio::test]
async fn labels_start_cycles_that_train_compare_promote_score_and_compose_by_themselves() {
    let app = app_on_the_tiny_base().await;
    let taxonomy = app.taxonomy("fashion").await;
    let policy = Policy {
        enabled: true,
        // The round's size: the sixth answer, not an earlier one, starts the next cycle.
        every_labels: Some(6),
        round_size: 6,
        double_share: 0.0,
        mostly_done: 1.0,
        ..Policy::default_for(taxonomy.id)
    };
    loops::save_policy(&app.pool, &policy, None).await.unwrap();
    let (shutdown, worker) = worker(&app);

    // The import's 400 labels are new labels: the first cycle starts by itself.
    let first = finished(&app, 1).await;
    assert_eq!(first.state, "done", "{first:?}");
    assert_eq!(first.started_because, "labels:400");
    assert_eq!(first.decision.as_deref(), Some("promoted"), "nothing served, enough test labels: {first:?}");
    let round = first.round_id.expect("a round composed");
    assert!(first.train_job.is_some() && first.compare_job.is_some() && first.score_job.is_some());
    let picked: Vec<String> =
        sqlx::query_scalar("SELECT DISTINCT strategy FROM round_items WHERE round_id = $1")
            .bind(round)
            .fetch_all(&app.pool)
            .await
            .unwrap();
    assert!(!picked.contains(&"random".to_string()) || picked.len() > 1, "picked by the model: {picked:?}");

    // An annotator labels the round through the pages; its six answers start the next cycle.
    let annotator = app.logged_in(Role::Annotator).await;
    let mut answered = 0;
    while let Some(item) = next_item(&annotator, round).await {
        let form = answer(&annotator, &item, &taxonomy, &[("배송", 1)]).await;
        assert_eq!(annotator.post_form(&item, &form).await.status(), 303);
        answered += 1;
    }
    assert_eq!(answered, 6);
    let second = finished(&app, 2).await;
    assert_eq!(second.state, "done", "{second:?}");
    assert_eq!(second.started_because, "labels:6");
    assert!(matches!(second.decision.as_deref(), Some("promoted" | "held")), "{second:?}");
    let next = second.round_id.expect("the next round, the first one being done");
    assert_ne!(next, round);
    shutdown.cancel();
    worker.await.unwrap();

    // The engineer's timeline shows both, each step linked to its job.
    let engineer = app.logged_in(Role::Engineer).await;
    let page = engineer.get("/engineer/loop?taxonomy=fashion").await.text().await.unwrap();
    for cycle in [&first, &second] {
        assert!(page.contains(&format!("id=\"cycle-{}\"", cycle.id)), "{page}");
        assert!(page.contains(&format!("href=\"/engineer/jobs/{}\"", cycle.compose_job.unwrap())));
    }
    assert!(page.contains("새 라벨 6개") && page.contains("승격했습니다"), "{page}");
}

/// A worker killed after a step's work but before its success was recorded: the job is
/// run again by another, and the cycle takes the step once (one promotion, one round).
#[tokio::test]
async fn a_step_run_again_after_a_killed_worker_is_taken_once() {
    use reviewloop::jobs::worker::run_next;
    let app = app_on_the_tiny_base().await;
    let taxonomy = app.taxonomy("fashion").await;
    let cycle = reviewloop::cycles::start(&app.pool, &app.data_dir, taxonomy.id, "manual", None)
        .await
        .unwrap()
        .unwrap();
    // Retried at once (no backoff) once the dead worker's lease is over.
    let config = WorkerConfig { retry_base_seconds: 0.0, ..WorkerConfig::new(app.data_dir.clone()) };
    let ran = run_next(&app.pool, &config).await.unwrap().unwrap();
    assert_eq!(ran.0.kind, "train");
    // A worker claims the comparison, does its work (the promotion) and dies.
    let dead = WorkerConfig { id: "dead-worker".into(), ..WorkerConfig::new(app.data_dir.clone()) };
    let claimed = reviewloop::store::jobs::claim(&app.pool, &dead.id, &dead.kinds, &dead.devices, 60.0)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(claimed.kind, "compare");
    let storage = reviewloop::storage::Storage::open(&app.pool, &dead.storage).unwrap();
    reviewloop::cycles::compare(&app.pool, &storage, &app.data_dir, cycle).await.unwrap();
    sqlx::query("UPDATE jobs SET lease_expires_at = now() - interval '1 minute' WHERE id = $1")
        .bind(claimed.id)
        .execute(&app.pool)
        .await
        .unwrap();
    // Another worker runs it again, and then everything that follows.
    while run_next(&app.pool, &config).await.unwrap().is_some() {}
    let mut conn = app.pool.acquire().await.unwrap();
    let record = loops::cycle(&mut conn, cycle).await.unwrap().unwrap();
    assert_eq!((record.state.as_str(), record.decision.as_deref()), ("done", Some("promoted")), "{record:?}");
    assert_eq!(app.count("SELECT count(*) FROM audit_log WHERE action = 'model.promote'").await, 1);
    // The round step run a second time finds the round it made.
    let again = reviewloop::cycles::compose(&app.pool, cycle).await.unwrap();
    assert_eq!(again["round_id"].as_i64(), record.round_id);
    assert_eq!(app.count("SELECT count(*) FROM rounds").await, 1);
}

/// The policy form: saved as entered (blank hours: no schedule); a policy that could
/// never start a cycle is refused in the page's language, and nothing is saved.
#[tokio::test]
async fn the_policy_form_saves_and_refuses_in_the_pages_language() {
    let app = TestApp::spawn().await;
    let taxonomy = app.taxonomy("fashion").await;
    let engineer = app.logged_in(Role::Engineer).await;
    let form = |page: &str, every_labels: &str| -> Vec<(String, String)> {
        [
            ("csrf", crate::helpers::csrf_in(page).unwrap().as_str()),
            ("taxonomy", "fashion"),
            ("enabled", "on"),
            ("every_labels", every_labels),
            ("every_hours", ""),
            ("profile", "fast"),
            ("promote", "hold"),
            ("margin", "0.01"),
            ("max_drop", "0.1"),
            ("round_size", "20"),
            ("assist", "prefilled"),
            ("double_share_percent", "0"),
            ("mostly_done_percent", "90"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    };
    let page = engineer.get("/engineer/loop").await.text().await.unwrap();
    assert_eq!(engineer.post_form("/engineer/loop", &form(&page, "40")).await.status(), 303);
    let saved = loops::policy(&app.pool, taxonomy.id).await.unwrap();
    assert_eq!((saved.enabled, saved.every_labels, saved.every_hours), (true, Some(40), None));
    assert_eq!((saved.promote.as_str(), saved.round_size, saved.mostly_done), ("hold", 20, 0.9));

    // On, with neither trigger: refused, said in Korean, then in English.
    let refused = engineer.post_form("/engineer/loop", &form(&page, "")).await;
    assert_eq!(refused.status(), 422);
    let body = refused.text().await.unwrap();
    assert!(body.contains("정책을 저장하지 않았습니다") && body.contains("새 라벨 몇 개마다"), "{body}");
    assert_eq!(loops::policy(&app.pool, taxonomy.id).await.unwrap().every_labels, Some(40), "nothing saved");
    engineer.get("/lang/en?next=/engineer/loop").await;
    let page = engineer.get("/engineer/loop").await.text().await.unwrap();
    let body = engineer.post_form("/engineer/loop", &form(&page, "")).await.text().await.unwrap();
    assert!(body.contains("an enabled policy needs") && body.contains("every N new labels"), "{body}");
}
