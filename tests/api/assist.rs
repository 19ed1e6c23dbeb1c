//! Model suggestions for annotators (issue 18): computed when the round is composed,
//! stored with its items, the same as the analysis API answers.

use reviewloop::import::Format;
use reviewloop::jobs::worker::run_next;
use reviewloop::jobs::WorkerConfig;
use reviewloop::rounds::{Assist, RoundSpec};
use reviewloop::store;
use serde_json::{json, Value};

use crate::analyze_api::serving;
use crate::helpers::{fashion_csv, round_spec};

/// A round item as stored: text, copies, assisted, suggestion, its version.
type Item = (String, i16, bool, Option<Value>, Option<i64>);

#[tokio::test]
async fn a_prefilled_round_stores_what_the_api_answers_and_leaves_agreement_items_unassisted() {
    let s = serving(|_| {}, false).await;
    s.app.import_text("fashion", Format::Csv, &fashion_csv(12, 2)).await;
    let taxonomy = s.app.taxonomy("fashion").await.id;
    let spec = RoundSpec { assist: Assist::Prefilled, double_share: 0.25, ..round_spec(12) };
    let round = reviewloop::rounds::create(&s.app.pool, taxonomy, &spec, None).await.unwrap();
    assert_eq!(round.doubled, 3);
    let config = WorkerConfig::new(s.app.data_dir.clone());
    let mut kinds = Vec::new();
    while let Some((job, _)) = run_next(&s.app.pool, &config).await.unwrap() {
        kinds.push(job.kind);
    }
    assert!(kinds.contains(&"suggest".to_string()), "the suggest job was queued with the round: {kinds:?}");
    let items: Vec<Item> = sqlx::query_as(
        "SELECT r.text, i.copies, i.assisted, i.suggestion, i.suggestion_version_id
         FROM round_items i JOIN reviews r ON r.id = i.review_id WHERE i.round_id = $1 ORDER BY i.position",
    )
    .bind(round.id)
    .fetch_all(&s.app.pool)
    .await
    .unwrap();
    let assisted: Vec<_> = items.iter().filter(|i| i.2).collect();
    assert_eq!(assisted.len(), 9, "the three agreement items are unassisted");
    assert!(items.iter().filter(|i| i.1 == 2).all(|i| !i.2 && i.3.is_none()));
    for (text, _, _, suggestion, version) in assisted {
        let suggestion = suggestion.as_ref().expect("stored with the item");
        assert!(version.is_some());
        let (status, answer) = s.post(json!({"text": text})).await;
        assert_eq!(status, 200);
        let api = &answer["results"][0]["keywords"];
        let ours = &suggestion["keywords"];
        assert_eq!(api.as_array().unwrap().len(), ours.as_array().unwrap().len(), "{text}");
        assert!(!ours.as_array().unwrap().is_empty(), "the test model finds every keyword");
        for (a, o) in api.as_array().unwrap().iter().zip(ours.as_array().unwrap()) {
            assert_eq!(a["keyword"], o["keyword"]);
            assert_eq!(a["sentiment"], o["sentiment"]);
            let spans = |k: &Value| {
                k["highlights"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|h| (h["start"].clone(), h["end"].clone()))
                    .collect::<Vec<_>>()
            };
            assert_eq!(spans(a), spans(o), "the same highlighted words for {}", a["keyword"]);
        }
    }
}

#[tokio::test]
async fn a_round_without_assistance_queues_no_suggestions() {
    let s = serving(|_| {}, false).await;
    s.app.import_text("fashion", Format::Csv, &fashion_csv(4, 1)).await;
    let taxonomy = s.app.taxonomy("fashion").await.id;
    reviewloop::rounds::create(&s.app.pool, taxonomy, &round_spec(4), None).await.unwrap();
    assert_eq!(s.app.count("SELECT count(*) FROM jobs WHERE kind = 'suggest'").await, 0);
    assert_eq!(s.app.count("SELECT count(*) FROM round_items WHERE assisted").await, 0);
}

