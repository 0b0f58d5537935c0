//! The systemd notification protocol (`sd_notify`), written by hand: one datagram of
//! `KEY=value` lines to the Unix socket named by `$NOTIFY_SOCKET`.
//!
//! The daemon says `READY=1` once the store is open (recovery done), the watcher is
//! spawned and the admin socket is up; `STOPPING=1` when the shutdown starts; and a
//! one-line `STATUS=` summary. `WATCHDOG=1` is sent from the scheduler's own loop
//! ([`Notifier::tick`]), so a stalled pipeline, not merely a live process, misses its
//! pings and gets restarted (`WatchdogSec=` in the unit). Until `READY=1`, a keeper
//! task extends systemd's start timeout while the runtime is alive, since opening a
//! store on a full disk waits for space on purpose.
//!
//! Without `$NOTIFY_SOCKET` (not started by systemd with `Type=notify`) everything
//! here is a no-op. Sends never block: the socket is non-blocking and a full queue
//! drops the message (the next tick sends again).

use std::io;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio_util::sync::{CancellationToken, DropGuard};

use super::health::PauseReason;
use crate::store::Counts;

/// How often `STATUS=` is refreshed when systemd asked for no watchdog.
const STATUS_EVERY: Duration = Duration::from_secs(5);

/// How long each `EXTEND_TIMEOUT_USEC=` before `READY=1` extends the start by; resent
/// every third of it.
const START_EXTENSION: Duration = Duration::from_secs(30);

/// Where the notifications go, and how often the watchdog wants a ping.
#[derive(Debug)]
pub struct Notifier {
    sink: Option<Sink>,
    /// Half of `$WATCHDOG_USEC`: the ping period. `None`: no watchdog.
    ping_every: Option<Duration>,
    /// When `tick` last sent.
    last: Mutex<Option<Instant>>,
}

#[derive(Debug)]
struct Sink {
    socket: UnixDatagram,
    addr: SocketAddr,
}

impl Notifier {
    /// A notifier that sends nothing (`sync --once`, or no systemd).
    pub fn disabled() -> Self {
        Self {
            sink: None,
            ping_every: None,
            last: Mutex::new(None),
        }
    }

    /// From `$NOTIFY_SOCKET`, `$WATCHDOG_USEC` and `$WATCHDOG_PID`.
    pub fn from_env() -> Self {
        Self::from_vars(|name| std::env::var(name).ok(), std::process::id())
    }

    fn from_vars(var: impl Fn(&str) -> Option<String>, pid: u32) -> Self {
        let Some(path) = var("NOTIFY_SOCKET").filter(|p| !p.is_empty()) else {
            return Self::disabled();
        };
        let sink = match Sink::open(&path) {
            Ok(sink) => sink,
            Err(e) => {
                tracing::warn!(socket = %path, error = %e,
                    "cannot use $NOTIFY_SOCKET; systemd gets no readiness or watchdog notifications");
                return Self::disabled();
            }
        };
        Self {
            sink: Some(sink),
            ping_every: watchdog_interval(&var, pid).map(|d| d / 2),
            last: Mutex::new(None),
        }
    }

    /// Whether `$NOTIFY_SOCKET` was usable.
    pub fn enabled(&self) -> bool {
        self.sink.is_some()
    }

    /// `READY=1` with a first status line.
    pub fn ready(&self, status: &str) {
        self.send(&format!("READY=1\nSTATUS={status}"));
        self.mark_sent();
    }

    /// `STOPPING=1`: the shutdown has started.
    pub fn stopping(&self) {
        self.send("STOPPING=1\nSTATUS=stopping: finishing parts in flight");
    }

    /// Called by the scheduler on every turn of its loop (at least once a second): sends
    /// `WATCHDOG=1` (when systemd asked for it) and a fresh `STATUS=` at most once per
    /// half watchdog interval. `status` is only evaluated when something is sent.
    pub fn tick(&self, status: impl FnOnce() -> String) {
        if self.sink.is_none() {
            return;
        }
        let every = self.ping_every.unwrap_or(STATUS_EVERY);
        {
            let Ok(mut last) = self.last.lock() else {
                return;
            };
            let now = Instant::now();
            if last.is_some_and(|t| now.duration_since(t) < every) {
                return;
            }
            *last = Some(now);
        }
        let status = status();
        match self.ping_every {
            Some(_) => self.send(&format!("WATCHDOG=1\nSTATUS={status}")),
            None => self.send(&format!("STATUS={status}")),
        }
    }

