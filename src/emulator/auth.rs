//! Authentication: the OAuth2 client-credentials token endpoint (`POST /oauth2/token`,
//! the identity provider's role), the bearer check in front of every
//! `/api/v1/projects/{project}/...` call, and `GET /api/v1/token/inspect`.
//!
//! The token endpoint answers in the OAuth2 error format (`{"error":"invalid_client"}`),
//! the API in CDF's: 401 for a missing, unknown or expired token, 403 for a project
//! that does not exist. A token is valid for every configured project.

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::rejection::RawPathParamsRejection;
use axum::extract::{RawPathParams, Request, State as AxState};
use axum::http::header::{AUTHORIZATION, CACHE_CONTROL};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bytes::Bytes;
use serde_json::{Value, json};

use super::error::ApiError;
use super::state::State;
use super::validate::{parse_urlencoded, percent_decode};

pub(crate) fn routes() -> Router<Arc<State>> {
    Router::new()
        .route("/oauth2/token", post(token))
        .route("/api/v1/token/inspect", get(inspect))
}

/// `POST /oauth2/token`, client-credentials grant; the client authenticates in the
/// form body or with HTTP basic auth (RFC 6749 §2.3.1). `scope`, `audience` and
/// `resource` are accepted and ignored.
async fn token(AxState(state): AxState<Arc<State>>, headers: HeaderMap, body: Bytes) -> Response {
    let form = parse_urlencoded(&String::from_utf8_lossy(&body));
    let field = |name: &str| {
        form.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    if field("grant_type") != Some("client_credentials") {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "grant_type must be client_credentials",
        );
    }
    let from_form = || {
        Some((
            field("client_id")?.to_owned(),
            field("client_secret")?.to_owned(),
        ))
    };
    let client = basic_credentials(&headers).or_else(from_form);
    let known = client.is_some_and(|(id, secret)| {
        state
            .config
            .clients
            .iter()
            .any(|(i, s)| *i == id && *s == secret)
    });
    if !known {
        return oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "Unknown client, or wrong client secret",
        );
    }
    let (token, lifetime) = state.issue_token();
    let reply = json!({
        "access_token": token,
        "token_type": "Bearer",
        // Rounded down: a client must never believe a token lives longer than it does.
        "expires_in": lifetime.as_secs(),
    });
    ([(CACHE_CONTROL, "no-store")], Json(reply)).into_response()
}

fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    let body = json!({ "error": error, "error_description": description });
    (status, [(CACHE_CONTROL, "no-store")], Json(body)).into_response()
}

/// `Authorization: Basic base64(urlencoded id ":" urlencoded secret)`.
fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = String::from_utf8(base64_decode(encoded.trim())?).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    Some((percent_decode(id), percent_decode(secret)))
}

/// Standard base64 with optional padding; `None` on any other character.
fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in text.trim_end_matches('=').bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push(u8::try_from(acc >> bits).ok()?);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

/// Middleware on the project API: a valid bearer token (401) for a project that
/// exists (403).
pub(crate) async fn require_bearer(
    AxState(state): AxState<Arc<State>>,
    params: Result<RawPathParams, RawPathParamsRejection>,
    req: Request,
    next: Next,
) -> Response {
    if let Err(e) = check_bearer(&state, req.headers()) {
        return e.into_response();
    }
    let project = params.ok().and_then(|p| {
        p.iter()
            .find(|(k, _)| *k == "project")
            .map(|(_, v)| v.to_owned())
    });
    match project {
        Some(p) if state.config.projects.contains(&p) => next.run(req).await,
        p => ApiError::forbidden(format!(
            "Resource not found or insufficient access rights: project {:?} is not accessible with this token",
            p.unwrap_or_default()
        ))
        .into_response(),
    }
}

/// A known, unexpired `Authorization: Bearer` token, or a CDF 401.
fn check_bearer(state: &State, headers: &HeaderMap) -> Result<(), ApiError> {
    let value = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| ApiError::unauthorized("Unauthorized: no Authorization header"))?;
    let token = value
        .trim()
        .split_once(' ')
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim())
        .ok_or_else(|| ApiError::unauthorized("Unauthorized: expected a Bearer token"))?;
    if state.token_valid(token) {
        Ok(())
    } else {
        Err(ApiError::unauthorized(
            "Unauthorized: the token is invalid or has expired",
        ))
    }
}

/// `GET /api/v1/token/inspect`: which projects the token reaches (all of them).
async fn inspect(
    AxState(state): AxState<Arc<State>>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    check_bearer(&state, &headers)?;
    let projects: Vec<Value> = state
        .config
        .projects
        .iter()
        .map(|p| json!({ "projectUrlName": p, "groups": [] }))
        .collect();
    Ok(Json(json!({
        "subject": "emulator-client",
        "projects": projects,
        "capabilities": [],
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trips_known_values() {
        assert_eq!(base64_decode("YTpi").as_deref(), Some(&b"a:b"[..]));
        assert_eq!(base64_decode("YWJjZA==").as_deref(), Some(&b"abcd"[..]));
        assert_eq!(base64_decode("YWJjZA").as_deref(), Some(&b"abcd"[..]));
        assert_eq!(base64_decode("a*b"), None);
    }
}
