//! The layers every request passes through, outermost first: [`trace`] (a server span that
//! continues the caller's W3C trace), [`metrics`] (request counts and latency), [`load_shed`]
//! (the global concurrency limit), and on the protected routes [`auth`] (the bearer key or
//! JWT, its scope, the per-key rate and concurrency limits, throttled failures). Each is an `axum::middleware::from_fn` function over the
//! shared [`AppState`](crate::state::AppState); the router in the crate root stacks them.

pub(crate) mod auth;
pub(crate) mod load_shed;
pub(crate) mod metrics;
pub(crate) mod trace;

/// `response`, holding `guard` (a concurrency permit) until its body has been sent or
/// dropped, so streams count for as long as they last.
pub(crate) fn hold_until_body_ends<G: Send + Sync + 'static>(
    response: axum::response::Response,
    guard: G,
) -> axum::response::Response {
    let (parts, body) = response.into_parts();
    let stream = futures::StreamExt::map(body.into_data_stream(), move |chunk| {
        let _held = &guard;
        chunk
    });
    axum::response::Response::from_parts(parts, axum::body::Body::from_stream(stream))
}
