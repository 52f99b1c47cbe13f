//! The HTTP handlers.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Response};
use axum::{Extension, Json};
use catena_agents::grpc::{TaskEvent, TaskLimits, TaskRequest};
use catena_chains::indexing::{index, Cleanup, IndexOptions};
use catena_core::prompt::ChatPromptTemplate;
use catena_core::splitter::{RecursiveCharacterTextSplitter, TextSplitter};
use catena_core::{ChatChunk, ChatRequest, Document, ScoredDocument, Usage, VectorStoreRetriever};
use futures::{Stream, StreamExt};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use tokio::sync::watch;
use tracing::Instrument;

use crate::auth::Caller;
use crate::problem::Problem;
use crate::{caller_of, AppState};

const MAX_QUESTION_CHARS: usize = 4000;
const MAX_DOCUMENTS: usize = 1000;
const MAX_SOURCE_CHARS: usize = 512;
const MAX_K: usize = 20;

/// A JSON body whose rejections are problem details: 400 malformed, 413 too large, 415 wrong
/// type, 422 wrong shape (naming the field).
pub(crate) struct Body<T>(pub(crate) T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Body<T> {
    type Rejection = Problem;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(v)) => Ok(Body(v)),
            Err(rejection) => Err(json_problem(rejection)),
        }
    }
}

fn json_problem(rejection: JsonRejection) -> Problem {
    match rejection {
        JsonRejection::JsonSyntaxError(e) => {
            Problem::new(StatusCode::BAD_REQUEST, "malformed JSON").with_detail(e.body_text())
        }
        JsonRejection::JsonDataError(e) => {
            let text = e.body_text();
            let text = text
                .strip_prefix("Failed to deserialize the JSON body into the target type: ")
                .unwrap_or(&text)
                .to_owned();
            let (field, message) = match text.split_once(": ") {
                Some((f, m)) if !f.contains(' ') => (f.to_owned(), m.to_owned()),
                _ => (".".to_owned(), text.clone()),
            };
            Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid request")
                .with_detail(text)
                .with_field(field, message)
        }
        JsonRejection::MissingJsonContentType(_) => {
            Problem::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported media type")
                .with_detail("send `Content-Type: application/json`")
        }
        JsonRejection::BytesRejection(e) => {
            let status = e.status();
            if status == StatusCode::PAYLOAD_TOO_LARGE {
                Problem::new(status, "request body too large").with_detail(e.body_text())
            } else {
                Problem::new(status, "cannot read the request body").with_detail(e.body_text())
            }
        }
        other => Problem::new(other.status(), "invalid request").with_detail(other.body_text()),
    }
}

// ------------------------------------------------------------------ pages and probes

pub(crate) async fn index_page() -> Html<&'static str> {
    Html(include_str!("../static/index.html"))
}

pub(crate) async fn healthz() -> &'static str {
    "ok"
}

pub(crate) async fn readyz(State(state): State<Arc<AppState>>) -> Response {
    let mut checks = Map::new();
    let mut ready = state.ready.load(Ordering::SeqCst);
    checks.insert("accepting".into(), json!(ready));
    let store = tokio::time::timeout(Duration::from_secs(2), state.store.count(None)).await;
    let store_ok = matches!(store, Ok(Ok(_)));
    checks.insert("vector_store".into(), json!(store_ok));
    ready &= store_ok;
    if let Some(channel) = &state.agent_channel {
        let mut health = tonic_health::pb::health_client::HealthClient::new(channel.clone());
        let check = tokio::time::timeout(
            Duration::from_secs(2),
            health.check(tonic_health::pb::HealthCheckRequest {
                service: String::new(),
            }),
        )
        .await;
        let serving = matches!(&check, Ok(Ok(r)) if r.get_ref().status == 1);
        checks.insert("agent_service".into(), json!(serving));
        ready &= serving;
    }
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(json!({ "ready": ready, "checks": checks }))).into_response()
}

pub(crate) async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
        .into_response()
}

