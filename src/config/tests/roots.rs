//! Rules of `[[roots]]`: paths, prefixes, filters, CDF field limits, cross-root checks.

use super::*;

fn root(extra: &str) -> String {
    config("", AUTH, extra, "")
}

fn second_root(id: &str, path: &str) -> String {
    config(
        "",
        AUTH,
        "",
        &format!("[[roots]]\nid = \"{id}\"\npath = \"{path}\""),
    )
}

#[test]
fn root_paths_must_be_absolute_and_not_nested() {
    let text = config("", AUTH, "", "").replace("\"/data/export\"", "\"data/export\"");
    check(&text, "data/export", "roots[0].path", "relative path");
    check(
        &config("", AUTH, "", "").replace("\"/data/export\"", "\"/\""),
        "path = \"/\"",
        "roots[0].path",
        "filesystem root",
    );
    check(
        &second_root("inner", "/data/export/line1"),
        "/data/export/line1",
        "roots[1].path",
        "roots must not be nested",
    );
    check(
        &second_root("outer", "/data"),
        "path = \"/data\"",
        "roots[1].path",
        "overlaps roots[0]",
    );
    check(
        &second_root("same", "/data/./export/"),
        "/data/./export/",
        "roots[1].path",
        "overlaps",
    );
    check(
        &second_root("cams", "/other"),
        "id = \"cams\"\npath = \"/other",
        "roots[1].id",
        "duplicate root id `cams`",
    );
    let s = ok(&second_root("other", "/data/export2"));
    assert_eq!(
        s.roots.len(),
        2,
        "a sibling with a common name prefix is not nested"
    );
    assert_eq!(
        ok(&second_root("n", "/srv/a/../b")).roots[1].path,
        std::path::Path::new("/srv/b")
    );
}

#[test]
fn roots_are_required_unless_remote_config() {
    let none = config("", AUTH, "", "").replace(
        "[[roots]]\nid = \"cams\"\npath = \"/data/export\"\ndirectory_prefix = \"/site-a\"\n",
        "",
    );
    let errs = errors(&none);
    assert!(
        errs.iter()
            .any(|e| e.key == "roots" && e.message.contains("no [[roots]]")),
        "{errs:?}"
    );
    let remote = none.replace(
        "project = \"acme\"",
        "project = \"acme\"\nremote_config = true\nextraction_pipeline = \"p\"",
    );
    assert!(ok(&remote).roots.is_empty());
}

#[test]
fn root_ids_and_external_id_prefixes() {
    check(
        &root("").replace("\"cams\"", "\"my cams\""),
        "my cams",
        "roots[0].id",
        "not allowed",
    );
    check(
        &root("").replace("\"cams\"", "\"a:b\""),
        "a:b",
        "roots[0].id",
        "not allowed",
    );
    check(
        &root(&format!("external_id_prefix = \"{}\"", "p".repeat(101))),
        "external_id_prefix",
        "roots[0].external_id_prefix",
        "at most 100",
    );
}

#[test]
fn directory_prefix_is_absolute_clean_and_short() {
    let with = |p: &str| config("", AUTH, "", "").replace("\"/site-a\"", &format!("\"{p}\""));
    check(
        &with("site-a"),
        "directory_prefix",
        "roots[0].directory_prefix",
        "not absolute",
    );
    check(
        &with("/a//b"),
        "directory_prefix",
        "roots[0].directory_prefix",
        "empty, `.` or `..`",
    );
    check(
        &with("/a/../b"),
        "directory_prefix",
        "roots[0].directory_prefix",
        "empty, `.` or `..`",
    );
    check(
        &with(&format!("/{}", "d".repeat(512))),
        "directory_prefix",
        "roots[0].directory_prefix",
        "at most 512",
    );
    assert_eq!(
        ok(&with(&format!("/{}", "d".repeat(511)))).roots[0]
            .directory_prefix
            .len(),
        512
    );
    assert_eq!(ok(&with("/site-a/")).roots[0].directory_prefix, "/site-a");
    assert_eq!(ok(&with("/")).roots[0].directory_prefix, "/");
}

