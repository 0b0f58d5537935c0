//! Tests of the whole load path (`parse_with_env`): defaults, substitution, error
//! locations and every validation rule (one module per section). Each rule's test
//! asserts the key, the line and the message, so it fails if the rule is removed.

mod cdf;
mod remote;
mod roots;
mod runtime;

use std::time::Duration;

use super::*;

pub(super) const AUTH: &str = "token_url = \"https://login.example.com/token\"\nclient_id = \"syncd\"\nclient_secret_env = \"SECRET\"";

/// A valid configuration with room for extra lines in `[cdf]`, `[cdf.auth]`, the root
/// and after it.
pub(super) fn config(cdf: &str, auth: &str, root: &str, tail: &str) -> String {
    format!(
        "[cdf]\nbase_url = \"https://westeurope-1.cognitedata.com\"\nproject = \"acme\"\n{cdf}\n\n[cdf.auth]\n{auth}\n\n\
         [[roots]]\nid = \"cams\"\npath = \"/data/export\"\ndirectory_prefix = \"/site-a\"\n{root}\n\n{tail}\n"
    )
}

pub(super) fn env(name: &str) -> Option<String> {
    match name {
        "SITE" => Some("site-a".into()),
        "WORKERS" => Some("6".into()),
        "HIDDEN" => Some("hunter2-value".into()),
        _ => None,
    }
}

pub(super) fn ok(text: &str) -> Settings {
    match parse_with_env(text, "test.toml", &env) {
        Ok(s) => s,
        Err(e) => panic!("expected a valid config, got:\n{e}\n---\n{text}"),
    }
}

pub(super) fn errors(text: &str) -> Vec<ConfigError> {
    match parse_with_env(text, "test.toml", &env) {
        Ok(_) => panic!("expected errors for:\n{text}"),
        Err(e) => e.errors().to_vec(),
    }
}

/// Asserts an error at the line holding `marker`, for `key`, whose message has `fragment`.
#[track_caller]
pub(super) fn check(text: &str, marker: &str, key: &str, fragment: &str) {
    let errs = errors(text);
    let at = text
        .find(marker)
        .unwrap_or_else(|| panic!("marker {marker:?} not in text"));
    let line = text[..at].matches('\n').count() + 1;
    let found = errs
        .iter()
        .any(|e| e.line == Some(line) && e.key == key && e.message.contains(fragment));
    let list: Vec<String> = errs.iter().map(ToString::to_string).collect();
    assert!(
        found,
        "no error at line {line} for `{key}` containing {fragment:?}; got:\n{}",
        list.join("\n")
    );
}

#[test]
fn minimal_config_gets_the_documented_defaults() {
    let s = ok(&config("", AUTH, "", ""));
    assert_eq!(
        s.cdf.base_url.as_str(),
        "https://westeurope-1.cognitedata.com/"
    );
    assert_eq!(s.cdf.target, Target::Classic);
    let AuthSettings::ClientCredentials(cc) = &s.cdf.auth else {
        panic!("client credentials")
    };
    assert_eq!(cc.client_secret, SecretSource::Env("SECRET".into()));
    assert_eq!(cc.scopes, ["https://westeurope-1.cognitedata.com/.default"]);
    let root = &s.roots[0];
    assert_eq!(root.external_id_prefix, "");
    assert_eq!(root.filter.patterns().temp, DEFAULT_TEMP_PATTERNS);
    assert_eq!(root.max_file_size, limits::FILE_SIZE_MAX);
    assert_eq!(
        (root.after_upload.clone(), root.on_change, root.on_delete),
        (AfterUpload::Keep, OnChange::Overwrite, OnDelete::Keep)
    );
    assert!(!root.follow_symlinks);
    assert_eq!(s.sync.stable_for, Duration::from_secs(5));
    assert_eq!(s.sync.scan_interval, Duration::from_secs(600));
    assert_eq!(s.sync.poll_interval, Duration::from_secs(30));
    assert_eq!(
        (s.sync.watch, s.sync.hash),
        (WatchMode::Auto, HashMode::None)
    );
    assert_eq!(s.upload.part_size, PartSize::Auto);
    assert_eq!(
        (s.upload.max_concurrent_files, s.upload.max_parallel_parts),
        (8, 4)
    );
    assert_eq!(s.upload.retry.max_request_retries, 10);
    assert_eq!(
        (s.upload.max_rate, s.upload.max_requests_per_second),
        (None, None)
    );
    assert_eq!(s.state.dir, std::path::Path::new(DEFAULT_STATE_DIR));
    assert_eq!(
        s.admin.socket,
        std::path::Path::new("/var/lib/cdf-syncd/admin.sock")
    );
    assert_eq!(s.admin.shutdown_grace, Duration::from_secs(20));
    assert_eq!(
        (s.log.format, s.log.level.as_str()),
        (LogFormat::Text, "info")
    );
}

