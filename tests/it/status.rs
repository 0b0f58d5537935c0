//! `cdf-syncd status` through the real binary: a running daemon with an upload in
//! flight (slow PUTs in the emulator), its `--json` against the documented schema
//! (`docs/STATUS.md`), the human table, and the daemon stopped.

use cdf_syncd::emulator::{Faults, ScriptedFault};
use serde_json::Value;

use crate::support::cli::repo_path;
use crate::support::daemon::{PART, Tree, pattern, terminate};
use crate::support::wait_until;

async fn status_json(t: &Tree) -> Value {
    let out = t.cli(&["status", "--json"]).await;
    assert_eq!(out.code, Some(0), "{}", out.all());
    serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", out.stdout))
}

/// The example document of `docs/STATUS.md`.
fn documented() -> Value {
    let text = std::fs::read_to_string(repo_path("docs/STATUS.md")).expect("docs/STATUS.md");
    let block = text
        .split("```json\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("a json block");
    serde_json::from_str(block).expect("the documented example parses")
}

/// Every object in `real` has exactly the documented fields (arrays: their first
/// elements, where both have one; `null` matches anything).
fn same_fields(doc: &Value, real: &Value, at: &str) {
    match (doc, real) {
        (Value::Object(d), Value::Object(r)) => {
            let (dk, rk): (Vec<_>, Vec<_>) = (d.keys().collect(), r.keys().collect());
            assert_eq!(dk, rk, "fields of {at}");
            for (k, v) in d {
                same_fields(v, &r[k], &format!("{at}.{k}"));
            }
        }
        (Value::Array(d), Value::Array(r)) => {
            if let (Some(d), Some(r)) = (d.first(), r.first()) {
                same_fields(d, r, &format!("{at}[0]"));
            }
        }
        (Value::Null, _) | (_, Value::Null) => {}
        (d, r) => assert_eq!(
            std::mem::discriminant(d),
            std::mem::discriminant(r),
            "{at}: documented {d}, got {r}"
        ),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_daemon_reports_uploads_in_flight() {
    let t = Tree::new("").await;
    // One refused create (a permanent failure with CDF's request id), and PUT bodies
    // at 64 KiB/s each: 40 parts, three at a time, take some 14 s.
    t.cdf.emu.set_faults(Faults {
        scripted: vec![ScriptedFault::new("files", 400, 1)],
        put_bytes_per_sec: Some(PART as u64),
        ..Faults::default()
    });
    let daemon = t.start_daemon(0);
    t.write("bad.txt", &pattern(300, 1));
    wait_until(60, "the refused file failed", || async {
        status_json(&t).await["counts"]["failed"] == 1
    })
    .await;
    let big = pattern(40 * PART, 2);
    t.write("big.bin", &big);
    let found = std::cell::RefCell::new(Value::Null);
    wait_until(60, "big.bin in flight with parts done", || {
        let (t, found) = (&t, &found);
        async move {
            let doc = status_json(t).await;
            let up = &doc["daemon"]["uploads"][0];
            let done = up["parts_done"].as_u64().unwrap_or(0);
            let ready = up["path"] == "it:/big.bin" && (1..=30).contains(&done);
            *found.borrow_mut() = doc;
            ready
        }
    })
    .await;
    let human = &t.cli(&["status"]).await;
    let doc = found.into_inner();

    assert_eq!(doc["source"], "daemon", "{doc:#}");
    assert_eq!(doc["daemon"]["running"], true);
    assert_eq!(doc["daemon"]["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(doc["daemon"]["connection"]["state"], "ok", "{doc:#}");
    let up = &doc["daemon"]["uploads"][0];
    assert_eq!(up["size"], big.len() as u64);
    assert_eq!(up["parts_total"], 40, "{up:#}");
    let done = up["parts_done"].as_u64().expect("parts_done");
    assert_eq!(up["bytes_done"], done * PART as u64, "{up:#}");
    assert_eq!(doc["roots"][0]["root"], "it");
    assert_eq!(doc["roots"][0]["in_flight"], 1, "{doc:#}");
    assert_eq!(doc["roots"][0]["failed"], 1, "{doc:#}");
    assert_eq!(
        doc["roots"][0]["synced"], doc["counts"]["synced"],
        "{doc:#}"
    );
    let error = &doc["daemon"]["errors"][0];
    assert_eq!(error["path"], "it:/bad.txt", "{doc:#}");
    let request_id = error["request_id"].as_str().expect("CDF's request id");
    assert!(
        error["message"]
            .as_str()
            .is_some_and(|m| m.contains("HTTP 400") && m.contains(request_id)),
        "{error:#}"
    );
    same_fields(&documented(), &doc, "status");

    assert_eq!(human.code, Some(0), "{}", human.all());
    let text = &human.stdout;
    for line in text.lines() {
        assert!(line.chars().count() <= 80, "{line:?} in\n{text}");
    }
    assert!(text.contains("CDF:        ok"), "{text}");
    let path = text.lines().position(|l| l.starts_with("it:/big.bin"));
    let bar = path
        .and_then(|i| text.lines().nth(i + 1))
        .unwrap_or_default();
    assert!(
        bar.trim_start().starts_with("[#") && bar.contains('%') && bar.contains("ETA"),
        "a progress bar under the path in\n{text}"
    );
    assert!(text.contains("x-request-id"), "{text}");

    t.cdf.emu.set_faults(Faults::default());
    wait_until(60, "big.bin synced", || async {
        let doc = status_json(&t).await;
        doc["daemon"]["totals"]["since_start"]["files"] == 1
    })
    .await;
    let doc = status_json(&t).await;
    assert_eq!(
        doc["daemon"]["totals"]["today"]["bytes"],
        big.len() as u64,
        "{doc:#}"
    );
    assert!(terminate(daemon).await.success(), "{}", t.daemon_log(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_daemon_stopped_status_reads_the_job_store() {
    let t = Tree::new(r#"max_file_size = "1 KiB""#).await;
    t.write("ok.txt", &pattern(100, 1));
    t.write("too/big.bin", &pattern(5000, 2));
    t.write("too/huge.bin", &pattern(3000, 3));
    let (ok, out) = t.sync_once().await;
    assert!(!ok, "{out}");
    // One failed job back in the queue: the oldest queued file.
    let doc = status_json(&t).await;
    assert_eq!(doc["source"], "store", "{doc:#}");
    assert_eq!(doc["daemon"], serde_json::json!({"running": false}));
    assert_eq!(doc["counts"]["failed"], 2, "{doc:#}");
    assert_eq!(doc["counts"]["synced"], 1, "{doc:#}");
    let jobs = &t.cli(&["jobs", "--json", "--state", "failed"]).await;
    let jobs: Value = serde_json::from_str(&jobs.stdout).expect("jobs");
    let id = jobs["jobs"][0]["id"].as_u64().expect("id").to_string();
    let out = &t.cli(&["retry", &id]).await;
    assert_eq!(out.code, Some(0), "{}", out.all());

    let out = &t.cli(&["status"]).await;
    assert_eq!(out.code, Some(0), "{}", out.all());
    let text = &out.stdout;
    assert!(text.starts_with("daemon:     not running"), "{text}");
    assert!(
        text.contains("1 queued, 0 in flight, 1 failed; 1 paths synced"),
        "{text}"
    );
    assert!(text.contains("oldest queued:"), "{text}");
    assert!(text.contains("it:/too/"), "{text}");
    let row = text
        .lines()
        .find(|l| l.starts_with("it "))
        .expect("it's row");
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(cells, ["it", "1", "2", "1", "0", "1"], "{text}");
    for line in text.lines() {
        assert!(line.chars().count() <= 80, "{line:?}");
    }
    let doc = status_json(&t).await;
    assert!(
        doc["oldest_queued"]["path"]
            .as_str()
            .is_some_and(|p| p.starts_with("it:/too/"))
    );
    assert_eq!(doc["health"], Value::Null);
}

/// Under systemd the daemon has `$RUNTIME_DIRECTORY` (its socket goes there) but an
/// operator's shell does not: `status` and `jobs` with the same config file still
/// reach the daemon, through the link it places in the state directory, which is
/// gone again after it stopped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_finds_a_daemon_whose_socket_is_in_its_runtime_directory() {
    let t = Tree::new("").await;
    let run = t.dir.path().join("run");
    std::fs::create_dir(&run).expect("mkdir run");
    let run_var = run.to_str().expect("utf-8 path");
    let daemon = t.start_daemon_env(0, &[("RUNTIME_DIRECTORY", run_var)]);
    let socket = run.join("admin.sock");
    wait_until(30, "the daemon's socket in $RUNTIME_DIRECTORY", || async {
        socket.exists()
    })
    .await;
    t.write("a.txt", &pattern(500, 4));
    wait_until(
        30,
        "a.txt synced, seen by status from the daemon",
        || async {
            let doc = status_json(&t).await;
            assert_eq!(doc["source"], "daemon", "{doc:#}\n{}", t.daemon_log(0));
            doc["daemon"]["totals"]["since_start"]["files"] == 1
        },
    )
    .await;
    let doc = status_json(&t).await;
    assert_eq!(doc["daemon"]["running"], true, "{doc:#}");
    let jobs = t.cli(&["jobs", "--json"]).await;
    assert_eq!(jobs.code, Some(0), "{}", jobs.all());
    let link = t.state_dir().join("admin.sock");
    assert_eq!(std::fs::read_link(&link).expect("a link"), socket);

    assert!(terminate(daemon).await.success(), "{}", t.daemon_log(0));
    assert!(std::fs::symlink_metadata(&link).is_err(), "link removed");
    assert!(!socket.exists(), "socket removed");
    let doc = status_json(&t).await;
    assert_eq!(doc["source"], "store", "{doc:#}");
}

/// Runs `status --watch <extra>` against `t`, reads its stdout until `frames` holds
/// (given everything read so far) or 20 s pass, and checks it is still running
/// before killing it. Returns what it printed.
async fn watch_until(t: &Tree, extra: &[&str], frames: fn(&str) -> bool) -> String {
    use std::io::Read as _;
    let mut cmd = std::process::Command::new(crate::support::cli::binary());
    cmd.args(["status", "--watch"])
        .args(extra)
        .arg("--config")
        .arg(&t.config)
        .env_clear()
        .env("IT_SECRET", "demo-secret")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null());
    tokio::task::spawn_blocking(move || {
        let mut child = cmd.spawn().expect("spawn status --watch");
        let mut stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel::<Vec<u8>>();
        std::thread::spawn(move || {
            let mut buf = [0u8; 8192];
            while let Ok(n @ 1..) = stdout.read(&mut buf) {
                if tx.send(buf[..n].to_vec()).is_err() {
                    break;
                }
            }
        });
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        let mut text = Vec::new();
        while !frames(&String::from_utf8_lossy(&text)) {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match rx.recv_timeout(left) {
                Ok(chunk) => text.extend(chunk),
                Err(_) => {
                    let _ = child.kill();
                    panic!(
                        "status --watch stopped printing or exited ({:?}): {:?}",
                        child.wait(),
                        String::from_utf8_lossy(&text)
                    );
                }
            }
        }
        let running = child.try_wait().expect("try_wait").is_none();
        let _ = child.kill();
        let _ = child.wait();
        assert!(running, "status --watch exited after its frames");
        String::from_utf8_lossy(&text).into_owned()
    })
    .await
    .expect("join")
}

/// `status --watch` keeps redrawing (cursor home, the table, clear the rest) and
/// `--watch --json` keeps printing one document per line, each made anew.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_watch_refreshes_until_stopped() {
    let t = Tree::new("").await;
    let daemon = t.start_daemon(0);
    // Not `status` before the socket is up: read offline, it would hold the store's
    // lock while the daemon starts.
    let socket = t.state_dir().join("admin.sock");
    wait_until(30, "the daemon's admin socket", || async {
        socket.exists()
    })
    .await;
    assert_eq!(status_json(&t).await["source"], "daemon");

    const HOME: &str = "\x1b[H";
    let text = watch_until(&t, &[], |s| s.matches(HOME).count() >= 3).await;
    assert!(text.starts_with("\x1b[2J"), "{text:?}");
    let frames: Vec<&str> = text.split(HOME).skip(1).collect();
    for frame in &frames[..2] {
        assert!(frame.starts_with("daemon:     running"), "{frame:?}");
        assert!(frame.ends_with("\x1b[J"), "a whole frame: {frame:?}");
    }

    let text = watch_until(&t, &["--json"], |s| s.matches('\n').count() >= 2).await;
    let docs: Vec<Value> = text
        .lines()
        .take(2)
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert!(
        docs.iter().all(|d| d["daemon"]["running"] == true),
        "{docs:#?}"
    );
    let made = |d: &Value| d["generated_ms"].as_i64().expect("generated_ms");
    assert!(made(&docs[1]) > made(&docs[0]), "{docs:#?}");
    assert!(terminate(daemon).await.success(), "{}", t.daemon_log(0));
}
