//! Per-root work for the driver: starting a root's watch, the flags its watcher
//! callback raises (lost events, watch limit, the root itself gone), roots that are
//! missing (looked for every `root_retry`, fully rescanned when they are back), and the
//! queue of walks: one walk at a time per root, a full scan superseding queued
//! directory scans, too many queued directories becoming one full scan.
//!
//! A root that disappears sends no `Gone`: an unmounted share or a recreated directory
//! is far more likely than a deliberate deletion of everything, and the first full scan
//! after it is back reconciles.

use std::io;
use std::path::PathBuf;
use std::sync::atomic::Ordering;

use super::super::scan::{self, ScanJob, ScanKind, ScanMsg, ScanReport};
use super::super::watcher::{self, Backend, EstablishError, WatchCtx};
use super::{Driver, MAX_PENDING_DIRS};
use crate::config::WatchMode;

impl Driver {
    fn watch_ctx(&self, root: usize) -> Option<WatchCtx> {
        let state = self.roots.get(root)?;
        Some(WatchCtx {
            root,
            settings: state.settings.clone(),
            mode: self.config.mode,
            poll_interval: self.config.poll_interval,
            hints: self.hints_tx.clone(),
            signals: state.signals.clone(),
            wake: self.wake.clone(),
            counters: self.counters.clone(),
        })
    }

    /// Starts watching `root` (on a blocking thread: a recursive watch walks the tree).
    pub(super) async fn establish(&mut self, root: usize) {
        let Some(ctx) = self.watch_ctx(root) else {
            return;
        };
        let result = tokio::task::spawn_blocking(move || watcher::establish(&ctx)).await;
        let Some(state) = self.roots.get_mut(root) else {
            return;
        };
        let (id, path) = (&state.settings.id, state.settings.path.display());
        match result {
            Ok(Ok(watch)) => {
                tracing::info!(root = %id, path = %path, backend = ?watch.backend, "watching");
                state.watch = Some(watch);
                state.missing = false;
            }
            Ok(Err(EstablishError::Missing)) => {
                if !state.missing {
                    tracing::warn!(root = %id, path = %path, retry = ?self.config.root_retry,
                        "root directory does not exist; looking for it");
                }
                state.missing = true;
            }
            Ok(Err(EstablishError::Failed(error))) => {
                tracing::warn!(root = %id, path = %path, %error, scan_interval = ?self.config.scan_interval,
                    "cannot watch the root; only the periodic scan finds changes");
                state.missing = false;
            }
            Err(error) => {
                tracing::error!(root = %id, %error, "starting the watch failed");
            }
        }
    }

    /// Acts on every flag the watcher callbacks (and the [`super::super::WatchControl`])
    /// raised.
    pub(super) async fn on_signals(&mut self) {
        if self.control.take_rescan() && self.mode == super::super::ScanMode::Continuous {
            self.counters.rescans.fetch_add(1, Ordering::Relaxed);
            tracing::info!("rescan of every root requested");
            self.request_all_full();
        }
        for root in 0..self.roots.len() {
            let Some(signals) = self.roots.get(root).map(|s| s.signals.clone()) else {
                continue;
            };
            if signals.root_gone.swap(false, Ordering::AcqRel) {
                self.on_root_gone(root);
            }
            if signals.watch_limit.swap(false, Ordering::AcqRel) {
                self.on_watch_limit(root).await;
            }
            if signals.rescan.swap(false, Ordering::AcqRel) {
                self.on_lost_events(root);
            }
        }
    }

    fn on_lost_events(&mut self, root: usize) {
        let Some(state) = self.roots.get_mut(root).filter(|s| !s.missing) else {
            return;
        };
        self.counters.rescans.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(
            root = %state.settings.id,
            overflows = self.counters.overflows.load(Ordering::Relaxed),
            dropped_events = self.counters.dropped_events.load(Ordering::Relaxed),
            "file events were lost (kernel queue overflow or a full internal queue); \
             rescanning the root. If this repeats, raise fs.inotify.max_queued_events"
        );
        state.pending_full = true;
    }