// ------------------------------------------------------------------ ingest

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct IngestRequest {
    documents: Vec<IngestDocument>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct IngestDocument {
    /// Where the text comes from; ingesting the same source again replaces its chunks.
    source: String,
    content: String,
    #[serde(default)]
    metadata: Map<String, Value>,
}

#[derive(Debug, Serialize)]
pub(crate) struct IngestReport {
    documents: usize,
    chunks: usize,
    added: usize,
    updated: usize,
    skipped: usize,
    deleted: usize,
}

pub(crate) async fn ingest(
    State(state): State<Arc<AppState>>,
    Body(body): Body<IngestRequest>,
) -> Result<Json<IngestReport>, Problem> {
    if body.documents.is_empty() {
        return Err(Problem::invalid_field("documents", "must not be empty"));
    }
    if body.documents.len() > MAX_DOCUMENTS {
        return Err(Problem::invalid_field(
            "documents",
            format!("at most {MAX_DOCUMENTS} per request"),
        ));
    }
    for (i, d) in body.documents.iter().enumerate() {
        if d.source.trim().is_empty() || d.source.chars().count() > MAX_SOURCE_CHARS {
            return Err(Problem::invalid_field(
                &format!("documents[{i}].source"),
                format!("must be 1 to {MAX_SOURCE_CHARS} characters"),
            ));
        }
        if d.content.trim().is_empty() {
            return Err(Problem::invalid_field(
                &format!("documents[{i}].content"),
                "must not be empty",
            ));
        }
    }
    let builder = match &state.chunk_tokens {
        Some((length, max_tokens)) => RecursiveCharacterTextSplitter::builder()
            .chunk_size(*max_tokens)
            .chunk_overlap(max_tokens / 10)
            .length_function(length.clone()),
        None => RecursiveCharacterTextSplitter::builder()
            .chunk_size(state.config.rag.chunk_size)
            .chunk_overlap(state.config.rag.chunk_overlap),
    };
    let splitter = builder.build().map_err(|e| Problem::from_catena(&e))?;
    let n = body.documents.len();
    let docs: Vec<Document> = body
        .documents
        .into_iter()
        .map(|d| {
            Document::new(d.content)
                .with_metadata_map(d.metadata)
                .with_metadata("source", d.source)
        })
        .collect();
    let chunks = splitter.split_documents(&docs);
    let chunk_count = chunks.len();
    let options = IndexOptions::new().cleanup(Cleanup::Incremental);
    let work = index(
        chunks,
        &*state.records,
        &*state.store,
        &*state.embedder,
        &options,
    );
    let report = tokio::time::timeout(state.request_timeout(), work)
        .await
        .map_err(|_| timeout_problem())?
        .map_err(|e| upstream("ingest", &e))?;
    Ok(Json(IngestReport {
        documents: n,
        chunks: chunk_count,
        added: report.added,
        updated: report.updated,
        skipped: report.skipped,
        deleted: report.deleted,
    }))
}

fn timeout_problem() -> Problem {
    Problem::new(StatusCode::GATEWAY_TIMEOUT, "request timed out")
}

fn upstream(what: &'static str, e: &catena_core::Error) -> Problem {
    if !matches!(e, catena_core::Error::InvalidInput(_)) {
        metrics::counter!("upstream_errors_total", "upstream" => what).increment(1);
        tracing::warn!(error = %e, upstream = what, "upstream failure");
    }
    Problem::from_catena(e)
}

// ------------------------------------------------------------------ query

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct QueryRequest {
    question: String,
    #[serde(default)]
    k: Option<usize>,
    #[serde(default)]
    stream: bool,
}

#[derive(Debug, Serialize)]
struct SourceOut {
    id: Option<String>,
    source: Option<String>,
    score: f32,
    excerpt: String,
}

fn sources_of(hits: &[ScoredDocument]) -> Vec<SourceOut> {
    hits.iter()
        .map(|h| SourceOut {
            id: h.document.id.as_ref().map(ToString::to_string),
            source: h.document.source().map(str::to_owned),
            score: h.score,
            excerpt: h.document.content.chars().take(240).collect(),
        })
        .collect()
}

fn usage_json(u: &Usage) -> Value {
    json!({ "input_tokens": u.input_tokens, "output_tokens": u.output_tokens, "total_tokens": u.input_tokens + u.output_tokens })
}

/// The `k` chunks closest to `text`, in a `retrieval` span, within the request timeout.
async fn retrieve(state: &AppState, text: &str, k: usize) -> Result<Vec<ScoredDocument>, Problem> {
    let retriever =
        VectorStoreRetriever::new(Arc::clone(&state.embedder), Arc::clone(&state.store)).with_k(k);
    let span = tracing::info_span!("retrieval", otel.kind = "internal", retrieval.k = k);
    tokio::time::timeout(
        state.request_timeout(),
        retriever.retrieve_scored(text).instrument(span),
    )
    .await
    .map_err(|_| timeout_problem())?
    .map_err(|e| upstream("retrieval", &e))
}

fn validate_k(k: Option<usize>, default: usize) -> Result<usize, Problem> {
    match k {
        None => Ok(default),
        Some(k) if (1..=MAX_K).contains(&k) => Ok(k),
        Some(_) => Err(Problem::invalid_field("k", format!("must be 1 to {MAX_K}"))),
    }
}

fn validate_text(field: &str, text: &str) -> Result<(), Problem> {
    if text.trim().is_empty() {
        return Err(Problem::invalid_field(field, "must not be empty"));
    }
    if text.chars().count() > MAX_QUESTION_CHARS {
        return Err(Problem::invalid_field(
            field,
            format!("must be at most {MAX_QUESTION_CHARS} characters"),
        ));
    }
    Ok(())
}

fn wants_stream(headers: &HeaderMap, flag: bool) -> bool {
    flag || headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/event-stream"))
}

fn check_budget(state: &AppState, caller: &str) -> Result<(), Problem> {
    state.budgets.check(caller).map_err(|after| {
        Problem::new(StatusCode::TOO_MANY_REQUESTS, "token budget spent")
            .with_type("https://catena.dev/problems/token-budget")
            .with_detail("this API key has used its model-token budget for the current window")
            .with_retry_after(after)
    })
}

fn record_usage(state: &AppState, caller: &str, usage: &Usage) {
    state
        .budgets
        .record(caller, usage.input_tokens + usage.output_tokens);
    metrics::counter!("model_tokens_total", "direction" => "input").increment(usage.input_tokens);
    metrics::counter!("model_tokens_total", "direction" => "output").increment(usage.output_tokens);
}

fn rag_request(
    state: &AppState,
    question: &str,
    hits: &[ScoredDocument],
) -> Result<ChatRequest, Problem> {
    let prompt = ChatPromptTemplate::builder()
        .system(
            "Answer the question using only the context below. If the context does not \
             contain the answer, say you do not know.\n\nContext:\n{context}",
        )
        .user("{question}")
        .build()
        .map_err(|e| Problem::from_catena(&catena_core::Error::from(e)))?;
    let context = hits
        .iter()
        .map(|h| h.document.content.as_str())
        .collect::<Vec<_>>()
        .join("\n\n---\n\n");
    let messages = prompt
        .format_messages([("context", context.as_str()), ("question", question)])
        .map_err(|e| Problem::from_catena(&catena_core::Error::from(e)))?;
    Ok(ChatRequest::new(messages).with_max_tokens(state.config.rag.max_answer_tokens))
}

pub(crate) async fn query(
    State(state): State<Arc<AppState>>,
    caller: Option<Extension<Caller>>,
    headers: HeaderMap,
    Body(body): Body<QueryRequest>,
) -> Result<Response, Problem> {
    let caller = caller_of(caller.as_deref());
    validate_text("question", &body.question)?;
    let k = validate_k(body.k, state.config.rag.k)?;
    check_budget(&state, &caller)?;
    let hits = retrieve(&state, &body.question, k).await?;
    let request = rag_request(&state, &body.question, &hits)?;

    if wants_stream(&headers, body.stream) {
        let upstream_stream = state
            .chat
            .stream(request)
            .await
            .map_err(|e| upstream("model", &e))?;
        let first = Event::default()
            .event("sources")
            .json_data(sources_of(&hits))
            .unwrap_or_default();
        let st = Arc::clone(&state);
        // Usage may come after the finish reason (OpenAI sends it last): `done` closes the
        // stream once the upstream has ended, carrying both.
        let finish = Arc::new(std::sync::Mutex::new(None::<String>));
        let finish_in = Arc::clone(&finish);
        let failed = Arc::new(AtomicBool::new(false));
        let failed_in = Arc::clone(&failed);
        let events = upstream_stream.filter_map(move |chunk| {
            let event = match chunk {
                Ok(ChatChunk::TextDelta(t)) => Some(
                    Event::default()
                        .event("token")
                        .json_data(json!({ "text": t }))
                        .unwrap_or_default(),
                ),
                Ok(ChatChunk::Usage(u)) => {
                    record_usage(&st, &caller, &u);
                    Some(
                        Event::default()
                            .event("usage")
                            .json_data(usage_json(&u))
                            .unwrap_or_default(),
                    )
                }
                Ok(ChatChunk::Finish(reason)) => {
                    if let Ok(mut f) = finish_in.lock() {
                        *f = Some(format!("{reason:?}").to_lowercase());
                    }
                    None
                }
                Ok(_) => None,
                Err(e) => {
                    failed_in.store(true, Ordering::SeqCst);
                    let p = upstream("model", &e);
                    Some(
                        Event::default()
                            .event("error")
                            .json_data(&p)
                            .unwrap_or_default(),
                    )
                }
            };
            async move { event }
        });
        let done = futures::stream::once(async move {
            if failed.load(Ordering::SeqCst) {
                return None;
            }
            let reason = finish.lock().ok().and_then(|f| f.clone());
            Some(
                Event::default()
                    .event("done")
                    .json_data(json!({ "finish_reason": reason }))
                    .unwrap_or_default(),
            )
        })
        .filter_map(|e| async move { e });
        let events = futures::stream::once(async move { first })
            .chain(events)
            .chain(done);
        return Ok(sse(guard(events, &state)));
    }

    let answer = tokio::time::timeout(state.request_timeout(), state.chat.generate(request))
        .await
        .map_err(|_| timeout_problem())?
        .map_err(|e| upstream("model", &e))?;
    let usage = answer.usage.unwrap_or_default();
    record_usage(&state, &caller, &usage);
    Ok(Json(json!({
        "answer": answer.message.text(),
        "sources": sources_of(&hits),
        "usage": usage_json(&usage),
        "model": answer.model,
    }))
    .into_response())
}

type EventStream = Pin<Box<dyn Stream<Item = Result<Event, Infallible>> + Send>>;

fn sse(events: EventStream) -> Response {
    Sse::new(events)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response()
}

/// Ends `events` with a terminal `error` event when nothing arrives for the idle timeout or
/// the gateway shuts down. Dropping the result (a client that went away) drops `events`,
/// which cancels the upstream model stream or delegated task.
fn guard(events: impl Stream<Item = Event> + Send + 'static, state: &AppState) -> EventStream {
    struct Guard {
        inner: Pin<Box<dyn Stream<Item = Event> + Send>>,
        shutdown: watch::Receiver<bool>,
        idle: Duration,
        done: bool,
    }
    let g = Guard {
        inner: Box::pin(events),
        shutdown: state.shutdown.clone(),
        idle: Duration::from_secs(state.config.limits.stream_idle_timeout_secs.max(1)),
        done: false,
    };
    let terminal = |kind: &str, detail: &str| {
        Event::default()
            .event("error")
            .json_data(json!({ "type": kind, "detail": detail }))
            .unwrap_or_default()
    };
    Box::pin(futures::stream::unfold(g, move |mut g| async move {
        if g.done {
            return None;
        }
        if *g.shutdown.borrow() {
            g.done = true;
            return Some((Ok(terminal("shutdown", "the gateway is shutting down")), g));
        }
        let next = {
            let Guard {
                inner,
                shutdown,
                idle,
                ..
            } = &mut g;
            tokio::select! {
                item = tokio::time::timeout(*idle, inner.next()) => Some(item),
                _ = shutdown.changed() => None,
            }
        };
        match next {
            None => {
                g.done = true;
                Some((Ok(terminal("shutdown", "the gateway is shutting down")), g))
            }
            Some(Err(_)) => {
                g.done = true;
                Some((
                    Ok(terminal(
                        "idle_timeout",
                        "the upstream sent nothing for too long",
                    )),
                    g,
                ))
            }
            Some(Ok(None)) => None,
            Some(Ok(Some(event))) => Some((Ok(event), g)),
        }
    }))
}

// ------------------------------------------------------------------ tasks

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

fn request_id() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros())
        .unwrap_or_default();
    format!("req-{t:x}-{n}")
}

