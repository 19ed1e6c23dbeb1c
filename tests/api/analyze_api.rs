//! The analysis API: response shape, every error code, keys and their revocation, rate
//! limits, overload, the OpenAPI document, the try-it page, and a promotion under load
//! that loses no request.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use reviewloop::config::Settings;
use reviewloop::import::Format;
use reviewloop::promotion::{self, Gate};
use reviewloop::serve::rate::REQUEST_UNIT;
use reviewloop::store::{api_keys, users::Role};
use reviewloop::train::pipeline;
use serde_json::{json, Value};

use crate::helpers::{client, csrf_in, pairs, TestApp};
use crate::train::{labelled_csv, scratch_dir, settings};

/// An app serving a trained tiny version `v1` (and a ready `v2` when `second`), with a key.
pub(crate) struct Serving {
    pub app: TestApp,
    pub key: String,
    models: PathBuf,
    /// The trained versions' folders, `v1` first.
    versions: Vec<PathBuf>,
}

impl Drop for Serving {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.models);
    }
}

/// Every keyword's threshold set to 0, so every keyword is "found" and the response
/// carries sentiment and highlights for all of them (the tiny model finds little).
fn find_everything(version_dir: &Path) {
    let path = version_dir.join("keyword/labels.json");
    let mut labels: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let n = labels["thresholds"].as_array().unwrap().len();
    labels["thresholds"] = json!(vec![0.0; n]);
    std::fs::write(&path, labels.to_string()).unwrap();
}

pub(crate) async fn serving(change: impl FnOnce(&mut Settings), second: bool) -> Serving {
    let app = TestApp::spawn_with(change).await;
    app.import_text("fashion", Format::Csv, &labelled_csv()).await;
    let models = scratch_dir();
    let mut versions = Vec::new();
    for name in if second { &["v1", "v2"][..] } else { &["v1"][..] } {
        let outcome = pipeline::run(&app.pool, &settings(&models, name), &mut |_, _| {}).await.unwrap();
        find_everything(&outcome.dir);
        versions.push(outcome.dir);
    }
    let taxonomy = app.taxonomy("fashion").await.id;
    let gate = Gate { margin: 1.0, override_reason: Some("test") };
    promotion::promote(&app.pool, taxonomy, "v1", None, &gate).await.unwrap();
    let (_, key) = api_keys::create(&app.pool, "test client", 10_000, None).await.unwrap();
    Serving { app, key, models, versions }
}

impl Serving {
    /// Makes the serving version find only `names` (thresholds 0) and never the others,
    /// for tests that need keywords both suggested and not.
    pub fn find_only(&self, names: &[&str]) {
        let path = self.versions[0].join("keyword/labels.json");
        let mut labels: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let thresholds: Vec<f64> = labels["keywords"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| if names.contains(&k.as_str().unwrap()) { 0.0 } else { 2.0 })
            .collect();
        assert!(thresholds.contains(&0.0), "the version knows {names:?}");
        labels["thresholds"] = json!(thresholds);
        std::fs::write(&path, labels.to_string()).unwrap();
    }

    pub async fn post(&self, body: Value) -> (StatusCode, Value) {
        let response = client()
            .post(self.app.url("/api/v1/analyze"))
            .bearer_auth(&self.key)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = response.status();
        (status, response.json().await.unwrap())
    }
}

fn chars(text: &str, start: usize, end: usize) -> String {
    text.chars().skip(start).take(end - start).collect()
}

