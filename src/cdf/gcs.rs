//! GCS resumable uploads: a single-part upload URL containing `/files/gcs_proxy/` is a
//! GCS resumable session (`../shared/CDF-API.md` §2.3), so even a single-part file
//! resumes from the last byte the server acknowledged, after a failed chunk and after
//! a restart (the worker keeps the URL in the job store).
//!
//! - Every upload begins with a status query (`PUT`, empty body, `Content-Range:
//!   bytes */<total>`): 308 with `Range: bytes=0-n` means n+1 bytes are persisted, 308
//!   without `Range` none, 200/201 that the upload is complete.
//! - The rest goes in chunks of [`CHUNK_SIZE`] (`Content-Range: bytes a-b/total`, `b`
//!   inclusive): 308 + `Range` after a non-final chunk, 200/201 after the last. A 308
//!   is not a redirect (the storage client follows none).
//! - A chunk that fails (5xx, 408, 429, a timeout, a dropped connection) is retried
//!   under the quick retry tier, every retry asking the server first where it stands:
//!   it may have kept all, part or none of the chunk, and the upload continues from
//!   what it reports, never from what was sent.
//! - 404/410 means the session is gone (expired or invalid): the error goes to the
//!   worker, which gets a new link and starts again from byte 0.
//!
//! Chunk size: 8 MiB (32 × 256 KiB; every non-final chunk must be a multiple of
//! 256 KiB). Google recommends chunks of at least 8 MiB for throughput; a smaller
//! chunk means more requests (a 5 GB file is about 600 chunks at 8 MiB), a larger one
//! more bytes sent again after a failure (a crash or a dropped connection loses at
//! most the chunk in flight). The part size does not fit: a file goes single-part
//! precisely when it fits in one part, so one part would be the whole file.
//!
//! Headers as for any single-part PUT: an exact Content-Length, the file's
//! Content-Type, no bearer token; every body byte passes the bandwidth limit.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use reqwest::header::{CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, RANGE};
use reqwest::{RequestBuilder, StatusCode, Url};

use super::put::PUT_ENDPOINT;
use super::{CdfClient, CdfError, header, read_reply};

/// Every non-final chunk is a multiple of this (256 KiB).
const GRANULE: u64 = 256 * 1024;
/// The bytes one chunk PUT carries (the last one may be shorter).
pub const CHUNK_SIZE: u64 = 32 * GRANULE;
/// Rounds in a row in which the server acknowledged nothing new before giving up.
const MAX_STALLS: u32 = 3;

/// Whether a single-part upload URL is a GCS resumable session.
pub fn is_resumable_url(url: &str) -> bool {
    url.contains("/files/gcs_proxy/")
}

/// What the server holds of the upload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Persisted {
    /// The upload is complete (200/201).
    Complete,
    /// This many bytes from the start are persisted (308).
    Bytes(u64),
}

impl CdfClient {
    /// Uploads `total` (> 0) bytes of `path` to the GCS resumable session `url`,
    /// continuing from what the server reports; see the module docs. Returns how many
    /// bytes the server held at the start.
    pub(super) async fn put_resumable(
        &self,
        url: &str,
        path: &Path,
        total: u64,
        mime_type: &str,
        acked: &(dyn Fn(u64) + Send + Sync),
    ) -> Result<u64, CdfError> {
        let session = Session {
            client: self,
            url: self.upload_url(url)?,
            path,
            total,
            mime_type,
        };
        let resumed = match self.with_retries(PUT_ENDPOINT, || session.query()).await? {
            Persisted::Complete => {
                acked(total);
                return Ok(total);
            }
            Persisted::Bytes(n) => n,
        };
        if resumed > 0 {
            tracing::info!(path = %path.display(), resumed, total, "resuming a GCS upload from the bytes the server holds");
        }
        acked(resumed);
        let cursor = Cursor {
            next: AtomicU64::new(resumed),
            ask_first: AtomicBool::new(false),
        };
        let mut stalls = 0;
        loop {
            let before = cursor.next.load(Ordering::Relaxed);
            let reply = self
                .with_retries(PUT_ENDPOINT, || session.step(&cursor))
                .await?;
            let Persisted::Bytes(n) = reply else {
                acked(total);
                return Ok(resumed);
            };
            stalls = if n > before { 0 } else { stalls + 1 };
            if stalls > MAX_STALLS {
                return Err(bad_reply(
                    format!("the GCS upload session stays at {n} of {total} bytes"),
                    None,
                ));
            }
            cursor.next.store(n, Ordering::Relaxed);
            acked(n);
        }
    }
}

/// Where the next chunk starts, shared with the retried step.
struct Cursor {
    /// The byte the next chunk starts at, as the server last reported.
    next: AtomicU64,
    /// A chunk failed: ask the server before sending again.
    ask_first: AtomicBool,
}

/// One resumable upload in progress.
struct Session<'a> {
    client: &'a CdfClient,
    url: Url,
    path: &'a Path,
    total: u64,
    mime_type: &'a str,
}

