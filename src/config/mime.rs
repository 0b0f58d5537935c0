//! MIME type by file extension: a built-in table for the files gateways produce, with
//! per-root overrides (`[roots.mime_types]`).
//!
//! Extensions compare case-insensitively and without the dot; a name without an
//! extension (or a dot-file such as `.env`) is `application/octet-stream`. The type
//! matters beyond display: a single-part upload must send it as `Content-Type`.

use std::collections::BTreeMap;

/// The type for anything not in a table.
pub const FALLBACK: &str = "application/octet-stream";

const BUILT_IN: &[(&str, &str)] = &[
    ("7z", "application/x-7z-compressed"),
    ("avi", "video/x-msvideo"),
    ("bin", "application/octet-stream"),
    ("bmp", "image/bmp"),
    ("bz2", "application/x-bzip2"),
    ("csv", "text/csv"),
    ("doc", "application/msword"),
    (
        "docx",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    ),
    ("dwg", "image/vnd.dwg"),
    ("dxf", "image/vnd.dxf"),
    ("gif", "image/gif"),
    ("gz", "application/gzip"),
    ("h5", "application/x-hdf5"),
    ("hdf5", "application/x-hdf5"),
    ("htm", "text/html"),
    ("html", "text/html"),
    ("jpeg", "image/jpeg"),
    ("jpg", "image/jpeg"),
    ("json", "application/json"),
    ("log", "text/plain"),
    ("md", "text/markdown"),
    ("mkv", "video/x-matroska"),
    ("mov", "video/quicktime"),
    ("mp3", "audio/mpeg"),
    ("mp4", "video/mp4"),
    ("ndjson", "application/x-ndjson"),
    ("parquet", "application/vnd.apache.parquet"),
    ("pdf", "application/pdf"),
    ("png", "image/png"),
    ("ppt", "application/vnd.ms-powerpoint"),
    (
        "pptx",
        "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    ),
    ("step", "model/step"),
    ("stp", "model/step"),
    ("svg", "image/svg+xml"),
    ("tar", "application/x-tar"),
    ("tgz", "application/gzip"),
    ("tif", "image/tiff"),
    ("tiff", "image/tiff"),
    ("toml", "application/toml"),
    ("tsv", "text/tab-separated-values"),
    ("txt", "text/plain"),
    ("wav", "audio/wav"),
    ("webp", "image/webp"),
    ("xls", "application/vnd.ms-excel"),
    (
        "xlsx",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    ),
    ("xml", "application/xml"),
    ("yaml", "application/yaml"),
    ("yml", "application/yaml"),
    ("zip", "application/zip"),
    ("zst", "application/zstd"),
];

/// A root's MIME table: its overrides over the built-in defaults.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MimeTypes {
    /// Lower-case extension (no dot) -> type.
    overrides: BTreeMap<String, String>,
}

impl MimeTypes {
    /// `overrides` keys must already be normalised with [`normalize_extension`].
    pub fn new(overrides: BTreeMap<String, String>) -> Self {
        Self { overrides }
    }

    pub fn overrides(&self) -> &BTreeMap<String, String> {
        &self.overrides
    }

    /// The type for a file name (not a path).
    pub fn for_name(&self, name: &str) -> &str {
        let Some(ext) = extension(name) else {
            return FALLBACK;
        };
        let ext = ext.to_ascii_lowercase();
        if let Some(t) = self.overrides.get(&ext) {
            return t;
        }
        BUILT_IN
            .binary_search_by(|(e, _)| (*e).cmp(ext.as_str()))
            .ok()
            .and_then(|i| BUILT_IN.get(i))
            .map_or(FALLBACK, |(_, t)| t)
    }
}

/// `".CSV"` or `"csv"` -> `"csv"`; `None` when it is not a plausible extension.
pub fn normalize_extension(ext: &str) -> Option<String> {
    let ext = ext.strip_prefix('.').unwrap_or(ext);
    let ok = !ext.is_empty()
        && ext.len() <= 32
        && !ext.contains(['.', '/'])
        && !ext.contains(char::is_whitespace);
    ok.then(|| ext.to_lowercase())
}

/// Whether `t` looks like `type/subtype` and fits CDF's 256-character `mimeType`.
pub fn is_valid_type(t: &str) -> bool {
    let Some((top, sub)) = t.split_once('/') else {
        return false;
    };
    let token = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_graphic() && c != '/');
    t.len() <= 256 && token(top) && sub.split(';').next().is_some_and(token)
}

fn extension(name: &str) -> Option<&str> {
    let (stem, ext) = name.rsplit_once('.')?;
    (!stem.is_empty() && !ext.is_empty()).then_some(ext)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_sorted_for_binary_search() {
        assert!(BUILT_IN.windows(2).all(|w| w[0].0 < w[1].0));
    }

    #[test]
    fn built_in_overrides_and_fallback() {
        let mut o = BTreeMap::new();
        o.insert("csv".to_owned(), "application/x-plant-csv".to_owned());
        o.insert("raw".to_owned(), "image/x-camera-raw".to_owned());
        let m = MimeTypes::new(o);
        assert_eq!(m.for_name("img.JPG"), "image/jpeg");
        assert_eq!(m.for_name("a.b.tar"), "application/x-tar");
        assert_eq!(m.for_name("data.csv"), "application/x-plant-csv");
        assert_eq!(m.for_name("x.RAW"), "image/x-camera-raw");
        assert_eq!(m.for_name("README"), FALLBACK);
        assert_eq!(m.for_name(".env"), FALLBACK);
        assert_eq!(m.for_name("trailing."), FALLBACK);
        assert_eq!(MimeTypes::default().for_name("data.csv"), "text/csv");
    }

    #[test]
    fn extension_and_type_checks() {
        assert_eq!(normalize_extension(".CSV").as_deref(), Some("csv"));
        assert_eq!(normalize_extension("tar.gz"), None);
        assert_eq!(normalize_extension(""), None);
        assert!(is_valid_type("text/csv"));
        assert!(is_valid_type("text/plain; charset=utf-8"));
        assert!(!is_valid_type("csv"));
        assert!(!is_valid_type("text/"));
        assert!(!is_valid_type(&format!("text/{}", "x".repeat(300))));
    }
}
