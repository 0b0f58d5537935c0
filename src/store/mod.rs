//! The job store: the single durable source of truth about every file's sync state.
//!
//! [`Store`] is a small API over one storage engine: sled in `sled_store/` (the only
//! module that knows sled's API) or an in-memory double in `memory.rs` for tests. Both
//! take their decisions from `rules.rs` and pass one conformance suite. Per job the
//! store keeps one versioned record ([`Job`]), per path the fingerprint of what was last
//! synced ([`SyncedFile`]), per finished part one small record, and an index by due time
//! so that `due` reads only the jobs it returns.
//!
//! **Durability rule for callers: write the transition, `flush().await`, then do the
//! side effect it allows** (send the next request, complete the upload, delete or move
//! the source, report success). A write that was not flushed can vanish on a crash,
//! even a plain process abort (sled buffers writes inside the process); `flush` is
//! group commit, so many workers flushing at once share one engine flush. Losing
//! unflushed writes only costs re-work: a part is sent again, a file is found by the
//! next scan. Caveat: on Linux sled 0.34's flush is `pwrite` + `sync_file_range`, not
//! `fsync`: it survives any process crash, but a power cut can still lose the last
//! flushed writes (drive cache, file metadata); the state is rebuildable (startup scan
//! and CDF lookup by externalId), which is what covers that case.
//!
//! **A state directory that cannot be written** (full disk, read-only remount, IO
//! errors): every write fails with an error for which [`StoreError::is_unwritable`]
//! holds ([`StoreError::NoSpace`] names the directory when it is full). What was
//! flushed before stays intact; unflushed writes may be lost, as in a crash. sled
//! refuses every write of a handle after its first IO error, even once space is back,
//! so recovery is [`Store::probe_writable`]: it reopens the database in place when an
//! error left it failed, then writes and flushes a probe; `Ok` means resume.
//!
//! **What may block**: point operations (`enqueue`, `job`, `set_state`, `finish`, ...)
//! take microseconds and are fine on the async runtime. `open` (it reads every record
//! once), `in_flight`, `list`, `retry_all_failed` (they walk every job) and
//! `flush_blocking` may take milliseconds or more: call them at startup or inside
//! `tokio::task::spawn_blocking`. `flush` never blocks a runtime thread.

mod codec;
mod error;
mod flush;
pub mod job;
mod memory;
mod rules;
mod sled_store;
mod slot;
mod state_dir;
mod types;

#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

pub use error::StoreError;
pub use job::{FailureKind, FileKey, Job, JobId, JobState, SyncedFile, Target, Upload};
pub use types::{Counts, Enqueued, FlushStats, StateKind, StoreOptions};

use crate::fingerprint::Fingerprint;
use error::FlushFailure;
use flush::GroupCommit;
use rules::JobOp;
use slot::{Closed, EngineSlot};
use state_dir::StateLock;

/// What an engine provides; [`Store`] adds group commit and the conveniences.
pub(crate) trait Engine: Send + Sync {
    fn enqueue(&self, key: FileKey, fp: Fingerprint, now_ms: i64) -> Result<Enqueued, StoreError>;
    fn job(&self, id: JobId) -> Result<Option<Job>, StoreError>;
    fn job_for(&self, key: &FileKey) -> Result<Option<Job>, StoreError>;
    /// Applies one transition; returns the job as it now is (`None`: removed).
    fn update(&self, id: JobId, op: JobOp) -> Result<Option<Job>, StoreError>;
    fn parts_done(&self, id: JobId) -> Result<Vec<u32>, StoreError>;
    fn synced(&self, key: &FileKey) -> Result<Option<SyncedFile>, StoreError>;
    fn forget_synced(&self, key: &FileKey) -> Result<bool, StoreError>;
    /// Synced records of `root` in path order after `after` (from the start when
    /// `None`), at most `limit`.
    fn synced_page(
        &self,
        root: &str,
        after: Option<&FileKey>,
        limit: usize,
    ) -> Result<Vec<(FileKey, SyncedFile)>, StoreError>;
    fn due(&self, now_ms: i64, limit: usize) -> Result<Vec<Job>, StoreError>;
    /// Jobs in id order for which `keep` holds, at most `limit`.
    fn scan(&self, keep: &dyn Fn(&Job) -> bool, limit: usize) -> Result<Vec<Job>, StoreError>;
    fn counts(&self) -> Result<Counts, StoreError>;
    /// Synced paths per root id (roots without any are left out).
    fn synced_by_root(&self) -> Result<std::collections::BTreeMap<String, u64>, StoreError>;
    fn size_on_disk(&self) -> Result<u64, StoreError>;
    /// Makes every write so far durable (sled: write + `sync_file_range` of its log).
    fn flush_now(&self) -> Result<(), FlushFailure>;
    /// Writes a small record and flushes it: `Ok` when durable writes work.
    fn probe(&self) -> Result<(), StoreError>;
    /// An IO error left the engine refusing writes until it is reopened.
    fn failed(&self) -> bool {
        false
    }
    /// The sled engine's trees, for white-box tests.
    #[cfg(test)]
    fn sled_trees(&self) -> Option<sled_store::Trees> {
        None
    }
}

