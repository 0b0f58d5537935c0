//! Validated settings: what the rest of the daemon reads.
//!
//! Every value here has passed validation: URLs are parsed, globs compiled, sizes and
//! durations typed, modes are enums, and secrets are only references (where to read
//! the secret), never values. Defaults are the `DEFAULT_*` constants below and are
//! documented key by key in `config/cdf-syncd.example.toml`.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use reqwest::Url;
use serde::Deserialize;

use super::filter::PathFilter;
use super::mime::MimeTypes;
use super::schedule::RateSchedule;
use super::secrets::SecretSource;

pub const DEFAULT_STATE_DIR: &str = "/var/lib/cdf-syncd";
pub const DEFAULT_TEMP_PATTERNS: [&str; 4] = ["*.tmp", "*.part", "~*", ".*"];
pub const DEFAULT_STABLE_FOR: Duration = Duration::from_secs(5);
pub const DEFAULT_SCAN_INTERVAL: Duration = Duration::from_secs(600);
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(30);
pub const DEFAULT_MAX_CONCURRENT_FILES: usize = 8;
pub const DEFAULT_MAX_PARALLEL_PARTS: usize = 4;
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
pub const DEFAULT_PART_TIMEOUT: Duration = Duration::from_secs(30 * 60);
pub const DEFAULT_MAX_REQUEST_RETRIES: u32 = 10;
pub const DEFAULT_INITIAL_BACKOFF: Duration = Duration::from_millis(500);
pub const DEFAULT_MAX_BACKOFF: Duration = Duration::from_secs(30);
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(20);
pub const DEFAULT_LOG_LEVEL: &str = "info";
pub const DEFAULT_PIPELINE_HEARTBEAT: Duration = Duration::from_secs(600);
pub const DEFAULT_PIPELINE_FAILURE_AFTER: Duration = Duration::from_secs(600);
pub const DEFAULT_REMOTE_CONFIG_INTERVAL: Duration = Duration::from_secs(300);
pub const DEFAULT_VIEW: (&str, &str, &str) = ("cdf_cdm", "CogniteFile", "v1");

/// The whole validated configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    pub cdf: CdfSettings,
    pub roots: Vec<RootSettings>,
    pub sync: SyncSettings,
    pub upload: UploadSettings,
    pub state: StateSettings,
    pub admin: AdminSettings,
    pub log: LogSettings,
}

/// `[cdf]`: where files go and how to authenticate.
#[derive(Debug, Clone)]
pub struct CdfSettings {
    /// The cluster URL, e.g. `https://westeurope-1.cognitedata.com/` (https unless
    /// `allow_insecure_http`).
    pub base_url: Url,
    pub project: String,
    pub target: Target,
    pub allow_insecure_http: bool,
    pub auth: AuthSettings,
    /// Extraction pipeline externalId to report runs to.
    pub extraction_pipeline: Option<String>,
    /// Read roots/upload settings from the extraction pipeline's remote config.
    pub remote_config: bool,
    /// Heartbeat, failure threshold and remote-config interval of the pipeline reporter.
    pub pipeline_timing: PipelineTiming,
    /// Explicit proxy; `HTTPS_PROXY`/`NO_PROXY` apply when unset.
    pub proxy: Option<Url>,
    /// Extra PEM CA certificates to trust (corporate TLS inspection).
    pub ca_file: Option<PathBuf>,
    /// Replace the host (and port) of upload URLs with this (Private Link), `host[:port]`.
    pub upload_url_host: Option<String>,
}

/// `[cdf] extraction_pipeline_heartbeat`, `extraction_pipeline_failure_after` and
/// `remote_config_interval`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PipelineTiming {
    /// A `seen` run this often while the pipeline is healthy (extractor-utils: 600 s).
    pub heartbeat: Duration,
    /// A pause (CDF unreachable, throttled, state unwritable) longer than this is a
    /// `failure` run; rejected credentials are one at once.
    pub failure_after: Duration,
    /// How often the remote config is read again (extractor-utils: 300 s).
    pub remote_config_interval: Duration,
}

impl Default for PipelineTiming {
    fn default() -> Self {
        Self {
            heartbeat: DEFAULT_PIPELINE_HEARTBEAT,
            failure_after: DEFAULT_PIPELINE_FAILURE_AFTER,
            remote_config_interval: DEFAULT_REMOTE_CONFIG_INTERVAL,
        }
    }
}

/// Classic Files or CogniteFile nodes in a data-modeling space.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Classic,
    DataModeling { space: String, view: ViewRef },
}

/// A data-modeling view (CogniteFile or a view that implements it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ViewRef {
    pub space: String,
    pub external_id: String,
    pub version: String,
}

impl Default for ViewRef {
    fn default() -> Self {
        let (space, external_id, version) = DEFAULT_VIEW;
        Self {
            space: space.into(),
            external_id: external_id.into(),
            version: version.into(),
        }
    }
}

/// `[cdf.auth]`: exactly one method.
#[derive(Debug, Clone)]
pub enum AuthSettings {
    ClientCredentials(ClientCredentials),
    /// A static bearer token read from a file (for tests); never refreshed.
    TokenFile(PathBuf),
}

/// OAuth2 client credentials; the secret is a reference, read when needed.
#[derive(Debug, Clone)]
pub struct ClientCredentials {
    pub token_url: Url,
    pub client_id: String,
    pub client_secret: SecretSource,
    /// Sent space-joined as `scope`; defaults to `["<base_url>/.default"]`.
    pub scopes: Vec<String>,
    pub audience: Option<String>,
    pub resource: Option<String>,
}

