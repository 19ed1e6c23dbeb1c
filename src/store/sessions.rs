//! Login sessions. The cookie holds a random token; the database holds its hash, so a
//! leaked database does not leak usable sessions.

use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};
use sqlx::PgPool;

use super::users::User;

pub const SESSION_DAYS: i64 = 14;

pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// What is stored of a secret token (sessions, API keys).
pub fn hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// Starts a session and returns the cookie token. Sessions that have expired are
/// deleted first: a login is rare enough to pay for it, and the table stays small.
pub async fn start(pool: &PgPool, user_id: i64) -> sqlx::Result<String> {
    purge_expired(pool).await?;
    let token = random_token();
    sqlx::query(
        "INSERT INTO sessions (token_hash, user_id, csrf_token, expires_at)
         VALUES ($1, $2, $3, now() + make_interval(days => $4))",
    )
    .bind(hash(&token))
    .bind(user_id)
    .bind(random_token())
    .bind(SESSION_DAYS as i32)
    .execute(pool)
    .await?;
    Ok(token)
}

/// Deletes expired sessions; returns how many.
pub async fn purge_expired(pool: &PgPool) -> sqlx::Result<u64> {
    let done = sqlx::query("DELETE FROM sessions WHERE expires_at <= now()").execute(pool).await?;
    Ok(done.rows_affected())
}

#[derive(Debug, Clone)]
pub struct Session {
    pub user: User,
    pub csrf_token: String,
}

#[derive(sqlx::FromRow)]
struct SessionRow {
    session_id: i64,
    stale: bool,
    csrf_token: String,
    id: i64,
    username: String,
    display_name: String,
    role: super::users::Role,
    locale: String,
}

pub async fn lookup(pool: &PgPool, token: &str) -> sqlx::Result<Option<Session>> {
    let row: Option<SessionRow> = sqlx::query_as(
        "SELECT s.id AS session_id, s.last_seen_at < now() - interval '5 minutes' AS stale, s.csrf_token,
                u.id, u.username, u.display_name, u.role, u.locale
         FROM sessions s JOIN users u ON u.id = s.user_id
         WHERE s.token_hash = $1 AND s.expires_at > now() AND u.disabled_at IS NULL",
    )
    .bind(hash(token))
    .fetch_optional(pool)
    .await?;
    let Some(r) = row else { return Ok(None) };
    // A write (and its commit) on every request would cost more than the request
    // itself; "last seen" to the nearest five minutes is enough.
    if r.stale {
        sqlx::query("UPDATE sessions SET last_seen_at = now() WHERE id = $1")
            .bind(r.session_id)
            .execute(pool)
            .await?;
    }
    Ok(Some(Session {
        csrf_token: r.csrf_token,
        user: User {
            id: r.id,
            username: r.username,
            display_name: r.display_name,
            role: r.role,
            locale: r.locale,
        },
    }))
}

pub async fn end(pool: &PgPool, token: &str) -> sqlx::Result<()> {
    sqlx::query("DELETE FROM sessions WHERE token_hash = $1").bind(hash(token)).execute(pool).await?;
    Ok(())
}
