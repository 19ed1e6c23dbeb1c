//! Annotations: append-only label rows. A label and its keywords are written in one
//! transaction, so a crash never leaves half a label.

use std::collections::HashMap;

use sqlx::{PgPool, Postgres, Transaction};

use crate::consensus::{LabelSource, StoredAnnotation};
use crate::taxonomy::ResolvedLabels;

/// Who wrote a label and in what context.
#[derive(Debug, Clone)]
pub struct Authorship {
    pub source: LabelSource,
    pub annotator_id: Option<i64>,
    pub assignment_id: Option<i64>,
    pub import_batch_id: Option<i64>,
    pub guideline_revision: i32,
    pub client_token: Option<uuid::Uuid>,
    /// What was done with the model's suggestions (`rounds::assist::record`), when shown.
    pub assist: Option<serde_json::Value>,
}

pub async fn insert(
    tx: &mut Transaction<'_, Postgres>,
    review_id: i64,
    author: &Authorship,
    labels: &ResolvedLabels,
) -> sqlx::Result<i64> {
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO annotations (review_id, annotator_id, assignment_id, import_batch_id, source,
                                  no_keyword, guideline_revision, client_token, assist)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id",
    )
    .bind(review_id)
    .bind(author.annotator_id)
    .bind(author.assignment_id)
    .bind(author.import_batch_id)
    .bind(author.source)
    .bind(labels.no_keyword)
    .bind(author.guideline_revision)
    .bind(author.client_token)
    .bind(&author.assist)
    .fetch_one(&mut **tx)
    .await?;
    insert_labels(tx, &[id], std::slice::from_ref(labels)).await?;
    Ok(id)
}

/// Keyword rows for many annotations in one statement.
async fn insert_labels(
    tx: &mut Transaction<'_, Postgres>,
    annotation_ids: &[i64],
    labels: &[ResolvedLabels],
) -> sqlx::Result<()> {
    let (mut ids, mut keywords, mut levels) = (Vec::new(), Vec::new(), Vec::new());
    for (id, set) in annotation_ids.iter().zip(labels) {
        for (keyword, level) in &set.labels {
            ids.push(*id);
            keywords.push(*keyword);
            levels.push(*level);
        }
    }
    if ids.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO annotation_labels (annotation_id, keyword_id, sentiment)
         SELECT * FROM UNNEST($1::bigint[], $2::bigint[], $3::smallint[])",
    )
    .bind(ids)
    .bind(keywords)
    .bind(levels)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Imported labels for many reviews at once: ids come from the sequence first so
/// that keyword rows can be matched to their annotation without relying on row order.
pub async fn insert_imported(
    tx: &mut Transaction<'_, Postgres>,
    batch_id: i64,
    source: LabelSource,
    guideline_revision: i32,
    rows: &[(i64, ResolvedLabels)],
) -> sqlx::Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let ids: Vec<i64> =
        sqlx::query_scalar("SELECT nextval('annotations_id_seq') FROM generate_series(1, $1)")
            .bind(rows.len() as i64)
            .fetch_all(&mut **tx)
            .await?;
    sqlx::query(
        "INSERT INTO annotations (id, review_id, import_batch_id, source, no_keyword, guideline_revision)
         SELECT t.id, t.review_id, $3, $4, t.no_keyword, $5
         FROM UNNEST($1::bigint[], $2::bigint[], $6::bool[]) AS t(id, review_id, no_keyword)",
    )
    .bind(&ids)
    .bind(rows.iter().map(|(r, _)| *r).collect::<Vec<_>>())
    .bind(batch_id)
    .bind(source)
    .bind(guideline_revision)
    .bind(rows.iter().map(|(_, l)| l.no_keyword).collect::<Vec<_>>())
    .execute(&mut **tx)
    .await?;
    let labels: Vec<ResolvedLabels> = rows.iter().map(|(_, l)| l.clone()).collect();
    insert_labels(tx, &ids, &labels).await
}

