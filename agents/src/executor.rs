//! The tool-calling agent executor: [`AgentExecutor`] and its builder, the records of a run
//! ([`AgentRun`], [`AgentStep`], [`StepError`]), and the tool call every agent shares.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use catena_core::{
    ChatChunk, ChatModel, ChatRequest, ChatResponse, Error, Message, Result, StreamAccumulator,
    Tool, ToolCall, ToolChoice, ToolError, Usage,
};
use futures::StreamExt;
use tokio::sync::mpsc::UnboundedSender;
use tokio::time::Instant;

use crate::error::AgentError;
use crate::events::{AgentEvent, AgentEventStream};
use crate::options::AgentOptions;

/// What the executor does when a limit (iterations, time or tokens) stops the loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum EarlyStopping {
    /// Fail the run with the [`AgentError`] (the default).
    #[default]
    Force,
    /// Ask the model once more, with [`ToolChoice::None`], for a final answer from what it
    /// has so far. The run then succeeds with [`AgentRun::stopped_by`] set. This last call is
    /// not bounded by the time budget; put a timeout on the model if it must be. If the model
    /// still gives no text, the run fails with the [`AgentError`].
    Generate,
}

/// Why one tool call produced no output. Its [`Display`](fmt::Display) text, prefixed with
/// `"Error: "`, is what the model receives as the call's result.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StepError {
    /// The model called a tool that is not registered.
    #[error("tool `{name}` does not exist; available: {}", list_or_none(available))]
    UnknownTool {
        /// The name the model used.
        name: String,
        /// The names of the registered tools.
        available: Vec<String>,
    },
    /// The arguments were not valid JSON or did not fit the tool's schema.
    #[error("invalid arguments: {0}")]
    InvalidArguments(String),
    /// The tool ran and failed.
    #[error("tool failed: {0}")]
    Execution(String),
    /// The tool did not finish within the per-tool timeout.
    #[error("tool timed out after {0:?}")]
    Timeout(Duration),
}

/// `a, b, c`, or `none`.
fn list_or_none(names: &[String]) -> String {
    if names.is_empty() {
        "none".to_owned()
    } else {
        names.join(", ")
    }
}

/// One tool call the agent made, with its result.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct AgentStep {
    /// The call as the model emitted it.
    pub call: ToolCall,
    /// The tool's output as text, or why there is none.
    pub result: std::result::Result<String, StepError>,
    /// How long the call took.
    pub duration: Duration,
}

impl AgentStep {
    /// The text the model received for this call: the output, or `"Error: …"`.
    pub fn model_text(&self) -> String {
        match &self.result {
            Ok(text) => text.clone(),
            Err(e) => format!("Error: {e}"),
        }
    }
}

/// The result of a finished run.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct AgentRun {
    /// The model's final answer.
    pub output: String,
    /// Every tool call, in the order the model made them.
    pub steps: Vec<AgentStep>,
    /// Token usage summed over every model call.
    pub usage: Usage,
    /// Model calls made (including an early-stopping final call).
    pub iterations: usize,
    /// The limit that stopped the loop, when [`EarlyStopping::Generate`] produced the answer.
    pub stopped_by: Option<AgentError>,
}

pub(crate) struct Inner {
    pub(crate) model: Arc<dyn ChatModel>,
    pub(crate) tools: Vec<Arc<dyn Tool>>,
    pub(crate) system_prompt: Option<String>,
    pub(crate) max_iterations: usize,
    max_concurrent_tools: usize,
    pub(crate) tool_timeout: Duration,
    time_budget: Option<Duration>,
    pub(crate) token_budget: Option<u64>,
    early_stopping: EarlyStopping,
}

