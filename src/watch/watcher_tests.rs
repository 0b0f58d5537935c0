//! Event translation: which notify events reach the gate, and as what.

use notify::event::{DataChange, MetadataKind};

use super::*;
use crate::config::filter::Patterns;
use crate::config::settings::DEFAULT_TEMP_PATTERNS;

fn filter(include: &[&str]) -> PathFilter {
    PathFilter::new(Patterns {
        include: include.iter().map(|s| (*s).to_owned()).collect(),
        exclude: vec!["logs".to_owned()],
        temp: DEFAULT_TEMP_PATTERNS
            .iter()
            .map(|s| (*s).to_owned())
            .collect(),
    })
    .expect("valid patterns")
}

fn hint(kind: EventKind, rel: &str, include: &[&str], native: bool) -> Option<HintKind> {
    let raw = classify(&kind)?;
    to_hint(raw, Path::new(rel), &filter(include), native)
}

#[test]
fn inotify_kinds_map_to_gate_hints() {
    let close = EventKind::Access(AccessKind::Close(AccessMode::Write));
    let write = EventKind::Modify(ModifyKind::Data(DataChange::Any));
    let attrib = EventKind::Modify(ModifyKind::Metadata(MetadataKind::Any));
    let create = EventKind::Create(CreateKind::File);
    let mkdir = EventKind::Create(CreateKind::Folder);
    let moved_in = EventKind::Modify(ModifyKind::Name(RenameMode::To));
    let moved_out = EventKind::Modify(ModifyKind::Name(RenameMode::From));
    let both = EventKind::Modify(ModifyKind::Name(RenameMode::Both));
    let open = EventKind::Access(AccessKind::Open(AccessMode::Any));
    let g = |h| Some(HintKind::Gate(h));
    assert_eq!(hint(close, "a/f.bin", &[], true), g(Hint::Closed));
    assert_eq!(hint(write, "f", &[], true), g(Hint::Changed));
    assert_eq!(hint(create, "f", &[], true), g(Hint::Changed));
    assert_eq!(hint(attrib, "f", &[], true), g(Hint::Metadata));
    assert_eq!(hint(mkdir, "a", &[], true), Some(HintKind::NewDir));
    let arrived = Hint::Arrived {
        file_ok: true,
        may_be_dir: true,
    };
    assert_eq!(hint(moved_in, "f", &[], true), g(arrived));
    assert_eq!(hint(moved_out, "f", &[], true), Some(HintKind::Removed));
    assert_eq!(hint(both, "f", &[], true), None);
    assert_eq!(hint(open, "f", &[], true), None);
}

#[test]
fn temp_and_excluded_names_never_enter() {
    let write = EventKind::Modify(ModifyKind::Data(DataChange::Any));
    let mkdir = EventKind::Create(CreateKind::Folder);
    let gone = EventKind::Remove(RemoveKind::Any);
    for rel in [
        "f.tmp",
        "a/f.part",
        "~lock",
        ".hidden",
        ".git/x",
        "logs/today",
    ] {
        assert_eq!(hint(write, rel, &[], true), None, "{rel}");
        assert_eq!(hint(gone, rel, &[], true), None, "{rel}");
    }
    assert_eq!(hint(mkdir, ".cache", &[], true), None);
    assert_eq!(hint(mkdir, "a/logs", &[], true), None);
}

#[test]
fn a_name_rejected_as_a_file_may_still_be_a_directory() {
    let moved_in = EventKind::Modify(ModifyKind::Name(RenameMode::To));
    let write = EventKind::Modify(ModifyKind::Data(DataChange::Any));
    let rm_file = EventKind::Remove(RemoveKind::File);
    let rm_dir = EventKind::Remove(RemoveKind::Folder);
    let csv = &["*.csv"];
    let arrived = |file_ok| {
        Some(HintKind::Gate(Hint::Arrived {
            file_ok,
            may_be_dir: true,
        }))
    };
    assert_eq!(hint(moved_in, "incoming", csv, true), arrived(false));
    assert_eq!(hint(moved_in, "x.csv", csv, true), arrived(true));
    assert_eq!(hint(write, "incoming", csv, true), None);
    assert_eq!(hint(rm_file, "x.txt", csv, true), None);
    assert_eq!(hint(rm_dir, "incoming", csv, true), Some(HintKind::Removed));
}

#[test]
fn polling_reports_files_itself_so_unknown_arrivals_are_files() {
    let created = EventKind::Create(CreateKind::Any);
    let newer = EventKind::Modify(ModifyKind::Metadata(MetadataKind::WriteTime));
    let arrived = Hint::Arrived {
        file_ok: true,
        may_be_dir: false,
    };
    assert_eq!(
        hint(created, "f", &[], false),
        Some(HintKind::Gate(arrived))
    );
    assert_eq!(hint(created, "dir", &["*.csv"], false), None);
    assert_eq!(
        hint(newer, "f", &[], false),
        Some(HintKind::Gate(Hint::Metadata))
    );
}

