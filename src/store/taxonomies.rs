//! Taxonomies, keywords and their versioned guidelines.

use sqlx::PgPool;

use crate::taxonomy::{builtin, Keyword, Taxonomy, TaxonomyDefinition};

/// Creates the built-in taxonomies on a fresh database; never touches existing ones.
pub async fn ensure_builtin(pool: &PgPool) -> anyhow::Result<()> {
    for def in builtin() {
        if find_id(pool, &def.name).await?.is_none() {
            create(pool, &def).await?;
        }
    }
    Ok(())
}

/// The taxonomy a keyword belongs to.
pub async fn of_keyword(pool: &PgPool, keyword_id: i64) -> sqlx::Result<Option<i64>> {
    sqlx::query_scalar("SELECT taxonomy_id FROM keywords WHERE id = $1")
        .bind(keyword_id)
        .fetch_optional(pool)
        .await
}

pub async fn find_id<'e>(executor: impl sqlx::PgExecutor<'e>, name: &str) -> sqlx::Result<Option<i64>> {
    sqlx::query_scalar("SELECT id FROM taxonomies WHERE name = $1").bind(name).fetch_optional(executor).await
}

pub async fn name_of<'e>(executor: impl sqlx::PgExecutor<'e>, id: i64) -> sqlx::Result<String> {
    sqlx::query_scalar("SELECT name FROM taxonomies WHERE id = $1").bind(id).fetch_one(executor).await
}

pub async fn create(pool: &PgPool, def: &TaxonomyDefinition) -> anyhow::Result<i64> {
    // A taxonomy's name is a folder of its versions under the data dir.
    crate::names::SafeName::parse(&def.name)?;
    anyhow::ensure!(def.scale_min < def.scale_max, "scale_min must be below scale_max");
    anyhow::ensure!(!def.keywords.is_empty(), "a taxonomy needs at least one keyword");
    let mut tx = pool.begin().await?;
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO taxonomies (name, description, scale_min, scale_max) VALUES ($1, $2, $3, $4) RETURNING id",
    )
    .bind(&def.name)
    .bind(&def.description)
    .bind(def.scale_min)
    .bind(def.scale_max)
    .fetch_one(&mut *tx)
    .await?;
    for (position, kw) in def.keywords.iter().enumerate() {
        let keyword_id: i64 = sqlx::query_scalar(
            "INSERT INTO keywords (taxonomy_id, name, position) VALUES ($1, $2, $3) RETURNING id",
        )
        .bind(id)
        .bind(&kw.name)
        .bind(position as i32)
        .fetch_one(&mut *tx)
        .await?;
        sqlx::query("INSERT INTO keyword_guidelines (keyword_id, version, body) VALUES ($1, 1, $2)")
            .bind(keyword_id)
            .bind(&kw.guideline)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(id)
}

#[derive(sqlx::FromRow)]
struct TaxonomyRow {
    id: i64,
    name: String,
    scale_min: i16,
    scale_max: i16,
    guideline_revision: i32,
}

#[derive(sqlx::FromRow)]
struct KeywordRow {
    id: i64,
    name: String,
    position: i32,
    guideline: Option<String>,
}

pub async fn load_by_name(pool: &PgPool, name: &str) -> anyhow::Result<Taxonomy> {
    let id = find_id(pool, name)
        .await?
        .ok_or_else(|| anyhow::anyhow!("no taxonomy named `{name}` (see `reviewloop taxonomy list`)"))?;
    load(pool, id).await
}

/// A taxonomy with its active keywords and each keyword's latest guideline.
pub async fn load(pool: &PgPool, id: i64) -> anyhow::Result<Taxonomy> {
    let row: TaxonomyRow = sqlx::query_as(
        "SELECT id, name, scale_min, scale_max, guideline_revision FROM taxonomies WHERE id = $1",
    )
    .bind(id)
    .fetch_one(pool)
    .await?;
    let keywords: Vec<KeywordRow> = sqlx::query_as(
        "SELECT k.id, k.name, k.position,
                (SELECT g.body FROM keyword_guidelines g WHERE g.keyword_id = k.id
                 ORDER BY g.version DESC LIMIT 1) AS guideline
         FROM keywords k WHERE k.taxonomy_id = $1 AND k.retired_at IS NULL ORDER BY k.position",
    )
    .bind(id)
    .fetch_all(pool)
    .await?;
    Ok(Taxonomy {
        id: row.id,
        name: row.name,
        scale_min: row.scale_min,
        scale_max: row.scale_max,
        guideline_revision: row.guideline_revision,
        keywords: keywords
            .into_iter()
            .map(|k| Keyword {
                id: k.id,
                name: k.name,
                position: k.position,
                guideline: k.guideline.unwrap_or_default(),
            })
            .collect(),
    })
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TaxonomySummary {
    pub id: i64,
    pub name: String,
    pub description: String,
    pub keywords: i64,
    pub reviews: i64,
}

/// A taxonomy as a picker offers it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TaxonomyChoice {
    pub id: i64,
    pub name: String,
    pub has_reviews: bool,
}

/// Every taxonomy for a picker, without counting reviews (one index probe each).
pub async fn choices(pool: &PgPool) -> sqlx::Result<Vec<TaxonomyChoice>> {
    sqlx::query_as(
        "SELECT t.id, t.name, EXISTS (SELECT 1 FROM reviews r WHERE r.taxonomy_id = t.id) AS has_reviews
         FROM taxonomies t ORDER BY t.id",
    )
    .fetch_all(pool)
    .await
}

/// Every taxonomy's name (one small query, whatever the number of reviews).
pub async fn names(pool: &PgPool) -> sqlx::Result<Vec<String>> {
    sqlx::query_scalar("SELECT name FROM taxonomies").fetch_all(pool).await
}

pub async fn list(pool: &PgPool) -> sqlx::Result<Vec<TaxonomySummary>> {
    sqlx::query_as(
        "SELECT t.id, t.name, t.description,
                (SELECT count(*) FROM keywords k WHERE k.taxonomy_id = t.id AND k.retired_at IS NULL) AS keywords,
                (SELECT count(*) FROM reviews r WHERE r.taxonomy_id = t.id) AS reviews
         FROM taxonomies t ORDER BY t.id",
    )
    .fetch_all(pool)
    .await
}
