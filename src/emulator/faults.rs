//! Fault injection, per `docs/EMULATOR.md` "Fault injection": added latency, a
//! concurrency cap answered with 429, scripted one-shot faults, random 429/500/503,
//! dropped connections and lost responses, and a bandwidth limit on upload-URL PUTs.
//!
//! For each request (inspection endpoints excluded) the order is: concurrency cap, then
//! latency (and the bandwidth limit on a PUT's body), then one [`Plan`] from [`decide`]
//! (a pure function of the settings and a random source, unit-tested below), then its
//! execution. A scripted fault matching the endpoint wins over the random ones and is
//! consumed. Random API faults apply to `/api/v1/...` calls, PUT faults and
//! `drop_connection` to upload-URL PUTs, `lost_response` to both; the token endpoint and
//! downloads only get scripted faults, latency and the concurrency cap.
//!
//! Every injected fault is counted in `counters.faults_injected`. Fault replies read
//! (and count) the request body first, so that the client reliably sees the status
//! instead of a reset while it is still sending.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt;
use hyper::body::{Body as HttpBody, Frame, SizeHint};

use super::error::ApiError;
use super::middleware::{Endpoint, Kind};
use super::server::drop_connection;
use super::state::{Faults, ScriptedFault, State, lock};
use super::upload::StorageError;

/// What to do with one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Plan {
    /// Serve it normally.
    Pass,
    /// Answer with this status instead (nothing is done).
    Reply {
        status: u16,
        retry_after: Option<u64>,
    },
    /// Cut the connection (a PUT mid-body) without doing anything.
    Drop,
    /// Do the work, then cut the connection instead of replying.
    Lost,
}

impl Plan {
    /// How `counters.faults_injected` names this fault (`None`: no fault).
    fn name(&self) -> Option<&'static str> {
        match self {
            Plan::Pass => None,
            Plan::Reply { status: 429, .. } => Some("429"),
            Plan::Reply { status: 500, .. } => Some("500"),
            Plan::Reply { status: 503, .. } => Some("503"),
            Plan::Reply { .. } => Some("status"),
            Plan::Drop => Some("drop"),
            Plan::Lost => Some("lost"),
        }
    }
}

/// Per-router fault state that is not part of the settings.
pub(crate) struct FaultCtx {
    pub state: Arc<State>,
    in_flight: AtomicUsize,
}

impl FaultCtx {
    pub fn new(state: Arc<State>) -> Self {
        Self {
            state,
            in_flight: AtomicUsize::new(0),
        }
    }
}

/// Counts a request as in flight until dropped.
struct InFlight<'a>(&'a AtomicUsize);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Whether a scripted fault's `endpoint` names this request's endpoint.
fn scripted_matches(fault: &ScriptedFault, ep: &Endpoint) -> bool {
    fault.endpoint == ep.name || (fault.endpoint == "put" && ep.kind == Kind::Put)
}

/// Decides the fault for one request, consuming a matching scripted fault.
pub(crate) fn decide(faults: &mut Faults, ep: &Endpoint, rng: &mut fastrand::Rng) -> Plan {
    faults.scripted.retain(|s| s.times > 0);
    if let Some(i) = faults.scripted.iter().position(|s| scripted_matches(s, ep)) {
        let fault = faults.scripted[i].clone();
        faults.scripted[i].times -= 1;
        if faults.scripted[i].times == 0 {
            faults.scripted.remove(i);
        }
        return match (fault.lost_response, fault.status) {
            (true, _) => Plan::Lost,
            (false, 0) => Plan::Drop,
            (false, status) => Plan::Reply {
                status,
                retry_after: retry_after(faults, ep, status),
            },
        };
    }
    let mut roll = |p: f64| p > 0.0 && rng.f64() < p;
    let statuses = match ep.kind {
        Kind::Api => [
            (faults.api_429, 429),
            (faults.api_500, 500),
            (faults.api_503, 503),
        ],
        Kind::Put => [
            (faults.put_429, 429),
            (faults.put_500, 500),
            (faults.put_503, 503),
        ],
        Kind::Token | Kind::Download | Kind::Inspect => return Plan::Pass,
    };
    for (p, status) in statuses {
        if roll(p) {
            return Plan::Reply {
                status,
                retry_after: retry_after(faults, ep, status),
            };
        }
    }
    if ep.kind == Kind::Put && roll(faults.drop_connection) {
        return Plan::Drop;
    }
    if roll(faults.lost_response) {
        return Plan::Lost;
    }
    Plan::Pass
}

/// `Retry-After` for an injected 429 from the API (cloud storage sends none).
fn retry_after(faults: &Faults, ep: &Endpoint, status: u16) -> Option<u64> {
    let api = matches!(ep.kind, Kind::Api | Kind::Token);
    (status == 429 && api)
        .then_some(faults.api_429_retry_after)
        .flatten()
}

