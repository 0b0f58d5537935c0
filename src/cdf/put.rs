//! Content PUTs to upload URLs, by the rules real cloud storage enforces.
//!
//! Always an exact `Content-Length` (Azure and S3 reject chunked bodies); the reader
//! is bounded with `take(len)` so a file that grew cannot send extra bytes; a
//! `Content-Type` only on single-part PUTs, equal to the file's mimeType (S3 signs it);
//! none on multipart parts (GCS rejects it); and never the CDF bearer token. The body
//! streams from disk in 256 KiB chunks (one trip to the blocking pool each: 64 KiB
//! reads cost 30 % of the CPU in thread wake-ups; 1 MiB ones add ~16 MiB of RSS for
//! 4 % more): nothing is held whole in memory (a body up to 256 KiB is read whole), and every
//! chunk passes the shared bandwidth limit (`bandwidth.rs`) before it is sent, the
//! PUT's deadline widened by the time the limit alone needs. A relative upload URL is
//! resolved against the CDF base URL; with `[cdf] upload_url_host` its host (and port)
//! is then replaced (Private Link). A single-part URL that is a GCS resumable session
//! (`/files/gcs_proxy/`) is sent in chunks by `gcs.rs` instead ([`CdfClient::put_single`]).

use std::io::SeekFrom;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use reqwest::Url;
use reqwest::header::{CONTENT_LENGTH, CONTENT_TYPE};
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use super::{CdfClient, CdfError, gcs, network, read_reply};

/// Which kind of upload URL a PUT goes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PutKind {
    /// A single-part `uploadUrl`: send the file's MIME type.
    Single { mime_type: String },
    /// One of a multipart session's `uploadUrls`: no Content-Type.
    Part,
}

const CHUNK: usize = 256 * 1024;
/// Bodies up to this size are read in one blocking call and sent from memory: a small
/// file then costs one trip to the blocking pool instead of one per open, seek and read.
const SMALL_BODY: u64 = 256 * 1024;

/// How upload PUTs are named in errors and stats (`worker` matches it for a gone URL).
pub(super) const PUT_ENDPOINT: &str = "upload PUT";

impl CdfClient {
    /// PUTs `len` bytes of `path` starting at `offset` to an upload URL, under the
    /// quick retry tier (the body is read from disk again for every attempt). A
    /// 403/404/410 means the URL is gone and is returned at once, for the caller to
    /// get a new one.
    pub async fn put(
        &self,
        url: &str,
        path: &Path,
        offset: u64,
        len: u64,
        kind: &PutKind,
    ) -> Result<(), CdfError> {
        self.with_retries(PUT_ENDPOINT, || {
            self.put_region(url, path, offset, len, kind)
        })
        .await
    }

    /// A single-part upload of the whole file (`size` bytes, sent with its MIME type).
    /// A GCS resumable session URL (`/files/gcs_proxy/`) goes through [`super::gcs`]:
    /// it continues from the bytes the server acknowledged, reporting each
    /// acknowledged count to `acked`. Returns how many bytes the server already held
    /// when this call began (0 for any other URL).
    pub async fn put_single(
        &self,
        url: &str,
        path: &Path,
        size: u64,
        mime_type: &str,
        acked: &(dyn Fn(u64) + Send + Sync),
    ) -> Result<u64, CdfError> {
        if gcs::is_resumable_url(url) && size > 0 {
            return self.put_resumable(url, path, size, mime_type, acked).await;
        }
        // Zero bytes: one empty PUT, as for any single-part URL (GCS accepts it too).
        let kind = PutKind::Single {
            mime_type: mime_type.to_owned(),
        };
        self.put(url, path, 0, size, &kind).await.map(|()| 0)
    }

    /// One PUT attempt; see [`CdfClient::put`].
    pub async fn put_region(
        &self,
        url: &str,
        path: &Path,
        offset: u64,
        len: u64,
        kind: &PutKind,
    ) -> Result<(), CdfError> {
        let url = self.upload_url(url)?;
        let body = self.region_body(path, offset, len).await?;
        let _streaming = self.inner.bandwidth.transfer();
        let mut req = self
            .inner
            .storage
            .put(url)
            .header(CONTENT_LENGTH, len)
            .timeout(self.put_deadline(len))
            .body(body);
        if let PutKind::Single { mime_type } = kind {
            req = req.header(CONTENT_TYPE, mime_type.as_str());
        }
        let resp = req.send().await.map_err(|source| CdfError::Transport {
            endpoint: PUT_ENDPOINT.to_owned(),
            source,
        })?;
        read_reply::<serde_json::Value>(PUT_ENDPOINT, resp)
            .await
            .map(drop)
            .or_else(|e| match e {
                // Storage replies may be empty or XML on success; only the status counts.
                CdfError::BadReply { .. } => Ok(()),
                other => Err(other),
            })
    }

