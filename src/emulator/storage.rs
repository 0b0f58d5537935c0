//! Content storage: request bodies streamed to staging files on disk while they are
//! hashed, never whole files in memory; or, with `--discard`, only hashed.
//!
//! A body is written through a [`BlobWriter`]: the async side hands each received chunk
//! to a dedicated blocking thread over a small bounded channel, and that thread hashes
//! (SHA-256) and writes it, so the runtime never blocks and network reads overlap with
//! disk writes. The result is a [`StoredBlob`]. A writer dropped before
//! [`BlobWriter::finish`] (a cut connection, a cancelled handler) removes its file.
//!
//! Multipart content is assembled with [`ContentStore::concat`] in index order. With
//! `--discard` the parts' bytes are gone by then, and SHA-256 cannot be combined from
//! per-part digests, so a multipart blob in discard mode has `size` but `sha256: None`.
//! Single-part and GCS resumable uploads keep a running hash and always have a SHA-256.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::EmulatorError;

/// Committed or staged content: where it is and what it hashes to.
#[derive(Debug, Clone)]
pub(crate) struct StoredBlob {
    pub size: u64,
    /// SHA-256 hex, when known.
    pub sha256: Option<String>,
    /// Where the bytes are (None with `--discard`).
    pub path: Option<PathBuf>,
}

/// Where content goes: a directory (given, or a temporary one the store owns), or nowhere.
pub(crate) struct ContentStore {
    dir: Option<PathBuf>,
    /// Keeps a temporary directory alive (and removes it) with the store.
    _temp: Option<tempfile::TempDir>,
    next: AtomicU64,
}

/// How many received chunks may wait for the writer thread.
const CHANNEL_DEPTH: usize = 16;
/// Copy buffer for assembling parts.
const COPY_BUF: usize = 1024 * 1024;

impl ContentStore {
    /// `dir` None and not `discard`: a temporary directory removed with the store.
    pub fn open(dir: Option<PathBuf>, discard: bool) -> Result<Self, EmulatorError> {
        if discard {
            return Ok(Self {
                dir: None,
                _temp: None,
                next: AtomicU64::new(0),
            });
        }
        let (dir, temp) = match dir {
            Some(dir) => {
                std::fs::create_dir_all(&dir).map_err(|source| EmulatorError::DataDir {
                    path: dir.clone(),
                    source,
                })?;
                (dir, None)
            }
            None => {
                let temp = tempfile::Builder::new()
                    .prefix("cdf-emulator-")
                    .tempdir()
                    .map_err(|source| EmulatorError::DataDir {
                        path: std::env::temp_dir(),
                        source,
                    })?;
                (temp.path().to_path_buf(), Some(temp))
            }
        };
        Ok(Self {
            dir: Some(dir),
            _temp: temp,
            next: AtomicU64::new(0),
        })
    }

    /// A fresh, unused file name in the store (None with `--discard`).
    fn new_path(&self) -> Option<PathBuf> {
        let dir = self.dir.as_ref()?;
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        Some(dir.join(format!("blob-{n:08}-{:016x}", fastrand::u64(..))))
    }

    /// Starts a new blob, hashed from the beginning.
    pub fn writer(&self) -> BlobWriter {
        self.writer_continuing(Sha256::new())
    }

    /// Starts a new blob whose hash continues `hasher` (the bytes before it live in other
    /// blobs: a GCS resumable upload's earlier chunks).
    pub fn writer_continuing(&self, hasher: Sha256) -> BlobWriter {
        let path = self.new_path();
        let (tx, rx) = mpsc::channel(CHANNEL_DEPTH);
        let task = tokio::task::spawn_blocking(move || write_blocking(path, hasher, rx));
        BlobWriter {
            tx: Some(tx),
            task: Some(task),
        }
    }

    /// Assembles `parts`, in the given (index) order, into one new blob with its SHA-256.
    /// Consumes the parts: on success their files are gone (moved or deleted), so a later
    /// [`release`](Self::release) of them is a harmless no-op. On error the new file is
    /// removed and the parts should be released by the caller. In `--discard` mode the
    /// result has the total size and `sha256: None` (see the module docs).
    pub async fn concat(&self, parts: Vec<StoredBlob>) -> io::Result<StoredBlob> {
        self.assemble(parts, true).await
    }

    /// Like [`concat`](Self::concat); `hash: false` skips hashing (the caller knows it).
    pub async fn assemble(&self, parts: Vec<StoredBlob>, hash: bool) -> io::Result<StoredBlob> {
        let size = parts.iter().map(|p| p.size).sum();
        let paths: Option<Vec<PathBuf>> = parts.into_iter().map(|p| p.path).collect();
        let (Some(target), Some(paths)) = (self.new_path(), paths) else {
            return Ok(StoredBlob {
                size,
                sha256: None,
                path: None,
            });
        };
        let result = {
            let target = target.clone();
            tokio::task::spawn_blocking(move || assemble_blocking(&target, &paths, hash))
                .await
                .map_err(io::Error::other)?
        };
        match result {
            Ok((written, sha256)) if written == size => Ok(StoredBlob {
                size,
                sha256,
                path: Some(target),
            }),
            Ok((written, _)) => {
                remove_quietly(&target);
                Err(io::Error::other(format!(
                    "parts hold {written} bytes, expected {size}"
                )))
            }
            Err(err) => {
                remove_quietly(&target);
                Err(err)
            }
        }
    }

