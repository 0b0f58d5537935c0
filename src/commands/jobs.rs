//! `cdf-syncd jobs`, `retry` and `forget`: look at the job store and act on it.
//!
//! Only one process may open the store, so each command first asks the daemon through
//! its admin socket; when no daemon answers (no socket file, nobody listening) it
//! opens the store itself. A store that is locked although no daemon answered means
//! the daemon is starting or stopping (both are given a few seconds) or runs with its
//! socket out of reach: that is an error naming both paths. Both ways run the same request code (`admin::execute`), so the answers are
//! the same. Exit codes: 0 done, 1 refused or failed (unknown job, daemon out of
//! reach), 2 invalid configuration or arguments.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::admin::{self, ClientError, JobFilter, JobView, Owner, Reply, Request};
use crate::cli::{ForgetArgs, JobsArgs, RetryArgs};
use crate::config::Settings;
use crate::store::{JobId, StateKind, Store, StoreError, StoreOptions};

/// The widest `LAST ERROR` cell in the table (`--json` has it whole).
const ERROR_WIDTH: usize = 120;

/// How long a locked store without a socket is given to become one or the other.
const STARTUP_PATIENCE: Duration = Duration::from_secs(5);

/// Where an answer came from (`source` in `--json`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub(super) enum Source {
    /// The running daemon, through its admin socket.
    Daemon,
    /// The job store itself (no daemon running).
    Store,
}

#[derive(Debug, thiserror::Error)]
pub(super) enum JobsError {
    #[error(
        "cdf-syncd ({}) is running and owns the job store in {}, but its admin socket {} \
         cannot be reached ({cause}); a daemon with its socket in $RUNTIME_DIRECTORY links \
         it from the state directory, unless it could not (its log says why): check the \
         daemon's log, or set [admin] socket in {} to one fixed path",
        pid.map_or_else(|| "pid unknown".to_owned(), |p| format!("pid {p}")),
        state.display(), socket.display(), config.display()
    )]
    Unreachable {
        socket: PathBuf,
        state: PathBuf,
        config: PathBuf,
        pid: Option<u32>,
        cause: ClientError,
    },
    #[error("cannot reach the daemon ({cause}) nor open the job store ({store})")]
    Neither {
        cause: ClientError,
        store: StoreError,
    },
    #[error(transparent)]
    Client(ClientError),
    #[error(transparent)]
    Store(StoreError),
    #[error("{0}")]
    Refused(String),
    #[error("cannot start the runtime: {0}")]
    Runtime(std::io::Error),
    #[error("unexpected reply: {0:?}")]
    Unexpected(Box<Reply>),
}

pub fn list(args: &JobsArgs) -> ExitCode {
    let request = Request::Jobs {
        state: args.state,
        limit: args.limit as usize,
    };
    command(&args.file.config, request, |reply, source| match reply {
        Reply::Jobs { jobs, total } if args.json => {
            let doc = JobsDoc {
                source,
                state: args.state,
                total,
                jobs: &jobs,
            };
            // Plain data: serializing cannot fail.
            println!("{}", serde_json::to_string_pretty(&doc).unwrap_or_default());
            Ok(())
        }
        Reply::Jobs { jobs, total } => {
            print!("{}", table(&jobs, total, args.state, admin::now_ms()));
            Ok(())
        }
        other => Err(other),
    })
}

pub fn retry(args: &RetryArgs) -> ExitCode {
    let request = match args.job {
        Some(id) => Request::Retry { job: JobId(id) },
        None => Request::RetryAllFailed,
    };
    command(&args.file.config, request, |reply, _| match reply {
        Reply::Retried { job } => {
            println!("re-queued job {}: {}", job.id, job.display_path());
            Ok(())
        }
        Reply::RetriedAll { count } => {
            println!("re-queued {count} failed job{}", plural(count));
            Ok(())
        }
        other => Err(other),
    })
}

pub fn forget(args: &ForgetArgs) -> ExitCode {
    let request = Request::Forget {
        job: JobId(args.job),
    };
    command(&args.file.config, request, |reply, _| match reply {
        Reply::Forgot { job } => {
            println!(
                "forgot job {} ({}, {}); the next scan queues the file again if it still \
                 exists and is not synced",
                job.id,
                job.display_path(),
                job.state
            );
            Ok(())
        }
        other => Err(other),
    })
}

