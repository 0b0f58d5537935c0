//! The scheduler: hands due jobs to workers, at most `files_limit` at a time, and runs
//! the pipeline's pause.
//!
//! It wakes when intake queued something, when a worker finished, when a probe
//! finished, or on a slow tick. Jobs that were in flight when the daemon last stopped
//! (uploading, completing, done) go first, so a restart resumes them before anything
//! new; the same holds after a pause. While paused (see `health.rs`) it starts nothing
//! and runs one probe at a time when due; a successful probe resumes the pipeline. On
//! shutdown it starts nothing new and waits for running workers, which stop between
//! parts.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::cdf::{CdfError, RetryClass};
use crate::store::{Job, JobId, StoreError};

use super::health::PauseReason;
use super::notify::summary;
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
    /// `sync --once` gave up on a pause that its probes could not lift.
    pub gave_up: Option<PauseReason>,
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

/// In `sync --once`, a job failing transiently this often is reported, not awaited;
/// so is a pause whose probe failed this often.
pub const ONCE_MAX_ATTEMPTS: u32 = 5;

/// What a probe found: the pause can end, or it holds (for this reason).
type ProbeResult = Result<(), (PauseReason, String)>;

pub async fn run(
    ctx: Arc<Ctx>,
    wake: Arc<Notify>,
    intake_done: CancellationToken,
    cancel: CancellationToken,
    until: Until,
    notifier: &super::notify::Notifier,
) -> Tally {
    let mut running: HashMap<tokio::task::Id, JobId> = HashMap::new();
    let mut workers: JoinSet<Outcome> = JoinSet::new();
    let mut probes: JoinSet<ProbeResult> = JoinSet::new();
    let mut failed_probes = 0;
    let mut tally = Tally::default();
    let mut backlog: Vec<Job> = Vec::new();
    // In-flight jobs go first: at start, and again after every pause.
    let mut resume_in_flight = true;
    let mut grace_ends: Option<tokio::time::Instant> = None;
    loop {
        // The watchdog ping comes from this loop, so a stalled scheduler misses it.
        notifier.tick(|| {
            summary(
                ctx.health.paused(),
                ctx.store.counts().ok().as_ref(),
                running.len(),
            )
        });
        ctx.health.observe_throttling(ctx.client.throttled_total());
        if !cancel.is_cancelled() && ctx.health.paused().is_none() {
            let started = start_due(
                &ctx,
                &mut backlog,
                &mut resume_in_flight,
                &mut running,
                &mut workers,
                &cancel,
            );
            if let Err(e) = started {
                ctx.health
                    .pause(PauseReason::StateUnwritable, &e.to_string(), None);
            }
        }
        if let Some(reason) = ctx.health.probe_due()
            && probes.is_empty()
            && !cancel.is_cancelled()
        {
            let ctx = ctx.clone();
            probes.spawn(async move { probe(&ctx, reason).await });
        }
        if cancel.is_cancelled() {
            probes.abort_all();
            let grace = ctx.settings().admin.shutdown_grace;
            let ends = *grace_ends.get_or_insert_with(|| tokio::time::Instant::now() + grace);
            if !running.is_empty() && tokio::time::Instant::now() >= ends {
                // Consistent either way: each job resumes from its last durable step.
                tracing::warn!(
                    uploads = running.len(),
                    ?grace,
                    "shutdown grace is over: stopping uploads mid-part; they resume from their last checkpoint"
                );
                workers.abort_all();
                while workers.join_next().await.is_some() {}
                running.clear();
            }
        }
        if running.is_empty() && probes.is_empty() {
            if cancel.is_cancelled() {
                return tally;
            }
            if until == Until::Idle {
                if failed_probes >= ONCE_MAX_ATTEMPTS {
                    tally.gave_up = ctx.health.paused();
                    return tally;
                }
                if ctx.health.paused().is_none() && idle(&ctx, &intake_done, &backlog) {
                    return tally;
                }
            }
        }
        let nap = ctx.health.until_probe().unwrap_or(TICK).min(TICK);
        tokio::select! {
            done = workers.join_next_with_id(), if !running.is_empty() => {
                if let Some(joined) = done {
                    settle(joined, &mut running, &mut tally);
                }
            }
            Some(probed) = probes.join_next(), if !probes.is_empty() => {
                match probed {
                    Ok(Ok(())) => {
                        if ctx.health.resume() == Some(PauseReason::StateUnwritable) {
                            // What intake could not record, and unflushed writes the
                            // store's reopen dropped, are found again by a scan.
                            ctx.rescan_all();
                        }
                        failed_probes = 0;
                        resume_in_flight = true;
                        backlog.clear();
                    }
                    Ok(Err((reason, detail))) => {
                        failed_probes += 1;
                        ctx.health.probe_failed(reason, &detail);
                    }
                    Err(e) if e.is_cancelled() => {}
                    Err(e) => tracing::error!(error = %e, "the pause probe panicked"),
                }
            }
            () = wake.notified() => {}
            // `sync --once`: the end of intake may be the end of the run; not a tick later.
            () = intake_done.cancelled(), if until == Until::Idle && !intake_done.is_cancelled() => {}
            () = ctx.health.nudged() => {}
            () = tokio::time::sleep(nap) => {}
            () = cancel.cancelled(), if !cancel.is_cancelled() => {}
        }
    }
}

