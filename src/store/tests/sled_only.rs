//! Cases only the sled engine has: garbage records and what they leave behind.

use super::*;

fn trees(s: &Store) -> sled_store::Trees {
    s.engine().sled_trees().unwrap()
}

#[test]
fn a_garbage_job_record_is_quarantined_not_fatal() {
    let f = sled();
    let s = &f.store;
    let Enqueued::New(id) = s.enqueue(key(1), fp(1), 10).unwrap() else {
        panic!("not new")
    };
    let Enqueued::New(kept) = s.enqueue(key(2), fp(1), 10).unwrap() else {
        panic!("not new")
    };
    s.start_upload(id, upload(1, 2)).unwrap();
    s.mark_part_done(id, 1).unwrap();
    s.set_state(id, JobState::Queued).unwrap();
    let garbage = b"\x07not a job";
    trees(s)
        .jobs
        .insert(codec::id_key(id), &garbage[..])
        .unwrap();

    assert_eq!(s.job(id).unwrap(), None);
    assert_eq!(s.counts().unwrap().quarantined, 1);
    let stored = trees(s)
        .quarantine
        .get([&b"jobs/"[..], &codec::id_key(id)].concat())
        .unwrap();
    assert_eq!(
        stored.as_deref(),
        Some(&garbage[..]),
        "the bytes are kept for a post-mortem"
    );
    assert_eq!(s.job_for(&key(1)).unwrap(), None);
    let due: Vec<_> = s.due(i64::MAX, 10).unwrap().iter().map(|j| j.id).collect();
    assert_eq!(due, vec![kept]);
    let Enqueued::New(again) = s.enqueue(key(1), fp(1), 20).unwrap() else {
        panic!("not new")
    };
    assert_ne!(again, id, "the next scan re-discovers the path");
    check_sled_invariants(s);
}

#[test]
fn garbage_met_while_listing_or_picking_is_quarantined() {
    let f = sled();
    let s = &f.store;
    for n in 0..3 {
        s.enqueue(key(n), fp(1), 10).unwrap();
    }
    let ids: Vec<_> = s.list(None, 10).unwrap().iter().map(|j| j.id).collect();
    trees(s)
        .jobs
        .insert(codec::id_key(ids[0]), &b""[..])
        .unwrap();
    assert_eq!(s.due(i64::MAX, 10).unwrap().len(), 2);
    trees(s)
        .jobs
        .insert(codec::id_key(ids[1]), &b"\x00"[..])
        .unwrap();
    assert_eq!(s.list(None, 10).unwrap().len(), 1);
    assert_eq!(s.counts().unwrap().quarantined, 2);
    check_sled_invariants(s);
}

#[test]
fn a_garbage_synced_record_means_upload_again() {
    let f = sled();
    let s = &f.store;
    let Enqueued::New(id) = s.enqueue(key(1), fp(1), 10).unwrap() else {
        panic!("not new")
    };
    s.set_state(id, JobState::Done { file_id: 1 }).unwrap();
    s.finish(id, synced(1)).unwrap();
    let path = codec::path_key(&key(1));
    trees(s).synced.insert(&path, &b"\xff\xff"[..]).unwrap();
    assert_eq!(s.synced(&key(1)).unwrap(), None);
    let c = s.counts().unwrap();
    assert_eq!((c.synced, c.quarantined), (0, 1));
    assert!(matches!(
        s.enqueue(key(1), fp(1), 20).unwrap(),
        Enqueued::New(_)
    ));
    check_sled_invariants(s);
}

#[test]
fn job_ids_are_big_endian_keys_in_creation_order() {
    let f = sled();
    let s = &f.store;
    for n in 0..300 {
        s.enqueue(key(n), fp(1), 10).unwrap();
    }
    let ids: Vec<_> = s
        .list(None, usize::MAX)
        .unwrap()
        .iter()
        .map(|j| j.id)
        .collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]));
    assert_eq!(ids.len(), 300);
}

#[test]
fn open_repairs_what_a_crash_left_half_done() {
    let dir = tempfile::tempdir().unwrap();
    let (queued, uploading, failed, resumable, ghost) = {
        let s = Store::open(dir.path(), StoreOptions::default()).unwrap();
        let new = |n| match s.enqueue(key(n), fp(1), 10).unwrap() {
            Enqueued::New(id) => id,
            other => panic!("{other:?}"),
        };
        let (queued, uploading, failed, resumable) = (new(1), new(2), new(3), new(4));
        s.start_upload(uploading, upload(1, 2)).unwrap();
        s.mark_part_done(uploading, 0).unwrap();
        s.start_upload(resumable, upload(4, 3)).unwrap();
        s.mark_part_done(resumable, 2).unwrap();
        s.record_failure(resumable, FailureKind::Permanent, 0, "403")
            .unwrap();
        s.record_failure(failed, FailureKind::Transient, 500, "503")
            .unwrap();
        let ghost = JobId(4242);
        let t = trees(&s);
        let none: &[u8] = &[];
        t.due.remove(codec::due_key(10, queued)).unwrap(); // missing: would never run
        t.due.insert(codec::due_key(10, failed), none).unwrap(); // stale: it was queued
        t.due.insert(codec::due_key(5, ghost), none).unwrap();
        t.by_path.remove(codec::path_key(&key(2))).unwrap();
        t.by_path
            .insert(codec::path_key(&key(9)), &codec::id_key(ghost)[..])
            .unwrap();
        t.parts.insert(codec::part_key(queued, 0), none).unwrap(); // not uploading
        t.parts.insert(codec::part_key(uploading, 7), none).unwrap(); // not in the session
        t.parts.insert(codec::part_key(ghost, 0), none).unwrap();
        s.flush_blocking().unwrap();
        (queued, uploading, failed, resumable, ghost)
    };
    let s = Store::open(dir.path(), StoreOptions::default()).unwrap();
    check_sled_invariants(&s);
    let due: Vec<_> = s.due(i64::MAX, 10).unwrap().iter().map(|j| j.id).collect();
    assert_eq!(due, vec![queued, failed]);
    assert!(s.due(499, 10).unwrap().iter().all(|j| j.id != failed));
    assert_eq!(s.job_for(&key(2)).unwrap().unwrap().id, uploading);
    assert_eq!(s.job_for(&key(9)).unwrap(), None);
    assert_eq!(s.parts_done(uploading).unwrap(), vec![0]);
    assert_eq!(
        s.parts_done(resumable).unwrap(),
        vec![2],
        "a failed session keeps its parts"
    );
    assert!(s.parts_done(queued).unwrap().is_empty() && s.parts_done(ghost).unwrap().is_empty());
}

#[test]
fn synced_counts_per_root_are_recounted_at_open() {
    let dir = tempfile::tempdir().unwrap();
    {
        let s = Store::open(dir.path(), StoreOptions::default()).unwrap();
        for (root, n) in [("a", 1), ("a", 2), ("b", 3)] {
            let key = FileKey::new(root, std::path::Path::new(&format!("f{n}")));
            let Enqueued::New(id) = s.enqueue(key, fp(n), 10).unwrap() else {
                panic!("not new")
            };
            s.set_state(id, JobState::Done { file_id: 1 }).unwrap();
            s.finish(id, synced(n)).unwrap();
        }
        s.flush_blocking().unwrap();
    }
    let s = Store::open(dir.path(), StoreOptions::default()).unwrap();
    let by_root: Vec<_> = s.synced_by_root().unwrap().into_iter().collect();
    assert_eq!(by_root, vec![("a".to_owned(), 2), ("b".to_owned(), 1)]);
}
