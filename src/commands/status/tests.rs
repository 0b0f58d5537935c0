use super::render::{WIDTH, bar, human, utc};
use super::*;
use crate::admin::{Connection, ConnectionState};
use crate::daemon::progress::{Activity, RecentError, Synced, Totals, UploadProgress};
use crate::store::JobId;

const NOW: i64 = 1_763_771_462_000; // 2025-11-22 00:31:02 UTC

fn daemon_reply() -> Reply {
    let upload = |id, path: &str, done, total, bytes| UploadProgress {
        job: JobId(id),
        path: path.to_owned(),
        size: 10 << 20,
        parts_total: total,
        parts_done: done,
        bytes_done: bytes,
        bytes_per_sec: 1 << 20,
        eta_ms: Some(6000),
        started_ms: NOW - 4000,
    };
    let long = format!("{}file.bin", "deep/".repeat(30));
    let activity = Activity {
        started_ms: NOW - 7_500_000,
        uptime_ms: 7_500_000,
        uploads: vec![
            upload(7, "it:/big/video.mp4", 2, 5, 4 << 20),
            upload(8, &format!("it:/{long}"), 0, 0, 0),
        ],
        totals: Totals {
            since_start: Synced {
                files: 12,
                bytes: 40 << 20,
            },
            today: Synced {
                files: 3,
                bytes: 5 << 20,
            },
            today_since_ms: NOW - NOW % 86_400_000,
        },
        throughput_bytes_per_sec: 3 << 20,
        errors: vec![RecentError {
            at_ms: NOW - 65_000,
            job: JobId(3),
            path: "it:/x.bin".into(),
            message: format!(
                "upload PUT: HTTP 500: {} (x-request-id abc-123)",
                "no ".repeat(40)
            ),
            request_id: Some("abc-123".into()),
        }],
    };
    Reply::Status {
        counts: crate::store::Counts {
            queued: 3,
            uploading: 2,
            failed: 1,
            synced: 12,
            ..Default::default()
        },
        health: None,
        roots: vec![RootCounts {
            root: "it".into(),
            synced: 12,
            jobs: 6,
            queued: 3,
            in_flight: 2,
            failed: 1,
        }],
        roots_truncated: false,
        oldest_queued: Some(Box::new(QueuedJob {
            job: JobId(9),
            path: "it:/q.txt".into(),
            created_ms: NOW - 240_000,
            age_ms: 240_000,
        })),
        daemon: Some(Box::new(DaemonStatus {
            version: "9.9.9".into(),
            pid: 4242,
            connection: Connection {
                state: ConnectionState::Unreachable,
                since_ms: Some(NOW - 120_000),
                detail: Some("token: connection refused".into()),
            },
            activity,
        })),
    }
}

#[test]
fn the_table_fits_80_columns_and_shows_uploads_with_bars() {
    let doc = doc(daemon_reply(), Source::Daemon, &["it", "spare"], NOW).expect("doc");
    let text = human(&doc);
    for line in text.lines() {
        assert!(line.chars().count() <= WIDTH, "{line:?} in\n{text}");
    }
    for needle in [
        "daemon:     running, pid 4242, version 9.9.9, up 2h5m",
        "CDF:        unreachable since 2025-11-22 00:29:02 UTC (2m)",
        "token: connection refused",
        "throughput: 3.0 MiB/s",
        "today 3 files, 5.0 MiB; since start 12 files, 40.0 MiB",
        "oldest queued: 4m ago  it:/q.txt",
        "it:/big/video.mp4",
        "parts 2/5",
        "[############..................]  40%",
        "ETA 6s",
        "starting",
        "/deep/file.bin",
        "x-request-id abc-123",
        "2025-11-22 00:29:57 UTC (1m ago)",
    ] {
        assert!(text.contains(needle), "{needle:?} in\n{text}");
    }
    let spare = text
        .lines()
        .find(|l| l.starts_with("spare"))
        .expect("spare");
    assert!(
        spare.ends_with("0        0          0       0"),
        "{spare:?}"
    );
}

#[test]
fn without_a_daemon_the_table_says_so_and_the_document_has_no_activity() {
    let reply = Reply::Status {
        counts: crate::store::Counts::default(),
        health: None,
        roots: vec![],
        roots_truncated: false,
        oldest_queued: None,
        daemon: None,
    };
    let doc = doc(reply, Source::Store, &["it"], NOW).expect("doc");
    let text = human(&doc);
    assert!(text.starts_with("daemon:     not running"), "{text}");
    assert!(!text.contains("IN FLIGHT ("), "{text}");
    let json: serde_json::Value = serde_json::from_str(&show(&doc, true)).expect("json");
    assert_eq!(json["daemon"], serde_json::json!({"running": false}));
    assert_eq!(json["source"], "store");
    assert_eq!(json["roots"][0]["root"], "it");
}

#[test]
fn an_error_reply_is_an_error() {
    let reply = Reply::error(crate::admin::ErrorKind::Store, "disk on fire");
    let err = doc(reply, Source::Daemon, &[], NOW).expect_err("refused");
    assert_eq!(err.to_string(), "disk on fire");
}

#[test]
fn bars_and_times() {
    assert_eq!(bar(0, 10), format!("[{}]   0%", ".".repeat(30)));
    assert_eq!(bar(10, 10), format!("[{}] 100%", "#".repeat(30)));
    assert_eq!(bar(0, 0), format!("[{}] 100%", "#".repeat(30)));
    assert_eq!(utc(0), "1970-01-01 00:00:00");
    assert_eq!(utc(NOW), "2025-11-22 00:31:02");
    assert_eq!(utc(951_782_400_000), "2000-02-29 00:00:00");
}
