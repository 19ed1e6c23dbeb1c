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
//! Features are weighed as the baseline's TF-IDF weighs them: sublinear counts times
//! the inverse document frequency counted on the training reviews (stored as `idf`
//! beside the table), each row's vector scaled to length 1; the part has its own
//! `bias`. Versions saved before those two existed load without them and weigh each
//! feature occurrence 1 / √(occurrences), as they were trained.
//!
//! On NIKL this part alone, weighed by counts, reached keyword micro F1 0.61 on
//! validation (0.44 over word pieces and their bigrams), and trained before the encoder
//! it took the sentiment model's macro F1 on the test split from 0.33 to 0.55 (docs/models.md,
//! "Models").

use candle_core::{Result, Tensor};
use candle_nn::VarBuilder;
use tokenizers::Tokenizer;

use super::vocab::FIRST_ORDINARY_TOKEN;

pub struct Lexical {
    /// (buckets, outputs)
    table: Tensor,
    /// (outputs): absent in versions saved before it existed.
    bias: Option<Tensor>,
    /// (buckets): each feature's inverse document frequency in the training reviews.
    /// Absent in versions saved before it existed, which weigh features by count.
    idf: Option<Tensor>,
    buckets: usize,
    /// The vocabulary's pieces by id.
    pieces: Vec<Piece>,
}

/// A vocabulary entry as characters, whether it begins a word (WordPiece marks
/// continuations with `##`, SentencePiece marks beginnings with `▁` and leaves
/// continuations bare), and whether it is a special token (which ends a word and has
/// no characters of its own).
struct Piece {
    chars: Vec<char>,
    starts_word: bool,
    special: bool,
}

impl Piece {
    fn new(text: &str, metaspace: bool, special: bool) -> Piece {
        let (chars, starts_word) = match (metaspace, text.strip_prefix("##")) {
            (false, Some(rest)) => (rest, false),
            (false, None) => (text, true),
            (true, _) => (text.trim_start_matches('▁'), text.starts_with('▁')),
        };
        Piece { chars: chars.chars().collect(), starts_word, special }
    }
}

/// Features seen in fewer training reviews are left out, as scikit-learn's `min_df=2`
/// leaves them out of its vocabulary: a weight learnt from one review is that review's
/// memory, and at inference such features (and ones never seen) only dilute the norm.
const MIN_DOCUMENTS: usize = 2;

impl Lexical {
    /// The tensors `weight`, `bias` and `idf` under `vb`; `buckets` hashed features per
    /// output, words read through `tokenizer`'s vocabulary. A fresh `VarMap` (training)
    /// gets all three; a saved version without `bias` or `idf` loads without them.
    pub fn load(vb: VarBuilder, buckets: usize, outputs: usize, tokenizer: &Tokenizer) -> Result<Self> {
        let mut vocabulary: Vec<(String, u32)> = tokenizer.get_vocab(true).into_iter().collect();
        vocabulary.sort_by_key(|v| v.1);
        let size = vocabulary.last().map_or(0, |v| v.1 as usize + 1);
        // SentencePiece vocabularies (XLM-R's, e5's) mark word starts with `▁`; their
        // special tokens are the added ones. WordPiece ones here and klue's keep their
        // special tokens below FIRST_ORDINARY_TOKEN, as versions trained before relied on.
        let metaspace = vocabulary.iter().any(|(text, _)| text.starts_with('▁'));
        let added = tokenizer.get_added_tokens_decoder();
        let special = |id: u32| if metaspace { added.contains_key(&id) } else { id < FIRST_ORDINARY_TOKEN };
        let mut pieces: Vec<Piece> = (0..size).map(|_| Piece::new("", metaspace, true)).collect();
        for (text, id) in vocabulary {
            pieces[id as usize] = Piece::new(&text, metaspace, special(id));
        }
        let fresh = !vb.contains_tensor("weight");
        let table = vb.get((buckets, outputs), "weight")?;
        let optional = |name: &str, size: usize| -> Result<Option<Tensor>> {
            (fresh || vb.contains_tensor(name)).then(|| vb.get(size, name)).transpose()
        };
        let (bias, idf) = (optional("bias", outputs)?, optional("idf", buckets)?);
        Ok(Lexical { table, bias, idf, buckets, pieces })
    }

