//! Cross-cutting layers: request ids, counters, faults. (Stub: owned by the storage work.)

use std::sync::Arc;

use axum::Router;

use super::state::State;

/// Applies the cross-cutting layers to the whole router.
pub(crate) fn layers(_state: Arc<State>) -> tower::layer::util::Identity {
    tower::layer::util::Identity::new()
}

#[allow(dead_code)]
fn _unused(_r: Router<Arc<State>>) {}
