//! `cdf-syncd check-config` end to end: every shipped file in `config/` is valid and
//! shows its mapping; bad files exit 2 with errors naming the file, line and key; and
//! no secret ever reaches the output.

use std::path::{Path, PathBuf};

use crate::support::cli::{Output, check_config, repo_path};

const DEMO_SECRET: (&str, &str) = ("CDF_SYNCD_DEMO_SECRET", "demo-secret");

/// A valid base that bad cases modify; its root starts at line 10.
const BASE: &str = "\
[cdf]
base_url = \"https://westeurope-1.cognitedata.com\"
project = \"acme\"

[cdf.auth]
token_url = \"https://login.example.com/token\"
client_id = \"syncd\"
client_secret_env = \"CDF_SECRET\"

[[roots]]
id = \"cams\"
path = \"/data/export\"
directory_prefix = \"/site-a\"
";

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
    path
}

#[test]
fn every_file_in_config_dir_is_valid_and_shows_its_mapping() {
    let mut seen = 0;
    for entry in std::fs::read_dir(repo_path("config")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "toml") {
            continue;
        }
        seen += 1;
        let out = check_config(&path, &[DEMO_SECRET]);
        assert_eq!(out.code, Some(0), "{}:\n{}", path.display(), out.stderr);
        for needle in [
            "valid",
            "example: ",
            "-> directory",
            "name",
            "externalId",
            "mimeType",
            "Upload",
            "Sync",
        ] {
            assert!(
                out.stdout.contains(needle),
                "{} lacks {needle:?}:\n{}",
                path.display(),
                out.stdout
            );
        }
    }
    assert!(
        seen >= 3,
        "expected the example, demo and data-modeling configs, found {seen}"
    );
}

#[test]
fn demo_plan_maps_a_local_path_to_cdf_fields() {
    let out = check_config(&repo_path("config/demo.toml"), &[DEMO_SECRET]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let plan = &out.stdout;
    assert!(plan.contains("http://127.0.0.1:4300/"), "{plan}");
    assert!(plan.contains("project               demo"), "{plan}");
    assert!(
        plan.contains("example: /tmp/cdf-syncd-demo/watch/line1/cam/img.jpg"),
        "{plan}"
    );
    assert!(
        plan.contains("-> directory        /demo/line1/cam"),
        "{plan}"
    );
    assert!(plan.contains("name             img.jpg"), "{plan}");
    assert!(
        plan.contains("externalId       demo:/line1/cam/img.jpg"),
        "{plan}"
    );
    assert!(
        plan.contains("from environment variable CDF_SYNCD_DEMO_SECRET (available)"),
        "{plan}"
    );
}

/// (what, text, line, key, message fragment)
#[rustfmt::skip]
fn bad_cases() -> Vec<(&'static str, String, usize, &'static str, &'static str)> {
    let root = |extra: &str| format!("{BASE}{extra}\n");
    let labels = (0..11).map(|i| format!("\"l{i}\"")).collect::<Vec<_>>().join(",");
    vec![
        ("unknown key", root("colour = \"red\""), 14, "roots[0].colour", "unknown field `colour`"),
        ("wrong type", root("[upload]\nmax_concurrent_files = \"four\""), 15, "upload.max_concurrent_files", "invalid type"),
        ("relative root path", BASE.replace("\"/data/export\"", "\"data/export\""), 12, "roots[0].path", "relative path"),
        ("prefix not absolute", BASE.replace("\"/site-a\"", "\"site-a\""), 13, "roots[0].directory_prefix", "not absolute"),
        ("prefix too long", BASE.replace("\"/site-a\"", &format!("\"/{}\"", "x".repeat(600))), 13, "roots[0].directory_prefix", "at most 512"),
        ("nested roots", root("\n[[roots]]\nid = \"inner\"\npath = \"/data/export/line1\""), 17, "roots[1].path", "must not be nested"),
        ("duplicate ids", root("\n[[roots]]\nid = \"cams\"\npath = \"/other\""), 16, "roots[1].id", "duplicate root id"),
        ("part size too small", root("[upload]\npart_size = \"4 MiB\""), 15, "upload.part_size", "5 MiB..=4000 MiB"),
        ("part size too large", root("[upload]\npart_size = \"5000 MiB\""), 15, "upload.part_size", "5 MiB..=4000 MiB"),
        ("no secret source", BASE.replace("client_secret_env = \"CDF_SECRET\"", ""), 5, "cdf.auth", "missing client secret source"),
        ("two secret sources", BASE.replace("\"CDF_SECRET\"", "\"CDF_SECRET\"\nclient_secret_file = \"/etc/s\""), 9, "cdf.auth.client_secret_file", "more than one"),
        ("plain http", BASE.replace("https://westeurope", "http://westeurope"), 2, "cdf.base_url", "allow_insecure_http = true"),
        ("data set twice", root("data_set_id = 1\ndata_set_external_id = \"ds\""), 15, "roots[0].data_set_external_id", "both set"),
        ("too many labels", root(&format!("labels = [{labels}]")), 14, "roots[0].labels", "at most 10"),
        ("metadata value too long", root(&format!("metadata = {{ k = \"{}\" }}", "v".repeat(10_241))), 14, "roots[0].metadata.k", "at most 10240"),
        ("bad glob", root("exclude = [\"[oops\"]"), 14, "roots[0].exclude", "invalid glob"),
        ("dm without space", BASE.replace("project = \"acme\"", "project = \"acme\"\ntarget = \"data-modeling\""), 4, "cdf.space", "needs `space`"),
        ("missing env var", BASE.replace("\"acme\"", "\"${CDF_SYNCD_TEST_UNSET_VAR}\""), 3, "cdf.project", "`CDF_SYNCD_TEST_UNSET_VAR` is not set"),
        ("syntax error", root("[upload\nx = 1"), 14, "upload", "unclosed table"),
    ]
}

#[test]
fn bad_configs_exit_2_naming_file_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    for (what, text, line, key, fragment) in bad_cases() {
        let path = write(dir.path(), "bad.toml", &text);
        let out = check_config(&path, &[]);
        assert_eq!(
            out.code,
            Some(2),
            "{what}: expected exit 2\n{}{}",
            out.stdout,
            out.stderr
        );
        let prefix = format!("{}:{line}: {key}: ", path.display());
        let hit = out
            .stderr
            .lines()
            .any(|l| l.starts_with(&prefix) && l.contains(fragment));
        assert!(
            hit,
            "{what}: no line starting {prefix:?} with {fragment:?} in:\n{}",
            out.stderr
        );
        assert!(
            out.stdout.is_empty(),
            "{what}: nothing on stdout when invalid"
        );
    }
}

