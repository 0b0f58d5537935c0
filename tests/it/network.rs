//! The client on the site's network: the bandwidth limit (a lower bound on the time a
//! PUT takes; accuracy is measured by `bench/rate_limit.sh`), a configured proxy
//! carrying every request, upload URLs sent to the `upload_url_host`, and a bad CA
//! file refused by name. The proxy and the relay are a few lines of TCP in this file,
//! on 127.0.0.1.
//!
//! Over TLS (`support/tls.rs`: a test CA and an https front for the emulator at
//! `https://localhost:<port>`, whose upload URLs point at the front too): the real
//! binary's sync through a CONNECT proxy (`[cdf] proxy`, or `HTTPS_PROXY` with
//! `NO_PROXY` bypassing it), trusting the front only through `[cdf] ca_file`; without
//! it the handshake fails with a certificate error and the files stay queued.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cdf_syncd::auth::Credentials;
use cdf_syncd::cdf::{CdfClient, ClientConfig, FileCreate, NetworkConfig, PutKind, RetryPolicy};
use cdf_syncd::emulator::{DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, Emulator, EmulatorConfig};
use cdf_syncd::secret::Secret;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::support::daemon::{Tree, pattern, terminate};
use crate::support::emulator::sha256_hex;
use crate::support::tls::TlsFront;

fn client(emu: &Emulator, network: NetworkConfig) -> Result<CdfClient, cdf_syncd::cdf::CdfError> {
    CdfClient::new(ClientConfig {
        base_url: emu.base_url().parse().expect("url"),
        project: emu.project().to_owned(),
        credentials: Credentials::ClientCredentials {
            token_url: emu.token_url().parse().expect("url"),
            client_id: DEMO_CLIENT_ID.to_owned(),
            client_secret: Secret::new(DEMO_CLIENT_SECRET),
            scopes: vec!["user_impersonation".to_owned()],
            audience: None,
            resource: None,
        },
        request_timeout: Duration::from_secs(10),
        put_timeout: Duration::from_secs(60),
        retry: RetryPolicy {
            max_retries: 0,
            ..RetryPolicy::default()
        },
        max_requests_per_second: None,
        network,
    })
}

/// Creates a file and PUTs `path` to its upload URL; waits until the emulator holds
/// all `len` bytes.
async fn upload(emu: &Emulator, client: &CdfClient, name: &str, path: &Path, len: u64) {
    let mime = "application/octet-stream".to_owned();
    let file = FileCreate {
        name: name.to_owned(),
        external_id: Some(name.to_owned()),
        mime_type: Some(mime.clone()),
        ..FileCreate::default()
    };
    let created = client.create_file(&file, false).await.expect("create");
    let kind = PutKind::Single { mime_type: mime };
    client
        .put(&created.upload_url, path, 0, len, &kind)
        .await
        .expect("put");
    crate::support::daemon::wait_for(10, &format!("{name}: {len} bytes in the emulator"), || {
        emu.files()
            .into_iter()
            .find(|f| f.external_id.as_deref() == Some(name))
            .and_then(|f| f.size)
            == Some(len)
    })
    .await;
}

fn sample(dir: &Path, len: u64) -> std::path::PathBuf {
    let path = dir.join("sample.bin");
    let bytes: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(&path, bytes).expect("write sample");
    path
}

