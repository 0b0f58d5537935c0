//! Streaming walks of a root (or of one directory in it) and the one `stat` the gate
//! relies on.
//!
//! A walk runs on a blocking thread and sends each candidate file to the driver as
//! soon as it is seen, through a bounded channel: a slow consumer slows the walk down
//! instead of growing memory, and the tree is never held in memory (walkdir keeps one
//! open directory per level). Directories that the filter prunes (`skips_dir`) are not
//! entered; files the filter rejects are not sent; symlinks are skipped unless the root
//! follows them; sockets, FIFOs and devices are skipped with a debug log. Files over
//! `max_file_size` are sent like any other: the pipeline fails them with a reason.
//!
//! The walk counts what it could not read. A full walk that missed a directory is
//! incomplete, and the driver then withholds `ScanDone`, so that deletion handling never
//! acts on a partial view of a root.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use walkdir::{DirEntry, WalkDir};

use super::gate::Stat;
use crate::config::RootSettings;
use crate::fingerprint::Fingerprint;

/// What a walk covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ScanKind {
    /// The whole root: reconciles everything and ends with `ScanDone`.
    Full,
    /// One directory, relative to the root (a new or moved-in directory).
    Subtree(PathBuf),
}

/// Files a walk sends at a time: one wake-up of the driver per batch, not per file.
pub(crate) const FOUND_BATCH: usize = 256;

/// From a walk to the driver.
#[derive(Debug)]
pub(crate) enum ScanMsg {
    /// Files found, in the order the walk found them.
    Found {
        root: usize,
        full: bool,
        files: Vec<Found>,
    },
    Finished {
        root: usize,
        kind: ScanKind,
        report: ScanReport,
    },
}

/// A candidate file a walk found.
#[derive(Debug)]
pub(crate) struct Found {
    pub rel: PathBuf,
    pub fingerprint: Fingerprint,
    /// How old the file's mtime was when it was seen.
    pub age: Duration,
}

/// How a walk went.
#[derive(Debug, Default)]
pub(crate) struct ScanReport {
    /// Accepted regular files found.
    pub files_seen: u64,
    /// Directories or files that could not be read (the walk is incomplete).
    pub unreadable: u64,
    /// The start directory itself could not be walked (missing, not a directory, no
    /// permission).
    pub root_error: Option<io::Error>,
    /// Stopped early: cancelled, or the driver is gone.
    pub stopped: bool,
}

/// One walk to run.
#[derive(Debug)]
pub(crate) struct ScanJob {
    pub root: usize,
    pub settings: Arc<RootSettings>,
    pub kind: ScanKind,
    pub tx: mpsc::Sender<ScanMsg>,
    pub cancel: CancellationToken,
}

/// Walks the job's directory, sending each accepted file; blocking.
pub(crate) fn walk(job: &ScanJob) -> ScanReport {
    let root = &job.settings;
    let mut report = ScanReport::default();
    let (start, full) = match &job.kind {
        ScanKind::Full => (root.path.clone(), true),
        ScanKind::Subtree(rel) if root.filter.skips_dir(rel) => return report,
        ScanKind::Subtree(rel) => (root.path.join(rel), false),
    };
    let follow = root.follow_symlinks;
    let walker = WalkDir::new(&start)
        .follow_links(follow)
        .follow_root_links(follow || full)
        .into_iter()
        .filter_entry(|e| !prune(root, e));
    let mut files = Vec::with_capacity(FOUND_BATCH);
    for item in walker {
        if job.cancel.is_cancelled() {
            report.stopped = true;
            break;
        }
        let entry = match item {
            Ok(entry) => entry,
            Err(err) => {
                walk_error(root, err, &mut report);
                continue;
            }
        };
        let Some((rel, fingerprint)) = candidate(root, &entry, full, &mut report) else {
            continue;
        };
        report.files_seen += 1;
        let age = age(&fingerprint, SystemTime::now());
        files.push(Found {
            rel,
            fingerprint,
            age,
        });
        if files.len() == FOUND_BATCH && !send(job, full, &mut files) {
            report.stopped = true;
            break;
        }
    }
    if !report.stopped && !files.is_empty() && !send(job, full, &mut files) {
        report.stopped = true;
    }
    report
}

/// Sends the batch (leaving `files` empty); false if the driver is gone.
fn send(job: &ScanJob, full: bool, files: &mut Vec<Found>) -> bool {
    let files = std::mem::replace(files, Vec::with_capacity(FOUND_BATCH));
    let msg = ScanMsg::Found {
        root: job.root,
        full,
        files,
    };
    job.tx.blocking_send(msg).is_ok()
}

/// Whether the walk skips this directory and everything under it.
fn prune(root: &RootSettings, entry: &DirEntry) -> bool {
    entry.depth() > 0
        && entry.file_type().is_dir()
        && entry
            .path()
            .strip_prefix(&root.path)
            .is_ok_and(|rel| root.filter.skips_dir(rel))
}