/// The job store; cheap to clone (all clones share one engine).
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    engine: Arc<EngineSlot>,
    commit: GroupCommit<FlushFailure>,
    dir: PathBuf,
    moved_aside: Option<PathBuf>,
    /// How to open the sled engine again (`None`: the double).
    reopen: Option<Reopen>,
}

struct Reopen {
    options: StoreOptions,
    /// The state directory's lock, kept across the reopen.
    lock: Arc<StateLock>,
    /// One reopen at a time.
    running: Mutex<()>,
}

impl Store {
    /// Opens (or creates) the store in the state directory `dir`, taking its lock
    /// first: a second process gets [`StoreError::Locked`]. A database that cannot be
    /// opened is moved aside to `db.corrupt-<unix time>` with an ERROR and the store
    /// starts empty ([`Store::moved_aside`]). Blocks: reads every record once.
    pub fn open(dir: impl AsRef<Path>, options: StoreOptions) -> Result<Store, StoreError> {
        let dir = dir.as_ref();
        let (engine, moved_aside) = sled_store::open(dir, options)?;
        let reopen = Reopen {
            options,
            lock: engine.state_lock(),
            running: Mutex::new(()),
        };
        Ok(Self::with_engine(
            Arc::new(engine),
            dir.to_owned(),
            moved_aside,
            Some(reopen),
        ))
    }

    /// An empty store that lives in memory only (tests and dry runs).
    pub fn in_memory() -> Store {
        let engine = Arc::new(memory::MemoryStore::default());
        Self::with_engine(engine, PathBuf::from(":memory:"), None, None)
    }

    fn with_engine(
        engine: Arc<dyn Engine>,
        dir: PathBuf,
        moved_aside: Option<PathBuf>,
        reopen: Option<Reopen>,
    ) -> Self {
        let engine = Arc::new(EngineSlot::new(engine));
        let flusher = engine.clone();
        let commit = GroupCommit::new(move || flusher.get().flush_now());
        Self {
            inner: Arc::new(Inner {
                engine,
                commit,
                dir,
                moved_aside,
                reopen,
            }),
        }
    }

    fn engine(&self) -> Arc<dyn Engine> {
        self.inner.engine.get()
    }

    /// The state directory (`:memory:` for the double).
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// Where a broken database was moved when this store was opened: the state was
    /// lost, so the startup scan must re-discover every file and look each up in CDF.
    pub fn moved_aside(&self) -> Option<&Path> {
        self.inner.moved_aside.as_deref()
    }

    /// Records a stable file, deduplicated per path; see [`Enqueued`] for the rules.
    pub fn enqueue(
        &self,
        key: FileKey,
        fingerprint: Fingerprint,
        now_ms: i64,
    ) -> Result<Enqueued, StoreError> {
        let outcome = self.engine().enqueue(key.clone(), fingerprint, now_ms);
        if let Ok(outcome) = &outcome {
            tracing::debug!(path = %key, ?fingerprint, ?outcome, "enqueue");
        }
        outcome
    }

    pub fn job(&self, id: JobId) -> Result<Option<Job>, StoreError> {
        self.engine().job(id)
    }

    /// The path's job, if it has one (a path has at most one).
    pub fn job_for(&self, key: &FileKey) -> Result<Option<Job>, StoreError> {
        self.engine().job_for(key)
    }

