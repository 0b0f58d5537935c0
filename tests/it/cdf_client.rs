//! The CDF client and the whole-file uploader against the emulator in strict-headers
//! mode: bytes arrive intact, and nothing a real cloud store rejects is ever sent.

use std::time::Duration;

use cdf_syncd::auth::Credentials;
use cdf_syncd::cdf::{CdfClient, ClientConfig, FileCreate, Identity, RetryClass};
use cdf_syncd::emulator::{EmulatorConfig, Faults, ScriptedFault};
use cdf_syncd::secret::Secret;
use cdf_syncd::upload::{UploadRequest, upload_whole};

use crate::support::emulator::{TestCdf, sha256_hex};

const MIN_PART: u64 = 64 * 1024;

async fn strict_cdf() -> TestCdf {
    TestCdf::start(EmulatorConfig {
        strict_headers: true,
        min_part_size: MIN_PART,
        ..EmulatorConfig::default()
    })
    .await
}

fn client_for(cdf: &TestCdf, secret: &str) -> CdfClient {
    CdfClient::new(ClientConfig {
        base_url: cdf.emu.base_url().parse().expect("url"),
        project: cdf.emu.project().to_owned(),
        credentials: Credentials::ClientCredentials {
            token_url: cdf.emu.token_url().parse().expect("url"),
            client_id: cdf_syncd::emulator::DEMO_CLIENT_ID.to_owned(),
            client_secret: Secret::new(secret),
            scopes: vec!["user_impersonation".to_owned()],
            audience: None,
            resource: None,
        },
        request_timeout: Duration::from_secs(10),
        put_timeout: Duration::from_secs(30),
    })
    .expect("client")
}

fn request(path: std::path::PathBuf, size: u64, xid: &str) -> UploadRequest {
    UploadRequest {
        path,
        size,
        file: FileCreate {
            name: xid.to_owned(),
            external_id: Some(xid.to_owned()),
            directory: Some("/it".to_owned()),
            mime_type: Some("application/octet-stream".to_owned()),
            ..FileCreate::default()
        },
        overwrite: false,
        part_size: Some(MIN_PART),
        min_part_size: MIN_PART,
        max_parallel_parts: 3,
    }
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

#[tokio::test]
async fn uploads_empty_small_and_multipart_files_intact_and_by_the_rules() {
    let cdf = strict_cdf().await;
    let client = client_for(&cdf, cdf_syncd::emulator::DEMO_CLIENT_SECRET);
    let dir = tempfile::tempdir().expect("tmp");
    let cases = [
        ("empty", 0usize),
        ("small", 1000),
        ("multi", 5 * MIN_PART as usize + 17),
    ];
    for (i, (xid, len)) in cases.iter().enumerate() {
        let bytes = pattern(*len, i as u8);
        let path = dir.path().join(xid);
        std::fs::write(&path, &bytes).expect("write");
        let file = upload_whole(&client, &request(path, *len as u64, xid))
            .await
            .unwrap_or_else(|e| panic!("{xid}: {e}"));
        let held = cdf
            .emu
            .files()
            .into_iter()
            .find(|f| f.id == file.id)
            .expect("in emulator");
        assert_eq!(held.size, Some(*len as u64), "{xid}");
        assert_eq!(
            held.sha256.as_deref(),
            Some(sha256_hex(&bytes).as_str()),
            "{xid}"
        );
    }
    let counters = cdf.emu.counters();
    assert_eq!(counters.bearer_on_upload_urls, 0);
    assert!(
        counters.header_violations.values().all(|n| *n == 0),
        "{counters:?}"
    );
    let found = client
        .files_by_ids(&[
            Identity::ExternalId("multi".into()),
            Identity::ExternalId("nope".into()),
        ])
        .await
        .expect("byids");
    assert_eq!(found.len(), 1);
}

#[tokio::test]
async fn errors_carry_status_request_id_and_retry_class() {
    let cdf = strict_cdf().await;
    let client = client_for(&cdf, cdf_syncd::emulator::DEMO_CLIENT_SECRET);
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("a");
    std::fs::write(&path, b"x").expect("write");
    upload_whole(&client, &request(path.clone(), 1, "dup"))
        .await
        .expect("first");
    let err = upload_whole(&client, &request(path, 1, "dup"))
        .await
        .expect_err("409");
    let cdf_syncd::upload::UploadError::Cdf { source, .. } = err else {
        panic!("unexpected {err}")
    };
    assert_eq!(source.status(), Some(409));
    assert_eq!(source.retry_class(), RetryClass::Permanent);
    let api = source.api().expect("api error");
    assert_eq!(api.duplicated.len(), 1);
    assert!(api.request_id.is_some(), "x-request-id is carried");

    cdf.emu.set_faults(Faults {
        scripted: vec![ScriptedFault {
            endpoint: "files/byids".to_owned(),
            status: 503,
            lost_response: false,
            times: 1,
        }],
        ..Faults::default()
    });
    let err = client
        .files_by_ids(&[Identity::Id(1)])
        .await
        .expect_err("503");
    assert!(
        matches!(err.retry_class(), RetryClass::Throttled { .. }),
        "{err}"
    );
}

#[tokio::test]
async fn rejected_credentials_are_permanent_and_say_so() {
    let cdf = strict_cdf().await;
    let client = client_for(&cdf, "wrong-secret");
    let err = client
        .files_by_ids(&[Identity::Id(1)])
        .await
        .expect_err("401");
    assert_eq!(err.retry_class(), RetryClass::Permanent);
    let text = err.to_string();
    assert!(text.contains("rejected the client credentials"), "{text}");
    assert!(!text.contains("wrong-secret"), "secret leaked: {text}");
}

#[tokio::test]
async fn data_sets_are_looked_up_by_external_id() {
    let cdf = strict_cdf().await;
    let client = client_for(&cdf, cdf_syncd::emulator::DEMO_CLIENT_SECRET);
    assert_eq!(client.data_set_id("ds").await.expect("lookup"), None);
    let (status, body) = cdf
        .post(
            "datasets",
            serde_json::json!({"items": [{"externalId": "ds"}]}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let id = body["items"][0]["id"].as_i64().expect("id");
    assert_eq!(client.data_set_id("ds").await.expect("lookup"), Some(id));
    let (status, body) = cdf
        .post(
            "datasets",
            serde_json::json!({"items": [{"externalId": "ds"}]}),
        )
        .await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["duplicated"][0]["externalId"], "ds");
    let (status, body) = cdf
        .post(
            "datasets/byids",
            serde_json::json!({"items": [{"externalId": "nope"}]}),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["missing"][0]["externalId"], "nope");
}
