//! A watched tree, its configuration and an emulator, for tests that run the real
//! `cdf-syncd` binary (`sync --once`, `run`) against the in-process emulator.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cdf_syncd::emulator::{EmulatorConfig, FileView};

use super::emulator::TestCdf;

/// The `[upload]` retry settings of [`Tree::new`]: quick, so that tests of retries,
/// pauses and probes finish fast.
pub const QUICK_RETRIES: &str = r#"max_request_retries = 3
initial_backoff = "50ms"
max_backoff = "1s""#;

/// Multipart part size the tests configure (the emulator's minimum is lowered to it).
pub const PART: usize = 64 * 1024;

/// The instance space of the data-modeling target in the tests.
pub const DM_SPACE: &str = "edge-files";

/// Where the tree's files go: `[cdf] target`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Classic,
    /// CogniteFile nodes in [`DM_SPACE`] through the default view.
    DataModeling,
}

impl Target {
    /// The `[cdf]` lines that select this target.
    fn cdf_lines(self) -> String {
        match self {
            Target::Classic => String::new(),
            Target::DataModeling => format!("target = \"data-modeling\"\nspace = \"{DM_SPACE}\""),
        }
    }
}

pub struct Tree {
    pub cdf: TestCdf,
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    pub target: Target,
}

impl Tree {
    /// A strict-headers emulator and a configuration with one root `it` at `watch/`,
    /// 64 KiB parts and a short `stable_for`; `root_extra` goes into the root's table.
    pub async fn new(root_extra: &str) -> Self {
        Self::with_emulator(EmulatorConfig::default(), root_extra).await
    }

    /// Like [`Tree::new`], with emulator settings (strict headers and the lowered
    /// minimum part size are always set).
    pub async fn with_emulator(emulator: EmulatorConfig, root_extra: &str) -> Self {
        Self::with_upload(emulator, root_extra, QUICK_RETRIES).await
    }

    /// Like [`Tree::with_emulator`]; `upload_extra` goes into the `[upload]` table
    /// (which already sets `part_size` and `max_parallel_parts`).
    pub async fn with_upload(
        emulator: EmulatorConfig,
        root_extra: &str,
        upload_extra: &str,
    ) -> Self {
        Self::build(Target::Classic, "", emulator, root_extra, upload_extra).await
    }

    /// Like [`Tree::with_emulator`], syncing to `target`.
    pub async fn for_target(target: Target, emulator: EmulatorConfig, root_extra: &str) -> Self {
        Self::build(target, "", emulator, root_extra, QUICK_RETRIES).await
    }

    /// The general form: `cdf_extra` goes into `[cdf]` after the target's lines.
    pub async fn build(
        target: Target,
        cdf_extra: &str,
        emulator: EmulatorConfig,
        root_extra: &str,
        upload_extra: &str,
    ) -> Self {
        let cdf = TestCdf::start(EmulatorConfig {
            strict_headers: true,
            min_part_size: PART as u64,
            ..emulator
        })
        .await;
        let dir = tempfile::tempdir().expect("tmp");
        std::fs::create_dir_all(dir.path().join("watch")).expect("mkdir");
        let config = dir.path().join("cdf-syncd.toml");
        let base = cdf.emu.base_url();
        let text = format!(
            r#"
[cdf]
base_url = "{base}"
project = "{project}"
allow_insecure_http = true
{target_lines}
{cdf_extra}
[cdf.auth]
token_url = "{base}/oauth2/token"
client_id = "cdf-syncd-demo"
client_secret_env = "IT_SECRET"
[[roots]]
id = "it"
path = "{watch}"
directory_prefix = "/site"
external_id_prefix = "gw:"
exclude = ["*.skip"]
{root_extra}
[sync]
stable_for = "200ms"
[upload]
part_size = "64 KiB"
max_parallel_parts = 3
{upload_extra}
[state]
dir = "{state}"
"#,
            project = cdf.emu.project(),
            target_lines = target.cdf_lines(),
            watch = dir.path().join("watch").display(),
            state = dir.path().join("state").display(),
        );
        std::fs::write(&config, text).expect("config");
        Self {
            cdf,
            dir,
            config,
            target,
        }
    }

    pub fn watch(&self) -> PathBuf {
        self.dir.path().join("watch")
    }

