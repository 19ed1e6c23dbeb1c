//! The web app: one router per audience, merged here, over one shared state.

pub mod admin;
pub mod analyze_api;
pub mod annotate;
pub mod api;
pub mod api_errors;
pub mod api_keys;
pub mod assets;
pub mod auth;
pub mod client;
pub mod cookies;
pub mod csrf;
pub mod engineer;
pub mod errors;
pub mod form_fields;
pub mod headers;
pub mod i18n;
pub mod job_summary;
pub mod login;
pub mod login_gate;
pub mod loop_page;
pub mod qa;
pub mod round_page;
pub mod routing;
pub mod simulations;
pub mod throttle;
pub mod training;
pub mod try_it;
pub mod versions;

use std::net::TcpListener;

use actix_web::dev::Server;
use actix_web::http::StatusCode;
use actix_web::middleware::ErrorHandlers;
use actix_web::{web, App, HttpResponse, HttpServer};
use askama::Template;
use sqlx::PgPool;

use crate::config::Settings;
use routing::{route, Route};

pub struct AppState {
    pub pool: PgPool,
    pub settings: Settings,
    /// The analysis API's models, model thread and rate limits.
    pub serving: std::sync::Arc<crate::serve::Serving>,
    /// Who may have a password checked now.
    pub logins: login_gate::LoginGate,
    /// Bad API keys per address.
    pub bad_keys: throttle::Throttle,
    /// Keys that authenticated lately: not held up by their address's wait.
    pub good_keys: throttle::RecentKeys,
    /// The reviewer pages' figures, counted again off the page when labels change.
    pub summaries: crate::audit::summary::Refresher,
}

/// A bound server. Binding happens in `build` so that tests can ask for port 0 and
/// read the real port back.
pub struct Application {
    port: u16,
    host: String,
    server: Server,
}

impl Application {
    pub async fn build(pool: PgPool, settings: Settings, bind: &str) -> anyhow::Result<Self> {
        let listener =
            TcpListener::bind(bind).map_err(|e| anyhow::anyhow!("cannot listen on {bind}: {e}"))?;
        let address = listener.local_addr()?;
        let storage = crate::storage::Storage::open(&pool, &settings.storage)?;
        let serving = std::sync::Arc::new(crate::serve::Serving::start(
            storage,
            settings.data_dir.clone(),
            settings.web.serve.clone(),
        ));
        let secure = settings.web.secure();
        let logins =
            login_gate::LoginGate::new(settings.web.login_checks.unwrap_or_else(login_gate::default_slots));
        let state = web::Data::new(AppState {
            pool,
            settings,
            serving,
            logins,
            bad_keys: throttle::Throttle::default(),
            good_keys: throttle::RecentKeys::default(),
            summaries: Default::default(),
        });
        let server = HttpServer::new(move || {
            App::new()
                .app_data(state.clone())
                .app_data(web::QueryConfig::default().error_handler(|e, _| bad_input(e)))
                .app_data(web::FormConfig::default().error_handler(|e, _| bad_input(e)))
                .wrap(ErrorHandlers::new().default_handler(errors::render_error_page))
                .wrap(actix_web::middleware::from_fn(headers::private_pages_are_not_stored))
                .wrap(headers::security(secure))
                .configure(routes)
                .default_service(web::to(csrf::unmatched))
        })
        .listen(listener)?
        .run();
        Ok(Application { port: address.port(), host: address.ip().to_string(), server })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn address(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.server.await
    }
}

/// The app's own routes; the others are in each audience's module (`routing::table`).
const ROUTES: &[Route] = &[
    route!(GET "/healthz", public, || async { HttpResponse::Ok().body("ok") }),
    route!(GET "/favicon.ico", public, || async { HttpResponse::NoContent().finish() }),
    route!(GET "/login", public, login::login_form),
    route!(POST "/login", public, login::login),
    route!(POST "/logout", AnnotateArea, login::logout),
    route!(GET "/lang/{code}", public, login::set_lang),
    route!(GET "/", AnnotateArea, auth::home),
    route!(GET "/static/{file}", public, assets::serve),
];

/// Every route of the app, from the table, each under its CSRF rule.
pub fn routes(cfg: &mut web::ServiceConfig) {
    routing::register(cfg);
}

/// A query-string value, percent-encoded (taxonomy names may be Korean): everything
/// but RFC 3986's unreserved characters.
pub fn query_value(value: &str) -> String {
    use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
    const UNRESERVED: &percent_encoding::AsciiSet =
        &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');
    utf8_percent_encode(value, UNRESERVED).to_string()
}

/// Renders a page; a template error is a bug, logged and answered with 500.
pub fn render<T: Template>(page: &T) -> HttpResponse {
    render_with(page, StatusCode::OK)
}

/// Renders a page answering with `status` (a form shown again with its error, say).
pub fn render_with<T: Template>(page: &T, status: StatusCode) -> HttpResponse {
    match page.render() {
        Ok(html) => HttpResponse::build(status).content_type("text/html; charset=utf-8").body(html),
        Err(e) => {
            tracing::error!(error = %e, "template failed");
            HttpResponse::InternalServerError().body("template error")
        }
    }
}

/// A query string or form that does not parse: 400, said on the page in the user's language.
fn bad_input(e: impl std::fmt::Display) -> actix_web::Error {
    crate::error::AppError::BadInput(e.to_string()).into()
}

pub fn see_other(location: &str) -> HttpResponse {
    HttpResponse::SeeOther().insert_header(("Location", location.to_string())).finish()
}
