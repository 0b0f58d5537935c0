//! The upload and download URLs the emulator hands out, behaving like presigned
//! cloud-storage URLs: no bearer token needed (one sent is counted, never rejected),
//! `Content-Length` required, the single-part and part size caps, the Content-Type rules
//! of `--strict-headers`, expiry (403) and unknown tokens (404). Errors come in a
//! cloud-storage XML body, not CDF's JSON, as S3 and Azure answer.
//!
//! - `PUT /upload/{token}`: single-part content, committed to the file on success.
//! - `PUT /upload/{token}/parts/{index}`: one multipart part; a second PUT replaces it.
//!   `completemultipartupload` (the API side) assembles the parts.
//! - `PUT /api/v1/files/gcs_proxy/{token}`: GCS resumable protocol, in [`gcs`].
//! - `GET /download/{id}`: a file's committed content (the `downloadlink` URL); one
//!   `Range: bytes=a-b` (or `a-`) gives 206 with `Content-Range`, a range past the
//!   end 416 with `Content-Range: bytes */size`, as cloud storage does.
//!
//! Bodies are streamed into the [`ContentStore`](super::storage::ContentStore); the bytes
//! read are counted by the route layer in `middleware`.

mod gcs;

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State as AxState};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use http_body_util::BodyExt;

pub(crate) use gcs::GcsStaging;

use super::state::{PartInfo, SessionKind, State, UploadSession, lock};
use super::storage::{BlobWriter, StoredBlob};
use super::{MAX_PART_SIZE, MAX_SINGLE_PUT};

/// The fallback Content-Type of a single-part PUT for a file without `mimeType`.
const DEFAULT_MIME: &str = "application/octet-stream";
/// `header_violations` keys.
pub(crate) const VIOLATION_NO_LENGTH: &str = "missing_content_length";
pub(crate) const VIOLATION_TYPE_ON_PART: &str = "content_type_on_part";
pub(crate) const VIOLATION_TYPE_MISMATCH: &str = "content_type_mismatch";

pub(crate) fn routes() -> Router<Arc<State>> {
    Router::new()
        .route("/upload/{token}", put(put_single))
        .route("/upload/{token}/parts/{index}", put(put_part))
        .route("/api/v1/files/gcs_proxy/{token}", put(gcs::put_gcs))
        .route("/download/{id}", get(download))
}

/// A cloud-storage style error (S3's XML shape when answered).
#[derive(Debug)]
pub(crate) struct StorageError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl StorageError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    fn not_found() -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "NoSuchUpload",
            "The upload URL does not exist.",
        )
    }

    fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    fn too_large(max: u64) -> Self {
        let msg = format!("Your proposed upload exceeds the maximum allowed size of {max} bytes.");
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, "EntityTooLarge", msg)
    }

    fn internal(err: std::io::Error) -> Self {
        tracing::error!(%err, "emulator content store failed");
        let msg = format!("Storing the content failed: {err}");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "InternalError", msg)
    }
}

impl IntoResponse for StorageError {
    fn into_response(self) -> Response {
        let message = self
            .message
            .replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;");
        let body = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{}</Code><Message>{message}</Message></Error>",
            self.code
        );
        (
            self.status,
            [(header::CONTENT_TYPE, "application/xml")],
            body,
        )
            .into_response()
    }
}

/// Finds an unexpired session and reads what the caller needs from it.
fn with_session<T>(
    state: &State,
    token: &str,
    f: impl FnOnce(&UploadSession) -> Option<T>,
) -> Result<T, StorageError> {
    let uploads = lock(&state.uploads);
    let session = uploads.get(token).ok_or_else(StorageError::not_found)?;
    if Instant::now() >= session.expires_at {
        let msg = "Request has expired: the upload URL is no longer valid.";
        return Err(StorageError::new(
            StatusCode::FORBIDDEN,
            "AccessDenied",
            msg,
        ));
    }
    f(session).ok_or_else(StorageError::not_found)
}

