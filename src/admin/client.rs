//! The CLI's side of the admin socket: one request, one reply.

use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;

use super::protocol::{Envelope, Reply, Request};

/// How long a request may take (`retry_all_failed` walks the whole store).
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(120);

/// The longest reply accepted (10 000 jobs with long errors fit many times over).
const MAX_REPLY_LINE: u64 = 256 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// No daemon answers at this path (no socket file, or nobody listening).
    #[error("cannot connect to {}: {source}", path.display())]
    Connect { path: PathBuf, source: io::Error },
    #[error("admin socket {}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
    #[error("admin socket {}: the daemon closed the connection without a reply", path.display())]
    Closed { path: PathBuf },
    #[error("admin socket {}: no reply within {}s", path.display(), REPLY_TIMEOUT.as_secs())]
    Timeout { path: PathBuf },
    #[error("cannot encode the request: {0}")]
    Encode(serde_json::Error),
    #[error("admin socket {}: cannot read the reply: {source}", path.display())]
    BadReply {
        path: PathBuf,
        source: serde_json::Error,
    },
}

impl ClientError {
    /// Whether the daemon is simply not running (so the store may be used directly):
    /// the socket file is missing, or nothing listens on it.
    pub fn no_daemon(&self) -> bool {
        matches!(self, ClientError::Connect { source, .. }
            if matches!(source.kind(), io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused))
    }
}

/// Sends one request to the daemon listening on `socket` and returns its reply.
pub async fn request(socket: &Path, request: &Request) -> Result<Reply, ClientError> {
    let path = socket.to_owned();
    let stream = UnixStream::connect(socket)
        .await
        .map_err(|source| ClientError::Connect {
            path: path.clone(),
            source,
        })?;
    match tokio::time::timeout(REPLY_TIMEOUT, exchange(stream, &path, request)).await {
        Ok(reply) => reply,
        Err(_) => Err(ClientError::Timeout { path }),
    }
}

async fn exchange(
    stream: UnixStream,
    path: &Path,
    request: &Request,
) -> Result<Reply, ClientError> {
    let io_err = |source| ClientError::Io {
        path: path.to_owned(),
        source,
    };
    let (read, mut write) = stream.into_split();
    let mut line =
        serde_json::to_vec(&Envelope::new(request.clone())).map_err(ClientError::Encode)?;
    line.push(b'\n');
    write.write_all(&line).await.map_err(io_err)?;
    let mut buf = Vec::new();
    BufReader::new(read)
        .take(MAX_REPLY_LINE)
        .read_until(b'\n', &mut buf)
        .await
        .map_err(io_err)?;
    if buf.last() != Some(&b'\n') {
        return Err(ClientError::Closed {
            path: path.to_owned(),
        });
    }
    serde_json::from_slice(&buf).map_err(|source| ClientError::BadReply {
        path: path.to_owned(),
        source,
    })
}
