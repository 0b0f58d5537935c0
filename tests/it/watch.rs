//! Discovery end to end on real temporary directories: the startup scan, the filters,
//! the stability gate (slow writers, the close fast path), new directories, renames,
//! `sync --once`, polling and symlinks, roots that vanish, lost events and requested
//! rescans; and (`limit`) the inotify watch limit for real. Every wait has a deadline;
//! none sleeps and hopes.

use std::collections::BTreeSet;
use std::fs::{self, File, FileTimes};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use cdf_syncd::config::{self, WatchMode};
use cdf_syncd::fingerprint::Fingerprint;
use cdf_syncd::watch::{
    ScanMode, StableFile, Watch, WatchConfig, WatchCounters, WatchError, WatchEvent,
};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

mod limit;

const DEADLINE: Duration = Duration::from_secs(15);

/// A root in a temporary directory with the given `[sync]` and `[[roots]]` extras.
fn config(root: &Path, stable_for: &str, root_extra: &str) -> WatchConfig {
    let text = format!(
        "[cdf]\nbase_url = \"https://example.cognitedata.com\"\nproject = \"p\"\n\
         [cdf.auth]\ntoken_url = \"https://login.example.com/token\"\nclient_id = \"c\"\n\
         client_secret_env = \"CDF_SECRET\"\n\
         [sync]\nstable_for = \"{stable_for}\"\n\
         [[roots]]\nid = \"r\"\npath = \"{}\"\ndirectory_prefix = \"/x\"\n{root_extra}\n",
        root.display()
    );
    let settings = config::parse(&text, "test").unwrap_or_else(|e| panic!("{e}"));
    let mut config = WatchConfig::from_settings(&settings);
    config.root_retry = Duration::from_millis(200);
    config
}

/// A running watcher and the events it sent so far.
struct Running {
    rx: mpsc::Receiver<WatchEvent>,
    cancel: CancellationToken,
    task: JoinHandle<Result<(), WatchError>>,
    counters: Arc<WatchCounters>,
    seen: Vec<WatchEvent>,
}

impl Running {
    fn start(config: WatchConfig, mode: ScanMode) -> Self {
        Self::with_queue(config, mode, 64)
    }

    /// Starts with an output channel of `queue` events.
    fn with_queue(config: WatchConfig, mode: ScanMode, queue: usize) -> Self {
        let (tx, rx) = mpsc::channel(queue);
        let cancel = CancellationToken::new();
        let watch = Watch::new(config);
        let counters = watch.counters();
        let task = tokio::spawn(watch.run(mode, tx, cancel.clone()));
        Self {
            rx,
            cancel,
            task,
            counters,
            seen: Vec::new(),
        }
    }

    /// Waits (with the deadline) for an event matching `pred`; returns it.
    async fn wait_for(&mut self, what: &str, pred: impl Fn(&WatchEvent) -> bool) -> WatchEvent {
        let until = tokio::time::Instant::now() + DEADLINE;
        loop {
            match tokio::time::timeout_at(until, self.rx.recv()).await {
                Ok(Some(event)) => {
                    self.seen.push(event.clone());
                    if pred(&event) {
                        return event;
                    }
                }
                Ok(None) => panic!("channel closed waiting for {what}; {}", self.summary()),
                Err(_) => panic!("no {what} within {DEADLINE:?}; {}", self.summary()),
            }
        }
    }

    /// What was seen, short enough for a failure message.
    fn summary(&self) -> String {
        let last = &self.seen[self.seen.len().saturating_sub(5)..];
        format!("saw {} events, the last {last:?}", self.seen.len())
    }

    async fn stable(&mut self, rel: &str) -> StableFile {
        let rel = PathBuf::from(rel);
        let event = self
            .wait_for(
                &format!("Stable {}", rel.display()),
                |e| matches!(e, WatchEvent::Stable(f) if f.rel == rel),
            )
            .await;
        match event {
            WatchEvent::Stable(f) => f,
            _ => unreachable!(),
        }
    }

