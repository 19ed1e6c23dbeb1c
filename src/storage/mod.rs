//! Files every host can read: model versions, bases and rarity models, stored once as
//! *bundles* (a folder's files with a SHA-256 each) and fetched into each host's data
//! dir, which is only a cache.
//!
//! - Where the bytes live: in PostgreSQL by default (`bundle_chunks`, a few MiB a row),
//!   or in an object store (`--storage s3://…` or `file:///…`, the `object_store` crate).
//! - Visibility: a bundle's manifest rows are written in the caller's transaction, the
//!   one that also records what the bundle is for (a version's rows). Another host sees
//!   the whole bundle or nothing; a killed upload leaves no row (and, in an object
//!   store, only objects no manifest names).
//! - The cache: a bundle's folder under the data dir, each file checked against its
//!   manifest's size and SHA-256 whenever the bundle is opened; a missing or corrupted
//!   file is fetched again, to a temporary name renamed into place.

use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use futures_util::StreamExt;
use object_store::ObjectStore;
use sha2::{Digest, Sha256};
use sqlx::{PgConnection, PgPool};

use crate::config::StorageLocation;
use crate::store::bundles::{self, Bundle, StoredFile};

mod folders;

pub use folders::{base_bundle, rarity_bundle, version_bundle};

/// Size of one stored piece (a row in PostgreSQL, a part of a multipart upload).
const PIECE: usize = 4 << 20;

/// Where this process stores and fetches bundles.
#[derive(Clone)]
pub struct Storage {
    pool: PgPool,
    location: StorageLocation,
    objects: Option<(Arc<dyn ObjectStore>, object_store::path::Path)>,
}

/// What storing a folder did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Stored {
    pub bundle_id: i64,
    pub files: usize,
    pub bytes: i64,
    pub seconds: f64,
}

/// What opening a bundle found in the cache and fetched.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Fetched {
    /// Files that were missing or did not match their checksum.
    pub files: usize,
    pub bytes: i64,
    pub seconds: f64,
}

