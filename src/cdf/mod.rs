//! The CDF client: typed calls for the Files API endpoints cdf-syncd uses, and the
//! content PUTs to upload URLs.
//!
//! Every API call carries a bearer token from [`TokenProvider`]; a 401 invalidates the
//! token and the call is retried once with a fresh one. Other failures come back as a
//! [`CdfError`] with a [`RetryClass`]: retrying and backing off is the caller's job
//! (the per-request and per-job tiers live above this module). Replies are parsed
//! defensively: `POST files` and `initmultipartupload` return a bare object, the link
//! endpoints wrap it in `items`, and both shapes are accepted everywhere.

pub mod bandwidth;
mod download;
mod error;
pub mod extpipes;
mod gcs;
pub mod instances;
pub mod limits;
mod network;
mod put;
pub mod retry;
mod setup;
pub mod stats;
pub mod types;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use reqwest::{Method, Url};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

pub use bandwidth::{Bandwidth, RatePolicy};
pub use download::DOWNLOAD_LINKS_PER_REQUEST;
pub use error::{ApiError, CdfError, RetryClass};
pub use gcs::is_resumable_url;
pub use instances::{NodeWrite, ViewSource};
pub use network::NetworkConfig;
pub use put::PutKind;
pub use retry::RetryPolicy;
pub use types::{
    FileCreate, FileObject, Identity, InstanceId, LabelRef, MultipartUpload, SingleUpload,
};

use crate::auth::{Credentials, TokenProvider};

/// What the client needs to know about the CDF project.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// e.g. `https://westeurope-1.cognitedata.com`.
    pub base_url: Url,
    pub project: String,
    pub credentials: Credentials,
    /// Deadline for one API call.
    pub request_timeout: Duration,
    /// Deadline for one content PUT (a whole part).
    pub put_timeout: Duration,
    /// The quick retry tier for every call and PUT.
    pub retry: RetryPolicy,
    /// `[upload] max_requests_per_second`: spaces all requests (API and PUTs).
    pub max_requests_per_second: Option<u32>,
    /// Proxy, CA file, upload-URL host and bandwidth limit.
    pub network: NetworkConfig,
}

/// A cheap-to-clone handle on one CDF project.
#[derive(Debug, Clone)]
pub struct CdfClient {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    api: reqwest::Client,
    /// For upload URLs: no redirects followed (GCS answers 308 without Location).
    storage: reqwest::Client,
    base_url: Url,
    project: String,
    auth: TokenProvider,
    request_timeout: Duration,
    put_timeout: Duration,
    retry: RetryPolicy,
    rate: Option<retry::RateLimit>,
    /// `[upload] max_rate`: shared by every PUT body.
    bandwidth: Arc<Bandwidth>,
    /// `[cdf] upload_url_host`.
    upload_url_host: Option<String>,
    stats: stats::ClientStats,
}

const USER_AGENT: &str = concat!("cdf-syncd/", env!("CARGO_PKG_VERSION"));

impl CdfClient {
    pub fn new(config: ClientConfig) -> Result<Self, CdfError> {
        let (api, storage) = network::http_clients(&config.network)?;
        let bandwidth = Arc::new(Bandwidth::new(RatePolicy {
            max_rate: config.network.max_rate,
            schedule: config.network.max_rate_schedule,
        }));
        Ok(Self {
            inner: Arc::new(Inner {
                auth: TokenProvider::new(api.clone(), config.credentials),
                api,
                storage,
                base_url: config.base_url,
                project: config.project,
                request_timeout: config.request_timeout,
                put_timeout: config.put_timeout,
                retry: config.retry,
                rate: config
                    .max_requests_per_second
                    .map(retry::RateLimit::per_second),
                bandwidth,
                upload_url_host: config.network.upload_url_host,
                stats: stats::ClientStats::default(),
            }),
        })
    }

    pub fn project(&self) -> &str {
        &self.inner.project
    }

    /// The upload bandwidth limiter: `set_rate` on reload, `current_rate` for metrics.
    pub fn bandwidth(&self) -> &Bandwidth {
        &self.inner.bandwidth
    }

    /// Throttling replies (429/503) seen since the client was built, retried or not.
    pub fn throttled_total(&self) -> u64 {
        self.inner.stats.throttled.load(Ordering::Relaxed)
    }

    /// Access tokens fetched, and fetches that failed, since start.
    pub fn token_refreshes(&self) -> (u64, u64) {
        self.inner.auth.refreshes()
    }

    /// Retries, failures and latencies, for metrics.
    pub fn stats(&self) -> &stats::ClientStats {
        &self.inner.stats
    }

