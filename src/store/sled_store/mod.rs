//! The sled engine: the only module that knows sled's API (`open.rs`: opening and
//! recovery; `check.rs`: the consistency pass, quarantine and the counters).
//!
//! Layout (`<state dir>/db`, a fixed set of trees): `jobs` (id -> versioned job),
//! `by_path` (path -> id), `due` ((due time, id) -> ()), `parts` ((id, part) -> ()),
//! `synced` (path -> versioned [`SyncedFile`]), `quarantine` (tree/key -> raw bytes) and
//! `meta` (schema version). The job records are the truth; `by_path`, `due` and `parts`
//! are derived from them.
//!
//! Every write takes one mutex, so a read-decide-write is never interleaved with
//! another and the trees agree whenever the mutex is free. A transition is a few
//! single-key writes in a crash-safe order (see `commit`): sled recovers a prefix of
//! the writes (measured: after `abort()` no write past the first lost one came back,
//! 10 runs out of 10, as its log design promises), and `open` repairs whatever a
//! crash left half-done. Readers do not lock: they check an index entry against its
//! job and skip it when they disagree. The same mutex guards the per-state counters,
//! so `counts` is free.
//!
//! Write errors (measured on a full 1 MiB tmpfs, see `tests/no_space.rs`): inserts keep
//! succeeding into sled's in-process buffers until one is written out, then every write
//! and flush fails with that first IO error (`Custom { kind: StorageFull }`), for good,
//! even after space is back; reads still work. The engine then says
//! [`Engine::failed`] and the store reopens it (`open::reopen`): everything flushed
//! before the error is there; of the writes after the last good flush, sled keeps a
//! prefix.

mod check;
mod open;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use sled::{Db, IVec, Tree};

use super::Engine;
use super::codec;
use super::error::{self, FlushFailure, StoreError};
use super::job::{FileKey, Job, JobId, SyncedFile};
use super::rules::{self, Change, JobOp, Parts};
use super::state_dir::StateLock;
use super::types::{Counts, Enqueued, StateKind};
use crate::fingerprint::Fingerprint;

pub(crate) use open::{open, reopen};

/// The `meta` key [`Engine::probe`] writes.
const PROBE_KEY: &[u8] = b"probe";

#[derive(Clone)]
pub(crate) struct Trees {
    pub(crate) jobs: Tree,
    pub(crate) by_path: Tree,
    pub(crate) due: Tree,
    pub(crate) parts: Tree,
    pub(crate) synced: Tree,
    pub(crate) quarantine: Tree,
    meta: Tree,
}

impl Trees {
    fn open(db: &Db) -> sled::Result<Self> {
        Ok(Self {
            jobs: db.open_tree("jobs")?,
            by_path: db.open_tree("by_path")?,
            due: db.open_tree("due")?,
            parts: db.open_tree("parts")?,
            synced: db.open_tree("synced")?,
            quarantine: db.open_tree("quarantine")?,
            meta: db.open_tree("meta")?,
        })
    }
}

pub(crate) struct SledStore {
    dir: PathBuf,
    pub(crate) t: Trees,
    db: Db,
    write: Mutex<Counts>,
    /// Synced paths per root; taken only while `write` is held (so `write` first).
    synced_by_root: Mutex<BTreeMap<String, u64>>,
    /// A write or flush failed with an IO error: sled refuses writes until reopened.
    failed: AtomicBool,
    // Declared last: released only after sled has closed.
    dir_lock: Arc<StateLock>,
}

/// A stored job as read.
// A short-lived local value: boxing the job would only add an allocation.
#[allow(clippy::large_enum_variant)]
enum Slot {
    Missing,
    Job(Job),
    Garbage,
}

impl SledStore {
    fn lock(&self) -> MutexGuard<'_, Counts> {
        self.write.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds `delta` to `root`'s synced count (`write` is held by the caller).
    fn count_root(&self, root: &str, delta: i64) {
        let mut by_root = self
            .synced_by_root
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let n = by_root.entry(root.to_owned()).or_default();
        *n = n.saturating_add_signed(delta);
        if *n == 0 {
            by_root.remove(root);
        }
    }

