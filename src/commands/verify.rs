//! `cdf-syncd verify [--root ID] [--content] [--json]`: every local file a root would
//! sync, compared with CDF.
//!
//! Per file: looked up by its mapped externalId (`files/byids`, 100 at a time; by
//! `instanceId` in the configured space with `target = "data-modeling"`); its
//! size in CDF read with a one-byte range GET on a download link (nothing is
//! downloaded); its content compared by SHA-256 when CDF holds one in metadata
//! (`cdf-syncd.sha256`), the local file hashed for it. `--content` downloads every
//! file and compares hashes directly. Local files are walked with the daemon's own
//! filters, so what is checked is exactly what would be synced.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use futures_util::StreamExt;
use serde::Serialize;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::cdf::{CdfClient, ClientConfig, FileObject, Identity};
use crate::cli::VerifyArgs;
use crate::config::{RootSettings, Settings};
use crate::fingerprint::Fingerprint;
use crate::hash;
use crate::watch::scan::{self, ScanJob, ScanKind, ScanMsg};

/// Files looked up per request (the download-link limit).
const BATCH: usize = crate::cdf::DOWNLOAD_LINKS_PER_REQUEST;
/// Files checked at once within a batch.
const CONCURRENT: usize = 8;

/// What verify found for one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Present, uploaded, same size, and the same SHA-256 where one was compared.
    Ok,
    /// Same size; CDF has no hash to compare (run with `--content`).
    SizeOnly,
    /// No CDF file with the mapped externalId.
    Missing,
    /// The CDF file exists without content.
    NotUploaded,
    SizeDiffers,
    ContentDiffers,
    /// The local file changed while it was read; nothing to conclude.
    LocalChanged,
    /// The local file or CDF's content could not be read.
    Error,
}

impl Verdict {
    /// Whether this verdict makes `verify` exit 1.
    fn is_difference(self) -> bool {
        !matches!(
            self,
            Verdict::Ok | Verdict::SizeOnly | Verdict::LocalChanged
        )
    }

    fn label(self) -> &'static str {
        match self {
            Verdict::Ok => "ok",
            Verdict::SizeOnly => "size only",
            Verdict::Missing => "missing",
            Verdict::NotUploaded => "not uploaded",
            Verdict::SizeDiffers => "size differs",
            Verdict::ContentDiffers => "content differs",
            Verdict::LocalChanged => "changed locally",
            Verdict::Error => "error",
        }
    }
}

/// One file's result.
#[derive(Debug, Clone, Serialize)]
pub struct Checked {
    pub root: String,
    pub path: String,
    pub external_id: String,
    pub file_id: Option<i64>,
    pub verdict: Verdict,
    pub local_size: u64,
    pub cdf_size: Option<u64>,
    pub local_sha256: Option<String>,
    pub cdf_sha256: Option<String>,
    pub detail: Option<String>,
}

