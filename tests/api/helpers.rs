//! A running app on a fresh database per test, and typed helpers to drive it.

use reqwest::redirect::Policy;
use reqwest::{Client, Response};
use sqlx::PgPool;

use reviewloop::config::{Settings, DEFAULT_DATABASE_URL};
use reviewloop::import::{self, Format, ImportOptions, ImportSummary};
use reviewloop::rounds::{CreatedRound, RoundError};
use reviewloop::rounds::{GroupBy, RoundSpec, Sampling};
use reviewloop::store::{self, users::Role};
use reviewloop::taxonomy::Taxonomy;
use reviewloop::web::Application;

pub const PASSWORD: &str = "정말-안전한-비밀번호-123";

pub struct TestApp {
    pub address: String,
    pub pool: PgPool,
    pub database_url: String,
    /// The app's data dir (bases, versions), a fresh temporary folder.
    pub data_dir: std::path::PathBuf,
}

/// A fresh database with a random name on the configured server.
pub async fn fresh_database() -> (PgPool, String) {
    let base = std::env::var("DATABASE_URL").unwrap_or_else(|_| DEFAULT_DATABASE_URL.to_string());
    let name = format!("reviewloop_test_{}", uuid::Uuid::new_v4().simple());
    let url = reviewloop::store::scratch::url(&base, &name);
    let pool = store::connect(&url).await.expect("PostgreSQL must be running for the tests (see README)");
    (pool, url)
}

impl TestApp {
    pub async fn spawn() -> TestApp {
        Self::spawn_with(|_| {}).await
    }

    /// An app whose settings `change` adjusts first (limits of the analysis API, say).
    pub async fn spawn_with(change: impl FnOnce(&mut Settings)) -> TestApp {
        let (pool, url) = fresh_database().await;
        let mut settings = Settings::for_database(&url);
        // Its own data dir: never the bases or versions of the developer's `models/`.
        settings.data_dir =
            std::env::temp_dir().join(format!("reviewloop-app-{}", uuid::Uuid::new_v4().simple()));
        change(&mut settings);
        let settings_data_dir = settings.data_dir.clone();
        let app = Application::build(pool.clone(), settings, "127.0.0.1:0").await.expect("app binds");
        let address = format!("http://127.0.0.1:{}", app.port());
        tokio::spawn(app.run_until_stopped());
        TestApp { address, pool, database_url: url, data_dir: settings_data_dir }
    }

    /// Another app on the database of `other` with this data dir: a second web host.
    pub async fn beside(other: &TestApp, data_dir: std::path::PathBuf) -> TestApp {
        let pool = store::connect(&other.database_url).await.expect("the other app's database");
        let mut settings = Settings::for_database(&other.database_url);
        settings.data_dir = data_dir.clone();
        let app = Application::build(pool.clone(), settings, "127.0.0.1:0").await.expect("app binds");
        let address = format!("http://127.0.0.1:{}", app.port());
        tokio::spawn(app.run_until_stopped());
        TestApp { address, pool, database_url: other.database_url.clone(), data_dir }
    }

    /// A browser of its own (cookies, no redirects), not logged in.
    pub fn browser(&self) -> Browser {
        Browser { client: client(), app: self.address.clone() }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    /// A user with a unique name and the shared test password.
    pub async fn user(&self, role: Role) -> String {
        let name = format!("{}-{}", role.as_str(), &uuid::Uuid::new_v4().simple().to_string()[..8]);
        store::users::create(&self.pool, &name, PASSWORD, role).await.expect("user created");
        name
    }

    /// A browser-like client (cookies, no automatic redirects) logged in as `username`.
    pub async fn login(&self, username: &str) -> Browser {
        let browser = Browser { client: client(), app: self.address.clone() };
        let response = browser.login(username, PASSWORD).await;
        assert_eq!(response.status(), 303, "login of {username} should redirect");
        browser
    }

    pub async fn logged_in(&self, role: Role) -> Browser {
        let name = self.user(role).await;
        self.login(&name).await
    }

    pub async fn import_text(&self, taxonomy: &str, format: Format, body: &str) -> ImportSummary {
        let options = ImportOptions::new(taxonomy, format, "test-input");
        import::import(&self.pool, body.as_bytes(), &options).await.expect("import runs")
    }

    /// A round over the fashion pool.
    pub async fn create_round(&self, spec: &RoundSpec) -> Result<CreatedRound, RoundError> {
        let taxonomy = self.taxonomy("fashion").await;
        reviewloop::rounds::create(&self.pool, taxonomy.id, spec, None).await
    }

    pub async fn taxonomy(&self, name: &str) -> Taxonomy {
        store::taxonomies::load_by_name(&self.pool, name).await.unwrap()
    }

    pub async fn count(&self, sql: &str) -> i64 {
        sqlx::query_scalar(sql).fetch_one(&self.pool).await.unwrap()
    }
}

pub fn client() -> Client {
    Client::builder().cookie_store(true).redirect(Policy::none()).build().unwrap()
}

/// A logged-in session, with the CSRF token its pages carry.
#[derive(Clone)]
pub struct Browser {
    pub client: Client,
    pub app: String,
}

impl Browser {
    pub async fn login(&self, username: &str, password: &str) -> Response {
        let page = self.get("/login").await.text().await.unwrap();
        let csrf = csrf_in(&page).expect("login form has a CSRF field");
        self.client
            .post(format!("{}/login", self.app))
            .form(&[("username", username), ("password", password), ("csrf", &csrf)])
            .send()
            .await
            .unwrap()
    }

