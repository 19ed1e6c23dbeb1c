//! `reviewloop bench …`: throughput figures measured on generated data in a scratch
//! database, so they never touch real work.

use std::io::Write;
use std::time::Instant;

use crate::config::Settings;
use crate::import::{self, Format, ImportOptions};

mod adversary;
mod highlights;
mod models;
mod qa;
mod rss;
pub use models::{model_configs, models, ModelBench};
mod score;
mod select;
mod serve;
pub use adversary::AdversaryFigures;
pub use highlights::{highlights, HighlightFigures};
pub use qa::{qa, PageFigures, QaBench};
pub use score::{score, ScoreBench, ScoreFigures};
pub use select::{select, SELECT_QUOTAS};
pub use serve::{serve, LoadFigures, ServeBench};

/// Korean-looking reviews with malls and categories, reproducible; with compact labels
/// on four rows of five when `labelled`.
pub fn generated_csv(rows: usize, labelled: bool) -> Vec<u8> {
    const OPENINGS: [&str; 6] = [
        "옷은 예쁘지만",
        "색상이 화면과 똑같고",
        "사이즈가 조금 작아서",
        "소재가 부드러워서",
        "가격 대비",
        "배송이 빨라서",
    ];
    const ENDINGS: [&str; 5] =
        ["배송은 늦어요", "만족합니다 👍", "재구매 의사 있어요", "교환했어요", "핏이 예뻐요"];
    const LABELS: [&str; 5] = ["디자인1, 배송-1", "만족도 2", "사이즈-1, 만족도 1", "", "핏1, 색상 2"];
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
            if labelled { LABELS[i % LABELS.len()] } else { "" }
        );
    }
    out
}

pub async fn import(settings: &Settings, rows: usize) -> anyhow::Result<()> {
    let url = crate::store::scratch::url(&settings.database_url, "reviewloop_bench");
    let pool = crate::store::scratch::fresh(&url).await?;
    let data = generated_csv(rows, true);
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
    crate::store::scratch::drop(pool, &url).await?;
    Ok(())
}

