//! Finished simulation runs, for the engineer page's learning curves.

use serde_json::Value;
use sqlx::PgPool;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SimulationRow {
    pub id: i64,
    pub name: String,
    pub params: Value,
    pub points: Value,
    pub summary: Value,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

pub async fn insert(
    pool: &PgPool,
    name: &str,
    params: &Value,
    points: &Value,
    summary: &Value,
) -> sqlx::Result<i64> {
    sqlx::query_scalar(
        "INSERT INTO simulations (name, params, points, summary) VALUES ($1, $2, $3, $4) RETURNING id",
    )
    .bind(name)
    .bind(params)
    .bind(points)
    .bind(summary)
    .fetch_one(pool)
    .await
}

pub async fn recent(pool: &PgPool, limit: i64) -> sqlx::Result<Vec<SimulationRow>> {
    sqlx::query_as(
        "SELECT id, name, params, points, summary, created_at FROM simulations ORDER BY id DESC LIMIT $1",
    )
    .bind(limit)
    .fetch_all(pool)
    .await
}
