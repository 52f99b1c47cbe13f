//! Durable task runs (`agent.durable`): the run ids the gateway hands out, the driver that
//! carries a run on when its client goes away, and the endpoints that act on a run later —
//! `GET /v1/tasks/{id}` (status and events, a server-sent event stream resumable from
//! `Last-Event-ID`), `POST /v1/tasks/{id}/approve`, `reject`, `cancel` and `resume`.
//!
//! A run belongs to the tenant that started it: its id begins with a tag derived from the
//! tenant (`t` and 16 hex digits of a SHA-256), followed by 128 random bits, and every
//! endpoint answers 404 for a run id that does not carry the caller's tag. The agent
//! service keeps the checkpoints and the event log; the gateway keeps nothing but the set
//! of runs it is driving now, so any replica can serve a run's events and decisions.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::sse::Event;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use catena_agents::grpc::pb::{self, TaskStatus};
use catena_agents::grpc::{AgentServiceClient, TaskError, TaskEvent, TaskStream};
use catena_agents::Decision;
use catena_core::Usage;
use futures::{Stream, StreamExt};
use serde::Deserialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tonic::Code;
use tracing::Span;

use super::body::Body;
use super::sse::{guard, sse};
use super::upstream::{
    budgets_limited, count_usage, refuse_spent_budget, reserve_budget, usage_json, Charge,
};
use crate::auth::Caller;
use crate::middleware::trace::request_id;
use crate::problem::Problem;
use crate::state::{caller_of, AppState};

/// How often a reader following a run that another call drives asks for new events.
const POLL: Duration = Duration::from_millis(200);
/// The longest pause between two polls of a run that shows no progress.
const POLL_MAX: Duration = Duration::from_secs(2);
/// The deadline of a `GetTask` call.
const GET_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the reservation of a run waiting for approval is held; past it the run is
/// charged the whole reservation (its decision's call then reserves anew).
const APPROVAL_HOLD: Duration = Duration::from_secs(24 * 60 * 60);

/// Holds `charge` for the decision about `run_id`, charging (in full) holds that expired.
fn hold(state: &AppState, run_id: &str, charge: Charge) {
    let expired: Vec<Charge> = match state.held.lock() {
        Ok(mut held) => {
            let now = std::time::Instant::now();
            let old: Vec<String> = held
                .iter()
                .filter(|(_, (since, _))| now.duration_since(*since) > APPROVAL_HOLD)
                .map(|(id, _)| id.clone())
                .collect();
            let expired = old
                .iter()
                .filter_map(|id| held.remove(id))
                .map(|(_, c)| c)
                .collect();
            held.insert(run_id.to_owned(), (now, charge));
            expired
        }
        // Poisoned: the charge is dropped, charged in full.
        Err(_) => Vec::new(),
    };
    drop(expired);
}

/// The charge held for the decision about `run_id`, if this gateway holds one.
fn take_held(state: &AppState, run_id: &str) -> Option<Charge> {
    state
        .held
        .lock()
        .ok()
        .and_then(|mut held| held.remove(run_id))
        .map(|(_, c)| c)
}

/// The tag that starts the id of every run `tenant` starts.
fn tenant_tag(tenant: &str) -> String {
    let digest = Sha256::digest(format!("catena-run-tenant:{tenant}").as_bytes());
    let hex: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    format!("t{hex}")
}

/// A new run id for `tenant`: its tag, `-`, and 128 random bits in hex.
pub(super) fn new_run_id(tenant: &str) -> Result<String, Problem> {
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; 16];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| Problem::unavailable("no randomness for a run id"))?;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    Ok(format!("{}-{hex}", tenant_tag(tenant)))
}

/// The run `run_id` if it is one of `tenant`'s; 404 otherwise (another tenant's run is not
/// told apart from one that does not exist).
fn owned(tenant: &str, run_id: &str) -> Result<(), Problem> {
    let tag = tenant_tag(tenant);
    let ours = run_id.len() <= 200
        && run_id
            .strip_prefix(&tag)
            .and_then(|rest| rest.strip_prefix('-'))
            .is_some_and(|rest| !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_hexdigit()));
    if ours {
        Ok(())
    } else {
        Err(not_found())
    }
}

