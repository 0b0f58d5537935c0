//! Access tokens for CDF: OAuth2 client credentials against the configured token URL,
//! or a static token (testing).
//!
//! The token is cached and refreshed ahead of expiry; a `tokio::sync::Mutex` around the
//! cache means one refresh at a time however many workers ask. After a 401 the caller
//! invalidates the token it used, and the next `token()` fetches a new one. Secrets
//! (the client secret, the token) only ever travel as [`Secret`].

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use reqwest::Url;
use serde::Deserialize;

use crate::secret::Secret;
use crate::transport_error::describe;

/// How cdf-syncd authenticates.
#[derive(Debug, Clone)]
pub enum Credentials {
    ClientCredentials {
        token_url: Url,
        client_id: String,
        client_secret: Secret,
        scopes: Vec<String>,
        audience: Option<String>,
        resource: Option<String>,
    },
    /// A fixed bearer token (for tests and short manual runs).
    StaticToken(Secret),
}

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// The identity provider refused the credentials: an operator must act.
    #[error(
        "the token endpoint {token_url} rejected the client credentials (HTTP {status}): {description}"
    )]
    Rejected {
        token_url: Url,
        status: u16,
        description: String,
    },
    /// The token endpoint failed or could not be reached: worth retrying.
    #[error("the token endpoint {token_url} is unavailable: {reason}")]
    Unavailable { token_url: Url, reason: String },
    /// The token endpoint answered something that is not a token.
    #[error("the token endpoint {token_url} sent an unusable reply: {reason}")]
    BadReply { token_url: Url, reason: String },
}

impl AuthError {
    /// Whether waiting and retrying can help (as opposed to fixing the credentials).
    pub fn is_transient(&self) -> bool {
        matches!(self, AuthError::Unavailable { .. })
    }
}

#[derive(Debug)]
struct CachedToken {
    token: Secret,
    /// When to get a new one: the expiry minus a safety margin.
    refresh_at: Instant,
    /// When it stops working (minus a little for clock skew and transit).
    usable_until: Instant,
}

/// Hands out valid access tokens.
#[derive(Debug)]
pub struct TokenProvider {
    http: reqwest::Client,
    credentials: Credentials,
    cache: tokio::sync::Mutex<Option<CachedToken>>,
    /// Tokens fetched, and fetches that failed (for metrics).
    fetched: AtomicU64,
    fetch_failures: AtomicU64,
}

/// The token endpoint's reply; `expires_in` may be a number or a string.
#[derive(Debug, Deserialize)]
struct TokenReply {
    access_token: String,
    #[serde(default)]
    expires_in: Option<serde_json::Value>,
}

/// Assumed lifetime when the token endpoint does not say.
const DEFAULT_LIFETIME: Duration = Duration::from_secs(3600);
/// Refresh this long before expiry at most (half the lifetime for short-lived tokens).
const REFRESH_MARGIN: Duration = Duration::from_secs(60);
/// A token is not used in its last moments (clock skew, a request in transit).
const EXPIRY_SLACK: Duration = Duration::from_secs(5);
/// After a failed refresh, the cached token is used this long before trying again.
const REFRESH_RETRY: Duration = Duration::from_secs(5);

impl TokenProvider {
    pub fn new(http: reqwest::Client, credentials: Credentials) -> Self {
        Self {
            http,
            credentials,
            cache: tokio::sync::Mutex::new(None),
            fetched: AtomicU64::new(0),
            fetch_failures: AtomicU64::new(0),
        }
    }

