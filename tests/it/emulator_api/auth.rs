//! The token endpoint and the bearer / project checks.

use std::time::Duration;

use cdf_syncd::emulator::{DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, EmulatorConfig};
use serde_json::{Value, json};

use super::{assert_error, cdf, wait_for};
use crate::support::emulator::{TestCdf, fetch_token};

/// `POST files/list` with an optional bearer token, against `project`.
async fn list_as(cdf: &TestCdf, project: &str, token: Option<&str>) -> (u16, Value) {
    let url = format!(
        "{}/api/v1/projects/{project}/files/list",
        cdf.emu.base_url()
    );
    let mut req = cdf.http.post(url).json(&json!({}));
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    let resp = req.send().await.expect("request");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn token_request(cdf: &TestCdf, form: &[(&str, &str)]) -> (u16, Value) {
    let resp = cdf
        .http
        .post(cdf.emu.token_url())
        .form(form)
        .send()
        .await
        .expect("token request");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn a_request_without_a_token_is_401() {
    let cdf = cdf().await;
    let (status, body) = list_as(&cdf, cdf.emu.project(), None).await;
    assert_error(status, &body, 401);
    let (status, body) = list_as(&cdf, cdf.emu.project(), Some(&cdf.token)).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn an_unknown_token_is_401() {
    let cdf = cdf().await;
    let (status, body) = list_as(&cdf, cdf.emu.project(), Some("not-a-token")).await;
    assert_error(status, &body, 401);
}

#[tokio::test]
async fn an_expired_token_is_401() {
    let cdf = TestCdf::start(EmulatorConfig {
        token_lifetime: Duration::from_secs(2),
        ..EmulatorConfig::default()
    })
    .await;
    let project = cdf.emu.project().to_owned();
    assert_eq!(list_as(&cdf, &project, Some(&cdf.token)).await.0, 200);
    wait_for(Duration::from_secs(10), || async {
        list_as(&cdf, &project, Some(&cdf.token)).await.0 == 401
    })
    .await;
    let (status, body) = list_as(&cdf, &project, Some(&cdf.token)).await;
    assert_error(status, &body, 401);
    // A fresh token works again.
    let fresh = fetch_token(&cdf.http, &cdf.emu.token_url()).await;
    assert_eq!(list_as(&cdf, &project, Some(&fresh)).await.0, 200);
}

#[tokio::test]
async fn a_project_that_does_not_exist_is_403() {
    let cdf = cdf().await;
    let (status, body) = list_as(&cdf, "other-project", Some(&cdf.token)).await;
    assert_error(status, &body, 403);
    // Auth comes first: no token for a wrong project is still 401.
    let (status, body) = list_as(&cdf, "other-project", None).await;
    assert_error(status, &body, 401);
}

#[tokio::test]
async fn the_token_endpoint_rejects_a_wrong_client_or_secret() {
    let cdf = cdf().await;
    for (id, secret) in [(DEMO_CLIENT_ID, "wrong"), ("nobody", DEMO_CLIENT_SECRET)] {
        let form = [
            ("grant_type", "client_credentials"),
            ("client_id", id),
            ("client_secret", secret),
        ];
        let (status, body) = token_request(&cdf, &form).await;
        assert_eq!(status, 401, "{body}");
        assert_eq!(body["error"], "invalid_client");
        assert!(body["error_description"].is_string());
    }
    let issued_before = cdf.emu.counters().tokens_issued;
    let form = [
        ("grant_type", "client_credentials"),
        ("client_id", DEMO_CLIENT_ID),
    ];
    assert_eq!(token_request(&cdf, &form).await.0, 401, "a missing secret");
    assert_eq!(cdf.emu.counters().tokens_issued, issued_before);
}

#[tokio::test]
async fn the_token_endpoint_needs_the_client_credentials_grant() {
    let cdf = cdf().await;
    let creds = [
        ("client_id", DEMO_CLIENT_ID),
        ("client_secret", DEMO_CLIENT_SECRET),
    ];
    let (status, body) = token_request(&cdf, &creds).await;
    assert_eq!(
        (status, body["error"].clone()),
        (400, json!("unsupported_grant_type"))
    );
    let mut form = creds.to_vec();
    form.push(("grant_type", "password"));
    let (status, body) = token_request(&cdf, &form).await;
    assert_eq!(
        (status, body["error"].clone()),
        (400, json!("unsupported_grant_type"))
    );
}

#[tokio::test]
async fn the_token_endpoint_issues_bearer_tokens_with_their_lifetime() {
    let cdf = cdf().await;
    let form = [
        ("grant_type", "client_credentials"),
        ("client_id", DEMO_CLIENT_ID),
        ("client_secret", DEMO_CLIENT_SECRET),
        ("scope", "https://demo.cognitedata.com/.default"),
        ("audience", "https://demo.cognitedata.com"),
    ];
    let (status, body) = token_request(&cdf, &form).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 3600);
    let token = body["access_token"].as_str().expect("access_token");
    assert_eq!(list_as(&cdf, cdf.emu.project(), Some(token)).await.0, 200);
}

#[tokio::test]
async fn the_token_endpoint_accepts_http_basic_client_auth() {
    let cdf = cdf().await;
    let resp = cdf
        .http
        .post(cdf.emu.token_url())
        .basic_auth(DEMO_CLIENT_ID, Some(DEMO_CLIENT_SECRET))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .expect("token request");
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.expect("json");
    let token = body["access_token"].as_str().expect("access_token");
    assert_eq!(list_as(&cdf, cdf.emu.project(), Some(token)).await.0, 200);
    let resp = cdf
        .http
        .post(cdf.emu.token_url())
        .basic_auth(DEMO_CLIENT_ID, Some("wrong"))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .expect("token request");
    assert_eq!(resp.status(), 401);
}

#[tokio::test]
async fn token_inspect_lists_the_projects_for_a_valid_token() {
    let cdf = cdf().await;
    let url = format!("{}/api/v1/token/inspect", cdf.emu.base_url());
    let resp = cdf.http.get(&url).send().await.expect("inspect");
    assert_eq!(resp.status(), 401);
    let resp = cdf
        .http
        .get(&url)
        .bearer_auth(&cdf.token)
        .send()
        .await
        .expect("inspect");
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.expect("json");
    assert_eq!(body["projects"][0]["projectUrlName"], cdf.emu.project());
    assert!(body["subject"].is_string() && body["capabilities"].is_array());
}
