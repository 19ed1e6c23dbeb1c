//! `reviewloop bench score --pool N`: a sharded scoring pass and the clustering pass
//! over N generated reviews, on a scratch database, through the job a worker runs.
//!
//! A model is trained first on 400 generated labelled reviews (1 epoch: its accuracy
//! is beside the point), its int8 copy made and both stored as every version is; the
//! pool is generated after, in SQL. One worker (this process, all its threads) then
//! claims the `score` job from an empty cache (the version is fetched from storage),
//! and the clustering pass runs on its own. Peak RSS is the process's high-water mark,
//! reset before each phase (`/proc/self/clear_refs`).
//!
//! `--prescored K` stores made-up predictions (random embeddings) for the first K
//! reviews in SQL before the pass, so that a pool of a million can be measured in
//! minutes: the model scores the other N − K, every query and the clustering pass run
//! at the full pool's size.

use std::time::Instant;

use serde::Serialize;

use super::rss::{peak_rss_mb, reset_peak_rss};
use crate::config::Settings;
use crate::import::{self, Format, ImportOptions};
use crate::jobs::{worker, NewJob, WorkerConfig};
use crate::model::quantize::Precision;
use crate::names::SafeName;
use crate::storage::Storage;
use crate::store::{jobs as queue, scratch};
use crate::train::settings::TrainSettings;
use crate::train::{lighter, pipeline};