pub(crate) async fn task(
    State(state): State<Arc<AppState>>,
    caller: Option<Extension<Caller>>,
    Body(body): Body<TaskBody>,
) -> Result<Response, Problem> {
    let caller = caller_of(caller.as_deref());
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
    check_budget(&state, &caller)?;
    let hits = retrieve(&state, &body.task, k).await?;
    let mut limits = TaskLimits::new();
    if let Some(steps) = body.max_steps {
        limits = limits.with_max_steps(steps);
    }
    let id = request_id();
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
    for (name, value) in catena_agents::grpc::otel::headers_of(&call_span) {
        agent = agent.with_metadata(&name, &value);
    }
    let st = Arc::clone(&state);
    let first = Event::default()
        .event("accepted")
        .json_data(json!({ "request_id": id }))
        .unwrap_or_default();
    let events = agent.run_task(request).map(move |item| match item {
        Ok(ev) => task_event(&st, &caller, ev),
        Err(e) => {
            metrics::counter!("upstream_errors_total", "upstream" => "agent").increment(1);
            Event::default()
                .event("error")
                .json_data(json!({
                    "type": if e.is_deadline_exceeded() { "deadline_exceeded" } else { "agent_error" },
                    "detail": e.to_string(),
                    "retryable": e.is_retryable(),
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

fn task_event(state: &AppState, caller: &str, ev: TaskEvent) -> Event {
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
            record_usage(state, caller, &usage);
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

impl AppState {
    pub(crate) fn request_timeout(&self) -> Duration {
        Duration::from_secs(self.config.limits.request_timeout_secs.max(1))
    }
}
