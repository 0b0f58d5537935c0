//! Every fault knob of the emulator: random 429/500/503 on API calls and PUTs,
//! `Retry-After`, dropped connections, lost responses, latency, the concurrency cap,
//! scripted one-shot faults, outages, and a shutdown that does not hang.

use std::time::{Duration, Instant};

use bytes::Bytes;
use cdf_syncd::emulator::{EmulatorConfig, Faults, ScriptedFault};
use serde_json::{Value, json};

use crate::emulator_storage::{create_file, file, init_multipart, wait_until};
use crate::support::emulator::{TestCdf, sha256_hex};

async fn list(t: &TestCdf) -> reqwest::Response {
    let req = t
        .http
        .post(t.api("files/list"))
        .bearer_auth(&t.token)
        .json(&json!({"limit": 1}));
    req.send().await.expect("files/list")
}

async fn put_bin(t: &TestCdf, url: &str, bytes: Vec<u8>) -> reqwest::Result<reqwest::Response> {
    t.http
        .put(url)
        .header("content-type", "application/octet-stream")
        .body(bytes)
        .send()
        .await
}

#[tokio::test]
async fn api_429_comes_with_retry_after_only_when_configured() {
    let t = TestCdf::start(EmulatorConfig::default()).await;
    let (_, url) = create_file(&t, json!({"name": "a.bin"})).await;
    t.emu.set_faults(Faults {
        api_429: 1.0,
        ..Faults::default()
    });
    let resp = list(&t).await;
    assert_eq!(resp.status(), 429);
    assert!(resp.headers().get("retry-after").is_none());
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], 429);
    assert_eq!(
        put_bin(&t, &url, b"abc".to_vec()).await.unwrap().status(),
        200,
        "PUTs are not API calls"
    );

    t.emu.set_faults(Faults {
        api_429: 1.0,
        api_429_retry_after: Some(7),
        ..Faults::default()
    });
    let resp = list(&t).await;
    assert_eq!(resp.status(), 429);
    assert_eq!(resp.headers()["retry-after"], "7");
    assert_eq!(t.emu.counters().with_status("POST files/list", 429), 2);
}

#[tokio::test]
async fn api_500_and_503_answer_cdf_errors() {
    let t = TestCdf::start(EmulatorConfig::default()).await;
    for (faults, status) in [
        (
            Faults {
                api_500: 1.0,
                ..Faults::default()
            },
            500,
        ),
        (
            Faults {
                api_503: 1.0,
                ..Faults::default()
            },
            503,
        ),
    ] {
        t.emu.set_faults(faults);
        let resp = list(&t).await;
        assert_eq!(resp.status(), status);
        assert!(resp.headers().contains_key("x-request-id"));
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error"]["code"], status);
    }
    let base = t.emu.base_url();
    let inspect = t
        .http
        .get(format!("{base}/_emulator/files"))
        .send()
        .await
        .unwrap();
    assert_eq!(inspect.status(), 200, "inspection is never faulted");
}

#[tokio::test]
async fn put_faults_fail_uploads_but_count_their_bytes() {
    let t = TestCdf::start(EmulatorConfig::default()).await;
    let (id, url) = create_file(&t, json!({"name": "a.bin"})).await;
    for (faults, status) in [
        (
            Faults {
                put_429: 1.0,
                api_429_retry_after: Some(3),
                ..Faults::default()
            },
            429,
        ),
        (
            Faults {
                put_500: 1.0,
                ..Faults::default()
            },
            500,
        ),
        (
            Faults {
                put_503: 1.0,
                ..Faults::default()
            },
            503,
        ),
    ] {
        t.emu.set_faults(faults);
        let resp = put_bin(&t, &url, vec![7; 1000]).await.unwrap();
        assert_eq!(resp.status(), status);
        assert!(
            resp.headers().get("retry-after").is_none(),
            "cloud storage sends no Retry-After"
        );
        assert!(resp.text().await.unwrap().contains("<Error>"));
        assert_eq!(list(&t).await.status(), 200, "API calls are not PUTs");
    }
    assert!(!file(&t, id).uploaded);
    let c = t.emu.counters();
    assert_eq!(c.put_bytes_received, 3000);
    assert_eq!(c.with_status("PUT upload", 503), 1);
}