    async fn scan_done(&mut self) -> u64 {
        match self
            .wait_for("ScanDone", |e| matches!(e, WatchEvent::ScanDone { .. }))
            .await
        {
            WatchEvent::ScanDone { files_seen, .. } => files_seen,
            _ => unreachable!(),
        }
    }

    fn stable_rels(&self) -> Vec<PathBuf> {
        let mut rels: Vec<PathBuf> = self
            .seen
            .iter()
            .filter_map(|e| match e {
                WatchEvent::Stable(f) => Some(f.rel.clone()),
                _ => None,
            })
            .collect();
        rels.sort();
        rels
    }

    async fn stop(self) {
        self.cancel.cancel();
        let result = tokio::time::timeout(DEADLINE, self.task).await;
        assert!(matches!(result, Ok(Ok(Ok(())))), "{result:?}");
    }
}

/// Runs `sync --once` discovery to the end; returns every event and the result.
async fn scan_once(config: WatchConfig) -> (Vec<WatchEvent>, Result<(), WatchError>) {
    let (tx, mut rx) = mpsc::channel(1024);
    let run = Watch::new(config).run(ScanMode::Once, tx, CancellationToken::new());
    let result = tokio::time::timeout(DEADLINE, run)
        .await
        .expect("scan_once finishes");
    let mut events = Vec::new();
    while let Ok(event) = rx.try_recv() {
        events.push(event);
    }
    (events, result)
}

fn write(path: &Path, bytes: &[u8]) {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).unwrap();
    }
    fs::write(path, bytes).unwrap();
}

/// Writes a file whose mtime is an hour old (written before the daemon started).
fn write_old(path: &Path, bytes: &[u8]) {
    write(path, bytes);
    let hour_ago = SystemTime::now() - Duration::from_secs(3600);
    let file = File::options().write(true).open(path).unwrap();
    file.set_times(FileTimes::new().set_modified(hour_ago))
        .unwrap();
}

fn fingerprint(path: &Path) -> Fingerprint {
    Fingerprint::of(&fs::metadata(path).unwrap())
}

#[tokio::test]
async fn the_startup_scan_emits_old_files_at_once_with_paths_and_fingerprints() {
    let dir = tempfile::tempdir().unwrap();
    let files = ["top.csv", "a/b/deep.jpg", "a/empty.log"];
    for (i, rel) in files.iter().enumerate() {
        write_old(&dir.path().join(rel), &vec![b'x'; i * 10]);
    }
    // stable_for is long: only the startup rule can emit these quickly.
    let started = Instant::now();
    let mut w = Running::start(config(dir.path(), "30s", ""), ScanMode::Continuous);
    assert_eq!(w.scan_done().await, 3);
    assert!(started.elapsed() < Duration::from_secs(10));
    let mut expected: Vec<PathBuf> = files.iter().map(PathBuf::from).collect();
    expected.sort();
    assert_eq!(w.stable_rels(), expected);
    for event in &w.seen {
        if let WatchEvent::Stable(f) = event {
            assert_eq!(f.root, "r");
            assert_eq!(f.fingerprint, fingerprint(&dir.path().join(&f.rel)));
        }
    }
    w.stop().await;
}

#[tokio::test]
async fn temporary_and_excluded_names_are_never_emitted() {
    let dir = tempfile::tempdir().unwrap();
    let ignored = [
        "a.tmp",
        "b.part",
        "~lock",
        ".hidden",
        ".git/config",
        "logs/x.csv",
    ];
    for rel in ignored {
        write_old(&dir.path().join(rel), b"no");
    }
    write_old(&dir.path().join("keep.csv"), b"yes");
    let config = config(dir.path(), "200ms", "exclude = [\"logs\"]");
    let (events, result) = scan_once(config.clone()).await;
    result.unwrap();
    assert!(
        matches!(
            events.last(),
            Some(WatchEvent::ScanDone { files_seen: 1, .. })
        ),
        "{events:?}"
    );

    // While watching, too: temp names written live never come out, the marker does.
    let mut w = Running::start(config, ScanMode::Continuous);
    w.scan_done().await;
    for rel in ["new.tmp", "new.part", ".new", "logs/new.csv", "~new"] {
        write(&dir.path().join(rel), b"live");
    }
    fs::rename(dir.path().join("new.tmp"), dir.path().join("new.part2.tmp")).unwrap();
    write(&dir.path().join("marker.csv"), b"m");
    w.stable("marker.csv").await;
    assert_eq!(
        w.stable_rels(),
        vec![PathBuf::from("keep.csv"), PathBuf::from("marker.csv")]
    );
    w.stop().await;
}

