//! The admin socket: the daemon's local control channel, and the CLI's way in while
//! the daemon holds the job store (only one process may open it).
//!
//! A Unix socket at `[admin] socket` (mode 0600, or 0660 for `socket_group`) speaking
//! one JSON request per line and one JSON reply per line (`protocol.rs`). `server.rs`
//! serves it in the daemon, `client.rs` is the CLI's side, and `handle.rs` is what each
//! request does to the store (`status.rs` builds the status reply), shared by the
//! daemon and by the CLI working on the store directly when the daemon is stopped.
//! Commands: `status` (store counts, per-root jobs, the oldest queued job and, from a
//! running daemon, its health, CDF connection and uploads in flight), `jobs`, `retry`,
//! `retry_all_failed`, `forget`.

mod client;
mod handle;
mod link;
pub mod protocol;
mod server;
mod status;

#[cfg(test)]
mod tests;

use std::path::PathBuf;
use std::sync::Arc;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use client::{ClientError, request};
pub use handle::{FORGET_MARGIN_MS, Owner, execute};
pub use protocol::{
    Connection, ConnectionState, DaemonStatus, Envelope, ErrorKind, JobFilter, JobView, QueuedJob,
    Reply, Request, RootCounts,
};
pub use server::{MAX_CLIENTS, serve};

use crate::config::AdminSettings;
use crate::daemon::health::Health;
use crate::daemon::progress::Progress;
use crate::store::Store;

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("cannot listen on {}: {source}", path.display())]
    Bind {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{} exists and is not a socket; refusing to replace it", path.display())]
    NotASocket { path: PathBuf },
    #[error("another process already listens on {}", path.display())]
    InUse { path: PathBuf },
    #[error("setting up the admin socket failed: {0}")]
    Setup(tokio::task::JoinError),
}

/// Starts the admin socket for the daemon. One that cannot be set up is an ERROR but
/// not fatal: the sync matters more than its control channel.
pub async fn start(
    settings: &AdminSettings,
    store: Arc<Store>,
    health: Arc<Health>,
    progress: Arc<Progress>,
    cancel: CancellationToken,
) -> Option<JoinHandle<()>> {
    let socket = settings.socket.clone();
    let group = settings.socket_group.clone();
    let link = settings.state_link.clone();
    match serve(socket, group, link, store, health, progress, cancel).await {
        Ok(task) => Some(task),
        Err(e) => {
            tracing::error!(socket = %settings.socket.display(), error = %e,
                "admin socket unavailable; syncing goes on, but `cdf-syncd jobs`, `retry` and \
                 `forget` cannot reach this daemon: make sure the socket's directory exists \
                 and is writable by the daemon (or set [admin] socket), then restart");
            None
        }
    }
}

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
