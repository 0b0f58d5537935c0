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
use std::time::Instant;

use crate::config::{HashMode, OnChange, Settings, Target};
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
                WatchEvent::Gone { root, rel } if tracks_moves(&settings) => {
                    if let Err(e) = register_gone(&ctx, root, &rel) {
                        tracing::debug!(error = %e, "move candidates not recorded");
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

/// Moves are recognised by hash, and only classic files can take a new externalId.
fn tracks_moves(settings: &Settings) -> bool {
    settings.cdf.target == Target::Classic && settings.sync.hash == HashMode::Sha256
}

/// Registers the synced file at `rel` (or every synced file under it, when it was a
/// directory) as a move candidate.
fn register_gone(ctx: &Ctx, root: String, rel: &std::path::Path) -> Result<(), StoreError> {
    /// Files registered for one directory at most.
    const MAX_PER_DIR: usize = 10_000;
    let key = FileKey::new(root.clone(), rel);
    let now = Instant::now();
    if let Some(synced) = ctx.store.synced(&key)? {
        ctx.moves().register(key, synced, now);
        return Ok(());
    }
    let mut prefix = key.rel;
    prefix.push(b'/');
    let mut after = FileKey {
        root: root.clone(),
        rel: prefix.clone(),
    };
    let mut registered = 0;
    loop {
        let page = ctx.store.synced_page(&root, Some(&after), 256)?;
        if page.is_empty() {
            return Ok(());
        }
        for (k, synced) in page {
            if !k.rel.starts_with(&prefix) || registered >= MAX_PER_DIR {
                return Ok(());
            }
            after = k.clone();
            ctx.moves().register(k, synced, now);
            registered += 1;
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
