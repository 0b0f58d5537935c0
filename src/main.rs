//! The `cdf-syncd` binary: parses the command line and hands over to the library.

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = cdf_syncd::cli::Cli::parse();
    cdf_syncd::commands::dispatch(cli)
}
