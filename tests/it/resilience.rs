//! The daemon under adverse conditions: CDF down at start and mid-run, throttling,
//! rejected credentials, upload URLs that stop working, files CDF refuses. Each test
//! runs the real binary against the emulator and checks outcomes: bytes in the
//! emulator, no duplicates, the job store's states and attempts, and the log.

use std::process::Child;

use cdf_syncd::emulator::{Faults, ScriptedFault};
use cdf_syncd::store::StateKind;

use crate::support::daemon::{PART, Tree, pattern, terminate, wait_for};
use crate::support::emulator::sha256_hex;

/// Every file of `tree` is in the emulator once, with its content, written once.
fn all_synced_once(t: &Tree, tree: &[(String, Vec<u8>)]) -> bool {
    let files = t.cdf.emu.files();
    tree.iter().all(|(rel, bytes)| {
        let xid = format!("gw:it:/{rel}");
        let held: Vec<_> = files
            .iter()
            .filter(|f| f.external_id.as_deref() == Some(xid.as_str()))
            .collect();
        held.len() == 1
            && held[0].uploaded
            && held[0].sha256.as_deref() == Some(sha256_hex(bytes).as_str())
    })
}

fn write_all(t: &Tree, tree: &[(String, Vec<u8>)]) {
    for (rel, bytes) in tree {
        t.write(rel, bytes);
    }
}

fn mixed(prefix: &str, seed: u8) -> Vec<(String, Vec<u8>)> {
    vec![
        (format!("{prefix}/empty.log"), Vec::new()),
        (format!("{prefix}/small.txt"), pattern(300, seed)),
        (
            format!("{prefix}/multi.bin"),
            pattern(3 * PART + 5, seed + 1),
        ),
    ]
}

fn alive(child: &mut Child) -> bool {
    child.try_wait().expect("try_wait").is_none()
}

