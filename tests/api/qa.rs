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

/// `n` unlabelled fashion reviews: the id of 배송 and the reviews' ids in order.
async fn delivery_and_reviews(app: &TestApp, n: usize) -> (i64, Vec<i64>) {
    app.import_text("fashion", Format::Csv, &crate::helpers::fashion_csv(n, 2)).await;
    let taxonomy = app.taxonomy("fashion").await;
    let delivery = taxonomy.keywords.iter().find(|k| k.name == "배송").unwrap().id;
    let reviews: Vec<i64> =
        sqlx::query_scalar("SELECT id FROM reviews ORDER BY id").fetch_all(&app.pool).await.unwrap();
    (delivery, reviews)
}

#[tokio::test]
async fn a_reviewer_settles_a_disagreement_into_a_gold_label() {
    let app = TestApp::spawn().await;
    let (delivery, reviews) = delivery_and_reviews(&app, 2).await;
    let taxonomy = app.taxonomy("fashion").await;
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

/// `n` reviews, each labelled 배송 by one annotator, with a suspect on each of
/// confidence 0.01 × i: (keyword id, reviews).
async fn suspects(app: &TestApp, n: usize) -> (i64, Vec<i64>) {
    let (delivery, reviews) = delivery_and_reviews(app, n).await;
    let annotator = user_id(app, Role::Annotator).await;
    let mut issues = Vec::new();
    for (i, review) in reviews.iter().enumerate() {
        let annotation = human_answer(app, *review, annotator, vec![(delivery, 1)]).await;
        let confidence = (i % 100) as f32 / 100.0;
        issues.push(NewIssue {
            review_id: *review,
            keyword_id: delivery,
            kind: "wrong",
            annotation_id: annotation,
            suggested: 0,
            confidence,
        });
    }
    label_issues::record(&app.pool, &issues).await.unwrap();
    (delivery, reviews)
}

/// The issue ids on a page, in its order.
fn issue_ids(page: &str) -> Vec<i64> {
    page.split("<tr id=\"issue-").skip(1).map(|s| s[..s.find('"').unwrap()].parse().unwrap()).collect()
}

fn next_link(page: &str) -> Option<String> {
    let marker = "id=\"next-page\" href=\"";
    let start = page.find(marker)? + marker.len();
    Some(page[start..start + page[start..].find('"')?].replace("&#38;", "&").replace("&amp;", "&"))
}

#[tokio::test]
async fn a_keywords_suspects_come_a_page_at_a_time_most_confident_first_with_their_count() {
    let app = TestApp::spawn().await;
    let (delivery, _) = suspects(&app, 120).await;
    let reviewer = app.logged_in(Role::Reviewer).await;
    let mut url = format!("/qa/keywords/{delivery}");
    let mut seen: Vec<i64> = Vec::new();
    let mut pages = 0;
    loop {
        let page = reviewer.get(&url).await.text().await.unwrap();
        assert!(page.contains("<span id=\"suspect-count\">120</span>"), "{page}");
        let ids = issue_ids(&page);
        assert!(ids.len() <= 50);
        seen.extend(ids);
        pages += 1;
        match next_link(&page) {
            Some(next) => url = next,
            None => break,
        }
    }
    assert_eq!(pages, 3);
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!((seen.len(), unique.len()), (120, 120), "every suspect once");
    let in_order: Vec<i64> =
        sqlx::query_scalar("SELECT id FROM label_issues WHERE status = 'open' ORDER BY confidence DESC, id")
            .fetch_all(&app.pool)
            .await
            .unwrap();
    assert_eq!(seen, in_order, "most confident first, ties by id");
}

#[tokio::test]
async fn disagreements_come_a_page_at_a_time_and_their_count_is_exact() {
    let app = TestApp::spawn().await;
    let (delivery, reviews) = delivery_and_reviews(&app, 70).await;
    let (a, b) = (user_id(&app, Role::Annotator).await, user_id(&app, Role::Annotator).await);
    for (i, review) in reviews.iter().enumerate() {
        human_answer(&app, *review, a, vec![(delivery, 1)]).await;
        // Sixty disagree, ten agree.
        human_answer(&app, *review, b, vec![(delivery, if i < 60 { -1 } else { 1 })]).await;
    }
    let reviewer = app.logged_in(Role::Reviewer).await;
    let first = reviewer.get("/qa/adjudicate?taxonomy=fashion").await.text().await.unwrap();
    assert!(first.contains("<span id=\"disagreement-count\">60</span>"), "{first}");
    assert_eq!(first.matches("<tr id=\"review-").count(), 50);
    let second = reviewer.get(&next_link(&first).unwrap()).await.text().await.unwrap();
    assert_eq!(second.matches("<tr id=\"review-").count(), 10);
    assert!(next_link(&second).is_none());
    for review in &reviews[..60] {
        let row = format!("<tr id=\"review-{review}\"");
        assert!(first.contains(&row) != second.contains(&row), "review {review} on exactly one page");
    }
}

/// The `multiply_answered` table, kept by a trigger, says what the Rust rule says of
/// each review's annotations.
#[tokio::test]
async fn the_table_of_multiply_answered_reviews_follows_the_rule_of_consensus() {
    use reviewloop::consensus::LabelSource;
    use reviewloop::store::annotations::{self, Authorship};
    let app = TestApp::spawn().await;
    app.import_text("fashion", Format::Csv, &crate::helpers::fashion_csv(6, 1)).await;
    let taxonomy = app.taxonomy("fashion").await;
    let k = |name: &str| taxonomy.keywords.iter().find(|k| k.name == name).unwrap().id;
    let r: Vec<i64> =
        sqlx::query_scalar("SELECT id FROM reviews ORDER BY id").fetch_all(&app.pool).await.unwrap();
    let (a, b, c) = (
        user_id(&app, Role::Annotator).await,
        user_id(&app, Role::Annotator).await,
        user_id(&app, Role::Reviewer).await,
    );
    let answer = |review: i64, who: i64, source: LabelSource, labels: Vec<(i64, i16)>| {
        let pool = app.pool.clone();
        async move {
            let author = Authorship {
                source,
                annotator_id: Some(who),
                assignment_id: None,
                import_batch_id: None,
                guideline_revision: 1,
                client_token: None,
                assist: None,
            };
            let labels = reviewloop::taxonomy::ResolvedLabels { no_keyword: labels.is_empty(), labels };
            let mut tx = pool.begin().await.unwrap();
            annotations::insert(&mut tx, review, &author, &labels).await.unwrap();
            tx.commit().await.unwrap();
        }
    };
    use LabelSource::{Gold, Human, Review};
    // 0: one answer. 1: two agreeing. 2: two differing. 3: differing, then corrected to agree.
    answer(r[0], a, Human, vec![(k("배송"), 1)]).await;
    answer(r[1], a, Human, vec![(k("배송"), 1)]).await;
    answer(r[1], b, Human, vec![(k("배송"), 1)]).await;
    answer(r[2], a, Human, vec![(k("배송"), 1)]).await;
    answer(r[2], b, Human, vec![(k("배송"), 1), (k("색상"), 2)]).await;
    answer(r[3], a, Human, vec![(k("배송"), 1)]).await;
    answer(r[3], b, Human, vec![]).await;
    answer(r[3], b, Human, vec![(k("배송"), 1)]).await;
    // 4: differing, settled by a gold label. 5: three answers, the third's latest a QA fix.
    answer(r[4], a, Human, vec![(k("배송"), 1)]).await;
    answer(r[4], b, Human, vec![(k("배송"), -1)]).await;
    answer(r[4], c, Gold, vec![(k("배송"), 1)]).await;
    answer(r[5], a, Human, vec![(k("배송"), 1)]).await;
    answer(r[5], b, Human, vec![(k("배송"), 1)]).await;
    answer(r[5], c, Human, vec![(k("배송"), -1)]).await;
    answer(r[5], c, Review, vec![(k("배송"), 1)]).await;

    let table: Vec<(i64, i32, bool, bool)> = sqlx::query_as(
        "SELECT review_id, answers, disagree, has_gold FROM multiply_answered ORDER BY review_id",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap();
    let all = reviewloop::store::adjudication::all_multiply_answered(&app.pool, taxonomy.id).await.unwrap();
    let by_rule: Vec<(i64, i32, bool, bool)> =
        all.iter().map(|m| (m.review_id, m.answers.len() as i32, m.disagree(), m.has_gold)).collect();
    assert_eq!(table, by_rule);
    assert_eq!(
        table,
        [
            (r[1], 2, false, false),
            (r[2], 2, true, false),
            (r[3], 2, false, false),
            (r[4], 2, true, true),
            (r[5], 2, false, false)
        ]
    );
    // Computed again for every review (as the migration did for existing data): the same.
    sqlx::query("SELECT note_multiple_answers(id) FROM reviews").execute(&app.pool).await.unwrap();
    let again: Vec<(i64, i32, bool, bool)> = sqlx::query_as(
        "SELECT review_id, answers, disagree, has_gold FROM multiply_answered ORDER BY review_id",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap();
    assert_eq!(again, table);
}

/// Past a small database the audit table's figures are counted off the page: the page
/// answers at once with the figures it has, says they are being counted again, and
/// shows the new ones once that is done.
#[tokio::test]
async fn on_a_large_database_the_audit_figures_are_counted_off_the_page() {
    let app = TestApp::spawn().await;
    app.import_text("fashion", Format::Csv, "text,labels\n배송이 빨라요,배송1\n").await;
    let reviewer = app.logged_in(Role::Reviewer).await;
    let page = reviewer.get("/qa/audit?taxonomy=fashion&sort=name").await.text().await.unwrap();
    assert!(!page.contains("다시 집계하는 중"), "small: counted on the page");
    // As if there were many annotations: the next ones get ids past the inline limit.
    let past = reviewloop::audit::summary::INLINE_BELOW + 10;
    sqlx::query("SELECT setval('annotations_id_seq', $1)").bind(past).execute(&app.pool).await.unwrap();
    app.import_text("fashion", Format::Csv, "text,labels\n배송이 느려요,배송-1\n").await;
    let page = reviewer.get("/qa/audit?taxonomy=fashion&sort=name").await.text().await.unwrap();
    assert!(page.contains("다시 집계하는 중"), "{page}");
    let delivery = app.taxonomy("fashion").await.keywords.iter().find(|k| k.name == "배송").unwrap().id;
    let row = |count: i64| {
        format!("<a href=\"/qa/keywords/{delivery}\">배송</a></td>\n    <td class=\"num\">{count}</td>")
    };
    assert!(page.contains(&row(1)), "the stored figures meanwhile: {page}");
    let mut counted = false;
    for _ in 0..100 {
        let page = reviewer.get("/qa/audit?taxonomy=fashion&sort=name").await.text().await.unwrap();
        if page.contains(&row(2)) && !page.contains("다시 집계하는 중") {
            counted = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(counted, "counted again in the background");
}