    fn err(&self, source: sled::Error) -> StoreError {
        if matches!(source, sled::Error::Io(_)) {
            self.failed.store(true, Ordering::Release);
        }
        error::engine(&self.dir, source)
    }

    /// The state directory's lock, to keep across a reopen.
    pub(crate) fn state_lock(&self) -> Arc<StateLock> {
        self.dir_lock.clone()
    }

    fn read_job(&self, id: JobId) -> Result<Slot, StoreError> {
        let Some(raw) = self
            .t
            .jobs
            .get(codec::id_key(id))
            .map_err(|e| self.err(e))?
        else {
            return Ok(Slot::Missing);
        };
        Ok(codec::decode_job(id, &raw).map_or(Slot::Garbage, Slot::Job))
    }

    /// Reads a job with the write lock held, quarantining it if it is garbage.
    fn load(&self, counts: &mut Counts, id: JobId) -> Result<Option<Job>, StoreError> {
        match self.read_job(id)? {
            Slot::Missing => Ok(None),
            Slot::Job(job) => Ok(Some(job)),
            Slot::Garbage => self.check(counts).map(|()| None),
        }
    }

    /// Reads a job without the lock; takes it only to quarantine garbage.
    fn get(&self, id: JobId) -> Result<Option<Job>, StoreError> {
        match self.read_job(id)? {
            Slot::Missing => Ok(None),
            Slot::Job(job) => Ok(Some(job)),
            Slot::Garbage => self.load(&mut self.lock(), id),
        }
    }

    fn load_synced(
        &self,
        counts: &mut Counts,
        key: &[u8],
    ) -> Result<Option<SyncedFile>, StoreError> {
        let Some(raw) = self.t.synced.get(key).map_err(|e| self.err(e))? else {
            return Ok(None);
        };
        match codec::decode_synced(&raw) {
            Ok(synced) => Ok(Some(synced)),
            Err(_) => self.check(counts).map(|()| None),
        }
    }

    /// Applies `change` as single-key writes, ordered so that every prefix of them
    /// (what sled recovers after a crash) is safe, and `open` repairs the rest:
    /// part records go first (fewer recorded parts only means re-sending some), index
    /// entries are added before the job record and removed after it (a stale entry is
    /// skipped by readers; a missing one would hide the job), and the synced record is
    /// written before the job is removed or queued again.
    ///
    /// No sled transaction or batch: in sled 0.34 each of those writes and
    /// `sync_file_range`s the log twice on the calling thread, a device round trip per
    /// transition that group commit could never share.
    fn commit(&self, counts: &mut Counts, change: &Change) -> Result<(), StoreError> {
        let (id, e) = (change.id, |e| self.err(e));
        let id_key = codec::id_key(id);
        if change.parts == Parts::Clear {
            for key in self.t.parts.scan_prefix(id_key).keys() {
                self.t.parts.remove(key.map_err(e)?).map_err(e)?;
            }
        }
        if change.old != change.new {
            let old_due = change.old.as_ref().and_then(rules::due_ms);
            let new_due = change.new.as_ref().and_then(rules::due_ms);
            if let Some(at) = new_due.filter(|&at| old_due != Some(at)) {
                self.t
                    .due
                    .insert(codec::due_key(at, id), &[][..])
                    .map_err(e)?;
            }
            if let (Some(old), Some(synced)) = (&change.old, &change.synced) {
                let bytes = codec::encode_synced(synced)
                    .map_err(|source| StoreError::Encode { id, source })?;
                let path = codec::path_key(&old.key);
                let before = self.t.synced.insert(path, bytes).map_err(e)?;
                if before.is_none() {
                    counts.synced += 1;
                    self.count_root(&old.key.root, 1);
                }
            }
            match (&change.old, &change.new) {
                (old, Some(new)) => {
                    if old.is_none() {
                        let path = codec::path_key(&new.key);
                        self.t.by_path.insert(path, &id_key[..]).map_err(e)?;
                    }
                    let bytes = codec::encode_job(new)
                        .map_err(|source| StoreError::Encode { id, source })?;
                    self.t.jobs.insert(id_key, bytes).map_err(e)?;
                }
                (Some(old), None) => {
                    self.t.jobs.remove(id_key).map_err(e)?;
                    self.t
                        .by_path
                        .remove(codec::path_key(&old.key))
                        .map_err(e)?;
                }
                (None, None) => {}
            }
            if let Some(at) = old_due.filter(|&at| new_due != Some(at)) {
                self.t.due.remove(codec::due_key(at, id)).map_err(e)?;
            }
            count_transition(counts, change);
        }
        if let Parts::Add(part) = change.parts {
            self.t
                .parts
                .insert(codec::part_key(id, part), &[][..])
                .map_err(e)?;
        }
        Ok(())
    }
}

