//! `PUT /api/v1/files/gcs_proxy/{token}`: the GCS resumable upload protocol
//! (`../shared/CDF-API.md` §2.3).
//!
//! - One-shot: a PUT without `Content-Range` carries the whole content: 200.
//! - Chunks: `Content-Range: bytes a-b/total` (`b` inclusive; `total` may be `*` until
//!   the last chunk). A chunk must start at the persisted offset, and every chunk but the
//!   last must be a multiple of 256 KiB. A non-final chunk is answered 308 with
//!   `Range: bytes=0-n` (no `Range` while nothing is persisted); the final one 200.
//! - Status query: empty body with `Content-Range: bytes */total` (or `*/*`): 308 as
//!   above, or 200 once complete (`*/total` with all bytes persisted also finalises).
//! - A completed session answers every further PUT with 200 and stores nothing.
//! - An unknown session answers 404, an expired one 410 (`CDF-API.md`: the session is
//!   gone; the client gets a new link and starts from 0).
//!
//! A chunk is all or nothing: a chunk cut mid-body persists none of its bytes. Each chunk
//! is its own blob; the running SHA-256 lives in the session, and the final chunk
//! assembles the blobs into the file's content.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, State as AxState};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt;
use sha2::{Digest, Sha256};

use super::{StorageError, receive, with_session};
use crate::emulator::MAX_SINGLE_PUT;
use crate::emulator::state::{SessionKind, State, lock};
use crate::emulator::storage::{StoredBlob, hex};

/// Every non-final chunk is a multiple of this (256 KiB).
const CHUNK_GRANULE: u64 = 256 * 1024;

/// A GCS resumable session's progress (the bytes persisted so far are in `chunks`;
/// their count is the session's `received`).
#[derive(Debug, Default)]
pub(crate) struct GcsStaging {
    pub chunks: Vec<StoredBlob>,
    /// SHA-256 state over every persisted byte.
    pub hasher: Sha256,
    /// The total size, once a request declared it.
    pub total: Option<u64>,
    pub complete: bool,
}

/// A parsed `Content-Range` request header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ContentRange {
    /// `bytes */total`: where are we?
    Query { total: Option<u64> },
    /// `bytes start-end/total`, `end` inclusive.
    Chunk {
        start: u64,
        end: u64,
        total: Option<u64>,
    },
}

fn parse_content_range(value: &str) -> Option<ContentRange> {
    let (range, total) = value
        .trim()
        .strip_prefix("bytes ")?
        .trim()
        .split_once('/')?;
    let total = match total {
        "*" => None,
        t => Some(t.parse().ok()?),
    };
    if range == "*" {
        return Some(ContentRange::Query { total });
    }
    let (start, end) = range.split_once('-')?;
    let (start, end) = (start.parse().ok()?, end.parse().ok()?);
    (end >= start).then_some(ContentRange::Chunk { start, end, total })
}

/// The session as a request starts.
struct Snapshot {
    file_id: i64,
    received: u64,
    total: Option<u64>,
    complete: bool,
    hasher: Sha256,
}

/// Runs `f` on the GCS session `token`, if it still exists.
fn with_gcs<T>(
    state: &State,
    token: &str,
    f: impl FnOnce(&mut u64, &mut GcsStaging) -> T,
) -> Option<T> {
    let mut uploads = lock(&state.uploads);
    match uploads.get_mut(token).map(|s| &mut s.kind) {
        Some(SessionKind::Gcs { received, staging }) => {
            Some(f(received, staging.get_or_insert_with(Default::default)))
        }
        _ => None,
    }
}

