//! The GCS resumable protocol on `gcs_proxy` URLs (`--gcs-resumable`).

use cdf_syncd::emulator::{EmulatorConfig, Faults, ScriptedFault};
use serde_json::json;

use super::{create_file, data, file};
use crate::support::emulator::{TestCdf, sha256_hex};

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