fn not_found() -> Problem {
    Problem::new(StatusCode::NOT_FOUND, "no such task")
        .with_detail("no task run with this id belongs to the caller")
}

/// The agent service, or 503.
pub(super) fn agent_of(state: &AppState) -> Result<AgentServiceClient, Problem> {
    state.agent.clone().ok_or_else(|| {
        Problem::new(StatusCode::SERVICE_UNAVAILABLE, "no agent service").with_detail(
            "this gateway has no agent service configured (agent.url / CATENA_AGENT_URL)",
        )
    })
}

/// Refuses the run endpoints when the gateway does not run tasks durably.
fn durable_only(state: &AppState) -> Result<(), Problem> {
    if state.config.agent.durable {
        Ok(())
    } else {
        Err(Problem::new(StatusCode::NOT_FOUND, "no such task").with_detail(
            "this gateway does not keep task runs (agent.durable / CATENA_AGENT_DURABLE is off)",
        ))
    }
}

/// The HTTP answer for a call the agent service refused before streaming.
fn problem_of(e: &TaskError) -> Problem {
    match e {
        TaskError::Status { code, .. } => match code {
            Code::NotFound => not_found(),
            Code::FailedPrecondition => Problem::new(StatusCode::CONFLICT, "not possible now")
                .with_detail("the task run is not in a state that allows this"),
            Code::InvalidArgument => Problem::new(StatusCode::BAD_REQUEST, "invalid decision")
                .with_detail("the agent service refused the request"),
            Code::AlreadyExists => Problem::new(StatusCode::CONFLICT, "run exists"),
            _ => upstream_failed(e),
        },
        _ => upstream_failed(e),
    }
}

fn upstream_failed(e: &TaskError) -> Problem {
    metrics::counter!("upstream_errors_total", "upstream" => "agent").increment(1);
    // The agent's own message stays in the log: it may name hosts, paths or tools.
    tracing::warn!(error = %e, "the agent service failed");
    Problem::new(StatusCode::BAD_GATEWAY, "agent service error")
        .with_detail("the agent service failed")
}

/// One item of a run as a server-sent event, with the run's sequence number as its `id`
/// when it came from the run (events and error events), so that a reader can resume after
/// it with `Last-Event-ID`.
pub(super) fn event_of(
    item: &Result<TaskEvent, TaskError>,
    sequence: Option<u64>,
    request_id: &str,
) -> Event {
    let (name, data) = match item {
        Ok(ev) => event_data(ev),
        Err(e) => error_data(e, request_id),
    };
    let from_run = matches!(item, Ok(_) | Err(TaskError::Task { .. }));
    let event = Event::default().event(name);
    let event = match sequence.filter(|s| *s > 0 && from_run) {
        Some(s) => event.id(s.to_string()),
        None => event,
    };
    event.json_data(data).unwrap_or_default()
}

/// The SSE name and data of one task event.
fn event_data(ev: &TaskEvent) -> (&'static str, Value) {
    match ev {
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
        TaskEvent::ApprovalRequired {
            id,
            name,
            arguments,
        } => (
            "approval_required",
            json!({ "call_id": id, "name": name, "arguments": arguments }),
        ),
        TaskEvent::FinalAnswer {
            text,
            sources,
            usage,
        } => {
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
                json!({ "answer": text, "sources": sources, "usage": usage_json(usage) }),
            )
        }
        _ => ("other", json!({})),
    }
}

/// The SSE data of a failed task: what kind of failure, never the agent's own message.
fn error_data(e: &TaskError, request_id: &str) -> (&'static str, Value) {
    let (kind, detail) = match e {
        _ if e.is_deadline_exceeded() => ("deadline_exceeded", "the task ran past its deadline"),
        TaskError::Task {
            code: pb::ErrorCode::Cancelled,
            ..
        } => ("cancelled", "the task was cancelled"),
        TaskError::Task {
            code: pb::ErrorCode::LimitExceeded,
            ..
        } => ("limit_exceeded", "the task reached one of its limits"),
        _ => ("agent_error", "the agent service failed"),
    };
    (
        "error",
        json!({
            "type": kind,
            "detail": detail,
            "retryable": e.is_retryable(),
            "request_id": request_id,
        }),
    )
}

