//! Scratch databases on the configured server: benchmarks, simulations, the audit's
//! power measurement and the tests each make their own and drop it after.

use sqlx::migrate::MigrateDatabase;
use sqlx::{PgPool, Postgres};

/// The same server, another database name.
pub fn url(database_url: &str, name: &str) -> String {
    let (base, query) = match database_url.split_once('?') {
        Some((b, q)) => (b, format!("?{q}")),
        None => (database_url, String::new()),
    };
    let server = base.rsplit_once('/').map(|(s, _)| s).unwrap_or(base);
    format!("{server}/{name}{query}")
}

/// A fresh, migrated scratch database, dropped first if an earlier run left it.
pub async fn fresh(url: &str) -> anyhow::Result<PgPool> {
    if Postgres::database_exists(url).await? {
        Postgres::force_drop_database(url).await?;
    }
    super::connect(url).await
}

/// Closes the pool and drops its database.
pub async fn drop(pool: PgPool, url: &str) -> anyhow::Result<()> {
    pool.close().await;
    Postgres::force_drop_database(url).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scratch_url_keeps_the_server_and_the_options() {
        assert_eq!(url("postgres://h:5432/app?sslmode=disable", "x"), "postgres://h:5432/x?sslmode=disable");
        assert_eq!(url("postgres://h/app", "x"), "postgres://h/x");
    }
}
