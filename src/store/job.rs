//! The job lifecycle: one enum with data, transitions as functions, no state a string.
//!
//! ```text
//! Queued -> Uploading(Upload) -> Completing(Upload) -> Done { file_id } -> (compacted)
//!    ^           |                     |
//!    +---- Failed { retry_at, last_error, resume } <---+
//! ```
//!
//! A job is per local file (root id + path relative to the root). `Uploading` holds
//! everything needed to resume after a crash (file id, upload id, URLs and when they
//! were issued, part size, the source fingerprint taken at start); which parts are
//! done is stored beside the job, one small record per part, so that a finished part
//! never rewrites the job's URL list. `Done` means CDF confirmed completion and only
//! post-upload actions (waiting for `uploaded`, delete/move of the source) remain; once
//! they are done the job is compacted away and only the path's [`SyncedFile`] stays.

use std::ffi::OsStr;
use std::fmt;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::fingerprint::Fingerprint;

/// A job's identity, unique for the life of the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct JobId(pub u64);

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A local file: the root's id and the path relative to the root, as raw bytes (file
/// names need not be UTF-8).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct FileKey {
    pub root: String,
    pub rel: Vec<u8>,
}

impl FileKey {
    pub fn new(root: impl Into<String>, rel: &Path) -> Self {
        Self {
            root: root.into(),
            rel: rel.as_os_str().as_bytes().to_vec(),
        }
    }

    /// The path relative to the root.
    pub fn rel_path(&self) -> &Path {
        Path::new(OsStr::from_bytes(&self.rel))
    }
}

impl fmt::Display for FileKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:/{}", self.root, self.rel_path().display())
    }
}

/// Where an upload's content goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Target {
    /// One PUT of the whole content (empty files).
    Single { url: String },
    /// One PUT per part, then `completemultipartupload`.
    Multipart {
        upload_id: String,
        urls: Vec<String>,
        part_size: u64,
    },
}

/// An upload session in progress: enough to resume it after a restart.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Upload {
    pub file_id: i64,
    pub target: Target,
    /// When CDF issued the URLs (ms since epoch); CDF expires them after a week.
    pub urls_issued_ms: i64,
    /// The source file as it was when the session started.
    pub source: Fingerprint,
}

/// Why a job is in `Failed`, which decides whether it is retried by itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum FailureKind {
    /// Retried at `retry_at_ms` (network, throttling, server errors).
    Transient,
    /// Waits for an operator (`cdf-syncd retry`): validation, permission, too large.
    Permanent,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum JobState {
    /// Waiting for a worker.
    Queued,
    /// Parts are being sent.
    Uploading(Upload),
    /// Every part is durable; `completemultipartupload` may have been sent.
    Completing(Upload),
    /// CDF confirmed completion; post-upload actions remain.
    Done { file_id: i64 },
    Failed {
        kind: FailureKind,
        retry_at_ms: i64,
        last_error: String,
        /// The upload session that was in progress, kept with its part checkpoints
        /// so that the retry resumes it instead of starting over.
        resume: Option<Upload>,
    },
}

impl JobState {
    /// A short name for listings and metrics.
    pub fn name(&self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Uploading(_) => "uploading",
            JobState::Completing(_) => "completing",
            JobState::Done { .. } => "done",
            JobState::Failed { .. } => "failed",
        }
    }
}

/// One durable job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Job {
    pub id: JobId,
    pub key: FileKey,
    /// The file as it was found stable: what this job uploads.
    pub fingerprint: Fingerprint,
    /// The path was synced before (or exists in CDF): upload with `overwrite=true`.
    pub overwrite: bool,
    pub state: JobState,
    /// Failed attempts so far (transient and permanent).
    pub attempts: u32,
    pub created_ms: i64,
}

/// Per path: what was last synced, so an unchanged file is never uploaded twice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncedFile {
    pub fingerprint: Fingerprint,
    pub file_id: i64,
    pub synced_ms: i64,
    /// The content's SHA-256 (with `[sync] hash = "sha256"`): a file whose fingerprint
    /// changed but whose content did not is not uploaded again.
    pub sha256: Option<[u8; 32]>,
}