#[tokio::test]
async fn one_review_and_a_batch_come_back_in_the_documented_shape() {
    let s = serving(|_| {}, false).await;
    let (status, body) = s.post(json!({"text": "배송이 빨라요 색감도 예뻐요 👍"})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["model"]["version"], "v1");
    assert_eq!(body["model"]["taxonomy"], "fashion");
    assert_eq!(body["model"]["levels"], json!([-2, -1, 0, 1, 2]));
    let results = body["results"].as_array().unwrap();
    assert_eq!(results.len(), 1);
    let keywords = results[0]["keywords"].as_array().unwrap();
    assert_eq!(keywords.len(), 15, "every keyword passes a threshold of 0");
    for k in keywords {
        let p = k["probability"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&p));
        let distribution: Vec<f64> =
            k["distribution"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
        assert_eq!(distribution.len(), 5);
        assert!((distribution.iter().sum::<f64>() - 1.0).abs() < 1e-3);
        assert!((-2..=2).contains(&k["sentiment"].as_i64().unwrap()));
    }
    let highlighted: Vec<&Value> =
        keywords.iter().flat_map(|k| k["highlights"].as_array().unwrap()).collect();
    assert!(!highlighted.is_empty(), "highlights are on by default");

    // A batch: ids echoed in order; leading spaces do not shift the spans.
    let texts = ["  사이즈가 작아요 교환했어요", "그냥 그래요", "가격 대비 최고 😊 재구매"];
    let reviews: Vec<Value> =
        texts.iter().enumerate().map(|(i, t)| json!({"id": format!("r{i}"), "text": t})).collect();
    let (status, body) = s.post(json!({"reviews": reviews})).await;
    assert_eq!(status, 200, "{body}");
    for (i, result) in body["results"].as_array().unwrap().iter().enumerate() {
        assert_eq!(result["id"], format!("r{i}"));
        for h in
            result["keywords"].as_array().unwrap().iter().flat_map(|k| k["highlights"].as_array().unwrap())
        {
            let (start, end) = (h["start"].as_u64().unwrap() as usize, h["end"].as_u64().unwrap() as usize);
            assert_eq!(chars(texts[i], start, end), h["word"].as_str().unwrap(), "span of review {i}");
        }
    }

    // Fast highlights: the same shape, spans into the text.
    let text = "배송이 빨라요 색감도 예뻐요";
    let (status, body) = s.post(json!({"text": text, "highlight_method": "fast"})).await;
    assert_eq!(status, 200, "{body}");
    for h in body["results"][0]["keywords"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|k| k["highlights"].as_array().unwrap())
    {
        let (start, end) = (h["start"].as_u64().unwrap() as usize, h["end"].as_u64().unwrap() as usize);
        assert_eq!(chars(text, start, end), h["word"].as_str().unwrap());
    }

    // Without highlights, none are computed.
    let (_, body) = s.post(json!({"text": "배송이 빨라요", "highlights": false})).await;
    assert!(body["results"][0]["keywords"].as_array().unwrap().iter().all(|k| k["highlights"] == json!([])));
}

#[tokio::test]
async fn every_bad_request_gets_its_stable_code_and_the_server_carries_on() {
    let s = serving(|settings| settings.max_text_chars = 50, false).await;
    let long = "가".repeat(51);
    let too_many: Vec<Value> = (0..65).map(|i| json!({"text": format!("리뷰 {i}")})).collect();
    let cases = [
        (json!({"text": ""}), 400, "empty_text"),
        (json!({"text": " \n\t "}), 400, "empty_text"),
        (json!({"reviews": [{"text": "좋아요"}, {"text": ""}]}), 400, "empty_text"),
        (json!({"text": long}), 400, "text_too_long"),
        (json!({"reviews": too_many}), 400, "batch_too_large"),
        (json!({"text": "좋아요", "colour": "red"}), 400, "unknown_field"),
        (json!({"reviews": [{"text": "좋아요", "mall": "x"}]}), 400, "unknown_field"),
        (json!({}), 400, "missing_text"),
        (json!({"reviews": []}), 400, "missing_text"),
        (json!({"text": "좋아요", "reviews": [{"text": "좋아요"}]}), 400, "missing_text"),
        (json!({"text": 5}), 400, "invalid_json"),
        (json!({"text": "좋아요", "highlight_method": "magic"}), 400, "invalid_json"),
        (json!({"text": "좋아요", "taxonomy": "no-such"}), 404, "unknown_taxonomy"),
    ];
    for (body, status, code) in cases {
        let (got, answer) = s.post(body.clone()).await;
        assert_eq!((got.as_u16(), answer["error"]["code"].as_str().unwrap()), (status, code), "{body}");
        assert!(!answer["error"]["message"].as_str().unwrap().is_empty());
    }
    let (_, answer) = s.post(json!({"reviews": [{"text": "좋아요"}, {"text": ""}]})).await;
    assert_eq!(answer["error"]["index"], 1, "the error names the review");

    let raw = client()
        .post(s.app.url("/api/v1/analyze"))
        .bearer_auth(&s.key)
        .header("Content-Type", "application/json")
        .body("{\"text\": \"깨진")
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status(), 400);
    assert_eq!(raw.json::<Value>().await.unwrap()["error"]["code"], "invalid_json");

    let big = client()
        .post(s.app.url("/api/v1/analyze"))
        .bearer_auth(&s.key)
        .json(&json!({"text": "가".repeat(2_000_000)}))
        .send()
        .await
        .unwrap();
    assert_eq!(big.status(), 413);
    assert_eq!(big.json::<Value>().await.unwrap()["error"]["code"], "body_too_large");

    for key in [None, Some("rl_not-a-real-key"), Some("wrong-shape")] {
        let mut request = client().post(s.app.url("/api/v1/analyze")).json(&json!({"text": "좋아요"}));
        if let Some(key) = key {
            request = request.bearer_auth(key);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 401, "{key:?}");
        assert_eq!(response.json::<Value>().await.unwrap()["error"]["code"], "bad_key");
    }
    // After all that, a good request is answered as ever.
    let (status, _) = s.post(json!({"text": "배송이 빨라요"})).await;
    assert_eq!(status, 200);
}