/// Latency of the annotator's loop over real HTTP: load an item's page, submit an
/// answer (which claims the next item and leads to it). The pool is `pool_size` generated reviews, the round
/// `items` of them; with `suggested`, a `shown` round whose items carry stored
/// suggestions (three keywords with two highlighted words each, as the suggest job
/// writes them), so the page renders them and the submit records what was kept.
pub async fn annotate(
    settings: &Settings,
    pool_size: usize,
    items: usize,
    suggested: bool,
) -> anyhow::Result<()> {
    let url = crate::store::scratch::url(&settings.database_url, "reviewloop_bench_annotate");
    let pool = crate::store::scratch::fresh(&url).await?;
    let data = generated_csv(pool_size, false);
    import::import(&pool, &data[..], &ImportOptions::new("fashion", Format::Csv, "bench.csv")).await?;
    let taxonomy = crate::store::taxonomies::load_by_name(&pool, "fashion").await?;
    let spec = crate::rounds::RoundSpec {
        name: "bench".into(),
        size: items,
        sampling: crate::rounds::Sampling::Proportional,
        group_by: crate::rounds::GroupBy::MallCategory,
        double_share: 0.0,
        seed: 1,
        members: vec![],
        quotas: vec![],
        assist: if suggested { crate::rounds::Assist::Shown } else { crate::rounds::Assist::Off },
        assist_doubled: false,
        diverse: false,
        cycle: None,
    };
    let round = crate::rounds::create(&pool, taxonomy.id, &spec, None).await?;
    if suggested {
        let keywords: Vec<serde_json::Value> = taxonomy.keywords.iter().take(3).map(|k| {
            serde_json::json!({"keyword": k.name, "probability": 0.9, "sentiment": 1,
                "highlights": [{"word": "옷은", "start": 0, "end": 2, "score": 0.4}, {"word": "배송", "start": 3, "end": 5, "score": 0.2}]})
        }).collect();
        let suggestion = serde_json::json!({"keywords": keywords, "levels": [-2, -1, 0, 1, 2]});
        sqlx::query("UPDATE round_items SET suggestion = $2 WHERE round_id = $1")
            .bind(round.id)
            .bind(&suggestion)
            .execute(&pool)
            .await?;
    }
    let user =
        crate::store::users::create(&pool, "bench", "bench-password", crate::store::users::Role::Annotator)
            .await?;
    let session = crate::store::sessions::start(&pool, user.id).await?;
    let csrf: String = sqlx::query_scalar("SELECT csrf_token FROM sessions WHERE user_id = $1")
        .bind(user.id)
        .fetch_one(&pool)
        .await?;
    let app = crate::web::Application::build(pool.clone(), settings.clone(), "127.0.0.1:0").await?;
    let address = format!("127.0.0.1:{}", app.port());
    let server = actix_web::rt::spawn(app.run_until_stopped());
    let keyword = taxonomy.keywords[0].id;
    let (mut page_ms, mut submit_ms) = (Vec::new(), Vec::new());
    let annotator = http::Annotator::new(&address, &session)?;
    // The start button claims the first item; each submit claims the next one.
    let start = [("csrf".to_string(), csrf.clone())];
    let started = annotator.post_form(&format!("/annotate/rounds/{}/next", round.id), &start).await?;
    let mut next = started.location;
    while let Some(item) = next.filter(|l| l.starts_with("/annotate/items/")) {
        let started = Instant::now();
        let page = annotator.get(&item).await?;
        page_ms.push(started.elapsed().as_secs_f64() * 1000.0);
        let token = http::attribute(&page.body, "name=\"token\" value=\"").unwrap_or_default();
        let form = [
            ("csrf".to_string(), csrf.clone()),
            ("token".to_string(), token),
            (format!("k{keyword}"), "on".to_string()),
            (format!("s{keyword}"), "1".to_string()),
        ];
        let started = Instant::now();
        next = annotator.post_form(&item, &form).await?.location;
        submit_ms.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    server.abort();
    let with = if suggested { ", suggestions shown" } else { "" };
    println!("annotate loop over HTTP: pool {pool_size} reviews, round {} items{with}", round.items);
    for (name, mut times) in [("item page", page_ms), ("submit + claim next", submit_ms)] {
        times.sort_by(f64::total_cmp);
        let at = |q: f64| times[((times.len() - 1) as f64 * q).round() as usize];
        println!("  {name:<18} p50 {:6.2} ms   p99 {:6.2} ms   max {:6.2} ms", at(0.5), at(0.99), at(1.0));
    }
    crate::store::scratch::drop(pool, &url).await?;
    Ok(())
}

/// The annotator's browser: one keep-alive client with the session cookie, following
/// no redirects (the benchmark reads where "next item" leads).
mod http {
    pub struct Annotator {
        client: reqwest::Client,
        base: String,
        cookie: String,
    }

    /// An answer: where it redirects to, and its body.
    pub struct Answer {
        pub location: Option<String>,
        pub body: String,
    }

    impl Annotator {
        pub fn new(address: &str, session: &str) -> anyhow::Result<Self> {
            let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build()?;
            Ok(Annotator {
                client,
                base: format!("http://{address}"),
                cookie: format!("rl_session={session}"),
            })
        }

        pub async fn get(&self, path: &str) -> anyhow::Result<Answer> {
            answer(self.client.get(format!("{}{path}", self.base)).header("cookie", &self.cookie)).await
        }

        pub async fn post_form(&self, path: &str, form: &[(String, String)]) -> anyhow::Result<Answer> {
            answer(self.client.post(format!("{}{path}", self.base)).header("cookie", &self.cookie).form(form))
                .await
        }
    }

    async fn answer(request: reqwest::RequestBuilder) -> anyhow::Result<Answer> {
        let response = request.send().await?;
        let location = response.headers().get("location").and_then(|l| l.to_str().ok()).map(String::from);
        Ok(Answer { location, body: response.text().await? })
    }

    pub fn attribute(html: &str, marker: &str) -> Option<String> {
        let start = html.find(marker)? + marker.len();
        let end = html[start..].find('"')? + start;
        Some(html[start..end].to_string())
    }
}