    /// (batch, outputs): each row's features weighted as TF-IDF weighs them (sublinear
    /// counts times inverse document frequency, the row's vector scaled to length 1),
    /// times their weights in the table, plus the bias. Without `idf`, each feature
    /// occurrence counts 1 / √(occurrences).
    pub fn forward(&self, rows: &[Vec<u32>]) -> Result<Tensor> {
        let features: Vec<Vec<Feature>> = rows.iter().map(|r| self.features(r)).collect();
        let values = self.occurrence_values(&features)?;
        let width = features.iter().map(Vec::len).max().unwrap_or(0).max(1);
        let mut index = Vec::with_capacity(rows.len() * width);
        let mut weight = Vec::with_capacity(rows.len() * width);
        for (row, values) in features.iter().zip(&values) {
            for i in 0..width {
                index.push(row.get(i).map_or(0, |f| f.bucket));
                weight.push(values.get(i).copied().unwrap_or(0.0));
            }
        }
        let device = self.table.device();
        let index = Tensor::from_vec(index, rows.len() * width, device)?;
        let weight = Tensor::from_vec(weight, (rows.len(), width, 1), device)?;
        let picked = self.table.index_select(&index, 0)?.reshape((rows.len(), width, ()))?;
        let logits = picked.broadcast_mul(&weight.to_dtype(picked.dtype())?)?.sum(1)?;
        match &self.bias {
            Some(bias) => logits.broadcast_add(bias),
            None => Ok(logits),
        }
    }

    /// (batch, seq, outputs): each token's part of [`Lexical::forward`] without the
    /// bias — the weights of the n-grams it is in, shared evenly among their tokens —
    /// times `scale[row]`, so that shares add up the way the caller's other shares do.
    /// Padding and special tokens get 0.
    pub fn shares(&self, rows: &[Vec<u32>], seq: usize, scale: &[f32]) -> Result<Tensor> {
        let features: Vec<Vec<Feature>> = rows.iter().map(|r| self.features(r)).collect();
        let values = self.occurrence_values(&features)?;
        // Only the table rows these features use leave the device.
        let weights = gather(&self.table, features.iter().flatten().map(|f| f.bucket).collect())?;
        let outputs = self.table.dim(1)?;
        let mut weights = weights.chunks(outputs.max(1));
        let mut shares = vec![0f32; rows.len() * seq * outputs];
        for (r, (features, values)) in features.iter().zip(&values).enumerate() {
            for ((feature, value), w) in features.iter().zip(values).zip(weights.by_ref()) {
                let part = scale[r] * value / feature.tokens as f32;
                for t in (feature.first..feature.first + feature.tokens).filter(|&t| t < seq) {
                    let at = (r * seq + t) * outputs;
                    shares[at..at + outputs].iter_mut().zip(w).for_each(|(s, w)| *s += part * w);
                }
            }
        }
        Tensor::from_vec(shares, (rows.len(), seq, outputs), self.table.device())
    }

    /// Each feature occurrence's value in its row's vector: a feature seen `tf` times
    /// has value `(1 + ln tf) · idf / norm`, shared evenly by its occurrences.
    fn occurrence_values(&self, features: &[Vec<Feature>]) -> Result<Vec<Vec<f32>>> {
        let Some(idf) = &self.idf else {
            let counts = |row: &Vec<Feature>| vec![1.0 / (row.len().max(1) as f32).sqrt(); row.len()];
            return Ok(features.iter().map(counts).collect());
        };
        let idf = gather(idf, features.iter().flatten().map(|f| f.bucket).collect())?;
        let mut idf = idf.into_iter();
        Ok(features.iter().map(|row| tf_idf(row, idf.by_ref().take(row.len()).collect())).collect())
    }

