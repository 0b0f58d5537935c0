//! `cdf-syncd run` (the daemon) and `cdf-syncd sync --once` (scan, upload, exit).
//!
//! Both load the configuration, set up logging from `[log]`, and run the pipeline on
//! a small multi-thread runtime. SIGTERM or SIGINT stops intake, lets workers stop
//! between parts and flushes the store; a second signal exits at once (the store is
//! consistent at any point; the next start resumes).

use std::process::ExitCode;

use tokio_util::sync::CancellationToken;

use crate::cdf::limits::MIN_PART;
use crate::cli::{LogArgs, LogFormatArg, RunArgs, SyncArgs};
use crate::config::{LogFormat, PartSize, Settings};
use crate::daemon::{self, Mode};

pub fn run(args: &RunArgs) -> ExitCode {
    let Some(settings) = load(&args.file.config, &args.log) else {
        return ExitCode::from(super::EXIT_INVALID);
    };
    match execute(settings, Mode::Daemon, &args.file.config) {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "cdf-syncd stopped");
            ExitCode::FAILURE
        }
    }
}

pub fn sync(args: &SyncArgs) -> ExitCode {
    let Some(settings) = load(&args.file.config, &args.log) else {
        return ExitCode::from(super::EXIT_INVALID);
    };
    match execute(settings, Mode::Once, &args.file.config) {
        Ok(tally) => {
            println!(
                "synced {} files, {} failed, {} vanished",
                tally.synced, tally.failed_jobs, tally.dropped
            );
            if let Some(reason) = tally.gave_up {
                eprintln!(
                    "error: gave up while paused ({reason}); the queued files stay queued for the next run"
                );
                return ExitCode::FAILURE;
            }
            if tally.failed_jobs == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn load(path: &std::path::Path, log: &LogArgs) -> Option<Settings> {
    let mut s = super::load_config(path).ok()?;
    match log.log_format {
        Some(LogFormatArg::Text) => s.log.format = LogFormat::Text,
        Some(LogFormatArg::Json) => s.log.format = LogFormat::Json,
        None => {}
    }
    Some(s)
}

fn execute(
    settings: Settings,
    mode: Mode,
    path: &std::path::Path,
) -> Result<daemon::Tally, daemon::DaemonError> {
    init_logging(&settings);
    // CDF's minimum part size, unless the configuration asks for less (only allowed
    // against an http emulator).
    let min_part = match settings.upload.part_size {
        PartSize::Fixed(n) if n < MIN_PART => n,
        _ => MIN_PART,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(16)
        .enable_all()
        .build()
        .map_err(|e| daemon::DaemonError::Watch(format!("cannot start the runtime: {e}")))?;
    runtime.block_on(async {
        let cancel = CancellationToken::new();
        tokio::spawn(stop_on_signals(cancel.clone()));
        let (reloads, updates) = tokio::sync::mpsc::channel(1);
        if mode == Mode::Daemon {
            tokio::spawn(reload_on_hangup(path.to_owned(), reloads));
        }
        daemon::run_reloadable(settings, mode, min_part, cancel, updates).await
    })
}

/// SIGHUP: read and validate the configuration file again; a valid one goes to the
/// daemon, an invalid one is refused with an ERROR (the running one stays).
async fn reload_on_hangup(path: std::path::PathBuf, updates: tokio::sync::mpsc::Sender<Settings>) {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut hup) = signal(SignalKind::hangup()) else {
        tracing::error!("cannot install the SIGHUP handler; reloading needs a restart");
        return;
    };
    while hup.recv().await.is_some() {
        tracing::info!(config = %path.display(), "SIGHUP: reloading the configuration");
        let file = path.clone();
        match tokio::task::spawn_blocking(move || crate::config::load(&file)).await {
            Ok(Ok(settings)) => {
                if updates.send(settings).await.is_err() {
                    return;
                }
            }
            Ok(Err(errors)) => tracing::error!(
                config = %path.display(),
                "configuration reload refused; the running configuration stays:\n{errors}"
            ),
            Err(e) => tracing::error!(error = %e, "configuration reload failed"),
        }
    }
}

/// First SIGTERM/SIGINT: graceful stop. Second: exit at once.
async fn stop_on_signals(cancel: CancellationToken) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("cannot install signal handlers");
        return;
    };
    for round in 0..2 {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        if round == 0 {
            tracing::info!("stopping: finishing parts in flight");
            cancel.cancel();
        } else {
            tracing::warn!("second signal: exiting now");
            std::process::exit(130);
        }
    }
}

fn init_logging(settings: &Settings) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&settings.log.level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match settings.log.format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}