/// `--json`: one document with stable field names.
#[derive(Serialize)]
struct JobsDoc<'a> {
    source: Source,
    /// The `--state` filter, `null` for all.
    state: Option<JobFilter>,
    /// Jobs matching the filter; `jobs` holds at most `--limit` of them.
    total: u64,
    jobs: &'a [JobView],
}

/// Loads the configuration, asks, and prints through `show` (which hands back a reply
/// it does not expect).
fn command(
    config: &Path,
    request: Request,
    show: impl FnOnce(Reply, Source) -> Result<(), Reply>,
) -> ExitCode {
    let settings = match super::load_config(config) {
        Ok(s) => s,
        Err(code) => return code,
    };
    init_logging();
    let outcome = ask(&settings, config, request).and_then(|(reply, source)| {
        show(reply, source).map_err(|reply| match reply {
            Reply::Error { message, .. } => JobsError::Refused(message),
            other => JobsError::Unexpected(Box::new(other)),
        })
    });
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The daemon's answer, or the store's when no daemon runs. A locked store with no
/// socket to answer is retried for [`STARTUP_PATIENCE`]: a daemon opens its store a
/// moment before its socket (and closes the socket a moment before the store).
pub(super) fn ask(
    settings: &Settings,
    config: &Path,
    request: Request,
) -> Result<(Reply, Source), JobsError> {
    let socket = &settings.admin.socket;
    let state = &settings.state.dir;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(JobsError::Runtime)?;
    let deadline = Instant::now() + STARTUP_PATIENCE;
    loop {
        let cause = match runtime.block_on(admin::request(socket, &request)) {
            Ok(reply) => return Ok((reply, Source::Daemon)),
            // Not connected: nothing was asked, so the store may answer instead.
            Err(e @ ClientError::Connect { .. }) => e,
            Err(e) => return Err(JobsError::Client(e)),
        };
        let store = match open_store(state) {
            Ok(store) => store,
            Err(StoreError::Locked { .. }) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(200));
                continue;
            }
            Err(StoreError::Locked { pid, .. }) => {
                return Err(JobsError::Unreachable {
                    socket: socket.clone(),
                    state: state.clone(),
                    config: config.to_owned(),
                    pid,
                    cause,
                });
            }
            Err(store) if cause.no_daemon() => return Err(JobsError::Store(store)),
            Err(store) => return Err(JobsError::Neither { cause, store }),
        };
        let reply = admin::execute(&store, Owner::Offline, request, admin::now_ms());
        return Ok((reply, Source::Store));
    }
}

/// The job store in `dir`; an empty one when the daemon never ran (nothing is created).
fn open_store(dir: &Path) -> Result<Store, StoreError> {
    if matches!(dir.try_exists(), Ok(false)) {
        return Ok(Store::in_memory());
    }
    let options = StoreOptions {
        cache_bytes: 4 << 20,
        flush_every_ms: None,
    };
    Store::open(dir, options)
}

