//! Opening and renewing upload sessions, and sending parts with quick retries.
//!
//! A session is created with `POST files` (empty files) or `initmultipartupload`.
//! Creating is not idempotent: when the reply to a create was lost and the retry (or
//! a rebuilt state) finds the externalId taken (409 `duplicated`), the file is looked
//! up by externalId. One without content is the one our lost create made: the job
//! continues with it and a fresh link. One with content was synced before (a lost job
//! store): when its `cdf-syncd.sha256` metadata equals the local file's hash the content
//! is already there ([`Opened::SameContent`]: nothing to send); otherwise it is replaced
//! with `overwrite=true`, which keeps its id. Either way no duplicate and no 409 loop. URLs older than
//! [`URL_MAX_AGE`] are not used: the job gets a fresh session with `multiuploadlink`
//! (or `uploadlink`) for the same file id.
//!
//! The data-modeling target opens with [`open_node`]: upsert the CogniteFile node
//! (idempotent, so a lost reply or a restart is harmless), then link by `instanceId`;
//! a changed file gets a new link on the same node, never a second node.

use std::time::Duration;

use super::node::{NodeError, PROPAGATION_RETRIES, propagation_delay};
use crate::cdf::limits::PartPlan;
use crate::cdf::{CdfClient, CdfError, FileCreate, Identity, NodeWrite};
use crate::fingerprint::Fingerprint;
use crate::hash::Sha256Digest;
use crate::store::{Target, Upload};

/// CDF expires upload URLs after a week; stop using them a day before.
pub const URL_MAX_AGE: Duration = Duration::from_secs(6 * 24 * 3600);

/// What [`open`] found.
#[derive(Debug)]
pub enum Opened {
    /// A session to send the content in.
    Session(Upload),
    /// The file exists in CDF with the local file's SHA-256: nothing to send.
    SameContent { file_id: i64, sha256: Sha256Digest },
}

/// Creates the file (or replaces it with `overwrite`) and opens a session for it.
/// `local_sha256` is asked only when CDF already has content for the externalId and
/// a hash in its metadata.
pub async fn open(
    client: &CdfClient,
    file: &FileCreate,
    plan: Option<PartPlan>,
    overwrite: bool,
    source: Fingerprint,
    now_ms: i64,
    local_sha256: impl AsyncFnOnce() -> Option<Sha256Digest>,
) -> Result<Opened, CdfError> {
    let session = |r: Result<Upload, CdfError>| r.map(Opened::Session);
    match create(client, file, plan, overwrite, source, now_ms).await {
        Err(e) if !overwrite && e.status() == Some(409) => {
            let Some(external_id) = &file.external_id else {
                return Err(e);
            };
            let id = Identity::ExternalId(external_id.clone());
            let found = client.files_by_ids(&[id]).await?;
            match found.first() {
                Some(existing) if !existing.uploaded => {
                    tracing::info!(
                        external_id,
                        file_id = existing.id,
                        "the file exists without content (a create whose reply was lost); continuing with it"
                    );
                    session(relink(client, existing.id, plan, source, now_ms).await)
                }
                Some(existing) => {
                    let stored = existing
                        .metadata
                        .get(crate::hash::METADATA_KEY)
                        .and_then(|h| crate::hash::from_hex(h));
                    if let Some(stored) = stored
                        && local_sha256().await == Some(stored)
                    {
                        tracing::info!(
                            external_id,
                            file_id = existing.id,
                            "the file exists in CDF with the same SHA-256; nothing to send"
                        );
                        return Ok(Opened::SameContent {
                            file_id: existing.id,
                            sha256: stored,
                        });
                    }
                    tracing::info!(
                        external_id,
                        file_id = existing.id,
                        "the file already exists in CDF with content; replacing it"
                    );
                    session(create(client, file, plan, true, source, now_ms).await)
                }
                // Deleted in between: the externalId is free again.
                None => session(create(client, file, plan, false, source, now_ms).await),
            }
        }
        other => session(other),
    }
}

async fn create(
    client: &CdfClient,
    file: &FileCreate,
    plan: Option<PartPlan>,
    overwrite: bool,
    source: Fingerprint,
    now_ms: i64,
) -> Result<Upload, CdfError> {
    match plan {
        None => {
            let created = client.create_file(file, overwrite).await?;
            Ok(Upload {
                file_id: created.file.id,
                target: Target::Single {
                    url: created.upload_url,
                },
                urls_issued_ms: now_ms,
                source,
            })
        }
        Some(plan) => {
            let session = client.init_multipart(file, plan.parts, overwrite).await?;
            multipart(session, plan, source, now_ms)
        }
    }
}

