//! Churn: the real daemon against the emulator while a seeded storm of creates,
//! rewrites, appends, atomic writes (temp file + rename), renames, deletions and
//! directory renames runs in the watched tree for a few seconds. Once it stops, every
//! local file must reach the emulator with its exact content (SHA-256), found through
//! inotify events and the scans they trigger (the periodic scan is left at its default
//! of ten minutes, so it never helps).
//!
//! Deletions: `on_delete` defaults to `keep`, and deleting in CDF is a later issue, so
//! files deleted or renamed away locally may stay in CDF. What must hold is: every file
//! that exists locally is in CDF, uploaded, with the same bytes; and CDF holds nothing
//! under a path that never existed locally.
//!
//! The seed is printed; `CHURN_SEED=<seed>` replays a run.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::support::daemon::{Tree, terminate};
use crate::support::emulator::sha256_hex;
use crate::support::unshare;

const SEED_VAR: &str = "CHURN_SEED";
const CHURN_FOR: Duration = Duration::from_secs(4);
const MAX_FILES: usize = 60;
const MAX_DEPTH: usize = 3;
/// How long the daemon may take to catch up once the storm is over.
const CONVERGE_WITHIN: Duration = Duration::from_secs(30);
/// Converging later than this is reported (not a failure).
const SLOW: Duration = Duration::from_secs(5);

/// The storm's state: the tree, the random source, and every path a file ever had.
struct Churner {
    root: PathBuf,
    rng: fastrand::Rng,
    next_name: u32,
    ever: BTreeSet<String>,
    ops: BTreeMap<&'static str, u32>,
    /// Every mutation, for the failure report.
    log: Vec<String>,
}

impl Churner {
    fn new(root: PathBuf, seed: u64) -> Self {
        Self {
            root,
            rng: fastrand::Rng::with_seed(seed),
            next_name: 0,
            ever: BTreeSet::new(),
            ops: BTreeMap::new(),
            log: Vec::new(),
        }
    }

    fn name(&mut self, prefix: &str, ext: &str) -> String {
        self.next_name += 1;
        format!("{prefix}{}{ext}", self.next_name)
    }

    /// Random bytes: mostly small, some over one part, a few of several parts.
    fn content(&mut self) -> Vec<u8> {
        let len = match self.rng.u8(0..100) {
            0..70 => self.rng.usize(0..4096),
            70..95 => self.rng.usize(4096..100_000),
            _ => self.rng.usize(100_000..300_000),
        };
        std::iter::repeat_with(|| self.rng.u8(..))
            .take(len)
            .collect()
    }

    fn pick<T: Clone>(&mut self, items: &[T]) -> Option<T> {
        (!items.is_empty()).then(|| items[self.rng.usize(..items.len())].clone())
    }

    /// A directory to put something in (the root, an existing one or a new one).
    fn some_dir(&mut self) -> PathBuf {
        let (_, dirs) = walk(&self.root);
        let dirs: Vec<PathBuf> = dirs
            .into_iter()
            .filter(|d| d.components().count() < MAX_DEPTH)
            .collect();
        let base = match self.rng.u8(0..4) {
            0 => PathBuf::new(),
            _ => self.pick(&dirs).unwrap_or_default(),
        };
        // New directories, sometimes two levels at once (`mkdir -p`: inotify reports
        // only the first, and what is written below it before its watch exists).
        let mut dir = base;
        if self.rng.u8(0..5) == 0 {
            for _ in 0..self.rng.usize(1..=2) {
                if dir.components().count() < MAX_DEPTH {
                    dir.push(self.name("d", ""));
                }
            }
        }
        dir
    }

    fn abs(&self, rel: &Path) -> PathBuf {
        self.root.join(rel)
    }

