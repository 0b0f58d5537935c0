//! (Stub: owned by the storage work.)

use std::sync::Arc;

use axum::Router;

use super::state::State;

pub(crate) fn routes() -> Router<Arc<State>> {
    Router::new()
}
