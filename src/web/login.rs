//! Logging in and out, and the language switch. Whether a password is checked at all
//! is the login gate's call (`login_gate`: throttles per client, address and account,
//! counted before the check, and a cap on concurrent checks), with the same answer
//! whether or not the account exists; the page a login returns to (`next`) is only ever
//! a path of this site.

use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use percent_encoding::percent_decode_str;
use serde::Deserialize;

use super::auth::{home_of, AnnotateArea, CsrfForm, Permitted, SESSION_COOKIE};
use super::cookies;
use super::i18n::{Lang, Tr};
use super::login_gate::{Client, Refused};
use super::{client, render_with, AppState};
use crate::error::{AppError, AppResult};
use crate::store::{devices, sessions, users};

/// Before login there is no session to hold a CSRF token, so the login form uses a
/// double-submit cookie instead.
pub const LOGIN_CSRF_COOKIE: &str = "rl_login_csrf";

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    t: &'static Tr,
    csrf: String,
    failed: bool,
    /// Why no password was checked, with the wait when there is one.
    refused: Option<String>,
    username: String,
    next: String,
}

/// What the login page says besides its form.
enum Outcome {
    Blank,
    Failed,
    Refused(Refused),
}

fn login_page(
    t: &'static Tr,
    secure: bool,
    outcome: Outcome,
    username: String,
    next: Option<&str>,
) -> HttpResponse {
    let csrf = sessions::random_token();
    let (status, failed, refused, retry_after) = match outcome {
        Outcome::Blank => (StatusCode::OK, false, None, None),
        Outcome::Failed => (StatusCode::UNAUTHORIZED, true, None, None),
        Outcome::Refused(Refused::Busy) => {
            (StatusCode::TOO_MANY_REQUESTS, false, Some(t.login_busy.to_string()), Some(1))
        }
        Outcome::Refused(Refused::Wait(wait)) => {
            let seconds = wait.as_secs_f64().ceil().max(1.0) as u64;
            let message = t.login_locked.replace("{wait}", &wait_in_words(t, wait));
            (StatusCode::TOO_MANY_REQUESTS, false, Some(message), Some(seconds))
        }
    };
    let next = next.and_then(safe_next).unwrap_or_default().to_string();
    let page = LoginPage { t, csrf: csrf.clone(), failed, refused, username, next };
    let mut response = render_with(&page, status);
    if let Some(seconds) = retry_after {
        response.headers_mut().insert(
            actix_web::http::header::RETRY_AFTER,
            actix_web::http::header::HeaderValue::from(seconds),
        );
    }
    let _ = response.add_cookie(&cookies::LOGIN_CSRF.build(csrf, secure));
    response
}

/// "40초", "3분": seconds under a minute, else whole minutes rounded up.
fn wait_in_words(t: &Tr, wait: Duration) -> String {
    let seconds = wait.as_secs_f64().ceil().max(1.0) as u64;
    if seconds < 60 {
        format!("{seconds}{}", t.seconds)
    } else {
        format!("{}{}", seconds.div_ceil(60), t.minutes)
    }
}

#[derive(Deserialize)]
pub struct NextQuery {
    next: Option<String>,
}

pub async fn login_form(
    req: HttpRequest,
    state: web::Data<AppState>,
    query: web::Query<NextQuery>,
) -> HttpResponse {
    let t = Lang::from_request(&req).tr();
    login_page(t, state.settings.web.secure(), Outcome::Blank, String::new(), query.next.as_deref())
}

#[derive(Deserialize)]
pub struct LoginForm {
    username: String,
    password: String,
    #[serde(default)]
    next: String,
}

/// The client as the login gate counts it: its address (through trusted proxies only)
/// and the device it proved with its cookie, when that device logged in as this
/// account before.
async fn client_of(req: &HttpRequest, state: &AppState, username: &str) -> AppResult<Client> {
    let address = client::throttle_key(client::address(req, &state.settings.web.trusted_proxies));
    let device = match req.cookie(cookies::DEVICE.name) {
        Some(cookie) => devices::known(&state.pool, cookie.value(), username).await?,
        None => None,
    };
    Ok(Client { address, device })
}

