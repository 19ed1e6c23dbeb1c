//! Lighter versions: quantized copies and distilled students, each an ordinary version
//! scored on its source's labels.

use std::path::Path;

use reviewloop::analyze::Analyzer;
use reviewloop::import::Format;
use reviewloop::model::quantize::Precision;
use reviewloop::train::lighter::{self, DistillSettings};
use reviewloop::train::pipeline;
use reviewloop::train::settings::{EncoderSize, TrainSettings};
use reviewloop::train::FitOptions;

use crate::helpers::TestApp;
use crate::train::{labelled_csv, scratch_dir, settings};

const TEXTS: [&str; 4] = ["배송이 빨라요", "색감이 예뻐요 😀", "그냥 그래요", ""];

fn probabilities(dir: &Path) -> Vec<Vec<f32>> {
    let analyzer = Analyzer::load(dir).unwrap();
    TEXTS.iter().map(|t| analyzer.analyze(t, false).unwrap().probabilities).collect()
}

fn largest_difference(a: &[Vec<f32>], b: &[Vec<f32>]) -> f32 {
    a.iter().flatten().zip(b.iter().flatten()).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn tensor_names(path: &Path) -> Vec<String> {
    let tensors = candle_core::safetensors::load(path, &candle_core::Device::Cpu).unwrap();
    tensors.into_keys().collect()
}

#[tokio::test]
async fn quantized_copies_are_versions_that_score_like_their_source() {
    let app = TestApp::spawn().await;
    app.import_text("fashion", Format::Csv, &labelled_csv()).await;
    let models = scratch_dir();
    let source = pipeline::run(&app.pool, &settings(&models, "v1"), &mut |_, _| {}).await.unwrap();
    let original = probabilities(&source.dir);

    let int8 =
        lighter::quantize(&app.pool, place(&models), "fashion", "v1", Precision::Int8, None).await.unwrap();
    assert_eq!(int8.name, "v1-int8");
    let names = tensor_names(&int8.dir.join("keyword/model.safetensors"));
    let encoder_linear = "roberta.encoder.layer.0.intermediate.dense.weight";
    assert!(names.iter().any(|n| n == &format!("{encoder_linear}_q")), "{names:?}");
    assert!(!names.iter().any(|n| n == encoder_linear), "the f32 weight is gone");
    assert!(names.iter().any(|n| n == "classifier.weight"), "the head stays f32");
    let config = json(&int8.dir.join("keyword/config.json"));
    assert_eq!(config["quantization"]["precision"], "int8");
    let quantized = probabilities(&int8.dir);
    assert!(largest_difference(&original, &quantized) < 0.05, "{original:?} vs {quantized:?}");

    // The metrics say what the copy costs against its source, on the same reviews.
    let metrics = &int8.metrics[0];
    assert_eq!(metrics["source"]["name"], "v1");
    let support = |m: &serde_json::Value| m["validation"]["micro"]["support"].as_u64();
    assert_eq!(support(metrics), support(&metrics["source"]));
    let cost = metrics["cost"]["validation_micro_f1"].as_f64().unwrap();
    let expected = metrics["validation"]["micro"]["f1"].as_f64().unwrap()
        - metrics["source"]["validation"]["micro"]["f1"].as_f64().unwrap();
    assert!((cost - expected).abs() < 1e-9);
    assert_eq!(json(&int8.dir.join("sentiment/metrics.json"))["source"]["name"], "v1");
    assert_eq!(
        app.count(
            "SELECT count(*) FROM model_versions WHERE name = 'v1-int8' AND status = 'ready'
             AND params->>'derived_from' = 'v1' AND params->>'precision' = 'int8'
             AND label_snapshot_id = (SELECT label_snapshot_id FROM model_versions WHERE name = 'v1' LIMIT 1)"
        )
        .await,
        2
    );
    assert_eq!(app.count("SELECT count(*) FROM audit_log WHERE action = 'model.quantize'").await, 1);

    let half =
        lighter::quantize(&app.pool, place(&models), "fashion", "v1", Precision::F16, None).await.unwrap();
    let size = |dir: &Path| std::fs::metadata(dir.join("keyword/model.safetensors")).unwrap().len();
    assert!(size(&half.dir) * 10 < size(&source.dir) * 6, "f16 roughly halves the file");
    assert!(largest_difference(&original, &probabilities(&half.dir)) < 0.01);

    // A second copy of the same name, or of a version that does not exist, is refused
    // and leaves nothing behind.
    let again = lighter::quantize(&app.pool, place(&models), "fashion", "v1", Precision::Int8, None).await;
    assert!(again.err().unwrap().to_string().contains("already exists"));
    let missing =
        lighter::quantize(&app.pool, place(&models), "fashion", "nope", Precision::Int8, None).await;
    assert!(missing.err().unwrap().to_string().contains("no version `nope`"));
    let folders = std::fs::read_dir(models.join("fashion")).unwrap().count();
    assert_eq!(folders, 3, "v1, v1-int8, v1-f16 and no partial folder");
    let _ = std::fs::remove_dir_all(&models);
}

#[tokio::test]
async fn a_distilled_student_is_a_smaller_version_taught_on_unlabelled_reviews_too() {
    let app = TestApp::spawn().await;
    app.import_text("fashion", Format::Csv, &labelled_csv()).await;
    let unlabelled: String = (0..30).map(|i| format!("배송 빠르고 색감 좋아요 {i},\n")).collect();
    app.import_text("fashion", Format::Csv, &format!("text,labels\n{unlabelled}")).await;
    let models = scratch_dir();
    pipeline::run(&app.pool, &settings(&models, "teacher"), &mut |_, _| {}).await.unwrap();

    let distill = DistillSettings {
        storage: None,
        taxonomy: "fashion".into(),
        teacher: "teacher".into(),
        name: None,
        size: EncoderSize { layers: 1, hidden: 64 },
        fit: FitOptions {
            epochs: 2,
            lexical_epochs: 2,
            head_rate: 1.0,
            frozen: Default::default(),
            batch_size: 16,
            learning_rate: 1e-3,
            seed: 3,
            ..TrainSettings::defaults("fashion", models.clone()).fit
        },
        label_weight: 0.5,
        unlabelled: 1000,
        models_dir: models.clone(),
        base: None,
    };
    let mut stages = std::collections::BTreeSet::new();
    let student = lighter::distill(&app.pool, &distill, &mut |stage, _| {
        stages.insert(stage.to_string());
    })
    .await
    .unwrap();
    assert_eq!(
        stages.into_iter().collect::<Vec<_>>(),
        ["keyword", "keyword-lexical", "sentiment", "sentiment-lexical"]
    );
    assert_eq!(student.name, "teacher-student-1x64");
    let config = json(&student.dir.join("keyword/config.json"));
    assert_eq!((config["num_hidden_layers"].as_u64(), config["hidden_size"].as_u64()), (Some(1), Some(64)));
    let teacher_tokenizer = std::fs::read(models.join("fashion/teacher/keyword/tokenizer.json")).unwrap();
    let student_tokenizer = std::fs::read(student.dir.join("keyword/tokenizer.json")).unwrap();
    assert_eq!(
        json_of(&teacher_tokenizer)["model"]["vocab"],
        json_of(&student_tokenizer)["model"]["vocab"],
        "the student reads the teacher's tokens"
    );
    let metrics = &student.metrics[0];
    let epochs = metrics["fit"]["epochs"].as_array().unwrap().len();
    assert_eq!(epochs, 4, "two epochs of the teacher's lexical part alone, then two of the encoder");
    assert_eq!(metrics["source"]["name"], "teacher");
    assert!(metrics["cost"]["validation_micro_f1"].is_number());
    assert_eq!(probabilities(&student.dir).len(), TEXTS.len());
    assert_eq!(
        app.count(
            "SELECT count(*) FROM model_versions WHERE name = 'teacher-student-1x64'
             AND params->>'method' = 'distill' AND params->'settings'->>'unlabelled' = '1000'"
        )
        .await,
        2
    );
    let card = std::fs::read_to_string(student.dir.join("keyword/README.md")).unwrap();
    assert!(card.contains("student of version teacher (30 unlabelled reviews)"), "{card}");
    let _ = std::fs::remove_dir_all(&models);
}

/// With a base, the student is that base (another family, another tokenizer): it is
/// taught on the teacher's outputs for the same texts, read in its own tokens.
#[tokio::test]
async fn a_student_can_start_from_a_base_with_its_own_tokenizer() {
    let app = TestApp::spawn().await;
    app.import_text("fashion", Format::Csv, &labelled_csv()).await;
    let models = scratch_dir();
    pipeline::run(&app.pool, &settings(&models, "teacher"), &mut |_, _| {}).await.unwrap();
    let bert = models.join("base/tiny-bert");
    std::fs::create_dir_all(&bert).unwrap();
    let fixture = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny-bert");
    for entry in std::fs::read_dir(fixture).unwrap().flatten() {
        std::fs::copy(entry.path(), bert.join(entry.file_name())).unwrap();
    }
    let distill = DistillSettings {
        storage: None,
        taxonomy: "fashion".into(),
        teacher: "teacher".into(),
        name: Some("bert-student".into()),
        size: EncoderSize { layers: 1, hidden: 64 },
        fit: FitOptions {
            epochs: 1,
            lexical_epochs: 1,
            batch_size: 16,
            learning_rate: 1e-3,
            ..TrainSettings::defaults("fashion", models.clone()).fit
        },
        label_weight: 0.5,
        unlabelled: 1000,
        models_dir: models.clone(),
        base: Some(reviewloop::names::SafeName::parse("tiny-bert").unwrap()),
    };
    let student = lighter::distill(&app.pool, &distill, &mut |_, _| {}).await.unwrap();
    assert_eq!(json(&student.dir.join("keyword/config.json"))["model_type"], "bert");
    let tokenizer = json(&student.dir.join("keyword/tokenizer.json"));
    assert_eq!(tokenizer["model"]["type"], "WordPiece", "the base's tokenizer, not the teacher's");
    assert_eq!(probabilities(&student.dir).len(), TEXTS.len());
    let _ = std::fs::remove_dir_all(&models);
}

fn json_of(bytes: &[u8]) -> serde_json::Value {
    serde_json::from_slice(bytes).unwrap()
}

/// Lighter versions written to `models` and kept on this host.
fn place(models: &std::path::Path) -> lighter::Place<'_> {
    lighter::Place { models_dir: models, storage: None }
}
