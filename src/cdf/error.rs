//! Errors from CDF and from the upload URLs, each with a retry class.
//!
//! "Is this retryable?" is answered here, once, from the status, the
//! `cdf-is-auto-retryable` header and the transport error kind; "how long to wait" is
//! the caller's business (`Retry-After` is carried along when CDF sent it).

use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;

use crate::auth::AuthError;

/// What a failed call means for the job that made it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryClass {
    /// Try again after a backoff (5xx, 408/425, connection errors, timeouts).
    Transient,
    /// CDF asks us to slow down (429, 503): back off, honour `retry_after`, fewer in flight.
    Throttled { retry_after: Option<Duration> },
    /// The token was refused: re-authenticate once, then retry.
    ReAuth,
    /// Retrying cannot help (validation, not found, forbidden, conflict).
    Permanent,
}

/// A non-success reply from the CDF API or an upload URL.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: u16,
    pub message: String,
    pub request_id: Option<String>,
    /// Identifiers CDF reported missing (`error.missing`).
    pub missing: Vec<Value>,
    /// Identifiers CDF reported duplicated (`error.duplicated`).
    pub duplicated: Vec<Value>,
    /// The `cdf-is-auto-retryable: true` header.
    pub auto_retryable: bool,
    pub retry_after: Option<Duration>,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "HTTP {}: {}", self.status, self.message)?;
        if let Some(id) = &self.request_id {
            write!(f, " (x-request-id {id})")?;
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CdfError {
    #[error("{endpoint}: {error}")]
    Api {
        endpoint: String,
        error: Box<ApiError>,
    },
    /// The request did not get a reply; the message names the innermost cause.
    #[error("{endpoint}: {}", crate::transport_error::describe(source))]
    Transport {
        endpoint: String,
        #[source]
        source: reqwest::Error,
    },
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error("{endpoint}: unexpected reply: {reason}{}", request_id.as_ref().map(|r| format!(" (x-request-id {r})")).unwrap_or_default())]
    BadReply {
        endpoint: String,
        reason: String,
        request_id: Option<String>,
    },
    #[error("reading {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid upload URL {url:?}: {reason}")]
    BadUploadUrl { url: String, reason: String },
    /// `[cdf] ca_file` cannot be read or holds no usable certificate.
    #[error("CA file {}: {reason}", path.display())]
    CaFile { path: PathBuf, reason: String },
}

impl CdfError {
    /// How the failed call should be treated.
    pub fn retry_class(&self) -> RetryClass {
        match self {
            CdfError::Api { error, .. } => classify_status(error),
            CdfError::Transport { source, .. } => classify_transport(source),
            CdfError::Auth(e) if e.is_transient() => RetryClass::Transient,
            CdfError::Auth(_) => RetryClass::Permanent,
            // A reply we cannot parse may be a proxy's error page: try again later.
            CdfError::BadReply { .. } => RetryClass::Transient,
            CdfError::Io { .. } | CdfError::BadUploadUrl { .. } | CdfError::CaFile { .. } => {
                RetryClass::Permanent
            }
        }
    }

    /// The HTTP status, for API errors.
    pub fn status(&self) -> Option<u16> {
        match self {
            CdfError::Api { error, .. } => Some(error.status),
            _ => None,
        }
    }

    pub fn api(&self) -> Option<&ApiError> {
        match self {
            CdfError::Api { error, .. } => Some(error.as_ref()),
            _ => None,
        }
    }
}

fn classify_status(e: &ApiError) -> RetryClass {
    match e.status {
        429 | 503 => RetryClass::Throttled {
            retry_after: e.retry_after,
        },
        401 => RetryClass::ReAuth,
        408 | 425 | 500 | 502 | 504 => RetryClass::Transient,
        _ if e.auto_retryable => RetryClass::Transient,
        s if s >= 500 => RetryClass::Transient,
        _ => RetryClass::Permanent,
    }
}

fn classify_transport(e: &reqwest::Error) -> RetryClass {
    if e.is_builder() {
        RetryClass::Permanent
    } else {
        // Connect errors, timeouts, resets, truncated bodies: the network's fault.
        RetryClass::Transient
    }
}

/// Parses a CDF error body defensively: `{"error":{...}}`, `{"error":"text"}`, or
/// anything else (a storage service's XML, a proxy's HTML).
pub(crate) fn parse_error_body(
    status: u16,
    body: &str,
    request_id: Option<String>,
    auto_retryable: bool,
    retry_after: Option<Duration>,
) -> ApiError {
    let parsed: Option<Value> = serde_json::from_str(body).ok();
    let error = parsed.as_ref().and_then(|v| v.get("error"));
    let list = |key: &str| {
        error
            .and_then(|e| e.get(key))
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    let message = match error {
        Some(Value::Object(o)) => o
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or("no message")
            .to_owned(),
        Some(Value::String(s)) => s.clone(),
        _ => snippet(body),
    };
    ApiError {
        status,
        message,
        request_id,
        missing: list("missing"),
        duplicated: list("duplicated"),
        auto_retryable,
        retry_after,
    }
}

/// The first line of a non-JSON body, shortened, for an error message.
fn snippet(body: &str) -> String {
    let line = body.lines().next().unwrap_or("").trim();
    if line.is_empty() {
        return "empty reply".to_owned();
    }
    let mut s: String = line.chars().take(200).collect();
    if line.chars().count() > 200 {
        s.push('…');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(status: u16, auto: bool) -> ApiError {
        parse_error_body(status, "{}", None, auto, None)
    }

    #[test]
    fn statuses_map_to_retry_classes() {
        let table = [
            (429, false, RetryClass::Throttled { retry_after: None }),
            (503, false, RetryClass::Throttled { retry_after: None }),
            (401, false, RetryClass::ReAuth),
            (408, false, RetryClass::Transient),
            (425, false, RetryClass::Transient),
            (500, false, RetryClass::Transient),
            (502, false, RetryClass::Transient),
            (504, false, RetryClass::Transient),
            (400, false, RetryClass::Permanent),
            (403, false, RetryClass::Permanent),
            (404, false, RetryClass::Permanent),
            (409, false, RetryClass::Permanent),
            (422, false, RetryClass::Permanent),
            (400, true, RetryClass::Transient),
        ];
        for (status, auto, want) in table {
            assert_eq!(
                classify_status(&err(status, auto)),
                want,
                "status {status} auto {auto}"
            );
        }
    }

    #[test]
    fn error_bodies_parse_defensively() {
        let e = parse_error_body(
            409,
            r#"{"error":{"code":409,"message":"Duplicate","duplicated":[{"externalId":"a"}]}}"#,
            Some("req-1".into()),
            false,
            None,
        );
        assert_eq!(e.message, "Duplicate");
        assert_eq!(e.duplicated.len(), 1);
        assert_eq!(e.to_string(), "HTTP 409: Duplicate (x-request-id req-1)");
        let e = parse_error_body(400, r#"{"error":"plain text"}"#, None, false, None);
        assert_eq!(e.message, "plain text");
        let e = parse_error_body(
            403,
            "<Error><Code>AccessDenied</Code></Error>",
            None,
            false,
            None,
        );
        assert!(e.message.contains("AccessDenied"));
        assert_eq!(
            parse_error_body(502, "", None, false, None).message,
            "empty reply"
        );
    }
}
