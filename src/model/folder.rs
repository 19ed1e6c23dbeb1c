//! Model folders in the Hugging Face layout: `config.json`, `model.safetensors`,
//! `tokenizer.json` (plus our `labels.json` and `metrics.json` for trained versions).
//! A folder with only a slow tokenizer's files (`vocab.txt`, `sentencepiece.bpe.model`)
//! gets its `tokenizer.json` built at load (see `tokenizer_files`). Opening one checks
//! everything a later forward pass would otherwise trip over, and says which file is
//! wrong.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device};
use candle_nn::VarBuilder;
use tokenizers::Tokenizer;

use super::encoder::{Config, Encoder, PREFIXES};
use super::tokenizer_files;

#[derive(Debug, thiserror::Error)]
pub enum FolderError {
    #[error("{path}: missing (a model folder needs config.json, model.safetensors and tokenizer.json)")]
    Missing { path: PathBuf },
    #[error(
        "{dir}: no tokenizer (a model folder needs tokenizer.json, or vocab.txt for WordPiece, or sentencepiece.bpe.model)"
    )]
    NoTokenizer { dir: PathBuf },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
    #[error("tokenizer has {tokenizer} tokens but the model's embeddings hold {model}: they do not belong together")]
    VocabMismatch { tokenizer: usize, model: usize },
    #[error("{path}: weights do not fit config.json: {message}")]
    Weights { path: PathBuf, message: String },
}

/// The files of a model folder, checked to exist.
pub struct ModelFolder {
    pub dir: PathBuf,
    pub config: Config,
    pub tokenizer: Tokenizer,
}

fn required(dir: &Path, name: &str) -> Result<PathBuf, FolderError> {
    let path = dir.join(name);
    if path.is_file() {
        Ok(path)
    } else {
        Err(FolderError::Missing { path })
    }
}

/// A folder's `config.json`, parsed and checked, without opening the rest.
pub fn read_config(dir: &Path) -> Result<Config, FolderError> {
    let path = required(dir, "config.json")?;
    let invalid = |message: String| FolderError::Invalid { path: path.clone(), message };
    let text = std::fs::read_to_string(&path).map_err(|e| invalid(e.to_string()))?;
    let config: Config = serde_json::from_str(&text).map_err(|e| invalid(e.to_string()))?;
    config.validate().map_err(invalid)?;
    Ok(config)
}

impl ModelFolder {
    pub fn open(dir: &Path) -> Result<Self, FolderError> {
        let config = read_config(dir)?;
        required(dir, "model.safetensors")?;
        let tokenizer = open_tokenizer(dir)?;
        let tokens = tokenizer.get_vocab_size(true);
        if tokens > config.vocab_size {
            return Err(FolderError::VocabMismatch { tokenizer: tokens, model: config.vocab_size });
        }
        Ok(ModelFolder { dir: dir.to_path_buf(), config, tokenizer })
    }

    pub fn weights_path(&self) -> PathBuf {
        self.dir.join("model.safetensors")
    }

    /// Loads the encoder, whether the checkpoint stores it at the root (`BertModel`,
    /// `RobertaModel`) or under its family's prefix (task models such as
    /// `RobertaForMaskedLM`, `ElectraForPreTraining`, our versions).
    pub fn load_encoder(&self, device: &Device) -> Result<Encoder, FolderError> {
        let path = self.weights_path();
        let weights_error = |message: String| FolderError::Weights { path: path.clone(), message };
        let names = safetensor_names(&path).map_err(weights_error)?;
        let prefix = encoder_prefix(&names);
        // Safety: the file is memory-mapped read-only; nothing else writes model
        // folders while they are in use (versions are written to a temporary folder
        // and renamed into place).
        let vb = unsafe { VarBuilder::from_mmaped_safetensors(&[&path], DType::F32, device) }
            .map_err(|e| weights_error(e.to_string()))?;
        let vb = if prefix.is_empty() { vb } else { vb.pp(prefix) };
        let encoder = Encoder::load(vb, &self.config).map_err(|e| weights_error(e.to_string()))?;
        Ok(encoder.with_tokenizer(&self.tokenizer))
    }
}

