//! The plain data the job store's API speaks besides the job itself: open options,
//! what `enqueue` decided, state kinds for listings, and counts for status and metrics.

use std::fmt;

use super::job::{JobId, JobState};

/// How the store uses memory and how often its engine writes by itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreOptions {
    /// The engine's page cache (sled's own default is 1 GiB: far too much for a gateway).
    /// sled counts it in on-disk bytes; in memory the cached nodes take about three
    /// times that. 8 MiB holds the records of ~100,000 files; over 1,000,000 synced
    /// files a restart peaked at 121 MiB RSS with it, 170 MiB with 16 MiB (a smaller
    /// cache pages out more, and costs more below 100,000: see BENCHMARKS.md).
    pub cache_bytes: u64,
    /// The engine's background flush interval; `None` flushes only when asked.
    /// Anything not flushed is lost on a crash, so callers still flush before effects.
    pub flush_every_ms: Option<u64>,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            cache_bytes: 8 << 20,
            flush_every_ms: Some(500),
        }
    }
}

/// What `enqueue` did with a stable file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enqueued {
    /// A new job; it uploads with `overwrite` when the path was synced before.
    New(JobId),
    /// A queued or failed job took the new fingerprint and is queued again.
    Updated(JobId),
    /// A queued or failed job already has this fingerprint; it was left as it is (a
    /// failed job keeps waiting for its retry time or for an operator).
    Pending(JobId),
    /// The path's job is uploading, completing or done. Its session goes on; a new
    /// fingerprint is kept in the job, so that a failure retries the new version and
    /// `finish` queues it again instead of compacting (nothing waits for a rescan).
    InFlight(JobId),
    /// The path was synced with exactly this fingerprint: nothing to do.
    Unchanged,
}

/// A job state without its data, for filters, listings and counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum StateKind {
    Queued,
    Uploading,
    Completing,
    Done,
    Failed,
}

impl StateKind {
    pub const ALL: [StateKind; 5] = [
        StateKind::Queued,
        StateKind::Uploading,
        StateKind::Completing,
        StateKind::Done,
        StateKind::Failed,
    ];

    pub fn of(state: &JobState) -> Self {
        match state {
            JobState::Queued => StateKind::Queued,
            JobState::Uploading(_) => StateKind::Uploading,
            JobState::Completing(_) => StateKind::Completing,
            JobState::Done { .. } => StateKind::Done,
            JobState::Failed { .. } => StateKind::Failed,
        }
    }

    /// The same short name as [`JobState::name`].
    pub fn name(self) -> &'static str {
        match self {
            StateKind::Queued => "queued",
            StateKind::Uploading => "uploading",
            StateKind::Completing => "completing",
            StateKind::Done => "done",
            StateKind::Failed => "failed",
        }
    }

    /// Parses a name as printed by [`StateKind::name`] (for the CLI's filters).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.name() == name)
    }
}

impl fmt::Display for StateKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How many jobs are in each state, and how many paths are synced and records set aside.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Counts {
    pub queued: u64,
    pub uploading: u64,
    pub completing: u64,
    pub done: u64,
    pub failed: u64,
    /// Paths with a [`super::SyncedFile`] record.
    pub synced: u64,
    /// Undecodable records moved to the quarantine tree.
    pub quarantined: u64,
}

impl Counts {
    /// The counter for one state.
    pub fn get(&self, kind: StateKind) -> u64 {
        match kind {
            StateKind::Queued => self.queued,
            StateKind::Uploading => self.uploading,
            StateKind::Completing => self.completing,
            StateKind::Done => self.done,
            StateKind::Failed => self.failed,
        }
    }

    pub(crate) fn slot(&mut self, kind: StateKind) -> &mut u64 {
        match kind {
            StateKind::Queued => &mut self.queued,
            StateKind::Uploading => &mut self.uploading,
            StateKind::Completing => &mut self.completing,
            StateKind::Done => &mut self.done,
            StateKind::Failed => &mut self.failed,
        }
    }

    /// Jobs in any state.
    pub fn jobs(&self) -> u64 {
        StateKind::ALL.into_iter().map(|k| self.get(k)).sum()
    }
}

/// How well group commit is batching: `requests` calls to `flush()` were served by
/// `flushes` engine flushes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FlushStats {
    pub requests: u64,
    pub flushes: u64,
}
