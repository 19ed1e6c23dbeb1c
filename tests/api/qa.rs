//! The QA reviewer's pages over HTTP: the audit table, a keyword's suspects, fixing,
//! dismissing in bulk, editing the definition.

use reviewloop::import::Format;
use reviewloop::store::label_issues::{self, NewIssue};
use reviewloop::store::users::Role;
use reviewloop::train::data;

use crate::helpers::{human_answer, location, pairs, user_id, TestApp};

#[tokio::test]
async fn a_reviewer_audits_a_keyword_fixes_one_suspect_and_dismisses_another() {
    let app = TestApp::spawn().await;
    app.import_text(
        "fashion",
        Format::Csv,
        "text,labels\n배송이 빨라요,색상1\n색감이 예뻐요,색상2\n신축성 좋아요,신축성1\n",
    )
    .await;
    let taxonomy = app.taxonomy("fashion").await;
    let id_of = |name: &str| taxonomy.keywords.iter().find(|k| k.name == name).unwrap().id;
    let items = data::labelled(&app.pool, &taxonomy, None).await.unwrap();
    let stored = |prefix: &str| items.iter().find(|i| i.text.starts_with(prefix)).unwrap().stored.unwrap();
    let (fast, pretty) = (stored("배송이"), stored("색감이"));
    let issues = [
        NewIssue {
            review_id: fast.0,
            keyword_id: id_of("배송"),
            kind: "missing",
            annotation_id: fast.1,
            suggested: 1,
            confidence: 0.9,
        },
        NewIssue {
            review_id: pretty.0,
            keyword_id: id_of("배송"),
            kind: "missing",
            annotation_id: pretty.1,
            suggested: 1,
            confidence: 0.2,
        },
    ];
    label_issues::record(&app.pool, &issues).await.unwrap();

    let reviewer = app.logged_in(Role::Reviewer).await;
    let audit = reviewer.get("/qa/audit?taxonomy=fashion&sort=suspects").await.text().await.unwrap();
    let delivery_link = format!("<a href=\"/qa/keywords/{}\">배송</a>", id_of("배송"));
    assert!(audit.contains(&delivery_link), "keywords link to their drill-down");
    assert!(audit.find(&delivery_link).unwrap() < audit.find(">색상</a>").unwrap(), "most suspects first");
    let page_url = format!("/qa/keywords/{}", id_of("배송"));
    let page = reviewer.get(&page_url).await.text().await.unwrap();
    assert!(page.contains("배송이 빨라요") && page.contains("+ 배송") && page.contains("색상+1"));

    let csrf = reviewer.csrf().await;
    let ids: Vec<i64> = sqlx::query_scalar("SELECT id FROM label_issues ORDER BY confidence DESC")
        .fetch_all(&app.pool)
        .await
        .unwrap();
    let fixed = reviewer.post_form(&format!("/qa/issues/{}/fix", ids[0]), &pairs(&[("csrf", &csrf)])).await;
    assert_eq!(location(&fixed), page_url);
    let dismissed = reviewer
        .post_form(
            &format!("{page_url}/decide"),
            &pairs(&[("csrf", &csrf), ("decision", "dismiss"), (&format!("issue_{}", ids[1]), "on")]),
        )
        .await;
    assert_eq!(location(&dismissed), page_url);
    let states: Vec<String> = sqlx::query_scalar("SELECT status FROM label_issues ORDER BY confidence DESC")
        .fetch_all(&app.pool)
        .await
        .unwrap();
    assert_eq!(states, ["fixed", "dismissed"]);
    // The fix is a new annotation by the reviewer: 색상+1 kept, 배송 added at the neutral level.
    let labels: Vec<(String, String, i16)> = sqlx::query_as(
        "SELECT a.source::text, k.name, l.sentiment FROM annotations a
         JOIN annotation_labels l ON l.annotation_id = a.id JOIN keywords k ON k.id = l.keyword_id
         WHERE a.review_id = $1 AND a.source = 'review' ORDER BY k.name",
    )
    .bind(fast.0)
    .fetch_all(&app.pool)
    .await
    .unwrap();
    assert_eq!(
        labels,
        [("review".to_string(), "배송".to_string(), 0), ("review".to_string(), "색상".to_string(), 1)]
    );
    assert_eq!(app.count("SELECT count(*) FROM annotations").await, 4, "nothing overwritten");
    assert_eq!(
        app.count(
            "SELECT count(*) FROM audit_log WHERE action LIKE 'label_issue.%' AND actor_id IS NOT NULL"
        )
        .await,
        2
    );

    let edited = reviewer
        .post_form(
            &format!("{page_url}/guideline"),
            &pairs(&[("csrf", &csrf), ("body", "배송 속도·포장·택배 관련 언급")]),
        )
        .await;
    assert_eq!(location(&edited), page_url);
    let page = reviewer.get(&page_url).await.text().await.unwrap();
    assert!(page.contains("v2 ·") && page.contains("배송 속도·포장·택배 관련 언급"));
    // The fix above added 배송 before this edit: that label predates the new definition.
    assert!(page.contains("<li lang=\"ko\">r1 · 배송이 빨라요</li>"), "{page}");
    let empty =
        reviewer.post_form(&format!("{page_url}/guideline"), &pairs(&[("csrf", &csrf), ("body", " ")])).await;
    assert_eq!(empty.status(), 400);
}

