//! `/_emulator/...`: inspection and control for tests, scripts and the demo. No auth,
//! never faulted, not counted.
//!
//! - `GET /_emulator/files`: every file ([`FileView`](super::FileView)).
//! - `GET /_emulator/counters`: [`CountersSnapshot`](super::CountersSnapshot).
//! - `GET`/`PUT /_emulator/faults`: the fault settings (PUT replaces them).
//! - `POST /_emulator/outage {"seconds": N}`: down (connections refused) for N seconds,
//!   starting right after this reply has been sent.
//! - `GET /_emulator/extpipe-runs`: the extraction-pipeline runs posted.
//! - `POST /_emulator/reset`: forget all files (and CogniteFile nodes), uploads,
//!   counters, faults, runs and pipeline configs (access tokens stay valid).

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State as AxState;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use http_body_util::Full;
use hyper::body::{Body as HttpBody, Frame, SizeHint};
use serde::Deserialize;
use serde_json::json;

use super::error::ApiError;
use super::state::{CountersSnapshot, Faults, FileView, State, lock, now_ms};
use super::upload::staged_blobs;

pub(crate) fn routes() -> Router<Arc<State>> {
    Router::new()
        .route("/_emulator/files", get(files))
        .route("/_emulator/counters", get(counters))
        .route("/_emulator/faults", get(get_faults).put(put_faults))
        .route("/_emulator/outage", post(outage))
        .route("/_emulator/extpipe-runs", get(extpipe_runs))
        .route("/_emulator/reset", post(reset))
}

async fn files(AxState(state): AxState<Arc<State>>) -> Json<Vec<FileView>> {
    let now = now_ms();
    let files = lock(&state.files);
    Json(files.by_id.values().map(|r| FileView::of(r, now)).collect())
}

async fn counters(AxState(state): AxState<Arc<State>>) -> Json<CountersSnapshot> {
    Json(state.counters.snapshot())
}

async fn get_faults(AxState(state): AxState<Arc<State>>) -> Json<Faults> {
    Json(lock(&state.faults).clone())
}

async fn put_faults(AxState(state): AxState<Arc<State>>, Json(faults): Json<Faults>) -> Response {
    let probabilities = [
        faults.api_429,
        faults.api_500,
        faults.api_503,
        faults.put_429,
        faults.put_500,
        faults.put_503,
        faults.drop_connection,
        faults.lost_response,
    ];
    if probabilities.iter().any(|p| !(0.0..=1.0).contains(p)) {
        return ApiError::bad_request("Fault probabilities must be between 0 and 1")
            .into_response();
    }
    if faults.put_bytes_per_sec == Some(0) {
        return ApiError::bad_request("put_bytes_per_sec must be positive (or null)")
            .into_response();
    }
    tracing::info!(?faults, "fault settings replaced");
    *lock(&state.faults) = faults.clone();
    Json(faults).into_response()
}

async fn extpipe_runs(AxState(state): AxState<Arc<State>>) -> Json<Vec<serde_json::Value>> {
    Json(lock(&state.extpipe_runs).clone())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Outage {
    seconds: f64,
}

/// Goes down once the reply has been handed to the connection (its body is dropped),
/// so the caller gets its answer before the connection is cut.
async fn outage(AxState(state): AxState<Arc<State>>, Json(outage): Json<Outage>) -> Response {
    let Ok(duration) = Duration::try_from_secs_f64(outage.seconds) else {
        return ApiError::bad_request("seconds must be a non-negative number").into_response();
    };
    tracing::info!(?duration, "outage requested");
    let switch = state.down.clone();
    let then = move || {
        switch.set(true);
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            switch.set(false);
            return;
        };
        rt.spawn(async move {
            tokio::time::sleep(duration).await;
            switch.set(false);
        });
    };
    let body = json!({ "downForSeconds": outage.seconds }).to_string();
    let body = OnDrop {
        inner: Full::new(Bytes::from(body)),
        then: Some(Box::new(then)),
    };
    (
        StatusCode::OK,
        [("content-type", "application/json")],
        Body::new(body),
    )
        .into_response()
}

/// A body that runs `then` when dropped (after hyper has taken all of it).
struct OnDrop {
    inner: Full<Bytes>,
    then: Option<Box<dyn FnOnce() + Send>>,
}

impl HttpBody for OnDrop {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for OnDrop {
    fn drop(&mut self) {
        if let Some(then) = self.then.take() {
            then();
        }
    }
}

/// Forgets everything but the configuration and the issued access tokens.
async fn reset(AxState(state): AxState<Arc<State>>) -> Response {
    let files = std::mem::take(&mut *lock(&state.files));
    let uploads = std::mem::take(&mut *lock(&state.uploads));
    for record in files.by_id.values() {
        if let Some(blob) = &record.content {
            state.content.release(blob);
        }
    }
    for session in uploads.values() {
        staged_blobs(session)
            .iter()
            .for_each(|b| state.content.release(b));
    }
    lock(&state.instance_visible_at).clear();
    lock(&state.nodes).clear();
    lock(&state.extpipe_runs).clear();
    lock(&state.extpipe_configs).clear();
    lock(&state.datasets).clear();
    *lock(&state.faults) = Faults::default();
    reset_counters(&state);
    tracing::info!("emulator reset");
    Json(json!({})).into_response()
}

fn reset_counters(state: &State) {
    let c = &state.counters;
    lock(&c.requests).clear();
    lock(&c.header_violations).clear();
    c.put_bytes_received.store(0, Ordering::Relaxed);
    lock(&c.put_bytes_by_file).clear();
    lock(&c.files_created).clear();
    lock(&c.faults_injected).clear();
    c.bearer_on_upload_urls.store(0, Ordering::Relaxed);
    c.tokens_issued.store(0, Ordering::Relaxed);
}
