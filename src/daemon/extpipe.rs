//! Extraction-pipeline reporting and the remote config (`[cdf] extraction_pipeline`,
//! `remote_config`; CDF-API.md §7).
//!
//! One task, the reporter, watches the pipeline from the outside (the health's pause,
//! the store's permanently failed jobs) and posts runs:
//! - `success` at start ("New startup of cdf-syncd ...", as extractor-utils does);
//! - `seen` every `extraction_pipeline_heartbeat` while the pipeline is not stuck and
//!   nothing else was posted meanwhile;
//! - `failure` once per episode when the pipeline is stuck: credentials rejected (at
//!   once), or a pause (CDF unreachable, throttled, state directory unwritable) longer
//!   than `extraction_pipeline_failure_after`; `success` when it recovers;
//! - `failure` when files start failing permanently (they wait for an operator), and
//!   `success` once none is left;
//! - with `remote_config`, the pipeline's config is read every
//!   `remote_config_interval`; a new revision goes to the reloader (`reload.rs`), which
//!   applies it like a SIGHUP; `success` names an applied revision, `failure` a refused
//!   one (the running configuration stays) or a pipeline without config.
//!
//! Runs are queued and posted in order, each stamped (`createdTime`) with the moment it
//! describes: a failure found while CDF cannot be reached, or while it refuses the
//! credentials, is delivered once it can be. Reporting never touches uploads: its
//! errors are logged, never returned. Messages are cleaned of the client secret and of
//! URL query strings (upload URLs carry signatures) and cut to 1000 characters.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::health::PauseReason;
use super::reload::RemoteApply;
use super::worker::{Ctx, now_ms};
use super::{DaemonError, Mode};
use crate::cdf::extpipes::{MAX_RUN_MESSAGE, RunStatus, truncate_chars};
use crate::cdf::{CdfClient, CdfError, RetryClass};
use crate::config::{
    AuthSettings, ConfigErrors, PipelineTiming, RemoteConfig, Settings, merge_remote,
    read_secret_file,
};
use crate::secret::Secret;
use crate::store::{FailureKind, JobState, StateKind};

/// How long a stopping daemon tries to post its last runs.
const STOP_DELIVERY: Duration = Duration::from_secs(5);
/// How often the reporter looks at the pipeline.
const TICK: Duration = Duration::from_secs(1);
/// Runs kept while they cannot be delivered; beyond it the oldest non-failure goes.
const MAX_QUEUED: usize = 64;
/// The longest wait between delivery attempts while CDF does not take runs.
const MAX_DELIVERY_BACKOFF: Duration = Duration::from_secs(60);
/// A remote config that could not be read is asked for again at least this often.
const REMOTE_RETRY: Duration = Duration::from_secs(30);
/// How many failed jobs one look at the store reads.
const FAILED_SCAN: usize = 1000;

/// What the last read of the remote config found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RemoteSeen {
    Nothing,
    /// The pipeline has no config.
    Missing,
    Revision(i64),
}

/// The configuration the daemon starts with, and what was found of the remote config.
pub(super) struct RemoteStart {
    /// The local file.
    pub local: Settings,
    /// In force: the local file, with the remote config merged when there is one.
    pub settings: Arc<Settings>,
    /// The remote config merged into `settings`.
    pub applied: Option<RemoteConfig>,
    /// A refused revision or a pipeline without config: a `failure` run to post.
    problem: Option<String>,
    seen: RemoteSeen,
}

