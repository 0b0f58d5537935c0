//! Intake: turns the watcher's stable files into durable jobs.
//!
//! Events arrive in bursts; intake records a burst, flushes once (one fsync covers
//! the whole burst), then wakes the scheduler. Unchanged files (same fingerprint as
//! last synced) are dropped by the store's dedup. When every root has reported the
//! end of its one-shot scan, `done` fires (`sync --once`).

use std::sync::Arc;

use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;

use super::health::{Health, PauseReason};
use crate::store::{FileKey, Store};
use crate::watch::WatchEvent;

/// Most events recorded before one flush.
const BATCH: usize = 512;

pub async fn run(
    store: Arc<Store>,
    health: Arc<Health>,
    mut rx: mpsc::Receiver<WatchEvent>,
    wake: Arc<Notify>,
    done: CancellationToken,
    roots: usize,
) {
    let mut scans_done = 0;
    let mut batch = Vec::with_capacity(BATCH);
    while rx.recv_many(&mut batch, BATCH).await > 0 {
        let mut unrecorded = (0, None);
        for event in batch.drain(..) {
            match event {
                WatchEvent::Stable(file) => {
                    let key = FileKey::new(file.root, &file.rel);
                    if let Err(e) = store.enqueue(key, file.fingerprint, super::worker::now_ms()) {
                        unrecorded.0 += 1;
                        unrecorded.1.get_or_insert(e);
                    }
                }
                WatchEvent::Gone { .. } => {}
                WatchEvent::ScanDone { .. } => scans_done += 1,
            }
        }
        let flushed = store.flush().await;
        if let (n, Some(e)) = (unrecorded.0, unrecorded.1.or(flushed.err())) {
            // One line per burst; a full or failing state dir pauses the pipeline, and
            // the rescan when it heals finds these files again.
            tracing::error!(files = n, error = %e, "cannot record jobs; the files are found again by a rescan");
            health.pause(PauseReason::StateUnwritable, &e.to_string(), None);
        }
        wake.notify_one();
        if scans_done >= roots {
            done.cancel();
        }
    }
    done.cancel();
}
