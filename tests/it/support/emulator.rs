//! Starting an in-process emulator and talking to it with raw HTTP, so that tests can
//! send exactly the requests a rule is about.

use cdf_syncd::emulator::{Emulator, EmulatorConfig};
use serde_json::Value;

/// A started emulator plus a client holding a valid access token.
pub struct TestCdf {
    pub emu: Emulator,
    pub http: reqwest::Client,
    pub token: String,
}

impl TestCdf {
    /// Starts an emulator with `config` (port 0) and fetches a token as the demo client.
    pub async fn start(config: EmulatorConfig) -> Self {
        let emu = Emulator::start(config).await.expect("emulator starts");
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client");
        let token = fetch_token(&http, &emu.token_url()).await;
        Self { emu, http, token }
    }

    /// The default (real) rules with a small minimum part size, for fast multipart tests.
    pub async fn small_parts() -> Self {
        Self::start(EmulatorConfig {
            min_part_size: 1024,
            ..EmulatorConfig::default()
        })
        .await
    }

    /// `{base}/api/v1/projects/{project}/{path}`.
    pub fn api(&self, path: &str) -> String {
        format!(
            "{}/api/v1/projects/{}/{path}",
            self.emu.base_url(),
            self.emu.project()
        )
    }

    /// POSTs JSON to an API path with the bearer token; returns status and body.
    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let resp = self
            .http
            .post(self.api(path))
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .await
            .expect("request");
        let status = resp.status().as_u16();
        let body = resp.json::<Value>().await.unwrap_or(Value::Null);
        (status, body)
    }

    /// GETs an inspection endpoint (`_emulator/faults`, `_emulator/files`, ...) as JSON.
    pub async fn inspect<T: serde::de::DeserializeOwned>(&self, path: &str) -> T {
        self.http
            .get(format!("{}/{path}", self.emu.base_url()))
            .send()
            .await
            .expect("inspect")
            .json()
            .await
            .expect("inspect json")
    }

    /// PUTs bytes to an upload URL with Content-Length and no other headers.
    pub async fn put(&self, url: &str, bytes: Vec<u8>) -> u16 {
        self.http
            .put(url)
            .body(bytes)
            .send()
            .await
            .expect("put")
            .status()
            .as_u16()
    }
}

/// Client-credentials token from the emulator's token endpoint, as the demo client.
pub async fn fetch_token(http: &reqwest::Client, token_url: &str) -> String {
    let resp: Value = http
        .post(token_url)
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", cdf_syncd::emulator::DEMO_CLIENT_ID),
            ("client_secret", cdf_syncd::emulator::DEMO_CLIENT_SECRET),
        ])
        .send()
        .await
        .expect("token request")
        .json()
        .await
        .expect("token json");
    resp["access_token"].as_str().unwrap_or_default().to_owned()
}

/// SHA-256 hex of bytes, to compare with the emulator's inspection view.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(bytes);
    digest.iter().map(|b| format!("{b:02x}")).collect()
}
