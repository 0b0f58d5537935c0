//! Validation of each `[[roots]]` table, and the checks across roots: unique ids, no
//! root inside another, no state directory or `move_to` target inside a root.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use toml::Spanned;

use super::{absolute, fields, identifier};
use crate::config::error::Report;
use crate::config::filter::{PathFilter, Patterns, compile_glob};
use crate::config::limits;
use crate::config::mime::{MimeTypes, is_valid_type, normalize_extension};
use crate::config::raw::{List, Map, RawAfterUpload, RawRoot, Str};
use crate::config::settings::{
    AfterUpload, DEFAULT_TEMP_PATTERNS, OnChange, OnDelete, RootSettings,
};

/// Longest root id; with [`EXTERNAL_ID_PREFIX_MAX`] it leaves room for the hashed
/// externalId form (see `mapping`).
pub const ROOT_ID_MAX: usize = 64;
pub const EXTERNAL_ID_PREFIX_MAX: usize = 100;

pub(super) fn root(
    r: &mut Report,
    i: usize,
    raw: &Spanned<RawRoot>,
    is_dm: bool,
) -> Option<RootSettings> {
    let key = format!("roots[{i}]");
    let k = |name: &str| format!("{key}.{name}");
    let root = raw.get_ref();
    let id = identifier(r, &root.id, &k("id"), ROOT_ID_MAX);
    let path = root_path(r, &root.path, &k("path"));
    let directory_prefix = root
        .directory_prefix
        .as_ref()
        .map_or(Some("/".to_owned()), |s| {
            directory_prefix(r, s, &k("directory_prefix"))
        });
    let external_id_prefix = root
        .external_id_prefix
        .as_ref()
        .map_or(Some(String::new()), |s| {
            external_id_prefix(r, s, &k("external_id_prefix"))
        });
    let filter = filter(r, &key, root);
    let fields = fields::fields(r, &key, root, is_dm);
    let mime_types = root
        .mime_types
        .as_ref()
        .map_or(Some(MimeTypes::default()), |m| {
            mime_types(r, &k("mime_types"), m)
        });
    let max_file_size = max_file_size(r, root, &k("max_file_size"));
    let after_upload = after_upload(r, root, &k("after_upload.move_to"));
    let on_delete = root.on_delete.unwrap_or(OnDelete::Keep);
    if on_delete != OnDelete::Keep && matches!(&after_upload, Some(a) if *a != AfterUpload::Keep) {
        r.at(
            raw.span(),
            k("on_delete"),
            "on_delete = \"mark\" or \"delete\" needs after_upload = \"keep\": a source that after_upload removes is not a local deletion",
        );
    }
    Some(RootSettings {
        id: id?,
        path: path?,
        directory_prefix: directory_prefix?,
        external_id_prefix: external_id_prefix?,
        filter: filter?,
        fields: fields?,
        mime_types: mime_types?,
        max_file_size: max_file_size?,
        after_upload: after_upload?,
        on_change: root.on_change.unwrap_or(OnChange::Overwrite),
        on_delete,
        follow_symlinks: root.follow_symlinks.unwrap_or(false),
    })
}

fn after_upload(r: &mut Report, root: &RawRoot, move_to_key: &str) -> Option<AfterUpload> {
    match root.after_upload.as_ref().map(Spanned::get_ref) {
        None | Some(RawAfterUpload::Keep) => Some(AfterUpload::Keep),
        Some(RawAfterUpload::Delete) => Some(AfterUpload::Delete),
        Some(RawAfterUpload::MoveTo(p)) => absolute(r, p, move_to_key).map(AfterUpload::MoveTo),
    }
}

fn root_path(r: &mut Report, s: &Str, key: &str) -> Option<PathBuf> {
    let path = absolute(r, s, key)?;
    if path == Path::new("/") {
        r.at(
            s.span(),
            key,
            "the filesystem root `/` cannot be watched: give the directory to sync",
        );
        return None;
    }
    Some(path)
}

