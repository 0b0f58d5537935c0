//! `cdf-syncd sync --once` end to end: the real binary against an in-process emulator
//! in strict-headers mode, on a tree with nested directories, empty files, multipart
//! files, unicode and long names, and excluded names.

use std::path::Path;

use cdf_syncd::emulator::FileView;

use crate::support::daemon::{PART, Tree, pattern};
use crate::support::emulator::sha256_hex;

fn assert_synced(s: &Tree, rel: &str, bytes: &[u8]) -> FileView {
    let f = s.held(&format!("gw:it:/{rel}"));
    assert!(f.uploaded, "{rel} uploaded");
    assert_eq!(f.size, Some(bytes.len() as u64), "{rel} size");
    assert_eq!(
        f.sha256.as_deref(),
        Some(sha256_hex(bytes).as_str()),
        "{rel} content"
    );
    let dir = Path::new(rel)
        .parent()
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default();
    let want = if dir.is_empty() {
        "/site".to_owned()
    } else {
        format!("/site/{dir}")
    };
    assert_eq!(
        f.directory.as_deref(),
        Some(want.as_str()),
        "{rel} directory"
    );
    f
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_once_uploads_a_mixed_tree_exactly_once() {
    let s = Tree::new("").await;
    let long = format!("{}.txt", "n".repeat(200));
    let files: Vec<(String, Vec<u8>)> = vec![
        ("top.txt".into(), pattern(100, 1)),
        ("a/b/c/deep.csv".into(), pattern(3000, 2)),
        ("a/empty.log".into(), Vec::new()),
        ("big/multi.bin".into(), pattern(5 * PART + 99, 3)),
        ("ünïcødé/fïlé 1.txt".into(), pattern(10, 4)),
        (format!("long/{long}"), pattern(20, 5)),
    ];
    for (rel, bytes) in &files {
        s.write(rel, bytes);
    }
    s.write("ignored.tmp", b"temp");
    s.write(".hidden", b"hidden");
    s.write("a/x.skip", b"excluded");

    let (ok, out) = s.sync_once().await;
    assert!(ok, "sync failed: {out}");
    for (rel, bytes) in &files {
        assert_synced(&s, rel, bytes);
    }
    assert_eq!(
        s.cdf.emu.files().len(),
        files.len(),
        "only the included files"
    );
    let c = s.cdf.emu.counters();
    assert_eq!(c.bearer_on_upload_urls, 0);
    assert!(c.header_violations.values().all(|n| *n == 0), "{c:?}");

    // A second run finds nothing to do.
    let before = s.cdf.emu.counters();
    let (ok, out) = s.sync_once().await;
    assert!(ok, "{out}");
    let after = s.cdf.emu.counters();
    assert_eq!(
        after.put_bytes_received, before.put_bytes_received,
        "nothing re-sent: {out}"
    );
    assert_eq!(
        after.total("POST files/initmultipartupload"),
        before.total("POST files/initmultipartupload")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_file_is_overwritten_under_the_same_id() {
    let s = Tree::new("").await;
    s.write("r/report.csv", &pattern(500, 7));
    let (ok, out) = s.sync_once().await;
    assert!(ok, "{out}");
    let first = assert_synced(&s, "r/report.csv", &pattern(500, 7));

    let changed = pattern(2 * PART + 5, 8);
    s.write("r/report.csv", &changed);
    let (ok, out) = s.sync_once().await;
    assert!(ok, "{out}");
    let second = assert_synced(&s, "r/report.csv", &changed);
    assert_eq!(second.id, first.id, "same CDF file");
    assert_eq!(second.content_writes, 2);
    assert_eq!(s.cdf.emu.files().len(), 1);
}