/// The latest imported label of each review from this source, to recognise re-imports.
pub async fn latest_imported(
    tx: &mut Transaction<'_, Postgres>,
    review_ids: &[i64],
    source: LabelSource,
) -> sqlx::Result<HashMap<i64, ResolvedLabels>> {
    let rows: Vec<(i64, i64, bool)> = sqlx::query_as(
        "SELECT DISTINCT ON (review_id) review_id, id, no_keyword FROM annotations
         WHERE review_id = ANY($1) AND import_batch_id IS NOT NULL AND source = $2
         ORDER BY review_id, id DESC",
    )
    .bind(review_ids)
    .bind(source)
    .fetch_all(&mut **tx)
    .await?;
    let ids: Vec<i64> = rows.iter().map(|r| r.1).collect();
    let mut by_annotation = labels_of(&mut **tx, &ids).await?;
    Ok(rows
        .into_iter()
        .map(|(review, id, no_keyword)| {
            let labels = by_annotation.remove(&id).unwrap_or_default();
            (review, ResolvedLabels { no_keyword, labels })
        })
        .collect())
}

/// Keyword rows of the given annotations, sorted by keyword id for comparison.
pub async fn labels_of<'e, E>(
    executor: E,
    annotation_ids: &[i64],
) -> sqlx::Result<HashMap<i64, Vec<(i64, i16)>>>
where
    E: sqlx::Executor<'e, Database = Postgres>,
{
    let rows: Vec<(i64, i64, i16)> = sqlx::query_as(
        "SELECT annotation_id, keyword_id, sentiment FROM annotation_labels
         WHERE annotation_id = ANY($1) ORDER BY annotation_id, keyword_id",
    )
    .bind(annotation_ids)
    .fetch_all(executor)
    .await?;
    let mut map: HashMap<i64, Vec<(i64, i16)>> = HashMap::new();
    for (annotation, keyword, level) in rows {
        map.entry(annotation).or_default().push((keyword, level));
    }
    Ok(map)
}

/// The annotation a page submitted before, found by its client token.
pub async fn find_by_client_token(pool: &PgPool, token: uuid::Uuid) -> sqlx::Result<Option<i64>> {
    sqlx::query_scalar("SELECT id FROM annotations WHERE client_token = $1")
        .bind(token)
        .fetch_optional(pool)
        .await
}

#[derive(sqlx::FromRow)]
struct AnnotationRow {
    id: i64,
    review_id: i64,
    annotator_id: Option<i64>,
    source: LabelSource,
    no_keyword: bool,
    created_at: chrono::DateTime<chrono::Utc>,
}

/// The latest annotation of an assignment (its current answer), if any.
pub async fn latest_for_assignment(
    pool: &PgPool,
    assignment_id: i64,
) -> sqlx::Result<Option<StoredAnnotation>> {
    let row: Option<AnnotationRow> = sqlx::query_as(
        "SELECT id, review_id, annotator_id, source, no_keyword, created_at FROM annotations
         WHERE assignment_id = $1 ORDER BY id DESC LIMIT 1",
    )
    .bind(assignment_id)
    .fetch_optional(pool)
    .await?;
    Ok(match row {
        Some(row) => with_labels(pool, vec![row]).await?.pop(),
        None => None,
    })
}

async fn with_labels(pool: &PgPool, rows: Vec<AnnotationRow>) -> sqlx::Result<Vec<StoredAnnotation>> {
    let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
    let mut labels = labels_of(pool, &ids).await?;
    Ok(rows
        .into_iter()
        .map(|r| StoredAnnotation {
            id: r.id,
            review_id: r.review_id,
            annotator_id: r.annotator_id,
            source: r.source,
            created_at: r.created_at,
            labels: ResolvedLabels {
                no_keyword: r.no_keyword,
                labels: labels.remove(&r.id).unwrap_or_default(),
            },
        })
        .collect())
}

