//! Reading content back from CDF, for `cdf-syncd verify`: download links, the size
//! behind a link (a one-byte range GET, so nothing is downloaded), and the whole
//! content's size and SHA-256 (streamed, never held in memory).
//!
//! Download URLs are presigned like upload URLs: no bearer token, the same relative-URL
//! and `upload_url_host` handling.

use std::collections::HashMap;

use futures_util::StreamExt;
use reqwest::StatusCode;
use reqwest::header::{CONTENT_LENGTH, CONTENT_RANGE, RANGE};
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256};

use super::{CdfClient, CdfError, network, put::resolve_upload_url, read_reply};

/// CDF's limit of items per `files/downloadlink` request.
pub const DOWNLOAD_LINKS_PER_REQUEST: usize = 100;

const ENDPOINT: &str = "download GET";

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Link {
    id: Option<i64>,
    download_url: String,
}

impl CdfClient {
    /// `POST files/downloadlink` for up to 100 file ids: id -> URL.
    pub async fn download_links(&self, ids: &[i64]) -> Result<HashMap<i64, String>, CdfError> {
        let items: Vec<_> = ids.iter().map(|id| json!({ "id": id })).collect();
        let links: Vec<Link> = self
            .call_items("files/downloadlink", &json!({ "items": items }))
            .await?;
        Ok(links
            .into_iter()
            .filter_map(|l| Some((l.id?, l.download_url)))
            .collect())
    }

    /// The size of the content behind a download URL, from `Range: bytes=0-0`.
    pub async fn content_size(&self, url: &str) -> Result<u64, CdfError> {
        self.with_retries(ENDPOINT, || self.content_size_once(url))
            .await
    }

    async fn content_size_once(&self, url: &str) -> Result<u64, CdfError> {
        let resp = self.download_get(url, Some("bytes=0-0")).await?;
        let status = resp.status();
        let header = |name| {
            resp.headers()
                .get(name)
                .and_then(|v: &reqwest::header::HeaderValue| v.to_str().ok())
                .map(str::to_owned)
        };
        let total = match status {
            StatusCode::PARTIAL_CONTENT | StatusCode::RANGE_NOT_SATISFIABLE => {
                header(CONTENT_RANGE).as_deref().and_then(range_total)
            }
            // The server ignored the range: the whole length is the size.
            s if s.is_success() => header(CONTENT_LENGTH).and_then(|v| v.parse().ok()),
            _ => return Err(error_reply(resp).await),
        };
        total.ok_or_else(|| CdfError::BadReply {
            endpoint: ENDPOINT.to_owned(),
            reason: format!("status {status} without a usable Content-Range or Content-Length"),
            request_id: None,
        })
    }

    /// Downloads the content behind a URL: its size and SHA-256.
    pub async fn content_digest(&self, url: &str) -> Result<(u64, [u8; 32]), CdfError> {
        self.with_retries(ENDPOINT, || self.content_digest_once(url))
            .await
    }

    async fn content_digest_once(&self, url: &str) -> Result<(u64, [u8; 32]), CdfError> {
        let resp = self.download_get(url, None).await?;
        if !resp.status().is_success() {
            return Err(error_reply(resp).await);
        }
        let mut body = resp.bytes_stream();
        let mut hasher = Sha256::new();
        let mut size = 0u64;
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|source| CdfError::Transport {
                endpoint: ENDPOINT.to_owned(),
                source,
            })?;
            size += chunk.len() as u64;
            hasher.update(&chunk);
        }
        Ok((size, hasher.finalize().into()))
    }

    async fn download_get(
        &self,
        url: &str,
        range: Option<&str>,
    ) -> Result<reqwest::Response, CdfError> {
        let mut url = resolve_upload_url(&self.inner.base_url, url)?;
        if let Some(authority) = &self.inner.upload_url_host {
            network::rewrite_upload_host(&mut url, authority)?;
        }
        let mut req = self.inner.storage.get(url).timeout(self.inner.put_timeout);
        if let Some(range) = range {
            req = req.header(RANGE, range);
        }
        req.send().await.map_err(|source| CdfError::Transport {
            endpoint: ENDPOINT.to_owned(),
            source,
        })
    }
}

/// The error a failed download reply stands for.
async fn error_reply(resp: reqwest::Response) -> CdfError {
    match read_reply::<serde_json::Value>(ENDPOINT, resp).await {
        Err(e) => e,
        Ok(_) => CdfError::BadReply {
            endpoint: ENDPOINT.to_owned(),
            reason: "unexpected status".to_owned(),
            request_id: None,
        },
    }
}

/// The total of `bytes a-b/N` or `bytes */N`.
fn range_total(value: &str) -> Option<u64> {
    let (_, total) = value.trim().strip_prefix("bytes ")?.rsplit_once('/')?;
    total.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::range_total;

    #[test]
    fn content_range_totals() {
        assert_eq!(range_total("bytes 0-0/1234"), Some(1234));
        assert_eq!(range_total("bytes */0"), Some(0));
        assert_eq!(range_total("bytes 0-0/*"), None);
        assert_eq!(range_total("items 0-0/5"), None);
    }
}
