//! `reviewloop bench …`: throughput figures measured on generated data in a scratch
//! database, so they never touch real work.

use std::io::Write;
use std::time::Instant;

use sqlx::migrate::MigrateDatabase;

use crate::config::Settings;
use crate::import::{self, Format, ImportOptions};

/// Korean-looking reviews with malls, categories and compact labels, reproducible.
pub fn generated_csv(rows: usize) -> Vec<u8> {
    const OPENINGS: [&str; 6] = [
        "옷은 예쁘지만",
        "색상이 화면과 똑같고",
        "사이즈가 조금 작아서",
        "소재가 부드러워서",
        "가격 대비",
        "배송이 빨라서",
    ];
    const ENDINGS: [&str; 5] = [
        "배송은 늦어요",
        "만족합니다 👍",
        "재구매 의사 있어요",
        "교환했어요",
        "핏이 예뻐요",
    ];
    const LABELS: [&str; 5] = [
        "디자인1, 배송-1",
        "만족도 2",
        "사이즈-1, 만족도 1",
        "",
        "핏1, 색상 2",
    ];
    let mut out = Vec::with_capacity(rows * 80);
    out.extend_from_slice(b"external_id,mall,category,text,labels\n");
    for i in 0..rows {
        let _ = writeln!(
            out,
            "g{i},mall{},cat{},\"{} {} (주문 {i})\",\"{}\"",
            i % 7,
            i % 4,
            OPENINGS[i % OPENINGS.len()],
            ENDINGS[(i / 6) % ENDINGS.len()],
            LABELS[i % LABELS.len()]
        );
    }
    out
}

pub async fn import(settings: &Settings, rows: usize) -> anyhow::Result<()> {
    let url = scratch_url(&settings.database_url, "reviewloop_bench");
    if sqlx::Postgres::database_exists(&url).await? {
        sqlx::Postgres::drop_database(&url).await?;
    }
    let pool = crate::store::connect(&url).await?;
    let data = generated_csv(rows);
    let options = ImportOptions::new("fashion", Format::Csv, "bench.csv");
    let started = Instant::now();
    let summary = import::import(&pool, &data[..], &options).await?;
    let elapsed = started.elapsed().as_secs_f64();
    println!(
        "import: {} rows ({} MB CSV, {} labels) in {:.2} s = {:.0} rows/s",
        rows,
        data.len() / 1_000_000,
        summary.labels_added,
        elapsed,
        rows as f64 / elapsed
    );
    let started = Instant::now();
    let again = import::import(&pool, &data[..], &options).await?;
    let elapsed = started.elapsed().as_secs_f64();
    println!(
        "re-import (all duplicates: {}): {:.2} s = {:.0} rows/s",
        again.duplicates,
        elapsed,
        rows as f64 / elapsed
    );
    pool.close().await;
    sqlx::Postgres::drop_database(&url).await?;
    Ok(())
}

/// The same server, another database name.
pub fn scratch_url(database_url: &str, name: &str) -> String {
    let (base, query) = match database_url.split_once('?') {
        Some((b, q)) => (b, format!("?{q}")),
        None => (database_url, String::new()),
    };
    let server = base.rsplit_once('/').map(|(s, _)| s).unwrap_or(base);
    format!("{server}/{name}{query}")
}
