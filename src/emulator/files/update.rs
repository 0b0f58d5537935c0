//! `POST files/update` and `POST files/delete`.
//!
//! An update request is all or nothing: every item is resolved, applied to a copy and
//! checked against the field limits (and externalId uniqueness) before any file
//! changes. `name` is not updatable (CDF-API.md §1.9); a CogniteFile's classic fields
//! are limited to externalId, metadata, assetIds, dataSetId, labels and geoLocation.
//! A CogniteFile is deleted by deleting its node, so `files/delete` refuses it
//! (inferred from CDF-API.md §1.10).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use axum::Json;
use axum::extract::State as AxState;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{file_json, lock, remove_files, resolve_all};
use crate::emulator::error::ApiError;
use crate::emulator::state::{FileRecord, FileTable, InstanceId, State, now_ms};
use crate::emulator::validate::{
    CdfJson, Identifier, LabelRef, MAX_ITEMS, check_item_count, check_record, check_unique,
};

/// `{"set": v}` or `{"setNull": true}`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct SetOp<T> {
    set: Option<T>,
    set_null: Option<bool>,
}

impl<T> SetOp<T> {
    fn apply(self, field: &str, slot: &mut Option<T>) -> Result<(), ApiError> {
        match (self.set, self.set_null) {
            (Some(v), None) => *slot = Some(v),
            (None, Some(true)) => *slot = None,
            _ => return Err(op_error(field, "exactly one of set and setNull: true")),
        }
        Ok(())
    }
}

/// `{"set": [..]}` or `{"add": [..], "remove": [..]}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListOp<T> {
    set: Option<Vec<T>>,
    add: Option<Vec<T>>,
    remove: Option<Vec<T>>,
}

impl<T: PartialEq> ListOp<T> {
    fn apply(self, field: &str, list: &mut Vec<T>) -> Result<(), ApiError> {
        match (self.set, self.add, self.remove) {
            (Some(set), None, None) => *list = set,
            (None, add, remove) if add.is_some() || remove.is_some() => {
                let remove = remove.unwrap_or_default();
                list.retain(|v| !remove.contains(v));
                for v in add.unwrap_or_default() {
                    if !list.contains(&v) {
                        list.push(v);
                    }
                }
            }
            _ => return Err(op_error(field, "either set, or add and/or remove")),
        }
        Ok(())
    }
}

/// Metadata: `{"set": {..}}` or `{"add": {..}, "remove": [keys]}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MapOp {
    set: Option<BTreeMap<String, String>>,
    add: Option<BTreeMap<String, String>>,
    remove: Option<Vec<String>>,
}

impl MapOp {
    fn apply(self, map: &mut BTreeMap<String, String>) -> Result<(), ApiError> {
        match (self.set, self.add, self.remove) {
            (Some(set), None, None) => *map = set,
            (None, add, remove) if add.is_some() || remove.is_some() => {
                remove.unwrap_or_default().iter().for_each(|k| {
                    map.remove(k);
                });
                map.extend(add.unwrap_or_default());
            }
            _ => return Err(op_error("metadata", "either set, or add and/or remove")),
        }
        Ok(())
    }
}

/// Labels: `{"add": [..], "remove": [..]}` only.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LabelOp {
    add: Option<Vec<LabelRef>>,
    remove: Option<Vec<LabelRef>>,
}

fn op_error(field: &str, expected: &str) -> ApiError {
    ApiError::bad_request(format!("update.{field}: expected {expected}"))
}

/// The updatable fields (no `name`: unknown fields are a 400).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct FileUpdate {
    external_id: Option<SetOp<String>>,
    directory: Option<SetOp<String>>,
    source: Option<SetOp<String>>,
    mime_type: Option<SetOp<String>>,
    metadata: Option<MapOp>,
    asset_ids: Option<ListOp<i64>>,
    source_created_time: Option<SetOp<i64>>,
    source_modified_time: Option<SetOp<i64>>,
    data_set_id: Option<SetOp<i64>>,
    security_categories: Option<ListOp<i64>>,
    labels: Option<LabelOp>,
    geo_location: Option<SetOp<Value>>,
}

