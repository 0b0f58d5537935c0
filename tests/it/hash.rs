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

/// Replaces a CDF file's content behind the daemon's back (a new upload link).
async fn replace_in_cdf(t: &Tree, file_id: i64, bytes: &[u8]) {
    let (status, body) = t
        .cdf
        .post(
            "files/uploadlink",
            serde_json::json!({ "items": [{ "id": file_id }] }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let url = body["items"][0]["uploadUrl"].as_str().expect("uploadUrl");
    let resp = t
        .cdf
        .http
        .put(url)
        .header("content-type", "application/octet-stream")
        .body(bytes.to_vec())
        .send()
        .await
        .expect("put");
    assert!(resp.status().is_success(), "{}", resp.status());
    crate::support::daemon::wait_for(10, "the new content", || {
        t.cdf
            .emu
            .files()
            .iter()
            .any(|f| f.id == file_id && f.sha256.as_deref() == Some(sha256_hex(bytes).as_str()))
    })
    .await;
}

async fn verify(t: &Tree, args: &[&str]) -> (Option<i32>, String, serde_json::Value) {
    let mut argv = vec!["verify"];
    argv.extend_from_slice(args);
    let out = t.cli(&argv).await;
    let mut json_argv = argv.clone();
    json_argv.push("--json");
    let doc = t.cli(&json_argv).await;
    let doc: serde_json::Value = serde_json::from_str(&doc.stdout)
        .unwrap_or_else(|e| panic!("verify --json: {e}: {}", doc.all()));
    (out.code, out.stdout, doc)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_finds_tampered_files_on_either_side() {
    let t = hashing_tree().await;
    let files = [
        ("a/local.bin", pattern(5000, 1)),
        ("a/cdf-size.bin", pattern(700, 2)),
        ("b/cdf-same-size.bin", pattern(900, 3)),
        ("multi.bin", pattern(2 * PART + 1, 4)),
        ("empty.bin", Vec::new()),
    ];
    for (rel, bytes) in &files {
        t.write(rel, bytes);
    }
    let (ok, out) = t.sync_once().await;
    assert!(ok, "{out}");
    let (code, stdout, doc) = verify(&t, &[]).await;
    assert_eq!(code, Some(0), "{stdout}");
    assert!(stdout.contains("verified 5 files: 5 ok"), "{stdout}");
    assert_eq!(doc["counts"]["ok"], 5, "{doc}");

    // Locally: same size, other bytes (the daemon is not running to sync it).
    std::fs::write(t.watch().join("a/local.bin"), pattern(5000, 7)).expect("tamper");
    // In CDF: another size, and the same size with other bytes.
    replace_in_cdf(&t, t.held("gw:it:/a/cdf-size.bin").id, &pattern(699, 2)).await;
    replace_in_cdf(
        &t,
        t.held("gw:it:/b/cdf-same-size.bin").id,
        &pattern(900, 8),
    )
    .await;
    // Not synced at all.
    t.write("new.bin", b"new");

    let (code, stdout, doc) = verify(&t, &[]).await;
    assert_eq!(code, Some(1), "{stdout}");
    assert!(
        stdout.contains("content differs  it:/a/local.bin"),
        "{stdout}"
    );
    assert!(
        stdout.contains("size differs     it:/a/cdf-size.bin  local 700 bytes, CDF 699 bytes"),
        "{stdout}"
    );
    assert!(stdout.contains("missing          it:/new.bin"), "{stdout}");
    assert_eq!(
        doc["counts"]["ok"], 3,
        "the CDF-side same-size change needs --content: {doc}"
    );
    let verdicts: Vec<(String, String)> = doc["differences"]
        .as_array()
        .expect("differences")
        .iter()
        .map(|d| {
            (
                d["path"].as_str().unwrap_or("").to_owned(),
                d["verdict"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    assert!(
        verdicts.contains(&("a/local.bin".into(), "content_differs".into())),
        "{verdicts:?}"
    );

    // --content downloads everything: the same-size change in CDF shows too.
    let (code, stdout, _) = verify(&t, &["--content", "--root", "it"]).await;
    assert_eq!(code, Some(1));
    assert!(
        stdout.contains("content differs  it:/b/cdf-same-size.bin"),
        "{stdout}"
    );
    assert!(stdout.contains("verified 6 files: 2 ok,"), "{stdout}");

    let out = t.cli(&["verify", "--root", "nope"]).await;
    assert_eq!(out.code, Some(1));
    assert!(
        out.stderr.contains("no root with id `nope`"),
        "{}",
        out.all()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hash_is_stored_for_cognite_files_too() {
    use crate::support::daemon::Target;
    let t = Tree::for_target(
        Target::DataModeling,
        cdf_syncd::emulator::EmulatorConfig::default(),
        "",
    )
    .await;
    set_sync(&t, "stable_for = \"200ms\"\nhash = \"sha256\"");
    let bytes = pattern(3 * PART, 5);
    t.write("node.bin", &bytes);
    let (ok, out) = t.sync_once().await;
    assert!(ok, "{out}");
    let files = t.cdf.emu.files();
    let [f] = files.as_slice() else {
        panic!("{files:?}")
    };
    assert!(f.instance_id.is_some());
    assert_eq!(
        f.metadata.get(KEY).map(String::as_str),
        Some(sha256_hex(&bytes).as_str())
    );
    // Touched: not sent again, by the hash.
    touch_back(&t, "node.bin", 30);
    let sent = put_bytes(&t, f.id);
    let (ok, out) = t.sync_once().await;
    assert!(ok, "{out}");
    assert_eq!(put_bytes(&t, f.id), sent, "{out}");
    let (code, stdout, _) = verify(&t, &[]).await;
    assert_eq!(code, Some(0), "{stdout}");
    assert!(stdout.contains("verified 1 files: 1 ok"), "{stdout}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_lost_job_store_files_with_the_same_hash_are_not_sent_again() {
    let t = hashing_tree().await;
    let same = pattern(3 * PART + 1, 1);
    let changed = pattern(2000, 2);
    t.write("same.bin", &same);
    t.write("changed.txt", &changed);
    let (ok, out) = t.sync_once().await;
    assert!(ok, "{out}");
    let before = t.cdf.emu.counters().put_bytes_received;

    // The state directory is lost (a new SD card, a wiped /var/lib); one file changed.
    std::fs::remove_dir_all(t.state_dir()).expect("rm state");
    let changed2 = pattern(2000, 3);
    t.write("changed.txt", &changed2);
    let (ok, out) = t.sync_once().await;
    assert!(ok, "{out}");
    assert!(out.contains("the same SHA-256; nothing to send"), "{out}");
    assert_eq!(
        t.cdf.emu.counters().put_bytes_received,
        before + 2000,
        "only the changed file is sent: {out}"
    );
    held_with_hash(&t, "same.bin", &same);
    held_with_hash(&t, "changed.txt", &changed2);
    assert_eq!(t.cdf.emu.files().len(), 2);
    // And the store knows them again: a third run sends and hashes nothing.
    let (ok, out) = t.sync_once().await;
    assert!(ok, "{out}");
    assert_eq!(t.cdf.emu.counters().put_bytes_received, before + 2000);
}