/// With `remote_config`, reads the pipeline's config once and merges it over the local
/// file. In daemon mode a problem is logged (and reported by the reporter) and the
/// daemon starts with what it has; `sync --once` stops on it.
pub(super) async fn remote_at_start(
    client: &CdfClient,
    local: Arc<Settings>,
    mode: Mode,
) -> Result<RemoteStart, DaemonError> {
    let mut start = RemoteStart {
        local: (*local).clone(),
        settings: local.clone(),
        applied: None,
        problem: None,
        seen: RemoteSeen::Nothing,
    };
    let (true, Some(pipeline)) = (
        local.cdf.remote_config,
        local.cdf.extraction_pipeline.as_deref(),
    ) else {
        return Ok(start);
    };
    let problem = match client.pipeline_config(pipeline).await {
        Ok(Some(found)) => {
            start.seen = RemoteSeen::Revision(found.revision);
            let config = RemoteConfig {
                revision: found.revision,
                text: found.config.unwrap_or_default(),
            };
            match merge_remote(&local, &config) {
                Ok(merged) => {
                    tracing::info!(
                        pipeline,
                        revision = config.revision,
                        roots = merged.roots.len(),
                        "configuration: the local file with the extraction pipeline's remote config"
                    );
                    client.bandwidth().set_rate(
                        merged.upload.max_rate,
                        merged.upload.max_rate_schedule.clone(),
                    );
                    start.settings = Arc::new(merged);
                    start.applied = Some(config);
                    None
                }
                Err(errors) => Some(refused(&config, &errors)),
            }
        }
        Ok(None) => {
            start.seen = RemoteSeen::Missing;
            Some(missing(pipeline))
        }
        Err(e) => {
            let problem =
                format!("cannot read the remote config of extraction pipeline `{pipeline}`: {e}");
            if mode == Mode::Once {
                return Err(DaemonError::RemoteConfig(problem));
            }
            tracing::error!(
                "{problem}; running with the local file until the remote config can be read"
            );
            return Ok(start);
        }
    };
    if let Some(problem) = problem {
        if mode == Mode::Once {
            return Err(DaemonError::RemoteConfig(problem));
        }
        tracing::error!("{problem}");
        start.problem = Some(problem);
    }
    Ok(start)
}

/// A remote config that could not be read at start is asked for again soon.
fn first_remote_check(seen: RemoteSeen, timing: PipelineTiming) -> Duration {
    match seen {
        RemoteSeen::Nothing => timing.remote_config_interval.min(REMOTE_RETRY),
        RemoteSeen::Missing | RemoteSeen::Revision(_) => timing.remote_config_interval,
    }
}

fn refused(config: &RemoteConfig, errors: &ConfigErrors) -> String {
    let list: Vec<String> = errors.errors().iter().map(ToString::to_string).collect();
    format!(
        "remote config revision {} refused, the running configuration stays: {}",
        config.revision,
        list.join("; ")
    )
}

fn missing(pipeline: &str) -> String {
    format!(
        "extraction pipeline `{pipeline}` has no remote config (remote_config = true): running with the local file"
    )
}

/// Starts the reporter when `[cdf] extraction_pipeline` is set. `remote` takes new
/// remote-config revisions to the reloader.
pub(super) fn spawn(
    ctx: Arc<Ctx>,
    start: &RemoteStart,
    remote: mpsc::Sender<RemoteApply>,
    cancel: CancellationToken,
) -> Option<JoinHandle<()>> {
    let settings = ctx.settings();
    let pipeline = settings.cdf.extraction_pipeline.clone()?;
    let now = Instant::now();
    let mut reporter = Reporter {
        ctx,
        pipeline,
        timing: settings.cdf.pipeline_timing,
        remote: settings.cdf.remote_config.then_some(remote),
        secrets: Vec::new(),
        queue: VecDeque::new(),
        last_posted: now,
        delivery: Delivery::default(),
        stuck: None,
        permanent: false,
        remote_seen: start.seen,
        remote_refused: start.problem.is_some(),
        next_remote_check: now + first_remote_check(start.seen, settings.cdf.pipeline_timing),
    };
    let revision = start
        .applied
        .as_ref()
        .map(|c| format!(", remote config revision {}", c.revision))
        .unwrap_or_default();
    let startup = format!(
        "New startup of cdf-syncd {}: {} root(s){revision}",
        env!("CARGO_PKG_VERSION"),
        settings.roots.len()
    );
    let problem = start.problem.clone();
    Some(tokio::spawn(async move {
        reporter.secrets = read_secrets(&reporter.ctx.settings()).await;
        reporter.push(RunStatus::Success, &startup);
        if let Some(problem) = problem {
            reporter.push(RunStatus::Failure, &problem);
        }
        reporter.run(cancel).await;
    }))
}

/// One run waiting to be posted.
#[derive(Debug)]
struct Run {
    status: RunStatus,
    message: String,
    created_ms: i64,
}

/// When the next delivery may be tried.
#[derive(Debug)]
struct Delivery {
    next: Instant,
    backoff: Duration,
    failing: bool,
}

impl Default for Delivery {
    fn default() -> Self {
        Self {
            next: Instant::now(),
            backoff: TICK,
            failing: false,
        }
    }
}

