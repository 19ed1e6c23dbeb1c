//! `tokenizer.json` for checkpoint folders that ship only a slow tokenizer's files —
//! BERT/ELECTRA's `vocab.txt` (WordPiece) and XLM-R's `sentencepiece.bpe.model`
//! (SentencePiece unigram) — built the way transformers' `convert_slow_tokenizer` builds
//! them, and the XLM-R-style Unigram tokenizer of pieces, scores and a character map
//! that `base import` writes for the e5 file.
//!
//! The SentencePiece model is a protobuf; its three messages are declared here for
//! `prost` (the fields we read only). A character map becomes SentencePiece's own
//! "precompiled charsmap" (a darts-clone double-array trie over the UTF-8 of each
//! character, built with `yada`, whose units are darts-clone's), so the tokenizer is an
//! ordinary XLM-R `tokenizer.json` that transformers reads too.

use std::path::Path;

use tokenizers::decoders::wordpiece::WordPiece as WordPieceDecoder;
use tokenizers::models::unigram::Unigram;
use tokenizers::models::wordpiece::WordPiece;
use tokenizers::normalizers::bert::BertNormalizer;
use tokenizers::normalizers::precompiled::Precompiled;
use tokenizers::normalizers::replace::Replace;
use tokenizers::normalizers::utils::Sequence;
use tokenizers::pre_tokenizers::bert::BertPreTokenizer;
use tokenizers::pre_tokenizers::metaspace::{Metaspace, PrependScheme};
use tokenizers::processors::template::TemplateProcessing;
use tokenizers::{AddedToken, NormalizerWrapper, Tokenizer};

pub type Result<T> = std::result::Result<T, String>;

/// XLM-R's special tokens and their ids (fairseq's order: `<s>` 0, `<pad>` 1, `</s>` 2,
/// `<unk>` 3; `<mask>` last).
pub const XLMR_SPECIALS: [&str; 4] = ["<s>", "<pad>", "</s>", "<unk>"];
pub const XLMR_MASK: &str = "<mask>";

/// A WordPiece tokenizer from a `vocab.txt` (one piece per line, the line number its
/// id), as `BertTokenizerFast` builds it. `lowercase` follows the folder's
/// `tokenizer_config.json` (`do_lower_case`, true when absent, as in transformers);
/// accents are stripped exactly when lowercasing, as transformers does by default.
pub fn from_vocab_txt(path: &Path, lowercase: bool) -> Result<Tokenizer> {
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    let vocab: std::collections::HashMap<&str, u32> =
        text.lines().enumerate().map(|(i, t)| (t.trim_end(), i as u32)).collect();
    for special in ["[CLS]", "[SEP]", "[UNK]", "[PAD]", "[MASK]"] {
        if !vocab.contains_key(special) {
            return Err(format!("no {special} piece: not a BERT vocabulary"));
        }
    }
    let id = |t: &str| vocab[t];
    let model = WordPiece::from_file(&path.display().to_string())
        .unk_token("[UNK]".into())
        .continuing_subword_prefix("##".into())
        .build()
        .map_err(|e| e.to_string())?;
    let mut tokenizer = Tokenizer::new(model);
    tokenizer.with_normalizer(Some(BertNormalizer::new(true, true, Some(lowercase), lowercase)));
    tokenizer.with_pre_tokenizer(Some(BertPreTokenizer));
    tokenizer.with_decoder(Some(WordPieceDecoder::default()));
    let processor = TemplateProcessing::builder()
        .try_single("[CLS] $A [SEP]")
        .and_then(|b| b.try_pair("[CLS] $A [SEP] $B:1 [SEP]:1"))
        .map_err(|e| e.to_string())?
        .special_tokens(vec![("[CLS]", id("[CLS]")), ("[SEP]", id("[SEP]"))])
        .build()
        .map_err(|e| e.to_string())?;
    tokenizer.with_post_processor(Some(processor));
    let specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"].map(|t| AddedToken::from(t, true));
    tokenizer.add_special_tokens(&specials);
    Ok(tokenizer)
}

/// `do_lower_case` of a folder's `tokenizer_config.json`; transformers' default (true)
/// when the file or the field is absent.
pub fn lowercases(dir: &Path) -> bool {
    let config = std::fs::read_to_string(dir.join("tokenizer_config.json")).unwrap_or_default();
    let config: serde_json::Value = serde_json::from_str(&config).unwrap_or_default();
    config["do_lower_case"].as_bool().unwrap_or(true)
}

