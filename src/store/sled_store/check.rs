//! Undecodable records: moved to the `quarantine` tree with an ERROR, never a panic,
//! never a crash loop; the path they described is found again by the next scan. The
//! same full pass recounts the per-state counters.

use sled::transaction::Transactional;
use sled::{Batch, IVec, Tree};
use tracing::error;

use super::{SledStore, TxResult};
use crate::store::codec;
use crate::store::error::StoreError;
use crate::store::job::JobId;
use crate::store::types::{Counts, StateKind};

impl SledStore {
    /// Quarantines every undecodable record and counts the rest from scratch: at open,
    /// and whenever garbage is met (rare enough for a full pass).
    pub(super) fn recount(&self, counts: &mut Counts) -> Result<(), StoreError> {
        let mut fresh = Counts::default();
        let mut bad = Vec::new();
        for entry in self.t.jobs.iter() {
            let (key, value) = entry.map_err(|e| self.err(e))?;
            let id = codec::id_from_key(&key).unwrap_or(JobId(u64::MAX));
            match codec::decode_job(id, &value) {
                Ok(job) => *fresh.slot(StateKind::of(&job.state)) += 1,
                Err(why) => bad.push((key, why)),
            }
        }
        for (key, why) in bad {
            self.quarantine_job(&key, &why)?;
        }
        let mut bad = Vec::new();
        for entry in self.t.synced.iter() {
            let (key, value) = entry.map_err(|e| self.err(e))?;
            match codec::decode_synced(&value) {
                Ok(_) => fresh.synced += 1,
                Err(why) => bad.push((key, why)),
            }
        }
        for (key, why) in bad {
            let mut batch = Batch::default();
            batch.remove(key.clone());
            let none = Batch::default;
            self.quarantine(
                &self.t.synced,
                "synced",
                &key,
                [batch, none(), none(), none()],
            )?;
            error!(reason = %why, dir = %self.dir.display(),
                "quarantined an undecodable synced-file record; its path will be uploaded again");
        }
        fresh.quarantined = self.t.quarantine.len() as u64;
        *counts = fresh;
        Ok(())
    }

    /// Moves an undecodable job record to `quarantine` with every entry pointing at it.
    /// Scans `by_path` and `due` (the record cannot say its path): rare, and cheaper
    /// than an index only this would use.
    fn quarantine_job(&self, key: &IVec, why: &codec::DecodeError) -> Result<(), StoreError> {
        let e = |e| self.err(e);
        let id = codec::id_from_key(key);
        let mut jobs = Batch::default();
        jobs.remove(key.clone());
        let mut paths = Batch::default();
        for entry in self.t.by_path.iter() {
            let (path, value) = entry.map_err(e)?;
            if value == *key {
                paths.remove(path);
            }
        }
        let mut dues = Batch::default();
        for due in self.t.due.iter().keys() {
            let due = due.map_err(e)?;
            if id.is_some() && codec::due_from_key(&due).map(|(_, d)| d) == id {
                dues.remove(due);
            }
        }
        let mut parts = Batch::default();
        for part in self.t.parts.scan_prefix(key).keys() {
            parts.remove(part.map_err(e)?);
        }
        self.quarantine(&self.t.jobs, "jobs", key, [jobs, paths, dues, parts])?;
        let job = id.map_or_else(|| format!("{key:?}"), |id| id.to_string());
        error!(%job, reason = %why, dir = %self.dir.display(),
            "quarantined an undecodable job record; the next scan re-discovers its path");
        Ok(())
    }

    /// Copies `key`'s value from `tree` (called `name`) to quarantine and applies the
    /// batches to `tree`, `by_path`, `due` and `parts`, in one transaction.
    fn quarantine(
        &self,
        tree: &Tree,
        name: &str,
        key: &IVec,
        [own, paths, dues, parts]: [Batch; 4],
    ) -> Result<(), StoreError> {
        let Some(raw) = tree.get(key).map_err(|e| self.err(e))? else {
            return Ok(());
        };
        let t = &self.t;
        (tree, &t.by_path, &t.due, &t.parts, &t.quarantine)
            .transaction(|(s, b, d, p, q)| {
                s.apply_batch(&own)?;
                b.apply_batch(&paths)?;
                d.apply_batch(&dues)?;
                p.apply_batch(&parts)?;
                q.insert(quarantine_key(name, key), raw.clone())?;
                TxResult::Ok(())
            })
            .map_err(|t| self.tx_err(t))
    }
}

fn quarantine_key(tree: &str, key: &[u8]) -> Vec<u8> {
    [tree.as_bytes(), b"/", key].concat()
}