    /// The daemon's state directory (its job store).
    pub fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    pub fn write(&self, rel: &str, bytes: &[u8]) {
        let path = self.watch().join(rel);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, bytes).expect("write");
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_cdf-syncd"));
        cmd.args(args)
            .arg("--config")
            .arg(&self.config)
            .env("IT_SECRET", "demo-secret")
            .env("RUST_LOG", "info");
        cmd
    }

    /// Runs `sync --once` in a blocking thread (the emulator serves on this runtime).
    pub async fn sync_once(&self) -> (bool, String) {
        self.sync_once_wrapped(&[]).await
    }

    /// [`Tree::sync_once`] run through a wrapper command (e.g. `setpriv ...`).
    pub async fn sync_once_wrapped(&self, wrapper: &[&str]) -> (bool, String) {
        let mut cmd = self.command(&["sync", "--once"]);
        if let Some((program, args)) = wrapper.split_first() {
            let inner = cmd;
            cmd = Command::new(program);
            cmd.args(args)
                .arg(inner.get_program())
                .args(inner.get_args())
                .envs(inner.get_envs().filter_map(|(k, v)| Some((k, v?))));
        }
        let out = tokio::task::spawn_blocking(move || cmd.output().expect("run sync"))
            .await
            .expect("join");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    }

    /// Starts the daemon (`run`); its log goes to `<dir>/daemon-<n>.log`.
    pub fn start_daemon(&self, n: usize) -> Child {
        let log =
            std::fs::File::create(self.dir.path().join(format!("daemon-{n}.log"))).expect("log");
        self.command(&["run"])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn daemon")
    }

    /// [`Tree::start_daemon`] with extra environment (e.g. a wrong `IT_SECRET`).
    pub fn start_daemon_env(&self, n: usize, env: &[(&str, &str)]) -> Child {
        let log =
            std::fs::File::create(self.dir.path().join(format!("daemon-{n}.log"))).expect("log");
        self.command(&["run"])
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn daemon")
    }

    /// Runs `cdf-syncd <args> --config <this tree's config>` off the runtime (the
    /// emulator serves on it).
    pub async fn cli(&self, args: &[&str]) -> super::cli::Output {
        let mut argv: Vec<std::ffi::OsString> = args.iter().map(std::ffi::OsString::from).collect();
        argv.push("--config".into());
        argv.push(self.config.clone().into());
        tokio::task::spawn_blocking(move || {
            let argv: Vec<&std::ffi::OsStr> = argv.iter().map(|a| a.as_os_str()).collect();
            super::cli::run(&argv, &[("IT_SECRET", "demo-secret")])
        })
        .await
        .expect("join")
    }

    /// Opens the job store of a stopped daemon.
    pub fn store(&self) -> cdf_syncd::store::Store {
        cdf_syncd::store::Store::open(
            self.dir.path().join("state"),
            cdf_syncd::store::StoreOptions::default(),
        )
        .expect("open the job store")
    }

    pub fn daemon_log(&self, n: usize) -> String {
        std::fs::read_to_string(self.dir.path().join(format!("daemon-{n}.log"))).unwrap_or_default()
    }

    /// The externalId a file is known by for this tree's target: the file's own
    /// (classic) or its node's (data modeling, which must be in [`DM_SPACE`]).
    pub fn xid_of<'f>(&self, f: &'f FileView) -> Option<&'f str> {
        match self.target {
            Target::Classic => f.external_id.as_deref(),
            Target::DataModeling => f
                .instance_id
                .as_ref()
                .filter(|i| i.space == DM_SPACE)
                .map(|i| i.external_id.as_str()),
        }
    }

    /// The emulator's file with this externalId (for data modeling: its node's).
    pub fn held(&self, external_id: &str) -> FileView {
        self.cdf
            .emu
            .files()
            .into_iter()
            .find(|f| self.xid_of(f) == Some(external_id))
            .unwrap_or_else(|| {
                panic!(
                    "{external_id} not in the emulator: {:#?}",
                    self.cdf.emu.files()
                )
            })
    }
}

/// A deterministic byte pattern.
pub fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(13).wrapping_add(seed))
        .collect()
}

/// How often the polling helpers look again.
const POLL: Duration = Duration::from_millis(20);

/// [`super::wait_until`] for a condition that needs no `.await`.
pub async fn wait_for(secs: u64, what: &str, mut cond: impl FnMut() -> bool) {
    super::wait_until(secs, what, || std::future::ready(cond())).await;
}

/// SIGTERM, then waits for the exit status (SIGKILL after 15 s).
pub async fn terminate(mut child: Child) -> std::process::ExitStatus {
    let pid = child.id().to_string();
    let _ = Command::new("kill").args(["-TERM", &pid]).status();
    tokio::task::spawn_blocking(move || {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(status) = child.try_wait().expect("wait") {
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                return child.wait().expect("wait");
            }
            std::thread::sleep(POLL);
        }
    })
    .await
    .expect("join")
}
