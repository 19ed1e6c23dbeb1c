//! Headers every answer carries: what a browser may load and frame, HTTPS only when the
//! app is served over it, and no stored copies of private pages.

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderValue};
use actix_web::middleware::{DefaultHeaders, Next};

/// A year: browsers keep to HTTPS for this long after seeing the header.
const HSTS: &str = "max-age=31536000; includeSubDomains";

pub fn security(secure: bool) -> DefaultHeaders {
    let headers = DefaultHeaders::new()
        .add(("Content-Security-Policy", "default-src 'self'; frame-ancestors 'none'; form-action 'self'"))
        .add(("X-Content-Type-Options", "nosniff"))
        .add(("X-Frame-Options", "DENY"))
        .add(("Referrer-Policy", "same-origin"));
    if secure {
        headers.add((header::STRICT_TRANSPORT_SECURITY, HSTS))
    } else {
        headers
    }
}

/// `Cache-Control: no-store` on every answer that does not set its own caching (only
/// the static files do): pages carry the session's CSRF token, and some show secrets
/// (a new API key, once), so neither the browser's history nor a proxy may keep them.
pub async fn private_pages_are_not_stored(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let mut response = next.call(req).await?;
    let headers = response.headers_mut();
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    Ok(response)
}