struct Reporter {
    ctx: Arc<Ctx>,
    pipeline: String,
    timing: PipelineTiming,
    /// Set with `remote_config`.
    remote: Option<mpsc::Sender<RemoteApply>>,
    /// Never sent: the client secret (or static token) the messages are cleaned of.
    secrets: Vec<Secret>,
    queue: VecDeque<Run>,
    /// When a run was last delivered (or the reporter started).
    last_posted: Instant,
    delivery: Delivery,
    /// The pause reported as a failure, until it ends.
    stuck: Option<PauseReason>,
    /// Permanently failed jobs were reported, and some are still there.
    permanent: bool,
    remote_seen: RemoteSeen,
    /// The last revision read was refused (or there was none): the next applied one
    /// ends that episode.
    remote_refused: bool,
    next_remote_check: Instant,
}

impl Reporter {
    async fn run(mut self, cancel: CancellationToken) {
        loop {
            tokio::select! {
                () = cancel.cancelled() => break,
                () = self.tick() => {}
            }
            tokio::select! {
                () = cancel.cancelled() => break,
                () = tokio::time::sleep(TICK) => {}
            }
        }
        // A clean stop is a `success` run, as extractor-utils reports one; it gets a few
        // seconds (the stop must stay within systemd's timeout), then what is queued
        // is lost.
        let synced = self.ctx.progress.snapshot().totals.since_start.files;
        self.push(
            RunStatus::Success,
            &format!("stopped: {synced} file(s) synced since start"),
        );
        if tokio::time::timeout(STOP_DELIVERY, self.deliver())
            .await
            .is_err()
            || !self.queue.is_empty()
        {
            tracing::warn!(pipeline = %self.pipeline, runs = self.queue.len(), "extraction-pipeline runs not delivered before the stop");
        }
    }

    async fn tick(&mut self) {
        self.observe_pause();
        self.observe_permanent_failures().await;
        if self.remote.is_some() && Instant::now() >= self.next_remote_check {
            self.check_remote().await;
        }
        if self.stuck.is_none()
            && self.queue.is_empty()
            && self.last_posted.elapsed() >= self.timing.heartbeat
        {
            let synced = self.ctx.progress.snapshot().totals.since_start.files;
            let queued = self
                .ctx
                .store
                .counts()
                .map_or(0, |c| c.get(StateKind::Queued));
            self.push(
                RunStatus::Seen,
                &format!("running: {synced} file(s) synced since start, {queued} queued"),
            );
        }
        self.deliver().await;
    }

    /// A pause that is stuck opens an episode (one `failure`); its end closes it.
    fn observe_pause(&mut self) {
        let health = self.ctx.health.snapshot();
        match (health.paused, self.stuck) {
            (Some(reason), stuck) => {
                let paused_for = Duration::from_millis(health.paused_for_ms.unwrap_or(0));
                let is_stuck = reason == PauseReason::CredentialsRejected
                    || paused_for >= self.timing.failure_after;
                if is_stuck && stuck != Some(reason) {
                    self.stuck = Some(reason);
                    let message = stuck_message(reason, paused_for, health.detail.as_deref());
                    self.push(RunStatus::Failure, &message);
                }
            }
            (None, Some(reason)) => {
                self.stuck = None;
                self.push(
                    RunStatus::Success,
                    &format!("recovered ({reason} has ended): uploads resumed"),
                );
            }
            (None, None) => {}
        }
    }

    /// Files that failed permanently wait for an operator: one `failure` when the first
    /// appear, one `success` when none is left.
    async fn observe_permanent_failures(&mut self) {
        let Ok(counts) = self.ctx.store.counts() else {
            return;
        };
        let mut found = (0, None);
        if counts.get(StateKind::Failed) > 0 {
            let store = self.ctx.store.clone();
            let listed = tokio::task::spawn_blocking(move || {
                store.list(Some(StateKind::Failed), FAILED_SCAN)
            })
            .await;
            let Ok(Ok(jobs)) = listed else { return };
            let permanent: Vec<_> = jobs
                .iter()
                .filter_map(|job| match &job.state {
                    JobState::Failed {
                        kind: FailureKind::Permanent,
                        last_error,
                        ..
                    } => Some(format!("{}: {last_error}", job.key)),
                    _ => None,
                })
                .collect();
            found = (permanent.len(), permanent.into_iter().next());
        }
        match found {
            (0, _) if self.permanent => {
                self.permanent = false;
                self.push(
                    RunStatus::Success,
                    "no file waits after a permanent failure any more",
                );
            }
            (n, Some(example)) if n > 0 && !self.permanent => {
                self.permanent = true;
                self.push(
                    RunStatus::Failure,
                    &format!(
                        "{n} file(s) failed permanently and wait for an operator (`cdf-syncd jobs`, `cdf-syncd retry`); e.g. {example}"
                    ),
                );
            }
            _ => {}
        }
    }

