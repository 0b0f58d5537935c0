//! The scheduler: hands due jobs to workers, at most `max_concurrent_files` at a time.
//!
//! It wakes when intake queued something, when a worker finished, when the next
//! failed job's retry time comes, or on a slow tick. Jobs that were in flight when
//! the daemon last stopped (uploading, completing, done) go first, so a restart
//! resumes them before anything new. On shutdown it starts nothing new and waits for
//! running workers, which stop between parts.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::store::{Job, JobId, StoreError};

use super::worker::{self, Ctx, Outcome};

/// Totals of one scheduler run.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Tally {
    pub synced: u64,
    pub dropped: u64,
    /// Failed attempts (each retried or left failed).
    pub failed_attempts: u64,
    /// Jobs left in `Failed` when the run ended (set by the daemon, from the store).
    pub failed_jobs: u64,
}

/// When the scheduler should stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Until {
    /// Until the cancellation token fires (the daemon).
    Cancelled,
    /// Until nothing is due or running and intake has finished (`sync --once`).
    Idle,
}

const TICK: Duration = Duration::from_secs(1);

pub async fn run(
    ctx: Arc<Ctx>,
    wake: Arc<Notify>,
    intake_done: CancellationToken,
    cancel: CancellationToken,
    until: Until,
) -> Result<Tally, StoreError> {
    let mut running: HashMap<tokio::task::Id, JobId> = HashMap::new();
    let mut workers: JoinSet<Result<Outcome, StoreError>> = JoinSet::new();
    let mut tally = Tally::default();
    let mut backlog: Vec<Job> = ctx.store.in_flight()?;
    loop {
        let max = ctx.health.files_limit();
        if !cancel.is_cancelled() && running.len() < max {
            let free = max - running.len();
            if backlog.is_empty() {
                backlog = ctx.store.due(worker::now_ms(), max + running.len())?;
                backlog.retain(|j| !running.values().any(|id| *id == j.id));
                backlog.reverse();
            }
            for _ in 0..free {
                let Some(job) = backlog.pop() else { break };
                if !running.values().any(|id| *id == job.id) {
                    let (ctx, cancel, id) = (ctx.clone(), cancel.clone(), job.id);
                    let handle =
                        workers.spawn(async move { worker::run(&ctx, job, &cancel).await });
                    running.insert(handle.id(), id);
                }
            }
        }
        if running.is_empty()
            && (cancel.is_cancelled() || idle(&ctx, until, &intake_done, &backlog)?)
        {
            return Ok(tally);
        }
        tokio::select! {
            done = workers.join_next_with_id(), if !running.is_empty() => {
                if let Some(joined) = done {
                    settle(joined, &mut running, &mut tally)?;
                }
            }
            () = wake.notified() => {}
            () = tokio::time::sleep(TICK) => {}
            () = cancel.cancelled(), if !cancel.is_cancelled() => {}
        }
    }
}

/// `sync --once` is finished when intake is done and nothing can run now or soon.
fn idle(
    ctx: &Ctx,
    until: Until,
    intake_done: &CancellationToken,
    backlog: &[Job],
) -> Result<bool, StoreError> {
    if until != Until::Idle || !intake_done.is_cancelled() || !backlog.is_empty() {
        return Ok(false);
    }
    let waiting = ctx.store.due(i64::MAX, 1000)?;
    Ok(waiting.iter().all(|j| j.attempts >= ONCE_MAX_ATTEMPTS))
}

/// In `sync --once`, a job failing transiently this often is reported, not awaited.
pub const ONCE_MAX_ATTEMPTS: u32 = 5;

fn settle(
    joined: Result<(tokio::task::Id, Result<Outcome, StoreError>), tokio::task::JoinError>,
    running: &mut HashMap<tokio::task::Id, JobId>,
    tally: &mut Tally,
) -> Result<(), StoreError> {
    let outcome = match joined {
        Ok((task, outcome)) => {
            running.remove(&task);
            outcome
        }
        Err(e) => {
            // A panicking worker must not take the daemon down; its job stays where
            // the store has it and is picked up again.
            let job = running.remove(&e.id());
            tracing::error!(?job, error = %e, "a worker panicked");
            return Ok(());
        }
    };
    match outcome? {
        Outcome::Synced { .. } => tally.synced += 1,
        Outcome::Dropped => tally.dropped += 1,
        Outcome::Failed => tally.failed_attempts += 1,
        Outcome::Interrupted => {}
    }
    Ok(())
}
