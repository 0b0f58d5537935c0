//! What every reply shares: an `x-request-id`, request counters, gzip request bodies,
//! and the reset endpoint.

use cdf_syncd::emulator::{EmulatorConfig, FileView};
use serde_json::{Value, json};

use super::create_file;
use crate::support::emulator::TestCdf;

#[tokio::test]
async fn every_reply_has_a_request_id_and_requests_are_counted() {
    let t = TestCdf::start(EmulatorConfig::default()).await;
    let base = t.emu.base_url();
    let replies = [
        t.http
            .get(format!("{base}/no/such/path"))
            .send()
            .await
            .unwrap(),
        t.http
            .post(t.api("files/list"))
            .json(&json!({}))
            .send()
            .await
            .unwrap(),
        t.http
            .put(format!("{base}/upload/nope"))
            .body("x")
            .send()
            .await
            .unwrap(),
        t.http
            .get(format!("{base}/_emulator/counters"))
            .send()
            .await
            .unwrap(),
        t.http
            .post(t.emu.token_url())
            .form(&[("grant_type", "nope")])
            .send()
            .await
            .unwrap(),
    ];
    for r in &replies {
        let id = r
            .headers()
            .get("x-request-id")
            .map(|v| v.to_str().unwrap().to_owned());
        assert!(
            id.is_some_and(|id| !id.is_empty()),
            "{} {}",
            r.url(),
            r.status()
        );
    }
    let c = t.emu.counters();
    assert_eq!(c.with_status("POST files/list", 401), 1);
    assert_eq!(c.with_status("PUT upload", 404), 1);
    assert!(c.total("POST token") >= 2, "{:?}", c.requests);
    assert!(
        c.requests.keys().all(|k| !k.contains("_emulator")),
        "{:?}",
        c.requests
    );
}

#[tokio::test]
async fn gzip_request_bodies_are_accepted() {
    use std::io::Write;
    let t = TestCdf::start(EmulatorConfig::default()).await;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(
        json!({"name": "zipped.txt", "externalId": "gz-1"})
            .to_string()
            .as_bytes(),
    )
    .unwrap();
    let resp = t
        .http
        .post(t.api("files"))
        .bearer_auth(&t.token)
        .header("content-type", "application/json")
        .header("content-encoding", "gzip")
        .body(gz.finish().unwrap())
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "{}", resp.status());
    assert!(
        t.emu
            .files()
            .iter()
            .any(|f| f.external_id.as_deref() == Some("gz-1"))
    );
}

#[tokio::test]
async fn reset_forgets_files_counters_and_faults() {
    let t = TestCdf::start(EmulatorConfig::default()).await;
    create_file(&t, json!({"name": "x.bin"})).await;
    let base = t.emu.base_url();
    let put = t
        .http
        .put(format!("{base}/_emulator/faults"))
        .json(&json!({"api_503": 0.5}));
    assert_eq!(put.send().await.unwrap().status(), 200);
    let got: Value = t.inspect("_emulator/faults").await;
    assert_eq!(got["api_503"], 0.5);
    let reset = t
        .http
        .post(format!("{base}/_emulator/reset"))
        .send()
        .await
        .unwrap();
    assert_eq!(reset.status(), 200);
    assert!(t.emu.files().is_empty());
    assert!(t.emu.counters().requests.is_empty());
    let got: Value = t.inspect("_emulator/faults").await;
    assert_eq!(got["api_503"], 0.0);
    let listed: Vec<FileView> = t.inspect("_emulator/files").await;
    assert!(listed.is_empty());
}
