//! Content storage. (Stub: owned by the storage work.)

use std::path::PathBuf;

use super::EmulatorError;

/// Committed or staged content: where it is and what it hashes to.
#[derive(Debug, Clone)]
pub(crate) struct StoredBlob {
    pub size: u64,
    /// SHA-256 hex, when known.
    pub sha256: Option<String>,
    /// Where the bytes are (None with `--discard`).
    pub path: Option<PathBuf>,
}

pub(crate) struct ContentStore {}

impl ContentStore {
    pub fn open(_dir: Option<PathBuf>, _discard: bool) -> Result<Self, EmulatorError> {
        Ok(Self {})
    }

    /// Forgets content that is no longer referenced.
    pub fn release(&self, _blob: &StoredBlob) {}
}
