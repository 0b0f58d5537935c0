//! Configuration errors, and the collector that gives each one its line and key.
//!
//! Every problem found while loading a configuration becomes a [`ConfigError`] that
//! names the file, the line, the key (`roots[1].path`) and what is wrong and allowed.
//! Validation does not stop at the first problem: the [`Report`] collects them all and
//! [`ConfigErrors`] prints them as a list of `file:line: key: message`.
//!
//! Spans come from `toml` and point into the text *after* `${VAR}` substitution; the
//! report maps them back to the original text, so a line number is always a line of
//! the file the operator wrote, and it strips substituted values out of messages, so
//! an environment value can never be echoed back.

use std::fmt;
use std::ops::Range;

use super::env::Expanded;

/// One problem with a configuration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file (or the name given to [`super::parse`]).
    pub origin: String,
    /// 1-based line in the original text, when the problem has a place.
    pub line: Option<usize>,
    /// The key path, e.g. `upload.part_size` or `roots[0].path`; empty when unknown.
    pub key: String,
    /// What is wrong and what is allowed.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.origin)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if !self.key.is_empty() {
            write!(f, ": {}", self.key)?;
        }
        write!(f, ": {}", self.message)
    }
}

/// Every problem found in one configuration file (never empty).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigErrors {
    errors: Vec<ConfigError>,
}

impl ConfigErrors {
    pub(crate) fn new(errors: Vec<ConfigError>) -> Self {
        Self { errors }
    }

    /// The errors in the order they were found.
    pub fn errors(&self) -> &[ConfigError] {
        &self.errors
    }

    pub fn len(&self) -> usize {
        self.errors.len()
    }

    pub fn is_empty(&self) -> bool {
        self.errors.is_empty()
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, error) in self.errors.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

/// Collects errors for one file, locating them in the original text.
pub(crate) struct Report<'a> {
    origin: &'a str,
    original: &'a str,
    expanded: Option<&'a Expanded>,
    errors: Vec<ConfigError>,
}

impl<'a> Report<'a> {
    pub(crate) fn new(origin: &'a str, original: &'a str) -> Self {
        Self {
            origin,
            original,
            expanded: None,
            errors: Vec::new(),
        }
    }

    /// Spans reported from now on point into `expanded`, not into the original text.
    pub(crate) fn with_expansion(mut self, expanded: &'a Expanded) -> Self {
        self.expanded = Some(expanded);
        self
    }

    /// A problem at `span` (in the expanded text) of the value of `key`.
    pub(crate) fn at(
        &mut self,
        span: Range<usize>,
        key: impl Into<String>,
        message: impl Into<String>,
    ) {
        let message = self.redact(&span, message.into());
        let line = Some(line_of(self.original, self.to_original(span.start)));
        self.push(line, key.into(), message);
    }

    /// A problem at a position of the original text (before substitution).
    pub(crate) fn at_original(&mut self, offset: usize, message: impl Into<String>) {
        let key = key_at(self.original, offset);
        self.push(Some(line_of(self.original, offset)), key, message.into());
    }

    /// A problem with no place in the file (a missing section, an unreadable file).
    pub(crate) fn nowhere(&mut self, key: impl Into<String>, message: impl Into<String>) {
        self.push(None, key.into(), message.into());
    }

    /// A syntax, type or unknown-key error from `toml`, with the key guessed from the text.
    pub(crate) fn toml(&mut self, error: &toml::de::Error) {
        let span = error.span().unwrap_or(0..0);
        if span == (0..0) {
            // A missing top-level key: it has no place in the file.
            let message = self.redact(&span, error.message().trim().replace('\n', "; "));
            self.push(None, String::new(), message);
            return;
        }
        let offset = self.to_original(span.start);
        let message = self.redact(&span, error.message().trim().replace('\n', "; "));
        let key = key_at(self.original, offset);
        self.push(Some(line_of(self.original, offset)), key, message);
    }

    pub(crate) fn has_errors(&self) -> bool {
        !self.errors.is_empty()
    }

    /// The errors in file order (those without a line last), if any.
    pub(crate) fn finish(mut self) -> Result<(), ConfigErrors> {
        self.errors.sort_by_key(|e| e.line.unwrap_or(usize::MAX));
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(ConfigErrors::new(self.errors))
        }
    }

    fn push(&mut self, line: Option<usize>, key: String, message: String) {
        let origin = self.origin.to_owned();
        self.errors.push(ConfigError {
            origin,
            line,
            key,
            message,
        });
    }

    fn to_original(&self, offset: usize) -> usize {
        self.expanded
            .map_or(offset, |e| e.to_original(offset))
            .min(self.original.len())
    }

    fn redact(&self, span: &Range<usize>, message: String) -> String {
        match self.expanded {
            Some(expanded) => expanded.redact(span, message),
            None => message,
        }
    }
}

