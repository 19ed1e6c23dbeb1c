//! Label-error detection building blocks against real labels: out-of-sample
//! probabilities by k-fold cross-validation, then confident learning.

use reviewloop::audit::confident::keyword_suspects;
use reviewloop::audit::finder;
use reviewloop::audit::neighbours::{Neighbourhood, NEIGHBOURS};
use reviewloop::import::Format;
use reviewloop::store::label_issues::{self, Decision};
use reviewloop::train::{data, folds};

use crate::helpers::{human_answer, user_id, TestApp};
use crate::train::{scratch_dir, settings};

/// `n` reviews, delivery and colour by turns; `planted` (a delivery review) labelled 색상.
async fn import_two_kinds(app: &TestApp, n: usize, planted: Option<usize>) {
    let mut csv = String::from("text,labels\n");
    for i in 0..n {
        let (text, labels) =
            if i % 2 == 0 { ("배송이 빨라요", "배송1") } else { ("색감이 예뻐요", "색상2") };
        let labels = if Some(i) == planted { "색상2" } else { labels };
        csv.push_str(&format!("{text} {i}번,\"{labels}\"\n"));
    }
    app.import_text("fashion", Format::Csv, &csv).await;
}

#[tokio::test]
async fn cross_validation_scores_every_label_out_of_sample_and_finds_a_planted_error() {
    let app = TestApp::spawn().await;
    // Review 6 is about delivery but was labelled 색상: the planted error.
    import_two_kinds(&app, 40, Some(6)).await;
    let taxonomy = app.taxonomy("fashion").await;
    let items = data::labelled(&app.pool, &taxonomy, None).await.unwrap();
    let models = scratch_dir();
    let mut s = settings(&models, "cv");
    // A tokenizer of its own (the fixture's knows few Korean words) and a tiny encoder.
    s.base = None;
    s.encoder_size = Some(reviewloop::train::settings::EncoderSize { layers: 1, hidden: 64 });
    s.vocab_size = 300;
    s.fit.epochs = 15;
    s.fit.learning_rate = 3e-3;
    s.fit.batch_size = 8;
    let mut stages = std::collections::BTreeSet::new();
    let out =
        folds::cross_validate(&app.pool, &s, &taxonomy, &items, &folds::Plan::audit(4), &mut |stage, _| {
            stages.insert(stage.to_string());
        })
        .await
        .unwrap();
    assert_eq!(stages.len(), 16, "4 folds × (keyword, sentiment) × (lexical part, encoder): {stages:?}");
    assert!(out.keyword.iter().all(|p| p.len() == 15), "every review scored");
    for (item, dists) in items.iter().zip(&out.sentiment) {
        assert_eq!(dists.len(), item.labels.len(), "a distribution per labelled keyword");
    }
    let delivery = taxonomy.keywords.iter().position(|k| k.name == "배송").unwrap();
    let present: Vec<f32> = out.keyword.iter().map(|p| p[delivery]).collect();
    let labelled: Vec<bool> = items.iter().map(|i| i.labels.iter().any(|(k, _)| *k == delivery)).collect();
    let planted = items.iter().position(|i| i.text.ends_with(" 6번")).unwrap();
    let suspects = keyword_suspects(&present, &labelled);
    assert_eq!(suspects.first().map(|s| (s.index, s.suggested)), Some((planted, 1)), "{suspects:?}");
    assert_eq!(folds::fold_of("배송이 빨라요", 4), folds::fold_of("배송이 빨라요", 4));

    // Recorded as label issues: the planted one first for 배송, as a missing keyword.
    assert!(out.vectors.is_empty(), "a fresh encoder's vectors are not given");
    let none = Neighbourhood::of(&out.vectors, NEIGHBOURS).unwrap();
    let issues = finder::find(&taxonomy, &items, &out, &none);
    let delivery_id = taxonomy.keywords[delivery].id;
    let first = issues.iter().find(|i| i.keyword_id == delivery_id).unwrap();
    assert_eq!(
        (first.review_id, first.kind, first.suggested),
        (items[planted].stored.unwrap().0, "missing", 1)
    );
    let added = label_issues::record(&app.pool, &issues).await.unwrap();
    assert_eq!(added, issues.len());
    assert_eq!(label_issues::record(&app.pool, &issues).await.unwrap(), 0, "a rerun does not double them");
    let issue_id: i64 =
        sqlx::query_scalar("SELECT id FROM label_issues WHERE review_id = $1 AND kind = 'missing'")
            .bind(first.review_id)
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(label_issues::decide(&app.pool, &[issue_id], Decision::Dismissed, None).await.unwrap(), 1);
    assert_eq!(
        label_issues::record(&app.pool, &issues).await.unwrap(),
        0,
        "a dismissed suspicion stays dismissed"
    );
    // The label changes (a new annotation): the suspicion may be raised again.
    app.import_text("fashion", Format::Csv, "text,labels\n배송이 빨라요 6번,\"색상1\"\n").await;
    let items = data::labelled(&app.pool, &taxonomy, None).await.unwrap();
    assert!(
        label_issues::record(&app.pool, &finder::find(&taxonomy, &items, &out, &none)).await.unwrap() >= 1
    );
    assert_eq!(app.count("SELECT count(*) FROM audit_log WHERE action = 'label_issue.dismissed'").await, 1);
    let _ = std::fs::remove_dir_all(&models);
}

