//! The lexical part of a classifier: a linear model over the hashed character 1- to
//! 3-grams of the input's words, added to the encoder head's logits ("wide and deep",
//! Cheng et al. 2016, <https://arxiv.org/abs/1606.07792>).
//!
//! Why: an encoder trained from scratch on a few thousand reviews learns word-level cues
//! ("별로", "작아요") far more slowly than a linear model over n-grams does — on NIKL the
//! TF-IDF + logistic-regression baseline beat it. With this part the classifier holds
//! such a linear model itself and the encoder learns what a bag of n-grams cannot
//! (which keyword a sentiment word belongs to, negation, word order). Characters, not
//! word pieces: Korean attaches particles and endings to words (배송이, 배송은, 배송도),
//! and a vocabulary trained on a few thousand reviews keeps many such forms as whole
//! pieces that share nothing; their characters share 배송. The words are rebuilt from
//! the token ids, so every caller passes ids as before, and masking a word for
//! highlights removes its n-grams here too.
//!
//! On NIKL this part alone reaches keyword micro F1 0.61 on validation (0.44 over word
//! pieces and their bigrams), and trained before the encoder it takes the sentiment
//! model's macro F1 on the test split from 0.33 to 0.55 (README, "Models").

use candle_core::{Result, Tensor};
use candle_nn::VarBuilder;
use tokenizers::Tokenizer;

use super::vocab::FIRST_ORDINARY_TOKEN;

pub struct Lexical {
    /// (buckets, outputs)
    table: Tensor,
    buckets: usize,
    /// The vocabulary's pieces by id.
    pieces: Vec<Piece>,
}

/// A vocabulary entry as characters, and whether it begins a word (WordPiece marks
/// continuations with `##`, SentencePiece marks beginnings with `▁`).
struct Piece {
    chars: Vec<char>,
    starts_word: bool,
}

impl Piece {
    fn new(text: &str) -> Piece {
        if let Some(rest) = text.strip_prefix("##") {
            Piece { chars: rest.chars().collect(), starts_word: false }
        } else {
            Piece { chars: text.trim_start_matches('▁').chars().collect(), starts_word: true }
        }
    }
}

impl Lexical {
    /// The table `weight` under `vb`; `buckets` hashed features per output, words read
    /// through `tokenizer`'s vocabulary.
    pub fn load(vb: VarBuilder, buckets: usize, outputs: usize, tokenizer: &Tokenizer) -> Result<Self> {
        let mut vocabulary: Vec<(String, u32)> = tokenizer.get_vocab(true).into_iter().collect();
        vocabulary.sort_by_key(|v| v.1);
        let size = vocabulary.last().map_or(0, |v| v.1 as usize + 1);
        let mut pieces: Vec<Piece> = (0..size).map(|_| Piece::new("")).collect();
        for (text, id) in vocabulary {
            pieces[id as usize] = Piece::new(&text);
        }
        Ok(Lexical { table: vb.get((buckets, outputs), "weight")?, buckets, pieces })
    }

    /// (batch, outputs): each row's features' weights summed, divided by the square
    /// root of their number (the L2 norm of the row's count vector when features are
    /// distinct, as TF-IDF normalises).
    pub fn forward(&self, rows: &[Vec<u32>]) -> Result<Tensor> {
        let features: Vec<Vec<Feature>> = rows.iter().map(|r| self.features(r)).collect();
        let width = features.iter().map(Vec::len).max().unwrap_or(0).max(1);
        let mut index = Vec::with_capacity(rows.len() * width);
        let mut weight = Vec::with_capacity(rows.len() * width);
        for row in &features {
            let norm = 1.0 / (row.len().max(1) as f32).sqrt();
            for i in 0..width {
                let feature = row.get(i);
                index.push(feature.map_or(0, |f| f.bucket));
                weight.push(if feature.is_some() { norm } else { 0.0 });
            }
        }
        let device = self.table.device();
        let index = Tensor::from_vec(index, rows.len() * width, device)?;
        let weight = Tensor::from_vec(weight, (rows.len(), width, 1), device)?;
        let picked = self.table.index_select(&index, 0)?.reshape((rows.len(), width, ()))?;
        picked.broadcast_mul(&weight)?.sum(1)
    }