/// Settles `charge` with what `item` reports: the final answer's usage (the run's total) or
/// an error's usage. A run stopping for approval keeps its charge (the driver holds it for
/// the decision's call, which settles it with the run's total).
fn settle(charge: &mut Option<Charge>, item: &Result<TaskEvent, TaskError>) {
    let usage = match item {
        Ok(TaskEvent::FinalAnswer { usage, .. }) => {
            count_usage(usage);
            *usage
        }
        Err(e) => match e.usage() {
            Some(usage) => {
                count_usage(usage);
                *usage
            }
            None => return,
        },
        Ok(_) => return,
    };
    if let Some(c) = charge.take() {
        c.settle(&usage);
    }
}

/// Settles `charge` from `item`, counts and logs a failure, and turns `item` into its
/// server-sent event.
fn observe(
    charge: &mut Option<Charge>,
    item: &Result<TaskEvent, TaskError>,
    sequence: u64,
    request_id: &str,
) -> Event {
    settle(charge, item);
    if let Err(e) = item {
        metrics::counter!("upstream_errors_total", "upstream" => "agent").increment(1);
        // The agent's own message stays in the log: it may name hosts, paths or tools.
        tracing::warn!(request_id = %request_id, error = %e, "the agent service failed");
    }
    event_of(item, Some(sequence), request_id)
}

/// The events of a task that lives as long as its request (`agent.durable` off): dropping
/// the stream (the client went away) cancels the call, and the service stops the agent.
pub(super) fn attached(
    stream: TaskStream,
    charge: Charge,
    span: Span,
    request_id: String,
) -> impl Stream<Item = Event> + Send + 'static {
    futures::stream::unfold(
        (stream, Some(charge), span, request_id),
        |(mut stream, mut charge, span, request_id)| async move {
            let (item, sequence) = next_sequenced(&mut stream).await?;
            let event = observe(&mut charge, &item, sequence, &request_id);
            Some((event, (stream, charge, span, request_id)))
        },
    )
}

/// The next item of `stream` with the sequence number of the event it came from.
async fn next_sequenced(stream: &mut TaskStream) -> Option<(Result<TaskEvent, TaskError>, u64)> {
    let item = stream.next().await?;
    Some((item, stream.last_sequence()))
}

/// Drives `stream` (a run's call: `RunTask`, `Decide` or `ResumeTask`) to its end in a task
/// of its own, whether or not anyone reads the events: a client that goes away does not stop
/// the run (it reads the rest from `GET /v1/tasks/{id}`) unless `agent.max_detached_runs`
/// runs already go on without a reader (the run then waits, checkpointed, for `resume`). The returned stream yields the
/// events while its reader keeps up; the driver stops at the gateway's shutdown (the run
/// then waits, checkpointed, for `resume`). `first` is an item already read from `stream`.
pub(super) fn detach(
    state: &Arc<AppState>,
    run_id: String,
    mut stream: TaskStream,
    first: Option<(Result<TaskEvent, TaskError>, u64)>,
    charge: Charge,
    span: Span,
    (caller, request_id): (String, String),
) -> impl Stream<Item = Event> + Send + 'static {
    let (tx, rx) = tokio::sync::mpsc::channel::<Event>(64);
    let mut shutdown = state.shutdown.clone();
    let state = Arc::clone(state);
    if let Ok(mut driving) = state.driving.lock() {
        *driving.entry(run_id.clone()).or_default() += 1;
    }
    tokio::spawn(async move {
        let _span = span;
        let mut charge = Some(charge);
        let mut reader = Some(tx);
        let mut permit: Option<tokio::sync::OwnedSemaphorePermit> = None;
        let stop = async move {
            if shutdown.wait_for(|s| *s).await.is_err() {
                std::future::pending::<()>().await;
            }
        };
        tokio::pin!(stop);
        let mut pending = first;
        loop {
            let next = match pending.take() {
                Some(item) => Some(item),
                None => tokio::select! {
                    item = next_sequenced(&mut stream) => item,
                    () = &mut stop => None,
                },
            };
            let Some((item, sequence)) = next else { break };
            let event = observe(&mut charge, &item, sequence, &request_id);
            if matches!(item, Ok(TaskEvent::ApprovalRequired { .. })) {
                if let Some(c) = charge.take() {
                    hold(&state, &run_id, c);
                }
            }
            if let Some(tx) = &reader {
                if tx.send(event).await.is_err() {
                    reader = None;
                    // Runs nobody reads are capped, per gateway (`agent.max_detached_runs`)
                    // and per key (`limits.max_concurrent_per_key`): past a cap the run
                    // stops here, checkpointed, until someone resumes it.
                    match detach_permit(&state, &caller) {
                        Some(p) => {
                            tracing::info!(run_id = %run_id, "the client went away; the run goes on");
                            permit = Some(p);
                        }
                        None => {
                            tracing::warn!(run_id = %run_id, "the client went away and too many runs go on without one: this run waits for resume");
                            break;
                        }
                    }
                }
            }
        }
        if let Ok(mut driving) = state.driving.lock() {
            if let Some(n) = driving.get_mut(&run_id) {
                *n -= 1;
                if *n == 0 {
                    driving.remove(&run_id);
                }
            }
        }
        if let Some(p) = permit {
            release_permit(&state, &caller, p);
        }
    });
    futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|e| (e, rx)) })
}

