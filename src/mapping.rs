//! Mapping a local file to its CDF identity and fields: a pure function of the root's
//! settings and the path relative to the root.
//!
//! `/data/export/line1/cam/img.jpg` under root `cams` at `/data/export` with
//! `directory_prefix = "/site-a"` and `external_id_prefix = "gw01:"` becomes
//! `directory = "/site-a/line1/cam"`, `name = "img.jpg"` and
//! `externalId = "gw01:cams:/line1/cam/img.jpg"`, plus the MIME type by extension and the
//! root's static fields (data set, source, labels, metadata, security categories, asset
//! ids). The data-modeling target uses the same externalId for the node.
//!
//! Rules for what does not fit (limits counted in UTF-8 bytes, see `config::limits`):
//! - **externalId over 255 bytes**: the stable hashed form
//!   `<natural externalId cut to 190 bytes>#<sha256 hex of the relative path's bytes>`
//!   (exactly the prefix, the root id, the start of the path, and 64 hex digits).
//!   The cut is on a character boundary; the same path always gives the same id.
//! - **name over 256 bytes**: truncated with a hash, keeping the extension:
//!   `<start of the stem>~<16 hex of sha256(name bytes)>.<ext>`.
//! - **directory over 512 bytes**: `<start of the directory>~<16 hex of sha256(directory)>`,
//!   still an absolute path.
//! - **Non-UTF-8 file names** never panic and never fail: bytes that are not UTF-8 are
//!   written `%XX` (upper-case hex) and, in such a path, a literal `%` is written `%25`,
//!   so the escape is lossless. Such a path always gets the hashed externalId form (the
//!   hash is over the raw bytes), so it can never collide with a UTF-8 path.
//!   [`CdfFile::escaped`] says this happened.
//!
//! Shortened fields are flagged in [`CdfFile::shortened`]; the file is still synced,
//! and its externalId stays unique because the hash covers the full path.

use std::fmt::Write as _;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::config::limits::{DIRECTORY_MAX, EXTERNAL_ID_MAX, NAME_MAX};
use crate::config::{FileFields, RootSettings};

/// Hex digits of the hash in a shortened name or directory.
const SHORT_HASH: usize = 16;
/// Bytes of the natural externalId kept in the hashed form (255 - `#` - 64 hex).
const EXTERNAL_ID_HEAD: usize = EXTERNAL_ID_MAX - 1 - 64;

/// Where and how one local file lands in CDF.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CdfFile<'r> {
    pub external_id: String,
    pub name: String,
    /// Absolute unix path, `/` separators.
    pub directory: String,
    pub mime_type: &'r str,
    /// The root's static fields.
    pub fields: &'r FileFields,
    /// A field was too long and was shortened with a hash (or the externalId hashed).
    pub shortened: bool,
    /// The path was not valid UTF-8 and was escaped.
    pub escaped: bool,
}

/// A path that cannot be mapped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MappingError {
    #[error("{path}: not inside root {root}")]
    OutsideRoot { path: PathBuf, root: PathBuf },
    #[error("{path}: expected a file path relative to the root (not empty, not absolute, no `..`)")]
    NotRelative { path: PathBuf },
}

/// Maps a file given by its absolute local path.
pub fn map_local<'r>(root: &'r RootSettings, path: &Path) -> Result<CdfFile<'r>, MappingError> {
    let rel = path
        .strip_prefix(&root.path)
        .map_err(|_| MappingError::OutsideRoot {
            path: path.to_owned(),
            root: root.path.clone(),
        })?;
    map_file(root, rel)
}

/// Maps a file given by its path relative to the root.
pub fn map_file<'r>(root: &'r RootSettings, rel: &Path) -> Result<CdfFile<'r>, MappingError> {
    let segments = Segments::of(rel)?;
    let (file_name, dirs) =
        segments
            .texts
            .split_last()
            .ok_or_else(|| MappingError::NotRelative {
                path: rel.to_owned(),
            })?;
    let (name, name_cut) = if file_name.len() > NAME_MAX {
        (shorten_name(file_name, segments.last_raw), true)
    } else {
        (file_name.clone(), false)
    };
    let (directory, dir_cut) = directory(&root.directory_prefix, dirs);
    let (external_id, id_cut) = external_id(root, &segments);
    Ok(CdfFile {
        external_id,
        mime_type: root.mime_types.for_name(file_name),
        name,
        directory,
        fields: &root.fields,
        shortened: name_cut || dir_cut || id_cut,
        escaped: segments.escaped,
    })
}

