//! SIGHUP: a new configuration, applied without dropping uploads in flight.
//!
//! The command layer loads and validates the file (an invalid one is rejected there
//! with an ERROR, and the running configuration stays). Here the new settings replace
//! the old for everything that starts from now on: roots and their fields, filters and
//! watch modes (the watcher is restarted and rescans), the file and part limits, the
//! bandwidth limit and its schedule, retries. Attempts already running keep the
//! configuration they started with. What the running daemon is built on (`[cdf]`,
//! `[state]`, `[admin]`, `[log]`) takes effect at the next restart, with a WARN.

use std::sync::Arc;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::Settings;
use crate::watch::{WatchCounters, WatchError, WatchEvent};

use super::worker::Ctx;

pub(super) type WatcherTask = JoinHandle<Result<(), WatchError>>;

/// Applies each new configuration from `updates` until `cancel` fires; then stops the
/// watcher it runs and waits for it.
pub(super) async fn run(
    ctx: Arc<Ctx>,
    mut updates: mpsc::Receiver<Settings>,
    events: mpsc::Sender<WatchEvent>,
    (mut watcher, counters): (WatcherTask, Arc<WatchCounters>),
    mut watch_cancel: CancellationToken,
    cancel: CancellationToken,
) {
    loop {
        let new = tokio::select! {
            () = cancel.cancelled() => break,
            update = updates.recv() => match update {
                Some(new) => new,
                None => {
                    cancel.cancelled().await;
                    break;
                }
            },
        };
        let new = Arc::new(keep_fixed_parts(&ctx.settings(), new));
        ctx.health.set_max(
            new.upload.max_concurrent_files,
            new.upload.max_parallel_parts,
        );
        ctx.client
            .bandwidth()
            .set_rate(new.upload.max_rate, new.upload.max_rate_schedule.clone());
        ctx.set_settings(new.clone());
        // A new watcher for the new roots; its startup scan finds what they hold.
        watch_cancel.cancel();
        let _ = watcher.await;
        watch_cancel = cancel.child_token();
        let spawned = crate::watch::spawn_controlled(
            new.clone(),
            false,
            events.clone(),
            watch_cancel.clone(),
            Some(counters.clone()),
        );
        watcher = match spawned {
            Ok((task, spawned)) => {
                ctx.set_watch(spawned.control);
                task
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot restart the watcher with the new configuration");
                tokio::spawn(async { Ok(()) })
            }
        };
        tracing::info!(
            roots = new.roots.len(),
            max_concurrent_files = new.upload.max_concurrent_files,
            max_rate = ?new.upload.max_rate,
            "configuration reloaded"
        );
        ctx.health.nudge();
    }
    watch_cancel.cancel();
    let _ = watcher.await;
}

/// `new` with the sections a running daemon cannot swap taken from `old`, warning
/// about each one that changed.
fn keep_fixed_parts(old: &Settings, mut new: Settings) -> Settings {
    let mut fixed = Vec::new();
    // The settings types do not implement PartialEq; their Debug forms compare all
    // fields (secrets are references, not values).
    if format!("{:?}", old.cdf) != format!("{:?}", new.cdf) {
        fixed.push("[cdf]");
    }
    if format!("{:?}", old.state) != format!("{:?}", new.state) {
        fixed.push("[state]");
    }
    if format!("{:?}", old.admin) != format!("{:?}", new.admin) {
        fixed.push("[admin]");
    }
    if format!("{:?}", old.log) != format!("{:?}", new.log) {
        fixed.push("[log]");
    }
    if !fixed.is_empty() {
        tracing::warn!(
            sections = fixed.join(", "),
            "these sections changed; they take effect when cdf-syncd restarts"
        );
    }
    new.cdf = old.cdf.clone();
    new.state = old.state.clone();
    new.admin = old.admin.clone();
    new.log = old.log.clone();
    new
}