    /// Smoothed inverse document frequencies of the buckets in `rows` (scikit-learn's
    /// `ln((1 + n) / (1 + df)) + 1`), 0 for buckets in fewer than [`MIN_DOCUMENTS`]:
    /// the `idf` tensor of a lexical part trained on `rows`.
    pub fn inverse_document_frequencies(&self, rows: &[Vec<u32>]) -> Vec<f32> {
        let mut documents = vec![0usize; self.buckets];
        for row in rows {
            let mut seen: Vec<u32> = self.features(row).iter().map(|f| f.bucket).collect();
            seen.sort_unstable();
            seen.dedup();
            seen.into_iter().for_each(|b| documents[b as usize] += 1);
        }
        let n = rows.len() as f32;
        let idf = |df: usize| ((1.0 + n) / (1.0 + df as f32)).ln() + 1.0;
        documents.into_iter().map(|df| if df < MIN_DOCUMENTS { 0.0 } else { idf(df) }).collect()
    }

    /// The hashed character n-grams of a row's words, as scikit-learn's `char_wb`
    /// analyser makes them: each word padded with a space on both sides, 1- to 3-grams
    /// (the lone padding space left out). Repeats count again, as counts do.
    fn features(&self, row: &[u32]) -> Vec<Feature> {
        let mut features = Vec::with_capacity(6 * row.len());
        // The current word: each character with the position of the token it came from.
        let mut word: Vec<(char, usize)> = Vec::new();
        for (position, &token) in row.iter().enumerate() {
            let piece = self.pieces.get(token as usize).filter(|p| !p.special);
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

/// TF-IDF values of one row's feature occurrences, given each occurrence's idf.
fn tf_idf(row: &[Feature], idf: Vec<f32>) -> Vec<f32> {
    // Ordered, so that the norm sums in the same order every time.
    let mut counts: std::collections::BTreeMap<u32, (f32, f32)> = std::collections::BTreeMap::new();
    for (feature, &idf) in row.iter().zip(&idf) {
        counts.entry(feature.bucket).or_insert((0.0, idf)).0 += 1.0;
    }
    let value = |(tf, idf): (f32, f32)| (1.0 + tf.ln()) * idf;
    let norm = counts.values().map(|&c| value(c).powi(2)).sum::<f32>().sqrt();
    let norm = if norm > 0.0 { norm } else { 1.0 };
    row.iter().map(|f| counts[&f.bucket]).map(|c| value(c) / (c.0 * norm)).collect()
}

/// Rows `index` of `tensor` along its first dimension, flattened, as f32 on the host.
fn gather(tensor: &Tensor, index: Vec<u32>) -> Result<Vec<f32>> {
    if index.is_empty() {
        return Ok(Vec::new());
    }
    let length = index.len();
    let index = Tensor::from_vec(index, length, tensor.device())?;
    tensor.index_select(&index, 0)?.to_dtype(candle_core::DType::F32)?.flatten_all()?.to_vec1()
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
    use std::collections::HashMap;

    use candle_core::{DType, Device};
    use candle_nn::VarMap;

    use super::*;
    use crate::model::testing::tiny_folder;

    /// How a test part weighs its features.
    #[derive(Clone, Copy, Debug)]
    enum Saved {
        /// A version saved before `idf` and `bias` existed.
        Counts,
        TfIdf,
    }

    /// A lexical part with random weights (every bucket says something different),
    /// loaded the way a saved version is.
    fn random_part(buckets: usize, outputs: usize, saved: Saved) -> (Lexical, Tokenizer) {
        let tokenizer = tiny_folder().tokenizer;
        crate::model::random::seed(5);
        let normal = |shape: &[usize]| crate::model::random::normal(shape, 1.0, &Device::Cpu).unwrap();
        let mut tensors = HashMap::from([("weight".to_string(), normal(&[buckets, outputs]))]);
        if let Saved::TfIdf = saved {
            tensors.insert("bias".into(), normal(&[outputs]));
            tensors.insert("idf".into(), (normal(&[buckets]).abs().unwrap() + 0.5).unwrap());
        }
        let vb = VarBuilder::from_tensors(tensors, DType::F32, &Device::Cpu);
        (Lexical::load(vb, buckets, outputs, &tokenizer).unwrap(), tokenizer)
    }

    fn ids(tokenizer: &Tokenizer, text: &str) -> Vec<u32> {
        tokenizer.encode(text, true).unwrap().get_ids().to_vec()
    }

    fn logits(part: &Lexical, rows: &[Vec<u32>]) -> Vec<Vec<f32>> {
        part.forward(rows).unwrap().to_vec2().unwrap()
    }

    #[test]
    fn shares_add_up_to_the_logits_without_the_bias() {
        for saved in [Saved::Counts, Saved::TfIdf] {
            let (part, tokenizer) = random_part(97, 3, saved);
            let mut rows: Vec<Vec<u32>> =
                ["배송이 빨라요 👍 빨라요", "색감 good", ""].iter().map(|t| ids(&tokenizer, t)).collect();
            let seq = rows.iter().map(Vec::len).max().unwrap();
            rows.iter_mut().for_each(|r| r.resize(seq, 1));
            let shares = part.shares(&rows, seq, &[1.0; 3]).unwrap().sum(1).unwrap();
            let (shares, logits): (Vec<Vec<f32>>, _) = (shares.to_vec2().unwrap(), logits(&part, &rows));
            let bias = part.bias.as_ref().map_or(vec![0.0; 3], |b| b.to_vec1().unwrap());
            for (row, (s, l)) in shares.iter().zip(&logits).enumerate() {
                for ((s, l), b) in s.iter().zip(l).zip(&bias) {
                    assert!((s + b - l).abs() < 1e-4, "{saved:?} row {row}: {s} + {b} vs {l}");
                }
            }
            assert_eq!(logits[2], bias, "special tokens alone carry no features");
            let empty = part.shares(&[vec![0, 2]], 2, &[1.0]).unwrap();
            assert_eq!(empty.flatten_all().unwrap().to_vec1::<f32>().unwrap(), vec![0.0; 6]);
        }
    }

    #[test]
    fn padding_changes_nothing() {
        for saved in [Saved::Counts, Saved::TfIdf] {
            let (part, tokenizer) = random_part(97, 2, saved);
            let row = ids(&tokenizer, "배송이 빨라요");
            let mut padded = row.clone();
            padded.extend([1, 1, 1]);
            let long = ids(&tokenizer, "배송이 빨라요 색감도 좋아요 재구매 의사 있어요");
            assert_eq!(logits(&part, &[row])[0], logits(&part, &[padded, long])[0], "{saved:?}");
        }
    }

    #[test]
    fn a_rows_tf_idf_vector_has_length_one() {
        let (part, tokenizer) = random_part(1 << 12, 1, Saved::TfIdf);
        let features = part.features(&ids(&tokenizer, "빨라요 빨라요 배송이 😀 good"));
        let values = part.occurrence_values(std::slice::from_ref(&features)).unwrap().remove(0);
        let mut by_bucket: HashMap<u32, f32> = HashMap::new();
        features.iter().zip(values).for_each(|(f, v)| *by_bucket.entry(f.bucket).or_default() += v);
        let length: f32 = by_bucket.values().map(|v| v * v).sum::<f32>().sqrt();
        assert!((length - 1.0).abs() < 1e-5, "{length}");
        assert!(by_bucket.len() < features.len(), "the repeated word's n-grams share buckets");
    }

    #[test]
    fn inverse_document_frequencies_leave_out_features_of_one_review() {
        let (part, tokenizer) = random_part(1 << 16, 1, Saved::TfIdf);
        let rows: Vec<Vec<u32>> =
            ["배송이 빨라요", "배송이 느려요", "배송 👍"].iter().map(|t| ids(&tokenizer, t)).collect();
        let idf = part.inverse_document_frequencies(&rows);
        let bucket = |gram: &str| part.bucket(&gram.chars().map(|c| (c, 0)).collect::<Vec<_>>()) as usize;
        assert_eq!(idf[bucket(" 배송")], 1.0, "in every review");
        assert!((idf[bucket("배송이")] - ((4.0f32 / 3.0).ln() + 1.0)).abs() < 1e-6, "in two of three");
        assert_eq!(idf[bucket("빨")], 0.0, "in one review only");
        assert_eq!(idf[bucket("맛")], 0.0, "in none");
    }

    #[test]
    fn a_fresh_varmap_gets_bias_and_idf_and_an_old_version_loads_without() {
        let tokenizer = tiny_folder().tokenizer;
        let varmap = VarMap::new();
        Lexical::load(VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu), 64, 2, &tokenizer).unwrap();
        let mut names: Vec<String> = varmap.data().lock().unwrap().keys().cloned().collect();
        names.sort();
        assert_eq!(names, ["bias", "idf", "weight"]);
        let (old, _) = random_part(64, 2, Saved::Counts);
        assert!(old.bias.is_none() && old.idf.is_none());
    }

    #[test]
    fn a_masked_word_takes_its_character_ngrams_with_it() {
        let (part, tokenizer) = random_part(1 << 12, 1, Saved::TfIdf);
        let mut masked = ids(&tokenizer, "배송이 빨라요 좋아요");
        let fast = ids(&tokenizer, "빨라요")[1..].to_vec(); // without [CLS]/[SEP]
        let at = masked.windows(fast.len() - 1).position(|w| w == &fast[..fast.len() - 1]).unwrap();
        masked.splice(at..at + fast.len() - 1, [4]);
        let without = ids(&tokenizer, "배송이 좋아요");
        assert!((logits(&part, &[masked])[0][0] - logits(&part, &[without])[0][0]).abs() < 1e-5);
    }

    #[test]
    fn forms_of_one_word_share_their_stem_ngrams() {
        let (part, tokenizer) = random_part(1 << 16, 1, Saved::Counts);
        let buckets = |text: &str| -> std::collections::BTreeSet<u32> {
            part.features(&ids(&tokenizer, text)).iter().map(|f| f.bucket).collect()
        };
        let (subject, topic) = (buckets("배송이"), buckets("배송은"));
        // " 배", "배", "송", "배송", " 배송": the stem's n-grams; the endings differ.
        assert_eq!(subject.intersection(&topic).count(), 5, "{subject:?} {topic:?}");
        assert_eq!(subject.len(), 10);
    }

    /// SentencePiece marks word starts, not continuations: the words rebuilt from an
    /// XLM-R tokenizer's pieces are the text's words, and give the same n-grams as the
    /// words themselves.
    #[test]
    fn sentencepiece_pieces_rebuild_the_words_of_the_text() {
        let folder =
            crate::model::folder::ModelFolder::open(&crate::model::testing::fixture("tiny-xlmr")).unwrap();
        let varmap = VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
        let part = Lexical::load(vb, 1 << 16, 1, &folder.tokenizer).unwrap();
        let text = "배송이 빨라요 색감도 좋아요";
        let encoding = folder.tokenizer.encode(text, true).unwrap();
        assert!(
            encoding.get_tokens().iter().any(|t| !t.starts_with('▁') && t.len() > 1),
            "{:?}",
            encoding.get_tokens()
        );
        let mut got: Vec<u32> = part.features(encoding.get_ids()).iter().map(|f| f.bucket).collect();
        let mut expected = Vec::new();
        for word in text.split(' ') {
            let mut chars: Vec<(char, usize)> = word.chars().map(|c| (c, 0)).collect();
            part.word_features(&mut chars, &mut expected);
        }
        let mut expected: Vec<u32> = expected.iter().map(|f| f.bucket).collect();
        got.sort();
        expected.sort();
        assert_eq!(got, expected);
    }

    #[test]
    fn hashes_are_fixed() {
        let (part, _) = random_part(1 << 12, 1, Saved::TfIdf);
        // A saved table must mean the same wherever it is loaded.
        assert_eq!(part.bucket(&[('배', 0)]), 4);
        assert_eq!(part.bucket(&[(' ', 0), ('배', 0), ('송', 0)]), 799);
    }
}
