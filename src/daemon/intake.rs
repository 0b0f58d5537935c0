//! Intake: turns the watcher's stable files into durable jobs.
//!
//! Events arrive in bursts; intake records a burst, flushes once (one fsync covers
//! the whole burst), then wakes the scheduler. Unchanged files (same fingerprint as
//! last synced) are dropped by the store's dedup; with `on_change = "skip"` a root's
//! files that were synced before are not queued again when they change. A root's
//! `ScanDone` goes to the deletion sweep (`deletions`), with how many synced paths the
//! scan named (the sweep has nothing to look for when that is all of them); the sweep
//! also tells `sync --once` when every root's scan is through.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::{Notify, mpsc};

use super::deletions::ScanSeen;
use super::health::PauseReason;
use super::worker::Ctx;
use crate::config::{HashMode, OnChange, Settings, Target};
use crate::store::{Enqueued, FileKey, Store, StoreError};
use crate::watch::{StableFile, WatchEvent};

/// Most events recorded before one flush.
const BATCH: usize = 512;

pub async fn run(
    ctx: Arc<Ctx>,
    mut rx: mpsc::Receiver<WatchEvent>,
    wake: Arc<Notify>,
    scans: mpsc::Sender<ScanSeen>,
) {
    let store = &ctx.store;
    let mut batch = Vec::with_capacity(BATCH);
    // Per root: synced paths that scan events named since the root's last `ScanDone`.
    let mut seen: HashMap<String, u64> = HashMap::new();
    while rx.recv_many(&mut batch, BATCH).await > 0 {
        let mut unrecorded = (0, None);
        let mut scans_done = Vec::new();
        let settings = ctx.settings();
        for event in batch.drain(..) {
            match event {
                WatchEvent::Stable(file) => {
                    let root = file.scanned.then(|| file.root.clone());
                    match record(store, &settings, file) {
                        Ok(true) => {
                            if let Some(root) = root {
                                *seen.entry(root).or_default() += 1;
                            }
                        }
                        Ok(false) => {}
                        Err(e) => {
                            unrecorded.0 += 1;
                            unrecorded.1.get_or_insert(e);
                        }
                    }
                }
                WatchEvent::Gone { root, rel } if tracks_moves(&settings) => {
                    if let Err(e) = register_gone(&ctx, root, &rel) {
                        tracing::debug!(error = %e, "move candidates not recorded");
                    }
                }
                WatchEvent::Gone { .. } => {}
                WatchEvent::ScanDone { root, .. } => {
                    let synced_seen = seen.remove(&root).unwrap_or(0);
                    scans_done.push(ScanSeen { root, synced_seen });
                }
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
        for scan in scans_done {
            if scans.send(scan).await.is_err() {
                return;
            }
        }
    }
}

/// Queues a stable file unless the store says it is unchanged (or, with
/// `on_change = "skip"`, synced before). Returns whether the path has a synced record;
/// the answer is exact for files found by a full scan, the only ones it is asked of.
fn record(store: &Store, settings: &Settings, file: StableFile) -> Result<bool, StoreError> {
    let skip_changes = settings
        .roots
        .iter()
        .any(|r| r.id == file.root && r.on_change == OnChange::Skip);
    let key = FileKey::new(file.root, &file.rel);
    if skip_changes && store.synced(&key)?.is_some() {
        return Ok(true);
    }
    let probe = (file.scanned && !skip_changes).then(|| key.clone());
    match store.enqueue(key, file.fingerprint, super::worker::now_ms())? {
        Enqueued::Unchanged => Ok(true),
        _ => match probe {
            Some(key) => Ok(store.synced(&key)?.is_some()),
            None => Ok(false),
        },
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

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use super::*;
    use crate::fingerprint::Fingerprint;
    use crate::store::{JobState, SyncedFile, Target as Session, Upload};

    fn settings(on_change: &str) -> Settings {
        let text = format!(
            "[cdf]\nbase_url = \"https://example.cognitedata.com\"\nproject = \"p\"\n\
            [cdf.auth]\ntoken_url = \"https://login.example.com/token\"\nclient_id = \"c\"\n\
            client_secret_env = \"CDF_SECRET\"\n\
            [[roots]]\nid = \"r\"\npath = \"/data/root\"\non_change = \"{on_change}\"\n"
        );
        crate::config::parse(&text, "test").expect("valid config")
    }

    /// A store where `synced.bin` was synced with `Fingerprint::sized(1)`.
    fn store() -> Store {
        let store = Store::in_memory();
        let key = FileKey::new("r", Path::new("synced.bin"));
        let Enqueued::New(id) = store.enqueue(key, Fingerprint::sized(1), 0).unwrap() else {
            panic!("a new job");
        };
        let upload = Upload {
            file_id: 9,
            target: Session::Single { url: "u".into() },
            urls_issued_ms: 0,
            source: Fingerprint::sized(1),
        };
        store.start_upload(id, upload).unwrap();
        store.set_state(id, JobState::Done { file_id: 9 }).unwrap();
        let synced = SyncedFile {
            fingerprint: Fingerprint::sized(1),
            file_id: 9,
            synced_ms: 0,
            sha256: None,
        };
        store.finish(id, synced).unwrap();
        store
    }

    fn file(rel: &str, size: u64, scanned: bool) -> StableFile {
        StableFile {
            root: "r".into(),
            rel: PathBuf::from(rel),
            fingerprint: Fingerprint::sized(size),
            scanned,
        }
    }

    #[test]
    fn a_scanned_file_says_whether_its_path_was_synced_and_is_queued_when_changed() {
        let (store, settings) = (store(), settings("overwrite"));
        assert!(record(&store, &settings, file("synced.bin", 1, true)).unwrap());
        assert!(record(&store, &settings, file("synced.bin", 2, true)).unwrap());
        assert!(!record(&store, &settings, file("new.bin", 1, true)).unwrap());
        assert_eq!(
            store.counts().unwrap().get(crate::store::StateKind::Queued),
            2
        );
        // Not found by a full scan: no lookup beyond what enqueue does.
        assert!(!record(&store, &settings, file("synced.bin", 3, false)).unwrap());
    }

    #[test]
    fn on_change_skip_counts_a_synced_path_and_queues_nothing_for_it() {
        let (store, settings) = (store(), settings("skip"));
        assert!(record(&store, &settings, file("synced.bin", 2, true)).unwrap());
        assert!(!record(&store, &settings, file("new.bin", 1, true)).unwrap());
        assert_eq!(
            store.counts().unwrap().get(crate::store::StateKind::Queued),
            1
        );
    }
}