    /// The start of a daemon run: spawns the keeper that extends systemd's start
    /// timeout until the returned guard is dropped, and the task that says
    /// `STOPPING=1` when `cancel` fires.
    pub fn starting(self: &Arc<Self>, cancel: &CancellationToken) -> DropGuard {
        let started = CancellationToken::new();
        if self.enabled() {
            let (me, until) = (self.clone(), started.clone());
            tokio::spawn(async move { me.extend_start(until).await });
            let (me, cancel) = (self.clone(), cancel.clone());
            tokio::spawn(async move {
                cancel.cancelled().await;
                me.stopping();
            });
        }
        started.drop_guard()
    }

    /// Until `started` fires, extends systemd's start timeout every few seconds, so a
    /// slow start (a store waiting for disk space, CDF slow to answer the data-set
    /// lookup) is not killed while the runtime is alive.
    async fn extend_start(&self, started: CancellationToken) {
        if self.sink.is_none() {
            return;
        }
        loop {
            let usec = START_EXTENSION.as_micros();
            self.send(&format!("EXTEND_TIMEOUT_USEC={usec}"));
            tokio::select! {
                () = started.cancelled() => return,
                () = tokio::time::sleep(START_EXTENSION / 3) => {}
            }
        }
    }

    fn mark_sent(&self) {
        if let Ok(mut last) = self.last.lock() {
            *last = Some(Instant::now());
        }
    }

    fn send(&self, message: &str) {
        let Some(sink) = &self.sink else { return };
        if let Err(e) = sink.socket.send_to_addr(message.as_bytes(), &sink.addr) {
            tracing::debug!(error = %e, "sd_notify send failed");
        }
    }
}

impl Sink {
    /// A non-blocking unbound datagram socket aimed at `path`; a leading `@` names an
    /// abstract socket (Linux).
    fn open(path: &str) -> io::Result<Self> {
        let addr = address(path)?;
        let socket = UnixDatagram::unbound()?;
        socket.set_nonblocking(true)?;
        Ok(Self { socket, addr })
    }
}

#[cfg(target_os = "linux")]
fn address(path: &str) -> io::Result<SocketAddr> {
    use std::os::linux::net::SocketAddrExt;
    match path.strip_prefix('@') {
        Some(name) => SocketAddr::from_abstract_name(name.as_bytes()),
        None => SocketAddr::from_pathname(path),
    }
}

#[cfg(not(target_os = "linux"))]
fn address(path: &str) -> io::Result<SocketAddr> {
    SocketAddr::from_pathname(path)
}

/// `$WATCHDOG_USEC` when it is meant for this process (`$WATCHDOG_PID` unset or ours).
fn watchdog_interval(var: impl Fn(&str) -> Option<String>, pid: u32) -> Option<Duration> {
    if let Some(for_pid) = var("WATCHDOG_PID")
        && for_pid.trim().parse::<u32>().ok() != Some(pid)
    {
        return None;
    }
    let usec: u64 = var("WATCHDOG_USEC")?.trim().parse().ok()?;
    (usec > 0).then(|| Duration::from_micros(usec))
}

