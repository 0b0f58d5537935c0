//! Discovery: turns the roots' directory trees into a stream of complete ("stable")
//! files for the job store.
//!
//! The watcher is a hint, not the truth. A full streaming scan of every root at start
//! reconciles what changed while the daemon was down, a periodic safety scan
//! (`scan_interval`) catches what the watcher missed, and anything that says events
//! were lost (inotify queue overflow, our own queue full, the watch limit, a root that
//! vanished and came back) triggers a full rescan with a WARN and a counter. Between
//! scans, `notify` events (`watcher.rs`) say where to look; new directories are scanned
//! at once, because inotify does not report what was written into them before their
//! watch existed.
//!
//! Every candidate passes the stability gate (`gate.rs`): a file is emitted only when
//! it is complete (closed after writing, or unchanged for `stable_for`, or found by a
//! scan with an mtime older than `stable_for`). The driver (`driver.rs`) owns the gate
//! and does every stat on blocking threads, in batches.
//!
//! Output, on the caller's bounded channel, is [`WatchEvent`]s. A file can be emitted
//! again with the same fingerprint (every full scan re-emits every old file, and a
//! close without a change re-emits too): the store drops unchanged files by fingerprint.
//!
//! A consumer that lost events itself (the job store could not record them: a full
//! state disk) asks for a full rescan of every root through [`WatchControl`].
//!
//! `sync --once` ([`ScanMode::Once`]) runs no watcher: it scans every root, waits for
//! every file found to settle, sends `ScanDone` per root and returns.

mod driver;
mod gate;
mod linux;
pub(crate) mod scan;
mod watcher;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::{Notify, mpsc};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::{RootSettings, Settings, WatchMode};
use crate::fingerprint::Fingerprint;

/// How often a missing root is looked for, unless configured otherwise.
pub const DEFAULT_ROOT_RETRY: Duration = Duration::from_secs(10);
/// Watcher events queued for the driver before more are dropped (and force a rescan).
pub const DEFAULT_EVENT_QUEUE: usize = 8192;

/// A file that is complete and can be uploaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StableFile {
    /// The root's id.
    pub root: String,
    /// Relative to the root.
    pub rel: PathBuf,
    /// Taken by the stat that found the file stable.
    pub fingerprint: Fingerprint,
    /// Found by a full scan of the root: such events name each path at most once per
    /// walk, so the consumer can count how many of its known paths a scan saw.
    pub scanned: bool,
}

/// What discovery reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WatchEvent {
    Stable(StableFile),
    /// The path was removed or moved out of the root. `rel` may name a directory, and
    /// then everything under it is gone too. A hint: it can name paths never emitted.
    Gone {
        root: String,
        rel: PathBuf,
    },
    /// A full scan of the root walked every directory, and every file it found has been
    /// emitted (or disappeared) since the previous `ScanDone` of this root. So the files
    /// of the root are the `Stable` events between the two. A scan that could not read
    /// some directory (or the root) sends none; a file that never settles delays it.
    ScanDone {
        root: String,
        files_seen: u64,
    },
}

/// The part of the configuration discovery needs.
#[derive(Debug, Clone)]
pub struct WatchConfig {
    pub roots: Vec<RootSettings>,
    pub stable_for: Duration,
    pub scan_interval: Duration,
    pub mode: WatchMode,
    pub poll_interval: Duration,
    /// How often a missing root is looked for.
    pub root_retry: Duration,
    /// Watcher events queued for the driver; beyond, they are dropped and the root is
    /// rescanned.
    pub event_queue: usize,
}

impl WatchConfig {
    pub fn from_settings(settings: &Settings) -> Self {
        Self {
            roots: settings.roots.clone(),
            stable_for: settings.sync.stable_for,
            scan_interval: settings.sync.scan_interval,
            mode: settings.sync.watch,
            poll_interval: settings.sync.poll_interval,
            root_retry: DEFAULT_ROOT_RETRY,
            event_queue: DEFAULT_EVENT_QUEUE,
        }
    }
}

/// Keep watching, or scan once and return.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScanMode {
    Continuous,
    Once,
}

#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    #[error("the watcher must be started inside a tokio runtime")]
    NoRuntime,
    #[error("root `{root}`: cannot scan {}: {source}", path.display())]
    RootUnavailable {
        root: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("root `{root}`: the scan could not read {unreadable} entries (see the log)")]
    IncompleteScan { root: String, unreadable: u64 },
}

/// Counters for status and metrics; every field only grows.
#[derive(Debug, Default)]
pub struct WatchCounters {
    pub stable: AtomicU64,
    pub gone: AtomicU64,
    pub full_scans: AtomicU64,
    /// Full rescans forced by lost events, the watch limit, a root coming back or a
    /// [`WatchControl::rescan_all`].
    pub rescans: AtomicU64,
    /// notify `Rescan` events (kernel queue overflow).
    pub overflows: AtomicU64,
    /// Events dropped because our queue was full (each forces a rescan).
    pub dropped_events: AtomicU64,
    /// Times the inotify watch limit was hit.
    pub watch_limits: AtomicU64,
    /// Roots switched from native watching to polling.
    pub poll_fallbacks: AtomicU64,
}

