//! Validation of the daemon's runtime sections: `[sync]`, `[upload]`, `[state]`,
//! `[admin]` and `[log]`, with their defaults.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use toml::Spanned;

use super::{Lookup, absolute, duration, int_in, normalize, text};
use crate::config::error::Report;
use crate::config::limits;
use crate::config::raw::{RawAdmin, RawLog, RawState, RawSync, RawUpload};
use crate::config::schedule::{RateSchedule, parse_window};
use crate::config::settings::*;
use crate::config::values::PartSizeValue;

/// The longest Unix socket path (`sun_path` is 108 bytes with its NUL).
const SOCKET_PATH_MAX: usize = 107;

pub(super) fn sync(r: &mut Report, s: &RawSync) -> Option<SyncSettings> {
    let stable_for = duration(
        r,
        s.stable_for.as_ref(),
        "sync.stable_for",
        DEFAULT_STABLE_FOR,
        Duration::ZERO,
    );
    let scan_interval = duration(
        r,
        s.scan_interval.as_ref(),
        "sync.scan_interval",
        DEFAULT_SCAN_INTERVAL,
        Duration::from_secs(1),
    );
    let poll_interval = duration(
        r,
        s.poll_interval.as_ref(),
        "sync.poll_interval",
        DEFAULT_POLL_INTERVAL,
        Duration::from_millis(100),
    );
    Some(SyncSettings {
        stable_for: stable_for?,
        scan_interval: scan_interval?,
        watch: s.watch.unwrap_or(WatchMode::Auto),
        poll_interval: poll_interval?,
        hash: s.hash.unwrap_or(HashMode::None),
    })
}

pub(super) fn upload(r: &mut Report, u: &RawUpload, insecure: bool) -> Option<UploadSettings> {
    let files = u.max_concurrent_files.as_ref();
    let max_concurrent_files = count(
        r,
        files,
        "upload.max_concurrent_files",
        DEFAULT_MAX_CONCURRENT_FILES,
        256,
    );
    let parts = u.max_parallel_parts.as_ref();
    let max_parallel_parts = count(
        r,
        parts,
        "upload.max_parallel_parts",
        DEFAULT_MAX_PARALLEL_PARTS,
        64,
    );
    let part_size = part_size(r, u, insecure);
    let second = Duration::from_secs(1);
    let request = u.request_timeout.as_ref();
    let request_timeout = duration(
        r,
        request,
        "upload.request_timeout",
        DEFAULT_REQUEST_TIMEOUT,
        second,
    );
    let part = u.part_timeout.as_ref();
    let part_timeout = duration(r, part, "upload.part_timeout", DEFAULT_PART_TIMEOUT, second);
    let retry = retry(r, u);
    let max_rate = max_rate(r, u);
    let max_rate_schedule = schedule(r, u);
    let max_requests_per_second = match &u.max_requests_per_second {
        Some(v) => int_in(
            r,
            v,
            "upload.max_requests_per_second",
            1..=10_000,
            "max_requests_per_second",
        )
        .map(|n| u32::try_from(n).ok()),
        None => Some(None),
    };
    Some(UploadSettings {
        max_concurrent_files: max_concurrent_files?,
        max_parallel_parts: max_parallel_parts?,
        part_size: part_size?,
        request_timeout: request_timeout?,
        part_timeout: part_timeout?,
        retry: retry?,
        max_rate: max_rate?,
        max_rate_schedule: max_rate_schedule?,
        max_requests_per_second: max_requests_per_second?,
    })
}

/// A count in `1..=max`, `default` when absent.
fn count(
    r: &mut Report,
    v: Option<&Spanned<i64>>,
    key: &str,
    default: usize,
    max: i64,
) -> Option<usize> {
    match v {
        None => Some(default),
        Some(v) => int_in(r, v, key, 1..=max, key).and_then(|n| usize::try_from(n).ok()),
    }
}

fn max_rate(r: &mut Report, u: &RawUpload) -> Option<Option<u64>> {
    match &u.max_rate {
        Some(v) if v.get_ref().0 == 0 => {
            let msg = "a rate of 0 would stop all uploads: give a positive rate, or leave max_rate out for unlimited";
            r.at(v.span(), "upload.max_rate", msg);
            None
        }
        Some(v) => Some(Some(v.get_ref().0)),
        None => Some(None),
    }
}

