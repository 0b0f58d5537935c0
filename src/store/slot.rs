//! The engine a [`super::Store`] uses, swappable so that the store can be reopened in
//! place: every clone of the store sees the new engine at once.
//!
//! Why reopen: sled 0.34 remembers the first IO error of a write (a full disk, say) and
//! refuses every later write of that handle with it, even once the cause is gone
//! (measured; see `Store::reopen_blocking`). While the old handle is closed and the new
//! one opens, the slot holds [`Closed`], which refuses everything with
//! [`StoreError::Closed`]; it stays there if the reopen fails.

use std::path::PathBuf;
use std::sync::{Arc, PoisonError, RwLock};

use super::Engine;
use super::error::{FlushFailure, StoreError};
use super::job::{FileKey, Job, JobId, SyncedFile};
use super::rules::JobOp;
use super::types::{Counts, Enqueued};
use crate::fingerprint::Fingerprint;

pub(crate) struct EngineSlot {
    engine: RwLock<Arc<dyn Engine>>,
}

impl EngineSlot {
    pub(crate) fn new(engine: Arc<dyn Engine>) -> Self {
        Self {
            engine: RwLock::new(engine),
        }
    }

    /// The engine in use now; an operation keeps the one it started with.
    pub(crate) fn get(&self) -> Arc<dyn Engine> {
        self.engine
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Installs `engine`; returns the one it replaces.
    pub(crate) fn replace(&self, engine: Arc<dyn Engine>) -> Arc<dyn Engine> {
        let mut slot = self.engine.write().unwrap_or_else(PoisonError::into_inner);
        std::mem::replace(&mut *slot, engine)
    }
}

/// The stand-in while the database is closed: every operation fails with
/// [`StoreError::Closed`] (which `is_unwritable`).
pub(crate) struct Closed {
    pub dir: PathBuf,
}

impl Closed {
    fn err<T>(&self) -> Result<T, StoreError> {
        Err(StoreError::Closed {
            dir: self.dir.clone(),
        })
    }
}

impl Engine for Closed {
    fn enqueue(&self, _: FileKey, _: Fingerprint, _: i64) -> Result<Enqueued, StoreError> {
        self.err()
    }
    fn job(&self, _: JobId) -> Result<Option<Job>, StoreError> {
        self.err()
    }
    fn job_for(&self, _: &FileKey) -> Result<Option<Job>, StoreError> {
        self.err()
    }
    fn update(&self, _: JobId, _: JobOp) -> Result<Option<Job>, StoreError> {
        self.err()
    }
    fn parts_done(&self, _: JobId) -> Result<Vec<u32>, StoreError> {
        self.err()
    }
    fn synced(&self, _: &FileKey) -> Result<Option<SyncedFile>, StoreError> {
        self.err()
    }
    fn forget_synced(&self, _: &FileKey) -> Result<bool, StoreError> {
        self.err()
    }
    fn synced_page(
        &self,
        _: &str,
        _: Option<&FileKey>,
        _: usize,
    ) -> Result<Vec<(FileKey, SyncedFile)>, StoreError> {
        self.err()
    }
    fn due(&self, _: i64, _: usize) -> Result<Vec<Job>, StoreError> {
        self.err()
    }
    fn scan(&self, _: &dyn Fn(&Job) -> bool, _: usize) -> Result<Vec<Job>, StoreError> {
        self.err()
    }
    fn counts(&self) -> Result<Counts, StoreError> {
        self.err()
    }
    fn synced_by_root(&self) -> Result<std::collections::BTreeMap<String, u64>, StoreError> {
        self.err()
    }
    fn size_on_disk(&self) -> Result<u64, StoreError> {
        self.err()
    }
    fn flush_now(&self) -> Result<(), FlushFailure> {
        Err(FlushFailure::Closed)
    }
    fn probe(&self) -> Result<(), StoreError> {
        self.err()
    }
    fn failed(&self) -> bool {
        true
    }
}