/// Warnings and errors (a job store moved aside, say) on stderr; `RUST_LOG` overrides.
pub(super) fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// The human listing: a table, a note on truncation and on permanent failures.
fn table(jobs: &[JobView], total: u64, filter: Option<JobFilter>, now_ms: i64) -> String {
    let mut out = String::new();
    if jobs.is_empty() {
        let what = filter.map_or("", |f| match f {
            JobFilter::Pending => "pending ",
            JobFilter::Active => "active ",
            JobFilter::Failed => "failed ",
        });
        let _ = writeln!(out, "no {what}jobs");
        return out;
    }
    let header = [
        "ID",
        "PATH",
        "STATE",
        "ATTEMPTS",
        "NEXT RETRY",
        "LAST ERROR",
    ]
    .map(String::from);
    let rows: Vec<[String; 6]> = jobs
        .iter()
        .map(|j| {
            [
                j.id.to_string(),
                j.display_path(),
                j.state.name().to_owned(),
                j.attempts.to_string(),
                next_retry(j, now_ms),
                j.last_error.as_deref().map(one_line).unwrap_or_default(),
            ]
        })
        .collect();
    let mut widths = [0; 6];
    for row in std::iter::once(&header).chain(&rows) {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    for row in std::iter::once(&header).chain(&rows) {
        let mut line = String::new();
        for (i, (cell, w)) in row.iter().zip(widths).enumerate() {
            if i + 1 == row.len() {
                line.push_str(cell);
            } else {
                let _ = write!(line, "{cell:<w$}  ");
            }
        }
        let _ = writeln!(out, "{}", line.trim_end());
    }
    if (jobs.len() as u64) < total {
        let _ = writeln!(
            out,
            "(showing {} of {total}; --limit shows more)",
            jobs.len()
        );
    }
    if rows.iter().any(|r| r[4] == "manual") {
        let _ = writeln!(
            out,
            "manual: failed permanently; fix the cause, then `cdf-syncd retry <id>`"
        );
    }
    out
}

/// `in 4m`, `due` (transient failures), `manual` (permanent ones), `-` otherwise.
fn next_retry(job: &JobView, now_ms: i64) -> String {
    if job.state != StateKind::Failed {
        return "-".to_owned();
    }
    match job.next_retry_ms {
        None => "manual".to_owned(),
        Some(at) if at <= now_ms => "due".to_owned(),
        Some(at) => format!("in {}", relative((at - now_ms + 999) / 1000)),
    }
}

/// A short duration: `45s`, `4m`, `2h5m`, `3d4h`.
pub(super) fn relative(secs: i64) -> String {
    match secs {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m", s / 60),
        s if s < 86_400 => format!("{}h{}m", s / 3600, s % 3600 / 60),
        s => format!("{}d{}h", s / 86_400, s % 86_400 / 3600),
    }
}

/// An error message on one line, cut to [`ERROR_WIDTH`] characters.
fn one_line(text: &str) -> String {
    let flat: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() <= ERROR_WIDTH {
        return flat;
    }
    let mut cut: String = flat.chars().take(ERROR_WIDTH - 1).collect();
    cut.push('…');
    cut
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admin::protocol::Failure;

    fn view(id: u64, state: StateKind, failure: Option<Failure>, next: Option<i64>) -> JobView {
        JobView {
            id: JobId(id),
            root: "it".into(),
            path: format!("dir/file{id}.bin"),
            state,
            failure,
            attempts: u32::from(failure.is_some()),
            next_retry_ms: next,
            last_error: failure.map(|_| "5000 bytes is over\nmax_file_size".into()),
            size: 5000,
            created_ms: 0,
        }
    }

    #[test]
    fn the_table_shows_path_state_attempts_next_retry_and_error() {
        let now = 1_000_000;
        let jobs = [
            view(1, StateKind::Failed, Some(Failure::Permanent), None),
            view(
                2,
                StateKind::Failed,
                Some(Failure::Transient),
                Some(now + 240_000),
            ),
            view(13, StateKind::Uploading, None, None),
        ];
        let text = table(&jobs, 5, None, now);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "ID  PATH                STATE      ATTEMPTS  NEXT RETRY  LAST ERROR"
        );
        assert_eq!(
            lines[1],
            "1   it:/dir/file1.bin   failed     1         manual      5000 bytes is over max_file_size"
        );
        assert!(lines[2].contains("in 4m"), "{text}");
        assert_eq!(lines[3], "13  it:/dir/file13.bin  uploading  0         -");
        assert_eq!(lines[4], "(showing 3 of 5; --limit shows more)");
        assert!(lines[5].starts_with("manual: failed permanently"), "{text}");
        assert_eq!(
            table(&[], 0, Some(JobFilter::Failed), now),
            "no failed jobs\n"
        );
    }

    #[test]
    fn durations_and_errors_are_short() {
        assert_eq!(relative(45), "45s");
        assert_eq!(relative(4 * 60 + 59), "4m");
        assert_eq!(relative(2 * 3600 + 5 * 60), "2h5m");
        assert_eq!(relative(3 * 86_400 + 4 * 3600), "3d4h");
        let job = view(1, StateKind::Failed, Some(Failure::Transient), Some(10));
        assert_eq!(next_retry(&job, 20), "due");
        let long = "x".repeat(500);
        let cut = one_line(&long);
        assert_eq!(cut.chars().count(), ERROR_WIDTH);
        assert!(cut.ends_with('…'));
    }
}
