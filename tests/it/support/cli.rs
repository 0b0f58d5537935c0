//! Running the real `cdf-syncd` binary from tests: a command with a clean environment
//! (no inherited secrets or config paths) and its captured output.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;

/// What one run printed and how it exited.
#[derive(Debug)]
pub struct Output {
    /// The exit code; `None` when killed by a signal.
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    /// Both streams, for "never printed anywhere" checks.
    pub fn all(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }
}

/// The binary under test.
pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_cdf-syncd")
}

/// A path inside the repository (e.g. `config/demo.toml`).
pub fn repo_path(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// Runs `cdf-syncd <args>` with only `PATH` and `vars` in its environment.
pub fn run(args: &[&OsStr], vars: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(binary());
    cmd.args(args).env_clear();
    if let Some(path) = std::env::var_os("PATH") {
        cmd.env("PATH", path);
    }
    for (k, v) in vars {
        cmd.env(k, v);
    }
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", binary()));
    Output {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Runs `cdf-syncd check-config --config <path>`.
pub fn check_config(path: &Path, vars: &[(&str, &str)]) -> Output {
    run(
        &[
            "check-config".as_ref(),
            "--config".as_ref(),
            path.as_os_str(),
        ],
        vars,
    )
}