/// Runs a tool-calling agent: a loop that lets a chat model call tools through the
/// provider's native tool calls until it gives a final answer or hits a limit.
///
/// Each turn sends the conversation and the tool definitions. When the model answers with
/// tool calls, they run concurrently (at most
/// [`max_concurrent_tools`](AgentExecutorBuilder::max_concurrent_tools) at a time, results
/// kept in call order) and each result goes back as a tool message paired with its call id.
/// A tool that fails, times out, gets bad arguments or does not exist does **not** end the
/// run: the model gets `"Error: …"` as that call's result and can correct itself. The
/// executor only ever runs the tool calls the model emitted; tool output is data, never
/// instructions to the executor.
///
/// ```
/// use std::sync::Arc;
/// use catena_agents::AgentExecutor;
/// use catena_core::test_utils::ScriptedChatModel;
/// use catena_core::{ToolError, TypedTool};
///
/// #[derive(serde::Deserialize, schemars::JsonSchema)]
/// struct CityArgs { city: String }
///
/// struct Weather;
/// #[async_trait::async_trait]
/// impl TypedTool for Weather {
///     type Args = CityArgs;
///     type Output = String;
///     fn name(&self) -> &str { "weather" }
///     fn description(&self) -> &str { "Current weather for a city." }
///     async fn call(&self, args: CityArgs) -> Result<String, ToolError> {
///         Ok(format!("{}: 21°C, sunny", args.city))
///     }
/// }
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let model = Arc::new(
///     ScriptedChatModel::new()
///         .with_tool_call("weather", r#"{"city":"Oslo"}"#)
///         .with_text("It is sunny in Oslo."),
/// );
/// let agent = AgentExecutor::builder(model.clone())
///     .system_prompt("You are a weather assistant.")
///     .tool(Weather.into_tool())
///     .max_iterations(5)
///     .build()?;
/// let run = agent.run("Weather in Oslo?").await?;
/// assert_eq!(run.output, "It is sunny in Oslo.");
/// assert_eq!(run.steps[0].result.as_deref(), Ok("Oslo: 21°C, sunny"));
/// assert_eq!(run.iterations, 2);
/// // The second request carried the tool result, paired with the call id.
/// let second = &model.requests()[1];
/// assert_eq!(second.messages.last().unwrap().tool_call_id.as_deref(), Some("call_0"));
/// # Ok::<(), catena_core::Error>(())
/// # }).unwrap();
/// ```
///
/// Cheap to clone (the configuration is shared).
#[derive(Clone)]
pub struct AgentExecutor {
    inner: Arc<Inner>,
}

impl fmt::Debug for AgentExecutor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let i = &self.inner;
        f.debug_struct("AgentExecutor")
            .field("model", &i.model.model_info().model)
            .field(
                "tools",
                &i.tools.iter().map(|t| t.name()).collect::<Vec<_>>(),
            )
            .field("max_iterations", &i.max_iterations)
            .field("max_concurrent_tools", &i.max_concurrent_tools)
            .field("tool_timeout", &i.tool_timeout)
            .field("time_budget", &i.time_budget)
            .field("token_budget", &i.token_budget)
            .field("early_stopping", &i.early_stopping)
            .finish_non_exhaustive()
    }
}

/// Builds an [`AgentExecutor`]; start with [`AgentExecutor::builder`].
///
/// The options it shares with the ReAct agent live in one [`AgentOptions`], set whole with
/// [`options`](Self::options) or one by one with the setters of the same names.
pub struct AgentExecutorBuilder {
    model: Arc<dyn ChatModel>,
    options: AgentOptions,
    max_concurrent_tools: usize,
    early_stopping: EarlyStopping,
    best_effort_tools: bool,
}

