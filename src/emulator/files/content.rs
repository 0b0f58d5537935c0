//! The content side of the Files API: `uploadlink` and `multiuploadlink` (fresh upload
//! sessions for an existing file, e.g. a CogniteFile), `completemultipartupload`
//! (checks the parts, assembles them in index order and commits the content) and
//! `downloadlink`.
//!
//! A finished session is removed, so completing twice, or with an uploadId that was
//! never issued, is a 400 without `missing` (CDF documents neither; a client must
//! check `byids` after a failed retry, CDF-API.md §1.4).

use std::sync::Arc;
use std::time::Instant;

use axum::Json;
use axum::extract::State as AxState;
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{file_json, lock, open_single, resolve_all, resolve_one};
use crate::emulator::MAX_PART_SIZE;
use crate::emulator::error::ApiError;
use crate::emulator::state::{InstanceId, PartInfo, SessionKind, State, now_ms};
use crate::emulator::storage::StoredBlob;
use crate::emulator::validate::{CdfJson, Identifier, QueryParams, check_item_count};

/// `{"items":[identifier, ...]}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Items {
    items: Vec<Identifier>,
}

impl Items {
    /// The single item `uploadlink` and `multiuploadlink` require.
    fn single(&self) -> Result<&Identifier, ApiError> {
        match self.items.as_slice() {
            [one] => Ok(one),
            other => Err(ApiError::bad_request(format!(
                "items: exactly 1 element is required, got {}",
                other.len()
            ))),
        }
    }
}

/// `POST files/uploadlink`: `{"items":[file + uploadUrl]}`.
pub(super) async fn upload_link(
    AxState(state): AxState<Arc<State>>,
    CdfJson(body): CdfJson<Items>,
) -> Result<Json<Value>, ApiError> {
    let record = resolve_one(&state, body.single()?)?;
    let mut file = file_json(&record, now_ms());
    file.insert("uploadUrl".into(), open_single(&state, &record).into());
    Ok(Json(json!({ "items": [file] })))
}

/// `POST files/multiuploadlink?parts=`: `{"items":[file + uploadId + uploadUrls]}`.
pub(super) async fn multi_upload_link(
    AxState(state): AxState<Arc<State>>,
    query: QueryParams,
    CdfJson(body): CdfJson<Items>,
) -> Result<Json<Value>, ApiError> {
    let parts = query.parts()?;
    let record = resolve_one(&state, body.single()?)?;
    let kind = SessionKind::Multipart {
        parts: vec![None; parts],
    };
    let token = state.open_session(record.id, record.mime_type.clone(), kind);
    let mut file = file_json(&record, now_ms());
    file.insert("uploadUrls".into(), json!(state.part_urls(&token, parts)));
    file.insert("uploadId".into(), token.into());
    Ok(Json(json!({ "items": [file] })))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct Complete {
    id: Option<i64>,
    external_id: Option<String>,
    instance_id: Option<InstanceId>,
    upload_id: String,
}

/// `POST files/completemultipartupload`: `{}` once the parts are assembled and
/// committed as the file's content.
///
/// The work runs on its own task: a client that hangs up (or a connection cut) must
/// not stop a completion half-way, with the session removed and the content not yet
/// committed; CDF finishes what it accepted whether or not the reply is delivered.
pub(super) async fn complete(
    AxState(state): AxState<Arc<State>>,
    CdfJson(body): CdfJson<Complete>,
) -> Result<Json<Value>, ApiError> {
    tokio::spawn(complete_now(state, body))
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
}

async fn complete_now(state: Arc<State>, body: Complete) -> Result<Json<Value>, ApiError> {
    let ident = Identifier::from_parts(body.id, body.external_id, body.instance_id)
        .map_err(ApiError::bad_request)?;
    let file_id = resolve_one(&state, &ident)?.id;
    let parts = take_parts(&state, file_id, &body.upload_id)?;
    let blob = match state.content.concat(parts.clone()).await {
        Ok(blob) => blob,
        Err(e) => {
            parts.iter().for_each(|p| state.content.release(p));
            return Err(ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("Cannot assemble the parts: {e}"),
            ));
        }
    };
    if !state.commit_content(file_id, blob) {
        return Err(ApiError::missing(vec![ident.to_json()]));
    }
    Ok(Json(json!({})))
}

