//! Intake: turns the watcher's stable files into durable jobs.
//!
//! Events arrive in bursts; intake records a burst, flushes once (one fsync covers
//! the whole burst), then wakes the scheduler. Unchanged files (same fingerprint as
//! last synced) are dropped by the store's dedup. When every root has reported the
//! end of its one-shot scan, `done` fires (`sync --once`).

use std::sync::Arc;

use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;

use crate::store::{FileKey, Store};
use crate::watch::WatchEvent;

/// Most events recorded before one flush.
const BATCH: usize = 512;

pub async fn run(
    store: Arc<Store>,
    mut rx: mpsc::Receiver<WatchEvent>,
    wake: Arc<Notify>,
    done: CancellationToken,
    roots: usize,
) {
    let mut scans_done = 0;
    let mut batch = Vec::with_capacity(BATCH);
    while rx.recv_many(&mut batch, BATCH).await > 0 {
        for event in batch.drain(..) {
            match event {
                WatchEvent::Stable(file) => {
                    let key = FileKey::new(file.root, &file.rel);
                    if let Err(e) = store.enqueue(key, file.fingerprint, super::worker::now_ms()) {
                        tracing::error!(error = %e, "cannot record a job; the next scan finds the file again");
                    }
                }
                WatchEvent::Gone { .. } => {}
                WatchEvent::ScanDone { .. } => scans_done += 1,
            }
        }
        if let Err(e) = store.flush().await {
            tracing::error!(error = %e, "cannot flush the job store");
        }
        wake.notify_one();
        if scans_done >= roots {
            done.cancel();
        }
    }
    done.cancel();
}
