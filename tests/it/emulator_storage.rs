//! The emulator's upload and download URLs: single-part PUTs, multipart parts, the GCS
//! resumable protocol, the header rules of `--strict-headers`, size caps, expiry, and the
//! cross-cutting behaviour every reply shares (request ids, gzip bodies, counters).

use std::time::Duration;

use bytes::Bytes;
use cdf_syncd::emulator::{EmulatorConfig, Faults, FileView, ScriptedFault};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::emulator::{TestCdf, sha256_hex};

/// Polls `cond` every 20 ms until it holds; panics after `secs` seconds.
pub async fn wait_until<F, Fut>(secs: u64, what: &str, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    while !cond().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

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
fn chunked(bytes: Vec<u8>) -> reqwest::Body {
    let chunks: Vec<Result<Bytes, std::io::Error>> = bytes
        .chunks(1000)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    reqwest::Body::wrap_stream(futures_util::stream::iter(chunks))
}

fn strict() -> EmulatorConfig {
    EmulatorConfig {
        strict_headers: true,
        min_part_size: 1024,
        ..EmulatorConfig::default()
    }
}

fn data(len: usize, seed: u8) -> Vec<u8> {
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
async fn chunked_bodies_are_counted_and_refused_when_strict() {
    let lax = TestCdf::start(EmulatorConfig::default()).await;
    let (id, url) = create_file(&lax, json!({"name": "c.bin"})).await;
    let content = data(5000, 2);
    let resp = lax
        .http
        .put(&url)
        .header("content-type", "application/octet-stream")
        .body(chunked(content.clone()));
    assert_eq!(resp.send().await.unwrap().status(), 200);
    assert_eq!(
        lax.emu
            .counters()
            .header_violations
            .get("missing_content_length"),
        Some(&1)
    );
    assert_eq!(file(&lax, id).sha256, Some(sha256_hex(&content)));

    let t = TestCdf::start(strict()).await;
    let (id, url) = create_file(&t, json!({"name": "c.bin"})).await;
    let resp = t
        .http
        .put(&url)
        .header("content-type", "application/octet-stream")
        .body(chunked(content));
    assert_eq!(resp.send().await.unwrap().status(), 411);
    let (_, _, urls) = init_multipart(&t, "m.bin", 1).await;
    assert_eq!(
        t.http
            .put(&urls[0])
            .body(chunked(data(10, 0)))
            .send()
            .await
            .unwrap()
            .status(),
        411
    );
    assert_eq!(
        t.emu
            .counters()
            .header_violations
            .get("missing_content_length"),
        Some(&2)
    );
    assert!(!file(&t, id).uploaded);
}

#[tokio::test]
async fn content_type_rules_are_counted_and_enforced_when_strict() {
    let lax = TestCdf::start(EmulatorConfig {
        min_part_size: 1024,
        ..EmulatorConfig::default()
    })
    .await;
    let (_, url) = create_file(&lax, json!({"name": "a.csv", "mimeType": "text/csv"})).await;
    assert_eq!(
        put_typed(&lax, &url, Some("text/plain"), b"x".to_vec())
            .await
            .status(),
        200
    );
    let (_, url) = create_file(&lax, json!({"name": "b.bin"})).await;
    assert_eq!(
        put_typed(&lax, &url, None, b"x".to_vec()).await.status(),
        200
    );
    let (_, _, urls) = init_multipart(&lax, "m.bin", 1).await;
    assert_eq!(
        put_typed(
            &lax,
            &urls[0],
            Some("application/octet-stream"),
            b"x".to_vec()
        )
        .await
        .status(),
        200
    );
    let v = lax.emu.counters().header_violations;
    assert_eq!(
        (
            v.get("content_type_mismatch"),
            v.get("content_type_on_part")
        ),
        (Some(&2), Some(&1))
    );

    let t = TestCdf::start(strict()).await;
    let (id, url) = create_file(&t, json!({"name": "a.csv", "mimeType": "text/csv"})).await;
    let resp = put_typed(&t, &url, Some("text/plain"), b"x".to_vec()).await;
    assert_eq!(resp.status(), 400);
    assert!(
        resp.text().await.unwrap().contains("<Error>"),
        "cloud-storage style error body"
    );
    assert!(!file(&t, id).uploaded);
    assert_eq!(
        put_typed(&t, &url, Some("text/csv"), b"x".to_vec())
            .await
            .status(),
        200
    );
    let (_, url) = create_file(&t, json!({"name": "b.bin"})).await;
    assert_eq!(
        put_typed(&t, &url, Some("application/octet-stream"), b"x".to_vec())
            .await
            .status(),
        200
    );
    let (_, _, urls) = init_multipart(&t, "m.bin", 1).await;
    assert_eq!(
        put_typed(
            &t,
            &urls[0],
            Some("application/octet-stream"),
            b"x".to_vec()
        )
        .await
        .status(),
        400
    );
    assert_eq!(
        put_typed(&t, &urls[0], None, b"x".to_vec()).await.status(),
        200
    );
}

#[tokio::test]
async fn a_bearer_token_on_upload_urls_is_counted_never_rejected() {
    let t = TestCdf::start(strict()).await;
    let (id, url) = create_file(&t, json!({"name": "a.bin"})).await;
    let resp = t
        .http
        .put(&url)
        .bearer_auth(&t.token)
        .header("content-type", "application/octet-stream");
    assert_eq!(
        resp.body(b"abc".to_vec()).send().await.unwrap().status(),
        200
    );
    let (_, body) = t
        .post("files/downloadlink", json!({"items": [{"id": id}]}))
        .await;
    let link = body["items"][0]["downloadUrl"].as_str().unwrap().to_owned();
    assert_eq!(
        t.http
            .get(&link)
            .bearer_auth(&t.token)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(t.emu.counters().bearer_on_upload_urls, 2);
}

/// Sends only a request head over raw TCP and returns the status line's code.
async fn status_of_head_only(base: &str, path: &str, headers: &str) -> u16 {
    let addr = base.trim_start_matches("http://");
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!("PUT {path} HTTP/1.1\r\nHost: {addr}\r\n{headers}\r\n");
    s.write_all(head.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
        .await
        .expect("answered without the body")
        .unwrap();
    let text = String::from_utf8_lossy(&buf[..n]);
    text.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn size_caps_are_checked_before_reading_the_body() {
    let t = TestCdf::start(EmulatorConfig::default()).await;
    let (id, url) = create_file(&t, json!({"name": "huge.bin"})).await;
    let base = t.emu.base_url();
    let path = url.strip_prefix(&base).unwrap();
    let ct = "Content-Type: application/octet-stream\r\n";
    let over = format!("{ct}Content-Length: 5000000001\r\n");
    assert_eq!(status_of_head_only(&base, path, &over).await, 413);
    let (_, _, urls) = init_multipart(&t, "parts.bin", 2).await;
    let path = urls[0].strip_prefix(&base).unwrap();
    let over = format!("Content-Length: {}\r\n", 4000u64 * 1024 * 1024 + 1);
    assert_eq!(status_of_head_only(&base, path, &over).await, 413);
    assert_eq!(t.emu.counters().put_bytes_received, 0);
    assert!(!file(&t, id).uploaded);
}

#[tokio::test]
async fn unknown_tokens_are_404_and_expired_urls_403() {
    let t = TestCdf::start(EmulatorConfig {
        url_lifetime: Duration::from_millis(300),
        ..EmulatorConfig::default()
    })
    .await;
    let base = t.emu.base_url();
    assert_eq!(
        t.put(&format!("{base}/upload/nope"), b"x".to_vec()).await,
        404
    );
    assert_eq!(
        t.put(&format!("{base}/upload/nope/parts/0"), b"x".to_vec())
            .await,
        404
    );
    let (_, url) = create_file(&t, json!({"name": "late.bin"})).await;
    let (_, _, urls) = init_multipart(&t, "late-mp.bin", 1).await;
    assert_eq!(
        t.put(&urls[0].replace("/parts/0", "/parts/7"), vec![1])
            .await,
        404
    );
    wait_until(5, "the URL expires", || async {
        put_typed(&t, &url, Some("application/octet-stream"), b"x".to_vec())
            .await
            .status()
            == 403
    })
    .await;
    assert_eq!(t.put(&urls[0], b"x".to_vec()).await, 403);
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

fn gcs() -> EmulatorConfig {
    EmulatorConfig {
        gcs_resumable: true,
        ..EmulatorConfig::default()
    }
}

/// A GCS chunk PUT: status and the `Range` header of the reply.
async fn gcs_put(t: &TestCdf, url: &str, range: &str, body: Vec<u8>) -> (u16, Option<String>) {
    let resp = t
        .http
        .put(url)
        .header("content-range", range)
        .body(body)
        .send()
        .await
        .expect("gcs put");
    let range = resp
        .headers()
        .get("range")
        .map(|v| v.to_str().unwrap().to_owned());
    (resp.status().as_u16(), range)
}

const K256: usize = 256 * 1024;

#[tokio::test]
async fn gcs_resumable_chunks_status_queries_and_finalisation() {
    let t = TestCdf::start(gcs()).await;
    let (id, url) = create_file(&t, json!({"name": "g.bin"})).await;
    assert!(url.contains("/api/v1/files/gcs_proxy/"), "{url}");
    let content = data(2 * K256 + 1000, 7);
    let total = content.len();
    assert_eq!(
        gcs_put(&t, &url, &format!("bytes */{total}"), vec![]).await,
        (308, None)
    );
    let first = content[..K256].to_vec();
    let ok = (308, Some(format!("bytes=0-{}", K256 - 1)));
    assert_eq!(
        gcs_put(&t, &url, &format!("bytes 0-{}/*", K256 - 1), first).await,
        ok
    );
    assert_eq!(
        gcs_put(&t, &url, &format!("bytes */{total}"), vec![]).await,
        ok
    );
    // Not a multiple of 256 KiB and not final; then a gap: both refused.
    let odd = content[K256..K256 + 1000].to_vec();
    assert_eq!(
        gcs_put(
            &t,
            &url,
            &format!("bytes {}-{}/{total}", K256, K256 + 999),
            odd
        )
        .await
        .0,
        400
    );
    let gap = content[2 * K256..].to_vec();
    assert_eq!(
        gcs_put(
            &t,
            &url,
            &format!("bytes {}-{}/{total}", 2 * K256, total - 1),
            gap.clone()
        )
        .await
        .0,
        400
    );
    let second = content[K256..2 * K256].to_vec();
    let range = format!("bytes {}-{}/{total}", K256, 2 * K256 - 1);
    assert_eq!(
        gcs_put(&t, &url, &range, second).await,
        (308, Some(format!("bytes=0-{}", 2 * K256 - 1)))
    );
    assert!(!file(&t, id).uploaded);
    assert_eq!(
        gcs_put(
            &t,
            &url,
            &format!("bytes {}-{}/{total}", 2 * K256, total - 1),
            gap
        )
        .await
        .0,
        200
    );
    let f = file(&t, id);
    assert!(f.uploaded);
    assert_eq!(
        (f.size, f.sha256),
        (Some(total as u64), Some(sha256_hex(&content)))
    );
    assert_eq!(
        gcs_put(&t, &url, &format!("bytes */{total}"), vec![])
            .await
            .0,
        200
    );

    let (id, url) = create_file(&t, json!({"name": "one-shot.bin"})).await;
    assert_eq!(t.put(&url, content.clone()).await, 200);
    assert_eq!(file(&t, id).sha256, Some(sha256_hex(&content)));
}

#[tokio::test]
async fn gcs_upload_resumes_after_a_dropped_chunk() {
    let t = TestCdf::start(gcs()).await;
    let (id, url) = create_file(&t, json!({"name": "g.bin"})).await;
    let content = data(2 * K256 + 10, 3);
    let total = content.len();
    let first = content[..K256].to_vec();
    assert_eq!(
        gcs_put(&t, &url, &format!("bytes 0-{}/*", K256 - 1), first)
            .await
            .0,
        308
    );
    let drop_next_put = ScriptedFault {
        endpoint: "put".into(),
        status: 0,
        lost_response: false,
        times: 1,
    };
    t.emu.set_faults(Faults {
        scripted: vec![drop_next_put],
        ..Faults::default()
    });
    let rest = content[K256..].to_vec();
    let range = format!("bytes {K256}-{}/{total}", total - 1);
    let cut = t
        .http
        .put(&url)
        .header("content-range", &range)
        .body(rest.clone())
        .send()
        .await;
    assert!(cut.is_err(), "the connection was cut: {cut:?}");
    // Nothing of the cut chunk was persisted: resume from the reported offset.
    let persisted = Some(format!("bytes=0-{}", K256 - 1));
    assert_eq!(
        gcs_put(&t, &url, &format!("bytes */{total}"), vec![]).await,
        (308, persisted)
    );
    assert_eq!(gcs_put(&t, &url, &range, rest).await.0, 200);
    assert_eq!(file(&t, id).sha256, Some(sha256_hex(&content)));
}

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
    let got: Value = t
        .http
        .get(format!("{base}/_emulator/faults"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
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
    let got: Value = t
        .http
        .get(format!("{base}/_emulator/faults"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(got["api_503"], 0.0);
    let listed: Vec<FileView> = t
        .http
        .get(format!("{base}/_emulator/files"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(listed.is_empty());
}
