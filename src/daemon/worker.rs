//! One job, from wherever the store says it stands to `Done`, then compaction.
//!
//! The order of every step follows one rule: write the transition, flush, then do
//! the side effect it allows. A part counts as done only once its record is durable;
//! `completemultipartupload` is sent only once every part is durable and the state
//! says `Completing`; the source is deleted or moved only after CDF reports
//! `uploaded`. A restart therefore resumes from the last durable step: stored URLs
//! (if younger than six days and the file is unchanged) and only the parts not yet
//! recorded. A file that changed during upload is never completed: the job waits
//! for it to settle and starts a new session for the same CDF file.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::hashes;
use super::health::PauseReason;
use crate::auth::AuthError;
use crate::cdf::limits::{self, PartPlan};
use crate::cdf::{CdfClient, CdfError, Identity, RetryClass};
use crate::config::{DataSetRef, OnDelete, PartSize, RootSettings, Settings, Target as CdfTarget};
use crate::fingerprint::Fingerprint;
use crate::hash;
use crate::mapping::{self, CdfFile};
use crate::store::{FailureKind, Job, JobState, Store, StoreError, SyncedFile, Target, Upload};
use crate::upload::{file_create, finish, node, session};

/// What a worker needs; shared by every worker.
pub struct Ctx {
    pub client: CdfClient,
    pub health: Arc<super::health::Health>,
    pub store: Arc<Store>,
    /// The configuration in force (swapped by a SIGHUP reload; an attempt keeps the one
    /// it started with).
    pub settings: std::sync::RwLock<Arc<Settings>>,
    /// Data set ids looked up by externalId so far, per root.
    pub data_sets: tokio::sync::Mutex<std::collections::HashMap<String, i64>>,
    /// CDF's minimum part size (lowered only against a test emulator).
    pub min_part_size: u64,
    /// Asks the watcher for a full rescan (after the state directory healed).
    pub watch: std::sync::Mutex<crate::watch::WatchControl>,
    /// What `status` shows of the uploads in flight.
    pub progress: Arc<super::progress::Progress>,
    /// Synced files whose path just went away: where a new path may have come from.
    pub moves: std::sync::Mutex<super::moves::Registry>,
}

impl Ctx {
    /// The configuration in force now.
    pub fn settings(&self) -> Arc<Settings> {
        self.settings
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    pub(super) fn set_settings(&self, settings: Arc<Settings>) {
        *self
            .settings
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = settings;
    }

    /// The move candidates (see `moves`).
    pub(super) fn moves(&self) -> std::sync::MutexGuard<'_, super::moves::Registry> {
        self.moves
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Asks the current watcher for a full rescan.
    pub fn rescan_all(&self) {
        self.watch
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .rescan_all();
    }

    pub(super) fn set_watch(&self, control: crate::watch::WatchControl) {
        *self
            .watch
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = control;
    }
}

/// How a job run ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    Synced {
        file_id: i64,
    },
    /// The source vanished (or its root was removed): the job was dropped.
    Dropped,
    /// Shutdown asked the worker to stop between parts; the job resumes next start.
    Interrupted,
    /// The job failed and is in `Failed` (retried later if transient).
    Failed,
    /// The pipeline paused (outage, throttling, credentials, state dir); the job kept
    /// its state and attempts.
    Paused,
}