/// Out-of-sample probabilities that agree with every label but the planted one's.
fn agreeing_with_the_truth(
    items: &[data::LabelledText],
    keyword: usize,
    planted: &str,
) -> folds::OutOfSample {
    let keyword_probabilities = items
        .iter()
        .map(|i| {
            let about = i.labels.iter().any(|(k, _)| *k == keyword) || i.text.ends_with(planted);
            let mut p = vec![0.01; 15];
            p[keyword] = if about { 0.99 } else { 0.01 };
            p
        })
        .collect();
    folds::OutOfSample {
        keyword: keyword_probabilities,
        sentiment: vec![vec![]; items.len()],
        vectors: vec![],
    }
}

#[tokio::test]
async fn a_keyword_with_fewer_labels_than_the_minimum_is_not_judged() {
    let app = TestApp::spawn().await;
    import_two_kinds(&app, 40, Some(6)).await;
    let taxonomy = app.taxonomy("fashion").await;
    let delivery = taxonomy.keywords.iter().position(|k| k.name == "배송").unwrap();
    let all = data::labelled(&app.pool, &taxonomy, None).await.unwrap();
    let none = Neighbourhood::of(&[], NEIGHBOURS).unwrap();
    let flagged = |items: &[data::LabelledText]| {
        let out = agreeing_with_the_truth(items, delivery, " 6번");
        finder::find(&taxonomy, items, &out, &none)
            .iter()
            .filter(|i| i.keyword_id == taxonomy.keywords[delivery].id)
            .count()
    };
    assert_eq!(flagged(&all), 1, "19 labels of 배송: the planted one is found");
    // The first 17 reviews hold 8 labels of 배송, fewer than the minimum: not judged.
    let number = |i: &data::LabelledText| {
        i.text.rsplit(' ').next().unwrap().trim_end_matches('번').parse::<usize>().unwrap()
    };
    let few: Vec<_> = all.iter().filter(|i| number(i) < 17).cloned().collect();
    let labels = few.iter().filter(|i| i.labels.iter().any(|(k, _)| *k == delivery)).count();
    assert!(labels < reviewloop::evidence::MIN_AUDIT_LABELS, "{labels}");
    assert_eq!(flagged(&few), 0);
}