    /// One mutation of the tree.
    fn step(&mut self) {
        let (files, dirs) = walk(&self.root);
        let roll = if files.len() >= MAX_FILES {
            self.rng.u8(60..100) // only shrink or move
        } else {
            self.rng.u8(0..100)
        };
        let op = match (roll, self.pick(&files), self.pick(&dirs)) {
            (0..30, ..) | (_, None, _) => self.create(),
            (30..42, Some(f), _) => self.rewrite(&f),
            (42..50, Some(f), _) => self.append(&f),
            (50..60, ..) => self.atomic_write(),
            (60..72, Some(f), _) => self.rename_file(&f),
            (72..88, Some(f), _) => {
                std::fs::remove_file(self.abs(&f)).unwrap();
                self.note(format!("delete {}", f.display()));
                "delete"
            }
            (88..96, _, Some(d)) => self.rename_dir(&d),
            (96.., _, Some(d)) => {
                std::fs::remove_dir_all(self.abs(&d)).unwrap();
                self.note(format!("delete dir {}", d.display()));
                "delete dir"
            }
            _ => self.create(),
        };
        *self.ops.entry(op).or_default() += 1;
        let (files, _) = walk(&self.root);
        self.ever
            .extend(files.iter().map(|f| f.to_string_lossy().into_owned()));
    }

    fn note(&mut self, what: String) {
        self.log.push(what);
    }

    fn create(&mut self) -> &'static str {
        let rel = self.some_dir().join(self.name("f", ".bin"));
        let bytes = self.content();
        std::fs::create_dir_all(self.abs(&rel).parent().unwrap()).unwrap();
        self.note(format!("create {} ({} B)", rel.display(), bytes.len()));
        std::fs::write(self.abs(&rel), bytes).unwrap();
        "create"
    }

    fn rewrite(&mut self, rel: &Path) -> &'static str {
        let bytes = self.content();
        self.note(format!("rewrite {} ({} B)", rel.display(), bytes.len()));
        std::fs::write(self.abs(rel), bytes).unwrap();
        "rewrite"
    }

    fn append(&mut self, rel: &Path) -> &'static str {
        use std::io::Write;
        let bytes = self.content();
        self.note(format!("append {} (+{} B)", rel.display(), bytes.len()));
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(self.abs(rel))
            .unwrap();
        f.write_all(&bytes).unwrap();
        "append"
    }

    /// Written under a temporary name (ignored), then renamed into place.
    fn atomic_write(&mut self) -> &'static str {
        let dir = self.some_dir();
        let tmp = dir.join(self.name("w", ".tmp"));
        let rel = dir.join(self.name("f", ".bin"));
        let bytes = self.content();
        self.note(format!(
            "atomic write {} ({} B)",
            rel.display(),
            bytes.len()
        ));
        std::fs::create_dir_all(self.abs(&dir)).unwrap();
        std::fs::write(self.abs(&tmp), bytes).unwrap();
        std::fs::rename(self.abs(&tmp), self.abs(&rel)).unwrap();
        "atomic write"
    }

    fn rename_file(&mut self, rel: &Path) -> &'static str {
        let to = self.some_dir().join(self.name("r", ".bin"));
        std::fs::create_dir_all(self.abs(&to).parent().unwrap()).unwrap();
        self.note(format!("rename {} -> {}", rel.display(), to.display()));
        std::fs::rename(self.abs(rel), self.abs(&to)).unwrap();
        "rename"
    }

    fn rename_dir(&mut self, rel: &Path) -> &'static str {
        let to = rel.with_file_name(self.name("m", ""));
        self.note(format!("rename dir {} -> {}", rel.display(), to.display()));
        std::fs::rename(self.abs(rel), self.abs(&to)).unwrap();
        "rename dir"
    }
}

/// Files (temporary names left out) and directories under `root`, relative to it.
fn walk(root: &Path) -> (Vec<PathBuf>, Vec<PathBuf>) {
    let (mut files, mut dirs) = (Vec::new(), Vec::new());
    for entry in walkdir::WalkDir::new(root).min_depth(1).sort_by_file_name() {
        let entry = entry.unwrap();
        let rel = entry.path().strip_prefix(root).unwrap().to_owned();
        if entry.file_type().is_dir() {
            dirs.push(rel);
        } else if !rel.to_string_lossy().ends_with(".tmp") {
            files.push(rel);
        }
    }
    (files, dirs)
}

/// What is on disk now: relative path -> SHA-256.
fn local_files(root: &Path) -> BTreeMap<String, String> {
    walk(root)
        .0
        .into_iter()
        .map(|rel| {
            let bytes = std::fs::read(root.join(&rel)).unwrap();
            (rel.to_string_lossy().into_owned(), sha256_hex(&bytes))
        })
        .collect()
}

