//! Rules of `[sync]`, `[upload]`, `[state]`, `[admin]` and `[log]`.

use std::time::Duration;

use super::*;

fn tail(t: &str) -> String {
    config("", AUTH, "", t)
}

fn parse_env(text: &str, vars: &[(&str, &str)]) -> Settings {
    let lookup = |n: &str| {
        vars.iter()
            .find(|(k, _)| *k == n)
            .map(|(_, v)| (*v).to_owned())
    };
    parse_with_env(text, "t.toml", &lookup).unwrap()
}

#[test]
fn part_size_is_auto_or_within_cdf_limits() {
    assert_eq!(
        ok(&tail("[upload]\npart_size = \"5 MiB\""))
            .upload
            .part_size,
        PartSize::Fixed(5 << 20)
    );
    assert_eq!(
        ok(&tail("[upload]\npart_size = \"4000 MiB\""))
            .upload
            .part_size,
        PartSize::Fixed(4000 << 20)
    );
    assert_eq!(
        ok(&tail("[upload]\npart_size = \"auto\"")).upload.part_size,
        PartSize::Auto
    );
    check(
        &tail("[upload]\npart_size = \"4 MiB\""),
        "part_size",
        "upload.part_size",
        "5 MiB..=4000 MiB",
    );
    check(
        &tail("[upload]\npart_size = \"4001 MiB\""),
        "part_size",
        "upload.part_size",
        "outside CDF's part size limits",
    );
    check(
        &tail("[upload]\npart_size = 5242879"),
        "part_size",
        "upload.part_size",
        "outside",
    );
}

#[test]
fn small_parts_only_against_an_emulator() {
    let emulator = |size: &str| {
        let text = config(
            "allow_insecure_http = true",
            AUTH,
            "",
            &format!("[upload]\npart_size = {size}"),
        );
        text.replace("https://westeurope", "http://westeurope")
    };
    assert_eq!(
        ok(&emulator("\"64 KiB\"")).upload.part_size,
        PartSize::Fixed(64 << 10)
    );
    check(
        &emulator("1000"),
        "part_size",
        "upload.part_size",
        "down to 4 KiB",
    );
    check(
        &tail("[upload]\npart_size = \"64 KiB\""),
        "part_size",
        "upload.part_size",
        "5 MiB..=4000 MiB",
    );
}

#[test]
fn concurrency_timeouts_and_retries() {
    let s = ok(&tail(
        "[upload]\nmax_concurrent_files = 2\nmax_parallel_parts = 8\nrequest_timeout = \"1m\"\npart_timeout = \"2h\"\n\
         max_request_retries = 0\ninitial_backoff = \"100ms\"\nmax_backoff = \"1m\"\nmax_requests_per_second = 50",
    ));
    let u = &s.upload;
    assert_eq!(
        (
            u.max_concurrent_files,
            u.max_parallel_parts,
            u.max_requests_per_second
        ),
        (2, 8, Some(50))
    );
    assert_eq!(
        (u.request_timeout, u.part_timeout),
        (Duration::from_secs(60), Duration::from_secs(7200))
    );
    assert_eq!(
        u.retry,
        RetrySettings {
            max_request_retries: 0,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(60)
        }
    );
    check(
        &tail("[upload]\nmax_concurrent_files = 0"),
        "max_concurrent_files",
        "upload.max_concurrent_files",
        "1..=256",
    );
    check(
        &tail("[upload]\nmax_parallel_parts = 65"),
        "max_parallel_parts",
        "upload.max_parallel_parts",
        "1..=64",
    );
    check(
        &tail("[upload]\nmax_request_retries = -1"),
        "max_request_retries",
        "upload.max_request_retries",
        "0..=100",
    );
    check(
        &tail("[upload]\nrequest_timeout = \"10ms\""),
        "request_timeout",
        "upload.request_timeout",
        "too short",
    );
    check(
        &tail("[upload]\ninitial_backoff = \"10s\"\nmax_backoff = \"1s\""),
        "max_backoff",
        "upload.max_backoff",
        "shorter than initial_backoff",
    );
    check(
        &tail("[upload]\nmax_requests_per_second = 0"),
        "max_requests_per_second",
        "upload.max_requests_per_second",
        "1..=10000",
    );
}

#[test]
fn rates_and_schedules() {
    let s = ok(&tail(
        "[upload]\nmax_rate = \"2 MiB/s\"\nmax_rate_schedule = [\"08:00-18:00 = 512 KiB/s\", \"22:00-06:00 = unlimited\"]",
    ));
    assert_eq!(s.upload.max_rate, Some(2 << 20));
    assert_eq!(
        s.upload
            .max_rate_schedule
            .rate_at(9 * 60, s.upload.max_rate),
        Some(512 << 10)
    );
    check(
        &tail("[upload]\nmax_rate = 0"),
        "max_rate",
        "upload.max_rate",
        "positive rate",
    );
    check(
        &tail("[upload]\nmax_rate = \"fast\""),
        "max_rate",
        "upload.max_rate",
        "bytes per second",
    );
    let bad = "[upload]\nmax_rate_schedule = [\n  \"08:00-18:00 = 1 MiB\",\n  \"8-9 = 1 MiB\",\n  \"17:00-19:00 = 1 MiB\",\n]";
    check(
        &tail(bad),
        "\"8-9",
        "upload.max_rate_schedule",
        "HH:MM-HH:MM",
    );
    let overlap = "[upload]\nmax_rate_schedule = [\n  \"08:00-18:00 = 1 MiB\",\n  \"17:00-19:00 = 1 MiB\",\n]";
    check(
        &tail(overlap),
        "\"17:00",
        "upload.max_rate_schedule",
        "overlaps window 1",
    );
}

