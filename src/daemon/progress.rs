//! What the daemon is doing right now, for `cdf-syncd status`: the uploads in flight
//! (parts and bytes sent, rate, ETA), totals since start and for the current UTC day,
//! the current throughput, and the last few errors.
//!
//! Workers report into one shared [`Progress`] (a plain mutex held for a few field
//! updates, never across an await): [`Progress::track`] when a job starts (the entry
//! goes away when the returned guard drops, however the run ends),
//! [`Progress::parts`] once the upload's shape is known, [`Progress::sent`] when CDF's
//! storage took a part (or a whole single-part PUT), [`Progress::synced`] when a file is
//! done, and [`Progress::failed`] where a worker records a failure or a pause. Nothing
//! here is persisted: it describes this process's run. Bytes count when a PUT
//! completes, so a file's bar moves part by part.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::worker::Stop;
use crate::cdf::CdfError;
use crate::store::{Job, JobId};

/// How many recent errors `status` shows.
pub const MAX_ERRORS: usize = 10;
/// The window over which the current throughput is measured.
const THROUGHPUT_WINDOW: Duration = Duration::from_secs(10);
const DAY_MS: i64 = 86_400_000;

/// One upload in flight, as `status` reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadProgress {
    pub job: JobId,
    /// `root:/relative/path`.
    pub path: String,
    /// The file's size in bytes.
    pub size: u64,
    /// Parts of the upload session (1 for a single PUT; 0 while the session opens).
    pub parts_total: u32,
    /// Parts durable in CDF's storage (including those sent before a restart).
    pub parts_done: u32,
    /// Bytes of the file in CDF's storage.
    pub bytes_done: u64,
    /// Bytes per second sent by this run of the job.
    pub bytes_per_sec: u64,
    /// Estimated time to the last byte, when a rate is known.
    pub eta_ms: Option<u64>,
    /// When the worker took the job (ms since the Unix epoch).
    pub started_ms: i64,
}

/// Files and bytes synced.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Synced {
    pub files: u64,
    pub bytes: u64,
}

/// Synced since the daemon started and during the current UTC day.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Totals {
    pub since_start: Synced,
    pub today: Synced,
    /// The start of the current UTC day (ms since the Unix epoch).
    pub today_since_ms: i64,
}

/// One failure a worker recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecentError {
    pub at_ms: i64,
    pub job: JobId,
    pub path: String,
    pub message: String,
    /// CDF's `x-request-id` of the failed call, when it sent one.
    pub request_id: Option<String>,
}

/// Everything [`Progress`] knows, at one moment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Activity {
    pub started_ms: i64,
    pub uptime_ms: u64,
    /// Oldest first.
    pub uploads: Vec<UploadProgress>,
    pub totals: Totals,
    /// Bytes per second over the last ten seconds.
    pub throughput_bytes_per_sec: u64,
    /// Oldest first, at most [`MAX_ERRORS`].
    pub errors: Vec<RecentError>,
}

#[derive(Debug)]
struct Transfer {
    path: String,
    size: u64,
    parts_total: u32,
    parts_done: u32,
    bytes_done: u64,
    /// Bytes sent by this run (the rate's numerator).
    bytes_sent: u64,
    started: Instant,
    started_ms: i64,
}

#[derive(Debug, Default)]
struct State {
    in_flight: BTreeMap<JobId, Transfer>,
    since_start: Synced,
    today: Synced,
    day: i64,
    /// Bytes per completed PUT, for the throughput.
    recent: VecDeque<(Instant, u64)>,
    errors: VecDeque<RecentError>,
}

/// The registry; see the module docs.
#[derive(Debug)]
pub struct Progress {
    started: Instant,
    started_ms: i64,
    state: Mutex<State>,
}

impl Default for Progress {
    fn default() -> Self {
        Self::new()
    }
}

/// Removes its job from the in-flight uploads when dropped.
pub struct Tracked<'a> {
    progress: &'a Progress,
    job: JobId,
}

impl Drop for Tracked<'_> {
    fn drop(&mut self) {
        self.progress.lock().in_flight.remove(&self.job);
    }
}