/// Smallest part size accepted with `allow_insecure_http` (an emulator started with
/// a lowered `--min-part-size`, for fast multipart tests).
pub const EMULATOR_PART_SIZE_MIN: u64 = 4 * 1024;

/// `auto`, or CDF's 5 MiB..=4000 MiB; smaller parts only against an emulator.
fn part_size(r: &mut Report, u: &RawUpload, insecure: bool) -> Option<PartSize> {
    let Some(v) = &u.part_size else {
        return Some(PartSize::Auto);
    };
    let min = if insecure {
        EMULATOR_PART_SIZE_MIN
    } else {
        limits::PART_SIZE_MIN
    };
    match *v.get_ref() {
        PartSizeValue::Auto => Some(PartSize::Auto),
        PartSizeValue::Fixed(n) if (min..=limits::PART_SIZE_MAX).contains(&n) => {
            Some(PartSize::Fixed(n))
        }
        PartSizeValue::Fixed(n) => {
            let msg = format!(
                "{} is outside CDF's part size limits: every part but the last must be 5 MiB..=4000 MiB ({}..={} bytes); use such a size or \"auto\"{}",
                bytesize::ByteSize(n),
                limits::PART_SIZE_MIN,
                limits::PART_SIZE_MAX,
                if insecure {
                    " (with allow_insecure_http, an emulator, down to 4 KiB)"
                } else {
                    ""
                }
            );
            r.at(v.span(), "upload.part_size", msg);
            None
        }
    }
}

fn retry(r: &mut Report, u: &RawUpload) -> Option<RetrySettings> {
    let max_request_retries = match &u.max_request_retries {
        Some(v) => int_in(
            r,
            v,
            "upload.max_request_retries",
            0..=100,
            "max_request_retries",
        )
        .and_then(|n| u32::try_from(n).ok()),
        None => Some(DEFAULT_MAX_REQUEST_RETRIES),
    };
    let initial = duration(
        r,
        u.initial_backoff.as_ref(),
        "upload.initial_backoff",
        DEFAULT_INITIAL_BACKOFF,
        Duration::from_millis(1),
    );
    let max = duration(
        r,
        u.max_backoff.as_ref(),
        "upload.max_backoff",
        DEFAULT_MAX_BACKOFF,
        Duration::from_millis(1),
    );
    if let (Some(i), Some(m)) = (initial, max)
        && m < i
    {
        let span = u
            .max_backoff
            .as_ref()
            .or(u.initial_backoff.as_ref())
            .map(|v| v.span())
            .unwrap_or_default();
        let (i, m) = (humantime::format_duration(i), humantime::format_duration(m));
        r.at(span, "upload.max_backoff", format!("max_backoff ({m}) is shorter than initial_backoff ({i}); it must be at least as long"));
        return None;
    }
    Some(RetrySettings {
        max_request_retries: max_request_retries?,
        initial_backoff: initial?,
        max_backoff: max?,
    })
}

fn schedule(r: &mut Report, u: &RawUpload) -> Option<RateSchedule> {
    let Some(list) = &u.max_rate_schedule else {
        return Some(RateSchedule::default());
    };
    let mut windows = Vec::new();
    let mut ok = true;
    for item in list.get_ref() {
        match parse_window(item.get_ref()) {
            Ok(w) => windows.push(w),
            Err(e) => {
                r.at(item.span(), "upload.max_rate_schedule", e);
                ok = false;
            }
        }
    }
    if !ok {
        return None;
    }
    match RateSchedule::new(windows) {
        Ok(s) => Some(s),
        Err((i, j)) => {
            let span = list
                .get_ref()
                .get(j)
                .map_or(list.span(), |item| item.span());
            r.at(
                span,
                "upload.max_rate_schedule",
                format!(
                    "window {} overlaps window {}; windows must not overlap",
                    j + 1,
                    i + 1
                ),
            );
            None
        }
    }
}

pub(super) fn state(r: &mut Report, s: &RawState, env: Lookup) -> Option<StateSettings> {
    let dir = match &s.dir {
        Some(d) => absolute(r, d, "state.dir")?,
        None => {
            systemd_dir(env, "STATE_DIRECTORY").unwrap_or_else(|| PathBuf::from(DEFAULT_STATE_DIR))
        }
    };
    Some(StateSettings { dir })
}