impl fmt::Debug for AgentExecutorBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AgentExecutorBuilder")
            .field(
                "tools",
                &self
                    .options
                    .tools
                    .iter()
                    .map(|t| t.name())
                    .collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

impl AgentExecutorBuilder {
    /// Replaces the system prompt, tools and limits with `options`. Default:
    /// [`AgentOptions::new`].
    #[must_use]
    pub fn options(mut self, options: AgentOptions) -> Self {
        self.options = options;
        self
    }

    /// Sets the system prompt sent first in every run. Default: none.
    #[must_use]
    pub fn system_prompt(mut self, prompt: impl Into<String>) -> Self {
        self.options = self.options.system_prompt(prompt);
        self
    }

    /// Adds a tool. Default: no tools.
    #[must_use]
    pub fn tool(mut self, tool: Arc<dyn Tool>) -> Self {
        self.options = self.options.tool(tool);
        self
    }

    /// Adds tools.
    #[must_use]
    pub fn tools(mut self, tools: impl IntoIterator<Item = Arc<dyn Tool>>) -> Self {
        self.options = self.options.tools(tools);
        self
    }

    /// The most model turns that may end in tool calls before the run stops with
    /// [`AgentError::MaxIterations`]. Default 10.
    #[must_use]
    pub fn max_iterations(mut self, n: usize) -> Self {
        self.options = self.options.max_iterations(n);
        self
    }

    /// How many tool calls of one turn run at the same time. Default 4.
    #[must_use]
    pub fn max_concurrent_tools(mut self, n: usize) -> Self {
        self.max_concurrent_tools = n;
        self
    }

    /// How long one tool call may take; a call that takes longer is cancelled and the model
    /// gets a timeout error as its result. Default 30 s.
    #[must_use]
    pub fn tool_timeout(mut self, timeout: Duration) -> Self {
        self.options = self.options.tool_timeout(timeout);
        self
    }

    /// An overall deadline for the run (model calls and tools); past it the loop stops with
    /// [`AgentError::TimeBudget`]. Default: none.
    #[must_use]
    pub fn time_budget(mut self, budget: Duration) -> Self {
        self.options = self.options.time_budget(budget);
        self
    }

    /// A limit on the total tokens the model reports over the run. It is checked before each
    /// model call, so a final answer is never thrown away; once the sum is over the budget the
    /// loop stops with [`AgentError::TokenBudget`]. Default: none.
    #[must_use]
    pub fn token_budget(mut self, tokens: u64) -> Self {
        self.options = self.options.token_budget(tokens);
        self
    }

    /// What happens when a limit stops the loop. Default [`EarlyStopping::Force`].
    #[must_use]
    pub fn early_stopping(mut self, mode: EarlyStopping) -> Self {
        self.early_stopping = mode;
        self
    }

    /// Accepts a model whose [`ModelInfo::supports_tools`](catena_core::ModelInfo) is
    /// `false` (one that is only asked, in its prompt, to write tool calls as text, like the
    /// in-process local models): such a model often answers without calling any tool, and
    /// the run then "succeeds" with an invented answer. Default: refused by
    /// [`build`](Self::build); prefer [`ReactAgent`](crate::ReactAgent), or
    /// [`Agent::for_model`](crate::Agent::for_model), which picks the loop for the model.
    #[must_use]
    pub fn best_effort_tools(mut self, yes: bool) -> Self {
        self.best_effort_tools = yes;
        self
    }

    /// Checks the configuration and builds the executor.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] when two tools share a name, or `max_iterations`,
    /// `max_concurrent_tools` or `tool_timeout` is zero, or tools are registered and the
    /// model cannot call tools ([`ModelInfo::supports_tools`](catena_core::ModelInfo) is
    /// `false`) — the message names [`ReactAgent`](crate::ReactAgent) — unless
    /// [`best_effort_tools`](Self::best_effort_tools) is set.
    pub fn build(self) -> Result<AgentExecutor> {
        let max_concurrent_tools = self.max_concurrent_tools;
        if !self.options.tools.is_empty() && !self.best_effort_tools {
            require_tool_calling(self.model.as_ref())?;
        }
        self.options.validate(|| {
            if max_concurrent_tools == 0 {
                return Err(Error::invalid_config(
                    "max_concurrent_tools must be at least 1",
                ));
            }
            Ok(())
        })?;
        let AgentOptions {
            tools,
            system_prompt,
            max_iterations,
            tool_timeout,
            time_budget,
            token_budget,
        } = self.options;
        Ok(AgentExecutor {
            inner: Arc::new(Inner {
                model: self.model,
                tools,
                system_prompt,
                max_iterations,
                max_concurrent_tools,
                tool_timeout,
                time_budget,
                token_budget,
                early_stopping: self.early_stopping,
            }),
        })
    }
}

/// [`Error::InvalidConfig`] when `model` says it cannot call tools natively.
pub(crate) fn require_tool_calling(model: &dyn ChatModel) -> Result<()> {
    let info = model.model_info();
    if info.supports_tools {
        return Ok(());
    }
    Err(Error::invalid_config(format!(
        "model `{}` ({}) cannot call tools (ModelInfo::supports_tools is false), so an \
         AgentExecutor with tools would answer without using them; use \
         ReactAgent::builder(model) (tool calls written as text and parsed), or \
         Agent::for_model(model, options), which picks ReactAgent for such a model",
        info.model, info.provider
    )))
}

/// Why the loop stopped without a final answer.
enum Stop {
    Limit(AgentError),
    Fail(Error),
}

struct State {
    messages: Vec<Message>,
    steps: Vec<AgentStep>,
    usage: Usage,
    iterations: usize,
}

pub(crate) type Sink<'a> = Option<&'a UnboundedSender<AgentEvent>>;

pub(crate) fn emit(sink: Sink<'_>, event: AgentEvent) {
    if let Some(tx) = sink {
        // A closed channel means the stream was dropped; the run is being cancelled.
        let _ = tx.send(event);
    }
}

/// [`AgentEvent::ToolCallStarted`] for `call`.
pub(crate) fn emit_started(sink: Sink<'_>, call: &ToolCall) {
    emit(
        sink,
        AgentEvent::ToolCallStarted {
            id: call.id.clone(),
            name: call.name.clone(),
            arguments: call.arguments.clone(),
        },
    );
}

/// [`AgentEvent::ToolResult`] for `call`.
pub(crate) fn emit_result(
    sink: Sink<'_>,
    call: &ToolCall,
    result: &std::result::Result<String, StepError>,
) {
    emit(
        sink,
        AgentEvent::ToolResult {
            id: call.id.clone(),
            name: call.name.clone(),
            result: result.clone(),
        },
    );
}

/// One model call, the run's `step`th, shared by every agent. Without a sink it is
/// [`ChatModel::generate`]. With one it is [`ChatModel::stream`]: text deltas and tool-call
/// pieces go to the sink as they arrive, then [`AgentEvent::StepFinished`] with the turn's
/// usage.
pub(crate) async fn model_turn(
    model: &dyn ChatModel,
    request: ChatRequest,
    step: usize,
    sink: Sink<'_>,
) -> Result<ChatResponse> {
    if sink.is_none() {
        return model.generate(request).await;
    }
    let mut stream = model.stream(request).await?;
    let mut acc = StreamAccumulator::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        match &chunk {
            ChatChunk::TextDelta(t) => emit(sink, AgentEvent::ModelDelta(t.clone())),
            ChatChunk::ToolCallDelta {
                index,
                id,
                name,
                arguments_delta,
            } => emit(
                sink,
                AgentEvent::ToolCallDelta {
                    index: *index,
                    id: id.clone(),
                    name: name.clone(),
                    arguments: arguments_delta.clone(),
                },
            ),
            _ => {}
        }
        acc.push(&chunk);
    }
    let response = acc.finish()?;
    let usage = response.usage.unwrap_or_default();
    emit(sink, AgentEvent::StepFinished { step, usage });
    Ok(response)
}

