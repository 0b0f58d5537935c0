//! The end of a chaos run: the last (fault-free) daemon run, the checks, the figures.
//!
//! Checks, each reported with the seed:
//! 1. every local file is in CDF exactly once, by externalId and by directory + name,
//!    uploaded, with its final SHA-256, and CDF holds no other file;
//! 2. no duplicate creation: the emulator handed out exactly one file id per
//!    externalId (`counters.files_created`; an overwrite keeps the id);
//! 3. no job is left failed (every fault injected here is transient, so a failed job
//!    is one failed for a transient cause, or one misclassified as permanent): the job
//!    store is opened once the daemon has stopped;
//! 4. a `sync --once` afterwards uploads nothing and creates nothing;
//! 5. the bytes the emulator received on upload URLs stay within
//!
//!    ```text
//!    file bytes + superseded bytes
//!      + (kills + outages) × FILES × PARALLEL × PART
//!      + injected PUT faults × PART
//!    ```
//!
//!    Why: every file's final content is sent once (file bytes); a version replaced
//!    before it was synced may have been sent whole (superseded bytes). A part, or a
//!    single-part file (at most one part long), counts as in flight from its first
//!    byte until its checkpoint is durable; per file at most PARALLEL parts are, for at
//!    most FILES files: a SIGKILL, or an outage that cuts every open connection, can
//!    waste at most that many parts. Every other wasted PUT body was answered by an
//!    injected fault (429/500/503 after the whole body, a cut mid-body, a lost reply),
//!    each at most one part.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Child;
use std::time::{Duration, Instant};

use cdf_syncd::emulator::CountersSnapshot;
use cdf_syncd::store::{StateKind, Store, StoreOptions};

use super::tree::{Model, cdf_id, directory_and_name, external_id};
use super::weather::Report;
use super::{FILES, KillLog, PARALLEL, Params};
use crate::support::daemon::{PART, Tree, terminate};
use crate::support::poll_until;

/// How long the last run may take to sync what is left, without faults.
const FINAL_DEADLINE: Duration = Duration::from_secs(120);

pub struct Verdict {
    params: Params,
    failures: Vec<String>,
    /// The final run's daemon log number.
    final_run: usize,
    synced_in: Option<Duration>,
    /// Counters once the final run stopped (before the `sync --once`).
    counters: CountersSnapshot,
    store_counts: String,
}

impl Verdict {
    pub fn new(params: Params) -> Self {
        Self {
            params,
            failures: Vec::new(),
            final_run: params.kills,
            synced_in: None,
            counters: CountersSnapshot::default(),
            store_counts: String::new(),
        }
    }

    fn fail(&mut self, what: String) {
        eprintln!("chaos: seed {}: FAILED: {what}", self.params.seed);
        self.failures.push(what);
    }

    /// Waits (with deadlines) for the daemon's startup scan and for every file to be
    /// in CDF, then SIGTERM (after the scan, so that the signal meets the handler).
    pub async fn final_run(&mut self, t: &Tree, model: &Model, daemon: Child) {
        let started = Instant::now();
        let scanned = poll_until(FINAL_DEADLINE, Duration::from_millis(20), || {
            std::future::ready(t.daemon_log(self.final_run).contains("full scan done"))
        })
        .await;
        if !scanned {
            self.fail(format!(
                "the final run did not finish its startup scan within {FINAL_DEADLINE:?}"
            ));
        }
        let all = poll_until(FINAL_DEADLINE, Duration::from_millis(100), || {
            std::future::ready(model.unsynced(&t.cdf.emu.files()).is_empty())
        })
        .await;
        if all {
            self.synced_in = Some(started.elapsed());
        } else {
            let held = t.cdf.emu.files();
            let missing: Vec<String> = model
                .unsynced(&held)
                .into_iter()
                .map(|rel| {
                    let x = external_id(rel);
                    let f = held.iter().find(|f| cdf_id(f) == Some(&x));
                    let state = f.map_or("not created".to_owned(), |f| {
                        format!("id {} uploaded {} size {:?}", f.id, f.uploaded, f.size)
                    });
                    format!(
                        "{rel} ({} bytes; CDF: {state})",
                        model.files[rel].bytes.len()
                    )
                })
                .collect();
            self.fail(format!(
                "the final run (no faults) did not sync every file within {FINAL_DEADLINE:?}; missing {} of {}: {missing:#?}",
                missing.len(),
                model.files.len()
            ));
        }
        let status = terminate(daemon).await;
        if !status.success() {
            self.fail(format!(
                "the final run did not stop cleanly on SIGTERM: {status:?}"
            ));
        }
        self.counters = t.cdf.emu.counters();
    }

