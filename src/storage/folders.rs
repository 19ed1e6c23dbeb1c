//! What each kind of bundle is called, and where a version's bundle lives in a host's
//! cache (the folder its trainer wrote: `<data dir>/<taxonomy>/<name>`).

use std::path::{Path, PathBuf};

use super::{safe_relative, Fetched, Storage};
use crate::store::models::ModelVersion;

pub fn version_bundle(taxonomy: &str, name: &str) -> String {
    format!("version/{taxonomy}/{name}")
}

pub fn base_bundle(name: &str) -> String {
    format!("base/{name}")
}

pub fn rarity_bundle(taxonomy: &str) -> String {
    format!("rarity/{taxonomy}")
}

impl Storage {
    /// The local folder of a version (`keyword/`, `sentiment/`), fetched and checked
    /// against its manifest when the version is stored.
    pub async fn version_dir(&self, models_dir: &Path, version: &ModelVersion) -> anyhow::Result<PathBuf> {
        Ok(self.open_version(models_dir, version).await?.0)
    }

    /// The version's local folder and what had to be fetched into it.
    pub async fn open_version(
        &self,
        models_dir: &Path,
        version: &ModelVersion,
    ) -> anyhow::Result<(PathBuf, Fetched)> {
        let dir = local_dir(models_dir, version)?;
        let fetched = match version.bundle_id {
            Some(id) => self.fetch(id, &dir).await?,
            None => Fetched::default(),
        };
        Ok((dir, fetched))
    }
}

/// `path` is the keyword model's folder: relative to the data dir for versions in
/// shared storage, absolute (the trainer's own disk) for those from before.
fn local_dir(models_dir: &Path, version: &ModelVersion) -> anyhow::Result<PathBuf> {
    let path = Path::new(&version.path);
    let model =
        if path.is_absolute() { path.to_path_buf() } else { models_dir.join(safe_relative(&version.path)?) };
    Ok(model.parent().map(Path::to_path_buf).unwrap_or(model))
}