#[test]
fn bad_globs_are_each_reported_on_their_line() {
    let text =
        root("include = [\"*.csv\",\n  \"a[\"]\nexclude = [\"{x\"]\ntemp_patterns = [\"/abs\"]");
    check(&text, "\"a[\"", "roots[0].include", "invalid glob `a[`");
    check(&text, "\"{x\"", "roots[0].exclude", "invalid glob `{x`");
    check(
        &text,
        "\"/abs\"",
        "roots[0].temp_patterns",
        "relative to the root",
    );
    let s = ok(&root(
        "include = [\"*.csv\"]\nexclude = [\"archive\"]\ntemp_patterns = []",
    ));
    let f = &s.roots[0].filter;
    assert!(
        f.accepts(std::path::Path::new(".hidden.csv")),
        "temp_patterns = [] disables the defaults"
    );
    assert!(!f.accepts(std::path::Path::new("archive/x.csv")));
}

#[test]
fn data_set_is_one_of_id_or_external_id() {
    check(
        &root("data_set_id = 1\ndata_set_external_id = \"ds\""),
        "data_set_external_id",
        "roots[0].data_set_external_id",
        "both set",
    );
    check(
        &root("data_set_id = 0"),
        "data_set_id",
        "roots[0].data_set_id",
        "not a data set id",
    );
    assert_eq!(
        ok(&root("data_set_external_id = \"ds\"")).roots[0]
            .fields
            .data_set,
        Some(DataSetRef::ExternalId("ds".into()))
    );
}

#[test]
fn labels_security_categories_and_asset_ids_follow_cdf_limits() {
    let labels = |n: usize| {
        (0..n)
            .map(|i| format!("\"l{i}\""))
            .collect::<Vec<_>>()
            .join(",")
    };
    assert_eq!(
        ok(&root(&format!("labels = [{}]", labels(10)))).roots[0]
            .fields
            .labels
            .len(),
        10
    );
    check(
        &root(&format!("labels = [{}]", labels(11))),
        "labels",
        "roots[0].labels",
        "at most 10",
    );
    check(
        &root("labels = [\"a\", \"a\"]"),
        "labels",
        "roots[0].labels",
        "listed twice",
    );
    let ids = |n: usize| (1..=n).map(|i| i.to_string()).collect::<Vec<_>>().join(",");
    assert_eq!(
        ok(&root(&format!("security_categories = [{}]", ids(100)))).roots[0]
            .fields
            .security_categories
            .len(),
        100
    );
    check(
        &root(&format!("security_categories = [{}]", ids(101))),
        "security_categories",
        "roots[0].security_categories",
        "at most 100",
    );
    check(
        &root(&format!("asset_ids = [{}]", ids(1001))),
        "asset_ids",
        "roots[0].asset_ids",
        "at most 1000",
    );
    check(
        &root("asset_ids = [1, 0]"),
        "asset_ids",
        "roots[0].asset_ids",
        "0 is not an id",
    );
    check(
        &root(&format!("source = \"{}\"", "s".repeat(129))),
        "source",
        "roots[0].source",
        "at most 128",
    );
}

