//! What each admin request does to the job store: the one implementation behind both
//! the daemon's socket and the CLI working on the store directly (daemon stopped).
//!
//! Everything here may block (listings walk the store, mutations flush it): the daemon
//! runs it in `spawn_blocking`.
//!
//! `forget` while the daemon runs is the one command that needs care: a worker (or the
//! scheduler's batch of due jobs) holds its own copy of a job it is about to work on,
//! and a job removed under it would fail the worker's next store write. So with the
//! daemon running, only failed jobs that are not about to be retried can be forgotten:
//! permanent failures, and transient ones whose retry is more than
//! [`FORGET_MARGIN_MS`] away. `retry` is always safe: it only moves a failed job to
//! queued, which a worker holding a stale copy copes with.

use crate::daemon::health::Health;
use crate::daemon::progress::Progress;
use crate::store::{FailureKind, Job, JobId, JobState, StateKind, Store, StoreError};

use super::protocol::{ErrorKind, JobFilter, JobView, MAX_JOBS, Reply, Request};
use super::status::status;

/// A transient failure due sooner than this may already be in the scheduler's hands.
pub const FORGET_MARGIN_MS: i64 = 5_000;

/// Who has the store while a request runs.
#[derive(Debug, Clone, Copy)]
pub enum Owner<'a> {
    /// The running daemon: its workers may hold jobs.
    Daemon {
        health: &'a Health,
        progress: &'a Progress,
    },
    /// The CLI, with the daemon stopped: nothing else touches the store.
    Offline,
}

/// Runs one request against the store. Blocks.
pub fn execute(store: &Store, owner: Owner<'_>, request: Request, now_ms: i64) -> Reply {
    let result = match request {
        Request::Status => status(store, owner, now_ms),
        Request::Jobs { state, limit } => jobs(store, state, limit),
        Request::Retry { job } => retry(store, job),
        Request::RetryAllFailed => retry_all(store),
        Request::Forget { job } => forget(store, owner, job, now_ms),
    };
    result.unwrap_or_else(|e| store_error(&e))
}

fn store_error(e: &StoreError) -> Reply {
    let kind = match e {
        StoreError::NoSuchJob { .. } => ErrorKind::NoSuchJob,
        StoreError::WrongState { .. } => ErrorKind::WrongState,
        _ => ErrorKind::Store,
    };
    Reply::error(kind, e.to_string())
}

fn jobs(store: &Store, filter: Option<JobFilter>, limit: usize) -> Result<Reply, StoreError> {
    let limit = limit.min(MAX_JOBS);
    let counts = store.counts()?;
    let (jobs, total) = match filter {
        None => (store.list(None, limit)?, counts.jobs()),
        Some(filter) => {
            let mut jobs = Vec::new();
            for kind in filter.kinds() {
                jobs.extend(store.list(Some(*kind), limit)?);
            }
            jobs.sort_by_key(|j| j.id);
            jobs.truncate(limit);
            let total = filter.kinds().iter().map(|k| counts.get(*k)).sum();
            (jobs, total)
        }
    };
    Ok(Reply::Jobs {
        jobs: jobs.iter().map(JobView::from).collect(),
        total,
    })
}

fn retry(store: &Store, id: JobId) -> Result<Reply, StoreError> {
    let job = store.retry(id)?;
    store.flush_blocking()?;
    tracing::info!(job = %id, path = %job.key, "re-queued by an operator");
    Ok(Reply::Retried {
        job: JobView::from(&job),
    })
}

fn retry_all(store: &Store) -> Result<Reply, StoreError> {
    let count = store.retry_all_failed()?;
    store.flush_blocking()?;
    tracing::info!(count, "failed jobs re-queued by an operator");
    Ok(Reply::RetriedAll { count })
}

fn forget(store: &Store, owner: Owner<'_>, id: JobId, now_ms: i64) -> Result<Reply, StoreError> {
    let job = store.job(id)?.ok_or(StoreError::NoSuchJob { id })?;
    if let Owner::Daemon { .. } = owner
        && let Some(why) = busy(&job, now_ms)
    {
        return Ok(Reply::error(
            ErrorKind::InFlight,
            format!(
                "job {id} ({}) is {why}: the daemon may be working on it, so it cannot be \
                 forgotten while cdf-syncd runs; wait until it has failed, or stop the daemon",
                job.key
            ),
        ));
    }
    if !store.forget(id)? {
        return Err(StoreError::NoSuchJob { id });
    }
    store.flush_blocking()?;
    tracing::info!(job = %id, path = %job.key, "forgotten by an operator");
    Ok(Reply::Forgot {
        job: JobView::from(&job),
    })
}

