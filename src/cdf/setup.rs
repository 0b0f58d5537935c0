//! Building a [`ClientConfig`] from the validated settings: the one place where the
//! configured secret reference is read.

use crate::auth::Credentials;
use crate::config::{AuthSettings, SecretError, Settings, read_secret_file};

use super::{ClientConfig, NetworkConfig};

impl ClientConfig {
    /// The client configuration for `settings`, reading secrets through `env`
    /// (`|name| std::env::var(name).ok()` in production).
    pub fn from_settings(
        settings: &Settings,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, SecretError> {
        let credentials = match &settings.cdf.auth {
            AuthSettings::ClientCredentials(cc) => Credentials::ClientCredentials {
                token_url: cc.token_url.clone(),
                client_id: cc.client_id.clone(),
                client_secret: cc.client_secret.read_with(env)?,
                scopes: cc.scopes.clone(),
                audience: cc.audience.clone(),
                resource: cc.resource.clone(),
            },
            AuthSettings::TokenFile(path) => Credentials::StaticToken(read_secret_file(path)?),
        };
        Ok(Self {
            base_url: settings.cdf.base_url.clone(),
            project: settings.cdf.project.clone(),
            credentials,
            request_timeout: settings.upload.request_timeout,
            put_timeout: settings.upload.part_timeout,
            retry: settings.upload.retry.into(),
            max_requests_per_second: settings.upload.max_requests_per_second,
            network: NetworkConfig {
                proxy: settings.cdf.proxy.clone(),
                ca_file: settings.cdf.ca_file.clone(),
                upload_url_host: settings.cdf.upload_url_host.clone(),
                max_rate: settings.upload.max_rate,
                max_rate_schedule: settings.upload.max_rate_schedule.clone(),
            },
        })
    }
}
