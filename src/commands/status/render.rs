//! The human `status`: at most [`WIDTH`] columns, sizes in IEC units, times relative
//! (and in UTC where an operator may want to match them against logs).

use std::fmt::Write as _;

use bytesize::ByteSize;

use super::StatusDoc;
use crate::admin::{ConnectionState, DaemonStatus, RootCounts};
use crate::daemon::progress::{RecentError, UploadProgress};

/// The widest line.
pub const WIDTH: usize = 80;
/// Cells of a progress bar between its brackets.
const BAR: usize = 30;
/// Label column of the summary lines.
const LABEL: usize = 12;

pub fn human(doc: &StatusDoc) -> String {
    let mut out = String::new();
    let now = doc.generated_ms;
    match &doc.daemon.status {
        Some(d) => daemon_lines(&mut out, d, doc, now),
        None => line(
            &mut out,
            "daemon",
            "not running (counts read from the job store)".to_owned(),
        ),
    }
    let c = &doc.counts;
    line(
        &mut out,
        "jobs",
        format!(
            "{} queued, {} in flight, {} failed; {} paths synced",
            c.queued,
            c.uploading + c.completing + c.done,
            c.failed,
            c.synced
        ),
    );
    let oldest = doc.oldest_queued.as_ref().map_or("-".to_owned(), |q| {
        format!("{} ago  {}", ago_ms(q.age_ms), q.path)
    });
    line(&mut out, "oldest queued", oldest);
    out.push('\n');
    roots(&mut out, &doc.roots, doc.roots_truncated);
    if c.failed > 0 {
        let _ = writeln!(
            out,
            "(`cdf-syncd jobs --state failed` shows why; `cdf-syncd retry` re-queues)"
        );
    }
    if let Some(d) = &doc.daemon.status {
        uploads(&mut out, &d.activity.uploads);
        errors(&mut out, &d.activity.errors, now);
    }
    out
}

fn daemon_lines(out: &mut String, d: &DaemonStatus, doc: &StatusDoc, now: i64) {
    let up = ago_ms(d.activity.uptime_ms);
    let daemon = format!("running, pid {}, version {}, up {up}", d.pid, d.version);
    line(out, "daemon", daemon);
    let c = &d.connection;
    let mut cdf = match c.state {
        ConnectionState::Ok => "ok".to_owned(),
        ConnectionState::Throttled => "throttled".to_owned(),
        ConnectionState::Unreachable => "unreachable".to_owned(),
        ConnectionState::CredentialsRejected => "credentials rejected".to_owned(),
    };
    if let Some(since) = c.since_ms {
        let for_ms = u64::try_from(now.saturating_sub(since)).unwrap_or(0);
        let _ = write!(cdf, " since {} UTC ({})", utc(since), ago_ms(for_ms));
    }
    line(out, "CDF", cdf);
    if let Some(detail) = &c.detail {
        line(out, "", detail.clone());
    }
    if let Some(h) = &doc.health {
        let state = h
            .paused
            .map_or("running".to_owned(), |r| format!("paused: {r}"));
        let limits = format!(
            "{state}; up to {} files, {} parts at once",
            h.files_limit, h.parts_limit
        );
        line(out, "pipeline", limits);
    }
    let a = &d.activity;
    line(
        out,
        "throughput",
        format!("{}/s", ByteSize(a.throughput_bytes_per_sec)),
    );
    let (today, start) = (a.totals.today, a.totals.since_start);
    line(
        out,
        "synced",
        format!(
            "today {} files, {}; since start {} files, {}",
            today.files,
            ByteSize(today.bytes),
            start.files,
            ByteSize(start.bytes)
        ),
    );
}

