//! The data-modeling target beyond the scenarios shared with classic Files (those are
//! parametrised in `sync.rs` and `crash.rs`): the node's properties as written, the
//! file service's propagation delay, CogniteExtractorFile with the root's metadata,
//! and a view that does not implement CogniteFile.

use std::time::Duration;

use cdf_syncd::emulator::EmulatorConfig;
use serde_json::{Value, json};

use crate::support::daemon::{DM_SPACE, PART, QUICK_RETRIES, Target, Tree, pattern};
use crate::support::emulator::sha256_hex;

/// The node as `models/instances/byids` returns it through `view` (`space`, `xid`).
async fn node(t: &Tree, xid: &str, view: (&str, &str)) -> Value {
    let (space, view_xid) = view;
    let body = json!({
        "items": [{ "instanceType": "node", "space": DM_SPACE, "externalId": xid }],
        "sources": [{ "source": { "type": "view", "space": space, "externalId": view_xid, "version": "v1" } }],
    });
    let (status, reply) = t.cdf.post("models/instances/byids", body).await;
    assert_eq!(status, 200, "{reply}");
    let props = &reply["items"][0]["properties"][space][format!("{view_xid}/v1")];
    assert!(props.is_object(), "{xid} is a node of {view_xid}: {reply}");
    props.clone()
}

const COGNITE_FILE: (&str, &str) = ("cdf_cdm", "CogniteFile");

fn iso_ms(path: &std::path::Path) -> i64 {
    let modified = std::fs::metadata(path)
        .expect("meta")
        .modified()
        .expect("mtime");
    let d = modified
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970");
    i64::try_from(d.as_millis()).expect("ms")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_file_is_one_cognitefile_node_with_its_properties() {
    let t = Tree::for_target(Target::DataModeling, EmulatorConfig::default(), "").await;
    let bytes = pattern(3 * PART + 10, 3);
    t.write("line1/report.csv", &bytes);
    let (ok, out) = t.sync_once().await;
    assert!(ok, "{out}");

    let f = t.held("gw:it:/line1/report.csv");
    assert_eq!(f.sha256.as_deref(), Some(sha256_hex(&bytes).as_str()));
    let props = node(&t, "gw:it:/line1/report.csv", COGNITE_FILE).await;
    let local = t.watch().join("line1/report.csv");
    let mtime = iso_ms(&local);
    // `2025-01-01T00:00:00.123+00:00`: checked by value through the file service below.
    let time = props["sourceCreatedTime"].as_str().expect("a string time");
    assert!(time.ends_with("+00:00") && time.contains('T'), "{time}");
    assert_eq!(props["sourceUpdatedTime"], props["sourceCreatedTime"]);
    assert_eq!(props["name"], "report.csv");
    assert_eq!(props["directory"], "/site/line1");
    assert_eq!(props["mimeType"], "text/csv");
    assert_eq!(props["sourceId"], local.to_string_lossy().as_ref());
    assert_eq!(props["isUploaded"], true);
    // The file service reads the node's time as milliseconds: the file's mtime.
    let (_, got) = t
        .cdf
        .post(
            "files/byids",
            json!({ "items": [{ "instanceId": { "space": DM_SPACE, "externalId": "gw:it:/line1/report.csv" } }] }),
        )
        .await;
    let file_time = got["items"][0]["sourceCreatedTime"].as_i64().expect("ms");
    assert_eq!(file_time, mtime, "{got}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_file_services_propagation_delay_is_waited_out_not_failed() {
    let emulator = EmulatorConfig {
        dm_propagation_lag: Duration::from_millis(1500),
        ..EmulatorConfig::default()
    };
    let t = Tree::for_target(Target::DataModeling, emulator, "").await;
    let files = [
        ("a/small.txt", pattern(100, 1)),
        ("b/big.bin", pattern(2 * PART + 1, 2)),
    ];
    for (rel, bytes) in &files {
        t.write(rel, bytes);
    }
    let started = std::time::Instant::now();
    let (ok, out) = t.sync_once().await;
    assert!(ok, "no failed job: {out}");
    assert!(started.elapsed() >= Duration::from_millis(1500));
    for (rel, bytes) in &files {
        let f = t.held(&format!("gw:it:/{rel}"));
        assert_eq!(f.sha256.as_deref(), Some(sha256_hex(bytes).as_str()));
        assert_eq!(f.content_writes, 1);
    }
    let c = t.cdf.emu.counters();
    let not_found = c.with_status("POST files/uploadlink", 400)
        + c.with_status("POST files/multiuploadlink", 400);
    assert!(not_found >= 2, "the lag was met by both: {c:?}");
    assert_eq!(
        c.total("POST models/instances"),
        2,
        "one upsert each: {c:?}"
    );
    assert_eq!(t.cdf.emu.files().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cognite_extractor_file_keeps_the_roots_metadata_as_extracted_data() {
    let view = r#"view = { space = "cdf_extraction_extensions", external_id = "CogniteExtractorFile", version = "v1" }"#;
    let root = "source = \"gw01\"\nmetadata = { line = \"1\", site = \"a\" }";
    let t = Tree::build(
        Target::DataModeling,
        view,
        EmulatorConfig::default(),
        root,
        QUICK_RETRIES,
    )
    .await;
    t.write("x.txt", b"extracted");
    let (ok, out) = t.sync_once().await;
    assert!(ok, "{out}");
    let props = node(
        &t,
        "gw:it:/x.txt",
        ("cdf_extraction_extensions", "CogniteExtractorFile"),
    )
    .await;
    assert_eq!(props["extractedData"], json!({ "line": "1", "site": "a" }));
    assert_eq!(props["sourceContext"], "gw01");
    assert_eq!(props["name"], "x.txt");
    // Through CogniteFile the same node is a file node.
    assert_eq!(
        node(&t, "gw:it:/x.txt", COGNITE_FILE).await["name"],
        "x.txt"
    );
    assert!(t.held("gw:it:/x.txt").uploaded);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_view_that_does_not_implement_cognitefile_is_a_clear_permanent_failure() {
    let view =
        format!(r#"view = {{ space = "{DM_SPACE}", external_id = "Pump", version = "v1" }}"#);
    let t = Tree::build(
        Target::DataModeling,
        &view,
        EmulatorConfig::default(),
        "",
        QUICK_RETRIES,
    )
    .await;
    t.write("p.txt", b"pump");
    let (ok, out) = t.sync_once().await;
    assert!(!ok, "{out}");
    assert!(
        out.contains(&format!("{DM_SPACE}:Pump/v1")),
        "names the view: {out}"
    );
    assert!(
        out.contains("`cdf-syncd retry` re-queues it"),
        "permanent: {out}"
    );
    assert!(t.cdf.emu.files().is_empty());
    let c = t.cdf.emu.counters();
    assert_eq!(c.total("POST models/instances"), 1, "not retried: {c:?}");
    let classic = c.total("POST files") + c.total("POST files/initmultipartupload");
    assert_eq!(classic, 0, "no classic file instead: {c:?}");
}