/// A translator for a root at `/data/root` whose hint queue holds `queue` messages.
fn translator(queue: usize) -> (Translator, mpsc::Receiver<HintMsg>) {
    let text = "[cdf]\nbase_url = \"https://example.cognitedata.com\"\nproject = \"p\"\n\
        [cdf.auth]\ntoken_url = \"https://login.example.com/token\"\nclient_id = \"c\"\n\
        client_secret_env = \"CDF_SECRET\"\n\
        [[roots]]\nid = \"r\"\npath = \"/data/root\"\ndirectory_prefix = \"/x\"\n";
    let settings = crate::config::parse(text, "test").expect("valid config");
    let root = settings.roots.into_iter().next().expect("one root");
    let (hints, rx) = mpsc::channel(queue);
    let ctx = WatchCtx {
        root: 0,
        settings: Arc::new(root),
        mode: WatchMode::Auto,
        poll_interval: Duration::from_secs(1),
        hints,
        signals: Arc::default(),
        wake: Arc::new(Notify::new()),
        counters: Arc::default(),
    };
    (Translator::new(&ctx, true), rx)
}

fn event(kind: EventKind, path: &str) -> notify::Result<Event> {
    Ok(Event::new(kind).add_path(PathBuf::from(path)))
}

#[test]
fn the_callback_never_blocks_and_flags_what_needs_a_rescan() {
    let (mut t, mut rx) = translator(1);
    let signals = t.ctx.signals.clone();
    let counters = t.ctx.counters.clone();
    let raised = |flag: &AtomicBool| flag.swap(false, Ordering::AcqRel);

    t.handle_event(Ok(
        Event::new(EventKind::Other).set_flag(notify::event::Flag::Rescan)
    ));
    assert!(raised(&signals.rescan));
    assert_eq!(counters.snapshot().overflows, 1);

    // A queue of one: the second hint is dropped, counted, and asks for a rescan.
    let write = EventKind::Modify(ModifyKind::Data(DataChange::Any));
    t.handle_event(event(write, "/data/root/a"));
    assert!(!raised(&signals.rescan));
    t.handle_event(event(write, "/data/root/b"));
    assert!(raised(&signals.rescan));
    assert_eq!(counters.snapshot().dropped_events, 1);
    let first = rx.try_recv().expect("the first hint");
    assert_eq!(first.rel, PathBuf::from("a"));

    t.handle_event(Err(notify::Error::new(notify::ErrorKind::MaxFilesWatch)));
    assert!(raised(&signals.watch_limit));
    t.handle_event(event(EventKind::Remove(RemoveKind::Folder), "/data/root"));
    assert!(raised(&signals.root_gone));
    // Paths outside the root are ignored.
    t.handle_event(event(write, "/elsewhere/x"));
    assert!(rx.try_recv().is_err());
}

#[test]
fn a_rescan_with_paths_is_a_rescan_not_a_hint() {
    // kqueue/FSEvents-style: the Rescan flag on an event that names a path.
    let (mut t, mut rx) = translator(8);
    let rescan = Event::new(EventKind::Any)
        .add_path(PathBuf::from("/data/root/sub"))
        .set_flag(notify::event::Flag::Rescan);
    t.handle_event(Ok(rescan));
    assert!(t.ctx.signals.rescan.swap(false, Ordering::AcqRel));
    assert_eq!(t.ctx.counters.snapshot().overflows, 1);
    assert!(rx.try_recv().is_err(), "no hint for the path");
}

#[test]
fn auto_polls_network_and_fuse_mounts_from_mountinfo() {
    let mountinfo = "\
22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
30 22 0:40 / /mnt/nas rw,relatime shared:2 - nfs4 srv:/export rw,vers=4.2
33 22 0:43 / /mnt/sshfs rw shared:5 - fuse.sshfs user@host: rw
34 22 0:44 / /mnt/usb rw shared:6 - fuseblk /dev/sdc1 rw
";
    let network = |path: &str| {
        linux::fs_type_of(mountinfo, Path::new(path)).filter(|t| linux::is_network_fs(t))
    };
    let poll = |fs: &str| Plan::Poll {
        network: Some(fs.to_owned()),
    };
    assert_eq!(
        plan(WatchMode::Auto, network("/mnt/nas/cams")),
        poll("nfs4")
    );
    assert_eq!(
        plan(WatchMode::Auto, network("/mnt/sshfs/a")),
        poll("fuse.sshfs")
    );
    let native = Plan::Native { fallback: true };
    assert_eq!(plan(WatchMode::Auto, network("/mnt/usb/a")), native);
    assert_eq!(plan(WatchMode::Auto, network("/data")), native);
    // The other modes do what they say, whatever the filesystem.
    assert_eq!(
        plan(WatchMode::Native, network("/mnt/nas/cams")),
        Plan::Native { fallback: false }
    );
    assert_eq!(plan(WatchMode::Poll, None), Plan::Poll { network: None });
}