/// A copy of [`WatchCounters`] at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WatchStats {
    pub stable: u64,
    pub gone: u64,
    pub full_scans: u64,
    pub rescans: u64,
    pub overflows: u64,
    pub dropped_events: u64,
    pub watch_limits: u64,
    pub poll_fallbacks: u64,
}

impl WatchCounters {
    pub fn snapshot(&self) -> WatchStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        WatchStats {
            stable: get(&self.stable),
            gone: get(&self.gone),
            full_scans: get(&self.full_scans),
            rescans: get(&self.rescans),
            overflows: get(&self.overflows),
            dropped_events: get(&self.dropped_events),
            watch_limits: get(&self.watch_limits),
            poll_fallbacks: get(&self.poll_fallbacks),
        }
    }
}

/// Asks a running [`Watch`] for work from outside; cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct WatchControl {
    inner: Arc<Control>,
}

#[derive(Debug, Default)]
struct Control {
    rescan: AtomicBool,
    /// Wakes the driver; the watcher callbacks use it too.
    wake: Arc<Notify>,
}

impl WatchControl {
    /// Asks for a full rescan of every root (that is not missing): every file is
    /// emitted again and the store drops the unchanged ones. For a consumer that could
    /// not act on events it received (the job store could not record them). Counted
    /// in `rescans`; ignored by [`ScanMode::Once`], which scans everything anyway.
    pub fn rescan_all(&self) {
        if !self.inner.rescan.swap(true, Ordering::AcqRel) {
            self.inner.wake.notify_one();
        }
    }

    /// Takes a pending request.
    pub(crate) fn take_rescan(&self) -> bool {
        self.inner.rescan.swap(false, Ordering::AcqRel)
    }

    pub(crate) fn wake(&self) -> Arc<Notify> {
        self.inner.wake.clone()
    }
}

/// Discovery for a set of roots.
#[derive(Debug)]
pub struct Watch {
    config: WatchConfig,
    counters: Arc<WatchCounters>,
    control: WatchControl,
}

impl Watch {
    pub fn new(config: WatchConfig) -> Self {
        Self {
            config,
            counters: Arc::default(),
            control: WatchControl::default(),
        }
    }

    pub fn counters(&self) -> Arc<WatchCounters> {
        self.counters.clone()
    }

    pub fn control(&self) -> WatchControl {
        self.control.clone()
    }

    /// Runs until `cancel` fires or the receiver of `tx` is dropped (`Continuous`), or
    /// until every root was scanned and every file found settled (`Once`; an error then
    /// names a root that could not be scanned whole, after the others were done).
    pub async fn run(
        self,
        mode: ScanMode,
        tx: mpsc::Sender<WatchEvent>,
        cancel: CancellationToken,
    ) -> Result<(), WatchError> {
        driver::Driver::new(self.config, self.counters, self.control, mode, tx, cancel)
            .run()
            .await
    }
}

/// Starts discovery for `settings` on the current runtime (`once` for `sync --once`).
pub fn spawn(
    settings: Arc<Settings>,
    once: bool,
    tx: mpsc::Sender<WatchEvent>,
    cancel: CancellationToken,
) -> Result<JoinHandle<Result<(), WatchError>>, WatchError> {
    spawn_controlled(settings, once, tx, cancel, None).map(|(task, _)| task)
}

/// [`spawn`], also returning the [`WatchControl`] (rescan requests) and the counters;
/// `counters` carries a previous watcher's on (a reload), so that they keep growing.
pub fn spawn_controlled(
    settings: Arc<Settings>,
    once: bool,
    tx: mpsc::Sender<WatchEvent>,
    cancel: CancellationToken,
    counters: Option<Arc<WatchCounters>>,
) -> Result<(JoinHandle<Result<(), WatchError>>, Spawned), WatchError> {
    let handle = tokio::runtime::Handle::try_current().map_err(|_| WatchError::NoRuntime)?;
    let mode = if once {
        ScanMode::Once
    } else {
        ScanMode::Continuous
    };
    let mut watch = Watch::new(WatchConfig::from_settings(&settings));
    if let Some(counters) = counters {
        watch.counters = counters;
    }
    let spawned = Spawned {
        control: watch.control(),
        counters: watch.counters(),
    };
    Ok((handle.spawn(watch.run(mode, tx, cancel)), spawned))
}

/// The handles of a spawned [`Watch`].
#[derive(Debug, Clone)]
pub struct Spawned {
    pub control: WatchControl,
    pub counters: Arc<WatchCounters>,
}