    fn transition(&self, id: JobId, op: JobOp) -> Result<Job, StoreError> {
        self.engine()
            .update(id, op)?
            .ok_or(StoreError::NoSuchJob { id })
    }

    /// Sets any state. Part records survive only a move between `Uploading` and
    /// `Completing` of the same session; every other change clears them.
    pub fn set_state(&self, id: JobId, state: JobState) -> Result<Job, StoreError> {
        self.transition(id, JobOp::SetState(state))
    }

    /// Starts a new upload session: clears old part records and sets `Uploading`, in
    /// one atomic step.
    pub fn start_upload(&self, id: JobId, upload: Upload) -> Result<Job, StoreError> {
        self.transition(id, JobOp::StartUpload(upload))
    }

    /// Sets `Failed` and counts the attempt (`attempts += 1`). A transient failure is
    /// due again at `retry_at_ms`; a permanent one waits for [`Store::retry`].
    pub fn record_failure(
        &self,
        id: JobId,
        kind: FailureKind,
        retry_at_ms: i64,
        error: &str,
    ) -> Result<Job, StoreError> {
        let error = error.to_owned();
        let op = JobOp::Fail {
            kind,
            retry_at_ms,
            error,
        };
        self.transition(id, op)
    }

    /// Records a part as sent; only while `Uploading`, and only a part of its session.
    pub fn mark_part_done(&self, id: JobId, part: u32) -> Result<(), StoreError> {
        self.engine().update(id, JobOp::PartDone(part)).map(drop)
    }

    /// The parts recorded for the job's current session, ascending.
    pub fn parts_done(&self, id: JobId) -> Result<Vec<u32>, StoreError> {
        self.engine().parts_done(id)
    }

    /// Compaction of a `Done` job: writes the path's [`SyncedFile`] and removes the job
    /// and its parts in one atomic step.
    pub fn finish(&self, id: JobId, synced: SyncedFile) -> Result<(), StoreError> {
        self.engine().update(id, JobOp::Finish(synced)).map(drop)
    }

    /// What was last synced at this path.
    pub fn synced(&self, key: &FileKey) -> Result<Option<SyncedFile>, StoreError> {
        self.engine().synced(key)
    }

    /// Drops the path's synced record (the source was deleted or moved away); returns
    /// whether there was one.
    pub fn forget_synced(&self, key: &FileKey) -> Result<bool, StoreError> {
        self.engine().forget_synced(key)
    }

    /// One page of `root`'s synced records in path order, after `after`: the caller
    /// walks them all page by page without holding them all (the deletion sweep).
    pub fn synced_page(
        &self,
        root: &str,
        after: Option<&FileKey>,
        limit: usize,
    ) -> Result<Vec<(FileKey, SyncedFile)>, StoreError> {
        self.engine().synced_page(root, after, limit)
    }

    /// Up to `limit` jobs ready to run at `now_ms`, oldest first: `Queued` (by creation)
    /// and transient failures whose `retry_at_ms` has passed (by retry time). A job stays
    /// due until its state changes. Reads only the index entries it returns.
    pub fn due(&self, now_ms: i64, limit: usize) -> Result<Vec<Job>, StoreError> {
        self.engine().due(now_ms, limit)
    }

    /// Jobs `Uploading`, `Completing` or `Done`: what a restart must resume. Blocks.
    pub fn in_flight(&self) -> Result<Vec<Job>, StoreError> {
        let busy = |j: &Job| {
            matches!(
                StateKind::of(&j.state),
                StateKind::Uploading | StateKind::Completing | StateKind::Done
            )
        };
        self.engine().scan(&busy, usize::MAX)
    }

    /// Up to `limit` jobs in id order, optionally of one state. Blocks.
    pub fn list(&self, state: Option<StateKind>, limit: usize) -> Result<Vec<Job>, StoreError> {
        let keep = |j: &Job| state.is_none_or(|k| StateKind::of(&j.state) == k);
        self.engine().scan(&keep, limit)
    }

    /// Synced paths per root id (roots without any are left out). Cheap on sled (kept
    /// up to date); the in-memory double counts.
    pub fn synced_by_root(&self) -> Result<std::collections::BTreeMap<String, u64>, StoreError> {
        self.engine().synced_by_root()
    }

