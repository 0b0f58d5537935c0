//! How the client reaches CDF through the site's network: the proxy, extra CA
//! certificates for a TLS-inspecting proxy, rewriting upload-URL hosts for Private
//! Link, and the bandwidth limit (`bandwidth.rs`).
//!
//! Proxy: `[cdf] proxy` for every request (API, token, upload URLs), with `NO_PROXY`
//! still honoured; without it, reqwest's environment proxies (`HTTPS_PROXY`,
//! `HTTP_PROXY`, `ALL_PROXY`, `NO_PROXY`, upper or lower case). CA file: every PEM
//! certificate in it is trusted in addition to the system's roots.

use std::path::{Path, PathBuf};
use std::time::Duration;

use reqwest::{Certificate, NoProxy, Proxy, Url};

use super::{CdfError, USER_AGENT};
use crate::config::schedule::RateSchedule;

/// `[cdf] proxy / ca_file / upload_url_host` and `[upload] max_rate(_schedule)`.
#[derive(Debug, Clone, Default)]
pub struct NetworkConfig {
    /// Explicit proxy; `None` uses the environment's.
    pub proxy: Option<Url>,
    /// PEM bundle of extra CA certificates.
    pub ca_file: Option<PathBuf>,
    /// `host` or `host:port` that replaces the authority of upload URLs.
    pub upload_url_host: Option<String>,
    /// Bytes per second across all PUT bodies outside scheduled windows.
    pub max_rate: Option<u64>,
    pub max_rate_schedule: RateSchedule,
}

/// The API client and the storage client (no redirects: GCS answers 308 without
/// Location), both with the proxy and CA settings.
pub(super) fn http_clients(
    config: &NetworkConfig,
) -> Result<(reqwest::Client, reqwest::Client), CdfError> {
    let certs = match &config.ca_file {
        Some(path) => load_ca_file(path)?,
        None => Vec::new(),
    };
    let build_err = |source| CdfError::Transport {
        endpoint: "client setup".to_owned(),
        source,
    };
    let proxy = match &config.proxy {
        Some(url) => Some(
            Proxy::all(url.as_str())
                .map_err(build_err)?
                .no_proxy(NoProxy::from_env()),
        ),
        None => None,
    };
    let builder = || {
        let mut b = reqwest::Client::builder()
            .user_agent(USER_AGENT)
            .connect_timeout(Duration::from_secs(15))
            .tcp_keepalive(Duration::from_secs(30));
        if let Some(proxy) = &proxy {
            b = b.proxy(proxy.clone());
        }
        if !certs.is_empty() {
            b = b.tls_certs_merge(certs.iter().cloned());
        }
        b
    };
    let ca_err = |source: reqwest::Error| match &config.ca_file {
        // With extra roots, a setup failure is about them (a PEM block that is no
        // certificate); name the file.
        Some(path) => CdfError::CaFile {
            path: path.clone(),
            reason: source.to_string(),
        },
        None => build_err(source),
    };
    let api = builder().build().map_err(ca_err)?;
    let storage = builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(ca_err)?;
    Ok((api, storage))
}

/// Reads every certificate of a PEM bundle. A small file read once at startup, next
/// to the secret file reads of `ClientConfig::from_settings`.
fn load_ca_file(path: &Path) -> Result<Vec<Certificate>, CdfError> {
    let err = |reason: String| CdfError::CaFile {
        path: path.to_owned(),
        reason,
    };
    let pem = std::fs::read(path).map_err(|e| err(format!("cannot read it: {e}")))?;
    parse_ca_pem(&pem).map_err(err)
}

fn parse_ca_pem(pem: &[u8]) -> Result<Vec<Certificate>, String> {
    let certs = Certificate::from_pem_bundle(pem).map_err(|e| format!("not a PEM bundle: {e}"))?;
    if certs.is_empty() {
        return Err("no PEM certificate (-----BEGIN CERTIFICATE-----) in it".to_owned());
    }
    Ok(certs)
}

/// Replaces the host, and the port when `authority` has one, of an upload URL.
pub(super) fn rewrite_upload_host(url: &mut Url, authority: &str) -> Result<(), CdfError> {
    let bad = |reason: String| CdfError::BadUploadUrl {
        url: url.to_string(),
        reason,
    };
    // A scheme without a default port, so that an explicit `:80` or `:443` is kept.
    let parsed = Url::parse(&format!("authority://{authority}/"))
        .map_err(|e| bad(format!("upload_url_host `{authority}`: {e}")))?;
    let host = parsed
        .host_str()
        .ok_or_else(|| bad(format!("upload_url_host `{authority}` has no host")))?;
    let port = parsed.port();
    let mut rewritten = url.clone();
    rewritten
        .set_host(Some(host))
        .map_err(|e| bad(format!("cannot set host `{host}`: {e}")))?;
    if port.is_some() {
        rewritten
            .set_port(port)
            .map_err(|()| bad(format!("cannot set the port of `{authority}`")))?;
    }
    *url = rewritten;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rewritten(url: &str, authority: &str) -> String {
        let mut u = Url::parse(url).unwrap();
        rewrite_upload_host(&mut u, authority).unwrap();
        u.to_string()
    }

    #[test]
    fn upload_hosts_are_rewritten_keeping_scheme_path_and_query() {
        assert_eq!(
            rewritten(
                "https://storage.googleapis.com/b/o?sig=a%2Fb&x=1",
                "files.privatelink.example"
            ),
            "https://files.privatelink.example/b/o?sig=a%2Fb&x=1"
        );
        // A port in upload_url_host replaces the URL's; without one the URL's stays.
        assert_eq!(
            rewritten("http://127.0.0.1:9000/up/1", "10.0.0.5:8443"),
            "http://10.0.0.5:8443/up/1"
        );
        assert_eq!(
            rewritten("http://127.0.0.1:9000/up/1", "10.0.0.5"),
            "http://10.0.0.5:9000/up/1"
        );
        assert_eq!(
            rewritten("https://a.example/x", "[fd00::1]:443"),
            "https://[fd00::1]/x"
        );
    }

    #[test]
    fn a_ca_file_without_certificates_is_refused() {
        assert!(parse_ca_pem(b"").is_err());
        assert!(parse_ca_pem(b"just text\n").is_err());
        let e = parse_ca_pem(b"-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----\n")
            .unwrap_err();
        assert!(e.contains("PEM"), "{e}");
    }

    #[test]
    fn an_unreadable_ca_file_is_named_in_the_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("corporate-ca.pem");
        let e = load_ca_file(&path).unwrap_err().to_string();
        assert!(
            e.contains("corporate-ca.pem") && e.contains("cannot read"),
            "{e}"
        );
        std::fs::write(&path, "no certificate here").unwrap();
        let config = NetworkConfig {
            ca_file: Some(path),
            ..NetworkConfig::default()
        };
        let e = http_clients(&config).unwrap_err().to_string();
        assert!(
            e.contains("corporate-ca.pem") && e.contains("no PEM"),
            "{e}"
        );
    }
}
