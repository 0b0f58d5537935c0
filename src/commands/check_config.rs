//! `cdf-syncd check-config`: validate a configuration file and print the resolved plan.
//!
//! On success (exit 0) it prints what the daemon would do: the CDF target, project and
//! auth method (secrets only by reference, with whether they can be found), per root
//! its filters, fields and an example of how a local path maps to `directory`, `name`
//! and `externalId`, then the sync, upload, state, admin and log settings. On failure
//! (exit 2) it prints every error as `file:line: key: message` on stderr.

use std::fmt::{self, Write as _};
use std::path::Path;
use std::process::ExitCode;

use crate::cli::CheckConfigArgs;
use crate::config::describe::{line, write_cdf, write_root, write_runtime};
use crate::config::{self, RootSettings, Settings};
use crate::mapping;

/// Relative paths tried, in order, for a root's mapping example.
const EXAMPLES: [&str; 5] = [
    "line1/cam/img.jpg",
    "line1/report.csv",
    "report.pdf",
    "data/measurements.json",
    "export.txt",
];

pub fn run(args: &CheckConfigArgs) -> ExitCode {
    match config::load(&args.config) {
        Ok(settings) => {
            print!("{}", plan(&args.config, &settings));
            ExitCode::SUCCESS
        }
        Err(errors) => {
            let n = errors.len();
            eprintln!(
                "{}: invalid configuration ({n} problem{}):",
                args.config.display(),
                if n == 1 { "" } else { "s" }
            );
            eprintln!("{errors}");
            ExitCode::from(super::EXIT_INVALID)
        }
    }
}

/// The resolved plan as text.
pub fn plan(path: &Path, s: &Settings) -> String {
    let mut out = String::new();
    // Writing into a String cannot fail.
    let _ = write_plan(&mut out, path, s);
    out
}

fn write_plan(out: &mut String, path: &Path, s: &Settings) -> fmt::Result {
    writeln!(out, "{}: valid\n", path.display())?;
    write_cdf(out, &s.cdf)?;
    for root in &s.roots {
        writeln!(out)?;
        write_root(out, root)?;
        write_example(out, root)?;
    }
    if s.roots.is_empty() {
        writeln!(
            out,
            "\nRoots: none here; read from the extraction pipeline's remote config"
        )?;
    }
    writeln!(out)?;
    write_runtime(out, s)
}

fn write_example(out: &mut String, r: &RootSettings) -> fmt::Result {
    let (rel, accepted) = example_path(r);
    let local = r.path.join(&rel);
    let note = if accepted {
        ""
    } else {
        "  (excluded by this root's filters; shown anyway)"
    };
    writeln!(out, "  example: {}{note}", local.display())?;
    match mapping::map_file(r, Path::new(&rel)) {
        Ok(f) => {
            line(out, "  -> directory", &f.directory)?;
            line(out, "     name", &f.name)?;
            line(out, "     externalId", &f.external_id)?;
            line(out, "     mimeType", f.mime_type)
        }
        Err(e) => line(out, "  -> cannot map", e),
    }
}

/// A relative path that the root's filters accept: one derived from an include
/// pattern, else a stock example; the flag is false when none is accepted.
fn example_path(r: &RootSettings) -> (String, bool) {
    let derived = r
        .filter
        .patterns()
        .include
        .iter()
        .filter_map(|p| from_glob(p));
    let stock = EXAMPLES.iter().map(|s| (*s).to_owned());
    let mut candidates = derived.chain(stock);
    let first = candidates.next().unwrap_or_default();
    if r.filter.accepts(Path::new(&first)) {
        return (first, true);
    }
    match candidates.find(|c| r.filter.accepts(Path::new(c))) {
        Some(c) => (c, true),
        None => (EXAMPLES[0].to_owned(), false),
    }
}

/// `line1/**/*.{jpg,png}` -> `line1/line1/sample.jpg`; `None` for classes like `[ab]`.
fn from_glob(pattern: &str) -> Option<String> {
    if pattern.contains(['[', '\\']) || matches!(pattern, "*" | "**" | "**/*") {
        return None;
    }
    let mut s = pattern
        .replace("**", "line1")
        .replace('*', "sample")
        .replace('?', "x");
    while let Some(open) = s.find('{') {
        let close = open + s[open..].find('}')?;
        let first = s[open + 1..close]
            .split(',')
            .next()
            .unwrap_or_default()
            .to_owned();
        s.replace_range(open..=close, &first);
    }
    if !s.contains('/') && !s.starts_with("line1") {
        s = format!("line1/{s}");
    }
    Some(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn examples_follow_include_patterns() {
        assert_eq!(from_glob("*.csv").as_deref(), Some("line1/sample.csv"));
        assert_eq!(
            from_glob("cams/**/*.{jpg,png}").as_deref(),
            Some("cams/line1/sample.jpg")
        );
        assert_eq!(from_glob("[ab].txt"), None);
    }

    #[test]
    fn plan_shows_mapping_and_hides_secrets() {
        let text = include_str!("../../config/demo.toml");
        let s = config::parse_with_env(text, "demo.toml", &|_| None).unwrap();
        let shown = plan(Path::new("demo.toml"), &s);
        assert!(
            shown.contains("example: /tmp/cdf-syncd-demo/watch/line1/cam/img.jpg"),
            "{shown}"
        );
        assert!(
            shown.contains("/demo/line1/cam") && shown.contains("demo:/line1/cam/img.jpg"),
            "{shown}"
        );
        assert!(
            shown.contains("from environment variable CDF_SYNCD_DEMO_SECRET"),
            "{shown}"
        );
        let dm = include_str!("../../config/data-modeling.example.toml");
        let s = config::parse_with_env(dm, "dm.toml", &|_| None).unwrap();
        let shown = plan(Path::new("dm.toml"), &s);
        assert!(
            shown.contains("example: /data/reports/line1/sample.pdf"),
            "{shown}"
        );
        assert!(shown.contains("gw01:reports:/line1/sample.pdf"), "{shown}");
    }
}
