//! Annotators labelling through the web pages.

use std::collections::HashSet;

use reviewloop::import::Format;
use reviewloop::rounds::RoundSpec;
use reviewloop::store::users::Role;
use reviewloop::taxonomy::Taxonomy;

use crate::helpers::{location, round_spec, token_in, Browser, TestApp};

pub async fn round(app: &TestApp, reviews: usize, double_share: f64) -> i64 {
    app.import_text("fashion", Format::Csv, &crate::helpers::fashion_csv(reviews, 3)).await;
    let spec = RoundSpec { name: "라운드 1".into(), double_share, seed: 7, ..round_spec(reviews) };
    app.create_round(&spec).await.unwrap().id
}

/// Asks for the next item; `None` when the round is done for this annotator.
pub async fn next_item(browser: &Browser, round: i64) -> Option<String> {
    let response = browser.claim_next(round).await;
    assert_eq!(response.status(), 303);
    let to = location(&response);
    to.starts_with("/annotate/items/").then_some(to)
}

/// The item page's form with the given keywords ticked at the given levels.
pub async fn answer(
    browser: &Browser,
    item: &str,
    taxonomy: &Taxonomy,
    labels: &[(&str, i16)],
) -> Vec<(String, String)> {
    let page = browser.get(item).await.text().await.unwrap();
    let mut form = vec![
        ("csrf".to_string(), crate::helpers::csrf_in(&page).unwrap()),
        ("token".to_string(), token_in(&page).unwrap()),
    ];
    for (name, level) in labels {
        let id = taxonomy.keyword(name).unwrap().id;
        form.push((format!("k{id}"), "on".into()));
        form.push((format!("s{id}"), level.to_string()));
    }
    if labels.is_empty() {
        form.push(("no_keyword".into(), "on".into()));
    }
    form
}

#[tokio::test]
async fn an_annotator_labels_every_item_of_a_round_and_is_told_when_done() {
    let app = TestApp::spawn().await;
    let round = round(&app, 3, 0.0).await;
    let taxonomy = app.taxonomy("fashion").await;
    let annotator = app.logged_in(Role::Annotator).await;
    let mut seen = HashSet::new();
    while let Some(item) = next_item(&annotator, round).await {
        assert!(seen.insert(item.clone()), "item {item} served twice");
        let form = answer(&annotator, &item, &taxonomy, &[("디자인", 1), ("배송", -1)]).await;
        let response = annotator.post_form(&item, &form).await;
        assert_eq!(response.status(), 303);
    }
    assert_eq!(seen.len(), 3);
    let page = annotator.get(&format!("/annotate?finished={round}")).await.text().await.unwrap();
    assert!(page.contains("id=\"finished\""));
    assert_eq!(app.count("SELECT count(*) FROM annotation_labels").await, 6);
    assert_eq!(app.count("SELECT count(*) FROM assignments WHERE status = 'done'").await, 3);
}

/// A round whose items all go to two annotators: once one has answered every item,
/// their list says their part is done instead of offering a start that leads nowhere,
/// while the other still gets the start button.
#[tokio::test]
async fn a_round_with_only_others_copies_left_is_not_offered_to_start() {
    let app = TestApp::spawn().await;
    let round = round(&app, 2, 1.0).await;
    let taxonomy = app.taxonomy("fashion").await;
    let (first, second) = (app.logged_in(Role::Annotator).await, app.logged_in(Role::Annotator).await);
    let start = format!("id=\"start-{round}\"");
    assert!(first.get("/annotate").await.text().await.unwrap().contains(&start));
    while let Some(item) = next_item(&first, round).await {
        let form = answer(&first, &item, &taxonomy, &[("배송", 1)]).await;
        assert_eq!(first.post_form(&item, &form).await.status(), 303);
    }
    let page = first.get("/annotate").await.text().await.unwrap();
    assert!(!page.contains(&start) && page.contains(&format!("id=\"done-{round}\"")), "{page}");
    assert!(page.contains("내 몫은 끝남"), "{page}");
    assert!(second.get("/annotate").await.text().await.unwrap().contains(&start));
}

#[tokio::test]
async fn submitting_the_same_form_twice_stores_one_label() {
    let app = TestApp::spawn().await;
    let round = round(&app, 2, 0.0).await;
    let taxonomy = app.taxonomy("fashion").await;
    let annotator = app.logged_in(Role::Annotator).await;
    let item = next_item(&annotator, round).await.unwrap();
    let form = answer(&annotator, &item, &taxonomy, &[("색상", 2)]).await;
    // A double click: both requests in flight at once, then a retry.
    let (a, b) = tokio::join!(annotator.post_form(&item, &form), annotator.post_form(&item, &form));
    assert_eq!((a.status().as_u16(), b.status().as_u16()), (303, 303));
    assert_eq!(annotator.post_form(&item, &form).await.status(), 303);
    assert_eq!(app.count("SELECT count(*) FROM annotations").await, 1);
    assert_eq!(app.count("SELECT count(*) FROM annotation_labels").await, 1);
}

