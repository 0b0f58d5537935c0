//! `cdf-syncd sync --once` end to end: the real binary against an in-process emulator
//! in strict-headers mode, on a tree with nested directories, empty files, multipart
//! files, unicode and long names, and excluded names.

use std::path::{Path, PathBuf};
use std::process::Command;

use cdf_syncd::emulator::{EmulatorConfig, FileView};

use crate::support::emulator::{TestCdf, sha256_hex};

const PART: usize = 64 * 1024;

struct Sync {
    cdf: TestCdf,
    dir: tempfile::TempDir,
    config: PathBuf,
}

impl Sync {
    async fn new() -> Self {
        let cdf = TestCdf::start(EmulatorConfig {
            strict_headers: true,
            min_part_size: PART as u64,
            ..EmulatorConfig::default()
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
[sync]
stable_for = "200ms"
[upload]
part_size = "64 KiB"
max_parallel_parts = 3
[state]
dir = "{state}"
"#,
            project = cdf.emu.project(),
            watch = dir.path().join("watch").display(),
            state = dir.path().join("state").display(),
        );
        std::fs::write(&config, text).expect("config");
        Self { cdf, dir, config }
    }

    fn watch(&self) -> PathBuf {
        self.dir.path().join("watch")
    }

    fn write(&self, rel: &str, bytes: &[u8]) {
        let path = self.watch().join(rel);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, bytes).expect("write");
    }

    /// Runs `sync --once` in a blocking thread (the emulator serves on this runtime).
    async fn sync_once(&self) -> (bool, String) {
        let config = self.config.clone();
        let out = tokio::task::spawn_blocking(move || {
            Command::new(env!("CARGO_BIN_EXE_cdf-syncd"))
                .args(["sync", "--once", "--config"])
                .arg(config)
                .env("IT_SECRET", "demo-secret")
                .env("RUST_LOG", "info")
                .output()
                .expect("run sync")
        })
        .await
        .expect("join");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    }

    fn held(&self, external_id: &str) -> FileView {
        self.cdf
            .emu
            .files()
            .into_iter()
            .find(|f| f.external_id.as_deref() == Some(external_id))
            .unwrap_or_else(|| {
                panic!(
                    "{external_id} not in the emulator: {:#?}",
                    self.cdf.emu.files()
                )
            })
    }
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(13).wrapping_add(seed))
        .collect()
}

fn assert_synced(s: &Sync, rel: &str, bytes: &[u8]) -> FileView {
    let f = s.held(&format!("gw:it:/{rel}"));
    assert!(f.uploaded, "{rel} uploaded");
    assert_eq!(f.size, Some(bytes.len() as u64), "{rel} size");
    assert_eq!(
        f.sha256.as_deref(),
        Some(sha256_hex(bytes).as_str()),
        "{rel} content"
    );
    let dir = Path::new(rel)
        .parent()
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default();
    let want = if dir.is_empty() {
        "/site".to_owned()
    } else {
        format!("/site/{dir}")
    };
    assert_eq!(
        f.directory.as_deref(),
        Some(want.as_str()),
        "{rel} directory"
    );
    f
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_once_uploads_a_mixed_tree_exactly_once() {
    let s = Sync::new().await;
    let long = format!("{}.txt", "n".repeat(200));
    let files: Vec<(String, Vec<u8>)> = vec![
        ("top.txt".into(), pattern(100, 1)),
        ("a/b/c/deep.csv".into(), pattern(3000, 2)),
        ("a/empty.log".into(), Vec::new()),
        ("big/multi.bin".into(), pattern(5 * PART + 99, 3)),
        ("ünïcødé/fïlé 1.txt".into(), pattern(10, 4)),
        (format!("long/{long}"), pattern(20, 5)),
    ];
    for (rel, bytes) in &files {
        s.write(rel, bytes);
    }
    s.write("ignored.tmp", b"temp");
    s.write(".hidden", b"hidden");
    s.write("a/x.skip", b"excluded");

    let (ok, out) = s.sync_once().await;
    assert!(ok, "sync failed: {out}");
    for (rel, bytes) in &files {
        assert_synced(&s, rel, bytes);
    }
    assert_eq!(
        s.cdf.emu.files().len(),
        files.len(),
        "only the included files"
    );
    let c = s.cdf.emu.counters();
    assert_eq!(c.bearer_on_upload_urls, 0);
    assert!(c.header_violations.values().all(|n| *n == 0), "{c:?}");

    // A second run finds nothing to do.
    let before = s.cdf.emu.counters();
    let (ok, out) = s.sync_once().await;
    assert!(ok, "{out}");
    let after = s.cdf.emu.counters();
    assert_eq!(
        after.put_bytes_received, before.put_bytes_received,
        "nothing re-sent: {out}"
    );
    assert_eq!(
        after.total("POST files/initmultipartupload"),
        before.total("POST files/initmultipartupload")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_file_is_overwritten_under_the_same_id() {
    let s = Sync::new().await;
    s.write("r/report.csv", &pattern(500, 7));
    let (ok, out) = s.sync_once().await;
    assert!(ok, "{out}");
    let first = assert_synced(&s, "r/report.csv", &pattern(500, 7));

    let changed = pattern(2 * PART + 5, 8);
    s.write("r/report.csv", &changed);
    let (ok, out) = s.sync_once().await;
    assert!(ok, "{out}");
    let second = assert_synced(&s, "r/report.csv", &changed);
    assert_eq!(second.id, first.id, "same CDF file");
    assert_eq!(second.content_writes, 2);
    assert_eq!(s.cdf.emu.files().len(), 1);
}
