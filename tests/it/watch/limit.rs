//! The inotify watch limit, for real: the daemon runs in a user namespace
//! (`unshare -Ur`) whose `user.max_inotify_watches` is [`WATCH_LIMIT`] (one watch per
//! directory), so watches run out at startup or for a directory created later. `auto`
//! falls back to polling; `native` keeps what it watches, warns with the numbers and
//! the fix, rescans, and relies on the periodic scan for the rest.

use crate::support::daemon::{Tree, pattern, terminate, wait_for};
use crate::support::emulator::sha256_hex;
use crate::support::unshare;

const WATCH_LIMIT: usize = 16;

/// A tree whose `[sync]` table is `sync`, with `dirs` directories of one file each.
async fn limit_tree(sync: &str, dirs: usize) -> (Tree, Vec<(String, Vec<u8>)>) {
    let t = Tree::new("").await;
    unshare::set_sync(&t, sync);
    let files = (0..dirs)
        .map(|d| (format!("d{d:02}/first.bin"), pattern(100 + d, d as u8)))
        .inspect(|(rel, bytes)| t.write(rel, bytes))
        .collect();
    (t, files)
}

fn start_limited(t: &Tree) -> std::process::Child {
    let setup = format!("echo {WATCH_LIMIT} > /proc/sys/user/max_inotify_watches");
    unshare::start_daemon_in(t, 0, "-Ur", &setup)
}

/// Writes one more file into each of `dirs`; returns what was written.
fn write_into(t: &Tree, dirs: &[String], seed: u8) -> Vec<(String, Vec<u8>)> {
    dirs.iter()
        .enumerate()
        .map(|(i, d)| (format!("{d}/later.bin"), pattern(50 + i, seed)))
        .inspect(|(rel, bytes)| t.write(rel, bytes))
        .collect()
}

async fn wait_synced(t: &Tree, files: &[(String, Vec<u8>)], what: &str) {
    let what = format!("{what} ({} files)", files.len());
    wait_for(30, &what, || {
        let held = t.cdf.emu.files();
        files.iter().all(|(rel, bytes)| {
            let id = format!("gw:it:/{rel}");
            held.iter().any(|f| {
                f.external_id.as_deref() == Some(id.as_str())
                    && f.uploaded
                    && f.sha256.as_deref() == Some(sha256_hex(bytes).as_str())
            })
        })
    })
    .await;
}

const LIMIT_WARN: &str = "inotify watch limit reached";

/// The limit WARN lines of daemon 0's log.
fn limit_warnings(t: &Tree) -> Vec<String> {
    let log = t.daemon_log(0);
    log.lines()
        .filter(|l| l.contains(LIMIT_WARN))
        .map(str::to_owned)
        .collect()
}

/// Waits for the `n`-th limit WARN; returns it.
async fn limit_warning(t: &Tree, n: usize) -> String {
    wait_for(30, &format!("watch limit WARN #{n}"), || {
        limit_warnings(t).len() >= n
    })
    .await;
    limit_warnings(t).swap_remove(n - 1)
}

/// The WARN says how to fix it and gives the numbers: watches in use, the limit.
fn assert_explains(warn: &str) {
    for needle in [
        "fs.inotify.max_user_watches",
        &format!("watches_used={WATCH_LIMIT}"),
        &format!("max_user_watches={WATCH_LIMIT}"),
    ] {
        assert!(warn.contains(needle), "`{needle}` missing from: {warn}");
    }
}

/// Waits until the log shows more full scans than `after`.
async fn full_scan_after(t: &Tree, after: usize) {
    wait_for(30, "a full scan after the WARN", || {
        unshare::lines_with(&t.daemon_log(0), &["full scan done"]) > after
    })
    .await;
}

fn dirs(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|d| format!("{prefix}{d:02}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_polls_a_root_with_more_directories_than_watches() {
    let sync = "stable_for = \"200ms\"\nwatch = \"auto\"\npoll_interval = \"200ms\"\n\
                scan_interval = \"1h\"";
    let (t, first) = limit_tree(sync, WATCH_LIMIT + 8).await;
    let daemon = start_limited(&t);
    wait_synced(&t, &first, "the startup scan").await;
    let warn = limit_warning(&t, 1).await;
    assert_explains(&warn);
    assert!(warn.contains("polling this root instead"), "{warn}");
    // Only polling can see these: no periodic scan within the test, and a native
    // watch would miss the directories beyond the limit.
    let later = write_into(&t, &dirs("d", WATCH_LIMIT + 8), 1);
    wait_synced(&t, &later, "files written after the fallback").await;
    assert_eq!(limit_warnings(&t).len(), 1);
    let status = terminate(daemon).await;
    assert!(status.success(), "{status:?}\n{}", t.daemon_log(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_polls_once_directories_created_later_exceed_the_watch_limit() {
    let sync = "stable_for = \"200ms\"\nwatch = \"auto\"\npoll_interval = \"200ms\"\n\
                scan_interval = \"1h\"";
    let (t, first) = limit_tree(sync, 4).await;
    let daemon = start_limited(&t);
    wait_synced(&t, &first, "the startup scan").await;
    assert!(
        t.daemon_log(0).contains("backend=Native"),
        "{}",
        t.daemon_log(0)
    );
    assert!(limit_warnings(&t).is_empty());
    let scans = unshare::lines_with(&t.daemon_log(0), &["full scan done"]);
    let created = dirs("n", WATCH_LIMIT + 8);
    for d in &created {
        std::fs::create_dir(t.watch().join(d)).unwrap();
    }
    let warn = limit_warning(&t, 1).await;
    assert_explains(&warn);
    assert!(warn.contains("polling this root instead"), "{warn}");
    assert!(warn.contains("rescans=1"), "{warn}");
    // Written once the rescan is done: only polling finds them now.
    full_scan_after(&t, scans).await;
    let later = write_into(&t, &created, 3);
    wait_synced(&t, &later, "files in directories created after the limit").await;
    let status = terminate(daemon).await;
    assert!(status.success(), "{status:?}\n{}", t.daemon_log(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn native_warns_at_the_watch_limit_and_the_periodic_scan_finds_the_rest() {
    let sync = "stable_for = \"200ms\"\nwatch = \"native\"\nscan_interval = \"2s\"";
    let (t, first) = limit_tree(sync, WATCH_LIMIT + 8).await;
    let daemon = start_limited(&t);
    wait_synced(&t, &first, "the startup scan").await;
    let warn = limit_warning(&t, 1).await;
    assert_explains(&warn);
    assert!(warn.contains("only seen by the periodic scan"), "{warn}");
    // A directory created later cannot be watched either (the root itself is).
    let scans = unshare::lines_with(&t.daemon_log(0), &["full scan done"]);
    std::fs::create_dir(t.watch().join("late")).unwrap();
    let warn = limit_warning(&t, 2).await;
    assert_explains(&warn);
    assert!(warn.contains("watch_limit_hits=2"), "{warn}");
    assert!(warn.contains("rescans=1"), "{warn}");
    full_scan_after(&t, scans).await;
    let mut later = write_into(&t, &dirs("d", WATCH_LIMIT + 8), 4);
    later.extend(write_into(&t, &["late".to_owned()], 5));
    wait_synced(&t, &later, "files in unwatched directories").await;
    let status = terminate(daemon).await;
    assert!(status.success(), "{status:?}\n{}", t.daemon_log(0));
}
