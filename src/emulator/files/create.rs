//! `POST files` (initFileUpload) and `POST files/initmultipartupload`: create a file,
//! or overwrite the one with the same externalId when `overwrite=true`, and open its
//! first upload session.
//!
//! Overwrite follows CDF-API.md §0 item 10 and §1.2: the id and `createdTime` stay;
//! `name` and every other field that is sent replace the stored ones (`metadata` in
//! full); `directory` and `source` never change; `assetIds` only when sent. The old
//! content stays downloadable until the new upload completes, but `uploaded` reads
//! false from the overwrite on (inferred: the flag reports the latest upload, so a
//! client cannot mistake the old content for its new one).

use std::sync::Arc;

use axum::Json;
use axum::extract::State as AxState;
use axum::http::StatusCode;
use serde_json::{Value, json};

use super::{file_json, open_single};
use crate::emulator::error::ApiError;
use crate::emulator::state::{FileRecord, SessionKind, State, lock, now_ms};
use crate::emulator::validate::{CdfJson, FileFields, QueryParams, check_create};

/// `POST files?overwrite=`: the bare file object plus `uploadUrl`.
pub(super) async fn init_file_upload(
    AxState(state): AxState<Arc<State>>,
    query: QueryParams,
    CdfJson(fields): CdfJson<FileFields>,
) -> Result<Json<Value>, ApiError> {
    let overwrite = query.flag("overwrite")?;
    let record = create_or_overwrite(&state, fields, overwrite)?;
    let mut file = file_json(&record, now_ms());
    file.insert("uploadUrl".into(), open_single(&state, &record).into());
    Ok(Json(Value::Object(file)))
}

/// `POST files/initmultipartupload?parts=&overwrite=`: 201, the bare file object plus
/// `uploadId` and one URL per part.
pub(super) async fn init_multipart_upload(
    AxState(state): AxState<Arc<State>>,
    query: QueryParams,
    CdfJson(fields): CdfJson<FileFields>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let parts = query.parts()?;
    let overwrite = query.flag("overwrite")?;
    let record = create_or_overwrite(&state, fields, overwrite)?;
    let kind = SessionKind::Multipart {
        parts: vec![None; parts],
    };
    let token = state.open_session(record.id, record.mime_type.clone(), kind);
    let mut file = file_json(&record, now_ms());
    file.insert("uploadUrls".into(), json!(state.part_urls(&token, parts)));
    file.insert("uploadId".into(), token.into());
    Ok((StatusCode::CREATED, Json(Value::Object(file))))
}

/// Validates the body, then creates the file or overwrites the one with its externalId
/// (409 `duplicated` without `overwrite`). Check and insert happen under one lock.
fn create_or_overwrite(
    state: &State,
    fields: FileFields,
    overwrite: bool,
) -> Result<FileRecord, ApiError> {
    check_create(&fields)?;
    let now = now_ms();
    let mut files = lock(&state.files);
    let existing = fields
        .external_id
        .as_ref()
        .and_then(|x| files.by_external_id.get(x).copied());
    let record = match existing.and_then(|id| files.by_id.get(&id)) {
        Some(_) if !overwrite => {
            let x = fields.external_id.unwrap_or_default();
            return Err(ApiError::duplicated(vec![json!({ "externalId": x })]));
        }
        Some(old) => overwritten(old.clone(), fields, now),
        None => {
            if let Some(x) = &fields.external_id {
                state.counters.count_creation(x);
            }
            new_record(state.next_id(), fields, now)
        }
    };
    files.upsert(record.clone());
    Ok(record)
}

fn new_record(id: i64, f: FileFields, now: i64) -> FileRecord {
    let labels = f.label_ids().unwrap_or_default();
    FileRecord {
        id,
        external_id: f.external_id,
        name: f.name.unwrap_or_default(),
        directory: f.directory,
        source: f.source,
        mime_type: f.mime_type,
        metadata: f.metadata.unwrap_or_default(),
        asset_ids: f.asset_ids.unwrap_or_default(),
        data_set_id: f.data_set_id,
        source_created_time: f.source_created_time,
        source_modified_time: f.source_modified_time,
        security_categories: f.security_categories.unwrap_or_default(),
        labels,
        geo_location: f.geo_location,
        created_time: now,
        last_updated_time: now,
        ..FileRecord::default()
    }
}

/// The overwrite rules (see the module doc); content and sessions are untouched.
fn overwritten(mut r: FileRecord, f: FileFields, now: i64) -> FileRecord {
    if let Some(labels) = f.label_ids() {
        r.labels = labels;
    }
    if let Some(name) = f.name {
        r.name = name;
    }
    replace(&mut r.mime_type, f.mime_type);
    if let Some(metadata) = f.metadata {
        r.metadata = metadata;
    }
    if let Some(asset_ids) = f.asset_ids {
        r.asset_ids = asset_ids;
    }
    replace(&mut r.data_set_id, f.data_set_id);
    replace(&mut r.source_created_time, f.source_created_time);
    replace(&mut r.source_modified_time, f.source_modified_time);
    if let Some(categories) = f.security_categories {
        r.security_categories = categories;
    }
    replace(&mut r.geo_location, f.geo_location);
    r.uploaded_at = None;
    r.last_updated_time = now;
    r
}

fn replace<T>(slot: &mut Option<T>, sent: Option<T>) {
    if sent.is_some() {
        *slot = sent;
    }
}
