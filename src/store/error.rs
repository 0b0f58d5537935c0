//! The job store's errors: each carries the state directory or the job it is about.
//!
//! Undecodable records are not errors here: they are quarantined and read as absent, so
//! one bad record never stops the daemon.
//!
//! [`StoreError::is_unwritable`] separates "the state directory cannot take writes now"
//! (full, over quota, read-only, an IO error: pause and [`super::Store::probe_writable`]
//! until it heals) from everything else; [`StoreError::is_no_space`] narrows it to a
//! full disk.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::job::JobId;
use super::types::StateKind;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Another process holds the state directory's lock.
    #[error("another cdf-syncd owns {} ({})", dir.display(), pid_text(*pid))]
    Locked { dir: PathBuf, pid: Option<u32> },
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The engine refused to open for a reason moving it aside would not fix
    /// (permissions, a full disk).
    #[error("cannot open the job store in {}: {source}", dir.display())]
    Open { dir: PathBuf, source: sled::Error },
    /// Written by a newer cdf-syncd: refuse rather than guess.
    #[error(
        "{}: job store schema v{found} is newer than this cdf-syncd reads (v{supported}); \
         run the newer version or move the directory aside",
        dir.display()
    )]
    Schema {
        dir: PathBuf,
        found: u32,
        supported: u32,
    },
    #[error("job store {}: {source}", dir.display())]
    Engine { dir: PathBuf, source: sled::Error },
    #[error("flushing the job store {}: {source}", dir.display())]
    Flush {
        dir: PathBuf,
        source: Arc<sled::Error>,
    },
    /// The state directory's filesystem is full (or over quota). Nothing already flushed
    /// is lost; the store takes writes again once space is freed and
    /// [`super::Store::probe_writable`] succeeds.
    #[error(
        "the state directory {} is full ({source}): the job store cannot record progress; \
         free space on that filesystem (or give `[state] dir` more room)",
        dir.display()
    )]
    NoSpace {
        dir: PathBuf,
        source: Arc<sled::Error>,
    },
    /// The database was closed to be reopened after a write error, and the reopen has
    /// not succeeded yet (the disk is still full, say).
    #[error(
        "the job store in {} is closed after a write error and not reopened yet; it reopens \
         once the state directory takes writes again",
        dir.display()
    )]
    Closed { dir: PathBuf },
    #[error("no job {id}")]
    NoSuchJob { id: JobId },
    #[error("job {id} is {state}: cannot {op}")]
    WrongState {
        id: JobId,
        state: StateKind,
        op: &'static str,
    },
    #[error("job {id}: part {part} is outside its {parts} parts")]
    PartOutOfRange { id: JobId, part: u32, parts: u32 },
    #[error("job {id}: cannot encode the record: {source}")]
    Encode { id: JobId, source: postcard::Error },
}

impl StoreError {
    /// The state directory's filesystem is full or over quota.
    pub fn is_no_space(&self) -> bool {
        match self {
            StoreError::NoSpace { .. } => true,
            StoreError::Io { source, .. } => no_space_kind(source.kind()),
            _ => false,
        }
    }

    /// The state directory cannot take writes now: full, over quota, read-only, failing
    /// IO, or the store is closed after such an error. Not a reason to exit: pause, and
    /// call [`super::Store::probe_writable`] until it returns `Ok`. Corruption, schema
    /// and lock errors, and refused transitions are not this.
    pub fn is_unwritable(&self) -> bool {
        match self {
            StoreError::NoSpace { .. } | StoreError::Closed { .. } => true,
            StoreError::Io { source, .. } => !corrupt_kind(source.kind()),
            StoreError::Engine { source, .. } | StoreError::Open { source, .. } => {
                sled_io_kind(source).is_some_and(|k| !corrupt_kind(k))
            }
            StoreError::Flush { source, .. } => {
                sled_io_kind(source).is_some_and(|k| !corrupt_kind(k))
            }
            _ => false,
        }
    }
}

/// An engine error about `dir`, as the variant that says what it means.
pub(crate) fn engine(dir: &Path, source: sled::Error) -> StoreError {
    if sled_io_kind(&source).is_some_and(no_space_kind) {
        StoreError::NoSpace {
            dir: dir.to_owned(),
            source: Arc::new(source),
        }
    } else {
        StoreError::Engine {
            dir: dir.to_owned(),
            source,
        }
    }
}

/// A failed engine flush, as the variant that says what it means.
pub(crate) fn flush(dir: &Path, failure: FlushFailure) -> StoreError {
    let dir = dir.to_owned();
    match failure {
        FlushFailure::Engine(source) if sled_io_kind(&source).is_some_and(no_space_kind) => {
            StoreError::NoSpace { dir, source }
        }
        FlushFailure::Engine(source) => StoreError::Flush { dir, source },
        FlushFailure::Closed => StoreError::Closed { dir },
    }
}

/// Why an engine flush failed; shared by every caller of one group-commit round.
#[derive(Debug, Clone)]
pub(crate) enum FlushFailure {
    Engine(Arc<sled::Error>),
    /// The engine is closed, waiting to be reopened.
    Closed,
}

/// The IO error kind inside a sled error (sled wraps write errors as custom errors
/// that keep the kind: `Custom { kind: StorageFull, .. }`, measured).
pub(crate) fn sled_io_kind(e: &sled::Error) -> Option<ErrorKind> {
    match e {
        sled::Error::Io(io) => Some(io.kind()),
        _ => None,
    }
}

fn no_space_kind(kind: ErrorKind) -> bool {
    matches!(kind, ErrorKind::StorageFull | ErrorKind::QuotaExceeded)
}

/// IO errors that describe the data, not the directory.
fn corrupt_kind(kind: ErrorKind) -> bool {
    matches!(kind, ErrorKind::InvalidData | ErrorKind::UnexpectedEof)
}

fn pid_text(pid: Option<u32>) -> String {
    match pid {
        Some(pid) => format!("pid {pid}"),
        None => "pid unknown".to_owned(),
    }
}