/// A permit to go on without a reader: one of the gateway's and one of `caller`'s.
fn detach_permit(state: &AppState, caller: &str) -> Option<tokio::sync::OwnedSemaphorePermit> {
    let mut per_key = state.detached_per_key.lock().ok()?;
    let mine = per_key.get(caller).copied().unwrap_or(0);
    if mine >= state.config.limits.max_concurrent_per_key.max(1) {
        return None;
    }
    let permit = Arc::clone(&state.detached).try_acquire_owned().ok()?;
    per_key.insert(caller.to_owned(), mine + 1);
    Some(permit)
}

/// Gives back what [`detach_permit`] took.
fn release_permit(state: &AppState, caller: &str, permit: tokio::sync::OwnedSemaphorePermit) {
    if let Ok(mut per_key) = state.detached_per_key.lock() {
        if let Some(n) = per_key.get_mut(caller) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                per_key.remove(caller);
            }
        }
    }
    drop(permit);
}

/// Where a run stands, as the API names it.
fn status_name(status: TaskStatus) -> &'static str {
    match status {
        TaskStatus::Running => "running",
        TaskStatus::AwaitingApproval => "awaiting_approval",
        TaskStatus::Completed => "completed",
        TaskStatus::Failed => "failed",
        TaskStatus::Cancelled => "cancelled",
        TaskStatus::Unspecified => "unknown",
    }
}

/// The sequence number after which a reader wants events: `Last-Event-ID`, else 0.
fn last_event_id(headers: &HeaderMap) -> Result<u64, Problem> {
    match headers.get("last-event-id") {
        None => Ok(0),
        Some(v) => v
            .to_str()
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
            .ok_or_else(|| {
                Problem::new(StatusCode::BAD_REQUEST, "invalid Last-Event-ID")
                    .with_detail("Last-Event-ID must be an event id of this run (a number)")
            }),
    }
}

/// A replayed event of the run as an SSE event, and the JSON of the snapshot answer; `None`
/// for a kind of event this gateway does not know (a newer agent service's: skipped).
fn replayed(response: pb::RunTaskResponse, request_id: &str) -> Option<(Event, Value)> {
    let sequence = response.sequence;
    let item = match TaskEvent::from_proto(response) {
        Ok(Some(ev)) => Ok(ev),
        Ok(None) => return None,
        Err(e) => Err(e),
    };
    let (name, data) = match &item {
        Ok(ev) => event_data(ev),
        Err(e) => error_data(e, request_id),
    };
    let event = event_of(&item, Some(sequence), request_id);
    Some((
        event,
        json!({ "id": sequence, "event": name, "data": data }),
    ))
}

