//! The daemon's side of the admin socket: set up the socket file, accept clients, answer
//! one request line at a time.
//!
//! A bad client cannot hurt the daemon: lines are bounded ([`MAX_REQUEST_LINE`]; a
//! longer one gets an error reply and the connection is closed), every connection is
//! its own task with an idle and a write timeout, at most [`MAX_CLIENTS`] are served at
//! once (the next gets a `busy` reply), and anything unparsable gets an error reply on
//! the same connection. Store work runs on the blocking pool.
//!
//! The socket file is replaced at start only when it is a socket nobody listens on (a
//! previous daemon's), and removed when the server stops, even when its task is
//! aborted, but never when another process has replaced it meanwhile. With a `link`
//! (the default socket outside the state directory), `link.rs` also places
//! `<state dir>/admin.sock` pointing to it.

use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener as StdListener, UnixStream as StdStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::{JoinHandle, JoinSet};
use tokio_util::sync::CancellationToken;

use super::AdminError;
use super::handle::{Owner, execute};
use super::link::SocketLink;
use super::protocol::{Envelope, ErrorKind, MAX_REQUEST_LINE, PROTOCOL_VERSION, Reply};
use crate::daemon::health::Health;
use crate::daemon::progress::Progress;
use crate::store::Store;

/// Clients served at once.
pub const MAX_CLIENTS: usize = 16;
/// A connection that sends nothing for this long is closed.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// A client that does not read its reply within this long is dropped.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// What every connection needs.
struct Shared {
    store: Arc<Store>,
    health: Arc<Health>,
    progress: Arc<Progress>,
}

/// Listens on `socket` until `cancel` fires; the socket file is removed when the
/// returned task ends. `group`: the socket gets mode 0660 and this group (a name from
/// `/etc/group` or a numeric gid); otherwise 0600. `link`: a symlink to the socket
/// placed there for as long as it listens.
pub async fn serve(
    socket: PathBuf,
    group: Option<String>,
    link: Option<PathBuf>,
    store: Arc<Store>,
    health: Arc<Health>,
    progress: Arc<Progress>,
    cancel: CancellationToken,
) -> Result<JoinHandle<()>, AdminError> {
    let (listener, file) =
        tokio::task::spawn_blocking(move || prepare(&socket, group, link.as_deref()))
            .await
            .map_err(AdminError::Setup)??;
    let listener = UnixListener::from_std(listener).map_err(|source| AdminError::Io {
        path: file.path.clone(),
        source,
    })?;
    let shared = Arc::new(Shared {
        store,
        health,
        progress,
    });
    Ok(tokio::spawn(accept_loop(listener, file, shared, cancel)))
}

/// The socket file we created; removed on drop if it is still ours (and its link).
struct SocketFile {
    path: PathBuf,
    dev: u64,
    ino: u64,
    link: Option<SocketLink>,
}

impl Drop for SocketFile {
    fn drop(&mut self) {
        let ours = std::fs::symlink_metadata(&self.path)
            .is_ok_and(|m| m.dev() == self.dev && m.ino() == self.ino);
        if ours && let Err(e) = std::fs::remove_file(&self.path) {
            tracing::warn!(socket = %self.path.display(), error = %e, "cannot remove the admin socket");
        }
    }
}

/// Removes a stale socket, binds, sets the mode and group. Blocks.
fn prepare(
    path: &Path,
    group: Option<String>,
    link: Option<&Path>,
) -> Result<(StdListener, SocketFile), AdminError> {
    let io_err = |source| AdminError::Io {
        path: path.to_owned(),
        source,
    };
    remove_stale(path)?;
    let listener = StdListener::bind(path).map_err(|source| AdminError::Bind {
        path: path.to_owned(),
        source,
    })?;
    let meta = std::fs::symlink_metadata(path).map_err(io_err)?;
    let mut file = SocketFile {
        path: path.to_owned(),
        dev: meta.dev(),
        ino: meta.ino(),
        link: None,
    };
    set_mode(path, 0o600).map_err(io_err)?;
    if let Some(group) = group {
        share_with_group(path, &group);
    }
    file.link = link.and_then(|link| SocketLink::place(link, path));
    listener.set_nonblocking(true).map_err(io_err)?;
    Ok((listener, file))
}

