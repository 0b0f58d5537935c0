//! `cdf-syncd emulator`: placeholder.

use clap::Args;

#[derive(Debug, Args)]
pub struct EmulatorArgs {}

pub fn run(_args: EmulatorArgs) -> anyhow::Result<()> {
    anyhow::bail!("emulator not built yet")
}
