//! Load shedding: a global limit on requests in flight, streams included; over it a request
//! gets 503 at once instead of waiting in a queue.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::problem::Problem;
use crate::state::AppState;

/// Refuses requests over the concurrency limit at once (503 + `Retry-After`), instead of
/// queueing them. The permit lives as long as the response body, so streams count too.
pub(crate) async fn shed_load(
    State(state): State<Arc<AppState>>,
    request: Request,
    next: Next,
) -> Response {
    let path = request.uri().path();
    if path == "/healthz" || path == "/readyz" {
        return next.run(request).await;
    }
    let Ok(permit) = Arc::clone(&state.inflight).try_acquire_owned() else {
        metrics::counter!("http_shed_total").increment(1);
        return Problem::unavailable("the gateway is at its concurrency limit; retry shortly")
            .into_response();
    };
    super::hold_until_body_ends(next.run(request).await, permit)
}
