//! The `notify` side: one recursive watch per root, and the callback that turns raw
//! events into hints for the gate.
//!
//! Raw `notify` watchers, not `notify-debouncer-full`: the gate is our own debouncer
//! (it needs the per-path quiet period and stats anyway), and the raw inotify stream is
//! the one that carries `Access(Close(Write))`, the fast "writer finished" signal. The
//! debouncer would add a second timer and a second thread, coalesce away the close,
//! and its rename stitching buys nothing here: a rename is a removal (`Gone`) of the
//! old name and an arrival of the new one, which is also how inotify reports moves into
//! and out of a root.
//!
//! The callback runs on notify's thread and must never block (a blocked inotify reader
//! overflows the kernel queue). It filters, translates and `try_send`s into a bounded
//! channel; when the channel is full it drops the event, counts it and raises the
//! root's "rescan needed" flag instead. Overflow (`Rescan`), the watch limit
//! (`MaxFilesWatch`) and the root itself disappearing also only raise flags; the
//! driver acts on them.
//!
//! Backends: `poll` uses `notify::PollWatcher` every `poll_interval` (it keeps the
//! metadata of every path of the root in memory: that is notify's design, and the
//! price of polling with change events). `auto` polls network and FUSE filesystems
//! (see `linux.rs`) and falls back to polling when native watching fails or hits the
//! watch limit; `native` keeps what it could watch and relies on the periodic scans.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use notify::event::{AccessKind, AccessMode, CreateKind, ModifyKind, RemoveKind, RenameMode};
use notify::{
    Config, Event, EventHandler, EventKind, PollWatcher, RecommendedWatcher, RecursiveMode, Watcher,
};
use tokio::sync::{Notify, mpsc};

use super::WatchCounters;
use super::gate::Hint;
use super::linux;
use crate::config::{PathFilter, RootSettings, WatchMode};

/// From the watcher callback to the driver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HintMsg {
    pub root: usize,
    pub rel: PathBuf,
    pub kind: HintKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HintKind {
    Gate(Hint),
    /// A directory was created: scan it (its contents may predate its watch).
    NewDir,
    /// Removed or moved out (a file, or a directory and all under it).
    Removed,
}

/// Flags the callback raises for the driver.
#[derive(Debug, Default)]
pub(crate) struct Signals {
    pub rescan: AtomicBool,
    pub watch_limit: AtomicBool,
    pub root_gone: AtomicBool,
}

impl Signals {
    fn raise(&self, flag: &AtomicBool, wake: &Notify) {
        if !flag.swap(true, Ordering::AcqRel) {
            wake.notify_one();
        }
    }
}

/// Which `notify` backend watches a root.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Backend {
    Native,
    Poll,
}

/// A live watch; dropping it stops watching.
pub(crate) struct RootWatch {
    pub backend: Backend,
    _watcher: Box<dyn Watcher + Send + Sync>,
}

impl std::fmt::Debug for RootWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RootWatch")
            .field("backend", &self.backend)
            .finish_non_exhaustive()
    }
}

/// Everything a root's watch needs.
#[derive(Debug, Clone)]
pub(crate) struct WatchCtx {
    pub root: usize,
    pub settings: Arc<RootSettings>,
    pub mode: WatchMode,
    pub poll_interval: Duration,
    pub hints: mpsc::Sender<HintMsg>,
    pub signals: Arc<Signals>,
    pub wake: Arc<Notify>,
    pub counters: Arc<WatchCounters>,
}

#[derive(Debug)]
pub(crate) enum EstablishError {
    /// The root directory does not exist (yet).
    Missing,
    Failed(notify::Error),
}

/// How a root is watched, decided from its mode and its filesystem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Plan {
    /// `poll`, or `auto` on a network or FUSE filesystem (its type).
    Poll { network: Option<String> },
    /// inotify; with `fallback` (`auto`), polling when it fails or runs out of watches.
    Native { fallback: bool },
}

/// The plan for a root in `mode`; `network` is the type of its filesystem when that is
/// a network or FUSE one (only looked up under `auto`).
pub(crate) fn plan(mode: WatchMode, network: Option<String>) -> Plan {
    match (mode, network) {
        (WatchMode::Poll, _) => Plan::Poll { network: None },
        (WatchMode::Auto, Some(fs_type)) => Plan::Poll {
            network: Some(fs_type),
        },
        (WatchMode::Auto, None) => Plan::Native { fallback: true },
        (WatchMode::Native, _) => Plan::Native { fallback: false },
    }
}

