//! `POST models/instances`: writes CogniteFile nodes and keeps their files in step.
//!
//! A request is checked whole before anything is written: node ids, the view, every
//! property's type, duplicates. Version conflicts (`existingVersion`; 0 means
//! insert-only) fail the request unless `skipOnVersionConflict`. A node's version
//! moves only when its data changes (`wasModified`). Without `replace` the written
//! properties are merged into the stored ones.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use axum::Json;
use axum::extract::State as AxState;
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::time::{format_timestamp, parse_timestamp};
use super::views::ViewId;
use super::{NodeRecord, ViewRef};
use crate::emulator::error::ApiError;
use crate::emulator::state::{FileRecord, InstanceId, State, lock, now_ms};
use crate::emulator::validate::{CdfJson, MAX_ITEMS, check_item_count, check_len};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SourceData {
    source: ViewRef,
    properties: Map<String, Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct NodeWrite {
    instance_type: String,
    space: String,
    external_id: String,
    existing_version: Option<i64>,
    #[serde(default)]
    sources: Vec<SourceData>,
    #[serde(rename = "type")]
    _node_type: Option<Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct ApplyBody {
    items: Vec<NodeWrite>,
    #[serde(rename = "autoCreateDirectRelations")]
    _auto_create_direct_relations: Option<bool>,
    #[serde(rename = "autoCreateStartNodes")]
    _auto_create_start_nodes: Option<bool>,
    #[serde(rename = "autoCreateEndNodes")]
    _auto_create_end_nodes: Option<bool>,
    #[serde(default)]
    skip_on_version_conflict: bool,
    #[serde(default)]
    replace: bool,
}

/// One checked node write.
struct Prepared {
    id: InstanceId,
    existing_version: Option<i64>,
    /// Normalized CogniteFile properties; `None` when the write names no source.
    props: Option<Map<String, Value>>,
}

/// `POST models/instances`: upserts nodes (all or nothing, except version conflicts
/// with `skipOnVersionConflict`) and their files.
pub(super) async fn apply(
    AxState(state): AxState<Arc<State>>,
    CdfJson(body): CdfJson<ApplyBody>,
) -> Result<Json<Value>, ApiError> {
    check_item_count(body.items.len(), MAX_ITEMS)?;
    let writes = body
        .items
        .into_iter()
        .map(|item| prepare(item, &state.config.file_views))
        .collect::<Result<Vec<_>, _>>()?;
    check_unique(writes.iter().map(|w| &w.id))?;
    let now = now_ms();
    let flags = Flags {
        replace: body.replace,
        skip_on_version_conflict: body.skip_on_version_conflict,
    };
    let (results, changed) = write_nodes(&state, writes, &flags, now)?;
    for (id, props) in &changed {
        sync_file(&state, id, props, now);
    }
    Ok(Json(json!({ "items": results })))
}

struct Flags {
    replace: bool,
    skip_on_version_conflict: bool,
}

fn prepare(item: NodeWrite, declared: &[ViewId]) -> Result<Prepared, ApiError> {
    if item.instance_type != "node" {
        return Err(ApiError::bad_request(format!(
            "instanceType {:?} is not supported: the emulator stores nodes only",
            item.instance_type
        )));
    }
    check_space(&item.space)?;
    check_len("externalId", &item.external_id, 1, 255)?;
    let mut props: Option<Map<String, Value>> = None;
    for source in item.sources {
        let (view, kind) = source.source.check(declared)?;
        let merged = props.get_or_insert_with(Map::new);
        for (key, value) in source.properties {
            if !kind.has_property(&key) {
                return Err(ApiError::bad_request(format!(
                    "Property {key:?} does not exist in view {view}"
                )));
            }
            let value = normalize(&key, value)?;
            merged.insert(key, value);
        }
    }
    Ok(Prepared {
        id: InstanceId {
            space: item.space,
            external_id: item.external_id,
        },
        existing_version: item.existing_version,
        props,
    })
}

/// A space id as DMS allows it: a letter, then letters, digits, `_` or `-`; at most
/// 43 characters; the `cdf_` system spaces are read-only.
fn check_space(space: &str) -> Result<(), ApiError> {
    let valid = space
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic())
        && space.len() <= 43
        && space
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if !valid {
        return Err(ApiError::bad_request(format!(
            "space {space:?} is not a valid space id"
        )));
    }
    if space.starts_with("cdf_") {
        return Err(ApiError::forbidden(format!(
            "space {space:?} is a system space and cannot be written to"
        )));
    }
    Ok(())
}

/// Checks one property of CogniteFile (or CogniteExtractorFile's `extractedData`)
/// against its type and returns it normalized.
fn normalize(key: &str, value: Value) -> Result<Value, ApiError> {
    let bad = |expected: &str| {
        ApiError::bad_request(format!(
            "CogniteFile property {key:?}: expected {expected}, got {value}"
        ))
    };
    if value.is_null() {
        return Ok(Value::Null);
    }
    let ok = match key {
        "name" | "description" | "sourceId" | "sourceContext" | "sourceCreatedUser"
        | "sourceUpdatedUser" | "mimeType" | "directory" => value.is_string(),
        "tags" | "aliases" => value
            .as_array()
            .is_some_and(|a| a.len() <= 1000 && a.iter().all(Value::is_string)),
        "source" | "category" => is_relation(&value),
        "assets" => value.as_array().is_some_and(|a| a.iter().all(is_relation)),
        "sourceCreatedTime" | "sourceUpdatedTime" => {
            let ms = value.as_str().and_then(parse_timestamp);
            return ms
                .map(|ms| format_timestamp(ms).into())
                .ok_or_else(|| bad("an ISO-8601 timestamp string"));
        }
        "extractedData" => value
            .as_object()
            .is_some_and(|m| m.values().all(Value::is_string)),
        "isUploaded" | "uploadedTime" => {
            return Err(ApiError::bad_request(format!(
                "CogniteFile property {key:?} is read-only"
            )));
        }
        _ => {
            return Err(ApiError::bad_request(format!(
                "Property {key:?} does not exist in view cdf_cdm:CogniteFile/v1"
            )));
        }
    };
    if ok {
        Ok(value)
    } else {
        Err(bad(match key {
            "tags" | "aliases" => "a list of at most 1000 strings",
            "source" | "category" => "a direct relation {\"space\",\"externalId\"}",
            "assets" => "a list of direct relations",
            "extractedData" => "a map of strings",
            _ => "a string",
        }))
    }
}

fn is_relation(v: &Value) -> bool {
    v.as_object().is_some_and(|o| {
        o.len() == 2
            && o.get("space").is_some_and(Value::is_string)
            && o.get("externalId").is_some_and(Value::is_string)
    })
}

/// The same node twice in one request is a 400 with `duplicated`.
fn check_unique<'a>(ids: impl Iterator<Item = &'a InstanceId>) -> Result<(), ApiError> {
    let mut seen = HashSet::new();
    let dups: Vec<Value> = ids
        .filter(|id| !seen.insert(*id))
        .map(|id| json!({ "space": id.space, "externalId": id.external_id }))
        .collect();
    if dups.is_empty() {
        return Ok(());
    }
    Err(ApiError {
        duplicated: dups,
        ..ApiError::bad_request("Duplicate instances in the request")
    })
}

