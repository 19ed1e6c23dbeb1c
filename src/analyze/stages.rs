//! The analysis cut into steps that a scheduler can interleave: first the keyword and
//! sentiment passes of a review ([`Analyzer::stage`]), then its masked variants a few
//! at a time ([`Analyzer::mask`]), then the answer ([`Analyzer::finish`]). What a
//! review costs is known before any of it runs ([`Analyzer::cost`]): the serving layer
//! charges, refuses and schedules by it.
//!
//! Only words inside the encoded tokens are masked: masking a word the encoder never
//! sees changes nothing, and a 5,000-character review would otherwise cost a pass per
//! word of all of it.

use super::{Analysis, Analyzer, Highlight, Highlights, Masking, WordDrops};
use crate::text;

/// What is asked of a review.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ask {
    /// The API's analysis, with highlights found as given for each found keyword.
    Analysis(Highlights),
    /// The words that drive one keyword (by index), found or not: every word masked.
    Explain(usize),
}

/// A review between steps: its passes done, the words still to mask, the drops so far.
pub struct Staged {
    /// The normalised text the answer's spans index.
    text: String,
    /// The text masked: cut after the encoded part, with room for the tokens a masked
    /// word frees (a prefix, so spans are the same).
    mask_text: String,
    /// Tokens of the keyword model's row: what one masked variant costs.
    pub tokens: usize,
    probabilities: Vec<f32>,
    sentiments: Vec<(usize, Vec<f32>)>,
    to_mask: Vec<(usize, usize)>,
    drops: WordDrops,
}

impl Staged {
    pub fn masks_left(&self) -> usize {
        self.to_mask.len()
    }
}

/// A review's cost in token-passes (one token through one forward pass), bounded
/// before it runs: the keyword pass and a sentiment pass for every keyword it could
/// find, then one keyword pass per masked word.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReviewCost {
    /// The keyword and sentiment passes.
    pub stage: u64,
    /// The keyword pass and a typical review's sentiment passes: what the model thread
    /// plans its steps with, since the bound counts a sentiment pass for every keyword
    /// and would make steps of short reviews far shorter than planned.
    pub typical_stage: u64,
    /// One masked variant.
    pub per_mask: u64,
    /// Words masked at most.
    pub masks: u64,
}

/// Keywords a typical review is found to have (one to three in NIKL and the seed's data).
const TYPICAL_FOUND: u64 = 2;

impl ReviewCost {
    /// The bound: what a request is refused and charged by.
    pub fn total(&self) -> u64 {
        self.stage + self.per_mask * self.masks
    }
}

/// Characters per token of the limit that hold more than the limit's tokens in
/// practice (Korean runs at one to three): the window read of a long text, and the
/// room kept after the last word to mask (a masked word frees the tokens it had
/// beyond the one mask, letting that much more text in).
const CHARS_PER_TOKEN: usize = 4;

impl Analyzer {
    /// The bound on what analysing `text` as asked costs.
    pub fn cost(&self, text: &str, ask: Ask) -> ReviewCost {
        let text = text::normalize(text);
        let (tokens, words) = self.encoded_window(&text);
        let (tokens, words) = (tokens as u64, words.len() as u64);
        let keywords = self.keyword.labels.keywords.len() as u64;
        // The keyword taken as at most 16 tokens with the pair's separators.
        let pair = (tokens + 16).min(self.sentiment.max_tokens() as u64);
        let stage = tokens + keywords * pair;
        let typical_stage = tokens + keywords.min(TYPICAL_FOUND) * pair;
        let masks = match ask {
            Ask::Analysis(Highlights::None) => 0,
            Ask::Analysis(Highlights::Fast) => words.min(self.fast_candidates as u64 * keywords),
            Ask::Analysis(Highlights::Mask) | Ask::Explain(_) => words,
        };
        ReviewCost { stage, typical_stage, per_mask: tokens, masks }
    }

    /// [`Self::encoded`] of as much of `text` as its encoding reads, without tokenizing
    /// all of a long text: when a prefix already fills the token limit, the prefix's.
    fn encoded_window(&self, text: &str) -> (usize, Vec<(usize, usize)>) {
        let prefix = text::prefix_at_space(text, CHARS_PER_TOKEN * self.keyword.max_tokens());
        if prefix.len() < text.len() {
            let encoded = self.encoded(prefix);
            if encoded.0 >= self.keyword.max_tokens() {
                return encoded;
            }
        }
        self.encoded(text)
    }