    /// Forgets content that is no longer referenced (removes its file; idempotent).
    pub fn release(&self, blob: &StoredBlob) {
        let Some(path) = blob.path.clone() else {
            return;
        };
        // Unlinking a large file can take a while: keep it off the async threads.
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                rt.spawn_blocking(move || remove_quietly(&path));
            }
            Err(_) => remove_quietly(&path),
        }
    }

    /// Opens a blob's content for reading (downloads). `None` when the content was not
    /// kept (`--discard`).
    pub async fn open_read(&self, blob: &StoredBlob) -> io::Result<Option<tokio::fs::File>> {
        match &blob.path {
            Some(path) => tokio::fs::File::open(path).await.map(Some),
            None => Ok(None),
        }
    }
}

fn remove_quietly(path: &Path) {
    if let Err(err) = std::fs::remove_file(path)
        && err.kind() != io::ErrorKind::NotFound
    {
        tracing::warn!(path = %path.display(), %err, "cannot remove emulator content file");
    }
}

/// Streams one body into a blob. Feed it with [`write`](Self::write), then call
/// [`finish`](Self::finish); dropping it earlier discards what was written.
pub(crate) struct BlobWriter {
    tx: Option<mpsc::Sender<Msg>>,
    task: Option<JoinHandle<io::Result<Written>>>,
}

enum Msg {
    Data(Bytes),
    Finish,
}

/// What the writer thread produced: the blob (hash not finalised) and the hash state.
struct Written {
    size: u64,
    path: Option<PathBuf>,
    hasher: Sha256,
}

impl BlobWriter {
    /// Hands one chunk to the writer thread (waits when it is behind).
    pub async fn write(&mut self, chunk: Bytes) -> io::Result<()> {
        let sent = match &self.tx {
            Some(tx) => tx.send(Msg::Data(chunk)).await.is_ok(),
            None => false,
        };
        if sent {
            return Ok(());
        }
        // The thread stopped early (it only succeeds after `Finish`): report its error.
        match self.join().await {
            Err(err) => Err(err),
            Ok(_) => Err(io::Error::other("content writer stopped early")),
        }
    }

    /// Completes the blob, with its SHA-256.
    pub async fn finish(self) -> io::Result<StoredBlob> {
        let (mut blob, hasher) = self.finish_partial().await?;
        blob.sha256 = Some(hex(&hasher.finalize()));
        Ok(blob)
    }

    /// Completes the blob without finalising the hash (`sha256: None`); returns the
    /// hash state so a following blob can continue it.
    pub async fn finish_partial(mut self) -> io::Result<(StoredBlob, Sha256)> {
        if let Some(tx) = self.tx.take() {
            // A failed send means the thread already ended; join reports why.
            let _ = tx.send(Msg::Finish).await;
        }
        let w = self.join().await?;
        Ok((
            StoredBlob {
                size: w.size,
                sha256: None,
                path: w.path,
            },
            w.hasher,
        ))
    }

    async fn join(&mut self) -> io::Result<Written> {
        self.tx = None;
        match self.task.take() {
            Some(task) => task.await.map_err(io::Error::other)?,
            None => Err(io::Error::other("content writer already finished")),
        }
    }
}

impl Drop for BlobWriter {
    fn drop(&mut self) {
        // Closing the channel without `Finish` makes the thread remove its file.
        self.tx = None;
    }
}

/// The writer thread: hashes and writes each chunk; removes the file unless `Finish`.
fn write_blocking(
    path: Option<PathBuf>,
    mut hasher: Sha256,
    mut rx: mpsc::Receiver<Msg>,
) -> io::Result<Written> {
    let mut file = match &path {
        Some(p) => Some(OpenOptions::new().write(true).create_new(true).open(p)?),
        None => None,
    };
    let mut size = 0u64;
    let finished = loop {
        match rx.blocking_recv() {
            Some(Msg::Data(chunk)) => {
                hasher.update(&chunk);
                size += chunk.len() as u64;
                if let Some(f) = file.as_mut()
                    && let Err(err) = f.write_all(&chunk)
                {
                    drop(file);
                    if let Some(p) = &path {
                        remove_quietly(p);
                    }
                    return Err(err);
                }
            }
            Some(Msg::Finish) => break true,
            None => break false,
        }
    };
    drop(file);
    if !finished {
        if let Some(p) = &path {
            remove_quietly(p);
        }
        return Err(io::Error::other("upload abandoned"));
    }
    Ok(Written { size, path, hasher })
}

