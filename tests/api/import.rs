use reviewloop::import::{self, Format, ImportOptions};
use reviewloop::store::annotations;

use crate::helpers::TestApp;

fn long_text() -> String {
    "아주 긴 리뷰 ".repeat(1000)
}

#[tokio::test]
async fn good_rows_land_while_each_bad_row_is_reported_with_its_line() {
    let app = TestApp::spawn().await;
    let mut csv = String::from("text,mall,labels\n");
    csv.push_str("옷은 예쁘지만 배송은 늦어요,A몰,\"디자인1, 배송-1\"\n"); // 2 ok
    csv.push_str(",A몰,\n"); // 3 missing text
    csv.push_str("향이 좋아요,A몰,향1\n"); // 4 unknown keyword
    csv.push_str("사이즈가 커요,A몰,사이즈-3\n"); // 5 out of scale
    csv.push_str(&format!("{},A몰,\n", long_text())); // 6 over-long
    csv.push_str("좋아요 😀 good,B몰,\"{\"\"만족도\"\": 2}\"\n"); // 7 ok, JSON labels
    csv.push_str("그냥 그래요,B몰,없음\n"); // 8 ok, no keyword
    csv.push_str("라벨 없는 리뷰,B몰,\n"); // 9 ok, unlabelled
    let mut bytes = csv.into_bytes();
    bytes.extend_from_slice(b"\xed\xa0\x80 broken,A\xeb\xaa,\n"); // 10 invalid UTF-8
    let options = ImportOptions::new("fashion", Format::Csv, "mixed.csv");
    let summary = import::import(&app.pool, &bytes[..], &options).await.unwrap();

    assert_eq!((summary.imported, summary.rejected, summary.duplicates), (4, 5, 0));
    assert_eq!(summary.labels_added, 3);
    let reasons: Vec<(u64, &str)> = summary.problems.iter().map(|p| (p.line, p.reason.as_str())).collect();
    assert_eq!(reasons[0], (3, "missing text"));
    assert_eq!(reasons[1], (4, "unknown keyword `향`"));
    assert!(reasons[2].0 == 5 && reasons[2].1.contains("outside the scale -2..2"), "{reasons:?}");
    assert!(reasons[3].0 == 6 && reasons[3].1.contains("over the limit of 5000"), "{reasons:?}");
    assert!(reasons[4].0 == 10 && reasons[4].1.contains("invalid UTF-8"), "{reasons:?}");
    assert_eq!(app.count("SELECT count(*) FROM reviews").await, 4);
    assert_eq!(app.count("SELECT count(*) FROM import_problems WHERE severity = 'rejected'").await, 5);
    // Stored as data too, for the pages to say in their language.
    assert_eq!(
        app.count("SELECT count(*) FROM import_problems WHERE detail->>'code' = 'unknown_keyword'").await,
        1
    );
    assert_eq!(app.count("SELECT count(*) FROM annotations WHERE no_keyword").await, 1);
}

#[tokio::test]
async fn importing_the_same_file_twice_adds_nothing() {
    let app = TestApp::spawn().await;
    let csv = "text,labels\n배송 빨라요,배송2\n색이 예뻐요,색상1\n배송 빨라요,배송2\n";
    let first = app.import_text("fashion", Format::Csv, csv).await;
    assert_eq!((first.imported, first.duplicates, first.labels_added), (2, 1, 2));
    let second = app.import_text("fashion", Format::Csv, csv).await;
    assert_eq!((second.imported, second.duplicates, second.updated, second.labels_added), (0, 3, 0, 0));
    assert_eq!(app.count("SELECT count(*) FROM reviews").await, 2);
    assert_eq!(app.count("SELECT count(*) FROM annotations").await, 2);
}

