//! `reviewloop base trim`: a base with only the vocabulary some texts use. 96 M of
//! multilingual-e5-small's 118 M parameters are its 250k-piece embedding table, most of
//! it scripts Korean reviews never touch; keeping the special pieces and every piece
//! the taxonomy's reviews (and a corpus) produce makes every training step, optimiser
//! state and model file a fraction of the size.
//!
//! Outputs are identical for texts the kept pieces cover: a Unigram tokenizer still
//! finds the same best segmentation (every piece of it is kept, and no path that was
//! worse can have become better — the lowest-scoring piece is kept too, so the penalty
//! of an unknown character stays what it was); WordPiece's longest-match walk meets
//! the same pieces. Ids are renumbered in their old order, and every tensor with a row
//! per piece (embeddings, a language-model head's decoder and bias) keeps the kept
//! rows.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use anyhow::Context;
use candle_core::{Device, Tensor};
use serde::Serialize;
use serde_json::Value;
use tokenizers::Tokenizer;

use super::{Origin, PendingBase, ORIGIN_FILE};
use crate::model::folder::ModelFolder;
use crate::names::SafeName;

#[derive(Debug, Clone, Serialize)]
pub struct TrimReport {
    pub texts: usize,
    pub pieces_before: usize,
    pub pieces_after: usize,
    pub parameters_before: usize,
    pub parameters_after: usize,
    pub bytes_before: u64,
    pub bytes_after: u64,
}

/// The ids a base keeps: its special tokens, the lowest-scoring piece, and every id
/// that encoding `texts` produces.
pub struct KeptPieces {
    ids: BTreeSet<u32>,
    pub texts: usize,
}

impl KeptPieces {
    pub fn new(tokenizer: &Tokenizer) -> anyhow::Result<Self> {
        let mut ids: BTreeSet<u32> = tokenizer.get_added_tokens_decoder().keys().copied().collect();
        ids.extend(lowest_scoring_piece(tokenizer)?);
        Ok(KeptPieces { ids, texts: 0 })
    }

    /// Adds every piece made only of characters Korean reviews are written in (see
    /// [`in_korean_reviews`]). No corpus is needed: any text of those characters is
    /// covered, so the trimmed base serves reviews it has never seen exactly as the
    /// full one does.
    pub fn add_korean_script(&mut self, tokenizer: &Tokenizer) {
        let vocab = tokenizer.get_vocab(false);
        self.ids.extend(
            vocab.iter().filter(|(piece, _)| piece.chars().all(in_korean_reviews)).map(|(_, id)| *id),
        );
    }

    /// Adds the pieces of a batch of texts (encoded in parallel).
    pub fn add(&mut self, tokenizer: &Tokenizer, texts: Vec<String>) -> anyhow::Result<()> {
        self.texts += texts.len();
        let encodings = tokenizer.encode_batch(texts, true).map_err(|e| anyhow::anyhow!("{e}"))?;
        for encoding in encodings {
            self.ids.extend(encoding.get_ids());
        }
        Ok(())
    }
}

/// Characters of Korean reviews: Hangul (syllables and jamo), ASCII (Latin letters,
/// digits, punctuation), general and CJK punctuation, full-width forms, arrows and
/// shapes (SentencePiece's word marker among them), emoji and their variation selector.
pub fn in_korean_reviews(c: char) -> bool {
    matches!(c as u32,
        0x20..=0x7E                 // ASCII
        | 0xA0..=0xBF | 0xD7 | 0xF7 // Latin-1 symbols (·, ×, ÷, «»)
        | 0x1100..=0x11FF | 0x3130..=0x318F | 0xA960..=0xA97F | 0xAC00..=0xD7A3 | 0xD7B0..=0xD7FF // Hangul
        | 0x2000..=0x206F           // general punctuation (…, ‘’, “”)
        | 0x2190..=0x21FF | 0x2460..=0x24FF // arrows, enclosed numbers
        | 0x2500..=0x27BF           // shapes, dingbats, and ▁ (U+2581), the word marker
        | 0x3000..=0x303F | 0x3200..=0x32FF // CJK punctuation, enclosed Hangul
        | 0xFE0F | 0xFF01..=0xFF65 // variation selector, full-width forms
        | 0x1F000..=0x1FAFF         // emoji
    )
}

