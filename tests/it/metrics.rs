//! `/metrics`: the daemon serves Prometheus text on `[admin] metrics_listen`, with the
//! job counts, the pipeline's health and the watcher's counters.

use crate::support::daemon::{Tree, pattern, terminate, wait_for};

/// The address the daemon logged for its metrics endpoint.
pub(crate) fn metrics_addr(log: &str) -> Option<String> {
    let line = log
        .lines()
        .find(|l| l.contains("metrics endpoint listening"))?;
    let start = line.find("http://")? + "http://".len();
    let rest = line.get(start..)?;
    Some(rest.split('/').next()?.to_owned())
}

pub(crate) fn value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find(|l| {
            l.starts_with(series) && l.get(series.len()..).is_some_and(|r| r.starts_with(' '))
        })
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_metrics_endpoint_reports_jobs_health_and_the_watcher() {
    // A table after the root's keys: [admin] for this test.
    let t = Tree::new("[admin]\nmetrics_listen = \"127.0.0.1:0\"").await;
    // One throttled create: a retry by class shows up.
    t.cdf.emu.set_faults(cdf_syncd::emulator::Faults {
        scripted: vec![cdf_syncd::emulator::ScriptedFault::new("files", 503, 1)],
        ..cdf_syncd::emulator::Faults::default()
    });
    t.write("a/one.txt", &pattern(100, 1));
    t.write("a/two.txt", &pattern(200, 2));
    let daemon = t.start_daemon(0);
    wait_for(30, "the metrics address in the log", || {
        metrics_addr(&t.daemon_log(0)).is_some()
    })
    .await;
    let addr = metrics_addr(&t.daemon_log(0)).expect("addr");
    let url = format!("http://{addr}/metrics");
    let http = reqwest::Client::new();
    let scrape = || async {
        match http.get(&url).send().await {
            Ok(resp) => resp.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        }
    };
    crate::support::wait_until(30, "both files synced in the metrics", || async {
        value(&scrape().await, "cdf_syncd_synced_paths") == Some(2.0)
    })
    .await;
    let text = scrape().await;
    assert_eq!(value(&text, "cdf_syncd_cdf_up"), Some(1.0), "{text}");
    assert_eq!(
        value(&text, r#"cdf_syncd_jobs{state="failed"}"#),
        Some(0.0),
        "{text}"
    );
    assert_eq!(
        value(&text, r#"cdf_syncd_paused{reason="cdf_unreachable"}"#),
        Some(0.0),
        "{text}"
    );
    assert!(
        value(&text, r#"cdf_syncd_watch_events_total{event="full_scan"}"#).unwrap_or(0.0) >= 1.0,
        "{text}"
    );
    assert_eq!(
        value(&text, "cdf_syncd_throttled_replies_total"),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        value(
            &text,
            r#"cdf_syncd_request_retries_total{class="throttled"}"#
        ),
        Some(1.0),
        "{text}"
    );
    assert!(
        value(&text, "cdf_syncd_token_fetches_total").unwrap_or(0.0) >= 1.0,
        "{text}"
    );
    assert!(
        value(&text, "cdf_syncd_put_seconds_count").unwrap_or(0.0) >= 2.0,
        "{text}"
    );
    assert!(
        value(&text, "cdf_syncd_api_request_seconds_count").unwrap_or(0.0) >= 2.0,
        "{text}"
    );
    assert_eq!(
        value(&text, "cdf_syncd_oldest_queued_age_seconds"),
        Some(0.0),
        "{text}"
    );
    assert_eq!(
        value(&text, "cdf_syncd_upload_rate_limit_bytes_per_second"),
        Some(0.0),
        "unlimited: {text}"
    );
    let other = http
        .get(format!("http://{addr}/other"))
        .send()
        .await
        .expect("404");
    assert_eq!(other.status(), 404);
    assert!(terminate(daemon).await.success());
}
