//! The API's one error shape, `{"error":{"code","message"}}`, and how store failures and
//! malformed requests map onto it.

use axum::Json;
use axum::http::header::{RETRY_AFTER, WWW_AUTHENTICATE};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::error::Category;
use serde_json::json;
use webhooks_ingest::IngestError;
use webhooks_storage::StoreError;

/// An error answer: its status, a stable snake_case code and a message for people.
///
/// Messages never echo a stored secret or credential; they may quote what the client sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// The machine-readable code, e.g. `url_not_allowed`.
    pub code: &'static str,
    /// What went wrong.
    pub message: String,
    /// Seconds to wait, sent as `Retry-After` (429 only).
    pub retry_after_secs: Option<u64>,
}

/// The code of an error answer, left in the response's extensions for the request log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ErrorCode(pub(crate) &'static str);

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            retry_after_secs: None,
        }
    }

    /// 400: a request that is not what the route takes (`invalid_request`).
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", message)
    }

    /// 400 for a body that is not JSON (`invalid_json`) or not the JSON the route takes
    /// (`invalid_request`).
    pub fn from_json(error: &serde_json::Error) -> Self {
        match error.classify() {
            Category::Data => Self::bad_request(error.to_string()),
            Category::Io | Category::Syntax | Category::Eof => {
                Self::new(StatusCode::BAD_REQUEST, "invalid_json", error.to_string())
            }
        }
    }

    /// 401 with `WWW-Authenticate: Bearer`.
    pub fn unauthorized() -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", "missing or invalid API key")
    }

    /// 404 for `what` (a subscription, a delivery, ...), also for another merchant's.
    pub fn not_found(what: &str) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", format!("{what} not found"))
    }

    /// 405 for a method the path does not take.
    pub fn method_not_allowed() -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "this path does not take this method",
        )
    }

    /// 409: the resource's state forbids the request.
    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, code, message)
    }

    /// 413: the body is larger than [`crate::MAX_BODY_BYTES`].
    pub fn payload_too_large() -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "request body exceeds 64 KiB",
        )
    }

    /// 422: well-formed, but a value is refused.
    pub fn unprocessable(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, code, message)
    }

    /// 429 with `Retry-After`.
    pub fn rate_limited(retry_after_secs: u64) -> Self {
        Self {
            retry_after_secs: Some(retry_after_secs),
            ..Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                "too many requests, slow down",
            )
        }
    }

    /// 503: the store or queue failed; the request may be retried.
    pub fn unavailable() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "the service is temporarily unavailable, try again",
        )
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::BadCursor => Self::new(
                StatusCode::BAD_REQUEST,
                "invalid_cursor",
                "cursor was not issued by this API",
            ),
            StoreError::NotFound => Self::not_found("resource"),
            StoreError::Conflict(what) => Self::conflict("conflict", format!("already exists: {what}")),
            StoreError::VersionConflict => {
                Self::conflict("conflict", "changed by other requests at the same time, try again")
            }
            StoreError::Backend { operation, message } => {
                tracing::error!(operation, message, "store or queue failed");
                Self::unavailable()
            }
            // The decode error may quote stored data (a secret), so it is not logged.
            StoreError::Corrupt(_) => {
                tracing::error!("a stored item does not decode");
                Self::unavailable()
            }
            StoreError::BadReceipt => {
                tracing::error!("the queue refused a receipt handle");
                Self::unavailable()
            }
        }
    }
}

impl From<IngestError> for ApiError {
    fn from(error: IngestError) -> Self {
        match error {
            IngestError::Store(error) | IngestError::Enqueue { first: error, .. } => error.into(),
            IngestError::FanOutInProgress(event_id) => {
                tracing::error!(%event_id, "a new event's fan-out lease is held");
                Self::unavailable()
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({ "error": { "code": self.code, "message": self.message } });
        let mut response = (self.status, Json(body)).into_response();
        let headers = response.headers_mut();
        if self.status == StatusCode::UNAUTHORIZED {
            headers.insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if let Some(secs) = self.retry_after_secs {
            headers.insert(RETRY_AFTER, HeaderValue::from(secs));
        }
        response.extensions_mut().insert(ErrorCode(self.code));
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_write_that_kept_losing_to_concurrent_writes_is_a_409_conflict() {
        let error = ApiError::from(StoreError::VersionConflict);
        assert_eq!((error.status, error.code), (StatusCode::CONFLICT, "conflict"));
    }
}
