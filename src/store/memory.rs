//! The in-memory double: the same rules as the sled engine over plain maps, written
//! for obviousness rather than speed (`due`, `scan` and `counts` walk every job, with
//! no index), so it doubles as the reference the property test compares sled with.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Mutex, MutexGuard, PoisonError};

use super::Engine;
use super::error::{FlushFailure, StoreError};
use super::job::{FileKey, Job, JobId, SyncedFile};
use super::rules::{self, Change, JobOp, Parts};
use super::types::{Counts, Enqueued, StateKind};
use crate::fingerprint::Fingerprint;

#[derive(Default)]
pub(crate) struct MemoryStore {
    inner: Mutex<Mem>,
}

#[derive(Default)]
struct Mem {
    next_id: u64,
    jobs: BTreeMap<JobId, Job>,
    synced: BTreeMap<FileKey, SyncedFile>,
    parts: BTreeSet<(JobId, u32)>,
}

impl Mem {
    fn job_for(&self, key: &FileKey) -> Option<&Job> {
        self.jobs.values().find(|j| &j.key == key)
    }

    fn apply(&mut self, change: Change) {
        let id = change.id;
        if let (Some(old), Some(synced)) = (&change.old, change.synced) {
            self.synced.insert(old.key.clone(), synced);
        }
        match change.parts {
            Parts::Keep => {}
            Parts::Clear => self.parts.retain(|(j, _)| *j != id),
            Parts::Add(part) => {
                self.parts.insert((id, part));
            }
        }
        match change.new {
            Some(new) => self.jobs.insert(id, new),
            None => self.jobs.remove(&id),
        };
    }
}

impl MemoryStore {
    fn lock(&self) -> MutexGuard<'_, Mem> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Engine for MemoryStore {
    fn enqueue(&self, key: FileKey, fp: Fingerprint, now_ms: i64) -> Result<Enqueued, StoreError> {
        let mut mem = self.lock();
        let synced = mem.synced.get(&key).copied();
        let job = mem.job_for(&key).cloned();
        let mut next = mem.next_id;
        let (outcome, change) = rules::enqueue(synced.as_ref(), job, key, fp, now_ms, || {
            next += 1;
            Ok(JobId(next - 1))
        })?;
        mem.next_id = next;
        if let Some(change) = change {
            mem.apply(change);
        }
        Ok(outcome)
    }

    fn job(&self, id: JobId) -> Result<Option<Job>, StoreError> {
        Ok(self.lock().jobs.get(&id).cloned())
    }

    fn job_for(&self, key: &FileKey) -> Result<Option<Job>, StoreError> {
        Ok(self.lock().job_for(key).cloned())
    }

    fn update(&self, id: JobId, op: JobOp) -> Result<Option<Job>, StoreError> {
        let mut mem = self.lock();
        let old = mem
            .jobs
            .get(&id)
            .cloned()
            .ok_or(StoreError::NoSuchJob { id })?;
        let change = rules::apply(old, op)?;
        let new = change.new.clone();
        mem.apply(change);
        Ok(new)
    }

    fn parts_done(&self, id: JobId) -> Result<Vec<u32>, StoreError> {
        let mem = self.lock();
        Ok(mem
            .parts
            .iter()
            .filter(|(j, _)| *j == id)
            .map(|(_, p)| *p)
            .collect())
    }

    fn synced(&self, key: &FileKey) -> Result<Option<SyncedFile>, StoreError> {
        Ok(self.lock().synced.get(key).copied())
    }

    fn forget_synced(&self, key: &FileKey) -> Result<bool, StoreError> {
        Ok(self.lock().synced.remove(key).is_some())
    }

    fn synced_page(
        &self,
        root: &str,
        after: Option<&FileKey>,
        limit: usize,
    ) -> Result<Vec<(FileKey, SyncedFile)>, StoreError> {
        let mem = self.lock();
        Ok(mem
            .synced
            .iter()
            .filter(|(k, _)| k.root == root && after.is_none_or(|a| *k > a))
            .take(limit)
            .map(|(k, s)| (k.clone(), *s))
            .collect())
    }

    fn synced_by_root(&self) -> Result<BTreeMap<String, u64>, StoreError> {
        let mut out = BTreeMap::new();
        for key in self.lock().synced.keys() {
            *out.entry(key.root.clone()).or_default() += 1;
        }
        Ok(out)
    }

    fn due(&self, now_ms: i64, limit: usize) -> Result<Vec<Job>, StoreError> {
        let mem = self.lock();
        let mut due: Vec<(i64, &Job)> = mem
            .jobs
            .values()
            .filter_map(|j| rules::due_ms(j).map(|t| (t, j)))
            .filter(|(t, _)| *t <= now_ms)
            .collect();
        due.sort_by_key(|(t, j)| (*t, j.id));
        Ok(due
            .into_iter()
            .take(limit)
            .map(|(_, j)| j.clone())
            .collect())
    }

    fn scan(&self, keep: &dyn Fn(&Job) -> bool, limit: usize) -> Result<Vec<Job>, StoreError> {
        let mem = self.lock();
        Ok(mem
            .jobs
            .values()
            .filter(|j| keep(j))
            .take(limit)
            .cloned()
            .collect())
    }

    fn counts(&self) -> Result<Counts, StoreError> {
        let mem = self.lock();
        let mut counts = Counts {
            synced: mem.synced.len() as u64,
            ..Counts::default()
        };
        for job in mem.jobs.values() {
            *counts.slot(StateKind::of(&job.state)) += 1;
        }
        Ok(counts)
    }

    fn size_on_disk(&self) -> Result<u64, StoreError> {
        Ok(0)
    }

    fn flush_now(&self) -> Result<(), FlushFailure> {
        Ok(())
    }

    fn probe(&self) -> Result<(), StoreError> {
        Ok(())
    }
}
