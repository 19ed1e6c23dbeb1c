//! Pretrained encoders ("bases") that training starts from, kept under the data dir's
//! `base/`: each an ordinary Hugging Face folder plus `base.json`, which says where it
//! came from, its licence and what was done to it (conversion, trimming,
//! pre-training), and a README card for people. Nothing is ever downloaded from a
//! hub: a base is imported from a file a package registry ships (`import`), copied in
//! by hand (klue/roberta-base), or made here from another (`trim`, `train::pretrain`).
//!
//! The default base is `REVIEWLOOP_BASE` (a name, or `none`), else `base/default`
//! (a link to one of the others) when it exists.

pub mod e5s1;
pub mod import;
pub mod trim;

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::model::folder::ModelFolder;
use crate::names::SafeName;
use crate::storage::{Storage, Stored};

/// Stores a base (imported, trimmed or pre-trained here) for every host; `None` when
/// the same files are stored already.
pub async fn store(storage: &Storage, data_dir: &Path, name: &SafeName) -> anyhow::Result<Option<Stored>> {
    let dir = resolve(data_dir, name)?;
    storage.put_once(&crate::storage::base_bundle(name.as_str()), &dir).await
}

/// Fetches a stored base into this host's data dir, or checks the copy there; a base
/// that is not stored must be on this host already.
pub async fn fetch(storage: &Storage, data_dir: &Path, name: &SafeName) -> anyhow::Result<PathBuf> {
    if let Some(bundle) = storage.find(&crate::storage::base_bundle(name.as_str())).await? {
        let fetched = storage.fetch(bundle.id, &name.under(&root(data_dir))?).await?;
        if fetched.files > 0 {
            tracing::info!(base = %name, files = fetched.files, bytes = fetched.bytes, "base fetched from storage");
        }
    }
    resolve(data_dir, name)
}

/// Where a base came from, saved as `base.json`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Origin {
    /// What the weights are, for people (e.g. "intfloat/multilingual-e5-small").
    pub source: String,
    pub licence: String,
    /// What was done to reach this folder, oldest first.
    #[serde(default)]
    pub steps: Vec<String>,
}

pub const ORIGIN_FILE: &str = "base.json";
pub const DEFAULT_LINK: &str = "default";
/// Set to a base name, or `none` to train from scratch whatever is on disk.
pub const BASE_ENV: &str = "REVIEWLOOP_BASE";

/// A base on disk, as `base list` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct BaseInfo {
    pub name: String,
    pub model_type: String,
    pub layers: usize,
    pub hidden: usize,
    /// Pieces of its tokenizer.
    pub vocabulary: usize,
    pub parameters: usize,
    /// Bytes of its files.
    pub bytes: u64,
    pub source: String,
    pub licence: String,
    pub steps: Vec<String>,
    pub is_default: bool,
}

pub fn root(data_dir: &Path) -> PathBuf {
    data_dir.join("base")
}

/// The folder of base `name`, which must exist and be a model folder under `base/`.
pub fn resolve(data_dir: &Path, name: &SafeName) -> anyhow::Result<PathBuf> {
    let dir = name.under(&root(data_dir))?;
    anyhow::ensure!(
        dir.join("config.json").is_file(),
        "no base `{name}` under {} (`reviewloop base list` shows them)",
        root(data_dir).display()
    );
    Ok(dir)
}

/// The name of the default base, if there is one: `REVIEWLOOP_BASE`, else the base the
/// `default` link points to.
pub fn default_name(data_dir: &Path) -> anyhow::Result<Option<SafeName>> {
    if let Ok(chosen) = std::env::var(BASE_ENV) {
        if chosen.is_empty() || chosen == "none" {
            return Ok(None);
        }
        let name = SafeName::parse(&chosen).with_context(|| BASE_ENV.to_string())?;
        resolve(data_dir, &name).with_context(|| format!("{BASE_ENV}={chosen}"))?;
        return Ok(Some(name));
    }
    let link = root(data_dir).join(DEFAULT_LINK);
    let Ok(target) = std::fs::read_link(&link) else { return Ok(None) };
    let name = target.file_name().and_then(|n| n.to_str()).map(SafeName::parse).transpose()?;
    Ok(name.filter(|n| resolve(data_dir, n).is_ok()))
}