/// An absolute unix path for CDF's `directory`: no empty, `.` or `..` segments, no
/// trailing `/` (except `/` itself), at most 512 bytes.
fn directory_prefix(r: &mut Report, s: &Str, key: &str) -> Option<String> {
    let v = s.get_ref();
    let trimmed = if v.len() > 1 {
        v.trim_end_matches('/')
    } else {
        v.as_str()
    };
    let problem = if !v.starts_with('/') {
        Some(format!(
            "`{v}` is not absolute: the CDF directory prefix must start with `/`, e.g. \"/site-a\""
        ))
    } else if trimmed.len() > 1
        && trimmed[1..]
            .split('/')
            .any(|seg| seg.is_empty() || seg == "." || seg == "..")
    {
        Some(format!(
            "`{v}` has an empty, `.` or `..` segment; write a plain absolute path such as \"/site-a/line1\""
        ))
    } else if v.chars().any(char::is_control) {
        Some("must not contain control characters".to_owned())
    } else if trimmed.len() > limits::DIRECTORY_MAX {
        Some(format!(
            "is {} bytes; CDF directories are at most {} (and files below add to it)",
            trimmed.len(),
            limits::DIRECTORY_MAX
        ))
    } else {
        None
    };
    match problem {
        Some(p) => {
            r.at(s.span(), key, p);
            None
        }
        None => Some(trimmed.to_owned()),
    }
}

fn external_id_prefix(r: &mut Report, s: &Str, key: &str) -> Option<String> {
    let v = s.get_ref();
    if v.len() > EXTERNAL_ID_PREFIX_MAX {
        r.at(s.span(), key, format!("is {} bytes; at most {EXTERNAL_ID_PREFIX_MAX} (externalIds are at most 255 bytes in all)", v.len()));
        return None;
    }
    if v.chars().any(char::is_control) {
        r.at(s.span(), key, "must not contain control characters");
        return None;
    }
    Some(v.clone())
}

fn filter(r: &mut Report, key: &str, root: &RawRoot) -> Option<PathFilter> {
    let include = globs(r, &format!("{key}.include"), root.include.as_ref());
    let exclude = globs(r, &format!("{key}.exclude"), root.exclude.as_ref());
    let temp = match &root.temp_patterns {
        Some(list) => globs(r, &format!("{key}.temp_patterns"), Some(list)),
        None => Some(
            DEFAULT_TEMP_PATTERNS
                .iter()
                .map(|s| (*s).to_owned())
                .collect(),
        ),
    };
    let patterns = Patterns {
        include: include?,
        exclude: exclude?,
        temp: temp?,
    };
    match PathFilter::new(patterns) {
        Ok(f) => Some(f),
        Err((_, why)) => {
            r.nowhere(key.to_owned(), format!("cannot compile the globs: {why}"));
            None
        }
    }
}

/// Checks every glob of one list, reporting each bad one at its own line.
fn globs(r: &mut Report, key: &str, list: Option<&List<String>>) -> Option<Vec<String>> {
    let Some(list) = list else {
        return Some(Vec::new());
    };
    let mut ok = true;
    for g in list.get_ref() {
        if let Err(why) = compile_glob(g.get_ref()) {
            r.at(
                g.span(),
                key,
                format!("invalid glob `{}`: {why}", g.get_ref()),
            );
            ok = false;
        }
    }
    ok.then(|| list.get_ref().iter().map(|g| g.get_ref().clone()).collect())
}

fn mime_types(r: &mut Report, key: &str, map: &Map) -> Option<MimeTypes> {
    let mut out = BTreeMap::new();
    let mut ok = true;
    for (ext, t) in map.get_ref() {
        let Some(norm) = normalize_extension(ext.get_ref()) else {
            r.at(ext.span(), key, format!("`{}` is not a file extension: write it without dots inside, e.g. csv = \"text/csv\"", ext.get_ref()));
            ok = false;
            continue;
        };
        if !is_valid_type(t.get_ref()) {
            r.at(
                t.span(),
                format!("{key}.{norm}"),
                format!(
                    "`{}` is not a MIME type: expected `type/subtype`, at most 256 bytes",
                    t.get_ref()
                ),
            );
            ok = false;
            continue;
        }
        out.insert(norm, t.get_ref().clone());
    }
    ok.then(|| MimeTypes::new(out))
}

