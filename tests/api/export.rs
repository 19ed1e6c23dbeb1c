use reviewloop::consensus::LabelSource;
use reviewloop::export::{self, ExportFormat, ExportOptions};
use reviewloop::import::Format;
use reviewloop::store::annotations::{self, Authorship};
use reviewloop::store::users::Role;
use reviewloop::taxonomy::ResolvedLabels;

use crate::helpers::TestApp;

const LABELLED: &str = "external_id,mall,category,text,labels\n\
    a1,A몰,원피스,옷은 예쁘지만 배송은 늦어요,\"디자인1, 배송-1\"\n\
    a2,A몰,원피스,\"쉼표, 따옴표\"\"와 줄바꿈\n있는 리뷰 😀\",만족도 2\n\
    a3,B몰,바지,그냥 그래요,없음\n\
    a4,B몰,바지,아직 라벨 없음,\n\
    =a5,@몰,-바지,\"=HYPERLINK(\"\"http://evil.example\"\",\"\"클릭\"\")\",만족도 2\n";

async fn export_to_string(app: &TestApp, format: ExportFormat, include_unlabelled: bool) -> String {
    let options = ExportOptions { taxonomy: "fashion".into(), format, include_unlabelled };
    let mut out = Vec::new();
    export::export(&app.pool, &mut out, &options).await.unwrap();
    String::from_utf8(out).unwrap()
}

async fn round_trip(format: ExportFormat, import_format: Format) {
    let first = TestApp::spawn().await;
    first.import_text("fashion", Format::Csv, LABELLED).await;
    let exported = export_to_string(&first, format, true).await;
    assert_eq!(exported.matches("아직 라벨 없음").count(), 1);

    let second = TestApp::spawn().await;
    let summary = second.import_text("fashion", import_format, &exported).await;
    assert_eq!((summary.imported, summary.rejected, summary.labels_added), (5, 0, 4));
    let again = export_to_string(&second, format, true).await;
    assert_eq!(without_timestamps(&again), without_timestamps(&exported));
}

/// JSONL carries when each label was made, which differs between two databases.
fn without_timestamps(export: &str) -> String {
    export
        .lines()
        .map(|line| match serde_json::from_str::<serde_json::Value>(line) {
            Ok(mut value) => {
                for a in value["annotations"].as_array_mut().into_iter().flatten() {
                    a.as_object_mut().unwrap().remove("at");
                }
                value.to_string()
            }
            Err(_) => line.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test]
async fn csv_export_round_trips_through_import() {
    round_trip(ExportFormat::Csv, Format::Csv).await;
}

#[tokio::test]
async fn jsonl_export_round_trips_through_import() {
    round_trip(ExportFormat::Jsonl, Format::Jsonl).await;
}

#[tokio::test]
async fn export_carries_labels_split_and_skips_unlabelled_by_default() {
    let app = TestApp::spawn().await;
    app.import_text("fashion", Format::Csv, LABELLED).await;
    let csv = export_to_string(&app, ExportFormat::Csv, false).await;
    let mut reader = csv::Reader::from_reader(csv.as_bytes());
    let header: Vec<String> = reader.headers().unwrap().iter().map(String::from).collect();
    let fixed = ["external_id", "text", "mall", "category", "split", "labels", "label_source", "labellers"];
    assert_eq!(header[..8], fixed);
    let keywords: Vec<String> = app.taxonomy("fashion").await.keywords.into_iter().map(|k| k.name).collect();
    assert_eq!(header[8..], keywords[..], "then one column per keyword");
    let column = |name: &str| header.iter().position(|h| h == name).unwrap();
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 4);
    assert_eq!(&rows[0][5], "배송-1, 디자인1");
    assert_eq!(
        (&rows[0][column("배송")], &rows[0][column("디자인")], &rows[0][column("색상")]),
        ("-1", "1", "")
    );
    assert_eq!(&rows[2][5], "없음");
    assert!(["train", "validation", "test"].contains(&&rows[0][4]));
    // Cells a spreadsheet would run as formulas carry an apostrophe; levels stay numbers.
    let formula = &rows[3];
    assert_eq!((&formula[0], &formula[2], &formula[3]), ("'=a5", "'@몰", "'-바지"));
    assert_eq!(&formula[1], "'=HYPERLINK(\"http://evil.example\",\"클릭\")");
}

#[tokio::test]
async fn a_gold_label_is_exported_over_newer_human_labels() {
    let app = TestApp::spawn().await;
    app.import_text("fashion", Format::Csv, "text,labels\n배송 빨라요,배송1\n").await;
    let taxonomy = app.taxonomy("fashion").await;
    let review: i64 = sqlx::query_scalar("SELECT id FROM reviews").fetch_one(&app.pool).await.unwrap();
    let judge = app.user(Role::Reviewer).await;
    let judge = reviewloop::store::users::find(&app.pool, &judge).await.unwrap().unwrap();
    let delivery = taxonomy.keyword("배송").unwrap().id;
    let mut tx = app.pool.begin().await.unwrap();
    let gold = Authorship {
        source: LabelSource::Gold,
        annotator_id: Some(judge.id),
        assignment_id: None,
        import_batch_id: None,
        guideline_revision: 1,
        client_token: None,
        assist: None,
    };
    annotations::insert(
        &mut tx,
        review,
        &gold,
        &ResolvedLabels { no_keyword: false, labels: vec![(delivery, 2)] },
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    app.import_text("fashion", Format::Csv, "text,labels\n배송 빨라요,배송-2\n").await;

    let csv = export_to_string(&app, ExportFormat::Csv, false).await;
    assert!(csv.contains("배송2,gold,2"), "{csv}");
}
