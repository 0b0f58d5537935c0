//! The serde mirror of the TOML file, before validation.
//!
//! Every table rejects unknown keys. Values that semantic validation must check carry
//! their `toml::Spanned` position, so that an error can name its line; optional keys are
//! `Option` here and get their defaults in `validate`.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde::de::IgnoredAny;
use toml::Spanned;

use super::settings::{HashMode, LogFormat, OnChange, OnDelete, TargetKind, WatchMode};
use super::values::{Dur, PartSizeValue, Rate, Size};

pub(crate) type Str = Spanned<String>;
pub(crate) type List<T> = Spanned<Vec<Spanned<T>>>;
pub(crate) type Map = Spanned<BTreeMap<Str, Str>>;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawConfig {
    pub cdf: Spanned<RawCdf>,
    #[serde(default)]
    pub roots: Vec<Spanned<RawRoot>>,
    #[serde(default)]
    pub sync: RawSync,
    #[serde(default)]
    pub upload: RawUpload,
    #[serde(default)]
    pub state: RawState,
    #[serde(default)]
    pub admin: RawAdmin,
    #[serde(default)]
    pub log: RawLog,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCdf {
    pub base_url: Str,
    pub project: Str,
    pub target: Option<Spanned<TargetKind>>,
    pub space: Option<Str>,
    pub view: Option<Spanned<RawView>>,
    #[serde(default)]
    pub allow_insecure_http: bool,
    pub extraction_pipeline: Option<Str>,
    pub remote_config: Option<Spanned<bool>>,
    pub extraction_pipeline_heartbeat: Option<Spanned<Dur>>,
    pub extraction_pipeline_failure_after: Option<Spanned<Dur>>,
    pub remote_config_interval: Option<Spanned<Dur>>,
    pub proxy: Option<Str>,
    pub ca_file: Option<Str>,
    pub upload_url_host: Option<Str>,
    pub auth: Option<Spanned<RawAuth>>,
}

/// A remote configuration (the extraction pipeline's config): only the tables a
/// running daemon can take from it. An absent table keeps the local file's.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRemote {
    pub roots: Option<Vec<Spanned<RawRoot>>>,
    pub sync: Option<RawSync>,
    pub upload: Option<RawUpload>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawView {
    pub space: Str,
    pub external_id: Str,
    pub version: Str,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAuth {
    pub token_url: Option<Str>,
    pub client_id: Option<Str>,
    pub client_secret_env: Option<Str>,
    pub client_secret_file: Option<Str>,
    pub client_secret_credential: Option<Str>,
    /// Accepted only to refuse it with a clear message; its value is never kept.
    pub client_secret: Option<Spanned<IgnoredAny>>,
    pub scopes: Option<List<String>>,
    pub audience: Option<Str>,
    pub resource: Option<Str>,
    pub token_file: Option<Str>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRoot {
    pub id: Str,
    pub path: Str,
    pub directory_prefix: Option<Str>,
    pub external_id_prefix: Option<Str>,
    pub include: Option<List<String>>,
    pub exclude: Option<List<String>>,
    pub temp_patterns: Option<List<String>>,
    pub data_set_id: Option<Spanned<i64>>,
    pub data_set_external_id: Option<Str>,
    pub source: Option<Str>,
    pub labels: Option<List<String>>,
    pub metadata: Option<Map>,
    pub security_categories: Option<List<i64>>,
    pub asset_ids: Option<List<i64>>,
    pub mime_types: Option<Map>,
    pub max_file_size: Option<Spanned<Size>>,
    pub after_upload: Option<Spanned<RawAfterUpload>>,
    pub on_change: Option<OnChange>,
    pub on_delete: Option<OnDelete>,
    pub follow_symlinks: Option<bool>,
}

/// `"keep" | "delete" | { move_to = "/abs/path" }`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub(crate) enum RawAfterUpload {
    Keep,
    Delete,
    MoveTo(Str),
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSync {
    pub stable_for: Option<Spanned<Dur>>,
    pub scan_interval: Option<Spanned<Dur>>,
    pub watch: Option<WatchMode>,
    pub poll_interval: Option<Spanned<Dur>>,
    pub hash: Option<HashMode>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawUpload {
    pub max_concurrent_files: Option<Spanned<i64>>,
    pub max_parallel_parts: Option<Spanned<i64>>,
    pub part_size: Option<Spanned<PartSizeValue>>,
    pub request_timeout: Option<Spanned<Dur>>,
    pub part_timeout: Option<Spanned<Dur>>,
    pub max_request_retries: Option<Spanned<i64>>,
    pub initial_backoff: Option<Spanned<Dur>>,
    pub max_backoff: Option<Spanned<Dur>>,
    pub max_rate: Option<Spanned<Rate>>,
    pub max_rate_schedule: Option<List<String>>,
    pub max_requests_per_second: Option<Spanned<i64>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawState {
    pub dir: Option<Str>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAdmin {
    pub socket: Option<Str>,
    pub socket_group: Option<Str>,
    pub metrics_listen: Option<Str>,
    pub shutdown_grace: Option<Spanned<Dur>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawLog {
    pub format: Option<LogFormat>,
    pub level: Option<Str>,
}
