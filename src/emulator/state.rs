//! The emulator's in-memory world: files, upload sessions, tokens, faults and counters.
//!
//! Every handler reaches this through `Arc<State>`. Locks are `std::sync::Mutex` held
//! only for short, non-async critical sections (never across an `.await`); content bytes
//! never live here, only in the content store.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::EmulatorConfig;
use super::storage::{ContentStore, StoredBlob};

/// Locks a mutex, recovering the data if a previous holder panicked: the emulator's
/// tables stay usable (a panicking handler must not take the whole service down).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Milliseconds since the Unix epoch, as CDF timestamps are.
pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// A data-modeling instance identifier.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InstanceId {
    pub space: String,
    pub external_id: String,
}

/// One file as CDF stores it: metadata plus the currently committed content.
#[derive(Debug, Clone, Default)]
pub(crate) struct FileRecord {
    pub id: i64,
    pub external_id: Option<String>,
    pub name: String,
    pub directory: Option<String>,
    pub source: Option<String>,
    pub mime_type: Option<String>,
    pub metadata: BTreeMap<String, String>,
    pub asset_ids: Vec<i64>,
    pub data_set_id: Option<i64>,
    pub source_created_time: Option<i64>,
    pub source_modified_time: Option<i64>,
    pub security_categories: Vec<i64>,
    /// Label external ids.
    pub labels: Vec<String>,
    pub geo_location: Option<Value>,
    pub instance_id: Option<InstanceId>,
    pub created_time: i64,
    pub last_updated_time: i64,
    /// Set when content was committed; `uploaded` reads true once `now >= uploaded_at`.
    pub uploaded_at: Option<i64>,
    pub content: Option<StoredBlob>,
    /// How many times content has been committed for this file.
    pub content_writes: u32,
}

impl FileRecord {
    pub fn uploaded(&self, now: i64) -> bool {
        self.uploaded_at.is_some_and(|t| now >= t)
    }
}

/// All files, by id, with an externalId and instanceId index.
#[derive(Debug, Default)]
pub(crate) struct FileTable {
    pub by_id: BTreeMap<i64, FileRecord>,
    pub by_external_id: HashMap<String, i64>,
    pub by_instance_id: HashMap<InstanceId, i64>,
}

impl FileTable {
    /// Inserts or replaces a record, keeping the indexes true.
    pub fn upsert(&mut self, record: FileRecord) {
        if let Some(old) = self.by_id.get(&record.id) {
            if let Some(x) = &old.external_id {
                self.by_external_id.remove(x);
            }
            if let Some(i) = &old.instance_id {
                self.by_instance_id.remove(i);
            }
        }
        if let Some(x) = &record.external_id {
            self.by_external_id.insert(x.clone(), record.id);
        }
        if let Some(i) = &record.instance_id {
            self.by_instance_id.insert(i.clone(), record.id);
        }
        self.by_id.insert(record.id, record);
    }

    pub fn remove(&mut self, id: i64) -> Option<FileRecord> {
        let record = self.by_id.remove(&id)?;
        if let Some(x) = &record.external_id {
            self.by_external_id.remove(x);
        }
        if let Some(i) = &record.instance_id {
            self.by_instance_id.remove(i);
        }
        Some(record)
    }
}

/// A part received on a multipart upload URL.
#[derive(Debug, Clone)]
pub(crate) struct PartInfo {
    pub blob: StoredBlob,
}

/// What an upload URL accepts.
#[derive(Debug)]
pub(crate) enum SessionKind {
    /// `PUT /upload/{token}`: the whole content in one request.
    Single,
    /// `PUT /api/v1/files/gcs_proxy/{token}`: GCS resumable protocol; `received` bytes
    /// are persisted so far, in `staging` (created by the first chunk; start with None).
    Gcs {
        received: u64,
        staging: Option<super::upload::GcsStaging>,
    },
    /// `PUT /upload/{token}/parts/{i}`; the token doubles as the `uploadId`.
    Multipart { parts: Vec<Option<PartInfo>> },
}

/// One upload session, as handed out by `POST files`, `initmultipartupload`,
/// `uploadlink` or `multiuploadlink`.
#[derive(Debug)]
pub(crate) struct UploadSession {
    pub file_id: i64,
    /// The file's mimeType when the session was issued (strict single-part check).
    pub mime_type: Option<String>,
    pub expires_at: Instant,
    pub kind: SessionKind,
}

