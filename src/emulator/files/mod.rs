//! The Files API metadata endpoints (`/api/v1/projects/{project}/files...`).
//!
//! `create` makes or overwrites files and opens their first upload session, `content`
//! hands out upload and download links and completes multipart uploads, `read`
//! answers `byids`, `list` and `GET files/{id}`, and `update` changes and deletes
//! files. This module holds what they share: the CDF JSON shape of a file and the
//! lookup of `{id}|{externalId}|{instanceId}` references, which hides a CogniteFile
//! from the file service until its propagation lag has passed.

mod content;
mod create;
mod read;
mod update;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::routing::{get, post};
use serde_json::{Map, Value, json};

use super::error::ApiError;
use super::state::{FileRecord, FileTable, InstanceId, SessionKind, State, UploadSession, lock};
use super::upload::staged_blobs;
use super::validate::Identifier;

pub(crate) fn routes() -> Router<Arc<State>> {
    Router::new()
        .route("/files", post(create::init_file_upload))
        .route(
            "/files/initmultipartupload",
            post(create::init_multipart_upload),
        )
        .route("/files/uploadlink", post(content::upload_link))
        .route("/files/multiuploadlink", post(content::multi_upload_link))
        .route("/files/completemultipartupload", post(content::complete))
        .route("/files/downloadlink", post(content::download_link))
        .route("/files/byids", post(read::by_ids))
        .route("/files/list", post(read::list))
        .route("/files/update", post(update::update))
        .route("/files/delete", post(update::delete))
        .route("/files/{id}", get(read::get_one))
}

/// A file as CDF serializes it: camelCase, absent and empty fields left out.
pub(crate) fn file_json(r: &FileRecord, now: i64) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("id".into(), r.id.into());
    put(&mut m, "externalId", r.external_id.clone());
    m.insert("name".into(), r.name.clone().into());
    put(&mut m, "directory", r.directory.clone());
    put(&mut m, "source", r.source.clone());
    put(&mut m, "mimeType", r.mime_type.clone());
    if !r.metadata.is_empty() {
        m.insert("metadata".into(), json!(r.metadata));
    }
    if !r.asset_ids.is_empty() {
        m.insert("assetIds".into(), json!(r.asset_ids));
    }
    put(&mut m, "dataSetId", r.data_set_id);
    put(&mut m, "sourceCreatedTime", r.source_created_time);
    put(&mut m, "sourceModifiedTime", r.source_modified_time);
    if !r.security_categories.is_empty() {
        m.insert("securityCategories".into(), json!(r.security_categories));
    }
    if !r.labels.is_empty() {
        let labels: Vec<Value> = r
            .labels
            .iter()
            .map(|l| json!({ "externalId": l }))
            .collect();
        m.insert("labels".into(), Value::Array(labels));
    }
    put(&mut m, "geoLocation", r.geo_location.clone());
    let uploaded = r.uploaded(now);
    m.insert("uploaded".into(), uploaded.into());
    if uploaded {
        put(&mut m, "uploadedTime", r.uploaded_at);
    }
    m.insert("createdTime".into(), r.created_time.into());
    m.insert("lastUpdatedTime".into(), r.last_updated_time.into());
    put(
        &mut m,
        "instanceId",
        r.instance_id.as_ref().map(|i| json!(i)),
    );
    m
}

fn put<T: Into<Value>>(m: &mut Map<String, Value>, key: &str, value: Option<T>) {
    if let Some(v) = value {
        m.insert(key.to_owned(), v.into());
    }
}

/// Opens a single-part session for a file and returns its upload URL: a GCS resumable
/// session URL with `--gcs-resumable`, a presigned-style PUT URL otherwise.
fn open_single(state: &State, r: &FileRecord) -> String {
    let kind = if state.config.gcs_resumable {
        SessionKind::Gcs {
            received: 0,
            staging: None,
        }
    } else {
        SessionKind::Single
    };
    let token = state.open_session(r.id, r.mime_type.clone(), kind);
    state.single_url(&token)
}

/// Whether the file service has seen the CogniteFile node `id` yet.
pub(crate) fn instance_visible(state: &State, id: &InstanceId) -> bool {
    lock(&state.instance_visible_at)
        .get(id)
        .is_none_or(|at| Instant::now() >= *at)
}

/// Whether a file is visible to the file service (a CogniteFile only after its lag).
fn record_visible(state: &State, r: &FileRecord) -> bool {
    r.instance_id
        .as_ref()
        .is_none_or(|i| instance_visible(state, i))
}

/// Finds the file an identifier names. Lock order: `files` before `instance_visible_at`.
fn find(state: &State, files: &FileTable, ident: &Identifier) -> Option<i64> {
    let id = match ident {
        Identifier::Id(id) => *id,
        Identifier::ExternalId(x) => *files.by_external_id.get(x)?,
        Identifier::InstanceId(i) => *files.by_instance_id.get(i)?,
    };
    files
        .by_id
        .get(&id)
        .filter(|r| record_visible(state, r))
        .map(|r| r.id)
}

/// Resolves every identifier; unknown ones are a 400 with `missing`, or are skipped
/// (`None`) with `ignore_unknown`.
fn resolve_all(
    state: &State,
    files: &FileTable,
    idents: &[Identifier],
    ignore_unknown: bool,
) -> Result<Vec<Option<i64>>, ApiError> {
    let found: Vec<Option<i64>> = idents.iter().map(|i| find(state, files, i)).collect();
    let missing: Vec<Value> = idents
        .iter()
        .zip(&found)
        .filter(|(_, f)| f.is_none())
        .map(|(i, _)| i.to_json())
        .collect();
    if missing.is_empty() || ignore_unknown {
        Ok(found)
    } else {
        Err(ApiError::missing(missing))
    }
}

/// Resolves one identifier to a copy of its file.
fn resolve_one(state: &State, ident: &Identifier) -> Result<FileRecord, ApiError> {
    let files = lock(&state.files);
    find(state, &files, ident)
        .and_then(|id| files.by_id.get(&id).cloned())
        .ok_or_else(|| ApiError::missing(vec![ident.to_json()]))
}

/// Forgets files: their records, their open upload sessions (and staged parts) and
/// their content. Used by `files/delete` and `models/instances/delete`.
pub(crate) fn remove_files(state: &State, ids: &[i64]) {
    let removed: Vec<FileRecord> = {
        let mut files = lock(&state.files);
        ids.iter().filter_map(|id| files.remove(*id)).collect()
    };
    let gone: HashSet<i64> = removed.iter().map(|r| r.id).collect();
    let sessions: Vec<UploadSession> = {
        let mut uploads = lock(&state.uploads);
        let tokens: Vec<String> = uploads
            .iter()
            .filter(|(_, s)| gone.contains(&s.file_id))
            .map(|(t, _)| t.clone())
            .collect();
        tokens.iter().filter_map(|t| uploads.remove(t)).collect()
    };
    for blob in sessions.iter().flat_map(staged_blobs) {
        state.content.release(&blob);
    }
    for record in removed {
        if let Some(blob) = &record.content {
            state.content.release(blob);
        }
    }
}
