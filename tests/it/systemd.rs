//! systemd integration: the `sd_notify` protocol through a fake `$NOTIFY_SOCKET`
//! (READY=1, WATCHDOG=1 from the scheduler, STATUS=, STOPPING=1 on SIGTERM), and the
//! shipped unit file checked by `systemd-analyze verify`, with its exposure score as
//! the README records it; the sysusers.d file checked by `systemd-sysusers --dry-run`.

use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::Command;

use crate::support::daemon::{Tree, pattern, terminate, wait_for};

const UNIT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/systemd/cdf-syncd.service");
const README: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/README.md");

/// Every datagram received so far, in order.
fn drain(socket: &UnixDatagram, into: &mut Vec<String>) {
    let mut buf = [0u8; 4096];
    while let Ok(n) = socket.recv(&mut buf) {
        into.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
}

fn position(messages: &[String], line: &str) -> Option<usize> {
    messages.iter().position(|m| m.lines().any(|l| l == line))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_notifies_ready_watchdog_status_and_stopping() {
    let t = Tree::new("").await;
    let path = t.dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&path).expect("bind the fake NOTIFY_SOCKET");
    socket.set_nonblocking(true).expect("nonblocking");
    t.write("a.txt", &pattern(100, 1));
    let daemon = t.start_daemon_env(
        0,
        &[
            ("NOTIFY_SOCKET", path.to_str().expect("utf-8 path")),
            // 2 s: a ping at least every second.
            ("WATCHDOG_USEC", "2000000"),
        ],
    );
    let mut got = Vec::new();
    wait_for(30, "READY=1", || {
        drain(&socket, &mut got);
        position(&got, "READY=1").is_some()
    })
    .await;
    wait_for(30, "two WATCHDOG=1 pings after READY=1", || {
        drain(&socket, &mut got);
        let ready = position(&got, "READY=1").unwrap_or(usize::MAX);
        got.iter()
            .skip(ready)
            .filter(|m| m.lines().any(|l| l == "WATCHDOG=1"))
            .count()
            >= 2
    })
    .await;
    wait_for(30, "a STATUS= line that counts the synced file", || {
        drain(&socket, &mut got);
        got.iter()
            .flat_map(|m| m.lines())
            .any(|l| l == "STATUS=idle: 0 queued, 0 uploading, 0 failed, 1 synced")
    })
    .await;
    let ready = position(&got, "READY=1").expect("ready");
    let first_ping = position(&got, "WATCHDOG=1").expect("ping");
    assert!(ready < first_ping, "no ping before READY=1: {got:#?}");
    assert!(position(&got, "STOPPING=1").is_none(), "{got:#?}");

    let status = terminate(daemon).await;
    assert!(status.success(), "{status:?}\n{}", t.daemon_log(0));
    drain(&socket, &mut got);
    assert!(
        position(&got, "STOPPING=1").is_some(),
        "STOPPING=1 after SIGTERM: {got:#?}"
    );
}

fn systemd_analyze(args: &[&str]) -> std::process::Output {
    Command::new("systemd-analyze")
        .args(args)
        .output()
        .expect("systemd-analyze (Debian package `systemd`; .ci/run installs it)")
}

/// The shipped unit with `ExecStart=` pointing at the built binary (verify wants an
/// executable), in a temp dir.
fn unit_copy(dir: &Path) -> std::path::PathBuf {
    let text = std::fs::read_to_string(UNIT).expect("read the unit");
    assert!(
        text.contains("\nExecStart=/usr/local/bin/cdf-syncd run "),
        "the unit runs the installed binary"
    );
    let text = text.replace(
        "\nExecStart=/usr/local/bin/cdf-syncd ",
        &format!("\nExecStart={} ", env!("CARGO_BIN_EXE_cdf-syncd")),
    );
    let copy = dir.join("cdf-syncd.service");
    std::fs::write(&copy, text).expect("write the unit copy");
    copy
}

#[test]
fn the_unit_file_verifies_and_the_readme_has_its_exposure_score() {
    let dir = tempfile::tempdir().expect("tmp");
    let unit = unit_copy(dir.path());
    let unit = unit.to_str().expect("utf-8 path");
    let out = systemd_analyze(&["verify", unit]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "systemd-analyze verify: {stderr}");
    assert!(
        !stderr.contains("cdf-syncd.service"),
        "no warning about the unit: {stderr}"
    );

    let out = systemd_analyze(&["security", "--offline=yes", "--no-pager", unit]);
    let report = String::from_utf8_lossy(&out.stdout);
    let score = report
        .lines()
        .find_map(|l| {
            l.split("Overall exposure level for cdf-syncd.service: ")
                .nth(1)
        })
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no exposure level in: {report}"));
    let readme = std::fs::read_to_string(README).expect("README");
    let recorded = format!("exposure level **{score}**");
    assert!(
        readme.contains(&recorded),
        "README records `{recorded}` (systemd-analyze security --offline=yes)"
    );
}

#[test]
fn the_sysusers_file_creates_the_service_user() {
    let root = tempfile::tempdir().expect("tmp");
    std::fs::create_dir_all(root.path().join("etc")).expect("mkdir");
    let file = concat!(env!("CARGO_MANIFEST_DIR"), "/systemd/cdf-syncd.sysusers");
    let out = Command::new("systemd-sysusers")
        .arg("--dry-run")
        .arg(format!("--root={}", root.path().display()))
        .arg(file)
        .output()
        .expect("systemd-sysusers (Debian package `systemd`)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    assert!(text.contains("Creating user 'cdf-syncd'"), "{text}");
}
