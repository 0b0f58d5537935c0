//! The admin socket end to end, in-process: the protocol over a real Unix socket, bad
//! clients, and the socket file's life.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::*;
use crate::fingerprint::Fingerprint;
use crate::store::{FailureKind, FileKey, JobId};

fn health() -> Health {
    let backoff = crate::daemon::health::ProbeBackoff {
        initial: std::time::Duration::from_secs(1),
        max: std::time::Duration::from_secs(2),
    };
    Health::new(2, 2, backoff)
}

struct Server {
    _dir: tempfile::TempDir,
    socket: PathBuf,
    store: Arc<Store>,
    cancel: CancellationToken,
    task: JoinHandle<()>,
}

async fn server() -> Server {
    let dir = tempfile::tempdir().expect("tmp");
    let socket = dir.path().join("admin.sock");
    let store = Arc::new(Store::in_memory());
    let cancel = CancellationToken::new();
    let health = Arc::new(health());
    let progress = Arc::new(Progress::new());
    let task = serve(
        socket.clone(),
        None,
        None,
        store.clone(),
        health,
        progress,
        cancel.clone(),
    )
    .await
    .expect("serve");
    Server {
        _dir: dir,
        socket,
        store,
        cancel,
        task,
    }
}

fn failed_job(store: &Store, rel: &str) -> JobId {
    let fp = Fingerprint {
        size: 5000,
        mtime_ns: 1,
        inode: 1,
        device: 1,
    };
    let id = match store.enqueue(FileKey::new("it", Path::new(rel)), fp, 0) {
        Ok(crate::store::Enqueued::New(id)) => id,
        other => panic!("{other:?}"),
    };
    store
        .record_failure(id, FailureKind::Permanent, 0, "over max_file_size")
        .expect("fail");
    id
}

/// A raw client: sends bytes, reads reply lines.
struct Raw {
    reader: BufReader<tokio::net::unix::OwnedReadHalf>,
    writer: tokio::net::unix::OwnedWriteHalf,
}

impl Raw {
    async fn connect(socket: &Path) -> Self {
        let (r, w) = UnixStream::connect(socket)
            .await
            .expect("connect")
            .into_split();
        Self {
            reader: BufReader::new(r),
            writer: w,
        }
    }

    async fn send(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).await.expect("send");
    }

    /// The next reply; `None` once the daemon closed the connection.
    async fn reply(&mut self) -> Option<Reply> {
        let mut line = String::new();
        let n = self.reader.read_line(&mut line).await.expect("read");
        (n > 0).then(|| serde_json::from_str(&line).expect("a reply line"))
    }
}

fn kind(reply: &Option<Reply>) -> Option<ErrorKind> {
    match reply {
        Some(Reply::Error { kind, .. }) => Some(*kind),
        _ => None,
    }
}

#[tokio::test]
async fn requests_over_the_socket_list_retry_and_forget() {
    let s = server().await;
    let a = failed_job(&s.store, "too/big.bin");
    let b = failed_job(&s.store, "other.bin");
    let jobs = Request::Jobs {
        state: Some(JobFilter::Failed),
        limit: 10,
    };
    match request(&s.socket, &jobs).await.expect("jobs") {
        Reply::Jobs { jobs, total } => {
            assert_eq!(total, 2);
            assert_eq!(jobs[0].display_path(), "it:/too/big.bin");
            assert_eq!(jobs[0].last_error.as_deref(), Some("over max_file_size"));
        }
        other => panic!("{other:?}"),
    }
    let reply = request(&s.socket, &Request::Retry { job: a }).await;
    assert!(matches!(reply, Ok(Reply::Retried { .. })), "{reply:?}");
    let reply = request(&s.socket, &Request::Forget { job: b }).await;
    assert!(matches!(reply, Ok(Reply::Forgot { .. })), "{reply:?}");
    assert!(s.store.job(b).expect("read").is_none());
    let reply = request(&s.socket, &Request::Forget { job: a }).await;
    assert!(
        matches!(&reply, Ok(Reply::Error { kind: ErrorKind::InFlight, message }) if message.contains("queued")),
        "a queued job may be in a worker's hands: {reply:?}"
    );
}

#[tokio::test]
async fn a_garbage_line_gets_an_error_reply_and_the_connection_stays_usable() {
    let s = server().await;
    let mut c = Raw::connect(&s.socket).await;
    c.send(b"hello daemon\n").await;
    assert_eq!(kind(&c.reply().await), Some(ErrorKind::BadRequest));
    c.send(b"{\"cmd\":\"rm -rf\"}\n\n").await;
    assert_eq!(kind(&c.reply().await), Some(ErrorKind::BadRequest));
    c.send(b"{\"v\":99,\"cmd\":\"status\"}\n").await;
    assert_eq!(kind(&c.reply().await), Some(ErrorKind::UnsupportedVersion));
    c.send(&[0xff, 0xfe, b'\n']).await;
    assert_eq!(kind(&c.reply().await), Some(ErrorKind::BadRequest));
    c.send(b"{\"cmd\":\"status\"}\n").await;
    assert!(
        matches!(c.reply().await, Some(Reply::Status { .. })),
        "v defaults to 1"
    );
    c.send(b"{\"v\":1,\"cmd\":\"retry\",\"job\":77}\n").await;
    assert_eq!(kind(&c.reply().await), Some(ErrorKind::NoSuchJob));
}

