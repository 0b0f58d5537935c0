//! Local deletions (`[[roots]] on_delete`): what happens in CDF when a synced file
//! disappears locally.
//!
//! A deletion is confirmed by a full scan, never by an event alone: after a root's
//! `ScanDone`, unless the scan named every synced path of the root (intake counts
//! them), its synced records are walked page by page, and a record whose file no
//! longer exists (`lstat` says not found) is acted on: `keep` leaves CDF alone,
//! `mark` adds metadata `cdf-syncd.deleted = <ISO-8601 time>`, `delete` deletes the
//! file (its node, for the data-modeling target). Then the record is forgotten. The
//! record is the to-do item: a crash before the CDF call repeats the call at the next
//! sweep (both calls are idempotent), and a failed call leaves the records for the next
//! scan.
//!
//! Guards against acting on a view that is not the files' own: only a record whose
//! file lived on the device the root is on now is considered (an unmounted root, or a
//! nested mount that went away, deletes nothing), and a path with a job in the store
//! (a newer version on its way) is left alone.
//!
//! A file moved within a root is a deletion of the old path and a new file at the new
//! one. The sweeper also fires `done` for `sync --once` once every root's first scan has
//! been swept.

use std::os::unix::fs::MetadataExt;
use std::sync::Arc;

use serde_json::json;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::worker::{Ctx, now_ms};
use crate::cdf::{CdfError, InstanceId};
use crate::config::{OnDelete, RootSettings, Target};
use crate::store::{FileKey, StoreError, SyncedFile};

/// Synced records read (and files stat'ed) at a time.
const PAGE: usize = 256;
/// The metadata key that marks a file deleted locally.
pub const DELETED_KEY: &str = "cdf-syncd.deleted";

#[derive(Debug, thiserror::Error)]
enum SweepError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Cdf(#[from] CdfError),
    #[error("{0}")]
    Internal(String),
}

/// A root's full scan is through (its `ScanDone`).
#[derive(Debug)]
pub(super) struct ScanSeen {
    pub root: String,
    /// How many paths with a synced record the scan named. When that is every record
    /// of the root, no file is missing and the sweep stats nothing. A path is counted
    /// twice only when two walks fall between the same two `ScanDone`s (one that ended
    /// without it: cut short, or a directory it could not read; or a rescan that began
    /// while the last one waited for settling files); then a deletion waits for a later
    /// `ScanDone`, it is never acted on wrongly.
    pub synced_seen: u64,
}

/// Sweeps each root named on `scans`; fires `done` once `roots` sweeps have run (or
/// the channel closed).
pub(super) async fn run(
    ctx: Arc<Ctx>,
    mut scans: mpsc::Receiver<ScanSeen>,
    done: CancellationToken,
    roots: usize,
    cancel: CancellationToken,
) {
    let mut swept = 0;
    while let Some(scan) = scans.recv().await {
        // A sweep cut short by shutdown leaves its records: the next one redoes them.
        let result = tokio::select! {
            r = sweep(&ctx, &scan) => r,
            () = cancel.cancelled() => break,
        };
        if let Err(e) = result {
            tracing::warn!(root = scan.root, error = %e, "local deletions not applied in CDF; the next scan tries again");
        }
        swept += 1;
        if swept >= roots {
            done.cancel();
        }
    }
    done.cancel();
}

async fn sweep(ctx: &Ctx, scan: &ScanSeen) -> Result<(), SweepError> {
    let root_id = scan.root.as_str();
    let settings = ctx.settings();
    let Some(root) = settings.roots.iter().find(|r| r.id == root_id) else {
        return Ok(());
    };
    let records = ctx
        .store
        .synced_by_root()?
        .get(root_id)
        .copied()
        .unwrap_or(0);
    if scan.synced_seen >= records {
        tracing::debug!(
            root = root_id,
            records,
            "the scan saw every synced file; nothing to sweep"
        );
        return Ok(());
    }
    let device = match tokio::fs::metadata(&root.path).await {
        Ok(m) => m.dev(),
        Err(e) => {
            tracing::debug!(root = root_id, error = %e, "root not readable; no deletion sweep");
            return Ok(());
        }
    };
    let mut after: Option<FileKey> = None;
    loop {
        let page = blocking(ctx, {
            let (root, after) = (root_id.to_owned(), after.clone());
            move |store| store.synced_page(&root, after.as_ref(), PAGE)
        })
        .await?;
        let Some((last, _)) = page.last() else {
            return Ok(());
        };
        after = Some(last.clone());
        let gone = vanished(ctx, root, device, page).await?;
        if gone.is_empty() {
            continue;
        }
        apply(ctx, root, &settings.cdf.target, &gone).await?;
        for (key, _) in &gone {
            ctx.store.forget_synced(key)?;
        }
        ctx.store.flush().await?;
    }
}

