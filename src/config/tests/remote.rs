//! The remote config: merged over the local file table by table, validated by the same
//! rules, errors located in the remote text; the pipeline reporter's intervals.

use super::*;

fn local() -> Settings {
    ok(&config(
        "remote_config = true\nextraction_pipeline = \"gw\"",
        AUTH,
        "",
        "[state]\ndir = \"/var/lib/syncd\"",
    ))
}

fn remote(text: &str) -> RemoteConfig {
    RemoteConfig {
        revision: 7,
        text: text.to_owned(),
    }
}

#[test]
fn remote_tables_replace_the_local_ones_and_absent_ones_stay() {
    let local = local();
    let merged = merge_remote(
        &local,
        &remote(
            "[[roots]]\nid = \"far\"\npath = \"/srv/far\"\n\n[upload]\nmax_concurrent_files = 9\n",
        ),
    )
    .expect("valid");
    assert_eq!(merged.roots.len(), 1);
    assert_eq!(merged.roots[0].id, "far");
    assert_eq!(merged.upload.max_concurrent_files, 9);
    assert_eq!(merged.sync.stable_for, local.sync.stable_for);
    assert_eq!(merged.state.dir, local.state.dir);
    // Without [[roots]] the local roots stay.
    let merged = merge_remote(&local, &remote("[sync]\nstable_for = \"9s\"\n")).expect("valid");
    assert_eq!(merged.roots[0].id, "cams");
    assert_eq!(merged.sync.stable_for, Duration::from_secs(9));
}

#[test]
fn remote_errors_name_the_revision_line_and_key() {
    let errs = merge_remote(
        &local(),
        &remote("[[roots]]\nid = \"far\"\npath = \"relative/dir\"\n"),
    )
    .expect_err("invalid");
    let text = errs.to_string();
    assert!(
        text.starts_with("remote config (revision 7):3: roots[0].path: "),
        "{text}"
    );
    let errs = merge_remote(&local(), &remote("[cdf]\nproject = \"other\"\n")).expect_err("x");
    assert!(
        errs.to_string().contains("remote config (revision 7):1"),
        "{errs}"
    );
    let errs = merge_remote(
        &local(),
        &remote("[[roots]]\nid = \"s\"\npath = \"/var/lib/syncd/x\"\n"),
    )
    .expect_err("overlaps the state dir");
    assert!(errs.to_string().contains("state directory"), "{errs}");
    // No substitution: `${VAR}` is text (and here a relative path).
    let errs = merge_remote(
        &local(),
        &remote("[[roots]]\nid = \"s\"\npath = \"${HIDDEN}\"\n"),
    )
    .expect_err("relative");
    assert!(!errs.to_string().contains("hunter2"), "{errs}");
}

#[test]
fn no_roots_anywhere_is_an_error() {
    let none = config(
        "remote_config = true\nextraction_pipeline = \"gw\"",
        AUTH,
        "",
        "",
    )
    .replace(
        "[[roots]]\nid = \"cams\"\npath = \"/data/export\"\ndirectory_prefix = \"/site-a\"\n",
        "",
    );
    let errs = merge_remote(&ok(&none), &remote("[upload]\nmax_concurrent_files = 2\n"))
        .expect_err("no roots");
    assert!(errs.to_string().contains("no [[roots]]"), "{errs}");
}

#[test]
fn pipeline_intervals_default_and_need_their_feature() {
    let s = local();
    assert_eq!(s.cdf.pipeline_timing, PipelineTiming::default());
    assert_eq!(s.cdf.pipeline_timing.heartbeat, Duration::from_secs(600));
    let s = ok(&config(
        "extraction_pipeline = \"gw\"\nremote_config = true\nextraction_pipeline_heartbeat = \"2s\"\n\
         extraction_pipeline_failure_after = \"3s\"\nremote_config_interval = \"4s\"",
        AUTH,
        "",
        "",
    ));
    let t = s.cdf.pipeline_timing;
    assert_eq!(
        (t.heartbeat, t.failure_after, t.remote_config_interval),
        (
            Duration::from_secs(2),
            Duration::from_secs(3),
            Duration::from_secs(4)
        )
    );
    check(
        &config("extraction_pipeline_heartbeat = \"5s\"", AUTH, "", ""),
        "extraction_pipeline_heartbeat",
        "cdf.extraction_pipeline_heartbeat",
        "without `extraction_pipeline`",
    );
    check(
        &config(
            "extraction_pipeline = \"gw\"\nremote_config_interval = \"5s\"",
            AUTH,
            "",
            "",
        ),
        "remote_config_interval",
        "cdf.remote_config_interval",
        "without `remote_config = true`",
    );
    check(
        &config(
            "extraction_pipeline = \"gw\"\nextraction_pipeline_failure_after = \"10ms\"",
            AUTH,
            "",
            "",
        ),
        "extraction_pipeline_failure_after",
        "cdf.extraction_pipeline_failure_after",
        "too short",
    );
}
