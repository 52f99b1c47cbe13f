//! `POST /v1/tasks`: retrieve context and delegate the task to the agent service over gRPC
//! (`catena.agent.v1`), streaming its events back as server-sent events, in the caller's
//! trace.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::Event;
use axum::response::Response;
use axum::Extension;
use catena_agents::grpc::{TaskLimits, TaskRequest};
use catena_core::Message;
use futures::StreamExt;
use serde::Deserialize;
use serde_json::json;

use super::body::{validate_k, validate_text, Body};
use super::runs;
use super::sse::{guard, sse};
use super::upstream::{budgets_limited, refuse_spent_budget, reserve_budget, retrieve};
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
    /// The conversation so far, oldest first, without this task.
    #[serde(default)]
    history: Vec<Turn>,
}

/// At most this many earlier turns travel with a task.
const MAX_HISTORY: usize = 50;

/// One earlier turn of the conversation. Only the user's and the assistant's: a caller
/// cannot write the agent's system prompt.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Turn {
    role: TurnRole,
    content: String,
}

/// Who wrote a [`Turn`].
#[derive(Debug, Deserialize)]
#[serde(rename_all = "lowercase")]
enum TurnRole {
    User,
    Assistant,
}

/// The history as messages: at most [`MAX_HISTORY`] turns, each not blank and no longer
/// than a task.
fn history(turns: Vec<Turn>) -> Result<Vec<Message>, Problem> {
    if turns.len() > MAX_HISTORY {
        return Err(Problem::invalid_field(
            "history",
            format!("at most {MAX_HISTORY} turns"),
        ));
    }
    turns
        .into_iter()
        .map(|t| {
            validate_text("history", &t.content)?;
            Ok(match t.role {
                TurnRole::User => Message::user(t.content),
                TurnRole::Assistant => Message::assistant(t.content),
            })
        })
        .collect()
}

/// `POST /v1/tasks`: checks the task and its limits, retrieves its context and streams the
/// agent service's events (`accepted`, `step`, `token`, `tool_call`, `tool_result`, `final`,
/// or a terminal `error`; a durable run may stop with `approval_required`). With
/// `agent.durable` the task is a durable run: `accepted` names its `run_id`, every later
/// event carries its sequence number as the SSE `id`, and the run goes on when the client
/// goes away (see [`runs`]).
pub(crate) async fn task(
    State(state): State<Arc<AppState>>,
    caller: Option<Extension<Caller>>,
    Body(body): Body<TaskBody>,
) -> Result<Response, Problem> {
    let Caller {
        id: caller, tenant, ..
    } = caller_of(caller.as_deref());
    validate_text("task", &body.task)?;
    let history = history(body.history)?;
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
    let agent = runs::agent_of(&state)?;
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
    // stream (the client went away from a task that is not durable, the connection broke) or
    // unreported, in full.
    let id = request_id().to_string();
    let durable = state.config.agent.durable;
    let run_id = if durable {
        Some(runs::new_run_id(&tenant)?)
    } else {
        None
    };
    let mut request = TaskRequest::new(body.task)
        .with_request_id(id.clone())
        .with_scored_documents(hits)
        .with_history(history)
        .with_allowed_tools(body.allowed_tools)
        .with_limits(limits)
        .with_timeout(Duration::from_secs(timeout));
    if let Some(run_id) = &run_id {
        request = request.with_run_id(run_id.clone());
    }
    tracing::info!(request_id = %id, caller = %caller, run_id = ?run_id, "delegating a task to the agent service");
    // A client span for the call; its context travels in the gRPC metadata, so the agent
    // service's spans join this trace. It lives as long as the event stream (or, for a
    // durable run, as long as the gateway drives the run).
    let call_span = tracing::info_span!(
        "agent.delegate",
        otel.name = "catena.agent.v1.AgentService/RunTask",
        otel.kind = "client",
        rpc.system = "grpc",
        rpc.service = "catena.agent.v1.AgentService",
        rpc.method = "RunTask",
        request_id = %id,
        run_id = run_id.as_deref().unwrap_or_default(),
    );
    let mut agent = agent;
    for (name, value) in catena_agents::otel::headers_of(&call_span) {
        agent = agent.with_metadata(&name, &value);
    }
    let accepted = match &run_id {
        Some(run_id) => json!({ "request_id": id, "run_id": run_id }),
        None => json!({ "request_id": id }),
    };
    let first = Event::default()
        .event("accepted")
        .json_data(accepted)
        .unwrap_or_default();
    let stream = agent.run_task(request);
    let events: EventsOf = match run_id {
        Some(run_id) => Box::pin(runs::detach(
            &state,
            run_id,
            stream,
            None,
            reservation,
            call_span,
            (caller, id),
        )),
        None => Box::pin(runs::attached(stream, reservation, call_span, id)),
    };
    let events = futures::stream::once(async move { first }).chain(events);
    Ok(sse(guard(events, &state)))
}

/// A task's events as server-sent events.
type EventsOf = std::pin::Pin<Box<dyn futures::Stream<Item = Event> + Send>>;
