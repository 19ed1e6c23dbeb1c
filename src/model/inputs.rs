//! How text becomes token ids for the encoder, the same in training and inference:
//! a review alone (keyword model), a review with one keyword (sentiment model), cut to
//! what the encoder's positions allow.

use serde::{Deserialize, Serialize};
use tokenizers::{Tokenizer, TruncationParams, TruncationStrategy};

/// How the sentiment model sees a review and one of its keywords.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum SentimentInput {
    /// The encoder's sentence pair: `[CLS] review [SEP] keyword [SEP]`.
    Pair,
    /// The seed's prompt: `###입력: {review}\n###키워드: {keyword}`.
    SeedPrompt,
}

/// A tokenizer that cuts inputs to what the encoder's positions allow.
pub fn truncating(tokenizer: &Tokenizer, max_tokens: usize) -> Tokenizer {
    let mut t = tokenizer.clone();
    let params = TruncationParams {
        max_length: max_tokens,
        strategy: TruncationStrategy::LongestFirst,
        ..Default::default()
    };
    // Only fails when max_length cannot hold the special tokens, which config checks exclude.
    let _ = t.with_truncation(Some(params));
    t.with_padding(None);
    t
}

pub fn encode_review(tokenizer: &Tokenizer, text: &str) -> Vec<u32> {
    tokenizer.encode(text, true).map(|e| e.get_ids().to_vec()).unwrap_or_default()
}

/// The seed's sentiment prompt around a review and a keyword.
pub fn seed_prompt(text: &str, keyword: &str) -> String {
    format!("###입력: {text}\n###키워드: {keyword}")
}

pub fn encode_pair(tokenizer: &Tokenizer, input: SentimentInput, text: &str, keyword: &str) -> Vec<u32> {
    let encoding = match input {
        SentimentInput::Pair => tokenizer.encode((text, keyword), true),
        SentimentInput::SeedPrompt => tokenizer.encode(seed_prompt(text, keyword), true),
    };
    encoding.map(|e| e.get_ids().to_vec()).unwrap_or_default()
}
