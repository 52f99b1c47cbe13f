//! `POST /v1/tasks`: retrieve context and delegate the task to the agent service over gRPC
//! (`catena.agent.v1`), streaming its events back as server-sent events, in the caller's
//! trace.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::sse::Event;
use axum::response::Response;
use axum::Extension;
use catena_agents::grpc::{TaskEvent, TaskLimits, TaskRequest};
use futures::StreamExt;
use serde::Deserialize;
use serde_json::{json, Value};

use super::body::{validate_k, validate_text, Body};
use super::sse::{guard, sse};
use super::upstream::{
    budgets_limited, count_usage, refuse_spent_budget, reserve_budget, retrieve, usage_json, Charge,
};
use crate::auth::Caller;
use crate::middleware::trace::request_id;
use crate::problem::Problem;
use crate::state::{caller_of, AppState};

/// The body of `POST /v1/tasks`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TaskBody {
    task: String,
    #[serde(default)]
    k: Option<usize>,
    #[serde(default)]
    allowed_tools: Vec<String>,
    #[serde(default)]
    max_steps: Option<u32>,
    #[serde(default)]
    timeout_secs: Option<u64>,
}

/// `POST /v1/tasks`: checks the task and its limits, retrieves its context and streams the
/// agent service's events (`accepted`, `step`, `token`, `tool_call`, `tool_result`, `final`,
/// or a terminal `error`).
pub(crate) async fn task(
    State(state): State<Arc<AppState>>,
    caller: Option<Extension<Caller>>,
    Body(body): Body<TaskBody>,
) -> Result<Response, Problem> {
    let Caller {
        id: caller, tenant, ..
    } = caller_of(caller.as_deref());
    validate_text("task", &body.task)?;
    let k = validate_k(body.k, state.config.rag.k)?;
    if let Some(steps) = body.max_steps {
        if steps == 0 || steps > 50 {
            return Err(Problem::invalid_field("max_steps", "must be 1 to 50"));
        }
    }
    let max_timeout = state.config.agent.task_timeout_secs.max(1);
    let timeout = match body.timeout_secs {
        None => max_timeout,
        Some(t) if (1..=max_timeout).contains(&t) => t,
        Some(_) => {
            return Err(Problem::invalid_field(
                "timeout_secs",
                format!("must be 1 to {max_timeout}"),
            ))
        }
    };
    let Some(agent) = state.agent.clone() else {
        return Err(
            Problem::new(StatusCode::SERVICE_UNAVAILABLE, "no agent service").with_detail(
                "this gateway has no agent service configured (agent.url / CATENA_AGENT_URL)",
            ),
        );
    };
    // Nothing left: refuse before the retrieval costs anything.
    refuse_spent_budget(&state, &caller)?;
    let hits = retrieve(&state, &tenant, &body.task, k).await?;
    let mut limits = TaskLimits::new();
    if let Some(steps) = body.max_steps {
        limits = limits.with_max_steps(steps);
    }
    // A task may spend up to the agent's own cap; with a budget, what is reserved of it is
    // the agent's `max_tokens`, so it cannot spend more than the key has.
    let reservation =
        reserve_budget(&state, &caller, 0, catena_agents::grpc::DEFAULT_MAX_TOKENS).await?;
    if budgets_limited(&state) {
        limits = limits.with_max_tokens(reservation.amount());
    }
    // Settled with the usage of the final answer or of the error event; dropped with the
    // stream (the client went away, the connection broke) or unreported, in full.
    let reservation = Arc::new(std::sync::Mutex::new(Some(reservation)));
    let res_err = Arc::clone(&reservation);
    let id = request_id().to_string();
    let request = TaskRequest::new(body.task)
        .with_request_id(id.clone())
        .with_scored_documents(hits)
        .with_allowed_tools(body.allowed_tools)
        .with_limits(limits)
        .with_timeout(Duration::from_secs(timeout));
    tracing::info!(request_id = %id, caller = %caller, "delegating a task to the agent service");
    // A client span for the call; its context travels in the gRPC metadata, so the agent
    // service's spans join this trace. It lives as long as the event stream.
    let call_span = tracing::info_span!(
        "agent.delegate",
        otel.name = "catena.agent.v1.AgentService/RunTask",
        otel.kind = "client",
        rpc.system = "grpc",
        rpc.service = "catena.agent.v1.AgentService",
        rpc.method = "RunTask",
        request_id = %id,
    );
    let mut agent = agent;
    for (name, value) in catena_agents::otel::headers_of(&call_span) {
        agent = agent.with_metadata(&name, &value);
    }
    let failed_id = id.clone();
    let first = Event::default()
        .event("accepted")
        .json_data(json!({ "request_id": id }))
        .unwrap_or_default();
    let events = agent.run_task(request).map(move |item| match item {
        Ok(ev) => task_event(&reservation, ev),
        Err(e) => {
            if let (Some(usage), Some(r)) =
                (e.usage(), res_err.lock().ok().and_then(|mut r| r.take()))
            {
                count_usage(usage);
                r.settle(usage);
            }
            metrics::counter!("upstream_errors_total", "upstream" => "agent").increment(1);
            // The agent's own message stays in the log: it may name hosts, paths or tools.
            tracing::warn!(request_id = %failed_id, error = %e, "the agent service failed");
            let (kind, detail) = if e.is_deadline_exceeded() {
                ("deadline_exceeded", "the task ran past its deadline")
            } else {
                ("agent_error", "the agent service failed")
            };
            Event::default()
                .event("error")
                .json_data(json!({
                    "type": kind,
                    "detail": detail,
                    "retryable": e.is_retryable(),
                    "request_id": failed_id,
                }))
                .unwrap_or_default()
        }
    });
    let events = futures::stream::once(async move { first })
        .chain(events)
        .map(move |event| {
            let _keep = &call_span;
            event
        });
    Ok(sse(guard(events, &state)))
}

/// One agent event as a server-sent event; the final answer's usage settles `reservation`.
fn task_event(reservation: &std::sync::Mutex<Option<Charge>>, ev: TaskEvent) -> Event {
    let (name, data) = match ev {
        TaskEvent::StepStarted(step) => ("step", json!({ "step": step })),
        TaskEvent::TextDelta(text) => ("token", json!({ "text": text })),
        TaskEvent::ToolCall {
            id,
            name,
            arguments,
        } => (
            "tool_call",
            json!({ "id": id, "name": name, "arguments": arguments }),
        ),
        TaskEvent::ToolResult {
            id,
            name,
            content,
            is_error,
        } => (
            "tool_result",
            json!({ "id": id, "name": name, "content": content, "is_error": is_error }),
        ),
        TaskEvent::FinalAnswer {
            text,
            sources,
            usage,
        } => {
            count_usage(&usage);
            if let Some(r) = reservation.lock().ok().and_then(|mut r| r.take()) {
                r.settle(&usage);
            }
            let sources: Vec<Value> = sources
                .iter()
                .map(|s| {
                    json!({
                        "id": s.id.as_ref().map(ToString::to_string),
                        "source": s.source,
                        "score": s.score,
                    })
                })
                .collect();
            (
                "final",
                json!({ "answer": text, "sources": sources, "usage": usage_json(&usage) }),
            )
        }
        _ => ("other", json!({})),
    };
    Event::default()
        .event(name)
        .json_data(data)
        .unwrap_or_default()
}
