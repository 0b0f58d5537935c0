//! The conformance suite: every case runs against the in-memory double and sled.

use super::*;

macro_rules! conformance {
    ($($case:ident),* $(,)?) => {
        mod on_memory {
            $( #[test] fn $case() { super::$case(super::super::memory().store); } )*
        }
        mod on_sled {
            $( #[test] fn $case() {
                let fixture = super::super::sled();
                super::$case(fixture.store.clone());
                super::super::check_sled_invariants(&fixture.store);
            } )*
        }
    };
}

conformance!(
    synced_records_page_by_root_in_path_order,
    a_new_path_becomes_a_queued_job,
    the_same_fingerprint_is_not_queued_twice,
    a_new_fingerprint_updates_a_waiting_job,
    jobs_in_flight_keep_their_session_and_remember_a_newer_version,
    a_newer_version_found_in_flight_is_queued_when_the_old_one_is_synced,
    a_failure_after_a_newer_version_retries_the_newer_one,
    a_synced_path_is_unchanged_or_overwritten,
    finishing_compacts_to_the_synced_record,
    only_a_done_job_can_be_finished,
    parts_belong_to_one_upload_session,
    due_is_oldest_first_and_limited,
    a_transient_failure_is_due_only_at_its_retry_time,
    retry_requeues_failed_jobs,
    forget_drops_the_job_and_keeps_the_synced_record,
    unknown_jobs_are_errors_not_panics,
    listings_and_counts_follow_the_states,
    raw_byte_paths_are_kept_exactly,
    concurrent_flushes_succeed,
);

fn a_new_path_becomes_a_queued_job(s: Store) {
    let Enqueued::New(id) = s.enqueue(key(1), fp(1), 10).unwrap() else {
        panic!("not new")
    };
    let job = s.job(id).unwrap().unwrap();
    assert_eq!(job.key, key(1));
    assert_eq!(job.fingerprint, fp(1));
    assert_eq!(job.state, JobState::Queued);
    assert_eq!(
        (job.attempts, job.created_ms, job.overwrite),
        (0, 10, false)
    );
    assert_eq!(s.job_for(&key(1)).unwrap(), Some(job.clone()));
    assert_eq!(s.job_for(&key(2)).unwrap(), None);
    assert_eq!(s.due(10, 10).unwrap(), vec![job]);
    assert_eq!(s.counts().unwrap().queued, 1);
    let Enqueued::New(other) = s.enqueue(key(2), fp(1), 11).unwrap() else {
        panic!("not new")
    };
    assert_ne!(id, other);
}

fn the_same_fingerprint_is_not_queued_twice(s: Store) {
    let Enqueued::New(id) = s.enqueue(key(1), fp(1), 10).unwrap() else {
        panic!("not new")
    };
    assert_eq!(s.enqueue(key(1), fp(1), 20).unwrap(), Enqueued::Pending(id));
    let fail = |s: &Store| {
        s.record_failure(id, FailureKind::Permanent, 0, "403")
            .unwrap()
    };
    fail(&s);
    assert_eq!(s.enqueue(key(1), fp(1), 30).unwrap(), Enqueued::Pending(id));
    let job = s.job(id).unwrap().unwrap();
    assert!(
        matches!(job.state, JobState::Failed { .. }),
        "a rescan does not retry it"
    );
    assert_eq!(s.list(None, 10).unwrap().len(), 1);
}

fn a_new_fingerprint_updates_a_waiting_job(s: Store) {
    let Enqueued::New(id) = s.enqueue(key(1), fp(1), 10).unwrap() else {
        panic!("not new")
    };
    assert_eq!(s.enqueue(key(1), fp(2), 20).unwrap(), Enqueued::Updated(id));
    let job = s.job(id).unwrap().unwrap();
    assert_eq!(
        (job.fingerprint, job.created_ms),
        (fp(2), 10),
        "keeps its place"
    );
    s.record_failure(id, FailureKind::Transient, 500, "timeout")
        .unwrap();
    assert_eq!(s.job(id).unwrap().unwrap().attempts, 1);
    assert_eq!(s.enqueue(key(1), fp(3), 30).unwrap(), Enqueued::Updated(id));
    let job = s.job(id).unwrap().unwrap();
    assert_eq!(
        (job.state, job.fingerprint, job.attempts),
        (JobState::Queued, fp(3), 0)
    );
    assert_eq!(
        s.list(None, 10).unwrap().len(),
        1,
        "still one job for the path"
    );
}

