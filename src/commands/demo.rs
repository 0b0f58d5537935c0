//! `cdf-syncd demo`: the whole path from a local tree to CDF, with no CDF account.
//!
//! Starts the built-in emulator on a free port, writes a sample tree (small files, an
//! empty file, a file large enough for several parts) and a configuration for it
//! (`config/demo.toml` pointed at this emulator and directory), runs the sync
//! pipeline on it (`sync --once`, in-process), and prints each file as the emulator
//! holds it, checked against the local SHA-256.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use sha2::Digest;

use tokio_util::sync::CancellationToken;

use crate::cdf::limits::MIN_PART;
use crate::cli::DemoArgs;
use crate::config::{RootSettings, Settings};
use crate::daemon::Mode;
use crate::emulator::{DEMO_CLIENT_SECRET, Emulator, EmulatorConfig, FileView};

const DEMO_CONFIG: &str = include_str!("../../config/demo.toml");
const SECRET_VAR: &str = "CDF_SYNCD_DEMO_SECRET";
const MIB: usize = 1024 * 1024;

/// The sample tree: relative path and size in bytes.
const SAMPLES: &[(&str, usize)] = &[
    ("line1/cam/img-0001.jpg", 48 * 1024),
    ("line1/cam/img-0002.jpg", 51 * 1024),
    ("line1/report.csv", 3 * 1024),
    ("line2/events.json", 700),
    ("line2/empty.log", 0),
    ("line2/recording.bin", 40 * MIB + 123),
];

pub fn run(args: &DemoArgs) -> anyhow::Result<()> {
    super::init_console_logging();
    let (_temp, dir) = match &args.dir {
        Some(dir) => (None, dir.clone()),
        None => {
            let temp = tempfile::Builder::new()
                .prefix("cdf-syncd-demo-")
                .tempdir()?;
            let path = temp.path().to_owned();
            (Some(temp), path)
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(demo(&dir))
}

async fn demo(dir: &Path) -> anyhow::Result<()> {
    let watch = dir.join("watch");
    let emulator = Emulator::start(EmulatorConfig {
        data_dir: Some(dir.join("emulator-data")),
        ..EmulatorConfig::default()
    })
    .await?;
    println!("CDF emulator listening on {}", emulator.base_url());
    write_samples(&watch)?;
    let (config_path, settings) = write_config(dir, &emulator.base_url())?;
    println!("sample tree in {}", watch.display());
    println!("configuration in {}\n", config_path.display());

    let root = settings
        .roots
        .first()
        .context("the demo configuration has no root")?
        .clone();
    let started = Instant::now();
    let tally =
        crate::daemon::run(settings, Mode::Once, MIN_PART, CancellationToken::new()).await?;
    println!(
        "\nsynced {} files in {:.1?} ({} failed)\n",
        tally.synced,
        started.elapsed(),
        tally.failed_jobs
    );

    let files = wait_uploaded(&emulator, SAMPLES.len()).await?;
    print_table(&files, &watch, &root)?;
    println!(
        "\nNext: keep an emulator running with `cdf-syncd emulator --listen 127.0.0.1:4300`, then\n\
         see how paths map with `CDF_SYNCD_DEMO_SECRET=demo-secret cdf-syncd check-config --config config/demo.toml`;\n\
         inspect what it holds at http://127.0.0.1:4300/_emulator/files (docs/EMULATOR.md)."
    );
    emulator.shutdown().await;
    Ok(())
}

/// Writes the sample tree; content is a deterministic pattern.
fn write_samples(watch: &Path) -> anyhow::Result<()> {
    for (i, (rel, size)) in SAMPLES.iter().enumerate() {
        let path = watch.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let bytes: Vec<u8> = (0..*size)
            .map(|n| (n as u8).wrapping_mul(7).wrapping_add(i as u8))
            .collect();
        std::fs::write(&path, bytes).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

/// `config/demo.toml`, pointed at this emulator and directory, written and validated.
fn write_config(dir: &Path, base_url: &str) -> anyhow::Result<(PathBuf, Settings)> {
    let dir_text = dir
        .to_str()
        .context("the demo directory is not valid UTF-8")?;
    let secret = dir.join("client-secret");
    std::fs::write(&secret, DEMO_CLIENT_SECRET)?;
    let text = DEMO_CONFIG
        .replace("http://127.0.0.1:4300", base_url)
        .replace("/tmp/cdf-syncd-demo", dir_text)
        .replace(
            &format!("client_secret_env = \"{SECRET_VAR}\""),
            &format!("client_secret_file = \"{}\"", secret.display()),
        );
    let path = dir.join("cdf-syncd.toml");
    std::fs::write(&path, &text)?;
    let settings = crate::config::parse(&text, &path.display().to_string())
        .map_err(|e| anyhow::anyhow!("the demo configuration is invalid:\n{e}"))?;
    Ok((path, settings))
}

/// The emulator's files once all `count` read `uploaded = true` (10 s deadline).
async fn wait_uploaded(emulator: &Emulator, count: usize) -> anyhow::Result<Vec<FileView>> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let files = emulator.files();
        if files.len() == count && files.iter().all(|f| f.uploaded) {
            return Ok(files);
        }
        if Instant::now() > deadline {
            bail!("the emulator does not report all {count} files uploaded");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn print_table(files: &[FileView], watch: &Path, root: &RootSettings) -> anyhow::Result<()> {
    println!(
        "{:<22} {:<16} {:>10}  {:<16}  local",
        "directory", "name", "size", "sha256"
    );
    let mut mismatches = 0;
    for (rel, _) in SAMPLES {
        let mapped = crate::mapping::map_file(root, Path::new(rel))?;
        let file = files
            .iter()
            .find(|f| f.external_id.as_deref() == Some(mapped.external_id.as_str()))
            .with_context(|| format!("{rel} is missing in the emulator"))?;
        let local = hex(&sha2::Sha256::digest(std::fs::read(watch.join(rel))?));
        let held = file.sha256.clone().unwrap_or_default();
        let same = held == local;
        mismatches += usize::from(!same);
        println!(
            "{:<22} {:<16} {:>10}  {:<16}  {}",
            file.directory.as_deref().unwrap_or("-"),
            file.name,
            file.size.unwrap_or(0),
            held.get(..16).unwrap_or(&held),
            if same { "same" } else { "DIFFERENT" }
        );
    }
    if mismatches > 0 {
        bail!("{mismatches} files differ from the local copy");
    }
    Ok(())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
