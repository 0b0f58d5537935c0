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

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// Why the pipeline is paused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
    /// When the limits last went down or up.
    limits_changed: Instant,
}

/// Probe backoff: the first wait and the cap, per reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProbeBackoff {
    pub initial: Duration,
    pub max: Duration,
}

impl ProbeBackoff {
    /// From `[upload.retry]`: outages probe from `initial_backoff` up to `max_backoff`;
    /// rejected credentials (an operator must act) from `max_backoff` up to ten times it.
    fn for_reason(self, reason: PauseReason) -> (Duration, Duration) {
        match reason {
            PauseReason::CredentialsRejected => (self.max, self.max.saturating_mul(10)),
            _ => (self.initial, self.max),
        }
    }
}

/// A throttling burst lowers the limits at most this often (one burst, one halving).
const DECREASE_EVERY: Duration = Duration::from_secs(2);
/// Without throttling for this long, one more file and part may run.
const INCREASE_EVERY: Duration = Duration::from_secs(10);

/// Shared pipeline health; see the module docs.
#[derive(Debug)]
pub struct Health {
    state: Mutex<State>,
    /// Wakes the scheduler when work may have become due (a job re-queued by hand).
    nudge: tokio::sync::Notify,
    max_files: AtomicUsize,
    max_parts: AtomicUsize,
    backoff: ProbeBackoff,
}

impl Health {
    pub fn new(max_files: usize, max_parts: usize, backoff: ProbeBackoff) -> Self {
        let (max_files, max_parts) = (max_files.max(1), max_parts.max(1));
        Self {
            state: Mutex::new(State {
                pause: None,
                files_limit: max_files,
                parts_limit: max_parts,
                throttled_total: 0,
                // The first throttling lowers the limits at once.
                limits_changed: Instant::now()
                    .checked_sub(DECREASE_EVERY)
                    .unwrap_or_else(Instant::now),
            }),
            nudge: tokio::sync::Notify::new(),
            max_files: AtomicUsize::new(max_files),
            max_parts: AtomicUsize::new(max_parts),
            backoff,
        }
    }

    /// New configured maxima (a reload): the current limits follow at once when they
    /// would exceed them, and grow towards them as usual otherwise.
    pub fn set_max(&self, max_files: usize, max_parts: usize) {
        let (max_files, max_parts) = (max_files.max(1), max_parts.max(1));
        self.max_files.store(max_files, Ordering::Relaxed);
        self.max_parts.store(max_parts, Ordering::Relaxed);
        let mut s = self.lock();
        s.files_limit = s.files_limit.min(max_files);
        s.parts_limit = s.parts_limit.min(max_parts);
        // Without throttling, go straight to the new maxima.
        if s.pause.is_none() {
            s.files_limit = max_files;
            s.parts_limit = max_parts;
        }
    }

    /// Tells the scheduler to look for due jobs now.
    pub fn nudge(&self) {
        self.nudge.notify_one();
    }

    /// Resolves after [`Health::nudge`].
    pub async fn nudged(&self) {
        self.nudge.notified().await;
    }

    /// Stops the pipeline for `reason`. The first probe runs after `wait` when given
    /// (CDF's `Retry-After`), else after the reason's first backoff. A pause already
    /// in force keeps its schedule (workers failing one after another during one
    /// outage do not push the probe out).
    pub fn pause(&self, reason: PauseReason, detail: &str, wait: Option<Duration>) {
        let mut s = self.lock();
        let now = Instant::now();
        if let Some(p) = &mut s.pause {
            if p.reason != reason && reason != PauseReason::Throttled {
                p.reason = reason;
                p.detail = detail.to_owned();
            }
            return;
        }
        let (initial, _) = self.backoff.for_reason(reason);
        let wait = wait.unwrap_or(initial);
        log_pause(reason, detail, wait);
        s.pause = Some(Pause {
            reason,
            detail: detail.to_owned(),
            since: now,
            next_probe: now + wait,
            backoff: initial,
        });
    }

    /// The pause in force, if any.
    pub fn paused(&self) -> Option<PauseReason> {
        self.lock().pause.as_ref().map(|p| p.reason)
    }

