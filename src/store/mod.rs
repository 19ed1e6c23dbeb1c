//! PostgreSQL access, one file per aggregate.

pub mod adjudication;
pub mod annotations;
pub mod api_keys;
pub mod assignments;
pub mod assist_stats;
pub mod audit;
pub mod bundles;
pub mod devices;
pub mod guidelines;
pub mod jobs;
pub mod label_issues;
pub mod loops;
pub mod models;
pub mod predictions;
pub mod qa_summaries;
pub mod reviews;
pub mod rounds;
pub mod scratch;
pub mod sessions;
pub mod simulations;
pub mod taxonomies;
pub mod users;

use anyhow::Context;
use sqlx::migrate::MigrateDatabase;
use sqlx::postgres::PgPoolOptions;
use sqlx::{PgPool, Postgres};

/// Connects, creating the database if it is missing, and applies migrations.
pub async fn connect(database_url: &str) -> anyhow::Result<PgPool> {
    let exists = Postgres::database_exists(database_url)
        .await
        .with_context(|| format!("cannot reach PostgreSQL at {}", redact(database_url)))?;
    if !exists {
        Postgres::create_database(database_url)
            .await
            .with_context(|| format!("cannot create database {}", redact(database_url)))?;
    }
    let pool = PgPoolOptions::new()
        .max_connections(16)
        .connect(database_url)
        .await
        .with_context(|| format!("cannot connect to {}", redact(database_url)))?;
    sqlx::migrate!("./migrations").run(&pool).await.context("migrations failed")?;
    taxonomies::ensure_builtin(&pool).await?;
    Ok(pool)
}

/// The URL without its password, for error messages.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let creds = &url[scheme + 3..at];
            let user = creds.split(':').next().unwrap_or("");
            format!("{}{}:***{}", &url[..scheme + 3], user, &url[at..])
        }
        _ => url.to_string(),
    }
}
