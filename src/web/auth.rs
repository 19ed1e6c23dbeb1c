//! Who is asking and what they may do: session cookies and role checks per area.
//! CSRF tokens are checked for every route by `csrf`; logging in by `login`.

use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::{web, FromRequest, HttpMessage, HttpRequest, HttpResponse};

use super::i18n::{Lang, Tr};
use super::AppState;
use crate::error::{AppError, AppResult};
use crate::store::sessions::{self, Session};
use crate::store::users::Role;

pub const SESSION_COOKIE: &str = "rl_session";

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

    pub fn nav(&self) -> Nav {
        Nav::for_session(&self.session, self.lang)
    }
}

/// Whether the request is for the JSON API: read from the path as the router decoded
/// it (`/%61pi/…` is `/api/…` to the router, so it is to this too).
pub fn wants_json(req: &HttpRequest) -> bool {
    req.match_info().as_str().starts_with("/api/")
}

/// The page to come back to after logging in: the one asked for, when it was a GET.
fn back_to(req: &HttpRequest) -> Option<String> {
    (req.method() == actix_web::http::Method::GET)
        .then(|| req.uri().path_and_query().map_or("/", |p| p.as_str()).to_string())
}

impl<A: Area + 'static> FromRequest for Authorized<A> {
    type Error = AppError;
    type Future = Pin<Box<dyn Future<Output = AppResult<Self>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let unauthenticated =
                || AppError::Unauthenticated { wants_json: wants_json(&req), next: back_to(&req) };
            // The CSRF check may have looked the session up already.
            let known = req.extensions().get::<Session>().cloned();
            let session = match known {
                Some(session) => session,
                None => {
                    let token = req.cookie(SESSION_COOKIE).ok_or_else(unauthenticated)?;
                    let state = req.app_data::<web::Data<AppState>>().expect("AppState is registered");
                    sessions::lookup(&state.pool, token.value()).await?.ok_or_else(unauthenticated)?
                }
            };
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

pub fn home_of(role: Role) -> &'static str {
    match role {
        Role::Engineer | Role::Admin => "/engineer",
        Role::Annotator | Role::Reviewer => "/annotate",
    }
}

/// A form with nothing in it but the CSRF token, which `csrf` checks.
#[derive(serde::Deserialize)]
pub struct CsrfForm {}

/// `/`: each role lands on its own start page.
pub async fn home(user: Authorized<AnnotateArea>) -> HttpResponse {
    HttpResponse::SeeOther().insert_header(("Location", home_of(user.session.user.role))).finish()
}
