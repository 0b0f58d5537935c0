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
