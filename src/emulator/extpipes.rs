//! Extraction pipelines (CDF-API.md §7): run reports and config revisions.
//!
//! - `POST extpipes/runs`: a run is
//!   `{"externalId","status":"success"|"failure"|"seen","message"?,"createdTime"?}`;
//!   `message` is at most 1000 characters. Recorded for the inspection endpoint.
//! - `POST extpipes/config` `{"externalId","config"?,"description"?}` creates the next
//!   revision (1, 2, ...); `GET extpipes/config?externalId=[&revision=|&activeAtTime=]`
//!   returns `{externalId, config, revision, createdTime, description}` (the latest by
//!   default), 404 when there is none; `GET extpipes/config/revisions?externalId=` lists
//!   them newest first without the text; `POST extpipes/config/revert
//!   {"externalId","revision"}` makes a copy of an old revision the latest.
//!
//! The emulator has no pipeline objects, so any pipeline externalId is accepted (CDF
//! would want the pipeline to exist).

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::State as AxState;
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};

use super::error::ApiError;
use super::state::{State, lock, now_ms};
use super::validate::{CdfJson, MAX_ITEMS, QueryParams, check_item_count, check_len};

pub(crate) fn routes() -> Router<Arc<State>> {
    Router::new()
        .route("/extpipes/runs", post(create_runs))
        .route("/extpipes/config", get(get_config).post(create_config))
        .route("/extpipes/config/revisions", get(list_revisions))
        .route("/extpipes/config/revert", post(revert_config))
}

/// One stored config revision.
#[derive(Debug, Clone)]
pub(crate) struct ConfigRevision {
    revision: i64,
    config: Option<String>,
    description: Option<String>,
    created_time: i64,
}

impl ConfigRevision {
    fn to_json(&self, external_id: &str, with_text: bool) -> Value {
        let mut v = json!({
            "externalId": external_id,
            "revision": self.revision,
            "createdTime": self.created_time,
        });
        if with_text && let Some(c) = &self.config {
            v["config"] = c.clone().into();
        }
        if let Some(d) = &self.description {
            v["description"] = d.clone().into();
        }
        v
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct NewConfig {
    external_id: String,
    config: Option<String>,
    description: Option<String>,
}

/// `POST extpipes/config`: the next revision of the pipeline's config.
async fn create_config(
    AxState(state): AxState<Arc<State>>,
    CdfJson(body): CdfJson<NewConfig>,
) -> Result<Json<Value>, ApiError> {
    check_len("externalId", &body.external_id, 1, 255)?;
    let mut configs = lock(&state.extpipe_configs);
    let revisions = configs.entry(body.external_id.clone()).or_default();
    let revision = ConfigRevision {
        revision: revisions.last().map_or(1, |r| r.revision + 1),
        config: body.config,
        description: body.description,
        created_time: now_ms(),
    };
    let reply = revision.to_json(&body.external_id, true);
    revisions.push(revision);
    Ok(Json(reply))
}

fn external_id(query: &QueryParams) -> Result<String, ApiError> {
    let x = query
        .get("externalId")
        .ok_or_else(|| ApiError::bad_request("externalId: is required"))?;
    check_len("externalId", x, 1, 255)?;
    Ok(x.to_owned())
}

fn int_param(query: &QueryParams, key: &str) -> Result<Option<i64>, ApiError> {
    query
        .get(key)
        .map(|v| {
            v.parse::<i64>().map_err(|_| {
                ApiError::bad_request(format!("{key}: expected an integer, got `{v}`"))
            })
        })
        .transpose()
}

fn not_found(external_id: &str) -> ApiError {
    ApiError::new(
        axum::http::StatusCode::NOT_FOUND,
        format!("No config found for extraction pipeline with externalId {external_id}"),
    )
}

/// `GET extpipes/config`: the latest revision, or the one asked for.
async fn get_config(
    AxState(state): AxState<Arc<State>>,
    query: QueryParams,
) -> Result<Json<Value>, ApiError> {
    let xid = external_id(&query)?;
    let revision = int_param(&query, "revision")?;
    let active_at = int_param(&query, "activeAtTime")?;
    let configs = lock(&state.extpipe_configs);
    let revisions = configs.get(&xid).map(Vec::as_slice).unwrap_or_default();
    let found = match (revision, active_at) {
        (Some(n), _) => revisions.iter().find(|r| r.revision == n),
        (None, Some(t)) => revisions.iter().rev().find(|r| r.created_time <= t),
        (None, None) => revisions.last(),
    };
    found
        .map(|r| Json(r.to_json(&xid, true)))
        .ok_or_else(|| not_found(&xid))
}

/// `GET extpipes/config/revisions`: newest first, without the config text.
async fn list_revisions(
    AxState(state): AxState<Arc<State>>,
    query: QueryParams,
) -> Result<Json<Value>, ApiError> {
    let xid = external_id(&query)?;
    let configs = lock(&state.extpipe_configs);
    let items: Vec<Value> = configs
        .get(&xid)
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .rev()
        .map(|r| r.to_json(&xid, false))
        .collect();
    Ok(Json(json!({ "items": items })))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Revert {
    external_id: String,
    revision: i64,
}

/// `POST extpipes/config/revert`: a new latest revision with an old one's content.
async fn revert_config(
    AxState(state): AxState<Arc<State>>,
    CdfJson(body): CdfJson<Revert>,
) -> Result<Json<Value>, ApiError> {
    let mut configs = lock(&state.extpipe_configs);
    let revisions = configs
        .get_mut(&body.external_id)
        .ok_or_else(|| not_found(&body.external_id))?;
    let old = revisions
        .iter()
        .find(|r| r.revision == body.revision)
        .cloned()
        .ok_or_else(|| not_found(&body.external_id))?;
    let revision = ConfigRevision {
        revision: revisions.last().map_or(1, |r| r.revision + 1),
        created_time: now_ms(),
        ..old
    };
    let reply = revision.to_json(&body.external_id, true);
    revisions.push(revision);
    Ok(Json(reply))
}

#[derive(Deserialize)]
#[serde(rename_all = "lowercase")]
enum RunStatus {
    Success,
    Failure,
    Seen,
}

impl RunStatus {
    fn as_str(&self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Failure => "failure",
            Self::Seen => "seen",
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Run {
    external_id: String,
    status: RunStatus,
    message: Option<String>,
    created_time: Option<i64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Runs {
    items: Vec<Run>,
}

/// Records the runs and answers them back with an `id` and `createdTime`.
async fn create_runs(
    AxState(state): AxState<Arc<State>>,
    CdfJson(body): CdfJson<Runs>,
) -> Result<Json<Value>, ApiError> {
    check_item_count(body.items.len(), MAX_ITEMS)?;
    let now = now_ms();
    let mut items = Vec::with_capacity(body.items.len());
    for run in &body.items {
        check_len("externalId", &run.external_id, 1, 255)?;
        if let Some(m) = &run.message {
            check_len("message", m, 0, 1000)?;
        }
        let created = run.created_time.unwrap_or(now);
        if created < 0 {
            return Err(ApiError::bad_request("createdTime: must be >= 0"));
        }
        let mut item = json!({
            "id": state.next_id(),
            "externalId": run.external_id,
            "status": run.status.as_str(),
            "createdTime": created,
        });
        if let Some(m) = &run.message {
            item["message"] = m.clone().into();
        }
        items.push(item);
    }
    lock(&state.extpipe_runs).extend(items.iter().cloned());
    Ok(Json(json!({ "items": items })))
}