    /// Reads the pipeline's config; a new revision goes to the reloader.
    async fn check_remote(&mut self) {
        let interval = self.timing.remote_config_interval;
        let read = self.ctx.client.pipeline_config(&self.pipeline).await;
        self.next_remote_check = Instant::now() + interval;
        let found = match read {
            Ok(Some(found)) => found,
            Ok(None) => {
                if self.remote_seen != RemoteSeen::Missing {
                    self.remote_seen = RemoteSeen::Missing;
                    self.remote_refused = true;
                    let problem = missing(&self.pipeline);
                    tracing::error!("{problem}");
                    self.push(RunStatus::Failure, &problem);
                }
                return;
            }
            Err(e) => {
                tracing::warn!(pipeline = %self.pipeline, error = %e,
                    "cannot read the remote config now; the running configuration stays");
                self.next_remote_check = Instant::now() + interval.min(REMOTE_RETRY);
                return;
            }
        };
        if self.remote_seen == RemoteSeen::Revision(found.revision) {
            return;
        }
        let config = RemoteConfig {
            revision: found.revision,
            text: found.config.unwrap_or_default(),
        };
        let (reply, applied) = oneshot::channel();
        let Some(reloader) = &self.remote else { return };
        let apply = RemoteApply {
            config: config.clone(),
            reply,
        };
        if reloader.send(apply).await.is_err() {
            return;
        }
        let Ok(outcome) = applied.await else { return };
        self.remote_seen = RemoteSeen::Revision(config.revision);
        match outcome {
            Ok(()) => {
                self.remote_refused = false;
                let roots = self.ctx.settings().roots.len();
                self.push(
                    RunStatus::Success,
                    &format!(
                        "remote config revision {} applied: {roots} root(s)",
                        config.revision
                    ),
                );
            }
            Err(errors) => {
                self.remote_refused = true;
                tracing::error!(
                    revision = config.revision,
                    "remote config refused; the running configuration stays:\n{errors}"
                );
                self.push(RunStatus::Failure, &refused(&config, &errors));
            }
        }
    }

    /// Queues a run, its message cleaned and cut.
    fn push(&mut self, status: RunStatus, message: &str) {
        let message = clean(message, &self.secrets);
        match status {
            RunStatus::Failure => {
                tracing::warn!(pipeline = %self.pipeline, %message, "extraction pipeline: failure run")
            }
            _ => {
                tracing::info!(pipeline = %self.pipeline, status = ?status, %message, "extraction pipeline run")
            }
        }
        if self.queue.len() >= MAX_QUEUED {
            let victim = self
                .queue
                .iter()
                .position(|r| r.status != RunStatus::Failure)
                .unwrap_or(0);
            self.queue.remove(victim);
        }
        self.queue.push_back(Run {
            status,
            message,
            created_ms: now_ms(),
        });
    }

    /// Posts the queued runs in order until one cannot be delivered.
    async fn deliver(&mut self) {
        while let Some(run) = self.queue.front() {
            if Instant::now() < self.delivery.next {
                return;
            }
            let posted = self
                .ctx
                .client
                .post_run(&self.pipeline, run.status, &run.message, run.created_ms)
                .await;
            match posted {
                Ok(()) => {
                    if self.delivery.failing {
                        tracing::info!(pipeline = %self.pipeline, "extraction-pipeline runs are delivered again");
                    }
                    self.queue.pop_front();
                    self.last_posted = Instant::now();
                    self.delivery = Delivery::default();
                }
                Err(e) if refused_for_good(&e) => {
                    tracing::warn!(pipeline = %self.pipeline, error = %e,
                        "CDF refused an extraction-pipeline run, it is dropped: check that the pipeline exists and that the client may write its runs (extractionpipelines:write)");
                    self.queue.pop_front();
                }
                Err(e) => {
                    if !self.delivery.failing {
                        tracing::warn!(pipeline = %self.pipeline, error = %e,
                            "cannot report to the extraction pipeline now; the runs are kept and sent later");
                    }
                    let d = &mut self.delivery;
                    d.failing = true;
                    d.next = Instant::now() + d.backoff;
                    d.backoff = d.backoff.saturating_mul(2).min(MAX_DELIVERY_BACKOFF);
                    return;
                }
            }
        }
    }
}