    /// A login through a proxy that reports the client as `address` (X-Forwarded-For).
    pub async fn login_from(&self, address: &str, username: &str, password: &str) -> Response {
        let page = self.client.get(format!("{}/login", self.app)).header("x-forwarded-for", address);
        let page = page.send().await.unwrap().text().await.unwrap();
        let csrf = csrf_in(&page).expect("login form has a CSRF field");
        self.client
            .post(format!("{}/login", self.app))
            .header("x-forwarded-for", address)
            .form(&[("username", username), ("password", password), ("csrf", &csrf)])
            .send()
            .await
            .unwrap()
    }

    pub async fn get(&self, path: &str) -> Response {
        self.client.get(format!("{}{}", self.app, path)).send().await.unwrap()
    }

    pub async fn post_form(&self, path: &str, form: &[(String, String)]) -> Response {
        self.client.post(format!("{}{}", self.app, path)).form(form).send().await.unwrap()
    }

    /// Claims the round's next item as the "start" button does (a POST).
    pub async fn claim_next(&self, round: i64) -> Response {
        let csrf = self.csrf().await;
        self.post_form(&format!("/annotate/rounds/{round}/next"), &pairs(&[("csrf", &csrf)])).await
    }

    /// The session's CSRF token, read from a page as a browser would.
    pub async fn csrf(&self) -> String {
        let page = self.get("/annotate").await.text().await.unwrap();
        csrf_in(&page).expect("pages carry the CSRF token")
    }
}

pub fn csrf_in(html: &str) -> Option<String> {
    attribute_after(html, "name=\"csrf\" value=\"")
}

pub fn token_in(html: &str) -> Option<String> {
    attribute_after(html, "name=\"token\" value=\"")
}

fn attribute_after(html: &str, marker: &str) -> Option<String> {
    let start = html.find(marker)? + marker.len();
    let end = html[start..].find('"')? + start;
    Some(html[start..end].to_string())
}

pub fn location(response: &Response) -> String {
    response.headers().get("location").map(|v| v.to_str().unwrap().to_string()).unwrap_or_default()
}

pub fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
    items.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

/// `n` unlabelled fashion reviews, `mall{i % malls}`.
pub fn fashion_csv(n: usize, malls: usize) -> String {
    let mut csv = String::from("external_id,mall,category,text\n");
    for i in 0..n {
        csv.push_str(&format!(
            "r{i},mall{},상의,\"리뷰 {i}번: 옷이 예쁘고 배송이 빨라요\"\n",
            i % malls.max(1)
        ));
    }
    csv
}

/// A random round of `size` for everyone, seed 1.
pub fn round_spec(size: usize) -> RoundSpec {
    RoundSpec {
        name: "r".into(),
        size,
        sampling: Sampling::Random,
        group_by: GroupBy::Mall,
        double_share: 0.0,
        seed: 1,
        members: vec![],
        quotas: vec![],
        assist: Default::default(),
        assist_doubled: false,
        diverse: false,
        cycle: None,
    }
}

/// A ready version (keyword and sentiment rows) whose test report gives these keyword
/// F1 scores (20 test labels each, 100 in all), for promotion tests.
pub async fn ready_version(app: &TestApp, name: &str, f1: &[(&str, f64)]) {
    let labels: Vec<serde_json::Value> = f1
        .iter()
        .map(|(k, f)| serde_json::json!([k, {"precision": f, "recall": f, "f1": f, "support": 20}]))
        .collect();
    // Judged on 100 test labels: enough to promote on (evidence::MIN_REPORT_SUPPORT).
    let mean = f1.iter().map(|(_, f)| f).sum::<f64>() / f1.len().max(1) as f64;
    let average = serde_json::json!({"precision": mean, "recall": mean, "f1": mean, "support": 100});
    let report =
        serde_json::json!({"labels": labels, "micro": average, "macro_avg": average, "samples": average});
    for kind in ["keyword", "sentiment"] {
        sqlx::query(
            "INSERT INTO model_versions (taxonomy_id, kind, name, path, status, metrics)
             SELECT id, $1, $2, '/models/' || $2 || '/' || $1, 'ready', $3 FROM taxonomies WHERE name = 'fashion'",
        )
        .bind(kind)
        .bind(name)
        .bind(serde_json::json!({"test": report, "validation": null}))
        .execute(&app.pool)
        .await
        .unwrap();
    }
}

/// An annotator's answer stored directly (as the annotation page would), with labels as
/// (keyword id, level).
pub async fn human_answer(app: &TestApp, review_id: i64, annotator_id: i64, labels: Vec<(i64, i16)>) -> i64 {
    assisted_answer(app, review_id, annotator_id, labels, None).await
}

/// [`human_answer`] with the record of what was done with the model's suggestions.
pub async fn assisted_answer(
    app: &TestApp,
    review_id: i64,
    annotator_id: i64,
    labels: Vec<(i64, i16)>,
    assist: Option<serde_json::Value>,
) -> i64 {
    use reviewloop::consensus::LabelSource;
    use reviewloop::store::annotations::{self, Authorship};
    let author = Authorship {
        source: LabelSource::Human,
        annotator_id: Some(annotator_id),
        assignment_id: None,
        import_batch_id: None,
        guideline_revision: 1,
        client_token: None,
        assist,
    };
    let labels = reviewloop::taxonomy::ResolvedLabels { no_keyword: labels.is_empty(), labels };
    let mut tx = app.pool.begin().await.unwrap();
    let id = annotations::insert(&mut tx, review_id, &author, &labels).await.unwrap();
    tx.commit().await.unwrap();
    id
}

/// The id of a new user with this role.
pub async fn user_id(app: &TestApp, role: Role) -> i64 {
    let name = app.user(role).await;
    store::users::find(&app.pool, &name).await.unwrap().unwrap().id
}