/// Removes a socket file nobody listens on; refuses anything else at that path.
fn remove_stale(path: &Path) -> Result<(), AdminError> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(AdminError::Io {
                path: path.to_owned(),
                source,
            });
        }
    };
    if !meta.file_type().is_socket() {
        return Err(AdminError::NotASocket {
            path: path.to_owned(),
        });
    }
    match StdStream::connect(path) {
        Ok(_) => Err(AdminError::InUse {
            path: path.to_owned(),
        }),
        Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
            tracing::info!(socket = %path.display(), "removing a stale admin socket");
            std::fs::remove_file(path).map_err(|source| AdminError::Io {
                path: path.to_owned(),
                source,
            })
        }
        Err(source) => Err(AdminError::Io {
            path: path.to_owned(),
            source,
        }),
    }
}

fn set_mode(path: &Path, mode: u32) -> io::Result<()> {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

/// Gives `group` read-write access (0660); on failure the socket stays 0600 with an ERROR.
fn share_with_group(path: &Path, group: &str) {
    let result = gid_of(group).and_then(|gid| {
        std::os::unix::fs::chown(path, None, Some(gid))?;
        set_mode(path, 0o660)
    });
    if let Err(e) = result {
        tracing::error!(socket = %path.display(), group, error = %e,
            "cannot give [admin] socket_group access to the admin socket; it stays 0600 \
             (owner only): check that the group exists in /etc/group (or give its numeric \
             gid) and that the daemon's user is a member");
    }
}

/// A numeric gid, or the group's gid from `/etc/group` (groups only known to NSS
/// services such as LDAP need the numeric form).
fn gid_of(group: &str) -> io::Result<u32> {
    if let Ok(gid) = group.parse() {
        return Ok(gid);
    }
    let text = std::fs::read_to_string("/etc/group")?;
    text.lines()
        .filter_map(|line| {
            let mut fields = line.split(':');
            let name = fields.next()?;
            let gid = fields.nth(1)?;
            (name == group).then(|| gid.parse().ok()).flatten()
        })
        .next()
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!("no group `{group}` in /etc/group"),
            )
        })
}

async fn accept_loop(
    listener: UnixListener,
    file: SocketFile,
    shared: Arc<Shared>,
    cancel: CancellationToken,
) {
    tracing::info!(socket = %file.path.display(), "admin socket listening");
    let permits = Arc::new(Semaphore::new(MAX_CLIENTS));
    let mut clients = JoinSet::new();
    loop {
        tokio::select! {
            () = cancel.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => match permits.clone().try_acquire_owned() {
                    Ok(permit) => {
                        clients.spawn(connection(stream, shared.clone(), permit));
                    }
                    Err(_) => refuse_busy(&stream),
                },
                Err(e) => {
                    // Out of file descriptors, most likely: let some close.
                    tracing::warn!(error = %e, "admin socket: accept failed");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            },
            Some(joined) = clients.join_next(), if !clients.is_empty() => {
                if let Err(e) = joined {
                    tracing::error!(error = %e, "admin socket: a connection task failed");
                }
            }
        }
    }
    clients.shutdown().await;
    drop(listener);
    drop(file);
    tracing::debug!("admin socket closed");
}

/// Tells a client over the limit to come back later, without waiting for it.
fn refuse_busy(stream: &UnixStream) {
    let reply = Reply::error(
        ErrorKind::Busy,
        format!("the daemon is serving {MAX_CLIENTS} admin clients; try again"),
    );
    let _ = stream.try_write(&encode(&reply));
}

/// What reading one request line gave.
#[derive(Debug, PartialEq, Eq)]
enum Line {
    Text(Vec<u8>),
    TooLong,
    Eof,
}

