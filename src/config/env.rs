//! `${VAR}` substitution from the environment, applied to the text before TOML parsing.
//!
//! Rules (also in `config/cdf-syncd.example.toml`):
//! - `${NAME}` (NAME = `[A-Za-z_][A-Za-z0-9_]*`) is replaced by the variable's value
//!   anywhere except in comments; a variable that is not set is an error naming it
//!   and its line. `$${` writes a literal `${`; any other `$` is kept as it is.
//! - Inside a `"..."` string the value is inserted as literal text (quotes,
//!   backslashes and control characters are escaped for it); inside a `'...'` string
//!   it must not contain `'` or control characters; outside strings (e.g.
//!   `max_concurrent_files = ${N}`) it is inserted as TOML and must be one line.
//!
//! The result remembers every edit, so that positions in the expanded text map back to
//! the original (error lines are lines of the file as written) and so that substituted
//! values can be cut out of error messages.

use std::ops::Range;

/// The text after substitution, with the edits that produced it.
#[derive(Debug, Default)]
pub(crate) struct Expanded {
    pub(crate) text: String,
    edits: Vec<Edit>,
}

#[derive(Debug)]
struct Edit {
    original: Range<usize>,
    expanded: Range<usize>,
    /// `Some((name, value))` for a substitution, `None` for a `$${` escape.
    var: Option<(String, String)>,
}

/// A `${...}` that could not be substituted, at an offset of the original text.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct EnvError {
    pub(crate) offset: usize,
    pub(crate) message: String,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Context {
    Bare,
    Comment,
    Basic,
    MultiBasic,
    Literal,
    MultiLiteral,
}

impl Expanded {
    /// Maps an offset of the expanded text to the original text; an offset inside a
    /// substituted value maps to its `${`.
    pub(crate) fn to_original(&self, offset: usize) -> usize {
        let idx = self.edits.partition_point(|e| e.expanded.start <= offset);
        let Some(edit) = idx.checked_sub(1).and_then(|i| self.edits.get(i)) else {
            return offset;
        };
        if offset < edit.expanded.end {
            edit.original.start
        } else {
            edit.original.end + (offset - edit.expanded.end)
        }
    }

    /// Replaces, in `message`, the value of every substitution that `span` touches by
    /// its `${NAME}`, so that an error about a value never prints the value.
    pub(crate) fn redact(&self, span: &Range<usize>, mut message: String) -> String {
        for edit in &self.edits {
            let Some((name, value)) = &edit.var else {
                continue;
            };
            let touches = edit.expanded.start <= span.end && span.start <= edit.expanded.end;
            if touches && !value.is_empty() {
                let inserted = &self.text[edit.expanded.clone()];
                message = message.replace(value.as_str(), &format!("${{{name}}}"));
                if !inserted.is_empty() && inserted != value {
                    message = message.replace(inserted, &format!("${{{name}}}"));
                }
            }
        }
        message
    }
}