#[tokio::test]
async fn with_a_pretrained_base_the_neighbours_of_a_mislabelled_review_vote_for_its_keyword() {
    let app = TestApp::spawn().await;
    // Review 6 is about delivery but was labelled 색상.
    import_two_kinds(&app, 24, Some(6)).await;
    let taxonomy = app.taxonomy("fashion").await;
    let items = data::labelled(&app.pool, &taxonomy, None).await.unwrap();
    let models = scratch_dir();
    let mut s = settings(&models, "cv");
    s.fit.epochs = 1;
    let plan = folds::Plan { folds: 2, repeats: 1, sentiment: false };
    let out = folds::cross_validate(&app.pool, &s, &taxonomy, &items, &plan, &mut |_, _| {}).await.unwrap();
    assert_eq!(out.vectors.len(), items.len(), "a vector per review from the tiny base");
    let width = out.vectors[0].len();
    assert!(width > 0 && out.vectors.iter().all(|v| v.len() == width && v.iter().all(|x| x.is_finite())));

    let delivery = taxonomy.keywords.iter().position(|k| k.name == "배송").unwrap();
    let labelled: Vec<bool> = items.iter().map(|i| i.labels.iter().any(|(k, _)| *k == delivery)).collect();
    let neighbourhood = Neighbourhood::of(&out.vectors, NEIGHBOURS).unwrap();
    let voted = neighbourhood.vote(&labelled).expect("a pretrained base's vectors vote");
    let planted = items.iter().position(|i| i.text.ends_with(" 6번")).unwrap();
    assert!(!labelled[planted] && voted[planted] >= 0.9, "its delivery neighbours: {}", voted[planted]);
    for (i, item) in items.iter().enumerate() {
        if item.text.starts_with("색감이") {
            assert!(voted[i] <= 0.1, "a colour review among colour reviews: {} {}", item.text, voted[i]);
        }
    }
    // The fold models learnt little in one epoch; the vote still puts the planted
    // review first among 배송's suspects.
    let issues = finder::find(&taxonomy, &items, &out, &neighbourhood);
    let first = issues.iter().find(|i| i.keyword_id == taxonomy.keywords[delivery].id).unwrap();
    assert_eq!((first.review_id, first.kind), (items[planted].stored.unwrap().0, "missing"), "{issues:?}");
    let _ = std::fs::remove_dir_all(&models);
}

#[tokio::test]
async fn repeated_keyword_models_average_their_seeds_and_a_keyword_only_plan_trains_no_sentiment() {
    let app = TestApp::spawn().await;
    import_two_kinds(&app, 24, None).await;
    let taxonomy = app.taxonomy("fashion").await;
    let items = data::labelled(&app.pool, &taxonomy, None).await.unwrap();
    let models = scratch_dir();
    let mut s = settings(&models, "cv");
    s.base = None;
    s.encoder_size = Some(reviewloop::train::settings::EncoderSize { layers: 1, hidden: 32 });
    s.vocab_size = 200;
    s.fit.epochs = 2;
    s.fit.batch_size = 8;
    let plan = |repeats| folds::Plan { folds: 2, repeats, sentiment: false };
    let mut stages = std::collections::BTreeSet::new();
    let both = folds::cross_validate(&app.pool, &s, &taxonomy, &items, &plan(2), &mut |stage, _| {
        stages.insert(stage.split(':').next().unwrap_or(stage).to_string());
    })
    .await
    .unwrap();
    assert!(stages.iter().all(|st| st.contains("keyword")), "no sentiment model trained: {stages:?}");
    assert!(stages.iter().any(|st| st.contains("keyword 2")), "two keyword models per fold: {stages:?}");
    assert!(both.sentiment.iter().all(Vec::is_empty));
    let mut singles = Vec::new();
    for seed in [s.fit.seed, s.fit.seed + 1] {
        let mut one = s.clone();
        one.fit.seed = seed;
        singles.push(
            folds::cross_validate(&app.pool, &one, &taxonomy, &items, &plan(1), &mut |_, _| {})
                .await
                .unwrap(),
        );
    }
    assert_ne!(singles[0].keyword, singles[1].keyword, "the seeds give different models");
    for (i, p) in both.keyword.iter().enumerate() {
        for (k, &x) in p.iter().enumerate() {
            let mean = (singles[0].keyword[i][k] + singles[1].keyword[i][k]) / 2.0;
            assert!((x - mean).abs() < 1e-5, "review {i} keyword {k}: {x} against the seeds' mean {mean}");
        }
    }
    let _ = std::fs::remove_dir_all(&models);
}