/// A round of `assist` over 4 unlabelled reviews, its suggestions computed, and an
/// annotator on its first item.
async fn assisted_round(s: &crate::analyze_api::Serving, assist: Assist) -> (i64, crate::helpers::Browser) {
    s.app.import_text("fashion", Format::Csv, &fashion_csv(4, 1)).await;
    let taxonomy = s.app.taxonomy("fashion").await.id;
    let spec = RoundSpec { assist, ..round_spec(4) };
    let round = reviewloop::rounds::create(&s.app.pool, taxonomy, &spec, None).await.unwrap();
    let config = WorkerConfig::new(s.app.data_dir.clone());
    while run_next(&s.app.pool, &config).await.unwrap().is_some() {}
    let annotator = s.app.logged_in(reviewloop::store::users::Role::Annotator).await;
    (round.id, annotator)
}

/// The suggested (keyword, level) pairs of an item's round item, from the database.
async fn suggested_of(s: &crate::analyze_api::Serving, item: &str) -> Vec<(String, i16)> {
    let id: i64 = item.rsplit('/').next().unwrap().parse().unwrap();
    let suggestion: Value = sqlx::query_scalar(
        "SELECT i.suggestion FROM assignments a JOIN round_items i ON i.id = a.round_item_id WHERE a.id = $1",
    )
    .bind(id)
    .fetch_one(&s.app.pool)
    .await
    .unwrap();
    let keywords = suggestion["keywords"].as_array().unwrap();
    keywords
        .iter()
        .map(|k| (k["keyword"].as_str().unwrap().to_string(), k["sentiment"].as_i64().unwrap() as i16))
        .collect()
}

#[tokio::test]
async fn a_prefilled_item_shows_and_ticks_the_suggestions_and_the_answer_records_what_was_kept() {
    let s = serving(|_| {}, false).await;
    let (round, annotator) = assisted_round(&s, Assist::Prefilled).await;
    let taxonomy = s.app.taxonomy("fashion").await;
    let item = crate::annotate::next_item(&annotator, round).await.unwrap();
    let page = annotator.get(&item).await.text().await.unwrap();
    assert!(page.contains("id=\"suggestions\""), "{page}");
    assert!(page.contains("<mark class=\"hl hl0\""), "the words that drove a keyword are marked");
    let suggested = suggested_of(&s, &item).await;
    assert!(suggested.len() >= 2, "{suggested:?}");
    for (name, _) in &suggested {
        let id = taxonomy.keyword(name).unwrap().id;
        assert!(page.contains(&format!("name=\"k{id}\" checked")), "{name} is ticked in advance");
    }
    // Keep the first at its level, change the second's level, drop the rest, add one.
    let added = taxonomy.keywords.iter().find(|k| !suggested.iter().any(|(n, _)| *n == k.name));
    let mut chosen: Vec<(&str, i16)> = vec![(&suggested[0].0, suggested[0].1)];
    let other = if suggested[1].1 == 1 { 0 } else { 1 };
    chosen.push((&suggested[1].0, other));
    if let Some(k) = added {
        chosen.push((&k.name, 0));
    }
    let form = crate::annotate::answer(&annotator, &item, &taxonomy, &chosen).await;
    let response = annotator.post_form(&item, &form).await;
    let status = response.status();
    assert_eq!(status, 303, "{}", response.text().await.unwrap());
    let record: Value = sqlx::query_scalar("SELECT assist FROM annotations ORDER BY id DESC LIMIT 1")
        .fetch_one(&s.app.pool)
        .await
        .unwrap();
    assert_eq!(record["mode"], "prefilled");
    assert_eq!(record["accepted"], json!([suggested[0].0]));
    assert_eq!(record["changed"], json!([suggested[1].0]));
    let removed: Vec<&String> = suggested[2..].iter().map(|(n, _)| n).collect();
    assert_eq!(record["removed"], json!(removed));
    assert_eq!(record["added"], json!(added.map(|k| vec![k.name.clone()]).unwrap_or_default()));
    assert!(record["version_id"].as_i64().is_some());
    // The engineer's round page counts it per keyword.
    let engineer = s.app.logged_in(reviewloop::store::users::Role::Engineer).await;
    let page = engineer.get(&format!("/engineer/rounds/{round}")).await.text().await.unwrap();
    assert!(page.contains("id=\"assist-table\""), "{page}");
    let accepted_row =
        format!("<tr><td>{}</td><td>1</td><td>0</td><td>0</td><td>0</td><td>100%</td></tr>", suggested[0].0);
    assert!(page.contains(&accepted_row), "{page}");
    let changed_row =
        format!("<tr><td>{}</td><td>0</td><td>1</td><td>0</td><td>0</td><td>0%</td></tr>", suggested[1].0);
    assert!(page.contains(&changed_row), "{page}");
    // A second label gives the pace with suggestions (none without: every item had them).
    let second = crate::annotate::next_item(&annotator, round).await.unwrap();
    let accept: Vec<(String, i16)> = suggested_of(&s, &second).await;
    let chosen: Vec<(&str, i16)> = accept.iter().map(|(n, l)| (n.as_str(), *l)).collect();
    let form = crate::annotate::answer(&annotator, &second, &taxonomy, &chosen).await;
    assert_eq!(annotator.post_form(&second, &form).await.status(), 303);
    let pace = store::assist_stats::pace(&s.app.pool, round).await.unwrap();
    assert!(pace.assisted.is_some_and(|p| p > 0.0) && pace.unassisted.is_none(), "{pace:?}");
}

