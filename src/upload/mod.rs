//! Uploading one file's content to CDF: the sequence of calls for a whole file.
//!
//! Empty files go single-part (`POST files` + a `Content-Length: 0` PUT: not every
//! cloud accepts an empty multipart session); everything else goes multipart
//! (`initmultipartupload`, part PUTs with bounded parallelism in any order,
//! `completemultipartupload`). This first version has no checkpoints: the job store
//! (sync-pipeline issue) records parts as they finish and resumes from them.

pub mod finish;
pub mod session;

use std::path::{Path, PathBuf};

use futures_util::{StreamExt, TryStreamExt};

use crate::cdf::limits::{self, PartPlan, TooLarge};
use crate::cdf::{CdfClient, CdfError, FileCreate, FileObject, PutKind};

/// One file to upload, with the CDF metadata it maps to.
#[derive(Debug, Clone)]
pub struct UploadRequest {
    pub path: PathBuf,
    /// The size the upload is planned for (taken when the file was found stable).
    pub size: u64,
    pub file: FileCreate,
    /// Replace an existing file with the same externalId.
    pub overwrite: bool,
    /// Configured part size (`None` = auto).
    pub part_size: Option<u64>,
    /// CDF's minimum part size (lowered only against a test emulator).
    pub min_part_size: u64,
    pub max_parallel_parts: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    #[error("{}: {source}", path.display())]
    TooLarge { path: PathBuf, source: TooLarge },
    #[error("{}: {source}", path.display())]
    Cdf { path: PathBuf, source: CdfError },
    #[error("{}: CDF returned {got} upload URLs for {want} parts", path.display())]
    WrongUrlCount {
        path: PathBuf,
        want: u64,
        got: usize,
    },
}

/// Uploads a whole file; returns the CDF file (its `uploaded` flag may lag).
pub async fn upload_whole(
    client: &CdfClient,
    req: &UploadRequest,
) -> Result<FileObject, UploadError> {
    let cdf = |source| UploadError::Cdf {
        path: req.path.clone(),
        source,
    };
    if req.size == 0 {
        let created = client
            .create_file(&req.file, req.overwrite)
            .await
            .map_err(cdf)?;
        let kind = PutKind::Single {
            mime_type: req
                .file
                .mime_type
                .clone()
                .unwrap_or_else(|| "application/octet-stream".to_owned()),
        };
        client
            .put_region(&created.upload_url, &req.path, 0, 0, &kind)
            .await
            .map_err(cdf)?;
        return Ok(created.file);
    }
    let plan = limits::plan(req.size, req.part_size, req.min_part_size).map_err(|source| {
        UploadError::TooLarge {
            path: req.path.clone(),
            source,
        }
    })?;
    let session = client
        .init_multipart(&req.file, plan.parts, req.overwrite)
        .await
        .map_err(cdf)?;
    if session.upload_urls.len() as u64 != plan.parts {
        return Err(UploadError::WrongUrlCount {
            path: req.path.clone(),
            want: plan.parts,
            got: session.upload_urls.len(),
        });
    }
    put_parts(
        client,
        &req.path,
        req.size,
        plan,
        &session.upload_urls,
        req.max_parallel_parts,
    )
    .await
    .map_err(cdf)?;
    client
        .complete_multipart(session.file.id, &session.upload_id)
        .await
        .map_err(cdf)?;
    Ok(session.file)
}

/// PUTs every part, at most `parallel` at a time, in any order.
async fn put_parts(
    client: &CdfClient,
    path: &Path,
    size: u64,
    plan: PartPlan,
    urls: &[String],
    parallel: usize,
) -> Result<(), CdfError> {
    futures_util::stream::iter(urls.iter().enumerate())
        .map(|(index, url)| {
            let (offset, len) = plan.range(index as u64, size);
            async move {
                client
                    .put_region(url, path, offset, len, &PutKind::Part)
                    .await
            }
        })
        .buffer_unordered(parallel.max(1))
        .try_collect::<Vec<()>>()
        .await
        .map(drop)
}

/// The `POST files` body for a mapped local file. `modified_ms` is the file's mtime,
/// sent as `sourceCreatedTime`/`sourceModifiedTime`. `data_set_id` is the root's data
/// set, resolved once by the caller when it was given by externalId.
pub fn file_create(
    mapped: &crate::mapping::CdfFile<'_>,
    modified_ms: Option<i64>,
    data_set_id: Option<i64>,
) -> FileCreate {
    let fields = mapped.fields;
    FileCreate {
        name: mapped.name.clone(),
        external_id: Some(mapped.external_id.clone()),
        directory: Some(mapped.directory.clone()),
        source: fields.source.clone(),
        mime_type: Some(mapped.mime_type.to_owned()),
        metadata: fields.metadata.clone(),
        asset_ids: fields.asset_ids.clone(),
        data_set_id,
        source_created_time: modified_ms,
        source_modified_time: modified_ms,
        security_categories: fields.security_categories.clone(),
        labels: fields
            .labels
            .iter()
            .map(|l| crate::cdf::LabelRef {
                external_id: l.clone(),
            })
            .collect(),
    }
}