impl Storage {
    pub fn open(pool: &PgPool, location: &StorageLocation) -> anyhow::Result<Storage> {
        let objects = match location {
            StorageLocation::Postgres => None,
            StorageLocation::Objects(url) => Some(object_store_at(url)?),
        };
        Ok(Storage { pool: pool.clone(), location: location.clone(), objects })
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Where bundles go, in words (the worker prints it at start).
    pub fn describe(&self) -> String {
        match &self.location {
            StorageLocation::Postgres => "PostgreSQL (bundle_chunks)".into(),
            StorageLocation::Objects(url) => format!("object store {url}"),
        }
    }

    /// Stores every file under `dir` (hidden ones aside) as bundle `name`, its manifest
    /// written in `tx`. Fails when a bundle of that name exists.
    pub async fn put(&self, tx: &mut PgConnection, name: &str, dir: &Path) -> anyhow::Result<Stored> {
        let started = Instant::now();
        let files = files_under(dir)?;
        let total: u64 = files.iter().map(|(_, size)| size).sum();
        let id = bundles::insert(tx, name, &self.location.to_string(), total as i64)
            .await?
            .ok_or_else(|| anyhow::anyhow!("bundle `{name}` is stored already"))?;
        for (relative, _) in &files {
            let path = dir.join(relative);
            // The bytes first, hashed as they go; the manifest row after them (its key
            // is checked at commit), so each file is read once.
            let (bytes, sha256) = match &self.objects {
                Some(_) => self.put_object(name, relative, &path).await?,
                None => self.put_rows(tx, id, relative, &path).await?,
            };
            let file = StoredFile { path: relative.clone(), bytes: bytes as i64, sha256 };
            bundles::insert_file(tx, id, &file).await?;
        }
        Ok(Stored {
            bundle_id: id,
            files: files.len(),
            bytes: total as i64,
            seconds: started.elapsed().as_secs_f64(),
        })
    }

    async fn put_rows(
        &self,
        tx: &mut PgConnection,
        id: i64,
        relative: &str,
        path: &Path,
    ) -> anyhow::Result<(u64, String)> {
        let mut reader = Pieces::open(path)?;
        let mut seq = 0;
        while let Some(piece) = reader.next_piece()? {
            bundles::insert_chunk(tx, id, relative, seq, piece).await?;
            seq += 1;
        }
        Ok(reader.finish())
    }

    async fn put_object(&self, bundle: &str, relative: &str, path: &Path) -> anyhow::Result<(u64, String)> {
        let (store, prefix) = self.objects.as_ref().expect("an object store");
        let key = object_key(prefix, bundle, relative);
        let mut upload = object_store::WriteMultipart::new(store.put_multipart(&key).await?);
        let mut reader = Pieces::open(path)?;
        while let Some(piece) = reader.next_piece()? {
            upload.wait_for_capacity(4).await?;
            upload.write(piece);
        }
        upload.finish().await.with_context(|| format!("storing {key}"))?;
        Ok(reader.finish())
    }

    /// Stores `dir` as bundle `name` in a transaction of its own, unless a bundle of
    /// that name holds the same files already (`None` then). A stored bundle of that
    /// name with other files is an error: hosts would disagree on what it is.
    pub async fn put_once(&self, name: &str, dir: &Path) -> anyhow::Result<Option<Stored>> {
        if let Some(stored) = self.find(name).await? {
            let mut local = Vec::new();
            for (path, bytes) in files_under(dir)? {
                let sha256 = sha256_of(&dir.join(&path))?;
                local.push(StoredFile { path, bytes: bytes as i64, sha256 });
            }
            anyhow::ensure!(
                bundles::files(&self.pool, stored.id).await? == local,
                "`{name}` is stored already with other files: give this one another name"
            );
            return Ok(None);
        }
        let mut tx = self.pool.begin().await?;
        let stored = self.put(&mut tx, name, dir).await?;
        tx.commit().await?;
        Ok(Some(stored))
    }

    /// Deletes bundle `name` wherever its bytes live (the object store's files first,
    /// then the rows, so a failure leaves a bundle that can be deleted again); its size,
    /// or `None` when no such bundle is stored.
    pub async fn delete(&self, name: &str) -> anyhow::Result<Option<i64>> {
        let Some(bundle) = self.find(name).await? else { return Ok(None) };
        if let Some((store, prefix)) = &self.objects {
            for file in bundles::files(&self.pool, bundle.id).await? {
                let key = object_key(prefix, &bundle.name, &file.path);
                match store.delete(&key).await {
                    Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                    Err(e) => return Err(e).with_context(|| format!("deleting {key}")),
                }
            }
        }
        let mut tx = self.pool.begin().await?;
        bundles::delete(&mut tx, bundle.id).await?;
        tx.commit().await?;
        Ok(Some(bundle.bytes))
    }

    /// The bundle called `name`, if stored.
    pub async fn find(&self, name: &str) -> anyhow::Result<Option<Bundle>> {
        Ok(bundles::by_name(&self.pool, name).await?)
    }

    /// Makes `dir` hold bundle `id`'s files, each checked; fetches those missing or
    /// corrupted.
    pub async fn fetch(&self, id: i64, dir: &Path) -> anyhow::Result<Fetched> {
        let bundle =
            bundles::get(&self.pool, id).await?.ok_or_else(|| anyhow::anyhow!("no stored bundle {id}"))?;
        let manifest = bundles::files(&self.pool, id).await?;
        let started = Instant::now();
        let mut fetched = Fetched::default();
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        for file in &manifest {
            let target = dir.join(safe_relative(&file.path)?);
            // Hashing a model file takes a while: off the async threads.
            let (path, expected) = (target.clone(), file.clone());
            if tokio::task::spawn_blocking(move || matches(&path, &expected)).await?? {
                continue;
            }
            if target.exists() {
                tracing::warn!(path = %target.display(), "cached file does not match its checksum: fetching it again");
            }
            self.download(&bundle, file, &target).await?;
            fetched.files += 1;
            fetched.bytes += file.bytes;
        }
        fetched.seconds = started.elapsed().as_secs_f64();
        Ok(fetched)
    }

    async fn download(&self, bundle: &Bundle, file: &StoredFile, target: &Path) -> anyhow::Result<()> {
        let parent = target.parent().expect("a file in a folder");
        std::fs::create_dir_all(parent)?;
        let mut sink = Sink::create(parent)?;
        if bundle.location == StorageLocation::Postgres.to_string() {
            bundles::read_chunks(&self.pool, bundle.id, &file.path, &mut |data| sink.write(data)).await?;
        } else {
            let (store, prefix) = match &self.objects {
                Some(objects) if self.location.to_string() == bundle.location => objects,
                _ => anyhow::bail!(
                    "bundle `{}` is stored in {}, but this host's storage is {}: start it with --storage {}",
                    bundle.name,
                    bundle.location,
                    self.location,
                    bundle.location
                ),
            };
            let key = object_key(prefix, &bundle.name, &file.path);
            let mut stream = store.get(&key).await.with_context(|| format!("fetching {key}"))?.into_stream();
            while let Some(data) = stream.next().await {
                sink.write(&data?)?;
            }
        }
        sink.finish(file, target)
    }
}

/// An object store from a URL; S3 reads the usual `AWS_*` variables.
fn object_store_at(url: &str) -> anyhow::Result<(Arc<dyn ObjectStore>, object_store::path::Path)> {
    let parsed = url::Url::parse(url).with_context(|| format!("storage URL `{url}`"))?;
    let env = std::env::vars().map(|(k, v)| (k.to_ascii_lowercase(), v));
    let (store, prefix) = object_store::parse_url_opts(&parsed, env)
        .with_context(|| format!("cannot open object store {url}"))?;
    Ok((Arc::from(store), prefix))
}

fn object_key(prefix: &object_store::path::Path, bundle: &str, relative: &str) -> object_store::path::Path {
    let mut key = prefix.clone();
    for part in bundle.split('/').chain(relative.split('/')) {
        key = key.child(part);
    }
    key
}

/// Relative `/`-separated paths and sizes of the files under `dir`, hidden ones (a
/// writer's `.owner`, temporary files) left out, sorted.
fn files_under(dir: &Path) -> anyhow::Result<Vec<(String, u64)>> {
    let mut out = Vec::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(relative) = stack.pop() {
        let entries = std::fs::read_dir(dir.join(&relative))
            .with_context(|| format!("cannot read {}", dir.display()))?;
        for entry in entries {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') {
                continue;
            }
            let kind = entry.file_type()?;
            if kind.is_dir() {
                stack.push(relative.join(&name));
            } else if kind.is_file() {
                let path = relative.join(&name);
                let parts: Vec<String> = path.iter().map(|p| p.to_string_lossy().into_owned()).collect();
                out.push((parts.join("/"), entry.metadata()?.len()));
            }
        }
    }
    out.sort();
    Ok(out)
}

