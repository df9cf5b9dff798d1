//! [`ApiError`]: the only way an error reaches a client. Every variant maps
//! to one status and one stable `code`, rendered as
//! `{"error": {"code", "message", "field"?}}`.

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// An error as the client sees it.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The body is not JSON, or not UTF-8 (400).
    #[error("{message}")]
    BadRequest {
        message: String,
        field: Option<String>,
    },
    /// A field breaks a documented rule (422).
    #[error("{field}: {message}")]
    Validation { field: String, message: String },
    /// No key, or an unknown, revoked or expired one (401).
    #[error("{0}")]
    Unauthenticated(String),
    /// The key lacks a scope, or the customer is suspended (403).
    #[error("{0}")]
    Forbidden(String),
    /// The resource does not exist for this caller (404).
    #[error("{0}")]
    NotFound(String),
    /// An idempotency key reused with another body, or still in progress (409).
    #[error("{0}")]
    Conflict(String),
    /// The body is larger than `limits.max_body_bytes` (413).
    #[error("request body larger than {limit} bytes")]
    PayloadTooLarge { limit: usize },
    /// Too many requests for this customer and endpoint (429, `Retry-After`).
    #[error("rate limit exceeded for {endpoint}; retry in {retry_after_secs} s")]
    RateLimited {
        endpoint: &'static str,
        retry_after_secs: u64,
    },
    /// The monthly capture quota and its grace are used up (429).
    #[error("monthly quota of {limit} episodes exceeded (used {used}, grace included)")]
    QuotaExceeded { limit: u64, used: u64 },
    /// kyro-server or the embedding model cannot be reached (503).
    #[error("{0}")]
    Unavailable(String),
    /// A failure of ours; the details are logged, not sent (500).
    #[error("internal error")]
    Internal(String),
}

/// Every error response: `{"error": {"code", "message", "field"?}}`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    error: ErrorDetail,
}

/// The error itself.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// Stable machine-readable code: `bad_request`, `validation_error`,
    /// `unauthenticated`, `forbidden`, `not_found`, `conflict`,
    /// `payload_too_large`, `rate_limited`, `quota_exceeded`, `unavailable`,
    /// `internal`.
    code: &'static str,
    /// What went wrong, for a person (or a model) to read.
    message: String,
    /// The request field at fault (dotted path, `[i]` for list items).
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<String>,
}

impl ApiError {
    /// A 422 naming `field`.
    pub fn validation(field: impl Into<String>, message: impl Into<String>) -> Self {
        ApiError::Validation {
            field: field.into(),
            message: message.into(),
        }
    }

    /// A 500 whose cause is logged.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        ApiError::Internal(cause.to_string())
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            ApiError::Validation { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::RateLimited { .. } | ApiError::QuotaExceeded { .. } => {
                StatusCode::TOO_MANY_REQUESTS
            }
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::BadRequest { .. } => "bad_request",
            ApiError::Validation { .. } => "validation_error",
            ApiError::Unauthenticated(_) => "unauthenticated",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::NotFound(_) => "not_found",
            ApiError::Conflict(_) => "conflict",
            ApiError::PayloadTooLarge { .. } => "payload_too_large",
            ApiError::RateLimited { .. } => "rate_limited",
            ApiError::QuotaExceeded { .. } => "quota_exceeded",
            ApiError::Unavailable(_) => "unavailable",
            ApiError::Internal(_) => "internal",
        }
    }

    /// The request field at fault, when there is one.
    pub fn field(&self) -> Option<&str> {
        match self {
            ApiError::Validation { field, .. } => Some(field),
            ApiError::BadRequest { field, .. } => field.as_deref(),
            _ => None,
        }
    }

    /// The message the client sees.
    pub fn message(&self) -> String {
        match self {
            ApiError::Validation { message, .. } => message.clone(),
            other => other.to_string(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let ApiError::Internal(cause) = &self {
            tracing::error!(%cause, "internal error");
        }
        let status = self.status();
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code(),
                message: self.message(),
                field: self.field().map(str::to_owned),
            },
        };
        let mut response = (status, axum::Json(body)).into_response();
        if let ApiError::RateLimited {
            retry_after_secs, ..
        } = &self
        {
            if let Ok(value) = HeaderValue::from_str(&retry_after_secs.to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, value);
            }
        }
        if status.is_client_error() || status.is_server_error() {
            metrics::counter!("gateway_errors_total", "code" => self.code()).increment(1);
        }
        response
    }
}

/// The field a serde error message names (`missing field `goal``).
pub(crate) fn field_of(message: &str) -> Option<String> {
    for marker in ["missing field `", "unknown field `"] {
        if let Some(rest) = message.split(marker).nth(1) {
            return rest.split('`').next().map(str::to_owned);
        }
    }
    None
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        let text = rejection.body_text();
        ApiError::Validation {
            field: field_of(&text).unwrap_or_else(|| "query".to_owned()),
            message: text,
        }
    }
}

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> Self {
        ApiError::NotFound(rejection.body_text())
    }
}

impl From<tonic::Status> for ApiError {
    fn from(status: tonic::Status) -> Self {
        use tonic::Code;
        match status.code() {
            Code::Unavailable
            | Code::DeadlineExceeded
            | Code::ResourceExhausted
            | Code::Cancelled
            | Code::Unknown => ApiError::Unavailable(format!(
                "the vector engine is unavailable ({:?})",
                status.code()
            )),
            Code::NotFound => ApiError::NotFound("not found".to_owned()),
            _ => ApiError::Internal(format!("engine: {status}")),
        }
    }
}
