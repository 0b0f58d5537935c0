//! The cross-cutting layer around the whole router, for every request (also 404s and
//! fault replies):
//!
//! - classifies the endpoint from the path ([`Endpoint`]: `files/{id}`, `upload/parts`,
//!   `token`, ...), the name counters and scripted faults use;
//! - decompresses gzip request bodies of API calls (not of upload URLs: cloud storage
//!   keeps bytes as sent);
//! - on upload URLs, counts bearer tokens and every body byte read (also per file);
//! - hands non-inspection requests to [`faults`](super::faults) (latency, concurrency
//!   cap, injected faults);
//! - counts `"METHOD endpoint"` -> status (0 when the connection was dropped instead of
//!   answered) and puts an `x-request-id` header on the reply.

use std::io::Read;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State as AxState};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::{Next, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use hyper::body::{Body as HttpBody, Frame, SizeHint};

use super::error::ApiError;
use super::faults::{self, FaultCtx};
use super::server::DropConnection;
use super::state::{State, lock};

/// Largest gzip-compressed API body accepted, and largest after decompression.
const MAX_GZIP_BODY: usize = 16 * 1024 * 1024;
const MAX_GUNZIPPED_BODY: usize = 64 * 1024 * 1024;

/// What kind of endpoint a request hit; decides which faults apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// CDF API calls (`/api/v1/...`).
    Api,
    /// The OAuth2 token endpoint.
    Token,
    /// Upload-URL PUTs (`/upload/...`, `/api/v1/files/gcs_proxy/...`).
    Put,
    /// Download URLs.
    Download,
    /// `/_emulator/...`: never faulted, not counted.
    Inspect,
}

/// A request's endpoint: `name` as counters and scripted faults know it (`files/{id}`,
/// `upload/parts`, `token`), plus its kind. Also put in the response extensions.
#[derive(Debug, Clone)]
pub(crate) struct Endpoint {
    pub name: String,
    pub kind: Kind,
}

impl Endpoint {
    /// Classifies a request path; ids in API paths become `{id}`.
    pub fn classify(method: &Method, path: &str) -> Self {
        let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
        let (name, kind) = match segments.as_slice() {
            ["oauth2", "token"] => ("token".to_owned(), Kind::Token),
            ["upload", _] => ("upload".to_owned(), Kind::Put),
            ["upload", _, "parts", _] => ("upload/parts".to_owned(), Kind::Put),
            ["api", "v1", "files", "gcs_proxy", _] => ("gcs_proxy".to_owned(), Kind::Put),
            ["download", _] => ("download".to_owned(), Kind::Download),
            ["_emulator", ..] => (segments.join("/"), Kind::Inspect),
            ["api", "v1", "projects", _, rest @ ..] => (api_name(rest), Kind::Api),
            ["api", "v1", rest @ ..] => (api_name(rest), Kind::Api),
            _ => (segments.join("/"), Kind::Api),
        };
        let kind = match kind {
            Kind::Put if method != Method::PUT => Kind::Api,
            Kind::Download if method != Method::GET => Kind::Api,
            kind => kind,
        };
        Self { name, kind }
    }
}

/// `files/123` -> `files/{id}`: numeric segments are ids.
fn api_name(segments: &[&str]) -> String {
    let named: Vec<&str> = segments
        .iter()
        .map(|s| {
            if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
                "{id}"
            } else {
                s
            }
        })
        .collect();
    named.join("/")
}

/// Wraps the router in the emulator's layer.
pub(crate) fn apply(router: Router, state: Arc<State>) -> Router {
    router.layer(from_fn_with_state(Arc::new(FaultCtx::new(state)), layer))
}

async fn layer(AxState(ctx): AxState<Arc<FaultCtx>>, req: Request, next: Next) -> Response {
    let request_id = format!("{:016x}", fastrand::u64(..));
    let method = req.method().clone();
    let endpoint = Endpoint::classify(&method, req.uri().path());
    let mut resp = match gunzip_api_body(req).await {
        Ok(req) => serve(&ctx, &endpoint, req, next).await,
        Err(resp) => resp,
    };
    let dropped = resp.extensions().get::<DropConnection>().is_some();
    let status = if dropped { 0 } else { resp.status().as_u16() };
    if endpoint.kind != Kind::Inspect {
        let key = format!("{method} {}", endpoint.name);
        ctx.state.counters.count_request(key, status);
    }
    tracing::debug!(%request_id, %method, endpoint = %endpoint.name, status, "request");
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        resp.headers_mut().insert("x-request-id", v);
    }
    resp
}

