//! Moves within a root (classic target, `[sync] hash = "sha256"`): a synced file that
//! reappears under another directory with the same name and the same SHA-256 keeps its
//! CDF file: its externalId and directory are updated, nothing is uploaded.
//!
//! The watcher reports the old path gone (a rename event); intake then registers the
//! path's synced record here as a candidate. A new path's job (no synced record) asks
//! for candidates of the same root, name and size before it uploads; the worker
//! hashes its file and takes a candidate whose hash matches and whose old path is
//! still gone. A candidate not taken within [`MOVE_WINDOW`] is left to the deletion
//! sweep (`on_delete`), which skips younger ones. Moves are only seen while the daemon
//! runs (an offline move is a deletion and a new file); a renamed file (another name)
//! is one too, because CDF cannot rename a classic file.

use std::collections::HashMap;
use std::ffi::OsString;
use std::time::{Duration, Instant};

use crate::store::{FileKey, SyncedFile};

/// How long a vanished file waits for its new path before the sweep may act on it.
pub const MOVE_WINDOW: Duration = Duration::from_secs(300);
/// Candidates kept at most (a huge directory moved out is not held in memory).
const MAX_CANDIDATES: usize = 100_000;

/// A synced file whose path went away.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub key: FileKey,
    pub synced: SyncedFile,
    registered: Instant,
}

type Slot = (String, OsString, u64);

/// The candidates by root, file name and size.
#[derive(Debug, Default)]
pub struct Registry {
    by_slot: HashMap<Slot, Vec<Candidate>>,
    len: usize,
}

fn slot(key: &FileKey, size: u64) -> Option<Slot> {
    let name = key.rel_path().file_name()?.to_owned();
    Some((key.root.clone(), name, size))
}

impl Registry {
    /// Registers a vanished synced file (one with a hash; others cannot be matched).
    pub fn register(&mut self, key: FileKey, synced: SyncedFile, now: Instant) {
        self.expire(now);
        if synced.sha256.is_none() || self.len >= MAX_CANDIDATES {
            return;
        }
        let Some(slot) = slot(&key, synced.fingerprint.size) else {
            return;
        };
        let list = self.by_slot.entry(slot).or_default();
        if let Some(c) = list.iter_mut().find(|c| c.key == key) {
            c.synced = synced;
            c.registered = now;
            return;
        }
        list.push(Candidate {
            key,
            synced,
            registered: now,
        });
        self.len += 1;
    }

    /// The candidates a new file at `key` of `size` bytes may have moved from.
    pub fn candidates(&self, key: &FileKey, size: u64) -> Vec<Candidate> {
        slot(key, size)
            .and_then(|s| self.by_slot.get(&s))
            .map(|list| list.iter().filter(|c| c.key != *key).cloned().collect())
            .unwrap_or_default()
    }

    /// Drops a candidate (taken by a move).
    pub fn remove(&mut self, key: &FileKey, size: u64) {
        let Some(slot) = slot(key, size) else { return };
        if let Some(list) = self.by_slot.get_mut(&slot) {
            let before = list.len();
            list.retain(|c| c.key != *key);
            self.len -= before - list.len();
            if list.is_empty() {
                self.by_slot.remove(&slot);
            }
        }
    }

    /// Whether the sweep must leave this vanished file alone for now.
    pub fn pending(&self, key: &FileKey, size: u64, now: Instant) -> bool {
        slot(key, size)
            .and_then(|s| self.by_slot.get(&s))
            .is_some_and(|list| {
                list.iter()
                    .any(|c| c.key == *key && now.duration_since(c.registered) < MOVE_WINDOW)
            })
    }

    fn expire(&mut self, now: Instant) {
        let mut dropped = 0;
        self.by_slot.retain(|_, list| {
            let before = list.len();
            list.retain(|c| now.duration_since(c.registered) < MOVE_WINDOW);
            dropped += before - list.len();
            !list.is_empty()
        });
        self.len -= dropped;
    }
}

