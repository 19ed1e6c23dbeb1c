//! The offline default's own tokenizer: WordPiece trained on the imported reviews, laid
//! out like `klue/roberta-base`'s ([CLS]=0, [PAD]=1, [SEP]=2, [UNK]=3, [MASK]=4), so a
//! model trained here and klue's checkpoint are handled by the same code.

use tokenizers::decoders::wordpiece::WordPiece as WordPieceDecoder;
use tokenizers::models::wordpiece::{WordPiece, WordPieceTrainer};
use tokenizers::models::TrainerWrapper;
use tokenizers::normalizers::bert::BertNormalizer;
use tokenizers::pre_tokenizers::bert::BertPreTokenizer;
use tokenizers::processors::template::TemplateProcessing;
use tokenizers::{
    AddedToken, NormalizedString, Normalizer, OffsetReferential, OffsetType, PreTokenizedString,
    PreTokenizer, Tokenizer,
};

pub const SPECIAL_TOKENS: [&str; 5] = ["[CLS]", "[PAD]", "[SEP]", "[UNK]", "[MASK]"];

/// Ids below this are special tokens (`[CLS]`, `[PAD]`, `[SEP]`, `[UNK]`, `[MASK]`), here
/// and in klue's vocabulary.
pub const FIRST_ORDINARY_TOKEN: u32 = SPECIAL_TOKENS.len() as u32;

pub type TokenizerResult<T> = Result<T, tokenizers::Error>;

/// Trains a WordPiece vocabulary of at most `vocab_size` pieces on `texts`: the same
/// texts give the same vocabulary.
pub fn train_wordpiece<'a>(
    texts: impl Iterator<Item = &'a str> + Send,
    vocab_size: usize,
) -> TokenizerResult<Tokenizer> {
    let texts: Vec<&str> = texts.collect();
    let mut tokenizer = Tokenizer::new(WordPiece::builder().unk_token("[UNK]".into()).build()?);
    // Keep case and accents: Korean needs no lowercasing, and stripping accents would
    // decompose Hangul syllables into jamo.
    tokenizer.with_normalizer(Some(normalizer()));
    tokenizer.with_pre_tokenizer(Some(BertPreTokenizer));
    tokenizer.with_decoder(Some(WordPieceDecoder::default()));
    // The trainer gives each `##x` piece its id in the order it meets it in a hash map,
    // different in every process, and those ids break ties between merges: the same
    // reviews gave different vocabularies (46 of 8,000 pieces on NIKL) and different
    // tokens, hence different models from the same seed (huggingface/tokenizers#1794).
    // Handed over as special tokens, in sorted order, they exist before it starts.
    let continuations = continuing_pieces(&texts)?;
    let specials = SPECIAL_TOKENS.iter().map(|t| t.to_string()).chain(continuations);
    let trainer = WordPieceTrainer::builder()
        .vocab_size(vocab_size)
        .min_frequency(2)
        .special_tokens(specials.map(|t| AddedToken::from(t, true)).collect())
        .show_progress(false)
        .build();
    let mut trainer = TrainerWrapper::from(trainer);
    tokenizer.train(&mut trainer, texts.into_iter())?;
    let mut tokenizer = without_added_continuations(&tokenizer)?;
    let processor = TemplateProcessing::builder()
        .try_single("[CLS] $A [SEP]")?
        .try_pair("[CLS] $A [SEP] $B:1 [SEP]:1")?
        .special_tokens(vec![("[CLS]", 0), ("[SEP]", 2)])
        .build()
        .map_err(|e| tokenizers::Error::from(e.to_string()))?;
    tokenizer.with_post_processor(Some(processor));
    Ok(tokenizer)
}

fn normalizer() -> BertNormalizer {
    BertNormalizer::new(true, true, Some(false), false)
}

/// `##x` for every character `x` that continues a word of `texts` (as the tokenizer's
/// normaliser and pre-tokeniser cut them), sorted.
fn continuing_pieces(texts: &[&str]) -> TokenizerResult<Vec<String>> {
    let mut continuing = std::collections::BTreeSet::new();
    for text in texts {
        let mut normalized = NormalizedString::from(*text);
        normalizer().normalize(&mut normalized)?;
        let mut words = PreTokenizedString::from(normalized);
        BertPreTokenizer.pre_tokenize(&mut words)?;
        for (word, _, _) in words.get_splits(OffsetReferential::Normalized, OffsetType::None) {
            continuing.extend(word.chars().skip(1));
        }
    }
    Ok(continuing.into_iter().map(|c| format!("##{c}")).collect())
}

/// The trained tokenizer with the `##x` pieces kept in its vocabulary but no longer
/// added tokens (which the tokenizer would match in raw text and drop when decoding).
fn without_added_continuations(tokenizer: &Tokenizer) -> TokenizerResult<Tokenizer> {
    let mut json: serde_json::Value = serde_json::from_str(&tokenizer.to_string(false)?)?;
    if let Some(added) = json["added_tokens"].as_array_mut() {
        added.retain(|t| SPECIAL_TOKENS.iter().any(|s| t["content"] == *s));
    }
    json.to_string().parse()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_korean_vocabulary_keeps_special_ids_and_hangul_intact() {
        let texts =
            ["배송이 빨라요", "배송은 늦어요", "색감이 좋아요 😊", "사이즈가 커요", "배송 빨라요 good"];
        let corpus: Vec<&str> = texts.iter().cycle().take(50).copied().collect();
        let tokenizer = train_wordpiece(corpus.into_iter(), 200).unwrap();
        for (id, token) in SPECIAL_TOKENS.iter().enumerate() {
            assert_eq!(tokenizer.token_to_id(token), Some(id as u32), "{token}");
        }
        let encoding = tokenizer.encode("배송이 빨라요", true).unwrap();
        assert_eq!(encoding.get_ids().first(), Some(&0));
        assert_eq!(encoding.get_ids().last(), Some(&2));
        assert!(encoding.get_tokens().iter().any(|t| t.contains('배')), "{:?}", encoding.get_tokens());
        let pair = tokenizer.encode(("배송이 빨라요", "배송"), true).unwrap();
        assert_eq!(pair.get_ids().iter().filter(|&&i| i == 2).count(), 2);
    }

    #[test]
    fn the_same_reviews_give_the_same_vocabulary() {
        // Many words seen equally often: merges tie everywhere, which is where hash-map
        // order used to decide.
        let syllables: Vec<char> = "가나다라마바사아자차카타파하배송색감좋아요".chars().collect();
        let words: Vec<String> = (0..600)
            .map(|i| (0..2 + i % 3).map(|j| syllables[(i * 7 + j * 13 + i / 5) % syllables.len()]).collect())
            .collect();
        let texts: Vec<String> = words.chunks(6).map(|w| w.join(" ")).collect();
        let train = || train_wordpiece(texts.iter().map(String::as_str), 300).unwrap();
        let first = train();
        for _ in 0..3 {
            assert_eq!(train().get_vocab(true), first.get_vocab(true));
        }
        assert_eq!(first.get_added_tokens_decoder().len(), SPECIAL_TOKENS.len(), "only the special tokens");
        let tokens = first.encode("##가", false).unwrap().get_tokens().to_vec();
        assert_ne!(tokens, ["##가"], "`##가` in a review is text, not a token");
    }
}
