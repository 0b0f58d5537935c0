//! `[sync] hash = "sha256"`: the hash goes to CDF metadata, a file whose fingerprint
//! changed but whose content did not is not sent again, and `cdf-syncd verify`.

use cdf_syncd::emulator::FileView;

use crate::support::daemon::{PART, Tree, pattern};
use crate::support::emulator::sha256_hex;
use crate::support::unshare::set_sync;

const KEY: &str = "cdf-syncd.sha256";

async fn hashing_tree() -> Tree {
    let t = Tree::new("").await;
    set_sync(&t, "stable_for = \"200ms\"\nhash = \"sha256\"");
    t
}

fn held_with_hash(t: &Tree, rel: &str, bytes: &[u8]) -> FileView {
    let f = t.held(&format!("gw:it:/{rel}"));
    assert_eq!(
        f.sha256.as_deref(),
        Some(sha256_hex(bytes).as_str()),
        "{rel}"
    );
    assert_eq!(
        f.metadata.get(KEY).map(String::as_str),
        Some(sha256_hex(bytes).as_str()),
        "{rel}: the hash in CDF metadata"
    );
    f
}

fn put_bytes(t: &Tree, file_id: i64) -> u64 {
    t.cdf
        .emu
        .counters()
        .put_bytes_by_file
        .get(&file_id)
        .copied()
        .unwrap_or(0)
}

/// Sets a file's mtime `secs` into the past (a new fingerprint, the same content).
fn touch_back(t: &Tree, rel: &str, secs: u64) {
    let path = t.watch().join(rel);
    let when = std::time::SystemTime::now() - std::time::Duration::from_secs(secs);
    let file = std::fs::File::options()
        .write(true)
        .open(&path)
        .expect("open");
    file.set_modified(when).expect("set mtime");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_with_the_same_content_is_not_sent_again() {
    let t = hashing_tree().await;
    let small = pattern(1000, 1);
    let multi = pattern(3 * PART + 5, 2);
    t.write("small.txt", &small);
    t.write("multi.bin", &multi);
    t.write("empty.log", b"");
    let (ok, out) = t.sync_once().await;
    assert!(ok, "{out}");
    let small_id = held_with_hash(&t, "small.txt", &small).id;
    let multi_id = held_with_hash(&t, "multi.bin", &multi).id;
    held_with_hash(&t, "empty.log", b"");
    let sent = (put_bytes(&t, small_id), put_bytes(&t, multi_id));

    // Touched, and rewritten with the same bytes (a new inode too): nothing is sent.
    touch_back(&t, "small.txt", 30);
    std::fs::remove_file(t.watch().join("multi.bin")).expect("rm");
    t.write("multi.bin", &multi);
    let (ok, out) = t.sync_once().await;
    assert!(ok, "{out}");
    assert_eq!(
        (put_bytes(&t, small_id), put_bytes(&t, multi_id)),
        sent,
        "unchanged content is not uploaded again: {out}"
    );
    assert!(out.contains("content unchanged"), "{out}");
    assert_eq!(t.cdf.emu.files().len(), 3);
    // The new fingerprints are recorded: a third run does not even hash.
    let (ok, out) = t.sync_once().await;
    assert!(ok, "{out}");
    assert!(!out.contains("content unchanged"), "{out}");

    // The same size with other bytes is a change: sent, and the hash follows.
    let changed = pattern(1000, 9);
    t.write("small.txt", &changed);
    touch_back(&t, "small.txt", 20);
    let (ok, out) = t.sync_once().await;
    assert!(ok, "{out}");
    let f = held_with_hash(&t, "small.txt", &changed);
    assert_eq!(f.id, small_id, "the same CDF file");
    assert_eq!(put_bytes(&t, small_id), sent.0 + 1000);
}
