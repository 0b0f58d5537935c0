//! What cloud storage rejects: chunked bodies, Content-Type rules, a bearer token (only
//! counted), size caps checked before the body is read, unknown and expired URLs.

use std::time::Duration;

use cdf_syncd::emulator::EmulatorConfig;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{chunked, create_file, data, file, init_multipart, put_typed, strict, wait_until};
use crate::support::emulator::{TestCdf, sha256_hex};

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
    // A file without mimeType signs no Content-Type: none (what the Python SDK sends)
    // and the generic type are fine, anything else is a mismatch.
    let (_, url) = create_file(&lax, json!({"name": "b.bin"})).await;
    assert_eq!(
        put_typed(&lax, &url, None, b"x".to_vec()).await.status(),
        200
    );
    let (_, url) = create_file(&lax, json!({"name": "c.bin"})).await;
    assert_eq!(
        put_typed(&lax, &url, Some("application/octet-stream"), b"x".to_vec())
            .await
            .status(),
        200
    );
    let (_, url) = create_file(&lax, json!({"name": "d.bin"})).await;
    assert_eq!(
        put_typed(&lax, &url, Some("text/plain"), b"x".to_vec())
            .await
            .status(),
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
        url_lifetime: Duration::from_secs(2),
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
