//! The analysis API's errors: each with its HTTP status and a stable code, answered
//! as JSON `{"error": {"code", "message", "index"}}`; JSON body errors from actix are
//! turned into the same shape.

use actix_web::error::JsonPayloadError;
use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse, ResponseError};
use serde::Serialize;
use utoipa::ToSchema;

use crate::serve::ServeError;

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable: invalid_json, unknown_field, missing_text, empty_text, text_too_long,
    /// batch_too_large, over_budget, body_too_large, bad_key, rate_limited,
    /// unknown_taxonomy, no_model, overloaded, model_error, internal.
    pub code: &'static str,
    pub message: String,
    /// The review the error is about, for errors of one review in a batch.
    pub index: Option<usize>,
}

/// The API's errors, each with its status and code.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    InvalidJson(String),
    #[error("{0}")]
    UnknownField(String),
    #[error("send `text` or `reviews` (one of them)")]
    MissingText,
    #[error("review {0} is empty")]
    EmptyText(usize),
    #[error("review {index} has {chars} characters; the limit is {limit}")]
    TextTooLong { index: usize, chars: usize, limit: usize },
    #[error("{count} reviews in one request; the limit is {limit}")]
    BatchTooLarge { count: usize, limit: usize },
    #[error("the request body is over {0} bytes")]
    BodyTooLarge(usize),
    #[error("{0}")]
    BadKey(&'static str),
    #[error("this key's rate limit is reached; retry in {0} s")]
    RateLimited(u64),
    #[error(transparent)]
    Serve(#[from] ServeError),
}

impl ApiError {
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::InvalidJson(_) => "invalid_json",
            ApiError::UnknownField(_) => "unknown_field",
            ApiError::MissingText => "missing_text",
            ApiError::EmptyText(_) => "empty_text",
            ApiError::TextTooLong { .. } => "text_too_long",
            ApiError::BatchTooLarge { .. } => "batch_too_large",
            ApiError::BodyTooLarge(_) => "body_too_large",
            ApiError::BadKey(_) => "bad_key",
            ApiError::RateLimited(_) => "rate_limited",
            ApiError::Serve(ServeError::UnknownTaxonomy(_)) => "unknown_taxonomy",
            ApiError::Serve(ServeError::NoModel(_)) => "no_model",
            ApiError::Serve(ServeError::Overloaded) => "overloaded",
            ApiError::Serve(ServeError::OverBudget { .. }) => "over_budget",
            ApiError::Serve(ServeError::RateLimited(_)) => "rate_limited",
            ApiError::Serve(ServeError::Model(_)) => "model_error",
            ApiError::Serve(ServeError::Database(_)) => "internal",
        }
    }

    fn index(&self) -> Option<usize> {
        match self {
            ApiError::EmptyText(i) | ApiError::TextTooLong { index: i, .. } => Some(*i),
            _ => None,
        }
    }

    fn from_json(error: &JsonPayloadError) -> ApiError {
        match error {
            JsonPayloadError::Overflow { limit } | JsonPayloadError::OverflowKnownLength { limit, .. } => {
                ApiError::BodyTooLarge(*limit)
            }
            JsonPayloadError::Deserialize(e) if e.to_string().starts_with("unknown field") => {
                ApiError::UnknownField(e.to_string())
            }
            JsonPayloadError::ContentType => {
                ApiError::InvalidJson("send the body as JSON (Content-Type: application/json)".into())
            }
            e => ApiError::InvalidJson(e.to_string()),
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::BodyTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::BadKey(_) => StatusCode::UNAUTHORIZED,
            ApiError::RateLimited(_) | ApiError::Serve(ServeError::RateLimited(_)) => {
                StatusCode::TOO_MANY_REQUESTS
            }
            ApiError::Serve(ServeError::UnknownTaxonomy(_)) => StatusCode::NOT_FOUND,
            ApiError::Serve(ServeError::NoModel(_) | ServeError::Overloaded) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ApiError::Serve(ServeError::Model(_) | ServeError::Database(_)) => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
            _ => StatusCode::BAD_REQUEST,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        let message = if status.is_server_error() && status != StatusCode::SERVICE_UNAVAILABLE {
            tracing::error!(error = %self, "analysis failed");
            "internal error".to_string()
        } else {
            self.to_string()
        };
        let mut response = HttpResponse::build(status);
        let retry_after = match self {
            ApiError::RateLimited(seconds) | ApiError::Serve(ServeError::RateLimited(seconds)) => {
                Some(seconds.to_string())
            }
            ApiError::Serve(ServeError::Overloaded) => Some("1".to_string()),
            _ => None,
        };
        if let Some(seconds) = retry_after {
            response.insert_header(("Retry-After", seconds));
        }
        response.json(ErrorBody { error: ErrorDetail { code: self.code(), message, index: self.index() } })
    }
}

/// The JSON extractor's configuration: its errors in the API's shape.
pub fn json_config(limit: usize) -> web::JsonConfig {
    web::JsonConfig::default().limit(limit).error_handler(|error, _| ApiError::from_json(&error).into())
}
