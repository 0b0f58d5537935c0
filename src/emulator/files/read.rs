//! Reading files: `POST files/byids`, `POST files/list` (filters, `limit`, an opaque
//! cursor and `partition`) and `GET files/{id}`.
//!
//! `list` walks files in id order, so paging with `nextCursor` is stable while files
//! are added; a cursor is "continue after this id". A CogniteFile stays out of every
//! answer until its propagation lag has passed.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::RawPathParamsRejection;
use axum::extract::{RawPathParams, State as AxState};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{file_json, record_visible, resolve_all, resolve_one};
use crate::emulator::error::ApiError;
use crate::emulator::state::{FileRecord, State, lock, now_ms};
use crate::emulator::validate::{
    CdfJson, Identifier, LabelRef, MAX_ID, MAX_ITEMS, check_item_count, check_unique,
};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct ByIds {
    items: Vec<Identifier>,
    #[serde(default)]
    ignore_unknown_ids: bool,
}

/// `POST files/byids`: the files in request order; unknown ones are a 400 with
/// `missing` unless `ignoreUnknownIds`.
pub(super) async fn by_ids(
    AxState(state): AxState<Arc<State>>,
    CdfJson(body): CdfJson<ByIds>,
) -> Result<Json<Value>, ApiError> {
    check_item_count(body.items.len(), MAX_ITEMS)?;
    check_unique(&body.items)?;
    let now = now_ms();
    let files = lock(&state.files);
    let ids = resolve_all(&state, &files, &body.items, body.ignore_unknown_ids)?;
    let items: Vec<Value> = ids
        .into_iter()
        .flatten()
        .filter_map(|id| files.by_id.get(&id))
        .map(|r| Value::Object(file_json(r, now)))
        .collect();
    Ok(Json(json!({ "items": items })))
}

/// `GET files/{id}`: one file, or a 400 with `missing`.
pub(super) async fn get_one(
    AxState(state): AxState<Arc<State>>,
    params: Result<RawPathParams, RawPathParamsRejection>,
) -> Result<Json<Value>, ApiError> {
    let params = params.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let raw = params
        .iter()
        .find(|(k, _)| *k == "id")
        .map_or("", |(_, v)| v);
    let id = raw
        .parse::<i64>()
        .ok()
        .filter(|id| (1..=MAX_ID).contains(id))
        .ok_or_else(|| ApiError::bad_request(format!("Invalid file id {raw:?}")))?;
    let record = resolve_one(&state, &Identifier::Id(id))?;
    Ok(Json(Value::Object(file_json(&record, now_ms()))))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct ListBody {
    #[serde(default)]
    filter: Filter,
    limit: Option<i64>,
    cursor: Option<String>,
    partition: Option<String>,
}

/// `{"min","max"}`, both inclusive.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Range {
    min: Option<i64>,
    max: Option<i64>,
}

