//! For bench/suite.py's `tracked` workload: fills a job store with one synced record per
//! file under ROOT_PATH (fingerprint from the file's metadata, as the scan takes it), so
//! that a daemon started on that store and tree finds everything synced, without
//! uploading a million files first.
//!
//! `cargo run --release --example bench_prefill -- STATE_DIR ROOT_ID ROOT_PATH [lookup]`
//! (the directory names must match the config's `[state] dir` and `[[roots]]`).
//! With `lookup`, it only reads the synced record of every file (what a restart's scan
//! does in the store), to tell the store's memory from the rest of the daemon's;
//! `BENCH_CACHE_MIB` sets the store's cache (default: the daemon's 16 MiB).

use std::path::{Path, PathBuf};

use cdf_syncd::fingerprint::Fingerprint;
use cdf_syncd::store::{
    Enqueued, FileKey, JobState, Store, StoreOptions, SyncedFile, Target, Upload,
};

type Res<T> = Result<T, Box<dyn std::error::Error>>;

/// Calls `visit` for every file under `dir`, holding no list of them.
fn walk(dir: &Path, visit: &mut dyn FnMut(PathBuf) -> Res<()>) -> Res<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            walk(&entry.path(), visit)?;
        } else {
            visit(entry.path())?;
        }
    }
    Ok(())
}

fn main() -> Res<()> {
    let mut args = std::env::args().skip(1);
    let (Some(state), Some(root_id), Some(root)) = (args.next(), args.next(), args.next()) else {
        return Err("usage: bench_prefill STATE_DIR ROOT_ID ROOT_PATH".into());
    };
    let root = PathBuf::from(root);
    let mut options = StoreOptions::default();
    if let Ok(mib) = std::env::var("BENCH_CACHE_MIB") {
        options.cache_bytes = mib.parse::<u64>()? << 20;
    }
    let store = Store::open(&state, options)?;
    if args.next().as_deref() == Some("lookup") {
        let (mut found, mut files) = (0, 0);
        walk(&root, &mut |path| {
            let key = FileKey::new(root_id.clone(), path.strip_prefix(&root)?);
            found += usize::from(store.synced(&key)?.is_some());
            files += 1;
            Ok(())
        })?;
        println!("{found} of {files} files have a synced record");
        return Ok(());
    }
    let mut n = 0;
    walk(&root, &mut |path| {
        n += 1;
        let fp = Fingerprint::of(&std::fs::symlink_metadata(&path)?);
        let key = FileKey::new(root_id.clone(), path.strip_prefix(&root)?);
        let Enqueued::New(id) = store.enqueue(key, fp, 1)? else {
            return Ok(());
        };
        let file_id = n as i64;
        store.start_upload(
            id,
            Upload {
                file_id,
                target: Target::Single {
                    url: format!("http://127.0.0.1/upload/{file_id}"),
                },
                urls_issued_ms: 1,
                source: fp,
            },
        )?;
        store.set_state(id, JobState::Done { file_id })?;
        store.finish(
            id,
            SyncedFile {
                fingerprint: fp,
                file_id,
                synced_ms: 1,
                sha256: None,
            },
        )?;
        if n % 10_000 == 0 {
            store.flush_blocking()?;
        }
        Ok(())
    })?;
    store.flush_blocking()?;
    println!("{} synced records in {state}", store.counts()?.synced);
    Ok(())
}
