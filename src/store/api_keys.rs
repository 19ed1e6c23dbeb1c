//! Keys for the analysis API. The key is shown once, at creation; the database keeps
//! its hash (see the migration for why SHA-256), its first characters for telling keys
//! apart, and its rate limit. Revoked keys stay listed, for the record.

use sqlx::PgPool;

use super::sessions::{hash, random_token};

/// Keys start with this, so that a leaked one is recognisable in logs and scanners.
pub const KEY_PREFIX: &str = "rl_";

#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize)]
pub struct ApiKey {
    pub id: i64,
    pub name: String,
    pub prefix: String,
    pub requests_per_minute: i32,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub last_used_at: Option<chrono::DateTime<chrono::Utc>>,
    pub revoked_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// A key that a request presented and that is valid now.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Caller {
    pub id: i64,
    pub name: String,
    pub requests_per_minute: i32,
}

const COLUMNS: &str = "id, name, key_prefix AS prefix, rate_limit_per_minute AS requests_per_minute, created_at, last_used_at, revoked_at";

/// Creates a key; returns it with the secret, which is not stored and cannot be shown again.
pub async fn create(
    pool: &PgPool,
    name: &str,
    requests_per_minute: i32,
    created_by: Option<i64>,
) -> anyhow::Result<(ApiKey, String)> {
    let name = name.trim();
    anyhow::ensure!(
        !name.is_empty() && name.chars().count() <= 100,
        "a key needs a name of 1–100 characters"
    );
    anyhow::ensure!(requests_per_minute > 0, "the rate limit must be at least 1 request per minute");
    let secret = format!("{KEY_PREFIX}{}", random_token());
    let prefix: String = secret.chars().take(KEY_PREFIX.len() + 6).collect();
    let mut tx = pool.begin().await?;
    let key: ApiKey = sqlx::query_as(&format!(
        "INSERT INTO api_keys (name, key_prefix, key_hash, rate_limit_per_minute, created_by)
         VALUES ($1, $2, $3, $4, $5) RETURNING {COLUMNS}"
    ))
    .bind(name)
    .bind(&prefix)
    .bind(hash(&secret))
    .bind(requests_per_minute)
    .bind(created_by)
    .fetch_one(&mut *tx)
    .await?;
    let details = serde_json::json!({"name": name, "requests_per_minute": requests_per_minute});
    super::audit::record(&mut *tx, created_by, "api_key.create", &format!("api_key:{}", key.id), details)
        .await?;
    tx.commit().await?;
    Ok((key, secret))
}

/// Revokes a key at once; false when there is no such unrevoked key.
pub async fn revoke(pool: &PgPool, id: i64, revoked_by: Option<i64>) -> sqlx::Result<bool> {
    let mut tx = pool.begin().await?;
    let done = sqlx::query(
        "UPDATE api_keys SET revoked_at = now(), revoked_by = $2 WHERE id = $1 AND revoked_at IS NULL",
    )
    .bind(id)
    .bind(revoked_by)
    .execute(&mut *tx)
    .await?
    .rows_affected()
        == 1;
    if done {
        super::audit::record(
            &mut *tx,
            revoked_by,
            "api_key.revoke",
            &format!("api_key:{id}"),
            serde_json::json!({}),
        )
        .await?;
    }
    tx.commit().await?;
    Ok(done)
}

pub async fn list(pool: &PgPool) -> sqlx::Result<Vec<ApiKey>> {
    sqlx::query_as(&format!("SELECT {COLUMNS} FROM api_keys ORDER BY revoked_at IS NOT NULL, id DESC"))
        .fetch_all(pool)
        .await
}

/// The unrevoked key with this secret.
pub async fn authenticate(pool: &PgPool, secret: &str) -> sqlx::Result<Option<Caller>> {
    if !secret.starts_with(KEY_PREFIX) {
        return Ok(None);
    }
    sqlx::query_as(
        "SELECT id, name, rate_limit_per_minute AS requests_per_minute FROM api_keys
         WHERE key_hash = $1 AND revoked_at IS NULL",
    )
    .bind(hash(secret))
    .fetch_optional(pool)
    .await
}

/// Records use; callers do this at most once a minute per key, not per request.
pub async fn touch(pool: &PgPool, id: i64) -> sqlx::Result<()> {
    sqlx::query("UPDATE api_keys SET last_used_at = now() WHERE id = $1").bind(id).execute(pool).await?;
    Ok(())
}
