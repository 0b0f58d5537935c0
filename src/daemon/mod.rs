//! The daemon: watch -> intake -> job store -> scheduler -> workers -> CDF.
//!
//! `run` wires the stages together under one cancellation token: the watcher sends
//! stable files, intake records them as jobs (durably, in batches), the scheduler
//! hands due jobs to workers. `sync --once` is the same pipeline with a one-shot scan
//! that ends when every root was scanned and every job settled. Shutdown cancels the
//! token: intake stops, workers stop between parts, the store is flushed.

mod deletions;
mod extpipe;
mod hashes;
pub mod health;
mod intake;
mod moves;
pub mod notify;
mod parts;
pub mod progress;
mod reload;
mod scheduler;
mod worker;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;

pub use scheduler::{ONCE_MAX_ATTEMPTS, Tally};

use crate::cdf::{CdfClient, ClientConfig};
use crate::config::{DataSetRef, Settings};
use crate::store::{StateKind, Store, StoreError, StoreOptions};

/// How to run the pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Keep watching until cancelled.
    Daemon,
    /// Scan once, upload everything pending, return.
    Once,
}

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("job store: {0}")]
    Store(#[from] StoreError),
    #[error("client secret: {0}")]
    Secret(#[from] crate::config::SecretError),
    #[error("CDF client: {0}")]
    Client(#[from] crate::cdf::CdfError),
    #[error("watcher: {0}")]
    Watch(String),
    #[error("{0}")]
    Internal(String),
    #[error("{0}")]
    RemoteConfig(String),
    #[error("root `{root}`: no data set with externalId `{external_id}` in CDF")]
    UnknownDataSet { root: String, external_id: String },
}

/// Runs the pipeline until `cancel` fires (daemon) or everything is settled (once).
/// `min_part_size` is CDF's minimum unless a test lowers it.
pub async fn run(
    settings: Settings,
    mode: Mode,
    min_part_size: u64,
    cancel: CancellationToken,
) -> Result<Tally, DaemonError> {
    let (_keep, updates) = mpsc::channel(1);
    run_reloadable(settings, mode, min_part_size, cancel, updates).await
}

/// [`run`], taking new configurations (SIGHUP) from `updates`.
pub async fn run_reloadable(
    settings: Settings,
    mode: Mode,
    min_part_size: u64,
    cancel: CancellationToken,
    updates: mpsc::Receiver<Settings>,
) -> Result<Tally, DaemonError> {
    let settings = Arc::new(settings);
    let notifier = Arc::new(match mode {
        Mode::Daemon => notify::Notifier::from_env(),
        Mode::Once => notify::Notifier::disabled(),
    });
    let starting = notifier.starting(&cancel);
    let Some(store) = open_store(&settings, mode, &cancel).await? else {
        return Ok(Tally::default());
    };
    let store = Arc::new(store);
    let env = |name: &str| std::env::var(name).ok();
    let client = CdfClient::new(ClientConfig::from_settings(&settings, &env)?)?;
    let start = extpipe::remote_at_start(&client, settings, mode).await?;
    let settings = start.settings.clone();
    let data_sets = resolve_data_sets(&client, &settings).await?;
    let retry = settings.upload.retry;
    let health = Arc::new(health::Health::new(
        settings.upload.max_concurrent_files,
        settings.upload.max_parallel_parts,
        health::ProbeBackoff {
            initial: retry.initial_backoff,
            max: retry.max_backoff,
        },
    ));
    let wake = Arc::new(Notify::new());
    let intake_done = CancellationToken::new();
    let (tx, rx) = mpsc::channel(1024);
    let watch_cancel = cancel.child_token();
    let (watcher, watch) = crate::watch::spawn_controlled(
        settings.clone(),
        mode == Mode::Once,
        tx.clone(),
        watch_cancel.clone(),
        None,
    )
    .map_err(|e| DaemonError::Watch(e.to_string()))?;
    let progress = Arc::new(progress::Progress::new());
    let ctx = Arc::new(worker::Ctx {
        client,
        health: health.clone(),
        data_sets: tokio::sync::Mutex::new(data_sets),
        store: store.clone(),
        settings: std::sync::RwLock::new(settings.clone()),
        min_part_size,
        watch: std::sync::Mutex::new(watch.control),
        progress: progress.clone(),
        moves: std::sync::Mutex::default(),
    });
    let (remote_tx, remote) = mpsc::channel(1);
    let reporter = match mode {
        Mode::Daemon => extpipe::spawn(ctx.clone(), &start, remote_tx, cancel.clone()),
        Mode::Once => None,
    };
    let sources = reload::Sources {
        updates,
        remote,
        local: start.local,
        applied: start.applied,
    };
    // The reloader owns the watcher from here on (it restarts it on SIGHUP).
    let watcher = tokio::spawn(reload::run(
        ctx.clone(),
        sources,
        tx,
        (watcher, watch.counters.clone()),
        watch_cancel,
        cancel.clone(),
    ));
    let (scans_tx, scans) = mpsc::channel(16);
    let intake = tokio::spawn(intake::run(ctx.clone(), rx, wake.clone(), scans_tx));
    let sweeper = tokio::spawn(deletions::run(
        ctx.clone(),
        scans,
        intake_done.clone(),
        settings.roots.len(),
        cancel.clone(),
    ));
    let _metrics = serve_metrics(
        &settings,
        &store,
        &health,
        &watch.counters,
        &ctx.client,
        &cancel,
    )
    .await;
    let admin = crate::admin::start(
        &settings.admin,
        store.clone(),
        health.clone(),
        progress,
        cancel.clone(),
    )
    .await;
    let until = match mode {
        Mode::Daemon => scheduler::Until::Cancelled,
        Mode::Once => scheduler::Until::Idle,
    };
    // Ready: the store is open and recovered, the watcher's task (which sets up the
    // watches, then scans) and the admin socket are up.
    drop(starting);
    notifier.ready(&notify::summary(None, store.counts().ok().as_ref(), 0));
    let mut tally = scheduler::run(ctx, wake, intake_done, cancel.clone(), until, &notifier).await;
    cancel.cancel();
    let _ = watcher.await;
    let _ = intake.await;
    let _ = sweeper.await;
    if let Some(reporter) = reporter {
        let _ = reporter.await;
    }
    if let Some(admin) = admin {
        let _ = admin.await; // removes the socket file
    }
    store.flush().await?;
    tally.failed_jobs = store.counts()?.get(StateKind::Failed);
    Ok(tally)
}

/// Starts `/metrics` when `[admin] metrics_listen` is set; a port that cannot be bound
/// is an ERROR, not a reason to stop syncing.
async fn serve_metrics(
    settings: &Settings,
    store: &Arc<Store>,
    health: &Arc<health::Health>,
    watch: &Arc<crate::watch::WatchCounters>,
    client: &CdfClient,
    cancel: &CancellationToken,
) -> Option<tokio::task::JoinHandle<()>> {
    let addr = settings.admin.metrics_listen?;
    let sources = crate::metrics::Sources {
        store: store.clone(),
        health: health.clone(),
        watch: watch.clone(),
        client: client.clone(),
    };
    match crate::metrics::serve(addr, sources, cancel.clone()).await {
        Ok(task) => Some(task),
        Err(e) => {
            tracing::error!(%addr, error = %e,
                "cannot serve metrics; set [admin] metrics_listen to a free local address");
            None
        }
    }
}

/// How long a start waits for the state directory's lock: `status`, `jobs` and friends
/// hold it for a moment when they read a stopped daemon's store.
const LOCK_PATIENCE: Duration = Duration::from_secs(10);

/// Opens the job store off the runtime. A state directory that cannot take writes (a
/// full disk) is waited for in daemon mode, so that systemd does not restart-loop; a
/// lock held by another process for up to [`LOCK_PATIENCE`] (a CLI reading the store
/// just then). `None` when cancelled meanwhile.
async fn open_store(
    settings: &Settings,
    mode: Mode,
    cancel: &CancellationToken,
) -> Result<Option<Store>, DaemonError> {
    let retry = settings.upload.retry;
    let mut wait = retry.initial_backoff;
    let started = std::time::Instant::now();
    loop {
        let dir = settings.state.dir.clone();
        let opened =
            tokio::task::spawn_blocking(move || Store::open(&dir, StoreOptions::default()))
                .await
                .map_err(|e| DaemonError::Internal(format!("opening the job store: {e}")))?;
        match opened {
            Ok(store) => return Ok(Some(store)),
            Err(e @ StoreError::Locked { .. }) if started.elapsed() < LOCK_PATIENCE => {
                tracing::debug!(error = %e, "the state directory is locked; waiting");
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_millis(100)) => {}
                    () = cancel.cancelled() => return Ok(None),
                }
            }
            Err(e) if e.is_unwritable() && mode == Mode::Daemon => {
                tracing::error!(error = %e, retry_in = ?wait,
                    "cannot open the job store; free space in (or fix) the [state] dir, cdf-syncd keeps trying");
                tokio::select! {
                    () = tokio::time::sleep(wait) => {}
                    () = cancel.cancelled() => return Ok(None),
                }
                wait = wait
                    .saturating_mul(2)
                    .min(retry.max_backoff.max(retry.initial_backoff));
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// Looks up the data sets given by externalId, so that a wrong one stops the start
/// with a clear error. When CDF cannot be asked now (an outage, a throttle, refused
/// credentials), the daemon starts anyway and workers look them up before the first
/// file of each root is created: no file is ever created without its data set.
async fn resolve_data_sets(
    client: &CdfClient,
    settings: &Settings,
) -> Result<HashMap<String, i64>, DaemonError> {
    let mut ids = HashMap::new();
    for root in &settings.roots {
        let Some(DataSetRef::ExternalId(x)) = &root.fields.data_set else {
            continue;
        };
        match client.data_set_id(x).await {
            Ok(Some(id)) => {
                ids.insert(root.id.clone(), id);
            }
            Ok(None) => {
                return Err(DaemonError::UnknownDataSet {
                    root: root.id.clone(),
                    external_id: x.clone(),
                });
            }
            Err(e) => {
                tracing::warn!(root = %root.id, data_set = %x, error = %e,
                    "cannot look the data set up now; it is looked up before the root's first upload");
                return Ok(ids);
            }
        }
    }
    Ok(ids)
}
