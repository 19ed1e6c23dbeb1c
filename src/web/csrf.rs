//! CSRF checks, by construction: the router wraps every route of the table in
//! [`guard`] with the rule of that route's access, so the rule is chosen by the route
//! the router matched (after it decoded the path), never by comparing the raw path.
//! Requests that match no route go to [`unmatched`], which applies the same check
//! before answering 404.
//!
//! One rule for every request but GET, HEAD and OPTIONS: it must carry the token it is
//! entitled to, or it is refused (403) before its handler runs.
//! - the login form: the token of its double-submit cookie (there is no session yet);
//! - every page route: the session's token (no session, no token, so nothing can be
//!   done anonymously either);
//! - the analysis API: nothing, since it authenticates with keys, which a browser never
//!   sends on its own.
//!
//! The token comes as the `X-CSRF-Token` header, or as the `csrf` field of the body: of
//! a urlencoded form (read here, bounded, and handed on unchanged), or the first field
//! of a multipart upload (read up to that field, so an upload without its token is
//! refused before a byte of its file is read). Never from the query string, which ends
//! up in logs and `Referer` headers.

use std::cell::RefCell;
use std::rc::Rc;

use actix_web::body::{BoxBody, EitherBody, MessageBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::http::{header, Method};
use actix_web::middleware::Next;
use actix_web::{web, HttpMessage, HttpRequest, HttpResponse, ResponseError};
use futures_util::StreamExt;

use super::auth::{constant_time_eq, SESSION_COOKIE};
use super::login::LOGIN_CSRF_COOKIE;
use super::routing::Access;
use super::AppState;
use crate::error::AppError;
use crate::store::sessions;

/// Largest form body read for its token; forms here are a few kilobytes.
const FORM_LIMIT: usize = 1024 * 1024;
/// Most of an upload read to find its first field (a chunk or two of the socket's
/// reads), and the longest token.
const MULTIPART_PREFIX_LIMIT: usize = 1024 * 1024;
const TOKEN_LIMIT: usize = 256;

pub const HEADER: &str = "x-csrf-token";

/// Which token an unsafe request must carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// The login form: its double-submit cookie's token.
    LoginForm,
    /// A page route: the session's token.
    Session,
    /// An API-key route: none.
    ApiKey,
    /// A request no route matched: the session's token, or else the login cookie's.
    Unmatched,
}

impl Rule {
    /// The rule of a route of the table. Public routes that change something are login
    /// forms (the route table's test holds that `/login` is the only one).
    pub fn of(access: Access) -> Rule {
        match access {
            Access::Public => Rule::LoginForm,
            Access::Roles(_) => Rule::Session,
            Access::ApiKey => Rule::ApiKey,
        }
    }
}

/// The middleware of one route: its rule checked, then the route's handler.
pub async fn guard(
    rule: Rule,
    mut req: ServiceRequest,
    next: Next<BoxBody>,
) -> Result<ServiceResponse<EitherBody<BoxBody>>, actix_web::Error> {
    match verify(rule, &mut req).await {
        Ok(()) => Ok(next.call(req).await?.map_into_left_body()),
        Err(e) => Ok(req.into_response(e.error_response()).map_into_right_body()),
    }
}

/// The app's default service: a request no route matched is checked like any other,
/// then answered 405 (with the methods its path has) or 404.
pub async fn unmatched(req: HttpRequest, payload: web::Payload) -> Result<HttpResponse, AppError> {
    let mut req = ServiceRequest::from_parts(req, payload.into_inner());
    verify(Rule::Unmatched, &mut req).await?;
    let allowed = super::routing::methods_of(req.match_info().as_str());
    if allowed.is_empty() {
        return Err(AppError::NotFound);
    }
    Err(AppError::MethodNotAllowed(allowed.join(", ")))
}