#[tokio::test]
async fn a_file_written_slowly_is_emitted_once_with_its_final_fingerprint() {
    let dir = tempfile::tempdir().unwrap();
    // Written over twice stable_for, with pauses well under it.
    let mut w = Running::start(config(dir.path(), "600ms", ""), ScanMode::Continuous);
    w.scan_done().await;
    let path = dir.path().join("slow.bin");
    let writer = {
        let path = path.clone();
        tokio::task::spawn_blocking(move || {
            let mut f = File::create(&path).unwrap();
            for _ in 0..8 {
                f.write_all(&[7; 4096]).unwrap();
                f.flush().unwrap();
                // The scenario itself: pauses shorter than stable_for.
                std::thread::sleep(Duration::from_millis(150));
            }
            f.write_all(b"end").unwrap();
        })
    };
    let file = w.stable("slow.bin").await;
    writer.await.unwrap();
    assert_eq!(file.fingerprint.size, 8 * 4096 + 3);
    assert_eq!(file.fingerprint, fingerprint(&path));
    // Nothing more for it: a marker written afterwards arrives first.
    write(&dir.path().join("marker"), b"m");
    w.stable("marker").await;
    let count = w
        .seen
        .iter()
        .filter(|e| matches!(e, WatchEvent::Stable(f) if f.rel == Path::new("slow.bin")))
        .count();
    assert_eq!(count, 1, "{:?}", w.seen);
    w.stop().await;
}

#[tokio::test]
async fn close_after_write_is_emitted_well_before_stable_for() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = Running::start(config(dir.path(), "10s", ""), ScanMode::Continuous);
    w.scan_done().await;
    let written = Instant::now();
    write(&dir.path().join("fast.csv"), b"a,b\n1,2\n");
    let file = w.stable("fast.csv").await;
    let took = written.elapsed();
    assert!(took < Duration::from_secs(5), "took {took:?}");
    assert_eq!(file.fingerprint.size, 8);
    w.stop().await;
}

#[tokio::test]
async fn a_file_written_right_after_mkdir_p_is_found() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = Running::start(config(dir.path(), "200ms", ""), ScanMode::Continuous);
    w.scan_done().await;
    write(&dir.path().join("a/b/c/f.bin"), b"deep");
    let file = w.stable("a/b/c/f.bin").await;
    assert_eq!(file.fingerprint.size, 4);
    // The new directories are watched too.
    write(&dir.path().join("a/b/c/g.bin"), b"later");
    w.stable("a/b/c/g.bin").await;
    w.stop().await;
}

#[tokio::test]
async fn files_renamed_in_are_new_and_renamed_out_are_gone() {
    let outside = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir_in(outside.path()).unwrap();
    let mut w = Running::start(config(dir.path(), "200ms", ""), ScanMode::Continuous);
    w.scan_done().await;
    write_old(&outside.path().join("in.csv"), b"moved");
    fs::rename(outside.path().join("in.csv"), dir.path().join("in.csv")).unwrap();
    let file = w.stable("in.csv").await;
    assert_eq!(file.fingerprint.size, 5);
    // A directory moved in is scanned.
    write_old(&outside.path().join("batch/one.csv"), b"1");
    fs::rename(outside.path().join("batch"), dir.path().join("batch")).unwrap();
    w.stable("batch/one.csv").await;
    fs::rename(dir.path().join("in.csv"), outside.path().join("out.csv")).unwrap();
    w.wait_for(
        "Gone in.csv",
        |e| matches!(e, WatchEvent::Gone { rel, .. } if rel == Path::new("in.csv")),
    )
    .await;
    fs::remove_file(dir.path().join("batch/one.csv")).unwrap();
    w.wait_for(
        "Gone batch/one.csv",
        |e| matches!(e, WatchEvent::Gone { rel, .. } if rel == Path::new("batch/one.csv")),
    )
    .await;
    w.stop().await;
}

