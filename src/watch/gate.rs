//! The stability gate: decides when a file is complete enough to upload.
//!
//! The gate is pure bookkeeping: it does no IO and reads no clock. The driver feeds it
//! hints from the watcher, files found by scans and the results of `stat` calls (each
//! with the time it happened), asks it which paths are due for a re-stat, and acts on
//! the [`Outcome`]s it returns. That keeps every rule testable with injected stats and
//! paused time.
//!
//! A file is complete when
//! - a close-after-write arrived, no change was reported after it, and a fresh stat
//!   equals the one seen before (the fast path: the first stat after the close is
//!   confirmed by a second one `probe` later unless it already equals the last one);
//! - or its size and mtime stayed the same across stats for `stable_for`, with no
//!   change reported in that time;
//! - or a scan found it with an mtime older than `stable_for` (it was written before
//!   we looked; this is how the startup scan treats files written while we were down).
//!
//! Only files that are settling are held; a file leaves the gate when it is emitted,
//! disappears, or turns out to be something else (a directory, a symlink).

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::time::Duration;

use tokio::time::Instant;

use crate::fingerprint::Fingerprint;

/// A path inside a root: the root's index in the configuration and the relative path.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct Key {
    pub root: usize,
    pub rel: PathBuf,
}

/// What the watcher said about a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Hint {
    /// Content written or file created (an accepted file name).
    Changed,
    /// Attributes or mtime changed (an accepted file name).
    Metadata,
    /// Closed after writing (an accepted file name).
    Closed,
    /// Something appeared under this name (created or renamed in) whose type is not
    /// known yet: `file_ok` if the name is accepted as a file, `may_be_dir` if a
    /// directory here should trigger a subtree scan.
    Arrived { file_ok: bool, may_be_dir: bool },
}

/// What a `stat` of a tracked path found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stat {
    File(Fingerprint),
    Dir,
    Missing,
    /// A symlink that is not followed, a special file, or a stat error (logged by the
    /// caller): the path is not a candidate.
    Other,
}

/// What the driver must do about a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Complete; `scanned` if a full scan found it (then once per walk at most).
    Stable {
        fingerprint: Fingerprint,
        scanned: bool,
    },
    Gone,
    ScanDir,
}

#[derive(Debug)]
struct Entry {
    /// The last stat seen; `None` before the first.
    last: Option<Fingerprint>,
    /// Since when nothing changed: the later of the last change hint and the first
    /// stat that returned `last`.
    stable_since: Instant,
    /// A close-after-write arrived and no change since.
    closed: bool,
    file_ok: bool,
    may_be_dir: bool,
    /// Found by a full scan that has not reported `ScanDone` yet.
    scan_wait: bool,
    due: Instant,
}

/// The files currently settling, with when each needs its next stat.
#[derive(Debug)]
pub(crate) struct Gate {
    stable_for: Duration,
    probe: Duration,
    entries: HashMap<Key, Entry>,
    schedule: BTreeSet<(Instant, Key)>,
    /// Per root: entries with `scan_wait`.
    waiting: HashMap<usize, usize>,
}

impl Gate {
    pub fn new(stable_for: Duration) -> Self {
        Self {
            stable_for,
            probe: probe_delay(stable_for),
            entries: HashMap::new(),
            schedule: BTreeSet::new(),
            waiting: HashMap::new(),
        }
    }

