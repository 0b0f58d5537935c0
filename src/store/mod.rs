//! The job store: the single durable source of truth about every file's sync state.
//! (The sled-backed store and its in-memory double are being built; `job` holds the
//! lifecycle types every stage shares.)

pub mod job;

pub use job::{FailureKind, FileKey, Job, JobId, JobState, SyncedFile, Target, Upload};
