//! Model suggestions for annotators (issue 18): computed when the round is composed,
//! stored with its items, the same as the analysis API answers.

use reviewloop::import::Format;
use reviewloop::jobs::worker::{run_next, WorkerConfig};
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
    let round = store::rounds::create(&s.app.pool, taxonomy, &spec, None).await.unwrap();
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
    store::rounds::create(&s.app.pool, taxonomy, &round_spec(4), None).await.unwrap();
    assert_eq!(s.app.count("SELECT count(*) FROM jobs WHERE kind = 'suggest'").await, 0);
    assert_eq!(s.app.count("SELECT count(*) FROM round_items WHERE assisted").await, 0);
}