    /// (batch, seq, outputs): each token's part of [`Lexical::forward`] — the weights of
    /// the n-grams it is in, shared evenly among their tokens — times `scale[row]`, so that shares
    /// add up the way the caller's other shares do. Padding and special tokens get 0.
    pub fn shares(&self, rows: &[Vec<u32>], seq: usize, scale: &[f32]) -> Result<Tensor> {
        let features: Vec<Vec<Feature>> = rows.iter().map(|r| self.features(r)).collect();
        // Only the rows these features use leave the device, not the whole table.
        let buckets: Vec<u32> = features.iter().flatten().map(|f| f.bucket).collect();
        let index = Tensor::from_vec(buckets.clone(), buckets.len(), self.table.device())?;
        let weights = self.table.index_select(&index, 0)?.to_device(&candle_core::Device::Cpu)?;
        let (weights, outputs) = (weights.flatten_all()?.to_vec1::<f32>()?, self.table.dim(1)?);
        let mut weights = weights.chunks(outputs.max(1));
        let mut shares = vec![0f32; rows.len() * seq * outputs];
        for (r, features) in features.iter().enumerate() {
            let norm = scale[r] / (features.len().max(1) as f32).sqrt();
            for (feature, w) in features.iter().zip(weights.by_ref()) {
                let part = norm / feature.tokens as f32;
                for t in (feature.first..feature.first + feature.tokens).filter(|&t| t < seq) {
                    let at = (r * seq + t) * outputs;
                    shares[at..at + outputs].iter_mut().zip(w).for_each(|(s, w)| *s += part * w);
                }
            }
        }
        Tensor::from_vec(shares, (rows.len(), seq, outputs), self.table.device())
    }

    /// The hashed character n-grams of a row's words, as scikit-learn's `char_wb`
    /// analyser makes them: each word padded with a space on both sides, 1- to 3-grams
    /// (the lone padding space left out). Repeats count again, as counts do.
    fn features(&self, row: &[u32]) -> Vec<Feature> {
        let mut features = Vec::with_capacity(6 * row.len());
        // The current word: each character with the position of the token it came from.
        let mut word: Vec<(char, usize)> = Vec::new();
        for (position, &token) in row.iter().enumerate() {
            let piece = self.pieces.get(token as usize).filter(|_| ordinary(token));
            let Some(piece) = piece else {
                self.word_features(&mut word, &mut features);
                continue;
            };
            if piece.starts_word {
                self.word_features(&mut word, &mut features);
            }
            word.extend(piece.chars.iter().map(|&c| (c, position)));
        }
        self.word_features(&mut word, &mut features);
        features
    }

    /// Appends the n-grams of `word` and empties it.
    fn word_features(&self, word: &mut Vec<(char, usize)>, features: &mut Vec<Feature>) {
        let (Some(&(_, first)), Some(&(_, last))) = (word.first(), word.last()) else { return };
        let padded: Vec<(char, usize)> =
            std::iter::once((' ', first)).chain(word.drain(..)).chain(std::iter::once((' ', last))).collect();
        for n in 1..=3 {
            for gram in padded.windows(n).filter(|g| n > 1 || g[0].0 != ' ') {
                let (from, to) = (gram[0].1, gram[n - 1].1);
                features.push(Feature { bucket: self.bucket(gram), first: from, tokens: to - from + 1 });
            }
        }
    }

    fn bucket(&self, gram: &[(char, usize)]) -> u32 {
        let key = gram.iter().fold(0x9E37_79B9_7F4A_7C15u64, |h, &(c, _)| mix(h ^ (u64::from(c) + 1)));
        (key % self.buckets as u64) as u32
    }

    pub fn buckets(&self) -> usize {
        self.buckets
    }
}

/// One n-gram of a row: the tokens it spans and which table row holds its weights.
struct Feature {
    bucket: u32,
    first: usize,
    tokens: usize,
}

fn ordinary(token: u32) -> bool {
    token >= FIRST_ORDINARY_TOKEN
}