/// Builds `target` from `paths` in order: the first part's file is moved into place (no
/// copy), the others are appended. Returns the bytes in `target` and, if asked, its hash.
fn assemble_blocking(
    target: &Path,
    paths: &[PathBuf],
    hash: bool,
) -> io::Result<(u64, Option<String>)> {
    let mut hasher = hash.then(Sha256::new);
    let mut buf = vec![0u8; COPY_BUF];
    let mut total = 0u64;
    let mut rest = paths;
    if let Some((first, others)) = paths.split_first() {
        std::fs::rename(first, target)?;
        if let Some(h) = hasher.as_mut() {
            total += feed(&mut File::open(target)?, &mut buf, |chunk| h.update(chunk))?;
        } else {
            total += std::fs::metadata(target)?.len();
        }
        rest = others;
    }
    let mut out = OpenOptions::new().append(true).create(true).open(target)?;
    for path in rest {
        let mut input = File::open(path)?;
        let mut write_err = None;
        total += feed(&mut input, &mut buf, |chunk| {
            if let Some(h) = hasher.as_mut() {
                h.update(chunk);
            }
            if write_err.is_none()
                && let Err(err) = out.write_all(chunk)
            {
                write_err = Some(err);
            }
        })?;
        if let Some(err) = write_err {
            return Err(err);
        }
        drop(input);
        remove_quietly(path);
    }
    out.flush()?;
    Ok((total, hasher.map(|h| hex(&h.finalize()))))
}

/// Reads `input` to the end through `buf`, handing each chunk to `f`; returns the length.
fn feed(input: &mut File, buf: &mut [u8], mut f: impl FnMut(&[u8])) -> io::Result<u64> {
    let mut n = 0u64;
    loop {
        let read = match input.read(buf) {
            Ok(0) => return Ok(n),
            Ok(read) => read,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            Err(err) => return Err(err),
        };
        f(&buf[..read]);
        n += read as u64;
    }
}

/// Lower-case hex of a digest.
pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn put(store: &ContentStore, data: &[u8]) -> StoredBlob {
        let mut w = store.writer();
        for chunk in data.chunks(7) {
            w.write(Bytes::copy_from_slice(chunk)).await.unwrap();
        }
        w.finish().await.unwrap()
    }

    fn sha(data: &[u8]) -> String {
        hex(&Sha256::digest(data))
    }

    #[tokio::test]
    async fn writes_hashes_and_concats_in_order() {
        let store = ContentStore::open(None, false).unwrap();
        let a = put(&store, b"hello ").await;
        assert_eq!(a.sha256.as_deref(), Some(sha(b"hello ").as_str()));
        let b = put(&store, b"big ").await;
        let c = put(&store, b"world").await;
        let all = store
            .concat(vec![a.clone(), b.clone(), c.clone()])
            .await
            .unwrap();
        assert_eq!(all.size, 15);
        assert_eq!(
            all.sha256.as_deref(),
            Some(sha(b"hello big world").as_str())
        );
        let path = all.path.clone().unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"hello big world");
        for p in [a, b, c] {
            assert!(!p.path.unwrap().exists(), "parts are consumed");
        }
        store.release(&all);
        tokio::task::yield_now().await;
        for _ in 0..100 {
            if !path.exists() {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        panic!("released blob still on disk");
    }

    #[tokio::test]
    async fn dropped_writer_leaves_nothing() {
        let store = ContentStore::open(None, false).unwrap();
        let mut w = store.writer();
        w.write(Bytes::from_static(b"partial")).await.unwrap();
        drop(w);
        let dir = store.dir.clone().unwrap();
        for _ in 0..100 {
            if std::fs::read_dir(&dir).unwrap().next().is_none() {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        panic!("abandoned staging file kept");
    }

    #[tokio::test]
    async fn discard_hashes_single_but_not_multipart() {
        let store = ContentStore::open(None, true).unwrap();
        let a = put(&store, b"abc").await;
        assert_eq!((a.size, a.path.is_none()), (3, true));
        assert_eq!(a.sha256.as_deref(), Some(sha(b"abc").as_str()));
        let all = store.concat(vec![a.clone(), a]).await.unwrap();
        assert_eq!((all.size, all.sha256), (6, None));
    }

    #[tokio::test]
    async fn continued_hash_spans_blobs() {
        let store = ContentStore::open(None, false).unwrap();
        let mut w = store.writer();
        w.write(Bytes::from_static(b"first ")).await.unwrap();
        let (one, h) = w.finish_partial().await.unwrap();
        let mut w = store.writer_continuing(h);
        w.write(Bytes::from_static(b"second")).await.unwrap();
        let two = w.finish().await.unwrap();
        assert_eq!(two.sha256.as_deref(), Some(sha(b"first second").as_str()));
        let all = store.assemble(vec![one, two], false).await.unwrap();
        assert_eq!(std::fs::read(all.path.unwrap()).unwrap(), b"first second");
    }
}