#[tokio::test]
async fn a_reviewer_settles_a_disagreement_into_a_gold_label() {
    let app = TestApp::spawn().await;
    app.import_text("fashion", Format::Csv, &crate::helpers::fashion_csv(2, 1)).await;
    let taxonomy = app.taxonomy("fashion").await;
    let delivery = taxonomy.keywords.iter().find(|k| k.name == "배송").unwrap().id;
    let reviews: Vec<i64> =
        sqlx::query_scalar("SELECT id FROM reviews ORDER BY id").fetch_all(&app.pool).await.unwrap();
    let (a, b) = (user_id(&app, Role::Annotator).await, user_id(&app, Role::Annotator).await);
    let right = human_answer(&app, reviews[0], a, vec![(delivery, 1)]).await;
    human_answer(&app, reviews[0], b, vec![(delivery, -1)]).await;
    human_answer(&app, reviews[1], a, vec![(delivery, 1)]).await;
    human_answer(&app, reviews[1], b, vec![(delivery, 1)]).await;

    let reviewer = app.logged_in(Role::Reviewer).await;
    let page = reviewer.get("/qa/adjudicate?taxonomy=fashion").await.text().await.unwrap();
    assert!(
        page.contains(&format!("id=\"review-{}\"", reviews[0]))
            && page.contains("배송+1")
            && page.contains("배송-1")
    );
    assert!(!page.contains(&format!("id=\"review-{}\"", reviews[1])), "agreeing answers need no judge");
    let csrf = reviewer.csrf().await;
    let form = pairs(&[("csrf", &csrf), ("taxonomy", "fashion"), ("annotation", &right.to_string())]);
    let settled = reviewer.post_form(&format!("/qa/adjudicate/{}", reviews[0]), &form).await;
    assert_eq!(location(&settled), "/qa/adjudicate?taxonomy=fashion");
    let gold: Vec<(i64, i16)> = sqlx::query_as(
        "SELECT a.review_id, l.sentiment FROM annotations a JOIN annotation_labels l ON l.annotation_id = a.id WHERE a.source = 'gold'",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap();
    assert_eq!(gold, [(reviews[0], 1)]);
    let page = reviewer.get("/qa/adjudicate?taxonomy=fashion").await.text().await.unwrap();
    assert!(!page.contains(&format!("id=\"review-{}\"", reviews[0])), "settled");
    let stats = reviewloop::store::adjudication::annotator_stats(&app.pool, taxonomy.id).await.unwrap();
    let mut matching: Vec<(i64, i64, i64)> =
        stats.iter().map(|s| (s.answers, s.judged, s.matching_gold)).collect();
    matching.sort();
    assert_eq!(matching, [(2, 1, 0), (2, 1, 1)], "one matches the gold label, the other does not");
    // An answer of another review cannot be adopted.
    let wrong = pairs(&[("csrf", &csrf), ("taxonomy", "fashion"), ("annotation", &right.to_string())]);
    assert_eq!(reviewer.post_form(&format!("/qa/adjudicate/{}", reviews[1]), &wrong).await.status(), 404);
}

#[tokio::test]
async fn suspects_show_the_words_the_serving_model_weighs() {
    let app = TestApp::spawn().await;
    app.import_text("fashion", Format::Csv, &crate::train::labelled_csv()).await;
    let models = crate::train::scratch_dir();
    let mut settings = crate::train::settings(&models, "serving");
    settings.fit.epochs = 6;
    reviewloop::train::pipeline::run(&app.pool, &settings, &mut |_, _| {}).await.unwrap();
    sqlx::query("UPDATE model_versions SET status = 'active'").execute(&app.pool).await.unwrap();
    let taxonomy = app.taxonomy("fashion").await;
    let delivery = taxonomy.keywords.iter().find(|k| k.name == "배송").unwrap().id;
    let items = data::labelled(&app.pool, &taxonomy, None).await.unwrap();
    let item = items.iter().find(|i| i.text.starts_with("배송이 빨라요")).unwrap();
    let (review_id, annotation_id) = item.stored.unwrap();
    let issue = NewIssue {
        review_id,
        keyword_id: delivery,
        kind: "wrong",
        annotation_id,
        suggested: 0,
        confidence: 0.4,
    };
    label_issues::record(&app.pool, &[issue]).await.unwrap();
    let reviewer = app.logged_in(Role::Reviewer).await;
    let page = reviewer.get(&format!("/qa/keywords/{delivery}")).await.text().await.unwrap();
    assert!(page.contains("<mark>"), "the model's reasons are marked: {page}");
    // The page does not load the model from disk each time: it stays with the serving
    // models, so the next view marks the words with the weights gone from disk.
    let weights = models.join("fashion/serving/keyword/model.safetensors");
    assert!(weights.exists(), "{}", weights.display());
    std::fs::remove_file(&weights).unwrap();
    let again = reviewer.get(&format!("/qa/keywords/{delivery}")).await.text().await.unwrap();
    assert!(again.contains("<mark>"), "marked by the loaded model");
    let _ = std::fs::remove_dir_all(&models);
}