#[test]
fn metadata_follows_cdf_limits() {
    check(
        &root(&format!("metadata = {{ {} = \"v\" }}", "k".repeat(129))),
        "metadata",
        &format!("roots[0].metadata.{}", "k".repeat(129)),
        "at most 128",
    );
    let big = "v".repeat(10_241);
    check(
        &root(&format!("[roots.metadata]\nsite = \"a\"\nbig = \"{big}\"")),
        "big =",
        "roots[0].metadata.big",
        "at most 10240",
    );
    let pairs = (0..255)
        .map(|i| format!("k{i} = \"v\""))
        .collect::<Vec<_>>()
        .join("\n");
    check(
        &root(&format!("[roots.metadata]\n{pairs}")),
        "[roots.metadata]",
        "roots[0].metadata",
        "at most 254",
    );
    let total = (0..3)
        .map(|i| format!("k{i} = \"{}\"", "v".repeat(3400)))
        .collect::<Vec<_>>()
        .join("\n");
    check(
        &root(&format!("[roots.metadata]\n{total}")),
        "[roots.metadata]",
        "roots[0].metadata",
        "add up to",
    );
    check(
        &root("metadata = { \"cdf-syncd.sha256\" = \"x\" }"),
        "metadata",
        "roots[0].metadata.cdf-syncd.sha256",
        "reserved",
    );
    check(
        &root("metadata = { n = 5 }"),
        "metadata",
        "roots[0].metadata",
        "expected a string",
    );
    let s = ok(&root("[roots.metadata]\nsite = \"a\"\nline = \"1\""));
    assert_eq!(s.roots[0].fields.metadata.len(), 2);
}

#[test]
fn mime_types_and_max_file_size() {
    let s = ok(&root(
        "mime_types = { \".RAW\" = \"image/x-raw\", csv = \"application/x-csv\" }",
    ));
    assert_eq!(s.roots[0].mime_types.for_name("a.raw"), "image/x-raw");
    check(
        &root("mime_types = { \"tar.gz\" = \"application/gzip\" }"),
        "mime_types",
        "roots[0].mime_types",
        "not a file extension",
    );
    check(
        &root("mime_types = { csv = \"csv\" }"),
        "mime_types",
        "roots[0].mime_types.csv",
        "not a MIME type",
    );
    check(
        &root("max_file_size = 0"),
        "max_file_size",
        "roots[0].max_file_size",
        "out of range",
    );
    check(
        &root("max_file_size = \"1 TiB\""),
        "max_file_size",
        "roots[0].max_file_size",
        "CDF's maximum",
    );
    assert_eq!(
        ok(&root("max_file_size = \"2 GiB\"")).roots[0].max_file_size,
        2 << 30
    );
}

#[test]
fn after_upload_on_change_on_delete() {
    let s = ok(&root(
        "after_upload = { move_to = \"/data/done\" }\non_change = \"skip\"\nfollow_symlinks = true",
    ));
    let r = &s.roots[0];
    assert_eq!(r.after_upload, AfterUpload::MoveTo("/data/done".into()));
    assert_eq!(
        (r.on_change, r.on_delete, r.follow_symlinks),
        (OnChange::Skip, OnDelete::Keep, true)
    );
    assert_eq!(
        ok(&root("on_delete = \"mark\"")).roots[0].on_delete,
        OnDelete::Mark
    );
    check(
        &root("after_upload = \"delete\"\non_delete = \"delete\""),
        "[[roots]]",
        "roots[0].on_delete",
        "needs after_upload = \"keep\"",
    );
    assert_eq!(
        ok(&root("after_upload = \"delete\"")).roots[0].after_upload,
        AfterUpload::Delete
    );
    check(
        &root("after_upload = { move_to = \"done\" }"),
        "move_to",
        "roots[0].after_upload.move_to",
        "relative path",
    );
    check(
        &root("after_upload = { move_to = \"/data/export/done\" }"),
        "move_to",
        "roots[0].after_upload.move_to",
        "would be synced again",
    );
    check(
        &root("after_upload = \"archive\""),
        "after_upload",
        "roots[0].after_upload",
        "`keep`, `delete`, `move_to`",
    );
    check(
        &root("on_delete = \"purge\""),
        "on_delete",
        "roots[0].on_delete",
        "`keep`, `mark`, `delete`",
    );
}

#[test]
fn the_state_directory_must_not_overlap_a_root() {
    check(
        &config("", AUTH, "", "[state]\ndir = \"/data/export/.state\""),
        "path = \"/data/export\"",
        "roots[0].path",
        "state directory",
    );
}
