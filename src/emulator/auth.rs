//! OAuth2 token endpoint and bearer-token checks. (Stub: owned by the API work.)

use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State as AxState};
use axum::middleware::Next;
use axum::response::Response;

use super::state::State;

pub(crate) fn routes() -> Router<Arc<State>> {
    Router::new()
}

pub(crate) async fn require_bearer(
    AxState(_state): AxState<Arc<State>>,
    req: Request,
    next: Next,
) -> Response {
    next.run(req).await
}