impl Range {
    fn contains(&self, value: Option<i64>) -> bool {
        value.is_some_and(|v| self.min.is_none_or(|m| v >= m) && self.max.is_none_or(|m| v <= m))
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct IdRef {
    id: Option<i64>,
    external_id: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct LabelFilter {
    contains_all: Option<Vec<LabelRef>>,
    contains_any: Option<Vec<LabelRef>>,
}

/// The filter keys of `files/list`; the last three are CDF's but not emulated.
#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Filter {
    name: Option<String>,
    mime_type: Option<String>,
    metadata: Option<BTreeMap<String, String>>,
    source: Option<String>,
    directory_prefix: Option<String>,
    external_id_prefix: Option<String>,
    uploaded: Option<bool>,
    data_set_ids: Option<Vec<IdRef>>,
    asset_ids: Option<Vec<i64>>,
    labels: Option<LabelFilter>,
    created_time: Option<Range>,
    last_updated_time: Option<Range>,
    uploaded_time: Option<Range>,
    source_created_time: Option<Range>,
    source_modified_time: Option<Range>,
    asset_external_ids: Option<Value>,
    asset_subtree_ids: Option<Value>,
    geo_location: Option<Value>,
}

/// `POST files/list`: up to `limit` (default 100, at most 1000) matching files in id
/// order, and `nextCursor` when more match.
pub(super) async fn list(
    AxState(state): AxState<Arc<State>>,
    CdfJson(body): CdfJson<ListBody>,
) -> Result<Json<Value>, ApiError> {
    let requested = body.limit.unwrap_or(100);
    let limit = usize::try_from(requested)
        .ok()
        .filter(|n| (1..=1000).contains(n))
        .ok_or_else(|| {
            ApiError::bad_request(format!(
                "limit: must be between 1 and 1000, got {requested}"
            ))
        })?;
    let data_sets = check_filter(&body.filter)?;
    let after = body.cursor.as_deref().map(decode_cursor).transpose()?;
    let partition = body.partition.as_deref().map(parse_partition).transpose()?;
    let now = now_ms();
    let files = lock(&state.files);
    let start = after.map_or(Bound::Unbounded, Bound::Excluded);
    let mut page: Vec<&FileRecord> = files
        .by_id
        .range((start, Bound::Unbounded))
        .map(|(_, r)| r)
        .filter(|r| partition.is_none_or(|(m, n)| r.id.rem_euclid(n) == m - 1))
        .filter(|r| matches(&body.filter, &data_sets, r, now) && record_visible(&state, r))
        .take(limit + 1)
        .collect();
    let more = page.len() > limit;
    page.truncate(limit);
    let items: Vec<Value> = page
        .iter()
        .map(|r| Value::Object(file_json(r, now)))
        .collect();
    let mut reply = json!({ "items": items });
    if let (true, Some(last)) = (more, page.last()) {
        reply["nextCursor"] = encode_cursor(last.id).into();
    }
    Ok(Json(reply))
}

/// Rejects the filters the emulator does not implement; returns the dataSetIds.
fn check_filter(f: &Filter) -> Result<Vec<i64>, ApiError> {
    let unsupported = [
        ("assetExternalIds", f.asset_external_ids.is_some()),
        ("assetSubtreeIds", f.asset_subtree_ids.is_some()),
        ("geoLocation", f.geo_location.is_some()),
    ];
    if let Some((key, _)) = unsupported.iter().find(|(_, given)| *given) {
        return Err(ApiError::bad_request(format!(
            "filter.{key} is not supported by the emulator"
        )));
    }
    let refs = f.data_set_ids.as_deref().unwrap_or_default();
    refs.iter()
        .map(|r| match (r.id, &r.external_id) {
            (Some(id), None) => Ok(id),
            (None, Some(_)) => Err(ApiError::bad_request(
                "filter.dataSetIds: only {\"id\"} references are supported by the emulator",
            )),
            _ => Err(ApiError::bad_request(
                "filter.dataSetIds: each item needs exactly one of id and externalId",
            )),
        })
        .collect()
}

fn matches(f: &Filter, data_sets: &[i64], r: &FileRecord, now: i64) -> bool {
    let eq = |want: &Option<String>, have: &Option<String>| want.is_none() || want == have;
    let prefix = |want: &Option<String>, have: &Option<String>| {
        want.as_ref()
            .is_none_or(|p| have.as_ref().is_some_and(|h| h.starts_with(p.as_str())))
    };
    let range =
        |want: &Option<Range>, have: Option<i64>| want.as_ref().is_none_or(|w| w.contains(have));
    f.name.as_ref().is_none_or(|n| *n == r.name)
        && eq(&f.mime_type, &r.mime_type)
        && eq(&f.source, &r.source)
        && prefix(&f.directory_prefix, &r.directory)
        && prefix(&f.external_id_prefix, &r.external_id)
        && f.uploaded.is_none_or(|u| u == r.uploaded(now))
        && (f.data_set_ids.is_none() || r.data_set_id.is_some_and(|d| data_sets.contains(&d)))
        && f.metadata
            .as_ref()
            .is_none_or(|m| m.iter().all(|(k, v)| r.metadata.get(k) == Some(v)))
        && f.asset_ids
            .as_ref()
            .is_none_or(|a| a.iter().any(|id| r.asset_ids.contains(id)))
        && f.labels.as_ref().is_none_or(|l| labels_match(l, &r.labels))
        && range(&f.created_time, Some(r.created_time))
        && range(&f.last_updated_time, Some(r.last_updated_time))
        && range(&f.uploaded_time, r.uploaded_at.filter(|_| r.uploaded(now)))
        && range(&f.source_created_time, r.source_created_time)
        && range(&f.source_modified_time, r.source_modified_time)
}

fn labels_match(f: &LabelFilter, labels: &[String]) -> bool {
    let has = |l: &LabelRef| labels.contains(&l.external_id);
    f.contains_all
        .as_ref()
        .is_none_or(|all| all.iter().all(has))
        && f.contains_any
            .as_ref()
            .is_none_or(|any| any.iter().any(has))
}

const CURSOR_PREFIX: &str = "emu1.";

fn encode_cursor(last_id: i64) -> String {
    format!("{CURSOR_PREFIX}{last_id:x}")
}

fn decode_cursor(cursor: &str) -> Result<i64, ApiError> {
    cursor
        .strip_prefix(CURSOR_PREFIX)
        .and_then(|hex| i64::from_str_radix(hex, 16).ok())
        .ok_or_else(|| ApiError::bad_request(format!("Invalid cursor {cursor:?}")))
}

/// `"m/n"` with 1 <= m <= n <= 10.
fn parse_partition(p: &str) -> Result<(i64, i64), ApiError> {
    let parsed = p
        .split_once('/')
        .and_then(|(m, n)| Some((m.parse::<i64>().ok()?, n.parse::<i64>().ok()?)))
        .filter(|&(m, n)| (1..=10).contains(&n) && (1..=n).contains(&m));
    parsed.ok_or_else(|| {
        ApiError::bad_request(format!(
            "partition: expected \"m/n\" with 1 <= m <= n <= 10, got {p:?}"
        ))
    })
}
