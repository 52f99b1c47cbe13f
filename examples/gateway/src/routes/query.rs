//! `POST /v1/query`: answer a question with retrieval-augmented generation, with its sources;
//! as JSON, or with `Accept: text/event-stream` (or `"stream": true`) as server-sent events.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock};

use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::response::sse::Event;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use catena_chains::{QaEvent, RetrievalQa};
use catena_core::prompt::{ChatPromptTemplate, PromptError};
use catena_core::{ScoredDocument, Usage};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::body::{validate_k, validate_text, Body};
use super::sse::{guard, sse};
use super::upstream::{
    budget_spent, budgets_limited, count_usage, estimate_tokens, refuse_spent_budget,
    reserve_budget, tenant_retriever, timeout_problem, upstream, upstream_for, usage_json,
};
use crate::auth::Caller;
use crate::middleware::trace::request_id;
use crate::problem::Problem;
use crate::state::{caller_of, AppState};

/// The body of `POST /v1/query`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct QueryRequest {
    question: String,
    #[serde(default)]
    k: Option<usize>,
    #[serde(default)]
    stream: bool,
}

/// One source of an answer, as the client sees it.
#[derive(Debug, Serialize)]
struct SourceOut {
    id: Option<String>,
    source: Option<String>,
    score: f32,
    excerpt: String,
}

/// The sources of an answer from its retrieved chunks.
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

/// Whether the client asked for server-sent events (the body flag or the `Accept` header).
fn wants_stream(headers: &HeaderMap, flag: bool) -> bool {
    flag || headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/event-stream"))
}

/// The answer prompt: the retrieved chunks as context, then the question.
const RAG_SYSTEM_PROMPT: &str = "Answer the question using only the context below. If the \
    context does not contain the answer, say you do not know.\n\nContext:\n{context}";

/// Chunks in the context are separated by a rule.
const CONTEXT_SEPARATOR: &str = "\n\n---\n\n";

/// The RAG chain of one request: the library's [`RetrievalQa`] over `tenant`'s `k` nearest
/// chunks (in a `retrieval` span), with the gateway's prompt and answer length.
fn rag_chain(state: &AppState, tenant: &str, k: usize) -> Result<RetrievalQa, Problem> {
    let internal = |e: catena_core::Error| Problem::from_catena(&e);
    // The template is parsed once per process; each request clones it.
    static PROMPT: LazyLock<Result<ChatPromptTemplate, PromptError>> = LazyLock::new(|| {
        ChatPromptTemplate::builder()
            .system(RAG_SYSTEM_PROMPT)
            .user("{question}")
            .build()
    });
    let prompt = PROMPT.clone().map_err(|e| internal(e.into()))?;
    RetrievalQa::builder(tenant_retriever(state, tenant, k), Arc::clone(&state.chat))
        .prompt(prompt)
        .document_separator(CONTEXT_SEPARATOR)
        .max_tokens(state.config.rag.max_answer_tokens)
        .build()
        .map_err(internal)
}