/// The records of `page` whose file is gone from the root's device and that no job
/// is working on.
async fn vanished(
    ctx: &Ctx,
    root: &RootSettings,
    device: u64,
    page: Vec<(FileKey, SyncedFile)>,
) -> Result<Vec<(FileKey, SyncedFile)>, SweepError> {
    let base = root.path.clone();
    let candidates = tokio::task::spawn_blocking(move || {
        page.into_iter()
            .filter(|(key, synced)| {
                synced.fingerprint.device == device
                    && matches!(
                        std::fs::symlink_metadata(base.join(key.rel_path())),
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound
                    )
            })
            .collect::<Vec<_>>()
    })
    .await
    .map_err(|e| SweepError::Internal(e.to_string()))?;
    let mut gone = Vec::with_capacity(candidates.len());
    let now = std::time::Instant::now();
    for (key, synced) in candidates {
        // A path that just went away may have moved: `moves` has it for a while.
        if ctx.moves().pending(&key, synced.fingerprint.size, now) {
            continue;
        }
        if ctx.store.job_for(&key)?.is_none() {
            gone.push((key, synced));
        }
    }
    Ok(gone)
}

/// Does what `on_delete` says in CDF for files that vanished.
async fn apply(
    ctx: &Ctx,
    root: &RootSettings,
    target: &Target,
    gone: &[(FileKey, SyncedFile)],
) -> Result<(), SweepError> {
    let ids: Vec<i64> = gone.iter().map(|(_, s)| s.file_id).collect();
    match root.on_delete {
        OnDelete::Keep => {}
        OnDelete::Mark => mark(ctx, &ids).await?,
        OnDelete::Delete => match target {
            Target::Classic => ctx.client.delete_files(&ids).await?,
            Target::DataModeling { space, .. } => {
                let nodes = gone
                    .iter()
                    .filter_map(|(key, _)| {
                        let mapped = crate::mapping::map_file(root, key.rel_path()).ok()?;
                        Some(InstanceId {
                            space: space.clone(),
                            external_id: mapped.external_id,
                        })
                    })
                    .collect::<Vec<_>>();
                ctx.client.delete_nodes(&nodes).await?;
            }
        },
    }
    for (key, synced) in gone {
        match root.on_delete {
            OnDelete::Keep => {
                tracing::debug!(path = %key, file_id = synced.file_id, "local file deleted; CDF keeps it")
            }
            OnDelete::Mark => {
                tracing::info!(path = %key, file_id = synced.file_id, "local file deleted; marked in CDF")
            }
            OnDelete::Delete => {
                tracing::info!(path = %key, file_id = synced.file_id, "local file deleted; deleted in CDF")
            }
        }
    }
    Ok(())
}

/// Adds `cdf-syncd.deleted` to the files' metadata; files CDF no longer has are done.
async fn mark(ctx: &Ctx, ids: &[i64]) -> Result<(), SweepError> {
    let when = crate::upload::node::iso8601(now_ms());
    let mut ids = ids.to_vec();
    // One round, and one more without the ids CDF reported missing.
    for _ in 0..2 {
        if ids.is_empty() {
            return Ok(());
        }
        let items = ids
            .iter()
            .map(|id| json!({ "id": id, "update": { "metadata": { "add": { DELETED_KEY: when } } } }))
            .collect();
        match ctx.client.update_files(items).await {
            Ok(_) => return Ok(()),
            Err(e) => {
                let missing: Vec<i64> = e
                    .api()
                    .map(|a| {
                        a.missing
                            .iter()
                            .filter_map(|m| m.get("id")?.as_i64())
                            .collect()
                    })
                    .unwrap_or_default();
                if missing.is_empty() {
                    return Err(e.into());
                }
                ids.retain(|id| !missing.contains(id));
            }
        }
    }
    Ok(())
}

/// Runs a store call that walks records off the runtime.
async fn blocking<T: Send + 'static>(
    ctx: &Ctx,
    f: impl FnOnce(&crate::store::Store) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, SweepError> {
    let store = ctx.store.clone();
    tokio::task::spawn_blocking(move || f(&store))
        .await
        .map_err(|e| SweepError::Internal(e.to_string()))?
        .map_err(SweepError::from)
}
