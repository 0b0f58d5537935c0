//! The CDF client against the emulator in strict-headers mode: typed errors with
//! retry classes and request ids, credentials, data set lookups. (Whole uploads through
//! the client are covered end to end by `sync.rs`.)

use std::time::Duration;

use cdf_syncd::auth::Credentials;
use cdf_syncd::cdf::{CdfClient, ClientConfig, FileCreate, Identity, RetryClass, RetryPolicy};
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

/// A client that does not retry, so each call shows the raw reply.
fn client_for(cdf: &TestCdf, secret: &str) -> CdfClient {
    client_with(
        cdf,
        secret,
        RetryPolicy {
            max_retries: 0,
            ..RetryPolicy::default()
        },
        None,
    )
}

fn client_with(
    cdf: &TestCdf,
    secret: &str,
    retry: RetryPolicy,
    max_requests_per_second: Option<u32>,
) -> CdfClient {
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
        retry,
        max_requests_per_second,
        network: Default::default(),
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
        scripted: vec![ScriptedFault::new("files/byids", 503, 1)],
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

fn quick_retries(max_retries: u32) -> RetryPolicy {
    RetryPolicy {
        max_retries,
        initial_backoff: Duration::from_millis(20),
        max_backoff: Duration::from_millis(200),
        budget: Duration::from_secs(30),
    }
}

#[tokio::test]
async fn the_quick_tier_retries_transient_and_throttled_replies_and_counts_throttling() {
    let cdf = strict_cdf().await;
    let client = client_with(
        &cdf,
        cdf_syncd::emulator::DEMO_CLIENT_SECRET,
        quick_retries(3),
        None,
    );
    cdf.emu.set_faults(Faults {
        scripted: vec![
            ScriptedFault::new("files/byids", 503, 1),
            ScriptedFault::new("files/byids", 429, 1),
            ScriptedFault::new("files/byids", 500, 1),
        ],
        ..Faults::default()
    });
    let found = client.files_by_ids(&[Identity::Id(1)]).await;
    assert!(found.expect("retried to success").is_empty());
    assert_eq!(client.throttled_total(), 2);
    assert_eq!(cdf.emu.counters().total("POST files/byids"), 4);

    // A permanent error is returned at once; a fourth failure exhausts the tier.
    cdf.emu.set_faults(Faults {
        scripted: vec![ScriptedFault::new("files/byids", 500, 4)],
        ..Faults::default()
    });
    let err = client
        .files_by_ids(&[Identity::Id(1)])
        .await
        .expect_err("500 x4");
    assert_eq!(err.status(), Some(500));
    assert_eq!(cdf.emu.counters().total("POST files/byids"), 8);
    let err = client
        .update_files(vec![serde_json::json!({"id": 424242, "update": {}})])
        .await
        .expect_err("unknown id");
    assert_eq!(err.retry_class(), RetryClass::Permanent, "{err}");
    assert_eq!(cdf.emu.counters().total("POST files/update"), 1);
}

#[tokio::test]
async fn retry_after_is_honoured_by_the_quick_tier() {
    let cdf = strict_cdf().await;
    let client = client_with(
        &cdf,
        cdf_syncd::emulator::DEMO_CLIENT_SECRET,
        quick_retries(2),
        None,
    );
    cdf.emu.set_faults(Faults {
        api_429: 1.0,
        api_429_retry_after: Some(1),
        ..Faults::default()
    });
    let started = std::time::Instant::now();
    let err = client
        .files_by_ids(&[Identity::Id(1)])
        .await
        .expect_err("always 429");
    // Two retries, each after the one second CDF asked for.
    assert!(started.elapsed() >= Duration::from_secs(2), "{err}");
    assert_eq!(client.throttled_total(), 3);
}

#[tokio::test]
async fn max_requests_per_second_spaces_every_request() {
    let cdf = strict_cdf().await;
    let client = client_with(
        &cdf,
        cdf_syncd::emulator::DEMO_CLIENT_SECRET,
        quick_retries(0),
        Some(10),
    );
    let started = std::time::Instant::now();
    for _ in 0..11 {
        client
            .files_by_ids(&[Identity::Id(1)])
            .await
            .expect("byids");
    }
    // Eleven requests at ten per second need at least one second.
    assert!(started.elapsed() >= Duration::from_secs(1));
}

#[tokio::test]
async fn a_valid_token_outlives_a_token_endpoint_outage_until_it_expires() {
    let cdf = TestCdf::start(EmulatorConfig {
        strict_headers: true,
        token_lifetime: Duration::from_secs(8),
        ..EmulatorConfig::default()
    })
    .await;
    let client = client_for(&cdf, cdf_syncd::emulator::DEMO_CLIENT_SECRET);
    client
        .files_by_ids(&[Identity::Id(1)])
        .await
        .expect("byids");
    cdf.emu.set_faults(Faults {
        scripted: vec![ScriptedFault::new("token", 503, 10_000)],
        ..Faults::default()
    });
    // Past the refresh point (half of 8 s) the refresh fails; the token still works.
    crate::support::wait_until(15, "a call served by the cached token", || async {
        let ok = client.files_by_ids(&[Identity::Id(1)]).await.is_ok();
        ok && cdf.emu.counters().with_status("POST token", 503) >= 1
    })
    .await;
    // Once it has expired, the outage shows.
    crate::support::wait_until(15, "the expired token to be given up", || async {
        client.files_by_ids(&[Identity::Id(1)]).await.is_err()
    })
    .await;
    let err = client
        .files_by_ids(&[Identity::Id(1)])
        .await
        .expect_err("expired");
    assert!(err.to_string().contains("unavailable"), "{err}");
}