    /// A token valid for at least the refresh margin, or, while the token endpoint
    /// is unavailable, the cached token for as long as it still works.
    pub async fn token(&self) -> Result<Secret, AuthError> {
        let mut cache = self.cache.lock().await;
        let now = Instant::now();
        if let Some(cached) = cache.as_mut()
            && now < cached.refresh_at
        {
            return Ok(cached.token.clone());
        }
        let fetched = self.fetch().await;
        let counter = match &fetched {
            Ok(_) => &self.fetched,
            Err(_) => &self.fetch_failures,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        match fetched {
            Ok(fresh) => {
                let token = fresh.token.clone();
                *cache = Some(fresh);
                Ok(token)
            }
            Err(e) if e.is_transient() => match cache.as_mut() {
                Some(cached) if now < cached.usable_until => {
                    tracing::warn!(error = %e, valid_for = ?cached.usable_until - now,
                        "cannot refresh the access token; using the current one while it is valid");
                    // Ask again in a while, not on every call.
                    cached.refresh_at = (now + REFRESH_RETRY).min(cached.usable_until);
                    Ok(cached.token.clone())
                }
                _ => Err(e),
            },
            Err(e) => Err(e),
        }
    }

    /// Tokens fetched and fetches that failed, since start.
    pub fn refreshes(&self) -> (u64, u64) {
        (
            self.fetched.load(Ordering::Relaxed),
            self.fetch_failures.load(Ordering::Relaxed),
        )
    }

    /// Forgets `used` after CDF answered 401 to it (unless it was already replaced).
    pub async fn invalidate(&self, used: &Secret) {
        let mut cache = self.cache.lock().await;
        if cache.as_ref().is_some_and(|c| &c.token == used) {
            *cache = None;
        }
    }

    async fn fetch(&self) -> Result<CachedToken, AuthError> {
        match &self.credentials {
            Credentials::StaticToken(token) => {
                let forever = Instant::now() + Duration::from_secs(365 * 24 * 3600);
                Ok(CachedToken {
                    token: token.clone(),
                    refresh_at: forever,
                    usable_until: forever,
                })
            }
            Credentials::ClientCredentials {
                token_url,
                client_id,
                client_secret,
                scopes,
                audience,
                resource,
            } => {
                let mut form = vec![
                    ("grant_type", "client_credentials".to_owned()),
                    ("client_id", client_id.clone()),
                    ("client_secret", client_secret.expose().to_owned()),
                ];
                if !scopes.is_empty() {
                    form.push(("scope", scopes.join(" ")));
                }
                if let Some(a) = audience {
                    form.push(("audience", a.clone()));
                }
                if let Some(r) = resource {
                    form.push(("resource", r.clone()));
                }
                self.request(token_url, &form).await
            }
        }
    }

    async fn request(
        &self,
        token_url: &Url,
        form: &[(&str, String)],
    ) -> Result<CachedToken, AuthError> {
        let unavailable = |reason: String| AuthError::Unavailable {
            token_url: token_url.clone(),
            reason,
        };
        let resp = self
            .http
            .post(token_url.clone())
            .form(form)
            .send()
            .await
            .map_err(|e| unavailable(describe(&e)))?;
        let status = resp.status();
        let body = resp.text().await.map_err(|e| unavailable(describe(&e)))?;
        if status.is_server_error() || status.as_u16() == 429 || status.as_u16() == 408 {
            return Err(unavailable(format!("HTTP {status}")));
        }
        if !status.is_success() {
            return Err(AuthError::Rejected {
                token_url: token_url.clone(),
                status: status.as_u16(),
                description: oauth_error_description(&body),
            });
        }
        let reply: TokenReply = serde_json::from_str(&body).map_err(|e| AuthError::BadReply {
            token_url: token_url.clone(),
            reason: e.to_string(),
        })?;
        let lifetime = reply
            .expires_in
            .as_ref()
            .and_then(parse_expires_in)
            .unwrap_or(DEFAULT_LIFETIME);
        let margin = REFRESH_MARGIN.min(lifetime / 2);
        let now = Instant::now();
        Ok(CachedToken {
            token: Secret::new(reply.access_token),
            refresh_at: now + lifetime - margin,
            usable_until: now + lifetime.saturating_sub(EXPIRY_SLACK.min(lifetime / 4)),
        })
    }
}

/// `expires_in` as seconds, from a JSON number or numeric string.
fn parse_expires_in(v: &serde_json::Value) -> Option<Duration> {
    let secs = match v {
        serde_json::Value::Number(n) => n.as_u64(),
        serde_json::Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }?;
    Some(Duration::from_secs(secs))
}

/// A short, secret-free description of an OAuth2 error body.
fn oauth_error_description(body: &str) -> String {
    let parsed: Option<serde_json::Value> = serde_json::from_str(body).ok();
    let field = |k: &str| {
        parsed
            .as_ref()
            .and_then(|v| v.get(k))
            .and_then(|v| v.as_str())
            .map(str::to_owned)
    };
    match (field("error"), field("error_description")) {
        (Some(e), Some(d)) => format!("{e}: {d}"),
        (Some(e), None) => e,
        _ => "no OAuth2 error in the reply".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expires_in_accepts_numbers_and_strings() {
        assert_eq!(
            parse_expires_in(&serde_json::json!(3599)),
            Some(Duration::from_secs(3599))
        );
        assert_eq!(
            parse_expires_in(&serde_json::json!("60")),
            Some(Duration::from_secs(60))
        );
        assert_eq!(parse_expires_in(&serde_json::json!("soon")), None);
    }

    #[test]
    fn oauth_errors_are_summarised() {
        assert_eq!(
            oauth_error_description(
                r#"{"error":"invalid_client","error_description":"bad secret"}"#
            ),
            "invalid_client: bad secret"
        );
        assert_eq!(
            oauth_error_description("<html>"),
            "no OAuth2 error in the reply"
        );
    }
}
