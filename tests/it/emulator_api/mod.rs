//! The emulator's Files, auth, data-modeling and extraction-pipeline API, one test per
//! rule of docs/EMULATOR.md: each would fail if the rule were missing. Requests are
//! raw HTTP so that every test sends exactly the body its rule is about.

// Test helpers outside `#[test]` functions: a failed expectation is a failed test.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod auth;
mod fields;
mod instances;
mod multipart;
mod read_write;

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::emulator::TestCdf;

/// An emulator with the real rules and a 1 KiB minimum part size.
async fn cdf() -> TestCdf {
    TestCdf::small_parts().await
}

/// Asserts a CDF error reply: the status, and `{"error":{"code","message"}}` with the
/// same code. Returns the `error` object.
fn assert_error(status: u16, body: &Value, expected: u16) -> Value {
    assert_eq!(status, expected, "unexpected status; body: {body}");
    let error = body
        .get("error")
        .unwrap_or_else(|| panic!("no error object in {body}"));
    assert_eq!(error["code"], expected, "error.code in {body}");
    assert!(error["message"].is_string(), "error.message in {body}");
    error.clone()
}

/// `POST files` that must succeed; returns the file object (with `uploadUrl`).
async fn create(cdf: &TestCdf, body: Value) -> Value {
    let (status, reply) = cdf.post("files", body).await;
    assert_eq!(status, 200, "create failed: {reply}");
    reply
}

/// `POST files` with `body` and asserts the status (200 or a CDF error).
async fn create_status(cdf: &TestCdf, body: Value) -> u16 {
    let (status, reply) = cdf.post("files", body).await;
    if status != 200 {
        assert_error(status, &reply, status);
    }
    status
}

/// Creates a file and uploads `bytes` in one single-part PUT.
async fn upload_single(cdf: &TestCdf, body: Value, bytes: &[u8]) -> Value {
    let file = create(cdf, body).await;
    let url = file["uploadUrl"].as_str().expect("uploadUrl");
    assert_eq!(cdf.put(url, bytes.to_vec()).await, 200);
    file
}

/// `initmultipartupload` with one URL per part; returns the reply.
async fn init_multipart(cdf: &TestCdf, body: Value, parts: usize) -> Value {
    let (status, reply) = cdf
        .post(&format!("files/initmultipartupload?parts={parts}"), body)
        .await;
    assert_eq!(status, 201, "initmultipartupload failed: {reply}");
    reply
}

/// PUTs `bytes` to part `index` of a multipart reply.
async fn put_part(cdf: &TestCdf, session: &Value, index: usize, bytes: &[u8]) {
    let url = session["uploadUrls"][index].as_str().expect("part url");
    assert_eq!(cdf.put(url, bytes.to_vec()).await, 200, "part {index} PUT");
}

/// `completemultipartupload` by id; returns status and body.
async fn complete(cdf: &TestCdf, session: &Value) -> (u16, Value) {
    let body = json!({ "id": session["id"], "uploadId": session["uploadId"] });
    cdf.post("files/completemultipartupload", body).await
}

/// Uploads `parts` through a whole multipart session.
async fn upload_multipart(cdf: &TestCdf, body: Value, parts: &[&[u8]]) -> Value {
    let session = init_multipart(cdf, body, parts.len()).await;
    for (i, part) in parts.iter().enumerate() {
        put_part(cdf, &session, i, part).await;
    }
    let (status, reply) = complete(cdf, &session).await;
    assert_eq!(status, 200, "complete failed: {reply}");
    session
}

/// One file by identifier through `byids`.
async fn get(cdf: &TestCdf, ident: Value) -> Value {
    let (status, reply) = cdf.post("files/byids", json!({ "items": [ident] })).await;
    assert_eq!(status, 200, "byids failed: {reply}");
    reply["items"][0].clone()
}

/// The inspection view of one file.
fn inspect(cdf: &TestCdf, id: &Value) -> cdf_syncd::emulator::FileView {
    let id = id.as_i64().expect("numeric id");
    cdf.emu
        .files()
        .into_iter()
        .find(|f| f.id == id)
        .expect("file in the inspection view")
}

/// Waits, up to `limit` (whole seconds, rounded up), until `check` holds; returns how
/// long that took.
async fn wait_for<F, Fut>(limit: Duration, check: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    let secs = limit.as_secs() + u64::from(limit.subsec_nanos() > 0);
    crate::support::wait_until(secs, "condition", check).await;
    start.elapsed()
}

/// A string of `n` ASCII characters.
fn chars(n: usize) -> String {
    "x".repeat(n)
}
