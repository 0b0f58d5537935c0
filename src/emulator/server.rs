//! The accept loop. (Stub: owned by the storage work; must support outages.)

use std::net::SocketAddr;

use axum::Router;
use tokio_util::sync::CancellationToken;

use super::EmulatorError;

pub(crate) fn bind(addr: SocketAddr) -> Result<std::net::TcpListener, EmulatorError> {
    let l = std::net::TcpListener::bind(addr).map_err(|source| EmulatorError::Bind { addr, source })?;
    l.set_nonblocking(true).map_err(|source| EmulatorError::Bind { addr, source })?;
    Ok(l)
}

pub(crate) struct ServerHandle {
    task: Option<tokio::task::JoinHandle<()>>,
}

pub(crate) fn spawn(
    listener: std::net::TcpListener,
    _addr: SocketAddr,
    router: Router,
    cancel: CancellationToken,
) -> ServerHandle {
    let task = tokio::spawn(async move {
        let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
            return;
        };
        let _ = axum::serve(listener, router)
            .with_graceful_shutdown(async move { cancel.cancelled().await })
            .await;
    });
    ServerHandle { task: Some(task) }
}

impl ServerHandle {
    pub fn set_down(&self, _down: bool) {}

    /// Waits for the server task (after the cancellation token fired).
    pub async fn join(&mut self) {
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}
