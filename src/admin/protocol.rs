//! The admin protocol: one JSON request per line in, one JSON reply per line out.
//!
//! A request is an [`Envelope`]: the protocol version the client speaks (`v`, 1 when
//! absent) and a [`Request`] tagged by `cmd`:
//!
//! ```text
//! {"v":1,"cmd":"status"}
//! {"v":1,"cmd":"jobs","state":"failed","limit":100}
//! {"v":1,"cmd":"retry","job":42}
//! {"v":1,"cmd":"retry_all_failed"}
//! {"v":1,"cmd":"forget","job":42}
//! ```
//!
//! The `status` reply grew (`roots`, `oldest_queued`, `daemon`) without a version bump:
//! each new field has a default, so a client reading an older daemon's reply sees
//! empty/`null` values. `docs/STATUS.md` documents `cdf-syncd status --json`.
//!
//! Every reply is a [`Reply`] tagged by `reply`; a refused or failed request gets
//! `{"reply":"error","kind":"no_such_job","message":"no job 42"}`. Adding a command or a
//! field is backwards compatible; changing one bumps [`PROTOCOL_VERSION`].

use serde::{Deserialize, Serialize};

use crate::store::{FailureKind, Job, JobId, JobState, StateKind};

/// The protocol version this build speaks; a request asking for a newer one is refused.
pub const PROTOCOL_VERSION: u32 = 1;

/// The longest request line the daemon reads (a request is a few dozen bytes).
pub const MAX_REQUEST_LINE: usize = 64 * 1024;

/// The most jobs one `jobs` request returns, however large its `limit`.
pub const MAX_JOBS: usize = 10_000;

/// One request line: the version the client speaks and the command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    #[serde(default = "version_one")]
    pub v: u32,
    #[serde(flatten)]
    pub request: Request,
}

impl Envelope {
    /// A request in this build's protocol version.
    pub fn new(request: Request) -> Self {
        Self {
            v: PROTOCOL_VERSION,
            request,
        }
    }
}

fn version_one() -> u32 {
    1
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case")]
pub enum Request {
    /// Job counts per state and the pipeline's health.
    Status,
    /// Jobs in id order (oldest first), optionally of one group of states.
    Jobs {
        #[serde(default)]
        state: Option<JobFilter>,
        #[serde(default = "default_limit")]
        limit: usize,
    },
    /// Re-queues one failed job, its attempts reset.
    Retry { job: JobId },
    /// Re-queues every failed job.
    RetryAllFailed,
    /// Drops one job (the path's synced record stays).
    Forget { job: JobId },
}

fn default_limit() -> usize {
    1000
}

/// The groups of states `jobs --state` filters on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum JobFilter {
    /// Queued: waiting for a worker (new, changed or re-queued files).
    Pending,
    /// Uploading, completing, or done with post-upload actions left: a worker has it
    /// (or resumes it at the next start).
    Active,
    /// Failed: a transient failure retries by itself at its next retry time; a
    /// permanent one waits for `cdf-syncd retry`.
    Failed,
}

impl JobFilter {
    /// The store states this group covers.
    pub fn kinds(self) -> &'static [StateKind] {
        match self {
            JobFilter::Pending => &[StateKind::Queued],
            JobFilter::Active => &[StateKind::Uploading, StateKind::Completing, StateKind::Done],
            JobFilter::Failed => &[StateKind::Failed],
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "reply", rename_all = "snake_case")]
pub enum Reply {
    Status {
        counts: JobCounts,
        /// The daemon's pipeline health; `null` when the store was read directly (no
        /// daemon running).
        health: Option<Box<crate::daemon::health::HealthSnapshot>>,
        /// Jobs per root (roots without jobs are left out).
        #[serde(default)]
        roots: Vec<RootCounts>,
        /// `roots` counts only the first [`MAX_ROOT_SCAN`] jobs.
        #[serde(default)]
        roots_truncated: bool,
        /// The queued job waiting longest: a stalled pipeline shows here.
        #[serde(default)]
        oldest_queued: Option<Box<QueuedJob>>,
        /// What the running daemon is doing; `null` when the store was read directly.
        #[serde(default)]
        daemon: Option<Box<DaemonStatus>>,
    },
    Jobs {
        jobs: Vec<JobView>,
        /// Jobs matching the filter, of which `jobs` holds the first `limit`.
        total: u64,
    },
    /// One job re-queued; the job as it now is.
    Retried {
        job: JobView,
    },
    RetriedAll {
        count: usize,
    },
    /// The job as it was before it was dropped.
    Forgot {
        job: JobView,
    },
    Error {
        kind: ErrorKind,
        message: String,
    },
}

impl Reply {
    pub fn error(kind: ErrorKind, message: impl Into<String>) -> Self {
        Reply::Error {
            kind,
            message: message.into(),
        }
    }
}

