//! Training from the label store into a model version folder and `model_versions`.

use reviewloop::names::SafeName;
use std::path::{Path, PathBuf};

use reviewloop::import::Format;
use reviewloop::model::folder::ModelFolder;
use reviewloop::model::inputs::SentimentInput;
use reviewloop::train::pipeline;
use reviewloop::train::settings::{self, TrainSettings};
use reviewloop::train::{evaluate, FitOptions};

use crate::helpers::TestApp;

pub(crate) fn labelled_csv() -> String {
    let mut csv = String::from("text,labels\n");
    let rows = [
        ("배송이 빨라요", "배송1"),
        ("배송이 늦어요", "배송-1"),
        ("색감이 예뻐요", "색상2"),
        ("그냥 그래요", "없음"),
    ];
    for i in 0..60 {
        let (text, labels) = rows[i % rows.len()];
        csv.push_str(&format!("{text} {i},\"{labels}\"\n"));
    }
    csv
}

/// The committed tiny checkpoint copied in as base `tiny-roberta` of `models_dir`.
pub(crate) fn tiny_base(models_dir: &Path) -> SafeName {
    let dir = models_dir.join("base/tiny-roberta");
    if !dir.exists() {
        std::fs::create_dir_all(&dir).unwrap();
        let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny-roberta");
        for entry in std::fs::read_dir(fixture).unwrap().flatten() {
            std::fs::copy(entry.path(), dir.join(entry.file_name())).unwrap();
        }
    }
    SafeName::parse("tiny-roberta").unwrap()
}

pub(crate) fn settings(models_dir: &Path, name: &str) -> TrainSettings {
    TrainSettings {
        taxonomy: "fashion".into(),
        name: Some(name.into()),
        base: Some(tiny_base(models_dir)),
        bases_dir: None,
        all_data: false,
        // Tiny and quick: the scratch profile's options where these do not differ.
        fit: FitOptions {
            epochs: 2,
            batch_size: 16,
            learning_rate: 1e-3,
            weight_decay: 0.0,
            patience: 2,
            seed: 1,
            token_dropout: 0.1,
            mask_token: 4,
            lexical_rate: 1.0,
            lexical_epochs: 2,
            ..TrainSettings::defaults("fashion", models_dir.to_path_buf()).fit
        },
        vocab_size: 200,
        sentiment_input: SentimentInput::Pair,
        models_dir: models_dir.to_path_buf(),
        storage: None,
        dropout: 0.1,
        pretrain_epochs: 0,
        pooling: reviewloop::model::classifier::Pooling::Mean,
        sentiment_from_keyword: false,
        snapshot: None,
        encoder_size: None,
        // Every pipeline test saves, loads and runs a lexical part too.
        lexical_buckets: Some(1 << 10),
    }
}

pub(crate) fn scratch_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("reviewloop-models-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[tokio::test]
async fn training_writes_a_loadable_version_and_records_it() {
    let app = TestApp::spawn().await;
    app.import_text("fashion", Format::Csv, &labelled_csv()).await;
    let models = scratch_dir();
    let outcome = pipeline::run(&app.pool, &settings(&models, "v1"), &mut |_, _| {}).await.unwrap();
    for kind in ["keyword", "sentiment"] {
        let dir = outcome.dir.join(kind);
        for file in
            ["config.json", "model.safetensors", "tokenizer.json", "labels.json", "metrics.json", "README.md"]
        {
            assert!(dir.join(file).is_file(), "{kind}/{file}");
        }
        let folder = ModelFolder::open(&dir).unwrap();
        folder.load_encoder(&candle_core::Device::Cpu).expect("the saved encoder loads like any checkpoint");
    }
    let labels: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(outcome.dir.join("keyword/labels.json")).unwrap())
            .unwrap();
    assert_eq!(labels["keywords"].as_array().unwrap().len(), 15);
    assert_eq!(labels["thresholds"].as_array().unwrap().len(), 15);
    assert_eq!(
        app.count("SELECT count(*) FROM model_versions WHERE name = 'v1' AND status = 'ready'").await,
        2
    );
    assert_eq!(app.count("SELECT count(*) FROM label_snapshots").await, 1);
    // The version evaluates a labelled file without importing it.
    let analyzer = reviewloop::analyze::Analyzer::load(&outcome.dir).unwrap();
    let file =
        "text,labels\n배송이 빨라요 정말,배송1\n색감이 예뻐요 진짜,색상2\n향이 좋아요,향1\n라벨 없음,\n";
    let (items, skipped) = evaluate::read_file(&analyzer, Format::Csv, file.as_bytes()).unwrap();
    let evaluation = evaluate::evaluate(&analyzer, &items, skipped).unwrap();
    assert_eq!((evaluation.reviews, evaluation.skipped), (2, 2));
    assert_eq!(evaluation.keyword.unwrap().labels.len(), 15);
    assert_eq!(evaluation.sentiment.unwrap().micro.support, 2);
    assert_eq!(app.count("SELECT count(*) FROM reviews").await, 60, "evaluation imports nothing");
    let analysis = analyzer.analyze("배송이 빨라요", true).unwrap();
    assert_eq!(analysis.probabilities.len(), 15);
    let leftovers = std::fs::read_dir(models.join("fashion"))
        .unwrap()
        .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().starts_with(".partial"));
    assert_eq!(leftovers.count(), 0);
    let _ = std::fs::remove_dir_all(&models);
}