/// `POST /v1/query`: checks the question and the budget, retrieves `k` chunks and answers
/// from them, as JSON or as server-sent events (`sources`, `token`, `usage`, `done`, or a
/// terminal `error`).
pub(crate) async fn query(
    State(state): State<Arc<AppState>>,
    caller: Option<Extension<Caller>>,
    headers: HeaderMap,
    Body(body): Body<QueryRequest>,
) -> Result<Response, Problem> {
    let Caller {
        id: caller, tenant, ..
    } = caller_of(caller.as_deref());
    validate_text("question", &body.question)?;
    let k = validate_k(body.k, state.config.rag.k)?;
    // Nothing left: refuse before the retrieval costs anything.
    refuse_spent_budget(&state, &caller)?;
    let qa = rag_chain(&state, &tenant, k)?;
    let mut prepared = tokio::time::timeout(state.request_timeout(), qa.prepare(&body.question))
        .await
        .map_err(|_| timeout_problem())?
        .map_err(|e| upstream("retrieval", &e))?;
    // Reserve the prompt and the longest answer; a smaller reservation (all that is left)
    // shortens the answer, and one that cannot pay for the prompt is refused.
    let input = prepared
        .request()
        .messages
        .iter()
        .map(|m| estimate_tokens(&m.text()) + 4)
        .sum::<u64>();
    let answer_tokens = u64::from(state.config.rag.max_answer_tokens);
    let reservation = reserve_budget(&state, &caller, input, answer_tokens).await?;
    if budgets_limited(&state) {
        let allowance = reservation.answer_allowance(input);
        if allowance == 0 {
            reservation.settle(&Usage::new(0, 0));
            return Err(budget_spent("token", std::time::Duration::from_secs(1))
                .with_detail("what is left of this API key's model budget cannot pay for the question and its context"));
        }
        if allowance < answer_tokens {
            prepared = prepared.with_max_tokens(u32::try_from(allowance).unwrap_or(u32::MAX));
        }
    }

    if wants_stream(&headers, body.stream) {
        let upstream_stream = match prepared.stream().await {
            Ok(s) => s,
            Err(e) => {
                reservation.settle(&Usage::new(input, 0));
                return Err(upstream("model", &e));
            }
        };
        // Settled with the reported usage; at the end without one, with an estimate of what
        // streamed; dropped with the stream (the client went away), in full.
        let reservation = Arc::new(std::sync::Mutex::new(Some(reservation)));
        let streamed = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let (res_in, streamed_in) = (Arc::clone(&reservation), Arc::clone(&streamed));
        let id = request_id();
        // Usage may come after the finish reason (OpenAI sends it last): `done` closes the
        // stream once the upstream has ended, carrying both.
        let finish = Arc::new(std::sync::Mutex::new(None::<String>));
        let finish_in = Arc::clone(&finish);
        let failed = Arc::new(AtomicBool::new(false));
        let failed_in = Arc::clone(&failed);
        let events = upstream_stream.filter_map(move |event| {
            let event = match event {
                // The chain streams the sources first, before the model answers.
                Ok(QaEvent::Sources(hits)) => Some(
                    Event::default()
                        .event("sources")
                        .json_data(sources_of(&hits))
                        .unwrap_or_default(),
                ),
                Ok(QaEvent::Token(t)) => {
                    streamed_in.fetch_add(estimate_tokens(&t), Ordering::Relaxed);
                    Some(
                        Event::default()
                            .event("token")
                            .json_data(json!({ "text": t }))
                            .unwrap_or_default(),
                    )
                }
                Ok(QaEvent::Usage(u)) => {
                    count_usage(&u);
                    if let Some(r) = res_in.lock().ok().and_then(|mut r| r.take()) {
                        r.settle(&u);
                    }
                    Some(
                        Event::default()
                            .event("usage")
                            .json_data(usage_json(&u))
                            .unwrap_or_default(),
                    )
                }
                Ok(QaEvent::Finish(reason)) => {
                    if let Ok(mut f) = finish_in.lock() {
                        *f = Some(format!("{reason:?}").to_lowercase());
                    }
                    None
                }
                Ok(_) => None,
                Err(e) => {
                    failed_in.store(true, Ordering::SeqCst);
                    if let Some(r) = res_in.lock().ok().and_then(|mut r| r.take()) {
                        r.settle(&Usage::new(input, streamed_in.load(Ordering::Relaxed)));
                    }
                    let p = upstream_for(&id, "model", &e);
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
            // Ended without reported usage: what was sent and what streamed.
            if let Some(r) = reservation.lock().ok().and_then(|mut r| r.take()) {
                r.settle(&Usage::new(input, streamed.load(Ordering::Relaxed)));
            }
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
        let events = events.chain(done);
        return Ok(sse(guard(events, &state)));
    }

    // A timeout drops the reservation: charged in full.
    let answer = tokio::time::timeout(state.request_timeout(), prepared.generate())
        .await
        .map_err(|_| timeout_problem())?;
    let (answer, hits) = match answer {
        Ok(a) => a,
        Err(e) => {
            reservation.settle(&Usage::new(input, 0));
            return Err(upstream("model", &e));
        }
    };
    let usage = answer.usage.unwrap_or_default();
    count_usage(&usage);
    reservation.settle(&if usage == Usage::default() {
        Usage::new(input, estimate_tokens(&answer.message.text()))
    } else {
        usage
    });
    Ok(Json(json!({
        "answer": answer.message.text(),
        "sources": sources_of(&hits),
        "usage": usage_json(&usage),
        "model": answer.model,
    }))
    .into_response())
}