#[tokio::test]
async fn max_rate_bounds_upload_time_from_below() {
    let emu = Emulator::start(EmulatorConfig::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (len, rate) = (1536 * 1024, 512 * 1024);
    let path = sample(dir.path(), len);
    let client = client(
        &emu,
        NetworkConfig {
            max_rate: Some(rate),
            ..NetworkConfig::default()
        },
    )
    .unwrap();
    assert_eq!(client.bandwidth().current_rate(), Some(rate));
    let started = Instant::now();
    upload(&emu, &client, "limited", &path, len).await;
    // Everything past the initial burst is paid for at `rate`.
    let burst = cdf_syncd::cdf::bandwidth::burst(rate);
    let floor = Duration::from_secs_f64((len - burst) as f64 / rate as f64);
    let took = started.elapsed();
    assert!(took >= floor, "took {took:?}, floor {floor:?}");
    assert_eq!(client.bandwidth().active_transfers(), 0);
}

/// A TCP relay to `target` that records the first line of each connection. As an
/// HTTP proxy it answers `CONNECT host:port` by tunnelling to that host (loopback
/// addresses only; anything else gets 403); absolute-form requests (`GET
/// http://host/...`, what a client sends a proxy for http:// URLs) are passed to
/// `target` as they are, which the emulator's HTTP server accepts.
struct Relay {
    addr: SocketAddr,
    first_lines: Arc<Mutex<Vec<String>>>,
}

impl Relay {
    async fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let first_lines = Arc::new(Mutex::new(Vec::new()));
        let lines = Arc::clone(&first_lines);
        tokio::spawn(async move {
            while let Ok((conn, _)) = listener.accept().await {
                tokio::spawn(relay(conn, target, Arc::clone(&lines)));
            }
        });
        Self { addr, first_lines }
    }

    fn lines(&self) -> Vec<String> {
        self.first_lines.lock().unwrap().clone()
    }

    /// The `host:port` of every CONNECT request.
    fn connects(&self) -> Vec<String> {
        let lines = self.lines();
        let targets = lines.iter().filter_map(|l| l.strip_prefix("CONNECT "));
        targets
            .map(|t| t.split(' ').next().unwrap_or_default().to_owned())
            .collect()
    }
}

/// A loopback address of `host:port` that accepts a connection.
async fn connect_loopback(authority: &str) -> Option<TcpStream> {
    let addrs = tokio::net::lookup_host(authority).await.ok()?;
    for addr in addrs.filter(|a| a.ip().is_loopback()) {
        if let Ok(stream) = TcpStream::connect(addr).await {
            return Some(stream);
        }
    }
    None
}

async fn relay(mut conn: TcpStream, target: SocketAddr, lines: Arc<Mutex<Vec<String>>>) {
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match conn.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    let text = String::from_utf8_lossy(&head);
    let first = text.lines().next().unwrap_or_default().to_owned();
    lines.lock().unwrap().push(first.clone());
    if let Some(authority) = first.strip_prefix("CONNECT ") {
        let authority = authority.split(' ').next().unwrap_or_default();
        let Some(mut upstream) = connect_loopback(authority).await else {
            let _ = conn.write_all(b"HTTP/1.1 403 Forbidden\r\n\r\n").await;
            return;
        };
        let end = head.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        if conn
            .write_all(b"HTTP/1.1 200 Connection Established\r\n\r\n")
            .await
            .is_err()
            || upstream.write_all(&head[end..]).await.is_err()
        {
            return;
        }
        let _ = tokio::io::copy_bidirectional(&mut conn, &mut upstream).await;
        return;
    }
    let Ok(mut upstream) = TcpStream::connect(target).await else {
        return;
    };
    if upstream.write_all(&head).await.is_err() {
        return;
    }
    let _ = tokio::io::copy_bidirectional(&mut conn, &mut upstream).await;
}

#[tokio::test]
async fn the_configured_proxy_carries_api_calls_token_and_puts() {
    let emu = Emulator::start(EmulatorConfig::default()).await.unwrap();
    let proxy = Relay::start(emu.addr()).await;
    let dir = tempfile::tempdir().unwrap();
    let len = 200 * 1024;
    let path = sample(dir.path(), len);
    let client = client(
        &emu,
        NetworkConfig {
            proxy: Some(format!("http://{}", proxy.addr).parse().unwrap()),
            ..NetworkConfig::default()
        },
    )
    .unwrap();
    upload(&emu, &client, "proxied", &path, len).await;
    let lines = proxy.lines();
    let base = emu.base_url();
    // The API client (token, then files) and the storage client each opened a
    // connection to the proxy and sent absolute-form requests.
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with(&format!("POST {base}/"))),
        "{lines:?}"
    );
    assert!(
        lines.iter().any(|l| l.starts_with(&format!("PUT {base}/"))),
        "{lines:?}"
    );
}