/// The 1-based line holding byte `offset` of `text`.
pub(crate) fn line_of(text: &str, offset: usize) -> usize {
    let end = floor_char_boundary(text, offset);
    text[..end].bytes().filter(|&b| b == b'\n').count() + 1
}

fn floor_char_boundary(text: &str, offset: usize) -> usize {
    let mut end = offset.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    end
}

/// Guesses the key path at `offset` from the text: the enclosing `[table]` or
/// `[[array]]` header (arrays get their index) and the `key =` on that line or the
/// nearest one above it (for multi-line values).
pub(crate) fn key_at(text: &str, offset: usize) -> String {
    let end = floor_char_boundary(text, offset);
    let line_end = text[end..].find('\n').map_or(text.len(), |i| end + i);
    let mut arrays: Vec<(String, usize)> = Vec::new();
    let mut table = String::new();
    let mut key: Option<String> = None;
    for line in text[..line_end].lines() {
        let trimmed = line.trim_start();
        if let Some(rest) = trimmed.strip_prefix("[[") {
            let name = header_name(rest, "]]");
            match arrays.iter_mut().find(|(n, _)| *n == name) {
                Some((_, count)) => *count += 1,
                None => arrays.push((name.clone(), 1)),
            }
            table = resolve_header(&name, &arrays);
            key = None;
        } else if let Some(rest) = trimmed.strip_prefix('[') {
            table = resolve_header(&header_name(rest, "]"), &arrays);
            key = None;
        } else if let Some(k) = line_key(trimmed) {
            key = Some(k);
        }
    }
    match (table.is_empty(), key) {
        (_, None) => table,
        (true, Some(k)) => k,
        (false, Some(k)) => format!("{table}.{k}"),
    }
}

fn header_name(rest: &str, close: &str) -> String {
    let name = rest.split(close).next().unwrap_or(rest);
    name.split('.').map(str::trim).collect::<Vec<_>>().join(".")
}

/// `roots.metadata` under the second `[[roots]]` becomes `roots[1].metadata`.
fn resolve_header(name: &str, arrays: &[(String, usize)]) -> String {
    let mut resolved = String::new();
    let mut prefix = String::new();
    for (i, part) in name.split('.').enumerate() {
        if i > 0 {
            prefix.push('.');
            resolved.push('.');
        }
        prefix.push_str(part);
        resolved.push_str(part);
        if let Some((_, count)) = arrays.iter().find(|(n, _)| *n == prefix) {
            resolved.push_str(&format!("[{}]", count - 1));
        }
    }
    resolved
}

/// The key of a `key = value` line, if the line is one.
fn line_key(trimmed: &str) -> Option<String> {
    if trimmed.starts_with('#') {
        return None;
    }
    let (key, _) = trimmed.split_once('=')?;
    let key = key.trim();
    let valid = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '.' | '"' | '\'' | ' '));
    valid.then(|| key.split('.').map(str::trim).collect::<Vec<_>>().join("."))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn displays_file_line_key_message() {
        let e = ConfigError {
            origin: "a.toml".into(),
            line: Some(3),
            key: "upload.part_size".into(),
            message: "too small".into(),
        };
        assert_eq!(e.to_string(), "a.toml:3: upload.part_size: too small");
        let e = ConfigError {
            line: None,
            key: String::new(),
            ..e
        };
        assert_eq!(e.to_string(), "a.toml: too small");
    }

    #[test]
    fn lines_are_one_based() {
        assert_eq!(line_of("a\nb\nc", 0), 1);
        assert_eq!(line_of("a\nb\nc", 2), 2);
        assert_eq!(line_of("a\nb\nc", 4), 3);
        assert_eq!(line_of("a\nb", 99), 2);
    }

    #[test]
    fn key_at_finds_tables_arrays_and_keys() {
        let text = "[cdf]\nproject = 1\n[[roots]]\nid = 'a'\n[[roots]]\nid = 'b'\n\
                    [roots.metadata]\nsite = 2\n[upload]\nlist = [\n  1,\n  'x',\n]\n";
        let at = |needle: &str| key_at(text, text.find(needle).unwrap());
        assert_eq!(at("project"), "cdf.project");
        assert_eq!(at("'a'"), "roots[0].id");
        assert_eq!(at("'b'"), "roots[1].id");
        assert_eq!(at("site"), "roots[1].metadata.site");
        assert_eq!(at("'x'"), "upload.list");
        assert_eq!(at("[upload]"), "upload");
        assert_eq!(key_at("top = 1\n", 6), "top");
    }
}