/// Counts what upload URLs receive, then serves the request through the fault layer.
async fn serve(ctx: &FaultCtx, endpoint: &Endpoint, mut req: Request, next: Next) -> Response {
    if matches!(endpoint.kind, Kind::Put | Kind::Download)
        && req.headers().contains_key(header::AUTHORIZATION)
    {
        ctx.state
            .counters
            .bearer_on_upload_urls
            .fetch_add(1, Ordering::Relaxed);
    }
    if endpoint.kind == Kind::Put {
        let state = ctx.state.clone();
        let file_id = upload_token(req.uri().path())
            .and_then(|token| lock(&state.uploads).get(token).map(|s| s.file_id));
        req = req.map(|body| {
            Body::new(Counted {
                inner: body,
                state,
                file_id,
            })
        });
    }
    if endpoint.kind == Kind::Inspect {
        next.run(req).await
    } else {
        faults::apply(ctx, endpoint, req, next).await
    }
}

/// The session token of an upload-URL path (`/upload/{token}[/parts/{i}]`,
/// `/api/v1/files/gcs_proxy/{token}`).
fn upload_token(path: &str) -> Option<&str> {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    match segments.as_slice() {
        ["upload", token, ..] | ["api", "v1", "files", "gcs_proxy", token] => Some(token),
        _ => None,
    }
}

/// Whether a path is an upload/download URL (bodies stored as sent, never decoded).
fn is_storage_path(path: &str) -> bool {
    path.starts_with("/upload/")
        || path.starts_with("/download/")
        || path.starts_with("/api/v1/files/gcs_proxy/")
}

/// Replaces a `Content-Encoding: gzip` API body with its decompressed bytes.
async fn gunzip_api_body(req: Request) -> Result<Request, Response> {
    let gzip = req
        .headers()
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("gzip"));
    if !gzip || is_storage_path(req.uri().path()) {
        return Ok(req);
    }
    let (mut parts, body) = req.into_parts();
    let compressed = axum::body::to_bytes(body, MAX_GZIP_BODY)
        .await
        .map_err(|_| {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "Compressed request body too large",
            )
            .into_response()
        })?;
    let mut plain = Vec::new();
    let decoder = flate2::read::MultiGzDecoder::new(&compressed[..]);
    decoder
        .take(MAX_GUNZIPPED_BODY as u64 + 1)
        .read_to_end(&mut plain)
        .map_err(|_| ApiError::bad_request("Request body is not valid gzip").into_response())?;
    if plain.len() > MAX_GUNZIPPED_BODY {
        return Err(
            ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "Request body too large").into_response(),
        );
    }
    parts.headers.remove(header::CONTENT_ENCODING);
    parts
        .headers
        .insert(header::CONTENT_LENGTH, HeaderValue::from(plain.len()));
    Ok(Request::from_parts(parts, Body::from(plain)))
}

/// An upload body that adds every data byte read to `counters.put_bytes_received`
/// (and to `put_bytes_by_file` for the URL's file).
struct Counted {
    inner: Body,
    state: Arc<State>,
    file_id: Option<i64>,
}

impl HttpBody for Counted {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let poll = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &poll
            && let Some(data) = frame.data_ref()
        {
            self.state
                .counters
                .count_put_bytes(self.file_id, data.len() as u64);
        }
        poll
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_are_named_like_the_contract() {
        let c = |m: Method, r: &str| {
            let e = Endpoint::classify(&m, r);
            (e.name, e.kind)
        };
        assert_eq!(
            c(Method::POST, "/api/v1/projects/demo/files"),
            ("files".into(), Kind::Api)
        );
        assert_eq!(
            c(Method::GET, "/api/v1/projects/demo/files/1234"),
            ("files/{id}".into(), Kind::Api)
        );
        assert_eq!(
            c(
                Method::POST,
                "/api/v1/projects/demo/files/completemultipartupload"
            ),
            ("files/completemultipartupload".into(), Kind::Api)
        );
        assert_eq!(
            c(Method::GET, "/api/v1/token/inspect"),
            ("token/inspect".into(), Kind::Api)
        );
        assert_eq!(
            c(Method::POST, "/oauth2/token"),
            ("token".into(), Kind::Token)
        );
        assert_eq!(c(Method::PUT, "/upload/abc"), ("upload".into(), Kind::Put));
        assert_eq!(
            c(Method::PUT, "/upload/abc/parts/3"),
            ("upload/parts".into(), Kind::Put)
        );
        assert_eq!(
            c(Method::PUT, "/api/v1/files/gcs_proxy/abc"),
            ("gcs_proxy".into(), Kind::Put)
        );
        assert_eq!(
            c(Method::GET, "/download/12"),
            ("download".into(), Kind::Download)
        );
        assert_eq!(c(Method::GET, "/_emulator/files").1, Kind::Inspect);
        assert_eq!(c(Method::GET, "/upload/abc").1, Kind::Api);
    }
}
