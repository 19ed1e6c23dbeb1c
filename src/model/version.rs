//! Trained model versions on disk: a folder per model in the Hugging Face layout plus
//! `labels.json`, `metrics.json` and a short model card, written to a temporary folder
//! and renamed into place so that no half-written version is ever visible.

use std::path::{Path, PathBuf};

use anyhow::Context;
use candle_nn::VarMap;
use serde::{Deserialize, Serialize};
use tokenizers::Tokenizer;

use super::encoder::Config;
use crate::names::SafeName;

/// What the classifier's outputs mean, saved as `labels.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Labels {
    /// `keyword` or `sentiment`.
    pub kind: String,
    pub taxonomy: String,
    pub keywords: Vec<String>,
    /// Decision threshold per keyword (keyword models).
    #[serde(default)]
    pub thresholds: Vec<f32>,
    pub scale_min: i16,
    pub scale_max: i16,
    /// How the sentiment model reads review + keyword.
    #[serde(default)]
    pub sentiment_input: Option<super::inputs::SentimentInput>,
    /// How the classifier pools the encoder's states (first token when absent).
    #[serde(default)]
    pub pooling: super::classifier::Pooling,
    /// Hashed features of the classifier's lexical part (none when absent).
    #[serde(default)]
    pub lexical_buckets: usize,
    /// Encoder layers (with the embeddings) kept as the base had them in training: a
    /// fast-mode model, whose lower states a simulation computes once
    /// (`model::features`). 0 when the whole encoder was trained.
    #[serde(default)]
    pub frozen_layers: usize,
}

impl Labels {
    /// Keywords or levels the classifier scores.
    pub fn outputs(&self) -> usize {
        match self.kind.as_str() {
            "keyword" => self.keywords.len(),
            _ => (self.scale_max - self.scale_min + 1) as usize,
        }
    }

    /// What sits on the encoder, for inference.
    pub fn head(&self) -> super::classifier::Head {
        super::classifier::Head {
            outputs: self.outputs(),
            dropout: 0.0,
            pooling: self.pooling,
            lexical_buckets: self.lexical_buckets,
        }
    }
}

/// One model of a version, ready to write.
pub struct ModelFiles<'a> {
    pub subdir: &'a str,
    pub varmap: &'a VarMap,
    pub config: &'a Config,
    pub tokenizer: &'a Tokenizer,
    pub labels: &'a Labels,
    pub metrics: &'a serde_json::Value,
    pub card: String,
}

/// A version folder being written; dropped without `commit`, it removes itself.
pub struct PendingVersion {
    temp: PathBuf,
    target: PathBuf,
    committed: bool,
}

