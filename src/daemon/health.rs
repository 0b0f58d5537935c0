//! Whether the pipeline may run, and how hard it may push.
//!
//! Two things live here, both shared by the scheduler and every worker:
//! - the pause: when CDF or the network is unreachable, the credentials are refused,
//!   CDF keeps throttling, or the state directory cannot be written, the pipeline stops
//!   starting work as a whole and probes with a capped backoff; jobs keep their place
//!   and do not burn attempts;
//! - adaptive concurrency: every throttling reply (429/503) halves the files and parts
//!   in flight (at least one each); a quiet spell adds one back, up to the configured
//!   maximum.

#![allow(dead_code)] // wired up by the pause/throttle work in progress

use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Serialize;

/// Why the pipeline is paused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PauseReason {
    /// CDF, the token endpoint or the network cannot be reached.
    CdfUnreachable,
    /// CDF kept answering 429/503 beyond the quick retries.
    Throttled,
    /// The identity provider refused the client credentials: an operator problem.
    CredentialsRejected,
    /// The job store cannot be written (a full or read-only state directory).
    StateUnwritable,
}

impl std::fmt::Display for PauseReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PauseReason::CdfUnreachable => "CDF unreachable",
            PauseReason::Throttled => "throttled by CDF",
            PauseReason::CredentialsRejected => "credentials rejected",
            PauseReason::StateUnwritable => "state directory not writable",
        })
    }
}

/// What `status` shows about the pipeline's health.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HealthSnapshot {
    /// `None` while running normally.
    pub paused: Option<PauseReason>,
    /// The error that caused the pause.
    pub detail: Option<String>,
    pub paused_for_ms: Option<u64>,
    pub next_probe_in_ms: Option<u64>,
    /// Files and parts currently allowed in flight (lowered while throttled).
    pub files_limit: usize,
    pub parts_limit: usize,
    /// Throttling replies (429/503) seen since start.
    pub throttled_total: u64,
}

#[derive(Debug)]
struct Pause {
    reason: PauseReason,
    detail: String,
    since: Instant,
    next_probe: Instant,
    backoff: Duration,
}

#[derive(Debug)]
struct State {
    pause: Option<Pause>,
    files_limit: usize,
    parts_limit: usize,
    throttled_total: u64,
}

/// Shared pipeline health; see the module docs.
#[derive(Debug)]
pub struct Health {
    state: Mutex<State>,
    max_files: usize,
    max_parts: usize,
}

impl Health {
    pub fn new(max_files: usize, max_parts: usize) -> Self {
        let (max_files, max_parts) = (max_files.max(1), max_parts.max(1));
        Self {
            state: Mutex::new(State {
                pause: None,
                files_limit: max_files,
                parts_limit: max_parts,
                throttled_total: 0,
            }),
            max_files,
            max_parts,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding this lock leaves plain numbers behind: keep going.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn snapshot(&self) -> HealthSnapshot {
        let s = self.lock();
        let now = Instant::now();
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        HealthSnapshot {
            paused: s.pause.as_ref().map(|p| p.reason),
            detail: s.pause.as_ref().map(|p| p.detail.clone()),
            paused_for_ms: s.pause.as_ref().map(|p| ms(now - p.since)),
            next_probe_in_ms: s
                .pause
                .as_ref()
                .map(|p| ms(p.next_probe.saturating_duration_since(now))),
            files_limit: s.files_limit,
            parts_limit: s.parts_limit,
            throttled_total: s.throttled_total,
        }
    }

    pub fn files_limit(&self) -> usize {
        self.lock().files_limit
    }

    pub fn parts_limit(&self) -> usize {
        self.lock().parts_limit
    }

    pub fn max_files(&self) -> usize {
        self.max_files
    }

    pub fn max_parts(&self) -> usize {
        self.max_parts
    }
}
