//! A local CDF: the Files API surface cdf-syncd uses, an OAuth2 token endpoint, upload
//! URLs served by itself, the real limits and error format, fault injection and an
//! inspection endpoint. The contract is `docs/EMULATOR.md`.
//!
//! Start it in-process with [`Emulator::start`] (tests, the demo) or as
//! `cdf-syncd emulator` (see [`cli`]).
//!
//! Module map: `state` (the shared world), `error` (CDF error replies), `auth` (token
//! endpoint, bearer checks), `files` + `validate` (Files API metadata endpoints),
//! `instances` (CogniteFile nodes), `extpipes`, `upload` (upload-URL PUTs, GCS
//! resumable, downloads), `storage` (content on disk or discarded), `faults` +
//! `middleware` (fault injection, request ids, counters), `inspect` (`/_emulator`),
//! `server` (the accept loop that can go down and come back).

mod auth;
pub mod cli;
mod datasets;
mod error;
mod extpipes;
mod faults;
mod files;
mod inspect;
mod instances;
mod middleware;
mod server;
mod state;
mod storage;
mod upload;
mod validate;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use tokio_util::sync::CancellationToken;

pub use instances::ViewId;
pub use state::{CountersSnapshot, Faults, FileView, InstanceId, ScriptedFault};
use state::{State, lock, now_ms};

/// The emulator's settings; `Default` is the real service's behaviour.
#[derive(Debug, Clone)]
pub struct EmulatorConfig {
    pub listen: SocketAddr,
    /// Where content is stored; `None` means a temporary directory owned by the emulator.
    pub data_dir: Option<PathBuf>,
    /// Hash content and store nothing (benchmarks).
    pub discard: bool,
    /// Projects that exist.
    pub projects: Vec<String>,
    /// OAuth2 clients (id, secret) the token endpoint accepts.
    pub clients: Vec<(String, String)>,
    pub token_lifetime: Duration,
    /// Smallest non-last multipart part (CDF: 5 MiB).
    pub min_part_size: u64,
    /// Lifetime of upload URLs (CDF: one week).
    pub url_lifetime: Duration,
    /// Delay between a finished upload and `uploaded = true`.
    pub uploaded_delay: Duration,
    /// Hand out GCS resumable (`/files/gcs_proxy/`) single-part URLs.
    pub gcs_resumable: bool,
    /// Reject (not only count) what real cloud storage rejects.
    pub strict_headers: bool,
    /// How long a new CogniteFile node stays invisible to the file service.
    pub dm_propagation_lag: Duration,
    /// Views declared to implement CogniteFile (with its properties), besides
    /// CogniteFile and CogniteExtractorFile, which are always known.
    pub file_views: Vec<ViewId>,
    pub faults: Faults,
}

pub const DEMO_PROJECT: &str = "demo";
pub const DEMO_CLIENT_ID: &str = "cdf-syncd-demo";
pub const DEMO_CLIENT_SECRET: &str = "demo-secret";
/// CDF's smallest non-last part: 5 MiB.
pub const MIN_PART_SIZE: u64 = 5 * 1024 * 1024;
/// CDF's largest part: 4000 MiB.
pub const MAX_PART_SIZE: u64 = 4000 * 1024 * 1024;
/// CDF's part count limit.
pub const MAX_PARTS: usize = 250;
/// CDF's single-part PUT limit: 5,000,000,000 bytes.
pub const MAX_SINGLE_PUT: u64 = 5_000_000_000;

