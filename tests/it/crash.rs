//! kill -9 at several points of a multipart upload, then a restart: every file ends up
//! in the emulator exactly once, whole (SHA-256), written once, and the bytes sent
//! again are at most the parts that were in flight at the kill.
//!
//! The same for the data-modeling target (no second node either).
//!
//! Also the daemon proper: files that appear while it runs are synced, and SIGTERM
//! stops it cleanly.

use std::time::Duration;

use cdf_syncd::emulator::{CountersSnapshot, Faults, ScriptedFault};

use crate::support::daemon::{PART, Target, Tree, pattern, terminate, wait_for};
use crate::support::emulator::sha256_hex;

/// Parts of the big file (the last one short).
const PARTS: usize = 21;
/// `max_parallel_parts` in the test configuration.
const PARALLEL: usize = 3;
/// How a slow writer paces its pieces (shorter than `stable_for`).
const WRITER_PAUSE: Duration = Duration::from_millis(80);

#[derive(Debug, Clone, Copy)]
enum KillPoint {
    /// As soon as the daemon has a token: before or around the create call.
    Early,
    /// With some parts acknowledged and others in flight.
    BetweenParts,
    /// Every part sent, completion failing (503): killed before it succeeds.
    AfterLastPart,
    /// Completion done by CDF but its reply lost: killed right after.
    AfterCompleteSent,
}

fn files(t: &Tree) -> Vec<(String, Vec<u8>)> {
    let tree: Vec<(String, Vec<u8>)> = vec![
        (
            "big/data.bin".to_owned(),
            pattern((PARTS - 1) * PART + 777, 9),
        ),
        ("small/a.txt".to_owned(), pattern(100, 1)),
        ("small/empty.log".to_owned(), Vec::new()),
    ];
    tree.into_iter()
        .inspect(|(rel, bytes)| t.write(rel, bytes))
        .collect()
}

fn faults_for(point: KillPoint) -> Faults {
    let complete = |status, lost_response| ScriptedFault {
        endpoint: "files/completemultipartupload".to_owned(),
        status,
        lost_response,
        times: 1000,
    };
    Faults {
        latency_ms: 25,
        scripted: match point {
            KillPoint::AfterLastPart => vec![complete(503, false)],
            KillPoint::AfterCompleteSent => vec![ScriptedFault {
                times: 1,
                ..complete(0, true)
            }],
            _ => Vec::new(),
        },
        ..Faults::default()
    }
}

fn reached(point: KillPoint, c: &CountersSnapshot) -> bool {
    let parts_ok = c.with_status("PUT upload/parts", 200) as usize;
    let completes = c.total("POST files/completemultipartupload");
    match point {
        KillPoint::Early => c.total("POST token") >= 1,
        KillPoint::BetweenParts => parts_ok >= 5,
        KillPoint::AfterLastPart => parts_ok >= PARTS && completes >= 1,
        KillPoint::AfterCompleteSent => completes >= 1,
    }
}

