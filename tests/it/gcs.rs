//! GCS resumable single-part uploads (`/files/gcs_proxy/` URLs, the emulator's
//! `gcs_resumable`): files of every size arrive whole through the chunked protocol, a
//! daemon killed mid-file resumes from the last acknowledged chunk, injected PUT
//! faults are recovered with a status query (no full re-send), and a gone session gets
//! a new link.

use std::time::Duration;

use cdf_syncd::emulator::{CountersSnapshot, EmulatorConfig, Faults, ScriptedFault};

use crate::support::daemon::{QUICK_RETRIES, Tree, pattern, terminate, wait_for};
use crate::support::emulator::{TestCdf, sha256_hex};

/// The client's chunk size (`src/cdf/gcs.rs`).
const CHUNK: usize = 8 * 1024 * 1024;
/// The client-side bandwidth limit of the slow tests: about one chunk a second.
const SLOW: &str = r#"max_rate = "8 MiB/s""#;
const ENDPOINT: &str = "PUT gcs_proxy";

/// A tree whose emulator hands out GCS resumable URLs and whose files all go
/// single-part (256 MiB parts); `upload_extra` goes into `[upload]`.
async fn gcs_tree(upload_extra: &str) -> Tree {
    let emulator = EmulatorConfig {
        gcs_resumable: true,
        ..EmulatorConfig::default()
    };
    let upload = format!("{QUICK_RETRIES}\n{upload_extra}");
    let t = Tree::with_upload(emulator, "", &upload).await;
    let text = std::fs::read_to_string(&t.config).expect("config");
    let small = r#"part_size = "64 KiB""#;
    assert!(text.contains(small), "{text}");
    let text = text.replace(small, r#"part_size = "256 MiB""#);
    std::fs::write(&t.config, text).expect("config");
    t
}

/// Whether `rel` is in the emulator, uploaded, with exactly `bytes`.
fn whole(t: &Tree, rel: &str, bytes: &[u8]) -> bool {
    t.cdf.emu.files().iter().any(|f| {
        f.external_id.as_deref() == Some(format!("gw:it:/{rel}").as_str())
            && f.uploaded
            && f.sha256.as_deref() == Some(sha256_hex(bytes).as_str())
    })
}

fn replies(c: &CountersSnapshot, status: u16) -> u64 {
    c.with_status(ENDPOINT, status)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_of_every_size_arrive_whole_in_chunks() {
    let t = gcs_tree("").await;
    let files = [
        ("empty.log", Vec::new()),
        ("small.txt", pattern(100 * 1024, 1)),
        ("granule.bin", pattern(256 * 1024, 2)),
        ("chunks.bin", pattern(3 * CHUNK + 1, 3)),
    ];
    for (rel, bytes) in &files {
        t.write(rel, bytes);
    }
    let (ok, out) = t.sync_once().await;
    assert!(ok, "sync failed: {out}");
    for (rel, bytes) in &files {
        assert!(
            whole(&t, rel, bytes),
            "{rel} whole: {:#?}",
            t.cdf.emu.files()
        );
    }
    let c = t.cdf.emu.counters();
    // Per non-empty file one status query (308) first; 308 after each of the three
    // full chunks of chunks.bin; 200 for every last chunk and the empty file's PUT.
    assert_eq!(replies(&c, 308), 3 + 3, "{c:#?}");
    assert_eq!(replies(&c, 200), 4, "{c:#?}");
    assert_eq!(c.total(ENDPOINT), 10, "nothing else: {c:#?}");
    let sizes: usize = files.iter().map(|(_, b)| b.len()).sum();
    assert_eq!(c.put_bytes_received, sizes as u64, "each byte sent once");
    assert_eq!(c.bearer_on_upload_urls, 0);
    assert!(c.header_violations.values().all(|n| *n == 0), "{c:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_daemon_resumes_a_single_part_file_from_the_acknowledged_chunk() {
    let t = gcs_tree(SLOW).await;
    let big = pattern(5 * CHUNK + 12_345, 7);
    t.write("big.bin", &big);

    let mut first = t.start_daemon(0);
    // The status query and two chunks acknowledged, the third well under way.
    wait_for(60, "two chunks acknowledged", || {
        let c = t.cdf.emu.counters();
        replies(&c, 308) >= 3 && c.put_bytes_received as usize >= 2 * CHUNK + CHUNK / 2
    })
    .await;
    first.kill().expect("SIGKILL");
    let _ = first.wait();
    let at_kill = t.cdf.emu.counters().put_bytes_received as usize;

    // Slow storage while `status` is looked at, so that the file is not done first.
    t.cdf.emu.set_faults(Faults {
        put_bytes_per_sec: Some(1024 * 1024),
        ..Faults::default()
    });
    let queries_before = t.cdf.emu.counters().total(ENDPOINT);
    let second = t.start_daemon(1);
    // Only once the daemon owns the store (its status query arrived): `status` without
    // a daemon opens the store itself, and a daemon starting meanwhile finds it locked.
    wait_for(30, "the second daemon's status query", || {
        t.cdf.emu.counters().total(ENDPOINT) > queries_before
    })
    .await;
    resumed_bytes_in_status(&t, &big).await;
    t.cdf.emu.set_faults(Faults::default());
    wait_for(60, "big.bin whole after the restart", || {
        whole(&t, "big.bin", &big)
    })
    .await;
    let status = terminate(second).await;
    assert!(status.success(), "{status:?}\n{}", t.daemon_log(1));

    let f = t.held("gw:it:/big.bin");
    assert_eq!(f.content_writes, 1);
    let sent = t.cdf.emu.counters().put_bytes_received as usize;
    eprintln!(
        "{} bytes received in all for {} ({at_kill} before the kill)",
        sent,
        big.len()
    );
    assert!(
        sent < big.len() + 2 * CHUNK,
        "resumed, not restarted: {sent} bytes received for {} (at the kill: {at_kill})\n{}",
        big.len(),
        t.daemon_log(1)
    );
    assert!(
        t.daemon_log(1).contains("resuming a GCS upload"),
        "{}",
        t.daemon_log(1)
    );
}

/// Waits until `status --json` counts the bytes the server already held as done
/// while `big.bin` is still in flight.
async fn resumed_bytes_in_status(t: &Tree, big: &[u8]) {
    let last = std::sync::Mutex::new(String::new());
    let seen = crate::support::poll_until(
        Duration::from_secs(30),
        Duration::from_millis(50),
        || async {
            let out = t.cli(&["status", "--json"]).await;
            let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap_or_default();
            *last.lock().unwrap() = out.all();
            let done = v["daemon"]["uploads"][0]["bytes_done"]
                .as_u64()
                .unwrap_or(0);
            done >= 2 * CHUNK as u64 && !whole(t, "big.bin", big)
        },
    )
    .await;
    assert!(
        seen,
        "resumed bytes in `status`: {}\n{:#?}\n{}",
        last.lock().unwrap(),
        t.cdf.emu.counters(),
        t.daemon_log(1)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_chunk_and_a_503_are_recovered_with_a_status_query() {
    let t = gcs_tree(SLOW).await;
    let file = pattern(4 * CHUNK + 1, 5);
    t.write("faulty.bin", &file);
    let inject = async {
        wait_for(60, "the first chunk acknowledged", || {
            replies(&t.cdf.emu.counters(), 308) >= 2
        })
        .await;
        // The next chunk PUT is cut mid-body; the status query after it gets a 503.
        t.cdf.emu.set_faults(Faults {
            scripted: vec![
                ScriptedFault::new("gcs_proxy", 0, 1),
                ScriptedFault::new("gcs_proxy", 503, 1),
            ],
            ..Faults::default()
        });
    };
    let ((ok, out), ()) = tokio::join!(t.sync_once(), inject);
    assert!(ok, "sync failed: {out}");
    assert!(whole(&t, "faulty.bin", &file));
    assert_eq!(t.held("gw:it:/faulty.bin").content_writes, 1);

    let c = t.cdf.emu.counters();
    let injected = c.faults_injected.get(ENDPOINT).cloned().unwrap_or_default();
    assert_eq!(injected.get("drop"), Some(&1), "{c:#?}");
    assert_eq!(injected.get("503"), Some(&1), "{c:#?}");
    // 308s: the first status query, the four full chunks, and the status query that
    // found where to continue after the faults.
    assert_eq!(replies(&c, 308), 1 + 4 + 1, "{c:#?}\n{out}");
    let sent = c.put_bytes_received as usize;
    assert!(
        sent < file.len() + CHUNK,
        "at most the cut chunk again: {sent} bytes for {}",
        file.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gone_session_gets_a_new_link_and_completes() {
    let t = gcs_tree("").await;
    for (n, status) in [410u16, 404].into_iter().enumerate() {
        let rel = format!("gone-{status}.bin");
        let bytes = pattern(300 * 1024, status as u8);
        t.write(&rel, &bytes);
        // The first PUT of the upload (its status query) finds the session gone.
        t.cdf.emu.set_faults(Faults {
            scripted: vec![ScriptedFault::new("gcs_proxy", status, 1)],
            ..Faults::default()
        });
        let (ok, out) = t.sync_once().await;
        assert!(ok, "{status}: {out}");
        assert!(whole(&t, &rel, &bytes), "{status}: {out}");
        let c = t.cdf.emu.counters();
        assert_eq!(c.with_status(ENDPOINT, status), 1, "{c:#?}");
        // The new session's status query (308, nothing persisted), then one chunk.
        assert_eq!(replies(&c, 308), n as u64 + 1, "{c:#?}");
        assert_eq!(
            c.total("POST files/uploadlink"),
            n as u64 + 1,
            "{status}: a new link: {c:#?}"
        );
        assert_eq!(t.held(&format!("gw:it:/{rel}")).content_writes, 1);
    }
}

#[tokio::test]
async fn an_expired_gcs_session_is_gone() {
    let t = TestCdf::start(EmulatorConfig {
        gcs_resumable: true,
        url_lifetime: Duration::from_millis(300),
        ..EmulatorConfig::default()
    })
    .await;
    let (status, body) = t
        .post("files", serde_json::json!({ "name": "late.bin" }))
        .await;
    assert_eq!(status, 200, "{body}");
    let url = body["uploadUrl"].as_str().expect("uploadUrl").to_owned();
    let query = || async {
        t.http
            .put(&url)
            .header("Content-Range", "bytes */10")
            .body(Vec::new())
            .send()
            .await
            .expect("status query")
            .status()
            .as_u16()
    };
    assert_eq!(query().await, 308);
    crate::support::wait_until(5, "the session expires", || async { query().await == 410 }).await;
}