/// Why one attempt at a job stopped short; decides the `Failed` kind.
#[derive(Debug, thiserror::Error)]
pub(super) enum Stop {
    #[error(transparent)]
    Cdf(#[from] CdfError),
    #[error(transparent)]
    Finish(#[from] finish::FinishError),
    #[error("{0}")]
    Permanent(String),
    #[error("{0}")]
    Wait(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Completing was refused and the file has no content: the session is gone.
    #[error("{0}")]
    SessionLost(CdfError),
    #[error("vanished")]
    Vanished,
    #[error("interrupted")]
    Interrupted,
}

pub async fn run(ctx: &Ctx, job: Job, cancel: &CancellationToken) -> Outcome {
    let started = Instant::now();
    let _tracked = ctx.progress.track(&job);
    let stop = match attempt(ctx, &job, cancel).await {
        Ok(Synced {
            file_id,
            size,
            sent: true,
        }) => {
            ctx.progress.synced(size);
            tracing::info!(job = %job.id, path = %job.key, size, elapsed = ?started.elapsed(), file_id, "synced");
            return Outcome::Synced { file_id };
        }
        Ok(Synced { file_id, size, .. }) => {
            tracing::info!(job = %job.id, path = %job.key, size, file_id, "content unchanged (same SHA-256); not uploaded again");
            return Outcome::Synced { file_id };
        }
        Err(stop) => stop,
    };
    match settle(ctx, &job, stop).await {
        Ok(outcome) => outcome,
        Err(e) => store_failed(ctx, &job, &e),
    }
}

/// A store call failed under a worker. A job forgotten or re-queued meanwhile (by
/// `cdf-syncd forget`/`retry`) just ends this run; anything else about the store
/// pauses the pipeline until a write goes through again.
fn store_failed(ctx: &Ctx, job: &Job, e: &StoreError) -> Outcome {
    match e {
        StoreError::NoSuchJob { .. } => {
            tracing::info!(job = %job.id, path = %job.key, "the job was forgotten while it ran");
            Outcome::Dropped
        }
        StoreError::WrongState { .. } => {
            tracing::info!(job = %job.id, path = %job.key, error = %e, "the job changed while it ran; it runs again by its new state");
            Outcome::Interrupted
        }
        _ => {
            if !e.is_unwritable() {
                tracing::error!(job = %job.id, error = %e, "unexpected job store error");
            }
            ctx.health
                .pause(PauseReason::StateUnwritable, &e.to_string(), None);
            Outcome::Paused
        }
    }
}

/// Records why an attempt stopped: dropped, failed (with its retry time), or left as
/// it is while the whole pipeline pauses.
async fn settle(ctx: &Ctx, job: &Job, stop: Stop) -> Result<Outcome, StoreError> {
    let id = job.id;
    let kind = match disposition(&stop) {
        Disposition::Interrupted => return Ok(Outcome::Interrupted),
        Disposition::Store => {
            let Stop::Store(e) = stop else {
                return Ok(Outcome::Interrupted);
            };
            return Err(e);
        }
        Disposition::Drop => {
            tracing::info!(job = %id, path = %job.key, "source vanished; job dropped");
            ctx.store.forget(id)?;
            return Ok(Outcome::Dropped);
        }
        Disposition::Pause(reason, wait) => {
            // The job keeps its state and its attempts; it runs again on resume.
            tracing::debug!(job = %id, path = %job.key, error = %stop, "pausing");
            ctx.progress.failed(job, &stop);
            ctx.health.pause(reason, &stop.to_string(), wait);
            return Ok(Outcome::Paused);
        }
        Disposition::Fail(kind) => kind,
    };
    let delay = retry_delay(&ctx.settings(), &stop, job.attempts);
    let retry_at = now_ms() + i64::try_from(delay.as_millis()).unwrap_or(i64::MAX);
    ctx.progress.failed(job, &stop);
    match kind {
        FailureKind::Permanent => {
            tracing::error!(job = %id, path = %job.key, error = %stop, "upload failed; `cdf-syncd retry` re-queues it")
        }
        FailureKind::Transient => {
            tracing::warn!(job = %id, path = %job.key, error = %stop, retry_in = ?delay, "upload failed; will retry")
        }
    }
    ctx.store
        .record_failure(id, kind, retry_at, &stop.to_string())?;
    ctx.store.flush().await?;
    Ok(Outcome::Failed)
}

/// A job that reached CDF.
struct Synced {
    file_id: i64,
    size: u64,
    /// False when the content was already there (same SHA-256) and nothing was sent.
    sent: bool,
}

/// One pass over the job.
async fn attempt(ctx: &Ctx, job: &Job, cancel: &CancellationToken) -> Result<Synced, Stop> {
    // The whole attempt uses the configuration it started with: a reload does not
    // pull a root out from under an upload in flight.
    let settings = ctx.settings();
    let root = settings
        .roots
        .iter()
        .find(|r| r.id == job.key.root)
        .ok_or(Stop::Vanished)?;
    let path = root.path.join(job.key.rel_path());
    let fp = stat_readable(&path).await?;
    if fp.size > root.max_file_size {
        return Err(Stop::Permanent(format!(
            "{} bytes is over max_file_size ({} bytes)",
            fp.size, root.max_file_size
        )));
    }
    let mapped =
        mapping::map_file(root, job.key.rel_path()).map_err(|e| Stop::Permanent(e.to_string()))?;
    let plan = part_plan(ctx, fp.size)?;
    if fp != job.fingerprint && !matches!(job.state, JobState::Done { .. }) {
        // The watcher queues the new version once it is stable again.
        return Err(Stop::Wait(
            "the file changed since it was queued; waiting for it to settle".into(),
        ));
    }
    let hashing = hashes::enabled(ctx);
    let upload = match &job.state {
        JobState::Done { file_id } => {
            // What was uploaded is the job's fingerprint, not whatever the file is now
            // (it may have changed while the daemon was down): a newer version is then
            // not marked synced, and the store re-queues it.
            let sent = Sent {
                file_id: *file_id,
                fp: job.fingerprint,
                digest: None,
            };
            return finish_job(ctx, job, root, &mapped, sent).await;
        }
        JobState::Completing(u) if u.source == fp => u.clone(),
        JobState::Uploading(u)
        | JobState::Failed {
            resume: Some(u), ..
        } if u.source == fp && session::urls_fresh(u, now_ms()) => {
            ctx.store
                .set_state(job.id, JobState::Uploading(u.clone()))?;
            u.clone()
        }
        JobState::Uploading(u)
        | JobState::Completing(u)
        | JobState::Failed {
            resume: Some(u), ..
        } => {
            let fresh = match dm_node(&settings, &mapped, &path, fp)? {
                Some(node) => session::open_node(&ctx.client, &node, plan, fp, now_ms()).await?,
                None => session::relink(&ctx.client, u.file_id, plan, fp, now_ms()).await?,
            };
            start(ctx, job, fresh).await?
        }
        JobState::Queued | JobState::Failed { .. } => {
            if hashing
                && let Some((file_id, digest)) = hashes::unchanged(ctx, job, &path, fp).await?
            {
                return skip_unchanged(ctx, job, root, file_id, fp, digest).await;
            }
            if hashing
                && !job.overwrite
                && settings.cdf.target == CdfTarget::Classic
                && let Some((file_id, digest)) =
                    super::moves::take(ctx, &job.key, root, &mapped, &path, fp).await?
            {
                return skip_unchanged(ctx, job, root, file_id, fp, digest).await;
            }
            let opened = match dm_node(&settings, &mapped, &path, fp)? {
                Some(node) => session::open_node(&ctx.client, &node, plan, fp, now_ms()).await?,
                None => {
                    let data_set = data_set(ctx, root).await?;
                    let file = file_create(&mapped, Some(fp.mtime_ms()), data_set);
                    let local_sha256 = async || match hashing {
                        true => hashes::digest(&path, fp).await,
                        false => None,
                    };
                    let opened = session::open(
                        &ctx.client,
                        &file,
                        plan,
                        job.overwrite,
                        fp,
                        now_ms(),
                        local_sha256,
                    )
                    .await?;
                    match opened {
                        session::Opened::Session(upload) => upload,
                        // A lost job store: CDF has this content already.
                        session::Opened::SameContent { file_id, sha256 } => {
                            return skip_unchanged(ctx, job, root, file_id, fp, sha256).await;
                        }
                    }
                }
            };
            start(ctx, job, opened).await?
        }
    };
    let content = async {
        let upload = send_content(ctx, job, &path, upload, plan, mapped.mime_type, cancel).await?;
        match complete(ctx, job, &path, upload.clone()).await {
            Err(Stop::SessionLost(e)) => {
                // CDF no longer knows the session (expired, or its completion was lost
                // on CDF's side) and the file has no content: send it again in a new one.
                tracing::warn!(job = %job.id, path = %job.key, error = %e,
                    "CDF no longer knows the upload session; sending the file again in a new one");
                let fresh =
                    session::relink(&ctx.client, upload.file_id, plan, fp, now_ms()).await?;
                let fresh = start(ctx, job, fresh).await?;
                let fresh =
                    send_content(ctx, job, &path, fresh, plan, mapped.mime_type, cancel).await?;
                complete(ctx, job, &path, fresh).await
            }
            other => other,
        }
    };
    // The hash is read alongside the upload (the page cache serves one of the reads);
    // a failed upload stops it.
    let (file_id, digest) = if hashing {
        let digest = async { Ok(hashes::digest(&path, fp).await) };
        tokio::try_join!(content, digest)?
    } else {
        (content.await?, None)
    };
    let sent = Sent {
        file_id,
        fp,
        digest,
    };
    finish_job(ctx, job, root, &mapped, sent).await
}

/// The job's file has the content CDF already holds for its path: record the new
/// fingerprint against the same file (and run `after_upload`) without sending it.
async fn skip_unchanged(
    ctx: &Ctx,
    job: &Job,
    root: &RootSettings,
    file_id: i64,
    fp: Fingerprint,
    digest: hash::Sha256Digest,
) -> Result<Synced, Stop> {
    ctx.store.set_state(job.id, JobState::Done { file_id })?;
    ctx.store.flush().await?;
    after_upload(ctx, job, root, file_id, fp).await?;
    record_synced(ctx, job, file_id, fp, Some(digest)).await?;
    Ok(Synced {
        file_id,
        size: fp.size,
        sent: false,
    })
}

/// The CogniteFile node of the data-modeling target (`None`: classic Files). It is
/// upserted for every new session, so a changed file updates its node in place.
fn dm_node(
    settings: &Settings,
    mapped: &CdfFile<'_>,
    path: &Path,
    fp: Fingerprint,
) -> Result<Option<crate::cdf::NodeWrite>, Stop> {
    let CdfTarget::DataModeling { space, view } = &settings.cdf.target else {
        return Ok(None);
    };
    Ok(Some(node::node_write(
        mapped,
        path,
        space,
        view,
        fp.mtime_ms(),
    )?))
}

impl From<node::NodeError> for Stop {
    fn from(e: node::NodeError) -> Self {
        match e {
            node::NodeError::Cdf(e) => Stop::Cdf(e),
            node::NodeError::Refused { .. } => Stop::Permanent(e.to_string()),
            node::NodeError::NotPropagated { .. } => Stop::Wait(e.to_string()),
        }
    }
}

/// Records a new session (clearing old part checkpoints) and makes it durable.
///
/// It is made durable before anything is sent only when a restart can resume it:
/// multipart parts and GCS resumable sessions. A plain single PUT is sent whole again
/// after a crash either way, and the file its create made is found again by
/// externalId (409), so its record rides on the next flush (one group commit per
/// small file instead of three).
async fn start(ctx: &Ctx, job: &Job, upload: Upload) -> Result<Upload, Stop> {
    ctx.store.start_upload(job.id, upload.clone())?;
    let resumable = match &upload.target {
        Target::Multipart { .. } => true,
        Target::Single { url } => crate::cdf::is_resumable_url(url),
    };
    if resumable {
        ctx.store.flush().await?;
    }
    Ok(upload)
}

/// PUTs whatever is not yet durable; a storage URL that is gone (403/404/410) gets a
/// fresh session once.
async fn send_content(
    ctx: &Ctx,
    job: &Job,
    path: &Path,
    mut upload: Upload,
    plan: Option<PartPlan>,
    mime_type: &str,
    cancel: &CancellationToken,
) -> Result<Upload, Stop> {
    let mut relinked = false;
    loop {
        match put_missing(ctx, job, path, &upload, mime_type, cancel).await {
            Err(Stop::Cdf(e)) if !relinked && url_gone(&e) => {
                tracing::info!(job = %job.id, error = %e, "upload URL no longer valid; getting a new one");
                let fresh =
                    session::relink(&ctx.client, upload.file_id, plan, upload.source, now_ms())
                        .await?;
                upload = start(ctx, job, fresh).await?;
                relinked = true;
            }
            other => return other.map(|()| upload),
        }
    }
}

fn url_gone(e: &CdfError) -> bool {
    matches!(e, CdfError::Api { endpoint, error } if endpoint == "upload PUT" && matches!(error.status, 403 | 404 | 410))
}

async fn put_missing(
    ctx: &Ctx,
    job: &Job,
    path: &Path,
    upload: &Upload,
    mime_type: &str,
    cancel: &CancellationToken,
) -> Result<(), Stop> {
    let size = upload.source.size;
    match &upload.target {
        Target::Single { url } => {
            ctx.progress.parts(job.id, 1, 0, 0);
            // A GCS resumable URL continues from (and reports) what the server holds.
            let acked = |bytes| ctx.progress.parts(job.id, 1, 0, bytes);
            let resumed = ctx
                .client
                .put_single(url, path, size, mime_type, &acked)
                .await?;
            ctx.progress.sent(job.id, size.saturating_sub(resumed));
            Ok(())
        }
        Target::Multipart {
            urls, part_size, ..
        } => {
            let done = ctx.store.parts_done(job.id)?;
            let plan = PartPlan {
                part_size: *part_size,
                parts: urls.len() as u64,
            };
            let todo: Vec<u32> = (0..urls.len() as u32)
                .filter(|p| !done.contains(p))
                .collect();
            let resumed = done.iter().map(|p| plan.range(u64::from(*p), size).1).sum();
            ctx.progress.parts(job.id, urls.len(), done.len(), resumed);
            super::parts::send(ctx, job.id, path, size, plan, urls, &todo, cancel).await
        }
    }
}

/// Checks the source is unchanged, then completes the multipart session.
async fn complete(ctx: &Ctx, job: &Job, path: &Path, upload: Upload) -> Result<i64, Stop> {
    if stat(path).await? != upload.source {
        return Err(Stop::Wait(
            "the file changed during upload; it will be sent again once it settles".into(),
        ));
    }
    let Target::Multipart { upload_id, .. } = &upload.target else {
        return Ok(upload.file_id);
    };
    ctx.store
        .set_state(job.id, JobState::Completing(upload.clone()))?;
    ctx.store.flush().await?;
    match ctx
        .client
        .complete_multipart(upload.file_id, upload_id)
        .await
    {
        Ok(()) => Ok(upload.file_id),
        Err(e) if e.retry_class() == RetryClass::Permanent => {
            // Completed before (a lost reply)? CDF knows.
            let found = ctx
                .client
                .files_by_ids(&[Identity::Id(upload.file_id)])
                .await?;
            if found.iter().any(|f| f.uploaded) {
                Ok(upload.file_id)
            } else {
                Err(Stop::SessionLost(e))
            }
        }
        Err(e) => Err(e.into()),
    }
}

/// What CDF confirmed: the file, the version of the source that was sent, and its
/// hash when it was read alongside.
struct Sent {
    file_id: i64,
    fp: Fingerprint,
    digest: Option<hash::Sha256Digest>,
}

/// Done in CDF: fix overwritten fields, record the hash, run `after_upload`, compact
/// the job.
async fn finish_job(
    ctx: &Ctx,
    job: &Job,
    root: &RootSettings,
    mapped: &CdfFile<'_>,
    sent: Sent,
) -> Result<Synced, Stop> {
    let Sent {
        file_id,
        fp,
        mut digest,
    } = sent;
    ctx.store.set_state(job.id, JobState::Done { file_id })?;
    // Durable before the source is deleted or moved; the CDF updates below are
    // idempotent, and a crash before `finish` is durable only repeats some work.
    if root.after_upload != crate::config::AfterUpload::Keep {
        ctx.store.flush().await?;
    }
    // A CogniteFile's directory is a node property, written with the node.
    if job.overwrite && ctx.settings().cdf.target == CdfTarget::Classic {
        let source = mapped.fields.source.as_deref();
        finish::set_directory_and_source(&ctx.client, file_id, &mapped.directory, source).await?;
    }
    if hashes::enabled(ctx) && digest.is_none() {
        // Resumed after CDF confirmed: hash the file if it is still what was sent.
        digest = hashes::digest(&root.path.join(job.key.rel_path()), fp).await;
    }
    // The hash, and the end of a deletion mark left by an earlier version of the path.
    let add: Vec<(&str, String)> = digest
        .iter()
        .map(|d| (hash::METADATA_KEY, hash::to_hex(d)))
        .collect();
    let remove: &[&str] = match root.on_delete {
        OnDelete::Mark => &[super::deletions::DELETED_KEY],
        _ => &[],
    };
    if !add.is_empty() || !remove.is_empty() {
        finish::update_metadata(&ctx.client, file_id, &add, remove).await?;
    }
    after_upload(ctx, job, root, file_id, fp).await?;
    record_synced(ctx, job, file_id, fp, digest).await?;
    Ok(Synced {
        file_id,
        size: fp.size,
        sent: true,
    })
}

/// `after_upload` (delete or move the source) once CDF reports the file uploaded.
async fn after_upload(
    ctx: &Ctx,
    job: &Job,
    root: &RootSettings,
    file_id: i64,
    fp: Fingerprint,
) -> Result<(), Stop> {
    if root.after_upload != crate::config::AfterUpload::Keep {
        finish::wait_uploaded(&ctx.client, file_id).await?;
        finish::apply_after_upload(&root.after_upload, &root.path, job.key.rel_path(), fp).await?;
    }
    Ok(())
}

/// Compacts the job into the path's synced record.
async fn record_synced(
    ctx: &Ctx,
    job: &Job,
    file_id: i64,
    fp: Fingerprint,
    sha256: Option<hash::Sha256Digest>,
) -> Result<(), Stop> {
    let synced = SyncedFile {
        fingerprint: fp,
        file_id,
        synced_ms: now_ms(),
        sha256,
    };
    ctx.store.finish(job.id, synced)?;
    ctx.store.flush().await?;
    Ok(())
}

/// The file's fingerprint, once it is known to open for reading: an unreadable file
/// fails before anything is created for it in CDF. One trip to the blocking pool.
async fn stat_readable(path: &Path) -> Result<Fingerprint, Stop> {
    let owned = path.to_owned();
    let checked = tokio::task::spawn_blocking(move || {
        let meta = std::fs::symlink_metadata(&owned)?;
        if meta.is_file() {
            std::fs::File::open(&owned)?;
        }
        Ok::<_, std::io::Error>(meta)
    })
    .await
    .map_err(|e| Stop::Permanent(format!("cannot read {}: {e}", path.display())))?;
    source_state(path, checked)
}

async fn stat(path: &Path) -> Result<Fingerprint, Stop> {
    source_state(path, tokio::fs::symlink_metadata(path).await)
}

/// What a stat of the source says for the job: its fingerprint, gone (not a regular
/// file any more counts as gone), or unreadable.
fn source_state(
    path: &Path,
    stat: std::io::Result<std::fs::Metadata>,
) -> Result<Fingerprint, Stop> {
    match stat {
        Ok(meta) if meta.is_file() => Ok(Fingerprint::of(&meta)),
        Ok(_) => Err(Stop::Vanished),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(Stop::Vanished),
        Err(e) => Err(Stop::Permanent(format!(
            "cannot read {}: {e}",
            path.display()
        ))),
    }
}

fn part_plan(ctx: &Ctx, size: u64) -> Result<Option<PartPlan>, Stop> {
    if size == 0 {
        return Ok(None);
    }
    let preferred = match ctx.settings().upload.part_size {
        PartSize::Auto => None,
        PartSize::Fixed(n) => Some(n),
    };
    let plan = limits::plan(size, preferred, ctx.min_part_size)
        .map_err(|e| Stop::Permanent(e.to_string()))?;
    // A file that fits in one part goes single-part: two requests instead of three,
    // and no less resumable (one part is re-sent whole either way).
    Ok((plan.parts > 1).then_some(plan))
}

/// What a stopped attempt means for the job and the pipeline.
enum Disposition {
    Interrupted,
    Store,
    Drop,
    Fail(FailureKind),
    /// Stop the whole pipeline (first probe after the given wait, if any).
    Pause(PauseReason, Option<Duration>),
}

fn disposition(stop: &Stop) -> Disposition {
    match stop {
        Stop::Interrupted => Disposition::Interrupted,
        Stop::Vanished => Disposition::Drop,
        // Handled by `store_failed` (settle returns it as an error).
        Stop::Store(_) => Disposition::Store,
        Stop::Permanent(_) | Stop::Finish(finish::FinishError::Io { .. }) => {
            Disposition::Fail(FailureKind::Permanent)
        }
        Stop::Wait(_)
        | Stop::SessionLost(_)
        | Stop::Finish(finish::FinishError::NotYetUploaded { .. }) => {
            Disposition::Fail(FailureKind::Transient)
        }
        Stop::Cdf(e) | Stop::Finish(finish::FinishError::Cdf(e)) => cdf_disposition(e),
    }
}

/// Failures that are about CDF as a whole (unreachable, throttling, credentials) pause
/// the pipeline instead of burning the job's attempts; the rest are the job's.
fn cdf_disposition(e: &CdfError) -> Disposition {
    match e {
        CdfError::Auth(AuthError::Rejected { .. }) => {
            Disposition::Pause(PauseReason::CredentialsRejected, None)
        }
        CdfError::Auth(_) | CdfError::Transport { .. } => {
            Disposition::Pause(PauseReason::CdfUnreachable, None)
        }
        _ => match e.retry_class() {
            RetryClass::Throttled { retry_after } => {
                Disposition::Pause(PauseReason::Throttled, retry_after)
            }
            // A 401 even with a fresh token: CDF does not accept our identity.
            RetryClass::ReAuth => Disposition::Pause(PauseReason::CredentialsRejected, None),
            RetryClass::Transient => Disposition::Fail(FailureKind::Transient),
            RetryClass::Permanent => Disposition::Fail(FailureKind::Permanent),
        },
    }
}

/// The data set id for `root`'s files, looking an externalId up once (it is only
/// known to be wrong once CDF says so, which fails the job with the reason).
async fn data_set(ctx: &Ctx, root: &RootSettings) -> Result<Option<i64>, Stop> {
    let external_id = match &root.fields.data_set {
        None => return Ok(None),
        Some(DataSetRef::Id(id)) => return Ok(Some(*id)),
        Some(DataSetRef::ExternalId(x)) => x,
    };
    let mut known = ctx.data_sets.lock().await;
    if let Some(id) = known.get(&root.id) {
        return Ok(Some(*id));
    }
    match ctx.client.data_set_id(external_id).await? {
        Some(id) => {
            known.insert(root.id.clone(), id);
            Ok(Some(id))
        }
        None => Err(Stop::Permanent(format!(
            "root `{}`: no data set with externalId `{external_id}` in CDF",
            root.id
        ))),
    }
}

/// Per-job backoff: waiting for a file to settle takes `stable_for`; transient
/// failures back off exponentially (jittered) up to the configured maximum.
fn retry_delay(settings: &Settings, stop: &Stop, attempts: u32) -> Duration {
    if let Stop::Wait(_) = stop {
        return settings.sync.stable_for;
    }
    let retry = settings.upload.retry;
    let cap = retry
        .initial_backoff
        .saturating_mul(1u32 << attempts.min(16))
        .min(retry.max_backoff);
    cap.mul_f64(0.5 + fastrand::f64() / 2.0)
}

pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