impl AgentExecutor {
    /// Starts a builder for an agent driven by `model`.
    pub fn builder(model: Arc<dyn ChatModel>) -> AgentExecutorBuilder {
        AgentExecutorBuilder {
            model,
            options: AgentOptions::new(),
            max_concurrent_tools: 4,
            early_stopping: EarlyStopping::Force,
            best_effort_tools: false,
        }
    }

    /// The registered tools.
    pub fn tools(&self) -> &[Arc<dyn Tool>] {
        &self.inner.tools
    }

    /// The configuration, for the durable runner.
    pub(crate) fn config(&self) -> &Inner {
        &self.inner
    }

    /// One model call, the run's `step`th: streamed into `sink` when there is one.
    pub(crate) async fn model_turn(
        &self,
        request: ChatRequest,
        step: usize,
        sink: Sink<'_>,
    ) -> Result<ChatResponse> {
        model_turn(self.inner.model.as_ref(), request, step, sink).await
    }

    /// Runs the agent on `input` until the model gives a final answer, using
    /// [`ChatModel::generate`]. Dropping the future cancels the run, including running tools.
    ///
    /// # Errors
    /// The model's errors; an [`AgentError`] (inside [`Error::Other`]) when a limit stops the
    /// loop under [`EarlyStopping::Force`]. Tool failures are not errors of the run.
    ///
    /// # Panics
    /// Outside a Tokio runtime with the time driver enabled (the tool timeout needs it).
    pub async fn run(&self, input: &str) -> Result<AgentRun> {
        self.drive(input, None).await
    }

