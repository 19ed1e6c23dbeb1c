//! The audit log: who did what, when. Written in the same transaction as the action.

use serde_json::Value;

pub async fn record<'e, E>(
    executor: E,
    actor: Option<i64>,
    action: &str,
    target: &str,
    details: Value,
) -> sqlx::Result<()>
where
    E: sqlx::Executor<'e, Database = sqlx::Postgres>,
{
    sqlx::query("INSERT INTO audit_log (actor_id, action, target, details) VALUES ($1, $2, $3, $4)")
        .bind(actor)
        .bind(action)
        .bind(target)
        .bind(details)
        .execute(executor)
        .await?;
    Ok(())
}
