//! `cdf-syncd demo`: the whole path from a local tree to CDF, with no CDF account.
//!
//! Starts the built-in emulator on a free port, writes a sample tree (small files, an
//! empty file, a file large enough for several parts) and a configuration for it
//! (`config/demo.toml` pointed at this emulator and directory), uploads every file the
//! way cdf-syncd does, and prints each file as the emulator holds it, checked against
//! the local SHA-256. Once the daemon exists (sync-pipeline issue), the upload loop is
//! replaced by the daemon itself.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use sha2::Digest;

use crate::cdf::{CdfClient, ClientConfig};
use crate::cli::DemoArgs;
use crate::config::{PartSize, RootSettings, Settings};
use crate::emulator::{DEMO_CLIENT_SECRET, Emulator, EmulatorConfig, FileView};
use crate::upload::{UploadRequest, file_create, upload_whole};

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

    let env = |name: &str| (name == SECRET_VAR).then(|| DEMO_CLIENT_SECRET.to_owned());
    let client = CdfClient::new(ClientConfig::from_settings(&settings, &env)?)?;
    let root = settings
        .roots
        .first()
        .context("the demo configuration has no root")?;
    let started = Instant::now();
    for (rel, _) in SAMPLES {
        upload_one(&client, &settings, root, &watch, Path::new(rel)).await?;
    }
    println!(
        "\nuploaded {} files in {:.1?}\n",
        SAMPLES.len(),
        started.elapsed()
    );

    let files = wait_uploaded(&emulator, SAMPLES.len()).await?;
    print_table(&files, &watch, root)?;
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
    let text = DEMO_CONFIG
        .replace("http://127.0.0.1:4300", base_url)
        .replace("/tmp/cdf-syncd-demo", dir_text);
    let path = dir.join("cdf-syncd.toml");
    std::fs::write(&path, &text)?;
    let env = |name: &str| (name == SECRET_VAR).then(|| DEMO_CLIENT_SECRET.to_owned());
    let settings = crate::config::parse_with_env(&text, &path.display().to_string(), &env)
        .map_err(|e| anyhow::anyhow!("the demo configuration is invalid:\n{e}"))?;
    Ok((path, settings))
}

async fn upload_one(
    client: &CdfClient,
    settings: &Settings,
    root: &RootSettings,
    watch: &Path,
    rel: &Path,
) -> anyhow::Result<()> {
    let path = watch.join(rel);
    let mapped = crate::mapping::map_file(root, rel)?;
    let size = tokio::fs::metadata(&path).await?.len();
    let request = UploadRequest {
        path,
        size,
        file: file_create(&mapped, None),
        overwrite: false,
        part_size: match settings.upload.part_size {
            PartSize::Auto => None,
            PartSize::Fixed(n) => Some(n),
        },
        min_part_size: crate::cdf::limits::MIN_PART,
        max_parallel_parts: settings.upload.max_parallel_parts,
    };
    let started = Instant::now();
    let file = upload_whole(client, &request).await?;
    println!(
        "  uploaded {:<28} {:>10}  {:>7.1?}  id {}",
        rel.display(),
        bytesize::ByteSize::b(size).to_string(),
        started.elapsed(),
        file.id
    );
    Ok(())
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