/// The prefix under which a checkpoint with these tensor names keeps its encoder:
/// `bert`, `roberta`, `electra`, or none (the encoder at the root).
pub fn encoder_prefix(names: &[String]) -> &'static str {
    let has = |p: &str| names.iter().any(|n| n == &format!("{p}.embeddings.word_embeddings.weight"));
    PREFIXES.into_iter().find(|p| has(p)).unwrap_or("")
}

/// `tokenizer.json`, else one built from `vocab.txt` or `sentencepiece.bpe.model`.
fn open_tokenizer(dir: &Path) -> Result<Tokenizer, FolderError> {
    let invalid = |path: PathBuf, message: String| FolderError::Invalid { path, message };
    let json = dir.join("tokenizer.json");
    if json.is_file() {
        return Tokenizer::from_file(&json).map_err(|e| invalid(json, e.to_string()));
    }
    let vocab = dir.join("vocab.txt");
    if vocab.is_file() {
        return tokenizer_files::from_vocab_txt(&vocab, tokenizer_files::lowercases(dir))
            .map_err(|e| invalid(vocab, e));
    }
    let sentencepiece = dir.join("sentencepiece.bpe.model");
    if sentencepiece.is_file() {
        return tokenizer_files::from_sentencepiece(&sentencepiece).map_err(|e| invalid(sentencepiece, e));
    }
    Err(FolderError::NoTokenizer { dir: dir.to_path_buf() })
}

/// Tensor names from the safetensors header alone.
fn safetensor_names(path: &Path) -> Result<Vec<String>, String> {
    Ok(safetensor_shapes(path)?.into_iter().map(|(name, _)| name).collect())
}