    /// The pause's reason when its next probe is due.
    pub fn probe_due(&self) -> Option<PauseReason> {
        let s = self.lock();
        let p = s.pause.as_ref()?;
        (Instant::now() >= p.next_probe).then_some(p.reason)
    }

    /// How long until the next probe (for the scheduler's sleep).
    pub fn until_probe(&self) -> Option<Duration> {
        let s = self.lock();
        s.pause
            .as_ref()
            .map(|p| p.next_probe.saturating_duration_since(Instant::now()))
    }

    /// The probe failed: wait twice as long (capped) before the next one.
    pub fn probe_failed(&self, reason: PauseReason, detail: &str) {
        let mut s = self.lock();
        let (_, cap) = self.backoff.for_reason(reason);
        let Some(p) = &mut s.pause else { return };
        if p.reason != reason {
            let (initial, _) = self.backoff.for_reason(reason);
            p.backoff = initial;
        } else {
            p.backoff = p.backoff.saturating_mul(2).min(cap);
        }
        p.reason = reason;
        p.detail = detail.to_owned();
        p.next_probe = Instant::now() + p.backoff;
        let paused_for = p.since.elapsed();
        match needs_operator(reason, detail) {
            true => tracing::error!(
                reason = %reason, error = detail, ?paused_for, next_probe_in = ?p.backoff,
                "still paused: {}", advice(reason)),
            false => {
                tracing::warn!(reason = %reason, error = detail, ?paused_for, next_probe_in = ?p.backoff,
                "still paused")
            }
        }
    }

    /// The probe succeeded (or a throttling pause ran out): work may start again.
    /// Returns the reason of the pause that ended, if one did.
    pub fn resume(&self) -> Option<PauseReason> {
        let mut s = self.lock();
        let p = s.pause.take()?;
        tracing::info!(reason = %p.reason, paused_for = ?p.since.elapsed(), "resuming the pipeline");
        Some(p.reason)
    }