#[tokio::test]
async fn a_changed_label_in_a_later_file_is_added_as_a_new_annotation() {
    let app = TestApp::spawn().await;
    app.import_text("fashion", Format::Csv, "text,labels\n배송 빨라요,배송1\n").await;
    let changed = app.import_text("fashion", Format::Csv, "text,labels\n배송 빨라요,배송2\n").await;
    assert_eq!((changed.imported, changed.updated, changed.labels_added), (0, 1, 1));
    let stored = app.count("SELECT count(*) FROM annotations").await;
    assert_eq!(stored, 2, "the first label is kept: annotations are append-only");
}

#[tokio::test]
async fn decomposed_hangul_is_recognised_as_the_same_review() {
    let app = TestApp::spawn().await;
    let composed = "text\n배송이 빨라요\n";
    let decomposed = "text\n\u{1107}\u{1162}\u{1109}\u{1169}\u{11bc}\u{110b}\u{1175} \u{1108}\u{1161}\u{11af}\u{1105}\u{1161}\u{110b}\u{116d}\n";
    app.import_text("fashion", Format::Csv, composed).await;
    let again = app.import_text("fashion", Format::Csv, decomposed).await;
    assert_eq!((again.imported, again.duplicates), (0, 1));
}

#[tokio::test]
async fn small_batches_give_the_same_result_as_one_big_batch() {
    let app = TestApp::spawn().await;
    let mut csv = String::from("text,labels\n");
    for i in 0..50 {
        // Every tenth row repeats an earlier review, across batch boundaries.
        let n = if i % 10 == 9 { i - 7 } else { i };
        csv.push_str(&format!("리뷰 {n} 사이즈 딱 맞아요,사이즈1\n"));
    }
    let mut options = ImportOptions::new("fashion", Format::Csv, "batched.csv");
    options.batch_size = 7;
    let summary = import::import(&app.pool, csv.as_bytes(), &options).await.unwrap();
    assert_eq!((summary.imported, summary.duplicates, summary.labels_added), (45, 5, 45));
    assert_eq!(app.count("SELECT count(*) FROM annotations").await, 45);
}

#[tokio::test]
async fn jsonl_rows_with_json_labels_and_broken_lines() {
    let app = TestApp::spawn().await;
    let jsonl = concat!(
        "{\"text\": \"핏이 예뻐요\", \"mall\": \"A\", \"labels\": [{\"keyword\": \"핏\", \"sentiment\": 2}]}\n",
        "{\"text\": \"별로\", \"labels\": {\"만족도\": -2}, \"split\": \"test\"}\n",
        "{\"text\": \"그냥\", \"labels\": []}\n",
        "{oops\n",
        "{\"text\": \"라벨 없음\"}\n",
    );
    let summary = app.import_text("fashion", Format::Jsonl, jsonl).await;
    assert_eq!((summary.imported, summary.rejected, summary.labels_added), (4, 1, 3));
    assert_eq!(summary.problems[0].line, 4);
    let split: String = sqlx::query_scalar("SELECT split::text FROM reviews WHERE text = '별로'")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(split, "test");
}

#[tokio::test]
async fn the_nikl_corpus_imports_with_its_categories_and_polarities() {
    let app = TestApp::spawn().await;
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/data/nikl-absa-2022/train.jsonl");
    let file = std::io::BufReader::new(std::fs::File::open(path).expect("shared NIKL data"));
    let options = ImportOptions::new("nikl-absa", Format::NiklAbsa, "train.jsonl");
    let summary = import::import(&app.pool, file, &options).await.unwrap();
    assert_eq!(summary.rejected, 0);
    assert_eq!(summary.imported + summary.duplicates + summary.updated, 3001);
    let taxonomy = app.taxonomy("nikl-absa").await;
    let stats = annotations::label_stats(&app.pool, taxonomy.id).await.unwrap();
    let quality = stats.per_keyword.iter().find(|(k, _)| k == "본품#품질").unwrap().1;
    assert!((1150..=1196).contains(&quality), "본품#품질 labelled on {quality} reviews");
    let negatives = app.count("SELECT count(*) FROM annotation_labels WHERE sentiment = -1").await;
    assert!(negatives > 0 && negatives < 300, "{negatives} negative labels");
}

