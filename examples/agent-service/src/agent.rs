//! The per-task agent: tools, limits and input built from the task's context.

use std::fmt::Write as _;
use std::sync::Arc;

use catena_agents::grpc::{AgentGrpcService, DurableTask, TaskContext};
use catena_agents::{AgentEvent, AgentExecutor, RunInput};
use catena_core::{ChatModel, Embedder, Error, Result, Tool, TracedChatModel, TypedTool};
use catena_tools::{Calculator, RetrieverTool, SsrfPolicy, WebClient, WebFetch, WebSearch};
use futures::{Stream, StreamExt};

use crate::options::ServiceOptions;
use crate::retriever::ContextRetriever;
use crate::telemetry::task_span;

/// The name of the tool that searches the task's context documents.
pub const SEARCH_DOCUMENTS: &str = "search_documents";
/// The name of the calculator tool.
pub const CALCULATOR: &str = "calculator";
/// The name of the web search tool.
pub const WEB_SEARCH: &str = "web_search";
/// The name of the web fetch tool.
pub const WEB_FETCH: &str = "web_fetch";

const SEARCH_DESCRIPTION: &str = "Searches the context documents the caller sent with this \
    task and returns the most relevant ones, most relevant first.";

/// The agent service: for each task, a tool-calling [`AgentExecutor`] driven by `model`
/// over the tools of the [crate docs](crate) (narrowed to the request's `allowed_tools`),
/// with the request's limits, its context documents searchable through
/// [`SEARCH_DOCUMENTS`] (embedded with `embedder`), and the service-wide settings of
/// `options`.
///
/// With [`ServiceOptions::with_checkpointer`] every task runs durably
/// ([`AgentGrpcService::durable`]), and the tools named by
/// [`ServiceOptions::with_approval_tool`] wait for a person's decision.
///
/// # Errors
/// [`Error::InvalidConfig`] when the web client cannot be built, or when tools need
/// approval but there is no checkpointer.
pub fn service(
    model: Arc<dyn ChatModel>,
    embedder: Arc<dyn Embedder>,
    options: ServiceOptions,
) -> Result<AgentGrpcService> {
    // Tools that do not depend on the task are built once and shared.
    let mut shared: Vec<Arc<dyn Tool>> = vec![Calculator::new().into_tool()];
    if options.web_tools {
        let policy = options
            .web_allow_hosts
            .iter()
            .fold(SsrfPolicy::new(), |p, host| p.allow_host(host));
        let client = WebClient::builder()
            .policy(policy)
            .timeout(options.web_timeout)
            .build()
            .map_err(|e| Error::invalid_config(format!("web tools: {e}")))?;
        shared.push(WebSearch::new(client.clone()).into_tool());
        shared.push(WebFetch::new(client).into_tool());
    }
    shared.extend(options.extra_tools.iter().cloned());
    let info = model.model_info();
    if !info.supports_tools {
        tracing::warn!(
            model = %info.model,
            "the model cannot call tools natively; tools are described in its prompt and its \
             replies parsed, best effort"
        );
    }
    if options.checkpointer.is_none() && !options.approval_tools.is_empty() {
        return Err(Error::invalid_config(
            "tools that need approval need durable runs: set a checkpointer",
        ));
    }
    let max_duration = options.max_duration;
    let checkpointer = options.checkpointer.clone();
    let approval = options.approval_tools.clone();
    let options = Arc::new(options);
    // Every model call gets a span with the GenAI attributes (tool calls get theirs from the
    // executor); under the task span, which continues the caller's trace.
    let model: Arc<dyn ChatModel> = Arc::new(TracedChatModel::new(model));

    let durable_parts = (
        model.clone(),
        embedder.clone(),
        shared.clone(),
        options.clone(),
    );
    let mut service = AgentGrpcService::new(move |ctx: TaskContext| {
        start_task(ctx, &model, &embedder, &shared, &options)
    })
    .max_duration(max_duration);
    if let Some(checkpointer) = checkpointer {
        let (model, embedder, shared, options) = durable_parts;
        service = service
            .durable(checkpointer, move |ctx: TaskContext| {
                let span = task_span(&ctx);
                let _entered = span.enter();
                let (agent, input) = build_task(ctx, &model, &embedder, &shared, &options)?;
                Ok(DurableTask::new(agent, RunInput::text(input)))
            })
            .require_approval(approval);
    }
    Ok(service)
}