/// `GET /v1/tasks/{id}`: where the run stands and its events after `Last-Event-ID`. With
/// `Accept: text/event-stream` the events stream as server-sent events and the stream
/// follows the run until it finishes, fails, or stops for approval; otherwise a JSON
/// snapshot: `{ run_id, status, events: [{ id, event, data }] }`.
pub(crate) async fn get(
    State(state): State<Arc<AppState>>,
    caller: Option<Extension<Caller>>,
    Path(run_id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    durable_only(&state)?;
    let Caller { tenant, .. } = caller_of(caller.as_deref());
    owned(&tenant, &run_id)?;
    let after = last_event_id(&headers)?;
    let agent = agent_of(&state)?.with_default_timeout(GET_TIMEOUT);
    let first = agent
        .get_task(run_id.clone(), after.saturating_add(1))
        .await
        .map_err(|e| problem_of(&e))?;
    let id = request_id().to_string();
    let wants_stream = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/event-stream"));
    if !wants_stream {
        let status = status_name(first.status());
        let events: Vec<Value> = first
            .events
            .into_iter()
            .filter(|e| e.sequence > after)
            .filter_map(|e| replayed(e, &id).map(|(_, json)| json))
            .collect();
        return Ok(
            Json(json!({ "run_id": run_id, "status": status, "events": events })).into_response(),
        );
    }
    struct Follow {
        agent: AgentServiceClient,
        run_id: String,
        after: u64,
        queue: VecDeque<Event>,
        status: TaskStatus,
        request_id: String,
        fetched: bool,
        pause: Duration,
    }
    let mut follow = Follow {
        agent,
        run_id,
        after,
        queue: VecDeque::new(),
        status: first.status(),
        request_id: id,
        fetched: true,
        pause: POLL,
    };
    follow.take(first.events);
    impl Follow {
        fn take(&mut self, events: Vec<pb::RunTaskResponse>) {
            for e in events {
                if e.sequence > self.after {
                    self.after = e.sequence;
                    if let Some((event, _)) = replayed(e, &self.request_id) {
                        self.queue.push_back(event);
                    }
                }
            }
        }
    }
    let events = futures::stream::unfold(follow, |mut f| async move {
        loop {
            if let Some(event) = f.queue.pop_front() {
                return Some((event, f));
            }
            if f.fetched && f.status != TaskStatus::Running {
                return None;
            }
            tokio::time::sleep(f.pause).await;
            match f
                .agent
                .get_task(f.run_id.clone(), f.after.saturating_add(1))
                .await
            {
                Ok(answer) => {
                    f.status = answer.status();
                    f.fetched = true;
                    // Polls back off while the run shows no progress, up to POLL_MAX.
                    f.pause = if answer.events.is_empty() {
                        (f.pause * 2).min(POLL_MAX)
                    } else {
                        POLL
                    };
                    f.take(answer.events);
                }
                Err(e) => {
                    f.status = TaskStatus::Unspecified;
                    let item = Err(e);
                    let event = event_of(&item, None, &f.request_id);
                    return Some((event, f));
                }
            }
        }
    });
    Ok(sse(guard(events, &state)))
}

/// The body of `POST /v1/tasks/{id}/approve`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ApproveBody {
    /// The call to approve; default: the one the run waits for.
    #[serde(default)]
    call_id: Option<String>,
    /// Replacement arguments (a JSON object); default: the model's own.
    #[serde(default)]
    arguments: Option<Value>,
}

/// The body of `POST /v1/tasks/{id}/reject`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RejectBody {
    /// The call to reject; default: the one the run waits for.
    #[serde(default)]
    call_id: Option<String>,
    /// What the model is told; default: that a person rejected the call.
    #[serde(default)]
    message: Option<String>,
}

/// The body of `POST /v1/tasks/{id}/cancel`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CancelBody {
    /// The call the run waits for; default: whichever it is.
    #[serde(default)]
    call_id: Option<String>,
}

/// `POST /v1/tasks/{id}/approve`: runs the waiting tool call (with `arguments` if given)
/// and streams the continued run.
pub(crate) async fn approve(
    state: State<Arc<AppState>>,
    caller: Option<Extension<Caller>>,
    run_id: Path<String>,
    Body(body): Body<ApproveBody>,
) -> Result<Response, Problem> {
    let arguments = match body.arguments {
        None => None,
        Some(v @ Value::Object(_)) => Some(v.to_string()),
        Some(_) => {
            return Err(Problem::invalid_field(
                "arguments",
                "must be a JSON object (the tool's arguments)",
            ))
        }
    };
    decide(
        state,
        caller,
        run_id,
        body.call_id,
        Decision::Approve { arguments },
    )
    .await
}