#[tokio::test]
async fn going_back_and_correcting_adds_a_row_and_keeps_the_history() {
    let app = TestApp::spawn().await;
    let round = round(&app, 3, 0.0).await;
    let taxonomy = app.taxonomy("fashion").await;
    let annotator = app.logged_in(Role::Annotator).await;
    let first = next_item(&annotator, round).await.unwrap();
    annotator.post_form(&first, &answer(&annotator, &first, &taxonomy, &[("사이즈", -1)]).await).await;
    let second = next_item(&annotator, round).await.unwrap();
    let id = second.rsplit('/').next().unwrap();

    let back = annotator.get(&format!("/annotate/rounds/{round}/back?before={id}")).await;
    assert_eq!(location(&back), first);
    let page = annotator.get(&first).await.text().await.unwrap();
    assert!(page.contains("id=\"correcting\""), "the page says this is a correction");
    let size = taxonomy.keyword("사이즈").unwrap().id;
    assert!(page.contains(&format!("name=\"k{size}\" checked")), "the earlier answer is shown");
    annotator
        .post_form(&first, &answer(&annotator, &first, &taxonomy, &[("사이즈", 1), ("핏", 2)]).await)
        .await;

    // The next item is the one left open before going back.
    assert_eq!(next_item(&annotator, round).await.unwrap(), second);
    let history: Vec<(i64, i16)> = sqlx::query_as(
        "SELECT a.id, l.sentiment FROM annotations a JOIN annotation_labels l ON l.annotation_id = a.id
         WHERE l.keyword_id = $1 ORDER BY a.id",
    )
    .bind(size)
    .fetch_all(&app.pool)
    .await
    .unwrap();
    assert_eq!(history.iter().map(|h| h.1).collect::<Vec<_>>(), vec![-1, 1]);
    assert!(
        sqlx::query("UPDATE annotations SET no_keyword = true").execute(&app.pool).await.is_err(),
        "append-only"
    );
}

#[tokio::test]
async fn an_empty_answer_is_refused_and_nothing_is_stored() {
    let app = TestApp::spawn().await;
    let round = round(&app, 1, 0.0).await;
    let annotator = app.logged_in(Role::Annotator).await;
    let item = next_item(&annotator, round).await.unwrap();
    let page = annotator.get(&item).await.text().await.unwrap();
    let form = crate::helpers::pairs(&[
        ("csrf", &crate::helpers::csrf_in(&page).unwrap()),
        ("token", &token_in(&page).unwrap()),
    ]);
    assert_eq!(annotator.post_form(&item, &form).await.status(), 422);
    let taxonomy = app.taxonomy("fashion").await;
    let mut both = answer(&annotator, &item, &taxonomy, &[("핏", 1)]).await;
    both.push(("no_keyword".into(), "on".into()));
    assert_eq!(annotator.post_form(&item, &both).await.status(), 422);
    let mut loud = answer(&annotator, &item, &taxonomy, &[("핏", 1)]).await;
    loud.iter_mut().filter(|(k, _)| k.starts_with('s')).for_each(|(_, v)| *v = "5".into());
    assert_eq!(annotator.post_form(&item, &loud).await.status(), 400);
    assert_eq!(app.count("SELECT count(*) FROM annotations").await, 0);
}

#[tokio::test]
async fn a_skipped_item_goes_to_the_next_annotator() {
    let app = TestApp::spawn().await;
    let round = round(&app, 1, 0.0).await;
    let first = app.logged_in(Role::Annotator).await;
    let item = next_item(&first, round).await.unwrap();
    let other = app.logged_in(Role::Annotator).await;
    assert_eq!(next_item(&other, round).await, None, "the only item is taken");
    let csrf = first.csrf().await;
    assert_eq!(first.post_form(&format!("{item}/skip"), &[("csrf".into(), csrf)]).await.status(), 303);
    assert_eq!(next_item(&first, round).await, None, "never offered again to who skipped it");
    assert!(next_item(&other, round).await.is_some());
}