fn jobs_in_flight_keep_their_session_and_remember_a_newer_version(s: Store) {
    let Enqueued::New(id) = s.enqueue(key(1), fp(1), 10).unwrap() else {
        panic!("not new")
    };
    let states = [
        JobState::Uploading(upload(1, 2)),
        JobState::Completing(upload(1, 2)),
        JobState::Done { file_id: 1001 },
    ];
    for (n, state) in (2..).zip(states) {
        s.set_state(id, state.clone()).unwrap();
        let before = s.job(id).unwrap().unwrap();
        assert_eq!(
            s.enqueue(key(1), before.fingerprint, 20).unwrap(),
            Enqueued::InFlight(id)
        );
        assert_eq!(
            s.job(id).unwrap().unwrap(),
            before,
            "the same version: untouched"
        );
        assert_eq!(
            s.enqueue(key(1), fp(n), 20).unwrap(),
            Enqueued::InFlight(id)
        );
        let job = s.job(id).unwrap().unwrap();
        assert_eq!((job.state, job.fingerprint), (state, fp(n)));
        assert!(
            s.due(i64::MAX, 10).unwrap().is_empty(),
            "not due while in flight"
        );
    }
}

fn a_newer_version_found_in_flight_is_queued_when_the_old_one_is_synced(s: Store) {
    let Enqueued::New(id) = s.enqueue(key(1), fp(1), 10).unwrap() else {
        panic!("not new")
    };
    s.start_upload(id, upload(1, 2)).unwrap();
    s.mark_part_done(id, 0).unwrap();
    assert_eq!(
        s.enqueue(key(1), fp(2), 20).unwrap(),
        Enqueued::InFlight(id)
    );
    assert_eq!(s.parts_done(id).unwrap(), vec![0], "the session goes on");
    s.set_state(id, JobState::Done { file_id: 1001 }).unwrap();
    // The worker synced the version it uploaded (fp 1).
    s.finish(id, synced(1)).unwrap();
    assert_eq!(s.synced(&key(1)).unwrap(), Some(synced(1)));
    let job = s.job(id).unwrap().expect("queued again, not compacted");
    assert_eq!(job.state, JobState::Queued);
    assert_eq!(
        (job.fingerprint, job.attempts, job.overwrite),
        (fp(2), 0, true)
    );
    assert_eq!(s.due(i64::MAX, 10).unwrap(), vec![job]);
    assert!(s.parts_done(id).unwrap().is_empty());
    assert_eq!(s.enqueue(key(1), fp(2), 30).unwrap(), Enqueued::Pending(id));
    let c = s.counts().unwrap();
    assert_eq!((c.queued, c.done, c.synced), (1, 0, 1));
    // The second round compacts as usual.
    s.set_state(id, JobState::Done { file_id: 1001 }).unwrap();
    s.finish(id, synced(2)).unwrap();
    assert_eq!(s.job(id).unwrap(), None);
    assert_eq!(s.synced(&key(1)).unwrap(), Some(synced(2)));
}

fn a_failure_after_a_newer_version_retries_the_newer_one(s: Store) {
    let Enqueued::New(id) = s.enqueue(key(1), fp(1), 10).unwrap() else {
        panic!("not new")
    };
    s.start_upload(id, upload(1, 2)).unwrap();
    s.enqueue(key(1), fp(2), 20).unwrap();
    let failed = s
        .record_failure(id, FailureKind::Transient, 50, "changed during upload")
        .unwrap();
    assert_eq!(failed.fingerprint, fp(2));
    assert!(matches!(
        failed.state,
        JobState::Failed {
            resume: Some(_),
            ..
        }
    ));
    assert_eq!(s.due(50, 10).unwrap(), vec![failed]);
}

fn a_synced_path_is_unchanged_or_overwritten(s: Store) {
    let Enqueued::New(id) = s.enqueue(key(1), fp(1), 10).unwrap() else {
        panic!("not new")
    };
    s.set_state(id, JobState::Done { file_id: 1001 }).unwrap();
    s.finish(id, synced(1)).unwrap();
    assert_eq!(s.enqueue(key(1), fp(1), 20).unwrap(), Enqueued::Unchanged);
    assert_eq!(s.job_for(&key(1)).unwrap(), None);
    let Enqueued::New(again) = s.enqueue(key(1), fp(2), 30).unwrap() else {
        panic!("not new")
    };
    assert_ne!(again, id);
    assert!(
        s.job(again).unwrap().unwrap().overwrite,
        "a synced path uploads with overwrite"
    );
}