/// Starts due jobs up to the current limit.
fn start_due(
    ctx: &Arc<Ctx>,
    backlog: &mut Vec<Job>,
    resume_in_flight: &mut bool,
    running: &mut HashMap<tokio::task::Id, JobId>,
    workers: &mut JoinSet<Outcome>,
    cancel: &CancellationToken,
) -> Result<(), StoreError> {
    let max = ctx.health.files_limit();
    if running.len() >= max {
        return Ok(());
    }
    if backlog.is_empty() && *resume_in_flight {
        *backlog = ctx.store.in_flight()?;
        *resume_in_flight = false;
        backlog.retain(|j| !running.values().any(|id| *id == j.id));
        backlog.reverse();
    }
    if backlog.is_empty() {
        *backlog = ctx.store.due(worker::now_ms(), max + running.len())?;
        backlog.retain(|j| !running.values().any(|id| *id == j.id));
        backlog.reverse();
    }
    while running.len() < max {
        let Some(job) = backlog.pop() else { break };
        if running.values().any(|id| *id == job.id) {
            continue;
        }
        let (ctx, cancel, id) = (ctx.clone(), cancel.clone(), job.id);
        let handle = workers.spawn(async move { worker::run(&ctx, job, &cancel).await });
        running.insert(handle.id(), id);
    }
    Ok(())
}

/// Whether the pause can end. Throttling ends when its wait is over; an outage or
/// rejected credentials when one authenticated call goes through; an unwritable
/// state directory when a write can be made durable again.
async fn probe(ctx: &Ctx, reason: PauseReason) -> ProbeResult {
    match reason {
        PauseReason::Throttled => Ok(()),
        PauseReason::StateUnwritable => ctx
            .store
            .probe_writable()
            .await
            .map_err(|e| (PauseReason::StateUnwritable, e.to_string())),
        PauseReason::CdfUnreachable | PauseReason::CredentialsRejected => {
            match ctx.client.probe().await {
                Ok(()) => Ok(()),
                Err(e) => match still_paused(&e) {
                    Some(reason) => Err((reason, e.to_string())),
                    // CDF answered: whatever is wrong is a job's business.
                    None => Ok(()),
                },
            }
        }
    }
}

/// The pause a failed probe keeps in force, if any.
fn still_paused(e: &CdfError) -> Option<PauseReason> {
    match e {
        CdfError::Auth(crate::auth::AuthError::Rejected { .. }) => {
            Some(PauseReason::CredentialsRejected)
        }
        CdfError::Auth(_) | CdfError::Transport { .. } | CdfError::BadReply { .. } => {
            Some(PauseReason::CdfUnreachable)
        }
        _ => match e.retry_class() {
            RetryClass::ReAuth => Some(PauseReason::CredentialsRejected),
            RetryClass::Throttled { .. } | RetryClass::Transient => {
                Some(PauseReason::CdfUnreachable)
            }
            RetryClass::Permanent => None,
        },
    }
}

/// `sync --once` is finished when intake is done and nothing can run now or soon.
fn idle(ctx: &Ctx, intake_done: &CancellationToken, backlog: &[Job]) -> bool {
    if !intake_done.is_cancelled() || !backlog.is_empty() {
        return false;
    }
    match ctx.store.due(i64::MAX, 1000) {
        Ok(waiting) => waiting.iter().all(|j| j.attempts >= ONCE_MAX_ATTEMPTS),
        Err(e) => {
            ctx.health
                .pause(PauseReason::StateUnwritable, &e.to_string(), None);
            false
        }
    }
}

fn settle(
    joined: Result<(tokio::task::Id, Outcome), tokio::task::JoinError>,
    running: &mut HashMap<tokio::task::Id, JobId>,
    tally: &mut Tally,
) {
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
            return;
        }
    };
    match outcome {
        Outcome::Synced { .. } => tally.synced += 1,
        Outcome::Dropped => tally.dropped += 1,
        Outcome::Failed => tally.failed_attempts += 1,
        Outcome::Interrupted | Outcome::Paused => {}
    }
}