async fn connection(stream: UnixStream, shared: Arc<Shared>, _permit: OwnedSemaphorePermit) {
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read);
    loop {
        let line = match tokio::time::timeout(IDLE_TIMEOUT, read_line(&mut reader)).await {
            Ok(Ok(line)) => line,
            Ok(Err(_)) | Err(_) => return,
        };
        let (reply, close) = match line {
            Line::Eof => return,
            Line::Text(text) if text.trim_ascii().is_empty() => continue,
            Line::Text(text) => (answer(&shared, &text).await, false),
            Line::TooLong => (
                Reply::error(
                    ErrorKind::LineTooLong,
                    format!("a request line is at most {MAX_REQUEST_LINE} bytes"),
                ),
                true,
            ),
        };
        let sent = tokio::time::timeout(WRITE_TIMEOUT, write.write_all(&encode(&reply))).await;
        if close || !matches!(sent, Ok(Ok(()))) {
            return;
        }
    }
}

/// Reads one line (without its newline) of at most `MAX_REQUEST_LINE` bytes.
async fn read_line<R: tokio::io::AsyncBufRead + Unpin>(reader: &mut R) -> io::Result<Line> {
    let mut buf = Vec::new();
    let limit = MAX_REQUEST_LINE as u64 + 1;
    let n = (&mut *reader)
        .take(limit)
        .read_until(b'\n', &mut buf)
        .await?;
    if n == 0 {
        return Ok(Line::Eof);
    }
    if buf.last() == Some(&b'\n') {
        buf.pop();
        return Ok(Line::Text(buf));
    }
    if buf.len() > MAX_REQUEST_LINE {
        return Ok(Line::TooLong);
    }
    Ok(Line::Text(buf)) // the last line, without a newline
}

async fn answer(shared: &Arc<Shared>, line: &[u8]) -> Reply {
    let envelope: Envelope = match serde_json::from_slice(line) {
        Ok(e) => e,
        Err(e) => {
            return Reply::error(ErrorKind::BadRequest, format!("not a request: {e}"));
        }
    };
    if envelope.v > PROTOCOL_VERSION {
        return Reply::error(
            ErrorKind::UnsupportedVersion,
            format!(
                "this daemon speaks admin protocol v{PROTOCOL_VERSION}, the request v{}: \
                 use the cdf-syncd binary of the running daemon",
                envelope.v
            ),
        );
    }
    let shared = shared.clone();
    let work = move || {
        let owner = Owner::Daemon {
            health: &shared.health,
            progress: &shared.progress,
        };
        let reply = execute(&shared.store, owner, envelope.request, super::now_ms());
        // A re-queued job starts now, not at the scheduler's next tick.
        shared.health.nudge();
        reply
    };
    match tokio::task::spawn_blocking(work).await {
        Ok(reply) => reply,
        Err(e) => {
            tracing::error!(error = %e, "admin request failed");
            Reply::error(ErrorKind::Internal, format!("the request failed: {e}"))
        }
    }
}

/// One reply line.
pub(super) fn encode(reply: &Reply) -> Vec<u8> {
    let mut bytes = serde_json::to_vec(reply).unwrap_or_else(|e| {
        let fallback = Reply::error(ErrorKind::Internal, format!("cannot encode the reply: {e}"));
        serde_json::to_vec(&fallback).unwrap_or_default()
    });
    bytes.push(b'\n');
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn read_line_is_bounded_and_takes_a_last_line_without_newline() {
        let long = vec![b'x'; MAX_REQUEST_LINE + 10];
        let mut r = BufReader::new(&long[..]);
        assert_eq!(read_line(&mut r).await.expect("read"), Line::TooLong);
        let mut r = BufReader::new(&b"one\ntwo"[..]);
        assert_eq!(
            read_line(&mut r).await.expect("read"),
            Line::Text(b"one".to_vec())
        );
        assert_eq!(
            read_line(&mut r).await.expect("read"),
            Line::Text(b"two".to_vec())
        );
        assert_eq!(read_line(&mut r).await.expect("read"), Line::Eof);
        let exact = [vec![b'y'; MAX_REQUEST_LINE], b"\n".to_vec()].concat();
        let mut r = BufReader::new(&exact[..]);
        assert!(
            matches!(read_line(&mut r).await.expect("read"), Line::Text(t) if t.len() == MAX_REQUEST_LINE)
        );
    }

    #[test]
    fn groups_resolve_by_number_or_from_etc_group() {
        assert_eq!(gid_of("1234").expect("numeric"), 1234);
        assert_eq!(gid_of("root").expect("root is in /etc/group"), 0);
        assert!(gid_of("no-such-group-cdf-syncd").is_err());
    }
}
