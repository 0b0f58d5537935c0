//! The state directory's file-system chores, engine-agnostic: the single-owner lock and
//! moving a broken database aside.
//!
//! The lock is an exclusive `flock` on `<dir>/lock` holding the owner's pid, taken
//! before the engine opens anything, so a second daemon (or `status`) gets "another
//! cdf-syncd owns <dir> (pid N)" rather than an engine error. It is released when the
//! [`StateLock`] is dropped or the process dies, whichever comes first.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::error::StoreError;

const LOCK_FILE: &str = "lock";

/// Holds the state directory for this process until dropped.
#[derive(Debug)]
pub(crate) struct StateLock {
    _file: File,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_owned(),
        source,
    }
}

impl StateLock {
    /// Creates `dir` if needed and takes its lock, writing our pid into it.
    pub(crate) fn acquire(dir: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let path = dir.join(LOCK_FILE);
        // Not truncated before the lock is ours: the owner's pid must stay readable.
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io(&path))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                return Err(StoreError::Locked {
                    dir: dir.to_owned(),
                    pid: owner_pid(dir),
                });
            }
            Err(TryLockError::Error(e)) => return Err(io(&path)(e)),
        }
        // Only informative (the lock is the flock): a full disk must not stop the start.
        let pid = file
            .set_len(0)
            .and_then(|()| writeln!(file, "{}", std::process::id()));
        if let Err(error) = pid {
            tracing::warn!(path = %path.display(), %error, "cannot write our pid into the lock file");
        }
        Ok(Self { _file: file })
    }
}

/// The pid written by the lock's current owner, if it can be read.
pub(crate) fn owner_pid(dir: &Path) -> Option<u32> {
    let text = std::fs::read_to_string(dir.join(LOCK_FILE)).ok()?;
    text.trim().parse().ok()
}

/// Waits up to `patience` for the exclusive `flock` some process may hold on `file`
/// (how sled guards its database), then fails with [`StoreError::Locked`]. Sled lets
/// go of its lock a moment after its last handle is dropped (and an exiting daemon a
/// moment after its last write), so a short wait saves a needless failure.
pub(crate) fn wait_for_flock(
    dir: &Path,
    file: &Path,
    patience: Duration,
) -> Result<(), StoreError> {
    let Ok(handle) = OpenOptions::new().read(true).write(true).open(file) else {
        return Ok(()); // missing or unreadable: the engine reports it properly
    };
    let started = Instant::now();
    loop {
        match handle.try_lock() {
            Ok(()) => return Ok(()),
            Err(TryLockError::WouldBlock) if started.elapsed() < patience => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(TryLockError::WouldBlock) => {
                return Err(StoreError::Locked {
                    dir: dir.to_owned(),
                    pid: None,
                });
            }
            Err(TryLockError::Error(e)) => return Err(io(file)(e)),
        }
    }
}

/// Renames `db` to `<db>.corrupt-<unix seconds>` (with a counter if that exists) and
/// returns the new path.
pub(crate) fn move_aside(db: &Path) -> Result<PathBuf, StoreError> {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let base = format!("{}.corrupt-{secs}", db.display());
    let mut target = PathBuf::from(&base);
    let mut n = 1;
    while target.exists() {
        target = PathBuf::from(format!("{base}-{n}"));
        n += 1;
    }
    std::fs::rename(db, &target).map_err(io(db))?;
    Ok(target)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_names_the_owner() {
        let dir = tempfile::tempdir().unwrap();
        let held = StateLock::acquire(dir.path()).unwrap();
        let err = StateLock::acquire(dir.path()).unwrap_err();
        let pid = std::process::id();
        assert!(matches!(err, StoreError::Locked { pid: Some(p), .. } if p == pid));
        assert!(err.to_string().contains(&format!("(pid {pid})")), "{err}");
        drop(held);
        StateLock::acquire(dir.path()).unwrap();
    }

    #[test]
    fn a_held_flock_is_reported_as_locked() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        std::fs::write(&file, b"").unwrap();
        let patience = Duration::from_millis(50);
        wait_for_flock(dir.path(), &file, patience).unwrap();
        let holder = File::open(&file).unwrap();
        holder.lock().unwrap();
        let started = Instant::now();
        let err = wait_for_flock(dir.path(), &file, patience).unwrap_err();
        assert!(matches!(err, StoreError::Locked { pid: None, .. }), "{err}");
        assert!(started.elapsed() >= patience);
        drop(holder);
        wait_for_flock(dir.path(), &file, patience).unwrap();
    }

    #[test]
    fn moving_aside_never_overwrites() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("db");
        std::fs::create_dir(&db).unwrap();
        let first = move_aside(&db).unwrap();
        std::fs::create_dir(&db).unwrap();
        let second = move_aside(&db).unwrap();
        assert_ne!(first, second);
        assert!(first.exists() && second.exists() && !db.exists());
    }
}
