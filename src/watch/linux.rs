//! What the kernel says about a root's filesystem and our inotify use, read from
//! `/proc` (the crate has no `libc`/`rustix` dependency and forbids `unsafe`, so
//! `statfs(2)` is out of reach; `/proc/self/mountinfo` names the same filesystem types).
//!
//! - [`network_fs`]: the type of the mount holding a root when it is a network or FUSE
//!   filesystem (`nfs`, `nfs4`, `cifs`, `smb3`, `smbfs`, `9p`, `ceph`, `afs`, `fuse`,
//!   `fuse.*`; `fuseblk` is a local disk through FUSE and does not count). inotify sees
//!   only changes made through this host on those, so `watch = "auto"` polls them.
//! - [`inotify_usage`]: the watches this process holds and the limit that applies to
//!   it, for the WARN that tells an operator to raise it. The limit is per user and
//!   per user namespace: `fs.inotify.max_user_watches` is the host's, and inside a
//!   container (a user namespace) `user.max_inotify_watches` may be lower; the smaller
//!   of the two applies (in the initial namespace they are the same number).

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};

const MOUNTINFO: &str = "/proc/self/mountinfo";
const MAX_USER_WATCHES: &str = "/proc/sys/fs/inotify/max_user_watches";
const NAMESPACE_MAX_WATCHES: &str = "/proc/sys/user/max_inotify_watches";

/// The filesystem type holding `path` if it is a network or FUSE filesystem; blocking.
pub(crate) fn network_fs(path: &Path) -> Option<String> {
    let canonical = std::fs::canonicalize(path).ok()?;
    let mountinfo = std::fs::read_to_string(MOUNTINFO).ok()?;
    fs_type_of(&mountinfo, &canonical).filter(|t| is_network_fs(t))
}

/// The type of the mount in `mountinfo` (the text of `/proc/self/mountinfo`) whose
/// mount point is the longest prefix of `path`; the last such line wins (stacked mounts).
pub(crate) fn fs_type_of(mountinfo: &str, path: &Path) -> Option<String> {
    let mut best: Option<(usize, &str)> = None;
    for line in mountinfo.lines() {
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let (Some(mount_point), Some(fs_type)) = (left.split(' ').nth(4), right.split(' ').next())
        else {
            continue;
        };
        let mount_point = unescape(mount_point);
        let depth = mount_point.components().count();
        if path.starts_with(&mount_point) && best.is_none_or(|(d, _)| depth >= d) {
            best = Some((depth, fs_type));
        }
    }
    best.map(|(_, t)| t.to_owned())
}

pub(crate) fn is_network_fs(fs_type: &str) -> bool {
    matches!(
        fs_type,
        "nfs" | "nfs4" | "cifs" | "smb3" | "smbfs" | "9p" | "ceph" | "afs" | "fuse"
    ) || fs_type.starts_with("fuse.")
}