    /// Adaptive concurrency from the client's running count of throttling replies:
    /// new throttling halves the files and parts in flight (once per burst); a quiet
    /// spell adds one of each back.
    pub fn observe_throttling(&self, throttled_total: u64) {
        let max_files = self.max_files.load(Ordering::Relaxed);
        let max_parts = self.max_parts.load(Ordering::Relaxed);
        let mut s = self.lock();
        let now = Instant::now();
        let since_change = now.saturating_duration_since(s.limits_changed);
        if throttled_total > s.throttled_total {
            s.throttled_total = throttled_total;
            if since_change >= DECREASE_EVERY && (s.files_limit > 1 || s.parts_limit > 1) {
                s.files_limit = (s.files_limit / 2).max(1);
                s.parts_limit = (s.parts_limit / 2).max(1);
                s.limits_changed = now;
                tracing::warn!(
                    files = s.files_limit,
                    parts = s.parts_limit,
                    throttled_total,
                    "CDF is throttling: fewer uploads in flight"
                );
            } else if since_change >= DECREASE_EVERY {
                s.limits_changed = now;
            }
        } else if since_change >= INCREASE_EVERY
            && (s.files_limit < max_files || s.parts_limit < max_parts)
        {
            s.files_limit = (s.files_limit + 1).min(max_files);
            s.parts_limit = (s.parts_limit + 1).min(max_parts);
            s.limits_changed = now;
            if s.files_limit == max_files && s.parts_limit == max_parts {
                tracing::info!(
                    files = s.files_limit,
                    parts = s.parts_limit,
                    "throttling has cleared: back to full concurrency"
                );
            }
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
}

fn advice(reason: PauseReason) -> &'static str {
    match reason {
        PauseReason::CdfUnreachable => "uploads resume by themselves when CDF answers again",
        PauseReason::Throttled => "uploads resume when CDF's Retry-After has passed",
        PauseReason::CredentialsRejected => {
            "fix the client credentials in [cdf.auth] (or the secret they point at) and restart cdf-syncd"
        }
        PauseReason::StateUnwritable => {
            "free space in (or fix the permissions of) the [state] dir; uploads resume by themselves"
        }
    }
}

/// Whether a pause needs an operator (ERROR) or may pass by itself (WARN): rejected
/// credentials, an unwritable state dir, and a CDF whose certificate is not trusted.
fn needs_operator(reason: PauseReason, detail: &str) -> bool {
    match reason {
        PauseReason::CredentialsRejected | PauseReason::StateUnwritable => true,
        PauseReason::CdfUnreachable => {
            detail.contains(crate::transport_error::UNTRUSTED_CERTIFICATE)
        }
        PauseReason::Throttled => false,
    }
}

fn log_pause(reason: PauseReason, detail: &str, wait: Duration) {
    match needs_operator(reason, detail) {
        true => tracing::error!(
            reason = %reason, error = detail, next_probe_in = ?wait,
            "pipeline paused: {}", advice(reason)),
        false => tracing::warn!(reason = %reason, error = detail, next_probe_in = ?wait,
            "pipeline paused: {}", advice(reason)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn health() -> Health {
        Health::new(
            4,
            4,
            ProbeBackoff {
                initial: Duration::from_millis(10),
                max: Duration::from_millis(40),
            },
        )
    }

    #[test]
    fn a_pause_keeps_its_reason_and_backs_off_its_probes() {
        let h = health();
        assert_eq!(h.paused(), None);
        h.pause(PauseReason::CdfUnreachable, "connection refused", None);
        h.pause(PauseReason::Throttled, "429", Some(Duration::from_secs(60)));
        assert_eq!(h.paused(), Some(PauseReason::CdfUnreachable));
        assert!(h.until_probe().unwrap_or_default() <= Duration::from_millis(10));
        for _ in 0..5 {
            h.probe_failed(PauseReason::CdfUnreachable, "still refused");
        }
        let wait = h.until_probe().unwrap_or_default();
        assert!(wait <= Duration::from_millis(40) && wait > Duration::from_millis(20));
        h.resume();
        assert_eq!(h.paused(), None);
        assert_eq!(h.snapshot().paused, None);
    }

    #[test]
    fn rejected_credentials_probe_slowly() {
        let h = health();
        h.pause(PauseReason::CredentialsRejected, "invalid_client", None);
        let snap = h.snapshot();
        assert_eq!(snap.paused, Some(PauseReason::CredentialsRejected));
        assert!(snap.next_probe_in_ms.unwrap_or_default() > 20);
        for _ in 0..10 {
            h.probe_failed(PauseReason::CredentialsRejected, "invalid_client");
        }
        assert!(h.until_probe().unwrap_or_default() > Duration::from_millis(200));
    }

    #[test]
    fn a_reload_moves_the_limits_to_the_new_maxima() {
        let h = health();
        h.set_max(8, 2);
        assert_eq!((h.files_limit(), h.parts_limit()), (8, 2));
        h.observe_throttling(1);
        assert_eq!((h.files_limit(), h.parts_limit()), (4, 1));
        // While paused (throttled), a reload only lowers.
        h.pause(PauseReason::Throttled, "429", None);
        h.set_max(2, 6);
        assert_eq!((h.files_limit(), h.parts_limit()), (2, 1));
    }

    #[test]
    fn throttling_halves_the_limits_once_per_burst() {
        let h = health();
        h.observe_throttling(3);
        assert_eq!((h.files_limit(), h.parts_limit()), (2, 2));
        // More throttling in the same burst does not halve again.
        h.observe_throttling(9);
        assert_eq!((h.files_limit(), h.parts_limit()), (2, 2));
        h.lock().limits_changed = Instant::now() - DECREASE_EVERY;
        h.observe_throttling(10);
        assert_eq!((h.files_limit(), h.parts_limit()), (1, 1));
        // A quiet spell adds one back at a time.
        h.lock().limits_changed = Instant::now() - INCREASE_EVERY;
        h.observe_throttling(10);
        assert_eq!((h.files_limit(), h.parts_limit()), (2, 2));
        assert_eq!(h.snapshot().throttled_total, 10);
    }
}