impl PendingVersion {
    /// Starts `models_dir/taxonomy/name`. Both names are checked (`SafeName`) and the
    /// folders resolved inside the data dir, whoever asks (CLI, web form, job): a name
    /// that could lead elsewhere is refused before anything is written.
    pub fn start(models_dir: &Path, taxonomy: &str, name: &str) -> anyhow::Result<Self> {
        let parent = SafeName::parse(taxonomy)?.under(models_dir)?;
        let target = SafeName::parse(name)?.under(&parent)?;
        anyhow::ensure!(!target.exists(), "model version {} already exists", target.display());
        let temp = parent.join(format!("{PARTIAL}{name}-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&temp).with_context(|| format!("cannot create {}", temp.display()))?;
        // Who is writing it: a process killed mid-training cannot remove its own folder.
        std::fs::write(temp.join(OWNER), crate::config::this_process())?;
        Ok(PendingVersion { temp, target, committed: false })
    }

    /// The (new) folder of one model of the version, for writers of their own files.
    pub fn model_dir(&self, subdir: &str) -> anyhow::Result<PathBuf> {
        let dir = self.temp.join(subdir);
        std::fs::create_dir_all(&dir)?;
        Ok(dir)
    }

    /// `metrics.json` and the model card of one model.
    pub fn write_report(&self, subdir: &str, metrics: &serde_json::Value, card: &str) -> anyhow::Result<()> {
        let dir = self.model_dir(subdir)?;
        std::fs::write(dir.join("metrics.json"), serde_json::to_string_pretty(metrics)?)?;
        std::fs::write(dir.join("README.md"), card)?;
        Ok(())
    }

    pub fn write(&self, files: &ModelFiles) -> anyhow::Result<()> {
        let dir = self.model_dir(files.subdir)?;
        files.varmap.save(dir.join("model.safetensors"))?;
        let mut config = serde_json::to_value(files.config)?;
        config["architectures"] = serde_json::json!(["RobertaForSequenceClassification"]);
        std::fs::write(dir.join("config.json"), serde_json::to_string_pretty(&config)?)?;
        files
            .tokenizer
            .save(dir.join("tokenizer.json"), false)
            .map_err(|e| anyhow::anyhow!("saving tokenizer: {e}"))?;
        std::fs::write(dir.join("labels.json"), serde_json::to_string_pretty(files.labels)?)?;
        self.write_report(files.subdir, files.metrics, &files.card)
    }

    /// Moves the finished folder into place and returns its path.
    pub fn commit(mut self) -> anyhow::Result<PathBuf> {
        std::fs::remove_file(self.temp.join(OWNER))?;
        std::fs::rename(&self.temp, &self.target)
            .with_context(|| format!("cannot move {} to {}", self.temp.display(), self.target.display()))?;
        self.committed = true;
        Ok(self.target.clone())
    }
}

const PARTIAL: &str = ".partial-";
const OWNER: &str = ".owner";

/// Removes version folders left half-written by processes of this host that no longer
/// run (killed mid-training). Folders of other hosts sharing the folder are theirs to
/// judge. Returns how many were removed.
pub fn remove_abandoned(models_dir: &Path) -> usize {
    let host = crate::config::this_process().split(':').next().unwrap_or_default().to_string();
    let taxonomies = std::fs::read_dir(models_dir).into_iter().flatten().flatten();
    let partials = taxonomies
        .flat_map(|t| std::fs::read_dir(t.path()).into_iter().flatten().flatten())
        .filter(|e| e.file_name().to_string_lossy().starts_with(PARTIAL));
    let mut removed = 0;
    for entry in partials {
        let owner = std::fs::read_to_string(entry.path().join(OWNER)).unwrap_or_default();
        let Some((owner_host, pid)) = owner.trim().rsplit_once(':') else { continue };
        let dead = owner_host == host && !Path::new("/proc").join(pid).exists();
        if dead && std::fs::remove_dir_all(entry.path()).is_ok() {
            removed += 1;
        }
    }
    removed
}

impl Drop for PendingVersion {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_dir_all(&self.temp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_version_name_that_could_lead_outside_the_data_dir_is_refused_and_nothing_written() {
        let root = std::env::temp_dir().join(format!("versions-{}", uuid::Uuid::new_v4().simple()));
        let outside = std::env::temp_dir().join(format!("outside-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&root).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::os::unix::fs::symlink(&outside, root.join("linked")).unwrap();
        let long = "v".repeat(300);
        let outside_str = outside.display().to_string();
        for (taxonomy, name) in [
            ("fashion", "../../escaped"),
            ("..", "v1"),
            ("fashion", outside_str.as_str()),
            ("/etc", "v1"),
            ("fashion", "v\0x"),
            ("fashion", "v1\0"),
            ("fashion", long.as_str()),
            ("linked", "v1"),
        ] {
            let error = PendingVersion::start(&root, taxonomy, name).err();
            assert!(error.is_some(), "{taxonomy}/{name:?} was accepted");
            let message = error.unwrap().to_string();
            assert!(message.contains("not a valid name") || message.contains("leads outside"), "{message}");
        }
        assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 0, "nothing written outside");
        let written: Vec<_> = std::fs::read_dir(&root).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(written, ["linked"], "nothing written inside either");
        std::fs::remove_dir_all(&root).unwrap();
        std::fs::remove_dir_all(&outside).unwrap();
    }

    #[test]
    fn folders_of_dead_writers_are_removed_and_live_ones_kept() {
        let root = std::env::temp_dir().join(format!("versions-{}", uuid::Uuid::new_v4().simple()));
        let live = PendingVersion::start(&root, "fashion", "live").unwrap();
        let dead = root.join("fashion").join(format!("{PARTIAL}dead-1"));
        std::fs::create_dir_all(&dead).unwrap();
        let host = crate::config::this_process().split(':').next().unwrap().to_string();
        // No process has this pid: the kernel's limit is below it.
        std::fs::write(dead.join(OWNER), format!("{host}:4999999")).unwrap();
        let elsewhere = root.join("fashion").join(format!("{PARTIAL}other-host"));
        std::fs::create_dir_all(&elsewhere).unwrap();
        std::fs::write(elsewhere.join(OWNER), "another-host:1").unwrap();
        assert_eq!(remove_abandoned(&root), 1);
        assert!(!dead.exists() && elsewhere.exists() && live.temp.exists());
        drop(live);
        std::fs::remove_dir_all(root).unwrap();
    }
}
