//! On-disk encodings: keys that must sort are big-endian bytes, values are versioned.
//!
//! Values are postcard-encoded `enum StoredX { V1(X) }`: the variant index is the first
//! byte, so a later schema adds `V2` and still reads `V1`. A value that does not decode
//! completely (unknown variant, short, trailing bytes) is garbage and gets quarantined.
//!
//! Keys: a job id is its `u64` big-endian; a path is `u32 BE len(root) ++ root ++ rel`
//! (so one root's paths are a contiguous range); the due index is `sortable(due_ms) ++
//! id BE` (oldest first, ties by id); a part is `id BE ++ part BE`.

use serde::{Deserialize, Serialize};

use super::job::{FileKey, Job, JobId, SyncedFile};

/// The schema of every tree in the database, kept in `meta`.
pub(crate) const SCHEMA_VERSION: u32 = 1;

#[derive(Serialize)]
enum StoredJobRef<'a> {
    V1(&'a Job),
}

#[derive(Deserialize)]
enum StoredJob {
    V1(Job),
}

/// Only `V2` is written; the index of each variant is its place here.
#[derive(Serialize)]
enum StoredSyncedRef<'a> {
    #[allow(dead_code)]
    V1(()),
    V2(&'a SyncedFile),
}

#[derive(Deserialize)]
enum StoredSynced {
    V1(SyncedFileV1),
    V2(SyncedFile),
}

/// A synced record before content hashes (schema 1).
#[derive(Deserialize)]
struct SyncedFileV1 {
    fingerprint: crate::fingerprint::Fingerprint,
    file_id: i64,
    synced_ms: i64,
}