/// Tensor names and shapes from the safetensors header alone (8-byte length, then
/// JSON), without reading the weights.
pub fn safetensor_shapes(path: &Path) -> Result<Vec<(String, Vec<usize>)>, String> {
    use std::io::Read;
    let mut file = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let mut length = [0u8; 8];
    file.read_exact(&mut length).map_err(|_| "not a safetensors file (too short)".to_string())?;
    let length = u64::from_le_bytes(length);
    if length > 100_000_000 {
        return Err("not a safetensors file (implausible header length)".into());
    }
    let mut header = vec![0u8; length as usize];
    file.read_exact(&mut header).map_err(|_| "not a safetensors file (truncated header)".to_string())?;
    let header: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&header).map_err(|e| format!("not a safetensors file ({e})"))?;
    let shape = |v: &serde_json::Value| -> Vec<usize> {
        v["shape"]
            .as_array()
            .map(|a| a.iter().filter_map(|d| d.as_u64()).map(|d| d as usize).collect())
            .unwrap_or_default()
    };
    Ok(header
        .into_iter()
        .filter(|(n, _)| n != "__metadata__")
        .map(|(n, v)| {
            let s = shape(&v);
            (n, s)
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::model::testing::fixture;

    #[derive(serde::Deserialize)]
    struct Parity {
        sentences: Vec<String>,
        /// A sentence pair, the last row of `ids` (newer fixtures).
        #[serde(default)]
        pair: Option<(String, String)>,
        ids: Vec<Vec<u32>>,
        hidden: Vec<Vec<Vec<f32>>>,
    }

    /// Hidden states from transformers (scripts/make_parity_fixture.py) and from this
    /// encoder agree within 1e-4, for a batch with padding (and a sentence pair, whose
    /// second segment BERT and ELECTRA mark with token type 1), for every family and
    /// checkpoint layout; the tokenizer, built at load where the folder has only
    /// `vocab.txt` or `sentencepiece.bpe.model`, splits as the reference did.
    #[test]
    fn the_encoder_matches_transformers_on_the_same_checkpoint() {
        let cases = [
            ("tiny-roberta", "tiny-roberta"),
            ("tiny-roberta-mlm", "tiny-roberta"),
            ("tiny-bert", "tiny-bert"),
            ("tiny-xlmr", "tiny-xlmr"),
            ("tiny-electra", "tiny-electra"),
        ];
        for (name, reference) in cases {
            let parity: Parity = serde_json::from_str(
                &std::fs::read_to_string(fixture(&format!("{reference}-parity.json"))).unwrap(),
            )
            .unwrap();
            let folder = ModelFolder::open(&fixture(name)).unwrap();
            let mut ids: Vec<Vec<u32>> = parity
                .sentences
                .iter()
                .map(|s| folder.tokenizer.encode(s.as_str(), true).unwrap().get_ids().to_vec())
                .collect();
            if let Some((a, b)) = &parity.pair {
                ids.push(folder.tokenizer.encode((a.as_str(), b.as_str()), true).unwrap().get_ids().to_vec());
            }
            assert_eq!(ids, parity.ids, "{name}: the tokenizer splits like the reference");
            let encoder = folder.load_encoder(&Device::Cpu).unwrap();
            let hidden = encoder.forward(&ids, false).unwrap();
            let mut worst = 0f32;
            for (row, expected) in parity.hidden.iter().enumerate() {
                let got: Vec<Vec<f32>> = hidden.get(row).unwrap().to_vec2().unwrap();
                for (token, values) in expected.iter().enumerate() {
                    for (a, b) in values.iter().zip(&got[token]) {
                        worst = worst.max((a - b).abs());
                    }
                }
            }
            eprintln!("{name}: largest difference from transformers {worst:e}");
            assert!(worst < 1e-4, "{name}: largest difference {worst}");
        }
    }

    #[test]
    fn an_unknown_family_is_named() {
        let (_dir, path) = copy_of("tiny-roberta");
        let config = std::fs::read_to_string(path.join("config.json")).unwrap();
        let mut parsed: serde_json::Value = serde_json::from_str(&config).unwrap();
        parsed["model_type"] = "gpt2".into();
        std::fs::write(path.join("config.json"), parsed.to_string()).unwrap();
        let error = ModelFolder::open(&path).err().unwrap().to_string();
        assert!(error.contains("unknown model_type `gpt2`"), "{error}");
    }

    fn copy_of(name: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        for file in ["config.json", "model.safetensors", "tokenizer.json"] {
            std::fs::copy(fixture(name).join(file), dir.path().join(file)).unwrap();
        }
        let path = dir.path().to_path_buf();
        (dir, path)
    }

    #[test]
    fn a_missing_file_is_named() {
        let (_dir, path) = copy_of("tiny-roberta");
        std::fs::remove_file(path.join("tokenizer.json")).unwrap();
        let error = ModelFolder::open(&path).err().unwrap().to_string();
        assert!(error.contains("no tokenizer") && error.contains("vocab.txt"), "{error}");
    }

    #[test]
    fn weights_that_do_not_fit_the_config_are_refused() {
        let (_dir, path) = copy_of("tiny-roberta");
        let config = std::fs::read_to_string(path.join("config.json")).unwrap();
        let config = with_number(&config, "intermediate_size", 48);
        std::fs::write(path.join("config.json"), config).unwrap();
        let folder = ModelFolder::open(&path).unwrap();
        let error = folder.load_encoder(&Device::Cpu).err().unwrap().to_string();
        assert!(error.contains("weights do not fit config.json"), "{error}");
        assert!(error.contains("intermediate"), "{error}");
    }

    #[test]
    fn a_tokenizer_larger_than_the_embeddings_is_a_mismatch() {
        let (_dir, path) = copy_of("tiny-roberta");
        let config = std::fs::read_to_string(path.join("config.json")).unwrap();
        let config = with_number(&config, "vocab_size", 10);
        std::fs::write(path.join("config.json"), config).unwrap();
        assert!(matches!(ModelFolder::open(&path), Err(FolderError::VocabMismatch { model: 10, .. })));
    }

    #[test]
    fn a_broken_config_or_weights_file_says_which() {
        let (_dir, path) = copy_of("tiny-roberta");
        std::fs::write(path.join("model.safetensors"), b"not tensors").unwrap();
        let folder = ModelFolder::open(&path).unwrap();
        assert!(folder.load_encoder(&Device::Cpu).err().unwrap().to_string().contains("model.safetensors"));
        std::fs::write(path.join("config.json"), "{").unwrap();
        assert!(ModelFolder::open(&path).err().unwrap().to_string().contains("config.json"));
    }

    /// `"key": 123` → `"key": value` in a JSON text.
    fn with_number(json: &str, key: &str, value: usize) -> String {
        let mut parsed: serde_json::Value = serde_json::from_str(json).unwrap();
        parsed[key] = value.into();
        parsed.to_string()
    }
}
