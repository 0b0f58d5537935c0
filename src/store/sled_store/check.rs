//! The consistency pass, run at open and whenever an undecodable record is met: it
//! quarantines garbage, repairs the derived trees from the job records and recounts.
//!
//! The job records are the truth; `by_path`, `due` and `parts` are derived from them.
//! A crash between the single-key writes of one transition leaves at most a stale or
//! missing index entry, or part records of a session the job no longer holds: this pass
//! puts them right (a WARN says how many). Undecodable records are moved to the
//! `quarantine` tree with an ERROR, never a panic and never a crash loop; the path they
//! described is found again by the next scan.

use sled::{IVec, Tree};
use tracing::{error, warn};

use super::{SledStore, Slot};
use crate::store::codec;
use crate::store::error::StoreError;
use crate::store::job::{Job, JobId};
use crate::store::rules;
use crate::store::types::{Counts, StateKind};

impl SledStore {
    /// Quarantines garbage, repairs the indexes and recounts everything. Reads every
    /// record once (plus one point read per index entry).
    pub(super) fn check(&self, counts: &mut Counts) -> Result<(), StoreError> {
        let mut fresh = Counts::default();
        let mut repairs = 0;
        for entry in self.t.jobs.iter() {
            let (key, value) = entry.map_err(|e| self.err(e))?;
            let id = codec::id_from_key(&key).unwrap_or(JobId(u64::MAX));
            match codec::decode_job(id, &value) {
                Ok(job) => {
                    *fresh.slot(StateKind::of(&job.state)) += 1;
                    repairs += self.index(&job)?;
                }
                Err(why) => {
                    self.quarantine(&self.t.jobs, "jobs", &key)?;
                    error!(job = %id, reason = %why, dir = %self.dir.display(),
                        "quarantined an undecodable job record; the next scan re-discovers its path");
                }
            }
        }
        let mut by_root = std::collections::BTreeMap::<String, u64>::new();
        for entry in self.t.synced.iter() {
            let (key, value) = entry.map_err(|e| self.err(e))?;
            match codec::decode_synced(&value) {
                Ok(_) => {
                    fresh.synced += 1;
                    if let Some(file) = codec::path_from_key(&key) {
                        *by_root.entry(file.root).or_default() += 1;
                    }
                }
                Err(why) => {
                    self.quarantine(&self.t.synced, "synced", &key)?;
                    error!(reason = %why, dir = %self.dir.display(),
                        "quarantined an undecodable synced-file record; its path will be uploaded again");
                }
            }
        }
        repairs += self.drop_stale_entries()?;
        if repairs > 0 {
            warn!(repairs, dir = %self.dir.display(),
                "repaired job store index entries left by an unclean stop");
        }
        fresh.quarantined = self.t.quarantine.len() as u64;
        *counts = fresh;
        *self
            .synced_by_root
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = by_root;
        Ok(())
    }

    /// Adds the job's path and due entries if they are missing; returns how many.
    fn index(&self, job: &Job) -> Result<u64, StoreError> {
        let e = |e| self.err(e);
        let id_key = codec::id_key(job.id);
        let mut added = 0;
        let path = codec::path_key(&job.key);
        if self.t.by_path.get(&path).map_err(e)?.as_deref() != Some(&id_key[..]) {
            self.t.by_path.insert(path, &id_key[..]).map_err(e)?;
            added += 1;
        }
        if let Some(at) = rules::due_ms(job) {
            let due = codec::due_key(at, job.id);
            if !self.t.due.contains_key(due).map_err(e)? {
                self.t.due.insert(due, &[][..]).map_err(e)?;
                added += 1;
            }
        }
        Ok(added)
    }

    /// Removes index entries and part records no job backs; returns how many.
    fn drop_stale_entries(&self) -> Result<u64, StoreError> {
        let mut stale = Vec::new();
        for entry in self.t.by_path.iter() {
            let (path, value) = entry.map_err(|e| self.err(e))?;
            let job = codec::id_from_key(&value)
                .map(|id| self.read_job(id))
                .transpose()?;
            let backed = matches!(job, Some(Slot::Job(j)) if codec::path_key(&j.key) == *path);
            stale.extend((!backed).then_some((&self.t.by_path, path)));
        }
        for key in self.t.due.iter().keys() {
            let key = key.map_err(|e| self.err(e))?;
            let backed = match codec::due_from_key(&key) {
                Some((at, id)) => {
                    matches!(self.read_job(id)?, Slot::Job(j) if rules::due_ms(&j) == Some(at))
                }
                None => false,
            };
            stale.extend((!backed).then_some((&self.t.due, key)));
        }
        let mut current: Option<(JobId, Option<u32>)> = None;
        for key in self.t.parts.iter().keys() {
            let key = key.map_err(|e| self.err(e))?;
            let id = codec::id_from_key(&key).unwrap_or(JobId(u64::MAX));
            let parts = match current {
                Some((seen, parts)) if seen == id => parts,
                _ => self.session_parts(id)?,
            };
            current = Some((id, parts));
            let backed = codec::part_from_key(&key)
                .zip(parts)
                .is_some_and(|(p, n)| p < n);
            stale.extend((!backed).then_some((&self.t.parts, key)));
        }
        for (tree, key) in &stale {
            tree.remove(key).map_err(|e| self.err(e))?;
        }
        Ok(stale.len() as u64)
    }

    /// How many parts the job's session has (`None`: it holds no session).
    fn session_parts(&self, id: JobId) -> Result<Option<u32>, StoreError> {
        Ok(match self.read_job(id)? {
            Slot::Job(job) => rules::session(&job.state).map(rules::part_count),
            _ => None,
        })
    }

    /// Copies `key`'s value from `tree` (called `name`) to quarantine, then removes it.
    fn quarantine(&self, tree: &Tree, name: &str, key: &IVec) -> Result<(), StoreError> {
        let e = |e| self.err(e);
        if let Some(raw) = tree.get(key).map_err(e)? {
            let qkey = [name.as_bytes(), b"/", key].concat();
            self.t.quarantine.insert(qkey, raw).map_err(e)?;
            tree.remove(key).map_err(e)?;
        }
        Ok(())
    }
}