/// The declared `Content-Length`; a body without one (chunked) is counted, and
/// refused with 411 under `--strict-headers`.
fn declared_length(state: &State, headers: &HeaderMap) -> Result<Option<u64>, StorageError> {
    let Some(value) = headers.get(header::CONTENT_LENGTH) else {
        state.counters.count_violation(VIOLATION_NO_LENGTH);
        if state.config.strict_headers {
            let msg = "You must provide the Content-Length HTTP header (chunked transfer encoding is not supported).";
            return Err(StorageError::new(
                StatusCode::LENGTH_REQUIRED,
                "MissingContentLength",
                msg,
            ));
        }
        return Ok(None);
    };
    let parsed = value
        .to_str()
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok());
    parsed
        .map(Some)
        .ok_or_else(|| StorageError::bad_request("InvalidArgument", "Invalid Content-Length."))
}

/// Streams a body into `writer`, refusing more than `max` bytes. Returns the bytes read.
async fn receive(mut body: Body, writer: &mut BlobWriter, max: u64) -> Result<u64, StorageError> {
    let mut size = 0u64;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|err| {
            StorageError::bad_request("IncompleteBody", format!("Reading the body failed: {err}"))
        })?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        size += data.len() as u64;
        if size > max {
            return Err(StorageError::too_large(max));
        }
        writer.write(data).await.map_err(StorageError::internal)?;
    }
    Ok(size)
}

