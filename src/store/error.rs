//! The job store's errors: each carries the state directory or the job it is about.
//!
//! Undecodable records are not errors here: they are quarantined and read as absent, so
//! one bad record never stops the daemon.

use std::path::PathBuf;
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

fn pid_text(pid: Option<u32>) -> String {
    match pid {
        Some(pid) => format!("pid {pid}"),
        None => "pid unknown".to_owned(),
    }
}