    /// Runs the agent on `input` and reports what happens as a stream of [`AgentEvent`]s,
    /// using [`ChatModel::stream`]: each turn's text and tool-call pieces as they arrive
    /// ([`AgentEvent::ModelDelta`], [`AgentEvent::ToolCallDelta`]), the turn's usage
    /// ([`AgentEvent::StepFinished`]), then its tool calls and results; it ends with
    /// [`AgentEvent::FinalAnswer`] or [`AgentEvent::Error`]. The limits are those of
    /// [`run`](Self::run). Dropping the stream cancels the run, including running tools.
    /// Nothing is spawned: the run makes progress while the stream is polled.
    pub fn run_stream(&self, input: &str) -> AgentEventStream {
        let agent = self.clone();
        let input = input.to_owned();
        AgentEventStream::new(|tx| async move { agent.drive(&input, Some(&tx)).await })
    }

    pub(crate) async fn drive(&self, input: &str, sink: Sink<'_>) -> Result<AgentRun> {
        let inner = &self.inner;
        let mut messages = Vec::with_capacity(2);
        if let Some(p) = &inner.system_prompt {
            messages.push(Message::system(p.clone()));
        }
        messages.push(Message::user(input));
        let mut state = State {
            messages,
            steps: Vec::new(),
            usage: Usage::default(),
            iterations: 0,
        };
        let outcome = match inner.time_budget {
            Some(budget) => {
                match tokio::time::timeout(budget, self.turns(&mut state, sink)).await {
                    Ok(r) => r,
                    Err(_) => Err(Stop::Limit(AgentError::TimeBudget { budget })),
                }
            }
            None => self.turns(&mut state, sink).await,
        };
        let (output, stopped_by) = match outcome {
            Ok(output) => (output, None),
            Err(Stop::Fail(e)) => return Err(e),
            Err(Stop::Limit(limit)) => {
                tracing::debug!(%limit, "agent loop stopped by a limit");
                match inner.early_stopping {
                    EarlyStopping::Generate => {
                        let output = self.final_answer(&mut state, &limit, sink).await?;
                        (output, Some(limit))
                    }
                    _ => return Err(limit.into()),
                }
            }
        };
        Ok(AgentRun {
            output,
            steps: state.steps,
            usage: state.usage,
            iterations: state.iterations,
            stopped_by,
        })
    }

    /// The loop. State is only changed between awaits, so when the time budget cancels this
    /// future the conversation is left whole (no tool call without its result).
    async fn turns(&self, state: &mut State, sink: Sink<'_>) -> std::result::Result<String, Stop> {
        let inner = &self.inner;
        loop {
            if let Some(budget) = inner.token_budget {
                if state.usage.total_tokens > budget {
                    return Err(Stop::Limit(AgentError::TokenBudget {
                        budget,
                        used: state.usage.total_tokens,
                    }));
                }
            }
            if state.iterations >= inner.max_iterations {
                return Err(Stop::Limit(AgentError::MaxIterations {
                    limit: inner.max_iterations,
                }));
            }
            let mut request = ChatRequest::new(state.messages.clone());
            if !inner.tools.is_empty() {
                request = request
                    .with_tools(inner.tools.iter().map(|t| t.definition()))
                    .with_tool_choice(ToolChoice::Auto);
            }
            state.iterations += 1;
            let response = self
                .model_turn(request, state.iterations, sink)
                .await
                .map_err(Stop::Fail)?;
            state.usage += response.usage.unwrap_or_default();
            if response.tool_calls().is_empty() {
                let text = response.text();
                state.messages.push(response.message);
                return Ok(text);
            }
            let calls = response.tool_calls().to_vec();
            tracing::debug!(count = calls.len(), "agent runs tool calls");
            let steps: Vec<AgentStep> = futures::stream::iter(calls)
                .map(|call| self.execute(call, sink))
                .buffered(inner.max_concurrent_tools)
                .collect()
                .await;
            state.messages.push(response.message);
            for step in &steps {
                state.messages.push(Message::tool_result(
                    step.call.id.clone(),
                    step.model_text(),
                ));
            }
            state.steps.extend(steps);
        }
    }