/// Applies the fault settings to one request and serves it (or not).
pub(crate) async fn apply(ctx: &FaultCtx, ep: &Endpoint, req: Request, next: Next) -> Response {
    let (latency, max_concurrency, rate) = {
        let f = lock(&ctx.state.faults);
        (f.latency_ms, f.max_concurrency, f.put_bytes_per_sec)
    };
    let counted = format!("{} {}", req.method(), ep.name);
    let now_in_flight = ctx.in_flight.fetch_add(1, Ordering::Relaxed) + 1;
    let _guard = InFlight(&ctx.in_flight);
    if max_concurrency.is_some_and(|max| now_in_flight > max) {
        let msg = format!(
            "Too many concurrent requests (more than {})",
            max_concurrency.unwrap_or(0)
        );
        ctx.state.counters.count_fault(counted, "cap");
        return reply(ep, req, 429, None, &msg).await;
    }
    if latency > 0 {
        tokio::time::sleep(Duration::from_millis(latency)).await;
    }
    let req = match rate {
        Some(bytes_per_sec) if ep.kind == Kind::Put => {
            req.map(|inner| Body::new(Throttled::new(inner, bytes_per_sec)))
        }
        _ => req,
    };
    let plan = decide(&mut lock(&ctx.state.faults), ep, &mut fastrand::Rng::new());
    if let Some(what) = plan.name() {
        ctx.state.counters.count_fault(counted, what);
    }
    match plan {
        Plan::Pass => next.run(req).await,
        Plan::Reply {
            status,
            retry_after,
        } => reply(ep, req, status, retry_after, "Injected fault").await,
        Plan::Drop if ep.kind == Kind::Put => cut_mid_body(req).await,
        Plan::Drop => drop_connection(),
        Plan::Lost => {
            let resp = next.run(req).await;
            tracing::debug!(
                status = resp.status().as_u16(),
                "work done; dropping the reply"
            );
            drop_connection()
        }
    }
}

/// Reads the body (counted for PUTs), then answers `status` with the endpoint's error
/// format: CDF's JSON for the API, a cloud-storage XML error for upload URLs.
async fn reply(
    ep: &Endpoint,
    req: Request,
    status: u16,
    retry_after: Option<u64>,
    msg: &str,
) -> Response {
    drain(req.into_body()).await;
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut resp = match ep.kind {
        Kind::Put | Kind::Download => {
            let msg = format!("{msg} ({})", status.as_u16());
            StorageError::new(status, storage_code(status), msg).into_response()
        }
        _ => ApiError::new(status, format!("{msg}: {}", reason(status))).into_response(),
    };
    if let Some(secs) = retry_after {
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    resp
}

fn reason(status: StatusCode) -> &'static str {
    status.canonical_reason().unwrap_or("error")
}

/// The cloud-storage error code for a status (S3's names).
fn storage_code(status: StatusCode) -> &'static str {
    match status.as_u16() {
        429 | 503 => "SlowDown",
        500 => "InternalError",
        _ => "InjectedFault",
    }
}

/// Reads and discards a body (its bytes are counted by the route layer).
async fn drain(mut body: Body) {
    while let Some(Ok(_)) = body.frame().await {}
}

/// Reads about half the declared body (at least one chunk), then cuts the connection.
async fn cut_mid_body(req: Request) -> Response {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let target = declared.map_or(1, |n| n / 2).max(1);
    let mut body = req.into_body();
    let mut read = 0u64;
    if declared != Some(0) {
        while read < target {
            match body.frame().await {
                Some(Ok(frame)) => read += frame.data_ref().map_or(0, |d| d.len() as u64),
                _ => break,
            }
        }
    }
    tracing::debug!(read, "cutting a PUT mid-body");
    drop_connection()
}