/// A reply no retry can change (validation, forbidden, unknown pipeline).
fn refused_for_good(e: &CdfError) -> bool {
    matches!(e, CdfError::Api { .. }) && e.retry_class() == RetryClass::Permanent
}

fn stuck_message(reason: PauseReason, paused_for: Duration, detail: Option<&str>) -> String {
    let detail = detail.map(|d| format!(": {d}")).unwrap_or_default();
    let paused_for = humantime::format_duration(Duration::from_secs(paused_for.as_secs()));
    let advice = match reason {
        PauseReason::CredentialsRejected => {
            "; fix the client credentials in [cdf.auth] (or the secret they point at) and restart cdf-syncd"
        }
        PauseReason::StateUnwritable => "; free space in (or fix) the [state] directory",
        PauseReason::CdfUnreachable | PauseReason::Throttled => "",
    };
    format!("uploads paused for {paused_for}, files stay queued: {reason}{detail}{advice}")
}

/// The configured client secret (or static token), to keep out of messages.
async fn read_secrets(settings: &Settings) -> Vec<Secret> {
    let auth = settings.cdf.auth.clone();
    tokio::task::spawn_blocking(move || {
        let read = match auth {
            AuthSettings::ClientCredentials(cc) => cc.client_secret.read(),
            AuthSettings::TokenFile(path) => read_secret_file(&path),
        };
        read.ok().into_iter().collect()
    })
    .await
    .unwrap_or_default()
}

/// `message` without the secrets and URL query strings, at most 1000 characters.
fn clean(message: &str, secrets: &[Secret]) -> String {
    let mut text = message.to_owned();
    for secret in secrets {
        let value = secret.expose();
        if !value.is_empty() {
            text = text.replace(value, "***");
        }
    }
    truncate_chars(&strip_url_queries(&text), MAX_RUN_MESSAGE)
}

/// URLs in `text` without their query and fragment (signed upload URLs, tokens).
fn strip_url_queries(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while !rest.is_empty() {
        if rest.starts_with("http://") || rest.starts_with("https://") {
            let end = rest
                .find(|c: char| c.is_whitespace() || matches!(c, ')' | '"' | '\'' | '<' | '>'))
                .unwrap_or(rest.len());
            let url = &rest[..end];
            out.push_str(url.find(['?', '#']).map_or(url, |q| &url[..q]));
            rest = &rest[end..];
        } else {
            let mut chars = rest.chars();
            if let Some(c) = chars.next() {
                out.push(c);
            }
            rest = chars.as_str();
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_lose_secrets_and_url_queries_and_stay_short() {
        let secrets = [Secret::new("s3cr3t".to_owned())];
        let text = "PUT (https://storage.example/b/o?X-Goog-Signature=abc&x=1) failed; secret s3cr3t, see http://h/p#frag.";
        assert_eq!(
            clean(text, &secrets),
            "PUT (https://storage.example/b/o) failed; secret ***, see http://h/p"
        );
        let long = format!("{}s3cr3t", "ü".repeat(2000));
        let cleaned = clean(&long, &secrets);
        assert_eq!(cleaned.chars().count(), MAX_RUN_MESSAGE);
        assert!(!cleaned.contains("s3cr3t"));
    }

    #[test]
    fn stuck_messages_name_the_reason_and_what_to_do() {
        let m = stuck_message(
            PauseReason::CredentialsRejected,
            Duration::from_millis(1500),
            Some("invalid_client"),
        );
        assert!(m.contains("credentials rejected: invalid_client"), "{m}");
        assert!(m.contains("fix the client credentials"), "{m}");
        let m = stuck_message(PauseReason::CdfUnreachable, Duration::from_secs(700), None);
        assert_eq!(
            m,
            "uploads paused for 11m 40s, files stay queued: CDF unreachable"
        );
    }
}