/// The Unigram piece with the lowest score (none for other models).
fn lowest_scoring_piece(tokenizer: &Tokenizer) -> anyhow::Result<Option<u32>> {
    let json: Value = serde_json::from_str(&tokenizer.to_string(false).map_err(anyhow::Error::msg)?)?;
    let Some(vocab) = json["model"]["vocab"].as_array().filter(|_| json["model"]["type"] == "Unigram") else {
        return Ok(None);
    };
    let score = |i: usize| vocab[i][1].as_f64().unwrap_or(0.0);
    Ok((0..vocab.len()).min_by(|&a, &b| score(a).total_cmp(&score(b))).map(|i| i as u32))
}

/// Writes base `name`: `base` with only `kept`'s pieces.
pub fn trim(
    data_dir: &Path,
    base: &SafeName,
    name: &SafeName,
    kept: &KeptPieces,
    what: &str,
) -> anyhow::Result<(PathBuf, TrimReport)> {
    let source = super::resolve(data_dir, base)?;
    let folder = ModelFolder::open(&source)?;
    let keep: Vec<u32> = kept.ids.iter().copied().collect();
    let pending = PendingBase::start(data_dir, name)?;
    let tokenizer = trimmed_tokenizer(&folder.tokenizer, &keep)?;
    tokenizer.save(pending.dir().join("tokenizer.json"), false).map_err(|e| anyhow::anyhow!("{e}"))?;
    write_config(&source, pending.dir(), &keep)?;
    write_weights(&folder, pending.dir(), &keep)?;
    let mut origin: Origin = std::fs::read_to_string(source.join(ORIGIN_FILE))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default();
    let step = format!(
        "trimmed from base `{base}` to the {} pieces that {what} ({} texts) use",
        keep.len(),
        kept.texts
    );
    origin.steps.push(step.clone());
    let card = format!("# {name}\n\n{}\n\nSteps:\n{}\n", origin.source, bullet_list(&origin.steps));
    let dir = pending.commit(&origin, &card)?;
    let (before, after) = (super::describe(&source)?, super::describe(&dir)?);
    let report = TrimReport {
        texts: kept.texts,
        pieces_before: before.vocabulary,
        pieces_after: after.vocabulary,
        parameters_before: before.parameters,
        parameters_after: after.parameters,
        bytes_before: before.bytes,
        bytes_after: after.bytes,
    };
    Ok((dir, report))
}

fn bullet_list(steps: &[String]) -> String {
    steps.iter().map(|s| format!("- {s}\n")).collect()
}

/// The old id → new id map of `keep` (sorted).
fn renumber(keep: &[u32], id: u64) -> anyhow::Result<u64> {
    keep.binary_search(&(id as u32)).map(|i| i as u64).map_err(|_| anyhow::anyhow!("id {id} is not kept"))
}

/// The tokenizer with only `keep`'s pieces, ids renumbered (Unigram and WordPiece).
pub fn trimmed_tokenizer(tokenizer: &Tokenizer, keep: &[u32]) -> anyhow::Result<Tokenizer> {
    let mut json: Value = serde_json::from_str(&tokenizer.to_string(false).map_err(anyhow::Error::msg)?)?;
    let model = &mut json["model"];
    match model["type"].as_str() {
        Some("Unigram") => {
            let vocab = model["vocab"].as_array().context("Unigram without vocab")?;
            let kept: Vec<Value> = keep.iter().map(|&i| vocab[i as usize].clone()).collect();
            model["vocab"] = Value::Array(kept);
            if let Some(unk) = model["unk_id"].as_u64() {
                model["unk_id"] = renumber(keep, unk)?.into();
            }
        }
        Some("WordPiece") => {
            let vocab = model["vocab"].as_object().context("WordPiece without vocab")?;
            let kept = vocab
                .iter()
                .filter_map(|(piece, id)| {
                    renumber(keep, id.as_u64()?).ok().map(|new| (piece.clone(), new.into()))
                })
                .collect();
            model["vocab"] = Value::Object(kept);
        }
        other => anyhow::bail!("trimming reads Unigram and WordPiece tokenizers, not {other:?}"),
    }
    for token in json["added_tokens"].as_array_mut().into_iter().flatten() {
        token["id"] = renumber(keep, token["id"].as_u64().unwrap_or(0))?.into();
    }
    renumber_specials(&mut json["post_processor"], keep)?;
    json.to_string().parse().map_err(|e| anyhow::anyhow!("the trimmed tokenizer does not load: {e}"))
}