fn finishing_compacts_to_the_synced_record(s: Store) {
    let Enqueued::New(id) = s.enqueue(key(1), fp(1), 10).unwrap() else {
        panic!("not new")
    };
    s.start_upload(id, upload(1, 3)).unwrap();
    s.mark_part_done(id, 0).unwrap();
    s.mark_part_done(id, 2).unwrap();
    s.set_state(id, JobState::Completing(upload(1, 3))).unwrap();
    s.set_state(id, JobState::Done { file_id: 1001 }).unwrap();
    s.finish(id, synced(1)).unwrap();
    assert_eq!(s.job(id).unwrap(), None);
    assert_eq!(s.job_for(&key(1)).unwrap(), None);
    assert_eq!(s.parts_done(id).unwrap(), Vec::<u32>::new());
    assert_eq!(s.synced(&key(1)).unwrap(), Some(synced(1)));
    assert_eq!(s.synced(&key(2)).unwrap(), None);
    let c = s.counts().unwrap();
    assert_eq!((c.jobs(), c.synced), (0, 1));
    assert!(s.due(i64::MAX, 10).unwrap().is_empty());
    assert!(s.in_flight().unwrap().is_empty());
}

fn only_a_done_job_can_be_finished(s: Store) {
    let Enqueued::New(id) = s.enqueue(key(1), fp(1), 10).unwrap() else {
        panic!("not new")
    };
    let err = s.finish(id, synced(1)).unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::WrongState {
                state: StateKind::Queued,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(s.synced(&key(1)).unwrap(), None);
    assert!(s.job(id).unwrap().is_some());
}

fn parts_belong_to_one_upload_session(s: Store) {
    let Enqueued::New(id) = s.enqueue(key(1), fp(1), 10).unwrap() else {
        panic!("not new")
    };
    assert!(matches!(
        s.mark_part_done(id, 0),
        Err(StoreError::WrongState { .. })
    ));
    s.start_upload(id, upload(1, 3)).unwrap();
    s.mark_part_done(id, 2).unwrap();
    s.mark_part_done(id, 0).unwrap();
    s.mark_part_done(id, 0).unwrap();
    assert_eq!(s.parts_done(id).unwrap(), vec![0, 2]);
    let err = s.mark_part_done(id, 3).unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::PartOutOfRange {
                part: 3,
                parts: 3,
                ..
            }
        ),
        "{err}"
    );
    s.set_state(id, JobState::Completing(upload(1, 3))).unwrap();
    assert_eq!(
        s.parts_done(id).unwrap(),
        vec![0, 2],
        "completing keeps them"
    );
    assert!(matches!(
        s.mark_part_done(id, 1),
        Err(StoreError::WrongState { .. })
    ));
    s.set_state(id, JobState::Uploading(upload(1, 3))).unwrap();
    assert_eq!(s.parts_done(id).unwrap(), vec![0, 2], "same session");
    s.start_upload(id, upload(1, 3)).unwrap();
    assert!(
        s.parts_done(id).unwrap().is_empty(),
        "start_upload always clears"
    );
    s.mark_part_done(id, 1).unwrap();
    s.set_state(id, JobState::Uploading(upload(2, 3))).unwrap();
    assert!(s.parts_done(id).unwrap().is_empty(), "another session");
    s.mark_part_done(id, 1).unwrap();
    s.record_failure(id, FailureKind::Transient, 5, "reset")
        .unwrap();
    assert_eq!(
        s.parts_done(id).unwrap(),
        vec![1],
        "a failure keeps the session for the retry"
    );
    s.set_state(id, JobState::Uploading(upload(2, 3))).unwrap();
    assert_eq!(s.parts_done(id).unwrap(), vec![1], "resumed");
    s.record_failure(id, FailureKind::Transient, 5, "again")
        .unwrap();
    s.retry(id).unwrap();
    assert!(
        s.parts_done(id).unwrap().is_empty(),
        "leaving the session clears"
    );
}

fn due_is_oldest_first_and_limited(s: Store) {
    let mut ids = Vec::new();
    for (n, at) in [(1, 30), (2, 10), (3, 20), (4, 10)] {
        let Enqueued::New(id) = s.enqueue(key(n), fp(1), at).unwrap() else {
            panic!("not new")
        };
        ids.push(id);
    }
    let order =
        |now, limit| -> Vec<JobId> { s.due(now, limit).unwrap().iter().map(|j| j.id).collect() };
    assert_eq!(order(100, 10), vec![ids[1], ids[3], ids[2], ids[0]]);
    assert_eq!(order(100, 2), vec![ids[1], ids[3]]);
    assert_eq!(
        order(10, 10),
        vec![ids[1], ids[3]],
        "not yet queued at 10: none later"
    );
    assert_eq!(order(9, 10), Vec::<JobId>::new());
    assert_eq!(order(100, 0), Vec::<JobId>::new());
    s.start_upload(ids[1], upload(1, 1)).unwrap();
    assert_eq!(
        order(100, 10),
        vec![ids[3], ids[2], ids[0]],
        "uploading is not due"
    );
}