/// Reviews of about 1,200 characters, far more than the tiny model's 64 tokens read.
fn long_reviews(n: usize) -> Vec<Value> {
    (0..n)
        .map(|i| json!({"id": format!("r{i}"), "text": "배송이 빨라요 색감이 예뻐요 ".repeat(80)}))
        .collect()
}

/// The texts of [`long_reviews`].
fn long_texts(n: usize) -> Vec<String> {
    long_reviews(n).iter().map(|r| r["text"].as_str().unwrap().to_string()).collect()
}

/// The trained `v1`, loaded as the model thread serves it.
fn served_v1(s: &Serving) -> std::sync::Arc<reviewloop::serve::Served> {
    let analyzer = reviewloop::analyze::Analyzer::load(&s.versions[0]).unwrap();
    let served = reviewloop::serve::Served {
        version_id: 1,
        version: "v1".into(),
        taxonomy: "fashion".into(),
        analyzer,
    };
    std::sync::Arc::new(served)
}

/// What analysing each of `texts` with full highlights costs.
fn mask_costs(model: &reviewloop::serve::Served, texts: &[String]) -> Vec<reviewloop::analyze::ReviewCost> {
    use reviewloop::analyze::{Ask, Highlights};
    texts.iter().map(|t| model.analyzer.cost(t, Ask::Analysis(Highlights::Mask))).collect()
}

#[tokio::test]
async fn a_request_over_the_cost_budget_is_refused_with_the_budget_and_a_cheaper_one_is_served() {
    let s = serving(|settings| settings.web.serve.max_cost = 100_000, false).await;
    let (status, answer) = s.post(json!({"reviews": long_reviews(64)})).await;
    assert_eq!(status, 400, "{answer}");
    assert_eq!(answer["error"]["code"], "over_budget");
    let message = answer["error"]["message"].as_str().unwrap();
    assert!(message.contains("100000"), "the answer says the budget: {message}");
    // Without highlights the same reviews cost a pass each and fit.
    let (status, answer) = s.post(json!({"reviews": long_reviews(64), "highlights": false})).await;
    assert_eq!(status, 200, "{answer}");
    let cost = answer["cost"].as_u64().unwrap();
    assert!(cost > 0 && cost <= 100_000, "{cost}");
    let (_, one) = s.post(json!({"text": "배송이 빨라요"})).await;
    assert!(one["cost"].as_u64().unwrap() < cost / 64, "a short review costs less: {one}");
}