/// `[[roots]]`: one watched directory and how its files map into CDF.
#[derive(Debug, Clone)]
pub struct RootSettings {
    /// Stable identity, part of every externalId: `[A-Za-z0-9_.-]`, 1..=64 chars.
    pub id: String,
    /// Absolute and lexically normalised (no `.`/`..`, no trailing `/`).
    pub path: PathBuf,
    /// Absolute unix path in CDF, normalised, no trailing `/` unless it is `/`.
    pub directory_prefix: String,
    pub external_id_prefix: String,
    pub filter: PathFilter,
    pub fields: FileFields,
    pub mime_types: MimeTypes,
    /// Larger files fail instead of uploading; defaults to CDF's own maximum.
    pub max_file_size: u64,
    pub after_upload: AfterUpload,
    pub on_change: OnChange,
    pub on_delete: OnDelete,
    pub follow_symlinks: bool,
}

/// The static CDF fields every file of a root carries.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FileFields {
    pub data_set: Option<DataSetRef>,
    pub source: Option<String>,
    /// Label externalIds (they must exist in CDF).
    pub labels: Vec<String>,
    pub metadata: BTreeMap<String, String>,
    pub security_categories: Vec<i64>,
    pub asset_ids: Vec<i64>,
}

/// A data set by internal id or externalId (resolved at runtime).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DataSetRef {
    Id(i64),
    ExternalId(String),
}

/// What happens to the local file once CDF reports it uploaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AfterUpload {
    Keep,
    Delete,
    /// Move under this absolute directory, keeping the path relative to the root.
    MoveTo(PathBuf),
}

/// What happens when an already synced file changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OnChange {
    /// Re-upload under the same externalId (`overwrite=true`). Default.
    Overwrite,
    /// Keep what CDF has.
    Skip,
}

/// What happens in CDF when a synced local file disappears.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OnDelete {
    /// Keep the CDF file. Default.
    Keep,
    /// Set metadata `cdf-syncd.deleted = <time>`.
    Mark,
    /// Delete the CDF file.
    Delete,
}

/// `[sync]`: discovery and the stability gate.
#[derive(Debug, Clone)]
pub struct SyncSettings {
    pub stable_for: Duration,
    pub scan_interval: Duration,
    pub watch: WatchMode,
    pub poll_interval: Duration,
    pub hash: HashMode,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum WatchMode {
    /// Native (inotify) where it works, polling on network filesystems or on failure.
    Auto,
    Native,
    Poll,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HashMode {
    None,
    Sha256,
}

/// `[upload]`: concurrency, part size, timeouts, retries and rate limits.
#[derive(Debug, Clone)]
pub struct UploadSettings {
    pub max_concurrent_files: usize,
    pub max_parallel_parts: usize,
    pub part_size: PartSize,
    pub request_timeout: Duration,
    pub part_timeout: Duration,
    pub retry: RetrySettings,
    /// Bytes per second across all transfers outside scheduled windows; `None` = unlimited.
    pub max_rate: Option<u64>,
    pub max_rate_schedule: RateSchedule,
    pub max_requests_per_second: Option<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PartSize {
    /// Chosen per file by the uploader.
    Auto,
    /// Bytes, within CDF's 5 MiB..=4000 MiB.
    Fixed(u64),
}

/// Retries inside one request (the per-job tier is persisted by the job store).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetrySettings {
    pub max_request_retries: u32,
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
}

/// `[state]`: where the job store lives.
#[derive(Debug, Clone)]
pub struct StateSettings {
    pub dir: PathBuf,
}

/// `[admin]`: the local control surface and shutdown.
#[derive(Debug, Clone)]
pub struct AdminSettings {
    pub socket: PathBuf,
    /// `<state dir>/admin.sock`, when the default socket is elsewhere
    /// (`$RUNTIME_DIRECTORY`): the daemon links it to `socket`, so that a CLI started
    /// without that variable finds the daemon.
    pub state_link: Option<PathBuf>,
    /// Group that gets 0660 on the socket; otherwise 0600.
    pub socket_group: Option<String>,
    pub metrics_listen: Option<SocketAddr>,
    pub shutdown_grace: Duration,
}

/// `[log]`.
#[derive(Debug, Clone)]
pub struct LogSettings {
    pub format: LogFormat,
    /// A tracing `EnvFilter` directive (`info`, `info,cdf_syncd::upload=debug`);
    /// `RUST_LOG` overrides it.
    pub level: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LogFormat {
    Text,
    Json,
}

/// `[cdf] target` as written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TargetKind {
    Classic,
    DataModeling,
}

/// `Display` writes each mode as it is spelled in the TOML file.
macro_rules! spelled_as_in_toml {
    ($($ty:ty { $($variant:ident => $text:literal),+ })+) => {$(
        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(match self { $(Self::$variant => $text),+ })
            }
        }
    )+};
}

spelled_as_in_toml! {
    OnChange { Overwrite => "overwrite", Skip => "skip" }
    OnDelete { Keep => "keep", Mark => "mark", Delete => "delete" }
    WatchMode { Auto => "auto", Native => "native", Poll => "poll" }
    HashMode { None => "none", Sha256 => "sha256" }
    LogFormat { Text => "text", Json => "json" }
    TargetKind { Classic => "classic", DataModeling => "data-modeling" }
}