impl Progress {
    pub fn new() -> Self {
        let now = now_ms();
        Self {
            started: Instant::now(),
            started_ms: now,
            state: Mutex::new(State {
                day: now.div_euclid(DAY_MS),
                ..State::default()
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Plain numbers: a panic while holding the lock leaves nothing half-done.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A worker took `job`; it is in flight until the guard drops.
    pub fn track(&self, job: &Job) -> Tracked<'_> {
        let transfer = Transfer {
            path: job.key.to_string(),
            size: job.fingerprint.size,
            parts_total: 0,
            parts_done: 0,
            bytes_done: 0,
            bytes_sent: 0,
            started: Instant::now(),
            started_ms: now_ms(),
        };
        self.lock().in_flight.insert(job.id, transfer);
        Tracked {
            progress: self,
            job: job.id,
        }
    }

    /// The upload's shape: `total` parts, of which `done` (holding `bytes_done` bytes)
    /// are already in CDF's storage.
    pub fn parts(&self, job: JobId, total: usize, done: usize, bytes_done: u64) {
        if let Some(t) = self.lock().in_flight.get_mut(&job) {
            t.parts_total = u32::try_from(total).unwrap_or(u32::MAX);
            t.parts_done = u32::try_from(done).unwrap_or(u32::MAX);
            t.bytes_done = bytes_done;
        }
    }

    /// CDF's storage took one part (or a whole single-part file) of `bytes`.
    pub fn sent(&self, job: JobId, bytes: u64) {
        let now = Instant::now();
        let mut s = self.lock();
        if let Some(t) = s.in_flight.get_mut(&job) {
            t.parts_done = t.parts_done.saturating_add(1).min(t.parts_total.max(1));
            t.bytes_done = t.bytes_done.saturating_add(bytes).min(t.size);
            t.bytes_sent = t.bytes_sent.saturating_add(bytes);
        }
        s.recent.push_back((now, bytes));
        prune(&mut s.recent, now);
    }

    /// A file of `bytes` is synced.
    pub fn synced(&self, bytes: u64) {
        let mut guard = self.lock();
        let s = &mut *guard;
        roll_day(s, now_ms());
        for total in [&mut s.since_start, &mut s.today] {
            total.files += 1;
            total.bytes = total.bytes.saturating_add(bytes);
        }
    }

    /// A worker stopped short on `job` (a failure, or a pause of the pipeline).
    pub(super) fn failed(&self, job: &Job, stop: &Stop) {
        let error = RecentError {
            at_ms: now_ms(),
            job: job.id,
            path: job.key.to_string(),
            message: stop.to_string(),
            request_id: request_id(stop),
        };
        let mut s = self.lock();
        if s.errors.len() >= MAX_ERRORS {
            s.errors.pop_front();
        }
        s.errors.push_back(error);
    }

    pub fn snapshot(&self) -> Activity {
        let (now, wall) = (Instant::now(), now_ms());
        let mut s = self.lock();
        roll_day(&mut s, wall);
        prune(&mut s.recent, now);
        let uptime = now.saturating_duration_since(self.started);
        let window = uptime.min(THROUGHPUT_WINDOW).max(Duration::from_secs(1));
        let recent: u64 = s.recent.iter().map(|(_, b)| b).sum();
        Activity {
            started_ms: self.started_ms,
            uptime_ms: millis(uptime),
            uploads: s
                .in_flight
                .iter()
                .map(|(id, t)| upload(*id, t, now))
                .collect(),
            totals: Totals {
                since_start: s.since_start,
                today: s.today,
                today_since_ms: s.day * DAY_MS,
            },
            throughput_bytes_per_sec: per_sec(recent, window),
            errors: s.errors.iter().cloned().collect(),
        }
    }
}

fn upload(job: JobId, t: &Transfer, now: Instant) -> UploadProgress {
    let rate = per_sec(t.bytes_sent, now.saturating_duration_since(t.started));
    let left = t.size.saturating_sub(t.bytes_done);
    UploadProgress {
        job,
        path: t.path.clone(),
        size: t.size,
        parts_total: t.parts_total,
        parts_done: t.parts_done,
        bytes_done: t.bytes_done,
        bytes_per_sec: rate,
        eta_ms: (rate > 0).then(|| left.saturating_mul(1000) / rate),
        started_ms: t.started_ms,
    }
}

/// A new UTC day starts the day's totals afresh.
fn roll_day(s: &mut State, now_ms: i64) {
    let day = now_ms.div_euclid(DAY_MS);
    if day != s.day {
        s.day = day;
        s.today = Synced::default();
    }
}

fn prune(recent: &mut VecDeque<(Instant, u64)>, now: Instant) {
    while recent
        .front()
        .is_some_and(|(at, _)| now.saturating_duration_since(*at) > THROUGHPUT_WINDOW)
    {
        recent.pop_front();
    }
}

fn per_sec(bytes: u64, over: Duration) -> u64 {
    let ms = millis(over);
    if ms == 0 {
        return 0;
    }
    u64::try_from(u128::from(bytes) * 1000 / u128::from(ms)).unwrap_or(u64::MAX)
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// CDF's request id of the call behind a stop, if it sent one.
fn request_id(stop: &Stop) -> Option<String> {
    let cdf = match stop {
        Stop::Cdf(e) | Stop::SessionLost(e) => e,
        Stop::Finish(crate::upload::finish::FinishError::Cdf(e)) => e,
        _ => return None,
    };
    match cdf {
        CdfError::Api { error, .. } => error.request_id.clone(),
        CdfError::BadReply { request_id, .. } => request_id.clone(),
        _ => None,
    }
}

fn now_ms() -> i64 {
    super::worker::now_ms()
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::fingerprint::Fingerprint;
    use crate::store::{FileKey, JobState};

    fn job(id: u64, size: u64) -> Job {
        Job {
            id: JobId(id),
            key: FileKey::new("r", Path::new(&format!("f{id}.bin"))),
            fingerprint: Fingerprint {
                size,
                mtime_ns: 0,
                inode: 0,
                device: 0,
            },
            overwrite: false,
            state: JobState::Queued,
            attempts: 0,
            created_ms: 0,
        }
    }

    #[test]
    fn an_upload_shows_its_parts_and_bytes_until_its_guard_drops() {
        let p = Progress::new();
        let big = job(1, 1000);
        {
            let _tracked = p.track(&big);
            p.parts(big.id, 4, 1, 250);
            p.sent(big.id, 250);
            let a = p.snapshot();
            let u = &a.uploads[0];
            assert_eq!((u.path.as_str(), u.size), ("r:/f1.bin", 1000));
            assert_eq!((u.parts_done, u.parts_total, u.bytes_done), (2, 4, 500));
            assert!(a.throughput_bytes_per_sec > 0, "{a:?}");
        }
        assert!(p.snapshot().uploads.is_empty());
        p.synced(1000);
        p.synced(24);
        let t = p.snapshot().totals;
        assert_eq!(
            t.since_start,
            Synced {
                files: 2,
                bytes: 1024
            }
        );
        assert_eq!(t.today, t.since_start);
        assert_eq!(t.today_since_ms % DAY_MS, 0);
    }

    #[test]
    fn errors_keep_the_last_ten() {
        let p = Progress::new();
        for i in 0..15 {
            p.failed(&job(i, 1), &Stop::Permanent(format!("bad {i}")));
        }
        let errors = p.snapshot().errors;
        assert_eq!(errors.len(), MAX_ERRORS);
        assert_eq!(errors[0].message, "bad 5");
        assert_eq!(errors[9].path, "r:/f14.bin");
        assert_eq!(errors[9].request_id, None);
    }

    #[test]
    fn rates_and_etas_are_plain_arithmetic() {
        assert_eq!(per_sec(5000, Duration::from_secs(2)), 2500);
        assert_eq!(per_sec(5000, Duration::ZERO), 0);
        let t = Transfer {
            path: "r:/x".into(),
            size: 10_000,
            parts_total: 2,
            parts_done: 1,
            bytes_done: 5000,
            bytes_sent: 5000,
            started: Instant::now() - Duration::from_secs(5),
            started_ms: 0,
        };
        let u = upload(JobId(1), &t, Instant::now());
        assert!((900..=1000).contains(&u.bytes_per_sec), "{u:?}");
        assert!(
            u.eta_ms.is_some_and(|ms| (5000..=5600).contains(&ms)),
            "{u:?}"
        );
    }
}