/// The relative path and fingerprint of `entry` if it is a file to sync.
fn candidate(
    root: &RootSettings,
    entry: &DirEntry,
    full: bool,
    report: &mut ScanReport,
) -> Option<(PathBuf, Fingerprint)> {
    let kind = entry.file_type();
    if entry.depth() == 0 && full && !kind.is_dir() {
        report.root_error = Some(io::Error::from(io::ErrorKind::NotADirectory));
        return None;
    }
    if kind.is_dir() {
        return None;
    }
    let rel = entry.path().strip_prefix(&root.path).ok()?;
    if kind.is_symlink() {
        tracing::debug!(path = %entry.path().display(), "skipping symlink (follow_symlinks = false)");
        return None;
    }
    if !kind.is_file() {
        tracing::debug!(path = %entry.path().display(), "skipping special file");
        return None;
    }
    if !root.filter.accepts(rel) {
        return None;
    }
    match entry.metadata() {
        Ok(meta) => Some((rel.to_path_buf(), Fingerprint::of(&meta))),
        Err(err) => {
            walk_error(root, err, report);
            None
        }
    }
}

/// Classifies a walk error: a vanished path is normal, a loop is skipped, anything
/// else makes the walk incomplete.
fn walk_error(root: &RootSettings, err: walkdir::Error, report: &mut ScanReport) {
    let path = err.path().map(Path::to_path_buf).unwrap_or_default();
    if err.loop_ancestor().is_some() {
        tracing::warn!(root = %root.id, path = %path.display(), "symlink loop; skipping it");
        return;
    }
    let depth = err.depth();
    let io = err.into_io_error();
    if depth == 0 {
        report.root_error = Some(io.unwrap_or_else(|| io::Error::other("cannot walk the root")));
        return;
    }
    match io {
        Some(e) if vanished(&e) => {
            tracing::debug!(path = %path.display(), "vanished during the scan");
        }
        other => {
            report.unreadable += 1;
            let error = other.map_or_else(|| "unknown".to_owned(), |e| e.to_string());
            tracing::warn!(root = %root.id, path = %path.display(), %error, "cannot read; the scan is incomplete");
        }
    }
}

fn vanished(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
    )
}

/// How old a fingerprint's mtime is at `now` (zero for mtimes in the future).
pub(crate) fn age(fingerprint: &Fingerprint, now: SystemTime) -> Duration {
    let now_ns = now
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i128::try_from(d.as_nanos()).unwrap_or(i128::MAX));
    let diff = now_ns - i128::from(fingerprint.mtime_ns);
    Duration::from_nanos(u64::try_from(diff.max(0)).unwrap_or(u64::MAX))
}

/// Stats `path` for the gate; blocking. Symlinks count as files only when followed.
pub(crate) fn stat(path: &Path, follow_symlinks: bool) -> Stat {
    let meta = if follow_symlinks {
        std::fs::metadata(path)
    } else {
        std::fs::symlink_metadata(path)
    };
    match meta {
        Ok(m) if m.is_file() => Stat::File(Fingerprint::of(&m)),
        Ok(m) if m.is_dir() => Stat::Dir,
        Ok(m) => {
            let what = if m.file_type().is_symlink() {
                "symlink (follow_symlinks = false)"
            } else {
                "special file"
            };
            tracing::debug!(path = %path.display(), what, "not a candidate");
            Stat::Other
        }
        Err(e) if vanished(&e) => Stat::Missing,
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "cannot stat; skipping until it changes again");
            Stat::Other
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn age_is_measured_from_the_mtime_and_never_negative() {
        let fp = |mtime_ns| Fingerprint {
            size: 0,
            mtime_ns,
            inode: 0,
            device: 0,
        };
        let now = UNIX_EPOCH + Duration::from_secs(100);
        assert_eq!(age(&fp(90_000_000_000), now), Duration::from_secs(10));
        assert_eq!(age(&fp(200_000_000_000), now), Duration::ZERO);
        assert_eq!(age(&fp(-1_000_000_000), now), Duration::from_secs(101));
    }

    #[test]
    fn stat_tells_files_directories_links_and_missing_paths_apart() {
        let dir = tempfile::tempdir().expect("tmp");
        let file = dir.path().join("f");
        std::fs::write(&file, b"abc").expect("write");
        let link = dir.path().join("l");
        std::os::unix::fs::symlink(&file, &link).expect("symlink");
        assert!(matches!(stat(&file, false), Stat::File(fp) if fp.size == 3));
        assert_eq!(stat(dir.path(), false), Stat::Dir);
        assert_eq!(stat(&link, false), Stat::Other);
        assert!(matches!(stat(&link, true), Stat::File(_)));
        assert_eq!(stat(&dir.path().join("nope"), false), Stat::Missing);
        assert_eq!(stat(&file.join("below-a-file"), false), Stat::Missing);
    }
}
