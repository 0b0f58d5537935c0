//! Which files of a root are synced: compiled `include`, `exclude` and temporary-name
//! globs.
//!
//! Paths are relative to the root, with `/` separators. The rules, in order:
//! 1. a `temp_patterns` glob matching the name of the file *or of any directory above
//!    it* rejects it (defaults `*.tmp`, `*.part`, `~*`, `.*`: hidden directories are
//!    skipped whole);
//! 2. an `exclude` glob rejects the file if it matches the file's name or relative path,
//!    or the name or relative path of any directory above it (so `logs` or `archive/*`
//!    prune whole directories, `*.bak` drops files);
//! 3. with `include` globs, the file is synced only if one matches its name or its
//!    relative path; without, everything left is synced.
//!
//! In all globs `*` and `?` stay within one path component, `**` crosses them, `{a,b}`
//! is alternation and `\` escapes.

use std::path::{Component, Path};

use globset::{Glob, GlobBuilder, GlobSet, GlobSetBuilder};

/// The compiled filters of one root, with the patterns kept for display.
#[derive(Debug, Clone)]
pub struct PathFilter {
    include: Option<GlobSet>,
    exclude: GlobSet,
    temp: GlobSet,
    patterns: Patterns,
}

/// The patterns as written, for `check-config` and logs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Patterns {
    pub include: Vec<String>,
    pub exclude: Vec<String>,
    pub temp: Vec<String>,
}

impl PathFilter {
    /// Compiles the patterns; on failure returns the index of the bad pattern (within
    /// its list) and why. Use [`compile_glob`] first to report every bad pattern.
    pub fn new(patterns: Patterns) -> Result<Self, (usize, String)> {
        let include = if patterns.include.is_empty() {
            None
        } else {
            Some(build(&patterns.include)?)
        };
        Ok(Self {
            include,
            exclude: build(&patterns.exclude)?,
            temp: build(&patterns.temp)?,
            patterns,
        })
    }

    pub fn patterns(&self) -> &Patterns {
        &self.patterns
    }

    /// Whether the file at `rel` (relative to the root) is synced.
    pub fn accepts(&self, rel: &Path) -> bool {
        let names: Vec<&Path> = names(rel).collect();
        let Some((file, dirs)) = names.split_last() else {
            return false;
        };
        if names.iter().any(|n| self.temp.is_match(n)) {
            return false;
        }
        if self.exclude.is_match(file) || self.exclude.is_match(rel) {
            return false;
        }
        if dirs.iter().any(|n| self.exclude.is_match(n))
            || ancestors(rel).any(|a| self.exclude.is_match(a))
        {
            return false;
        }
        self.include
            .as_ref()
            .is_none_or(|inc| inc.is_match(file) || inc.is_match(rel))
    }

    /// Whether a scan can skip the directory at `rel` and everything under it.
    pub fn skips_dir(&self, rel: &Path) -> bool {
        names(rel).any(|n| self.temp.is_match(n) || self.exclude.is_match(n))
            || self.exclude.is_match(rel)
            || ancestors(rel).any(|a| self.exclude.is_match(a))
    }
}

/// Compiles one glob with the filter's syntax.
pub fn compile_glob(pattern: &str) -> Result<Glob, String> {
    if pattern.trim().is_empty() {
        return Err("empty pattern".to_owned());
    }
    if pattern.starts_with('/') {
        return Err("patterns are relative to the root; remove the leading `/`".to_owned());
    }
    GlobBuilder::new(pattern)
        .literal_separator(true)
        .backslash_escape(true)
        .build()
        .map_err(|e| e.kind().to_string())
}

fn build(patterns: &[String]) -> Result<GlobSet, (usize, String)> {
    let mut set = GlobSetBuilder::new();
    for (i, p) in patterns.iter().enumerate() {
        set.add(compile_glob(p).map_err(|e| (i, e))?);
    }
    set.build().map_err(|e| (0, e.to_string()))
}

/// Each component of `rel` as a one-component path.
fn names(rel: &Path) -> impl Iterator<Item = &Path> {
    rel.components().filter_map(|c| match c {
        Component::Normal(n) => Some(Path::new(n)),
        _ => None,
    })
}

/// The directories above `rel`, as relative paths (`a/b/c` -> `a/b`, `a`).
fn ancestors(rel: &Path) -> impl Iterator<Item = &Path> {
    rel.ancestors()
        .skip(1)
        .filter(|a| !a.as_os_str().is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::settings::DEFAULT_TEMP_PATTERNS;

    fn filter(include: &[&str], exclude: &[&str]) -> PathFilter {
        let owned = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect();
        PathFilter::new(Patterns {
            include: owned(include),
            exclude: owned(exclude),
            temp: owned(&DEFAULT_TEMP_PATTERNS),
        })
        .unwrap()
    }

    #[test]
    fn table() {
        let cases: &[(&[&str], &[&str], &str, bool)] = &[
            (&[], &[], "a/b/img.jpg", true),
            (&[], &[], "img.jpg.tmp", false),
            (&[], &[], "a/upload.part", false),
            (&[], &[], "~lock.docx", false),
            (&[], &[], ".hidden", false),
            (&[], &[], ".git/config", false),
            (&["*.csv"], &[], "deep/dir/x.csv", true),
            (&["*.csv"], &[], "deep/dir/x.txt", false),
            (&["line1/**/*.jpg"], &[], "line1/cam/x.jpg", true),
            (&["line1/*.jpg"], &[], "line1/cam/x.jpg", false),
            (&["line1/**"], &[], "line2/x.jpg", false),
            (&[], &["*.bak"], "a/b.bak", false),
            (&[], &["logs"], "x/logs/today.txt", false),
            (&[], &["archive/*"], "archive/old/y.csv", false),
            (&[], &["archive/*"], "live/archive.csv", true),
            (&["*.{jpg,png}"], &["thumbs"], "cam/thumbs/x.png", false),
            (&["*.{jpg,png}"], &["thumbs"], "cam/x.png", true),
        ];
        for (include, exclude, path, expected) in cases {
            let f = filter(include, exclude);
            assert_eq!(
                f.accepts(Path::new(path)),
                *expected,
                "{include:?} {exclude:?} {path}"
            );
        }
    }

    #[test]
    fn pruning_directories() {
        let f = filter(&[], &["logs", "archive/old"]);
        assert!(f.skips_dir(Path::new(".cache")));
        assert!(f.skips_dir(Path::new("a/logs")));
        assert!(f.skips_dir(Path::new("archive/old")));
        assert!(f.skips_dir(Path::new("archive/old/deeper")));
        assert!(!f.skips_dir(Path::new("archive")));
    }

    #[test]
    fn bad_globs_are_reported_with_their_index() {
        assert!(compile_glob("a[").is_err());
        assert!(compile_glob("").is_err());
        assert!(compile_glob("/abs/*.csv").unwrap_err().contains("relative"));
        let err = PathFilter::new(Patterns {
            include: vec!["ok".into(), "{a".into()],
            ..Default::default()
        });
        assert_eq!(err.unwrap_err().0, 1);
    }
}