#[test]
fn sync_settings() {
    let s = ok(&tail(
        "[sync]\nstable_for = \"0s\"\nscan_interval = \"1h\"\nwatch = \"poll\"\npoll_interval = \"500ms\"\nhash = \"sha256\"",
    ));
    assert_eq!(
        (s.sync.stable_for, s.sync.scan_interval),
        (Duration::ZERO, Duration::from_secs(3600))
    );
    assert_eq!(
        (s.sync.watch, s.sync.poll_interval, s.sync.hash),
        (
            WatchMode::Poll,
            Duration::from_millis(500),
            HashMode::Sha256
        )
    );
    check(
        &tail("[sync]\npoll_interval = \"10ms\""),
        "poll_interval",
        "sync.poll_interval",
        "minimum is 100ms",
    );
    check(
        &tail("[sync]\nscan_interval = \"0s\""),
        "scan_interval",
        "sync.scan_interval",
        "too short",
    );
    check(
        &tail("[sync]\nhash = \"md5\""),
        "hash",
        "sync.hash",
        "`none` or `sha256`",
    );
}

#[test]
fn state_and_admin_defaults_follow_systemd_directories() {
    let text = tail("");
    let s = parse_env(
        &text,
        &[
            ("SECRET", "x"),
            ("STATE_DIRECTORY", "/var/lib/cdf-syncd-x:/other"),
        ],
    );
    assert_eq!(s.state.dir, std::path::Path::new("/var/lib/cdf-syncd-x"));
    assert_eq!(
        s.admin.socket,
        std::path::Path::new("/var/lib/cdf-syncd-x/admin.sock")
    );
    assert_eq!(s.admin.state_link, None);
    let s = parse_env(&text, &[("RUNTIME_DIRECTORY", "/run/cdf-syncd")]);
    assert_eq!(
        s.admin.socket,
        std::path::Path::new("/run/cdf-syncd/admin.sock")
    );
    // Linked from where a CLI without $RUNTIME_DIRECTORY looks.
    assert_eq!(
        s.admin.state_link.as_deref(),
        Some(s.state.dir.join("admin.sock").as_path())
    );
    let s = ok(&tail(
        "[state]\ndir = \"/srv/state\"\n[admin]\nsocket = \"/run/x.sock\"\nsocket_group = \"ops\"\nmetrics_listen = \"127.0.0.1:9464\"\nshutdown_grace = \"5s\"",
    ));
    assert_eq!(s.state.dir, std::path::Path::new("/srv/state"));
    assert_eq!(s.admin.socket, std::path::Path::new("/run/x.sock"));
    assert_eq!(s.admin.state_link, None);
    assert_eq!(
        s.admin.metrics_listen,
        Some("127.0.0.1:9464".parse().unwrap())
    );
    assert_eq!(
        (s.admin.socket_group.as_deref(), s.admin.shutdown_grace),
        (Some("ops"), Duration::from_secs(5))
    );
}

#[test]
fn state_and_admin_rules() {
    check(
        &tail("[state]\ndir = \"state\""),
        "dir =",
        "state.dir",
        "relative path",
    );
    check(
        &tail("[admin]\nsocket = \"admin.sock\""),
        "socket",
        "admin.socket",
        "relative path",
    );
    check(
        &tail(&format!("[admin]\nsocket = \"/{}.sock\"", "s".repeat(110))),
        "socket",
        "admin.socket",
        "at most 107",
    );
    check(
        &tail("[admin]\nmetrics_listen = \"localhost\""),
        "metrics_listen",
        "admin.metrics_listen",
        "IP:PORT",
    );
    check(
        &tail("[admin]\nshutdown_grace = \"1h\""),
        "shutdown_grace",
        "admin.shutdown_grace",
        "at most 10m",
    );
    check(
        &tail("[admin]\nsocket_group = \"\""),
        "socket_group",
        "admin.socket_group",
        "must not be empty",
    );
}

#[test]
fn log_settings() {
    let s = ok(&tail(
        "[log]\nformat = \"json\"\nlevel = \"warn,cdf_syncd::upload=debug\"",
    ));
    assert_eq!(
        (s.log.format, s.log.level.as_str()),
        (LogFormat::Json, "warn,cdf_syncd::upload=debug")
    );
    check(
        &tail("[log]\nlevel = \"loud\""),
        "level",
        "log.level",
        "not a log filter",
    );
    check(
        &tail("[log]\nformat = \"xml\""),
        "format",
        "log.format",
        "`text` or `json`",
    );
}