fn max_file_size(r: &mut Report, root: &RawRoot, key: &str) -> Option<u64> {
    let Some(v) = &root.max_file_size else {
        return Some(limits::FILE_SIZE_MAX);
    };
    let n = v.get_ref().0;
    if n == 0 || n > limits::FILE_SIZE_MAX {
        let msg = format!(
            "{n} bytes is out of range: use 1 byte up to CDF's maximum of {} bytes (250 parts of 4000 MiB), or leave it out",
            limits::FILE_SIZE_MAX
        );
        r.at(v.span(), key, msg);
        return None;
    }
    Some(n)
}

/// Checks across roots, on the raw values so that each error has its line.
pub(super) fn cross_check(
    r: &mut Report,
    roots: &[Spanned<RawRoot>],
    state_dir: Option<&Path>,
    remote: bool,
) {
    if roots.is_empty() && !remote {
        r.nowhere(
            "roots",
            "no [[roots]] configured: add at least one [[roots]] table with `id` and `path`",
        );
    }
    let paths: Vec<Option<PathBuf>> = roots
        .iter()
        .map(|root| normalized(&root.get_ref().path))
        .collect();
    for (i, root) in roots.iter().enumerate() {
        let root = root.get_ref();
        for (j, other) in roots.iter().enumerate().take(i) {
            if root.id.get_ref() == other.get_ref().id.get_ref() {
                r.at(
                    root.id.span(),
                    format!("roots[{i}].id"),
                    format!(
                        "duplicate root id `{}` (also roots[{j}]): ids must be unique",
                        root.id.get_ref()
                    ),
                );
            }
            if let (Some(a), Some(b)) = (&paths[i], &paths[j])
                && (a.starts_with(b) || b.starts_with(a))
            {
                let msg = format!(
                    "`{}` overlaps roots[{j}] (`{}`): one root inside another would sync files twice; roots must not be nested",
                    a.display(),
                    b.display()
                );
                r.at(root.path.span(), format!("roots[{i}].path"), msg);
            }
        }
        let Some(path) = &paths[i] else { continue };
        if let Some(state) = state_dir.filter(|s| s.starts_with(path) || path.starts_with(s)) {
            let msg = format!(
                "overlaps the state directory {}: the daemon would sync its own database",
                state.display()
            );
            r.at(root.path.span(), format!("roots[{i}].path"), msg);
        }
        check_move_to(r, i, root, roots, &paths);
    }
}

fn check_move_to(
    r: &mut Report,
    i: usize,
    root: &RawRoot,
    roots: &[Spanned<RawRoot>],
    paths: &[Option<PathBuf>],
) {
    let Some(RawAfterUpload::MoveTo(target)) = root.after_upload.as_ref().map(Spanned::get_ref)
    else {
        return;
    };
    let Some(target_path) = normalized(target) else {
        return;
    };
    for (j, p) in paths.iter().enumerate() {
        if let Some(p) = p
            .as_ref()
            .filter(|p| target_path.starts_with(p) || p.starts_with(&target_path))
        {
            let id = roots[j].get_ref().id.get_ref();
            let msg = format!(
                "`{}` overlaps root `{id}` ({}): moved files would be synced again; move them outside every root",
                target_path.display(),
                p.display()
            );
            r.at(
                target.span(),
                format!("roots[{i}].after_upload.move_to"),
                msg,
            );
        }
    }
}

fn normalized(s: &Str) -> Option<PathBuf> {
    let p = Path::new(s.get_ref());
    p.is_absolute().then(|| super::normalize(p))
}