#[tokio::test]
async fn below_the_validation_floor_the_encoder_stage_is_kept_whatever_validation_says() {
    let app = TestApp::spawn().await;
    app.import_text("fashion", Format::Csv, &labelled_csv()).await;
    let models = scratch_dir();
    let mut floored = settings(&models, "floored");
    floored.fit.validation_floor = 1000;
    let outcome = pipeline::run(&app.pool, &floored, &mut |_, _| {}).await.unwrap();
    for fit in [&outcome.keyword.fit, &outcome.sentiment.fit] {
        let (lexical, encoder) = fit.epochs.split_at(fit.first_stage_epochs);
        assert!(!lexical.is_empty() && lexical.iter().all(|e| e.valid_score.is_some()), "{fit:?}");
        assert!(!encoder.is_empty() && encoder.iter().all(|e| e.valid_score.is_none()), "{fit:?}");
        assert!(fit.last_stage_kept(), "{fit:?}");
    }
    let _ = std::fs::remove_dir_all(&models);
}

#[tokio::test]
async fn a_failed_run_leaves_no_folder_and_no_rows() {
    let app = TestApp::spawn().await;
    app.import_text("fashion", Format::Csv, &labelled_csv()).await;
    let models = scratch_dir();
    // A version row of that name already exists: recording fails after the folder was written.
    sqlx::query("INSERT INTO model_versions (taxonomy_id, kind, name, path) SELECT id, 'keyword', 'taken', 'x' FROM taxonomies WHERE name = 'fashion'")
        .execute(&app.pool)
        .await
        .unwrap();
    let error = pipeline::run(&app.pool, &settings(&models, "taken"), &mut |_, _| {}).await;
    assert!(error.is_err());
    assert_eq!(std::fs::read_dir(models.join("fashion")).unwrap().count(), 0, "nothing half-written stays");
    assert_eq!(app.count("SELECT count(*) FROM model_versions").await, 1);

    // Too few labels: refused before anything is written.
    let empty = TestApp::spawn().await;
    let error = pipeline::run(&empty.pool, &settings(&models, "none"), &mut |_, _| {}).await.err().unwrap();
    assert!(error.to_string().contains("labelled reviews"), "{error}");
    let _ = std::fs::remove_dir_all(&models);
}