/// Special-token ids inside a post-processor (template `special_tokens`, RoBERTa's
/// `cls` / `sep` pairs, nested sequences).
fn renumber_specials(processor: &mut Value, keep: &[u32]) -> anyhow::Result<()> {
    if let Some(list) = processor["processors"].as_array_mut() {
        for inner in list {
            renumber_specials(inner, keep)?;
        }
    }
    if let Some(specials) = processor["special_tokens"].as_object_mut() {
        for special in specials.values_mut() {
            for id in special["ids"].as_array_mut().into_iter().flatten() {
                *id = renumber(keep, id.as_u64().unwrap_or(0))?.into();
            }
        }
    }
    for pair in ["cls", "sep"] {
        if let Some(id) = processor[pair].get_mut(1) {
            *id = renumber(keep, id.as_u64().unwrap_or(0))?.into();
        }
    }
    Ok(())
}

fn write_config(source: &Path, dir: &Path, keep: &[u32]) -> anyhow::Result<()> {
    let mut config: Value = serde_json::from_str(&std::fs::read_to_string(source.join("config.json"))?)?;
    config["vocab_size"] = keep.len().into();
    for key in ["pad_token_id", "bos_token_id", "eos_token_id"] {
        if let Some(id) = config[key].as_u64() {
            config[key] = renumber(keep, id).map(Value::from).unwrap_or(Value::Null);
        }
    }
    std::fs::write(dir.join("config.json"), serde_json::to_string_pretty(&config)?)?;
    Ok(())
}