    pub async fn check(&mut self, t: &Tree, model: &Model, kills: &KillLog, weather: &Report) {
        self.check_store(&t.state_dir());
        self.check_files(t, model);
        self.check_creations(model);
        self.check_bytes(model, kills, weather);
        self.check_sync_once(t).await;
        if weather.outages != 1 && self.params.kills >= 4 {
            self.fail(format!(
                "the weather made {} outages, not one (the kill loop ended first?)",
                weather.outages
            ));
        }
    }

    /// No job left failed; the other jobs left are listed in the figures.
    fn check_store(&mut self, dir: &Path) {
        let store = match Store::open(dir, StoreOptions::default()) {
            Ok(store) => store,
            Err(e) => return self.fail(format!("cannot open the job store: {e}")),
        };
        match store.list(Some(StateKind::Failed), 1000) {
            Ok(failed) => {
                for job in failed {
                    self.fail(format!(
                        "job {} ({}) left failed after {} attempts: {:?}",
                        job.id, job.key, job.attempts, job.state
                    ));
                }
            }
            Err(e) => self.fail(format!("cannot list failed jobs: {e}")),
        }
        self.store_counts = match store.counts() {
            Ok(c) => StateKind::ALL
                .iter()
                .map(|k| format!("{} {}", k.name(), c.get(*k)))
                .collect::<Vec<_>>()
                .join(", "),
            Err(e) => format!("unreadable ({e})"),
        };
    }

    /// Every file once, by externalId and by directory + name, whole; nothing else.
    fn check_files(&mut self, t: &Tree, model: &Model) {
        let held = t.cdf.emu.files();
        for (rel, expected) in &model.files {
            let x = external_id(rel);
            let (directory, name) = directory_and_name(rel);
            let by_x: Vec<_> = held.iter().filter(|f| cdf_id(f) == Some(&x)).collect();
            let by_path = held
                .iter()
                .filter(|f| f.directory.as_deref() == Some(&directory) && f.name == name)
                .count();
            match by_x.as_slice() {
                [f] if f.uploaded
                    && f.sha256.as_deref() == Some(&expected.sha256)
                    && by_path == 1 => {}
                found => self.fail(format!(
                    "{rel}: expected once ({} bytes, sha256 {}), found by externalId {found:#?} and {by_path} by directory + name",
                    expected.bytes.len(),
                    expected.sha256
                )),
            }
        }
        if held.len() != model.files.len() {
            self.fail(format!(
                "CDF holds {} files for {} local ones",
                held.len(),
                model.files.len()
            ));
        }
    }

    /// One file id per externalId, and none for names that are not ours.
    fn check_creations(&mut self, model: &Model) {
        let created = self.counters.files_created.clone();
        for (x, n) in &created {
            let ours = model.files.keys().any(|rel| external_id(rel) == *x);
            if *n != 1 || !ours {
                self.fail(format!(
                    "{x}: {n} file ids created (ours: {ours}); expected exactly one"
                ));
            }
        }
        if created.len() != model.files.len() {
            self.fail(format!(
                "{} externalIds created for {} files",
                created.len(),
                model.files.len()
            ));
        }
    }

    fn bound(&self, model: &Model, kills: &KillLog, weather: &Report) -> u64 {
        let part = PART as u64;
        let interruptions = (kills.kills + weather.outages) as u64;
        model.total_bytes()
            + model.superseded
            + interruptions * (FILES * PARALLEL) as u64 * part
            + self.counters.injected("PUT ") * part
    }

    fn check_bytes(&mut self, model: &Model, kills: &KillLog, weather: &Report) {
        let sent = self.counters.put_bytes_received;
        let bound = self.bound(model, kills, weather);
        if sent > bound {
            self.fail(format!(
                "{sent} bytes received on upload URLs, over the bound of {bound} (files {} + superseded {} + ({} kills + {} outages) x {FILES} x {PARALLEL} x {PART} + {} injected PUT faults x {PART})",
                model.total_bytes(),
                model.superseded,
                kills.kills,
                weather.outages,
                self.counters.injected("PUT ")
            ));
        }
    }