#[tokio::test]
async fn dropped_connections_cut_puts_mid_body() {
    let t = TestCdf::start(EmulatorConfig::default()).await;
    let (id, url) = create_file(&t, json!({"name": "a.bin"})).await;
    t.emu.set_faults(Faults {
        drop_connection: 1.0,
        ..Faults::default()
    });
    let err = put_bin(&t, &url, vec![1; 4 * 1024 * 1024])
        .await
        .expect_err("connection cut");
    assert!(!err.is_timeout(), "{err:?}");
    assert_eq!(
        list(&t).await.status(),
        200,
        "API calls keep their connections"
    );
    let c = t.emu.counters();
    assert!(
        c.put_bytes_received >= 1 && c.put_bytes_received < 4 * 1024 * 1024,
        "{}",
        c.put_bytes_received
    );
    assert_eq!(c.with_status("PUT upload", 0), 1);
    assert!(!file(&t, id).uploaded);
}

#[tokio::test]
async fn lost_responses_do_the_work_but_never_answer() {
    let t = TestCdf::start(EmulatorConfig::default()).await;
    let (id, url) = create_file(&t, json!({"name": "a.bin"})).await;
    t.emu.set_faults(Faults {
        lost_response: 1.0,
        ..Faults::default()
    });
    let content = vec![9u8; 100_000];
    assert!(
        put_bin(&t, &url, content.clone()).await.is_err(),
        "no reply"
    );
    let f = file(&t, id);
    assert_eq!((f.uploaded, f.sha256), (true, Some(sha256_hex(&content))));
    let created = t
        .http
        .post(t.api("files"))
        .bearer_auth(&t.token)
        .json(&json!({"name": "b", "externalId": "lost-1"}));
    assert!(created.send().await.is_err(), "no reply");
    assert!(
        t.emu
            .files()
            .iter()
            .any(|f| f.external_id.as_deref() == Some("lost-1")),
        "created anyway"
    );
}

