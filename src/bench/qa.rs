//! `bench qa`: the reviewer's pages over real HTTP on a taxonomy of many reviews
//! (`scripts/bench_qa_data.sql`: labels, doubled answers, a guideline change and
//! re-labelled reviews, predictions, label issues). Each page is asked for again and
//! again, one request at a time, and its p50 / p99 printed. With `--url`, the pages of
//! an app already serving a database prepared with the same script are timed instead
//! (how an older binary is measured beside this one).

use std::time::Instant;

use crate::config::Settings;

/// The data script, shared with `psql -v reviews=N -f scripts/bench_qa_data.sql`.
const DATA: &str = include_str!("../../scripts/bench_qa_data.sql");
/// The session the script gives its reviewer.
const SESSION: &str = "bench-qa-session";

pub struct QaBench {
    pub reviews: usize,
    pub requests: usize,
    /// An app already serving a database the script prepared (its `DATABASE_URL`).
    pub url: Option<String>,
}

/// One page's latencies, in milliseconds.
pub struct PageFigures {
    pub page: String,
    pub p50: f64,
    pub p99: f64,
    pub max: f64,
}

pub async fn qa(settings: &Settings, bench: &QaBench) -> anyhow::Result<Vec<PageFigures>> {
    match &bench.url {
        Some(url) => {
            // Connected as it is: migrating would change what is measured.
            let pool = sqlx::PgPool::connect(&settings.database_url).await?;
            time_pages(&pool, url, bench.requests).await
        }
        None => {
            let url = crate::store::scratch::url(&settings.database_url, "reviewloop_bench_qa");
            let pool = crate::store::scratch::fresh(&url).await?;
            prepare(&pool, bench.reviews).await?;
            let app = crate::web::Application::build(pool.clone(), settings.clone(), "127.0.0.1:0").await?;
            let address = format!("http://127.0.0.1:{}", app.port());
            let server = actix_web::rt::spawn(app.run_until_stopped());
            let figures = time_pages(&pool, &address, bench.requests).await;
            server.abort();
            crate::store::scratch::drop(pool, &url).await?;
            figures
        }
    }
}

/// Runs the data script with `reviews` in place of its variable (psql's own lines
/// left out, its VACUUM on its own).
pub async fn prepare(pool: &sqlx::PgPool, reviews: usize) -> anyhow::Result<()> {
    let started = Instant::now();
    // VACUUM runs alone: not inside the other statements' implicit transaction.
    let (vacuum, statements): (Vec<&str>, Vec<&str>) =
        DATA.lines().filter(|l| !l.trim_start().starts_with('\\')).partition(|l| l.starts_with("VACUUM"));
    let sql = statements.join("\n").replace(":reviews", &reviews.to_string());
    // Its own connection, without sqlx's slow-statement warning (which would print it all).
    let options = sqlx::ConnectOptions::disable_statement_logging(pool.connect_options().as_ref().clone());
    let mut connection = sqlx::ConnectOptions::connect(&options).await?;
    sqlx::raw_sql(&sql).execute(&mut connection).await?;
    for statement in vacuum {
        sqlx::raw_sql(statement).execute(&mut connection).await?;
    }
    eprintln!("prepared {reviews} reviews in {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}

/// The pages a reviewer works through, with their ids read from the database.
async fn pages(pool: &sqlx::PgPool) -> anyhow::Result<Vec<(String, String)>> {
    let keyword = |position: i32| {
        sqlx::query_scalar::<_, i64>(
            "SELECT k.id FROM keywords k JOIN taxonomies t ON t.id = k.taxonomy_id
             WHERE t.name = 'fashion' AND k.position = $1",
        )
        .bind(position)
        .fetch_one(pool)
    };
    let (edited, other) = (keyword(0).await?, keyword(5).await?);
    Ok(vec![
        ("audit table".into(), "/qa/audit?taxonomy=fashion".into()),
        ("keyword, definition edited".into(), format!("/qa/keywords/{edited}")),
        ("keyword, prefilled only".into(), format!("/qa/keywords/{edited}?prefilled=1")),
        ("another keyword".into(), format!("/qa/keywords/{other}")),
        ("adjudication".into(), "/qa/adjudicate?taxonomy=fashion".into()),
    ])
}

async fn time_pages(pool: &sqlx::PgPool, base: &str, requests: usize) -> anyhow::Result<Vec<PageFigures>> {
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build()?;
    let mut figures = Vec::new();
    let mut queue = pages(pool).await?;
    while !queue.is_empty() {
        let (name, path) = queue.remove(0);
        let get = || async {
            let response = client
                .get(format!("{base}{path}"))
                .header("cookie", format!("rl_session={SESSION}"))
                .send()
                .await?;
            anyhow::ensure!(response.status().is_success(), "{path}: {}", response.status());
            Ok::<String, anyhow::Error>(response.text().await?)
        };
        let page = get().await?;
        for _ in 0..2 {
            get().await?;
        }
        let mut times = Vec::with_capacity(requests);
        for _ in 0..requests {
            let started = Instant::now();
            get().await?;
            times.push(started.elapsed().as_secs_f64() * 1000.0);
        }
        times.sort_by(f64::total_cmp);
        let at = |q: f64| times[((times.len() - 1) as f64 * q).round() as usize];
        let f = PageFigures { page: format!("{name} ({path})"), p50: at(0.5), p99: at(0.99), max: at(1.0) };
        println!("  {:<62} p50 {:8.1} ms   p99 {:8.1} ms   max {:8.1} ms", f.page, f.p50, f.p99, f.max);
        figures.push(f);
        // A list's next page, where the page links one.
        if let Some(next) = next_page(&page).filter(|_| !name.ends_with("next page")) {
            queue.insert(0, (format!("{name}, next page"), next));
        }
    }
    Ok(figures)
}

/// The `href` of the page's "next page" link (`id="next-page"`), unescaped.
fn next_page(html: &str) -> Option<String> {
    let marker = "id=\"next-page\" href=\"";
    let start = html.find(marker)? + marker.len();
    let end = html[start..].find('"')? + start;
    Some(html[start..end].replace("&amp;", "&").replace("&#38;", "&"))
}
