//! Opening and renewing upload sessions, and sending parts with quick retries.
//!
//! A session is created with `POST files` (empty files) or `initmultipartupload`.
//! Creating is not idempotent: when the reply to a create was lost and the retry (or
//! a rebuilt state) finds the externalId taken (409 `duplicated`), the file is ours —
//! the externalId is derived from our own path — so the create is repeated with
//! `overwrite=true`, which keeps the file id and hands out a new session. That settles
//! a lost reply without a duplicate and without a 409 loop. URLs older than
//! [`URL_MAX_AGE`] are not used: the job gets a fresh session with `multiuploadlink`
//! (or `uploadlink`) for the same file id.

use std::path::Path;
use std::time::Duration;

use crate::cdf::limits::PartPlan;
use crate::cdf::{CdfClient, CdfError, FileCreate, Identity, PutKind, RetryClass};
use crate::fingerprint::Fingerprint;
use crate::store::{Target, Upload};

/// CDF expires upload URLs after a week; stop using them a day before.
pub const URL_MAX_AGE: Duration = Duration::from_secs(6 * 24 * 3600);

/// Quick retries of one part PUT before the job as a whole backs off.
const PUT_ATTEMPTS: u32 = 3;

/// Creates the file (or replaces it with `overwrite`) and opens a session for it.
pub async fn open(
    client: &CdfClient,
    file: &FileCreate,
    plan: Option<PartPlan>,
    overwrite: bool,
    source: Fingerprint,
    now_ms: i64,
) -> Result<Upload, CdfError> {
    match create(client, file, plan, overwrite, source, now_ms).await {
        Err(e) if !overwrite && e.status() == Some(409) => {
            tracing::info!(external_id = ?file.external_id, "file already exists in CDF; replacing it");
            create(client, file, plan, true, source, now_ms).await
        }
        other => other,
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
    let id = Identity::Id(file_id);
    match plan {
        None => {
            let link = client.upload_link(&id).await?;
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
            let session = client.multipart_link(&id, plan.parts).await?;
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

/// One PUT, retried quickly on transient failures (the body is rebuilt from disk for
/// every attempt). A 403/404/410 from storage means the URL is gone; that is returned
/// at once, for the caller to relink.
pub async fn put_with_retries(
    client: &CdfClient,
    url: &str,
    path: &Path,
    offset: u64,
    len: u64,
    kind: &PutKind,
) -> Result<(), CdfError> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let result = client.put_region(url, path, offset, len, kind).await;
        let Err(e) = result else { return Ok(()) };
        let retry = match e.retry_class() {
            RetryClass::Transient => Some(backoff(attempt, None)),
            RetryClass::Throttled { retry_after } => Some(backoff(attempt, retry_after)),
            RetryClass::ReAuth | RetryClass::Permanent => None,
        };
        match retry {
            Some(delay) if attempt < PUT_ATTEMPTS => {
                tracing::debug!(attempt, ?delay, error = %e, "retrying PUT");
                tokio::time::sleep(delay).await;
            }
            _ => return Err(e),
        }
    }
}

/// Full-jitter exponential backoff for the quick tier (200 ms doubling, at most 5 s),
/// or the server's `Retry-After` when it sent one (capped at 60 s).
fn backoff(attempt: u32, retry_after: Option<Duration>) -> Duration {
    if let Some(d) = retry_after {
        return d.min(Duration::from_secs(60));
    }
    let cap = Duration::from_millis(200)
        .saturating_mul(1 << attempt.min(5))
        .min(Duration::from_secs(5));
    cap.mul_f64(fastrand::f64())
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

    #[test]
    fn backoff_honours_retry_after_and_stays_bounded() {
        assert_eq!(
            backoff(1, Some(Duration::from_secs(3))),
            Duration::from_secs(3)
        );
        assert_eq!(
            backoff(1, Some(Duration::from_secs(999))),
            Duration::from_secs(60)
        );
        for attempt in 1..20 {
            assert!(backoff(attempt, None) <= Duration::from_secs(5));
        }
    }
}