async fn crash_and_recover(point: KillPoint, target: Target) {
    let t = Tree::for_target(target, Default::default(), "").await;
    let tree = files(&t);
    let total: usize = tree.iter().map(|(_, b)| b.len()).sum();
    t.cdf.emu.set_faults(faults_for(point));

    let mut first = t.start_daemon(0);
    let what = format!("kill point {point:?}");
    wait_for(30, &what, || reached(point, &t.cdf.emu.counters())).await;
    first.kill().expect("SIGKILL");
    let _ = first.wait();

    t.cdf.emu.set_faults(Faults::default());
    let second = t.start_daemon(1);
    wait_for(60, "every file synced after the restart", || {
        let held = t.cdf.emu.files();
        tree.iter().all(|(rel, bytes)| {
            held.iter().any(|f| {
                t.xid_of(f) == Some(format!("gw:it:/{rel}").as_str())
                    && f.uploaded
                    && f.sha256.as_deref() == Some(sha256_hex(bytes).as_str())
            })
        })
    })
    .await;
    let status = terminate(second).await;
    assert!(
        status.success(),
        "clean stop: {status:?}\n{}",
        t.daemon_log(1)
    );

    // For data modeling every node has one file: no second node either.
    let held = t.cdf.emu.files();
    assert_eq!(held.len(), tree.len(), "exactly once each: {held:#?}");
    for f in &held {
        assert!(t.xid_of(f).is_some(), "a file of the target: {f:?}");
        assert_eq!(f.content_writes, 1, "{:?} written once", t.xid_of(f));
    }
    let sent = t.cdf.emu.counters().put_bytes_received as usize;
    let bound = total + PARALLEL * PART;
    assert!(
        sent <= bound,
        "{point:?}: {sent} bytes received for {total} bytes of files (bound {bound})\n{}",
        t.daemon_log(1)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_early_then_restart() {
    crash_and_recover(KillPoint::Early, Target::Classic).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_between_parts_then_restart() {
    crash_and_recover(KillPoint::BetweenParts, Target::Classic).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_after_the_last_part_then_restart() {
    crash_and_recover(KillPoint::AfterLastPart, Target::Classic).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_after_complete_was_sent_then_restart() {
    crash_and_recover(KillPoint::AfterCompleteSent, Target::Classic).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_modeling_kill_early_then_restart() {
    crash_and_recover(KillPoint::Early, Target::DataModeling).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_modeling_kill_between_parts_then_restart() {
    crash_and_recover(KillPoint::BetweenParts, Target::DataModeling).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_modeling_kill_after_complete_was_sent_then_restart() {
    crash_and_recover(KillPoint::AfterCompleteSent, Target::DataModeling).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_syncs_files_that_appear_and_stops_on_sigterm() {
    let t = Tree::new("").await;
    let daemon = t.start_daemon(0);
    // Written while the daemon runs, one of them slowly in pieces.
    t.write("later/one.txt", &pattern(300, 3));
    let slow = pattern(3 * PART + 5, 4);
    {
        use std::io::Write;
        let path = t.watch().join("later/slow.bin");
        let mut f = std::fs::File::create(&path).expect("create");
        for piece in slow.chunks(PART) {
            f.write_all(piece).expect("write");
            f.flush().expect("flush");
            tokio::time::sleep(WRITER_PAUSE).await;
        }
    }
    wait_for(30, "both files synced", || {
        let held = t.cdf.emu.files();
        let ok = |rel: &str, bytes: &[u8]| {
            held.iter().any(|f| {
                f.external_id.as_deref() == Some(&format!("gw:it:/{rel}")[..])
                    && f.uploaded
                    && f.sha256.as_deref() == Some(sha256_hex(bytes).as_str())
            })
        };
        ok("later/one.txt", &pattern(300, 3)) && ok("later/slow.bin", &slow)
    })
    .await;
    let status = terminate(daemon).await;
    assert!(status.success(), "{status:?}\n{}", t.daemon_log(0));
    let slow_file = t.held("gw:it:/later/slow.bin");
    assert_eq!(slow_file.content_writes, 1, "uploaded once, whole");
    assert_eq!(t.cdf.emu.files().len(), 2);
}

/// SIGTERM while parts crawl: the daemon stops within `shutdown_grace`, exits 0, and
/// the next start resumes the session instead of starting over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_mid_upload_stops_within_the_grace_and_the_restart_resumes() {
    let t = Tree::new("[admin]\nshutdown_grace = \"1s\"").await;
    let bytes = pattern(8 * PART + 3, 6);
    t.write("big/crawl.bin", &bytes);
    // 16 KiB/s per PUT: a 64 KiB part takes four seconds.
    t.cdf.emu.set_faults(Faults {
        put_bytes_per_sec: Some(16 * 1024),
        ..Faults::default()
    });
    let daemon = t.start_daemon(0);
    // The first three parts are in, and the next ones have started sending: they
    // need about four seconds more, far beyond the one-second grace.
    wait_for(60, "the second round of parts under way", || {
        let c = t.cdf.emu.counters();
        c.with_status("PUT upload/parts", 200) >= 3
            && c.put_bytes_received > (3 * PART + 4096) as u64
    })
    .await;
    let stopping = std::time::Instant::now();
    let status = terminate(daemon).await;
    assert!(status.success(), "{status:?}\n{}", t.daemon_log(0));
    // Parts in flight need seconds more; the grace is one.
    assert!(
        stopping.elapsed() < Duration::from_secs(10),
        "{:?}\n{}",
        stopping.elapsed(),
        t.daemon_log(0)
    );
    let log = t.daemon_log(0);
    assert!(log.contains("shutdown grace is over"), "{log}");

    t.cdf.emu.set_faults(Faults::default());
    let daemon = t.start_daemon(1);
    wait_for(30, "the file synced", || {
        t.cdf
            .emu
            .files()
            .iter()
            .any(|f| f.uploaded && f.sha256.as_deref() == Some(sha256_hex(&bytes).as_str()))
    })
    .await;
    assert!(terminate(daemon).await.success());
    let c = t.cdf.emu.counters();
    assert_eq!(
        c.total("POST files/initmultipartupload"),
        1,
        "resumed: {c:?}"
    );
    assert_eq!(
        c.total("POST files/multiuploadlink"),
        0,
        "same session: {c:?}"
    );
}