#[tokio::test]
async fn a_reviewers_fix_is_a_new_annotation_and_closes_the_issue() {
    let app = TestApp::spawn().await;
    app.import_text("fashion", Format::Csv, "text,labels\n배송이 빨라요,색상2\n색감이 예뻐요,색상2\n").await;
    let taxonomy = app.taxonomy("fashion").await;
    let reviewer = app.user(reviewloop::store::users::Role::Reviewer).await;
    let reviewer = reviewloop::store::users::find(&app.pool, &reviewer).await.unwrap().unwrap().id;
    let items = data::labelled(&app.pool, &taxonomy, None).await.unwrap();
    let delivery = taxonomy.keywords.iter().find(|k| k.name == "배송").unwrap().id;
    let colour = taxonomy.keywords.iter().find(|k| k.name == "색상").unwrap().id;
    let issues: Vec<label_issues::NewIssue> = items
        .iter()
        .map(|i| label_issues::NewIssue {
            review_id: i.stored.unwrap().0,
            keyword_id: delivery,
            kind: "missing",
            annotation_id: i.stored.unwrap().1,
            suggested: 1,
            confidence: 0.5,
        })
        .collect();
    label_issues::record(&app.pool, &issues).await.unwrap();
    let ids: Vec<i64> =
        sqlx::query_scalar("SELECT id FROM label_issues ORDER BY id").fetch_all(&app.pool).await.unwrap();
    let labels = reviewloop::taxonomy::ResolvedLabels { no_keyword: false, labels: vec![(delivery, 1)] };
    let annotation =
        label_issues::fix(&app.pool, ids[0], reviewer, &labels).await.unwrap().expect("open issue");
    assert!(label_issues::fix(&app.pool, ids[0], reviewer, &labels).await.unwrap().is_none(), "fixed once");
    // History is complete: the imported label is still there, the fix is a new row.
    assert_eq!(app.count("SELECT count(*) FROM annotations").await, 3);
    let source: String = sqlx::query_scalar("SELECT source::text FROM annotations WHERE id = $1")
        .bind(annotation)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(source, "review");
    let now = data::labelled(&app.pool, &taxonomy, None).await.unwrap();
    let fixed = now.iter().find(|i| i.stored.unwrap().1 == annotation).expect("the fix is the current label");
    assert_eq!(fixed.labels.len(), 1);
    assert_eq!(taxonomy.keywords[fixed.labels[0].0].id, delivery);
    assert_ne!(delivery, colour);
    // Bulk: the rest confirmed at once; decisions name the reviewer.
    assert_eq!(label_issues::decide(&app.pool, &ids, Decision::Confirmed, Some(reviewer)).await.unwrap(), 1);
    assert_eq!(app.count("SELECT count(*) FROM label_issues WHERE status = 'open'").await, 0);
    assert_eq!(app.count(&format!("SELECT count(*) FROM audit_log WHERE actor_id = {reviewer}")).await, 2);
}

