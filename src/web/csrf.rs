//! CSRF checks for every route, in one place: a middleware wrapped around the whole
//! app, so a new route cannot forget them. A request that could change something
//! (any method but GET, HEAD and OPTIONS) and carries a session cookie must carry
//! that session's token; a login must carry the token of its double-submit cookie. A
//! request without either cookie acts as no user, so a forged one can do nothing (the
//! analysis API authenticates with keys, which a browser never sends on its own).
//!
//! The token may come as the `X-CSRF-Token` header, the `csrf` query parameter, or the
//! `csrf` field of a urlencoded form (read here, bounded, and handed on unchanged).
//! An upload (multipart) must send it in the query or header: it is checked before a
//! byte of the body is read.

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::{header, Method};
use actix_web::middleware::Next;
use actix_web::{web, HttpMessage, ResponseError};
use futures_util::StreamExt;

use super::auth::{constant_time_eq, SESSION_COOKIE};
use super::login::LOGIN_CSRF_COOKIE;
use super::AppState;
use crate::error::AppError;
use crate::store::sessions;

/// Largest form body read for its token; forms here are a few kilobytes.
const FORM_LIMIT: usize = 1024 * 1024;

pub const HEADER: &str = "x-csrf-token";

pub async fn guard(
    mut req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    if matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
        return Ok(next.call(req).await?.map_into_left_body());
    }
    let expected = match expected_token(&req).await {
        Ok(Some(token)) => token,
        Ok(None) => return Ok(next.call(req).await?.map_into_left_body()),
        Err(e) => return Ok(refuse(req, e)),
    };
    let submitted = match submitted_token(&mut req).await {
        Ok(token) => token,
        Err(e) => return Ok(refuse(req, e)),
    };
    match submitted {
        Some(token) if constant_time_eq(token.as_bytes(), expected.as_bytes()) => {
            Ok(next.call(req).await?.map_into_left_body())
        }
        _ => Ok(refuse(req, AppError::Csrf)),
    }
}

fn refuse<B>(req: ServiceRequest, error: AppError) -> ServiceResponse<EitherBody<B>> {
    req.into_response(error.error_response()).map_into_right_body()
}

/// The token this request must carry: its session's, or at `/login` its cookie's. The
/// session found is kept for the handler's role check, so it is looked up once.
async fn expected_token(req: &ServiceRequest) -> Result<Option<String>, AppError> {
    if req.path() == "/login" {
        let cookie = req.cookie(LOGIN_CSRF_COOKIE).map(|c| c.value().to_string());
        return Ok(Some(cookie.filter(|c| !c.is_empty()).ok_or(AppError::Csrf)?));
    }
    let Some(cookie) = req.cookie(SESSION_COOKIE) else { return Ok(None) };
    let state = req.app_data::<web::Data<AppState>>().expect("AppState is registered");
    let Some(session) = sessions::lookup(&state.pool, cookie.value()).await? else { return Ok(None) };
    let token = session.csrf_token.clone();
    req.extensions_mut().insert(session);
    Ok(Some(token))
}

/// The token sent with the request: header, query, then a urlencoded form's field.
async fn submitted_token(req: &mut ServiceRequest) -> Result<Option<String>, AppError> {
    if let Some(value) = req.headers().get(HEADER).and_then(|v| v.to_str().ok()) {
        return Ok(Some(value.to_string()));
    }
    let query: Vec<(String, String)> = serde_urlencoded::from_str(req.query_string()).unwrap_or_default();
    if let Some((_, token)) = query.into_iter().find(|(k, _)| k == "csrf") {
        return Ok(Some(token));
    }
    let is_form = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if !is_form {
        return Ok(None);
    }
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