/// Substitutes every `${VAR}` of `text` with `lookup(VAR)`; all failures are reported.
pub(crate) fn expand(
    text: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<Expanded, Vec<EnvError>> {
    let mut out = Expanded::default();
    let mut errors = Vec::new();
    let mut copied = 0;
    let mut context = Context::Bare;
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let rest = &text[i..];
        if context != Context::Comment && rest.starts_with("$${") {
            out.text.push_str(&text[copied..i]);
            let start = out.text.len();
            out.text.push_str("${");
            out.edits.push(Edit {
                original: i..i + 3,
                expanded: start..out.text.len(),
                var: None,
            });
            i += 3;
            copied = i;
            continue;
        }
        if context != Context::Comment && rest.starts_with("${") {
            out.text.push_str(&text[copied..i]);
            let end = substitute(text, i, context, lookup, &mut out, &mut errors);
            i = end;
            copied = end;
            continue;
        }
        let (next, step) = advance(context, rest);
        context = next;
        i += step;
    }
    out.text.push_str(&text[copied..]);
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

/// The lexer: the context after the token at the start of `rest`, and its length.
/// Steps are whole characters, so `rest` always starts on a character boundary.
fn advance(context: Context, rest: &str) -> (Context, usize) {
    let mut chars = rest.chars();
    let c = chars.next().map_or(1, char::len_utf8);
    let b = rest.as_bytes()[0];
    match context {
        Context::Bare => match b {
            b'#' => (Context::Comment, 1),
            b'"' if rest.starts_with("\"\"\"") => (Context::MultiBasic, 3),
            b'"' => (Context::Basic, 1),
            b'\'' if rest.starts_with("'''") => (Context::MultiLiteral, 3),
            b'\'' => (Context::Literal, 1),
            _ => (Context::Bare, c),
        },
        Context::Comment if b == b'\n' => (Context::Bare, 1),
        Context::Basic | Context::MultiBasic if b == b'\\' => {
            (context, 1 + chars.next().map_or(0, char::len_utf8))
        }
        Context::Basic if b == b'"' || b == b'\n' => (Context::Bare, 1),
        Context::MultiBasic if rest.starts_with("\"\"\"") => (Context::Bare, 3),
        Context::Literal if b == b'\'' || b == b'\n' => (Context::Bare, 1),
        Context::MultiLiteral if rest.starts_with("'''") => (Context::Bare, 3),
        _ => (context, c),
    }
}

/// Handles the `${` at `start`; returns the offset just after what it consumed.
fn substitute(
    text: &str,
    start: usize,
    context: Context,
    lookup: &dyn Fn(&str) -> Option<String>,
    out: &mut Expanded,
    errors: &mut Vec<EnvError>,
) -> usize {
    let (end, resolved) = resolve(text, start, context, lookup);
    match resolved {
        Ok((name, value, inserted)) => {
            let from = out.text.len();
            out.text.push_str(&inserted);
            let expanded = from..out.text.len();
            out.edits.push(Edit {
                original: start..end,
                expanded,
                var: Some((name, value)),
            });
        }
        Err(message) => errors.push(EnvError {
            offset: start,
            message,
        }),
    }
    end
}

/// What the reference at `start` is: `(name, value, text to insert)`, or why it
/// cannot be substituted; with the offset just after the reference.
type Resolved = Result<(String, String, String), String>;

fn resolve(
    text: &str,
    start: usize,
    context: Context,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> (usize, Resolved) {
    let body = &text[start + 2..];
    let Some(close) = body.find('}').filter(|&c| !body[..c].contains('\n')) else {
        return (
            start + 2,
            Err("`${` without a closing `}`; write `$${` for a literal `${`".to_owned()),
        );
    };
    let end = start + 2 + close + 1;
    let name = &body[..close];
    if !valid_name(name) {
        let message = format!(
            "`${{{name}}}` is not a valid variable reference: names are letters, digits and `_`, not starting with a digit; write `$${{` for a literal `${{`"
        );
        return (end, Err(message));
    }
    let resolved = match lookup(name) {
        None => Err(format!(
            "environment variable `{name}` is not set (referenced as `${{{name}}}`)"
        )),
        Some(value) => encode(&value, context)
            .map(|inserted| (name.to_owned(), value, inserted))
            .map_err(|why| format!("the value of environment variable `{name}` {why}")),
    };
    (end, resolved)
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// How a value is written into the text in a given context.
fn encode(value: &str, context: Context) -> Result<String, &'static str> {
    match context {
        Context::Basic | Context::MultiBasic => {
            let mut s = String::with_capacity(value.len());
            for c in value.chars() {
                match c {
                    '"' => s.push_str("\\\""),
                    '\\' => s.push_str("\\\\"),
                    c if c.is_control() => s.push_str(&format!("\\u{:04X}", c as u32)),
                    c => s.push(c),
                }
            }
            Ok(s)
        }
        Context::Literal | Context::MultiLiteral => {
            if value.chars().any(|c| c == '\'' || c.is_control()) {
                Err(
                    "contains `'` or a control character and cannot go into a '...' string; use a \"...\" string",
                )
            } else {
                Ok(value.to_owned())
            }
        }
        Context::Bare | Context::Comment => {
            if value.chars().any(char::is_control) {
                Err(
                    "contains a line break or control character and cannot be inserted outside a string",
                )
            } else {
                Ok(value.to_owned())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "HOST" => Some("example.com".into()),
            "N" => Some("12".into()),
            "QUOTE" => Some("a\"b\\c".into()),
            "TICK" => Some("it's".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    fn run(text: &str) -> Result<String, Vec<EnvError>> {
        expand(text, &env).map(|e| e.text)
    }

    #[test]
    fn substitutes_in_strings_and_bare_values() {
        assert_eq!(
            run("a = \"https://${HOST}/x\"\nn = ${N}\n").unwrap(),
            "a = \"https://example.com/x\"\nn = 12\n"
        );
        assert_eq!(run("a = 'p${HOST}'").unwrap(), "a = 'pexample.com'");
        assert_eq!(run("a = \"${EMPTY}\"").unwrap(), "a = \"\"");
    }

    #[test]
    fn escapes_values_inside_basic_strings() {
        let text = run("a = \"${QUOTE}\"").unwrap();
        assert_eq!(text, "a = \"a\\\"b\\\\c\"");
        let value: toml::Table = toml::from_str(&text).unwrap();
        assert_eq!(value["a"].as_str(), Some("a\"b\\c"));
    }

    #[test]
    fn rejects_a_quote_in_a_literal_string() {
        let err = run("a = '${TICK}'").unwrap_err();
        assert!(err[0].message.contains("TICK"), "{err:?}");
    }

    #[test]
    fn escape_and_lone_dollar_and_comments() {
        assert_eq!(
            run("a = \"$${HOST} $5 $\"").unwrap(),
            "a = \"${HOST} $5 $\""
        );
        assert_eq!(
            run("# uses ${MISSING}\na = 1 # ${MISSING}\n").unwrap(),
            "# uses ${MISSING}\na = 1 # ${MISSING}\n"
        );
        assert_eq!(run("a = \"# ${N}\"").unwrap(), "a = \"# 12\"");
    }

    #[test]
    fn reports_every_missing_variable_with_its_offset() {
        let err =
            run("a = \"${NOPE}\"\nb = \"${ALSO_NOT}\"\nc = \"${bad-name}\"\nd = \"${open\"\n")
                .unwrap_err();
        assert_eq!(err.len(), 4);
        assert!(err[0].message.contains("`NOPE` is not set"));
        assert_eq!(err[0].offset, 5);
        assert!(err[1].message.contains("`ALSO_NOT`"));
        assert!(err[2].message.contains("not a valid variable"));
        assert!(err[3].message.contains("closing"));
    }

    #[test]
    fn maps_offsets_back_and_redacts_values() {
        let original = "a = \"${HOST}\"\nb = 1\n";
        let e = expand(original, &env).unwrap();
        let b_expanded = e.text.find("b =").unwrap();
        assert_eq!(e.to_original(b_expanded), original.find("b =").unwrap());
        assert_eq!(e.to_original(7), 5, "inside the value maps to its ${{");
        let msg = e.redact(&(4..19), "bad value \"example.com\"".into());
        assert_eq!(msg, "bad value \"${HOST}\"");
        let untouched = e.redact(&(20..21), "example.com".into());
        assert_eq!(untouched, "example.com");
    }

    #[test]
    fn multiline_strings_are_strings() {
        assert_eq!(
            run("a = \"\"\"\n${N} # x\n\"\"\"\nb = ${N}").unwrap(),
            "a = \"\"\"\n12 # x\n\"\"\"\nb = 12"
        );
        assert_eq!(run("a = '''${N}'''").unwrap(), "a = '''12'''");
    }
}
