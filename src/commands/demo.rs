//! `cdf-syncd demo`: placeholder until the emulator lands.

use crate::cli::DemoArgs;

pub fn run(_args: &DemoArgs) -> anyhow::Result<()> {
    anyhow::bail!("demo not built yet")
}