fn count_transition(counts: &mut Counts, change: &Change) {
    if let Some(old) = &change.old {
        let slot = counts.slot(StateKind::of(&old.state));
        *slot = slot.saturating_sub(1);
    }
    if let Some(new) = &change.new {
        *counts.slot(StateKind::of(&new.state)) += 1;
    }
}

impl Engine for SledStore {
    fn enqueue(&self, key: FileKey, fp: Fingerprint, now_ms: i64) -> Result<Enqueued, StoreError> {
        let mut counts = self.lock();
        let path = codec::path_key(&key);
        let synced = self.load_synced(&mut counts, &path)?;
        let indexed = self.t.by_path.get(&path).map_err(|e| self.err(e))?;
        let job = match indexed.as_deref().and_then(codec::id_from_key) {
            Some(id) => self.load(&mut counts, id)?.filter(|j| j.key == key),
            None => None,
        };
        let next_id = || self.db.generate_id().map(JobId).map_err(|e| self.err(e));
        let (outcome, change) = rules::enqueue(synced.as_ref(), job, key, fp, now_ms, next_id)?;
        if let Some(change) = change {
            self.commit(&mut counts, &change)?;
        }
        Ok(outcome)
    }

    fn job(&self, id: JobId) -> Result<Option<Job>, StoreError> {
        self.get(id)
    }

    fn job_for(&self, key: &FileKey) -> Result<Option<Job>, StoreError> {
        let indexed = self
            .t
            .by_path
            .get(codec::path_key(key))
            .map_err(|e| self.err(e))?;
        match indexed.as_deref().and_then(codec::id_from_key) {
            Some(id) => Ok(self.get(id)?.filter(|j| &j.key == key)),
            None => Ok(None),
        }
    }

    fn update(&self, id: JobId, op: JobOp) -> Result<Option<Job>, StoreError> {
        let mut counts = self.lock();
        let old = self
            .load(&mut counts, id)?
            .ok_or(StoreError::NoSuchJob { id })?;
        let change = rules::apply(old, op)?;
        self.commit(&mut counts, &change)?;
        Ok(change.new)
    }

    fn parts_done(&self, id: JobId) -> Result<Vec<u32>, StoreError> {
        let keys = self.t.parts.scan_prefix(codec::id_key(id)).keys();
        let keys: Vec<IVec> = keys.collect::<Result<_, _>>().map_err(|e| self.err(e))?;
        Ok(keys
            .iter()
            .filter_map(|k| codec::part_from_key(k))
            .collect())
    }

    fn synced(&self, key: &FileKey) -> Result<Option<SyncedFile>, StoreError> {
        let path = codec::path_key(key);
        let raw = self.t.synced.get(&path).map_err(|e| self.err(e))?;
        match raw.as_deref().map(codec::decode_synced) {
            None => Ok(None),
            Some(Ok(synced)) => Ok(Some(synced)),
            Some(Err(_)) => self.load_synced(&mut self.lock(), &path),
        }
    }

    fn forget_synced(&self, key: &FileKey) -> Result<bool, StoreError> {
        let mut counts = self.lock();
        let removed = self
            .t
            .synced
            .remove(codec::path_key(key))
            .map_err(|e| self.err(e))?;
        if removed.is_some() {
            counts.synced = counts.synced.saturating_sub(1);
            self.count_root(&key.root, -1);
        }
        Ok(removed.is_some())
    }

