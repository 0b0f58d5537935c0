//! The `status` request: the store's counts, jobs per root and the oldest queued job;
//! from a running daemon also its health, its CDF connection and what its workers are
//! doing (`daemon/progress.rs`). Blocks (the per-root counts walk up to
//! [`MAX_ROOT_SCAN`] jobs).

use std::collections::BTreeMap;

use crate::daemon::health::{HealthSnapshot, PauseReason};
use crate::store::{Job, StateKind, Store, StoreError};

use super::handle::Owner;
use super::protocol::{
    Connection, ConnectionState, DaemonStatus, MAX_ROOT_SCAN, QueuedJob, Reply, RootCounts,
};

pub(super) fn status(store: &Store, owner: Owner<'_>, now_ms: i64) -> Result<Reply, StoreError> {
    let (health, daemon) = match owner {
        Owner::Daemon { health, progress } => {
            let snapshot = health.snapshot();
            let daemon = DaemonStatus {
                version: env!("CARGO_PKG_VERSION").to_owned(),
                pid: std::process::id(),
                connection: connection(&snapshot, now_ms),
                activity: progress.snapshot(),
            };
            (Some(Box::new(snapshot)), Some(Box::new(daemon)))
        }
        Owner::Offline => (None, None),
    };
    let counts = store.counts()?;
    let oldest_queued = match counts.queued {
        0 => None,
        _ => store.list(Some(StateKind::Queued), 1)?.first().map(|j| {
            Box::new(QueuedJob {
                job: j.id,
                path: j.key.to_string(),
                created_ms: j.created_ms,
                age_ms: u64::try_from(now_ms.saturating_sub(j.created_ms)).unwrap_or(0),
            })
        }),
    };
    Ok(Reply::Status {
        counts,
        health,
        roots: per_root(&store.list(None, MAX_ROOT_SCAN)?, store.synced_by_root()?),
        roots_truncated: counts.jobs() > MAX_ROOT_SCAN as u64,
        oldest_queued,
        daemon,
    })
}

/// Synced paths and jobs per root, in root order.
fn per_root(jobs: &[Job], synced: BTreeMap<String, u64>) -> Vec<RootCounts> {
    let mut roots: BTreeMap<String, RootCounts> = synced
        .into_iter()
        .map(|(root, synced)| {
            let counts = RootCounts {
                root: root.clone(),
                synced,
                ..RootCounts::default()
            };
            (root, counts)
        })
        .collect();
    for job in jobs {
        let root = roots
            .entry(job.key.root.clone())
            .or_insert_with(|| RootCounts {
                root: job.key.root.clone(),
                ..RootCounts::default()
            });
        root.jobs += 1;
        match StateKind::of(&job.state) {
            StateKind::Queued => root.queued += 1,
            StateKind::Failed => root.failed += 1,
            StateKind::Uploading | StateKind::Completing | StateKind::Done => root.in_flight += 1,
        }
    }
    roots.into_values().collect()
}

/// CDF's side of the pipeline's health (a state directory that cannot be written is
/// not about CDF: the connection is `ok` then).
fn connection(health: &HealthSnapshot, now_ms: i64) -> Connection {
    let state = match health.paused {
        None | Some(PauseReason::StateUnwritable) => ConnectionState::Ok,
        Some(PauseReason::Throttled) => ConnectionState::Throttled,
        Some(PauseReason::CdfUnreachable) => ConnectionState::Unreachable,
        Some(PauseReason::CredentialsRejected) => ConnectionState::CredentialsRejected,
    };
    let paused = state != ConnectionState::Ok;
    Connection {
        state,
        since_ms: health
            .paused_for_ms
            .filter(|_| paused)
            .map(|ms| now_ms.saturating_sub(i64::try_from(ms).unwrap_or(i64::MAX))),
        detail: health.detail.clone().filter(|_| paused),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_older_daemons_status_reply_still_parses() {
        let old = r#"{"reply":"status","counts":{"queued":2,"uploading":0,"completing":0,
            "done":0,"failed":1,"synced":5,"quarantined":0},"health":null}"#;
        let reply: Reply = serde_json::from_str(old).expect("a v1 reply");
        let Reply::Status {
            counts,
            roots,
            roots_truncated,
            oldest_queued,
            daemon,
            ..
        } = reply
        else {
            panic!("{reply:?}");
        };
        assert_eq!((counts.queued, counts.synced), (2, 5));
        assert!(roots.is_empty() && !roots_truncated);
        assert!(oldest_queued.is_none() && daemon.is_none());
    }
}