#[tokio::test]
async fn agreement_is_measured_on_reviews_two_annotators_labelled() {
    use reviewloop::store::users::Role;
    let app = TestApp::spawn().await;
    app.import_text("fashion", Format::Csv, &crate::helpers::fashion_csv(3, 1)).await;
    let taxonomy = app.taxonomy("fashion").await;
    let delivery = taxonomy.keywords.iter().find(|k| k.name == "배송").unwrap().id;
    let reviews: Vec<i64> =
        sqlx::query_scalar("SELECT id FROM reviews ORDER BY id").fetch_all(&app.pool).await.unwrap();
    let annotators = [user_id(&app, Role::Annotator).await, user_id(&app, Role::Annotator).await];
    // Review 0: both mark 배송 +1; review 1: both mark it, levels differ; review 2: one only.
    for (review, annotator, level) in [(0, 0, 1), (0, 1, 1), (1, 0, 1), (1, 1, -1), (2, 0, 1)] {
        human_answer(&app, reviews[review], annotators[annotator], vec![(delivery, level)]).await;
    }
    let rated = reviewloop::audit::agreement::answers(&app.pool, taxonomy.id).await.unwrap();
    assert_eq!(rated.len(), 2, "the review one annotator labelled does not count");
    let result = reviewloop::audit::agreement::per_keyword(&[delivery], &rated);
    assert_eq!(result[0].reviews, 2);
    assert_eq!(result[0].presence_kappa, None, "both always mark it: no variation, undefined");
    assert!(result[0].level_alpha.unwrap() < 0.5, "levels agree once in two");
}

#[tokio::test]
async fn an_edited_guideline_is_a_new_version_and_older_labels_can_be_listed() {
    use reviewloop::store::guidelines;
    let app = TestApp::spawn().await;
    app.import_text("fashion", Format::Csv, "text,labels\n바지가 쫀쫀해요,품질1\n").await;
    let taxonomy = app.taxonomy("fashion").await;
    let quality = taxonomy.keywords.iter().find(|k| k.name == "품질").unwrap();
    let rule = "쫀쫀/짱짱은 품질. 단, 허리밴드·신축 표현과 함께면 신축성.";
    assert_eq!(guidelines::edit(&app.pool, quality.id, rule, None).await.unwrap(), 2);
    assert!(
        guidelines::edit(&app.pool, quality.id, "   ", None).await.is_err(),
        "an empty definition is refused"
    );
    let history = guidelines::history(&app.pool, quality.id).await.unwrap();
    assert_eq!((history.len(), history[0].version, history[0].taxonomy_revision), (2, 2, 2));
    let reloaded = app.taxonomy("fashion").await;
    assert_eq!(reloaded.guideline_revision, 2);
    assert_eq!(
        reloaded.keywords.iter().find(|k| k.id == quality.id).unwrap().guideline,
        rule,
        "pages show the new one"
    );
    // The label made before the edit is listed; one made after is not.
    app.import_text("fashion", Format::Csv, "text,labels\n원단이 짱짱해요,품질1\n").await;
    let older = guidelines::labels_under_older_definition(&app.pool, quality.id, 0, 50).await.unwrap();
    assert_eq!(older.len(), 1);
    assert_eq!((older[0].2, older[0].3.as_str()), (1, "바지가 쫀쫀해요"), "made under revision 1");
    assert_eq!(
        guidelines::count_labels_under_older_definition(&app.pool, quality.id, 1000).await.unwrap(),
        1
    );
    assert!(
        guidelines::labels_under_older_definition(&app.pool, quality.id, older[0].1, 50)
            .await
            .unwrap()
            .is_empty(),
        "nothing after the last one"
    );
    // Once the review is labelled again under the new definition, it is done.
    let annotator = crate::helpers::user_id(&app, reviewloop::store::users::Role::Annotator).await;
    let author = reviewloop::store::annotations::Authorship {
        source: reviewloop::consensus::LabelSource::Human,
        annotator_id: Some(annotator),
        assignment_id: None,
        import_batch_id: None,
        guideline_revision: 2,
        client_token: None,
        assist: None,
    };
    let labels = reviewloop::taxonomy::ResolvedLabels { no_keyword: false, labels: vec![(quality.id, 1)] };
    let mut tx = app.pool.begin().await.unwrap();
    reviewloop::store::annotations::insert(&mut tx, older[0].0, &author, &labels).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(
        guidelines::count_labels_under_older_definition(&app.pool, quality.id, 1000).await.unwrap(),
        0
    );
    assert_eq!(app.count("SELECT count(*) FROM audit_log WHERE action = 'guideline.edit'").await, 1);
}
