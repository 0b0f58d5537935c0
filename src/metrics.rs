//! The optional Prometheus endpoint (`[admin] metrics_listen`).
//!
//! Nothing is counted twice: every scrape reads the numbers the daemon keeps anyway
//! (the job store's counts, the pipeline's health, the watcher's and the client's
//! counters) into a fresh `prometheus-client` registry and encodes it. The HTTP side
//! is one endpoint, `GET /metrics`, served by a small loop on a TCP listener: no TCP
//! listener exists unless configured.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use crate::cdf::CdfClient;
use crate::daemon::health::{Health, PauseReason};
use crate::store::{StateKind, Store};
use crate::watch::WatchCounters;

/// What a scrape reads.
#[derive(Clone)]
pub struct Sources {
    pub store: Arc<Store>,
    pub health: Arc<Health>,
    pub watch: Arc<WatchCounters>,
    pub client: CdfClient,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabel {
    state: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ClassLabel {
    class: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EventLabel {
    event: &'static str,
}

fn gauge(registry: &mut Registry, name: &str, help: &str, value: u64) {
    let g = Gauge::<i64>::default();
    g.set(i64::try_from(value).unwrap_or(i64::MAX));
    registry.register(name, help, g);
}

fn counter(registry: &mut Registry, name: &str, help: &str, value: u64) {
    let c = Counter::<u64>::default();
    c.inc_by(value);
    registry.register(name, help, c);
}

/// The metrics as Prometheus/OpenMetrics text. Blocking (reads the job store).
pub fn render(sources: &Sources) -> Result<String, String> {
    let mut registry = Registry::with_prefix("cdf_syncd");
    let counts = sources.store.counts().map_err(|e| e.to_string())?;
    let jobs = Family::<StateLabel, Gauge<i64>>::default();
    for kind in StateKind::ALL {
        let state = match kind {
            StateKind::Queued => "queued",
            StateKind::Uploading => "uploading",
            StateKind::Completing => "completing",
            StateKind::Done => "done",
            StateKind::Failed => "failed",
        };
        jobs.get_or_create(&StateLabel { state })
            .set(i64::try_from(counts.get(kind)).unwrap_or(i64::MAX));
    }
    registry.register("jobs", "Jobs in the job store, by state", jobs);
    gauge(
        &mut registry,
        "synced_paths",
        "Paths recorded as synced",
        counts.synced,
    );
    gauge(
        &mut registry,
        "quarantined_records",
        "Undecodable job store records moved aside",
        counts.quarantined,
    );

    let health = sources.health.snapshot();
    let paused = Family::<ReasonLabel, Gauge<i64>>::default();
    for reason in [
        PauseReason::CdfUnreachable,
        PauseReason::Throttled,
        PauseReason::CredentialsRejected,
        PauseReason::StateUnwritable,
    ] {
        let label = match reason {
            PauseReason::CdfUnreachable => "cdf_unreachable",
            PauseReason::Throttled => "throttled",
            PauseReason::CredentialsRejected => "credentials_rejected",
            PauseReason::StateUnwritable => "state_unwritable",
        };
        paused
            .get_or_create(&ReasonLabel { reason: label })
            .set(i64::from(health.paused == Some(reason)));
    }
    registry.register(
        "paused",
        "1 while the pipeline is paused for this reason",
        paused,
    );
    let up = !matches!(
        health.paused,
        Some(PauseReason::CdfUnreachable | PauseReason::CredentialsRejected)
    );
    gauge(
        &mut registry,
        "cdf_up",
        "1 when CDF is reachable with the configured credentials",
        u64::from(up),
    );
    gauge(
        &mut registry,
        "files_in_flight_limit",
        "Files allowed in flight now (lowered while throttled)",
        health.files_limit as u64,
    );
    gauge(
        &mut registry,
        "parts_in_flight_limit",
        "Parts per file allowed in flight now (lowered while throttled)",
        health.parts_limit as u64,
    );
    counter(
        &mut registry,
        "throttled_replies",
        "Throttling replies (429/503) from CDF or its storage",
        sources.client.throttled_total(),
    );

    let stats = sources.client.stats();
    let load = |c: &std::sync::atomic::AtomicU64| c.load(std::sync::atomic::Ordering::Relaxed);
    let retries = Family::<ClassLabel, Counter<u64>>::default();
    let failures = Family::<ClassLabel, Counter<u64>>::default();
    for (class, retried, failed) in [
        (
            "transient",
            load(&stats.retries_transient),
            load(&stats.failed_transient),
        ),
        (
            "throttled",
            load(&stats.retries_throttled),
            load(&stats.failed_throttled),
        ),
        ("permanent", 0, load(&stats.failed_permanent)),
        ("reauth", 0, load(&stats.failed_reauth)),
    ] {
        retries.get_or_create(&ClassLabel { class }).inc_by(retried);
        failures.get_or_create(&ClassLabel { class }).inc_by(failed);
    }
    registry.register(
        "request_retries",
        "Requests retried by the quick tier, by class",
        retries,
    );
    registry.register(
        "request_failures",
        "Requests that failed after the quick tier, by class",
        failures,
    );
    registry.register(
        "api_request_seconds",
        "Seconds per CDF API call attempt",
        stats.api_seconds.clone(),
    );
    registry.register(
        "put_seconds",
        "Seconds per content PUT attempt (a part or a single-part file)",
        stats.put_seconds.clone(),
    );
    let (fetched, fetch_failed) = sources.client.token_refreshes();
    counter(
        &mut registry,
        "token_fetches",
        "Access tokens fetched",
        fetched,
    );
    counter(
        &mut registry,
        "token_fetch_failures",
        "Access token fetches that failed",
        fetch_failed,
    );
    let oldest = sources
        .store
        .list(Some(StateKind::Queued), 1)
        .map_err(|e| e.to_string())?;
    let now_ms = crate::admin::now_ms();
    let age_ms = oldest
        .first()
        .map_or(0, |j| now_ms.saturating_sub(j.created_ms).max(0));
    gauge(
        &mut registry,
        "oldest_queued_age_seconds",
        "Age of the oldest queued job (0 when none): a stall shows here",
        u64::try_from(age_ms / 1000).unwrap_or(0),
    );

    let bandwidth = sources.client.bandwidth();
    gauge(
        &mut registry,
        "upload_rate_limit_bytes_per_second",
        "The upload bandwidth limit in force now (0: unlimited)",
        bandwidth.current_rate().unwrap_or(0),
    );
    gauge(
        &mut registry,
        "transfers_in_flight",
        "Content PUTs sending now",
        bandwidth.active_transfers(),
    );

    let w = sources.watch.snapshot();
    let watcher = Family::<EventLabel, Counter<u64>>::default();
    for (event, n) in [
        ("stable", w.stable),
        ("gone", w.gone),
        ("full_scan", w.full_scans),
        ("rescan", w.rescans),
        ("overflow", w.overflows),
        ("dropped_event", w.dropped_events),
        ("watch_limit", w.watch_limits),
        ("poll_fallback", w.poll_fallbacks),
    ] {
        watcher.get_or_create(&EventLabel { event }).inc_by(n);
    }
    registry.register("watch_events", "Watcher events, by kind", watcher);

    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).map_err(|e| e.to_string())?;
    Ok(text)
}

/// Binds `addr` and serves `GET /metrics` until `cancel` fires.
pub async fn serve(
    addr: SocketAddr,
    sources: Sources,
    cancel: CancellationToken,
) -> std::io::Result<tokio::task::JoinHandle<()>> {
    let listener = TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    tracing::info!(addr = %bound, "metrics endpoint listening on http://{bound}/metrics");
    Ok(tokio::spawn(async move {
        loop {
            tokio::select! {
                () = cancel.cancelled() => return,
                accepted = listener.accept() => match accepted {
                    Ok((conn, _)) => {
                        let sources = sources.clone();
                        tokio::spawn(async move {
                            let _ = tokio::time::timeout(TIMEOUT, answer(conn, &sources)).await;
                        });
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "metrics endpoint: accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                },
            }
        }
    }))
}

/// One scrape may take this long, slow clients included.
const TIMEOUT: Duration = Duration::from_secs(10);
/// Request heads longer than this are refused.
const MAX_HEAD: usize = 8 * 1024;

async fn answer(mut conn: TcpStream, sources: &Sources) -> std::io::Result<()> {
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = conn.read(&mut buf).await?;
        if n == 0 || head.len() + n > MAX_HEAD {
            return Ok(());
        }
        head.extend_from_slice(buf.get(..n).unwrap_or_default());
    }
    let line = head.split(|b| *b == b'\r').next().unwrap_or_default();
    let mut words = line.split(|b| *b == b' ');
    let (method, path) = (words.next(), words.next());
    let (status, content_type, body) = match (method, path) {
        (Some(b"GET"), Some(b"/metrics")) => {
            let sources = sources.clone();
            match tokio::task::spawn_blocking(move || render(&sources)).await {
                Ok(Ok(text)) => (
                    "200 OK",
                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    text,
                ),
                Ok(Err(e)) => ("500 Internal Server Error", "text/plain", format!("{e}\n")),
                Err(e) => ("500 Internal Server Error", "text/plain", format!("{e}\n")),
            }
        }
        (Some(b"GET"), _) => ("404 Not Found", "text/plain", "try /metrics\n".to_owned()),
        _ => (
            "405 Method Not Allowed",
            "text/plain",
            "GET only\n".to_owned(),
        ),
    };
    let reply = format!(
        "HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    conn.write_all(reply.as_bytes()).await?;
    conn.shutdown().await
}