/// `prefix/dir/dir`, shortened when over [`DIRECTORY_MAX`]; true when shortened.
fn directory(prefix: &str, dirs: &[String]) -> (String, bool) {
    let mut directory = prefix.to_owned();
    for d in dirs {
        if !directory.ends_with('/') {
            directory.push('/');
        }
        directory.push_str(d);
    }
    if directory.len() > DIRECTORY_MAX {
        (shorten_directory(&directory), true)
    } else {
        (directory, false)
    }
}

/// The natural externalId, or its hashed form when too long or escaped; true when
/// it had to be shortened.
fn external_id(root: &RootSettings, segments: &Segments<'_>) -> (String, bool) {
    let natural = format!(
        "{}{}:/{}",
        root.external_id_prefix,
        root.id,
        segments.texts.join("/")
    );
    let too_long = natural.len() > EXTERNAL_ID_MAX;
    if too_long || segments.escaped {
        let hashed = format!(
            "{}#{}",
            cut(&natural, EXTERNAL_ID_HEAD),
            sha256_hex(&segments.raw, 64)
        );
        (hashed, too_long)
    } else {
        (natural, false)
    }
}

/// The components of a relative path as text, and its raw bytes joined with `/`.
struct Segments<'p> {
    texts: Vec<String>,
    raw: Vec<u8>,
    last_raw: &'p [u8],
    escaped: bool,
}

impl<'p> Segments<'p> {
    fn of(rel: &'p Path) -> Result<Self, MappingError> {
        let mut parts: Vec<&'p [u8]> = Vec::new();
        for c in rel.components() {
            match c {
                Component::Normal(n) => parts.push(n.as_bytes()),
                Component::CurDir => {}
                _ => {
                    return Err(MappingError::NotRelative {
                        path: rel.to_owned(),
                    });
                }
            }
        }
        let last_raw = *parts.last().ok_or_else(|| MappingError::NotRelative {
            path: rel.to_owned(),
        })?;
        let escaped = parts.iter().any(|p| std::str::from_utf8(p).is_err());
        let texts = parts.iter().map(|p| escape(p, escaped)).collect();
        let raw = parts.join(&b'/');
        Ok(Self {
            texts,
            raw,
            last_raw,
            escaped,
        })
    }
}