pub(super) fn admin(
    r: &mut Report,
    a: &RawAdmin,
    state_dir: &Path,
    env: Lookup,
) -> Option<AdminSettings> {
    // Default: `$RUNTIME_DIRECTORY/admin.sock` (systemd's RuntimeDirectory=), linked
    // from `<state dir>/admin.sock`, which is where a CLI without that variable looks.
    let in_state_dir = state_dir.join("admin.sock");
    let (socket, state_link) = match &a.socket {
        Some(s) => (
            absolute(r, s, "admin.socket").filter(|p| socket_fits(r, p, Some(s.span()))),
            None,
        ),
        None => match systemd_dir(env, "RUNTIME_DIRECTORY").map(|d| d.join("admin.sock")) {
            Some(run) if run != in_state_dir => {
                let link =
                    (in_state_dir.as_os_str().len() <= SOCKET_PATH_MAX).then_some(in_state_dir);
                (Some(run).filter(|p| socket_fits(r, p, None)), link)
            }
            _ => (Some(in_state_dir).filter(|p| socket_fits(r, p, None)), None),
        },
    };
    let socket_group = a
        .socket_group
        .as_ref()
        .map(|g| text(r, g, "admin.socket_group", 256));
    let metrics_listen = a.metrics_listen.as_ref().map(|m| {
        let parsed = m.get_ref().trim().parse::<SocketAddr>();
        if parsed.is_err() {
            r.at(
                m.span(),
                "admin.metrics_listen",
                format!(
                    "`{}` is not an address: expected IP:PORT, e.g. \"127.0.0.1:9464\"",
                    m.get_ref()
                ),
            );
        }
        parsed.ok()
    });
    let grace = a.shutdown_grace.as_ref();
    let shutdown_grace = duration(
        r,
        grace,
        "admin.shutdown_grace",
        DEFAULT_SHUTDOWN_GRACE,
        Duration::from_secs(1),
    );
    if let Some(g) = grace.filter(|g| g.get_ref().0 > Duration::from_secs(600)) {
        r.at(
            g.span(),
            "admin.shutdown_grace",
            "at most 10m; keep it below systemd's TimeoutStopSec (90s by default)",
        );
        return None;
    }
    Some(AdminSettings {
        socket: socket?,
        state_link,
        socket_group: socket_group.map_or(Some(None), |v| v.map(Some))?,
        metrics_listen: metrics_listen.map_or(Some(None), |v| v.map(Some))?,
        shutdown_grace: shutdown_grace?,
    })
}

fn socket_fits(r: &mut Report, path: &Path, span: Option<std::ops::Range<usize>>) -> bool {
    let len = path.as_os_str().len();
    if len <= SOCKET_PATH_MAX {
        return true;
    }
    let msg = format!(
        "the socket path {} is {len} bytes; Unix sockets allow at most {SOCKET_PATH_MAX}",
        path.display()
    );
    match span {
        Some(span) => r.at(span, "admin.socket", msg),
        None => r.nowhere(
            "admin.socket",
            format!("{msg}; set [admin] socket to a shorter path"),
        ),
    }
    false
}

/// The first entry of a systemd `*_DIRECTORY` variable, if set and absolute.
fn systemd_dir(env: Lookup, name: &str) -> Option<PathBuf> {
    let value = env(name)?;
    let first = value.split(':').next()?;
    Path::new(first)
        .is_absolute()
        .then(|| normalize(Path::new(first)))
}

pub(super) fn log(r: &mut Report, l: &RawLog) -> Option<LogSettings> {
    let level = match &l.level {
        None => DEFAULT_LOG_LEVEL.to_owned(),
        Some(s) => {
            let v = s.get_ref().trim();
            if !valid_filter(v) {
                let msg = format!(
                    "`{v}` is not a log filter: use error, warn, info, debug or trace, optionally with per-module directives such as \"info,cdf_syncd::upload=debug\""
                );
                r.at(s.span(), "log.level", msg);
                return None;
            }
            v.to_owned()
        }
    };
    Some(LogSettings {
        format: l.format.unwrap_or(LogFormat::Text),
        level,
    })
}

/// A bare word must be a level (`info`), not a target name; `target=level` directives
/// are checked by tracing's own parser.
fn valid_filter(v: &str) -> bool {
    const LEVELS: [&str; 6] = ["off", "error", "warn", "info", "debug", "trace"];
    let directives_ok = v.split(',').all(|d| {
        let d = d.trim();
        !d.is_empty() && (d.contains('=') || LEVELS.iter().any(|l| l.eq_ignore_ascii_case(d)))
    });
    directives_ok && tracing_subscriber::EnvFilter::builder().parse(v).is_ok()
}
