//! The one error type of the HTTP API: a status and a JSON body `{"error": "...", "field": "..."}` naming the
//! request field at fault (`body` for the request as a whole). Every refusal is a 4xx; a 5xx only ever means
//! the policy itself failed (a libtorch error), never bad input.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// A refused or failed request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// The request field at fault (`body`, `session_id`, `k`, ...), or `None` when no field is (401, 5xx).
    pub field: Option<String>,
    /// What is wrong, for a person.
    pub message: String,
}

/// The JSON body of an error response.
#[derive(Debug, Serialize, serde::Deserialize, PartialEq)]
pub struct ErrorBody {
    pub error: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

impl ApiError {
    /// 400 Bad Request about `field`.
    pub fn bad_request(field: &str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, Some(field), message)
    }
    /// 404 Not Found about `field` (an unknown session or video).
    pub fn not_found(field: &str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, Some(field), message)
    }
    /// 409 Conflict about `field` (a request that contradicts the session's state).
    pub fn conflict(field: &str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, Some(field), message)
    }
    /// 422 Unprocessable Content about `field` (well-formed, but the server cannot do it).
    pub fn unprocessable(field: &str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, Some(field), message)
    }
    /// 401 Unauthorized (no or a wrong bearer token).
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, None, message)
    }
    /// 500: the policy failed (never bad input).
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, None, message)
    }
    /// 503: the server is shutting down and the worker has stopped.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, None, message)
    }

    /// Any status about `field`.
    pub fn new_status(status: StatusCode, field: &str, message: impl Into<String>) -> Self {
        Self::new(status, Some(field), message)
    }

    fn new(status: StatusCode, field: Option<&str>, message: impl Into<String>) -> Self {
        Self { status, field: field.map(str::to_string), message: message.into() }
    }

    /// The JSON body.
    pub fn body(&self) -> ErrorBody {
        ErrorBody { error: self.message.clone(), field: self.field.clone() }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.field {
            Some(field) => write!(f, "{} ({field}): {}", self.status, self.message),
            None => write!(f, "{}: {}", self.status, self.message),
        }
    }
}

impl std::error::Error for ApiError {}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, axum::Json(self.body())).into_response()
    }
}
