//! Opening the sled database: the state directory's lock, sled inside `catch_unwind`,
//! the schema record, and moving a broken database aside to start empty.
//!
//! Measured on sled 0.34.7: garbage over `conf` makes `open` fail (`Unsupported`);
//! garbage in the log makes sled silently drop everything from the first bad block on
//! and open fine. The `meta` schema record is the first write of a new database and is
//! flushed at once, so a database whose directory existed but which comes back
//! without it has lost its log: it is treated as broken too.
//!
//! A full disk is never "broken": sled's open fails with an IO error (`StorageFull`,
//! measured), which is returned as [`StoreError::NoSpace`] and leaves the database as
//! it was. [`reopen`] (recovery after a write error) never moves anything aside.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sled::{Db, Tree};
use tracing::{error, info};

use super::{SledStore, Trees};
use crate::store::codec::SCHEMA_VERSION;
use crate::store::error::{self, StoreError};
use crate::store::state_dir::{self, StateLock};
use crate::store::types::{Counts, StoreOptions};

const DB_DIR: &str = "db";
const SCHEMA_KEY: &[u8] = b"schema";
/// How long to wait for sled's own lock once ours is taken.
const SLED_LOCK_PATIENCE: Duration = Duration::from_secs(2);

enum OpenFailure {
    /// Moving the database aside would not help (permissions, disk full, newer schema).
    Fatal(StoreError),
    /// The database is unusable: move it aside and start empty.
    Broken(String),
}

/// Opens the store in `dir`; the second value is where a broken database was moved.
pub(crate) fn open(
    dir: &Path,
    options: StoreOptions,
) -> Result<(SledStore, Option<PathBuf>), StoreError> {
    let lock = Arc::new(StateLock::acquire(dir)?);
    open_locked(dir, options, lock, true)
}

/// Opens the database of `dir` again, under the lock the store already holds, after the
/// previous handle was dropped (sled lets go of its own lock a moment later). A
/// database that does not open is an error here, never moved aside: it was fine a
/// moment ago, so the environment (a full disk) is the likely cause.
pub(crate) fn reopen(
    dir: &Path,
    options: StoreOptions,
    lock: Arc<StateLock>,
) -> Result<SledStore, StoreError> {
    open_locked(dir, options, lock, false).map(|(store, _)| store)
}

fn open_locked(
    dir: &Path,
    options: StoreOptions,
    lock: Arc<StateLock>,
    may_move_aside: bool,
) -> Result<(SledStore, Option<PathBuf>), StoreError> {
    let db_dir = dir.join(DB_DIR);
    state_dir::wait_for_flock(dir, &db_dir.join("db"), SLED_LOCK_PATIENCE)?;
    let existed = db_dir.join("conf").exists();
    let (db, t, moved) = match open_db(dir, &db_dir, options, existed) {
        Ok((db, t)) => (db, t, None),
        Err(OpenFailure::Fatal(e)) => return Err(e),
        Err(OpenFailure::Broken(reason)) if !may_move_aside => {
            return Err(StoreError::Open {
                dir: dir.to_owned(),
                source: sled::Error::Unsupported(format!(
                    "reopening failed ({reason}); restart cdf-syncd to move the database aside"
                )),
            });
        }
        Err(OpenFailure::Broken(reason)) => {
            let moved = state_dir::move_aside(&db_dir)?;
            error!(dir = %dir.display(), moved_to = %moved.display(), %reason,
                "the job store could not be opened; moved it aside and starting empty: the \
                 startup scan and a CDF lookup by externalId rebuild the state");
            let (db, t) = open_db(dir, &db_dir, options, false).map_err(|f| match f {
                OpenFailure::Fatal(e) => e,
                OpenFailure::Broken(_) => StoreError::Open {
                    dir: dir.to_owned(),
                    source: sled::Error::Unsupported(reason),
                },
            })?;
            (db, t, Some(moved))
        }
    };
    let recovered = db.was_recovered();
    let store = SledStore {
        dir: dir.to_owned(),
        t,
        db,
        write: Mutex::new(Counts::default()),
        synced_by_root: Mutex::default(),
        failed: AtomicBool::new(false),
        dir_lock: lock,
    };
    let counts = {
        let mut counts = store.lock();
        store.check(&mut counts)?;
        *counts
    };
    info!(dir = %dir.display(), recovered, jobs = counts.jobs(), synced = counts.synced,
        quarantined = counts.quarantined, "job store open");
    Ok((store, moved))
}

fn open_db(
    dir: &Path,
    db_dir: &Path,
    options: StoreOptions,
    existed: bool,
) -> Result<(Db, Trees), OpenFailure> {
    let config = sled::Config::new()
        .path(db_dir)
        .cache_capacity(options.cache_bytes)
        .flush_every_ms(options.flush_every_ms);
    let opened = catch_unwind(AssertUnwindSafe(|| {
        let db = config.open()?;
        let trees = Trees::open(&db)?;
        Ok::<_, sled::Error>((db, trees))
    }));
    let (db, trees) = match opened {
        Ok(Ok(pair)) => pair,
        Ok(Err(sled::Error::Io(e))) if !io_means_corrupt(&e) => {
            let source = sled::Error::Io(e);
            return Err(OpenFailure::Fatal(match error::engine(dir, source) {
                StoreError::Engine { dir, source } => StoreError::Open { dir, source },
                no_space => no_space,
            }));
        }
        Ok(Err(e)) => return Err(OpenFailure::Broken(e.to_string())),
        Err(panic) => return Err(OpenFailure::Broken(panic_text(panic.as_ref()))),
    };
    check_schema(dir, &db, &trees.meta, existed)?;
    Ok((db, trees))
}

fn io_means_corrupt(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::{InvalidData, UnexpectedEof};
    matches!(e.kind(), InvalidData | UnexpectedEof)
}

fn panic_text(panic: &(dyn std::any::Any + Send)) -> String {
    let text = panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(no message)");
    format!("sled panicked: {text}")
}

fn check_schema(dir: &Path, db: &Db, meta: &Tree, existed: bool) -> Result<(), OpenFailure> {
    let fatal = |source| OpenFailure::Fatal(error::engine(dir, source));
    let stored = meta.get(SCHEMA_KEY).map_err(fatal)?;
    let version = match stored.as_deref().map(<[u8; 4]>::try_from) {
        Some(Ok(bytes)) => u32::from_be_bytes(bytes),
        Some(Err(_)) => return Err(OpenFailure::Broken("undecodable schema record".into())),
        None if existed => {
            return Err(OpenFailure::Broken(
                "the database came back without its schema record (sled dropped a corrupt log)"
                    .into(),
            ));
        }
        None => {
            meta.insert(SCHEMA_KEY, &SCHEMA_VERSION.to_be_bytes())
                .map_err(fatal)?;
            db.flush().map_err(fatal)?;
            SCHEMA_VERSION
        }
    };
    if version > SCHEMA_VERSION {
        return Err(OpenFailure::Fatal(StoreError::Schema {
            dir: dir.to_owned(),
            found: version,
            supported: SCHEMA_VERSION,
        }));
    }
    Ok(())
}
