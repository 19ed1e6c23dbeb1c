//! Retention: old versions pruned by a rule, so a loop that retrains every few hundred
//! labels does not fill the disk. A version is kept when it serves, is the one a
//! rollback would serve again, is among the last K made, is pinned, or is named by a
//! job that has not ended (a queued comparison, a distillation's teacher); the others lose their files — the stored bundle in
//! PostgreSQL or the object store, and this host's cached folder — and keep their rows
//! with status `pruned` (their metrics stay on the versions page, and what predictions
//! and rounds point at stays valid). Other hosts' caches of a pruned version are only
//! caches: nothing opens a pruned version again.

use std::path::Path;

use sqlx::PgPool;

use crate::storage::{version_bundle, Storage};

/// How many of the newest versions to keep beside the serving and pinned ones.
pub const KEEP_LAST: usize = 3;

/// A version the rule prunes, with the bytes its stored bundle holds.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Prunable {
    pub name: String,
    pub bytes: i64,
}

/// What pruning did (or, on a dry run, would do).
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Pruned {
    pub versions: Vec<String>,
    /// Stored bytes freed (the bundles; each host's cached folder comes on top).
    pub stored_bytes: i64,
    /// Bytes of this host's cached folders removed.
    pub cached_bytes: u64,
}

/// The versions of `taxonomy_id` the rule prunes, oldest first.
pub async fn plan(pool: &PgPool, taxonomy_id: i64, keep_last: usize) -> sqlx::Result<Vec<Prunable>> {
    let rollback = crate::store::models::promoted_before(&mut *pool.acquire().await?, taxonomy_id).await?;
    sqlx::query_as::<_, (String, i64)>(
        "WITH versions AS (
             SELECT name, max(created_at) AS made, bool_or(status = 'active') AS serving,
                    bool_or(pinned) AS pinned, bool_and(status IN ('ready', 'retired')) AS finished,
                    max(bundle_id) AS bundle_id
             FROM model_versions WHERE taxonomy_id = $1 AND status <> 'pruned' GROUP BY name),
         ranked AS (SELECT *, row_number() OVER (ORDER BY made DESC) AS newest FROM versions)
         SELECT r.name, coalesce(b.bytes, 0) FROM ranked r LEFT JOIN bundles b ON b.id = r.bundle_id
         WHERE NOT r.serving AND NOT r.pinned AND r.finished AND r.newest > $2
           AND r.name IS DISTINCT FROM $3
           AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.status IN ('queued', 'running')
                           AND jsonb_path_exists(j.payload, '$.** ? (@ == $name)', jsonb_build_object('name', r.name)))
         ORDER BY r.made",
    )
    .bind(taxonomy_id)
    .bind(keep_last as i64)
    .bind(rollback)
    .fetch_all(pool)
    .await
    .map(|rows| rows.into_iter().map(|(name, bytes)| Prunable { name, bytes }).collect())
}

/// Prunes what [`plan`] names: each version's rows marked first (in one statement that
/// re-checks it is neither serving nor pinned, so a promotion in between wins), then its
/// stored bundle and cached folder deleted.
pub async fn prune(
    storage: &Storage,
    models_dir: &Path,
    taxonomy: &str,
    taxonomy_id: i64,
    keep_last: usize,
) -> anyhow::Result<Pruned> {
    let pool = storage.pool();
    let mut pruned = Pruned::default();
    for version in plan(pool, taxonomy_id, keep_last).await? {
        let marked = sqlx::query(
            "UPDATE model_versions SET status = 'pruned'
             WHERE taxonomy_id = $1 AND name = $2 AND status IN ('ready', 'retired') AND NOT pinned
               AND NOT EXISTS (SELECT 1 FROM model_versions a WHERE a.taxonomy_id = $1 AND a.name = $2
                               AND (a.status = 'active' OR a.pinned))",
        )
        .bind(taxonomy_id)
        .bind(&version.name)
        .execute(pool)
        .await?;
        if marked.rows_affected() == 0 {
            continue;
        }
        pruned.stored_bytes += storage.delete(&version_bundle(taxonomy, &version.name)).await?.unwrap_or(0);
        let folder = models_dir.join(taxonomy).join(&version.name);
        pruned.cached_bytes += folder_bytes(&folder);
        if folder.exists() {
            std::fs::remove_dir_all(&folder)?;
        }
        pruned.versions.push(version.name);
    }
    Ok(pruned)
}

/// Pins or unpins a version (a pinned one is never pruned); false when there is none.
pub async fn pin(pool: &PgPool, taxonomy_id: i64, name: &str, pinned: bool) -> sqlx::Result<bool> {
    let done = sqlx::query(
        "UPDATE model_versions SET pinned = $3 WHERE taxonomy_id = $1 AND name = $2 AND status <> 'pruned'",
    )
    .bind(taxonomy_id)
    .bind(name)
    .bind(pinned)
    .execute(pool)
    .await?;
    Ok(done.rows_affected() > 0)
}

/// The names of the taxonomy's pinned versions.
pub async fn pinned(pool: &PgPool, taxonomy_id: i64) -> sqlx::Result<Vec<String>> {
    sqlx::query_scalar(
        "SELECT DISTINCT name FROM model_versions WHERE taxonomy_id = $1 AND pinned ORDER BY name",
    )
    .bind(taxonomy_id)
    .fetch_all(pool)
    .await
}

fn folder_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => folder_bytes(&e.path()),
            _ => e.metadata().map_or(0, |m| m.len()),
        })
        .sum()
}
