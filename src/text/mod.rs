//! Text handling shared by import, export and (later) the models: normalisation,
//! content hashes for de-duplication, and the deterministic data split.

use sha2::{Digest, Sha256};
use unicode_normalization::UnicodeNormalization;

use crate::store::reviews::Split;

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

/// 80 / 10 / 10 train / validation / test, decided by the content hash so a review
/// keeps its split across re-imports, databases and machines.
pub fn split_for(hash: &[u8]) -> Split {
    match hash[0] as u32 * 10 / 256 {
        0..=7 => Split::Train,
        8 => Split::Validation,
        _ => Split::Test,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