/// Makes `name` the default base (`base/default` → `name`).
pub fn set_default(data_dir: &Path, name: &SafeName) -> anyhow::Result<()> {
    resolve(data_dir, name)?;
    let link = root(data_dir).join(DEFAULT_LINK);
    if link.symlink_metadata().is_ok() {
        std::fs::remove_file(&link).with_context(|| format!("cannot replace {}", link.display()))?;
    }
    std::os::unix::fs::symlink(name.as_str(), &link)
        .with_context(|| format!("cannot link {}", link.display()))?;
    Ok(())
}

/// Every base under `base/`, by name.
pub fn list(data_dir: &Path) -> anyhow::Result<Vec<BaseInfo>> {
    let default = default_name(data_dir).ok().flatten();
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(root(data_dir)) else { return Ok(out) };
    for entry in entries.flatten() {
        let Some(name) = entry.file_name().to_str().and_then(|n| SafeName::parse(n).ok()) else { continue };
        let is_link = entry.file_type().is_ok_and(|t| t.is_symlink());
        if is_link || !entry.path().join("config.json").is_file() {
            continue;
        }
        let mut info = describe(&entry.path()).with_context(|| format!("base {name}"))?;
        info.is_default = default.as_ref() == Some(&name);
        out.push(info);
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// What a base folder holds.
pub fn describe(dir: &Path) -> anyhow::Result<BaseInfo> {
    let folder = ModelFolder::open(dir)?;
    let origin: Origin = std::fs::read_to_string(dir.join(ORIGIN_FILE))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_else(|| Origin { source: "unknown (no base.json)".into(), ..Default::default() });
    let bytes = std::fs::read_dir(dir)?.flatten().filter_map(|e| e.metadata().ok()).map(|m| m.len()).sum();
    Ok(BaseInfo {
        name: dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
        model_type: folder.config.model_type.clone(),
        layers: folder.config.num_hidden_layers,
        hidden: folder.config.hidden_size,
        vocabulary: folder.tokenizer.get_vocab_size(true),
        parameters: parameters(&folder.weights_path())?,
        bytes,
        source: origin.source,
        licence: origin.licence,
        steps: origin.steps,
        is_default: false,
    })
}

/// Values in a safetensors file, from its header alone.
pub fn parameters(path: &Path) -> anyhow::Result<usize> {
    let shapes = crate::model::folder::safetensor_shapes(path).map_err(anyhow::Error::msg)?;
    Ok(shapes.iter().map(|(_, shape)| shape.iter().product::<usize>()).sum())
}

/// A folder being written under `base/`: renamed into place by `commit`, removed when
/// dropped before that.
pub struct PendingBase {
    temp: PathBuf,
    target: PathBuf,
    committed: bool,
}

impl PendingBase {
    pub fn start(data_dir: &Path, name: &SafeName) -> anyhow::Result<Self> {
        let target = name.under(&root(data_dir))?;
        anyhow::ensure!(
            target.symlink_metadata().is_err(),
            "base {name} already exists: pick another --name"
        );
        let temp = root(data_dir).join(format!(".partial-{name}-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&temp).with_context(|| format!("cannot create {}", temp.display()))?;
        Ok(PendingBase { temp, target, committed: false })
    }

    pub fn dir(&self) -> &Path {
        &self.temp
    }

    /// Writes `base.json` and a card, then moves the folder into place.
    pub fn commit(mut self, origin: &Origin, card: &str) -> anyhow::Result<PathBuf> {
        std::fs::write(self.temp.join(ORIGIN_FILE), serde_json::to_string_pretty(origin)?)?;
        std::fs::write(self.temp.join("README.md"), card)?;
        std::fs::rename(&self.temp, &self.target)
            .with_context(|| format!("cannot move {} to {}", self.temp.display(), self.target.display()))?;
        self.committed = true;
        Ok(self.target.clone())
    }
}

impl Drop for PendingBase {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_dir_all(&self.temp);
        }
    }
}
