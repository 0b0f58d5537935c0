//! What a local file looked like when we saw it: size, mtime, inode and device.
//!
//! Two equal fingerprints mean "the same content" for the purposes of sync (unless
//! something rewrote the file in place within the same nanosecond and size, which the
//! optional content hash catches). The watcher takes them, the store persists them,
//! and the uploader compares them before and after reading a file.

use std::os::unix::fs::MetadataExt;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Fingerprint {
    pub size: u64,
    /// Modification time, nanoseconds since the Unix epoch (negative before it).
    pub mtime_ns: i64,
    pub inode: u64,
    pub device: u64,
}

impl Fingerprint {
    pub fn of(meta: &std::fs::Metadata) -> Self {
        Self {
            size: meta.len(),
            mtime_ns: meta
                .mtime()
                .saturating_mul(1_000_000_000)
                .saturating_add(meta.mtime_nsec()),
            inode: meta.ino(),
            device: meta.dev(),
        }
    }

    /// Modification time in milliseconds since the epoch (CDF's timestamps).
    pub fn mtime_ms(&self) -> i64 {
        self.mtime_ns.div_euclid(1_000_000)
    }

    /// For unit tests: a file of `size` bytes, the rest fixed.
    #[cfg(test)]
    pub(crate) fn sized(size: u64) -> Self {
        Self {
            size,
            mtime_ns: 1,
            inode: 2,
            device: 3,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_changes_when_the_file_does() {
        let dir = tempfile::tempdir().expect("tmp");
        let p = dir.path().join("f");
        std::fs::write(&p, b"one").expect("write");
        let a = Fingerprint::of(&std::fs::metadata(&p).expect("meta"));
        assert_eq!(a, Fingerprint::of(&std::fs::metadata(&p).expect("meta")));
        std::fs::write(&p, b"two!").expect("write");
        let b = Fingerprint::of(&std::fs::metadata(&p).expect("meta"));
        assert_ne!(a, b);
        assert_eq!(b.size, 4);
        assert!(b.mtime_ms() > 1_600_000_000_000);
    }
}
