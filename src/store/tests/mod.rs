//! The store's unit tests: one conformance suite run against both engines, the sled
//! engine's own cases (quarantine, index consistency) and a property test of the job
//! state machine comparing the engines.

use tempfile::TempDir;

use super::*;

mod conformance;
mod no_space;
mod prop;
mod sled_only;

/// A store and whatever must outlive it.
pub(super) struct Fixture {
    pub store: Store,
    _dir: Option<TempDir>,
}

pub(super) fn memory() -> Fixture {
    Fixture {
        store: Store::in_memory(),
        _dir: None,
    }
}

pub(super) fn sled() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
    Fixture {
        store,
        _dir: Some(dir),
    }
}

pub(super) fn key(n: u32) -> FileKey {
    FileKey::new("root", std::path::Path::new(&format!("dir/file-{n}.bin")))
}

pub(super) fn fp(n: u64) -> Fingerprint {
    Fingerprint {
        size: 100 + n,
        mtime_ns: 1_700_000_000_000_000_000 + n as i64,
        inode: 42,
        device: 7,
    }
}

/// A multipart session with `parts` URLs; `n` tells sessions apart.
pub(super) fn upload(n: u64, parts: usize) -> Upload {
    Upload {
        file_id: 1000 + n as i64,
        target: Target::Multipart {
            upload_id: format!("upload-{n}"),
            urls: (0..parts).map(|p| format!("https://u/{n}/{p}")).collect(),
            part_size: 5 << 20,
        },
        urls_issued_ms: 1,
        source: fp(n),
    }
}

pub(super) fn synced(n: u64) -> SyncedFile {
    SyncedFile {
        fingerprint: fp(n),
        file_id: 1000 + n as i64,
        synced_ms: 5,
        sha256: None,
    }
}

/// Checks the sled trees against the jobs: every index entry points at a job in a
/// matching state, every job is indexed, parts belong to uploading or completing jobs.
pub(super) fn check_sled_invariants(store: &Store) {
    let Some(t) = store.engine().sled_trees() else {
        return;
    };
    let mut jobs = std::collections::BTreeMap::new();
    for entry in t.jobs.iter() {
        let (k, v) = entry.unwrap();
        let id = codec::id_from_key(&k).unwrap();
        jobs.insert(id, codec::decode_job(id, &v).unwrap());
    }
    let mut paths = 0;
    for entry in t.by_path.iter() {
        let (k, v) = entry.unwrap();
        let job = &jobs[&codec::id_from_key(&v).unwrap()];
        assert_eq!(
            codec::path_key(&job.key),
            k.to_vec(),
            "by_path points at its job"
        );
        paths += 1;
    }
    assert_eq!(
        paths,
        jobs.len(),
        "one path entry per job, one job per path"
    );
    let want: Vec<_> = jobs
        .values()
        .filter_map(|j| rules::due_ms(j).map(|t| codec::due_key(t, j.id).to_vec()))
        .collect();
    let mut want = want;
    want.sort();
    let have: Vec<_> = t.due.iter().keys().map(|k| k.unwrap().to_vec()).collect();
    assert_eq!(have, want, "the due index is exactly the due jobs");
    for k in t.parts.iter().keys() {
        let k = k.unwrap();
        let job = jobs
            .get(&codec::id_from_key(&k).unwrap())
            .expect("part of a live job");
        let (JobState::Uploading(u)
        | JobState::Completing(u)
        | JobState::Failed {
            resume: Some(u), ..
        }) = &job.state
        else {
            panic!("part record for a {} job", job.state.name());
        };
        assert!(codec::part_from_key(&k).unwrap() < rules::part_count(u));
    }
    let counts = store.counts().unwrap();
    for kind in StateKind::ALL {
        let n = jobs
            .values()
            .filter(|j| StateKind::of(&j.state) == kind)
            .count();
        assert_eq!(counts.get(kind), n as u64, "count of {kind}");
    }
    assert_eq!(counts.synced, t.synced.len() as u64);
}
