//! CDF's error reply: `{"error":{"code","message","missing","duplicated"}}`.
//!
//! Handlers return `Result<_, ApiError>`; the `x-request-id` header is added to every
//! reply by the router's middleware, not here.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

#[derive(Debug, Clone)]
pub(crate) struct ApiError {
    pub status: StatusCode,
    pub message: String,
    pub missing: Vec<Value>,
    pub duplicated: Vec<Value>,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            missing: Vec::new(),
            duplicated: Vec::new(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, message)
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, message)
    }

    /// 400 with the identifiers that were not found (CDF answers unknown ids this way).
    pub fn missing(items: Vec<Value>) -> Self {
        Self {
            missing: items,
            ..Self::bad_request("Files ids not found")
        }
    }

    /// 409 with the identifiers that already exist.
    pub fn duplicated(items: Vec<Value>) -> Self {
        Self {
            duplicated: items,
            ..Self::new(StatusCode::CONFLICT, "Duplicate external ids")
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut error = json!({ "code": self.status.as_u16(), "message": self.message });
        if !self.missing.is_empty() {
            error["missing"] = Value::Array(self.missing);
        }
        if !self.duplicated.is_empty() {
            error["duplicated"] = Value::Array(self.duplicated);
        }
        (self.status, Json(json!({ "error": error }))).into_response()
    }
}