/// A manifest's path as a relative path that stays inside the bundle's folder.
fn safe_relative(path: &str) -> anyhow::Result<PathBuf> {
    let relative = PathBuf::from(path);
    let inside = relative.components().all(|c| matches!(c, Component::Normal(_)));
    anyhow::ensure!(inside && !path.is_empty(), "stored path `{path}` would leave its folder");
    Ok(relative)
}

/// Whether the cached file is there with the manifest's size and checksum.
fn matches(path: &Path, file: &StoredFile) -> anyhow::Result<bool> {
    match std::fs::metadata(path) {
        Ok(meta) if meta.len() == file.bytes as u64 => Ok(sha256_of(path)? == file.sha256),
        Ok(_) => Ok(false),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e.into()),
    }
}

fn sha256_of(path: &Path) -> anyhow::Result<String> {
    let mut pieces = Pieces::open(path)?;
    while pieces.next_piece()?.is_some() {}
    Ok(pieces.finish().1)
}

/// A file read a piece at a time, hashed as it goes.
struct Pieces {
    file: std::fs::File,
    buffer: Vec<u8>,
    hasher: Sha256,
    bytes: u64,
}

impl Pieces {
    fn open(path: &Path) -> anyhow::Result<Pieces> {
        let file = std::fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
        Ok(Pieces { file, buffer: vec![0; PIECE], hasher: Sha256::new(), bytes: 0 })
    }