#[tokio::test]
async fn latency_is_added_to_requests() {
    let t = TestCdf::start(EmulatorConfig::default()).await;
    t.emu.set_faults(Faults {
        latency_ms: 300,
        ..Faults::default()
    });
    let started = Instant::now();
    assert_eq!(list(&t).await.status(), 200);
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn requests_beyond_max_concurrency_get_429() {
    let t = TestCdf::start(EmulatorConfig::default()).await;
    t.emu.set_faults(Faults {
        latency_ms: 500,
        max_concurrency: Some(2),
        ..Faults::default()
    });
    let replies = futures_util::future::join_all((0..6).map(|_| list(&t))).await;
    let statuses: Vec<u16> = replies.iter().map(|r| r.status().as_u16()).collect();
    let limited = statuses.iter().filter(|s| **s == 429).count();
    assert!(limited >= 1 && statuses.contains(&200), "{statuses:?}");
    assert!(
        statuses.iter().filter(|s| **s == 200).count() <= 2,
        "{statuses:?}"
    );
}

#[tokio::test]
async fn scripted_faults_hit_their_endpoint_and_are_consumed() {
    let t = TestCdf::small_parts().await;
    let (id, upload_id, urls) = init_multipart(&t, "s.bin", 1).await;
    assert_eq!(t.put(&urls[0], vec![1; 10]).await, 200);
    let faults = Faults {
        scripted: vec![
            ScriptedFault::new("files/completemultipartupload", 503, 2),
            ScriptedFault::new("token", 500, 1),
        ],
        ..Faults::default()
    };
    t.emu.set_faults(faults);
    let complete = json!({"id": id, "uploadId": upload_id});
    assert_eq!(
        t.post("files/completemultipartupload", complete.clone())
            .await
            .0,
        503
    );
    assert_eq!(list(&t).await.status(), 200, "other endpoints untouched");
    assert_eq!(
        t.post("files/completemultipartupload", complete.clone())
            .await
            .0,
        503
    );
    assert_eq!(
        t.post("files/completemultipartupload", complete).await.0,
        200
    );
    let form = [
        ("grant_type", "client_credentials"),
        ("client_id", "x"),
        ("client_secret", "y"),
    ];
    let token = t
        .http
        .post(t.emu.token_url())
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(token.status(), 500);

    let lost = ScriptedFault {
        lost_response: true,
        ..ScriptedFault::new("files", 0, 1)
    };
    t.emu.set_faults(Faults {
        scripted: vec![ScriptedFault::new("files/byids", 0, 1), lost],
        ..Faults::default()
    });
    let byids = t
        .http
        .post(t.api("files/byids"))
        .bearer_auth(&t.token)
        .json(&json!({"items": [{"id": id}]}));
    assert!(byids.send().await.is_err(), "status 0 drops the connection");
    let create = t
        .http
        .post(t.api("files"))
        .bearer_auth(&t.token)
        .json(&json!({"name": "n", "externalId": "s-1"}));
    assert!(create.send().await.is_err(), "lost response");
    assert!(
        t.emu
            .files()
            .iter()
            .any(|f| f.external_id.as_deref() == Some("s-1"))
    );
    let now: Faults = t.inspect("_emulator/faults").await;
    assert!(now.scripted.is_empty(), "{:?}", now.scripted);
}

#[tokio::test]
async fn scripted_faults_can_be_set_over_http() {
    let t = TestCdf::start(EmulatorConfig::default()).await;
    let (_, url) = create_file(&t, json!({"name": "a.bin"})).await;
    let base = t.emu.base_url();
    let body = json!({"scripted": [{"endpoint": "put", "status": 503}]});
    let set = t
        .http
        .put(format!("{base}/_emulator/faults"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(set.status(), 200);
    assert_eq!(put_bin(&t, &url, vec![1]).await.unwrap().status(), 503);
    assert_eq!(put_bin(&t, &url, vec![1]).await.unwrap().status(), 200);
    let bad = t
        .http
        .put(format!("{base}/_emulator/faults"))
        .json(&json!({"nope": 1}))
        .send()
        .await
        .unwrap();
    assert!(bad.status().is_client_error());
}

/// Whether the emulator refuses connections right now.
async fn refused(t: &TestCdf) -> bool {
    match t
        .http
        .get(format!("{}/_emulator/counters", t.emu.base_url()))
        .send()
        .await
    {
        Ok(_) => false,
        Err(err) => err.is_connect(),
    }
}

/// Whether the emulator answers right now (a stale pooled connection may fail once).
async fn answers(t: &TestCdf) -> bool {
    let url = format!("{}/_emulator/counters", t.emu.base_url());
    t.http.get(url).send().await.is_ok()
}

#[tokio::test]
async fn outages_refuse_connections_then_come_back() {
    let t = TestCdf::start(EmulatorConfig::default()).await;
    t.emu.set_down(true);
    wait_until(5, "connections refused", || refused(&t)).await;
    t.emu.set_down(false);
    wait_until(5, "back up", || answers(&t)).await;
    assert_eq!(list(&t).await.status(), 200);

    let base = t.emu.base_url();
    let resp = t
        .http
        .post(format!("{base}/_emulator/outage"))
        .json(&json!({"seconds": 0.5}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    wait_until(5, "outage starts", || refused(&t)).await;
    wait_until(10, "outage ends", || answers(&t)).await;
}

#[tokio::test]
async fn going_down_cuts_open_connections() {
    let t = TestCdf::start(EmulatorConfig::default()).await;
    let (_, url) = create_file(&t, json!({"name": "slow.bin"})).await;
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(1);
    let body = reqwest::Body::wrap_stream(tokio_stream_from(rx));
    let put = t
        .http
        .put(&url)
        .header("content-length", "1000")
        .header("content-type", "application/octet-stream");
    let pending = tokio::spawn(put.body(body).send());
    tx.send(Ok(Bytes::from(vec![0u8; 10]))).await.unwrap();
    wait_until(5, "the first bytes arrive", || async {
        t.emu.counters().put_bytes_received == 10
    })
    .await;
    t.emu.set_down(true);
    let result = tokio::time::timeout(Duration::from_secs(5), pending)
        .await
        .expect("cut, not hung")
        .unwrap();
    assert!(result.is_err(), "{result:?}");
    drop(tx);
}

/// A stream over an mpsc receiver.
fn tokio_stream_from<T: Send + 'static>(
    rx: tokio::sync::mpsc::Receiver<T>,
) -> impl futures_util::Stream<Item = T> + Send + 'static {
    futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    })
}

#[tokio::test]
async fn shutdown_does_not_hang_on_idle_keep_alive_connections() {
    let t = TestCdf::start(EmulatorConfig::default()).await;
    assert_eq!(list(&t).await.status(), 200);
    let TestCdf { emu, http, .. } = t;
    let base = emu.base_url();
    tokio::time::timeout(Duration::from_secs(3), emu.shutdown())
        .await
        .expect("shutdown in time");
    let after = http.get(format!("{base}/_emulator/counters")).send().await;
    assert!(after.is_err(), "stopped: {after:?}");
}