pub async fn login(
    req: HttpRequest,
    state: web::Data<AppState>,
    form: web::Form<LoginForm>,
) -> AppResult<HttpResponse> {
    let t = Lang::from_request(&req).tr();
    let secure = state.settings.web.secure();
    let again = |outcome| login_page(t, secure, outcome, form.username.clone(), Some(&form.next));
    let account = form.username.trim().to_lowercase();
    let client = client_of(&req, &state, &form.username).await?;
    // Refused: answered without checking the password, whether or not the account exists.
    let admitted = match state.logins.admit(&account, &client) {
        Ok(admitted) => admitted,
        Err(refused) => {
            tracing::warn!(%account, address = %client.address, ?refused, "login refused before its check");
            return Ok(again(Outcome::Refused(refused)));
        }
    };
    let Some(user) = users::authenticate(&state.pool, &form.username, &form.password).await? else {
        tracing::info!(%account, address = %client.address, "failed login");
        return Ok(again(Outcome::Failed));
    };
    admitted.succeeded();
    // A login starts a new session (and CSRF token); the one this browser had ends.
    if let Some(old) = req.cookie(SESSION_COOKIE) {
        sessions::end(&state.pool, old.value()).await?;
    }
    let token = sessions::start(&state.pool, user.id).await?;
    let presented = req.cookie(cookies::DEVICE.name).map(|c| c.value().to_string());
    let device = devices::logged_in(&state.pool, user.id, presented.as_deref()).await?;
    let to = safe_next(&form.next).unwrap_or(home_of(user.role));
    Ok(HttpResponse::SeeOther()
        .insert_header(("Location", to.to_string()))
        .cookie(cookies::SESSION.build(token, secure))
        .cookie(cookies::DEVICE.build(device, secure))
        .cookie(cookies::LOGIN_CSRF.removal(secure))
        .finish())
}

pub async fn logout(
    _: Permitted<AnnotateArea, web::Form<CsrfForm>>,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> AppResult<HttpResponse> {
    if let Some(cookie) = req.cookie(SESSION_COOKIE) {
        sessions::end(&state.pool, cookie.value()).await?;
    }
    let removal = cookies::SESSION.removal(state.settings.web.secure());
    Ok(HttpResponse::SeeOther().insert_header(("Location", "/login")).cookie(removal).finish())
}

/// Switches the UI language and returns to `next`, or to the page the link was on.
pub async fn set_lang(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
    query: web::Query<NextQuery>,
) -> AppResult<HttpResponse> {
    let lang = Lang::parse(&path).ok_or(AppError::NotFound)?;
    let referer = req.headers().get("referer").and_then(|r| r.to_str().ok()).and_then(local_path_of);
    let next = query
        .next
        .as_deref()
        .or(referer)
        .and_then(safe_next)
        .filter(|n| !n.starts_with("/lang/"))
        .unwrap_or("/");
    let code = if lang == Lang::En { "en" } else { "ko" };
    let cookie = cookies::LANG.build(code.to_string(), state.settings.web.secure());
    Ok(HttpResponse::SeeOther().insert_header(("Location", next.to_string())).cookie(cookie).finish())
}

/// The path part of a same-site URL (`http://host:port/path?q` → `/path?q`).
fn local_path_of(url: &str) -> Option<&str> {
    let after_scheme = url.split_once("://")?.1;
    after_scheme.find('/').map(|i| &after_scheme[i..])
}

/// `next` when it is a path of this site, so that no link can send a user elsewhere
/// after logging in: it starts with one `/` and is not a scheme-relative `//host`,
/// `/\host` (browsers read `\` as `/`), nor one of those percent-encoded, and holds
/// no control characters (a tab or newline inside `//` is skipped by browsers).
pub fn safe_next(next: &str) -> Option<&str> {
    let decoded = percent_decode_str(next).decode_utf8_lossy();
    let plain = |s: &str| {
        let mut chars = s.chars();
        chars.next() == Some('/')
            && !matches!(chars.next(), Some('/' | '\\'))
            && !s.chars().any(|c| c.is_control())
            && s.len() <= 2048
    };
    (plain(next) && plain(&decoded)).then_some(next)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_paths_of_this_site_are_followed() {
        for good in ["/annotate", "/engineer/jobs/3?tab=log", "/", "/qa/keywords/5#top", "/%ED%95%9C"] {
            assert_eq!(safe_next(good), Some(good), "{good}");
        }
        for bad in [
            "//evil.example",
            "/\\evil.example",
            "\\\\evil.example",
            "https://evil.example",
            "evil.example",
            "/%2Fevil.example",
            "/%5Cevil.example",
            "%2F%2Fevil.example",
            "/\t/evil.example",
            "/%09/evil.example",
            "",
            "javascript:alert(1)",
        ] {
            assert_eq!(safe_next(bad), None, "{bad:?}");
        }
    }
}