    /// One cheap authenticated call, not retried: is CDF reachable and are the
    /// credentials accepted? (The pipeline's outage probe.)
    pub async fn probe(&self) -> Result<(), CdfError> {
        let body = json!({ "items": [{ "id": 1 }], "ignoreUnknownIds": true });
        self.call_once::<Value>(&Method::POST, "files/byids", &[], Some(&body))
            .await
            .map(drop)
    }

    /// Runs `op` under the quick retry tier: transient failures and throttling are
    /// retried with backoff (or `Retry-After`) within [`RetryPolicy`]'s limits.
    pub(crate) async fn with_retries<T, F, Fut>(&self, what: &str, op: F) -> Result<T, CdfError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, CdfError>>,
    {
        self.with_retries_if(what, op, |_| true).await
    }

    /// [`CdfClient::with_retries`] for a call that may be retried only after failures
    /// for which `retryable` holds (a non-idempotent call that CDF cannot have recorded).
    pub(crate) async fn with_retries_if<T, F, Fut>(
        &self,
        what: &str,
        mut op: F,
        retryable: impl Fn(&CdfError) -> bool,
    ) -> Result<T, CdfError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, CdfError>>,
    {
        let started = Instant::now();
        let mut retry = 0;
        loop {
            if let Some(rate) = &self.inner.rate {
                rate.acquire().await;
            }
            let attempt = Instant::now();
            let result = op().await;
            self.inner
                .stats
                .attempt(what == "upload PUT", attempt.elapsed());
            let e = match result {
                Ok(v) => return Ok(v),
                Err(e) => e,
            };
            let class = e.retry_class();
            retry += 1;
            let delay = retryable(&e)
                .then(|| self.inner.retry.delay(retry, class, started))
                .flatten();
            let Some(delay) = delay else {
                self.inner.stats.failed(class, false);
                return Err(e);
            };
            self.inner.stats.failed(class, true);
            tracing::debug!(what, retry, ?delay, error = %e, "retrying");
            tokio::time::sleep(delay).await;
        }
    }

    /// `POST files`: create (or with `overwrite`, replace) a file, get one upload URL.
    pub async fn create_file(
        &self,
        file: &FileCreate,
        overwrite: bool,
    ) -> Result<SingleUpload, CdfError> {
        let query = [("overwrite", overwrite.to_string())];
        self.call_one("files", &query, &json!(file)).await
    }

    /// `POST files/initmultipartupload`: create (or replace) a file, get `parts` URLs.
    pub async fn init_multipart(
        &self,
        file: &FileCreate,
        parts: u64,
        overwrite: bool,
    ) -> Result<MultipartUpload, CdfError> {
        let query = [
            ("parts", parts.to_string()),
            ("overwrite", overwrite.to_string()),
        ];
        self.call_one("files/initmultipartupload", &query, &json!(file))
            .await
    }

    /// `POST files/uploadlink`: a new single-part URL for an existing file.
    pub async fn upload_link(&self, file: &Identity) -> Result<SingleUpload, CdfError> {
        self.call_one("files/uploadlink", &[], &json!({ "items": [file] }))
            .await
    }

    /// `POST files/multiuploadlink`: a new multipart session for an existing file.
    pub async fn multipart_link(
        &self,
        file: &Identity,
        parts: u64,
    ) -> Result<MultipartUpload, CdfError> {
        let query = [("parts", parts.to_string())];
        self.call_one("files/multiuploadlink", &query, &json!({ "items": [file] }))
            .await
    }

    /// `POST files/completemultipartupload` by file id (what every SDK sends).
    pub async fn complete_multipart(&self, file_id: i64, upload_id: &str) -> Result<(), CdfError> {
        let body = json!({ "id": file_id, "uploadId": upload_id });
        self.call::<Value>(
            Method::POST,
            "files/completemultipartupload",
            &[],
            Some(&body),
        )
        .await
        .map(drop)
    }

    /// `POST files/byids` with `ignoreUnknownIds`: the files that exist, in no set order.
    pub async fn files_by_ids(&self, ids: &[Identity]) -> Result<Vec<FileObject>, CdfError> {
        let body = json!({ "items": ids, "ignoreUnknownIds": true });
        self.call_items("files/byids", &body).await
    }

    /// `POST datasets/byids`: the id of the data set with this externalId (`None` when
    /// there is none).
    pub async fn data_set_id(&self, external_id: &str) -> Result<Option<i64>, CdfError> {
        let body = json!({ "items": [{ "externalId": external_id }], "ignoreUnknownIds": true });
        let found: Vec<Value> = self.call_items("datasets/byids", &body).await?;
        Ok(found
            .iter()
            .find_map(|d| d.get("id").and_then(Value::as_i64)))
    }

    /// `POST files/delete` by id with `ignoreUnknownIds` (so a retry is harmless).
    pub async fn delete_files(&self, ids: &[i64]) -> Result<(), CdfError> {
        let items: Vec<Value> = ids.iter().map(|id| json!({ "id": id })).collect();
        let body = json!({ "items": items, "ignoreUnknownIds": true });
        self.call::<Value>(Method::POST, "files/delete", &[], Some(&body))
            .await
            .map(drop)
    }