    async fn final_answer(
        &self,
        state: &mut State,
        limit: &AgentError,
        sink: Sink<'_>,
    ) -> Result<String> {
        let inner = &self.inner;
        let mut messages = state.messages.clone();
        messages.push(Message::user(format!(
            "You must stop now ({limit}). Do not call any tools. Give your best final answer \
             from the information above."
        )));
        let mut request = ChatRequest::new(messages);
        if !inner.tools.is_empty() {
            request = request.with_tools(inner.tools.iter().map(|t| t.definition()));
        }
        request = request.with_tool_choice(ToolChoice::None);
        state.iterations += 1;
        let response = self.model_turn(request, state.iterations, sink).await?;
        state.usage += response.usage.unwrap_or_default();
        let text = response.text();
        if text.trim().is_empty() {
            return Err(limit.clone().into());
        }
        Ok(text)
    }

    async fn execute(&self, call: ToolCall, sink: Sink<'_>) -> AgentStep {
        emit_started(sink, &call);
        let start = Instant::now();
        let result = self.invoke(&call).await;
        let duration = start.elapsed();
        if let Err(e) = &result {
            tracing::debug!(tool = %call.name, error = %e, "tool call failed");
        }
        emit_result(sink, &call, &result);
        AgentStep {
            call,
            result,
            duration,
        }
    }

    async fn invoke(&self, call: &ToolCall) -> std::result::Result<String, StepError> {
        let inner = &self.inner;
        let tool = inner
            .tools
            .iter()
            .find(|t| t.name() == call.name)
            .ok_or_else(|| StepError::UnknownTool {
                name: call.name.clone(),
                available: inner.tools.iter().map(|t| t.name().to_owned()).collect(),
            })?;
        let args = call
            .arguments_json()
            .map_err(|e| StepError::InvalidArguments(e.to_string()))?;
        call_tool(tool.as_ref(), &call.id, args, inner.tool_timeout).await
    }
}

/// Calls `tool` with a deadline and maps its outcome to a step result: the output as text,
/// or the error the model will see. Shared by every agent so tool failures read the same.
pub(crate) async fn call_tool(
    tool: &dyn Tool,
    call_id: &str,
    args: serde_json::Value,
    timeout: Duration,
) -> std::result::Result<String, StepError> {
    run_tool(tool, call_id, tool.call(args), timeout).await
}

/// [`call_tool`] for a call of a durable run: the tool gets the run's [`ToolCallContext`]
/// (its idempotency key).
pub(crate) async fn call_tool_with_context(
    tool: &dyn Tool,
    ctx: &catena_core::ToolCallContext,
    args: serde_json::Value,
    timeout: Duration,
) -> std::result::Result<String, StepError> {
    run_tool(
        tool,
        &ctx.call_id,
        tool.call_with_context(args, ctx),
        timeout,
    )
    .await
}

async fn run_tool(
    tool: &dyn Tool,
    call_id: &str,
    call: impl std::future::Future<Output = std::result::Result<catena_core::ToolOutput, ToolError>>,
    timeout: Duration,
) -> std::result::Result<String, StepError> {
    use tracing::Instrument;
    // The one `execute_tool` span of the workspace (OpenTelemetry GenAI), with the call id.
    let span = catena_core::backend::execute_tool_span(tool.name(), Some(call_id));
    let started = std::time::Instant::now();
    let outcome = match tokio::time::timeout(timeout, call)
        .instrument(span.clone())
        .await
    {
        Err(_) => Err(StepError::Timeout(timeout)),
        Ok(Ok(out)) => Ok(out.to_text()),
        Ok(Err(ToolError::InvalidArguments(m))) => Err(StepError::InvalidArguments(m)),
        Ok(Err(ToolError::Execution(m))) => Err(StepError::Execution(m)),
        Ok(Err(other)) => Err(StepError::Execution(other.to_string())),
    };
    if let Err(e) = &outcome {
        let kind = match e {
            StepError::Timeout(_) => "timeout",
            StepError::InvalidArguments(_) => "invalid_arguments",
            _ => "tool_error",
        };
        catena_core::backend::record_tool_error(&span, kind);
    }
    let error = outcome.as_ref().err().map(|e| match e {
        StepError::Timeout(_) => "timeout",
        StepError::InvalidArguments(_) => "invalid_arguments",
        _ => "tool_error",
    });
    catena_core::genai_metrics::record_tool_call(tool.name(), started.elapsed(), error);
    outcome
}