/// The one-line `STATUS=`: e.g. `syncing: 3 queued, 1 uploading, 0 failed, 12 synced`
/// or `paused (CDF unreachable): ...`.
pub fn summary(paused: Option<PauseReason>, counts: Option<&Counts>, uploading: usize) -> String {
    let state = match paused {
        Some(reason) => format!("paused ({reason})"),
        None if uploading > 0 || counts.is_some_and(|c| c.queued > 0) => "syncing".to_owned(),
        None => "idle".to_owned(),
    };
    match counts {
        Some(c) => format!(
            "{state}: {} queued, {uploading} uploading, {} failed, {} synced",
            c.queued, c.failed, c.synced
        ),
        None => format!("{state}: {uploading} uploading, job counts unavailable"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    #[test]
    fn watchdog_interval_honours_the_pid() {
        let usec = [("WATCHDOG_USEC", "4000000")];
        assert_eq!(
            watchdog_interval(vars(&usec), 7),
            Some(Duration::from_secs(4))
        );
        let ours = [("WATCHDOG_USEC", "4000000"), ("WATCHDOG_PID", "7")];
        assert_eq!(
            watchdog_interval(vars(&ours), 7),
            Some(Duration::from_secs(4))
        );
        let other = [("WATCHDOG_USEC", "4000000"), ("WATCHDOG_PID", "8")];
        assert_eq!(watchdog_interval(vars(&other), 7), None);
        assert_eq!(watchdog_interval(vars(&[("WATCHDOG_USEC", "0")]), 7), None);
        assert_eq!(watchdog_interval(vars(&[("WATCHDOG_USEC", "x")]), 7), None);
        assert_eq!(watchdog_interval(vars(&[]), 7), None);
    }

    #[test]
    fn no_socket_no_op() {
        let n = Notifier::from_vars(vars(&[("WATCHDOG_USEC", "1000000")]), 1);
        assert!(!n.enabled());
        n.ready("x");
        n.tick(|| unreachable!("status is not built when disabled"));
    }

    fn recv(socket: &UnixDatagram) -> String {
        let mut buf = [0u8; 512];
        let n = socket.recv(&mut buf).unwrap();
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn abstract_socket_gets_ready_watchdog_and_stopping() {
        use std::os::linux::net::SocketAddrExt;
        let name = format!("cdf-syncd-notify-test-{}", std::process::id());
        let addr = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let listener = UnixDatagram::bind_addr(&addr).unwrap();
        listener
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let at = format!("@{name}");
        let n = Notifier::from_vars(vars(&[("NOTIFY_SOCKET", &at), ("WATCHDOG_USEC", "2")]), 1);
        assert!(n.enabled());
        n.ready("starting");
        assert_eq!(recv(&listener), "READY=1\nSTATUS=starting");
        // 2 µs: every tick is due.
        std::thread::sleep(Duration::from_millis(1));
        n.tick(|| "idle".to_owned());
        assert_eq!(recv(&listener), "WATCHDOG=1\nSTATUS=idle");
        n.stopping();
        assert!(recv(&listener).starts_with("STOPPING=1\n"));
    }

    #[test]
    fn ticks_are_rate_limited() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let listener = UnixDatagram::bind(&path).unwrap();
        listener.set_nonblocking(true).unwrap();
        let p = path.to_string_lossy().into_owned();
        let n = Notifier::from_vars(
            vars(&[("NOTIFY_SOCKET", &p), ("WATCHDOG_USEC", "60000000")]),
            1,
        );
        n.tick(|| "a".to_owned());
        n.tick(|| unreachable!("not due for 30 s"));
        let mut buf = [0u8; 64];
        let got = listener.recv(&mut buf).unwrap();
        assert_eq!(&buf[..got], b"WATCHDOG=1\nSTATUS=a");
        assert!(listener.recv(&mut buf).is_err());
    }

    #[test]
    fn summaries() {
        let c = Counts {
            queued: 3,
            failed: 1,
            synced: 12,
            ..Counts::default()
        };
        assert_eq!(
            summary(None, Some(&c), 1),
            "syncing: 3 queued, 1 uploading, 1 failed, 12 synced"
        );
        assert_eq!(
            summary(Some(PauseReason::CdfUnreachable), Some(&c), 0),
            "paused (CDF unreachable): 3 queued, 0 uploading, 1 failed, 12 synced"
        );
        assert_eq!(
            summary(None, Some(&Counts::default()), 0),
            "idle: 0 queued, 0 uploading, 0 failed, 0 synced"
        );
        assert_eq!(
            summary(None, None, 2),
            "syncing: 2 uploading, job counts unavailable"
        );
    }
}
