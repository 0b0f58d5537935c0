//! Content hashes (`[sync] hash = "sha256"`): a file's SHA-256, computed off the
//! runtime, and its form in CDF metadata (`cdf-syncd.sha256`, lowercase hex).
//!
//! A hash is only good for the version of the file it was read from: the file is
//! stat'ed before and after the read, and a hash of a file that changed meanwhile is
//! thrown away (`Ok(None)`). Dropping a [`sha256_file`] future stops the read at the
//! next buffer.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use sha2::{Digest, Sha256};

use crate::fingerprint::Fingerprint;

/// The metadata key that holds a file's SHA-256 in CDF.
pub const METADATA_KEY: &str = "cdf-syncd.sha256";

/// A SHA-256 digest.
pub type Sha256Digest = [u8; 32];

const BUF: usize = 256 << 10;

/// The SHA-256 of `path` if it still has fingerprint `expected` before and after the
/// read; `None` when it changed (or vanished) meanwhile.
pub async fn sha256_file(
    path: &Path,
    expected: Fingerprint,
) -> std::io::Result<Option<Sha256Digest>> {
    let stop = Arc::new(AtomicBool::new(false));
    let _stop_on_drop = StopOnDrop(stop.clone());
    let path = path.to_owned();
    tokio::task::spawn_blocking(move || sha256_file_blocking(&path, expected, &stop))
        .await
        .map_err(std::io::Error::other)?
}

struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// [`sha256_file`] on the calling thread; `stop` ends the read early (`Ok(None)`).
pub fn sha256_file_blocking(
    path: &Path,
    expected: Fingerprint,
    stop: &AtomicBool,
) -> std::io::Result<Option<Sha256Digest>> {
    let unchanged = |path: &PathBuf| -> std::io::Result<bool> {
        match std::fs::symlink_metadata(path) {
            Ok(meta) => Ok(Fingerprint::of(&meta) == expected),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    };
    let path = path.to_owned();
    if !unchanged(&path)? {
        return Ok(None);
    }
    let mut file = match std::fs::File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; BUF];
    loop {
        if stop.load(Ordering::Relaxed) {
            return Ok(None);
        }
        let n = match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        hasher.update(buf.get(..n).unwrap_or_default());
    }
    if !unchanged(&path)? {
        return Ok(None);
    }
    Ok(Some(hasher.finalize().into()))
}

/// Lowercase hex, as stored in CDF metadata.
pub fn to_hex(digest: &Sha256Digest) -> String {
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Parses 64 hex digits (either case); `None` for anything else.
pub fn from_hex(text: &str) -> Option<Sha256Digest> {
    let digits: Vec<u32> = text
        .chars()
        .map(|c| c.to_digit(16))
        .collect::<Option<_>>()?;
    if digits.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (byte, pair) in out.iter_mut().zip(digits.chunks_exact(2)) {
        let [hi, lo] = pair else { return None };
        *byte = u8::try_from(hi * 16 + lo).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fp(path: &Path) -> Fingerprint {
        Fingerprint::of(&std::fs::symlink_metadata(path).expect("stat"))
    }

    #[tokio::test]
    async fn hashes_the_file_it_was_asked_about() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("f");
        std::fs::write(&path, vec![7u8; 600 << 10]).expect("write");
        let digest = sha256_file(&path, fp(&path))
            .await
            .expect("read")
            .expect("unchanged");
        let want: Sha256Digest = Sha256::digest(vec![7u8; 600 << 10]).into();
        assert_eq!(digest, want);
        assert_eq!(from_hex(&to_hex(&digest)), Some(digest));
        assert_eq!(
            to_hex(&Sha256::digest(b"").into()),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[tokio::test]
    async fn a_changed_or_vanished_file_has_no_hash() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("f");
        std::fs::write(&path, b"one").expect("write");
        let old = fp(&path);
        std::fs::write(&path, b"two!").expect("rewrite");
        assert_eq!(sha256_file(&path, old).await.expect("read"), None);
        let now = fp(&path);
        std::fs::remove_file(&path).expect("rm");
        assert_eq!(sha256_file(&path, now).await.expect("read"), None);
    }

    #[test]
    fn a_stopped_read_has_no_hash() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("f");
        std::fs::write(&path, b"data").expect("write");
        let stop = AtomicBool::new(true);
        assert_eq!(
            sha256_file_blocking(&path, fp(&path), &stop).expect("read"),
            None
        );
    }

    #[test]
    fn hex_that_is_not_a_digest_is_refused() {
        assert_eq!(from_hex(""), None);
        assert_eq!(from_hex(&"g".repeat(64)), None);
        assert_eq!(from_hex(&"a".repeat(63)), None);
        assert_eq!(from_hex(&format!("+a{}", "0".repeat(62))), None);
        assert_eq!(from_hex(&"AB".repeat(32)), Some([0xab; 32]));
    }
}