/// Checks the session behind `upload_id` and, if it can complete, removes it and
/// returns its parts in index order. The session stays when a check fails, so the
/// client can re-PUT a part and complete again.
fn take_parts(state: &State, file_id: i64, upload_id: &str) -> Result<Vec<StoredBlob>, ApiError> {
    let mut uploads = lock(&state.uploads);
    let session = uploads.get(upload_id).ok_or_else(|| {
        ApiError::bad_request(format!(
            "uploadId {upload_id:?} is not an open multipart upload (unknown or already completed)"
        ))
    })?;
    if session.file_id != file_id {
        return Err(ApiError::bad_request(format!(
            "uploadId {upload_id:?} does not belong to file {file_id}"
        )));
    }
    if Instant::now() >= session.expires_at {
        return Err(ApiError::bad_request(format!(
            "uploadId {upload_id:?} has expired"
        )));
    }
    let SessionKind::Multipart { parts } = &session.kind else {
        return Err(ApiError::bad_request(format!(
            "uploadId {upload_id:?} is not a multipart upload"
        )));
    };
    check_parts(parts, state.config.min_part_size)?;
    let Some(SessionKind::Multipart { parts }) = uploads.remove(upload_id).map(|s| s.kind) else {
        return Err(ApiError::bad_request("the upload session vanished"));
    };
    Ok(parts.into_iter().flatten().map(|p| p.blob).collect())
}

/// Every part present; each at most 4000 MiB; each but the last at least `min`.
fn check_parts(parts: &[Option<PartInfo>], min: u64) -> Result<(), ApiError> {
    let absent: Vec<usize> = (0..parts.len()).filter(|&i| parts[i].is_none()).collect();
    if !absent.is_empty() {
        return Err(ApiError::bad_request(format!(
            "Not all parts have been uploaded: parts {absent:?} (counting from 0) are missing"
        )));
    }
    let last = parts.len().saturating_sub(1);
    for (i, part) in parts.iter().flatten().enumerate() {
        let size = part.blob.size;
        if size > MAX_PART_SIZE {
            return Err(ApiError::bad_request(format!(
                "Part {i} is {size} bytes; a part must be at most {MAX_PART_SIZE} bytes"
            )));
        }
        if i < last && size < min {
            return Err(ApiError::bad_request(format!(
                "Part {i} is {size} bytes; every part but the last must be at least {min} bytes"
            )));
        }
    }
    Ok(())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct DownloadItems {
    items: Vec<Identifier>,
}

/// `POST files/downloadlink?extendedExpiration=`: one `downloadUrl` per item, echoed
/// with the identifier as given. Only files with content get a link.
pub(super) async fn download_link(
    AxState(state): AxState<Arc<State>>,
    query: QueryParams,
    CdfJson(body): CdfJson<DownloadItems>,
) -> Result<Json<Value>, ApiError> {
    query.flag("extendedExpiration")?;
    check_item_count(body.items.len(), 100)?;
    let files = lock(&state.files);
    let ids = resolve_all(&state, &files, &body.items, false)?;
    let mut items = Vec::with_capacity(ids.len());
    for (ident, id) in body.items.iter().zip(ids.into_iter().flatten()) {
        if files.by_id.get(&id).is_none_or(|r| r.content.is_none()) {
            return Err(ApiError::bad_request(format!(
                "File {} has no content: it has not been uploaded",
                ident.to_json()
            )));
        }
        let mut item = ident.to_json();
        item["downloadUrl"] = format!("{}/download/{id}", state.base_url).into();
        items.push(item);
    }
    Ok(Json(json!({ "items": items })))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(size: u64) -> Option<PartInfo> {
        Some(PartInfo {
            blob: StoredBlob {
                size,
                sha256: None,
                path: None,
            },
        })
    }

    #[test]
    fn part_rules() {
        assert!(check_parts(&[part(10), part(1)], 10).is_ok());
        assert!(check_parts(&[part(9), part(1)], 10).is_err());
        assert!(check_parts(&[part(10), None], 10).is_err());
        assert!(
            check_parts(&[part(0)], 10).is_ok(),
            "a lone last part may be empty"
        );
        assert!(check_parts(&[part(MAX_PART_SIZE + 1)], 10).is_err());
    }
}