/// `POST /v1/tasks/{id}/reject`: the waiting tool call does not run; the model is told
/// `message` and goes on. Streams the continued run.
pub(crate) async fn reject(
    state: State<Arc<AppState>>,
    caller: Option<Extension<Caller>>,
    run_id: Path<String>,
    Body(body): Body<RejectBody>,
) -> Result<Response, Problem> {
    let message = body
        .message
        .unwrap_or_else(|| "A person rejected this tool call.".to_owned());
    if message.trim().is_empty() || message.len() > 4_000 {
        return Err(Problem::invalid_field("message", "must be 1 to 4000 bytes"));
    }
    decide(
        state,
        caller,
        run_id,
        body.call_id,
        Decision::Reject { message },
    )
    .await
}

/// `POST /v1/tasks/{id}/cancel`: ends a run waiting for approval; the stream carries its
/// terminal `error` event of type `cancelled`.
pub(crate) async fn cancel(
    state: State<Arc<AppState>>,
    caller: Option<Extension<Caller>>,
    run_id: Path<String>,
    Body(body): Body<CancelBody>,
) -> Result<Response, Problem> {
    decide(state, caller, run_id, body.call_id, Decision::Cancel).await
}

/// Sends a decision about the call the run waits for and streams the continued run.
async fn decide(
    State(state): State<Arc<AppState>>,
    caller: Option<Extension<Caller>>,
    Path(run_id): Path<String>,
    call_id: Option<String>,
    decision: Decision,
) -> Result<Response, Problem> {
    let (caller, agent) = authorize(&state, caller.as_deref(), &run_id)?;
    let call_id = match call_id {
        Some(c) if !c.is_empty() && c.len() <= 200 => c,
        Some(_) => return Err(Problem::invalid_field("call_id", "must be 1 to 200 bytes")),
        None => waiting_call(&agent, &run_id).await?,
    };
    let held = take_held(&state, &run_id);
    continue_run(&state, &caller, run_id, held, "Decide", |agent, run_id| {
        agent.decide(run_id, call_id, decision)
    })
    .await
}

/// The caller's key id and the agent service, for an action on `run_id`: 404 unless
/// durable runs are on and the run is the caller's tenant's; 503 without an agent service.
fn authorize(
    state: &AppState,
    caller: Option<&Caller>,
    run_id: &str,
) -> Result<(String, AgentServiceClient), Problem> {
    durable_only(state)?;
    let Caller { id, tenant, .. } = caller_of(caller);
    owned(&tenant, run_id)?;
    Ok((id, agent_of(state)?))
}

/// The id of the tool call `run_id` waits for; 409 when it waits for none.
async fn waiting_call(agent: &AgentServiceClient, run_id: &str) -> Result<String, Problem> {
    let answer = agent
        .clone()
        .with_default_timeout(GET_TIMEOUT)
        .get_task(run_id.to_owned(), 0)
        .await
        .map_err(|e| problem_of(&e))?;
    let waiting = (answer.status() == TaskStatus::AwaitingApproval)
        .then(|| {
            answer.events.into_iter().rev().find_map(|e| match e.event {
                Some(pb::run_task_response::Event::ApprovalRequired(a)) => Some(a.call_id),
                _ => None,
            })
        })
        .flatten();
    waiting.ok_or_else(|| {
        Problem::new(StatusCode::CONFLICT, "not waiting for a decision")
            .with_detail("the task run is not waiting for anyone's approval")
    })
}

