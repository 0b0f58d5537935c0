//! The store's rules, as pure functions both engines share: what `enqueue` does with a
//! path, what each transition writes, when a job is due and when its parts survive.
//!
//! An engine reads the records an operation needs, asks this module for a [`Change`]
//! and applies that change atomically. The engines therefore differ only in how they
//! store things, which is what the conformance suite and the property test compare.

use super::error::StoreError;
use super::job::{FailureKind, FileKey, Job, JobId, JobState, SyncedFile, Target, Upload};
use super::types::{Enqueued, StateKind};
use crate::fingerprint::Fingerprint;

/// What happens to a job's part records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Parts {
    Keep,
    Clear,
    Add(u32),
}

/// Everything one operation writes, applied in one atomic step.
#[derive(Debug, Clone)]
pub(crate) struct Change {
    pub id: JobId,
    /// The job as it was (`None` for a new job).
    pub old: Option<Job>,
    /// The job as it will be (`None`: removed, with its path entry and parts).
    pub new: Option<Job>,
    pub parts: Parts,
    /// Written as the path's synced record (before the job changes).
    pub synced: Option<SyncedFile>,
}

/// A transition of an existing job.
#[derive(Debug, Clone)]
pub(crate) enum JobOp {
    SetState(JobState),
    StartUpload(Upload),
    Fail {
        kind: FailureKind,
        retry_at_ms: i64,
        error: String,
    },
    PartDone(u32),
    Retry,
    Finish(SyncedFile),
    Forget,
}

/// When a job is due: queued jobs in creation order, transient failures at their retry
/// time; any other state is never picked by `due`.
pub(crate) fn due_ms(job: &Job) -> Option<i64> {
    match &job.state {
        JobState::Queued => Some(job.created_ms),
        JobState::Failed {
            kind: FailureKind::Transient,
            retry_at_ms,
            ..
        } => Some(*retry_at_ms),
        _ => None,
    }
}

/// How many part records an upload session can have.
pub(crate) fn part_count(upload: &Upload) -> u32 {
    match &upload.target {
        Target::Single { .. } => 1,
        Target::Multipart { urls, .. } => u32::try_from(urls.len()).unwrap_or(u32::MAX),
    }
}

/// The upload session a state holds: in progress, or kept by a failure to resume.
pub(crate) fn session(state: &JobState) -> Option<&Upload> {
    match state {
        JobState::Uploading(u) | JobState::Completing(u) => Some(u),
        JobState::Failed {
            resume: Some(u), ..
        } => Some(u),
        _ => None,
    }
}

/// Parts survive a transition only within one upload session (same file and target);
/// a failure during a session keeps it (and its parts) for the retry.
fn parts_after(old: &JobState, new: &JobState) -> Parts {
    match (session(old), session(new)) {
        (Some(a), Some(b)) if a.file_id == b.file_id && a.target == b.target => Parts::Keep,
        (None, None) => Parts::Keep,
        _ => Parts::Clear,
    }
}

/// Decides what `enqueue` does; `next_id` is called only when a job is created.
pub(crate) fn enqueue(
    synced: Option<&SyncedFile>,
    job: Option<Job>,
    key: FileKey,
    fingerprint: Fingerprint,
    now_ms: i64,
    next_id: impl FnOnce() -> Result<JobId, StoreError>,
) -> Result<(Enqueued, Option<Change>), StoreError> {
    let Some(old) = job else {
        if synced.is_some_and(|s| s.fingerprint == fingerprint) {
            return Ok((Enqueued::Unchanged, None));
        }
        let id = next_id()?;
        let new = Job {
            id,
            key,
            fingerprint,
            overwrite: synced.is_some(),
            state: JobState::Queued,
            attempts: 0,
            created_ms: now_ms,
        };
        return Ok((Enqueued::New(id), Some(change(None, new, Parts::Keep))));
    };
    let id = old.id;
    match StateKind::of(&old.state) {
        StateKind::Uploading | StateKind::Completing | StateKind::Done
            if old.fingerprint == fingerprint =>
        {
            Ok((Enqueued::InFlight(id), None))
        }
        // The session goes on with the content it started with (`Upload::source`);
        // the job remembers the newer version, which a failure then retries and
        // `finish` queues (see there).
        StateKind::Uploading | StateKind::Completing | StateKind::Done => {
            let mut new = old.clone();
            new.fingerprint = fingerprint;
            Ok((
                Enqueued::InFlight(id),
                Some(change(Some(old), new, Parts::Keep)),
            ))
        }
        StateKind::Queued | StateKind::Failed if old.fingerprint == fingerprint => {
            Ok((Enqueued::Pending(id), None))
        }
        StateKind::Queued | StateKind::Failed => {
            let mut new = old.clone();
            new.fingerprint = fingerprint;
            new.state = JobState::Queued;
            new.attempts = 0;
            new.overwrite |= synced.is_some();
            Ok((
                Enqueued::Updated(id),
                Some(change(Some(old), new, Parts::Clear)),
            ))
        }
    }
}

fn change(old: Option<Job>, new: Job, parts: Parts) -> Change {
    Change {
        id: new.id,
        old,
        new: Some(new),
        parts,
        synced: None,
    }
}

fn wrong(job: &Job, op: &'static str) -> StoreError {
    StoreError::WrongState {
        id: job.id,
        state: StateKind::of(&job.state),
        op,
    }
}