/// `PUT /upload/{token}`: the whole content of a file.
async fn put_single(
    AxState(state): AxState<Arc<State>>,
    Path(token): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<StatusCode, StorageError> {
    let (file_id, mime) = with_session(&state, &token, |s| match s.kind {
        SessionKind::Single => Some((s.file_id, s.mime_type.clone())),
        _ => None,
    })?;
    if declared_length(&state, &headers)?.is_some_and(|n| n > MAX_SINGLE_PUT) {
        return Err(StorageError::too_large(MAX_SINGLE_PUT));
    }
    let expected = mime.as_deref().unwrap_or(DEFAULT_MIME);
    let sent = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    // A file without a mimeType signs no Content-Type: the official SDK then sends
    // none, and the generic type is accepted too.
    let matches = sent == Some(expected) || (mime.is_none() && sent.is_none());
    if !matches {
        state.counters.count_violation(VIOLATION_TYPE_MISMATCH);
        if state.config.strict_headers {
            let msg = format!(
                "Content-Type {sent:?} does not match the signed Content-Type {expected:?}."
            );
            return Err(StorageError::bad_request("InvalidContentType", msg));
        }
    }
    let mut writer = state.content.writer();
    receive(body, &mut writer, MAX_SINGLE_PUT).await?;
    let blob = writer.finish().await.map_err(StorageError::internal)?;
    if !state.commit_content(file_id, blob) {
        return Err(StorageError::not_found());
    }
    Ok(StatusCode::OK)
}

/// `PUT /upload/{token}/parts/{index}`: one part of a multipart upload.
async fn put_part(
    AxState(state): AxState<Arc<State>>,
    Path((token, index)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Result<StatusCode, StorageError> {
    let index = index
        .parse::<usize>()
        .map_err(|_| StorageError::not_found())?;
    with_session(&state, &token, |s| match &s.kind {
        SessionKind::Multipart { parts } if index < parts.len() => Some(()),
        _ => None,
    })?;
    if declared_length(&state, &headers)?.is_some_and(|n| n > MAX_PART_SIZE) {
        return Err(StorageError::too_large(MAX_PART_SIZE));
    }
    if headers.contains_key(header::CONTENT_TYPE) {
        state.counters.count_violation(VIOLATION_TYPE_ON_PART);
        if state.config.strict_headers {
            let msg = "A part upload must not carry a Content-Type header.";
            return Err(StorageError::bad_request("InvalidArgument", msg));
        }
    }
    let mut writer = state.content.writer();
    receive(body, &mut writer, MAX_PART_SIZE).await?;
    let blob = writer.finish().await.map_err(StorageError::internal)?;
    store_part(&state, &token, index, blob)?;
    Ok(StatusCode::OK)
}

/// Records a received part, releasing the one it replaces.
fn store_part(
    state: &State,
    token: &str,
    index: usize,
    blob: StoredBlob,
) -> Result<(), StorageError> {
    let mut uploads = lock(&state.uploads);
    let (release, result) = match uploads.get_mut(token).map(|s| &mut s.kind) {
        Some(SessionKind::Multipart { parts }) if index < parts.len() => (
            parts[index].replace(PartInfo { blob }).map(|old| old.blob),
            Ok(()),
        ),
        // Completed or forgotten meanwhile.
        _ => (Some(blob), Err(StorageError::not_found())),
    };
    drop(uploads);
    if let Some(blob) = release {
        state.content.release(&blob);
    }
    result
}

/// Content held by an upload session that was not committed (parts, GCS chunks): to
/// release when the session is forgotten.
pub(crate) fn staged_blobs(session: &UploadSession) -> Vec<StoredBlob> {
    match &session.kind {
        SessionKind::Single => Vec::new(),
        SessionKind::Gcs { staging, .. } => staging
            .as_ref()
            .map(|s| s.chunks.clone())
            .unwrap_or_default(),
        SessionKind::Multipart { parts } => {
            parts.iter().flatten().map(|p| p.blob.clone()).collect()
        }
    }
}

/// `GET /download/{id}`: a file's committed content.
async fn download(
    AxState(state): AxState<Arc<State>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, StorageError> {
    let no_content = || {
        StorageError::new(
            StatusCode::NOT_FOUND,
            "NoSuchKey",
            "The file has no content.",
        )
    };
    let id = id.parse::<i64>().map_err(|_| no_content())?;
    let found = {
        let files = lock(&state.files);
        files
            .by_id
            .get(&id)
            .and_then(|r| Some((r.content.clone()?, r.mime_type.clone())))
    };
    let (blob, mime) = found.ok_or_else(no_content)?;
    let file = match state.content.open_read(&blob).await {
        Ok(Some(file)) => file,
        Ok(None) => {
            let msg = "Content is not kept (--discard).";
            return Err(StorageError::new(StatusCode::NOT_FOUND, "NoSuchKey", msg));
        }
        // Replaced between the lookup and the open.
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Err(no_content()),
        Err(err) => return Err(StorageError::internal(err)),
    };
    let mime = mime.unwrap_or_else(|| DEFAULT_MIME.to_owned());
    let range = headers
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .and_then(parse_range);
    let Some((first, last)) = range else {
        let stream = tokio_util::io::ReaderStream::with_capacity(file, 256 * 1024);
        let headers = [
            (header::CONTENT_TYPE, mime),
            (header::CONTENT_LENGTH, blob.size.to_string()),
        ];
        return Ok((headers, Body::from_stream(stream)).into_response());
    };
    if first >= blob.size {
        let headers = [(header::CONTENT_RANGE, format!("bytes */{}", blob.size))];
        return Ok((StatusCode::RANGE_NOT_SATISFIABLE, headers).into_response());
    }
    let last = last.unwrap_or(u64::MAX).min(blob.size - 1);
    let mut file = file;
    tokio::io::AsyncSeekExt::seek(&mut file, std::io::SeekFrom::Start(first))
        .await
        .map_err(StorageError::internal)?;
    let len = last - first + 1;
    let body = tokio::io::AsyncReadExt::take(file, len);
    let stream = tokio_util::io::ReaderStream::with_capacity(body, 256 * 1024);
    let headers = [
        (header::CONTENT_TYPE, mime),
        (header::CONTENT_LENGTH, len.to_string()),
        (
            header::CONTENT_RANGE,
            format!("bytes {first}-{last}/{}", blob.size),
        ),
    ];
    Ok((
        StatusCode::PARTIAL_CONTENT,
        headers,
        Body::from_stream(stream),
    )
        .into_response())
}

/// `bytes=a-b` or `bytes=a-` (one range; anything else is ignored, as a server may).
fn parse_range(value: &str) -> Option<(u64, Option<u64>)> {
    let (first, last) = value.trim().strip_prefix("bytes=")?.split_once('-')?;
    let first = first.trim().parse().ok()?;
    let last = match last.trim() {
        "" => None,
        l => Some(l.parse().ok()?),
    };
    match last {
        Some(l) if l < first => None,
        _ => Some((first, last)),
    }
}

#[cfg(test)]
mod tests {
    use super::parse_range;

    #[test]
    fn one_byte_range_forms() {
        assert_eq!(parse_range("bytes=0-0"), Some((0, Some(0))));
        assert_eq!(parse_range("bytes=10-"), Some((10, None)));
        assert_eq!(parse_range("bytes=5-4"), None);
        assert_eq!(
            parse_range("bytes=-5"),
            None,
            "suffix ranges are not served"
        );
        assert_eq!(parse_range("items=0-1"), None);
    }
}
