//! `[[roots]] on_delete` and `on_change`: what CDF sees when a synced local file
//! disappears (confirmed by a scan), and when it changes under `on_change = "skip"`.

use cdf_syncd::emulator::EmulatorConfig;
use cdf_syncd::store::FileKey;

use crate::support::daemon::{Target, Tree, pattern, terminate};
use crate::support::unshare::set_sync;
use crate::support::wait_until;

const DELETED: &str = "cdf-syncd.deleted";

fn synced_record(t: &Tree, rel: &str) -> bool {
    let key = FileKey::new("it", std::path::Path::new(rel));
    t.store().synced(&key).expect("synced").is_some()
}

async fn synced_tree(target: Target, on_delete: &str) -> Tree {
    let t = Tree::for_target(
        target,
        EmulatorConfig::default(),
        &format!("on_delete = \"{on_delete}\""),
    )
    .await;
    t.write("a/gone.txt", &pattern(100, 1));
    t.write("a/stays.txt", &pattern(200, 2));
    t.write("b/also-gone.bin", &pattern(300, 3));
    let (ok, out) = t.sync_once().await;
    assert!(ok, "{out}");
    assert_eq!(t.cdf.emu.files().len(), 3);
    std::fs::remove_file(t.watch().join("a/gone.txt")).expect("rm");
    std::fs::remove_dir_all(t.watch().join("b")).expect("rm -r");
    t
}

fn external_id(t: &Tree, rel: &str) -> String {
    match t.target {
        Target::Classic => format!("gw:it:/{rel}"),
        Target::DataModeling => format!("gw:it:/{rel}"),
    }
}

