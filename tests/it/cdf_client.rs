//! The CDF client against the emulator in strict-headers mode: typed errors with
//! retry classes and request ids, credentials, data set lookups. (Whole uploads through
//! the client are covered end to end by `sync.rs`.)

use std::time::Duration;

use cdf_syncd::auth::Credentials;
use cdf_syncd::cdf::{CdfClient, ClientConfig, FileCreate, Identity, RetryClass};
use cdf_syncd::emulator::{EmulatorConfig, Faults, ScriptedFault};
use cdf_syncd::secret::Secret;

use crate::support::emulator::TestCdf;

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

#[tokio::test]
async fn errors_carry_status_request_id_and_retry_class() {
    let cdf = strict_cdf().await;
    let client = client_for(&cdf, cdf_syncd::emulator::DEMO_CLIENT_SECRET);
    let file = FileCreate {
        name: "dup".to_owned(),
        external_id: Some("dup".to_owned()),
        ..FileCreate::default()
    };
    client.create_file(&file, false).await.expect("first");
    let source = client.create_file(&file, false).await.expect_err("409");
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