/// UTF-8 text as is; otherwise invalid bytes as `%XX` and `%` as `%25`.
fn escape(bytes: &[u8], escaping: bool) -> String {
    if !escaping {
        return String::from_utf8_lossy(bytes).into_owned();
    }
    let mut out = String::with_capacity(bytes.len() + 8);
    for chunk in bytes.utf8_chunks() {
        out.push_str(&chunk.valid().replace('%', "%25"));
        for b in chunk.invalid() {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// `<stem start>~<hash>.<ext>` within [`NAME_MAX`] bytes.
fn shorten_name(name: &str, raw: &[u8]) -> String {
    let hash = sha256_hex(raw, SHORT_HASH);
    let (stem, ext) = match name.rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() && ext.len() <= 32 => (stem, Some(ext)),
        _ => (name, None),
    };
    let ext_len = ext.map_or(0, |e| e.len() + 1);
    let head = cut(stem, NAME_MAX - 1 - SHORT_HASH - ext_len);
    match ext {
        Some(ext) => format!("{head}~{hash}.{ext}"),
        None => format!("{head}~{hash}"),
    }
}

/// `<directory start>~<hash>` within [`DIRECTORY_MAX`] bytes, still absolute.
fn shorten_directory(directory: &str) -> String {
    let hash = sha256_hex(directory.as_bytes(), SHORT_HASH);
    let head = cut(directory, DIRECTORY_MAX - 1 - SHORT_HASH).trim_end_matches('/');
    let head = if head.is_empty() { "/" } else { head };
    format!("{head}~{hash}")
}

/// The longest prefix of `s` of at most `max` bytes that ends on a character boundary.
fn cut(s: &str, max: usize) -> &str {
    let mut end = max.min(s.len());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

fn sha256_hex(bytes: &[u8], digits: usize) -> String {
    let mut hex = String::with_capacity(64);
    for b in Sha256::digest(bytes) {
        let _ = write!(hex, "{b:02x}");
    }
    hex.truncate(digits);
    hex
}

#[cfg(test)]
mod tests {
    use std::ffi::OsStr;

    use super::*;
    use crate::config::filter::Patterns;
    use crate::config::mime::MimeTypes;
    use crate::config::{AfterUpload, OnChange, OnDelete, PathFilter};

    fn root(directory_prefix: &str, external_id_prefix: &str) -> RootSettings {
        RootSettings {
            id: "cams".into(),
            path: PathBuf::from("/data/export"),
            directory_prefix: directory_prefix.into(),
            external_id_prefix: external_id_prefix.into(),
            filter: PathFilter::new(Patterns::default()).unwrap(),
            fields: FileFields {
                source: Some("gw01".into()),
                ..FileFields::default()
            },
            mime_types: MimeTypes::default(),
            max_file_size: 1 << 30,
            after_upload: AfterUpload::Keep,
            on_change: OnChange::Overwrite,
            on_delete: OnDelete::Keep,
            follow_symlinks: false,
        }
    }

    /// directory_prefix | external_id_prefix | relative path | directory | name | externalId | mimeType
    const TABLE: &str = "
        /site-a | gw01: | line1/cam/img.jpg       | /site-a/line1/cam | img.jpg      | gw01:cams:/line1/cam/img.jpg  | image/jpeg
        /site-a |       | top.csv                 | /site-a           | top.csv      | cams:/top.csv                 | text/csv
        /       |       | a/b/README              | /a/b              | README       | cams:/a/b/README              | application/octet-stream
        /       |       | x.PDF                   | /                 | x.PDF        | cams:/x.PDF                   | application/pdf
        /s      |       | ./a/./b.txt             | /s/a              | b.txt        | cams:/a/b.txt                 | text/plain
        /s      | p-    | ünï/cödé 50%.log        | /s/ünï            | cödé 50%.log | p-cams:/ünï/cödé 50%.log      | text/plain
        /s      |       | with space/and#hash.txt | /s/with space     | and#hash.txt | cams:/with space/and#hash.txt | text/plain
        /s/t    | x/y:  | .env                    | /s/t              | .env         | x/y:cams:/.env                | application/octet-stream
    ";

    #[test]
    fn table() {
        for row in TABLE.lines().filter(|l| !l.trim().is_empty()) {
            let c: Vec<&str> = row.split('|').map(str::trim).collect();
            let [dp, xp, rel, dir, name, xid, mime] = c[..] else {
                panic!("bad row {row}")
            };
            let r = root(dp, xp);
            let f = map_file(&r, Path::new(rel)).unwrap();
            assert_eq!(
                (
                    f.directory.as_str(),
                    f.name.as_str(),
                    f.external_id.as_str(),
                    f.mime_type
                ),
                (dir, name, xid, mime),
                "{rel}"
            );
            assert!(!f.shortened && !f.escaped, "{rel}");
            assert_eq!(f.fields.source.as_deref(), Some("gw01"));
        }
    }

    #[test]
    fn absolute_local_paths_and_errors() {
        let r = root("/site-a", "");
        let f = map_local(&r, Path::new("/data/export/line1/cam/img.jpg")).unwrap();
        assert_eq!(f.external_id, "cams:/line1/cam/img.jpg");
        assert!(matches!(
            map_local(&r, Path::new("/elsewhere/x")),
            Err(MappingError::OutsideRoot { .. })
        ));
        for bad in ["", ".", "../x", "/abs/x", "a/../../x"] {
            assert!(
                matches!(
                    map_file(&r, Path::new(bad)),
                    Err(MappingError::NotRelative { .. })
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn long_external_ids_are_hashed_stably_and_uniquely() {
        let r = root("/s", "gw01:");
        let long_a = format!("{}/a.bin", "d".repeat(300));
        let long_b = format!("{}/b.bin", "d".repeat(300));
        let a = map_file(&r, Path::new(&long_a)).unwrap();
        let a2 = map_file(&r, Path::new(&long_a)).unwrap();
        let b = map_file(&r, Path::new(&long_b)).unwrap();
        assert_eq!(a.external_id.len(), EXTERNAL_ID_MAX);
        assert_eq!(a, a2);
        assert_ne!(a.external_id, b.external_id);
        assert!(a.external_id.starts_with("gw01:cams:/ddd"));
        let hash = a.external_id.rsplit_once('#').unwrap().1;
        assert_eq!(hash, sha256_hex(long_a.as_bytes(), 64));
        assert!(a.shortened);
        // Exactly at the limit: natural form kept.
        let fits = "x".repeat(EXTERNAL_ID_MAX - "gw01:cams:/".len());
        assert_eq!(
            map_file(&r, Path::new(&fits)).unwrap().external_id.len(),
            EXTERNAL_ID_MAX
        );
        assert!(
            !map_file(&r, Path::new(&fits))
                .unwrap()
                .external_id
                .contains('#')
        );
    }

    #[test]
    fn multibyte_text_is_cut_on_character_boundaries() {
        let r = root("/s", "");
        let rel = "é".repeat(200);
        let f = map_file(&r, Path::new(&rel)).unwrap();
        assert!(f.external_id.len() <= EXTERNAL_ID_MAX);
        assert!(f.name.len() <= NAME_MAX);
        assert!(f.name.starts_with("éé"));
    }

    #[test]
    fn long_names_keep_their_extension() {
        let r = root("/s", "");
        let name = format!("{}.csv", "n".repeat(300));
        let f = map_file(&r, Path::new(&name)).unwrap();
        assert!(f.name.len() <= NAME_MAX);
        assert!(f.name.ends_with(".csv"));
        assert!(f.name.contains('~'));
        assert_eq!(f.mime_type, "text/csv");
        let other = map_file(&r, Path::new(&format!("{}.csv", "n".repeat(301)))).unwrap();
        assert_ne!(f.name, other.name);
    }

    #[test]
    fn long_directories_are_shortened_and_stay_absolute() {
        let r = root(&format!("/{}", "p".repeat(400)), "");
        let rel = format!("{}/{}/f.txt", "a".repeat(100), "b".repeat(100));
        let f = map_file(&r, Path::new(&rel)).unwrap();
        assert!(f.directory.len() <= DIRECTORY_MAX);
        assert!(f.directory.starts_with("/ppp"));
        assert!(f.shortened);
        let g = map_file(
            &r,
            Path::new(&format!("{}/{}/f.txt", "a".repeat(100), "c".repeat(100))),
        )
        .unwrap();
        assert_ne!(f.directory, g.directory);
    }

    #[test]
    fn non_utf8_names_are_escaped_losslessly_and_hashed() {
        let r = root("/s", "");
        let raw = b"dir\xff/50%\xfe.bin";
        let f = map_file(&r, Path::new(OsStr::from_bytes(raw))).unwrap();
        assert!(f.escaped);
        assert_eq!(f.directory, "/s/dir%FF");
        assert_eq!(f.name, "50%25%FE.bin");
        assert_eq!(
            f.external_id,
            format!("cams:/dir%FF/50%25%FE.bin#{}", sha256_hex(raw, 64))
        );
        assert_eq!(f.mime_type, "application/octet-stream");
        // A UTF-8 name that looks like the escape maps elsewhere.
        let look_alike = map_file(&r, Path::new("dir%FF/50%25%FE.bin")).unwrap();
        assert_ne!(look_alike.external_id, f.external_id);
    }
}