#[tokio::test]
async fn an_engineer_uploads_a_file_and_sees_the_summary() {
    let app = TestApp::spawn().await;
    let engineer = app.logged_in(reviewloop::store::users::Role::Engineer).await;
    let csrf = engineer.csrf().await;
    let form = reqwest::multipart::Form::new()
        .text("csrf", csrf)
        .text("taxonomy", "fashion")
        .text("format", "auto")
        .text("label_source", "silver")
        .text("mall", "업로드몰")
        .part(
            "file",
            reqwest::multipart::Part::bytes("text,labels\n예뻐요,디자인2\n,\n".as_bytes().to_vec())
                .file_name("upload.csv"),
        );
    // An upload's token is its first field: checked before the file is read.
    let url = app.url("/engineer/import");
    let response = engineer.client.post(url).multipart(form).send().await.unwrap();
    // The request ends once the file is stored; the import runs as a job.
    assert_eq!(response.status(), 303);
    let job_page = crate::helpers::location(&response);
    assert!(job_page.starts_with("/engineer/jobs/"), "{job_page}");
    let uploads = app.data_dir.join("uploads");
    assert_eq!(std::fs::read_dir(&uploads).unwrap().count(), 1, "the file waits for its job");
    let config = reviewloop::jobs::WorkerConfig::new(app.data_dir.clone());
    reviewloop::jobs::worker::run_next(&app.pool, &config).await.unwrap().expect("the import job ran");
    assert_eq!(std::fs::read_dir(&uploads).unwrap().count(), 0, "the job removed the file");
    let html = engineer.get(&job_page).await.text().await.unwrap();
    assert!(html.contains("<dt>거부</dt><dd>1</dd>"), "{html}");
    let row = |severity: &str, reason: &str| {
        format!("<tr><td class=\"num\">3</td><td>{severity}</td><td>{reason}</td></tr>")
    };
    assert!(
        html.contains(&row("거부", "리뷰 본문이 없습니다")),
        "the bad row by its line, in Korean: {html}"
    );
    assert!(!html.contains("id=\"job-epoch\""), "no empty epoch for a job that has none");
    engineer.get("/lang/en").await;
    let html = engineer.get(&job_page).await.text().await.unwrap();
    assert!(html.contains(&row("Rejected", "missing text")), "and in English: {html}");
    let (mall, source): (String, String) = sqlx::query_as(
        "SELECT r.mall, a.source::text FROM reviews r JOIN annotations a ON a.review_id = r.id",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!((mall.as_str(), source.as_str()), ("업로드몰", "silver"));
}

#[tokio::test]
async fn an_upload_over_the_size_limit_is_refused_and_nothing_is_kept() {
    let app = TestApp::spawn_with(|settings| settings.web.max_upload_mb = 1).await;
    let engineer = app.logged_in(reviewloop::store::users::Role::Engineer).await;
    let csrf = engineer.csrf().await;
    let body = "text\n".to_string() + &"옷이 예뻐요\n".repeat(200_000);
    let form = reqwest::multipart::Form::new()
        .text("csrf", csrf)
        .text("taxonomy", "fashion")
        .part("file", reqwest::multipart::Part::bytes(body.into_bytes()).file_name("big.csv"));
    let url = app.url("/engineer/import");
    if let Ok(response) = engineer.client.post(url).multipart(form).send().await {
        assert_eq!(response.status(), 413);
    }
    let uploads = app.data_dir.join("uploads");
    let left = std::fs::read_dir(&uploads).map(|d| d.count()).unwrap_or(0);
    assert_eq!(left, 0, "the partial file is removed");
    assert_eq!(app.count("SELECT count(*) FROM jobs").await, 0);
}