/// Starts watching the root with the backend its mode asks for; blocking (a recursive
/// watch walks the tree).
pub(crate) fn establish(ctx: &WatchCtx) -> Result<RootWatch, EstablishError> {
    let path = &ctx.settings.path;
    if !path.is_dir() {
        return Err(EstablishError::Missing);
    }
    let network = match ctx.mode {
        WatchMode::Auto => linux::network_fs(path),
        WatchMode::Native | WatchMode::Poll => None,
    };
    let fallback = match plan(ctx.mode, network) {
        Plan::Poll { network } => {
            if let Some(fs_type) = network {
                tracing::info!(root = %ctx.settings.id, %fs_type, poll_interval = ?ctx.poll_interval,
                    "network filesystem: polling instead of inotify");
            }
            return start_poll(ctx).map_err(EstablishError::Failed);
        }
        Plan::Native { fallback } => fallback,
    };
    match start_native(ctx) {
        Ok(watch) => Ok(watch),
        Err((e, partial)) if matches!(e.kind, notify::ErrorKind::MaxFilesWatch) => {
            warn_watch_limit(ctx, fallback);
            match partial {
                Some(watch) if !fallback => Ok(watch),
                _ => fall_back_to_poll(ctx),
            }
        }
        Err(_) if !path.is_dir() => Err(EstablishError::Missing),
        Err((e, _)) if fallback => {
            tracing::warn!(root = %ctx.settings.id, error = %e, "native watching failed; polling instead");
            fall_back_to_poll(ctx)
        }
        Err((e, _)) => Err(EstablishError::Failed(e)),
    }
}

/// Replaces native watching with polling (`watch = "auto"` after a failure).
pub(crate) fn fall_back_to_poll(ctx: &WatchCtx) -> Result<RootWatch, EstablishError> {
    ctx.counters.poll_fallbacks.fetch_add(1, Ordering::Relaxed);
    start_poll(ctx).map_err(EstablishError::Failed)
}

/// The WARN for an exhausted inotify watch limit, with the numbers (watches this
/// process holds, the limit, how often it was hit, rescans so far) and the fix;
/// blocking (reads `/proc`).
pub(crate) fn warn_watch_limit(ctx: &WatchCtx, falling_back: bool) {
    let hits = ctx.counters.watch_limits.fetch_add(1, Ordering::Relaxed) + 1;
    let usage = linux::inotify_usage();
    let then = if falling_back {
        "polling this root instead"
    } else {
        "directories beyond the limit are only seen by the periodic scan (scan_interval)"
    };
    tracing::warn!(
        root = %ctx.settings.id,
        watches_used = usage.watches,
        max_user_watches = usage.max_user_watches,
        watch_limit_hits = hits,
        rescans = ctx.counters.rescans.load(Ordering::Relaxed),
        "inotify watch limit reached (one watch per directory): {then}; raise it with \
         `sysctl fs.inotify.max_user_watches=<more>` (in a container, also the user \
         namespace's `user.max_inotify_watches`), or set `[sync] watch = \"poll\"`"
    );
}

fn start_native(ctx: &WatchCtx) -> Result<RootWatch, (notify::Error, Option<RootWatch>)> {
    let config = Config::default().with_follow_symlinks(ctx.settings.follow_symlinks);
    let mut watcher =
        RecommendedWatcher::new(Translator::new(ctx, true), config).map_err(|e| (e, None))?;
    let result = watcher.watch(&ctx.settings.path, RecursiveMode::Recursive);
    let watch = RootWatch {
        backend: Backend::Native,
        _watcher: Box::new(watcher),
    };
    match result {
        Ok(()) => Ok(watch),
        Err(e) => Err((e, Some(watch))),
    }
}

fn start_poll(ctx: &WatchCtx) -> Result<RootWatch, notify::Error> {
    let config = Config::default()
        .with_poll_interval(ctx.poll_interval)
        .with_follow_symlinks(ctx.settings.follow_symlinks);
    let mut watcher = PollWatcher::new(Translator::new(ctx, false), config)?;
    watcher.watch(&ctx.settings.path, RecursiveMode::Recursive)?;
    Ok(RootWatch {
        backend: Backend::Poll,
        _watcher: Box::new(watcher),
    })
}

/// The callback: filters and translates on notify's thread, never blocks.
struct Translator {
    ctx: WatchCtx,
    filter: PathFilter,
    /// inotify: new directories are scanned, closes are reported.
    native: bool,
}

