//! The accept loop: serves the router on its own hyper-util connections so that the
//! emulator can do what a real outage or a flaky network does.
//!
//! - A handler that wants the connection cut (injected drop, lost response) answers with
//!   [`DropConnection`] in its response extensions; [`Abortable`] turns that into a
//!   service error, on which hyper aborts the connection without a reply.
//! - [`DownSwitch`] takes the service down: the listener is closed (new connections are
//!   refused) and every open connection is cut; coming back up rebinds the same address.
//! - Shutdown (the cancellation token) stops accepting, asks each connection to finish
//!   gracefully (idle keep-alive connections close at once) and cuts the rest after
//!   [`SHUTDOWN_GRACE`].

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::response::{IntoResponse, Response};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

use super::EmulatorError;

/// How long shutdown lets busy connections finish before cutting them.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(1);
/// Delay between attempts to rebind the address after an outage.
const REBIND_RETRY: Duration = Duration::from_millis(20);

/// Response extension: abort the connection instead of sending this response.
#[derive(Debug, Clone, Copy)]
pub(crate) struct DropConnection;

/// A response that makes the server cut the connection without replying.
pub(crate) fn drop_connection() -> Response {
    let mut resp = ().into_response();
    resp.extensions_mut().insert(DropConnection);
    resp
}

/// Up/down switch shared by the server, the `Emulator` handle and `/_emulator/outage`.
#[derive(Debug, Clone)]
pub(crate) struct DownSwitch(Arc<watch::Sender<bool>>);

impl Default for DownSwitch {
    fn default() -> Self {
        Self(Arc::new(watch::Sender::new(false)))
    }
}

impl DownSwitch {
    pub fn set(&self, down: bool) {
        self.0.send_replace(down);
    }

    fn subscribe(&self) -> watch::Receiver<bool> {
        self.0.subscribe()
    }
}

/// Binds a listening socket with `SO_REUSEADDR`, so the address can be bound again
/// after an outage even with connections in TIME_WAIT.
pub(crate) fn bind(addr: SocketAddr) -> Result<std::net::TcpListener, EmulatorError> {
    let err = |source| EmulatorError::Bind { addr, source };
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()
    } else {
        TcpSocket::new_v6()
    }
    .map_err(err)?;
    socket.set_reuseaddr(true).map_err(err)?;
    socket.bind(addr).map_err(err)?;
    let listener = socket.listen(1024).map_err(err)?;
    listener.into_std().map_err(err)
}

/// The running accept loop.
pub(crate) struct ServerHandle {
    switch: DownSwitch,
    task: Option<tokio::task::JoinHandle<()>>,
}

/// Starts serving `router` on `listener` (bound to `addr`) until `cancel` fires.
pub(crate) fn spawn(
    listener: std::net::TcpListener,
    addr: SocketAddr,
    router: Router,
    switch: DownSwitch,
    cancel: CancellationToken,
) -> ServerHandle {
    let down = switch.subscribe();
    let task = tokio::spawn(async move {
        let listener = match TcpListener::from_std(listener) {
            Ok(l) => l,
            Err(err) => {
                tracing::error!(%addr, %err, "cannot serve the emulator");
                return;
            }
        };
        let server = Server {
            addr,
            router,
            down,
            cancel,
            tracker: TaskTracker::new(),
        };
        server.run(listener).await;
    });
    ServerHandle {
        switch,
        task: Some(task),
    }
}

impl ServerHandle {
    pub fn set_down(&self, down: bool) {
        self.switch.set(down);
    }

    /// Waits for the server task (after the cancellation token fired).
    pub async fn join(&mut self) {
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

struct Server {
    addr: SocketAddr,
    router: Router,
    down: watch::Receiver<bool>,
    cancel: CancellationToken,
    tracker: TaskTracker,
}

impl Server {
    async fn run(mut self, first: TcpListener) {
        let mut listener = Some(first);
        while !self.cancel.is_cancelled() {
            let l = match listener.take() {
                Some(l) => l,
                None => match self.come_back_up().await {
                    Some(l) => l,
                    None => break,
                },
            };
            // Connections of this "up" period; cut all at once when going down.
            let period = CancellationToken::new();
            listener = self.serve_until_down(l, &period).await;
            period.cancel();
        }
        self.tracker.close();
        self.tracker.wait().await;
    }

    /// Accepts until going down (returns None: the listener is dropped, so new
    /// connections are refused) or shutdown.
    async fn serve_until_down(
        &mut self,
        listener: TcpListener,
        period: &CancellationToken,
    ) -> Option<TcpListener> {
        loop {
            if *self.down.borrow_and_update() {
                tracing::info!(addr = %self.addr, "emulator down: refusing connections");
                return None;
            }
            tokio::select! {
                () = self.cancel.cancelled() => return Some(listener),
                changed = self.down.changed() => {
                    if changed.is_err() {
                        return Some(listener);
                    }
                }
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => self.serve(stream, period.clone()),
                    Err(err) => tracing::debug!(%err, "accept failed"),
                },
            }
        }
    }

    /// Waits for the switch to come up again, then rebinds the address.
    async fn come_back_up(&mut self) -> Option<TcpListener> {
        loop {
            tokio::select! {
                () = self.cancel.cancelled() => return None,
                changed = self.down.wait_for(|down| !*down) => changed.ok()?,
            };
            let bound = bind(self.addr).and_then(|l| {
                TcpListener::from_std(l).map_err(|source| EmulatorError::Bind {
                    addr: self.addr,
                    source,
                })
            });
            match bound {
                Ok(l) => {
                    tracing::info!(addr = %self.addr, "emulator up again");
                    return Some(l);
                }
                Err(err) => {
                    tracing::warn!(%err, "cannot rebind after the outage; retrying");
                    tokio::select! {
                        () = self.cancel.cancelled() => return None,
                        () = tokio::time::sleep(REBIND_RETRY) => {}
                    }
                }
            }
        }
    }

    fn serve(&self, stream: TcpStream, period: CancellationToken) {
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(Abortable(self.router.clone()));
        let shutdown = self.cancel.clone();
        self.tracker.spawn(async move {
            let builder = auto::Builder::new(TokioExecutor::new());
            let conn = builder.serve_connection(TokioIo::new(stream), service);
            tokio::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => {}
                () = period.cancelled() => {}
                () = shutdown.cancelled() => {
                    conn.as_mut().graceful_shutdown();
                    let _ = tokio::time::timeout(SHUTDOWN_GRACE, conn.as_mut()).await;
                }
            }
        });
    }
}

/// The router as hyper sees it: a response marked [`DropConnection`] becomes an error,
/// so hyper closes the connection without answering.
#[derive(Clone)]
struct Abortable(Router);

/// The service error that aborts a connection.
#[derive(Debug, thiserror::Error)]
#[error("connection dropped on purpose (fault injection)")]
struct Aborted;

impl tower::Service<hyper::Request<Incoming>> for Abortable {
    type Response = Response;
    type Error = Aborted;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Aborted>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Aborted>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: hyper::Request<Incoming>) -> Self::Future {
        let router = self.0.clone();
        Box::pin(async move {
            let resp: Result<Response, Infallible> = router.oneshot(req.map(Body::new)).await;
            match resp {
                Ok(resp) if resp.extensions().get::<DropConnection>().is_none() => Ok(resp),
                _ => Err(Aborted),
            }
        })
    }
}