/// Every tensor with a row per piece keeps `keep`'s rows; the rest are copied.
fn write_weights(folder: &ModelFolder, dir: &Path, keep: &[u32]) -> anyhow::Result<()> {
    let rows = folder.config.vocab_size;
    let index = Tensor::new(keep, &Device::Cpu)?;
    let mut tensors = candle_core::safetensors::load(folder.weights_path(), &Device::Cpu)?;
    for (name, tensor) in tensors.iter_mut() {
        let per_piece = tensor.dims().first() == Some(&rows)
            && ["word_embeddings", "decoder", "predictions.bias", "lm_head.bias"]
                .iter()
                .any(|p| name.contains(p));
        if per_piece {
            *tensor = tensor.index_select(&index, 0)?;
        }
    }
    candle_core::safetensors::save(&tensors, dir.join("model.safetensors"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::testing::fixture;

    /// Copies a fixture checkpoint in as base `name`.
    pub(crate) fn base_from_fixture(data_dir: &Path, fixture_name: &str, name: &str) {
        let dir = super::super::root(data_dir).join(name);
        std::fs::create_dir_all(&dir).unwrap();
        for entry in std::fs::read_dir(fixture(fixture_name)).unwrap().flatten() {
            std::fs::copy(entry.path(), dir.join(entry.file_name())).unwrap();
        }
    }

    #[test]
    fn a_trimmed_base_gives_the_same_states_for_the_texts_it_covers() {
        let data_dir = std::env::temp_dir().join(format!("trim-{}", uuid::Uuid::new_v4().simple()));
        let texts = ["옷은 예쁘지만 배송은 늦어요", "사이즈가 커요", "색감이 좋아요 😊"];
        for family in ["tiny-xlmr", "tiny-bert", "tiny-roberta-mlm"] {
            base_from_fixture(&data_dir, family, family);
            let base = SafeName::parse(family).unwrap();
            let folder = ModelFolder::open(&super::super::resolve(&data_dir, &base).unwrap()).unwrap();
            let mut kept = KeptPieces::new(&folder.tokenizer).unwrap();
            kept.add(&folder.tokenizer, texts.iter().map(|t| t.to_string()).collect()).unwrap();
            let name = SafeName::parse(&format!("{family}-trimmed")).unwrap();
            let (dir, report) = trim(&data_dir, &base, &name, &kept, "three reviews").unwrap();
            assert!(report.pieces_after < report.pieces_before / 2, "{family}: {report:?}");
            assert!(report.parameters_after < report.parameters_before, "{family}: {report:?}");
            let trimmed = ModelFolder::open(&dir).unwrap();
            let (old, new) =
                (folder.load_encoder(&Device::Cpu).unwrap(), trimmed.load_encoder(&Device::Cpu).unwrap());
            for text in texts {
                let a = folder.tokenizer.encode(text, true).unwrap();
                let b = trimmed.tokenizer.encode(text, true).unwrap();
                assert_eq!(a.get_tokens(), b.get_tokens(), "{family}: {text}");
                let states = |e: &Encoder, ids: &[u32]| -> Vec<f32> {
                    e.forward(&[ids.to_vec()], false).unwrap().flatten_all().unwrap().to_vec1().unwrap()
                };
                assert_eq!(states(&old, a.get_ids()), states(&new, b.get_ids()), "{family}: {text}");
            }
            let pair = trimmed.tokenizer.encode(("사이즈가 커요", "사이즈"), true).unwrap();
            assert_eq!(
                pair.get_tokens().first(),
                folder.tokenizer.encode("사이즈", true).unwrap().get_tokens().first()
            );
        }
        std::fs::remove_dir_all(data_dir).unwrap();
    }

    /// Trimmed to Korean-review characters with no corpus, a base covers reviews it
    /// never saw (any mix of Hangul, English, digits and emoji) exactly as before.
    #[test]
    fn trimmed_to_korean_characters_a_base_covers_reviews_it_never_saw() {
        let data_dir = std::env::temp_dir().join(format!("trim-ko-{}", uuid::Uuid::new_v4().simple()));
        base_from_fixture(&data_dir, "tiny-xlmr", "tiny-xlmr");
        let base = SafeName::parse("tiny-xlmr").unwrap();
        let folder = ModelFolder::open(&super::super::resolve(&data_dir, &base).unwrap()).unwrap();
        let mut kept = KeptPieces::new(&folder.tokenizer).unwrap();
        kept.add_korean_script(&folder.tokenizer);
        let name = SafeName::parse("tiny-xlmr-ko").unwrap();
        let (dir, report) = trim(&data_dir, &base, &name, &kept, "Korean characters").unwrap();
        // The fixture's vocabulary is Korean already: what is cut is shown on e5 in the docs.
        assert!(report.pieces_after <= report.pieces_before, "{report:?}");
        let trimmed = ModelFolder::open(&dir).unwrap();
        for text in ["핏이쁜데 넘 얇아요ㅠㅠ", "Good quality! 배송 2일 👍", "사이즈 M, 키 163cm…"]
        {
            let a = folder.tokenizer.encode(text, true).unwrap();
            let b = trimmed.tokenizer.encode(text, true).unwrap();
            assert_eq!(a.get_tokens(), b.get_tokens(), "{text}");
        }
        std::fs::remove_dir_all(data_dir).unwrap();
    }

    #[test]
    fn korean_review_characters_are_hangul_ascii_punctuation_and_emoji() {
        for c in ['가', 'ㅋ', 'ㅠ', 'A', '7', '!', '…', '·', '😊', '👍', '▁', '～'] {
            assert!(in_korean_reviews(c), "{c}");
        }
        for c in ['漢', 'Ж', 'ก', 'é', '\u{7}'] {
            assert!(!in_korean_reviews(c), "{c:?}");
        }
    }

    use crate::model::encoder::Encoder;
}