fn a_transient_failure_is_due_only_at_its_retry_time(s: Store) {
    let Enqueued::New(id) = s.enqueue(key(1), fp(1), 10).unwrap() else {
        panic!("not new")
    };
    let job = s
        .record_failure(id, FailureKind::Transient, 1_000, "503")
        .unwrap();
    assert_eq!(job.attempts, 1);
    assert!(s.due(999, 10).unwrap().is_empty());
    assert_eq!(s.due(1_000, 10).unwrap()[0].id, id);
    let job = s
        .record_failure(id, FailureKind::Transient, 3_000, "503 again")
        .unwrap();
    assert_eq!(job.attempts, 2);
    assert!(
        s.due(2_999, 10).unwrap().is_empty(),
        "the old retry time is gone"
    );
    let JobState::Failed { last_error, .. } = &job.state else {
        panic!("not failed")
    };
    assert_eq!(last_error, "503 again");
    s.record_failure(id, FailureKind::Permanent, 0, "400")
        .unwrap();
    assert!(
        s.due(i64::MAX, 10).unwrap().is_empty(),
        "permanent waits for an operator"
    );
}

fn retry_requeues_failed_jobs(s: Store) {
    let mut ids = Vec::new();
    for n in 0..3 {
        let Enqueued::New(id) = s.enqueue(key(n), fp(1), 10).unwrap() else {
            panic!("not new")
        };
        ids.push(id);
    }
    let err = s.retry(ids[0]).unwrap_err();
    assert!(
        matches!(err, StoreError::WrongState { op: "retry", .. }),
        "{err}"
    );
    s.record_failure(ids[0], FailureKind::Permanent, 0, "400")
        .unwrap();
    let job = s.retry(ids[0]).unwrap();
    assert_eq!((job.state, job.attempts), (JobState::Queued, 0));
    assert_eq!(s.due(10, 10).unwrap().len(), 3);
    s.record_failure(ids[1], FailureKind::Permanent, 0, "400")
        .unwrap();
    s.record_failure(ids[2], FailureKind::Transient, i64::MAX, "503")
        .unwrap();
    assert_eq!(s.retry_all_failed().unwrap(), 2);
    assert_eq!(s.counts().unwrap().queued, 3);
    assert_eq!(s.retry_all_failed().unwrap(), 0);
}

fn forget_drops_the_job_and_keeps_the_synced_record(s: Store) {
    let Enqueued::New(id) = s.enqueue(key(1), fp(1), 10).unwrap() else {
        panic!("not new")
    };
    s.set_state(id, JobState::Done { file_id: 1 }).unwrap();
    s.finish(id, synced(1)).unwrap();
    let Enqueued::New(id) = s.enqueue(key(1), fp(2), 10).unwrap() else {
        panic!("not new")
    };
    s.start_upload(id, upload(2, 2)).unwrap();
    s.mark_part_done(id, 1).unwrap();
    assert!(s.forget(id).unwrap());
    assert!(!s.forget(id).unwrap());
    assert_eq!(
        (s.job(id).unwrap(), s.job_for(&key(1)).unwrap()),
        (None, None)
    );
    assert!(s.parts_done(id).unwrap().is_empty());
    assert_eq!(s.synced(&key(1)).unwrap(), Some(synced(1)));
    assert!(s.forget_synced(&key(1)).unwrap());
    assert!(!s.forget_synced(&key(1)).unwrap());
    assert_eq!(s.counts().unwrap(), Counts::default());
    assert!(matches!(
        s.enqueue(key(1), fp(1), 10).unwrap(),
        Enqueued::New(_)
    ));
}