impl Session<'_> {
    /// One attempt under the retry tier: the chunk at the cursor, after a status
    /// query if the previous attempt failed.
    async fn step(&self, cursor: &Cursor) -> Result<Persisted, CdfError> {
        if cursor.ask_first.load(Ordering::Relaxed) {
            match self.query().await? {
                Persisted::Complete => return Ok(Persisted::Complete),
                Persisted::Bytes(n) => cursor.next.store(n, Ordering::Relaxed),
            }
            cursor.ask_first.store(false, Ordering::Relaxed);
        }
        let offset = cursor.next.load(Ordering::Relaxed);
        if offset >= self.total {
            // Everything is there but the upload is not final: the query finalises.
            return self.query().await;
        }
        cursor.ask_first.store(true, Ordering::Relaxed);
        let reply = self.chunk(offset).await?;
        cursor.ask_first.store(false, Ordering::Relaxed);
        Ok(reply)
    }

    /// The status query: `PUT`, empty body, `Content-Range: bytes */<total>`.
    async fn query(&self) -> Result<Persisted, CdfError> {
        let req = self
            .put()
            .header(CONTENT_LENGTH, 0)
            .header(CONTENT_RANGE, format!("bytes */{}", self.total))
            .timeout(self.client.inner.request_timeout)
            .body(Vec::new());
        self.send(req).await
    }

    /// The chunk starting at `offset`: [`CHUNK_SIZE`] bytes or the rest of the file.
    async fn chunk(&self, offset: u64) -> Result<Persisted, CdfError> {
        let len = CHUNK_SIZE.min(self.total - offset);
        let body = self.client.region_body(self.path, offset, len).await?;
        let _streaming = self.client.inner.bandwidth.transfer();
        let range = format!("bytes {offset}-{}/{}", offset + len - 1, self.total);
        let req = self
            .put()
            .header(CONTENT_LENGTH, len)
            .header(CONTENT_RANGE, range)
            .timeout(self.client.put_deadline(len))
            .body(body);
        self.send(req).await
    }

    /// A PUT to the session with the single-part Content-Type (no bearer token).
    fn put(&self) -> RequestBuilder {
        self.client
            .inner
            .storage
            .put(self.url.clone())
            .header(CONTENT_TYPE, self.mime_type)
    }

    async fn send(&self, req: RequestBuilder) -> Result<Persisted, CdfError> {
        let resp = req.send().await.map_err(|source| CdfError::Transport {
            endpoint: PUT_ENDPOINT.to_owned(),
            source,
        })?;
        if resp.status() == StatusCode::PERMANENT_REDIRECT {
            let range = resp.headers().get(RANGE).map(|v| v.to_str().unwrap_or("?"));
            return persisted_bytes(range, self.total)
                .map(Persisted::Bytes)
                .map_err(|reason| bad_reply(reason, header(&resp, "x-request-id")));
        }
        match read_reply::<serde_json::Value>(PUT_ENDPOINT, resp).await {
            // Storage replies may be empty or not JSON on success; only the status counts.
            Ok(_) | Err(CdfError::BadReply { .. }) => Ok(Persisted::Complete),
            Err(e) => Err(e),
        }
    }
}

/// How many bytes a 308's `Range` header says are persisted: none without the
/// header, n+1 for `bytes=0-n`; anything else, or more than `total`, is an error
/// naming the header.
fn persisted_bytes(range: Option<&str>, total: u64) -> Result<u64, String> {
    let Some(value) = range else {
        return Ok(0);
    };
    let bad = || format!("malformed Range header {value:?} in a 308 (expected bytes=0-<n>)");
    let last: u64 = value
        .trim()
        .strip_prefix("bytes=0-")
        .ok_or_else(bad)?
        .parse()
        .map_err(|_| bad())?;
    let persisted = last.checked_add(1).ok_or_else(bad)?;
    if persisted > total {
        return Err(format!(
            "the server reports {persisted} bytes persisted (Range {value:?}), more than the file's {total}"
        ));
    }
    Ok(persisted)
}

fn bad_reply(reason: String, request_id: Option<String>) -> CdfError {
    CdfError::BadReply {
        endpoint: PUT_ENDPOINT.to_owned(),
        reason,
        request_id,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_headers_give_the_persisted_byte_count() {
        assert_eq!(persisted_bytes(None, 10), Ok(0));
        assert_eq!(persisted_bytes(Some("bytes=0-0"), 10), Ok(1));
        assert_eq!(
            persisted_bytes(Some("bytes=0-262143"), 1 << 20),
            Ok(262_144)
        );
        assert_eq!(persisted_bytes(Some(" bytes=0-9 "), 10), Ok(10));
    }

    #[test]
    fn malformed_range_headers_are_clear_errors() {
        for bad in [
            "bytes=5-9",
            "bytes 0-9",
            "0-9",
            "bytes=0-",
            "bytes=0-x",
            "?",
        ] {
            let e = persisted_bytes(Some(bad), 100).expect_err(bad);
            assert!(
                e.contains("malformed Range header") && e.contains(bad),
                "{bad}: {e}"
            );
        }
        let e = persisted_bytes(Some("bytes=0-99"), 50).expect_err("beyond the total");
        assert!(e.contains("100 bytes persisted") && e.contains("50"), "{e}");
    }

    #[test]
    fn chunks_are_whole_granules_and_urls_are_recognised() {
        assert_eq!(CHUNK_SIZE % GRANULE, 0);
        assert!(is_resumable_url(
            "https://x.cognitedata.com/api/v1/files/gcs_proxy/abc"
        ));
        assert!(is_resumable_url("/api/v1/files/gcs_proxy/abc"));
        assert!(!is_resumable_url("https://storage.example/upload/abc"));
    }
}