    /// New directories are no longer watched: rescan, warn, poll instead under `auto`.
    async fn on_watch_limit(&mut self, root: usize) {
        let Some(ctx) = self.watch_ctx(root) else {
            return;
        };
        let Some(state) = self.roots.get_mut(root) else {
            return;
        };
        let native = state
            .watch
            .as_ref()
            .is_some_and(|w| w.backend == Backend::Native);
        if !native {
            // A late signal from a native watch that polling already replaced.
            return;
        }
        let fall_back = self.config.mode == WatchMode::Auto;
        let old_watch = if fall_back { state.watch.take() } else { None };
        // Counted first, so that the WARN shows it.
        self.counters.rescans.fetch_add(1, Ordering::Relaxed);
        state.pending_full = true;
        let result = tokio::task::spawn_blocking(move || {
            // The WARN counts the watches in use, so they are released only after it.
            watcher::warn_watch_limit(&ctx, fall_back);
            drop(old_watch);
            fall_back.then(|| watcher::fall_back_to_poll(&ctx))
        })
        .await;
        let Some(state) = self.roots.get_mut(root) else {
            return;
        };
        match result {
            Ok(Some(Ok(watch))) => state.watch = Some(watch),
            Ok(Some(Err(error))) => tracing::warn!(root = %state.settings.id, ?error,
                "cannot poll the root either; only the periodic scan finds changes"),
            Ok(None) => {}
            Err(error) => {
                tracing::error!(root = %state.settings.id, %error, "watch fallback failed")
            }
        }
    }

    fn on_root_gone(&mut self, root: usize) {
        let Some(state) = self.roots.get(root).filter(|s| !s.missing) else {
            return;
        };
        tracing::warn!(root = %state.settings.id, path = %state.settings.path.display(),
            "root directory disappeared; it is rescanned when it is back");
        self.mark_missing(root);
    }

    /// A full walk could not open the root itself.
    pub(super) fn root_unavailable(&mut self, root: usize, source: io::Error) {
        let Some(state) = self.roots.get_mut(root) else {
            return;
        };
        let (id, path) = (state.settings.id.clone(), state.settings.path.clone());
        if self.mode == super::ScanMode::Once {
            tracing::error!(root = %id, path = %path.display(), error = %source, "cannot scan the root");
            state.finished = true;
            self.failures.push(super::WatchError::RootUnavailable {
                root: id,
                path,
                source,
            });
            return;
        }
        tracing::warn!(root = %id, path = %path.display(), error = %source, retry = ?self.config.root_retry,
            "cannot scan the root; looking for it again");
        self.mark_missing(root);
    }

    fn mark_missing(&mut self, root: usize) {
        let Some(state) = self.roots.get_mut(root) else {
            return;
        };
        state.watch = None;
        state.missing = true;
        state.pending_full = false;
        state.pending_dirs.clear();
        state.done_pending = None;
        self.gate.forget_root(root);
    }

    /// Looks for missing roots again; a root that is back is watched and rescanned.
    pub(super) async fn retry_missing(&mut self) {
        for root in 0..self.roots.len() {
            if !self.roots.get(root).is_some_and(|s| s.missing) {
                continue;
            }
            self.establish(root).await;
            let Some(state) = self.roots.get_mut(root).filter(|s| !s.missing) else {
                continue;
            };
            tracing::info!(root = %state.settings.id, "root is back; rescanning it");
            self.counters.rescans.fetch_add(1, Ordering::Relaxed);
            state.pending_full = true;
        }
    }

    pub(super) fn request_all_full(&mut self) {
        for state in self.roots.iter_mut().filter(|s| !s.missing) {
            state.pending_full = true;
        }
    }

    pub(super) fn request_dir(&mut self, root: usize, rel: PathBuf) {
        let Some(state) = self.roots.get_mut(root).filter(|s| !s.missing) else {
            return;
        };
        state.pending_dirs.insert(rel);
        if state.pending_dirs.len() > MAX_PENDING_DIRS {
            state.pending_dirs.clear();
            state.pending_full = true;
        }
    }

    /// Starts the next queued walk of every root that is not walking.
    pub(super) fn start_scans(&mut self) {
        for root in 0..self.roots.len() {
            let Some(state) = self.roots.get_mut(root) else {
                continue;
            };
            if state.scanning || state.missing {
                continue;
            }
            let kind = if state.pending_full {
                state.pending_full = false;
                state.pending_dirs.clear();
                ScanKind::Full
            } else if let Some(dir) = state.pending_dirs.pop_first() {
                ScanKind::Subtree(dir)
            } else {
                continue;
            };
            state.scanning = true;
            let job = ScanJob {
                root,
                settings: state.settings.clone(),
                kind,
                tx: self.scan_tx.clone(),
                cancel: self.walks.clone(),
            };
            self.tracker.spawn(run_walk(job));
        }
    }
}

/// Runs one walk on a blocking thread and reports its end on the scan channel.
async fn run_walk(job: ScanJob) {
    let (root, kind, tx) = (job.root, job.kind.clone(), job.tx.clone());
    let id = job.settings.id.clone();
    let span = tracing::debug_span!("scan", root = %id, kind = ?kind);
    let report = tokio::task::spawn_blocking(move || span.in_scope(|| scan::walk(&job)))
        .await
        .unwrap_or_else(|e| {
            tracing::error!(root = %id, error = %e, "scan failed");
            ScanReport {
                unreadable: 1,
                ..ScanReport::default()
            }
        });
    let _ = tx.send(ScanMsg::Finished { root, kind, report }).await;
}