#[tokio::test]
async fn twenty_annotators_in_parallel_lose_no_label_and_never_share_a_single_item() {
    let app = TestApp::spawn().await;
    let round = round(&app, 80, 0.25).await;
    let taxonomy = app.taxonomy("fashion").await;
    let mut browsers = Vec::new();
    for _ in 0..20 {
        browsers.push(app.logged_in(Role::Annotator).await);
    }
    let workers = browsers.into_iter().map(|browser| {
        let taxonomy = taxonomy.clone();
        tokio::spawn(async move {
            let mut done = 0;
            while let Some(item) = next_item(&browser, round).await {
                let form = answer(&browser, &item, &taxonomy, &[("만족도", 2)]).await;
                assert_eq!(browser.post_form(&item, &form).await.status(), 303);
                done += 1;
            }
            done
        })
    });
    let mut submitted = 0;
    for worker in workers {
        submitted += worker.await.unwrap();
    }
    // 80 items, 20 of them for two annotators.
    assert_eq!(submitted, 100);
    assert_eq!(app.count("SELECT count(*) FROM annotations").await, 100);
    let overfull = app
        .count(
            "SELECT count(*) FROM (SELECT i.id FROM round_items i JOIN assignments a ON a.round_item_id = i.id
             GROUP BY i.id, i.copies HAVING count(*) <> i.copies) x",
        )
        .await;
    assert_eq!(overfull, 0, "every item got exactly its number of copies");
    let same_person_twice = app
        .count("SELECT count(*) FROM (SELECT review_id, annotator_id FROM annotations GROUP BY 1, 2 HAVING count(*) > 1) x")
        .await;
    assert_eq!(same_person_twice, 0);
}

#[tokio::test]
async fn the_item_page_speaks_korean_by_default_and_english_on_request() {
    let app = TestApp::spawn().await;
    let round = round(&app, 1, 0.0).await;
    let annotator = app.logged_in(Role::Annotator).await;
    let item = next_item(&annotator, round).await.unwrap();
    let korean = annotator.get(&item).await.text().await.unwrap();
    assert!(
        korean.contains("해당 키워드 없음") && korean.contains("리뷰 0번") || korean.contains("번: 옷이")
    );
    let switch = annotator.get(&format!("/lang/en?next={item}")).await;
    assert_eq!(location(&switch), item);
    let english = annotator.get(&item).await.text().await.unwrap();
    assert!(english.contains("No keyword"));
    assert!(english.contains("lang=\"en\""));
    // Only local paths are followed after switching.
    assert_eq!(location(&annotator.get("/lang/ko?next=//evil.example").await), "/");
}

#[tokio::test]
async fn a_closed_round_takes_no_more_answers_and_says_so() {
    let app = TestApp::spawn().await;
    let round = round(&app, 3, 0.0).await;
    let taxonomy = app.taxonomy("fashion").await;
    let annotator = app.logged_in(Role::Annotator).await;
    let item = next_item(&annotator, round).await.unwrap();
    let form = answer(&annotator, &item, &taxonomy, &[("배송", 1)]).await;
    reviewloop::store::rounds::close(&app.pool, round, None).await.unwrap();
    let refused = annotator.post_form(&item, &form).await;
    assert_eq!(refused.status(), 409);
    let page = refused.text().await.unwrap();
    assert!(page.contains("이 라운드는 닫혔습니다"), "{page}");
    assert_eq!(app.count("SELECT count(*) FROM annotations").await, 0, "nothing stored");
    // The item's page says so, its form disabled; starting the round again is refused.
    let shown = annotator.get(&item).await.text().await.unwrap();
    assert!(shown.contains("이 라운드는 닫혔습니다"), "{shown}");
    assert!(shown.contains("id=\"submit-button\" disabled"), "{shown}");
    assert_eq!(annotator.claim_next(round).await.status(), 409);
    // Where the answer is stored the round is checked again, under its row lock: an
    // answer read while the round was open and stored after it closed is refused too.
    use reviewloop::store::assignments::{self, Submitted};
    let id: i64 = item.trim_start_matches("/annotate/items/").parse().unwrap();
    let mut open_then = assignments::get(&app.pool, id).await.unwrap().unwrap();
    open_then.round_open = true;
    let labels = reviewloop::taxonomy::ResolvedLabels { no_keyword: true, labels: vec![] };
    let stored =
        assignments::submit(&app.pool, &open_then, &labels, 1, uuid::Uuid::new_v4(), None).await.unwrap();
    assert!(matches!(stored, Submitted::RoundClosed));
    assert_eq!(app.count("SELECT count(*) FROM annotations").await, 0);
}

#[tokio::test]
async fn following_a_link_claims_nothing_only_the_start_button_does() {
    let app = TestApp::spawn().await;
    let round = round(&app, 3, 0.0).await;
    let annotator = app.logged_in(Role::Annotator).await;
    // The old link, as a page elsewhere could embed it: not a GET address, nothing claimed.
    assert_eq!(annotator.get(&format!("/annotate/rounds/{round}/next")).await.status(), 405);
    // The start button's request without its token, as another site could send it.
    let forged = annotator.post_form(&format!("/annotate/rounds/{round}/next"), &[]).await;
    assert_eq!(forged.status(), 403);
    assert_eq!(app.count("SELECT count(*) FROM assignments").await, 0);
    let rounds = annotator.get("/annotate").await.text().await.unwrap();
    assert!(
        rounds.contains(&format!("<form method=\"post\" action=\"/annotate/rounds/{round}/next\"")),
        "{rounds}"
    );
    assert!(next_item(&annotator, round).await.is_some());
    assert_eq!(app.count("SELECT count(*) FROM assignments").await, 1);
}