#[derive(Debug, thiserror::Error)]
enum VerifyError {
    #[error("no root with id `{0}` in the configuration")]
    NoSuchRoot(String),
    #[error(transparent)]
    Secret(#[from] crate::config::SecretError),
    #[error(transparent)]
    Cdf(#[from] crate::cdf::CdfError),
    #[error("cannot start the runtime: {0}")]
    Runtime(std::io::Error),
    #[error("root `{root}`: cannot walk {path}: {reason}")]
    Walk {
        root: String,
        path: PathBuf,
        reason: String,
    },
}

pub fn run(args: &VerifyArgs) -> ExitCode {
    let settings = match super::load_config(&args.file.config) {
        Ok(s) => s,
        Err(code) => return code,
    };
    super::init_console_logging();
    let outcome = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(VerifyError::Runtime)
        .and_then(|rt| rt.block_on(verify(&settings, args)));
    let checked = match outcome {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut counts: std::collections::BTreeMap<Verdict, u64> = Default::default();
    for c in &checked {
        *counts.entry(c.verdict).or_default() += 1;
    }
    let differences: Vec<&Checked> = checked
        .iter()
        .filter(|c| c.verdict != Verdict::Ok)
        .collect();
    if args.json {
        let doc = serde_json::json!({ "files": checked.len(), "counts": counts, "differences": differences });
        println!("{doc:#}");
    } else {
        for c in &differences {
            let line = format!(
                "{:<16} {}:/{}  {}",
                c.verdict.label(),
                c.root,
                c.path,
                explain(c)
            );
            println!("{}", line.trim_end());
        }
        let summary: Vec<String> = counts
            .iter()
            .map(|(v, n)| format!("{n} {}", v.label()))
            .collect();
        println!("verified {} files: {}", checked.len(), summary.join(", "));
        if counts.contains_key(&Verdict::SizeOnly) {
            println!(
                "(`size only`: CDF has no SHA-256 for these; `--content` downloads and compares them)"
            );
        }
    }
    if checked.iter().any(|c| c.verdict.is_difference()) {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

fn explain(c: &Checked) -> String {
    let short = |h: &Option<String>| {
        h.as_deref()
            .map_or("-".to_owned(), |h| h.chars().take(12).collect())
    };
    match c.verdict {
        Verdict::SizeDiffers => format!(
            "local {} bytes, CDF {} bytes",
            c.local_size,
            c.cdf_size.map_or("?".to_owned(), |n| n.to_string())
        ),
        Verdict::ContentDiffers => format!(
            "local sha256 {}…, CDF {}…",
            short(&c.local_sha256),
            short(&c.cdf_sha256)
        ),
        _ => c.detail.clone().unwrap_or_default(),
    }
}

async fn verify(settings: &Settings, args: &VerifyArgs) -> Result<Vec<Checked>, VerifyError> {
    let roots: Vec<&RootSettings> = settings
        .roots
        .iter()
        .filter(|r| args.root.as_ref().is_none_or(|id| &r.id == id))
        .collect();
    if let Some(id) = &args.root
        && roots.is_empty()
    {
        return Err(VerifyError::NoSuchRoot(id.clone()));
    }
    let env = |name: &str| std::env::var(name).ok();
    let client = CdfClient::new(ClientConfig::from_settings(settings, &env)?)?;
    let mut out = Vec::new();
    let space = match &settings.cdf.target {
        crate::config::Target::DataModeling { space, .. } => Some(space.as_str()),
        crate::config::Target::Classic => None,
    };
    for root in roots {
        let lookup = Lookup {
            client: &client,
            root,
            space,
        };
        verify_root(&lookup, args.content, &mut out).await?;
    }
    Ok(out)
}

/// Where one root's files are looked up.
struct Lookup<'a> {
    client: &'a CdfClient,
    root: &'a RootSettings,
    /// The instance space of the data-modeling target.
    space: Option<&'a str>,
}

impl Lookup<'_> {
    fn identity(&self, external_id: &str) -> Identity {
        match self.space {
            Some(space) => Identity::InstanceId(crate::cdf::InstanceId {
                space: space.to_owned(),
                external_id: external_id.to_owned(),
            }),
            None => Identity::ExternalId(external_id.to_owned()),
        }
    }

    /// The externalId a found file answers to (its node's, for data modeling).
    fn key_of(&self, f: &FileObject) -> Option<String> {
        match self.space {
            Some(_) => f.instance_id.as_ref().map(|i| i.external_id.clone()),
            None => f.external_id.clone(),
        }
    }
}

/// A local file found by the walk.
struct Local {
    rel: PathBuf,
    fp: Fingerprint,
}

async fn verify_root(
    lookup: &Lookup<'_>,
    content: bool,
    out: &mut Vec<Checked>,
) -> Result<(), VerifyError> {
    let root = lookup.root;
    let (tx, mut rx) = mpsc::channel(4);
    let job = ScanJob {
        root: 0,
        settings: Arc::new(root.clone()),
        kind: ScanKind::Full,
        tx,
        cancel: CancellationToken::new(),
    };
    let walk = tokio::task::spawn_blocking(move || scan::walk(&job));
    let mut batch = Vec::with_capacity(BATCH);
    while let Some(msg) = rx.recv().await {
        let ScanMsg::Found { files, .. } = msg else {
            continue;
        };
        for found in files {
            batch.push(Local {
                rel: found.rel,
                fp: found.fingerprint,
            });
            if batch.len() == BATCH {
                out.extend(check_batch(lookup, std::mem::take(&mut batch), content).await?);
            }
        }
    }
    if !batch.is_empty() {
        out.extend(check_batch(lookup, batch, content).await?);
    }
    let report = walk.await.map_err(|e| VerifyError::Walk {
        root: root.id.clone(),
        path: root.path.clone(),
        reason: e.to_string(),
    })?;
    if let Some(e) = report.root_error {
        return Err(VerifyError::Walk {
            root: root.id.clone(),
            path: root.path.clone(),
            reason: e.to_string(),
        });
    }
    if report.unreadable > 0 {
        tracing::warn!(root = %root.id, unreadable = report.unreadable, "some directories or files could not be read; they were not verified");
    }
    Ok(())
}

async fn check_batch(
    lookup: &Lookup<'_>,
    batch: Vec<Local>,
    content: bool,
) -> Result<Vec<Checked>, VerifyError> {
    let (client, root) = (lookup.client, lookup.root);
    let mut checked = Vec::with_capacity(batch.len());
    let mut ids = Vec::new();
    let mut mapped = Vec::new();
    for local in batch {
        match crate::mapping::map_file(root, &local.rel) {
            Ok(m) => {
                ids.push(lookup.identity(&m.external_id));
                mapped.push((local, m.external_id));
            }
            Err(e) => checked.push(result(
                root,
                &local,
                String::new(),
                Verdict::Error,
                Some(e.to_string()),
            )),
        }
    }
    let found: HashMap<String, FileObject> = client
        .files_by_ids(&ids)
        .await?
        .into_iter()
        .filter_map(|f| Some((lookup.key_of(&f)?, f)))
        .collect();
    let uploaded: Vec<i64> = found
        .values()
        .filter(|f| f.uploaded)
        .map(|f| f.id)
        .collect();
    let links = if uploaded.is_empty() {
        HashMap::new()
    } else {
        client.download_links(&uploaded).await?
    };
    let checks = mapped.into_iter().map(|(local, external_id)| {
        let file = found.get(&external_id);
        let link = file.and_then(|f| links.get(&f.id));
        check_one(client, root, local, external_id, file, link, content)
    });
    let mut results = futures_util::stream::iter(checks).buffer_unordered(CONCURRENT);
    while let Some(c) = results.next().await {
        checked.push(c);
    }
    Ok(checked)
}

async fn check_one(
    client: &CdfClient,
    root: &RootSettings,
    local: Local,
    external_id: String,
    file: Option<&FileObject>,
    link: Option<&String>,
    content: bool,
) -> Checked {
    let mut c = result(root, &local, external_id, Verdict::Ok, None);
    let Some(file) = file else {
        c.verdict = Verdict::Missing;
        return c;
    };
    c.file_id = Some(file.id);
    c.cdf_sha256 = file.metadata.get(hash::METADATA_KEY).cloned();
    let Some(url) = link.filter(|_| file.uploaded) else {
        c.verdict = Verdict::NotUploaded;
        return c;
    };
    let cdf = if content {
        client.content_digest(url).await.map(|(n, d)| {
            c.cdf_sha256 = Some(hash::to_hex(&d));
            n
        })
    } else {
        client.content_size(url).await
    };
    match cdf {
        Ok(n) => c.cdf_size = Some(n),
        Err(e) => {
            c.verdict = Verdict::Error;
            c.detail = Some(format!("reading CDF's content: {e}"));
            return c;
        }
    }
    if c.cdf_size != Some(local.fp.size) {
        c.verdict = Verdict::SizeDiffers;
        return c;
    }
    let Some(want) = c.cdf_sha256.clone() else {
        c.verdict = Verdict::SizeOnly;
        return c;
    };
    let path = root.path.join(&local.rel);
    match hash::sha256_file(&path, local.fp).await {
        Ok(Some(d)) => {
            let got = hash::to_hex(&d);
            if !got.eq_ignore_ascii_case(&want) {
                c.verdict = Verdict::ContentDiffers;
            }
            c.local_sha256 = Some(got);
        }
        Ok(None) => c.verdict = Verdict::LocalChanged,
        Err(e) => {
            c.verdict = Verdict::Error;
            c.detail = Some(format!("reading {}: {e}", path.display()));
        }
    }
    c
}

fn result(
    root: &RootSettings,
    local: &Local,
    external_id: String,
    verdict: Verdict,
    detail: Option<String>,
) -> Checked {
    Checked {
        root: root.id.clone(),
        path: local.rel.to_string_lossy().into_owned(),
        external_id,
        file_id: None,
        verdict,
        local_size: local.fp.size,
        cdf_size: None,
        local_sha256: None,
        cdf_sha256: None,
        detail,
    }
}
