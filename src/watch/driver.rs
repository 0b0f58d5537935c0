//! The driver: one task that owns the gate and decides what to scan, stat and emit.
//!
//! Inputs arrive on three channels: hints from the watcher callbacks (bounded, filled
//! with `try_send`), files and end-of-walk reports from scans (bounded, filled with
//! `blocking_send`: backpressure on the walk), and a wake-up for the flags the callbacks
//! raise (lost events, watch limit, root gone). The driver never blocks: stats go to
//! `spawn_blocking` in batches and walks run on blocking threads. Per-root work
//! (watches, flags, missing roots, the queue of walks) is in `roots.rs`.
//!
//! A directory that appears (created, or renamed into or within a root) is scanned at
//! once and again [`dir_recheck`] later: notify adds the watches for it only after the
//! batch of events that announced it, and a rename first drops the watches of the old
//! path, so whatever is written below it in between is reported nowhere (seen in the
//! churn test: an append right after a directory rename, lost).

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::{Notify, mpsc};
use tokio::time::{Instant, MissedTickBehavior, interval_at, sleep_until};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::gate::{Gate, Key, Outcome};
use super::scan::{self, ScanKind, ScanMsg, ScanReport};
use super::watcher::{HintKind, HintMsg, RootWatch, Signals};
use super::{
    ScanMode, StableFile, WatchConfig, WatchControl, WatchCounters, WatchError, WatchEvent,
};
use crate::config::RootSettings;

#[path = "roots.rs"]
mod roots;

const HINT_BATCH: usize = 256;
/// Batches of found files (`scan::FOUND_BATCH` each) queued from walks.
const SCAN_QUEUE: usize = 8;
const STAT_BATCH: usize = 256;
const MAX_PENDING_DIRS: usize = 1024;
/// How long shutdown waits for walks to notice it.
const STOP_GRACE: Duration = Duration::from_secs(2);

/// Cancelled, or the consumer dropped its receiver: stop quietly.
pub(super) struct Stop;
pub(super) type Step = Result<(), Stop>;

/// What one root is doing.
#[derive(Debug)]
pub(super) struct RootState {
    settings: Arc<RootSettings>,
    signals: Arc<Signals>,
    watch: Option<RootWatch>,
    /// The root directory is not there; looked for every `root_retry`.
    missing: bool,
    scanning: bool,
    pending_full: bool,
    pending_dirs: BTreeSet<PathBuf>,
    /// A full walk ended with this many files; `ScanDone` waits for them to settle.
    done_pending: Option<u64>,
    /// `Once`: this root needs nothing more.
    finished: bool,
}

/// What woke the loop.
enum Wake {
    Cancelled,
    Scan(ScanMsg),
    Hints,
    Signals,
    StatDue,
    Periodic,
    Retry,
}

pub(super) struct Driver {
    config: WatchConfig,
    mode: ScanMode,
    roots: Vec<RootState>,
    gate: Gate,
    out: mpsc::Sender<WatchEvent>,
    hints_tx: mpsc::Sender<HintMsg>,
    hints_rx: mpsc::Receiver<HintMsg>,
    scan_tx: mpsc::Sender<ScanMsg>,
    scan_rx: mpsc::Receiver<ScanMsg>,
    wake: Arc<Notify>,
    control: WatchControl,
    counters: Arc<WatchCounters>,
    cancel: CancellationToken,
    /// Stops walks when the driver ends, whatever the reason.
    walks: CancellationToken,
    tracker: TaskTracker,
    failures: Vec<WatchError>,
    /// New directories to scan once more, when.
    rechecks: BTreeSet<(Instant, Key)>,
}

impl Driver {
    pub fn new(
        config: WatchConfig,
        counters: Arc<WatchCounters>,
        control: WatchControl,
        mode: ScanMode,
        out: mpsc::Sender<WatchEvent>,
        cancel: CancellationToken,
    ) -> Self {
        let (hints_tx, hints_rx) = mpsc::channel(config.event_queue.max(1));
        let (scan_tx, scan_rx) = mpsc::channel(SCAN_QUEUE);
        let roots = config.roots.iter().map(RootState::new).collect();
        Self {
            gate: Gate::new(config.stable_for),
            config,
            mode,
            roots,
            out,
            hints_tx,
            hints_rx,
            scan_tx,
            scan_rx,
            wake: control.wake(),
            control,
            counters,
            walks: cancel.child_token(),
            cancel,
            tracker: TaskTracker::new(),
            failures: Vec::new(),
            rechecks: BTreeSet::new(),
        }
    }