/// Why a running daemon may hold this job, if it may.
fn busy(job: &Job, now_ms: i64) -> Option<String> {
    match &job.state {
        JobState::Failed {
            kind: FailureKind::Permanent,
            ..
        } => None,
        JobState::Failed { retry_at_ms, .. } if *retry_at_ms > now_ms + FORGET_MARGIN_MS => None,
        JobState::Failed { .. } => Some("due for its retry".to_owned()),
        other => Some(StateKind::of(other).name().to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::admin::protocol::{ConnectionState, Failure, RootCounts};
    use crate::daemon::health::PauseReason;
    use crate::fingerprint::Fingerprint;
    use crate::store::{Enqueued, FileKey, Target, Upload};

    fn job(store: &Store, rel: &str) -> JobId {
        match store.enqueue(FileKey::new("r", Path::new(rel)), Fingerprint::sized(10), 0) {
            Ok(Enqueued::New(id)) => id,
            other => panic!("{other:?}"),
        }
    }

    fn fail(store: &Store, id: JobId, kind: FailureKind, retry_at_ms: i64) {
        store
            .record_failure(id, kind, retry_at_ms, "too big")
            .expect("fail");
    }

    fn uploading(store: &Store, id: JobId) {
        let upload = Upload {
            file_id: 1,
            target: Target::Single { url: "u".into() },
            urls_issued_ms: 0,
            source: Fingerprint::sized(10),
        };
        store.start_upload(id, upload).expect("start");
    }

    fn health() -> Health {
        let backoff = crate::daemon::health::ProbeBackoff {
            initial: std::time::Duration::from_secs(1),
            max: std::time::Duration::from_secs(2),
        };
        Health::new(4, 4, backoff)
    }

    fn daemon<'a>(health: &'a Health, progress: &'a Progress) -> Owner<'a> {
        Owner::Daemon { health, progress }
    }

    #[test]
    fn jobs_filters_by_group_and_reports_the_total() {
        let store = Store::in_memory();
        let [a, b, c, d] = ["a", "b", "c", "d"].map(|r| job(&store, r));
        fail(&store, a, FailureKind::Permanent, 0);
        uploading(&store, b);
        store
            .set_state(c, JobState::Done { file_id: 1 })
            .expect("done");
        let listed = |filter, limit| match execute(
            &store,
            Owner::Offline,
            Request::Jobs {
                state: filter,
                limit,
            },
            0,
        ) {
            Reply::Jobs { jobs, total } => (jobs.iter().map(|j| j.id).collect::<Vec<_>>(), total),
            other => panic!("{other:?}"),
        };
        assert_eq!(listed(Some(JobFilter::Failed), 10), (vec![a], 1));
        assert_eq!(listed(Some(JobFilter::Active), 10), (vec![b, c], 2));
        assert_eq!(listed(Some(JobFilter::Active), 1), (vec![b], 2));
        assert_eq!(listed(Some(JobFilter::Pending), 10), (vec![d], 1));
        assert_eq!(listed(None, 3), (vec![a, b, c], 4));
    }

    #[test]
    fn a_failed_job_shows_its_reason_and_retry_time() {
        let store = Store::in_memory();
        let (p, t) = (job(&store, "p"), job(&store, "t"));
        fail(&store, p, FailureKind::Permanent, 99);
        fail(&store, t, FailureKind::Transient, 1234);
        let view = |id| JobView::from(&store.job(id).expect("job").expect("some"));
        let (p, t) = (view(p), view(t));
        assert_eq!(p.failure, Some(Failure::Permanent));
        assert_eq!(p.next_retry_ms, None, "waits for an operator");
        assert_eq!(p.last_error.as_deref(), Some("too big"));
        assert_eq!((p.attempts, p.display_path().as_str()), (1, "r:/p"));
        assert_eq!(t.failure, Some(Failure::Transient));
        assert_eq!(t.next_retry_ms, Some(1234));
    }

    #[test]
    fn retry_requeues_a_failed_job_and_refuses_others() {
        let store = Store::in_memory();
        let (a, b) = (job(&store, "a"), job(&store, "b"));
        fail(&store, a, FailureKind::Permanent, 0);
        let reply = execute(&store, Owner::Offline, Request::Retry { job: a }, 0);
        assert!(
            matches!(&reply, Reply::Retried { job } if job.state == StateKind::Queued && job.attempts == 0),
            "{reply:?}"
        );
        let reply = execute(&store, Owner::Offline, Request::Retry { job: b }, 0);
        assert!(
            matches!(
                &reply,
                Reply::Error {
                    kind: ErrorKind::WrongState,
                    ..
                }
            ),
            "{reply:?}"
        );
        let reply = execute(&store, Owner::Offline, Request::Retry { job: JobId(99) }, 0);
        assert_eq!(reply, Reply::error(ErrorKind::NoSuchJob, "no job 99"));
        fail(&store, a, FailureKind::Permanent, 0);
        fail(&store, b, FailureKind::Transient, 0);
        let reply = execute(&store, Owner::Offline, Request::RetryAllFailed, 0);
        assert_eq!(reply, Reply::RetriedAll { count: 2 });
    }

    #[test]
    fn with_the_daemon_running_only_failed_jobs_not_about_to_retry_can_be_forgotten() {
        let (store, health, progress) = (Store::in_memory(), health(), Progress::new());
        let daemon = daemon(&health, &progress);
        let [queued, up, soon, later, perm] =
            ["queued", "up", "soon", "later", "perm"].map(|r| job(&store, r));
        uploading(&store, up);
        let now = 1_000_000;
        fail(&store, soon, FailureKind::Transient, now + 1000);
        fail(&store, later, FailureKind::Transient, now + 60_000);
        fail(&store, perm, FailureKind::Permanent, 0);
        for id in [queued, up, soon] {
            let reply = execute(&store, daemon, Request::Forget { job: id }, now);
            assert!(
                matches!(
                    &reply,
                    Reply::Error {
                        kind: ErrorKind::InFlight,
                        ..
                    }
                ),
                "{id}: {reply:?}"
            );
            assert!(store.job(id).expect("read").is_some(), "{id} kept");
        }
        for id in [later, perm] {
            let reply = execute(&store, daemon, Request::Forget { job: id }, now);
            assert!(
                matches!(&reply, Reply::Forgot { job } if job.id == id),
                "{reply:?}"
            );
            assert!(store.job(id).expect("read").is_none(), "{id} gone");
        }
        // With the daemon stopped nothing holds a job: anything goes.
        let reply = execute(&store, Owner::Offline, Request::Forget { job: up }, now);
        assert!(matches!(&reply, Reply::Forgot { .. }), "{reply:?}");
        let reply = execute(&store, daemon, Request::Forget { job: up }, now);
        assert_eq!(
            reply,
            Reply::error(ErrorKind::NoSuchJob, format!("no job {up}"))
        );
    }

    #[test]
    fn status_has_counts_and_the_daemons_health() {
        let (store, health, progress) = (Store::in_memory(), health(), Progress::new());
        let a = job(&store, "a");
        let b = job(&store, "b");
        fail(&store, b, FailureKind::Permanent, 0);
        let now = crate::admin::now_ms() + 5000;
        match execute(&store, daemon(&health, &progress), Request::Status, now) {
            Reply::Status {
                counts,
                health,
                roots,
                oldest_queued,
                daemon,
                ..
            } => {
                assert_eq!(counts.queued, 1);
                let health = health.expect("health");
                assert_eq!(health.files_limit, 4, "{health:?}");
                assert_eq!(health.paused, None, "{health:?}");
                let queued = oldest_queued.expect("a queued job");
                assert_eq!((queued.job, queued.path.as_str()), (a, "r:/a"));
                assert!(queued.age_ms >= 5000, "{queued:?}");
                assert_eq!(
                    roots,
                    vec![RootCounts {
                        root: "r".into(),
                        synced: 0,
                        jobs: 2,
                        queued: 1,
                        in_flight: 0,
                        failed: 1
                    }]
                );
                let daemon = daemon.expect("the daemon's part");
                assert_eq!(daemon.connection.state, ConnectionState::Ok);
                assert_eq!(daemon.pid, std::process::id());
            }
            other => panic!("{other:?}"),
        }
        health.pause(PauseReason::CdfUnreachable, "connection refused", None);
        let reply = execute(&store, daemon(&health, &progress), Request::Status, now);
        let Reply::Status {
            daemon: Some(d), ..
        } = reply
        else {
            panic!("{reply:?}");
        };
        assert_eq!(d.connection.state, ConnectionState::Unreachable);
        assert!(d.connection.since_ms.is_some_and(|t| t <= now), "{d:?}");
        assert_eq!(d.connection.detail.as_deref(), Some("connection refused"));
        let reply = execute(&store, Owner::Offline, Request::Status, 0);
        assert!(
            matches!(
                reply,
                Reply::Status {
                    health: None,
                    daemon: None,
                    ..
                }
            ),
            "{reply:?}"
        );
    }
}