    /// The tokens of `text`'s keyword row and the words inside them (all of a short
    /// text), at most the encoder's limit of tokens whether or not the tokenizer cuts.
    fn encoded(&self, text: &str) -> (usize, Vec<(usize, usize)>) {
        let spans = text::word_spans(text);
        let Ok(encoding) = self.keyword.tokenizer.encode_char_offsets(text, true) else { return (0, spans) };
        let limit = self.keyword.max_tokens();
        let covered = encoding
            .get_offsets()
            .iter()
            .zip(encoding.get_special_tokens_mask())
            .take(limit)
            .filter(|(_, &special)| special == 0)
            .map(|(&(_, end), _)| end)
            .max()
            .unwrap_or(0);
        (encoding.len().min(limit), spans.into_iter().filter(|&(start, _)| start < covered).collect())
    }

    /// The keyword and sentiment passes of many reviews together, and the words each
    /// has to mask.
    pub fn stage(&self, texts: &[String], asks: &[Ask]) -> anyhow::Result<Vec<Staged>> {
        let fast = asks.contains(&Ask::Analysis(Highlights::Fast));
        let pass = self.pass(texts, fast)?;
        let mut staged = Vec::with_capacity(texts.len());
        let parts = pass.texts.into_iter().zip(pass.tokens).zip(pass.probabilities).zip(pass.sentiments);
        for (i, (((text, tokens), probabilities), sentiments)) in parts.enumerate() {
            let found: Vec<usize> = sentiments.iter().map(|(k, _)| *k).collect();
            let ask = asks.get(i).copied().unwrap_or(Ask::Analysis(Highlights::None));
            let to_mask = match (ask, &pass.shares[i]) {
                (Ask::Explain(_), _) => self.encoded_window(&text).1,
                (Ask::Analysis(_), _) if found.is_empty() => Vec::new(),
                (Ask::Analysis(Highlights::None), _) => Vec::new(),
                (Ask::Analysis(Highlights::Fast), Some(shares)) => self.fast_spans(&text, shares, &found),
                (Ask::Analysis(_), _) => self.encoded_window(&text).1,
            };
            let last = to_mask.last().map_or(0, |&(_, end)| end);
            let mask_text =
                text::prefix_at_space(&text, last + CHARS_PER_TOKEN * self.keyword.max_tokens()).to_string();
            staged.push(Staged {
                text,
                mask_text,
                tokens,
                probabilities,
                sentiments,
                to_mask,
                drops: Vec::new(),
            });
        }
        Ok(staged)
    }

    /// Masks the next `n` words of each review given, all variants scored together.
    pub fn mask(&self, work: &mut [(&mut Staged, usize)]) -> anyhow::Result<()> {
        let inputs: Vec<Masking> = work
            .iter()
            .map(|(s, n)| Masking {
                text: &s.mask_text,
                original: &s.probabilities,
                spans: s.to_mask[..(*n).min(s.to_mask.len())].to_vec(),
            })
            .collect();
        let drops = self.mask_drops(&inputs)?;
        for ((s, n), d) in work.iter_mut().zip(drops) {
            let n = (*n).min(s.to_mask.len());
            s.to_mask.drain(..n);
            s.drops.extend(d);
        }
        Ok(())
    }

    /// Masks every word left.
    pub fn mask_all(&self, staged: &mut [Staged]) -> anyhow::Result<()> {
        let mut work: Vec<(&mut Staged, usize)> = staged.iter_mut().map(|s| (s, usize::MAX)).collect();
        self.mask(&mut work)
    }

    /// The analysis of a review whose words are all masked.
    pub fn finish(&self, staged: Staged) -> Analysis {
        self.assemble(&staged.text, staged.probabilities, staged.sentiments, &staged.drops)
    }

    /// The words that drive `keyword` in a review whose words are all masked.
    pub fn explain(&self, staged: &Staged, keyword: usize) -> Vec<Highlight> {
        self.top_highlights(&staged.text, &staged.drops, keyword)
    }
}
