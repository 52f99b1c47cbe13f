//! Calls to the backends that several handlers make, and what their failures become: the
//! retrieval step, upstream errors and timeouts as problems, and the token budget (reserved
//! before a model call, settled with its usage after).

use std::sync::Arc;

use axum::http::StatusCode;
use catena_core::{
    Filter, Retriever, ScoredDocument, TracedRetriever, Usage, VectorStoreRetriever,
};
use serde_json::{json, Value};

use crate::auth::TENANT_METADATA_KEY;
use crate::limits::{Refused, Reservation};
use crate::middleware::trace::request_id;
use crate::problem::Problem;
use crate::state::AppState;

/// 504: the request took longer than the request timeout.
pub(super) fn timeout_problem() -> Problem {
    Problem::new(StatusCode::GATEWAY_TIMEOUT, "request timed out")
}

/// A backend's error as a problem for the current request; counted and logged (in full, with
/// the request id the client is given) unless the input was at fault.
pub(super) fn upstream(what: &'static str, e: &catena_core::Error) -> Problem {
    upstream_for(&request_id(), what, e)
}

/// [`upstream`] for request `id` (for errors met while a response streams, after the
/// handler has returned).
pub(super) fn upstream_for(id: &str, what: &'static str, e: &catena_core::Error) -> Problem {
    if !matches!(e, catena_core::Error::InvalidInput(_)) {
        metrics::counter!("upstream_errors_total", "upstream" => what).increment(1);
        tracing::warn!(request_id = %id, error = %e, upstream = what, "upstream failure");
    }
    Problem::from_catena(e).with_request_id(id)
}

/// Token usage as the client sees it.
pub(super) fn usage_json(u: &Usage) -> Value {
    json!({ "input_tokens": u.input_tokens, "output_tokens": u.output_tokens, "total_tokens": u.input_tokens + u.output_tokens })
}

/// The retriever of `tenant`'s `k` chunks closest to a question, in a `retrieval` span
/// ([`TracedRetriever`]).
pub(super) fn tenant_retriever(
    state: &AppState,
    tenant: &str,
    k: usize,
) -> Arc<TracedRetriever<VectorStoreRetriever>> {
    Arc::new(
        TracedRetriever::new(
            VectorStoreRetriever::new(Arc::clone(&state.embedder), Arc::clone(&state.store))
                .with_k(k)
                .with_filter(Filter::eq(TENANT_METADATA_KEY, tenant)),
        )
        .with_k(k),
    )
}

/// The `k` chunks of `tenant` closest to `text`, within the request timeout.
pub(super) async fn retrieve(
    state: &AppState,
    tenant: &str,
    text: &str,
    k: usize,
) -> Result<Vec<ScoredDocument>, Problem> {
    let retriever = tenant_retriever(state, tenant, k);
    tokio::time::timeout(state.request_timeout(), retriever.retrieve_scored(text))
        .await
        .map_err(|_| timeout_problem())?
        .map_err(|e| upstream("retrieval", &e))
}

/// Reserves up to `estimate` model tokens of `caller`'s budget before a model call; 429
/// when nothing is left in the current window. See [`TokenBudgets`](crate::limits::TokenBudgets).
pub(super) async fn reserve_budget(
    state: &AppState,
    caller: &str,
    estimate: u64,
) -> Result<Reservation, Problem> {
    state
        .budgets
        .reserve(caller, estimate)
        .await
        .map_err(|refused| match refused {
            Refused::Spent(after) => budget_spent(after),
            Refused::Unavailable => limits_unavailable(),
        })
}

/// 429 at once when `caller` has nothing left of its budget, before a request costs anything
/// (retrieval); the reservation made before the model call is the real check.
pub(super) fn refuse_spent_budget(state: &AppState, caller: &str) -> Result<(), Problem> {
    match state.budgets.spent(caller) {
        Some(after) => Err(budget_spent(after)),
        None => Ok(()),
    }
}

/// The 503 of limits that cannot be checked (the shared store is unreachable).
pub(crate) fn limits_unavailable() -> Problem {
    Problem::unavailable("the gateway cannot check its limits right now; try again shortly")
}

/// The 429 of a spent budget, retrying when its window resets.
pub(super) fn budget_spent(after: std::time::Duration) -> Problem {
    Problem::new(StatusCode::TOO_MANY_REQUESTS, "token budget spent")
        .with_type("https://catena.dev/problems/token-budget")
        .with_detail("this API key has used its model-token budget for the current window")
        .with_retry_after(after)
}

/// A rough token count of `text` for reservations (about four bytes a token in English;
/// settled with the provider's count afterwards).
pub(super) fn estimate_tokens(text: &str) -> u64 {
    (text.len() as u64).div_ceil(4)
}

/// Counts `usage` in the metrics (the budget is charged by settling its reservation).
pub(super) fn count_usage(usage: &Usage) {
    metrics::counter!("model_tokens_total", "direction" => "input").increment(usage.input_tokens);
    metrics::counter!("model_tokens_total", "direction" => "output").increment(usage.output_tokens);
}

/// What `usage` charges a budget: the reported total, else input plus output.
pub(super) fn charged(usage: &Usage) -> u64 {
    usage
        .total_tokens
        .max(usage.input_tokens + usage.output_tokens)
}
