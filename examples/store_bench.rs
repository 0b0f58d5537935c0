//! Job store measurements for BENCHMARKS.md:
//!
//! 1. database size after N files went enqueue -> upload -> done -> finish (compacted);
//! 2. time per flush, and how many transitions one group-commit flush covers when many
//!    workers each write a transition and await `flush()`.
//!
//! `cargo run --release --example store_bench [-- FILES [DIR]]` (default 100000 files,
//! a temporary directory under $TMPDIR).

use std::path::Path;
use std::time::{Duration, Instant};

use cdf_syncd::fingerprint::Fingerprint;
use cdf_syncd::store::{
    Enqueued, FileKey, JobState, Store, StoreOptions, SyncedFile, Target, Upload,
};

type Res<T> = Result<T, Box<dyn std::error::Error>>;

fn fp(n: u64) -> Fingerprint {
    Fingerprint {
        size: 8192,
        mtime_ns: 1_763_700_000_000_000_000 + n as i64,
        inode: n,
        device: 2049,
    }
}

fn key(n: u64) -> FileKey {
    let rel = format!("line{}/cam{}/2026-11-21/img-{n:08}.jpg", n % 4, n % 16);
    FileKey::new("site-a", Path::new(&rel))
}

/// A single-part session with a URL as long as a real signed URL (~600 bytes).
fn upload(n: u64) -> Upload {
    let url = format!("https://storage.example.com/upload/{n}?{}", "x".repeat(560));
    Upload {
        file_id: n as i64,
        target: Target::Single { url },
        urls_issued_ms: 1,
        source: fp(n),
    }
}

/// Bytes the directory's files take: (sum of lengths, allocated blocks).
fn du(dir: &Path) -> Res<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let (mut len, mut alloc) = (0, 0);
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let meta = entry.metadata()?;
        if meta.is_dir() {
            let (l, a) = du(&entry.path())?;
            (len, alloc) = (len + l, alloc + a);
        } else {
            (len, alloc) = (len + meta.len(), alloc + meta.blocks() * 512);
        }
    }
    Ok((len, alloc))
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1 << 20) as f64
}

fn lifecycle(dir: &Path, files: u64) -> Res<()> {
    let store = Store::open(dir, StoreOptions::default())?;
    let started = Instant::now();
    let mut peak = 0;
    for batch in (0..files).collect::<Vec<_>>().chunks(1000) {
        for &n in batch {
            let Enqueued::New(id) = store.enqueue(key(n), fp(n), n as i64)? else {
                continue;
            };
            store.start_upload(id, upload(n))?;
            store.set_state(id, JobState::Done { file_id: n as i64 })?;
            store.finish(
                id,
                SyncedFile {
                    fingerprint: fp(n),
                    file_id: n as i64,
                    synced_ms: 1,
                    sha256: Some([n as u8; 32]),
                },
            )?;
        }
        store.flush_blocking()?; // one fsync per 1000 files, as group commit would
        peak = peak.max(store.size_on_disk()?);
    }
    let elapsed = started.elapsed();
    store.flush_blocking()?;
    let counts = store.counts()?;
    let sled = store.size_on_disk()?;
    drop(store);
    let (len, alloc) = du(dir)?;
    println!("## lifecycle: {files} files enqueue -> start_upload -> done -> finish");
    println!(
        "  time: {elapsed:.2?} ({:.1} us/file, 4 transitions each)",
        elapsed.as_secs_f64() * 1e6 / files as f64
    );
    println!("  left: jobs {} synced {}", counts.jobs(), counts.synced);
    println!(
        "  size_on_disk (sled): {:.1} MiB, peak during run {:.1} MiB",
        mib(sled),
        mib(peak)
    );
    println!(
        "  files in state dir: {:.1} MiB (allocated {:.1} MiB)",
        mib(len),
        mib(alloc)
    );
    println!(
        "  bytes per tracked file: {:.0} (allocated {:.0})",
        len as f64 / files as f64,
        alloc as f64 / files as f64
    );
    let started = Instant::now();
    let store = Store::open(dir, StoreOptions::default())?;
    println!(
        "  reopen (reads every record once): {:.2?}, synced {}",
        started.elapsed(),
        store.counts()?.synced
    );
    Ok(())
}

/// Sequential: one transition + one flush, `rounds` times.
fn flush_latency(store: &Store, rounds: u32) -> Res<Duration> {
    let Enqueued::New(id) = store.enqueue(key(u64::MAX), fp(0), 0)? else {
        return Err("no job".into());
    };
    let started = Instant::now();
    for n in 0..rounds {
        store.record_failure(
            id,
            cdf_syncd::store::FailureKind::Transient,
            i64::from(n),
            "x",
        )?;
        store.flush_blocking()?;
    }
    Ok(started.elapsed() / rounds)
}

/// `workers` tasks, each `per_worker` times: one transition, then `flush().await`.
async fn group_commit(store: &Store, workers: u64, per_worker: u64) -> Res<()> {
    let before = store.flush_stats();
    let started = Instant::now();
    let tasks: Vec<_> = (0..workers)
        .map(|w| {
            let store = store.clone();
            tokio::spawn(async move {
                let n = 1_000_000 + w;
                let Enqueued::New(id) = store.enqueue(key(n), fp(n), 0)? else {
                    return Ok(());
                };
                for round in 0..per_worker {
                    store.set_state(
                        id,
                        JobState::Done {
                            file_id: round as i64,
                        },
                    )?;
                    store.flush().await?;
                }
                store.forget(id)?;
                Ok::<_, cdf_syncd::store::StoreError>(())
            })
        })
        .collect();
    for task in tasks {
        task.await??;
    }
    let elapsed = started.elapsed();
    let after = store.flush_stats();
    let (requests, flushes) = (
        after.requests - before.requests,
        after.flushes - before.flushes,
    );
    println!(
        "  {workers:>4} workers: {requests} transitions+flush in {elapsed:.2?} = {:.0}/s; {flushes} fsyncs, {:.1} transitions per fsync",
        requests as f64 / elapsed.as_secs_f64(),
        requests as f64 / flushes.max(1) as f64
    );
    Ok(())
}

fn main() -> Res<()> {
    let mut args = std::env::args().skip(1);
    let files: u64 = args.next().map_or(Ok(100_000), |a| a.parse())?;
    let tmp = match args.next() {
        Some(dir) => tempfile::tempdir_in(dir)?,
        None => tempfile::tempdir()?,
    };
    lifecycle(&tmp.path().join("lifecycle"), files)?;

    let store = Store::open(tmp.path().join("flush"), StoreOptions::default())?;
    println!("## flush");
    println!(
        "  one writer, transition + flush: {:.0?} per flush",
        flush_latency(&store, 500)?
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    for workers in [1, 8, 64, 256] {
        rt.block_on(group_commit(&store, workers, 4000 / workers.min(40)))?;
    }
    Ok(())
}
