//! `cdf-syncd jobs`, `retry` and `forget` through the real binary: on the job store of
//! a stopped daemon, through the admin socket of a running one, and the error when a
//! running daemon's socket is out of reach.

use std::os::unix::fs::{FileTypeExt, PermissionsExt};

use cdf_syncd::emulator::{Faults, ScriptedFault};
use serde_json::Value;

use crate::support::daemon::{PART, Tree, pattern, terminate, wait_for};
use crate::support::emulator::sha256_hex;
use crate::support::wait_until;

/// `jobs --json <args>`, parsed; the command must succeed.
async fn jobs_json(t: &Tree, args: &[&str]) -> Value {
    let out = t.cli(&[&["jobs", "--json"], args].concat()).await;
    assert_eq!(out.code, Some(0), "{}", out.all());
    serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", out.stdout))
}

/// The id of the listed job at `path` (relative to the root).
fn id_of(doc: &Value, path: &str) -> u64 {
    doc["jobs"]
        .as_array()
        .expect("jobs")
        .iter()
        .find(|j| j["path"] == path)
        .and_then(|j| j["id"].as_u64())
        .unwrap_or_else(|| panic!("no job for {path}: {doc:#}"))
}

/// The file is in the emulator, uploaded, with exactly these bytes.
fn synced(t: &Tree, rel: &str, bytes: &[u8]) -> bool {
    t.cdf.emu.files().iter().any(|f| {
        f.external_id.as_deref() == Some(format!("gw:it:/{rel}").as_str())
            && f.uploaded
            && f.sha256.as_deref() == Some(sha256_hex(bytes).as_str())
    })
}