fn roots(out: &mut String, roots: &[RootCounts], truncated: bool) {
    let _ = writeln!(
        out,
        "{:<30}{:>10}{:>8}{:>9}{:>11}{:>8}",
        "ROOT", "SYNCED", "JOBS", "QUEUED", "IN FLIGHT", "FAILED"
    );
    for r in roots {
        let _ = writeln!(
            out,
            "{:<30}{:>10}{:>8}{:>9}{:>11}{:>8}",
            fit(&r.root, 29),
            r.synced,
            r.jobs,
            r.queued,
            r.in_flight,
            r.failed
        );
    }
    if truncated {
        let _ = writeln!(out, "(per-root counts cover the oldest jobs only)");
    }
}

fn uploads(out: &mut String, uploads: &[UploadProgress]) {
    if uploads.is_empty() {
        return;
    }
    let _ = writeln!(out, "\nIN FLIGHT ({})", uploads.len());
    for u in uploads {
        let size = ByteSize(u.size).to_string();
        let parts = match u.parts_total {
            0 => "starting".to_owned(),
            n => format!("parts {}/{n}", u.parts_done),
        };
        let right = format!("{size:>11}  {parts:>13}");
        let path_width = WIDTH - right.chars().count() - 1;
        let _ = writeln!(out, "{:<path_width$} {right}", fit(&u.path, path_width));
        let eta = u.eta_ms.map_or("-".to_owned(), ago_ms);
        let rate = format!("{}/s", ByteSize(u.bytes_per_sec));
        let _ = writeln!(
            out,
            "  {}  {rate:>12}  ETA {eta}",
            bar(u.bytes_done, u.size)
        );
    }
}

fn errors(out: &mut String, errors: &[RecentError], now: i64) {
    if errors.is_empty() {
        return;
    }
    let _ = writeln!(out, "\nRECENT ERRORS (newest first)");
    for e in errors.iter().rev() {
        let age = ago_ms(u64::try_from(now.saturating_sub(e.at_ms)).unwrap_or(0));
        let mut head = format!("{} UTC ({age} ago)", utc(e.at_ms));
        if let Some(id) = &e.request_id {
            let _ = write!(head, "  x-request-id {id}");
        }
        let _ = writeln!(out, "{}", fit_end(&head, WIDTH));
        let _ = writeln!(out, "  {}", fit(&e.path, WIDTH - 2));
        let _ = writeln!(out, "  {}", fit_end(&one_line(&e.message), WIDTH - 2));
    }
}

/// `label:` padded to the label column, then the text; wrapped lines never exceed
/// [`WIDTH`] (the text is cut).
fn line(out: &mut String, label: &str, text: String) {
    let label = if label.is_empty() {
        String::new()
    } else {
        format!("{label}:")
    };
    let width = LABEL.max(label.chars().count() + 1);
    let room = WIDTH.saturating_sub(width);
    let _ = writeln!(out, "{label:<width$}{}", fit_end(&text, room));
}

/// `[#########.....................]  30%`.
pub fn bar(done: u64, total: u64) -> String {
    let pct = if total == 0 {
        100
    } else {
        u128::from(done.min(total)) * 100 / u128::from(total)
    };
    let filled = usize::try_from(pct).unwrap_or(100) * BAR / 100;
    format!(
        "[{}{}] {pct:>3}%",
        "#".repeat(filled),
        ".".repeat(BAR - filled)
    )
}

/// A path cut at the front (`…/dir/file.bin`) to `width` characters.
fn fit(text: &str, width: usize) -> String {
    let n = text.chars().count();
    if n <= width {
        return text.to_owned();
    }
    let tail: String = text.chars().skip(n - width + 1).collect();
    format!("…{tail}")
}

/// A text cut at the end (`HTTP 500: the serv…`) to `width` characters.
fn fit_end(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        return text.to_owned();
    }
    let mut cut: String = text.chars().take(width.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A duration in milliseconds, short: `45s`, `4m`, `2h5m`.
fn ago_ms(ms: u64) -> String {
    super::super::jobs::relative(i64::try_from(ms / 1000).unwrap_or(i64::MAX))
}

/// `2026-11-22 00:31:02` from ms since the Unix epoch (UTC).
pub fn utc(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}
