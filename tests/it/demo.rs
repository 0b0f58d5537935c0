//! `cdf-syncd demo`, the README's first command, through the real binary.

use std::process::Command;

#[test]
fn demo_uploads_the_sample_tree_and_every_file_matches() {
    let dir = tempfile::tempdir().expect("tmp");
    let out = Command::new(env!("CARGO_BIN_EXE_cdf-syncd"))
        .args(["demo", "--dir"])
        .arg(dir.path())
        .output()
        .expect("run demo");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "demo failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: Vec<&str> = stdout.lines().filter(|l| l.starts_with("/demo/")).collect();
    assert_eq!(rows.len(), 6, "{stdout}");
    assert!(rows.iter().all(|r| r.ends_with("same")), "{stdout}");
    assert!(
        rows.iter()
            .any(|r| r.contains("empty.log") && r.contains(" 0 ")),
        "{stdout}"
    );
    // The written configuration is valid for check-config as well.
    let check = Command::new(env!("CARGO_BIN_EXE_cdf-syncd"))
        .args(["check-config", "--config"])
        .arg(dir.path().join("cdf-syncd.toml"))
        .env("CDF_SYNCD_DEMO_SECRET", "demo-secret")
        .output()
        .expect("check-config");
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
}