#[tokio::test]
async fn once_mode_waits_for_young_files_and_ends_with_scan_done() {
    let dir = tempfile::tempdir().unwrap();
    write_old(&dir.path().join("old.csv"), b"old");
    write(&dir.path().join("sub/young.csv"), b"young");
    let started = Instant::now();
    let (events, result) = scan_once(config(dir.path(), "300ms", "")).await;
    result.unwrap();
    assert!(started.elapsed() >= Duration::from_millis(250));
    let rels: Vec<&Path> = events
        .iter()
        .filter_map(|e| match e {
            WatchEvent::Stable(f) => Some(f.rel.as_path()),
            _ => None,
        })
        .collect();
    assert_eq!(rels, [Path::new("old.csv"), Path::new("sub/young.csv")]);
    assert_eq!(
        events.last(),
        Some(&WatchEvent::ScanDone {
            root: "r".into(),
            files_seen: 2
        })
    );
}

#[tokio::test]
async fn once_mode_fails_for_a_missing_root() {
    let dir = tempfile::tempdir().unwrap();
    let (events, result) = scan_once(config(&dir.path().join("nope"), "200ms", "")).await;
    assert!(events.is_empty(), "{events:?}");
    assert!(
        matches!(result, Err(WatchError::RootUnavailable { .. })),
        "{result:?}"
    );
}

#[tokio::test]
async fn poll_mode_finds_new_and_changed_files() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(dir.path(), "200ms", "");
    config.mode = WatchMode::Poll;
    config.poll_interval = Duration::from_millis(100);
    let mut w = Running::start(config, ScanMode::Continuous);
    w.scan_done().await;
    write(&dir.path().join("d/polled.csv"), b"p");
    assert_eq!(w.stable("d/polled.csv").await.fingerprint.size, 1);
    fs::remove_file(dir.path().join("d/polled.csv")).unwrap();
    w.wait_for(
        "Gone d/polled.csv",
        |e| matches!(e, WatchEvent::Gone { rel, .. } if rel == Path::new("d/polled.csv")),
    )
    .await;
    w.stop().await;
}

#[tokio::test]
async fn symlinks_are_skipped_unless_followed() {
    let outside = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    write_old(&outside.path().join("target.csv"), b"t");
    write_old(&outside.path().join("linked/inner.csv"), b"i");
    write_old(&dir.path().join("real.csv"), b"r");
    std::os::unix::fs::symlink(
        outside.path().join("target.csv"),
        dir.path().join("file-link.csv"),
    )
    .unwrap();
    std::os::unix::fs::symlink(outside.path().join("linked"), dir.path().join("dir-link")).unwrap();

    let (events, result) = scan_once(config(dir.path(), "200ms", "")).await;
    result.unwrap();
    assert!(
        matches!(
            events.last(),
            Some(WatchEvent::ScanDone { files_seen: 1, .. })
        ),
        "{events:?}"
    );

    let followed = config(dir.path(), "200ms", "follow_symlinks = true");
    let (events, result) = scan_once(followed).await;
    result.unwrap();
    let mut rels: Vec<String> = events
        .iter()
        .filter_map(|e| match e {
            WatchEvent::Stable(f) => Some(f.rel.display().to_string()),
            _ => None,
        })
        .collect();
    rels.sort();
    assert_eq!(rels, ["dir-link/inner.csv", "file-link.csv", "real.csv"]);
}