pub struct ScoreBench {
    pub pool: usize,
    /// Train from this base instead of the offline small encoder.
    pub base: Option<SafeName>,
    /// Score with the f32 model instead of its int8 copy.
    pub f32: bool,
    pub chunk_size: usize,
    pub batch_size: usize,
    /// Reviews given made-up predictions before the pass (see the module comment).
    pub prescored: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct ScoreFigures {
    pub pool: usize,
    /// Of the pool, reviews the model scored (the others were prescored).
    pub scored: usize,
    pub model: String,
    pub threads: usize,
    /// Storing the trained (f32) version and its int8 copy for every host.
    pub upload: Vec<Upload>,
    pub scoring_seconds: f64,
    pub reviews_per_second: f64,
    /// Keywords found per scored review: each is one more encoder pass (the sentiment
    /// model reads the review paired with the keyword), so throughput follows it.
    pub keywords_per_review: f64,
    pub scoring_peak_rss_mb: f64,
    pub clusters: usize,
    pub clustering_seconds: f64,
    pub clustering_peak_rss_mb: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Upload {
    pub what: String,
    pub megabytes: f64,
    pub seconds: f64,
}

const LABELLED: usize = 400;
const TAXONOMY: &str = "fashion";

pub async fn score(settings: &Settings, bench: &ScoreBench) -> anyhow::Result<ScoreFigures> {
    let url = scratch::url(&settings.database_url, "reviewloop_bench_score");
    let pool = scratch::fresh(&url).await?;
    let work = tempfile::Builder::new().prefix("reviewloop-bench-score-").tempdir()?;
    let (trainer_dir, worker_dir) = (work.path().join("trainer"), work.path().join("worker"));
    let mut upload = Vec::new();
    let labelled = super::generated_csv(LABELLED, true);
    import::import(&pool, &labelled[..], &ImportOptions::new(TAXONOMY, Format::Csv, "labelled.csv")).await?;
    let storage = Storage::open(&pool, &settings.storage)?;
    let mut train = TrainSettings::starting_from(TAXONOMY, trainer_dir.clone(), bench.base.clone());
    if let Some(base) = &bench.base {
        train.bases_dir = Some(settings.data_dir.clone());
        let stored = crate::bases::store(&storage, &settings.data_dir, base).await?;
        upload.extend(stored.map(|s| uploaded(&format!("base {base}"), &s)));
    }
    train.name = Some("bench".into());
    train.fit.epochs = 1;
    train.storage = Some(settings.storage.clone());
    let trained = pipeline::run(&pool, &train, &mut |_, _| {}).await?;
    upload.extend(trained.stored.as_ref().map(|s| uploaded("version (f32)", s)));
    let encoder = match &bench.base {
        Some(base) => format!("base {base}"),
        None => "offline small encoder".to_string(),
    };
    let mut model = format!("{encoder} (f32)");
    if !bench.f32 {
        let place = lighter::Place { models_dir: &trainer_dir, storage: Some(&settings.storage) };
        let int8 = lighter::quantize(&pool, place, TAXONOMY, "bench", Precision::Int8, None).await?;
        upload.extend(int8.stored.as_ref().map(|s| uploaded("version (int8)", s)));
        model = model.replace("(f32)", "(int8)");
    }
    generate_pool(&pool, bench.pool).await?;
    let version = crate::store::models::serving(&pool, TAXONOMY).await?;
    let prescored = bench.prescored.min(bench.pool);
    if prescored > 0 {
        let config = crate::model::folder::read_config(&trainer_dir.join(&version.path))?;
        prescore(&pool, version.id, prescored, config.hidden_size).await?;
    }
    // What was just written is vacuumed and analysed now, as in a database that has
    // lived a while; else autovacuum does it during the pass, on one of the two cores.
    sqlx::query("VACUUM ANALYZE reviews, predictions, review_scores").execute(&pool).await?;

    let mut config = WorkerConfig::new(worker_dir);
    config.storage = settings.storage.clone();
    let payload = serde_json::json!({
        "taxonomy": TAXONOMY, "cluster": false, "chunk_size": bench.chunk_size, "batch_size": bench.batch_size,
    });
    queue::enqueue(&mut *pool.acquire().await?, &NewJob::new("score", payload)).await?;
    reset_peak_rss();
    let started = Instant::now();
    let (job, outcome) =
        worker::run_next(&pool, &config).await?.ok_or_else(|| anyhow::anyhow!("no job claimed"))?;
    anyhow::ensure!(outcome == worker::Outcome::Succeeded, "scoring job {}: {outcome:?}", job.id);
    let scoring_seconds = started.elapsed().as_secs_f64();
    let scoring_peak_rss_mb = peak_rss_mb();

    reset_peak_rss();
    let started = Instant::now();
    let clusters = crate::score::cluster_version(&pool, version.id, None, 42, &Default::default()).await?;
    let clustering_seconds = started.elapsed().as_secs_f64();
    let clustering_peak_rss_mb = peak_rss_mb();
    let keywords_per_review = found_per_review(&pool, version.id, bench.pool + LABELLED - prescored).await?;
    scratch::drop(pool, &url).await?;
    Ok(ScoreFigures {
        pool: bench.pool,
        scored: bench.pool + LABELLED - prescored,
        model,
        threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
        upload,
        scoring_seconds,
        reviews_per_second: (bench.pool + LABELLED - prescored) as f64 / scoring_seconds,
        keywords_per_review,
        scoring_peak_rss_mb,
        clusters,
        clustering_seconds,
        clustering_peak_rss_mb,
    })
}

fn uploaded(what: &str, stored: &crate::storage::Stored) -> Upload {
    Upload { what: what.into(), megabytes: stored.bytes as f64 / 1e6, seconds: stored.seconds }
}

/// `n` unlabelled reviews in SQL: the generated file's openings and endings, 7 malls ×
/// 4 categories, each text unique.
async fn generate_pool(pool: &sqlx::PgPool, n: usize) -> anyhow::Result<()> {
    sqlx::query(
        "INSERT INTO reviews (taxonomy_id, text, mall, category, content_hash, split)
         SELECT t.id,
                (ARRAY['옷은 예쁘지만', '색상이 화면과 똑같고', '사이즈가 조금 작아서', '소재가 부드러워서',
                       '가격 대비', '배송이 빨라서'])[1 + i % 6] || ' ' ||
                (ARRAY['배송은 늦어요', '만족합니다 👍', '재구매 의사 있어요', '교환했어요',
                       '핏이 예뻐요'])[1 + (i / 6) % 5] || ' (주문 ' || i || ')',
                'mall' || (i % 7), 'cat' || (i % 4), sha256(int8send(i)), 'train'
         FROM taxonomies t, generate_series(1, $1::bigint) AS i WHERE t.name = $2",
    )
    .bind(n as i64)
    .bind(TAXONOMY)
    .execute(pool)
    .await?;
    sqlx::query("ANALYZE reviews").execute(pool).await?;
    Ok(())
}

/// Made-up predictions for the first `n` unlabelled reviews: uniform probabilities and
/// strategy scores, a random embedding of `dim` values each.
async fn prescore(pool: &sqlx::PgPool, version_id: i64, n: usize, dim: usize) -> anyhow::Result<()> {
    let reviews = "SELECT r.id FROM reviews r
                   WHERE NOT EXISTS (SELECT 1 FROM annotations a WHERE a.review_id = r.id)
                   ORDER BY r.id LIMIT $2";
    sqlx::query(&format!(
        "INSERT INTO predictions (review_id, model_version_id, keyword_probs, sentiment, embedding, rarity)
         SELECT r.id, $1, ARRAY[random()::real], '{{}}',
                ARRAY(SELECT random()::real - 0.5 FROM generate_series(1, $3 + 0 * r.id)), random()::real
         FROM ({reviews}) r"
    ))
    .bind(version_id)
    .bind(n as i64)
    .bind(dim as i32)
    .execute(pool)
    .await?;
    sqlx::query(&format!(
        "INSERT INTO review_scores (review_id, model_version_id, boundary, uncertainty, rarity, balance)
         SELECT r.id, $1, random(), random(), random(), random() FROM ({reviews}) r"
    ))
    .bind(version_id)
    .bind(n as i64)
    .execute(pool)
    .await?;
    Ok(())
}

/// Mean keywords found per review the model scored (prescored reviews have none).
async fn found_per_review(pool: &sqlx::PgPool, version_id: i64, scored: usize) -> sqlx::Result<f64> {
    let found: f64 = sqlx::query_scalar(
        "SELECT coalesce(sum((SELECT count(*) FROM jsonb_object_keys(p.sentiment))), 0)::float8
         FROM predictions p WHERE p.model_version_id = $1",
    )
    .bind(version_id)
    .fetch_one(pool)
    .await?;
    Ok(found / scored.max(1) as f64)
}
