//! Sending a multipart session's missing parts: at most `max_parallel_parts` at a
//! time, in any order, each checkpointed (durably) as soon as CDF's storage took it.
//!
//! On shutdown no new part starts; parts already in flight finish (or fail) and are
//! checkpointed, so the next start re-sends at most the parts that were cut off.

use std::path::Path;

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use tokio_util::sync::CancellationToken;

use crate::cdf::PutKind;
use crate::cdf::limits::PartPlan;
use crate::store::JobId;

use super::worker::{Ctx, Stop};

#[allow(clippy::too_many_arguments)]
pub(super) async fn send(
    ctx: &Ctx,
    job: JobId,
    path: &Path,
    size: u64,
    plan: PartPlan,
    urls: &[String],
    todo: &[u32],
    cancel: &CancellationToken,
) -> Result<(), Stop> {
    let mut pending = todo.iter().copied();
    let mut in_flight = FuturesUnordered::new();
    let mut first_error = None;
    loop {
        // Re-read every round: throttling lowers it while the file is in flight.
        let parallel = ctx.health.parts_limit();
        while first_error.is_none() && !cancel.is_cancelled() && in_flight.len() < parallel {
            let Some(part) = pending.next() else { break };
            let url = urls.get(part as usize).cloned().unwrap_or_default();
            let (offset, len) = plan.range(u64::from(part), size);
            in_flight.push(async move {
                let r = ctx
                    .client
                    .put(&url, path, offset, len, &PutKind::Part)
                    .await;
                (part, len, r)
            });
        }
        let Some((part, len, result)) = in_flight.next().await else {
            break;
        };
        match result {
            Ok(()) => {
                ctx.store.mark_part_done(job, part)?;
                ctx.store.flush().await?;
                ctx.progress.sent(job, len);
            }
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    if let Some(e) = first_error {
        return Err(e.into());
    }
    if cancel.is_cancelled() && pending.next().is_some() {
        return Err(Stop::Interrupted);
    }
    Ok(())
}
