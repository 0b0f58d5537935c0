//! `POST datasets` and `POST datasets/byids`: just enough of the Data Sets API for a
//! client to turn a data set's externalId into the id that files carry.
//!
//! A data set is `{id, externalId?, name?, writeProtected: false, createdTime,
//! lastUpdatedTime}`. Unknown identifiers in `byids` get CDF's 400 with `missing`
//! unless `ignoreUnknownIds`; a duplicate externalId on create gets 409 `duplicated`.

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::State as AxState;
use axum::routing::post;
use serde::Deserialize;
use serde_json::{Value, json};

use super::error::ApiError;
use super::state::{State, lock, now_ms};
use super::validate::{CdfJson, MAX_ITEMS, check_item_count, check_len};

pub(crate) fn routes() -> Router<Arc<State>> {
    Router::new()
        .route("/datasets", post(create))
        .route("/datasets/byids", post(by_ids))
}

/// One data set as stored.
#[derive(Debug, Clone)]
pub(crate) struct DataSet {
    pub id: i64,
    pub external_id: Option<String>,
    pub name: Option<String>,
    pub created_time: i64,
}

impl DataSet {
    fn json(&self) -> Value {
        let mut v = json!({
            "id": self.id,
            "writeProtected": false,
            "metadata": {},
            "createdTime": self.created_time,
            "lastUpdatedTime": self.created_time,
        });
        if let Some(x) = &self.external_id {
            v["externalId"] = x.clone().into();
        }
        if let Some(n) = &self.name {
            v["name"] = n.clone().into();
        }
        v
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct NewDataSet {
    external_id: Option<String>,
    name: Option<String>,
    description: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Create {
    items: Vec<NewDataSet>,
}

async fn create(
    AxState(state): AxState<Arc<State>>,
    CdfJson(body): CdfJson<Create>,
) -> Result<Json<Value>, ApiError> {
    check_item_count(body.items.len(), MAX_ITEMS)?;
    let mut sets = lock(&state.datasets);
    let taken: Vec<Value> = body
        .items
        .iter()
        .filter_map(|d| d.external_id.as_ref())
        .filter(|x| sets.iter().any(|s| s.external_id.as_ref() == Some(*x)))
        .map(|x| json!({ "externalId": x }))
        .collect();
    if !taken.is_empty() {
        return Err(ApiError::duplicated(taken));
    }
    let mut out = Vec::with_capacity(body.items.len());
    for d in body.items {
        if let Some(x) = &d.external_id {
            check_len("externalId", x, 1, 255)?;
        }
        let _ = d.description;
        let set = DataSet {
            id: state.next_id(),
            external_id: d.external_id,
            name: d.name,
            created_time: now_ms(),
        };
        out.push(set.json());
        sets.push(set);
    }
    Ok(Json(json!({ "items": out })))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ByIds {
    items: Vec<Value>,
    #[serde(default)]
    ignore_unknown_ids: bool,
}

async fn by_ids(
    AxState(state): AxState<Arc<State>>,
    CdfJson(body): CdfJson<ByIds>,
) -> Result<Json<Value>, ApiError> {
    check_item_count(body.items.len(), MAX_ITEMS)?;
    let sets = lock(&state.datasets);
    let mut found = Vec::new();
    let mut missing = Vec::new();
    for item in &body.items {
        let hit = match (
            item.get("id").and_then(Value::as_i64),
            item.get("externalId").and_then(Value::as_str),
        ) {
            (Some(id), None) => sets.iter().find(|s| s.id == id),
            (None, Some(x)) => sets.iter().find(|s| s.external_id.as_deref() == Some(x)),
            _ => {
                return Err(ApiError::bad_request(
                    "each item needs exactly one of id or externalId",
                ));
            }
        };
        match hit {
            Some(s) => found.push(s.json()),
            None => missing.push(item.clone()),
        }
    }
    if !missing.is_empty() && !body.ignore_unknown_ids {
        return Err(ApiError::missing(missing));
    }
    Ok(Json(json!({ "items": found })))
}