#[tokio::test]
async fn upload_urls_go_to_the_upload_url_host() {
    let emu = Emulator::start(EmulatorConfig::default()).await.unwrap();
    let private_link = Relay::start(emu.addr()).await;
    let dir = tempfile::tempdir().unwrap();
    let len = 100 * 1024;
    let path = sample(dir.path(), len);
    let client = client(
        &emu,
        NetworkConfig {
            upload_url_host: Some(private_link.addr.to_string()),
            ..NetworkConfig::default()
        },
    )
    .unwrap();
    upload(&emu, &client, "private-link", &path, len).await;
    let lines = private_link.lines();
    // Only the PUT went to the rewritten host; API calls went to the base URL.
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].starts_with("PUT /"), "{lines:?}");
}

#[tokio::test]
async fn a_bad_ca_file_is_refused_by_name() {
    let emu = Emulator::start(EmulatorConfig::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing-ca.pem");
    let network = |ca: &Path| NetworkConfig {
        ca_file: Some(ca.to_owned()),
        ..NetworkConfig::default()
    };
    let e = client(&emu, network(&missing)).unwrap_err().to_string();
    assert!(
        e.contains("missing-ca.pem") && e.contains("cannot read"),
        "{e}"
    );
    let garbage = dir.path().join("garbage-ca.pem");
    std::fs::write(
        &garbage,
        "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let e = client(&emu, network(&garbage)).unwrap_err().to_string();
    assert!(e.contains("garbage-ca.pem"), "{e}");
}

/// Without `[cdf] proxy`, the environment's proxy applies (`HTTP_PROXY` here, as the
/// emulator is http://; `HTTPS_PROXY` is the same code path for https:// URLs), for the
/// real binary's whole sync.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_once_honours_the_environment_proxy() {
    let tree = crate::support::daemon::Tree::new("").await;
    let proxy = Relay::start(tree.cdf.emu.addr()).await;
    let bytes = crate::support::daemon::pattern(150 * 1024, 9);
    tree.write("via-proxy.bin", &bytes);
    let proxy_var = format!("HTTP_PROXY=http://{}", proxy.addr);
    let wrapper = [
        "env",
        "-u",
        "NO_PROXY",
        "-u",
        "no_proxy",
        "-u",
        "http_proxy",
    ];
    let wrapper: Vec<&str> = wrapper.into_iter().chain([proxy_var.as_str()]).collect();
    let (ok, out) = tree.sync_once_wrapped(&wrapper).await;
    assert!(ok, "sync failed: {out}");
    let held = tree.held("gw:it:/via-proxy.bin");
    assert_eq!(held.size, Some(bytes.len() as u64));
    let lines = proxy.lines();
    let base = tree.cdf.emu.base_url();
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with(&format!("POST {base}/"))),
        "{lines:?}"
    );
    assert!(
        lines.iter().any(|l| l.starts_with(&format!("PUT {base}/"))),
        "{lines:?}"
    );
}

/// Points `t`'s configuration at `front` (https; plain http refused, so CDF's 5 MiB
/// minimum part size) with `cdf_extra` lines in `[cdf]`.
fn over_tls(t: &Tree, front: &TlsFront, cdf_extra: &str) {
    let text = std::fs::read_to_string(&t.config).unwrap();
    let replaced = text
        .replace(&t.cdf.emu.base_url(), &front.base_url)
        .replace(
            "allow_insecure_http = true",
            &format!("allow_insecure_http = false\n{cdf_extra}"),
        )
        .replace("part_size = \"64 KiB\"", "part_size = \"5 MiB\"");
    assert!(
        replaced.contains("allow_insecure_http = false") && replaced.contains("5 MiB"),
        "{replaced}"
    );
    let base = format!("base_url = \"{}\"", front.base_url);
    assert!(replaced.contains(&base), "{replaced}");
    std::fs::write(&t.config, replaced).unwrap();
}

/// `env` with the proxy variables of this environment removed, then `vars` set: a
/// wrapper for [`Tree::sync_once_wrapped`].
fn proxy_env(vars: &[String]) -> Vec<String> {
    let mut argv = vec!["env".to_owned()];
    for name in ["HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY", "NO_PROXY"] {
        for n in [name.to_owned(), name.to_lowercase()] {
            argv.extend(["-u".to_owned(), n]);
        }
    }
    argv.extend(vars.iter().cloned());
    argv
}