/// Local files the emulator does not hold with the same content: (path, local SHA-256,
/// what the emulator has).
fn not_in_cdf(t: &Tree, local: &BTreeMap<String, String>) -> Vec<(String, String, String)> {
    let held: BTreeMap<String, String> = t
        .cdf
        .emu
        .files()
        .into_iter()
        .filter_map(|f| {
            let state = match (f.uploaded, f.sha256) {
                (true, Some(sha)) => sha,
                (uploaded, sha) => format!("uploaded={uploaded} sha256={sha:?}"),
            };
            Some((f.external_id?, state))
        })
        .collect();
    local
        .iter()
        .filter_map(|(rel, sha)| {
            let there = held.get(&format!("gw:it:/{rel}"));
            (there != Some(sha)).then(|| {
                let there = there.cloned().unwrap_or_else(|| "nothing".into());
                (rel.clone(), sha.clone(), there)
            })
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_churn_storm_cdf_holds_every_local_file_with_its_content() {
    let seed = std::env::var(SEED_VAR)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| fastrand::u64(..));
    println!("churn seed {seed} (replay: {SEED_VAR}={seed} cargo test --test it churn)");
    let t = Tree::new("").await;
    // Debug lines of discovery and the store name every stable file and enqueue.
    let filter = "info,cdf_syncd::watch=debug,cdf_syncd::store=debug";
    let daemon = unshare::start_daemon_logging(&t, 0, filter);
    let root = t.watch();
    let churner = tokio::task::spawn_blocking(move || {
        let mut c = Churner::new(root, seed);
        let (started, mut pause) = (Instant::now(), fastrand::Rng::with_seed(seed));
        while started.elapsed() < CHURN_FOR {
            c.step();
            // The pace of the storm, not a wait for anything.
            std::thread::sleep(Duration::from_millis(pause.u64(1..20)));
        }
        c
    })
    .await
    .unwrap();
    println!("churn ops (seed {seed}): {:?}", churner.ops);

    let local = local_files(&t.watch());
    let stopped = Instant::now();
    let deadline = stopped + CONVERGE_WITHIN;
    let mut slow_reported = false;
    loop {
        let wrong = not_in_cdf(&t, &local);
        if wrong.is_empty() {
            println!("converged {:?} after the storm", stopped.elapsed());
            break;
        }
        if !slow_reported && stopped.elapsed() > SLOW {
            println!("still missing after {SLOW:?} (seed {seed}): {wrong:?}");
            slow_reported = true;
        }
        if Instant::now() > deadline {
            let log = t.daemon_log(0);
            let names: Vec<String> = wrong
                .iter()
                .filter_map(|w| Some(Path::new(&w.0).file_name()?.to_string_lossy().into_owned()))
                .collect();
            let about = |l: &&str| {
                names.iter().any(|n| {
                    l.contains(&format!("/{n}"))
                        || l.contains(&format!("={n}"))
                        || l.contains(&format!(" {n}"))
                })
            };
            let log_lines: Vec<&str> = log.lines().filter(about).take(80).collect();
            let ops: Vec<&str> = churner
                .log
                .iter()
                .map(String::as_str)
                .filter(about)
                .collect();
            panic!(
                "seed {seed}: after {CONVERGE_WITHIN:?}, {} of {} local files are not in \
                 the emulator with their content: {wrong:#?}\nthe storm's operations on \
                 them:\n{}\ndaemon log lines about them:\n{}",
                wrong.len(),
                local.len(),
                ops.join("\n"),
                log_lines.join("\n")
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let known: BTreeSet<String> = churner.ever.iter().map(|p| format!("gw:it:/{p}")).collect();
    for file in t.cdf.emu.files() {
        let id = file.external_id.unwrap_or_default();
        assert!(
            known.contains(&id),
            "{id} never existed locally (seed {seed})"
        );
    }
    assert_eq!(
        local_files(&t.watch()),
        local,
        "the tree did not change after the storm"
    );
    let stopping = Instant::now();
    let status = terminate(daemon).await;
    println!("stopped in {:?}", stopping.elapsed());
    assert!(
        status.success(),
        "seed {seed}: {status:?}\n{}",
        t.daemon_log(0)
    );
}
