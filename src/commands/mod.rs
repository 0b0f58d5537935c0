//! What each subcommand does. `main` parses the arguments; `dispatch` runs the command
//! and turns its outcome into an exit code (0 ok, 1 runtime failure, 2 bad input).

use std::process::ExitCode;

use crate::cli::{Cli, Command};

pub mod check_config;
#[cfg(feature = "emulator")]
pub mod demo;
pub mod jobs;
pub mod run;
pub mod status;
pub mod verify;

/// Exit code for invalid input (a bad configuration file, bad arguments).
pub const EXIT_INVALID: u8 = 2;

pub fn dispatch(cli: Cli) -> ExitCode {
    match cli.command {
        Command::CheckConfig(args) => check_config::run(&args),
        Command::Run(args) => run::run(&args),
        Command::Sync(args) => run::sync(&args),
        Command::Jobs(args) => jobs::list(&args),
        Command::Status(args) => status::run(&args),
        Command::Retry(args) => jobs::retry(&args),
        Command::Forget(args) => jobs::forget(&args),
        Command::Verify(args) => verify::run(&args),
        #[cfg(feature = "emulator")]
        Command::Emulator(args) => report(crate::emulator::cli::run(args)),
        #[cfg(feature = "emulator")]
        Command::Demo(args) => report(demo::run(&args)),
    }
}

/// The configuration at `path`, or its errors printed and the exit code for bad input.
pub(crate) fn load_config(path: &std::path::Path) -> Result<crate::config::Settings, ExitCode> {
    crate::config::load(path).map_err(|errors| {
        eprintln!("{errors}");
        ExitCode::from(EXIT_INVALID)
    })
}

/// Prints a runtime failure with its causes and maps it to exit code 1.
fn report(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// Console logging for the interactive subcommands: `RUST_LOG` or `info`.
pub fn init_console_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // A second init (tests calling in-process) is harmless; ignore it.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
