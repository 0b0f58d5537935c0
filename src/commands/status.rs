//! `cdf-syncd status`: what the daemon is doing, for an operator or a monitor.
//!
//! Asks the running daemon through its admin socket (or, with the daemon stopped,
//! reads the job store, like `jobs` does) and prints a table that fits 80 columns:
//! the daemon and its CDF connection, throughput and totals, jobs per root, the oldest
//! queued file, uploads in flight with a progress bar, and the last errors. `--json`
//! prints one document whose fields are documented in `docs/STATUS.md`; `--watch`
//! redraws every second until Ctrl-C. Exit codes as for `jobs`.

mod render;

use std::process::ExitCode;
use std::time::Duration;

use serde::Serialize;

use super::jobs::{JobsError, Source, ask, init_logging};
use crate::admin::protocol::JobCounts;
use crate::admin::{self, DaemonStatus, QueuedJob, Reply, Request, RootCounts};
use crate::cli::StatusArgs;
use crate::config::Settings;
use crate::daemon::health::HealthSnapshot;

/// The `--json` schema's version: bumped when a field changes meaning or goes away
/// (adding one does not bump it).
pub const SCHEMA: u32 = 1;

/// How often `--watch` redraws.
const REFRESH: Duration = Duration::from_secs(1);

/// `--json`: the one document, with stable field names (`docs/STATUS.md`).
#[derive(Debug, Serialize)]
pub struct StatusDoc {
    pub schema: u32,
    /// Who answered: `daemon` (its admin socket) or `store` (no daemon running).
    source: Source,
    /// When the document was made (ms since the Unix epoch).
    pub generated_ms: i64,
    /// This `cdf-syncd` binary's version.
    pub cli_version: &'static str,
    pub daemon: DaemonDoc,
    /// Jobs per state, synced paths, quarantined records.
    pub counts: JobCounts,
    /// Every configured root (and any root with jobs that is no longer configured).
    pub roots: Vec<RootCounts>,
    pub roots_truncated: bool,
    pub oldest_queued: Option<QueuedJob>,
    /// The pipeline's health; `null` with the daemon stopped.
    pub health: Option<HealthSnapshot>,
}

/// The daemon: `{"running": false}`, or running with its version, connection and
/// activity.
#[derive(Debug, Serialize)]
pub struct DaemonDoc {
    pub running: bool,
    #[serde(flatten)]
    pub status: Option<DaemonStatus>,
}

pub fn run(args: &StatusArgs) -> ExitCode {
    let config = &args.file.config;
    let settings = match super::load_config(config) {
        Ok(s) => s,
        Err(code) => return code,
    };
    init_logging();
    if !args.watch {
        return match fetch(&settings, config) {
            Ok(doc) => {
                // A reader that went away (`| head`) is not an error.
                let _ = write_out(&show(&doc, args.json));
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        };
    }
    if !args.json {
        let _ = write_out("\x1b[2J"); // clear the screen once
    }
    loop {
        // A daemon that stops (or starts) between two refreshes is simply shown so.
        let text = match fetch(&settings, config) {
            // One document per line, for a consumer reading a stream.
            Ok(doc) if args.json => serde_json::to_string(&doc).unwrap_or_default() + "\n",
            Ok(doc) => show(&doc, false),
            Err(e) => format!("error: {e}\n"),
        };
        let frame = if args.json {
            text
        } else {
            // Home, draw, clear what is left of the previous frame.
            format!("\x1b[H{}\x1b[J", text.replace('\n', "\x1b[K\n"))
        };
        if write_out(&frame).is_err() {
            return ExitCode::SUCCESS; // the reader went away
        }
        std::thread::sleep(REFRESH);
    }
}

fn write_out(text: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()
}

/// The document (pretty JSON) or the table.
fn show(doc: &StatusDoc, json: bool) -> String {
    if !json {
        return render::human(doc);
    }
    // Plain data: serializing cannot fail.
    let mut text = serde_json::to_string_pretty(doc).unwrap_or_default();
    text.push('\n');
    text
}

/// Asks the daemon (or the store) and builds the document.
fn fetch(settings: &Settings, config: &std::path::Path) -> Result<StatusDoc, JobsError> {
    let (reply, source) = ask(settings, config, Request::Status)?;
    let configured: Vec<&str> = settings.roots.iter().map(|r| r.id.as_str()).collect();
    doc(reply, source, &configured, admin::now_ms())
}

fn doc(
    reply: Reply,
    source: Source,
    configured: &[&str],
    now_ms: i64,
) -> Result<StatusDoc, JobsError> {
    let Reply::Status {
        counts,
        health,
        roots,
        roots_truncated,
        oldest_queued,
        daemon,
    } = reply
    else {
        return Err(match reply {
            Reply::Error { message, .. } => JobsError::Refused(message),
            other => JobsError::Unexpected(Box::new(other)),
        });
    };
    let daemon = daemon.map(|d| *d);
    Ok(StatusDoc {
        schema: SCHEMA,
        source,
        generated_ms: now_ms,
        cli_version: env!("CARGO_PKG_VERSION"),
        daemon: DaemonDoc {
            running: source == Source::Daemon,
            status: daemon,
        },
        counts,
        roots: with_configured(roots, configured),
        roots_truncated,
        oldest_queued: oldest_queued.map(|q| *q),
        health: health.map(|h| *h),
    })
}

/// The configured roots in configuration order (zero rows for roots without jobs),
/// then roots that only the store knows.
fn with_configured(mut counted: Vec<RootCounts>, configured: &[&str]) -> Vec<RootCounts> {
    let mut out = Vec::with_capacity(configured.len() + counted.len());
    for id in configured {
        let row = match counted.iter().position(|r| r.root == *id) {
            Some(i) => counted.remove(i),
            None => RootCounts {
                root: (*id).to_owned(),
                ..RootCounts::default()
            },
        };
        out.push(row);
    }
    out.extend(counted);
    out
}

#[cfg(test)]
mod tests;