fn synced_records_page_by_root_in_path_order(s: Store) {
    let sync = |k: FileKey, n: u64| {
        let Enqueued::New(id) = s.enqueue(k, fp(n), 10).unwrap() else {
            panic!("not new")
        };
        s.set_state(id, JobState::Done { file_id: 1 }).unwrap();
        s.finish(id, synced(n)).unwrap();
    };
    for n in [3, 1, 12, 2] {
        sync(key(n), u64::from(n));
    }
    // Roots whose names share a prefix stay apart.
    sync(FileKey::new("roo", std::path::Path::new("z")), 7);
    sync(FileKey::new("root2", std::path::Path::new("a")), 8);
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = s.synced_page("root", after.as_ref(), 2).unwrap();
        if page.is_empty() {
            break;
        }
        assert!(page.len() <= 2);
        after = page.last().map(|(k, _)| k.clone());
        seen.extend(page);
    }
    let want: Vec<(FileKey, _)> = [1, 12, 2, 3]
        .into_iter()
        .map(|n| (key(n), synced(u64::from(n))))
        .collect();
    assert_eq!(seen, want, "path order (bytes), every record once");
    assert_eq!(s.synced_page("none", None, 10).unwrap(), vec![]);
    assert_eq!(s.synced_page("roo", None, 10).unwrap().len(), 1);
    let by_root = |s: &Store| s.synced_by_root().unwrap().into_iter().collect::<Vec<_>>();
    let want = |n| {
        vec![
            ("roo".to_owned(), 1),
            ("root".to_owned(), n),
            ("root2".to_owned(), 1),
        ]
    };
    assert_eq!(by_root(&s), want(4));
    assert!(s.forget_synced(&key(12)).unwrap());
    assert!(!s.forget_synced(&key(12)).unwrap());
    assert_eq!(by_root(&s), want(3));
}

fn unknown_jobs_are_errors_not_panics(s: Store) {
    let id = JobId(123_456);
    let is_missing = |r: Result<_, StoreError>| matches!(r, Err(StoreError::NoSuchJob { .. }));
    assert_eq!(s.job(id).unwrap(), None);
    assert!(is_missing(s.set_state(id, JobState::Queued).map(drop)));
    assert!(is_missing(s.start_upload(id, upload(1, 1)).map(drop)));
    assert!(is_missing(
        s.record_failure(id, FailureKind::Transient, 0, "x")
            .map(drop)
    ));
    assert!(is_missing(s.mark_part_done(id, 0)));
    assert!(is_missing(s.finish(id, synced(1))));
    assert!(is_missing(s.retry(id).map(drop)));
    assert!(s.parts_done(id).unwrap().is_empty());
}

fn listings_and_counts_follow_the_states(s: Store) {
    let mut ids = Vec::new();
    for n in 0..5 {
        let Enqueued::New(id) = s.enqueue(key(n), fp(1), 10).unwrap() else {
            panic!("not new")
        };
        ids.push(id);
    }
    s.start_upload(ids[1], upload(1, 1)).unwrap();
    s.set_state(ids[2], JobState::Completing(upload(2, 1)))
        .unwrap();
    s.set_state(ids[3], JobState::Done { file_id: 3 }).unwrap();
    s.record_failure(ids[4], FailureKind::Permanent, 0, "400")
        .unwrap();
    let c = s.counts().unwrap();
    assert_eq!(
        (c.queued, c.uploading, c.completing, c.done, c.failed),
        (1, 1, 1, 1, 1)
    );
    let in_flight: Vec<_> = s.in_flight().unwrap().iter().map(|j| j.id).collect();
    assert_eq!(in_flight, ids[1..4].to_vec());
    for kind in StateKind::ALL {
        let listed = s.list(Some(kind), 10).unwrap();
        assert_eq!(listed.len(), 1, "{kind}");
        assert_eq!(StateKind::of(&listed[0].state), kind);
    }
    let all: Vec<_> = s.list(None, 10).unwrap().iter().map(|j| j.id).collect();
    assert_eq!(all, ids, "id order");
    assert_eq!(s.list(None, 2).unwrap().len(), 2);
    assert!(s.size_on_disk().is_ok());
}

fn raw_byte_paths_are_kept_exactly(s: Store) {
    use std::os::unix::ffi::OsStrExt;
    let name = std::ffi::OsStr::from_bytes(b"caf\xe9/\xff.bin");
    let odd = FileKey::new("r\u{e9}", std::path::Path::new(name));
    let Enqueued::New(id) = s.enqueue(odd.clone(), fp(1), 1).unwrap() else {
        panic!("not new")
    };
    assert_eq!(s.job_for(&odd).unwrap().unwrap().id, id);
    assert_eq!(s.job_for(&key(1)).unwrap(), None);
    let prefix = FileKey::new("r\u{e9}", std::path::Path::new("caf"));
    assert_eq!(s.job_for(&prefix).unwrap(), None);
}

fn concurrent_flushes_succeed(s: Store) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    rt.block_on(async {
        let tasks: Vec<_> = (0..32)
            .map(|n| {
                let s = s.clone();
                tokio::spawn(async move {
                    s.enqueue(key(n), fp(1), 1).unwrap();
                    s.flush().await
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap().unwrap();
        }
    });
    let stats = s.flush_stats();
    assert_eq!(stats.requests, 32);
    assert!((1..=32).contains(&stats.flushes));
    s.flush_blocking().unwrap();
    assert_eq!(s.counts().unwrap().queued, 32);
}