/// Every annotation of the given reviews up to `up_to` (an annotation id: a label
/// snapshot; `None` for all), oldest first.
pub async fn for_reviews(
    pool: &PgPool,
    review_ids: &[i64],
    up_to: Option<i64>,
) -> sqlx::Result<Vec<StoredAnnotation>> {
    let rows: Vec<AnnotationRow> = sqlx::query_as(
        "SELECT id, review_id, annotator_id, source, no_keyword, created_at FROM annotations
         WHERE review_id = ANY($1) AND id <= coalesce($2, 9223372036854775807) ORDER BY review_id, id",
    )
    .bind(review_ids)
    .bind(up_to)
    .fetch_all(pool)
    .await?;
    with_labels(pool, rows).await
}

/// The current annotation of each labelled review of a taxonomy, in SQL: the same rule
/// as `consensus::current` (each labeller's latest, then the most authoritative).
const CURRENT: &str = "
    WITH latest AS (
        SELECT DISTINCT ON (a.review_id, a.annotator_id, CASE WHEN a.annotator_id IS NULL THEN a.source END)
               a.id, a.review_id, a.source, a.no_keyword
        FROM annotations a JOIN reviews r ON r.id = a.review_id
        WHERE r.taxonomy_id = $1
        ORDER BY a.review_id, a.annotator_id, CASE WHEN a.annotator_id IS NULL THEN a.source END, a.id DESC),
    current AS (
        SELECT DISTINCT ON (review_id) id, review_id, no_keyword FROM latest
        ORDER BY review_id,
                 CASE source WHEN 'gold' THEN 3 WHEN 'review' THEN 2 WHEN 'human' THEN 1 ELSE 0 END DESC,
                 id DESC)";

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct LabelStats {
    pub labelled: i64,
    pub no_keyword: i64,
    /// (keyword, reviews whose current label has it), in taxonomy order.
    pub per_keyword: Vec<(String, i64)>,
}

pub async fn label_stats(pool: &PgPool, taxonomy_id: i64) -> sqlx::Result<LabelStats> {
    let (labelled, no_keyword): (i64, i64) = sqlx::query_as(&format!(
        "{CURRENT} SELECT count(*), count(*) FILTER (WHERE no_keyword) FROM current"
    ))
    .bind(taxonomy_id)
    .fetch_one(pool)
    .await?;
    let per_keyword: Vec<(String, i64)> = sqlx::query_as(&format!(
        "{CURRENT}
         SELECT k.name, count(l.annotation_id) FROM keywords k
         LEFT JOIN annotation_labels l ON l.keyword_id = k.id AND l.annotation_id IN (SELECT id FROM current)
         WHERE k.taxonomy_id = $1 AND k.retired_at IS NULL
         GROUP BY k.id, k.name, k.position ORDER BY k.position"
    ))
    .bind(taxonomy_id)
    .fetch_all(pool)
    .await?;
    Ok(LabelStats { labelled, no_keyword, per_keyword })
}

/// Which of these annotations were made with prefilled suggestions.
pub async fn made_with_prefilled(
    pool: &sqlx::PgPool,
    ids: &[i64],
) -> sqlx::Result<std::collections::HashSet<i64>> {
    let rows: Vec<i64> = sqlx::query_scalar(
        "SELECT id FROM annotations WHERE id = ANY($1) AND assist ->> 'mode' = 'prefilled'",
    )
    .bind(ids)
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().collect())
}

/// Reviews of a taxonomy with at least one label (any source), up to an annotation id.
pub async fn labelled_reviews<'e>(
    executor: impl sqlx::PgExecutor<'e>,
    taxonomy_id: i64,
    up_to: Option<i64>,
) -> sqlx::Result<i64> {
    sqlx::query_scalar(
        "SELECT count(DISTINCT a.review_id) FROM annotations a JOIN reviews r ON r.id = a.review_id
         WHERE r.taxonomy_id = $1 AND a.id <= coalesce($2, 9223372036854775807)",
    )
    .bind(taxonomy_id)
    .bind(up_to)
    .fetch_one(executor)
    .await
}