#[test]
fn all_problems_are_listed_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let text = BASE
        .replace("\"/site-a\"", "\"site-a\"")
        .replace("\"/data/export\"", "\"data\"")
        + "[upload]\npart_size = \"1 MiB\"\n";
    let out = check_config(&write(dir.path(), "many.toml", &text), &[]);
    assert_eq!(out.code, Some(2));
    assert!(out.stderr.contains("(3 problems)"), "{}", out.stderr);
}

#[test]
fn a_missing_file_exits_2() {
    let out = check_config(Path::new("/nonexistent/cdf-syncd.toml"), &[]);
    assert_eq!(out.code, Some(2));
    assert!(
        out.stderr.contains("cannot read the configuration file"),
        "{}",
        out.stderr
    );
}

fn assert_hidden(out: &Output, secret: &str) {
    assert!(
        !out.all().contains(secret),
        "the secret leaked:\n{}",
        out.all()
    );
}

#[test]
fn secrets_never_appear_in_any_output() {
    let secret = "s3cr3t-Zq9-never-print-me";
    let dir = tempfile::tempdir().unwrap();
    // A valid config whose secret is in the environment: the plan names the variable only.
    let out = check_config(
        &repo_path("config/demo.toml"),
        &[("CDF_SYNCD_DEMO_SECRET", secret)],
    );
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(out.stdout.contains("CDF_SYNCD_DEMO_SECRET"));
    assert_hidden(&out, secret);
    // A secret file: the plan names the file, never its content.
    let file = write(dir.path(), "secret", secret);
    let text = BASE.replace(
        "client_secret_env = \"CDF_SECRET\"",
        &format!("client_secret_file = \"{}\"", file.display()),
    );
    let out = check_config(&write(dir.path(), "file.toml", &text), &[]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_hidden(&out, secret);
    // A substituted value in an invalid place: the error shows ${NAME}, not the value.
    let text = format!("{BASE}[upload]\nmax_parallel_parts = \"${{CDF_SECRET}}\"\n");
    let out = check_config(
        &write(dir.path(), "subst.toml", &text),
        &[("CDF_SECRET", secret)],
    );
    assert_eq!(out.code, Some(2));
    assert!(out.stderr.contains("${CDF_SECRET}"), "{}", out.stderr);
    assert_hidden(&out, secret);
    // A secret pasted into the file is refused without being echoed.
    let text = BASE.replace(
        "client_secret_env = \"CDF_SECRET\"",
        &format!("client_secret = \"{secret}\""),
    );
    let out = check_config(&write(dir.path(), "inline.toml", &text), &[]);
    assert_eq!(out.code, Some(2));
    assert!(
        out.stderr
            .contains("cdf.auth.client_secret: a secret must not be written"),
        "{}",
        out.stderr
    );
    assert_hidden(&out, secret);
    // ...nor when pasted where a variable name belongs.
    let text = BASE.replace("\"CDF_SECRET\"", &format!("\"{secret}\""));
    let out = check_config(&write(dir.path(), "pasted.toml", &text), &[]);
    assert_eq!(out.code, Some(2));
    assert_hidden(&out, secret);
}
