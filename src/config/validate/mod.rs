//! Semantic validation: the raw serde mirror in, validated [`Settings`] out.
//!
//! Each section is checked by its own module (`cdf`, `root` with `fields`, `runtime`);
//! every check reports into the shared [`Report`] and carries on, so one run lists
//! every problem. Settings are returned only when nothing was reported. The helpers
//! here are the checks several sections share (absolute paths, bounded text, ranges).

mod cdf;
mod fields;
mod root;
mod runtime;

use std::ops::RangeInclusive;
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use toml::Spanned;

use super::error::Report;
use super::raw::{RawConfig, RawRemote, Str};
use super::settings::{DEFAULT_STATE_DIR, Settings, Target};
use super::values::Dur;

/// How validation reads the environment (the real one, or a map in tests).
pub(crate) type Lookup<'a> = &'a dyn Fn(&str) -> Option<String>;

/// Validates everything; `None` when anything was reported.
pub(crate) fn settings(raw: &RawConfig, r: &mut Report, env: Lookup) -> Option<Settings> {
    let cdf = cdf::cdf(r, &raw.cdf);
    let is_dm = matches!(
        cdf.as_ref().map(|c| &c.target),
        Some(Target::DataModeling { .. })
    );
    let roots: Vec<_> = raw
        .roots
        .iter()
        .enumerate()
        .map(|(i, root)| root::root(r, i, root, is_dm))
        .collect();
    let sync = runtime::sync(r, &raw.sync);
    let upload = runtime::upload(r, &raw.upload, raw.cdf.get_ref().allow_insecure_http);
    let state = runtime::state(r, &raw.state, env);
    let state_dir = state
        .as_ref()
        .map_or_else(|| PathBuf::from(DEFAULT_STATE_DIR), |s| s.dir.clone());
    let admin = runtime::admin(r, &raw.admin, &state_dir, env);
    let log = runtime::log(r, &raw.log);
    let remote = cdf.as_ref().is_some_and(|c| c.remote_config);
    root::cross_check(
        r,
        &raw.roots,
        state.as_ref().map(|s| s.dir.as_path()),
        remote,
    );
    let roots: Option<Vec<_>> = roots.into_iter().collect();
    if r.has_errors() {
        return None;
    }
    Some(Settings {
        cdf: cdf?,
        roots: roots?,
        sync: sync?,
        upload: upload?,
        state: state?,
        admin: admin?,
        log: log?,
    })
}

/// The tables of a remote config validated over `local`: each one present replaces
/// the local one; `None` when anything was reported.
pub(crate) fn remote(raw: &RawRemote, r: &mut Report, local: &Settings) -> Option<Settings> {
    let is_dm = matches!(local.cdf.target, Target::DataModeling { .. });
    let roots: Option<Vec<_>> = raw.roots.as_ref().map(|roots| {
        roots
            .iter()
            .enumerate()
            .map(|(i, root)| root::root(r, i, root, is_dm))
            .collect()
    });
    let sync = raw.sync.as_ref().map(|s| runtime::sync(r, s));
    let upload = raw
        .upload
        .as_ref()
        .map(|u| runtime::upload(r, u, local.cdf.allow_insecure_http));
    match &raw.roots {
        Some(raw_roots) => root::cross_check(r, raw_roots, Some(&local.state.dir), false),
        None if local.roots.is_empty() => r.nowhere(
            "roots",
            "no [[roots]] here nor in the local file: add at least one [[roots]] table with `id` and `path`",
        ),
        None => {}
    }
    if r.has_errors() {
        return None;
    }
    let mut merged = local.clone();
    if let Some(roots) = roots {
        merged.roots = roots.into_iter().collect::<Option<Vec<_>>>()?;
    }
    if let Some(sync) = sync {
        merged.sync = sync?;
    }
    if let Some(upload) = upload {
        merged.upload = upload?;
    }
    Some(merged)
}

/// An absolute filesystem path, lexically normalised; relative paths are refused.
fn absolute(r: &mut Report, s: &Str, key: &str) -> Option<PathBuf> {
    let text = s.get_ref();
    if text.is_empty() || text.contains('\0') {
        r.at(
            s.span(),
            key,
            "expected an absolute path such as \"/data/export\"",
        );
        return None;
    }
    let path = Path::new(text);
    if !path.is_absolute() {
        r.at(
            s.span(),
            key,
            format!(
                "`{text}` is a relative path; an absolute path is required (starting with `/`)"
            ),
        );
        return None;
    }
    Some(normalize(path))
}

/// Removes `.` and resolves `..` lexically (no filesystem access, nothing must exist).
pub(crate) fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other.as_os_str()),
        }
    }
    out
}

/// Non-empty text of at most `max` bytes, without control characters.
fn text(r: &mut Report, s: &Str, key: &str, max: usize) -> Option<String> {
    let v = s.get_ref();
    if v.trim().is_empty() {
        r.at(s.span(), key, "must not be empty");
        None
    } else if v.len() > max {
        r.at(
            s.span(),
            key,
            format!("is {} bytes long; CDF allows at most {max}", v.len()),
        );
        None
    } else if v.chars().any(char::is_control) {
        r.at(s.span(), key, "must not contain control characters");
        None
    } else {
        Some(v.clone())
    }
}

/// An integer within `range`.
fn int_in(
    r: &mut Report,
    v: &Spanned<i64>,
    key: &str,
    range: RangeInclusive<i64>,
    what: &str,
) -> Option<i64> {
    let n = *v.get_ref();
    if range.contains(&n) {
        Some(n)
    } else {
        let (lo, hi) = (range.start(), range.end());
        r.at(
            v.span(),
            key,
            format!("{n} is out of range: {what} must be within {lo}..={hi}"),
        );
        None
    }
}

/// A duration (default when absent) that is at least `min`.
fn duration(
    r: &mut Report,
    v: Option<&Spanned<Dur>>,
    key: &str,
    default: Duration,
    min: Duration,
) -> Option<Duration> {
    let Some(v) = v else { return Some(default) };
    let d = v.get_ref().0;
    if d < min {
        let (got, min) = (
            humantime::format_duration(d),
            humantime::format_duration(min),
        );
        r.at(
            v.span(),
            key,
            format!("`{got}` is too short: the minimum is {min}"),
        );
        return None;
    }
    Some(d)
}

/// Identifier-like text: `[A-Za-z0-9_.-]`, 1..=`max` characters.
fn identifier(r: &mut Report, s: &Str, key: &str, max: usize) -> Option<String> {
    let v = s.get_ref();
    let ok = !v.is_empty()
        && v.len() <= max
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if !ok {
        r.at(
            s.span(),
            key,
            format!(
                "`{v}` is not allowed: use 1..={max} characters from A-Z, a-z, 0-9, `_`, `.`, `-`"
            ),
        );
    }
    ok.then(|| v.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_lexically() {
        assert_eq!(normalize(Path::new("/a/./b/../c/")), PathBuf::from("/a/c"));
        assert_eq!(normalize(Path::new("/../x")), PathBuf::from("/x"));
    }
}