async fn sync_with_env(t: &Tree, vars: &[String]) -> (bool, String) {
    let wrapper = proxy_env(vars);
    let wrapper: Vec<&str> = wrapper.iter().map(String::as_str).collect();
    t.sync_once_wrapped(&wrapper).await
}

/// A single-part file and a two-part one (the parts are 5 MiB over https).
fn write_samples(t: &Tree) -> Vec<(&'static str, Vec<u8>)> {
    let files = vec![
        ("small.bin", pattern(100 * 1024, 3)),
        ("large.bin", pattern(5 * 1024 * 1024 + 300 * 1024, 4)),
    ];
    for (name, bytes) in &files {
        t.write(name, bytes);
    }
    files
}

fn assert_synced(t: &Tree, files: &[(&str, Vec<u8>)]) {
    for (name, bytes) in files {
        let held = t.held(&format!("gw:it:/{name}"));
        assert_eq!(
            held.sha256.as_deref(),
            Some(sha256_hex(bytes).as_str()),
            "{name}"
        );
    }
}

/// The token request, the API calls and the content PUTs (single and multipart) all
/// reached the emulator through the TLS front.
fn assert_all_over_tls(front: &TlsFront) {
    let served = front.requests();
    for (what, prefix) in [
        ("the token request", "POST /oauth2/token"),
        ("a file create", "POST /api/v1/projects/"),
        ("a single-part PUT", "PUT /upload/"),
        ("a multipart part PUT", "PUT /upload/"),
    ] {
        assert!(
            served.iter().any(|r| r.starts_with(prefix)),
            "{what} not over TLS: {served:?}"
        );
    }
    assert!(
        served
            .iter()
            .any(|r| r.starts_with("PUT /upload/") && r.contains("/parts/")),
        "{served:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_over_https_through_the_configured_connect_proxy() {
    let t = Tree::new("").await;
    let front = TlsFront::start(&t.cdf.emu.base_url()).await;
    let proxy = Relay::start(t.cdf.emu.addr()).await;
    let ca = front.ca_file(t.dir.path());
    let extra = format!(
        "ca_file = \"{}\"\nproxy = \"http://{}\"",
        ca.display(),
        proxy.addr
    );
    over_tls(&t, &front, &extra);
    let files = write_samples(&t);
    let (ok, out) = sync_with_env(&t, &[]).await;
    assert!(ok, "sync failed: {out}");
    assert_synced(&t, &files);
    assert_all_over_tls(&front);
    // Every connection (the API client's and the storage client's) was a tunnel to
    // the https front, nothing went to the proxy in the clear.
    let authority = format!("localhost:{}", front.addr.port());
    let (lines, connects) = (proxy.lines(), proxy.connects());
    assert!(connects.len() >= 2, "{lines:?}");
    assert!(connects.iter().all(|c| *c == authority), "{lines:?}");
    assert_eq!(lines.len(), connects.len(), "{lines:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_proxy_from_the_environment_and_no_proxy_bypassing_it() {
    let t = Tree::new("").await;
    let front = TlsFront::start(&t.cdf.emu.base_url()).await;
    let proxy = Relay::start(t.cdf.emu.addr()).await;
    let ca = front.ca_file(t.dir.path());
    over_tls(&t, &front, &format!("ca_file = \"{}\"", ca.display()));
    let https_proxy = format!("HTTPS_PROXY=http://{}", proxy.addr);
    t.write("first.bin", &pattern(80 * 1024, 5));
    let (ok, out) = sync_with_env(&t, std::slice::from_ref(&https_proxy)).await;
    assert!(ok, "sync failed: {out}");
    assert_synced(&t, &[("first.bin", pattern(80 * 1024, 5))]);
    let authority = format!("localhost:{}", front.addr.port());
    let (lines, connects) = (proxy.lines(), proxy.connects());
    assert!(!connects.is_empty(), "{lines:?}");
    assert!(connects.iter().all(|c| *c == authority), "{lines:?}");
    assert_eq!(lines.len(), connects.len(), "{lines:?}");

    // NO_PROXY names the host: straight to it, the proxy sees nothing more.
    let seen = lines.len();
    let served = front.requests().len();
    t.write("second.bin", &pattern(90 * 1024, 6));
    let vars = [https_proxy, "NO_PROXY=localhost".to_owned()];
    let (ok, out) = sync_with_env(&t, &vars).await;
    assert!(ok, "sync failed: {out}");
    assert_synced(&t, &[("second.bin", pattern(90 * 1024, 6))]);
    assert_eq!(proxy.lines().len(), seen, "{:?}", proxy.lines());
    assert!(front.requests().len() > served, "still over TLS");
}

/// Without `[cdf] ca_file` the front's certificate is not trusted: `sync --once` gives
/// up with the certificate named and the file still queued, the daemon pauses as "CDF
/// unreachable" with the same explanation in `status`; with the CA file added the
/// same queued file is uploaded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untrusted_certificate_is_named_and_the_files_stay_queued() {
    let t = Tree::new("").await;
    let front = TlsFront::start(&t.cdf.emu.base_url()).await;
    over_tls(&t, &front, "");
    let bytes = pattern(80 * 1024, 7);
    t.write("waiting.bin", &bytes);
    let (ok, out) = sync_with_env(&t, &[]).await;
    assert!(!ok, "{out}");
    for needle in [
        "certificate is not trusted (invalid peer certificate: UnknownIssuer)",
        "[cdf] ca_file",
        "the queued files stay queued",
    ] {
        assert!(out.contains(needle), "{needle:?} in {out}");
    }
    assert!(!out.contains("panicked"), "{out}");
    assert!(t.cdf.emu.files().is_empty(), "nothing reached CDF");
    assert!(front.requests().is_empty(), "no request got through");

    let daemon = t.start_daemon_env(0, &proxy_vars_removed());
    // Only then `status`: one that reads the store offline while the daemon starts
    // holds the store's lock at that moment.
    let socket = t.state_dir().join("admin.sock");
    crate::support::daemon::wait_for(30, "the daemon's admin socket", || socket.exists()).await;
    let last = std::cell::RefCell::new(serde_json::Value::Null);
    let shown = crate::support::poll_until(
        std::time::Duration::from_secs(30),
        std::time::Duration::from_millis(50),
        || async {
            let out = t.cli(&["status", "--json"]).await;
            let doc: serde_json::Value = serde_json::from_str(&out.stdout).unwrap_or_default();
            let connection = &doc["daemon"]["connection"];
            let shown = connection["state"] == "unreachable"
                && connection["detail"]
                    .as_str()
                    .is_some_and(|d| d.contains("certificate is not trusted"))
                && doc["counts"]["queued"] == 1;
            *last.borrow_mut() = doc;
            shown
        },
    )
    .await;
    assert!(
        shown,
        "status shows the certificate error: {:#}\n{}",
        last.borrow(),
        t.daemon_log(0)
    );
    assert!(terminate(daemon).await.success(), "{}", t.daemon_log(0));
    let log = t.daemon_log(0);
    assert!(!log.contains("panicked"), "{log}");
    assert!(
        log.lines()
            .any(|l| l.contains("ERROR") && l.contains("pipeline paused") && l.contains("ca_file")),
        "an untrusted certificate needs an operator: an ERROR naming ca_file\n{log}"
    );

    let ca = front.ca_file(t.dir.path());
    let text = std::fs::read_to_string(&t.config).unwrap().replace(
        "allow_insecure_http = false",
        &format!(
            "allow_insecure_http = false\nca_file = \"{}\"",
            ca.display()
        ),
    );
    std::fs::write(&t.config, text).unwrap();
    let (ok, out) = sync_with_env(&t, &[]).await;
    assert!(ok, "sync failed: {out}");
    assert_synced(&t, &[("waiting.bin", bytes)]);
}

/// The environment's proxy variables, emptied (for a daemon started with extra
/// variables: an empty value counts as unset).
fn proxy_vars_removed() -> Vec<(&'static str, &'static str)> {
    [
        "HTTPS_PROXY",
        "https_proxy",
        "HTTP_PROXY",
        "http_proxy",
        "ALL_PROXY",
        "all_proxy",
        "NO_PROXY",
        "no_proxy",
    ]
    .into_iter()
    .map(|name| (name, ""))
    .collect()
}