#[tokio::test]
async fn cancelling_stops_the_watcher_even_when_nobody_reads() {
    let dir = tempfile::tempdir().unwrap();
    for i in 0..10 {
        write_old(&dir.path().join(format!("f{i}")), b"x");
    }
    let mut w = Running::with_queue(config(dir.path(), "200ms", ""), ScanMode::Continuous, 1);
    // Blocked on the second of ten events.
    w.stable("f0").await;
    w.stop().await;
}

#[tokio::test]
async fn a_root_that_appears_later_is_scanned() {
    let parent = tempfile::tempdir().unwrap();
    let root = parent.path().join("later");
    let mut w = Running::start(config(&root, "200ms", ""), ScanMode::Continuous);
    write_old(&root.join("was-there.csv"), b"w");
    w.stable("was-there.csv").await;
    assert_eq!(w.scan_done().await, 1);
    w.stop().await;
}

#[tokio::test]
async fn a_root_that_disappears_and_comes_back_is_rescanned() {
    let parent = tempfile::tempdir().unwrap();
    let root = parent.path().join("root");
    write_old(&root.join("a.csv"), b"a");
    let mut w = Running::start(config(&root, "200ms", ""), ScanMode::Continuous);
    w.stable("a.csv").await;
    w.scan_done().await;
    fs::remove_dir_all(&root).unwrap();
    w.wait_for(
        "Gone a.csv",
        |e| matches!(e, WatchEvent::Gone { rel, .. } if rel == Path::new("a.csv")),
    )
    .await;
    write_old(&root.join("b.csv"), b"b");
    w.stable("b.csv").await;
    assert_eq!(w.scan_done().await, 1);
    assert!(w.counters.snapshot().rescans >= 1);
    w.stop().await;
}

#[tokio::test]
async fn events_lost_while_the_consumer_is_slow_are_recovered_by_a_rescan() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(dir.path(), "200ms", "");
    config.event_queue = 16;
    // An output queue of one event: the driver blocks on the second, and the events
    // of the flood below overflow its queue of watcher events.
    let mut w = Running::with_queue(config, ScanMode::Continuous, 1);
    w.scan_done().await;
    write(&dir.path().join("first"), b"1");
    write(&dir.path().join("second"), b"2");
    let until = Instant::now() + DEADLINE;
    while w.rx.is_empty() {
        assert!(Instant::now() < until, "nothing emitted");
        tokio::task::yield_now().await;
    }
    let names: Vec<String> = (0..300).map(|i| format!("f{i:03}")).collect();
    for name in &names {
        fs::write(dir.path().join(name), name.as_bytes()).unwrap();
    }
    let mut missing: BTreeSet<PathBuf> = names.iter().map(PathBuf::from).collect();
    while !missing.is_empty() {
        let event = w
            .wait_for("every flooded file", |e| matches!(e, WatchEvent::Stable(_)))
            .await;
        if let WatchEvent::Stable(f) = event {
            missing.remove(&f.rel);
        }
    }
    let stats = w.counters.snapshot();
    assert!(stats.dropped_events > 0, "{stats:?}");
    assert!(stats.rescans >= 1, "{stats:?}");
    w.stop().await;
}

#[tokio::test]
async fn a_requested_rescan_emits_every_file_again() {
    let dir = tempfile::tempdir().unwrap();
    write_old(&dir.path().join("a.csv"), b"a");
    let watch = Watch::new(config(dir.path(), "200ms", ""));
    let control = watch.control();
    let counters = watch.counters();
    let (tx, rx) = mpsc::channel(64);
    let cancel = CancellationToken::new();
    let task = tokio::spawn(watch.run(ScanMode::Continuous, tx, cancel.clone()));
    let mut w = Running {
        rx,
        cancel,
        task,
        counters,
        seen: Vec::new(),
    };
    w.stable("a.csv").await;
    w.scan_done().await;
    // The consumer lost what it was sent (say, the job store could not record it).
    control.rescan_all();
    w.stable("a.csv").await;
    assert_eq!(w.scan_done().await, 1);
    assert_eq!(w.counters.snapshot().rescans, 1);
    w.stop().await;
}
