//! Errors of the web layer, mapped to HTTP in one place.

use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("login required")]
    /// `next`: the page to return to after logging in.
    Unauthenticated { wants_json: bool, next: Option<String> },
    #[error("your role may not use this page")]
    Forbidden,
    #[error("the form expired or did not come from this site (CSRF check failed); reload and try again")]
    Csrf,
    #[error("not found")]
    NotFound,
    /// The path exists with these other methods (the `Allow` header).
    #[error("this address takes {0}")]
    MethodNotAllowed(String),
    #[error("{0}")]
    BadRequest(String),
    /// A query string or form that does not parse (what the parser said, for logs and
    /// API clients; a page says it in the user's language).
    #[error("{0}")]
    BadInput(String),
    #[error("{0}")]
    Conflict(String),
    #[error("this round is closed: it takes no more answers")]
    RoundClosed,
    #[error("{0}")]
    TooLarge(String),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl ResponseError for AppError {
    fn status_code(&self) -> StatusCode {
        match self {
            AppError::Unauthenticated { wants_json: false, .. } => StatusCode::SEE_OTHER,
            AppError::Unauthenticated { wants_json: true, .. } => StatusCode::UNAUTHORIZED,
            AppError::Forbidden | AppError::Csrf => StatusCode::FORBIDDEN,
            AppError::NotFound => StatusCode::NOT_FOUND,
            AppError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            AppError::BadRequest(_) | AppError::BadInput(_) => StatusCode::BAD_REQUEST,
            AppError::Conflict(_) | AppError::RoundClosed => StatusCode::CONFLICT,
            AppError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            AppError::Database(_) | AppError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        if let AppError::Unauthenticated { wants_json: false, next } = self {
            let to = match next.as_deref() {
                Some(next) if next != "/" => {
                    format!("/login?{}", serde_urlencoded::to_string([("next", next)]).unwrap_or_default())
                }
                _ => "/login".to_string(),
            };
            return HttpResponse::SeeOther().insert_header((header::LOCATION, to)).finish();
        }
        // Internal details go to the log, not to the browser.
        let message = if status.is_server_error() {
            tracing::error!(error = ?self, "request failed");
            "internal error".to_string()
        } else {
            self.to_string()
        };
        let mut response = HttpResponse::build(status);
        if let AppError::MethodNotAllowed(allowed) = self {
            response.insert_header((header::ALLOW, allowed.as_str()));
        }
        response.json(serde_json::json!({
            "error": { "code": self.code(), "message": message }
        }))
    }
}

impl AppError {
    /// A stable machine-readable code for API clients.
    pub fn code(&self) -> &'static str {
        match self {
            AppError::Unauthenticated { .. } => "unauthenticated",
            AppError::Forbidden => "forbidden",
            AppError::Csrf => "csrf",
            AppError::NotFound => "not_found",
            AppError::MethodNotAllowed(_) => "method_not_allowed",
            AppError::BadRequest(_) => "bad_request",
            AppError::BadInput(_) => "bad_input",
            AppError::Conflict(_) => "conflict",
            AppError::RoundClosed => "round_closed",
            AppError::TooLarge(_) => "too_large",
            AppError::Database(_) | AppError::Internal(_) => "internal",
        }
    }
}

pub type AppResult<T> = Result<T, AppError>;