#[tokio::test]
async fn a_huge_line_is_refused_and_closed_without_hurting_the_daemon() {
    let s = server().await;
    let mut c = Raw::connect(&s.socket).await;
    let huge = vec![b'a'; protocol::MAX_REQUEST_LINE * 4];
    // The daemon may close before reading all of it: a failed send is fine.
    let _ = c.writer.write_all(&huge).await;
    assert_eq!(kind(&c.reply().await), Some(ErrorKind::LineTooLong));
    // Closed after a line too long: EOF, or a reset as the rest of the line is unread.
    let mut rest = String::new();
    match c.reader.read_line(&mut rest).await {
        Ok(0) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        other => panic!("still open: {other:?} {rest:?}"),
    }
    let reply = request(&s.socket, &Request::Status).await;
    assert!(matches!(reply, Ok(Reply::Status { .. })), "{reply:?}");
}

#[tokio::test]
async fn clients_over_the_limit_are_told_to_come_back() {
    let s = server().await;
    let mut idle = Vec::new();
    for _ in 0..MAX_CLIENTS {
        let mut c = Raw::connect(&s.socket).await;
        c.send(b"{\"cmd\":\"status\"}\n").await;
        assert!(matches!(c.reply().await, Some(Reply::Status { .. })));
        idle.push(c);
    }
    let mut extra = Raw::connect(&s.socket).await;
    assert_eq!(kind(&extra.reply().await), Some(ErrorKind::Busy));
    idle.clear();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while !matches!(
        request(&s.socket, &Request::Status).await,
        Ok(Reply::Status { .. })
    ) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "served again once clients left"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn the_socket_is_private_and_removed_on_shutdown() {
    let s = server().await;
    let mode = std::fs::metadata(&s.socket).expect("socket").permissions();
    assert_eq!(mode.mode() & 0o777, 0o600);
    // A client mid-conversation does not keep the daemon from stopping.
    let _idle = Raw::connect(&s.socket).await;
    s.cancel.cancel();
    s.task.await.expect("server task");
    assert!(!s.socket.exists(), "socket removed");
    let err = request(&s.socket, &Request::Status)
        .await
        .expect_err("gone");
    assert!(err.no_daemon(), "{err}");
}

#[tokio::test]
async fn a_stale_socket_is_replaced_but_a_live_one_or_a_plain_file_is_not() {
    let dir = tempfile::tempdir().expect("tmp");
    let socket = dir.path().join("admin.sock");
    let start = |cancel: CancellationToken| {
        let (socket, store) = (socket.clone(), Arc::new(Store::in_memory()));
        let progress = Arc::new(Progress::new());
        serve(
            socket,
            None,
            None,
            store,
            Arc::new(health()),
            progress,
            cancel,
        )
    };
    // A socket file nobody listens on: what a killed daemon leaves behind.
    drop(std::os::unix::net::UnixListener::bind(&socket).expect("bind"));
    let err = request(&socket, &Request::Status).await.expect_err("stale");
    assert!(err.no_daemon(), "refused counts as no daemon: {err}");
    let cancel = CancellationToken::new();
    let task = start(cancel.clone()).await.expect("stale socket replaced");
    let second = start(CancellationToken::new()).await;
    assert!(
        matches!(second, Err(AdminError::InUse { .. })),
        "{second:?}"
    );
    assert!(socket.exists(), "the live socket is left alone");
    cancel.cancel();
    task.await.expect("stopped");

    std::fs::write(&socket, b"not mine").expect("file");
    let refused = start(CancellationToken::new()).await;
    assert!(
        matches!(refused, Err(AdminError::NotASocket { .. })),
        "{refused:?}"
    );
    assert_eq!(std::fs::read(&socket).expect("kept"), b"not mine");

    let missing = dir.path().join("no/such/dir/admin.sock");
    let (store, health) = (Arc::new(Store::in_memory()), Arc::new(health()));
    let progress = Arc::new(Progress::new());
    let err = serve(
        missing,
        None,
        None,
        store,
        health,
        progress,
        CancellationToken::new(),
    )
    .await;
    assert!(
        matches!(&err, Err(AdminError::Bind { path, .. }) if path.ends_with("no/such/dir/admin.sock")),
        "{err:?}"
    );
}

#[tokio::test]
async fn socket_group_gets_0660_and_an_unknown_group_leaves_it_private() {
    use std::os::unix::fs::MetadataExt;
    let dir = tempfile::tempdir().expect("tmp");
    // Our own group: a group we may always hand a file to.
    let gid = std::fs::metadata(dir.path()).expect("dir").gid();
    for (group, mode) in [
        (gid.to_string(), 0o660),
        ("no-such-group-cdf-syncd".to_owned(), 0o600),
    ] {
        let socket = dir.path().join("admin.sock");
        let (store, cancel) = (Arc::new(Store::in_memory()), CancellationToken::new());
        let task = serve(
            socket.clone(),
            Some(group.clone()),
            None,
            store,
            Arc::new(health()),
            Arc::new(Progress::new()),
            cancel.clone(),
        )
        .await
        .expect("serve");
        let meta = std::fs::metadata(&socket).expect("socket");
        assert_eq!(meta.permissions().mode() & 0o777, mode, "{group}");
        assert_eq!(meta.gid(), gid, "{group}");
        cancel.cancel();
        task.await.expect("stopped");
    }
}