    /// The delay between a stat and the one that confirms it on the fast path.
    #[cfg(test)]
    pub fn probe(&self) -> Duration {
        self.probe
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Files found by the running full scan of `root` that are still settling.
    pub fn scan_waiting(&self, root: usize) -> usize {
        self.waiting.get(&root).copied().unwrap_or(0)
    }

    /// Records a watcher hint for `key`.
    pub fn hint(&mut self, key: Key, hint: Hint, now: Instant) {
        let probe = now + self.probe;
        let (file_ok, may_be_dir) = match hint {
            Hint::Arrived {
                file_ok,
                may_be_dir,
            } => (file_ok, may_be_dir),
            _ => (true, false),
        };
        let Some(entry) = self.entries.get_mut(&key) else {
            let due = if hint == Hint::Closed { now } else { probe };
            let entry = Entry {
                last: None,
                stable_since: now,
                closed: hint == Hint::Closed,
                file_ok,
                may_be_dir,
                scan_wait: false,
                due,
            };
            self.insert(key, entry);
            return;
        };
        let old_due = entry.due;
        match hint {
            Hint::Changed | Hint::Arrived { .. } => {
                entry.stable_since = now;
                entry.closed = false;
                entry.file_ok |= file_ok;
                entry.may_be_dir |= may_be_dir;
            }
            Hint::Metadata => entry.due = entry.due.min(probe),
            Hint::Closed => {
                entry.closed = true;
                entry.due = now;
            }
        }
        let new_due = entry.due;
        self.reschedule(&key, old_due, new_due);
    }

    /// Forgets `key` (removed or moved out); true if it was settling.
    pub fn remove(&mut self, key: &Key) -> bool {
        self.take(key).is_some()
    }

    /// Forgets every entry of `root` (the root itself disappeared).
    pub fn forget_root(&mut self, root: usize) {
        let keys: Vec<Key> = self
            .entries
            .keys()
            .filter(|k| k.root == root)
            .cloned()
            .collect();
        for key in keys {
            self.take(&key);
        }
    }

    /// A scan found a regular file whose mtime is `age` old; `full` if the scan covers
    /// the whole root (its `ScanDone` waits for the file). Old files are stable at once.
    pub fn found(
        &mut self,
        key: Key,
        fingerprint: Fingerprint,
        age: Duration,
        full: bool,
        now: Instant,
    ) -> Option<Outcome> {
        if let Some(entry) = self.entries.get_mut(&key) {
            if full && !entry.scan_wait {
                entry.scan_wait = true;
                *self.waiting.entry(key.root).or_default() += 1;
            }
            return self.observe(&key, Stat::File(fingerprint), now);
        }
        if age >= self.stable_for {
            return Some(Outcome::Stable {
                fingerprint,
                scanned: full,
            });
        }
        let stable_since = now.checked_sub(age).unwrap_or(now);
        let entry = Entry {
            last: Some(fingerprint),
            stable_since,
            closed: false,
            file_ok: true,
            may_be_dir: false,
            scan_wait: full,
            due: (stable_since + self.stable_for).max(now + self.probe),
        };
        self.insert(key, entry);
        None
    }

    /// When the next stat is due.
    pub fn next_due(&self) -> Option<Instant> {
        self.schedule.first().map(|(due, _)| *due)
    }

    /// Takes up to `max` keys due at `now`; each must be answered with [`Gate::observe`].
    pub fn take_due(&mut self, now: Instant, max: usize) -> Vec<Key> {
        let mut keys = Vec::new();
        while keys.len() < max {
            match self.schedule.first() {
                Some((due, _)) if *due <= now => {}
                _ => break,
            }
            if let Some((_, key)) = self.schedule.pop_first() {
                keys.push(key);
            }
        }
        keys
    }

    /// Applies the result of a stat of `key` taken at `now`.
    pub fn observe(&mut self, key: &Key, stat: Stat, now: Instant) -> Option<Outcome> {
        let entry = self.entries.get_mut(key)?;
        let fingerprint = match stat {
            Stat::File(fp) if entry.file_ok => fp,
            Stat::Missing if entry.file_ok => return self.take(key).map(|_| Outcome::Gone),
            Stat::Dir if entry.may_be_dir => return self.take(key).map(|_| Outcome::ScanDir),
            _ => {
                self.take(key);
                return None;
            }
        };
        if entry.last == Some(fingerprint)
            && (entry.closed || now >= entry.stable_since + self.stable_for)
        {
            let scanned = self.take(key).is_some_and(|e| e.scan_wait);
            return Some(Outcome::Stable {
                fingerprint,
                scanned,
            });
        }
        if entry.last != Some(fingerprint) {
            entry.last = Some(fingerprint);
            entry.stable_since = entry.stable_since.max(now);
        }
        let old_due = entry.due;
        entry.due = if entry.closed {
            now + self.probe
        } else {
            (entry.stable_since + self.stable_for).max(now + self.probe)
        };
        let new_due = entry.due;
        self.reschedule(key, old_due, new_due);
        None
    }

    fn insert(&mut self, key: Key, entry: Entry) {
        if entry.scan_wait {
            *self.waiting.entry(key.root).or_default() += 1;
        }
        self.schedule.insert((entry.due, key.clone()));
        self.entries.insert(key, entry);
    }

    fn take(&mut self, key: &Key) -> Option<Entry> {
        let entry = self.entries.remove(key)?;
        self.schedule.remove(&(entry.due, key.clone()));
        if entry.scan_wait
            && let Some(n) = self.waiting.get_mut(&key.root)
        {
            *n = n.saturating_sub(1);
        }
        Some(entry)
    }

    /// Moves `key` in the schedule. A key taken by `take_due` is not in the schedule;
    /// removing it is a no-op and inserting puts it back.
    fn reschedule(&mut self, key: &Key, old: Instant, new: Instant) {
        self.schedule.remove(&(old, key.clone()));
        self.schedule.insert((new, key.clone()));
    }
}

/// A tenth of `stable_for`, between 10 ms and 500 ms.
fn probe_delay(stable_for: Duration) -> Duration {
    (stable_for / 10).clamp(Duration::from_millis(10), Duration::from_millis(500))
}

#[cfg(test)]
#[path = "gate_tests.rs"]
mod tests;
