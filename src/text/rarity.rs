//! How unusual a review's text is, against the first training set: a SentencePiece
//! unigram model trained once on that set (the seed's method), loaded with the
//! `sentencepiece` crate. A review made of unknown or late (rare) pieces is one the
//! models have seen little like.
//!
//! Training runs Debian's `spm_train` (package `sentencepiece`): the crate only wraps
//! the encoder, and the command is the reference trainer.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::Context;
use sentencepiece::SentencePieceProcessor;

/// Pieces from this share of the vocabulary on count as rare.
const LATE_SHARE: f32 = 0.8;

pub struct RarityModel {
    processor: SentencePieceProcessor,
    unk: u32,
    late_from: u32,
}

/// Where a taxonomy keeps its rarity model, beside its version folders: a folder of its
/// own (hidden, so no version name can clash with it), stored and fetched as a whole.
pub fn model_path(models_dir: &Path, taxonomy: &str) -> PathBuf {
    models_dir.join(taxonomy).join(".rarity").join("rarity.model")
}

/// Trains a unigram model on `texts` and writes it to `path` (via a temporary name, so
/// a failed run leaves nothing). The vocabulary is a soft limit: small corpora get less.
pub fn train<'a>(texts: impl Iterator<Item = &'a str>, path: &Path, vocab_size: usize) -> anyhow::Result<()> {
    let dir = path.parent().context("rarity model path has no folder")?;
    std::fs::create_dir_all(dir)?;
    // A scratch folder beside the model, removed when dropped.
    let work = tempfile::Builder::new().prefix(".rarity-").tempdir_in(dir)?;
    let corpus = work.path().join("corpus.txt");
    let mut file = std::io::BufWriter::new(std::fs::File::create(&corpus)?);
    let mut lines = 0;
    for text in texts {
        let line = text.replace(['\n', '\r'], " ");
        if !line.trim().is_empty() {
            writeln!(file, "{}", line.trim())?;
            lines += 1;
        }
    }
    file.flush()?;
    drop(file);
    anyhow::ensure!(lines > 0, "no text to train the rarity model on");
    let prefix = work.path().join("spm");
    let output = Command::new("spm_train")
        // `cargo test` and `cargo run` point this at build folders, one of which holds the
        // newer libsentencepiece built for the crate: Debian's spm_train must not load it.
        .env_remove("LD_LIBRARY_PATH")
        .arg(format!("--input={}", corpus.display()))
        .arg(format!("--model_prefix={}", prefix.display()))
        .arg(format!("--vocab_size={vocab_size}"))
        .args(["--model_type=unigram", "--hard_vocab_limit=false", "--character_coverage=0.9995"])
        .args(["--num_threads=2", "--minloglevel=2"])
        .output()
        .context("cannot run spm_train: install Debian's `sentencepiece` package")?;
    anyhow::ensure!(
        output.status.success(),
        "spm_train failed: {}",
        String::from_utf8_lossy(&output.stderr).trim()
    );
    std::fs::rename(prefix.with_extension("model"), path)?;
    Ok(())
}

impl RarityModel {
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let processor = SentencePieceProcessor::open(path)
            .with_context(|| format!("cannot load the rarity model {}", path.display()))?;
        let unk = processor.unk_id();
        let late_from = (processor.len() as f32 * LATE_SHARE) as u32;
        Ok(RarityModel { processor, unk, late_from })
    }

    pub fn pieces(&self, text: &str) -> Vec<u32> {
        self.processor.encode(text).map(|p| p.into_iter().map(|p| p.id).collect()).unwrap_or_default()
    }

    /// [`rare_tokens`] of the review's pieces.
    pub fn score(&self, text: &str) -> f32 {
        rare_tokens(&self.pieces(text), self.unk, self.late_from)
    }
}

/// Unknown pieces weigh this much more than rare ones: the tokenizer has never seen them.
const UNKNOWN_WEIGHT: f32 = 2.0;

/// Share of a review's SentencePiece pieces that are unknown (`unk`) or late in the
/// vocabulary (`id >= late_from`; a unigram model orders pieces by frequency, so late
/// ones are rare in the data it was trained on), unknown pieces counting double.
pub fn rare_tokens(pieces: &[u32], unk: u32, late_from: u32) -> f32 {
    if pieces.is_empty() {
        return 0.0;
    }
    let weight: f32 = pieces
        .iter()
        .map(|&p| {
            if p == unk {
                UNKNOWN_WEIGHT
            } else if p >= late_from {
                1.0
            } else {
                0.0
            }
        })
        .sum();
    weight / pieces.len() as f32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rare_tokens_counts_unknown_pieces_double() {
        let (unk, late) = (0, 800);
        let common = rare_tokens(&[10, 20, 30, 40], unk, late);
        let one_rare = rare_tokens(&[10, 20, 900, 40], unk, late);
        let one_unknown = rare_tokens(&[10, 20, 0, 40], unk, late);
        assert_eq!(common, 0.0);
        assert!((one_rare - 0.25).abs() < 1e-6);
        assert!((one_unknown - 0.5).abs() < 1e-6);
        assert_eq!(rare_tokens(&[], unk, late), 0.0);
    }

    fn corpus() -> Vec<String> {
        let base = [
            "배송이 빨라요 색상도 예뻐요",
            "사이즈가 잘 맞아요 배송 빨라요",
            "품질이 좋아요 가격도 착해요",
            "색상이 사진이랑 같아요 예뻐요",
            "배송은 느렸지만 품질은 좋아요",
        ];
        (0..200)
            .map(|i| format!("{} {}", base[i % base.len()], ["정말", "아주", "너무", "진짜"][i % 4]))
            .collect()
    }

    #[test]
    fn unseen_text_scores_higher_than_familiar_text() {
        let dir = std::env::temp_dir().join(format!("rarity-test-{}", uuid::Uuid::new_v4().simple()));
        let path = model_path(&dir, "fashion");
        let texts = corpus();
        train(texts.iter().map(String::as_str), &path, 60).unwrap();
        let model = RarityModel::load(&path).unwrap();
        let familiar = model.score("배송이 빨라요 색상도 예뻐요");
        let unseen = model.score("🧵 봉제선 마감처리 엉망 ㅠㅠ Zipper broken");
        assert!(unseen > familiar, "unseen {unseen} vs familiar {familiar}");
        assert_eq!(model.score(""), 0.0);
        let folder = path.parent().unwrap();
        assert!(
            !folder.read_dir().unwrap().any(|e| e.unwrap().file_name() != "rarity.model"),
            "scratch files left"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_missing_model_is_a_clear_error() {
        let err = RarityModel::load(Path::new("/nonexistent/rarity.model")).err().unwrap();
        assert!(format!("{err:#}").contains("cannot load the rarity model"));
    }

    #[test]
    fn training_without_text_fails_and_leaves_nothing() {
        let dir = std::env::temp_dir().join(format!("rarity-empty-{}", uuid::Uuid::new_v4().simple()));
        let path = model_path(&dir, "t");
        assert!(train(["", "  "].into_iter(), &path, 50).is_err());
        assert!(!path.exists());
        assert_eq!(std::fs::read_dir(path.parent().unwrap()).unwrap().count(), 0);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
