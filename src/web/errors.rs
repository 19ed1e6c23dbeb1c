//! Error pages for people. Handlers return `AppError`, which answers JSON; for pages
//! outside `/api/` this turns that answer into an HTML page from a template.

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::ServiceResponse;
use actix_web::http::header;
use actix_web::middleware::ErrorHandlerResponse;
use askama::Template;

use super::i18n::{Lang, Tr};

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage {
    t: &'static Tr,
    status: u16,
    title: &'static str,
    message: String,
}

/// The page's title and what it says under it: the user's language for the errors
/// whose words are fixed (the status's own title says enough for most), the handler's
/// message for the others.
fn in_words(t: &Tr, status: u16, code: Option<&str>, message: Option<&str>) -> (&'static str, String) {
    match code {
        // Not a matter of role: the form, not the user, was refused.
        Some("csrf") => (t.err_bad_request, t.err_csrf.to_string()),
        Some("round_closed") => (t.status_text(status), t.err_round_closed.to_string()),
        Some("bad_input") => (t.status_text(status), t.err_bad_input.to_string()),
        Some("forbidden" | "not_found" | "internal" | "unauthenticated" | "method_not_allowed") => {
            (t.status_text(status), String::new())
        }
        _ => (t.status_text(status), message.unwrap_or_default().to_string()),
    }
}

pub fn render_error_page<B: MessageBody + 'static>(
    res: ServiceResponse<B>,
) -> actix_web::Result<ErrorHandlerResponse<B>> {
    let is_api = super::auth::wants_json(res.request());
    let status = res.status();
    // A page that answered with its own HTML (a form shown again with its error) stays.
    let is_html = res
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/html"));
    if is_api || is_html || status.is_redirection() || status.is_success() {
        return Ok(ErrorHandlerResponse::Response(res.map_into_left_body()));
    }
    let t = Lang::from_request(res.request()).tr();
    let (req, response) = res.into_parts();
    // What the answer tells a client besides its body stays on the page.
    let kept: Vec<_> = [header::ALLOW, header::RETRY_AFTER]
        .into_iter()
        .filter_map(|name| Some((name.clone(), response.headers().get(&name)?.clone())))
        .collect();
    let body = actix_web::body::to_bytes(response.into_body());
    let status_code = status.as_u16();
    Ok(ErrorHandlerResponse::Future(Box::pin(async move {
        let (title, message) = match body.await {
            Ok(bytes) => match serde_json::from_slice::<serde_json::Value>(&bytes) {
                Ok(v) => {
                    in_words(t, status_code, v["error"]["code"].as_str(), v["error"]["message"].as_str())
                }
                Err(_) => (t.status_text(status_code), String::from_utf8_lossy(&bytes).to_string()),
            },
            Err(_) => (t.status_text(status_code), String::new()),
        };
        let page = ErrorPage { t, status: status_code, title, message };
        let html = page.render().unwrap_or_else(|_| format!("error {status_code}"));
        let mut response = actix_web::HttpResponse::build(status);
        response.insert_header((header::CONTENT_TYPE, "text/html; charset=utf-8"));
        for header in kept {
            response.insert_header(header);
        }
        let response = response.body(BoxBody::new(html));
        Ok(ServiceResponse::new(req, response).map_into_right_body())
    })))
}
