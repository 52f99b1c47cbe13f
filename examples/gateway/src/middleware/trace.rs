//! The server span of each request, joined to the caller's trace through the
//! transport-neutral W3C helpers of [`catena_agents::otel`] — only when the caller proves who
//! it is: an unauthenticated request's `traceparent` becomes a link of a new trace, never its
//! parent, and an inbound `tracestate` is dropped at the edge (never forwarded).
//!
//! Each request also gets a request id: a field of its span, the `x-request-id` response
//! header, and the `request_id` of any problem it ends with, so an operator can find in the
//! logs the internal error a client was only told about in general terms.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;

use super::auth::{verify, Verified};
use crate::state::AppState;

tokio::task_local! {
    static REQUEST_ID: Arc<str>;
}

/// A request id unique in this process: the time and a counter.
fn new_request_id() -> Arc<str> {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros())
        .unwrap_or_default();
    format!("req-{t:x}-{n}").into()
}

/// The id of the request being handled (a new one outside a request).
pub(crate) fn request_id() -> Arc<str> {
    REQUEST_ID
        .try_with(Arc::clone)
        .unwrap_or_else(|_| new_request_id())
}

/// Runs each request in a server span that continues an authenticated caller's W3C trace
/// context (`traceparent` header; an unauthenticated one's is only linked) and returns the
/// span's own context in the response's `traceparent`. The credentials are verified here,
/// once, and handed to the authentication layer ([`Verified`]).
pub(crate) async fn trace_request(
    State(state): State<Arc<AppState>>,
    mut request: Request,
    next: Next,
) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| request.uri().path().to_owned());
    let method = request.method().as_str().to_owned();
    let span = tracing::info_span!(
        "http.request",
        otel.name = %format!("{method} {route}"),
        otel.kind = "server",
        http.request.method = %method,
        http.route = %route,
        http.response.status_code = tracing::field::Empty,
        request_id = tracing::field::Empty,
    );
    let id = new_request_id();
    span.record("request_id", &*id);
    let verified = request
        .headers()
        .contains_key(header::AUTHORIZATION)
        .then(|| verify(&state, request.headers()));
    let headers = request.headers();
    // Only `traceparent`: a caller's vendor state (`tracestate`) is not ours to forward.
    let traceparent = |name: &str| {
        (name == "traceparent")
            .then(|| headers.get(name))
            .flatten()
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    if matches!(verified, Some(Ok(_))) {
        catena_agents::otel::set_remote_parent(&span, traceparent);
    } else {
        catena_agents::otel::link_remote(&span, traceparent);
    }
    if let Some(verified) = verified {
        request.extensions_mut().insert(Verified(verified));
    }
    let mut response = REQUEST_ID
        .scope(Arc::clone(&id), next.run(request))
        .instrument(span.clone())
        .await;
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert("x-request-id", value);
    }
    span.record("http.response.status_code", response.status().as_u16());
    for (name, value) in catena_agents::otel::headers_of(&span) {
        if let (Ok(name), Ok(value)) = (
            header::HeaderName::try_from(name),
            HeaderValue::from_str(&value),
        ) {
            response.headers_mut().insert(name, value);
        }
    }
    response
}