#[tokio::test]
async fn the_offline_default_trains_its_own_tokenizer_and_pretrains_it() {
    let app = TestApp::spawn().await;
    app.import_text("fashion", Format::Csv, &labelled_csv()).await;
    let models = scratch_dir();
    let mut offline = settings(&models, "offline");
    offline.base = None;
    offline.lexical_buckets = None;
    offline.pretrain_epochs = 1;
    offline.fit.epochs = 1;
    offline.fit.lexical_epochs = 1;
    let mut stages = std::collections::BTreeSet::new();
    let outcome = pipeline::run(&app.pool, &offline, &mut |stage, _| {
        stages.insert(stage.to_string());
    })
    .await
    .unwrap();
    let stages: Vec<String> = stages.into_iter().collect();
    assert_eq!(stages, ["keyword", "keyword-lexical", "pretrain", "sentiment", "sentiment-lexical"]);
    let folder = ModelFolder::open(&outcome.dir.join("keyword")).unwrap();
    assert_eq!(folder.config.hidden_size, 256, "the documented small default");
    assert_eq!(folder.tokenizer.token_to_id("[PAD]"), Some(1));
    let labels = std::fs::read_to_string(outcome.dir.join("keyword/labels.json")).unwrap();
    let labels: serde_json::Value = serde_json::from_str(&labels).unwrap();
    assert_eq!(labels["lexical_buckets"], settings::DEFAULT_LEXICAL_BUCKETS, "on by default without --base");
    let metrics = std::fs::read_to_string(outcome.dir.join("keyword/metrics.json")).unwrap();
    let metrics: serde_json::Value = serde_json::from_str(&metrics).unwrap();
    let epochs = metrics["fit"]["epochs"].as_array().unwrap();
    assert_eq!(epochs.len(), 2, "one epoch of the lexical part alone, then one of the encoder");
    let weights = outcome.dir.join("keyword/model.safetensors");
    let tensors = candle_core::safetensors::load(weights, &candle_core::Device::Cpu).unwrap();
    let idf = tensors["lexical.idf"].to_vec1::<f32>().unwrap();
    assert!(idf.contains(&0.0) && idf.iter().any(|&x| x > 1.0), "counted on the training reviews");
    assert_eq!(tensors["lexical.bias"].dims(), [15]);
    let analyzer = reviewloop::analyze::Analyzer::load(&outcome.dir).unwrap();
    let analysis = analyzer.analyze("배송이 빨라요 👍 but 색감은 so-so", true).unwrap();
    assert_eq!(analysis.probabilities.len(), 15);
    let _ = std::fs::remove_dir_all(&models);
}

#[tokio::test]
async fn a_fast_mode_version_keeps_its_bases_lower_encoder_and_scores_alike_from_cached_states() {
    let app = TestApp::spawn().await;
    app.import_text("fashion", Format::Csv, &labelled_csv()).await;
    let models = scratch_dir();
    let mut s = settings(&models, "fast");
    s.make_fast(1).unwrap();
    // No lexical stage first: its weights are kept unless the encoder's stage improves
    // on them, and then nothing of the top layer would change.
    s.lexical_buckets = Some(0);
    let outcome = pipeline::run(&app.pool, &s, &mut |_, _| {}).await.unwrap();
    let labels: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(outcome.dir.join("keyword/labels.json")).unwrap())
            .unwrap();
    assert_eq!(labels["frozen_layers"], 1, "the tiny base has two layers, the top one trained");
    let base = candle_core::safetensors::load(
        models.join("base/tiny-roberta/model.safetensors"),
        &candle_core::Device::Cpu,
    )
    .unwrap();
    let saved = candle_core::safetensors::load(
        outcome.dir.join("keyword/model.safetensors"),
        &candle_core::Device::Cpu,
    )
    .unwrap();
    let same = |name: &str| {
        let (a, b) = (&base[name], &saved[&format!("roberta.{name}")]);
        a.sub(b).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap() == 0.0
    };
    assert!(same("embeddings.word_embeddings.weight") && same("encoder.layer.0.attention.self.query.weight"));
    assert!(!same("encoder.layer.1.attention.self.query.weight"), "the top layer was trained");

    let texts: Vec<String> =
        ["배송이 빨라요", "색감이 예뻐요 진짜", "그냥 그래요"].map(String::from).to_vec();
    let plain = reviewloop::analyze::Analyzer::load(&outcome.dir).unwrap().score_many(&texts).unwrap();
    reviewloop::model::features::share_across_models(reviewloop::model::features::DEFAULT_LIMIT);
    let cached = reviewloop::analyze::Analyzer::load(&outcome.dir).unwrap();
    for _ in 0..2 {
        // The second pass reads every review's lower states from the cache.
        for (a, b) in plain.iter().zip(cached.score_many(&texts).unwrap()) {
            for (x, y) in a.probabilities.iter().zip(&b.probabilities) {
                assert!((x - y).abs() < 1e-5, "{x} vs {y}");
            }
        }
    }
    let _ = std::fs::remove_dir_all(&models);
}