/// A fresh session for a file that exists (expired URLs, or a changed source).
pub async fn relink(
    client: &CdfClient,
    file_id: i64,
    plan: Option<PartPlan>,
    source: Fingerprint,
    now_ms: i64,
) -> Result<Upload, CdfError> {
    link(client, &Identity::Id(file_id), plan, source, now_ms).await
}

/// Upserts a file node, then opens a session for it by `instanceId`. The file
/// service can lag behind a new node: a not-found is tried again with backoff
/// (after making sure the node is a file node at all, so that a view that does not
/// implement CogniteFile fails at once, naming the view).
pub async fn open_node(
    client: &CdfClient,
    node: &NodeWrite,
    plan: Option<PartPlan>,
    source: Fingerprint,
    now_ms: i64,
) -> Result<Upload, NodeError> {
    client.apply_nodes(std::slice::from_ref(node)).await?;
    let id = Identity::InstanceId(node.id.clone());
    let mut retry = 0;
    loop {
        let e = match link(client, &id, plan, source, now_ms).await {
            Err(e) if e.is_not_found() => e,
            other => return other.map_err(NodeError::from),
        };
        if retry == 0 && !client.is_file_node(&node.id).await? {
            let reason = format!(
                "written through view {}, but CDF does not know it as a file node: the view does not implement cdf_cdm:CogniteFile/v1 (or the node was deleted meanwhile) ({e})",
                node.view
            );
            return Err(NodeError::refused(&node.id, reason));
        }
        retry += 1;
        if retry > PROPAGATION_RETRIES {
            return Err(NodeError::NotPropagated {
                space: node.id.space.clone(),
                external_id: node.id.external_id.clone(),
                tries: retry,
            });
        }
        let delay = propagation_delay(retry, fastrand::f64());
        tracing::debug!(node = %node.id.external_id, retry, ?delay, "the file service does not see the node yet; retrying");
        tokio::time::sleep(delay).await;
    }
}

/// `uploadlink` or `multiuploadlink` for an existing file.
async fn link(
    client: &CdfClient,
    id: &Identity,
    plan: Option<PartPlan>,
    source: Fingerprint,
    now_ms: i64,
) -> Result<Upload, CdfError> {
    match plan {
        None => {
            let link = client.upload_link(id).await?;
            Ok(Upload {
                file_id: link.file.id,
                target: Target::Single {
                    url: link.upload_url,
                },
                urls_issued_ms: now_ms,
                source,
            })
        }
        Some(plan) => {
            let session = client.multipart_link(id, plan.parts).await?;
            multipart(session, plan, source, now_ms)
        }
    }
}

fn multipart(
    session: crate::cdf::MultipartUpload,
    plan: PartPlan,
    source: Fingerprint,
    now_ms: i64,
) -> Result<Upload, CdfError> {
    if session.upload_urls.len() as u64 != plan.parts {
        return Err(CdfError::BadReply {
            endpoint: "multipart upload".to_owned(),
            reason: format!(
                "asked for {} upload URLs, got {}",
                plan.parts,
                session.upload_urls.len()
            ),
            request_id: None,
        });
    }
    Ok(Upload {
        file_id: session.file.id,
        target: Target::Multipart {
            upload_id: session.upload_id,
            urls: session.upload_urls,
            part_size: plan.part_size,
        },
        urls_issued_ms: now_ms,
        source,
    })
}

/// Whether a stored session's URLs can still be used at `now_ms`.
pub fn urls_fresh(upload: &Upload, now_ms: i64) -> bool {
    let age = now_ms.saturating_sub(upload.urls_issued_ms);
    age >= 0 && (age as u128) < URL_MAX_AGE.as_millis()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upload(issued: i64) -> Upload {
        Upload {
            file_id: 1,
            target: Target::Single { url: "u".into() },
            urls_issued_ms: issued,
            source: Fingerprint {
                size: 0,
                mtime_ns: 0,
                inode: 0,
                device: 0,
            },
        }
    }

    #[test]
    fn urls_expire_after_six_days() {
        let day = 24 * 3600 * 1000;
        assert!(urls_fresh(&upload(0), 5 * day));
        assert!(!urls_fresh(&upload(0), 6 * day));
        assert!(
            !urls_fresh(&upload(10 * day), 0),
            "a clock that went back is not trusted"
        );
    }
}