#[tokio::test]
async fn an_unassisted_round_shows_no_suggestion_and_records_none() {
    let s = serving(|_| {}, false).await;
    let (round, annotator) = assisted_round(&s, Assist::Off).await;
    let taxonomy = s.app.taxonomy("fashion").await;
    let item = crate::annotate::next_item(&annotator, round).await.unwrap();
    let page = annotator.get(&item).await.text().await.unwrap();
    assert!(!page.contains("id=\"suggestions\"") && !page.contains("<mark"), "{page}");
    assert!(!page.contains("\" checked"), "nothing ticked in advance");
    let form = crate::annotate::answer(&annotator, &item, &taxonomy, &[("배송", 1)]).await;
    assert_eq!(annotator.post_form(&item, &form).await.status(), 303);
    assert_eq!(s.app.count("SELECT count(*) FROM annotations WHERE assist IS NOT NULL").await, 0);
}

#[tokio::test]
async fn the_qa_page_can_show_only_the_suspects_among_prefilled_labels() {
    use reviewloop::store::label_issues::{self, NewIssue};
    use reviewloop::store::users::Role;
    let app = crate::helpers::TestApp::spawn().await;
    app.import_text("fashion", Format::Csv, "text,labels\n배송이 빨라요 정말로,\n배송 늦어요 아주 많이,\n")
        .await;
    let taxonomy = app.taxonomy("fashion").await;
    let delivery = taxonomy.keyword("배송").unwrap().id;
    let reviews: Vec<(i64, String)> =
        sqlx::query_as("SELECT id, text FROM reviews ORDER BY id").fetch_all(&app.pool).await.unwrap();
    let annotator = crate::helpers::user_id(&app, Role::Annotator).await;
    let prefilled =
        json!({"mode": "prefilled", "accepted": ["배송"], "changed": [], "removed": [], "added": []});
    let with =
        crate::helpers::assisted_answer(&app, reviews[0].0, annotator, vec![(delivery, 1)], Some(prefilled))
            .await;
    let without = crate::helpers::human_answer(&app, reviews[1].0, annotator, vec![(delivery, 1)]).await;
    let issue = |review_id, annotation_id| NewIssue {
        review_id,
        keyword_id: delivery,
        kind: "wrong",
        annotation_id,
        suggested: 0,
        confidence: 0.5,
    };
    label_issues::record(&app.pool, &[issue(reviews[0].0, with), issue(reviews[1].0, without)])
        .await
        .unwrap();
    let reviewer = app.logged_in(Role::Reviewer).await;
    let all = reviewer.get(&format!("/qa/keywords/{delivery}")).await.text().await.unwrap();
    assert!(all.contains(&reviews[0].1) && all.contains(&reviews[1].1));
    let only = reviewer.get(&format!("/qa/keywords/{delivery}?prefilled=1")).await.text().await.unwrap();
    assert!(only.contains(&reviews[0].1), "{only}");
    assert!(!only.contains(&reviews[1].1), "an unassisted label is filtered out");
}
