//! The daemon in a user namespace (`unshare -Ur`), optionally with its own mount
//! namespace (`unshare -Urm`), so that tests can give it a low inotify watch limit or a
//! tiny tmpfs without real root. A namespaced process's mounts are reachable from the
//! test at `/proc/<pid>/root/<path>`.
//!
//! Setup commands run as root *of the child namespace* only: write
//! `/proc/sys/user/max_inotify_watches` (per user namespace), never
//! `/proc/sys/fs/inotify/*` (that is the host's, and writable when the tests run as
//! real root).
//!
//! Also small helpers around a [`Tree`]'s daemon, configuration and log.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use super::daemon::Tree;

/// Panics with a clear message unless `unshare <flags> true` works here.
pub fn require_unshare(flags: &str) {
    let status = Command::new("unshare")
        .args([flags, "true"])
        .stderr(Stdio::null())
        .status();
    match status {
        Ok(s) if s.success() => {}
        Ok(s) => panic!(
            "`unshare {flags} true` failed ({s}): this test needs unprivileged user (and mount) \
             namespaces; enable them (kernel.unprivileged_userns_clone=1 / \
             user.max_user_namespaces>0) or run it elsewhere"
        ),
        Err(e) => panic!("this test needs `unshare` (util-linux): {e}"),
    }
}

/// Starts `cdf-syncd run` for `t` inside `unshare <flags>`, after `setup` (a shell
/// command run in the namespace first; `$STATE` is the state directory). The child's
/// pid is the daemon's (every step `exec`s). Logs to `daemon-<n>.log` like
/// [`Tree::start_daemon`].
pub fn start_daemon_in(t: &Tree, n: usize, flags: &str, setup: &str) -> Child {
    start_daemon_in_logging(t, n, flags, setup, "info")
}

/// [`start_daemon_in`] with a log filter (`RUST_LOG`) of its own.
pub fn start_daemon_in_logging(
    t: &Tree,
    n: usize,
    flags: &str,
    setup: &str,
    filter: &str,
) -> Child {
    require_unshare(flags);
    let script = format!("set -e; {setup}; exec \"$0\" \"$@\"");
    let mut cmd = Command::new("unshare");
    cmd.args([flags, "sh", "-c", &script])
        .arg(env!("CARGO_BIN_EXE_cdf-syncd"));
    spawn_daemon(t, n, cmd, &[("RUST_LOG", filter)])
}

/// [`Tree::start_daemon`] with a log filter (`RUST_LOG`) of its own.
pub fn start_daemon_logging(t: &Tree, n: usize, filter: &str) -> Child {
    let cmd = Command::new(env!("CARGO_BIN_EXE_cdf-syncd"));
    spawn_daemon(t, n, cmd, &[("RUST_LOG", filter)])
}

/// Adds `run --config ...`, the secret and the log settings to `cmd` and spawns it,
/// logging to `daemon-<n>.log`.
fn spawn_daemon(t: &Tree, n: usize, mut cmd: Command, env: &[(&str, &str)]) -> Child {
    let log = std::fs::File::create(t.dir.path().join(format!("daemon-{n}.log"))).expect("log");
    cmd.arg("run")
        .arg("--config")
        .arg(&t.config)
        .env("STATE", state_dir(t))
        .env("IT_SECRET", "demo-secret")
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("spawn the daemon")
}

/// Where a namespaced process sees `path`, as seen from here.
pub fn inside(pid: u32, path: &Path) -> PathBuf {
    let rel = path.strip_prefix("/").unwrap_or(path);
    PathBuf::from(format!("/proc/{pid}/root")).join(rel)
}

/// The state directory of `t`'s configuration.
pub fn state_dir(t: &Tree) -> PathBuf {
    t.dir.path().join("state")
}

/// Replaces the `[sync]` table's body of `t`'s configuration (which holds only
/// `stable_for = "200ms"`) with `body`.
pub fn set_sync(t: &Tree, body: &str) {
    let text = std::fs::read_to_string(&t.config).expect("config");
    let old = "[sync]\nstable_for = \"200ms\"\n";
    assert!(text.contains(old), "unexpected [sync] table:\n{text}");
    let text = text.replacen(old, &format!("[sync]\n{body}\n"), 1);
    std::fs::write(&t.config, text).expect("config");
}

/// How many lines of `log` contain every one of `needles`.
pub fn lines_with(log: &str, needles: &[&str]) -> usize {
    log.lines()
        .filter(|l| needles.iter().all(|n| l.contains(n)))
        .count()
}