/// Whether a method may change something.
pub fn is_unsafe(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

async fn verify(rule: Rule, req: &mut ServiceRequest) -> Result<(), AppError> {
    if !is_unsafe(req.method()) || rule == Rule::ApiKey {
        return Ok(());
    }
    let expected = expected_token(rule, req).await?.ok_or(AppError::Csrf)?;
    let submitted = submitted_token(req).await?.ok_or(AppError::Csrf)?;
    if constant_time_eq(submitted.as_bytes(), expected.as_bytes()) {
        Ok(())
    } else {
        Err(AppError::Csrf)
    }
}

/// The token the request must carry under `rule`. A session found is kept for the
/// handler's role check, so it is looked up once.
async fn expected_token(rule: Rule, req: &ServiceRequest) -> Result<Option<String>, AppError> {
    let login_cookie = || {
        let cookie = req.cookie(LOGIN_CSRF_COOKIE).map(|c| c.value().to_string());
        cookie.filter(|c| !c.is_empty())
    };
    match rule {
        Rule::ApiKey => Ok(None),
        Rule::LoginForm => Ok(login_cookie()),
        Rule::Session => session_token(req).await,
        Rule::Unmatched => Ok(session_token(req).await?.or_else(login_cookie)),
    }
}

async fn session_token(req: &ServiceRequest) -> Result<Option<String>, AppError> {
    let Some(cookie) = req.cookie(SESSION_COOKIE) else { return Ok(None) };
    let state = req.app_data::<web::Data<AppState>>().expect("AppState is registered");
    let Some(session) = sessions::lookup(&state.pool, cookie.value()).await? else { return Ok(None) };
    let token = session.csrf_token.clone();
    req.extensions_mut().insert(session);
    Ok(Some(token))
}

/// The token sent with the request: the header, else the body's `csrf` field.
async fn submitted_token(req: &mut ServiceRequest) -> Result<Option<String>, AppError> {
    if let Some(value) = req.headers().get(HEADER).and_then(|v| v.to_str().ok()) {
        return Ok(Some(value.to_string()));
    }
    let content_type = req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    if content_type.starts_with("application/x-www-form-urlencoded") {
        form_token(req).await
    } else if content_type.starts_with("multipart/form-data") {
        multipart_token(req).await
    } else {
        Ok(None)
    }
}

async fn form_token(req: &mut ServiceRequest) -> Result<Option<String>, AppError> {
    let body = read_body(req).await?;
    let fields: Vec<(String, String)> = serde_urlencoded::from_bytes(&body).unwrap_or_default();
    let token = fields.into_iter().find(|(k, _)| k == "csrf").map(|(_, v)| v);
    // The handler reads the same body after this.
    let (_, mut payload) = actix_http::h1::Payload::create(true);
    payload.unread_data(body);
    req.set_payload(payload.into());
    Ok(token)
}

async fn read_body(req: &mut ServiceRequest) -> Result<web::Bytes, AppError> {
    let mut payload = req.take_payload();
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| AppError::BadRequest(format!("the form could not be read: {e}")))?;
        if body.len() + chunk.len() > FORM_LIMIT {
            return Err(AppError::BadRequest(format!("a form may have at most {FORM_LIMIT} bytes")));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

/// The value of an upload's first field when it is `csrf`. The body is read only as
/// far as that field (the parser is actix-multipart's, fed through a tap that keeps
/// what it reads); what was read is then put back in front of the rest for the handler.
async fn multipart_token(req: &mut ServiceRequest) -> Result<Option<String>, AppError> {
    let source = Rc::new(RefCell::new(req.take_payload()));
    let seen: Rc<RefCell<Vec<web::Bytes>>> = Rc::default();
    let tap = {
        let (source, seen) = (source.clone(), seen.clone());
        futures_util::stream::poll_fn(move |cx| {
            let read: usize = seen.borrow().iter().map(|b| b.len()).sum();
            if read > MULTIPART_PREFIX_LIMIT {
                // No first field within the limit: the parser stops here.
                return std::task::Poll::Ready(Some(Err(actix_web::error::PayloadError::Overflow)));
            }
            let polled = source.borrow_mut().poll_next_unpin(cx);
            if let std::task::Poll::Ready(Some(Ok(chunk))) = &polled {
                seen.borrow_mut().push(chunk.clone());
            }
            polled
        })
    };
    let mut parts = actix_multipart::Multipart::new(req.headers(), tap);
    let token = match parts.next().await {
        Some(Ok(field)) if field.name() == Some("csrf") => field_value(field).await,
        _ => None,
    };
    drop(parts);
    let read: Vec<web::Bytes> = seen.take();
    let rest = std::mem::replace(&mut *source.borrow_mut(), Payload::None);
    let replay = futures_util::stream::iter(read.into_iter().map(Ok)).chain(rest);
    req.set_payload(Payload::Stream { payload: Box::pin(replay) });
    Ok(token)
}

/// A short field's text; `None` when it is longer than a token (or runs past the
/// prefix limit).
async fn field_value(mut field: actix_multipart::Field) -> Option<String> {
    let mut value = Vec::new();
    while let Some(chunk) = field.next().await {
        value.extend_from_slice(&chunk.ok()?);
        if value.len() > TOKEN_LIMIT {
            return None;
        }
    }
    String::from_utf8(value).ok()
}

/// The `register` of every route: the route's own resource wrapped in its rule.
pub fn wrap(
    rule: Rule,
    resource: actix_web::Resource,
) -> actix_web::Resource<
    impl actix_web::dev::ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    resource.wrap(actix_web::middleware::from_fn(move |req, next| guard(rule, req, next)))
}
