//! Users and roles. Passwords are stored as argon2id hashes only.

use std::collections::HashMap;

use argon2::password_hash::{rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use serde::Serialize;
use sqlx::PgPool;

#[derive(Debug, Clone, Copy, PartialEq, Eq, sqlx::Type, Serialize, clap::ValueEnum)]
#[sqlx(type_name = "user_role", rename_all = "lowercase")]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Annotator,
    Reviewer,
    Engineer,
    Admin,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Annotator, Role::Reviewer, Role::Engineer, Role::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Annotator => "annotator",
            Role::Reviewer => "reviewer",
            Role::Engineer => "engineer",
            Role::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

#[derive(Debug, Clone, sqlx::FromRow, Serialize)]
pub struct User {
    pub id: i64,
    pub username: String,
    pub display_name: String,
    pub role: Role,
    pub locale: String,
}

#[derive(Debug, thiserror::Error)]
pub enum UserError {
    #[error("username must be 1–64 characters without spaces")]
    BadUsername,
    #[error("password must be at least 8 characters")]
    WeakPassword,
    #[error("a user named `{0}` already exists")]
    Taken(String),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    #[error("password hashing failed: {0}")]
    Hash(String),
}

/// An argon2id hash of `password`, computed on a blocking thread: argon2 is meant to
/// be slow (tens of milliseconds), and on an async worker it would stall every other
/// request that worker serves.
pub async fn hash_password(password: &str) -> Result<String, UserError> {
    let password = password.to_string();
    tokio::task::spawn_blocking(move || {
        let salt = SaltString::generate(&mut OsRng);
        Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| UserError::Hash(e.to_string()))
    })
    .await
    .map_err(|e| UserError::Hash(e.to_string()))?
}

/// Whether `password` matches the stored hash, checked on a blocking thread.
async fn verify_password(stored: String, password: &str) -> bool {
    let password = password.to_string();
    tokio::task::spawn_blocking(move || {
        PasswordHash::new(&stored)
            .map(|parsed| Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok())
            .unwrap_or(false)
    })
    .await
    .unwrap_or(false)
}

fn check_new(username: &str, password: &str) -> Result<(), UserError> {
    if username.is_empty() || username.chars().count() > 64 || username.contains(char::is_whitespace) {
        return Err(UserError::BadUsername);
    }
    if password.chars().count() < 8 {
        return Err(UserError::WeakPassword);
    }
    Ok(())
}

pub async fn create(pool: &PgPool, username: &str, password: &str, role: Role) -> Result<User, UserError> {
    let username = username.trim();
    check_new(username, password)?;
    let hash = hash_password(password).await?;
    insert(pool, username, &hash, role).await
}

async fn insert<'e>(
    executor: impl sqlx::PgExecutor<'e>,
    username: &str,
    hash: &str,
    role: Role,
) -> Result<User, UserError> {
    sqlx::query_as(
        "INSERT INTO users (username, display_name, password_hash, role) VALUES ($1, $1, $2, $3)
         RETURNING id, username, display_name, role, locale",
    )
    .bind(username)
    .bind(hash)
    .bind(role)
    .fetch_one(executor)
    .await
    .map_err(|e| match &e {
        sqlx::Error::Database(db) if db.constraint() == Some("users_username_key") => {
            UserError::Taken(username.to_string())
        }
        _ => UserError::Database(e),
    })
}

/// Checks a password; the same work is done for unknown users so that timing does not
/// reveal which usernames exist.
pub async fn authenticate(pool: &PgPool, username: &str, password: &str) -> sqlx::Result<Option<User>> {
    let row: Option<(i64, String)> =
        sqlx::query_as("SELECT id, password_hash FROM users WHERE username = $1 AND disabled_at IS NULL")
            .bind(username.trim())
            .fetch_optional(pool)
            .await?;
    const DUMMY: &str =
        "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$mvH8vBQXdSdFWc1VLzyP2Ww5nbc2XHsVb0x6w9x7dQs";
    let stored = row.as_ref().map(|r| r.1.clone()).unwrap_or_else(|| DUMMY.to_string());
    let ok = verify_password(stored, password).await;
    match (row, ok) {
        (Some((id, _)), true) => get(pool, id).await.map(Some),
        _ => Ok(None),
    }
}

pub async fn get(pool: &PgPool, id: i64) -> sqlx::Result<User> {
    sqlx::query_as("SELECT id, username, display_name, role, locale FROM users WHERE id = $1")
        .bind(id)
        .fetch_one(pool)
        .await
}

pub async fn find(pool: &PgPool, username: &str) -> sqlx::Result<Option<User>> {
    sqlx::query_as("SELECT id, username, display_name, role, locale FROM users WHERE username = $1")
        .bind(username)
        .fetch_optional(pool)
        .await
}

pub async fn list(pool: &PgPool) -> sqlx::Result<Vec<User>> {
    sqlx::query_as("SELECT id, username, display_name, role, locale FROM users ORDER BY username")
        .fetch_all(pool)
        .await
}

/// The names of these users (a page's worth).
pub async fn names_of(pool: &PgPool, ids: &[i64]) -> sqlx::Result<HashMap<i64, String>> {
    let rows: Vec<(i64, String)> =
        sqlx::query_as("SELECT id, username FROM users WHERE id = ANY($1)").bind(ids).fetch_all(pool).await?;
    Ok(rows.into_iter().collect())
}

pub async fn usernames(pool: &PgPool) -> sqlx::Result<HashMap<i64, String>> {
    let rows: Vec<(i64, String)> = sqlx::query_as("SELECT id, username FROM users").fetch_all(pool).await?;
    Ok(rows.into_iter().collect())
}

/// Sets a user's password and ends their sessions, together or not at all.
pub async fn set_password(pool: &PgPool, username: &str, password: &str) -> Result<bool, UserError> {
    if password.chars().count() < 8 {
        return Err(UserError::WeakPassword);
    }
    let hash = hash_password(password).await?;
    let mut tx = pool.begin().await?;
    let done = sqlx::query("UPDATE users SET password_hash = $2 WHERE username = $1")
        .bind(username)
        .bind(hash)
        .execute(&mut *tx)
        .await?;
    // Existing sessions end with the old password.
    sqlx::query("DELETE FROM sessions WHERE user_id = (SELECT id FROM users WHERE username = $1)")
        .bind(username)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(done.rows_affected() == 1)
}

/// On a database without users, creates `admin` with a random password and returns
/// it, so that a fresh install can be logged into. `None` when users exist.
/// Two processes starting at once on a fresh database (app and worker, say) take
/// turns on a lock, so only one of them creates it.
pub async fn create_first_admin(pool: &PgPool) -> Result<Option<String>, UserError> {
    let password = super::sessions::random_token()[..16].to_string();
    let hash = hash_password(&password).await?;
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext('reviewloop first admin'))").execute(&mut *tx).await?;
    let users: i64 = sqlx::query_scalar("SELECT count(*) FROM users").fetch_one(&mut *tx).await?;
    if users > 0 {
        return Ok(None);
    }
    insert(&mut *tx, "admin", &hash, Role::Admin).await?;
    tx.commit().await?;
    Ok(Some(password))
}