    pub async fn run(mut self) -> Result<(), WatchError> {
        // `Stop`: cancelled or the consumer is gone; nothing left to report to.
        let _ = self.drive().await;
        self.walks.cancel();
        self.scan_rx.close();
        self.tracker.close();
        for state in &mut self.roots {
            state.watch = None;
        }
        let _ = tokio::time::timeout(STOP_GRACE, self.tracker.wait()).await;
        match self.failures.into_iter().next() {
            Some(error) if self.mode == ScanMode::Once => Err(error),
            _ => Ok(()),
        }
    }

    async fn drive(&mut self) -> Step {
        let continuous = self.mode == ScanMode::Continuous;
        if continuous {
            for root in 0..self.roots.len() {
                self.establish(root).await;
            }
        }
        for state in &mut self.roots {
            state.pending_full = true;
        }
        let start = Instant::now();
        let mut periodic =
            interval_at(start + self.config.scan_interval, self.config.scan_interval);
        periodic.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut retry = interval_at(start + self.config.root_retry, self.config.root_retry);
        retry.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut hints = Vec::with_capacity(HINT_BATCH);
        loop {
            self.start_scans();
            if !continuous && self.once_finished() {
                return Ok(());
            }
            let due = match (self.gate.next_due(), self.rechecks.first()) {
                (Some(a), Some((b, _))) => Some(a.min(*b)),
                (a, b) => a.or(b.map(|(at, _)| *at)),
            };
            let wake = tokio::select! {
                () = self.cancel.cancelled() => Wake::Cancelled,
                Some(msg) = self.scan_rx.recv() => Wake::Scan(msg),
                n = self.hints_rx.recv_many(&mut hints, HINT_BATCH), if continuous => {
                    if n == 0 { Wake::Cancelled } else { Wake::Hints }
                }
                () = self.wake.notified() => Wake::Signals,
                () = sleep_until(due.unwrap_or(start)), if due.is_some() => Wake::StatDue,
                _ = periodic.tick(), if continuous => Wake::Periodic,
                _ = retry.tick(), if continuous => Wake::Retry,
            };
            match wake {
                Wake::Cancelled => return Ok(()),
                Wake::Scan(msg) => self.on_scan(msg).await?,
                Wake::Hints => self.on_hints(&mut hints).await?,
                Wake::Signals => self.on_signals().await,
                Wake::StatDue => self.stat_due().await?,
                Wake::Periodic => self.request_all_full(),
                Wake::Retry => self.retry_missing().await,
            }
        }
    }

    fn once_finished(&self) -> bool {
        self.gate.is_empty()
            && self
                .roots
                .iter()
                .all(|s| s.finished && !s.scanning && !s.pending_full && s.pending_dirs.is_empty())
    }

    async fn on_hints(&mut self, batch: &mut Vec<HintMsg>) -> Step {
        let now = Instant::now();
        for msg in batch.drain(..) {
            // A missing root settles nothing, but removals queued before it went are real.
            let Some(state) = self.roots.get(msg.root) else {
                continue;
            };
            if state.missing && msg.kind != HintKind::Removed {
                continue;
            }
            let key = Key {
                root: msg.root,
                rel: msg.rel,
            };
            match msg.kind {
                HintKind::Gate(hint) => self.gate.hint(key, hint, now),
                HintKind::NewDir => self.new_dir(key, now),
                HintKind::Removed => {
                    self.gate.remove(&key);
                    self.apply(key.clone(), Outcome::Gone).await?;
                    self.check_done(key.root).await?;
                }
            }
        }
        Ok(())
    }

    /// Scans a directory that just appeared, now and once more later.
    fn new_dir(&mut self, key: Key, now: Instant) {
        let later = now + dir_recheck(self.config.stable_for);
        self.rechecks.insert((later, key.clone()));
        self.request_dir(key.root, key.rel);
    }

    /// Queues the second scans of new directories that are due.
    fn recheck_due(&mut self, now: Instant) {
        while let Some((at, _)) = self.rechecks.first() {
            if *at > now {
                break;
            }
            if let Some((_, key)) = self.rechecks.pop_first() {
                self.request_dir(key.root, key.rel);
            }
        }
    }

    /// Stats the paths that are due, off the async threads, and applies the results.
    async fn stat_due(&mut self) -> Step {
        self.recheck_due(Instant::now());
        let keys = self.gate.take_due(Instant::now(), STAT_BATCH);
        let jobs: Vec<(Key, PathBuf, bool)> = keys
            .iter()
            .filter_map(|k| {
                let root = &self.roots.get(k.root)?.settings;
                Some((k.clone(), root.path.join(&k.rel), root.follow_symlinks))
            })
            .collect();
        let stats = tokio::task::spawn_blocking(move || {
            jobs.into_iter()
                .map(|(key, path, follow)| (key, scan::stat(&path, follow)))
                .collect::<Vec<_>>()
        })
        .await
        .unwrap_or_else(|e| {
            tracing::error!(error = %e, "stat batch failed; dropping its paths until they change");
            let other = super::gate::Stat::Other;
            keys.into_iter().map(|k| (k, other)).collect()
        });
        for (key, stat) in stats {
            if let Some(outcome) = self.gate.observe(&key, stat, Instant::now()) {
                self.apply(key.clone(), outcome).await?;
            }
            self.check_done(key.root).await?;
        }
        Ok(())
    }