/// splitmix64's finaliser: a fixed, well-spread hash (the same on every machine, so a
/// saved table means the same thing wherever it is loaded).
fn mix(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

#[cfg(test)]
mod tests {
    use candle_core::{DType, Device};
    use candle_nn::VarMap;

    use super::*;
    use crate::model::testing::tiny_folder;

    /// A lexical part with random weights, so every bucket says something different.
    fn random_part(buckets: usize, outputs: usize) -> (Lexical, Tokenizer) {
        let tokenizer = tiny_folder().tokenizer;
        let varmap = VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
        let part = Lexical::load(vb, buckets, outputs, &tokenizer).unwrap();
        crate::model::random::seed(5);
        let value = crate::model::random::normal(&[buckets, outputs], 1.0, &Device::Cpu).unwrap();
        varmap.data().lock().unwrap().values().for_each(|v| v.set(&value).unwrap());
        (part, tokenizer)
    }

    fn ids(tokenizer: &Tokenizer, text: &str) -> Vec<u32> {
        tokenizer.encode(text, true).unwrap().get_ids().to_vec()
    }

    fn logits(part: &Lexical, rows: &[Vec<u32>]) -> Vec<Vec<f32>> {
        part.forward(rows).unwrap().to_vec2().unwrap()
    }

    #[test]
    fn shares_add_up_to_the_logits() {
        let (part, tokenizer) = random_part(97, 3);
        let mut rows: Vec<Vec<u32>> =
            ["배송이 빨라요 👍", "색감 good", ""].iter().map(|t| ids(&tokenizer, t)).collect();
        let seq = rows.iter().map(Vec::len).max().unwrap();
        rows.iter_mut().for_each(|r| r.resize(seq, 1));
        let shares = part.shares(&rows, seq, &[1.0; 3]).unwrap().sum(1).unwrap();
        let (shares, logits): (Vec<Vec<f32>>, _) = (shares.to_vec2().unwrap(), logits(&part, &rows));
        for (s, l) in shares.iter().flatten().zip(logits.iter().flatten()) {
            assert!((s - l).abs() < 1e-4, "{s} vs {l}");
        }
        assert_eq!(logits[2], vec![0.0; 3], "special tokens alone carry no features");
        let empty = part.shares(&[vec![0, 2]], 2, &[1.0]).unwrap();
        assert_eq!(empty.flatten_all().unwrap().to_vec1::<f32>().unwrap(), vec![0.0; 6]);
    }

    #[test]
    fn padding_changes_nothing() {
        let (part, tokenizer) = random_part(97, 2);
        let row = ids(&tokenizer, "배송이 빨라요");
        let mut padded = row.clone();
        padded.extend([1, 1, 1]);
        let long = ids(&tokenizer, "배송이 빨라요 색감도 좋아요 재구매 의사 있어요");
        assert_eq!(logits(&part, &[row])[0], logits(&part, &[padded, long])[0]);
    }

    #[test]
    fn a_masked_word_takes_its_character_ngrams_with_it() {
        let (part, tokenizer) = random_part(1 << 12, 1);
        let mut masked = ids(&tokenizer, "배송이 빨라요 좋아요");
        let fast = ids(&tokenizer, "빨라요")[1..].to_vec(); // without [CLS]/[SEP]
        let at = masked.windows(fast.len() - 1).position(|w| w == &fast[..fast.len() - 1]).unwrap();
        masked.splice(at..at + fast.len() - 1, [4]);
        let without = ids(&tokenizer, "배송이 좋아요");
        assert!((logits(&part, &[masked])[0][0] - logits(&part, &[without])[0][0]).abs() < 1e-5);
    }

    #[test]
    fn forms_of_one_word_share_their_stem_ngrams() {
        let (part, tokenizer) = random_part(1 << 16, 1);
        let buckets = |text: &str| -> std::collections::BTreeSet<u32> {
            part.features(&ids(&tokenizer, text)).iter().map(|f| f.bucket).collect()
        };
        let (subject, topic) = (buckets("배송이"), buckets("배송은"));
        // " 배", "배", "송", "배송", " 배송": the stem's n-grams; the endings differ.
        assert_eq!(subject.intersection(&topic).count(), 5, "{subject:?} {topic:?}");
        assert_eq!(subject.len(), 10);
    }

    #[test]
    fn hashes_are_fixed() {
        let (part, _) = random_part(1 << 12, 1);
        // A saved table must mean the same wherever it is loaded.
        assert_eq!(part.bucket(&[('배', 0)]), 4);
        assert_eq!(part.bucket(&[(' ', 0), ('배', 0), ('송', 0)]), 799);
    }
}
