//! Stored folders (`bundles`): their manifests, and their bytes when PostgreSQL holds
//! them. What a bundle is and how hosts cache it is `storage`'s business; this is SQL.

use futures_util::TryStreamExt;
use sqlx::{PgConnection, PgPool};

/// One file of a bundle, as its manifest records it.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct StoredFile {
    pub path: String,
    pub bytes: i64,
    pub sha256: String,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Bundle {
    pub id: i64,
    pub name: String,
    pub location: String,
    pub bytes: i64,
}

/// Adds a bundle's row; `None` when one of that name exists already.
pub async fn insert(
    tx: &mut PgConnection,
    name: &str,
    location: &str,
    bytes: i64,
) -> sqlx::Result<Option<i64>> {
    sqlx::query_scalar(
        "INSERT INTO bundles (name, location, bytes) VALUES ($1, $2, $3)
         ON CONFLICT (name) DO NOTHING RETURNING id",
    )
    .bind(name)
    .bind(location)
    .bind(bytes)
    .fetch_optional(&mut *tx)
    .await
}

pub async fn insert_file(tx: &mut PgConnection, bundle_id: i64, file: &StoredFile) -> sqlx::Result<()> {
    sqlx::query("INSERT INTO bundle_files (bundle_id, path, bytes, sha256) VALUES ($1, $2, $3, $4)")
        .bind(bundle_id)
        .bind(&file.path)
        .bind(file.bytes)
        .bind(&file.sha256)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

pub async fn insert_chunk(
    tx: &mut PgConnection,
    bundle_id: i64,
    path: &str,
    seq: i32,
    data: &[u8],
) -> sqlx::Result<()> {
    sqlx::query("INSERT INTO bundle_chunks (bundle_id, path, seq, data) VALUES ($1, $2, $3, $4)")
        .bind(bundle_id)
        .bind(path)
        .bind(seq)
        .bind(data)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

pub async fn by_name<'e>(executor: impl sqlx::PgExecutor<'e>, name: &str) -> sqlx::Result<Option<Bundle>> {
    sqlx::query_as("SELECT id, name, location, bytes FROM bundles WHERE name = $1")
        .bind(name)
        .fetch_optional(executor)
        .await
}

pub async fn get(pool: &PgPool, id: i64) -> sqlx::Result<Option<Bundle>> {
    sqlx::query_as("SELECT id, name, location, bytes FROM bundles WHERE id = $1")
        .bind(id)
        .fetch_optional(pool)
        .await
}

/// A bundle's files, by path.
pub async fn files(pool: &PgPool, bundle_id: i64) -> sqlx::Result<Vec<StoredFile>> {
    sqlx::query_as("SELECT path, bytes, sha256 FROM bundle_files WHERE bundle_id = $1 ORDER BY path")
        .bind(bundle_id)
        .fetch_all(pool)
        .await
}

/// A file's pieces in order, handed to `write` one at a time.
pub async fn read_chunks(
    pool: &PgPool,
    bundle_id: i64,
    path: &str,
    write: &mut (dyn FnMut(&[u8]) -> std::io::Result<()> + Send),
) -> anyhow::Result<()> {
    let mut rows = sqlx::query_scalar::<_, Vec<u8>>(
        "SELECT data FROM bundle_chunks WHERE bundle_id = $1 AND path = $2 ORDER BY seq",
    )
    .bind(bundle_id)
    .bind(path)
    .fetch(pool);
    while let Some(data) = rows.try_next().await? {
        write(&data)?;
    }
    Ok(())
}

/// Removes a bundle's rows (its files' and, in PostgreSQL, their pieces go with it).
pub async fn delete(tx: &mut PgConnection, bundle_id: i64) -> sqlx::Result<()> {
    sqlx::query("UPDATE model_versions SET bundle_id = NULL WHERE bundle_id = $1")
        .bind(bundle_id)
        .execute(&mut *tx)
        .await?;
    sqlx::query("DELETE FROM bundles WHERE id = $1").bind(bundle_id).execute(&mut *tx).await?;
    Ok(())
}

/// Names and sizes of the stored bundles whose name starts with `prefix`.
pub async fn list(pool: &PgPool, prefix: &str) -> sqlx::Result<Vec<Bundle>> {
    sqlx::query_as("SELECT id, name, location, bytes FROM bundles WHERE starts_with(name, $1) ORDER BY name")
        .bind(prefix)
        .fetch_all(pool)
        .await
}
