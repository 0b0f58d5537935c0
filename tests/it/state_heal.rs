//! State that heals, with the real daemon: a job record scribbled over while the daemon
//! was stopped is quarantined with an ERROR and its file synced anyway; a state
//! directory on a full disk (a 1 MiB tmpfs in the daemon's own mount namespace) pauses
//! the pipeline with a clear ERROR, loses nothing already synced, and everything is
//! synced once space is back.

use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use cdf_syncd::emulator::{Faults, ScriptedFault};

use crate::support::daemon::{PART, Tree, pattern, terminate, wait_for};
use crate::support::emulator::sha256_hex;
use crate::support::unshare;

/// The file is in the emulator, uploaded, with exactly these bytes.
fn synced(t: &Tree, rel: &str, bytes: &[u8]) -> bool {
    let id = format!("gw:it:/{rel}");
    t.cdf.emu.files().iter().any(|f| {
        f.external_id.as_deref() == Some(id.as_str())
            && f.uploaded
            && f.sha256.as_deref() == Some(sha256_hex(bytes).as_str())
    })
}

fn all_synced(t: &Tree, files: &[(String, Vec<u8>)]) -> bool {
    files.iter().all(|(rel, bytes)| synced(t, rel, bytes))
}

/// Opens the store's database with sled directly, once its owner let go.
fn raw_sled(state: &Path) -> sled::Db {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match sled::open(state.join("db")) {
            Ok(db) => return db,
            Err(e) if Instant::now() > deadline => panic!("{e}"),
            // The owner's lock goes a moment after it exits.
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_job_record_is_quarantined_and_its_file_synced_anyway() {
    let t = Tree::new("").await;
    let bytes = pattern(2 * PART + 11, 7);
    t.write("held/back.bin", &bytes);
    // Every create is refused: the job ends `Failed`, waiting for an operator, and a
    // plain restart would leave it there.
    let refuse = |endpoint: &str| ScriptedFault::new(endpoint, 400, 1000);
    t.cdf.emu.set_faults(Faults {
        scripted: vec![refuse("files"), refuse("files/initmultipartupload")],
        ..Faults::default()
    });
    let (ok, out) = t.sync_once().await;
    assert!(!ok, "the upload fails: {out}");

    let state = unshare::state_dir(&t);
    let db = raw_sled(&state);
    let jobs = db.open_tree("jobs").unwrap();
    let keys: Vec<sled::IVec> = jobs.iter().keys().map(Result::unwrap).collect();
    assert_eq!(keys.len(), 1, "the failed job");
    jobs.insert(&keys[0], &b"\x09not a job record"[..]).unwrap();
    db.flush().unwrap();
    drop((jobs, db));

    t.cdf.emu.set_faults(Faults::default());
    let mut daemon = t.start_daemon(1);
    wait_for(30, "the file synced after the quarantine", || {
        synced(&t, "held/back.bin", &bytes)
    })
    .await;
    let log = t.daemon_log(1);
    let quarantined = ["ERROR", "quarantined an undecodable job record"];
    assert_eq!(unshare::lines_with(&log, &quarantined), 1, "{log}");
    assert!(daemon.try_wait().unwrap().is_none(), "still running\n{log}");
    let status = terminate(daemon).await;
    assert!(status.success(), "{status:?}\n{}", t.daemon_log(1));
}

/// [`wait_for`], with daemon 0's log in the failure message.
async fn wait_logged(t: &Tree, secs: u64, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !cond() {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for: {what}\n{}",
            t.daemon_log(0)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Writes `path` until its filesystem is full.
fn fill(path: &Path) {
    let mut f = std::fs::File::create(path).unwrap();
    let chunk = vec![0u8; 64 * 1024];
    loop {
        if let Err(e) = f.write_all(&chunk).and_then(|()| f.sync_all()) {
            assert_eq!(e.kind(), std::io::ErrorKind::StorageFull, "{e}");
            return;
        }
    }
}

/// `n` files under `dir`: one of several parts, one empty, the rest small.
fn files(dir: &str, n: usize, seed: u8) -> Vec<(String, Vec<u8>)> {
    (0..n)
        .map(|i| {
            let len = match i {
                0 => 3 * PART + 5,
                1 => 0,
                _ => 100 + 37 * i,
            };
            (format!("{dir}/f{i:03}.bin"), pattern(len, seed + i as u8))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_state_directory_pauses_uploads_until_space_returns() {
    let t = Tree::new("").await;
    let state = unshare::state_dir(&t);
    std::fs::create_dir_all(&state).unwrap();
    let before = files("before", 4, 1);
    for (rel, bytes) in &before {
        t.write(rel, bytes);
    }
    let tmpfs = "mount -t tmpfs -o size=1m tmpfs \"$STATE\"";
    // Discovery's debug lines say when a file was found stable.
    let filter = "info,cdf_syncd::watch::driver=debug";
    let mut daemon = unshare::start_daemon_in_logging(&t, 0, "-Urm", tmpfs, filter);
    wait_logged(&t, 30, "the first files synced", || all_synced(&t, &before)).await;
    let mounts = std::fs::read_to_string(format!("/proc/{}/mountinfo", daemon.id())).unwrap();
    assert!(
        mounts
            .lines()
            .any(|l| l.contains(&*state.to_string_lossy()) && l.contains(" - tmpfs ")),
        "the state directory is a tmpfs for the daemon:\n{mounts}"
    );

    let filler = unshare::inside(daemon.id(), &state).join("filler");
    fill(&filler);
    // Enough jobs that recording them outgrows what the database's last page still
    // holds (a few may be synced in that slack before the store notices).
    let during = files("during", 60, 11);
    for (rel, bytes) in &during {
        t.write(rel, bytes);
    }
    let state_text = state.to_string_lossy().into_owned();
    wait_logged(&t, 30, "an ERROR naming the full state directory", || {
        let log = t.daemon_log(0);
        unshare::lines_with(&log, &["ERROR", &state_text, "is full"]) > 0
    })
    .await;
    let log = t.daemon_log(0);
    assert!(daemon.try_wait().unwrap().is_none(), "no crash\n{log}");
    assert!(!all_synced(&t, &during), "nothing was held back\n{log}");
    // Found while paused: the store cannot record them, so only a rescan after the
    // pause brings them back (the periodic scan is ten minutes away).
    // In the root, which is no new directory (those are scanned again a moment later).
    let paused: Vec<(String, Vec<u8>)> = (0..3)
        .map(|i| (format!("paused-{i}.bin"), pattern(300 + i, 21 + i as u8)))
        .collect();
    for (rel, bytes) in &paused {
        t.write(rel, bytes);
    }
    wait_logged(
        &t,
        30,
        "the files written while paused found stable",
        || {
            let log = t.daemon_log(0);
            paused
                .iter()
                .all(|(rel, _)| unshare::lines_with(&log, &["stable", &format!("path={rel} ")]) > 0)
        },
    )
    .await;
    assert!(daemon.try_wait().unwrap().is_none(), "still running");

    std::fs::remove_file(&filler).unwrap();
    wait_logged(&t, 60, "every file synced once space is back", || {
        all_synced(&t, &during) && all_synced(&t, &paused)
    })
    .await;
    for (rel, _) in &before {
        let file = t.held(&format!("gw:it:/{rel}"));
        assert_eq!(file.content_writes, 1, "{rel} was not sent again");
    }
    assert!(daemon.try_wait().unwrap().is_none(), "still running");
    let status = terminate(daemon).await;
    assert!(status.success(), "{status:?}\n{}", t.daemon_log(0));
}