    /// Jobs per state, synced paths, quarantined records. Cheap (kept up to date).
    pub fn counts(&self) -> Result<Counts, StoreError> {
        self.engine().counts()
    }

    /// Operator retry: `Failed` -> `Queued` with `attempts` reset; due at once.
    pub fn retry(&self, id: JobId) -> Result<Job, StoreError> {
        self.transition(id, JobOp::Retry)
    }

    /// Retries every failed job; returns how many. Blocks.
    pub fn retry_all_failed(&self) -> Result<usize, StoreError> {
        let failed = self
            .list(Some(StateKind::Failed), usize::MAX)?
            .into_iter()
            .map(|j| j.id);
        let mut retried = 0;
        for id in failed {
            match self.retry(id) {
                Ok(_) => retried += 1,
                // moved on concurrently
                Err(StoreError::NoSuchJob { .. } | StoreError::WrongState { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(retried)
    }

    /// Drops a job and its parts (the path's synced record stays); returns whether
    /// there was one.
    pub fn forget(&self, id: JobId) -> Result<bool, StoreError> {
        match self.engine().update(id, JobOp::Forget) {
            Ok(_) => Ok(true),
            Err(StoreError::NoSuchJob { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Bytes the database takes on disk (0 for the double).
    pub fn size_on_disk(&self) -> Result<u64, StoreError> {
        self.engine().size_on_disk()
    }

    /// Makes every write made before this call durable; concurrent callers share one
    /// engine flush (group commit). Runs on the blocking pool; needs a tokio runtime.
    pub async fn flush(&self) -> Result<(), StoreError> {
        self.inner
            .commit
            .flush()
            .await
            .map_err(|source| self.flush_error(source))
    }

    /// [`Store::flush`] on the calling thread, for code outside a runtime. Blocks.
    pub fn flush_blocking(&self) -> Result<(), StoreError> {
        self.inner
            .commit
            .flush_blocking()
            .map_err(|source| self.flush_error(source))
    }

    fn flush_error(&self, failure: FlushFailure) -> StoreError {
        error::flush(&self.inner.dir, failure)
    }

    /// After an error for which [`StoreError::is_unwritable`] held: whether the store
    /// takes durable writes again. Reopens the database first when the error left it
    /// refusing writes ([`Store::reopen_blocking`]), then writes a small probe record
    /// and flushes it. `Ok`: resume (and rescan: files found meanwhile were not
    /// recorded). `Err`: still unwritable; probe again later. Runs on the blocking pool.
    pub async fn probe_writable(&self) -> Result<(), StoreError> {
        let store = self.clone();
        tokio::task::spawn_blocking(move || store.probe_writable_blocking())
            .await
            .unwrap_or_else(|_| {
                Err(StoreError::Closed {
                    dir: self.inner.dir.clone(),
                })
            })
    }

    /// [`Store::probe_writable`] on the calling thread. Blocks.
    pub fn probe_writable_blocking(&self) -> Result<(), StoreError> {
        if self.engine().failed() {
            self.reopen_blocking()?;
        }
        self.engine().probe()
    }

    /// Closes the database and opens it again in place; every clone of this store uses
    /// the new one. This is how sled recovers from a write error: it refuses every
    /// later write of the handle that saw one, even once the cause is gone. Writes not
    /// flushed before the error are lost, as in a crash (nobody acted on them). While
    /// closed, and if opening fails (the disk is still full), operations fail with
    /// [`StoreError::Closed`]. Never moves the database aside. A no-op for the
    /// in-memory double. Blocks (reads every record once).
    pub fn reopen_blocking(&self) -> Result<(), StoreError> {
        let Some(reopen) = &self.inner.reopen else {
            return Ok(());
        };
        let _one = reopen
            .running
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let dir = self.inner.dir.clone();
        let closed = Arc::new(Closed { dir: dir.clone() });
        drop(self.inner.engine.replace(closed));
        let engine = sled_store::reopen(&dir, reopen.options, reopen.lock.clone())?;
        self.inner.engine.replace(Arc::new(engine));
        tracing::info!(dir = %dir.display(), "job store reopened");
        Ok(())
    }

    /// How many `flush` calls the engine flushes served so far.
    pub fn flush_stats(&self) -> FlushStats {
        self.inner.commit.stats()
    }
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("dir", &self.inner.dir)
            .finish_non_exhaustive()
    }
}