    /// `POST files/update` with raw update items (`{"id"|"externalId", "update": {...}}`).
    pub async fn update_files(&self, items: Vec<Value>) -> Result<Vec<FileObject>, CdfError> {
        self.call_items("files/update", &json!({ "items": items }))
            .await
    }

    /// Calls an endpoint that answers `{"items": [...]}`.
    async fn call_items<T: DeserializeOwned>(
        &self,
        endpoint: &str,
        body: &Value,
    ) -> Result<Vec<T>, CdfError> {
        let reply: Value = self.call(Method::POST, endpoint, &[], Some(body)).await?;
        let items = reply
            .get("items")
            .cloned()
            .unwrap_or(Value::Array(Vec::new()));
        serde_json::from_value(items).map_err(|e| bad_reply(endpoint, e.to_string()))
    }

    /// Calls an endpoint that answers one object, bare or as `{"items": [obj]}`.
    async fn call_one<T: DeserializeOwned>(
        &self,
        endpoint: &str,
        query: &[(&str, String)],
        body: &Value,
    ) -> Result<T, CdfError> {
        let reply: Value = self.call(Method::POST, endpoint, query, Some(body)).await?;
        let object = match reply.get("items").and_then(Value::as_array) {
            Some(items) => items
                .first()
                .cloned()
                .ok_or_else(|| bad_reply(endpoint, "empty items".to_owned()))?,
            None => reply,
        };
        serde_json::from_value(object).map_err(|e| bad_reply(endpoint, e.to_string()))
    }

    /// One API call under the quick retry tier.
    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        endpoint: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
    ) -> Result<T, CdfError> {
        self.with_retries(endpoint, || self.call_once(&method, endpoint, query, body))
            .await
    }

    /// One API call with the bearer token; on 401, one retry with a fresh token.
    async fn call_once<T: DeserializeOwned>(
        &self,
        method: &Method,
        endpoint: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
    ) -> Result<T, CdfError> {
        let url = self.api_url(endpoint)?;
        let mut reauthenticated = false;
        loop {
            let token = self.inner.auth.token().await?;
            let mut req = self
                .inner
                .api
                .request(method.clone(), url.clone())
                .query(query)
                .bearer_auth(token.expose())
                .header("x-cdp-sdk", USER_AGENT)
                .header("x-cdp-app", "cdf-syncd")
                .timeout(self.inner.request_timeout);
            if let Some(body) = body {
                req = req.json(body);
            }
            let resp = req.send().await.map_err(|source| CdfError::Transport {
                endpoint: endpoint.to_owned(),
                source,
            })?;
            if resp.status().as_u16() == 401 && !reauthenticated {
                self.inner.auth.invalidate(&token).await;
                reauthenticated = true;
                continue;
            }
            return read_reply(endpoint, resp).await;
        }
    }

    fn api_url(&self, endpoint: &str) -> Result<Url, CdfError> {
        let path = format!("api/v1/projects/{}/{endpoint}", self.inner.project);
        self.inner
            .base_url
            .join(&path)
            .map_err(|e| bad_reply(endpoint, format!("cannot build the URL: {e}")))
    }
}

/// Turns a reply into `T` or a typed error carrying `x-request-id`.
async fn read_reply<T: DeserializeOwned>(
    endpoint: &str,
    resp: reqwest::Response,
) -> Result<T, CdfError> {
    let status = resp.status();
    let request_id = header(&resp, "x-request-id");
    let auto_retryable =
        header(&resp, "cdf-is-auto-retryable").is_some_and(|v| v.eq_ignore_ascii_case("true"));
    let retry_after = header(&resp, "retry-after")
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    let text = resp.text().await.map_err(|source| CdfError::Transport {
        endpoint: endpoint.to_owned(),
        source,
    })?;
    if !status.is_success() {
        let error = error::parse_error_body(
            status.as_u16(),
            &text,
            request_id,
            auto_retryable,
            retry_after,
        );
        return Err(CdfError::Api {
            endpoint: endpoint.to_owned(),
            error: Box::new(error),
        });
    }
    let text = if text.trim().is_empty() { "{}" } else { &text };
    serde_json::from_str(text).map_err(|e| CdfError::BadReply {
        endpoint: endpoint.to_owned(),
        reason: e.to_string(),
        request_id,
    })
}

fn header(resp: &reqwest::Response, name: &str) -> Option<String> {
    resp.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

fn bad_reply(endpoint: &str, reason: String) -> CdfError {
    CdfError::BadReply {
        endpoint: endpoint.to_owned(),
        reason,
        request_id: None,
    }
}
