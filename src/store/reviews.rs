//! Reviews: batch insertion with de-duplication, and pool statistics.

use std::collections::HashMap;

use sqlx::{PgPool, Postgres, Transaction};

use crate::split::Split;

/// A review ready to insert: text normalised, hash computed.
#[derive(Debug, Clone)]
pub struct NewReview {
    pub text: String,
    pub mall: String,
    pub category: String,
    pub source: String,
    pub external_id: Option<String>,
    pub content_hash: Vec<u8>,
    pub split: Split,
}

/// Inserts the reviews that are new and returns the id of every given hash, plus the
/// set of hashes that were inserted now (the rest already existed).
pub async fn insert_batch(
    tx: &mut Transaction<'_, Postgres>,
    taxonomy_id: i64,
    batch_id: i64,
    reviews: &[NewReview],
) -> sqlx::Result<(HashMap<Vec<u8>, i64>, Vec<Vec<u8>>)> {
    let column = |f: fn(&NewReview) -> String| reviews.iter().map(f).collect::<Vec<_>>();
    let inserted: Vec<(i64, Vec<u8>)> = sqlx::query_as(
        "INSERT INTO reviews (taxonomy_id, import_batch_id, text, mall, category, source, external_id, content_hash, split)
         SELECT $1, $2, t.text, t.mall, t.category, t.source, t.external_id, t.hash, t.split
         FROM UNNEST($3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::bytea[], $9::data_split[])
              AS t(text, mall, category, source, external_id, hash, split)
         ON CONFLICT (taxonomy_id, content_hash) DO NOTHING
         RETURNING id, content_hash",
    )
    .bind(taxonomy_id)
    .bind(batch_id)
    .bind(column(|r| r.text.clone()))
    .bind(column(|r| r.mall.clone()))
    .bind(column(|r| r.category.clone()))
    .bind(column(|r| r.source.clone()))
    .bind(reviews.iter().map(|r| r.external_id.clone()).collect::<Vec<_>>())
    .bind(reviews.iter().map(|r| r.content_hash.clone()).collect::<Vec<_>>())
    .bind(reviews.iter().map(|r| r.split).collect::<Vec<_>>())
    .fetch_all(&mut **tx)
    .await?;
    let new_hashes: Vec<Vec<u8>> = inserted.iter().map(|(_, h)| h.clone()).collect();
    let mut ids: HashMap<Vec<u8>, i64> = inserted.into_iter().map(|(id, h)| (h, id)).collect();
    let missing: Vec<Vec<u8>> =
        reviews.iter().map(|r| r.content_hash.clone()).filter(|h| !ids.contains_key(h)).collect();
    if !missing.is_empty() {
        let existing: Vec<(i64, Vec<u8>)> = sqlx::query_as(
            "SELECT id, content_hash FROM reviews WHERE taxonomy_id = $1 AND content_hash = ANY($2)",
        )
        .bind(taxonomy_id)
        .bind(&missing)
        .fetch_all(&mut **tx)
        .await?;
        ids.extend(existing.into_iter().map(|(id, h)| (h, id)));
    }
    Ok((ids, new_hashes))
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Review {
    pub id: i64,
    pub text: String,
    pub mall: String,
    pub category: String,
    pub external_id: Option<String>,
    pub split: Split,
}

pub async fn get(pool: &PgPool, id: i64) -> sqlx::Result<Review> {
    sqlx::query_as("SELECT id, text, mall, category, external_id, split FROM reviews WHERE id = $1")
        .bind(id)
        .fetch_one(pool)
        .await
}

pub async fn count(pool: &PgPool, taxonomy_id: i64) -> sqlx::Result<i64> {
    sqlx::query_scalar("SELECT count(*) FROM reviews WHERE taxonomy_id = $1")
        .bind(taxonomy_id)
        .fetch_one(pool)
        .await
}

/// One page of a taxonomy's reviews (ids above `after`, in id order) with all their
/// annotations up to `up_to`: the unit export and training read the label store in.
pub async fn page_with_annotations(
    pool: &PgPool,
    taxonomy_id: i64,
    after: i64,
    limit: i64,
    up_to: Option<i64>,
) -> sqlx::Result<Vec<(Review, Vec<crate::consensus::StoredAnnotation>)>> {
    let page: Vec<Review> = sqlx::query_as(
        "SELECT id, text, mall, category, external_id, split FROM reviews
         WHERE taxonomy_id = $1 AND id > $2 ORDER BY id LIMIT $3",
    )
    .bind(taxonomy_id)
    .bind(after)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    let ids: Vec<i64> = page.iter().map(|r| r.id).collect();
    let mut by_review: HashMap<i64, Vec<crate::consensus::StoredAnnotation>> = HashMap::new();
    for a in super::annotations::for_reviews(pool, &ids, up_to).await? {
        by_review.entry(a.review_id).or_default().push(a);
    }
    Ok(page
        .into_iter()
        .map(|r| {
            let annotations = by_review.remove(&r.id).unwrap_or_default();
            (r, annotations)
        })
        .collect())
}
