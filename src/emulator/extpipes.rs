//! `POST extpipes/runs`: extraction-pipeline run reports (CDF-API.md §7), recorded for
//! the inspection endpoint and for tests.
//!
//! A run is `{"externalId","status":"success"|"failure"|"seen","message"?,"createdTime"?}`;
//! `message` is at most 1000 characters. The emulator has no pipeline objects, so any
//! pipeline externalId is accepted (CDF would want the pipeline to exist).

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
    Router::new().route("/extpipes/runs", post(create_runs))
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
