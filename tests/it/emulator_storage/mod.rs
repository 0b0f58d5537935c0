//! The emulator's upload and download URLs: single-part PUTs, multipart parts and
//! downloads here; the header rules of `--strict-headers`, size caps and expiry in
//! `headers`; the GCS resumable protocol in `gcs`; the behaviour every reply shares
//! (request ids, gzip bodies, counters, reset) in `surface`. The helpers are shared with
//! `emulator_faults`.

mod gcs;
mod headers;
mod surface;

use bytes::Bytes;
use cdf_syncd::emulator::{EmulatorConfig, FileView};
use serde_json::{Value, json};

use crate::support::emulator::{TestCdf, sha256_hex};

pub use crate::support::wait_until;

/// `POST files` -> (id, uploadUrl).
pub async fn create_file(t: &TestCdf, body: Value) -> (i64, String) {
    let (status, file) = t.post("files", body).await;
    assert!((200..300).contains(&status), "POST files: {status} {file}");
    let url = file["uploadUrl"].as_str().expect("uploadUrl").to_owned();
    (file["id"].as_i64().expect("id"), url)
}

/// `POST files/initmultipartupload?parts=N` -> (id, uploadId, uploadUrls).
pub async fn init_multipart(t: &TestCdf, name: &str, parts: usize) -> (i64, String, Vec<String>) {
    let (status, file) = t
        .post(
            &format!("files/initmultipartupload?parts={parts}"),
            json!({ "name": name }),
        )
        .await;
    assert!(
        (200..300).contains(&status),
        "initmultipartupload: {status} {file}"
    );
    let urls = file["uploadUrls"]
        .as_array()
        .expect("uploadUrls")
        .iter()
        .map(|u| u.as_str().expect("url").to_owned())
        .collect();
    let upload_id = file["uploadId"].as_str().expect("uploadId").to_owned();
    (file["id"].as_i64().expect("id"), upload_id, urls)
}

/// The inspection view of one file.
pub fn file(t: &TestCdf, id: i64) -> FileView {
    t.emu
        .files()
        .into_iter()
        .find(|f| f.id == id)
        .expect("file exists")
}

/// A PUT with an exact Content-Type (or none).
pub async fn put_typed(
    t: &TestCdf,
    url: &str,
    content_type: Option<&str>,
    bytes: Vec<u8>,
) -> reqwest::Response {
    let mut req = t.http.put(url).body(bytes);
    if let Some(ct) = content_type {
        req = req.header("content-type", ct);
    }
    req.send().await.expect("put")
}

/// A body without a known length: reqwest sends it chunked.
pub fn chunked(bytes: Vec<u8>) -> reqwest::Body {
    let chunks: Vec<Result<Bytes, std::io::Error>> = bytes
        .chunks(1000)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    reqwest::Body::wrap_stream(futures_util::stream::iter(chunks))
}

pub fn strict() -> EmulatorConfig {
    EmulatorConfig {
        strict_headers: true,
        min_part_size: 1024,
        ..EmulatorConfig::default()
    }
}

pub fn data(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

#[tokio::test]
async fn single_part_put_is_stored_with_its_sha256() {
    let t = TestCdf::start(EmulatorConfig::default()).await;
    let (id, url) = create_file(&t, json!({"name": "a.txt", "mimeType": "text/plain"})).await;
    let content = data(300_000, 1);
    let resp = put_typed(&t, &url, Some("text/plain"), content.clone()).await;
    assert_eq!(resp.status(), 200);
    let f = file(&t, id);
    assert_eq!(
        (f.size, f.sha256.as_deref()),
        (Some(300_000), Some(sha256_hex(&content).as_str()))
    );
    assert!(f.uploaded);
    assert_eq!(f.content_writes, 1);
    let c = t.emu.counters();
    assert_eq!(c.with_status("PUT upload", 200), 1);
    assert_eq!(c.put_bytes_received, 300_000);
    assert!(c.header_violations.is_empty(), "{:?}", c.header_violations);
    assert_eq!(c.bearer_on_upload_urls, 0);
}

#[tokio::test]
async fn parts_are_replaced_on_reput_and_assembled_in_index_order() {
    let t = TestCdf::small_parts().await;
    let (id, upload_id, urls) = init_multipart(&t, "mp.bin", 3).await;
    let (a, b, c, b2) = (data(1024, 1), data(1500, 2), data(10, 3), data(1500, 9));
    assert_eq!(t.put(&urls[2], c.clone()).await, 200);
    assert_eq!(t.put(&urls[1], b).await, 200);
    assert_eq!(t.put(&urls[0], a.clone()).await, 200);
    assert_eq!(t.put(&urls[1], b2.clone()).await, 200);
    let (status, body) = t
        .post(
            "files/completemultipartupload",
            json!({"id": id, "uploadId": upload_id}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let whole = [a, b2, c].concat();
    let f = file(&t, id);
    assert_eq!(
        (f.size, f.sha256),
        (Some(whole.len() as u64), Some(sha256_hex(&whole)))
    );
    assert_eq!(t.emu.counters().put_bytes_received, 1024 + 1500 + 10 + 1500);
}

#[tokio::test]
async fn downloads_return_the_committed_content() {
    let t = TestCdf::start(EmulatorConfig::default()).await;
    let (id, url) = create_file(&t, json!({"name": "d.bin", "mimeType": "application/pdf"})).await;
    let content = data(700_000, 5);
    assert_eq!(
        put_typed(&t, &url, Some("application/pdf"), content.clone())
            .await
            .status(),
        200
    );
    let (_, body) = t
        .post("files/downloadlink", json!({"items": [{"id": id}]}))
        .await;
    let link = body["items"][0]["downloadUrl"].as_str().unwrap().to_owned();
    let resp = t.http.get(&link).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/pdf");
    assert_eq!(resp.bytes().await.unwrap().as_ref(), content.as_slice());
    let base = t.emu.base_url();
    assert_eq!(
        t.http
            .get(format!("{base}/download/1"))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
}