type Changed = Vec<(InstanceId, Map<String, Value>)>;

/// Writes the nodes under one lock; returns the apply results and the file nodes
/// whose CogniteFile data changed.
fn write_nodes(
    state: &State,
    writes: Vec<Prepared>,
    flags: &Flags,
    now: i64,
) -> Result<(Vec<Value>, Changed), ApiError> {
    let mut nodes = lock(&state.nodes);
    let conflicts: HashSet<InstanceId> = writes
        .iter()
        .filter(|w| version_conflict(nodes.get(&w.id), w.existing_version))
        .map(|w| w.id.clone())
        .collect();
    if !conflicts.is_empty() && !flags.skip_on_version_conflict {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!(
                "Version conflict on {} node(s); nothing was written",
                conflicts.len()
            ),
        ));
    }
    let mut results = Vec::with_capacity(writes.len());
    let mut changed = Vec::new();
    for w in writes.into_iter().filter(|w| !conflicts.contains(&w.id)) {
        let node = write_node(&mut nodes, &w, flags.replace, now);
        let modified = nodes.get(&w.id).is_none_or(|n| n.version != node.version);
        results.push(json!({
            "instanceType": "node",
            "space": w.id.space,
            "externalId": w.id.external_id,
            "version": node.version,
            "wasModified": modified,
            "createdTime": node.created_time,
            "lastUpdatedTime": node.last_updated_time,
        }));
        if let (true, Some(props)) = (modified, &node.file_props) {
            changed.push((w.id.clone(), props.clone()));
        }
        nodes.insert(w.id, node);
    }
    Ok((results, changed))
}

/// `existingVersion` 0 means insert-only; otherwise a stored newer version conflicts.
fn version_conflict(existing: Option<&NodeRecord>, expected: Option<i64>) -> bool {
    match (existing, expected) {
        (Some(_), Some(0)) => true,
        (Some(node), Some(v)) => node.version > v,
        _ => false,
    }
}

/// The node after this write (not yet stored); its version moves only on a change.
fn write_node(
    nodes: &mut HashMap<InstanceId, NodeRecord>,
    w: &Prepared,
    replace: bool,
    now: i64,
) -> NodeRecord {
    let old = nodes.get(&w.id);
    let props = match (old.and_then(|n| n.file_props.clone()), w.props.clone()) {
        (old_props, None) => old_props,
        (Some(mut old_props), Some(new)) if !replace => {
            old_props.extend(new);
            Some(old_props)
        }
        (_, Some(new)) => Some(new),
    };
    match old {
        None => NodeRecord {
            version: 1,
            created_time: now,
            last_updated_time: now,
            file_props: props,
        },
        Some(n) if n.file_props == props => n.clone(),
        Some(n) => NodeRecord {
            version: n.version + 1,
            created_time: n.created_time,
            last_updated_time: now,
            file_props: props,
        },
    }
}

/// Creates or updates the file of a file node. A new file becomes visible to the
/// Files API only after the propagation lag (lock order: files, then visibility).
fn sync_file(state: &State, id: &InstanceId, props: &Map<String, Value>, now: i64) {
    let text = |k: &str| props.get(k).and_then(Value::as_str).map(str::to_owned);
    let time = |k: &str| {
        props
            .get(k)
            .and_then(Value::as_str)
            .and_then(parse_timestamp)
    };
    let mut files = lock(&state.files);
    let existing = files
        .by_instance_id
        .get(id)
        .and_then(|fid| files.by_id.get(fid))
        .cloned();
    let is_new = existing.is_none();
    let mut r = existing.unwrap_or_else(|| FileRecord {
        id: state.next_id(),
        instance_id: Some(id.clone()),
        created_time: now,
        ..FileRecord::default()
    });
    r.name = text("name").unwrap_or_default();
    r.directory = text("directory");
    r.mime_type = text("mimeType");
    r.source_created_time = time("sourceCreatedTime");
    r.source_modified_time = time("sourceUpdatedTime");
    r.last_updated_time = now;
    if is_new {
        state.counters.count_creation(&id.external_id);
        let visible_at = Instant::now() + state.config.dm_propagation_lag;
        lock(&state.instance_visible_at).insert(id.clone(), visible_at);
    }
    files.upsert(r);
}
