//! The admin socket's well-known name in the state directory.
//!
//! Under systemd the daemon binds `$RUNTIME_DIRECTORY/admin.sock`, but an operator's
//! shell has no `$RUNTIME_DIRECTORY`: its `cdf-syncd status` (same config file, no
//! `[admin] socket`) looks for `<state dir>/admin.sock`. So the daemon, when it binds
//! the default socket outside the state directory, also places a symlink
//! `<state dir>/admin.sock` -> the real socket. A leftover link or socket there is
//! replaced atomically (the state directory's lock guarantees no other daemon uses
//! it); the link is removed on exit unless it points elsewhere by then. A link that
//! cannot be made is a WARN: the daemon still serves on its real socket.

use std::path::{Path, PathBuf};

/// A symlink we placed; removed on drop while it still points to `target`.
pub(super) struct SocketLink {
    link: PathBuf,
    target: PathBuf,
}

impl SocketLink {
    /// Places `link` -> `target`, replacing whatever non-directory is at `link`.
    /// Blocks (a few syscalls, at startup).
    pub(super) fn place(link: &Path, target: &Path) -> Option<Self> {
        match replace_with_symlink(link, target) {
            Ok(()) => {
                tracing::info!(link = %link.display(), socket = %target.display(),
                    "admin socket linked from the state directory");
                Some(Self {
                    link: link.to_owned(),
                    target: target.to_owned(),
                })
            }
            Err(e) => {
                tracing::warn!(link = %link.display(), socket = %target.display(), error = %e,
                    "cannot link the admin socket into the state directory: `cdf-syncd status` \
                     run without $RUNTIME_DIRECTORY will not find this daemon; set [admin] \
                     socket to a fixed path to fix that");
                None
            }
        }
    }
}

/// A symlink under a temporary name, renamed over `link` (atomic: a CLI never sees
/// the name missing while a stale entry is being replaced).
fn replace_with_symlink(link: &Path, target: &Path) -> std::io::Result<()> {
    let mut tmp = link.as_os_str().to_owned();
    tmp.push(format!(".{}.tmp", std::process::id()));
    let tmp = PathBuf::from(tmp);
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(target, &tmp)?;
    std::fs::rename(&tmp, link).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

impl Drop for SocketLink {
    fn drop(&mut self) {
        let ours = std::fs::read_link(&self.link).is_ok_and(|t| t == self.target);
        if ours && let Err(e) = std::fs::remove_file(&self.link) {
            tracing::warn!(link = %self.link.display(), error = %e,
                "cannot remove the admin socket's link");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stale_entry_is_replaced_and_the_link_removed_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let link = dir.path().join("admin.sock");
        let target = dir.path().join("run").join("admin.sock");
        std::os::unix::fs::symlink("/nowhere/admin.sock", &link).unwrap();
        let placed = SocketLink::place(&link, &target).unwrap();
        assert_eq!(std::fs::read_link(&link).unwrap(), target);
        drop(placed);
        assert!(std::fs::symlink_metadata(&link).is_err(), "link removed");
        // One that another process re-pointed meanwhile is left alone.
        let placed = SocketLink::place(&link, &target).unwrap();
        std::fs::remove_file(&link).unwrap();
        std::os::unix::fs::symlink("/elsewhere.sock", &link).unwrap();
        drop(placed);
        assert_eq!(
            std::fs::read_link(&link).unwrap(),
            Path::new("/elsewhere.sock")
        );
    }

    #[test]
    fn a_directory_in_the_way_is_not_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let link = dir.path().join("admin.sock");
        std::fs::create_dir(&link).unwrap();
        assert!(SocketLink::place(&link, Path::new("/run/x/admin.sock")).is_none());
        assert!(link.is_dir());
    }
}