/// `POST /v1/tasks/{id}/resume`: continues a run that stopped without finishing (its
/// gateway or agent service restarted) and streams the rest. 409 while this gateway is
/// driving the run.
pub(crate) async fn resume(
    State(state): State<Arc<AppState>>,
    caller: Option<Extension<Caller>>,
    Path(run_id): Path<String>,
) -> Result<Response, Problem> {
    let (caller, agent) = authorize(&state, caller.as_deref(), &run_id)?;
    let driven = state
        .driving
        .lock()
        .map(|d| d.contains_key(&run_id))
        .unwrap_or(true);
    if driven {
        return Err(Problem::new(StatusCode::CONFLICT, "the run is going on")
            .with_detail("this task run is being driven now: follow it with GET /v1/tasks/{id}"));
    }
    // Only a run that stopped on its way (a restart, a cap) is resumed: a finished one, or
    // one waiting for a decision, has nothing to continue.
    let status = agent
        .with_default_timeout(GET_TIMEOUT)
        .get_task(run_id.clone(), u64::MAX)
        .await
        .map_err(|e| problem_of(&e))?
        .status();
    if status != TaskStatus::Running {
        return Err(
            Problem::new(StatusCode::CONFLICT, "nothing to resume").with_detail(format!(
                "the task run is {}, not running",
                status_name(status)
            )),
        );
    }
    continue_run(
        &state,
        &caller,
        run_id,
        None,
        "ResumeTask",
        |agent, run_id| agent.resume_task(run_id),
    )
    .await
}

/// A reservation of a whole task's tokens for `caller` (the agent's cap, or the key's whole
/// token budget when smaller: no run can have started with more); 429 when what is left
/// cannot cover it.
async fn full_reservation(state: &AppState, caller: &str) -> Result<Charge, Problem> {
    refuse_spent_budget(state, caller)?;
    let full = state
        .config
        .limits
        .token_budget
        .map_or(catena_agents::grpc::DEFAULT_MAX_TOKENS, |b| {
            b.min(catena_agents::grpc::DEFAULT_MAX_TOKENS)
        });
    let charge = reserve_budget(state, caller, 0, full).await?;
    if budgets_limited(state) && charge.amount() < full {
        charge.settle(&Usage::default());
        return Err(
            Problem::new(StatusCode::TOO_MANY_REQUESTS, "budget too low").with_detail(
                "what is left of this key's budget cannot cover continuing a task run",
            ),
        );
    }
    Ok(charge)
}

/// Uses the reservation held for the run (a decision) or a whole task's (see
/// [`full_reservation`]), makes the call (`call`, on the agent
/// client with the task deadline), reads its first item (so that a refusal becomes an HTTP
/// error and costs nothing), then drives the rest detached and streams it.
async fn continue_run(
    state: &Arc<AppState>,
    caller: &str,
    run_id: String,
    held: Option<Charge>,
    method: &'static str,
    call: impl FnOnce(AgentServiceClient, String) -> TaskStream,
) -> Result<Response, Problem> {
    // `held`: the reservation the run made before it stopped for approval (a decision on
    // the gateway that holds it); otherwise a new one, which must cover a whole task: the
    // run goes on under the token limit it started with, which a partial reservation
    // would not cover.
    let was_held = held.is_some();
    let charge = match held {
        Some(c) => c,
        None => full_reservation(state, caller).await?,
    };
    let timeout = Duration::from_secs(state.config.agent.task_timeout_secs.max(1));
    let id = request_id().to_string();
    // A client span for the call, whose context travels in the gRPC metadata (the agent
    // service's spans join the trace); it lives as long as the gateway drives the run.
    let span = tracing::info_span!(
        "agent.delegate",
        otel.name = %format!("catena.agent.v1.AgentService/{method}"),
        otel.kind = "client",
        rpc.system = "grpc",
        rpc.service = "catena.agent.v1.AgentService",
        rpc.method = method,
        request_id = %id,
        run_id = %run_id,
    );
    let mut agent = agent_of(state)?.with_default_timeout(timeout);
    for (name, value) in catena_agents::otel::headers_of(&span) {
        agent = agent.with_metadata(&name, &value);
    }
    let mut stream = call(agent, run_id.clone());
    let first = next_sequenced(&mut stream).await;
    if let Some((Err(e @ (TaskError::Status { .. } | TaskError::Connect { .. })), _)) = &first {
        // Refused before it started: nothing ran. A held reservation goes on waiting for a
        // decision that is accepted; a new one is given back.
        if was_held {
            hold(state, &run_id, charge);
        } else {
            charge.settle(&Usage::default());
        }
        return Err(problem_of(e));
    }
    let events = detach(
        state,
        run_id,
        stream,
        first,
        charge,
        span,
        (caller.to_owned(), id),
    );
    Ok(sse(guard(events, state)))
}
