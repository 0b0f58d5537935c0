//! The sled engine: the only module that knows sled's API (`open.rs`: opening and
//! recovery; `quarantine.rs`: undecodable records and the counters).
//!
//! Layout (`<state dir>/db`, a fixed set of trees): `jobs` (id -> versioned job),
//! `by_path` (path -> id), `due` ((due time, id) -> ()), `parts` ((id, part) -> ()),
//! `synced` (path -> versioned [`SyncedFile`]), `quarantine` (tree/key -> raw bytes) and
//! `meta` (schema version). Every write takes one mutex (so a read-decide-write is never
//! interleaved with another) and commits all trees it touches in one sled transaction,
//! so the index and the path map never disagree with the jobs, even after a crash. The
//! same mutex guards the per-state counters, kept exact so `counts` is free.
//!
//! Opening: the state directory's lock first; then sled, inside `catch_unwind`. A
//! database sled rejects or panics on, or one that silently came back without its
//! schema record (sled truncates its log at the first bad block without an error), is
//! moved aside and replaced by an empty one. Undecodable records are quarantined when
//! met (all of them at open, which reads every record once), never a panic.

mod open;
mod quarantine;

use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use sled::transaction::{ConflictableTransactionError, TransactionError, Transactional};
use sled::{Batch, Db, IVec, Tree};

use super::Engine;
use super::codec;
use super::error::StoreError;
use super::job::{FileKey, Job, JobId, SyncedFile};
use super::rules::{self, Change, JobOp, Parts};
use super::state_dir::StateLock;
use super::types::{Counts, Enqueued, StateKind};
use crate::fingerprint::Fingerprint;

pub(crate) use open::open;

/// The transaction closures never abort on their own.
type TxResult = Result<(), ConflictableTransactionError<std::convert::Infallible>>;

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
    // Declared last: released only after sled has closed.
    _lock: StateLock,
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

    fn err(&self, source: sled::Error) -> StoreError {
        StoreError::Engine {
            dir: self.dir.clone(),
            source,
        }
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
            Slot::Garbage => self.recount(counts).map(|()| None),
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
            Err(_) => self.recount(counts).map(|()| None),
        }
    }

    fn tx_err(&self, e: TransactionError<std::convert::Infallible>) -> StoreError {
        match e {
            TransactionError::Abort(never) => match never {},
            TransactionError::Storage(e) => self.err(e),
        }
    }

    /// Applies `change` in one transaction over every tree it touches.
    fn commit(&self, counts: &mut Counts, change: &Change) -> Result<(), StoreError> {
        let id = change.id;
        let id_key = codec::id_key(id);
        let job_changed = change.old != change.new;
        let (mut jobs, mut by_path, mut due) =
            (Batch::default(), Batch::default(), Batch::default());
        if job_changed {
            if let Some(t) = change.old.as_ref().and_then(rules::due_ms) {
                due.remove(&codec::due_key(t, id)[..]);
            }
            match (&change.old, &change.new) {
                (_, Some(new)) => {
                    let bytes = codec::encode_job(new)
                        .map_err(|source| StoreError::Encode { id, source })?;
                    jobs.insert(&id_key[..], bytes);
                    by_path.insert(codec::path_key(&new.key), &id_key[..]);
                    if let Some(t) = rules::due_ms(new) {
                        due.insert(&codec::due_key(t, id)[..], &[][..]);
                    }
                }
                (Some(old), None) => {
                    jobs.remove(&id_key[..]);
                    by_path.remove(codec::path_key(&old.key));
                }
                (None, None) => {}
            }
        }
        let parts = self.parts_batch(id, change.parts)?;
        let (synced, new_synced) = self.synced_batch(change)?;
        let t = &self.t;
        (&t.jobs, &t.by_path, &t.due, &t.parts, &t.synced)
            .transaction(|(j, b, d, p, s)| {
                j.apply_batch(&jobs)?;
                b.apply_batch(&by_path)?;
                d.apply_batch(&due)?;
                p.apply_batch(&parts)?;
                s.apply_batch(&synced)?;
                TxResult::Ok(())
            })
            .map_err(|e| self.tx_err(e))?;
        if job_changed {
            if let Some(old) = &change.old {
                let slot = counts.slot(StateKind::of(&old.state));
                *slot = slot.saturating_sub(1);
            }
            if let Some(new) = &change.new {
                *counts.slot(StateKind::of(&new.state)) += 1;
            }
        }
        counts.synced += u64::from(new_synced);
        Ok(())
    }

    fn parts_batch(&self, id: JobId, parts: Parts) -> Result<Batch, StoreError> {
        let mut batch = Batch::default();
        match parts {
            Parts::Keep => {}
            Parts::Add(part) => batch.insert(&codec::part_key(id, part)[..], &[][..]),
            Parts::Clear => {
                for key in self.t.parts.scan_prefix(codec::id_key(id)).keys() {
                    batch.remove(key.map_err(|e| self.err(e))?);
                }
            }
        }
        Ok(batch)
    }

    /// The synced record `change` writes, and whether its path had none before.
    fn synced_batch(&self, change: &Change) -> Result<(Batch, bool), StoreError> {
        let mut batch = Batch::default();
        let (Some(synced), Some(old)) = (&change.synced, &change.old) else {
            return Ok((batch, false));
        };
        let key = codec::path_key(&old.key);
        let existed = self.t.synced.contains_key(&key).map_err(|e| self.err(e))?;
        let bytes = codec::encode_synced(synced).map_err(|source| StoreError::Encode {
            id: change.id,
            source,
        })?;
        batch.insert(key, bytes);
        Ok((batch, !existed))
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
        }
        Ok(removed.is_some())
    }

    fn due(&self, now_ms: i64, limit: usize) -> Result<Vec<Job>, StoreError> {
        let (mut out, mut garbage) = (Vec::new(), false);
        for key in self.t.due.range(..codec::due_end(now_ms)).keys() {
            if out.len() >= limit {
                break;
            }
            let Some((at, id)) = codec::due_from_key(&key.map_err(|e| self.err(e))?) else {
                continue;
            };
            match self.read_job(id)? {
                // A job that moved on since the index was read is skipped.
                Slot::Job(job) if rules::due_ms(&job) == Some(at) => out.push(job),
                Slot::Garbage => garbage = true,
                _ => {}
            }
        }
        if garbage {
            self.recount(&mut self.lock())?;
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
            self.recount(&mut self.lock())?;
        }
        Ok(out)
    }

    fn counts(&self) -> Result<Counts, StoreError> {
        Ok(*self.lock())
    }

    fn size_on_disk(&self) -> Result<u64, StoreError> {
        self.db.size_on_disk().map_err(|e| self.err(e))
    }

    fn flush_now(&self) -> Result<(), Arc<sled::Error>> {
        self.db.flush().map(drop).map_err(Arc::new)
    }

    #[cfg(test)]
    fn sled(&self) -> Option<&SledStore> {
        Some(self)
    }
}