#[tokio::test]
async fn a_key_is_charged_what_its_requests_cost_not_how_many_they_are() {
    let s = serving(|_| {}, false).await;
    let big = json!({"reviews": long_reviews(64), "highlights": false});
    let (_, priced) = s.post(big.clone()).await;
    let cost = priced["cost"].as_u64().unwrap();
    assert!(cost > 2 * REQUEST_UNIT, "{cost}");
    // A minute's allowance of one and a half big requests, in requests of the unit.
    let per_minute = (cost * 3 / 2).div_ceil(REQUEST_UNIT) as i32;
    let (_, key) = api_keys::create(&s.app.pool, "metered", per_minute, None).await.unwrap();
    let post = |body: Value| {
        let request = client().post(s.app.url("/api/v1/analyze")).bearer_auth(&key).json(&body);
        async move { request.send().await.unwrap() }
    };
    // Both at once: both are charged before either runs, so how long the model takes
    // cannot refill the allowance in between.
    let (a, b) = tokio::join!(post(big.clone()), post(big));
    let (passed, second) = if a.status() == 200 { (a, b) } else { (b, a) };
    assert_eq!(passed.status(), 200);
    assert_eq!(second.status(), 429, "counted by requests it would have passed");
    assert!(second.headers().contains_key("retry-after"));
    assert_eq!(second.json::<Value>().await.unwrap()["error"]["code"], "rate_limited");
    let small = post(json!({"text": "배송이 빨라요"})).await;
    assert_eq!(small.status(), 200, "what is left of the minute still serves a small request");
}

#[tokio::test]
async fn a_one_sentence_request_is_answered_while_a_large_one_is_still_running() {
    use reviewloop::analyze::Highlights;
    use reviewloop::serve::{Batcher, ServeLimits};
    use std::future::Future;
    use std::task::{Context, Waker};

    let s = serving(|_| {}, false).await;
    let model = served_v1(&s);
    // One unit of work per step: the large request takes thousands of steps.
    let batcher = Batcher::start(&ServeLimits { step_cost: 1, ..ServeLimits::default() });
    let costs = |texts: &[String]| mask_costs(&model, texts);
    let long = long_texts(64);
    let mut large = Box::pin(batcher.analyze(model.clone(), long.clone(), Highlights::Mask, costs(&long)));
    let mut cx = Context::from_waker(Waker::noop());
    assert!(large.as_mut().poll(&mut cx).is_pending(), "queued on the model thread");
    let short = vec!["배송이 빨라요".to_string()];
    let answered =
        batcher.analyze(model.clone(), short.clone(), Highlights::Mask, costs(&short)).await.unwrap();
    assert_eq!(answered.len(), 1);
    assert!(!answered[0].keywords[0].highlights.is_empty(), "with its highlights");
    assert!(large.as_mut().poll(&mut cx).is_pending(), "the large request is still being worked on");
}