    fn synced_page(
        &self,
        root: &str,
        after: Option<&FileKey>,
        limit: usize,
    ) -> Result<Vec<(FileKey, SyncedFile)>, StoreError> {
        let prefix = codec::root_prefix(root);
        let start = match after {
            Some(key) => std::ops::Bound::Excluded(codec::path_key(key)),
            None => std::ops::Bound::Included(prefix.clone()),
        };
        let mut out = Vec::new();
        for entry in self.t.synced.range((start, std::ops::Bound::Unbounded)) {
            if out.len() >= limit {
                break;
            }
            let (key, raw) = entry.map_err(|e| self.err(e))?;
            if !key.starts_with(&prefix) {
                break;
            }
            // A garbage record is quarantined by `synced`/`check`; skip it here.
            let (Some(file), Ok(synced)) = (codec::path_from_key(&key), codec::decode_synced(&raw))
            else {
                continue;
            };
            out.push((file, synced));
        }
        Ok(out)
    }

    fn due(&self, now_ms: i64, limit: usize) -> Result<Vec<Job>, StoreError> {
        let (mut out, mut garbage) = (Vec::<Job>::new(), false);
        for key in self.t.due.range(..codec::due_end(now_ms)).keys() {
            if out.len() >= limit {
                break;
            }
            let Some((at, id)) = codec::due_from_key(&key.map_err(|e| self.err(e))?) else {
                continue;
            };
            match self.read_job(id)? {
                // A job that moved on since the index was read is skipped; mid-transition
                // a job can have two entries, and it is returned once.
                Slot::Job(job)
                    if rules::due_ms(&job) == Some(at) && out.iter().all(|j| j.id != job.id) =>
                {
                    out.push(job);
                }
                Slot::Garbage => garbage = true,
                _ => {}
            }
        }
        if garbage {
            self.check(&mut self.lock())?;
        }
        Ok(out)
    }

    fn scan(&self, keep: &dyn Fn(&Job) -> bool, limit: usize) -> Result<Vec<Job>, StoreError> {
        let (mut out, mut garbage) = (Vec::new(), false);
        for entry in self.t.jobs.iter() {
            if out.len() >= limit {
                break;
            }
            let (key, value) = entry.map_err(|e| self.err(e))?;
            let id = codec::id_from_key(&key).unwrap_or(JobId(u64::MAX));
            match codec::decode_job(id, &value) {
                Ok(job) if keep(&job) => out.push(job),
                Ok(_) => {}
                Err(_) => garbage = true,
            }
        }
        if garbage {
            self.check(&mut self.lock())?;
        }
        Ok(out)
    }

    fn synced_by_root(&self) -> Result<BTreeMap<String, u64>, StoreError> {
        let _write = self.lock();
        Ok(self
            .synced_by_root
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone())
    }

    fn counts(&self) -> Result<Counts, StoreError> {
        Ok(*self.lock())
    }

    fn size_on_disk(&self) -> Result<u64, StoreError> {
        self.db.size_on_disk().map_err(|e| self.err(e))
    }

    fn flush_now(&self) -> Result<(), FlushFailure> {
        self.db.flush().map(drop).map_err(|e| {
            self.failed.store(true, Ordering::Release);
            FlushFailure::Engine(Arc::new(e))
        })
    }

    fn probe(&self) -> Result<(), StoreError> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        let now = u64::try_from(now).unwrap_or(u64::MAX);
        self.t
            .meta
            .insert(PROBE_KEY, &now.to_be_bytes())
            .map_err(|e| self.err(e))?;
        self.db.flush().map(drop).map_err(|e| self.err(e))
    }

    fn failed(&self) -> bool {
        self.failed.load(Ordering::Acquire)
    }

    #[cfg(test)]
    fn sled_trees(&self) -> Option<Trees> {
        Some(self.t.clone())
    }
}