/// Undoes mountinfo's octal escapes (`\040` for a space, `\134` for a backslash).
fn unescape(field: &str) -> PathBuf {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes
            .get(i + 1..i + 4)
            .filter(|d| bytes[i] == b'\\' && d.iter().all(|c| (b'0'..=b'7').contains(c)))
            .map(|d| d.iter().fold(0u32, |n, c| n * 8 + u32::from(c - b'0')));
        match octal.and_then(|n| u8::try_from(n).ok()) {
            Some(byte) => {
                out.push(byte);
                i += 4;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    PathBuf::from(OsString::from_vec(out))
}

/// inotify watches held by this process and the per-user limit, where readable.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct InotifyUsage {
    pub watches: Option<u64>,
    /// The smaller of `fs.inotify.max_user_watches` and `user.max_inotify_watches`.
    pub max_user_watches: Option<u64>,
}

/// Reads [`InotifyUsage`]; blocking.
pub(crate) fn inotify_usage() -> InotifyUsage {
    let read = |path| {
        std::fs::read_to_string(path)
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
    };
    let max_user_watches = smaller(read(MAX_USER_WATCHES), read(NAMESPACE_MAX_WATCHES));
    let watches = std::fs::read_dir("/proc/self/fdinfo").ok().map(|dir| {
        dir.filter_map(Result::ok)
            .filter_map(|e| std::fs::read_to_string(e.path()).ok())
            .map(|info| count_watches(&info))
            .sum()
    });
    InotifyUsage {
        watches,
        max_user_watches,
    }
}

/// The smaller of two limits, either of which may be unreadable.
fn smaller(a: Option<u64>, b: Option<u64>) -> Option<u64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

fn count_watches(fdinfo: &str) -> u64 {
    let n = fdinfo
        .lines()
        .filter(|l| l.starts_with("inotify wd:"))
        .count();
    u64::try_from(n).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOUNTINFO: &str = "\
22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
30 22 0:40 / /mnt/share rw,relatime shared:2 - nfs4 srv:/export rw,vers=4.2
31 30 0:41 / /mnt/share/local rw shared:3 - ext4 /dev/sdb1 rw
32 22 0:42 / /mnt/my\\040files rw shared:4 - cifs //srv/files rw
33 22 0:43 / /mnt/sshfs rw shared:5 - fuse.sshfs user@host: rw
34 22 0:44 / /mnt/ntfs rw shared:6 - fuseblk /dev/sdc1 rw
35 22 0:45 / /mnt/sharecase rw shared:7 - ext4 /dev/sdd1 rw
";

    fn fs(path: &str) -> Option<String> {
        fs_type_of(MOUNTINFO, Path::new(path))
    }

    #[test]
    fn the_longest_mount_point_prefix_wins_component_wise() {
        assert_eq!(fs("/data/x").as_deref(), Some("ext4"));
        assert_eq!(fs("/mnt/share/cams").as_deref(), Some("nfs4"));
        assert_eq!(fs("/mnt/share").as_deref(), Some("nfs4"));
        assert_eq!(fs("/mnt/share/local/x").as_deref(), Some("ext4"));
        assert_eq!(fs("/mnt/sharecase/x").as_deref(), Some("ext4"));
        assert_eq!(fs("/mnt/my files/a").as_deref(), Some("cifs"));
        assert_eq!(fs("/mnt/sshfs/a").as_deref(), Some("fuse.sshfs"));
    }

    #[test]
    fn network_and_fuse_types_are_recognised() {
        for t in ["nfs", "nfs4", "cifs", "smb3", "fuse", "fuse.sshfs", "9p"] {
            assert!(is_network_fs(t), "{t}");
        }
        for t in ["ext4", "xfs", "btrfs", "tmpfs", "overlay", "fuseblk"] {
            assert!(!is_network_fs(t), "{t}");
        }
    }

    #[test]
    fn octal_escapes_are_decoded() {
        assert_eq!(unescape("/a\\040b\\134c"), PathBuf::from("/a b\\c"));
        assert_eq!(unescape("/trailing\\04"), PathBuf::from("/trailing\\04"));
    }

    #[test]
    fn watches_are_counted_from_fdinfo() {
        let info = "pos:\t0\nflags:\t00\ninotify wd:2 ino:1 sdev:2\ninotify wd:1 ino:3 sdev:2\n";
        assert_eq!(count_watches(info), 2);
        // The real files are readable in this process.
        let usage = inotify_usage();
        assert!(usage.watches.is_some() && usage.max_user_watches.is_some());
        // The namespace's limit counts when it is the lower one.
        assert_eq!(smaller(Some(8192), Some(20)), Some(20));
        assert_eq!(smaller(Some(20), Some(i32::MAX as u64)), Some(20));
        assert_eq!(smaller(None, Some(5)), Some(5));
        assert_eq!(smaller(None, None), None);
        assert_eq!(fs_type_of("garbage\n", Path::new("/")), None);
    }
}