    /// After a clean stop everything is recorded as synced: a new run sends nothing.
    async fn check_sync_once(&mut self, t: &Tree) {
        let before = t.cdf.emu.counters();
        let (ok, output) = t.sync_once().await;
        let after = t.cdf.emu.counters();
        let sent = after.put_bytes_received - before.put_bytes_received;
        let created =
            after.files_created.values().sum::<u64>() - before.files_created.values().sum::<u64>();
        if !ok || sent != 0 || created != 0 {
            self.fail(format!(
                "`sync --once` after the final run: success {ok}, {sent} bytes uploaded, {created} files created (expected nothing to do)\n{}",
                tail(&output, 30)
            ));
        }
    }

    pub fn figures(
        &self,
        model: &Model,
        kills: &KillLog,
        weather: &Report,
        finale: Duration,
        total: Duration,
    ) {
        let c = &self.counters;
        let files = model.total_bytes();
        let sent = c.put_bytes_received;
        let creates: u64 = c.files_created.values().sum();
        let mut injected: BTreeMap<String, u64> = BTreeMap::new();
        for (endpoint, kinds) in &c.faults_injected {
            let side = if endpoint.starts_with("PUT ") {
                "PUT"
            } else {
                "API"
            };
            for (kind, n) in kinds {
                *injected.entry(format!("{side} {kind}")).or_default() += n;
            }
        }
        eprintln!(
            "chaos: seed {}: {} kills in {:.1} s (busy at {}), final run {:.1} s (synced in {}), total {:.1} s",
            self.params.seed,
            kills.kills,
            kills.elapsed.as_secs_f64(),
            kills.busy,
            finale.as_secs_f64(),
            self.synced_in
                .map_or("-".to_owned(), |d| format!("{:.1} s", d.as_secs_f64())),
            total.as_secs_f64()
        );
        eprintln!("chaos: kills landed {:?}", kills.landed);
        eprintln!(
            "chaos: {} files ({} added, {} changed), {files} bytes + {} superseded; received {sent} bytes ({:.2}x), bound {}",
            model.files.len(),
            model.added,
            model.changed,
            model.superseded,
            sent as f64 / files.max(1) as f64,
            self.bound(model, kills, weather)
        );
        eprintln!(
            "chaos: {creates} file ids created for {} externalIds; faults injected {injected:?} ({} on PUTs)",
            c.files_created.len(),
            c.injected("PUT ")
        );
        eprintln!(
            "chaos: weather: {} 429 bursts ({} with Retry-After), {} outage ({:.1} s at kill {:?}); jobs left: {}",
            weather.bursts,
            weather.bursts_with_retry_after,
            weather.outages,
            weather.outage_for.as_secs_f64(),
            weather.outage_cycle,
            self.store_counts
        );
    }

    /// Passes, or keeps the temp directory and fails with every finding and the seed.
    pub fn conclude(self, t: Tree) {
        let keep = std::env::var_os("CHAOS_KEEP").is_some() || !self.failures.is_empty();
        let Tree { dir, cdf, .. } = t;
        drop(cdf);
        if !keep {
            return;
        }
        let excerpt = log_excerpt(dir.path(), self.final_run + 1);
        let kept = dir.keep();
        eprintln!("chaos: logs and job store kept in {}", kept.display());
        assert!(
            self.failures.is_empty(),
            "chaos seed {} ({} kills) failed (replay: CHAOS_SEED={} CHAOS_KILLS={}; logs in {}):\n- {}\n\nWARN/ERROR lines of the daemon runs (last 40):\n{excerpt}",
            self.params.seed,
            self.params.kills,
            self.params.seed,
            self.params.kills,
            kept.display(),
            self.failures.join("\n- ")
        );
    }
}

/// The last WARN/ERROR lines of the daemon logs `daemon-0.log` .. `daemon-<runs-1>.log`.
fn log_excerpt(dir: &Path, runs: usize) -> String {
    let mut lines = Vec::new();
    for n in 0..runs {
        let text = std::fs::read_to_string(dir.join(format!("daemon-{n}.log"))).unwrap_or_default();
        for line in text.lines().map(strip_ansi) {
            if line.contains(" WARN ") || line.contains("ERROR") {
                lines.push(format!("[run {n}] {line}"));
            }
        }
    }
    let skip = lines.len().saturating_sub(40);
    lines[skip..].join("\n")
}

fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Drops terminal colour sequences (`ESC [ ... m`).
fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c == 'm' {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}
