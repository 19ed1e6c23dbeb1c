//! A round's suggestions, computed ahead: the serving version analyses each assisted
//! item (keywords, a level each, highlighted words by masking, as the analysis API
//! answers) and the result is stored with the item, so the annotation page only reads
//! it. Queued with the round; a round composed before any model serves gets none.

use serde::Deserialize;
use serde_json::{json, Value};

use super::context::{publish, with_eta, JobContext};
use crate::analyze::{Analysis, Analyzer, Highlights};

#[derive(Debug, Deserialize)]
struct SuggestJob {
    round_id: i64,
}

/// Reviews analysed per batch, and per progress report.
const CHUNK: usize = 32;

pub async fn run(cx: &JobContext<'_>) -> anyhow::Result<Value> {
    let request: SuggestJob = serde_json::from_value(cx.job.payload.clone())?;
    let taxonomy_id: i64 = sqlx::query_scalar("SELECT taxonomy_id FROM rounds WHERE id = $1")
        .bind(request.round_id)
        .fetch_one(cx.pool)
        .await?;
    let Some(version) = crate::store::models::current_keyword(cx.pool, taxonomy_id).await? else {
        return Ok(json!({"suggested": 0, "reason": "no model serves this taxonomy yet"}));
    };
    let dir = cx.storage.version_dir(&cx.config.models_dir, &version).await?;
    let analyzer = tokio::task::spawn_blocking(move || Analyzer::load(&dir)).await??;
    let analyzer = std::sync::Arc::new(analyzer);
    let items: Vec<(i64, String)> = sqlx::query_as(
        "SELECT i.id, r.text FROM round_items i JOIN reviews r ON r.id = i.review_id
         WHERE i.round_id = $1 AND i.assisted AND i.suggestion IS NULL ORDER BY i.position",
    )
    .bind(request.round_id)
    .fetch_all(cx.pool)
    .await?;
    let started = std::time::Instant::now();
    for (done, chunk) in items.chunks(CHUNK).enumerate() {
        cx.cancel.check()?;
        let texts: Vec<String> = chunk.iter().map(|(_, t)| t.clone()).collect();
        let model = analyzer.clone();
        let analyses = tokio::task::spawn_blocking(move || {
            let how = vec![Highlights::Mask; texts.len()];
            model.analyze_many(&texts, &how)
        })
        .await??;
        store(cx.pool, &analyzer, version.id, chunk, &analyses).await?;
        let n = ((done + 1) * CHUNK).min(items.len());
        let progress = json!({"stage": "suggest", "done": n, "total": items.len()});
        publish(cx.state, with_eta(progress, n as f64, items.len() as f64, started.elapsed()), None);
    }
    Ok(json!({"suggested": items.len(), "version": version.name}))
}

/// One item's suggestion: what the analysis API would answer for its text.
pub fn suggestion(analyzer: &Analyzer, analysis: &Analysis) -> Value {
    let keywords: Vec<Value> = analysis
        .keywords
        .iter()
        .map(|k| {
            json!({
                "keyword": k.keyword,
                "probability": k.probability,
                "sentiment": k.sentiment,
                "highlights": k.highlights.iter().map(|h| json!({"word": h.word, "start": h.start, "end": h.end, "score": h.drop})).collect::<Vec<_>>(),
            })
        })
        .collect();
    let levels: Vec<i16> =
        (analyzer.sentiment.labels.scale_min..=analyzer.sentiment.labels.scale_max).collect();
    json!({"keywords": keywords, "levels": levels})
}

async fn store(
    pool: &sqlx::PgPool,
    analyzer: &Analyzer,
    version_id: i64,
    items: &[(i64, String)],
    analyses: &[Analysis],
) -> sqlx::Result<()> {
    let ids: Vec<i64> = items.iter().map(|(id, _)| *id).collect();
    let values: Vec<Value> = analyses.iter().map(|a| suggestion(analyzer, a)).collect();
    sqlx::query(
        "UPDATE round_items i SET suggestion = t.suggestion, suggestion_version_id = $3
         FROM UNNEST($1::bigint[], $2::jsonb[]) AS t(id, suggestion) WHERE i.id = t.id",
    )
    .bind(&ids)
    .bind(&values)
    .bind(version_id)
    .execute(pool)
    .await?;
    Ok(())
}