/// Why a request was refused or failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// Not JSON, or not a request this daemon knows.
    BadRequest,
    /// The request asks for a newer protocol version.
    UnsupportedVersion,
    /// The request line is longer than [`MAX_REQUEST_LINE`]; the connection is closed.
    LineTooLong,
    /// Too many clients at once; try again.
    Busy,
    NoSuchJob,
    /// The job is not in a state the command applies to (e.g. retrying a queued job).
    WrongState,
    /// The daemon may be working on the job: forgetting it now is refused.
    InFlight,
    /// The job store failed.
    Store,
    /// The daemon failed to answer (a bug); the request may not have run.
    Internal,
}

/// The most jobs one `status` walks for its per-root counts.
pub const MAX_ROOT_SCAN: usize = 20_000;

/// One root's jobs, as `status` reports them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RootCounts {
    pub root: String,
    /// Paths synced (files tracked with nothing left to do).
    #[serde(default)]
    pub synced: u64,
    /// Jobs of any state: files found and not yet synced (or failed).
    pub jobs: u64,
    pub queued: u64,
    /// Uploading, completing, or done with post-upload actions left.
    pub in_flight: u64,
    pub failed: u64,
}

/// The oldest queued job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueuedJob {
    pub job: JobId,
    /// `root:/relative/path`.
    pub path: String,
    pub created_ms: i64,
    pub age_ms: u64,
}

/// The running daemon: identity, CDF connection and activity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DaemonStatus {
    /// The daemon's `cdf-syncd` version.
    pub version: String,
    pub pid: u32,
    pub connection: Connection,
    #[serde(flatten)]
    pub activity: crate::daemon::progress::Activity,
}

/// The state of the connection to CDF, from the pipeline's pause.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Connection {
    pub state: ConnectionState,
    /// Since when the state holds (ms since the Unix epoch); `null` while `ok`.
    pub since_ms: Option<i64>,
    /// The error behind the state.
    pub detail: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConnectionState {
    Ok,
    /// CDF kept answering 429/503: uploads wait for its `Retry-After`.
    Throttled,
    /// CDF, the token endpoint or the network cannot be reached.
    Unreachable,
    /// The identity provider refused the client credentials.
    CredentialsRejected,
}

/// Jobs per state and paths synced, as `status` reports them (the store's own counts;
/// their field names are part of the protocol).
pub type JobCounts = crate::store::Counts;

/// One job as listings show it; also the `--json` output of `cdf-syncd jobs`, so the
/// field names are stable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobView {
    pub id: JobId,
    /// The root's id.
    pub root: String,
    /// The path relative to the root (lossy UTF-8).
    pub path: String,
    #[serde(with = "StateName")]
    pub state: StateKind,
    /// Set while failed.
    pub failure: Option<Failure>,
    /// Failed attempts since the job was queued or last retried by an operator.
    pub attempts: u32,
    /// When a transient failure is retried (ms since the Unix epoch).
    pub next_retry_ms: Option<i64>,
    pub last_error: Option<String>,
    /// The file's size when it was queued.
    pub size: u64,
    pub created_ms: i64,
}

impl JobView {
    /// `root:/relative/path`, as logs print it.
    pub fn display_path(&self) -> String {
        format!("{}:/{}", self.root, self.path)
    }
}

impl From<&Job> for JobView {
    fn from(job: &Job) -> Self {
        let (failure, next_retry_ms, last_error) = match &job.state {
            JobState::Failed {
                kind,
                retry_at_ms,
                last_error,
                ..
            } => (
                Some(Failure::from(*kind)),
                (*kind == FailureKind::Transient).then_some(*retry_at_ms),
                Some(last_error.clone()),
            ),
            _ => (None, None, None),
        };
        Self {
            id: job.id,
            root: job.key.root.clone(),
            path: job.key.rel_path().to_string_lossy().into_owned(),
            state: StateKind::of(&job.state),
            failure,
            attempts: job.attempts,
            next_retry_ms,
            last_error,
            size: job.fingerprint.size,
            created_ms: job.created_ms,
        }
    }
}

/// [`FailureKind`] on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Failure {
    /// Retried by itself at `next_retry_ms`.
    Transient,
    /// Waits for `cdf-syncd retry`.
    Permanent,
}

impl From<FailureKind> for Failure {
    fn from(kind: FailureKind) -> Self {
        match kind {
            FailureKind::Transient => Failure::Transient,
            FailureKind::Permanent => Failure::Permanent,
        }
    }
}

/// [`StateKind`] on the wire (`queued`, `uploading`, ...: the names logs use).
#[derive(Serialize, Deserialize)]
#[serde(remote = "StateKind", rename_all = "snake_case")]
enum StateName {
    Queued,
    Uploading,
    Completing,
    Done,
    Failed,
}
