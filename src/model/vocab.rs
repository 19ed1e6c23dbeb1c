//! The offline default's own tokenizer: WordPiece trained on the imported reviews, laid
//! out like `klue/roberta-base`'s ([CLS]=0, [PAD]=1, [SEP]=2, [UNK]=3, [MASK]=4), so a
//! model trained here and klue's checkpoint are handled by the same code.

use tokenizers::decoders::wordpiece::WordPiece as WordPieceDecoder;
use tokenizers::models::wordpiece::{WordPiece, WordPieceTrainer};
use tokenizers::models::TrainerWrapper;
use tokenizers::normalizers::bert::BertNormalizer;
use tokenizers::pre_tokenizers::bert::BertPreTokenizer;
use tokenizers::processors::template::TemplateProcessing;
use tokenizers::{AddedToken, Tokenizer};

pub const SPECIAL_TOKENS: [&str; 5] = ["[CLS]", "[PAD]", "[SEP]", "[UNK]", "[MASK]"];

/// Ids below this are special tokens (`[CLS]`, `[PAD]`, `[SEP]`, `[UNK]`, `[MASK]`), here
/// and in klue's vocabulary.
pub const FIRST_ORDINARY_TOKEN: u32 = SPECIAL_TOKENS.len() as u32;

pub type TokenizerResult<T> = Result<T, tokenizers::Error>;

/// Trains a WordPiece vocabulary of at most `vocab_size` pieces on `texts`.
pub fn train_wordpiece<'a>(
    texts: impl Iterator<Item = &'a str> + Send,
    vocab_size: usize,
) -> TokenizerResult<Tokenizer> {
    let mut tokenizer = Tokenizer::new(WordPiece::builder().unk_token("[UNK]".into()).build()?);
    // Keep case and accents: Korean needs no lowercasing, and stripping accents would
    // decompose Hangul syllables into jamo.
    tokenizer.with_normalizer(Some(BertNormalizer::new(true, true, Some(false), false)));
    tokenizer.with_pre_tokenizer(Some(BertPreTokenizer));
    tokenizer.with_decoder(Some(WordPieceDecoder::default()));
    let specials = SPECIAL_TOKENS.iter().map(|t| AddedToken::from(*t, true)).collect();
    let trainer = WordPieceTrainer::builder()
        .vocab_size(vocab_size)
        .min_frequency(2)
        .special_tokens(specials)
        .show_progress(false)
        .build();
    let mut trainer = TrainerWrapper::from(trainer);
    tokenizer.train(&mut trainer, texts)?;
    let processor = TemplateProcessing::builder()
        .try_single("[CLS] $A [SEP]")?
        .try_pair("[CLS] $A [SEP] $B:1 [SEP]:1")?
        .special_tokens(vec![("[CLS]", 0), ("[SEP]", 2)])
        .build()
        .map_err(|e| tokenizers::Error::from(e.to_string()))?;
    tokenizer.with_post_processor(Some(processor));
    Ok(tokenizer)
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
}
