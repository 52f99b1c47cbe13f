//! The ReAct text agent, for chat models without native tool calling: [`ReactAgent`] and its
//! builder; the lenient output parser is in `parser`.

mod parser;

#[cfg(feature = "fuzzing")]
pub(crate) use parser::{arguments, before_observation, parse};

use std::fmt;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use catena_core::{Chain, ChatModel, ChatRequest, Error, Message, Result, Tool, ToolCall, Usage};
use tokio::time::Instant;

use crate::error::AgentError;
use crate::events::AgentEventStream;
use crate::executor::{
    emit_result, emit_started, model_turn, AgentRun, AgentStep, Sink, StepError,
};
use crate::options::AgentOptions;
use parser::Parsed;

/// The stop sequence sent with every ReAct model call.
pub const REACT_STOP: &str = "\nObservation:";

struct Inner {
    model: Arc<dyn ChatModel>,
    options: AgentOptions,
}

/// Runs a ReAct text agent, for chat models without native tool calling.
///
/// [`ReactAgent`] uses LangChain's ReAct prompt: the tools are listed in the prompt text
/// (name, description and the JSON schema of their arguments), and the model answers in
/// plain text with `Thought:` / `Action:` / `Action Input:` lines, or with
/// `Final Answer:`. The model is called **without** tools in the request and with the stop
/// sequence `"\nObservation:"`, so it stops where the tool's result belongs. The agent runs
/// the tool and appends the model's text plus `Observation: <result>` to a scratchpad that
/// is sent with the prompt on the next turn (LangChain's `agent_scratchpad`).
///
/// Parsing is lenient: labels are case-insensitive and may be in markdown bold
/// (`**Action:**`), the action input may sit in a code fence, and it may be a JSON object or
/// plain text. Plain text is wrapped as `{"<property>": "<text>"}` when the tool's schema
/// has a single string property (for [`AgentTool`](crate::AgentTool) that is
/// `{"input": …}`); otherwise it is a format error. If a provider ignores the stop sequence,
/// everything from the first `Observation:` line on (an observation the model invented) is
/// dropped.
///
/// **Action and final answer in one output.** As in LangChain, this is a format error: the
/// model cannot know the answer before it has seen the action's observation.
///
/// **Format errors.** A malformed output goes back to the model as the observation
/// `"Invalid format: … Remember to use Action/Action Input or Final Answer."`. If its next
/// output is malformed too, the run fails with [`AgentError::OutputParse`]. A well-formed
/// output in between resets this, so a long run may recover from separate slips.
///
/// Tools behave as in the [`AgentExecutor`](crate::AgentExecutor): a per-tool timeout, and
/// failures, timeouts, bad arguments and unknown tools (with the list of available tools) go
/// back to the model as `"Error: …"` observations instead of ending the run. Every model call
/// counts towards `max_iterations`; the time and token budgets apply to the whole run.
///
/// [`run_stream`](Self::run_stream) reports the same run as the
/// [`AgentExecutor`](crate::AgentExecutor)'s stream of [`AgentEvent`](crate::AgentEvent)s:
/// the model's text as it arrives, each turn's usage, and a tool call once the turn's text
/// is parsed.
///
/// ```
/// use std::sync::Arc;
/// use catena_agents::ReactAgent;
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
///         // Plain text input: `weather` has one string argument, so this is {"city": "Oslo"}.
///         .with_text(" I should check.\nAction: weather\nAction Input: Oslo")
///         .with_text(" I now know.\nFinal Answer: Sunny in Oslo."),
/// );
/// let agent = ReactAgent::builder(model.clone()).tool(Weather.into_tool()).build()?;
/// let run = agent.run("Weather in Oslo?").await?;
/// assert_eq!(run.output, "Sunny in Oslo.");
/// assert_eq!(run.steps[0].result.as_deref(), Ok("Oslo: 21°C, sunny"));
/// let second = &model.requests()[1];
/// assert!(second.tools.is_empty());
/// assert_eq!(second.stop, vec!["\nObservation:".to_string()]);
/// assert!(second.messages[0].text().ends_with("Observation: Oslo: 21°C, sunny\nThought:"));
/// # Ok::<(), catena_core::Error>(())
/// # }).unwrap();
/// ```
///
/// Cheap to clone (the configuration is shared).
#[derive(Clone)]
pub struct ReactAgent {
    inner: Arc<Inner>,
}

