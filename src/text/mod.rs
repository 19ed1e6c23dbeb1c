//! Text handling shared by import, export and (later) the models: normalisation,
//! content hashes for de-duplication, word spans.

pub mod corpus;
pub mod rarity;

use sha2::{Digest, Sha256};
use unicode_normalization::UnicodeNormalization;

/// NFC-normalises and trims a review. Hangul typed on macOS arrives decomposed (NFD);
/// without this, the same review would hash twice and tokenise differently.
pub fn normalize(text: &str) -> String {
    text.nfc().collect::<String>().trim().to_string()
}

/// The identity of a review inside a taxonomy: same mall, category and normalised
/// text means the same review, whatever file it came from.
pub fn content_hash(mall: &str, category: &str, normalized_text: &str) -> Vec<u8> {
    let mut hasher = Sha256::new();
    for part in [mall, category, normalized_text] {
        hasher.update((part.len() as u64).to_le_bytes());
        hasher.update(part.as_bytes());
    }
    hasher.finalize().to_vec()
}

/// Whitespace-separated words as character spans `(start, end)` into `text`: the units
/// highlights mask and report.
pub fn word_spans(text: &str) -> Vec<(usize, usize)> {
    let mut spans = Vec::new();
    let mut start = None;
    for (i, c) in text.chars().enumerate() {
        match (c.is_whitespace(), start) {
            (false, None) => start = Some(i),
            (true, Some(s)) => {
                spans.push((s, i));
                start = None;
            }
            _ => {}
        }
    }
    if let Some(s) = start {
        spans.push((s, text.chars().count()));
    }
    spans
}

/// The first `chars` characters of `text`, continued to the end of the word they cut
/// (so its words are the text's first words, unchanged); all of a shorter text.
pub fn prefix_at_space(text: &str, chars: usize) -> &str {
    let Some((at, _)) = text.char_indices().nth(chars) else { return text };
    match text[at..].find(char::is_whitespace) {
        Some(space) => &text[..at + space],
        None => text,
    }
}

/// `text` with the characters `start..end` replaced by `replacement`.
pub fn replace_chars(text: &str, start: usize, end: usize, replacement: &str) -> String {
    let head: String = text.chars().take(start).collect();
    let tail: String = text.chars().skip(end).collect();
    format!("{head}{replacement}{tail}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_prefix_ends_at_the_end_of_a_word() {
        assert_eq!(prefix_at_space("옷은 예쁘지만 배송은 늦어요", 4), "옷은 예쁘지만");
        assert_eq!(prefix_at_space("옷은 예쁘지만 배송은 늦어요", 2), "옷은");
        assert_eq!(prefix_at_space("옷은 예쁘지만", 99), "옷은 예쁘지만");
        assert_eq!(prefix_at_space("배송👍좋아요", 1), "배송👍좋아요");
        assert_eq!(prefix_at_space("", 3), "");
    }

    #[test]
    fn words_are_character_spans_even_with_emoji_and_mixed_scripts() {
        let text = "옷은  예쁘지만 😊 good\t배송은";
        let spans = word_spans(text);
        let words: Vec<String> =
            spans.iter().map(|&(s, e)| text.chars().skip(s).take(e - s).collect()).collect();
        assert_eq!(words, ["옷은", "예쁘지만", "😊", "good", "배송은"]);
        assert_eq!(spans[1], (4, 8));
        assert_eq!(replace_chars(text, 4, 8, "[MASK]"), "옷은  [MASK] 😊 good\t배송은");
        assert!(word_spans("   ").is_empty());
    }

    #[test]
    fn decomposed_and_composed_hangul_are_the_same_review() {
        let composed = "배송이 빨라요";
        let decomposed: String = composed.nfd().collect();
        assert_ne!(composed, decomposed);
        assert_eq!(content_hash("", "", &normalize(&decomposed)), content_hash("", "", &normalize(composed)));
    }

    #[test]
    fn mall_and_text_boundaries_do_not_collide() {
        assert_ne!(content_hash("ab", "", "c"), content_hash("a", "", "bc"));
    }

    #[test]
    fn split_is_roughly_eighty_ten_ten() {
        use crate::split::split_for;
        let mut counts = [0usize; 3];
        for i in 0..10_000 {
            let h = content_hash("", "", &format!("리뷰 {i}"));
            counts[split_for(&h) as usize] += 1;
        }
        assert!((7_700..8_300).contains(&counts[0]), "{counts:?}");
        assert!((800..1_200).contains(&counts[1]), "{counts:?}");
        assert!((800..1_200).contains(&counts[2]), "{counts:?}");
    }
}
