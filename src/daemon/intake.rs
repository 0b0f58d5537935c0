//! Intake: turns the watcher's stable files into durable jobs.
//!
//! Events arrive in bursts; intake records a burst, flushes once (one fsync covers
//! the whole burst), then wakes the scheduler. Unchanged files (same fingerprint as
//! last synced) are dropped by the store's dedup; with `on_change = "skip"` a root's
//! files that were synced before are not queued again when they change. A root's
//! `ScanDone` goes to the deletion sweep (`deletions`), which also tells `sync --once`
//! when every root's scan is through.

use std::sync::Arc;

use tokio::sync::{Notify, mpsc};

use super::health::PauseReason;
use super::worker::Ctx;
use crate::config::OnChange;
use crate::store::{FileKey, StoreError};
use crate::watch::WatchEvent;

/// Most events recorded before one flush.
const BATCH: usize = 512;

pub async fn run(
    ctx: Arc<Ctx>,
    mut rx: mpsc::Receiver<WatchEvent>,
    wake: Arc<Notify>,
    scans: mpsc::Sender<String>,
) {
    let store = &ctx.store;
    let mut batch = Vec::with_capacity(BATCH);
    while rx.recv_many(&mut batch, BATCH).await > 0 {
        let mut unrecorded = (0, None);
        let mut scans_done = Vec::new();
        let settings = ctx.settings();
        for event in batch.drain(..) {
            match event {
                WatchEvent::Stable(file) => {
                    let skip_changes = settings
                        .roots
                        .iter()
                        .any(|r| r.id == file.root && r.on_change == OnChange::Skip);
                    let key = FileKey::new(file.root, &file.rel);
                    let recorded = match skip_changes {
                        true => skip_or_enqueue(store, key, file.fingerprint),
                        false => store
                            .enqueue(key, file.fingerprint, super::worker::now_ms())
                            .map(drop),
                    };
                    if let Err(e) = recorded {
                        unrecorded.0 += 1;
                        unrecorded.1.get_or_insert(e);
                    }
                }
                WatchEvent::Gone { .. } => {}
                WatchEvent::ScanDone { root, .. } => scans_done.push(root),
            }
        }
        let flushed = store.flush().await;
        if let (n, Some(e)) = (unrecorded.0, unrecorded.1.or(flushed.err())) {
            // One line per burst; a full or failing state dir pauses the pipeline, and
            // the rescan when it heals finds these files again.
            tracing::error!(files = n, error = %e, "cannot record jobs; the files are found again by a rescan");
            ctx.health
                .pause(PauseReason::StateUnwritable, &e.to_string(), None);
        }
        wake.notify_one();
        for root in scans_done {
            if scans.send(root).await.is_err() {
                return;
            }
        }
    }
}

/// `on_change = "skip"`: a path synced before stays as it was in CDF.
fn skip_or_enqueue(
    store: &crate::store::Store,
    key: FileKey,
    fp: crate::fingerprint::Fingerprint,
) -> Result<(), StoreError> {
    if store.synced(&key)?.is_some() {
        return Ok(());
    }
    store.enqueue(key, fp, super::worker::now_ms()).map(drop)
}
