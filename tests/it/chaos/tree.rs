//! The local tree the chaos test syncs, and what CDF must end up holding: every file's
//! final content (with its SHA-256), the bytes of versions that were replaced before
//! they were synced, and how many files were added or changed along the way.

use std::collections::BTreeMap;

use cdf_syncd::emulator::FileView;

use crate::support::daemon::{PART, Tree};
use crate::support::emulator::sha256_hex;

/// One local file as it must arrive.
pub struct Expected {
    pub bytes: Vec<u8>,
    pub sha256: String,
}

/// The file kinds of the tree: each exercises another upload path.
#[derive(Debug, Clone, Copy)]
enum Kind {
    /// `POST files` and an empty PUT.
    Empty,
    /// A few bytes, single-part.
    Tiny,
    /// Tens of KiB, single-part.
    Small,
    /// Exactly one part: the largest single-part file.
    OnePart,
    /// One part and one byte: two parts, the last one tiny.
    OnePartPlusOne,
    /// 3..=8 parts, the last one short.
    Multipart,
}

impl Kind {
    fn size(self, rng: &mut fastrand::Rng) -> usize {
        match self {
            Kind::Empty => 0,
            Kind::Tiny => rng.usize(1..=200),
            Kind::Small => rng.usize(1024..PART - 4096),
            Kind::OnePart => PART,
            Kind::OnePartPlusOne => PART + 1,
            Kind::Multipart => (rng.usize(3..=8) - 1) * PART + rng.usize(1..=PART),
        }
    }

    /// A kind for a file added between kills.
    fn random(rng: &mut fastrand::Rng) -> Self {
        match rng.usize(0..10) {
            0 => Kind::Empty,
            1..=2 => Kind::Tiny,
            3..=6 => Kind::Small,
            _ => Kind::Multipart,
        }
    }
}

/// What the tree holds and has held.
pub struct Model {
    pub files: BTreeMap<String, Expected>,
    /// Bytes of versions replaced by a change (each may have been sent, whole).
    pub superseded: u64,
    pub added: usize,
    pub changed: usize,
}

impl Model {
    /// About 40 files: empty, tiny, small, the one-part edges and a handful of
    /// multipart files, in a few directories (one name with spaces, one not ASCII).
    pub fn initial(t: &Tree, rng: &mut fastrand::Rng) -> Self {
        let mut model = Self {
            files: BTreeMap::new(),
            superseded: 0,
            added: 0,
            changed: 0,
        };
        let mut plan: Vec<(String, Kind)> = Vec::new();
        plan.extend((0..4).map(|i| (format!("empty/e{i}.log"), Kind::Empty)));
        plan.extend((0..8).map(|i| (format!("tiny/t{i}.txt"), Kind::Tiny)));
        plan.extend((0..18).map(|i| (format!("small/s{i:02}.dat"), Kind::Small)));
        plan.push(("small/with space.csv".into(), Kind::Small));
        plan.push(("tiny/ünïcødé.txt".into(), Kind::Tiny));
        plan.push(("top.json".into(), Kind::Small));
        plan.push(("edge/one-part.bin".into(), Kind::OnePart));
        plan.push(("edge/one-part-plus-one.bin".into(), Kind::OnePartPlusOne));
        plan.extend((0..6).map(|i| (format!("big/b{i}.bin"), Kind::Multipart)));
        for (rel, kind) in plan {
            let len = kind.size(rng);
            model.put(t, &rel, content(rng, len), false);
        }
        model
    }

    /// Writes `rel` and records it as expected; `renamed`: written under a temporary
    /// name first and renamed into place, as producers do while the daemon watches.
    fn put(&mut self, t: &Tree, rel: &str, bytes: Vec<u8>, renamed: bool) {
        if renamed {
            let tmp = format!("{rel}.tmp");
            t.write(&tmp, &bytes);
            std::fs::rename(t.watch().join(&tmp), t.watch().join(rel)).expect("rename");
        } else {
            t.write(rel, &bytes);
        }
        let sha256 = sha256_hex(&bytes);
        self.files
            .insert(rel.to_owned(), Expected { bytes, sha256 });
    }

    /// Adds a new file of a random kind (`renamed`: see [`Model::put`]).
    pub fn add(&mut self, t: &Tree, rng: &mut fastrand::Rng, renamed: bool) -> String {
        let kind = Kind::random(rng);
        let rel = format!("new/n{:03}-{kind:?}.bin", self.added);
        let len = kind.size(rng);
        self.put(t, &rel, content(rng, len), renamed);
        self.added += 1;
        rel
    }

    /// Rewrites a file that is not yet in CDF with its current content (a new size,
    /// so that its fingerprint surely changes); `None` when every file is synced.
    pub fn change_unsynced(
        &mut self,
        t: &Tree,
        rng: &mut fastrand::Rng,
        held: &[FileView],
    ) -> Option<String> {
        let pending: Vec<String> = self
            .files
            .iter()
            .filter(|(rel, e)| !synced(held, rel, e))
            .map(|(rel, _)| rel.clone())
            .collect();
        let rel = rng.choice(pending)?;
        let old = self.files[&rel].bytes.len();
        let mut new_len = Kind::Multipart.size(rng).min(old + PART / 2 + 1);
        if new_len == old {
            new_len += 1;
        }
        self.superseded += old as u64;
        self.changed += 1;
        let bytes = content(rng, new_len);
        self.put(t, &rel, bytes, false);
        Some(rel)
    }

    pub fn total_bytes(&self) -> u64 {
        self.files.values().map(|e| e.bytes.len() as u64).sum()
    }

    /// Files whose current content is not (yet) uploaded to CDF.
    pub fn unsynced<'a>(&'a self, held: &[FileView]) -> Vec<&'a str> {
        self.files
            .iter()
            .filter(|(rel, e)| !synced(held, rel, e))
            .map(|(rel, _)| rel.as_str())
            .collect()
    }
}

/// The externalId the test configuration gives a relative path.
pub fn external_id(rel: &str) -> String {
    format!("gw:it:/{rel}")
}

/// The externalId a CDF file answers to: its own, or its node's (data modeling).
pub fn cdf_id(f: &FileView) -> Option<&str> {
    f.external_id
        .as_deref()
        .or(f.instance_id.as_ref().map(|i| i.external_id.as_str()))
}

/// The CDF directory and name of a relative path (`directory_prefix = "/site"`).
pub fn directory_and_name(rel: &str) -> (String, String) {
    match rel.rsplit_once('/') {
        Some((dir, name)) => (format!("/site/{dir}"), name.to_owned()),
        None => ("/site".to_owned(), rel.to_owned()),
    }
}

fn synced(held: &[FileView], rel: &str, e: &Expected) -> bool {
    let x = external_id(rel);
    held.iter().any(|f| {
        cdf_id(f) == Some(x.as_str())
            && f.uploaded
            && f.sha256.as_deref() == Some(e.sha256.as_str())
    })
}

fn content(rng: &mut fastrand::Rng, len: usize) -> Vec<u8> {
    let mut bytes = vec![0u8; len];
    rng.fill(&mut bytes);
    bytes
}