/// A new path's job: when its file is a registered candidate moved here (same root,
/// name, size and SHA-256, the old path still gone, no job there), the candidate's CDF
/// file takes the new externalId and directory. Returns that file's id and the hash;
/// `None` when this is no move (upload as usual).
///
/// The old path's synced record is forgotten (and flushed) before CDF is told, so a
/// crash in between can only leave the old CDF file as it was, never apply the old
/// path's `on_delete` to the moved file.
pub(super) async fn take(
    ctx: &super::worker::Ctx,
    key: &FileKey,
    root: &crate::config::RootSettings,
    mapped: &crate::mapping::CdfFile<'_>,
    path: &std::path::Path,
    fp: crate::fingerprint::Fingerprint,
) -> Result<Option<(i64, crate::hash::Sha256Digest)>, super::worker::Stop> {
    let candidates = ctx.moves().candidates(key, fp.size);
    if candidates.is_empty() {
        return Ok(None);
    }
    let Some(digest) = super::hashes::digest(path, fp).await else {
        return Ok(None);
    };
    for c in candidates {
        if c.synced.sha256 != Some(digest)
            || tokio::fs::symlink_metadata(root.path.join(c.key.rel_path()))
                .await
                .is_ok()
            || ctx.store.job_for(&c.key)?.is_some()
        {
            continue;
        }
        ctx.store.forget_synced(&c.key)?;
        ctx.store.flush().await?;
        let item = serde_json::json!({
            "id": c.synced.file_id,
            "update": {
                "externalId": { "set": mapped.external_id },
                "directory": { "set": mapped.directory },
            },
        });
        match ctx.client.update_files(vec![item]).await {
            Ok(_) => {}
            // The new externalId is taken in CDF (a file of its own): no move.
            Err(e)
                if e.status() == Some(409) || e.api().is_some_and(|a| !a.duplicated.is_empty()) =>
            {
                tracing::info!(from = %c.key, to = %key, error = %e, "not a move: the new path's externalId is taken in CDF");
                ctx.moves().remove(&c.key, fp.size);
                return Ok(None);
            }
            Err(e) => return Err(e.into()),
        }
        ctx.moves().remove(&c.key, fp.size);
        tracing::info!(from = %c.key, to = %key, file_id = c.synced.file_id, "moved within the root (same SHA-256): the CDF file takes the new externalId and directory, nothing re-sent");
        return Ok(Some((c.synced.file_id, digest)));
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fingerprint::Fingerprint;

    fn synced(size: u64, hash: Option<u8>) -> SyncedFile {
        SyncedFile {
            fingerprint: Fingerprint {
                size,
                mtime_ns: 1,
                inode: 2,
                device: 3,
            },
            file_id: 7,
            synced_ms: 0,
            sha256: hash.map(|h| [h; 32]),
        }
    }

    fn key(rel: &str) -> FileKey {
        FileKey::new("r", std::path::Path::new(rel))
    }

    #[test]
    fn candidates_match_root_name_and_size() {
        let now = Instant::now();
        let mut r = Registry::default();
        r.register(key("a/x.bin"), synced(10, Some(1)), now);
        r.register(key("a/nohash.bin"), synced(10, None), now);
        assert_eq!(r.candidates(&key("b/x.bin"), 10).len(), 1);
        assert!(r.candidates(&key("b/x.bin"), 11).is_empty(), "size");
        assert!(r.candidates(&key("b/y.bin"), 10).is_empty(), "name");
        assert!(r.candidates(&key("a/x.bin"), 10).is_empty(), "not itself");
        assert!(
            r.candidates(&key("b/nohash.bin"), 10).is_empty(),
            "no hash, no match"
        );
        assert!(
            r.candidates(&FileKey::new("other", std::path::Path::new("b/x.bin")), 10)
                .is_empty(),
            "root"
        );
        assert!(r.pending(&key("a/x.bin"), 10, now));
        r.remove(&key("a/x.bin"), 10);
        assert!(r.candidates(&key("b/x.bin"), 10).is_empty());
        assert!(!r.pending(&key("a/x.bin"), 10, now));
        assert_eq!(r.len, 0);
    }

    #[test]
    fn candidates_expire_after_the_window() {
        let t0 = Instant::now();
        let mut r = Registry::default();
        r.register(key("a/x.bin"), synced(10, Some(1)), t0);
        let later = t0 + MOVE_WINDOW;
        assert!(!r.pending(&key("a/x.bin"), 10, later));
        r.register(key("a/z.bin"), synced(5, Some(2)), later);
        assert_eq!(r.len, 1, "the old one expired");
        assert!(r.candidates(&key("b/x.bin"), 10).is_empty());
    }
}