impl fmt::Debug for ReactAgent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let i = &self.inner.options;
        f.debug_struct("ReactAgent")
            .field("model", &self.inner.model.model_info().model)
            .field(
                "tools",
                &i.tools.iter().map(|t| t.name()).collect::<Vec<_>>(),
            )
            .field("max_iterations", &i.max_iterations)
            .field("tool_timeout", &i.tool_timeout)
            .field("time_budget", &i.time_budget)
            .field("token_budget", &i.token_budget)
            .finish_non_exhaustive()
    }
}

/// Builds a [`ReactAgent`]; start with [`ReactAgent::builder`].
///
/// The options it shares with the tool-calling agent live in one [`AgentOptions`], set whole
/// with [`options`](Self::options) or one by one with the setters of the same names.
pub struct ReactAgentBuilder {
    inner: Inner,
}

impl fmt::Debug for ReactAgentBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReactAgentBuilder")
            .field(
                "tools",
                &self
                    .inner
                    .options
                    .tools
                    .iter()
                    .map(|t| t.name())
                    .collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

impl ReactAgentBuilder {
    /// Replaces the system prompt, tools and limits with `options`. Default:
    /// [`AgentOptions::new`].
    #[must_use]
    pub fn options(mut self, options: AgentOptions) -> Self {
        self.inner.options = options;
        self
    }

    /// Sets a system message sent before the ReAct prompt. Default: none.
    #[must_use]
    pub fn system_prompt(mut self, prompt: impl Into<String>) -> Self {
        self.inner.options = self.inner.options.system_prompt(prompt);
        self
    }

    /// Adds a tool. Default: no tools.
    #[must_use]
    pub fn tool(mut self, tool: Arc<dyn Tool>) -> Self {
        self.inner.options = self.inner.options.tool(tool);
        self
    }

    /// Adds tools.
    #[must_use]
    pub fn tools(mut self, tools: impl IntoIterator<Item = Arc<dyn Tool>>) -> Self {
        self.inner.options = self.inner.options.tools(tools);
        self
    }

    /// The most model calls in a run (actions, format retries and the final answer); past it
    /// the run stops with [`AgentError::MaxIterations`]. Default 10.
    #[must_use]
    pub fn max_iterations(mut self, n: usize) -> Self {
        self.inner.options = self.inner.options.max_iterations(n);
        self
    }

    /// How long one tool call may take; a call that takes longer is cancelled and the model
    /// gets a timeout error as the observation. Default 30 s.
    #[must_use]
    pub fn tool_timeout(mut self, timeout: Duration) -> Self {
        self.inner.options = self.inner.options.tool_timeout(timeout);
        self
    }

    /// An overall deadline for the run; past it the run stops with
    /// [`AgentError::TimeBudget`]. Default: none.
    #[must_use]
    pub fn time_budget(mut self, budget: Duration) -> Self {
        self.inner.options = self.inner.options.time_budget(budget);
        self
    }

    /// A limit on the total tokens the model reports, checked before each model call; past
    /// it the run stops with [`AgentError::TokenBudget`]. Default: none.
    #[must_use]
    pub fn token_budget(mut self, tokens: u64) -> Self {
        self.inner.options = self.inner.options.token_budget(tokens);
        self
    }

    /// Checks the configuration and builds the agent.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] when two tools share a name, or `max_iterations` or
    /// `tool_timeout` is zero.
    pub fn build(self) -> Result<ReactAgent> {
        self.inner.options.validate(|| Ok(()))?;
        Ok(ReactAgent {
            inner: Arc::new(self.inner),
        })
    }
}

/// Why the loop stopped without a final answer.
enum Stop {
    Limit(AgentError),
    Fail(Error),
}

#[derive(Default)]
struct State {
    scratchpad: String,
    steps: Vec<AgentStep>,
    usage: Usage,
    iterations: usize,
    /// The previous output was malformed and the model has had its one reminder.
    reminded: bool,
}

impl ReactAgent {
    /// Starts a builder for an agent driven by `model`.
    pub fn builder(model: Arc<dyn ChatModel>) -> ReactAgentBuilder {
        ReactAgentBuilder {
            inner: Inner {
                model,
                options: AgentOptions::new(),
            },
        }
    }

    /// The registered tools.
    pub fn tools(&self) -> &[Arc<dyn Tool>] {
        &self.inner.options.tools
    }

    /// The prompt text sent for `input` with the given scratchpad (the previous turns'
    /// model text and observations, empty on the first turn).
    pub fn render_prompt(&self, input: &str, scratchpad: &str) -> String {
        let tools = &self.inner.options.tools;
        let mut p = String::from(
            "Answer the following questions as best you can. You have access to the \
             following tools:\n\n",
        );
        if tools.is_empty() {
            p.push_str("(no tools)\n");
        }
        for t in tools {
            let _ = writeln!(p, "{}: {}", t.name(), t.description());
            let _ = writeln!(p, "  Arguments (JSON schema): {}", t.parameters());
        }
        let names = tools
            .iter()
            .map(|t| t.name())
            .collect::<Vec<_>>()
            .join(", ");
        let _ = write!(
            p,
            "\nUse the following format:\n\n\
             Question: the input question you must answer\n\
             Thought: you should always think about what to do\n\
             Action: the action to take, should be one of [{names}]\n\
             Action Input: the input to the action, a JSON object matching the tool's arguments schema\n\
             Observation: the result of the action\n\
             ... (this Thought/Action/Action Input/Observation can repeat N times)\n\
             Thought: I now know the final answer\n\
             Final Answer: the final answer to the original input question\n\n\
             Begin!\n\n\
             Question: {input}\n\
             Thought:{scratchpad}"
        );
        p
    }

    /// Runs the agent on `input` until the model gives a final answer. Dropping the future
    /// cancels the run, including a running tool.
    ///
    /// # Errors
    /// The model's errors; an [`AgentError`] (inside [`Error::Other`], see
    /// [`AgentError::from_error`]) when a limit stops the run or the model's output is
    /// malformed twice in a row ([`AgentError::OutputParse`]). Tool failures are not errors
    /// of the run.
    ///
    /// # Panics
    /// Outside a Tokio runtime with the time driver enabled (the tool timeout needs it).
    pub async fn run(&self, input: &str) -> Result<AgentRun> {
        self.drive(input, None).await
    }

    /// Runs the agent on `input` and reports what happens as a stream of
    /// [`AgentEvent`](crate::AgentEvent)s, using [`ChatModel::stream`], in the shape of
    /// [`AgentExecutor::run_stream`](crate::AgentExecutor::run_stream): each turn's text as
    /// it arrives ([`ModelDelta`](crate::AgentEvent::ModelDelta)), the turn's usage
    /// ([`StepFinished`](crate::AgentEvent::StepFinished)), then, when the parsed text
    /// names an action, [`ToolCallStarted`](crate::AgentEvent::ToolCallStarted) (id
    /// `react_<n>`; the arguments as JSON, or as written when the tool is unknown) and its
    /// [`ToolResult`](crate::AgentEvent::ToolResult). A format error has no tool events; the
    /// reminder goes to the model in the next turn. It ends with
    /// [`FinalAnswer`](crate::AgentEvent::FinalAnswer) (the text after `Final Answer:`) or
    /// [`Error`](crate::AgentEvent::Error), under the limits of [`run`](Self::run).
    /// Dropping the stream cancels the run, including a running tool. Nothing is spawned:
    /// the run makes progress while the stream is polled.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use catena_agents::{AgentEvent, ReactAgent};
    /// use catena_core::test_utils::ScriptedChatModel;
    /// use futures::StreamExt;
    ///
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// let model = Arc::new(ScriptedChatModel::new().with_text(" Easy.\nFinal Answer: 4"));
    /// let agent = ReactAgent::builder(model).build()?;
    /// let events: Vec<AgentEvent> = agent.run_stream("2+2?").collect().await;
    /// let streamed: String = events
    ///     .iter()
    ///     .filter_map(|e| match e { AgentEvent::ModelDelta(d) => Some(d.as_str()), _ => None })
    ///     .collect();
    /// assert_eq!(streamed, " Easy.\nFinal Answer: 4");
    /// assert!(events.iter().any(|e| matches!(e, AgentEvent::StepFinished { step: 1, .. })));
    /// assert_eq!(events.last(), Some(&AgentEvent::FinalAnswer("4".into())));
    /// # Ok::<(), catena_core::Error>(())
    /// # }).unwrap();
    /// ```
    pub fn run_stream(&self, input: &str) -> AgentEventStream {
        let agent = self.clone();
        let input = input.to_owned();
        AgentEventStream::new(|tx| async move { agent.drive(&input, Some(&tx)).await })
    }

    async fn drive(&self, input: &str, sink: Sink<'_>) -> Result<AgentRun> {
        let mut state = State::default();
        let outcome = match self.inner.options.time_budget {
            Some(budget) => {
                match tokio::time::timeout(budget, self.turns(input, &mut state, sink)).await {
                    Ok(r) => r,
                    Err(_) => Err(Stop::Limit(AgentError::TimeBudget { budget })),
                }
            }
            None => self.turns(input, &mut state, sink).await,
        };
        match outcome {
            Ok(output) => Ok(AgentRun {
                output,
                steps: state.steps,
                usage: state.usage,
                iterations: state.iterations,
                stopped_by: None,
            }),
            Err(Stop::Fail(e)) => Err(e),
            Err(Stop::Limit(limit)) => {
                tracing::debug!(%limit, "react agent stopped");
                Err(limit.into())
            }
        }
    }

    async fn turns(
        &self,
        input: &str,
        state: &mut State,
        sink: Sink<'_>,
    ) -> std::result::Result<String, Stop> {
        let model = &self.inner.model;
        let inner = &self.inner.options;
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
            let mut messages = Vec::with_capacity(2);
            if let Some(p) = &inner.system_prompt {
                messages.push(Message::system(p.clone()));
            }
            messages.push(Message::user(self.render_prompt(input, &state.scratchpad)));
            let request = ChatRequest::new(messages).with_stop([REACT_STOP]);
            state.iterations += 1;
            let response = model_turn(model.as_ref(), request, state.iterations, sink)
                .await
                .map_err(Stop::Fail)?;
            state.usage += response.usage.unwrap_or_default();
            let text = response.text();
            let observation = match self.step(&text, state.steps.len(), sink).await {
                Ok(Turn::Final(answer)) => return Ok(answer),
                Ok(Turn::Step(step)) => {
                    state.reminded = false;
                    let observation = step.model_text();
                    state.steps.push(step);
                    observation
                }
                Err(reason) if state.reminded => {
                    return Err(Stop::Limit(AgentError::OutputParse {
                        output: text,
                        reason,
                    }));
                }
                Err(reason) => {
                    tracing::debug!(%reason, "react output malformed; reminding the model");
                    state.reminded = true;
                    format!(
                        "Invalid format: {reason}. Remember to use Action/Action Input or \
                         Final Answer."
                    )
                }
            };
            let log = parser::before_observation(&text).trim_end();
            let _ = write!(
                state.scratchpad,
                "{log}\nObservation: {observation}\nThought:"
            );
        }
    }

    /// Parses one output and runs its action, reporting the call to `sink`. `Err` is a
    /// format error.
    async fn step(
        &self,
        text: &str,
        n: usize,
        sink: Sink<'_>,
    ) -> std::result::Result<Turn, String> {
        let (name, input) = match parser::parse(text)? {
            Parsed::Final(answer) => return Ok(Turn::Final(answer)),
            Parsed::Action { tool, input } => (tool, input),
        };
        let tools = &self.inner.options.tools;
        let tool = tools
            .iter()
            .find(|t| t.name() == name)
            .or_else(|| tools.iter().find(|t| t.name().eq_ignore_ascii_case(&name)));
        let id = format!("react_{n}");
        let Some(tool) = tool else {
            let result = Err(StepError::UnknownTool {
                name: name.clone(),
                available: tools.iter().map(|t| t.name().to_owned()).collect(),
            });
            let call = ToolCall::new(id, name, input);
            emit_started(sink, &call);
            emit_result(sink, &call, &result);
            return Ok(Turn::Step(AgentStep {
                call,
                result,
                duration: Duration::ZERO,
            }));
        };
        let args = parser::arguments(tool.name(), &input, tool.parameters())?;
        let call = ToolCall::new(id, tool.name(), args.to_string());
        emit_started(sink, &call);
        let start = Instant::now();
        let result = crate::executor::call_tool(
            tool.as_ref(),
            &call.id,
            args,
            self.inner.options.tool_timeout,
        )
        .await;
        if let Err(e) = &result {
            tracing::debug!(tool = %call.name, error = %e, "react tool call failed");
        }
        emit_result(sink, &call, &result);
        Ok(Turn::Step(AgentStep {
            call,
            result,
            duration: start.elapsed(),
        }))
    }
}

enum Turn {
    Final(String),
    Step(AgentStep),
}

/// Runs the agent and returns its final answer; the steps are dropped.
#[async_trait]
impl Chain<String, String> for ReactAgent {
    async fn invoke(&self, input: String) -> Result<String> {
        Ok(self.run(&input).await?.output)
    }
}