/// Fault injection settings, changeable at run time (`PUT /_emulator/faults`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Faults {
    /// Probability of a 429 on an API call.
    pub api_429: f64,
    /// `Retry-After` seconds sent with injected 429s (none when absent).
    pub api_429_retry_after: Option<u64>,
    pub api_500: f64,
    pub api_503: f64,
    /// Probabilities on upload-URL PUTs.
    pub put_429: f64,
    pub put_500: f64,
    pub put_503: f64,
    /// Probability that a PUT's connection is cut mid-body.
    pub drop_connection: f64,
    /// Probability that the server does the work and then drops the reply.
    pub lost_response: f64,
    /// Added latency on every request.
    pub latency_ms: u64,
    /// Requests beyond this many in flight get 429.
    pub max_concurrency: Option<usize>,
    /// Bandwidth of each upload-URL PUT: its body is read at most this many bytes per
    /// second (a slow uplink; `None`: as fast as it comes).
    pub put_bytes_per_sec: Option<u64>,
    /// One-shot faults, consumed in order of match.
    pub scripted: Vec<ScriptedFault>,
}

/// A one-shot fault: the next `times` requests to `endpoint` fail this way.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScriptedFault {
    /// e.g. `files`, `files/completemultipartupload`, `put` (any upload PUT), `token`.
    pub endpoint: String,
    /// HTTP status to answer; 0 drops the connection.
    #[serde(default)]
    pub status: u16,
    /// Do the work, then drop the reply.
    #[serde(default)]
    pub lost_response: bool,
    #[serde(default = "one")]
    pub times: u32,
}

impl ScriptedFault {
    /// The next `times` requests to `endpoint` get `status` (0 drops the connection).
    pub fn new(endpoint: &str, status: u16, times: u32) -> Self {
        Self {
            endpoint: endpoint.to_owned(),
            status,
            lost_response: false,
            times,
        }
    }
}

fn one() -> u32 {
    1
}

/// Request and traffic counters, for tests to assert on.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    /// "METHOD endpoint" -> status -> count.
    pub requests: Mutex<BTreeMap<String, BTreeMap<u16, u64>>>,
    pub header_violations: Mutex<BTreeMap<String, u64>>,
    pub put_bytes_received: AtomicU64,
    /// Upload-URL body bytes read, by the id of the file the URL belongs to.
    pub put_bytes_by_file: Mutex<BTreeMap<i64, u64>>,
    /// New file ids handed out, by externalId (an overwrite keeps the id: not counted).
    pub files_created: Mutex<BTreeMap<String, u64>>,
    /// "METHOD endpoint" -> injected fault (`429`, `500`, `503`, `drop`, `lost`,
    /// `cap` for the concurrency cap) -> count.
    pub faults_injected: Mutex<BTreeMap<String, BTreeMap<String, u64>>>,
    pub bearer_on_upload_urls: AtomicU64,
    pub tokens_issued: AtomicU64,
}

/// A point-in-time copy of the counters (`GET /_emulator/counters`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct CountersSnapshot {
    pub requests: BTreeMap<String, BTreeMap<u16, u64>>,
    pub header_violations: BTreeMap<String, u64>,
    pub put_bytes_received: u64,
    #[serde(default)]
    pub put_bytes_by_file: BTreeMap<i64, u64>,
    #[serde(default)]
    pub files_created: BTreeMap<String, u64>,
    #[serde(default)]
    pub faults_injected: BTreeMap<String, BTreeMap<String, u64>>,
    pub bearer_on_upload_urls: u64,
    pub tokens_issued: u64,
}

impl CountersSnapshot {
    /// Requests to one endpoint ("POST files/completemultipartupload") with any status.
    pub fn total(&self, endpoint: &str) -> u64 {
        self.requests
            .get(endpoint)
            .map(|m| m.values().sum())
            .unwrap_or(0)
    }

    /// Requests to one endpoint answered with `status`.
    pub fn with_status(&self, endpoint: &str, status: u16) -> u64 {
        self.requests
            .get(endpoint)
            .and_then(|m| m.get(&status).copied())
            .unwrap_or(0)
    }