/// An upload body read at a limited rate (`put_bytes_per_sec`, a slow uplink): each
/// frame is held back for as long as its bytes take at that rate. The bytes are
/// counted when they arrive (the counting layer sits below this one).
struct Throttled {
    inner: Body,
    bytes_per_sec: u64,
    held: Option<Frame<Bytes>>,
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl Throttled {
    fn new(inner: Body, bytes_per_sec: u64) -> Self {
        Self {
            inner,
            bytes_per_sec: bytes_per_sec.max(1),
            held: None,
            sleep: None,
        }
    }
}

impl HttpBody for Throttled {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = &mut *self;
        loop {
            if let Some(sleep) = this.sleep.as_mut() {
                ready!(sleep.as_mut().poll(cx));
                this.sleep = None;
                if let Some(frame) = this.held.take() {
                    return Poll::Ready(Some(Ok(frame)));
                }
            }
            match ready!(Pin::new(&mut this.inner).poll_frame(cx)) {
                Some(Ok(frame)) => {
                    let len = frame.data_ref().map_or(0, |d| d.len() as u64);
                    if len == 0 {
                        return Poll::Ready(Some(Ok(frame)));
                    }
                    let delay = Duration::from_secs_f64(len as f64 / this.bytes_per_sec as f64);
                    this.sleep = Some(Box::pin(tokio::time::sleep(delay)));
                    this.held = Some(frame);
                }
                other => return Poll::Ready(other),
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.held.is_none() && self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        let held = self
            .held
            .as_ref()
            .and_then(|f| f.data_ref())
            .map_or(0, |d| d.len() as u64);
        let inner = self.inner.size_hint();
        let mut hint = SizeHint::new();
        hint.set_lower(inner.lower() + held);
        if let Some(upper) = inner.upper() {
            hint.set_upper(upper + held);
        }
        hint
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ep(name: &str, kind: Kind) -> Endpoint {
        Endpoint {
            name: name.to_owned(),
            kind,
        }
    }

    fn scripted(endpoint: &str, status: u16, times: u32) -> ScriptedFault {
        ScriptedFault {
            endpoint: endpoint.to_owned(),
            status,
            lost_response: false,
            times,
        }
    }

    #[test]
    fn scripted_faults_are_consumed_in_order() {
        let mut f = Faults {
            scripted: vec![
                scripted("files/completemultipartupload", 503, 2),
                scripted("put", 0, 1),
            ],
            ..Faults::default()
        };
        let rng = &mut fastrand::Rng::with_seed(7);
        let complete = ep("files/completemultipartupload", Kind::Api);
        let reply = Plan::Reply {
            status: 503,
            retry_after: None,
        };
        assert_eq!(decide(&mut f, &ep("files", Kind::Api), rng), Plan::Pass);
        assert_eq!(decide(&mut f, &complete, rng), reply);
        assert_eq!(decide(&mut f, &complete, rng), reply);
        assert_eq!(decide(&mut f, &complete, rng), Plan::Pass);
        assert_eq!(
            decide(&mut f, &ep("upload/parts", Kind::Put), rng),
            Plan::Drop
        );
        assert_eq!(
            decide(&mut f, &ep("upload/parts", Kind::Put), rng),
            Plan::Pass
        );
        assert!(f.scripted.is_empty());
    }

    #[test]
    fn probabilities_pick_the_fault_for_the_endpoint_kind() {
        let rng = &mut fastrand::Rng::with_seed(1);
        let api = ep("files", Kind::Api);
        let put = ep("upload", Kind::Put);
        let mut f = Faults {
            api_429: 1.0,
            api_429_retry_after: Some(3),
            ..Faults::default()
        };
        assert_eq!(
            decide(&mut f, &api, rng),
            Plan::Reply {
                status: 429,
                retry_after: Some(3)
            }
        );
        assert_eq!(decide(&mut f, &put, rng), Plan::Pass);
        assert_eq!(decide(&mut f, &ep("token", Kind::Token), rng), Plan::Pass);
        let mut f = Faults {
            put_429: 1.0,
            api_429_retry_after: Some(3),
            ..Faults::default()
        };
        assert_eq!(
            decide(&mut f, &put, rng),
            Plan::Reply {
                status: 429,
                retry_after: None
            }
        );
        let mut f = Faults {
            drop_connection: 1.0,
            ..Faults::default()
        };
        assert_eq!(
            (decide(&mut f, &put, rng), decide(&mut f, &api, rng)),
            (Plan::Drop, Plan::Pass)
        );
        let mut f = Faults {
            lost_response: 1.0,
            ..Faults::default()
        };
        assert_eq!(
            (decide(&mut f, &put, rng), decide(&mut f, &api, rng)),
            (Plan::Lost, Plan::Lost)
        );
    }

    #[test]
    fn a_probability_is_roughly_honoured() {
        let rng = &mut fastrand::Rng::with_seed(42);
        let mut f = Faults {
            api_503: 0.25,
            ..Faults::default()
        };
        let api = ep("files/byids", Kind::Api);
        let hits = (0..4000)
            .filter(|_| decide(&mut f, &api, rng) != Plan::Pass)
            .count();
        assert!((800..1200).contains(&hits), "{hits}");
    }

    #[test]
    fn injected_faults_have_counter_names() {
        let reply = |status| Plan::Reply {
            status,
            retry_after: None,
        };
        assert_eq!(Plan::Pass.name(), None);
        assert_eq!(reply(429).name(), Some("429"));
        assert_eq!(reply(503).name(), Some("503"));
        assert_eq!(reply(418).name(), Some("status"));
        assert_eq!(Plan::Drop.name(), Some("drop"));
        assert_eq!(Plan::Lost.name(), Some("lost"));
    }

    #[tokio::test]
    async fn a_throttled_body_arrives_whole_at_the_given_rate() {
        let chunks = (0..4u8).map(|i| Ok::<_, std::io::Error>(Bytes::from(vec![i; 1000])));
        let body = Body::from_stream(futures_util::stream::iter(chunks));
        let started = std::time::Instant::now();
        let got = Body::new(Throttled::new(body, 20_000))
            .collect()
            .await
            .expect("body")
            .to_bytes();
        let elapsed = started.elapsed();
        assert_eq!(got.len(), 4000);
        assert_eq!(&got[1000..1003], &[1, 1, 1]);
        // 4000 bytes at 20 000 B/s: 200 ms.
        assert!(elapsed >= Duration::from_millis(190), "{elapsed:?}");
    }
}