/// Builds and starts the agent of one task.
fn start_task(
    ctx: TaskContext,
    model: &Arc<dyn ChatModel>,
    embedder: &Arc<dyn Embedder>,
    shared: &[Arc<dyn Tool>],
    options: &ServiceOptions,
) -> Result<impl Stream<Item = AgentEvent> + Send + 'static> {
    let span = task_span(&ctx);
    let _entered = span.enter();
    let (agent, input) = build_task(ctx, model, embedder, shared, options)?;
    let events = agent.run_stream(&input);
    drop(_entered);
    Ok(logged(events, span))
}

/// The agent of one task and its input (call inside the task's span).
fn build_task(
    ctx: TaskContext,
    model: &Arc<dyn ChatModel>,
    embedder: &Arc<dyn Embedder>,
    shared: &[Arc<dyn Tool>],
    options: &ServiceOptions,
) -> Result<(AgentExecutor, String)> {
    let ctx = Arc::new(ctx);

    let retriever = ContextRetriever::new(ctx.clone(), embedder.clone(), options.retriever_k);
    let search = RetrieverTool::new(SEARCH_DOCUMENTS, SEARCH_DESCRIPTION, Arc::new(retriever))
        .with_max_documents(options.retriever_k)
        .into_tool();
    let mut available = vec![search];
    available.extend(shared.iter().cloned());
    // Unknown names in `allowed_tools` reject the call with INVALID_ARGUMENT.
    let tools = ctx.select_tools(&available)?;
    let searchable = tools.iter().any(|t| t.name() == SEARCH_DOCUMENTS);
    let names: Vec<&str> = tools.iter().map(|t| t.name()).collect();
    tracing::info!(
        documents = ctx.documents().len(),
        tools = ?names,
        deadline_ms = u64::try_from(ctx.remaining().as_millis()).unwrap_or(u64::MAX),
        "task started"
    );

    // A model without native tool calls (the in-process local one) gets the tools described
    // in its prompt and its reply parsed, best effort; the service says so when it starts.
    let best_effort = !model.model_info().supports_tools;
    let builder = AgentExecutor::builder(ctx.model(model.clone()))
        .best_effort_tools(best_effort)
        .system_prompt(options.system_prompt.clone())
        .max_iterations(options.max_iterations)
        .tool_timeout(options.tool_timeout)
        .tools(tools);
    let agent = ctx.apply_limits(builder).build()?;
    let input = if searchable {
        input_with_search(&ctx)
    } else {
        // Without the search tool the documents go into the prompt itself.
        ctx.prompt()
    };
    Ok((agent, input))
}

/// The agent's input when it can search the context: the conversation so far, a note on
/// how many documents it can search, and the task.
fn input_with_search(ctx: &TaskContext) -> String {
    let mut out = String::new();
    if !ctx.history().is_empty() {
        out.push_str("Conversation so far:\n");
        for m in ctx.history() {
            let _ = writeln!(out, "{}: {}", m.role, m.text());
        }
        out.push('\n');
    }
    let n = ctx.documents().len();
    if n > 0 {
        let _ = writeln!(
            out,
            "{n} context document{} for this task can be searched with the \
             `{SEARCH_DOCUMENTS}` tool.\n",
            if n == 1 { "" } else { "s" }
        );
    }
    let _ = write!(out, "Task: {}", ctx.task());
    out
}

/// The agent's events, polled inside the task's span, with the outcome logged.
fn logged(
    events: impl Stream<Item = AgentEvent> + Send + 'static,
    span: tracing::Span,
) -> impl Stream<Item = AgentEvent> + Send + 'static {
    let mut events = Box::pin(events);
    futures::stream::poll_fn(move |cx| {
        let _entered = span.enter();
        let next = events.poll_next_unpin(cx);
        if let std::task::Poll::Ready(Some(event)) = &next {
            match event {
                AgentEvent::ToolCallStarted { name, .. } => {
                    tracing::debug!(tool = %name, "tool call");
                }
                AgentEvent::FinalAnswer(text) => {
                    tracing::info!(chars = text.chars().count(), "task answered");
                }
                AgentEvent::Error(e) => tracing::warn!(error = %e, "task failed"),
                _ => {}
            }
        }
        next
    })
}
