//! A test-only TLS front for the emulator (which speaks plain http): a throwaway CA
//! and a server certificate for `localhost` / 127.0.0.1 made with rcgen, and a
//! tokio-rustls terminator on 127.0.0.1 that serves `https://localhost:<port>` by
//! forwarding each decrypted request to the emulator.
//!
//! It forwards per request (hyper in, reqwest out) rather than raw bytes so that it
//! can rewrite the emulator's own base URL (`http://127.0.0.1:<emulator port>`) in
//! replies to `https://localhost:<port>`: the upload URLs in CDF's replies then point
//! at the front too, and the PUTs go over TLS (and through a proxy's CONNECT) like
//! the API calls and the token request. Every request it served is recorded.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// The running front.
pub struct TlsFront {
    pub addr: SocketAddr,
    /// `https://localhost:<port>`.
    pub base_url: String,
    /// The test CA's certificate (PEM), written next to the tree by [`TlsFront::ca_file`].
    pub ca_pem: String,
    /// `METHOD /path` of every request served, in order.
    requests: Arc<Mutex<Vec<String>>>,
}

/// What each connection needs.
struct Forward {
    http: reqwest::Client,
    /// `http://127.0.0.1:<emulator port>`.
    upstream: String,
    /// The front's own base URL, put in place of `upstream` in reply bodies.
    public: String,
    requests: Arc<Mutex<Vec<String>>>,
}

impl TlsFront {
    /// Starts a front for the emulator at `upstream` (its base URL).
    pub async fn start(upstream: &str) -> Self {
        let (ca_pem, chain, key) = certificates();
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .expect("server certificate");
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let acceptor = TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let base_url = format!("https://localhost:{}", addr.port());
        let requests = Arc::new(Mutex::new(Vec::new()));
        let forward = Arc::new(Forward {
            http: reqwest::Client::builder()
                .no_proxy()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("client"),
            upstream: upstream.trim_end_matches('/').to_owned(),
            public: base_url.clone(),
            requests: Arc::clone(&requests),
        });
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let (acceptor, forward) = (acceptor.clone(), Arc::clone(&forward));
                tokio::spawn(async move {
                    // A client that refuses our certificate ends here.
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let service = hyper::service::service_fn(move |req| {
                        let forward = Arc::clone(&forward);
                        async move { Ok::<_, Infallible>(forward.send(req).await) }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(tls), service)
                        .await;
                });
            }
        });
        Self {
            addr,
            base_url,
            ca_pem,
            requests,
        }
    }

    /// Writes the CA certificate to `<dir>/test-ca.pem` and returns its path.
    pub fn ca_file(&self, dir: &Path) -> PathBuf {
        let path = dir.join("test-ca.pem");
        std::fs::write(&path, &self.ca_pem).expect("write the CA file");
        path
    }

    /// `METHOD /path` of every request served so far.
    pub fn requests(&self) -> Vec<String> {
        self.requests.lock().expect("lock").clone()
    }
}

impl Forward {
    async fn send(&self, req: Request<Incoming>) -> Response<Full<Bytes>> {
        let (parts, body) = req.into_parts();
        let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
        self.requests
            .lock()
            .expect("lock")
            .push(format!("{} {}", parts.method, parts.uri.path()));
        let body = match body.collect().await {
            Ok(b) => b.to_bytes(),
            Err(e) => return reply(502, format!("reading the request body: {e}")),
        };
        let mut out = self
            .http
            .request(parts.method.clone(), format!("{}{path}", self.upstream));
        for (name, value) in &parts.headers {
            if !matches!(name.as_str(), "host" | "connection" | "transfer-encoding") {
                out = out.header(name, value);
            }
        }
        if !body.is_empty() || parts.headers.contains_key(hyper::header::CONTENT_LENGTH) {
            out = out.body(body);
        }
        let resp = match out.send().await {
            Ok(r) => r,
            Err(e) => return reply(502, format!("forwarding to the emulator: {e}")),
        };
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = resp.bytes().await.unwrap_or_default();
        let text = String::from_utf8_lossy(&bytes);
        let body = if text.contains(&self.upstream) {
            Bytes::from(text.replace(&self.upstream, &self.public))
        } else {
            bytes
        };
        let mut builder = Response::builder().status(status);
        for (name, value) in &headers {
            if !matches!(
                name.as_str(),
                "content-length" | "connection" | "transfer-encoding"
            ) {
                builder = builder.header(name, value);
            }
        }
        builder.body(Full::new(body)).expect("response")
    }
}

fn reply(status: u16, text: String) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .body(Full::new(Bytes::from(text)))
        .expect("response")
}

/// A throwaway CA (its PEM) and a `localhost` / 127.0.0.1 server certificate chain
/// signed by it, with the server's key.
fn certificates() -> (String, Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
    use rcgen::{
        BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair,
        KeyUsagePurpose,
    };
    let mut ca = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "cdf-syncd test CA");
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate().expect("CA key")).expect("CA");
    let mut server = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
        .expect("server params");
    server
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    let key = KeyPair::generate().expect("server key");
    let cert = server.signed_by(&key, &ca).expect("server certificate");
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    (ca.pem(), vec![cert.der().clone(), ca.der().clone()], key)
}
