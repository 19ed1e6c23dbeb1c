//! Logging in and out, and the language switch. Failed logins are throttled per
//! account name and per address (`throttle`), with the same answer whether or not the
//! account exists; the page a login returns to (`next`) is only ever a path of this
//! site.

use actix_web::cookie::{Cookie, SameSite};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use percent_encoding::percent_decode_str;
use serde::Deserialize;

use super::auth::{home_of, AnnotateArea, CsrfForm, Permitted, SESSION_COOKIE};
use super::i18n::{Lang, Tr};
use super::{render_with, AppState};
use crate::error::{AppError, AppResult};
use crate::store::{sessions, users};

/// Before login there is no session to hold a CSRF token, so the login form uses a
/// double-submit cookie instead.
pub const LOGIN_CSRF_COOKIE: &str = "rl_login_csrf";

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    t: &'static Tr,
    csrf: String,
    failed: bool,
    /// Minutes until a locked account or address may try again.
    locked_minutes: Option<u64>,
    username: String,
    next: String,
}

/// What the login page says besides its form.
enum Outcome {
    Blank,
    Failed,
    Locked(std::time::Duration),
}

fn login_page(t: &'static Tr, outcome: Outcome, username: String, next: Option<&str>) -> HttpResponse {
    let csrf = sessions::random_token();
    let (status, failed, locked_minutes) = match outcome {
        Outcome::Blank => (StatusCode::OK, false, None),
        Outcome::Failed => (StatusCode::UNAUTHORIZED, true, None),
        Outcome::Locked(wait) => {
            (StatusCode::TOO_MANY_REQUESTS, false, Some(wait.as_secs().div_ceil(60).max(1)))
        }
    };
    let next = next.and_then(safe_next).unwrap_or_default().to_string();
    let page = LoginPage { t, csrf: csrf.clone(), failed, locked_minutes, username, next };
    let mut response = render_with(&page, status);
    let cookie = Cookie::build(LOGIN_CSRF_COOKIE, csrf)
        .path("/login")
        .http_only(true)
        .same_site(SameSite::Strict)
        .finish();
    let _ = response.add_cookie(&cookie);
    response
}

#[derive(Deserialize)]
pub struct NextQuery {
    next: Option<String>,
}

pub async fn login_form(req: HttpRequest, query: web::Query<NextQuery>) -> HttpResponse {
    login_page(Lang::from_request(&req).tr(), Outcome::Blank, String::new(), query.next.as_deref())
}

#[derive(Deserialize)]
pub struct LoginForm {
    username: String,
    password: String,
    #[serde(default)]
    next: String,
}

/// The address failures are counted against: the peer, not a header a client writes.
pub(super) fn address_of(req: &HttpRequest) -> String {
    req.peer_addr().map(|a| a.ip().to_string()).unwrap_or_default()
}

pub async fn login(
    req: HttpRequest,
    state: web::Data<AppState>,
    form: web::Form<LoginForm>,
) -> AppResult<HttpResponse> {
    let t = Lang::from_request(&req).tr();
    let account = form.username.trim().to_lowercase();
    let address = address_of(&req);
    let throttles = &state.throttles;
    // Locked: answered without checking the password, whether or not the account exists.
    if let Some(wait) = throttles.accounts.locked(&account).or_else(|| throttles.addresses.locked(&address)) {
        tracing::warn!(%account, %address, "login refused: too many failures");
        return Ok(login_page(t, Outcome::Locked(wait), form.username.clone(), Some(&form.next)));
    }
    let Some(user) = users::authenticate(&state.pool, &form.username, &form.password).await? else {
        tracing::info!(%account, %address, "failed login");
        throttles.accounts.failed(&account);
        throttles.addresses.failed(&address);
        return Ok(login_page(t, Outcome::Failed, form.username.clone(), Some(&form.next)));
    };
    throttles.accounts.succeeded(&account);
    let token = sessions::start(&state.pool, user.id).await?;
    let cookie = Cookie::build(SESSION_COOKIE, token)
        .path("/")
        .http_only(true)
        .secure(state.secure_cookies)
        .same_site(SameSite::Lax)
        .max_age(actix_web::cookie::time::Duration::days(sessions::SESSION_DAYS))
        .finish();
    let to = safe_next(&form.next).unwrap_or(home_of(user.role));
    Ok(HttpResponse::SeeOther().insert_header(("Location", to.to_string())).cookie(cookie).finish())
}

pub async fn logout(
    _: Permitted<AnnotateArea, web::Form<CsrfForm>>,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> AppResult<HttpResponse> {
    if let Some(cookie) = req.cookie(SESSION_COOKIE) {
        sessions::end(&state.pool, cookie.value()).await?;
    }
    let mut expired = Cookie::build(SESSION_COOKIE, "").path("/").finish();
    expired.make_removal();
    Ok(HttpResponse::SeeOther().insert_header(("Location", "/login")).cookie(expired).finish())
}

/// Switches the UI language and returns to `next`, or to the page the link was on.
pub async fn set_lang(
    req: HttpRequest,
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
    let cookie = Cookie::build(super::i18n::LANG_COOKIE, code)
        .path("/")
        .same_site(SameSite::Lax)
        .max_age(actix_web::cookie::time::Duration::days(365))
        .finish();
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