impl FileUpdate {
    /// Fields a CogniteFile does not let the Files API change.
    fn dm_only_fields(&self) -> Vec<&'static str> {
        [
            ("directory", self.directory.is_some()),
            ("source", self.source.is_some()),
            ("mimeType", self.mime_type.is_some()),
            ("sourceCreatedTime", self.source_created_time.is_some()),
            ("sourceModifiedTime", self.source_modified_time.is_some()),
            ("securityCategories", self.security_categories.is_some()),
        ]
        .into_iter()
        .filter_map(|(name, given)| given.then_some(name))
        .collect()
    }

    fn apply(self, r: &mut FileRecord) -> Result<(), ApiError> {
        let set = |op: Option<SetOp<String>>, f: &str, slot: &mut Option<String>| {
            op.map_or(Ok(()), |op| op.apply(f, slot))
        };
        set(self.external_id, "externalId", &mut r.external_id)?;
        set(self.directory, "directory", &mut r.directory)?;
        set(self.source, "source", &mut r.source)?;
        set(self.mime_type, "mimeType", &mut r.mime_type)?;
        if let Some(op) = self.metadata {
            op.apply(&mut r.metadata)?;
        }
        let times = [
            (
                self.source_created_time,
                "sourceCreatedTime",
                &mut r.source_created_time,
            ),
            (
                self.source_modified_time,
                "sourceModifiedTime",
                &mut r.source_modified_time,
            ),
            (self.data_set_id, "dataSetId", &mut r.data_set_id),
        ];
        for (op, field, slot) in times {
            op.map_or(Ok(()), |op| op.apply(field, slot))?;
        }
        if let Some(op) = self.asset_ids {
            op.apply("assetIds", &mut r.asset_ids)?;
        }
        if let Some(op) = self.security_categories {
            op.apply("securityCategories", &mut r.security_categories)?;
        }
        if let Some(op) = self.labels {
            let ids = |l: Option<Vec<LabelRef>>| {
                l.map(|l| l.into_iter().map(|l| l.external_id).collect())
            };
            let op = ListOp {
                set: None,
                add: ids(op.add),
                remove: ids(op.remove),
            };
            op.apply("labels", &mut r.labels)?;
        }
        if let Some(op) = self.geo_location {
            op.apply("geoLocation", &mut r.geo_location)?;
        }
        Ok(())
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct UpdateItem {
    id: Option<i64>,
    external_id: Option<String>,
    instance_id: Option<InstanceId>,
    update: FileUpdate,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct UpdateBody {
    items: Vec<UpdateItem>,
}

/// `POST files/update`: the updated files, in request order.
pub(super) async fn update(
    AxState(state): AxState<Arc<State>>,
    CdfJson(body): CdfJson<UpdateBody>,
) -> Result<Json<Value>, ApiError> {
    check_item_count(body.items.len(), MAX_ITEMS)?;
    let mut idents = Vec::with_capacity(body.items.len());
    let mut updates = Vec::with_capacity(body.items.len());
    for item in body.items {
        let ident = Identifier::from_parts(item.id, item.external_id, item.instance_id)
            .map_err(ApiError::bad_request)?;
        idents.push(ident);
        updates.push(item.update);
    }
    check_unique(&idents)?;
    let now = now_ms();
    let mut files = lock(&state.files);
    let ids: Vec<i64> = resolve_all(&state, &files, &idents, false)?
        .into_iter()
        .flatten()
        .collect();
    let mut changed = Vec::with_capacity(ids.len());
    for (id, upd) in ids.iter().zip(updates) {
        let mut record = files
            .by_id
            .get(id)
            .cloned()
            .ok_or_else(|| ApiError::missing(vec![json!({ "id": id })]))?;
        if record.instance_id.is_some() && !upd.dm_only_fields().is_empty() {
            return Err(ApiError::bad_request(format!(
                "File {id} is a CogniteFile: {:?} can only be changed through data modeling",
                upd.dm_only_fields()
            )));
        }
        upd.apply(&mut record)?;
        check_record(&record)?;
        record.last_updated_time = now;
        changed.push(record);
    }
    check_external_ids(&files, &changed)?;
    let items: Vec<Value> = changed
        .iter()
        .map(|r| Value::Object(file_json(r, now)))
        .collect();
    changed.into_iter().for_each(|r| files.upsert(r));
    Ok(Json(json!({ "items": items })))
}

/// An externalId may belong to one file only (409 `duplicated`): checked against the
/// table as it will be after the batch, where the batch's old externalIds are free.
fn check_external_ids(files: &FileTable, changed: &[FileRecord]) -> Result<(), ApiError> {
    let freed: HashSet<&str> = changed
        .iter()
        .filter_map(|r| files.by_id.get(&r.id)?.external_id.as_deref())
        .collect();
    let mut claimed: HashMap<&str, i64> = HashMap::new();
    let mut dups = Vec::new();
    for r in changed {
        let Some(x) = r.external_id.as_deref() else {
            continue;
        };
        let stored = files.by_external_id.get(x).filter(|_| !freed.contains(x));
        let batch = claimed.insert(x, r.id);
        if stored
            .into_iter()
            .chain(batch.as_ref())
            .any(|&other| other != r.id)
        {
            dups.push(json!({ "externalId": x }));
        }
    }
    if dups.is_empty() {
        Ok(())
    } else {
        Err(ApiError::duplicated(dups))
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct DeleteBody {
    items: Vec<Identifier>,
    #[serde(default)]
    ignore_unknown_ids: bool,
}

/// `POST files/delete`: `{}`; content and open upload sessions go with the files.
pub(super) async fn delete(
    AxState(state): AxState<Arc<State>>,
    CdfJson(body): CdfJson<DeleteBody>,
) -> Result<Json<Value>, ApiError> {
    check_item_count(body.items.len(), MAX_ITEMS)?;
    check_unique(&body.items)?;
    let ids: Vec<i64> = {
        let files = lock(&state.files);
        let ids: Vec<i64> = resolve_all(&state, &files, &body.items, body.ignore_unknown_ids)?
            .into_iter()
            .flatten()
            .collect();
        if let Some(r) = ids
            .iter()
            .filter_map(|id| files.by_id.get(id))
            .find(|r| r.instance_id.is_some())
        {
            return Err(ApiError::bad_request(format!(
                "File {} is a CogniteFile; delete its node through models/instances/delete",
                r.id
            )));
        }
        ids
    };
    remove_files(&state, &ids);
    Ok(Json(json!({})))
}