    /// Where a PUT to `url` goes: resolved against the base URL, its host replaced by
    /// `[cdf] upload_url_host` when set.
    pub(super) fn upload_url(&self, url: &str) -> Result<Url, CdfError> {
        let mut url = resolve_upload_url(&self.inner.base_url, url)?;
        if let Some(authority) = &self.inner.upload_url_host {
            network::rewrite_upload_host(&mut url, authority)?;
        }
        Ok(url)
    }

    /// `len` bytes of `path` from `offset` as a streamed body, every 256 KiB chunk
    /// through the bandwidth limit (a small body is read whole, then passes the limit).
    pub(super) async fn region_body(
        &self,
        path: &Path,
        offset: u64,
        len: u64,
    ) -> Result<reqwest::Body, CdfError> {
        let io_err = |source| CdfError::Io {
            path: path.to_owned(),
            source,
        };
        if len <= SMALL_BODY {
            let owned = path.to_owned();
            let bytes = tokio::task::spawn_blocking(move || read_region(&owned, offset, len))
                .await
                .map_err(|e| io_err(std::io::Error::other(e)))?
                .map_err(io_err)?;
            self.inner.bandwidth.acquire(len).await;
            return Ok(reqwest::Body::from(bytes));
        }
        let mut file = tokio::fs::File::open(path).await.map_err(io_err)?;
        file.seek(SeekFrom::Start(offset)).await.map_err(io_err)?;
        let bandwidth = Arc::clone(&self.inner.bandwidth);
        let stream =
            tokio_util::io::ReaderStream::with_capacity(file.take(len), CHUNK).then(move |chunk| {
                let bandwidth = Arc::clone(&bandwidth);
                async move {
                    if let Ok(bytes) = &chunk {
                        bandwidth.acquire(bytes.len() as u64).await;
                    }
                    chunk
                }
            });
        Ok(reqwest::Body::wrap_stream(stream))
    }

    /// The deadline of a PUT of `len` bytes: `put_timeout` plus what the bandwidth
    /// limit alone needs.
    pub(super) fn put_deadline(&self, len: u64) -> Duration {
        self.inner.put_timeout + self.inner.bandwidth.expected_delay(len)
    }
}

/// Exactly `len` bytes of `path` from `offset` (a file that shrank is an error).
fn read_region(path: &Path, offset: u64, len: u64) -> std::io::Result<Vec<u8>> {
    use std::io::{Read, Seek};
    let mut file = std::fs::File::open(path)?;
    file.seek(SeekFrom::Start(offset))?;
    let mut bytes = vec![0; usize::try_from(len).map_err(std::io::Error::other)?];
    file.read_exact(&mut bytes)?;
    Ok(bytes)
}

/// An absolute upload URL as is; a relative one joined to the CDF base URL.
pub(super) fn resolve_upload_url(base: &Url, url: &str) -> Result<Url, CdfError> {
    let bad = |reason: String| CdfError::BadUploadUrl {
        url: url.to_owned(),
        reason,
    };
    match Url::parse(url) {
        Ok(u) if matches!(u.scheme(), "http" | "https") => Ok(u),
        Ok(u) => Err(bad(format!("unsupported scheme {:?}", u.scheme()))),
        Err(url::ParseError::RelativeUrlWithoutBase) => {
            base.join(url).map_err(|e| bad(e.to_string()))
        }
        Err(e) => Err(bad(e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_upload_urls_resolve_against_the_base() {
        let base = Url::parse("https://westeurope-1.cognitedata.com").expect("url");
        let abs = resolve_upload_url(&base, "https://storage.example/x?sig=1").expect("abs");
        assert_eq!(abs.as_str(), "https://storage.example/x?sig=1");
        let rel = resolve_upload_url(&base, "/api/v1/files/gcs_proxy/abc").expect("rel");
        assert_eq!(
            rel.as_str(),
            "https://westeurope-1.cognitedata.com/api/v1/files/gcs_proxy/abc"
        );
        assert!(resolve_upload_url(&base, "ftp://x/y").is_err());
    }
}
