//! SIGHUP: a new configuration, applied without dropping uploads in flight.
//!
//! The command layer loads and validates the file (an invalid one is rejected there
//! with an ERROR, and the running configuration stays). Here the new settings replace
//! the old for everything that starts from now on: roots and their fields, filters and
//! watch modes (the watcher is restarted and rescans), the file and part limits, the
//! bandwidth limit and its schedule, retries. Attempts already running keep the
//! configuration they started with. What the running daemon is built on (`[cdf]`,
//! `[state]`, `[admin]`, `[log]`) takes effect at the next restart, with a WARN.
//!
//! With `[cdf] remote_config = true` a second source feeds the same path: a new
//! revision of the extraction pipeline's config (from `extpipe`), merged over the
//! local file (`config::merge_remote`). The reloader keeps both halves, so a SIGHUP
//! re-merges the new local file with the remote config in force, and a new remote
//! revision merges with the latest local file. A revision that does not validate is
//! refused (the caller learns why) and the running configuration stays.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::{ConfigErrors, RemoteConfig, Settings, merge_remote};
use crate::watch::{WatchCounters, WatchError, WatchEvent};

use super::worker::Ctx;

pub(super) type WatcherTask = JoinHandle<Result<(), WatchError>>;

/// A new revision of the remote config to apply; `reply` says whether it was.
pub(crate) struct RemoteApply {
    pub config: RemoteConfig,
    pub reply: oneshot::Sender<Result<(), ConfigErrors>>,
}

/// Where new configurations come from, and what is in force at start.
pub(super) struct Sources {
    /// SIGHUP: the local file, read and validated again.
    pub updates: mpsc::Receiver<Settings>,
    /// New remote-config revisions (never sends without `remote_config`).
    pub remote: mpsc::Receiver<RemoteApply>,
    /// The local file's settings the daemon started with (before any remote config).
    pub local: Settings,
    /// The remote config merged into the settings in force at start.
    pub applied: Option<RemoteConfig>,
}

/// One new configuration.
enum Change {
    Local(Box<Settings>),
    Remote(RemoteApply),
}

/// Applies each new configuration from `sources` until `cancel` fires; then stops the
/// watcher it runs and waits for it.
pub(super) async fn run(
    ctx: Arc<Ctx>,
    sources: Sources,
    events: mpsc::Sender<WatchEvent>,
    (mut watcher, counters): (WatcherTask, Arc<WatchCounters>),
    mut watch_cancel: CancellationToken,
    cancel: CancellationToken,
) {
    let Sources {
        mut updates,
        mut remote,
        mut local,
        mut applied,
    } = sources;
    let (mut updates_open, mut remote_open) = (true, true);
    loop {
        let change = tokio::select! {
            () = cancel.cancelled() => break,
            update = updates.recv(), if updates_open => match update {
                Some(new) => Change::Local(Box::new(new)),
                None => {
                    updates_open = false;
                    continue;
                }
            },
            update = remote.recv(), if remote_open => match update {
                Some(new) => Change::Remote(new),
                None => {
                    remote_open = false;
                    continue;
                }
            },
        };
        let (new, reply, source) = match change {
            Change::Local(new) => {
                let new = keep_fixed_parts(&ctx.settings(), *new);
                let merged = match &applied {
                    Some(remote) => match merge_remote(&new, remote) {
                        Ok(merged) => merged,
                        Err(errors) => {
                            tracing::error!(
                                "configuration reload refused: the remote config does not fit the reloaded file; the running configuration stays:\n{errors}"
                            );
                            continue;
                        }
                    },
                    None => new.clone(),
                };
                local = new;
                (merged, None, "the local file".to_owned())
            }
            Change::Remote(RemoteApply { config, reply }) => match merge_remote(&local, &config) {
                Ok(merged) => {
                    let source = config.origin();
                    applied = Some(config);
                    (merged, Some(reply), source)
                }
                Err(errors) => {
                    let _ = reply.send(Err(errors));
                    continue;
                }
            },
        };
        let new = Arc::new(new);
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
            from = %source,
            roots = new.roots.len(),
            max_concurrent_files = new.upload.max_concurrent_files,
            max_rate = ?new.upload.max_rate,
            "configuration reloaded"
        );
        ctx.health.nudge();
        if let Some(reply) = reply {
            let _ = reply.send(Ok(()));
        }
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
