//! Browsers that logged into an account before: a cookie carries a random token and
//! the table its hash, as for sessions. They only decide how a login is throttled
//! (`web::login_gate`); they never log anyone in.

use sqlx::PgPool;

use super::sessions::{hash, random_token};

/// How long a device is remembered after its last login.
pub const DEVICE_DAYS: i64 = 365;

/// The device this token names, when it logged in as `username` before.
pub async fn known(pool: &PgPool, token: &str, username: &str) -> sqlx::Result<Option<i64>> {
    sqlx::query_scalar(
        "SELECT d.id FROM known_devices d JOIN users u ON u.id = d.user_id
         WHERE d.token_hash = $1 AND u.username = $2
           AND d.last_login_at > now() - make_interval(days => $3)",
    )
    .bind(hash(token))
    .bind(username.trim())
    .bind(DEVICE_DAYS as i32)
    .fetch_optional(pool)
    .await
}

/// Records a login from a device: the token's device when it is this user's, else a
/// new device. Returns the token the cookie should carry.
pub async fn logged_in(pool: &PgPool, user_id: i64, token: Option<&str>) -> sqlx::Result<String> {
    if let Some(token) = token {
        let touched = sqlx::query(
            "UPDATE known_devices SET last_login_at = now() WHERE token_hash = $1 AND user_id = $2",
        )
        .bind(hash(token))
        .bind(user_id)
        .execute(pool)
        .await?;
        if touched.rows_affected() == 1 {
            return Ok(token.to_string());
        }
    }
    sqlx::query("DELETE FROM known_devices WHERE last_login_at <= now() - make_interval(days => $1)")
        .bind(DEVICE_DAYS as i32)
        .execute(pool)
        .await?;
    let token = random_token();
    sqlx::query("INSERT INTO known_devices (token_hash, user_id) VALUES ($1, $2)")
        .bind(hash(&token))
        .bind(user_id)
        .execute(pool)
        .await?;
    Ok(token)
}
