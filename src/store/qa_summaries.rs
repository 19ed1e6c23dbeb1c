//! The reviewer pages' figures per taxonomy, stored with what they were computed from
//! (`audit::summary` decides when to compute them again).

use sqlx::PgPool;

/// What a taxonomy's figures depend on: every annotation and prediction up to these
/// ids (the largest anywhere: two index lookups), and the serving keyword version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    pub annotations_through: i64,
    pub predictions_through: i64,
    pub model_version_id: Option<i64>,
}

pub async fn stamp(pool: &PgPool, model_version_id: Option<i64>) -> sqlx::Result<Stamp> {
    let (annotations_through, predictions_through): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT coalesce(max(id), 0) FROM annotations), (SELECT coalesce(max(id), 0) FROM predictions)",
    )
    .fetch_one(pool)
    .await?;
    Ok(Stamp { annotations_through, predictions_through, model_version_id })
}

/// Stored figures: their stamp, when they were computed, and the figures.
pub struct Stored {
    pub stamp: Stamp,
    pub computed_at: chrono::DateTime<chrono::Utc>,
    pub figures: serde_json::Value,
}

#[derive(sqlx::FromRow)]
struct Row {
    annotations_through: i64,
    predictions_through: i64,
    model_version_id: Option<i64>,
    computed_at: chrono::DateTime<chrono::Utc>,
    figures: serde_json::Value,
}

pub async fn get(pool: &PgPool, taxonomy_id: i64) -> sqlx::Result<Option<Stored>> {
    let row: Option<Row> = sqlx::query_as(
        "SELECT annotations_through, predictions_through, model_version_id, computed_at, figures
         FROM qa_summaries WHERE taxonomy_id = $1",
    )
    .bind(taxonomy_id)
    .fetch_optional(pool)
    .await?;
    Ok(row.map(|r| Stored {
        stamp: Stamp {
            annotations_through: r.annotations_through,
            predictions_through: r.predictions_through,
            model_version_id: r.model_version_id,
        },
        computed_at: r.computed_at,
        figures: r.figures,
    }))
}

pub async fn put(
    pool: &PgPool,
    taxonomy_id: i64,
    stamp: Stamp,
    figures: &serde_json::Value,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO qa_summaries (taxonomy_id, annotations_through, predictions_through, model_version_id, figures)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (taxonomy_id) DO UPDATE SET annotations_through = EXCLUDED.annotations_through,
             predictions_through = EXCLUDED.predictions_through, model_version_id = EXCLUDED.model_version_id,
             computed_at = now(), figures = EXCLUDED.figures
         -- A slower, older computation never replaces a newer one.
         WHERE qa_summaries.annotations_through <= EXCLUDED.annotations_through
           AND qa_summaries.predictions_through <= EXCLUDED.predictions_through",
    )
    .bind(taxonomy_id)
    .bind(stamp.annotations_through)
    .bind(stamp.predictions_through)
    .bind(stamp.model_version_id)
    .bind(figures)
    .execute(pool)
    .await?;
    Ok(())
}
