//! `cdf-syncd check-config`: validate a configuration file and print the resolved plan.
//! (Owned by the config work; placeholder until it lands.)

use std::process::ExitCode;

use crate::cli::CheckConfigArgs;

pub fn run(_args: &CheckConfigArgs) -> ExitCode {
    ExitCode::from(super::EXIT_INVALID)
}