#[test]
fn every_shipped_example_parses() {
    let lookup = |n: &str| match n {
        "CDF_SYNCD_DEMO_SECRET" => Some("x".to_owned()),
        other => env(other),
    };
    for (name, text) in [
        (
            "cdf-syncd.example.toml",
            include_str!("../../../config/cdf-syncd.example.toml"),
        ),
        ("demo.toml", include_str!("../../../config/demo.toml")),
        (
            "data-modeling.example.toml",
            include_str!("../../../config/data-modeling.example.toml"),
        ),
    ] {
        if let Err(e) = parse_with_env(text, name, &lookup) {
            panic!("{name}:\n{e}");
        }
    }
}

#[test]
fn env_substitution_fills_strings_and_numbers() {
    let s = ok(&config(
        "",
        AUTH,
        "external_id_prefix = \"${SITE}:\"",
        "[upload]\nmax_concurrent_files = ${WORKERS}",
    ));
    assert_eq!(s.roots[0].external_id_prefix, "site-a:");
    assert_eq!(s.upload.max_concurrent_files, 6);
    let s = ok(&config(
        "",
        AUTH,
        "metadata = { note = \"$${SITE} literally\" }",
        "",
    ));
    assert_eq!(s.roots[0].fields.metadata["note"], "${SITE} literally");
}

#[test]
fn a_missing_variable_names_itself_and_its_line() {
    let text = config("", AUTH, "source = \"${NOT_SET_ANYWHERE}\"", "");
    check(
        &text,
        "${NOT_SET",
        "roots[0].source",
        "`NOT_SET_ANYWHERE` is not set",
    );
}

#[test]
fn substituted_values_never_appear_in_errors_and_lines_stay_original() {
    // The value lands where an integer is expected: toml would quote it.
    let text = config(
        "",
        AUTH,
        "",
        "# a comment\n[upload]\nmax_concurrent_files = \"${HIDDEN}\"\n",
    );
    let errs = errors(&text);
    let all: String = errs.iter().map(ToString::to_string).collect();
    assert!(!all.contains("hunter2"), "{all}");
    assert!(all.contains("${HIDDEN}"), "{all}");
    check(
        &text,
        "max_concurrent_files",
        "upload.max_concurrent_files",
        "",
    );
    // A semantic error about a substituted value.
    let text = config("", AUTH, "", "[state]\ndir = \"${HIDDEN}\"\n");
    let all: String = errors(&text).iter().map(ToString::to_string).collect();
    assert!(
        !all.contains("hunter2") && all.contains("relative"),
        "{all}"
    );
}

#[test]
fn syntax_unknown_keys_and_types_name_key_and_line() {
    check(
        &config("", AUTH, "", "[upload]\nmax_paralel_parts = 2"),
        "max_paralel_parts",
        "upload.max_paralel_parts",
        "unknown field `max_paralel_parts`, expected one of",
    );
    check(
        &config("colour = 1", AUTH, "", ""),
        "colour",
        "cdf.colour",
        "unknown field",
    );
    check(
        &config("", AUTH, "", "[nonsense]\na = 1"),
        "[nonsense]",
        "nonsense",
        "unknown field `nonsense`",
    );
    check(
        &config("", AUTH, "follow_symlinks = \"yes\"", ""),
        "follow_symlinks",
        "roots[0].follow_symlinks",
        "expected a boolean",
    );
    check(
        &config("", AUTH, "", "[sync]\nwatch = \"inotify\""),
        "watch",
        "sync.watch",
        "expected one of `auto`, `native`, `poll`",
    );
    check(
        &config("", AUTH, "", "[sync]\nstable_for = \"5 parsecs\""),
        "stable_for",
        "sync.stable_for",
        "invalid duration",
    );
    check(
        &config("", AUTH, "max_file_size = \"huge\"", ""),
        "max_file_size",
        "roots[0].max_file_size",
        "invalid size",
    );
    check(
        &config("", AUTH, "", "[log\nlevel = 1"),
        "[log",
        "log",
        "unclosed table",
    );
    let missing =
        "[cdf]\nbase_url = \"https://x.example\"\n\n[[roots]]\nid = \"a\"\npath = \"/a\"\n";
    check(missing, "[cdf]", "cdf", "missing field `project`");
}

#[test]
fn all_semantic_errors_are_collected() {
    let text = config("", AUTH, "directory_prefix_x = 1", "");
    assert_eq!(
        errors(&text).len(),
        1,
        "one syntax-level error stops parsing"
    );
    let text = config(
        "",
        AUTH,
        "labels = [\"a\",\"a\"]\ndata_set_id = 0",
        "[upload]\npart_size = \"1 MiB\"\n[log]\nlevel = \"loud\"",
    );
    let errs = errors(&text);
    assert_eq!(errs.len(), 4, "{errs:#?}");
    let shown = ConfigErrors::new(errs).to_string();
    assert_eq!(shown.lines().count(), 4);
    assert!(
        shown.lines().all(|l| l.starts_with("test.toml:")),
        "{shown}"
    );
}

#[test]
fn load_reports_unreadable_files() {
    let err = load(std::path::Path::new("/nonexistent/cdf-syncd.toml")).unwrap_err();
    assert!(err.to_string().contains("cannot read"), "{err}");
}
