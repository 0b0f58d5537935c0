//! Command-line definitions: one binary is both the daemon and its client.
//!
//! Only argument parsing lives here; each subcommand's behaviour is in `commands/`.

use std::path::PathBuf;

use clap::{ArgGroup, Args, Parser, Subcommand};

pub use crate::admin::JobFilter;

/// Keeps local directories synchronised into Cognite Data Fusion Files.
#[derive(Debug, Parser)]
#[command(name = "cdf-syncd", version, about, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon: watch the configured roots and keep them synced into CDF.
    Run(RunArgs),
    /// Scan every root once, upload everything pending, and exit (backfills, cron).
    Sync(SyncArgs),
    /// Validate a configuration file and print the resolved plan.
    CheckConfig(CheckConfigArgs),
    /// Show what the daemon is doing: CDF connection, uploads in flight, totals, errors.
    ///
    /// Uptime and version, the CDF connection (ok, throttled, unreachable, credentials
    /// rejected), jobs per root, the oldest queued file (a stall shows here), uploads
    /// in flight with progress, rate and ETA, files and bytes synced today and since
    /// start, throughput, and the last errors with CDF's x-request-id. With the daemon
    /// stopped it reads the job store and says so.
    Status(StatusArgs),
    /// List jobs: path, state, attempts, next retry, last error.
    ///
    /// Works with the daemon running (through its admin socket) and stopped (reading
    /// the job store directly). A job lives from the moment a file is found complete
    /// until it is synced; synced files have no job.
    Jobs(JobsArgs),
    /// Re-queue failed jobs (attempts reset; they run as soon as a worker is free).
    ///
    /// Fix the cause first (a file over max_file_size, a permission in CDF): a job
    /// that fails permanently waits for this command.
    Retry(RetryArgs),
    /// Drop one job; the file stays where it is and CDF is not touched.
    ///
    /// The next scan (the daemon's periodic safety scan, or the next start) queues the
    /// file again if it still exists and is not synced. While the daemon runs only a
    /// failed job that is not about to be retried can be forgotten: a queued or
    /// in-flight one may be in a worker's hands.
    Forget(ForgetArgs),
    /// Compare local files with what CDF holds for them: present, uploaded, the same
    /// size, and the same SHA-256 where CDF has one (`[sync] hash = "sha256"`).
    ///
    /// Reads the configuration and CDF only (the job store is not needed, so it runs
    /// beside the daemon). Exit code 1 when a file is missing or differs. A file the
    /// daemon has not synced yet shows as missing or different too.
    Verify(VerifyArgs),
    /// Run the built-in CDF emulator (a local stand-in for CDF, for tests and demos).
    #[cfg(feature = "emulator")]
    Emulator(EmulatorArgs),
    /// Start the emulator and show cdf-syncd's plan against it, with no CDF account.
    #[cfg(feature = "emulator")]
    Demo(DemoArgs),
}

/// The configuration file, as every command that reads one takes it.
#[derive(Debug, Args)]
pub struct ConfigArgs {
    /// The TOML configuration file.
    #[arg(
        long,
        short,
        env = "CDF_SYNCD_CONFIG",
        default_value = "/etc/cdf-syncd/cdf-syncd.toml"
    )]
    pub config: PathBuf,
}

pub type CheckConfigArgs = ConfigArgs;
#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub file: ConfigArgs,
    #[command(flatten)]
    pub log: LogArgs,
}

#[derive(Debug, Args)]
pub struct SyncArgs {
    /// Scan once and exit when everything is synced (the only mode for now).
    #[arg(long, required = true)]
    pub once: bool,
    #[command(flatten)]
    pub file: ConfigArgs,
    #[command(flatten)]
    pub log: LogArgs,
}

/// Logging overrides for the commands that run the pipeline.
#[derive(Debug, Args)]
pub struct LogArgs {
    /// Log line format; overrides `[log] format` (journald and log shippers like json).
    #[arg(long, value_enum)]
    pub log_format: Option<LogFormatArg>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormatArg {
    Text,
    Json,
}

/// `cdf-syncd jobs`.
#[derive(Debug, Args)]
pub struct JobsArgs {
    /// Only jobs in this group of states (default: all).
    #[arg(long, value_enum)]
    pub state: Option<JobFilter>,
    /// Print one JSON document (`source`, `total`, `jobs`) instead of a table.
    #[arg(long)]
    pub json: bool,
    /// At most this many jobs, oldest first (1..=10000).
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub limit: u32,
    #[command(flatten)]
    pub file: ConfigArgs,
}

/// `cdf-syncd verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Only this root (by its `id`).
    #[arg(long)]
    pub root: Option<String>,
    /// Download every file and compare its SHA-256 with the local file's (slow; also
    /// checks files that have no hash in CDF).
    #[arg(long)]
    pub content: bool,
    /// Print one JSON document (`counts`, `differences`) instead of lines.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub file: ConfigArgs,
}

/// `cdf-syncd status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Print one JSON document (fields documented in docs/STATUS.md) instead of the table.
    #[arg(long)]
    pub json: bool,
    /// Redraw every second until Ctrl-C (with --json: one document per refresh).
    #[arg(long)]
    pub watch: bool,
    #[command(flatten)]
    pub file: ConfigArgs,
}

/// `cdf-syncd retry`.
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("which").required(true).args(["job", "all_failed"])))]
pub struct RetryArgs {
    /// The job's id (the first column of `cdf-syncd jobs`).
    pub job: Option<u64>,
    /// Every failed job.
    #[arg(long)]
    pub all_failed: bool,
    #[command(flatten)]
    pub file: ConfigArgs,
}

/// `cdf-syncd forget`.
#[derive(Debug, Args)]
pub struct ForgetArgs {
    /// The job's id (the first column of `cdf-syncd jobs`).
    pub job: u64,
    #[command(flatten)]
    pub file: ConfigArgs,
}

#[cfg(feature = "emulator")]
pub use crate::emulator::cli::EmulatorArgs;

#[cfg(feature = "emulator")]
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Where the demo keeps its watched directory and the emulator's content
    /// (a temporary directory when omitted).
    #[arg(long)]
    pub dir: Option<PathBuf>,
}
