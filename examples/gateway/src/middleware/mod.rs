//! The layers every request passes through, outermost first: [`trace`] (a server span that
//! continues the caller's W3C trace), [`metrics`] (request counts and latency), [`load_shed`]
//! (the global concurrency limit), and on the protected routes [`auth`] (the bearer key or
//! JWT, and the per-key rate limit). Each is an `axum::middleware::from_fn` function over the
//! shared [`AppState`](crate::state::AppState); the router in the crate root stacks them.

pub(crate) mod auth;
pub(crate) mod load_shed;
pub(crate) mod metrics;
pub(crate) mod trace;
