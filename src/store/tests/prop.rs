//! A property test of the job state machine: random operation sequences run against the
//! in-memory double and sled; after every step both must agree (results, jobs, parts,
//! synced records, due order, counts) and the invariants must hold: one job per path,
//! the due index is exactly the due jobs, parts exist only for uploading or completing
//! jobs of their session.

use std::collections::BTreeSet;

use proptest::prelude::*;

use super::*;

const PATHS: u32 = 4;

#[derive(Debug, Clone)]
enum To {
    Queued,
    Uploading(u64),
    Completing(u64),
    Done,
}

#[derive(Debug, Clone)]
enum Op {
    Enqueue {
        path: u32,
        fp: u64,
        now: i64,
    },
    StartUpload {
        path: u32,
        session: u64,
        parts: usize,
    },
    PartDone {
        path: u32,
        part: u32,
    },
    SetState {
        path: u32,
        to: To,
    },
    Fail {
        path: u32,
        transient: bool,
        retry_at: i64,
    },
    Finish {
        path: u32,
        fp: u64,
    },
    Retry {
        path: u32,
    },
    RetryAll,
    Forget {
        path: u32,
    },
    ForgetSynced {
        path: u32,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let path = 0..PATHS;
    let target = prop_oneof![
        Just(To::Queued),
        (0..2u64).prop_map(To::Uploading),
        (0..2u64).prop_map(To::Completing),
        Just(To::Done),
    ];
    prop_oneof![
        3 => (path.clone(), 0..3u64, 0..100i64).prop_map(|(path, fp, now)| Op::Enqueue { path, fp, now }),
        2 => (path.clone(), 0..2u64, 1..4usize)
            .prop_map(|(path, session, parts)| Op::StartUpload { path, session, parts }),
        2 => (path.clone(), 0..4u32).prop_map(|(path, part)| Op::PartDone { path, part }),
        2 => (path.clone(), target).prop_map(|(path, to)| Op::SetState { path, to }),
        1 => (path.clone(), any::<bool>(), 0..100i64)
            .prop_map(|(path, transient, retry_at)| Op::Fail { path, transient, retry_at }),
        1 => (path.clone(), 0..3u64).prop_map(|(path, fp)| Op::Finish { path, fp }),
        1 => path.clone().prop_map(|path| Op::Retry { path }),
        1 => Just(Op::RetryAll),
        1 => path.clone().prop_map(|path| Op::Forget { path }),
        1 => path.prop_map(|path| Op::ForgetSynced { path }),
    ]
}

/// A result with job ids left out (the engines number jobs independently).
type Outcome = Result<String, std::mem::Discriminant<StoreError>>;

fn outcome<T>(r: Result<T, StoreError>, show: impl Fn(T) -> String) -> Outcome {
    r.map(show).map_err(|e| std::mem::discriminant(&e))
}

fn anon(mut job: Job) -> Job {
    job.id = JobId(0);
    job
}

fn run(s: &Store, op: &Op) -> Outcome {
    let id = |path: u32| {
        s.job_for(&key(path))
            .unwrap()
            .map_or(JobId(u64::MAX / 2), |j| j.id)
    };
    let job = |r: Result<Job, StoreError>| outcome(r, |j| format!("{:?}", anon(j)));
    match op.clone() {
        Op::Enqueue { path, fp: f, now } => outcome(s.enqueue(key(path), fp(f), now), |e| {
            format!("{e:?}")
                .split('(')
                .next()
                .unwrap_or_default()
                .to_owned()
        }),
        Op::StartUpload {
            path,
            session,
            parts,
        } => job(s.start_upload(id(path), upload(session, parts))),
        Op::PartDone { path, part } => outcome(s.mark_part_done(id(path), part), |()| "ok".into()),
        Op::SetState { path, to } => {
            let state = match to {
                To::Queued => JobState::Queued,
                To::Uploading(n) => JobState::Uploading(upload(n, 2)),
                To::Completing(n) => JobState::Completing(upload(n, 2)),
                To::Done => JobState::Done { file_id: 9 },
            };
            job(s.set_state(id(path), state))
        }
        Op::Fail {
            path,
            transient,
            retry_at,
        } => {
            let kind = if transient {
                FailureKind::Transient
            } else {
                FailureKind::Permanent
            };
            job(s.record_failure(id(path), kind, retry_at, "boom"))
        }
        Op::Finish { path, fp } => outcome(s.finish(id(path), synced(fp)), |()| "ok".into()),
        Op::Retry { path } => job(s.retry(id(path))),
        Op::RetryAll => outcome(s.retry_all_failed(), |n| n.to_string()),
        Op::Forget { path } => outcome(s.forget(id(path)), |b| b.to_string()),
        Op::ForgetSynced { path } => outcome(s.forget_synced(&key(path)), |b| b.to_string()),
    }
}

/// Everything observable, with ids left out.
fn snapshot(s: &Store) -> String {
    let mut out = String::new();
    for path in 0..PATHS {
        let job = s.job_for(&key(path)).unwrap();
        let parts = job.as_ref().map(|j| s.parts_done(j.id).unwrap());
        let synced = s.synced(&key(path)).unwrap();
        out += &format!(
            "{path}: {:?} parts {parts:?} synced {synced:?}\n",
            job.map(anon)
        );
    }
    for now in [0, 50, i64::MAX] {
        let due: Vec<_> = s
            .due(now, 100)
            .unwrap()
            .into_iter()
            .map(|j| j.key)
            .collect();
        out += &format!("due at {now}: {due:?}\n");
    }
    out + &format!("{:?}", s.counts().unwrap())
}

fn check_invariants(s: &Store, ever: &BTreeSet<JobId>) {
    let jobs = s.list(None, usize::MAX).unwrap();
    let paths: BTreeSet<_> = jobs.iter().map(|j| &j.key).collect();
    assert_eq!(paths.len(), jobs.len(), "one job per path");
    for id in ever {
        let parts = s.parts_done(*id).unwrap();
        let in_session = s.job(*id).unwrap().is_some_and(|j| {
            matches!(
                j.state,
                JobState::Uploading(_)
                    | JobState::Completing(_)
                    | JobState::Failed {
                        resume: Some(_),
                        ..
                    }
            )
        });
        assert!(
            in_session || parts.is_empty(),
            "job {id} has parts {parts:?}"
        );
    }
    check_sled_invariants(s);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn engines_agree_and_invariants_hold(ops in proptest::collection::vec(op(), 1..60)) {
        let (memory, sled) = (memory(), sled());
        let mut ever = [BTreeSet::new(), BTreeSet::new()];
        for (step, op) in ops.iter().enumerate() {
            let (a, b) = (run(&memory.store, op), run(&sled.store, op));
            prop_assert_eq!(&a, &b, "step {} {:?}", step, op);
            for (f, ever) in [&memory, &sled].into_iter().zip(&mut ever) {
                ever.extend(f.store.list(None, usize::MAX).unwrap().iter().map(|j| j.id));
                check_invariants(&f.store, ever);
            }
            prop_assert_eq!(snapshot(&memory.store), snapshot(&sled.store), "after step {} {:?}", step, op);
        }
    }
}
