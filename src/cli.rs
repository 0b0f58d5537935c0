//! Command-line definitions: one binary is both the daemon and its client.
//!
//! Only argument parsing lives here; each subcommand's behaviour is in `commands/`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

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
pub type RunArgs = ConfigArgs;

#[derive(Debug, Args)]
pub struct SyncArgs {
    /// Scan once and exit when everything is synced (the only mode for now).
    #[arg(long, required = true)]
    pub once: bool,
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