#[tokio::test]
async fn a_taxonomy_without_a_trained_model_answers_no_model() {
    let app = TestApp::spawn().await;
    let (_, key) = api_keys::create(&app.pool, "early client", 100, None).await.unwrap();
    let response = client()
        .post(app.url("/api/v1/analyze"))
        .header("X-Api-Key", &key)
        .json(&json!({"text": "배송이 빨라요"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 503);
    assert_eq!(response.json::<Value>().await.unwrap()["error"]["code"], "no_model");
}

#[tokio::test]
async fn an_admin_creates_a_key_that_works_until_it_is_revoked() {
    let s = serving(|_| {}, false).await;
    let admin = s.app.logged_in(Role::Admin).await;
    let csrf = admin.csrf().await;
    let created = admin
        .post_form(
            "/admin/api-keys",
            &pairs(&[("csrf", &csrf), ("name", "쇼핑몰 A"), ("requests_per_minute", "100")]),
        )
        .await;
    assert_eq!(created.status(), 200);
    let html = created.text().await.unwrap();
    let start = html.find("<code id=\"new-key-value\">").unwrap() + "<code id=\"new-key-value\">".len();
    let key = html[start..].split('<').next().unwrap().to_string();
    assert!(key.starts_with("rl_") && key.len() > 40, "{key}");
    let stored: Vec<u8> = sqlx::query_scalar("SELECT key_hash FROM api_keys WHERE name = '쇼핑몰 A'")
        .fetch_one(&s.app.pool)
        .await
        .unwrap();
    assert!(!String::from_utf8_lossy(&stored).contains(&key[3..]), "only a hash is stored");

    let call = |key: String| {
        let url = s.app.url("/api/v1/analyze");
        async move {
            client().post(url).bearer_auth(key).json(&json!({"text": "배송이 빨라요"})).send().await.unwrap()
        }
    };
    assert_eq!(call(key.clone()).await.status(), 200);
    let listing = admin.get("/admin/api-keys").await.text().await.unwrap();
    assert!(listing.contains("쇼핑몰 A") && !listing.contains(&key), "the key is shown once only");

    let id: i64 = sqlx::query_scalar("SELECT id FROM api_keys WHERE name = '쇼핑몰 A'")
        .fetch_one(&s.app.pool)
        .await
        .unwrap();
    let revoked = admin.post_form(&format!("/admin/api-keys/{id}/revoke"), &pairs(&[("csrf", &csrf)])).await;
    assert_eq!(revoked.status(), 303);
    let refused = call(key).await;
    assert_eq!(refused.status(), 401, "revocation takes effect on the next request");
    assert_eq!(refused.json::<Value>().await.unwrap()["error"]["code"], "bad_key");
    let logged = s
        .app
        .count("SELECT count(*) FROM audit_log WHERE action IN ('api_key.create', 'api_key.revoke')")
        .await;
    assert_eq!(logged, 3, "two creations (fixture and admin) and one revocation");
}

#[tokio::test]
async fn a_key_over_its_rate_is_told_when_to_come_back() {
    let s = serving(|_| {}, false).await;
    let (_, slow) = api_keys::create(&s.app.pool, "slow client", 2, None).await.unwrap();
    let call = || {
        client().post(s.app.url("/api/v1/analyze")).bearer_auth(&slow).json(&json!({"text": "좋아요"})).send()
    };
    assert_eq!(call().await.unwrap().status(), 200);
    assert_eq!(call().await.unwrap().status(), 200);
    let limited = call().await.unwrap();
    assert_eq!(limited.status(), 429);
    let wait: u64 = limited.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=30).contains(&wait), "{wait}");
    assert_eq!(limited.json::<Value>().await.unwrap()["error"]["code"], "rate_limited");
    let (status, _) = s.post(json!({"text": "좋아요"})).await;
    assert_eq!(status, 200, "other keys are not limited");
}

#[tokio::test]
async fn requests_beyond_the_queue_are_turned_away_as_overloaded() {
    // One request may wait at a time, and the model thread waits 2 s for company.
    let s = serving(
        |settings| {
            settings.web.serve.queue_cost = 1;
            settings.web.serve.batch_wait_ms = 2_000;
        },
        false,
    )
    .await;
    // Loaded model and known key first, so that both requests below reach the queue
    // within moments of each other, well inside the other's wait, however busy the host.
    assert_eq!(s.post(json!({"text": "좋아요"})).await.0, 200);
    let (a, b) =
        tokio::join!(s.post(json!({"text": "배송이 빨라요"})), s.post(json!({"text": "색감이 예뻐요"})));
    let (answered, refused) = if a.0 == StatusCode::OK { (a, b) } else { (b, a) };
    assert_eq!(answered.0, 200, "one of them is queued and answered: {answered:?}");
    assert_eq!(refused.0, 503, "{refused:?}");
    assert_eq!(refused.1["error"]["code"], "overloaded");
}