/// The few fields of SentencePiece's `ModelProto` a tokenizer needs.
#[derive(Clone, PartialEq, prost::Message)]
struct ModelProto {
    #[prost(message, repeated, tag = "1")]
    pieces: Vec<PieceProto>,
    #[prost(message, optional, tag = "3")]
    normalizer_spec: Option<NormalizerSpec>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct PieceProto {
    #[prost(string, optional, tag = "1")]
    piece: Option<String>,
    #[prost(float, optional, tag = "2")]
    score: Option<f32>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct NormalizerSpec {
    #[prost(bytes = "vec", optional, tag = "2")]
    precompiled_charsmap: Option<Vec<u8>>,
}

/// XLM-R's tokenizer from its `sentencepiece.bpe.model`: SentencePiece's pieces with
/// fairseq's ids (its `<unk> <s> </s>` replaced by `<s> <pad> </s> <unk>`, every other
/// piece one id later, `<mask>` appended), its normalisation, metaspace.
pub fn from_sentencepiece(path: &Path) -> Result<Tokenizer> {
    use prost::Message;
    let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
    let proto =
        ModelProto::decode(bytes.as_slice()).map_err(|e| format!("not a SentencePiece model: {e}"))?;
    if proto.pieces.len() < 4 {
        return Err("not a SentencePiece model: fewer than 4 pieces".into());
    }
    let pieces = proto.pieces[3..]
        .iter()
        .map(|p| (p.piece.clone().unwrap_or_default(), p.score.unwrap_or(0.0) as f64))
        .collect();
    let charsmap = proto.normalizer_spec.and_then(|n| n.precompiled_charsmap).unwrap_or_default();
    xlmr_unigram(pieces, &charsmap)
}

/// An XLM-R tokenizer: `<s> <pad> </s> <unk>`, then `pieces` (text, score) from id 4,
/// then `<mask>`; normalised by `charsmap` (SentencePiece's precompiled form; empty for
/// none) and runs of spaces collapsed, split at spaces marked `▁`, Viterbi over the
/// pieces; `<s> A </s>` and `<s> A </s></s> B </s>`.
pub fn xlmr_unigram(pieces: Vec<(String, f64)>, charsmap: &[u8]) -> Result<Tokenizer> {
    let mut vocab: Vec<(String, f64)> = XLMR_SPECIALS.iter().map(|s| (s.to_string(), 0.0)).collect();
    vocab.extend(pieces);
    vocab.push((XLMR_MASK.to_string(), 0.0));
    let mask = vocab.len() - 1;
    let model = Unigram::from(vocab, Some(3), false).map_err(|e| e.to_string())?;
    let mut tokenizer = Tokenizer::new(model);
    let mut normalizers: Vec<NormalizerWrapper> = Vec::new();
    if !charsmap.is_empty() {
        let precompiled = Precompiled::from(charsmap).map_err(|e| format!("bad character map: {e}"))?;
        normalizers.push(precompiled.into());
    }
    let spaces = Replace::new(tokenizers::normalizers::replace::ReplacePattern::Regex(" {2,}".into()), " ")
        .map_err(|e| e.to_string())?;
    normalizers.push(spaces.into());
    tokenizer.with_normalizer(Some(Sequence::new(normalizers)));
    tokenizer.with_pre_tokenizer(Some(Metaspace::new('▁', PrependScheme::Always, true)));
    tokenizer.with_decoder(Some(Metaspace::new('▁', PrependScheme::Always, true)));
    let processor = TemplateProcessing::builder()
        .try_single("<s> $A </s>")
        .and_then(|b| b.try_pair("<s> $A </s> </s> $B </s>"))
        .map_err(|e| e.to_string())?
        .special_tokens(vec![("<s>", 0), ("</s>", 2)])
        .build()
        .map_err(|e| e.to_string())?;
    tokenizer.with_post_processor(Some(processor));
    let specials: Vec<AddedToken> =
        XLMR_SPECIALS.iter().chain([&XLMR_MASK]).map(|t| AddedToken::from(*t, true)).collect();
    tokenizer.add_special_tokens(&specials);
    debug_assert_eq!(tokenizer.token_to_id(XLMR_MASK), Some(mask as u32));
    Ok(tokenizer)
}

/// SentencePiece's precompiled charsmap for a map from single characters to their
/// replacements (an empty replacement removes the character): a u32 with the trie's
/// size in bytes, the double-array trie over each character's UTF-8 whose values are
/// offsets into the replacements, then the replacements, each ending in a NUL.
pub fn precompiled_charsmap(map: &[(char, String)]) -> Result<Vec<u8>> {
    let mut entries: Vec<(Vec<u8>, &str)> =
        map.iter().map(|(c, to)| (c.to_string().into_bytes(), to.as_str())).collect();
    entries.sort();
    entries.dedup_by(|a, b| a.0 == b.0);
    let mut normalized = Vec::new();
    let mut keyset = Vec::with_capacity(entries.len());
    for (key, to) in &entries {
        if to.contains('\0') {
            return Err("a replacement holds a NUL character".into());
        }
        keyset.push((key.as_slice(), normalized.len() as u32));
        normalized.extend_from_slice(to.as_bytes());
        normalized.push(0);
    }
    let trie = yada::builder::DoubleArrayBuilder::build(&keyset).ok_or("the character map has no trie")?;
    let mut out = (trie.len() as u32).to_le_bytes().to_vec();
    out.extend_from_slice(&trie);
    out.extend_from_slice(&normalized);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_character_map_normalises_like_the_map_says() {
        let map = vec![
            ('Ａ', "A".to_string()),
            ('\u{200b}', " ".to_string()),
            ('\u{1}', String::new()),
            ('㈜', "(주)".to_string()),
            ('ｶ', "カ".to_string()),
        ];
        let charsmap = precompiled_charsmap(&map).unwrap();
        let precompiled = Precompiled::from(&charsmap).unwrap();
        assert_eq!(precompiled.normalize_string("Ａ\u{200b}배송\u{1}㈜ｶ"), "A 배송(주)カ");
        assert_eq!(precompiled.normalize_string("한글 그대로"), "한글 그대로");
        let tokenizers_own = Precompiled::from(&charsmap).unwrap();
        let mut text = tokenizers::NormalizedString::from("Ａ배송\u{1}");
        tokenizers::Normalizer::normalize(&tokenizers_own, &mut text).unwrap();
        assert_eq!(text.get(), "A배송");
    }

    #[test]
    fn an_xlmr_tokenizer_keeps_fairseq_ids_and_splits_at_spaces() {
        let pieces = vec![
            ("▁배송".to_string(), -2.0),
            ("이".to_string(), -3.0),
            ("▁빨라요".to_string(), -2.5),
            ("▁".to_string(), -4.0),
            ("빨".to_string(), -6.0),
        ];
        let charsmap = precompiled_charsmap(&[('Ａ', "A".into())]).unwrap();
        let tokenizer = xlmr_unigram(pieces, &charsmap).unwrap();
        assert_eq!(tokenizer.token_to_id("<pad>"), Some(1));
        assert_eq!(tokenizer.token_to_id("<mask>"), Some(9));
        let encoding = tokenizer.encode("배송이   빨라요", true).unwrap();
        assert_eq!(encoding.get_tokens(), ["<s>", "▁배송", "이", "▁빨라요", "</s>"]);
        let unknown = tokenizer.encode("배송 Ａ", true).unwrap();
        assert_eq!(unknown.get_ids(), [0, 4, 7, 3, 2], "{:?}", unknown.get_tokens());
        // The tokenizer survives its own JSON, as a saved folder needs.
        let again: Tokenizer = tokenizer.to_string(false).unwrap().parse().unwrap();
        assert_eq!(again.encode("배송이 빨라요", true).unwrap().get_ids(), [0, 4, 5, 6, 2]);
    }

    #[test]
    fn a_vocab_txt_becomes_a_bert_tokenizer() {
        let dir = std::env::temp_dir().join(format!("vocab-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let pieces = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "배송", "##이", "빨라요", "good"];
        std::fs::write(dir.join("vocab.txt"), pieces.join("\n")).unwrap();
        let tokenizer = from_vocab_txt(&dir.join("vocab.txt"), false).unwrap();
        let pair = tokenizer.encode(("배송이 빨라요", "배송"), true).unwrap();
        assert_eq!(pair.get_ids(), [2, 5, 6, 7, 3, 5, 3]);
        assert_eq!(pair.get_type_ids(), [0, 0, 0, 0, 0, 1, 1]);
        let lower = from_vocab_txt(&dir.join("vocab.txt"), true).unwrap();
        assert_eq!(lower.encode("GOOD", false).unwrap().get_ids(), [8]);
        std::fs::write(dir.join("vocab.txt"), "a\nb\n").unwrap();
        assert!(from_vocab_txt(&dir.join("vocab.txt"), false).unwrap_err().contains("not a BERT vocabulary"));
        std::fs::remove_dir_all(dir).unwrap();
    }
}
