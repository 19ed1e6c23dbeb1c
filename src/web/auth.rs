//! Who is asking and what they may do: session cookies, role checks per area, CSRF
//! tokens, and the login / logout pages.

use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;

use actix_web::cookie::{Cookie, SameSite};
use actix_web::dev::Payload;
use actix_web::{web, FromRequest, HttpRequest, HttpResponse};
use askama::Template;
use serde::Deserialize;

use super::i18n::{Lang, Tr};
use super::{render_with, AppState};
use crate::error::{AppError, AppResult};
use crate::store::sessions::{self, Session};
use crate::store::users::{self, Role};

pub const SESSION_COOKIE: &str = "rl_session";
/// Before login there is no session to hold a CSRF token, so the login form uses a
/// double-submit cookie instead.
const LOGIN_CSRF_COOKIE: &str = "rl_login_csrf";

/// A part of the app and the roles allowed in it.
pub trait Area {
    const ROLES: &'static [Role];
}

pub struct AnnotateArea;
impl Area for AnnotateArea {
    const ROLES: &'static [Role] = &[Role::Annotator, Role::Reviewer, Role::Engineer, Role::Admin];
}

pub struct EngineerArea;
impl Area for EngineerArea {
    const ROLES: &'static [Role] = &[Role::Engineer, Role::Admin];
}

/// QA: reviewers, and engineers and admins who may do their work.
pub struct ReviewArea;
impl Area for ReviewArea {
    const ROLES: &'static [Role] = &[Role::Reviewer, Role::Engineer, Role::Admin];
}

pub struct AdminArea;
impl Area for AdminArea {
    const ROLES: &'static [Role] = &[Role::Admin];
}

/// A logged-in user whose role may use area `A`. Extracting it is the role check:
/// a handler that takes one cannot run for anyone else.
pub struct Authorized<A: Area> {
    pub session: Session,
    pub lang: Lang,
    _area: PhantomData<A>,
}

impl<A: Area> Authorized<A> {
    pub fn user_id(&self) -> i64 {
        self.session.user.id
    }

    pub fn tr(&self) -> &'static Tr {
        self.lang.tr()
    }

    /// Constant-time comparison of the form's token with the session's.
    pub fn check_csrf(&self, submitted: &str) -> AppResult<()> {
        if constant_time_eq(submitted.as_bytes(), self.session.csrf_token.as_bytes()) {
            Ok(())
        } else {
            Err(AppError::Csrf)
        }
    }

    pub fn nav(&self) -> Nav {
        Nav::for_session(&self.session, self.lang)
    }
}

fn wants_json(req: &HttpRequest) -> bool {
    req.path().starts_with("/api/")
}

impl<A: Area + 'static> FromRequest for Authorized<A> {
    type Error = AppError;
    type Future = Pin<Box<dyn Future<Output = AppResult<Self>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let state = req.app_data::<web::Data<AppState>>().expect("AppState is registered").clone();
            let unauthenticated = AppError::Unauthenticated { wants_json: wants_json(&req) };
            let token = req.cookie(SESSION_COOKIE).ok_or(unauthenticated)?;
            let session = sessions::lookup(&state.pool, token.value())
                .await?
                .ok_or(AppError::Unauthenticated { wants_json: wants_json(&req) })?;
            if !A::ROLES.contains(&session.user.role) {
                return Err(AppError::Forbidden);
            }
            Ok(Authorized { session, lang: Lang::from_request(&req), _area: PhantomData })
        })
    }
}

/// An authorized user and a request body, extracted in that order. Actix polls a
/// handler's extractors together, so a bad body could otherwise answer 400 before the
/// role check answers 403; here the body is not even read for the wrong role.
pub struct Permitted<A: Area, T> {
    pub user: Authorized<A>,
    pub input: T,
}

impl<A: Area + 'static, T: FromRequest + 'static> FromRequest for Permitted<A, T> {
    type Error = actix_web::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self, actix_web::Error>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let both = guard_then::<Authorized<A>, T>(req, payload);
        Box::pin(async move { both.await.map(|(user, input)| Permitted { user, input }) })
    }
}

/// An extraction done in the future of a request.
type Extracting<T> = Pin<Box<dyn Future<Output = Result<T, actix_web::Error>>>>;

/// `G` extracted first, without the body, then `T`: a request that `G` refuses (wrong
/// role, bad API key) is answered before its body is read.
pub fn guard_then<G, T>(req: &HttpRequest, payload: &mut Payload) -> Extracting<(G, T)>
where
    G: FromRequest + 'static,
    T: FromRequest + 'static,
{
    let req = req.clone();
    let mut payload = payload.take();
    Box::pin(async move {
        let guard = G::from_request(&req, &mut Payload::None).await.map_err(Into::into)?;
        let input = T::from_request(&req, &mut payload).await.map_err(Into::into)?;
        Ok((guard, input))
    })
}

pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The navigation bar: which links this role sees.
pub struct Nav {
    pub username: String,
    pub role: &'static str,
    pub csrf: String,
    pub reviewer: bool,
    pub engineer: bool,
    pub admin: bool,
}

impl Nav {
    pub fn for_session(session: &Session, _lang: Lang) -> Nav {
        let role = session.user.role;
        Nav {
            username: session.user.username.clone(),
            role: role.as_str(),
            csrf: session.csrf_token.clone(),
            reviewer: ReviewArea::ROLES.contains(&role),
            engineer: EngineerArea::ROLES.contains(&role),
            admin: AdminArea::ROLES.contains(&role),
        }
    }
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    t: &'static Tr,
    csrf: String,
    failed: bool,
    username: String,
}

fn login_page(t: &'static Tr, failed: bool, username: String) -> HttpResponse {
    let csrf = sessions::random_token();
    let page = LoginPage { t, csrf: csrf.clone(), failed, username };
    let status =
        if failed { actix_web::http::StatusCode::UNAUTHORIZED } else { actix_web::http::StatusCode::OK };
    let mut response = render_with(&page, status);
    let cookie = Cookie::build(LOGIN_CSRF_COOKIE, csrf)
        .path("/login")
        .http_only(true)
        .same_site(SameSite::Strict)
        .finish();
    let _ = response.add_cookie(&cookie);
    response
}

pub async fn login_form(req: HttpRequest) -> HttpResponse {
    login_page(Lang::from_request(&req).tr(), false, String::new())
}

#[derive(Deserialize)]
pub struct LoginForm {
    username: String,
    password: String,
    csrf: String,
}

pub async fn login(
    req: HttpRequest,
    state: web::Data<AppState>,
    form: web::Form<LoginForm>,
) -> AppResult<HttpResponse> {
    let expected = req.cookie(LOGIN_CSRF_COOKIE).map(|c| c.value().to_string()).unwrap_or_default();
    if expected.is_empty() || !constant_time_eq(expected.as_bytes(), form.csrf.as_bytes()) {
        return Err(AppError::Csrf);
    }
    let t = Lang::from_request(&req).tr();
    let Some(user) = users::authenticate(&state.pool, &form.username, &form.password).await? else {
        tracing::info!(username = %form.username, "failed login");
        return Ok(login_page(t, true, form.username.clone()));
    };
    let token = sessions::start(&state.pool, user.id).await?;
    let cookie = Cookie::build(SESSION_COOKIE, token)
        .path("/")
        .http_only(true)
        .secure(state.secure_cookies)
        .same_site(SameSite::Lax)
        .max_age(actix_web::cookie::time::Duration::days(sessions::SESSION_DAYS))
        .finish();
    Ok(HttpResponse::SeeOther().insert_header(("Location", home_of(user.role))).cookie(cookie).finish())
}

pub fn home_of(role: Role) -> &'static str {
    match role {
        Role::Engineer | Role::Admin => "/engineer",
        Role::Annotator | Role::Reviewer => "/annotate",
    }
}

#[derive(Deserialize)]
pub struct CsrfForm {
    pub csrf: String,
}

pub async fn logout(
    request: Permitted<AnnotateArea, web::Form<CsrfForm>>,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> AppResult<HttpResponse> {
    request.user.check_csrf(&request.input.csrf)?;
    if let Some(cookie) = req.cookie(SESSION_COOKIE) {
        sessions::end(&state.pool, cookie.value()).await?;
    }
    let mut expired = Cookie::build(SESSION_COOKIE, "").path("/").finish();
    expired.make_removal();
    Ok(HttpResponse::SeeOther().insert_header(("Location", "/login")).cookie(expired).finish())
}

/// `/`: each role lands on its own start page.
pub async fn home(user: Authorized<AnnotateArea>) -> HttpResponse {
    HttpResponse::SeeOther().insert_header(("Location", home_of(user.session.user.role))).finish()
}

#[derive(Deserialize)]
pub struct LangQuery {
    next: Option<String>,
}

/// Switches the UI language and returns to `next`, or to the page the link was on.
/// Only local paths are followed, so the switch cannot be used as an open redirect.
pub async fn set_lang(
    req: HttpRequest,
    path: web::Path<String>,
    query: web::Query<LangQuery>,
) -> AppResult<HttpResponse> {
    let lang = Lang::parse(&path).ok_or(AppError::NotFound)?;
    let referer = req.headers().get("referer").and_then(|r| r.to_str().ok()).and_then(local_path_of);
    let next = query
        .next
        .as_deref()
        .or(referer)
        .filter(|n| n.starts_with('/') && !n.starts_with("//") && !n.starts_with("/lang/"))
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
