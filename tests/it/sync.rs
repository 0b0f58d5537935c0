//! `cdf-syncd sync --once` end to end: the real binary against an in-process emulator
//! in strict-headers mode, on a tree with nested directories, empty files, multipart
//! files, unicode and long names, and excluded names.

use std::path::Path;

use cdf_syncd::emulator::FileView;

use crate::support::daemon::{PART, Target, Tree, pattern};
use crate::support::emulator::sha256_hex;

fn assert_synced(s: &Tree, rel: &str, bytes: &[u8]) -> FileView {
    let f = s.held(&format!("gw:it:/{rel}"));
    assert!(f.uploaded, "{rel} uploaded");
    if s.target == Target::DataModeling {
        // The node's file: no classic externalId of its own.
        assert!(f.instance_id.is_some() && f.external_id.is_none(), "{f:?}");
    }
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
    mixed_tree(Target::Classic).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_once_uploads_a_mixed_tree_exactly_once_as_cognitefile_nodes() {
    mixed_tree(Target::DataModeling).await;
}

async fn mixed_tree(target: Target) {
    let s = Tree::for_target(target, Default::default(), "").await;
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
    if target == Target::DataModeling {
        let classic = c.total("POST files") + c.total("POST files/initmultipartupload");
        assert_eq!(classic, 0, "no classic file created: {c:?}");
        assert_eq!(
            c.total("POST models/instances"),
            files.len() as u64,
            "{c:?}"
        );
    }
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
    changed_file(Target::Classic).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_file_is_uploaded_again_to_the_same_node() {
    changed_file(Target::DataModeling).await;
}

async fn changed_file(target: Target) {
    let s = Tree::for_target(target, Default::default(), "").await;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_create_reply_is_settled_without_a_duplicate() {
    use cdf_syncd::emulator::{Faults, ScriptedFault};
    let s = Tree::new("").await;
    let bytes = pattern(2 * PART + 1, 11);
    s.write("x/lost.bin", &bytes);
    // CDF creates the file, the reply never arrives.
    s.cdf.emu.set_faults(Faults {
        scripted: vec![ScriptedFault {
            endpoint: "files/initmultipartupload".to_owned(),
            status: 0,
            lost_response: true,
            times: 1,
        }],
        ..Faults::default()
    });
    let (ok, out) = s.sync_once().await;
    assert!(ok, "{out}");
    let f = assert_synced(&s, "x/lost.bin", &bytes);
    assert_eq!(s.cdf.emu.files().len(), 1, "one file, no duplicate");
    assert_eq!(f.content_writes, 1);
    let c = s.cdf.emu.counters();
    assert_eq!(
        c.with_status("POST files/initmultipartupload", 409),
        1,
        "{c:?}"
    );
    // Settled by looking the file up and continuing with it, not by replacing it.
    assert!(c.total("POST files/byids") >= 1, "{c:?}");
    assert_eq!(c.total("POST files/multiuploadlink"), 1, "{c:?}");
    assert!(
        out.contains("a create whose reply was lost"),
        "the lookup is logged: {out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_upload_delete_waits_for_uploaded_and_moves_are_kept_relative() {
    after_upload(Target::Classic).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_upload_waits_for_uploaded_for_cognitefile_nodes_too() {
    after_upload(Target::DataModeling).await;
}

async fn after_upload(target: Target) {
    let emulator = cdf_syncd::emulator::EmulatorConfig {
        uploaded_delay: std::time::Duration::from_millis(400),
        ..Default::default()
    };
    let s = Tree::for_target(target, emulator, r#"after_upload = "delete""#).await;
    let bytes = pattern(1000, 12);
    s.write("d/gone.txt", &bytes);
    let (ok, out) = s.sync_once().await;
    assert!(ok, "{out}");
    let f = assert_synced(&s, "d/gone.txt", &bytes);
    assert!(f.uploaded);
    assert!(
        !s.watch().join("d/gone.txt").exists(),
        "deleted after upload"
    );

    let moved = s.dir.path().join("archive");
    let root = format!("after_upload = {{ move_to = \"{}\" }}", moved.display());
    let m = Tree::for_target(target, Default::default(), &root).await;
    m.write("m/keep.txt", &bytes);
    let (ok, out) = m.sync_once().await;
    assert!(ok, "{out}");
    assert_synced(&m, "m/keep.txt", &bytes);
    assert_eq!(
        std::fs::read(moved.join("m/keep.txt")).expect("moved"),
        bytes
    );
    assert!(!m.watch().join("m/keep.txt").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_permanent_failure_is_reported_and_the_rest_still_syncs() {
    let s = Tree::new(r#"max_file_size = "1 KiB""#).await;
    s.write("ok.txt", &pattern(100, 1));
    s.write("too/big.bin", &pattern(5000, 2));
    let (ok, out) = s.sync_once().await;
    assert!(!ok, "a failed file makes sync --once fail: {out}");
    assert!(out.contains("synced 1 files, 1 failed"), "{out}");
    assert!(out.contains("max_file_size"), "the reason is logged: {out}");
    assert_synced(&s, "ok.txt", &pattern(100, 1));
    assert_eq!(s.cdf.emu.files().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_data_set_given_by_external_id_is_looked_up_once_and_set_on_every_file() {
    let s = Tree::new(r#"data_set_external_id = "ds-files""#).await;
    s.write("a.txt", b"x");
    // Unknown data set: refused at start, nothing uploaded without it.
    let (ok, out) = s.sync_once().await;
    assert!(!ok);
    assert!(
        out.contains("no data set with externalId `ds-files`"),
        "{out}"
    );
    assert!(s.cdf.emu.files().is_empty());

    let (status, body) = s
        .cdf
        .post(
            "datasets",
            serde_json::json!({"items": [{"externalId": "ds-files", "name": "files"}]}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let id = body["items"][0]["id"].as_i64().expect("id");
    let (ok, out) = s.sync_once().await;
    assert!(ok, "{out}");
    assert_eq!(s.held("gw:it:/a.txt").data_set_id, Some(id));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_job_store_is_rebuilt_without_duplicates() {
    let s = Tree::new("").await;
    let files = [
        ("c/one.txt", pattern(700, 21)),
        ("c/two.bin", pattern(3 * PART + 9, 22)),
    ];
    for (rel, bytes) in &files {
        s.write(rel, bytes);
    }
    let (ok, out) = s.sync_once().await;
    assert!(ok, "{out}");
    // A power cut leaves sled's log unreadable.
    let log = s.dir.path().join("state/db/db");
    let len = std::fs::metadata(&log).expect("sled log").len().max(64) as usize;
    std::fs::write(
        &log,
        (0..len)
            .map(|i| (i * 7919 % 251) as u8)
            .collect::<Vec<u8>>(),
    )
    .expect("scribble");

    let (ok, out) = s.sync_once().await;
    assert!(ok, "the daemon carries on: {out}");
    assert!(out.contains("ERROR"), "the operator is told: {out}");
    assert_eq!(s.cdf.emu.files().len(), files.len(), "no duplicates");
    for (rel, bytes) in &files {
        assert_synced(&s, rel, bytes);
    }
    let moved = std::fs::read_dir(s.dir.path().join("state"))
        .expect("state dir")
        .filter_map(Result::ok)
        .any(|e| e.file_name().to_string_lossy().starts_with("db.corrupt-"));
    assert!(moved, "the broken database is kept aside");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_format_json_gives_one_json_object_per_line_with_the_synced_file() {
    let s = Tree::new("").await;
    s.write("j/one.txt", &pattern(123, 4));
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_cdf-syncd"));
    cmd.args(["sync", "--once", "--log-format", "json", "--config"])
        .arg(&s.config)
        .env("IT_SECRET", "demo-secret")
        .env("RUST_LOG", "info");
    let out = tokio::task::spawn_blocking(move || cmd.output().expect("run"))
        .await
        .expect("join");
    assert!(out.status.success(), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<serde_json::Value> = stderr
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let synced = lines
        .iter()
        .find(|v| v["fields"]["message"] == "synced")
        .unwrap_or_else(|| panic!("no synced line: {stderr}"));
    assert_eq!(synced["fields"]["path"], "it:/j/one.txt", "{synced}");
    assert_eq!(synced["fields"]["size"], 123, "{synced}");
    assert_eq!(synced["level"], "INFO", "{synced}");
}
