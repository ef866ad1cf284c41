//! The API's errors: an HTTP status, a stable code and a message, as `{"error": code,
//! "message": text}` (`docs/api.md`, "Errors"); and the conversions every handler shares.

use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use accord_observer::wire::ErrorBody;

use crate::handle::Unavailable;
use crate::store::StorageError;

/// An API error: an HTTP status, a stable code and a message.
#[derive(Debug)]
pub(crate) struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ApiError {
    pub(super) fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(ErrorBody {
                error: self.code.into(),
                message: self.message,
            }),
        )
            .into_response()
    }
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        let status = r.status();
        let code = if status == StatusCode::PAYLOAD_TOO_LARGE {
            "too-large"
        } else {
            "malformed-json"
        };
        Self::new(
            if status.is_client_error() {
                status
            } else {
                StatusCode::BAD_REQUEST
            },
            code,
            r.body_text(),
        )
    }
}

pub(super) fn unavailable(e: Unavailable) -> ApiError {
    let code = match e {
        Unavailable::Busy => "busy",
        Unavailable::Stopping => "stopping",
    };
    ApiError::new(StatusCode::SERVICE_UNAVAILABLE, code, e.to_string())
}

pub(super) fn storage_error(e: &StorageError) -> ApiError {
    ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "storage", e.to_string())
}

pub(super) fn bad_query(e: &QueryRejection) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "bad-query", e.body_text())
}

pub(super) fn bad_path(e: &PathRejection) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "bad-path", e.body_text())
}