impl Translator {
    fn new(ctx: &WatchCtx, native: bool) -> Self {
        Self {
            filter: ctx.settings.filter.clone(),
            ctx: ctx.clone(),
            native,
        }
    }

    fn send(&self, rel: &Path, kind: HintKind) {
        let msg = HintMsg {
            root: self.ctx.root,
            rel: rel.to_path_buf(),
            kind,
        };
        if let Err(mpsc::error::TrySendError::Full(_)) = self.ctx.hints.try_send(msg) {
            self.ctx
                .counters
                .dropped_events
                .fetch_add(1, Ordering::Relaxed);
            self.ctx
                .signals
                .raise(&self.ctx.signals.rescan, &self.ctx.wake);
        }
    }

    fn on_error(&self, error: notify::Error) {
        let signals = &self.ctx.signals;
        match error.kind {
            notify::ErrorKind::MaxFilesWatch => signals.raise(&signals.watch_limit, &self.ctx.wake),
            notify::ErrorKind::Io(_) if self.native => {
                tracing::warn!(root = %self.ctx.settings.id, %error, "watch error; rescanning");
                signals.raise(&signals.rescan, &self.ctx.wake);
            }
            _ => tracing::debug!(root = %self.ctx.settings.id, %error, "watch error"),
        }
    }
}

impl EventHandler for Translator {
    fn handle_event(&mut self, event: notify::Result<Event>) {
        let event = match event {
            Ok(event) => event,
            Err(error) => return self.on_error(error),
        };
        let signals = &self.ctx.signals;
        if event.need_rescan() {
            self.ctx.counters.overflows.fetch_add(1, Ordering::Relaxed);
            return signals.raise(&signals.rescan, &self.ctx.wake);
        }
        let Some(raw) = classify(&event.kind) else {
            return;
        };
        for path in &event.paths {
            if path == &self.ctx.settings.path {
                if matches!(raw, Raw::Removed { .. }) {
                    signals.raise(&signals.root_gone, &self.ctx.wake);
                }
                continue;
            }
            let Ok(rel) = path.strip_prefix(&self.ctx.settings.path) else {
                continue;
            };
            if let Some(kind) = to_hint(raw, rel, &self.filter, self.native) {
                self.send(rel, kind);
            }
        }
    }
}

/// An event kind reduced to what the gate cares about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Raw {
    Changed,
    Metadata,
    Closed,
    /// Created or renamed in, type unknown.
    Arrived,
    NewDir,
    Removed {
        file: bool,
    },
}

pub(crate) fn classify(kind: &EventKind) -> Option<Raw> {
    Some(match kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => Raw::Closed,
        EventKind::Create(CreateKind::File) => Raw::Changed,
        EventKind::Create(CreateKind::Folder) => Raw::NewDir,
        EventKind::Create(_) => Raw::Arrived,
        EventKind::Modify(ModifyKind::Metadata(_)) => Raw::Metadata,
        EventKind::Modify(ModifyKind::Name(RenameMode::From)) => Raw::Removed { file: false },
        // inotify reports `From` and `To` as well; `Both` would count the move twice.
        EventKind::Modify(ModifyKind::Name(RenameMode::Both)) => return None,
        EventKind::Modify(ModifyKind::Name(_)) => Raw::Arrived,
        EventKind::Modify(_) => Raw::Changed,
        EventKind::Remove(RemoveKind::File) => Raw::Removed { file: true },
        EventKind::Remove(_) => Raw::Removed { file: false },
        EventKind::Access(_) | EventKind::Any | EventKind::Other => return None,
    })
}

/// Applies the root's filter: temp and excluded names (and everything under excluded
/// directories) never enter; a name the filter rejects can still be a directory.
pub(crate) fn to_hint(raw: Raw, rel: &Path, filter: &PathFilter, native: bool) -> Option<HintKind> {
    if filter.skips_dir(rel) {
        return None;
    }
    let accepted = filter.accepts(rel);
    let gate = |hint| accepted.then_some(HintKind::Gate(hint));
    match raw {
        Raw::Changed => gate(Hint::Changed),
        Raw::Metadata => gate(Hint::Metadata),
        Raw::Closed => gate(Hint::Closed),
        Raw::Arrived => (accepted || native).then_some(HintKind::Gate(Hint::Arrived {
            file_ok: accepted,
            may_be_dir: native,
        })),
        Raw::NewDir => Some(HintKind::NewDir),
        Raw::Removed { file } => (accepted || !file).then_some(HintKind::Removed),
    }
}

#[cfg(test)]
#[path = "watcher_tests.rs"]
mod tests;