#[tokio::test]
async fn promoting_a_version_under_load_loses_no_request() {
    let s = serving(|settings| settings.web.serve.refresh_ms = 100, true).await;
    let (status, body) = s.post(json!({"text": "배송이 빨라요"})).await;
    assert_eq!((status.as_u16(), body["model"]["version"].as_str()), (200, Some("v1")));
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let clients: Vec<_> = (0..8)
        .map(|c| {
            let (url, key, stop) = (s.app.url("/api/v1/analyze"), s.key.clone(), stop.clone());
            tokio::spawn(async move {
                let http = client();
                let mut seen = Vec::new();
                let mut i = 0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let body = json!({"reviews": [{"text": format!("배송이 빨라요 {c} {i}")}, {"text": "색감이 예뻐요"}]});
                    let response = http.post(&url).bearer_auth(&key).json(&body).send().await.unwrap();
                    let status = response.status().as_u16();
                    let body: Value = response.json().await.unwrap();
                    seen.push((status, body["model"]["version"].as_str().unwrap_or("").to_string()));
                    i += 1;
                }
                seen
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let taxonomy = s.app.taxonomy("fashion").await.id;
    let gate = Gate { margin: 1.0, override_reason: Some("swap under load") };
    promotion::promote(&s.app.pool, taxonomy, "v2", None, &gate).await.unwrap();
    // Keep the load on until v2 has answered for a while.
    let started = Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let (_, body) = s.post(json!({"text": "좋아요"})).await;
        if body["model"]["version"] == "v2" || started.elapsed() > Duration::from_secs(30) {
            break;
        }
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut answered = Vec::new();
    for c in clients {
        answered.extend(c.await.unwrap());
    }
    assert!(answered.iter().all(|(status, _)| *status == 200), "every request answered: {answered:?}");
    let on = |v: &str| answered.iter().filter(|(_, version)| version == v).count();
    assert!(on("v1") > 0 && on("v2") > 0, "v1 {} then v2 {} requests", on("v1"), on("v2"));
}

#[tokio::test]
async fn the_openapi_document_describes_the_endpoint_and_its_limits() {
    let app = TestApp::spawn().await;
    let doc: Value =
        client().get(app.url("/api/v1/openapi.json")).send().await.unwrap().json().await.unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let post = &doc["paths"]["/api/v1/analyze"]["post"];
    assert!(post["requestBody"].is_object());
    for status in ["200", "400", "401", "404", "413", "429", "503"] {
        assert!(post["responses"][status].is_object(), "response {status} documented");
    }
    let schemas = &doc["components"]["schemas"];
    for name in ["AnalyzeRequest", "AnalyzeResponse", "KeywordResult", "HighlightResult", "ErrorBody"] {
        assert!(schemas[name].is_object(), "{name}");
    }
    assert!(schemas["AnalyzeRequest"]["properties"]["reviews"].is_object());
    assert!(doc["components"]["securitySchemes"]["api_key"].is_object());
    let description = doc["info"]["description"].as_str().unwrap();
    assert!(description.contains("64 reviews") && description.contains("5000 characters"), "{description}");
}

#[tokio::test]
async fn the_try_page_shows_keywords_sentiment_and_highlighted_words() {
    let s = serving(|_| {}, false).await;
    let annotator = s.app.logged_in(Role::Annotator).await;
    let page = annotator.get("/try").await.text().await.unwrap();
    let csrf = csrf_in(&page).unwrap();
    let answer = annotator
        .post_form(
            "/try",
            &pairs(&[
                ("csrf", &csrf),
                ("text", "배송이 빨라요 <b>색감</b>도 예뻐요"),
                ("taxonomy", "fashion"),
            ]),
        )
        .await;
    assert_eq!(answer.status(), 200);
    let html = answer.text().await.unwrap();
    assert!(html.contains("id=\"findings\"") && html.contains("v1"), "{html}");
    assert!(html.contains("<mark>"), "highlighted words are marked");
    assert!(!html.contains("<b>색감</b>"), "the review is escaped");
}

#[tokio::test]
async fn the_queue_is_charged_what_requests_cost_so_a_second_large_one_is_turned_away() {
    use reviewloop::analyze::{Highlights, ReviewCost};
    use reviewloop::serve::{Batcher, ServeError, ServeLimits};
    use std::future::Future;
    use std::task::{Context, Waker};

    let s = serving(|_| {}, false).await;
    let model = served_v1(&s);
    let costs = |texts: &[String]| mask_costs(&model, texts);
    let total = |costs: &[ReviewCost]| costs.iter().map(ReviewCost::total).sum::<u64>();
    let long = long_texts(64);
    let short = vec!["배송이 빨라요".to_string()];
    let (big, small) = (total(&costs(&long)), total(&costs(&short)));
    // Room for one large request and two small ones; in reviews, for many large ones.
    let limits = ServeLimits { step_cost: 1, queue_cost: big + 2 * small, ..ServeLimits::default() };
    let batcher = Batcher::start(&limits);
    let mut first = Box::pin(batcher.analyze(model.clone(), long.clone(), Highlights::Mask, costs(&long)));
    let mut cx = Context::from_waker(Waker::noop());
    assert!(first.as_mut().poll(&mut cx).is_pending());
    let second = batcher.analyze(model.clone(), long.clone(), Highlights::Mask, costs(&long)).await;
    assert!(matches!(second, Err(ServeError::Overloaded)), "{:?}", second.map(|a| a.len()));
    let answered = batcher.analyze(model.clone(), short.clone(), Highlights::Mask, costs(&short)).await;
    assert_eq!(answered.unwrap().len(), 1, "a small request still fits");
}

#[tokio::test]
async fn refused_requests_are_charged_so_a_key_looping_them_meets_its_limit() {
    let s = serving(|settings| settings.web.serve.max_cost = 100_000, false).await;
    let pool = s.app.pool.clone();
    let looping = |per_minute: i32| {
        let pool = pool.clone();
        async move { api_keys::create(&pool, "looping", per_minute, None).await.unwrap().1 }
    };
    let send = |key: String, body: Value| {
        let request = client().post(s.app.url("/api/v1/analyze")).bearer_auth(key).json(&body);
        async move { request.send().await.unwrap().status().as_u16() }
    };
    // Over the budget: tokenised and costed, then refused; each one costs the key a unit.
    let key = looping(3).await;
    let over = json!({"reviews": long_reviews(64)});
    let statuses = [
        send(key.clone(), over.clone()).await,
        send(key.clone(), over.clone()).await,
        send(key.clone(), over.clone()).await,
        send(key.clone(), over.clone()).await,
    ];
    assert_eq!(statuses, [400, 400, 400, 429]);
    // An unknown taxonomy, and a body that is not JSON: the same.
    let key = looping(2).await;
    let unknown = json!({"text": "배송이 빨라요", "taxonomy": "no-such-taxonomy"});
    assert_eq!(send(key.clone(), unknown.clone()).await, 404);
    assert_eq!(send(key.clone(), unknown.clone()).await, 404);
    assert_eq!(send(key.clone(), unknown).await, 429);
    let key = looping(1).await;
    let broken = |key: String| {
        let request = client().post(s.app.url("/api/v1/analyze")).bearer_auth(key).body("{not json");
        async move { request.header("content-type", "application/json").send().await.unwrap().status() }
    };
    assert_eq!(broken(key.clone()).await, 400);
    assert_eq!(broken(key).await, 429);
}

#[tokio::test]
async fn an_unknown_taxonomy_is_answered_without_waiting_for_a_model_to_load() {
    use reviewloop::serve::{Registry, ServeError};
    let app = TestApp::spawn().await;
    let storage =
        reviewloop::storage::Storage::open(&app.pool, &reviewloop::config::StorageLocation::Postgres)
            .unwrap();
    let registry = Registry::new(storage, app.data_dir.clone());
    let _loading = registry.hold_loading().await;
    let answer = tokio::time::timeout(Duration::from_secs(20), registry.get("no-such-taxonomy")).await;
    assert!(
        matches!(answer, Ok(Err(ServeError::UnknownTaxonomy(_)))),
        "answered from the names, not behind the load"
    );
    // A taxonomy made after the names were read is found at once (it then waits to load).
    let def: reviewloop::taxonomy::TaxonomyDefinition = serde_json::from_value(
        json!({"name": "shoes", "scale_min": -1, "scale_max": 1, "keywords": [{"name": "사이즈"}]}),
    )
    .unwrap();
    reviewloop::store::taxonomies::create(&app.pool, &def).await.unwrap();
    drop(_loading);
    let answer = tokio::time::timeout(Duration::from_secs(20), registry.get("shoes")).await;
    assert!(matches!(answer, Ok(Err(ServeError::NoModel(_)))), "known, with nothing trained");
}