    async fn on_scan(&mut self, msg: ScanMsg) -> Step {
        match msg {
            ScanMsg::Found { root, full, files } => {
                let now = Instant::now();
                for found in files {
                    let key = Key {
                        root,
                        rel: found.rel,
                    };
                    let (fingerprint, age) = (found.fingerprint, found.age);
                    if let Some(outcome) = self.gate.found(key.clone(), fingerprint, age, full, now)
                    {
                        self.apply(key, outcome).await?;
                    }
                }
                Ok(())
            }
            ScanMsg::Finished { root, kind, report } => {
                if let Some(state) = self.roots.get_mut(root) {
                    state.scanning = false;
                }
                if kind == ScanKind::Full && !report.stopped {
                    self.full_scan_finished(root, report).await?;
                }
                Ok(())
            }
        }
    }

    async fn full_scan_finished(&mut self, root: usize, report: ScanReport) -> Step {
        let Some(state) = self.roots.get_mut(root) else {
            return Ok(());
        };
        let id = state.settings.id.clone();
        if let Some(source) = report.root_error {
            self.root_unavailable(root, source);
            return Ok(());
        }
        if report.unreadable > 0 {
            let unreadable = report.unreadable;
            if self.mode == ScanMode::Once {
                tracing::error!(root = %id, unreadable, "the scan could not read the whole root");
                state.finished = true;
                self.failures.push(WatchError::IncompleteScan {
                    root: id,
                    unreadable,
                });
            } else {
                tracing::warn!(root = %id, unreadable, "the scan could not read the whole root; no ScanDone until one does");
            }
            return Ok(());
        }
        self.counters.full_scans.fetch_add(1, Ordering::Relaxed);
        tracing::info!(root = %id, files_seen = report.files_seen, settling = self.gate.scan_waiting(root), "full scan done");
        state.done_pending = Some(report.files_seen);
        self.check_done(root).await
    }

    /// Sends the pending `ScanDone` of `root` once the files its scan found settled.
    async fn check_done(&mut self, root: usize) -> Step {
        let Some(state) = self.roots.get_mut(root) else {
            return Ok(());
        };
        let Some(files_seen) = state.done_pending else {
            return Ok(());
        };
        if self.gate.scan_waiting(root) > 0 {
            return Ok(());
        }
        state.done_pending = None;
        state.finished = true;
        let root = state.settings.id.clone();
        self.emit(WatchEvent::ScanDone { root, files_seen }).await
    }

    pub(super) async fn apply(&mut self, key: Key, outcome: Outcome) -> Step {
        let Some(state) = self.roots.get(key.root) else {
            return Ok(());
        };
        let root = state.settings.id.clone();
        match outcome {
            Outcome::Stable {
                fingerprint,
                scanned,
            } => {
                self.counters.stable.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(root = %root, path = %key.rel.display(), ?fingerprint, scanned, "stable");
                let file = StableFile {
                    root,
                    rel: key.rel,
                    fingerprint,
                    scanned,
                };
                self.emit(WatchEvent::Stable(file)).await
            }
            Outcome::Gone => {
                self.counters.gone.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(root = %root, path = %key.rel.display(), "gone");
                self.emit(WatchEvent::Gone { root, rel: key.rel }).await
            }
            Outcome::ScanDir => {
                self.new_dir(key, Instant::now());
                Ok(())
            }
        }
    }

    /// Sends one event; gives up when cancelled (the consumer may have stopped reading).
    async fn emit(&self, event: WatchEvent) -> Step {
        tokio::select! {
            sent = self.out.send(event) => sent.map_err(|_| Stop),
            () = self.cancel.cancelled() => Err(Stop),
        }
    }
}

/// How long after a directory appeared it is scanned again: `stable_for`, at least a
/// second (notify adds the watches of a whole moved subtree in that time).
pub(super) fn dir_recheck(stable_for: Duration) -> Duration {
    stable_for.max(Duration::from_secs(1))
}

impl RootState {
    fn new(settings: &RootSettings) -> Self {
        Self {
            settings: Arc::new(settings.clone()),
            signals: Arc::default(),
            watch: None,
            missing: false,
            scanning: false,
            pending_full: false,
            pending_dirs: BTreeSet::new(),
            done_pending: None,
            finished: false,
        }
    }
}