    /// Faults injected into requests whose `"METHOD endpoint"` starts with `prefix`
    /// (`"PUT "`: every upload-URL PUT; `""`: all).
    pub fn injected(&self, prefix: &str) -> u64 {
        self.faults_injected
            .iter()
            .filter(|(endpoint, _)| endpoint.starts_with(prefix))
            .flat_map(|(_, by_kind)| by_kind.values())
            .sum()
    }
}

impl Counters {
    pub fn snapshot(&self) -> CountersSnapshot {
        CountersSnapshot {
            requests: lock(&self.requests).clone(),
            header_violations: lock(&self.header_violations).clone(),
            put_bytes_received: self.put_bytes_received.load(Ordering::Relaxed),
            put_bytes_by_file: lock(&self.put_bytes_by_file).clone(),
            files_created: lock(&self.files_created).clone(),
            faults_injected: lock(&self.faults_injected).clone(),
            bearer_on_upload_urls: self.bearer_on_upload_urls.load(Ordering::Relaxed),
            tokens_issued: self.tokens_issued.load(Ordering::Relaxed),
        }
    }

    pub fn count_request(&self, endpoint: String, status: u16) {
        *lock(&self.requests)
            .entry(endpoint)
            .or_default()
            .entry(status)
            .or_default() += 1;
    }

    /// Counts `bytes` read from an upload-URL body (per file when the URL is known).
    pub fn count_put_bytes(&self, file_id: Option<i64>, bytes: u64) {
        self.put_bytes_received.fetch_add(bytes, Ordering::Relaxed);
        if let Some(id) = file_id {
            *lock(&self.put_bytes_by_file).entry(id).or_default() += bytes;
        }
    }

    pub fn count_creation(&self, external_id: &str) {
        *lock(&self.files_created)
            .entry(external_id.to_owned())
            .or_default() += 1;
    }

    pub fn count_fault(&self, endpoint: String, what: &str) {
        *lock(&self.faults_injected)
            .entry(endpoint)
            .or_default()
            .entry(what.to_owned())
            .or_default() += 1;
    }

    pub fn count_violation(&self, what: &str) {
        *lock(&self.header_violations)
            .entry(what.to_owned())
            .or_default() += 1;
    }
}

/// A file as the inspection endpoint shows it (`GET /_emulator/files`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FileView {
    pub id: i64,
    pub external_id: Option<String>,
    pub name: String,
    pub directory: Option<String>,
    pub source: Option<String>,
    pub mime_type: Option<String>,
    pub metadata: BTreeMap<String, String>,
    pub data_set_id: Option<i64>,
    pub uploaded: bool,
    /// Size of the committed content (None before any upload).
    pub size: Option<u64>,
    /// SHA-256 (hex) of the committed content, when known.
    pub sha256: Option<String>,
    pub content_writes: u32,
    pub instance_id: Option<InstanceId>,
}

impl FileView {
    pub(crate) fn of(record: &FileRecord, now: i64) -> Self {
        Self {
            id: record.id,
            external_id: record.external_id.clone(),
            name: record.name.clone(),
            directory: record.directory.clone(),
            source: record.source.clone(),
            mime_type: record.mime_type.clone(),
            metadata: record.metadata.clone(),
            data_set_id: record.data_set_id,
            uploaded: record.uploaded(now),
            size: record.content.as_ref().map(|c| c.size),
            sha256: record.content.as_ref().and_then(|c| c.sha256.clone()),
            content_writes: record.content_writes,
            instance_id: record.instance_id.clone(),
        }
    }
}

