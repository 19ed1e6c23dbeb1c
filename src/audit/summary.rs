//! The figures of the reviewer's pages for a taxonomy — per keyword the reviews
//! labelled with it and predicted with it, the annotators' agreement; per annotator
//! their answers and how often they match gold labels — computed from every label, so
//! never on a page view of a large taxonomy. They are stored with the ids of the last
//! annotation and prediction they saw (`store::qa_summaries`); a page shows the stored
//! ones and, when labels or predictions have changed since, has them computed again
//! in the background, one computation per taxonomy at a time. While the database is
//! small (below [`INLINE_BELOW`] annotations) they are computed on the page itself,
//! which then always shows them current.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use sqlx::PgPool;

use super::agreement;
use crate::store::adjudication::{self, AnnotatorStats};
use crate::store::qa_summaries::{self, Stamp};
use crate::store::{annotations, predictions};
use crate::taxonomy::Taxonomy;

/// Below this many annotations the figures take a few milliseconds: computed inline.
pub const INLINE_BELOW: i64 = 20_000;
/// Figures older than this are counted again even when no label changed: "answers in
/// the last week" moves with the clock.
const MAX_AGE: chrono::Duration = chrono::Duration::minutes(10);

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct KeywordFigures {
    pub keyword_id: i64,
    /// Reviews whose current label has the keyword.
    pub labelled: i64,
    /// Reviews the serving model gives it (at its threshold); none without a model.
    pub predicted: Option<i64>,
    /// Presence agreement between two annotators (Cohen's kappa), where defined.
    pub kappa: Option<f64>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Figures {
    pub keywords: Vec<KeywordFigures>,
    pub annotators: Vec<AnnotatorStats>,
    /// Reviews answered by two or more annotators.
    pub multiply_answered: usize,
}

/// The serving keyword model, as far as the figures need it.
pub struct Serving {
    pub version_id: i64,
    /// Per keyword, in taxonomy order (0.5 where missing).
    pub thresholds: Vec<f32>,
}

/// Figures as a page shows them.
pub struct Shown {
    pub figures: Option<Figures>,
    pub computed_at: Option<chrono::DateTime<chrono::Utc>>,
    /// Newer figures are being computed.
    pub refreshing: bool,
}

/// Taxonomies whose figures this process is computing now.
#[derive(Default, Clone)]
pub struct Refresher {
    running: Arc<Mutex<HashSet<i64>>>,
}

impl Refresher {
    /// The stored figures, computed again first (small databases) or in the background
    /// (large ones) when labels or predictions changed since. `serving` is asked for
    /// only when they must be computed.
    pub async fn shown<F>(
        &self,
        pool: &PgPool,
        taxonomy: &Taxonomy,
        serving_version: Option<i64>,
        serving: F,
    ) -> anyhow::Result<Shown>
    where
        F: std::future::Future<Output = Option<Serving>>,
    {
        let stamp = qa_summaries::stamp(pool, serving_version).await?;
        let stored = qa_summaries::get(pool, taxonomy.id).await?;
        let recent = |s: &qa_summaries::Stored| chrono::Utc::now() - s.computed_at < MAX_AGE;
        let fresh = stored.as_ref().is_some_and(|s| s.stamp == stamp && recent(s));
        let parse =
            |s: qa_summaries::Stored| (serde_json::from_value::<Figures>(s.figures).ok(), s.computed_at);
        if fresh {
            let (figures, at) = parse(stored.expect("fresh"));
            return Ok(Shown { figures, computed_at: Some(at), refreshing: false });
        }
        let serving = serving.await;
        if stamp.annotations_through < INLINE_BELOW {
            let figures = compute_and_store(pool, taxonomy, stamp, serving.as_ref()).await?;
            return Ok(Shown {
                figures: Some(figures),
                computed_at: Some(chrono::Utc::now()),
                refreshing: false,
            });
        }
        self.start(pool.clone(), taxonomy.clone(), stamp, serving);
        let (figures, computed_at) = stored.map(parse).map_or((None, None), |(f, at)| (f, Some(at)));
        Ok(Shown { figures, computed_at, refreshing: true })
    }

    /// Computes in the background unless a computation for the taxonomy is running.
    fn start(&self, pool: PgPool, taxonomy: Taxonomy, stamp: Stamp, serving: Option<Serving>) {
        if !self.running.lock().unwrap_or_else(|e| e.into_inner()).insert(taxonomy.id) {
            return;
        }
        let running = self.running.clone();
        tokio::spawn(async move {
            if let Err(e) = compute_and_store(&pool, &taxonomy, stamp, serving.as_ref()).await {
                tracing::error!(taxonomy = %taxonomy.name, error = %e, "QA figures failed");
            }
            running.lock().unwrap_or_else(|e| e.into_inner()).remove(&taxonomy.id);
        });
    }
}

async fn compute_and_store(
    pool: &PgPool,
    taxonomy: &Taxonomy,
    stamp: Stamp,
    serving: Option<&Serving>,
) -> anyhow::Result<Figures> {
    let started = std::time::Instant::now();
    let figures = compute(pool, taxonomy, serving).await?;
    tracing::info!(taxonomy = %taxonomy.name, seconds = started.elapsed().as_secs_f64(), "QA figures counted");
    qa_summaries::put(pool, taxonomy.id, stamp, &serde_json::to_value(&figures)?).await?;
    Ok(figures)
}

/// Every figure, from every label of the taxonomy.
pub async fn compute(
    pool: &PgPool,
    taxonomy: &Taxonomy,
    serving: Option<&Serving>,
) -> anyhow::Result<Figures> {
    let labelled = annotations::label_stats(pool, taxonomy.id).await?.per_keyword;
    let predicted = match serving {
        Some(s) => Some(predictions::predicted_counts(pool, s.version_id, &s.thresholds).await?),
        None => None,
    };
    let ids: Vec<i64> = taxonomy.keywords.iter().map(|k| k.id).collect();
    let answers = agreement::answers(pool, taxonomy.id).await?;
    let agreement = agreement::per_keyword(&ids, &answers);
    let keywords = ids
        .iter()
        .enumerate()
        .map(|(i, &keyword_id)| KeywordFigures {
            keyword_id,
            labelled: labelled.get(i).map_or(0, |l| l.1),
            predicted: predicted.as_ref().and_then(|p| p.get(i).copied()),
            kappa: agreement[i].presence_kappa,
        })
        .collect();
    let annotators = adjudication::annotator_stats(pool, taxonomy.id).await?;
    Ok(Figures { keywords, annotators, multiply_answered: answers.len() })
}