/// The emulator's files by local path (externalId or the node's externalId).
fn in_cdf(t: &Tree, rel: &str) -> Option<cdf_syncd::emulator::FileView> {
    let want = external_id(t, rel);
    t.cdf.emu.files().into_iter().find(|f| {
        f.external_id.as_deref() == Some(want.as_str())
            || f.instance_id
                .as_ref()
                .is_some_and(|i| i.external_id == want)
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mark_adds_the_deletion_time_and_forgets_the_path() {
    let t = synced_tree(Target::Classic, "mark").await;
    let (ok, out) = t.sync_once().await;
    assert!(ok, "{out}");
    for rel in ["a/gone.txt", "b/also-gone.bin"] {
        let f = in_cdf(&t, rel).expect("kept in CDF");
        let when = f
            .metadata
            .get(DELETED)
            .unwrap_or_else(|| panic!("{rel}: {f:?}"));
        assert!(
            when.starts_with("20") && when.contains('T'),
            "ISO-8601: {when}"
        );
        assert!(!synced_record(&t, rel), "{rel}: record forgotten");
    }
    let stays = in_cdf(&t, "a/stays.txt").expect("stays");
    assert!(!stays.metadata.contains_key(DELETED));
    assert!(synced_record(&t, "a/stays.txt"));
    assert!(out.contains("marked in CDF"), "{out}");

    // Nothing left to do: no second mark.
    let before = t.cdf.emu.counters().requests.get("files/update").cloned();
    let (ok, out) = t.sync_once().await;
    assert!(ok, "{out}");
    assert_eq!(
        t.cdf.emu.counters().requests.get("files/update").cloned(),
        before
    );

    // A file that comes back is synced again (its metadata replaced by the overwrite).
    t.write("a/gone.txt", &pattern(100, 9));
    let (ok, out) = t.sync_once().await;
    assert!(ok, "{out}");
    let back = in_cdf(&t, "a/gone.txt").expect("back");
    assert!(!back.metadata.contains_key(DELETED), "{back:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_removes_the_file_in_cdf_for_both_targets() {
    for target in [Target::Classic, Target::DataModeling] {
        let t = synced_tree(target, "delete").await;
        let (ok, out) = t.sync_once().await;
        assert!(ok, "{target:?}: {out}");
        assert!(in_cdf(&t, "a/gone.txt").is_none(), "{target:?}");
        assert!(in_cdf(&t, "b/also-gone.bin").is_none(), "{target:?}");
        assert!(in_cdf(&t, "a/stays.txt").is_some(), "{target:?}");
        assert_eq!(t.cdf.emu.files().len(), 1, "{target:?}");
        assert!(!synced_record(&t, "a/gone.txt"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_leaves_cdf_alone_and_forgets_the_path() {
    let t = synced_tree(Target::Classic, "keep").await;
    let (ok, out) = t.sync_once().await;
    assert!(ok, "{out}");
    assert_eq!(t.cdf.emu.files().len(), 3);
    assert!(
        t.cdf
            .emu
            .files()
            .iter()
            .all(|f| !f.metadata.contains_key(DELETED))
    );
    assert!(
        !synced_record(&t, "a/gone.txt"),
        "the store does not grow with deleted files"
    );
    assert!(synced_record(&t, "a/stays.txt"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_daemon_marks_a_deletion_at_its_next_scan() {
    let t = Tree::new("on_delete = \"mark\"").await;
    set_sync(&t, "stable_for = \"200ms\"\nscan_interval = \"1s\"");
    t.write("x.txt", b"x");
    let daemon = t.start_daemon(0);
    wait_until(30, "x.txt uploaded", || async {
        t.cdf.emu.files().iter().any(|f| f.uploaded)
    })
    .await;
    std::fs::remove_file(t.watch().join("x.txt")).expect("rm");
    wait_until(30, "x.txt marked deleted", || async {
        t.cdf
            .emu
            .files()
            .iter()
            .any(|f| f.metadata.contains_key(DELETED))
    })
    .await;
    assert!(terminate(daemon).await.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_change_skip_keeps_the_first_version() {
    let t = Tree::new("on_change = \"skip\"").await;
    t.write("once.txt", b"first");
    let (ok, out) = t.sync_once().await;
    assert!(ok, "{out}");
    t.write("once.txt", b"second version");
    t.write("new.txt", b"new");
    let (ok, out) = t.sync_once().await;
    assert!(ok, "{out}");
    let once = t.held("gw:it:/once.txt");
    assert_eq!(once.size, Some(5), "the first version stays");
    assert_eq!(once.content_writes, 1);
    assert_eq!(
        t.held("gw:it:/new.txt").size,
        Some(3),
        "new files still sync"
    );
}

/// Full scans the daemon's watcher has run, from its metrics.
async fn scans(t: &Tree) -> f64 {
    let Some(addr) = crate::metrics::metrics_addr(&t.daemon_log(0)) else {
        return 0.0;
    };
    let text = match reqwest::get(format!("http://{addr}/metrics")).await {
        Ok(resp) => resp.text().await.unwrap_or_default(),
        Err(_) => return 0.0,
    };
    crate::metrics::value(&text, r#"cdf_syncd_watch_events_total{event="full_scan"}"#)
        .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_move_within_the_root_keeps_its_cdf_file_when_the_hash_matches() {
    // A table after the root's keys: [admin] for the metrics (full scans).
    let t = Tree::new("on_delete = \"delete\"\n[admin]\nmetrics_listen = \"127.0.0.1:0\"").await;
    set_sync(
        &t,
        "stable_for = \"200ms\"\nscan_interval = \"1s\"\nhash = \"sha256\"",
    );
    let big = pattern(3 * crate::support::daemon::PART + 7, 4);
    t.write("dir1/a.bin", &big);
    t.write("dir1/b.txt", b"bee");
    let daemon = t.start_daemon(0);
    wait_until(30, "both uploaded", || async {
        t.cdf.emu.files().iter().filter(|f| f.uploaded).count() == 2
    })
    .await;
    let a = t.held("gw:it:/dir1/a.bin");
    let sent = t.cdf.emu.counters().put_bytes_received;

    // A file moved to another directory: the same CDF file, renamed by externalId.
    std::fs::create_dir_all(t.watch().join("dir2")).expect("mkdir");
    std::fs::rename(t.watch().join("dir1/a.bin"), t.watch().join("dir2/a.bin")).expect("mv");
    wait_until(30, "a.bin moved in CDF", || async {
        t.cdf
            .emu
            .files()
            .iter()
            .any(|f| f.id == a.id && f.external_id.as_deref() == Some("gw:it:/dir2/a.bin"))
    })
    .await;
    let moved = t.held("gw:it:/dir2/a.bin");
    assert_eq!(moved.directory.as_deref(), Some("/site/dir2"));
    assert_eq!(moved.content_writes, 1, "not uploaded again");

    // A directory moved: every file in it.
    std::fs::rename(t.watch().join("dir1"), t.watch().join("dir3")).expect("mv dir");
    wait_until(30, "b.txt moved in CDF", || async {
        t.cdf
            .emu
            .files()
            .iter()
            .any(|f| f.external_id.as_deref() == Some("gw:it:/dir3/b.txt"))
    })
    .await;
    assert_eq!(t.cdf.emu.files().len(), 2, "no new files, none deleted");
    assert_eq!(
        t.cdf.emu.counters().put_bytes_received,
        sent,
        "nothing re-sent for moves"
    );
    // Later full scans (each followed by a sweep) do not take the old paths for
    // deletions: the moved files stay.
    let scans_after = scans(&t).await + 2.0;
    wait_until(30, "two more full scans", || async {
        scans(&t).await >= scans_after
    })
    .await;
    assert!(terminate(daemon).await.success());
    let log = t.daemon_log(0);
    assert!(log.contains("moved within the root"), "{log}");
    assert_eq!(t.cdf.emu.files().len(), 2);
}