    fn next_piece(&mut self) -> anyhow::Result<Option<&[u8]>> {
        use std::io::Read;
        let mut filled = 0;
        while filled < PIECE {
            let n = self.file.read(&mut self.buffer[filled..])?;
            if n == 0 {
                break;
            }
            filled += n;
        }
        if filled == 0 {
            return Ok(None);
        }
        self.hasher.update(&self.buffer[..filled]);
        self.bytes += filled as u64;
        Ok(Some(&self.buffer[..filled]))
    }

    /// Bytes read and their SHA-256 (hex).
    fn finish(self) -> (u64, String) {
        (self.bytes, hex(&self.hasher.finalize()))
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A download to a temporary file beside its target, checked before it takes the
/// target's name.
struct Sink {
    file: std::io::BufWriter<tempfile::NamedTempFile>,
    hasher: Sha256,
    bytes: u64,
}

impl Sink {
    fn create(dir: &Path) -> anyhow::Result<Sink> {
        let file = tempfile::Builder::new().prefix(".fetch-").tempfile_in(dir)?;
        Ok(Sink { file: std::io::BufWriter::new(file), hasher: Sha256::new(), bytes: 0 })
    }

    fn write(&mut self, data: &[u8]) -> std::io::Result<()> {
        use std::io::Write;
        self.hasher.update(data);
        self.bytes += data.len() as u64;
        self.file.write_all(data)
    }

    fn finish(self, expected: &StoredFile, target: &Path) -> anyhow::Result<()> {
        let sha256 = hex(&self.hasher.finalize());
        anyhow::ensure!(
            self.bytes == expected.bytes as u64 && sha256 == expected.sha256,
            "stored file {} is damaged: {} bytes with SHA-256 {sha256}, its manifest says {} bytes, {}",
            expected.path,
            self.bytes,
            expected.bytes,
            expected.sha256
        );
        let file = self.file.into_inner().map_err(|e| e.into_error())?;
        file.as_file().sync_all()?;
        file.persist(target).with_context(|| format!("cannot write {}", target.display()))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stored_path_cannot_leave_its_folder() {
        assert!(safe_relative("keyword/model.safetensors").is_ok());
        for bad in ["../x", "/etc/passwd", "keyword/../../x", "", "./x"] {
            assert!(safe_relative(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn hidden_files_are_not_part_of_a_bundle() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("keyword")).unwrap();
        std::fs::write(dir.path().join("keyword/config.json"), "{}").unwrap();
        std::fs::write(dir.path().join(".owner"), "host:1").unwrap();
        std::fs::write(dir.path().join("README.md"), "리뷰").unwrap();
        let files = files_under(dir.path()).unwrap();
        assert_eq!(files, vec![("README.md".to_string(), 6), ("keyword/config.json".to_string(), 2)]);
    }

    #[test]
    fn pieces_hash_a_file_as_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big");
        let data: Vec<u8> = (0..PIECE * 2 + 17).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &data).unwrap();
        let mut pieces = Pieces::open(&path).unwrap();
        let mut lengths = Vec::new();
        while let Some(piece) = pieces.next_piece().unwrap() {
            lengths.push(piece.len());
        }
        assert_eq!(lengths, vec![PIECE, PIECE, 17]);
        assert_eq!(pieces.finish(), (data.len() as u64, hex(&Sha256::digest(&data))));
    }
}
