//! `reviewloop bench select`: composing a round from a large scored pool. The pool is
//! generated in SQL (reviews over 7 malls × 4 categories, predictions with uniform
//! strategy scores), then a mixed round is composed several times: time, and the peak
//! memory of composing (the pool is read in pages, so it should not follow the pool).

use std::time::Instant;

use crate::config::Settings;
use crate::rounds::{GroupBy, RoundSpec, Sampling};
use crate::select::Quota;
use crate::store::scratch;

use super::rss::{peak_rss_mb, reset_peak_rss};

/// The strategies a benchmark round mixes unless told.
pub const SELECT_QUOTAS: &str = "keyword-boundary=0.25,sentiment-uncertainty=0.2,rare-tokens=0.15,\
                      cluster-outliers=0.15,keyword-quota=0.1,random=0.15";

pub async fn select(
    settings: &Settings,
    pool_size: usize,
    items: usize,
    runs: usize,
    quotas_text: &str,
) -> anyhow::Result<()> {
    let url = scratch::url(&settings.database_url, "reviewloop_bench_select");
    let pool = scratch::fresh(&url).await?;
    let started = Instant::now();
    generate(&pool, pool_size).await?;
    println!("generated {pool_size} scored reviews in {:.1} s", started.elapsed().as_secs_f64());
    let taxonomy_id: i64 =
        sqlx::query_scalar("SELECT id FROM taxonomies WHERE name = 'fashion'").fetch_one(&pool).await?;
    let quotas = Quota::parse_list(quotas_text).map_err(anyhow::Error::msg)?;
    let mut times = Vec::new();
    reset_peak_rss();
    let before = peak_rss_mb();
    for run in 0..runs.max(1) {
        let spec = RoundSpec {
            name: format!("bench {run}"),
            size: items,
            sampling: Sampling::Proportional,
            group_by: GroupBy::MallCategory,
            double_share: 0.1,
            seed: run as u64,
            members: vec![],
            quotas: quotas.clone(),
            assist: Default::default(),
            assist_doubled: false,
            diverse: false,
            cycle: None,
        };
        let started = Instant::now();
        let round = crate::rounds::create(&pool, taxonomy_id, &spec, None).await?;
        times.push(started.elapsed().as_secs_f64());
        anyhow::ensure!(round.items == items, "round has {} items", round.items);
        // The next run composes from the same pool again.
        sqlx::query("DELETE FROM rounds WHERE id = $1").bind(round.id).execute(&pool).await?;
    }
    let peak = peak_rss_mb();
    times.sort_by(f64::total_cmp);
    println!(
        "round of {items} from {pool_size} scored reviews ({quotas_text}; 28 mall/category groups): \
         median {:.2} s, best {:.2} s, worst {:.2} s over {} runs",
        times[times.len() / 2],
        times[0],
        times[times.len() - 1],
        times.len()
    );
    println!("  peak RSS while composing {peak:.0} MB (before: {before:.0} MB)");
    crate::store::scratch::drop(pool, &url).await?;
    Ok(())
}

async fn generate(pool: &sqlx::PgPool, n: usize) -> anyhow::Result<()> {
    sqlx::query(
        "INSERT INTO reviews (taxonomy_id, text, mall, category, content_hash, split)
         SELECT t.id, '생성된 리뷰 ' || i || ' 배송 빠르고 옷이 예뻐요', 'mall' || (i % 7), 'cat' || (i % 4),
                sha256(int8send(i)), 'train'
         FROM taxonomies t, generate_series(1, $1::bigint) AS i WHERE t.name = 'fashion'",
    )
    .bind(n as i64)
    .execute(pool)
    .await?;
    let version: i64 = sqlx::query_scalar(
        "INSERT INTO model_versions (taxonomy_id, kind, name, path, status)
         SELECT id, 'keyword', 'bench', '/bench/keyword', 'active' FROM taxonomies WHERE name = 'fashion' RETURNING id",
    )
    .fetch_one(pool)
    .await?;
    sqlx::query(
        "INSERT INTO review_scores (review_id, model_version_id, boundary, uncertainty, rarity, outlier, cluster,
                                    boundary_keyword)
         SELECT r.id, $1, random(), CASE WHEN random() < 0.7 THEN random() END, random() * 0.5,
                random() * 4 - 1, (r.id % 50)::int, (r.id % 5)::smallint
         FROM reviews r",
    )
    .bind(version)
    .execute(pool)
    .await?;
    sqlx::query("ANALYZE").execute(pool).await?;
    Ok(())
}