/// Everything the handlers share.
pub(crate) struct State {
    pub config: EmulatorConfig,
    /// `http://127.0.0.1:PORT`, known once the listener is bound.
    pub base_url: String,
    pub files: Mutex<FileTable>,
    /// Upload sessions by URL token (for multipart, also the `uploadId`).
    pub uploads: Mutex<HashMap<String, UploadSession>>,
    /// Issued access tokens and when they expire.
    pub tokens: Mutex<HashMap<String, Instant>>,
    /// DM nodes whose file-service view is not visible before this instant.
    pub instance_visible_at: Mutex<HashMap<InstanceId, Instant>>,
    /// Data-modeling nodes written through `POST models/instances`.
    pub nodes: Mutex<HashMap<InstanceId, super::instances::NodeRecord>>,
    pub faults: Mutex<Faults>,
    pub counters: Counters,
    pub extpipe_runs: Mutex<Vec<Value>>,
    /// Extraction-pipeline config revisions by pipeline externalId, oldest first.
    pub extpipe_configs: Mutex<HashMap<String, Vec<super::extpipes::ConfigRevision>>>,
    /// Data sets (`POST datasets`), for externalId lookups.
    pub datasets: Mutex<Vec<super::datasets::DataSet>>,
    pub content: ContentStore,
    /// Takes the whole service down and up (`/_emulator/outage`, `Emulator::set_down`).
    pub down: super::server::DownSwitch,
    next_id: AtomicI64,
}

impl State {
    pub fn new(config: EmulatorConfig, base_url: String, content: ContentStore) -> Self {
        let faults = config.faults.clone();
        Self {
            config,
            base_url,
            files: Mutex::default(),
            uploads: Mutex::default(),
            tokens: Mutex::default(),
            instance_visible_at: Mutex::default(),
            nodes: Mutex::default(),
            faults: Mutex::new(faults),
            counters: Counters::default(),
            extpipe_runs: Mutex::default(),
            extpipe_configs: Mutex::default(),
            datasets: Mutex::default(),
            content,
            down: super::server::DownSwitch::default(),
            // Ids look like CDF's: large, but below 2^53.
            next_id: AtomicI64::new(1_000_000_000_000 + i64::from(fastrand::u32(..))),
        }
    }

    pub fn next_id(&self) -> i64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// A fresh random token for an upload URL or an access token.
    pub fn random_token() -> String {
        let mut s = String::with_capacity(32);
        for _ in 0..32 {
            s.push(fastrand::alphanumeric());
        }
        s
    }

    /// Opens an upload session for `file_id` and returns its token.
    pub fn open_session(
        &self,
        file_id: i64,
        mime_type: Option<String>,
        kind: SessionKind,
    ) -> String {
        let token = Self::random_token();
        let session = UploadSession {
            file_id,
            mime_type,
            expires_at: Instant::now() + self.config.url_lifetime,
            kind,
        };
        lock(&self.uploads).insert(token.clone(), session);
        token
    }

    /// Single-part upload URL for a session token.
    pub fn single_url(&self, token: &str) -> String {
        if self.config.gcs_resumable {
            format!("{}/api/v1/files/gcs_proxy/{token}", self.base_url)
        } else {
            format!("{}/upload/{token}", self.base_url)
        }
    }

    /// Multipart upload URLs for a session token.
    pub fn part_urls(&self, token: &str, parts: usize) -> Vec<String> {
        (0..parts)
            .map(|i| format!("{}/upload/{token}/parts/{i}", self.base_url))
            .collect()
    }

    /// Makes `blob` the content of file `file_id`: the upload finished. The previous
    /// content is released; `uploaded` turns true after the configured delay.
    /// Returns false when the file no longer exists (deleted meanwhile).
    pub fn commit_content(&self, file_id: i64, blob: StoredBlob) -> bool {
        let now = now_ms();
        let delay = i64::try_from(self.config.uploaded_delay.as_millis()).unwrap_or(i64::MAX);
        let old = {
            let mut files = lock(&self.files);
            let Some(record) = files.by_id.get_mut(&file_id) else {
                drop(files);
                self.content.release(&blob);
                return false;
            };
            record.content_writes += 1;
            record.uploaded_at = Some(now.saturating_add(delay));
            record.last_updated_time = now;
            record.content.replace(blob)
        };
        if let Some(old) = old {
            self.content.release(&old);
        }
        true
    }

    /// Whether an access token is known and unexpired.
    pub fn token_valid(&self, token: &str) -> bool {
        lock(&self.tokens)
            .get(token)
            .is_some_and(|exp| Instant::now() < *exp)
    }

    pub fn issue_token(&self) -> (String, Duration) {
        let token = Self::random_token();
        let lifetime = self.config.token_lifetime;
        lock(&self.tokens).insert(token.clone(), Instant::now() + lifetime);
        self.counters.tokens_issued.fetch_add(1, Ordering::Relaxed);
        (token, lifetime)
    }
}