pub(super) async fn put_gcs(
    AxState(state): AxState<Arc<State>>,
    Path(token): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, StorageError> {
    let snap = with_session(&state, &token, |s| match &s.kind {
        SessionKind::Gcs { received, staging } => Some(Snapshot {
            file_id: s.file_id,
            received: *received,
            total: staging.as_ref().and_then(|g| g.total),
            complete: staging.as_ref().is_some_and(|g| g.complete),
            hasher: staging
                .as_ref()
                .map(|g| g.hasher.clone())
                .unwrap_or_default(),
        }),
        _ => None,
    })
    .map_err(expired_is_gone)?;
    let range = match headers.get(header::CONTENT_RANGE) {
        None => None,
        Some(v) => Some(
            v.to_str()
                .ok()
                .and_then(parse_content_range)
                .ok_or_else(|| {
                    StorageError::bad_request("InvalidArgument", "Invalid Content-Range header.")
                })?,
        ),
    };
    if snap.complete {
        drain(body).await;
        return Ok(StatusCode::OK.into_response());
    }
    match range {
        None => one_shot(&state, &token, snap.file_id, &headers, body).await,
        Some(ContentRange::Query { total }) => {
            drain(body).await;
            query(&state, &token, snap, total).await
        }
        Some(ContentRange::Chunk { start, end, total }) => {
            chunk(&state, &token, snap, &headers, (start, end, total), body).await
        }
    }
}

/// An expired session answers 410 Gone, as GCS does (presigned URLs answer 403).
fn expired_is_gone(e: StorageError) -> StorageError {
    if e.status == StatusCode::FORBIDDEN {
        let msg = "The upload session has expired; start a new one.";
        StorageError::new(StatusCode::GONE, "SessionExpired", msg)
    } else {
        e
    }
}

async fn drain(mut body: Body) {
    while let Some(Ok(_)) = body.frame().await {}
}

/// 308 Resume Incomplete, with the persisted range when there is one.
fn incomplete(received: u64) -> Response {
    let mut resp = StatusCode::PERMANENT_REDIRECT.into_response();
    if received > 0
        && let Ok(v) = HeaderValue::from_str(&format!("bytes=0-{}", received - 1))
    {
        resp.headers_mut().insert(header::RANGE, v);
    }
    resp
}

fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// A PUT without `Content-Range`: the whole content (GCS accepts chunked bodies).
async fn one_shot(
    state: &State,
    token: &str,
    file_id: i64,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, StorageError> {
    if declared_length(headers).is_some_and(|n| n > MAX_SINGLE_PUT) {
        return Err(StorageError::too_large(MAX_SINGLE_PUT));
    }
    let mut writer = state.content.writer();
    receive(body, &mut writer, MAX_SINGLE_PUT).await?;
    let blob = writer.finish().await.map_err(StorageError::internal)?;
    let size = blob.size;
    let taken = with_gcs(state, token, |received, g| {
        if g.complete {
            return None;
        }
        *received = size;
        g.complete = true;
        Some(std::mem::take(&mut g.chunks))
    });
    match taken {
        Some(Some(stale)) => {
            stale.iter().for_each(|c| state.content.release(c));
            commit(state, file_id, blob)
        }
        Some(None) => {
            state.content.release(&blob);
            Ok(StatusCode::OK.into_response())
        }
        None => {
            state.content.release(&blob);
            Err(StorageError::not_found())
        }
    }
}

/// `Content-Range: bytes */total`: report progress, or finalise when all is there.
async fn query(
    state: &State,
    token: &str,
    snap: Snapshot,
    total: Option<u64>,
) -> Result<Response, StorageError> {
    let total = total.or(snap.total);
    if total != Some(snap.received) {
        return Ok(incomplete(snap.received));
    }
    finalize(state, token, snap.file_id).await
}

/// One `bytes start-end/total` chunk.
async fn chunk(
    state: &State,
    token: &str,
    snap: Snapshot,
    headers: &HeaderMap,
    (start, end, total): (u64, u64, Option<u64>),
    body: Body,
) -> Result<Response, StorageError> {
    let len = end - start + 1;
    if let Some(msg) = chunk_error(&snap, headers, start, end, total) {
        return Err(StorageError::bad_request("InvalidArgument", msg));
    }
    let is_final = total == Some(end + 1);
    if !is_final && len % CHUNK_GRANULE != 0 {
        let msg = format!(
            "A non-final chunk must be a multiple of {CHUNK_GRANULE} bytes; this one has {len}."
        );
        return Err(StorageError::bad_request("InvalidArgument", msg));
    }
    let mut writer = state.content.writer_continuing(snap.hasher.clone());
    let n = receive(body, &mut writer, len).await?;
    if n != len {
        let msg = format!("The chunk declared {len} bytes but carried {n}.");
        return Err(StorageError::bad_request("IncompleteBody", msg));
    }
    let (blob, hasher) = writer
        .finish_partial()
        .await
        .map_err(StorageError::internal)?;
    let persisted = with_gcs(state, token, |received, g| {
        if *received != start || g.complete {
            return Err((*received, g.complete, blob));
        }
        *received += len;
        g.chunks.push(blob);
        g.hasher = hasher;
        g.total = total.or(g.total);
        Ok(*received)
    });
    match persisted {
        Some(Ok(_)) if is_final => finalize(state, token, snap.file_id).await,
        Some(Ok(received)) => Ok(incomplete(received)),
        // Another request moved the session on meanwhile: report where it is.
        Some(Err((received, complete, blob))) => {
            state.content.release(&blob);
            Ok(if complete {
                StatusCode::OK.into_response()
            } else {
                incomplete(received)
            })
        }
        None => Err(StorageError::not_found()),
    }
}

/// Why a chunk's range is unacceptable, if it is.
fn chunk_error(
    snap: &Snapshot,
    headers: &HeaderMap,
    start: u64,
    end: u64,
    total: Option<u64>,
) -> Option<String> {
    let len = end - start + 1;
    if let Some(declared) = declared_length(headers)
        && declared != len
    {
        return Some(format!(
            "Content-Length {declared} does not match Content-Range ({len} bytes)."
        ));
    }
    if let Some(t) = total {
        if end >= t {
            return Some(format!(
                "The range ends at byte {end}, beyond the total of {t} bytes."
            ));
        }
        if t > MAX_SINGLE_PUT {
            return Some(format!(
                "The total of {t} bytes exceeds the limit of {MAX_SINGLE_PUT} bytes."
            ));
        }
        if snap.total.is_some_and(|prev| prev != t) {
            return Some(format!(
                "The total changed from {:?} to {t} bytes.",
                snap.total
            ));
        }
    }
    (start != snap.received).then(|| {
        format!(
            "The chunk starts at byte {start}, but {} bytes are persisted: resume from there.",
            snap.received
        )
    })
}

/// Assembles the persisted chunks into the file's content and commits it.
async fn finalize(state: &State, token: &str, file_id: i64) -> Result<Response, StorageError> {
    let taken = with_gcs(state, token, |_, g| {
        if g.complete {
            return None;
        }
        g.complete = true;
        Some((std::mem::take(&mut g.chunks), std::mem::take(&mut g.hasher)))
    });
    let (chunks, hasher) = match taken {
        Some(Some(taken)) => taken,
        Some(None) => return Ok(StatusCode::OK.into_response()),
        None => return Err(StorageError::not_found()),
    };
    let mut blob = state
        .content
        .assemble(chunks, false)
        .await
        .map_err(StorageError::internal)?;
    blob.sha256 = Some(hex(&hasher.finalize()));
    commit(state, file_id, blob)
}

fn commit(state: &State, file_id: i64, blob: StoredBlob) -> Result<Response, StorageError> {
    if state.commit_content(file_id, blob) {
        Ok(StatusCode::OK.into_response())
    } else {
        Err(StorageError::not_found())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_ranges_parse() {
        use ContentRange::*;
        let p = parse_content_range;
        assert_eq!(p("bytes */100"), Some(Query { total: Some(100) }));
        assert_eq!(p("bytes */*"), Some(Query { total: None }));
        assert_eq!(
            p("bytes 0-262143/*"),
            Some(Chunk {
                start: 0,
                end: 262_143,
                total: None
            })
        );
        assert_eq!(
            p("bytes 5-9/10"),
            Some(Chunk {
                start: 5,
                end: 9,
                total: Some(10)
            })
        );
        for bad in [
            "bytes 9-5/10",
            "0-9/10",
            "bytes 0-9",
            "bytes a-9/10",
            "bytes 0-9/x",
        ] {
            assert_eq!(p(bad), None, "{bad}");
        }
    }
}
