//! Authentication of the protected routes: the bearer API key (or JWT) names the
//! [`Caller`]; the route's [`Scope`] must be one of its scopes (else 403); its own GCRA bucket
//! then decides whether the request may run; the answer carries the `RateLimit-Policy` and
//! `RateLimit` headers either way; and the key may have only so many requests in flight.
//! A client address that keeps failing to authenticate is refused (429) before its
//! credentials are even checked.

use std::sync::Arc;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::auth::{self, Caller, Scope};
use crate::problem::Problem;
use crate::state::AppState;

/// Checks the bearer key and the caller's rate limit; adds the `RateLimit` headers and, for
/// the handlers, the [`Caller`] extension.
pub(crate) async fn authenticate(
    State(state): State<Arc<AppState>>,
    mut request: Request,
    next: Next,
) -> Response {
    let peer = crate::server::peer_of(&request).map(|a| a.ip());
    if let Some(ip) = peer {
        if let Err(after) = state.auth_failures.check(ip) {
            metrics::counter!("http_auth_throttled_total").increment(1);
            return Problem::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too many failed authentications",
            )
            .with_detail("this address failed to authenticate too often; retry later")
            .with_retry_after(after)
            .into_response();
        }
    }
    let failed = |problem: Problem| {
        if let Some(ip) = peer {
            state.auth_failures.record(ip);
        }
        problem.into_response()
    };
    let verified = match request.extensions_mut().remove::<Verified>() {
        Some(Verified(verified)) => verified,
        None => verify(&state, request.headers()),
    };
    let caller = match verified {
        Ok(caller) => caller,
        Err(problem) => return failed(problem),
    };
    let needed = required_scope(request.extensions().get::<MatchedPath>());
    if !caller.has(needed) {
        return Problem::new(StatusCode::FORBIDDEN, "forbidden")
            .with_detail(format!(
                "this API key lacks the `{}` scope this route needs",
                needed.as_str()
            ))
            .into_response();
    }
    // Buckets are per key: headers such as X-Forwarded-For are not trusted and never pick one.
    let policy = HeaderValue::from_str(&state.rate.policy()).ok();
    let verdict = match &state.shared {
        Some(redis) => {
            let l = &state.config.limits;
            match redis.rate(&caller.id, l.requests_per_minute, l.burst).await {
                Ok(verdict) => verdict,
                Err(e) => {
                    tracing::warn!(error = %e, "the shared rate limits (Redis) are unreachable");
                    return crate::routes::limits_unavailable().into_response();
                }
            }
        }
        None => state.rate.check(&caller.id),
    };
    match verdict {
        Ok(allowed) => {
            // One key cannot hold every slot of the global limit: its own are few.
            let Some(slot) = state.per_key.try_acquire(&caller.id) else {
                metrics::counter!("http_key_concurrency_limited_total").increment(1);
                return Problem::new(StatusCode::TOO_MANY_REQUESTS, "too many requests in flight")
                    .with_detail(format!(
                        "this API key may have {} requests in flight at once",
                        state.config.limits.max_concurrent_per_key
                    ))
                    .with_retry_after(std::time::Duration::from_secs(1))
                    .into_response();
            };
            request.extensions_mut().insert(caller);
            let mut response =
                crate::middleware::hold_until_body_ends(next.run(request).await, slot);
            let h = response.headers_mut();
            if let Some(policy) = policy {
                h.insert("ratelimit-policy", policy);
            }
            if let Ok(v) = HeaderValue::from_str(&format!(
                "\"per-key\";r={};t={}",
                allowed.remaining, allowed.reset_secs
            )) {
                h.insert("ratelimit", v);
            }
            response
        }
        Err(limited) => {
            metrics::counter!("http_rate_limited_total").increment(1);
            let secs =
                limited.retry_after.as_secs() + u64::from(limited.retry_after.subsec_nanos() > 0);
            let mut response = Problem::new(StatusCode::TOO_MANY_REQUESTS, "rate limited")
                .with_detail(format!(
                    "this API key may make {} requests per minute",
                    state.config.limits.requests_per_minute
                ))
                .with_retry_after(limited.retry_after)
                .into_response();
            let h = response.headers_mut();
            if let Some(policy) = policy {
                h.insert("ratelimit-policy", policy);
            }
            if let Ok(v) = HeaderValue::from_str(&format!("\"per-key\";r=0;t={}", secs.max(1))) {
                h.insert("ratelimit", v);
            }
            response
        }
    }
}

/// What the credentials of a request proved, verified once by the outermost layer (which
/// needs to know whether to trust the caller's trace context) and used by [`authenticate`].
#[derive(Clone)]
pub(crate) struct Verified(pub(crate) Result<Caller, Problem>);

/// Checks the request's bearer API key or JWT; never quotes it.
pub(crate) fn verify(state: &AppState, headers: &HeaderMap) -> Result<Caller, Problem> {
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(auth::bearer)
        .ok_or_else(|| Problem::unauthorized("send `Authorization: Bearer <api key>`"))?;
    match (&state.jwt, auth::looks_like_jwt(presented)) {
        (Some(jwt), true) => jwt
            .verify(presented)
            .map_err(|reason| Problem::unauthorized(&reason)),
        _ => state
            .keys
            .verify(presented)
            .ok_or_else(|| Problem::unauthorized("the API key is not valid")),
    }
}

/// The scope a protected route needs (by its template's suffix: a host application may
/// nest the gateway's router under a prefix); a route this list does not know needs
/// `admin`.
fn required_scope(route: Option<&MatchedPath>) -> Scope {
    let route = route.map_or("", MatchedPath::as_str);
    [
        ("/v1/documents", Scope::Ingest),
        ("/v1/query", Scope::Query),
        ("/v1/tasks", Scope::Tasks),
        ("/v1/tasks/{id}", Scope::Tasks),
        ("/v1/tasks/{id}/approve", Scope::Tasks),
        ("/v1/tasks/{id}/reject", Scope::Tasks),
        ("/v1/tasks/{id}/cancel", Scope::Tasks),
        ("/v1/tasks/{id}/resume", Scope::Tasks),
    ]
    .into_iter()
    .find(|(path, _)| route.ends_with(path))
    .map_or(Scope::Admin, |(_, scope)| scope)
}