/// After the daemon stopped: no job is failed, and none burned an attempt.
fn assert_no_failures(t: &Tree, log: &str) {
    let store = t.store();
    let failed = store.list(Some(StateKind::Failed), 100).expect("list");
    assert!(failed.is_empty(), "failed jobs: {failed:#?}\n{log}");
    let all = store.list(None, 1000).expect("list");
    assert!(
        all.iter().all(|j| j.attempts == 0),
        "attempts burned: {all:#?}\n{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outages_at_start_and_mid_run_pause_the_pipeline_and_lose_nothing() {
    let t = Tree::new("").await;
    let first = mixed("a", 1);
    write_all(&t, &first);
    // CDF is down before the daemon starts: it must start, queue, and wait.
    t.cdf.emu.set_down(true);
    let mut daemon = t.start_daemon(0);
    wait_for(30, "the pause", || {
        t.daemon_log(0).contains("pipeline paused")
    })
    .await;
    wait_for(30, "a failed probe", || {
        t.daemon_log(0).contains("still paused")
    })
    .await;
    assert!(alive(&mut daemon), "{}", t.daemon_log(0));
    t.cdf.emu.set_down(false);
    wait_for(30, "the first files", || all_synced_once(&t, &first)).await;

    // Down again mid-run, with new files arriving meanwhile.
    t.cdf.emu.set_down(true);
    let second = mixed("b", 7);
    write_all(&t, &second);
    wait_for(30, "the second pause", || {
        t.daemon_log(0).matches("pipeline paused").count() >= 2
    })
    .await;
    assert!(alive(&mut daemon), "{}", t.daemon_log(0));
    t.cdf.emu.set_down(false);
    wait_for(30, "the second files", || all_synced_once(&t, &second)).await;
    assert!(terminate(daemon).await.success());
    let log = t.daemon_log(0);
    assert!(log.contains("resuming the pipeline"), "{log}");
    assert_eq!(t.cdf.emu.files().len(), first.len() + second.len());
    assert!(
        t.cdf.emu.files().iter().all(|f| f.content_writes == 1),
        "{:#?}",
        t.cdf.emu.files()
    );
    assert_no_failures(&t, &log);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_lowers_concurrency_and_fails_nothing() {
    let t = Tree::new("").await;
    let mut tree = mixed("a", 1);
    tree.extend(mixed("b", 3));
    tree.extend(mixed("c", 5));
    write_all(&t, &tree);
    t.cdf.emu.set_faults(Faults {
        api_429: 0.3,
        put_429: 0.2,
        put_503: 0.1,
        scripted: vec![ScriptedFault::new("files/initmultipartupload", 429, 3)],
        ..Faults::default()
    });
    let daemon = t.start_daemon(0);
    wait_for(60, "every file despite throttling", || {
        all_synced_once(&t, &tree)
    })
    .await;
    assert!(terminate(daemon).await.success());
    let log = t.daemon_log(0);
    assert!(
        log.contains("CDF is throttling: fewer uploads in flight"),
        "{log}"
    );
    let c = t.cdf.emu.counters();
    assert!(
        c.with_status("POST files/initmultipartupload", 429) >= 3,
        "{c:?}"
    );
    assert_no_failures(&t, &log);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejected_credentials_pause_loudly_and_fail_no_job() {
    let t = Tree::new("").await;
    let tree = mixed("a", 1);
    write_all(&t, &tree);
    let mut daemon = t.start_daemon_env(0, &[("IT_SECRET", "not-the-secret")]);
    wait_for(30, "the ERROR", || {
        t.daemon_log(0).contains("credentials rejected")
    })
    .await;
    // It keeps running and asks again, slowly (max_backoff is 1 s in the test config).
    wait_for(30, "a second try", || {
        t.cdf.emu.counters().with_status("POST token", 401) >= 2
    })
    .await;
    assert!(alive(&mut daemon), "{}", t.daemon_log(0));
    // The status flag an operator (or a monitor) sees through the admin socket.
    let socket = t.state_dir().join("admin.sock");
    let status = cdf_syncd::admin::request(&socket, &cdf_syncd::admin::Request::Status)
        .await
        .expect("status");
    let cdf_syncd::admin::Reply::Status { health, .. } = status else {
        panic!("{status:?}");
    };
    let health = health.expect("the daemon's health");
    assert_eq!(
        health.paused,
        Some(cdf_syncd::daemon::health::PauseReason::CredentialsRejected),
        "{health:?}"
    );
    assert!(terminate(daemon).await.success());
    let log = t.daemon_log(0);
    assert!(log.contains("ERROR"), "{log}");
    assert!(log.contains("fix the client credentials"), "{log}");
    assert!(!log.contains("not-the-secret"), "the secret leaked: {log}");
    assert!(t.cdf.emu.files().is_empty());
    assert_no_failures(&t, &log);
    assert_eq!(
        t.store().counts().expect("counts").get(StateKind::Queued),
        tree.len() as u64,
        "every file is still queued"
    );

    // With the right secret the queue drains.
    let daemon = t.start_daemon(1);
    wait_for(30, "the files", || all_synced_once(&t, &tree)).await;
    assert!(terminate(daemon).await.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_url_that_stopped_working_gets_a_fresh_session() {
    let t = Tree::new("").await;
    let tree = vec![
        ("gone/multi.bin".to_owned(), pattern(4 * PART + 9, 3)),
        ("gone/single.txt".to_owned(), pattern(1000, 4)),
    ];
    write_all(&t, &tree);
    t.cdf.emu.set_faults(Faults {
        scripted: vec![
            ScriptedFault::new("put", 410, 1),
            ScriptedFault::new("put", 403, 1),
        ],
        ..Faults::default()
    });
    let (ok, out) = t.sync_once().await;
    assert!(ok, "{out}");
    assert!(all_synced_once(&t, &tree), "{out}");
    let c = t.cdf.emu.counters();
    let relinks = c.total("POST files/multiuploadlink") + c.total("POST files/uploadlink");
    assert!(relinks >= 1, "a fresh link was asked for: {c:?}");
    assert!(out.contains("upload URL no longer valid"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_cdf_refuses_or_that_vanish_do_not_hold_up_the_queue() {
    let t = Tree::new(r#"max_file_size = "1 MiB""#).await;
    // Queued while CDF is down (sync --once gives up), then deleted: dropped, not failed.
    t.write("gone/soon.txt", b"here for a moment");
    t.cdf.emu.set_down(true);
    let (ok, out) = t.sync_once().await;
    assert!(!ok, "{out}");
    assert!(
        out.contains("gave up while paused (CDF unreachable)"),
        "{out}"
    );
    assert_eq!(
        t.store().counts().expect("counts").get(StateKind::Queued),
        1
    );
    std::fs::remove_file(t.watch().join("gone/soon.txt")).expect("rm");
    t.cdf.emu.set_down(false);

    // The refused file is the only multipart one: the scripted 400 is its.
    let good: Vec<_> = mixed("ok", 2)
        .into_iter()
        .filter(|(rel, _)| !rel.ends_with("multi.bin"))
        .collect();
    write_all(&t, &good);
    t.write("bad/too-big.bin", &pattern(2 << 20, 1));
    t.write("bad/refused.bin", &pattern(3 * PART, 9));
    // CDF refuses the first multipart create (e.g. a field it will not take).
    t.cdf.emu.set_faults(Faults {
        scripted: vec![ScriptedFault::new("files/initmultipartupload", 400, 1)],
        ..Faults::default()
    });
    let (ok, out) = t.sync_once().await;
    assert!(!ok, "{out}");
    let store = t.store();
    let failed = store.list(Some(StateKind::Failed), 10).expect("list");
    assert_eq!(failed.len(), 2, "{failed:#?}\n{out}");
    let reasons: Vec<String> = failed
        .iter()
        .map(|j| match &j.state {
            cdf_syncd::store::JobState::Failed { last_error, .. } => last_error.clone(),
            other => panic!("{other:?}"),
        })
        .collect();
    assert!(
        reasons.iter().any(|r| r.contains("max_file_size")),
        "{reasons:?}"
    );
    assert!(
        reasons.iter().any(|r| r.contains("HTTP 400")),
        "{reasons:?}"
    );
    assert!(out.contains("source vanished; job dropped"), "{out}");
    assert!(all_synced_once(&t, &good), "{out}");
    assert_eq!(t.cdf.emu.files().len(), good.len(), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_urls_older_than_six_days_are_replaced_not_used() {
    use cdf_syncd::store::JobState;
    let t = Tree::new("").await;
    let bytes = pattern(4 * PART + 3, 5);
    t.write("old/urls.bin", &bytes);
    // First run: the session opens, then storage refuses every PUT (a permanent 400).
    t.cdf.emu.set_faults(Faults {
        scripted: vec![ScriptedFault::new("put", 400, 1000)],
        ..Faults::default()
    });
    let (ok, out) = t.sync_once().await;
    assert!(!ok, "{out}");
    t.cdf.emu.set_faults(Faults::default());
    // Age the stored session by a week, as if the gateway had been off that long.
    {
        let store = t.store();
        let job = store.list(None, 10).expect("list").pop().expect("a job");
        let JobState::Failed {
            resume: Some(mut upload),
            ..
        } = job.state
        else {
            panic!("expected a failed job with its session: {job:#?}");
        };
        upload.urls_issued_ms -= 7 * 24 * 3600 * 1000;
        store
            .set_state(job.id, JobState::Uploading(upload))
            .expect("set state");
        store.flush_blocking().expect("flush");
    }
    let (ok, out) = t.sync_once().await;
    assert!(ok, "{out}");
    assert!(all_synced_once(&t, &[("old/urls.bin".to_owned(), bytes)]));
    let c = t.cdf.emu.counters();
    assert_eq!(c.total("POST files/multiuploadlink"), 1, "{c:?}");
    assert_eq!(c.total("POST files/initmultipartupload"), 1, "{c:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_file_fails_with_the_reason_and_the_rest_syncs() {
    use std::os::unix::fs::PermissionsExt;
    let t = Tree::new("").await;
    let ok_file = ("ok/readable.txt".to_owned(), pattern(500, 3));
    write_all(&t, std::slice::from_ref(&ok_file));
    t.write("locked/secret.bin", &pattern(700, 4));
    let locked = t.watch().join("locked/secret.bin");
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o000)).expect("chmod");
    // root reads anything: run as nobody, on a tree nobody owns, except the locked file.
    let root = std::process::Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false);
    let wrapper: &[&str] = if root {
        let status = std::process::Command::new("chown")
            .args(["-R", "65534:65534"])
            .arg(t.dir.path())
            .status()
            .expect("chown");
        assert!(status.success());
        std::os::unix::fs::chown(&locked, Some(0), Some(0)).expect("chown locked");
        &[
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--",
        ]
    } else {
        &[]
    };
    let (ok, out) = t.sync_once_wrapped(wrapper).await;
    assert!(!ok, "{out}");
    assert!(out.contains("synced 1 files, 1 failed"), "{out}");
    assert!(
        out.contains("Permission denied"),
        "the reason is logged: {out}"
    );
    assert!(all_synced_once(&t, &[ok_file]), "{out}");
    assert_eq!(t.cdf.emu.files().len(), 1, "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_cdf_no_longer_knows_is_replaced_and_the_file_sent_again() {
    let t = Tree::new("").await;
    let tree = vec![("lost/session.bin".to_owned(), pattern(3 * PART + 1, 8))];
    write_all(&t, &tree);
    // Completion refused (as for an expired or unknown uploadId); the file has no content.
    t.cdf.emu.set_faults(Faults {
        scripted: vec![ScriptedFault::new("files/completemultipartupload", 400, 1)],
        ..Faults::default()
    });
    let (ok, out) = t.sync_once().await;
    assert!(ok, "{out}");
    assert!(all_synced_once(&t, &tree), "{out}");
    let c = t.cdf.emu.counters();
    assert_eq!(c.total("POST files/multiuploadlink"), 1, "{c:?}");
    assert_eq!(c.total("POST files/completemultipartupload"), 2, "{c:?}");
    assert!(
        out.contains("CDF no longer knows the upload session"),
        "{out}"
    );
}