/// What a transition of `old` writes, or why it is refused.
pub(crate) fn apply(old: Job, op: JobOp) -> Result<Change, StoreError> {
    let mut new = old.clone();
    let parts = match op {
        JobOp::SetState(state) => {
            let parts = parts_after(&old.state, &state);
            new.state = state;
            parts
        }
        JobOp::StartUpload(upload) => {
            new.state = JobState::Uploading(upload);
            Parts::Clear
        }
        JobOp::Fail {
            kind,
            retry_at_ms,
            error,
        } => {
            new.attempts = old.attempts.saturating_add(1);
            new.state = JobState::Failed {
                kind,
                retry_at_ms,
                last_error: error,
                resume: session(&old.state).cloned(),
            };
            parts_after(&old.state, &new.state)
        }
        JobOp::PartDone(part) => return part_done(old, part),
        JobOp::Retry => return retry(old),
        JobOp::Finish(synced) => return finish(old, synced),
        JobOp::Forget => return Ok(removal(old, None)),
    };
    Ok(change(Some(old), new, parts))
}

fn part_done(old: Job, part: u32) -> Result<Change, StoreError> {
    let JobState::Uploading(upload) = &old.state else {
        return Err(wrong(&old, "record a finished part"));
    };
    let parts = part_count(upload);
    if part >= parts {
        return Err(StoreError::PartOutOfRange {
            id: old.id,
            part,
            parts,
        });
    }
    Ok(change(Some(old.clone()), old, Parts::Add(part)))
}

fn retry(old: Job) -> Result<Change, StoreError> {
    if !matches!(old.state, JobState::Failed { .. }) {
        return Err(wrong(&old, "retry"));
    }
    let mut new = old.clone();
    new.state = JobState::Queued;
    new.attempts = 0;
    Ok(change(Some(old), new, Parts::Clear))
}

/// Compaction of a `Done` job into the path's synced record. When a newer version of
/// the file was found stable while the job was in flight (its fingerprint is not the
/// synced one), the job is not removed but queued again for that version, as an
/// overwrite: the newer version is never dropped.
fn finish(old: Job, synced: SyncedFile) -> Result<Change, StoreError> {
    if !matches!(old.state, JobState::Done { .. }) {
        return Err(wrong(&old, "finish (compact)"));
    }
    if old.fingerprint == synced.fingerprint {
        return Ok(removal(old, Some(synced)));
    }
    let mut new = old.clone();
    new.state = JobState::Queued;
    new.attempts = 0;
    new.overwrite = true;
    Ok(Change {
        id: old.id,
        old: Some(old),
        new: Some(new),
        parts: Parts::Clear,
        synced: Some(synced),
    })
}

fn removal(old: Job, synced: Option<SyncedFile>) -> Change {
    Change {
        id: old.id,
        old: Some(old),
        new: None,
        parts: Parts::Clear,
        synced,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upload(file_id: i64, upload_id: &str) -> Upload {
        Upload {
            file_id,
            target: Target::Multipart {
                upload_id: upload_id.into(),
                urls: vec!["u0".into(), "u1".into()],
                part_size: 5,
            },
            urls_issued_ms: 0,
            source: Fingerprint {
                size: 10,
                mtime_ns: 0,
                inode: 1,
                device: 1,
            },
        }
    }

    #[test]
    fn parts_survive_only_within_one_session() {
        let a = upload(1, "x");
        let up = |u: &Upload| JobState::Uploading(u.clone());
        let co = |u: &Upload| JobState::Completing(u.clone());
        assert_eq!(parts_after(&up(&a), &co(&a)), Parts::Keep);
        assert_eq!(parts_after(&co(&a), &up(&a)), Parts::Keep);
        assert_eq!(parts_after(&up(&a), &up(&upload(1, "y"))), Parts::Clear);
        assert_eq!(parts_after(&up(&a), &up(&upload(2, "x"))), Parts::Clear);
        assert_eq!(
            parts_after(&co(&a), &JobState::Done { file_id: 1 }),
            Parts::Clear
        );
        assert_eq!(parts_after(&up(&a), &JobState::Queued), Parts::Clear);
        assert_eq!(parts_after(&JobState::Queued, &up(&a)), Parts::Clear);
    }

    #[test]
    fn a_failure_keeps_the_session_and_its_parts_for_the_retry() {
        let a = upload(1, "x");
        let failed = |resume: Option<Upload>| JobState::Failed {
            kind: FailureKind::Transient,
            retry_at_ms: 0,
            last_error: "503".into(),
            resume,
        };
        let job = Job {
            id: JobId(7),
            key: FileKey::new("r", std::path::Path::new("f")),
            fingerprint: a.source,
            overwrite: false,
            state: JobState::Uploading(a.clone()),
            attempts: 0,
            created_ms: 0,
        };
        let op = JobOp::Fail {
            kind: FailureKind::Transient,
            retry_at_ms: 5,
            error: "503".into(),
        };
        let change = apply(job, op).expect("fail");
        assert_eq!(change.parts, Parts::Keep);
        let new = change.new.expect("job stays");
        assert!(matches!(&new.state, JobState::Failed { resume: Some(u), .. } if *u == a));
        assert_eq!(new.attempts, 1);
        // Resuming the same session keeps the parts; anything else clears them.
        assert_eq!(
            parts_after(&failed(Some(a.clone())), &JobState::Uploading(a.clone())),
            Parts::Keep
        );
        assert_eq!(
            parts_after(&failed(Some(a.clone())), &JobState::Queued),
            Parts::Clear
        );
        assert_eq!(
            parts_after(&failed(Some(a)), &JobState::Uploading(upload(1, "y"))),
            Parts::Clear
        );
    }

    #[test]
    fn part_counts_follow_the_target() {
        assert_eq!(part_count(&upload(1, "x")), 2);
        let mut single = upload(1, "x");
        single.target = Target::Single { url: "u".into() };
        assert_eq!(part_count(&single), 1);
    }
}
