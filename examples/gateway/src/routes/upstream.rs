//! Calls to the backends that several handlers make, and what their failures become: the
//! retrieval step, upstream errors and timeouts as problems, and the token budget (reserved
//! before a model call, settled with its usage after).

use std::sync::Arc;

use axum::http::StatusCode;
use catena_core::{
    Filter, ModelPrice, Retriever, ScoredDocument, TracedRetriever, Usage, VectorStoreRetriever,
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
    json!({ "input_tokens": u.input_tokens, "output_tokens": u.output_tokens, "total_tokens": u.input_tokens.saturating_add(u.output_tokens) })
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

/// What one model call may spend, reserved before it runs: tokens of the key's token budget
/// and, with a cost budget, money (millionths of the price table's currency) at the chat
/// model's price. Settled with the call's usage; dropped unsettled, charged in full.
#[derive(Debug)]
#[must_use = "a charge dropped at once is charged in full"]
pub(crate) struct Charge {
    tokens: Reservation,
    money: Option<(Reservation, ModelPrice)>,
}

/// Millionths of a currency unit that `tokens` cost at `per_million` (a price per million
/// tokens is exactly millionths per token).
fn micros(tokens: u64, per_million: f64) -> u64 {
    (tokens as f64 * per_million).ceil() as u64
}

impl Charge {
    /// Tokens the call may use in all: the token reservation, and what the money reservation
    /// pays for at the dearer of the model's input and output prices.
    pub(super) fn amount(&self) -> u64 {
        let mut amount = self.tokens.amount();
        if let Some((money, price)) = &self.money {
            let dearest = price.input.max(price.output);
            if dearest > 0.0 {
                amount = amount.min((money.amount() as f64 / dearest).floor() as u64);
            }
        }
        amount
    }

    /// Answer tokens the call may produce after `input` prompt tokens.
    pub(super) fn answer_allowance(&self, input: u64) -> u64 {
        let mut allowance = self.tokens.amount().saturating_sub(input);
        if let Some((money, price)) = &self.money {
            let left = money.amount().saturating_sub(micros(input, price.input));
            if price.output > 0.0 {
                allowance = allowance.min((left as f64 / price.output).floor() as u64);
            }
        }
        allowance
    }

    /// Replaces the reservations with what `usage` spent.
    pub(super) fn settle(self, usage: &Usage) {
        self.tokens.settle(charged(usage));
        if let Some((money, price)) = self.money {
            money.settle((price.cost_of(usage) * 1_000_000.0).ceil() as u64);
        }
    }
}

/// Reserves what a call of `input` prompt tokens and up to `output` answer tokens may spend
/// of `caller`'s budgets (tokens, and money when a cost budget is set); 429 when nothing is
/// left in the current window. See [`TokenBudgets`](crate::limits::TokenBudgets).
pub(super) async fn reserve_budget(
    state: &AppState,
    caller: &str,
    input: u64,
    output: u64,
) -> Result<Charge, Problem> {
    let refused = |kind: &'static str| {
        move |refused| match refused {
            Refused::Spent(after) => budget_spent(kind, after),
            Refused::Unavailable => limits_unavailable(),
        }
    };
    let tokens = state
        .budgets
        .reserve(caller, input + output)
        .await
        .map_err(refused("token"))?;
    let money = match &state.cost_budgets {
        Some((budgets, price)) => {
            let estimate = micros(input, price.input) + micros(output, price.output);
            match budgets.reserve(caller, estimate).await {
                Ok(r) => Some((r, *price)),
                Err(refusal) => {
                    // Nothing ran: the token reservation is given back, not charged.
                    tokens.settle(0);
                    return Err(refused("cost")(refusal));
                }
            }
        }
        None => None,
    };
    Ok(Charge { tokens, money })
}

/// Reserves `tokens` of `caller`'s token budget for embedding calls (embeddings are not
/// priced: the price table prices the chat model).
pub(super) async fn reserve_embedding_budget(
    state: &AppState,
    caller: &str,
    tokens: u64,
) -> Result<Charge, Problem> {
    let tokens = state
        .budgets
        .reserve(caller, tokens)
        .await
        .map_err(|refused| match refused {
            Refused::Spent(after) => budget_spent("token", after),
            Refused::Unavailable => limits_unavailable(),
        })?;
    Ok(Charge {
        tokens,
        money: None,
    })
}

/// Whether any budget (tokens or money) limits what a key spends.
pub(super) fn budgets_limited(state: &AppState) -> bool {
    state.budgets.is_limited() || state.cost_budgets.is_some()
}

/// 429 at once when `caller` has nothing left of a budget, before a request costs anything
/// (retrieval); the reservation made before the model call is the real check.
pub(super) fn refuse_spent_budget(state: &AppState, caller: &str) -> Result<(), Problem> {
    if let Some(after) = state.budgets.spent(caller) {
        return Err(budget_spent("token", after));
    }
    if let Some(after) = state
        .cost_budgets
        .as_ref()
        .and_then(|(b, _)| b.spent(caller))
    {
        return Err(budget_spent("cost", after));
    }
    Ok(())
}

/// The 503 of limits that cannot be checked (the shared store is unreachable).
pub(crate) fn limits_unavailable() -> Problem {
    Problem::unavailable("the gateway cannot check its limits right now; try again shortly")
}

/// The 429 of a spent budget (`kind` is `token` or `cost`), retrying when its window resets.
pub(super) fn budget_spent(kind: &'static str, after: std::time::Duration) -> Problem {
    let (title, ty, detail) = if kind == "cost" {
        (
            "cost budget spent",
            "https://catena.dev/problems/cost-budget",
            "this API key has spent its model-cost budget for the current window",
        )
    } else {
        (
            "token budget spent",
            "https://catena.dev/problems/token-budget",
            "this API key has used its model-token budget for the current window",
        )
    };
    Problem::new(StatusCode::TOO_MANY_REQUESTS, title)
        .with_type(ty)
        .with_detail(detail)
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
        .max(usage.input_tokens.saturating_add(usage.output_tokens))
}
