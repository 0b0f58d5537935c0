//! Content hashes in the worker (`[sync] hash = "sha256"`).
//!
//! - Before uploading a path that was synced before: when only its fingerprint changed
//!   (same size, a new mtime or inode) and its SHA-256 equals the one recorded, nothing
//!   is sent; the new fingerprint is recorded against the same CDF file.
//! - After an upload: the hash, read alongside the upload, is stored in the file's
//!   metadata (`cdf-syncd.sha256`, by the worker with `files/update`) and in the synced
//!   record.

use std::path::Path;

use super::worker::{Ctx, Stop};
use crate::config::HashMode;
use crate::fingerprint::Fingerprint;
use crate::hash::{self, Sha256Digest};
use crate::store::Job;

/// Whether the configuration in force hashes content.
pub(super) fn enabled(ctx: &Ctx) -> bool {
    ctx.settings().sync.hash == HashMode::Sha256
}

/// The CDF file id and hash when the job's file has the content last synced for its
/// path (the upload can be skipped); `None` when it must be uploaded.
pub(super) async fn unchanged(
    ctx: &Ctx,
    job: &Job,
    path: &Path,
    fp: Fingerprint,
) -> Result<Option<(i64, Sha256Digest)>, Stop> {
    let Some(prev) = ctx.store.synced(&job.key)? else {
        return Ok(None);
    };
    let Some(recorded) = prev.sha256 else {
        return Ok(None);
    };
    if prev.fingerprint.size != fp.size {
        return Ok(None);
    }
    match digest(path, fp).await {
        Some(now) if now == recorded => Ok(Some((prev.file_id, now))),
        _ => Ok(None),
    }
}

/// The file's SHA-256 if it still has fingerprint `fp`; a read error only costs the
/// hash (the upload reports its own errors).
pub(super) async fn digest(path: &Path, fp: Fingerprint) -> Option<Sha256Digest> {
    match hash::sha256_file(path, fp).await {
        Ok(d) => d,
        Err(e) => {
            tracing::debug!(path = %path.display(), error = %e, "could not hash");
            None
        }
    }
}