impl Default for EmulatorConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            data_dir: None,
            discard: false,
            projects: vec![DEMO_PROJECT.to_owned()],
            clients: vec![(DEMO_CLIENT_ID.to_owned(), DEMO_CLIENT_SECRET.to_owned())],
            token_lifetime: Duration::from_secs(3600),
            min_part_size: MIN_PART_SIZE,
            url_lifetime: Duration::from_secs(7 * 24 * 3600),
            uploaded_delay: Duration::ZERO,
            gcs_resumable: false,
            strict_headers: false,
            dm_propagation_lag: Duration::ZERO,
            file_views: Vec::new(),
            faults: Faults::default(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EmulatorError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot prepare the content directory {}: {source}", path.display())]
    DataDir {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// A running emulator. Dropping it without [`Emulator::shutdown`] stops it too.
pub struct Emulator {
    addr: SocketAddr,
    state: Arc<State>,
    server: server::ServerHandle,
    cancel: CancellationToken,
}

impl Emulator {
    /// Binds `config.listen` and serves on the current tokio runtime.
    pub async fn start(config: EmulatorConfig) -> Result<Self, EmulatorError> {
        let listener = server::bind(config.listen)?;
        let addr = listener
            .local_addr()
            .map_err(|source| EmulatorError::Bind {
                addr: config.listen,
                source,
            })?;
        let content = storage::ContentStore::open(config.data_dir.clone(), config.discard)?;
        let base_url = format!("http://{addr}");
        let state = Arc::new(State::new(config, base_url, content));
        let cancel = CancellationToken::new();
        let router = router(state.clone());
        let server = server::spawn(listener, addr, router, state.down.clone(), cancel.clone());
        Ok(Self {
            addr,
            state,
            server,
            cancel,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`: the CDF base URL to configure clients with.
    pub fn base_url(&self) -> String {
        self.state.base_url.clone()
    }

    pub fn token_url(&self) -> String {
        format!("{}/oauth2/token", self.state.base_url)
    }

    /// The first configured project.
    pub fn project(&self) -> &str {
        self.state
            .config
            .projects
            .first()
            .map_or(DEMO_PROJECT, String::as_str)
    }

    /// Every file, as the inspection endpoint shows it.
    pub fn files(&self) -> Vec<FileView> {
        let now = now_ms();
        lock(&self.state.files)
            .by_id
            .values()
            .map(|r| FileView::of(r, now))
            .collect()
    }

    pub fn counters(&self) -> CountersSnapshot {
        self.state.counters.snapshot()
    }

    /// The extraction-pipeline runs posted so far.
    pub fn extpipe_runs(&self) -> Vec<serde_json::Value> {
        lock(&self.state.extpipe_runs).clone()
    }

    pub fn set_faults(&self, faults: Faults) {
        *lock(&self.state.faults) = faults;
    }

    /// Takes the whole service down (connections refused) or brings it back.
    pub fn set_down(&self, down: bool) {
        self.server.set_down(down);
    }

    pub async fn shutdown(mut self) {
        self.cancel.cancel();
        self.server.join().await;
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

/// The whole HTTP surface, with the cross-cutting layers (request ids, counters,
/// faults, gzip request bodies).
fn router(state: Arc<State>) -> Router {
    let api = Router::new()
        .merge(files::routes())
        .merge(instances::routes())
        .merge(extpipes::routes())
        .merge(datasets::routes())
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::require_bearer,
        ));
    let app = Router::new()
        .nest("/api/v1/projects/{project}", api)
        .merge(auth::routes())
        .merge(upload::routes())
        .merge(inspect::routes())
        .with_state(state.clone());
    middleware::apply(app, state)
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;

    async fn call(req: reqwest::RequestBuilder) -> Option<reqwest::StatusCode> {
        req.send().await.ok().map(|r| r.status())
    }

    /// The counters the chaos test relies on: file ids handed out per externalId,
    /// upload bytes per file, and every injected fault.
    #[tokio::test]
    async fn counters_track_creations_bytes_per_file_and_injected_faults() {
        let emu = Emulator::start(EmulatorConfig::default())
            .await
            .expect("start");
        let (token, _) = emu.state.issue_token();
        let http = reqwest::Client::new();
        let files = format!("{}/api/v1/projects/{}/files", emu.base_url(), emu.project());
        let create = |overwrite: bool| {
            http.post(format!("{files}?overwrite={overwrite}"))
                .bearer_auth(&token)
                .json(&serde_json::json!({"name": "a", "externalId": "x-1"}))
        };
        let first: serde_json::Value = create(false)
            .send()
            .await
            .expect("create")
            .json()
            .await
            .expect("json");
        let url = first["uploadUrl"].as_str().expect("url").to_owned();
        assert_eq!(
            call(create(false)).await,
            Some(reqwest::StatusCode::CONFLICT)
        );
        assert_eq!(call(create(true)).await, Some(reqwest::StatusCode::OK));
        assert_eq!(
            call(http.put(&url).body(vec![1u8; 300])).await,
            Some(reqwest::StatusCode::OK)
        );

        emu.set_faults(Faults {
            scripted: vec![ScriptedFault {
                endpoint: "put".to_owned(),
                status: 503,
                lost_response: false,
                times: 1,
            }],
            ..Faults::default()
        });
        assert_eq!(
            call(http.put(&url).body(vec![2u8; 200])).await,
            Some(reqwest::StatusCode::SERVICE_UNAVAILABLE)
        );
        emu.set_faults(Faults {
            api_503: 1.0,
            ..Faults::default()
        });
        assert_eq!(
            call(create(true)).await,
            Some(reqwest::StatusCode::SERVICE_UNAVAILABLE)
        );

        let c = emu.counters();
        let id = first["id"].as_i64().expect("id");
        assert_eq!(
            c.files_created.get("x-1"),
            Some(&1),
            "an overwrite keeps the id"
        );
        assert_eq!(c.put_bytes_by_file.get(&id), Some(&500));
        assert_eq!(c.put_bytes_received, 500);
        assert_eq!(c.faults_injected["PUT upload"]["503"], 1);
        assert_eq!(c.faults_injected["POST files"]["503"], 1);
        assert_eq!((c.injected("PUT "), c.injected("")), (1, 2));
        emu.shutdown().await;
    }

    /// A completion whose client hangs up mid-way still completes (CDF does not undo
    /// a completion because the reply could not be delivered); before, the session
    /// was removed and the content never committed, so the retry got a 400 and the
    /// file stayed without content.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_completion_survives_its_client_hanging_up() {
        use tokio::io::AsyncWriteExt;
        let config = EmulatorConfig {
            min_part_size: 1024,
            ..EmulatorConfig::default()
        };
        let emu = Emulator::start(config).await.expect("start");
        let (token, _) = emu.state.issue_token();
        let http = reqwest::Client::new();
        let api = format!("{}/api/v1/projects/{}", emu.base_url(), emu.project());
        const PARTS: usize = 100;
        for round in 0..5 {
            let init: serde_json::Value = http
                .post(format!("{api}/files/initmultipartupload?parts={PARTS}"))
                .bearer_auth(&token)
                .json(&serde_json::json!({"name": "m", "externalId": format!("m-{round}")}))
                .send()
                .await
                .expect("init")
                .json()
                .await
                .expect("json");
            let id = init["id"].as_i64().expect("id");
            let urls = init["uploadUrls"].as_array().expect("urls").clone();
            for url in &urls {
                let put = http.put(url.as_str().expect("url")).body(vec![round; 1024]);
                assert_eq!(put.send().await.expect("put").status(), 200);
            }
            let body = serde_json::json!({"id": id, "uploadId": init["uploadId"]}).to_string();
            let request = format!(
                "POST /api/v1/projects/{}/files/completemultipartupload HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {token}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                emu.project(),
                body.len()
            );
            let mut conn = tokio::net::TcpStream::connect(emu.addr())
                .await
                .expect("connect");
            conn.write_all(request.as_bytes()).await.expect("send");
            drop(conn);
            let uploaded = || emu.files().iter().any(|f| f.id == id && f.uploaded);
            let deadline = Instant::now() + Duration::from_secs(5);
            while !uploaded() && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            if !uploaded() {
                // The hang-up may have come before the request was handled at all (a
                // loaded machine); then the session must still be open for a retry.
                // What must never happen is a session gone with no content committed.
                let retry = http
                    .post(format!("{api}/files/completemultipartupload"))
                    .bearer_auth(&token)
                    .json(&serde_json::json!({"id": id, "uploadId": init["uploadId"]}))
                    .send()
                    .await
                    .expect("retry");
                assert!(
                    retry.status().is_success() || uploaded(),
                    "round {round}: the completion was lost ({})",
                    retry.status()
                );
            }
        }
        emu.shutdown().await;
    }
}