/// Why a stored value is garbage.
#[derive(Debug, thiserror::Error)]
pub(crate) enum DecodeError {
    #[error("{0}")]
    Postcard(#[from] postcard::Error),
    #[error("{0} trailing bytes")]
    Trailing(usize),
    #[error("record for job {stored} stored under job {key}")]
    WrongId { key: JobId, stored: JobId },
}

pub(crate) fn encode_job(job: &Job) -> Result<Vec<u8>, postcard::Error> {
    postcard::to_stdvec(&StoredJobRef::V1(job))
}

/// Decodes the job stored under `key`.
pub(crate) fn decode_job(key: JobId, bytes: &[u8]) -> Result<Job, DecodeError> {
    let StoredJob::V1(job) = decode_all(bytes)?;
    if job.id != key {
        return Err(DecodeError::WrongId {
            key,
            stored: job.id,
        });
    }
    Ok(job)
}

pub(crate) fn encode_synced(synced: &SyncedFile) -> Result<Vec<u8>, postcard::Error> {
    postcard::to_stdvec(&StoredSyncedRef::V2(synced))
}

pub(crate) fn decode_synced(bytes: &[u8]) -> Result<SyncedFile, DecodeError> {
    Ok(match decode_all(bytes)? {
        StoredSynced::V1(old) => SyncedFile {
            fingerprint: old.fingerprint,
            file_id: old.file_id,
            synced_ms: old.synced_ms,
            sha256: None,
        },
        StoredSynced::V2(synced) => synced,
    })
}

fn decode_all<'de, T: Deserialize<'de>>(bytes: &'de [u8]) -> Result<T, DecodeError> {
    let (value, rest) = postcard::take_from_bytes(bytes)?;
    if rest.is_empty() {
        Ok(value)
    } else {
        Err(DecodeError::Trailing(rest.len()))
    }
}

pub(crate) fn id_key(id: JobId) -> [u8; 8] {
    id.0.to_be_bytes()
}

pub(crate) fn id_from_key(key: &[u8]) -> Option<JobId> {
    let bytes: [u8; 8] = key.get(..8)?.try_into().ok()?;
    Some(JobId(u64::from_be_bytes(bytes)))
}

pub(crate) fn path_key(key: &FileKey) -> Vec<u8> {
    let root = key.root.as_bytes();
    let len = u32::try_from(root.len()).unwrap_or(u32::MAX);
    let mut out = Vec::with_capacity(4 + root.len() + key.rel.len());
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(root);
    out.extend_from_slice(&key.rel);
    out
}

/// The path key's first bytes shared by every path of `root`.
pub(crate) fn root_prefix(root: &str) -> Vec<u8> {
    path_key(&FileKey {
        root: root.to_owned(),
        rel: Vec::new(),
    })
}

/// The [`FileKey`] a path key stands for.
pub(crate) fn path_from_key(key: &[u8]) -> Option<FileKey> {
    let len: [u8; 4] = key.get(..4)?.try_into().ok()?;
    let end = 4 + usize::try_from(u32::from_be_bytes(len)).ok()?;
    let root = std::str::from_utf8(key.get(4..end)?).ok()?;
    Some(FileKey {
        root: root.to_owned(),
        rel: key.get(end..)?.to_vec(),
    })
}

/// An `i64` as bytes whose order is the numeric order (sign bit flipped).
fn sortable(ms: i64) -> [u8; 8] {
    ((ms as u64) ^ (1 << 63)).to_be_bytes()
}

fn from_sortable(bytes: [u8; 8]) -> i64 {
    (u64::from_be_bytes(bytes) ^ (1 << 63)) as i64
}

pub(crate) fn due_key(due_ms: i64, id: JobId) -> [u8; 16] {
    let mut out = [0; 16];
    out[..8].copy_from_slice(&sortable(due_ms));
    out[8..].copy_from_slice(&id_key(id));
    out
}

/// The first key after every entry due at or before `now_ms`.
pub(crate) fn due_end(now_ms: i64) -> [u8; 16] {
    match now_ms.checked_add(1) {
        Some(next) => due_key(next, JobId(0)),
        None => [0xff; 16],
    }
}

pub(crate) fn due_from_key(key: &[u8]) -> Option<(i64, JobId)> {
    let time: [u8; 8] = key.get(..8)?.try_into().ok()?;
    let id = id_from_key(key.get(8..)?)?;
    (key.len() == 16).then_some((from_sortable(time), id))
}

pub(crate) fn part_key(id: JobId, part: u32) -> [u8; 12] {
    let mut out = [0; 12];
    out[..8].copy_from_slice(&id_key(id));
    out[8..].copy_from_slice(&part.to_be_bytes());
    out
}

pub(crate) fn part_from_key(key: &[u8]) -> Option<u32> {
    let bytes: [u8; 4] = key.get(8..12)?.try_into().ok()?;
    Some(u32::from_be_bytes(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fingerprint::Fingerprint;
    use crate::store::job::JobState;

    fn job() -> Job {
        Job {
            id: JobId(7),
            key: FileKey::new("r", std::path::Path::new("a/b.bin")),
            fingerprint: Fingerprint {
                size: 3,
                mtime_ns: -5,
                inode: 9,
                device: 1,
            },
            overwrite: true,
            state: JobState::Queued,
            attempts: 2,
            created_ms: 1_700_000_000_000,
        }
    }

    #[test]
    fn a_job_round_trips_and_starts_with_its_version() {
        let bytes = encode_job(&job()).unwrap();
        assert_eq!(bytes[0], 0, "V1 is variant 0");
        assert_eq!(decode_job(JobId(7), &bytes).unwrap(), job());
    }

    #[test]
    fn synced_records_of_schema_one_still_decode() {
        #[derive(Serialize)]
        enum OldRef {
            V1(OldSynced),
        }
        #[derive(Serialize)]
        struct OldSynced {
            fingerprint: Fingerprint,
            file_id: i64,
            synced_ms: i64,
        }
        let fingerprint = job().fingerprint;
        let old = postcard::to_stdvec(&OldRef::V1(OldSynced {
            fingerprint,
            file_id: 42,
            synced_ms: 5,
        }))
        .unwrap();
        let want = SyncedFile {
            fingerprint,
            file_id: 42,
            synced_ms: 5,
            sha256: None,
        };
        assert_eq!(decode_synced(&old).unwrap(), want);
        let new = SyncedFile {
            sha256: Some([7; 32]),
            ..want
        };
        let bytes = encode_synced(&new).unwrap();
        assert_eq!(bytes[0], 1, "V2 is variant 1");
        assert_eq!(decode_synced(&bytes).unwrap(), new);
    }

    #[test]
    fn garbage_does_not_decode() {
        let bytes = encode_job(&job()).unwrap();
        assert!(decode_job(JobId(8), &bytes).is_err(), "wrong key");
        assert!(decode_job(JobId(7), &bytes[..bytes.len() - 1]).is_err());
        let mut long = bytes.clone();
        long.push(0);
        assert!(decode_job(JobId(7), &long).is_err());
        assert!(decode_job(JobId(7), &[9, 9, 9]).is_err(), "unknown version");
        assert!(decode_synced(b"").is_err());
    }

    #[test]
    fn due_keys_sort_by_time_then_id_across_zero() {
        let mut keys = [
            due_key(5, JobId(1)),
            due_key(-3, JobId(9)),
            due_key(5, JobId(0)),
            due_key(i64::MIN, JobId(4)),
            due_key(i64::MAX, JobId(2)),
            due_key(0, JobId(3)),
        ];
        keys.sort();
        let decoded: Vec<_> = keys.iter().map(|k| due_from_key(k).unwrap()).collect();
        let want = [
            (i64::MIN, JobId(4)),
            (-3, JobId(9)),
            (0, JobId(3)),
            (5, JobId(0)),
            (5, JobId(1)),
            (i64::MAX, JobId(2)),
        ];
        assert_eq!(decoded, want);
        assert!(due_key(5, JobId(u64::MAX)) < due_end(5));
        assert!(due_end(5) <= due_key(6, JobId(0)));
        assert!(due_key(i64::MAX, JobId(u64::MAX)) <= due_end(i64::MAX));
    }

    #[test]
    fn path_keys_keep_roots_apart() {
        let a = path_key(&FileKey::new("ab", std::path::Path::new("c")));
        let b = path_key(&FileKey::new("a", std::path::Path::new("bc")));
        assert_ne!(a, b);
        let key = FileKey::new("ab", std::path::Path::new("c/d"));
        assert_eq!(path_from_key(&path_key(&key)), Some(key));
        assert!(
            path_key(&FileKey::new("ab", std::path::Path::new("x")))
                .starts_with(&root_prefix("ab"))
        );
        assert!(
            !path_key(&FileKey::new("abc", std::path::Path::new("x")))
                .starts_with(&root_prefix("ab"))
        );
        assert_eq!(part_from_key(&part_key(JobId(3), 77)), Some(77));
        assert_eq!(id_from_key(&part_key(JobId(3), 77)), Some(JobId(3)));
    }
}