fn refuse_creates(times: u32) -> Faults {
    Faults {
        scripted: vec![ScriptedFault {
            endpoint: "files".to_owned(),
            status: 400,
            lost_response: false,
            times,
        }],
        ..Faults::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_daemon_stopped_the_commands_work_on_the_job_store() {
    let t = Tree::new(r#"max_file_size = "1 KiB""#).await;
    let (big, huge) = (pattern(5000, 2), pattern(3000, 3));
    t.write("ok.txt", &pattern(100, 1));
    t.write("too/big.bin", &big);
    t.write("too/huge.bin", &huge);
    let (ok, out) = t.sync_once().await;
    assert!(!ok, "{out}");

    let out = &t.cli(&["jobs", "--state", "failed"]).await;
    assert_eq!(out.code, Some(0), "{}", out.all());
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert!(lines[0].starts_with("ID  PATH"), "{}", out.stdout);
    for path in ["it:/too/big.bin", "it:/too/huge.bin"] {
        let line = lines.iter().find(|l| l.contains(path)).expect(path);
        for word in ["failed", "manual", "over max_file_size (1024 bytes)"] {
            assert!(line.contains(word), "{word} in {line:?}");
        }
    }

    let doc = jobs_json(&t, &[]).await;
    assert_eq!(doc["source"], "store", "{doc:#}");
    assert_eq!(doc["total"], 2, "{doc:#}");
    let job = &doc["jobs"][0];
    assert_eq!(job["root"], "it");
    assert_eq!(job["state"], "failed");
    assert_eq!(job["failure"], "permanent");
    assert_eq!(job["attempts"], 1);
    assert_eq!(job["next_retry_ms"], Value::Null, "waits for an operator");
    assert!(
        job["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("max_file_size")),
        "{job:#}"
    );
    let (big_id, huge_id) = (id_of(&doc, "too/big.bin"), id_of(&doc, "too/huge.bin"));

    let out = &t.cli(&["jobs", "--state", "pending"]).await;
    assert_eq!(
        (out.code, out.stdout.as_str()),
        (Some(0), "no pending jobs\n")
    );
    for cmd in ["retry", "forget"] {
        let out = &t.cli(&[cmd, "424242"]).await;
        assert_eq!(out.code, Some(1), "{}", out.all());
        assert!(out.stderr.contains("no job 424242"), "{}", out.stderr);
    }
    let out = &t.cli(&["retry"]).await;
    assert_eq!(out.code, Some(2), "a job id or --all-failed: {}", out.all());

    let out = &t.cli(&["forget", &huge_id.to_string()]).await;
    assert_eq!(out.code, Some(0), "{}", out.all());
    assert!(out.stdout.contains("it:/too/huge.bin"), "{}", out.stdout);
    let doc = jobs_json(&t, &["--state", "failed"]).await;
    assert_eq!(doc["total"], 1, "{doc:#}");
    assert_eq!(id_of(&doc, "too/big.bin"), big_id);

    // Fix the cause, re-queue: the next run syncs it (and re-discovers the forgotten
    // file, which is still there and not synced).
    let config = std::fs::read_to_string(&t.config).expect("config");
    let fixed = config.replace(r#"max_file_size = "1 KiB""#, r#"max_file_size = "1 MiB""#);
    std::fs::write(&t.config, fixed).expect("config");
    let out = &t.cli(&["retry", &big_id.to_string()]).await;
    assert_eq!(out.code, Some(0), "{}", out.all());
    assert!(out.stdout.contains("re-queued job"), "{}", out.stdout);
    let doc = jobs_json(&t, &["--state", "pending"]).await;
    assert_eq!(doc["jobs"][0]["id"], big_id, "{doc:#}");
    assert_eq!(doc["jobs"][0]["attempts"], 0, "{doc:#}");

    let (ok, out) = t.sync_once().await;
    assert!(ok, "{out}");
    assert!(synced(&t, "too/big.bin", &big), "{out}");
    assert!(synced(&t, "too/huge.bin", &huge), "{out}");
    let out = &t.cli(&["jobs"]).await;
    assert_eq!((out.code, out.stdout.as_str()), (Some(0), "no jobs\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_daemon_running_the_commands_go_through_its_socket() {
    let t = Tree::new("").await;
    // CDF refuses the next three creates: three permanent failures.
    t.cdf.emu.set_faults(refuse_creates(3));
    let daemon = t.start_daemon(0);
    let files: Vec<(String, Vec<u8>)> = (1..=3)
        .map(|i| (format!("a/{i}.txt"), pattern(300 + i, i as u8)))
        .collect();
    for (rel, bytes) in &files {
        t.write(rel, bytes);
    }
    wait_until(60, "three failed jobs", || async {
        jobs_json(&t, &["--state", "failed"]).await["total"] == 3
    })
    .await;
    let socket = t.state_dir().join("admin.sock");
    let meta = std::fs::metadata(&socket).expect("the admin socket");
    assert!(meta.file_type().is_socket());
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);

    let doc = jobs_json(&t, &["--state", "failed"]).await;
    assert_eq!(doc["source"], "daemon", "{doc:#}");
    assert!(
        doc["jobs"][0]["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("HTTP 400")),
        "{doc:#}"
    );
    let out = &t.cli(&["jobs"]).await;
    assert!(out.stdout.contains("it:/a/1.txt"), "{}", out.all());
    for cmd in ["retry", "forget"] {
        let out = &t.cli(&[cmd, "424242"]).await;
        assert_eq!(out.code, Some(1), "{}", out.all());
        assert!(out.stderr.contains("no job 424242"), "{}", out.stderr);
    }

    let (one, two) = (id_of(&doc, "a/1.txt"), id_of(&doc, "a/2.txt"));
    let out = &t.cli(&["forget", &two.to_string()]).await;
    assert_eq!(out.code, Some(0), "{}", out.all());
    let out = &t.cli(&["retry", &one.to_string()]).await;
    assert_eq!(out.code, Some(0), "{}", out.all());
    let out = &t.cli(&["retry", "--all-failed"]).await;
    assert_eq!(out.code, Some(0), "{}", out.all());
    assert!(
        out.stdout.contains("re-queued 1 failed job"),
        "{}",
        out.stdout
    );
    let (f1, f3) = (&files[0], &files[2]);
    wait_for(60, "the re-queued files synced", || {
        synced(&t, &f1.0, &f1.1) && synced(&t, &f3.0, &f3.1)
    })
    .await;
    assert!(
        !t.cdf
            .emu
            .files()
            .iter()
            .any(|f| f.name == "2.txt" && f.uploaded),
        "the forgotten job was not retried"
    );

    // A job a worker holds cannot be forgotten while the daemon runs.
    t.cdf.emu.set_faults(Faults {
        latency_ms: 1500,
        ..Faults::default()
    });
    let slow = pattern(9 * PART, 7);
    t.write("b/slow.bin", &slow);
    let found = std::cell::Cell::new(None);
    wait_until(60, "the slow upload in flight", || {
        let (t, found) = (&t, &found);
        async move {
            let doc = jobs_json(t, &["--state", "active"]).await;
            let job = &doc["jobs"][0];
            found.set((job["state"] == "uploading").then(|| job["id"].as_u64().expect("id")));
            found.get().is_some()
        }
    })
    .await;
    let id = found.get().expect("in flight").to_string();
    let out = &t.cli(&["forget", &id]).await;
    assert_eq!(out.code, Some(1), "{}", out.all());
    assert!(
        out.stderr.contains("b/slow.bin") && out.stderr.contains("cannot be forgotten"),
        "{}",
        out.stderr
    );
    t.cdf.emu.set_faults(Faults::default());
    wait_for(60, "the slow file synced", || {
        synced(&t, "b/slow.bin", &slow)
    })
    .await;

    let status = terminate(daemon).await;
    assert!(status.success(), "{status:?}\n{}", t.daemon_log(0));
    assert!(!socket.exists(), "the socket is removed on exit");
    // Stopped: the same commands read the store.
    let doc = jobs_json(&t, &[]).await;
    assert_eq!(
        (&doc["source"], &doc["total"]),
        (&"store".into(), &0.into())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daemon_without_its_socket_keeps_syncing_and_the_cli_says_why() {
    let t = Tree::new("").await;
    let socket = t.dir.path().join("no-such-dir/admin.sock");
    let mut config = std::fs::read_to_string(&t.config).expect("config");
    config.push_str(&format!("[admin]\nsocket = \"{}\"\n", socket.display()));
    std::fs::write(&t.config, config).expect("config");
    let daemon = t.start_daemon(0);
    let bytes = pattern(500, 4);
    t.write("c/still.txt", &bytes);
    wait_for(60, "the file synced without the socket", || {
        synced(&t, "c/still.txt", &bytes)
    })
    .await;
    let log = t.daemon_log(0);
    assert!(
        log.contains("admin socket unavailable") && log.contains("no-such-dir/admin.sock"),
        "{log}"
    );

    let out = &t.cli(&["jobs"]).await;
    assert_eq!(out.code, Some(1), "{}", out.all());
    let state = t.state_dir().display().to_string();
    let socket = socket.display().to_string();
    for word in ["is running", &state, &socket] {
        assert!(out.stderr.contains(word), "{word}: {}", out.stderr);
    }
    let status = terminate(daemon).await;
    assert!(status.success(), "{status:?}\n{}", t.daemon_log(0));
}
