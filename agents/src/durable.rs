//! Durable, interruptible runs of an [`AgentExecutor`]: checkpointed after every step,
//! resumable in another process, with exactly-once tool effects and approvals.
//!
//! A [`DurableAgent`] runs the executor's loop one step at a time and saves the run's
//! [`RunState`] to a [`Checkpointer`] after each: the conversation, the current turn's tool
//! calls (pending, awaiting approval, in flight, finished with their results), usage and
//! iterations so far. [`resume`](DurableAgent::resume) continues from the latest checkpoint —
//! after a crash, a restart, or on another replica sharing the checkpointer.
//!
//! **Exactly-once tool effects.** A call recorded as finished is never run again. A call that
//! was in flight when the process died is run again only when its tool is
//! [`idempotent`](Tool::idempotent); otherwise the model is told it was interrupted (it may
//! or may not have taken effect). Tools get a stable idempotency key (`{run_id}:{call_id}`)
//! through [`Tool::call_with_context`] to pass to the outside world. Checkpoint writes are
//! compare-and-set on the step number, so two processes resuming the same run cannot both
//! run its tools: the second stops with a conflict.
//!
//! **Approval.** A tool that [`requires_approval`](Tool::requires_approval), or one named in
//! [`DurableAgent::require_approval`], stops the run before it runs: the outcome is
//! [`RunOutcome::AwaitingApproval`] (and an [`AgentEvent::ApprovalRequired`] when streaming),
//! and the run waits — hours if need be — for [`decide`](DurableAgent::decide): approve
//! (optionally with edited arguments), reject (with a message the model sees as the call's
//! result) or cancel.
//!
//! Tool calls of one turn run one after another in durable runs (each is checkpointed).
//!
//! ```
//! use std::sync::Arc;
//! use catena_agents::{AgentExecutor, Decision, DurableAgent, RunInput, RunOutcome};
//! use catena_core::test_utils::ScriptedChatModel;
//! use catena_core::{InMemoryCheckpointer, ToolError, TypedTool};
//!
//! #[derive(serde::Deserialize, schemars::JsonSchema)]
//! struct Payment { amount: u32 }
//!
//! struct Pay;
//! #[async_trait::async_trait]
//! impl TypedTool for Pay {
//!     type Args = Payment;
//!     type Output = String;
//!     fn name(&self) -> &str { "pay" }
//!     fn description(&self) -> &str { "Pays an amount." }
//!     async fn call(&self, args: Payment) -> Result<String, ToolError> {
//!         Ok(format!("paid {}", args.amount))
//!     }
//! }
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! let model = Arc::new(
//!     ScriptedChatModel::new()
//!         .with_tool_call("pay", r#"{"amount":500}"#)
//!         .with_text("Paid."),
//! );
//! let executor = AgentExecutor::builder(model).tool(Pay.into_tool()).build()?;
//! let agent = DurableAgent::new(executor, Arc::new(InMemoryCheckpointer::new()))
//!     .require_approval(["pay"]);
//!
//! let outcome = agent.start("run-1", RunInput::text("Pay the invoice")).await?;
//! let RunOutcome::AwaitingApproval { call, .. } = outcome else { panic!("{outcome:?}") };
//! assert_eq!(call.name, "pay");
//! // Later, perhaps in another process: approve with an edited amount.
//! let edited = Decision::approve_with_arguments(r#"{"amount":450}"#);
//! let RunOutcome::Completed { output, steps, .. } = agent.decide("run-1", &call.id, edited).await?
//! else { panic!() };
//! assert_eq!(output, "Paid.");
//! assert_eq!(steps[0].result.as_deref(), Ok("paid 450"));
//! # Ok::<(), catena_core::Error>(())
//! # }).unwrap();
//! ```

use std::collections::HashSet;
use std::sync::Arc;

use catena_core::{
    validate_run_id, ChatRequest, Checkpointer, Error, Message, Result, Tool, ToolCall,
    ToolCallContext, ToolChoice, Usage,
};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::error::AgentError;
use crate::events::AgentEvent;
use crate::executor::{emit, AgentExecutor, AgentStep, Sink, StepError};

/// What a durable run starts from: the conversation so far, ending with the new request.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct RunInput {
    /// Prior messages (a conversation), oldest first; the executor's system prompt goes
    /// before them.
    pub messages: Vec<Message>,
}

impl RunInput {
    /// One user message.
    pub fn text(text: impl Into<String>) -> Self {
        RunInput {
            messages: vec![Message::user(text.into())],
        }
    }

    /// A whole conversation.
    pub fn messages(messages: Vec<Message>) -> Self {
        RunInput { messages }
    }
}

/// Where one tool call of the current turn stands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
#[non_exhaustive]
pub enum CallStatus {
    /// Not started.
    Pending,
    /// Waiting for a person's decision.
    AwaitingApproval,
    /// Approved (with replacement arguments, when edited); not started.
    Approved {
        /// The arguments to run with instead of the model's.
        arguments: Option<String>,
    },
    /// Started and not known to have finished (the process may have died meanwhile).
    InFlight,
    /// Finished: the text the model gets, or why there is none.
    Finished {
        /// The output, or the error text (`Err`).
        result: std::result::Result<String, String>,
    },
}

/// One tool call of the current turn and where it stands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct CallRecord {
    /// The call (with the arguments it runs with).
    pub call: ToolCall,
    /// Where it stands.
    pub status: CallStatus,
}

/// Where a durable run stands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
#[non_exhaustive]
pub enum RunStatus {
    /// Working (or stopped by a crash: [`DurableAgent::resume`] continues it).
    Running,
    /// Stopped until a person decides about the call `call_id`.
    AwaitingApproval {
        /// The call waiting for a decision.
        call_id: String,
    },
    /// Finished with an answer.
    Completed {
        /// The final answer.
        output: String,
    },
    /// Ended by an error (a limit, the model failing).
    Failed {
        /// What went wrong.
        message: String,
    },
    /// Cancelled by a person.
    Cancelled,
}

/// Everything a durable run saves after each step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct RunState {
    /// The run id.
    pub run_id: String,
    /// The checkpoint step this state was saved as.
    pub step: u64,
    /// The conversation, system prompt included.
    pub messages: Vec<Message>,
    /// The tool calls of the current turn (empty between turns).
    pub calls: Vec<CallRecord>,
    /// Every finished tool call of the run, in order.
    pub finished: Vec<CallRecord>,
    /// Token usage over every model call so far.
    pub usage: Usage,
    /// Model calls made.
    pub iterations: usize,
    /// Where the run stands.
    pub status: RunStatus,
}

/// A person's decision about a call awaiting approval.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Decision {
    /// Run the call (with these arguments instead of the model's, when given).
    Approve {
        /// Replacement arguments (JSON text).
        arguments: Option<String>,
    },
    /// Do not run it; the model gets `message` as the call's result.
    Reject {
        /// What the model is told.
        message: String,
    },
    /// End the run.
    Cancel,
}

impl Decision {
    /// Approve as the model asked.
    pub fn approve() -> Self {
        Decision::Approve { arguments: None }
    }

    /// Approve with edited arguments (JSON text).
    pub fn approve_with_arguments(arguments: impl Into<String>) -> Self {
        Decision::Approve {
            arguments: Some(arguments.into()),
        }
    }

    /// Reject, telling the model why.
    pub fn reject(message: impl Into<String>) -> Self {
        Decision::Reject {
            message: message.into(),
        }
    }
}

/// How a call to a [`DurableAgent`] ended.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum RunOutcome {
    /// The run finished with an answer.
    Completed {
        /// The final answer.
        output: String,
        /// Every tool call of the run, in order.
        steps: Vec<AgentStep>,
        /// Token usage over the run.
        usage: Usage,
    },
    /// The run stopped for a person's decision about `call`.
    AwaitingApproval {
        /// The call (id, tool, arguments).
        call: ToolCall,
        /// The checkpoint it stopped at.
        step: u64,
    },
    /// The run was cancelled.
    Cancelled,
    /// The run failed; [`DurableAgent::state`] has the details.
    Failed {
        /// What went wrong.
        message: String,
    },
}

/// Runs an [`AgentExecutor`] durably: checkpointed after every step, resumable in another
/// process, with exactly-once tool effects and approvals ([`Decision`]).
#[derive(Clone)]
pub struct DurableAgent {
    executor: AgentExecutor,
    checkpointer: Arc<dyn Checkpointer>,
    approval: Arc<HashSet<String>>,
}

impl std::fmt::Debug for DurableAgent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DurableAgent")
            .field("executor", &self.executor)
            .field("approval", &self.approval)
            .finish_non_exhaustive()
    }
}

/// Gives every call of a turn an id no other call of the run has: a server may send none,
/// repeat one within a turn, or reuse `call_0` every turn — and ids key decisions and the
/// tools' idempotency keys. A rewritten id is `call_{turn}_{index}`, in the stored assistant
/// message too, so results still pair with their calls.
fn unique_call_ids(calls: &mut [ToolCall], state: &RunState, turn: usize) {
    let mut used: HashSet<String> = state
        .finished
        .iter()
        .chain(state.calls.iter())
        .map(|r| r.call.id.clone())
        .collect();
    for (i, call) in calls.iter_mut().enumerate() {
        if call.id.is_empty() || used.contains(&call.id) {
            let mut id = format!("call_{turn}_{i}");
            while used.contains(&id) {
                id.push('_');
            }
            call.id = id;
        }
        used.insert(call.id.clone());
    }
}

/// The message an interrupted, non-idempotent call gives the model.
pub const INTERRUPTED: &str = "interrupted: the agent stopped while this call was running; \
     it may or may not have taken effect, and it was not repeated";

impl DurableAgent {
    /// Runs `executor` with checkpoints in `checkpointer`.
    pub fn new(executor: AgentExecutor, checkpointer: Arc<dyn Checkpointer>) -> Self {
        DurableAgent {
            executor,
            checkpointer,
            approval: Arc::new(HashSet::new()),
        }
    }

    /// Requires a person's approval before every call of these tools (beside tools that
    /// say so themselves).
    #[must_use]
    pub fn require_approval<S: Into<String>>(mut self, tools: impl IntoIterator<Item = S>) -> Self {
        let mut set = (*self.approval).clone();
        set.extend(tools.into_iter().map(Into::into));
        self.approval = Arc::new(set);
        self
    }

    /// The saved state of `run_id`, or `None` for an unknown run.
    ///
    /// # Errors
    /// The checkpointer's errors; a checkpoint that is not a run state.
    pub async fn state(&self, run_id: &str) -> Result<Option<RunState>> {
        match self.checkpointer.latest(run_id).await? {
            None => Ok(None),
            Some(c) => serde_json::from_value(c.state)
                .map(Some)
                .map_err(|e| Error::serialization(format!("checkpoint of run `{run_id}`"), e)),
        }
    }

    /// Starts run `run_id` on `input` and runs it until it completes, fails, is cancelled or
    /// waits for approval.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a bad run id, no messages, or a run id already used; the
    /// checkpointer's errors (a conflict when another process advanced the run).
    pub async fn start(&self, run_id: &str, input: RunInput) -> Result<RunOutcome> {
        self.start_with(run_id, input, None).await
    }

    /// As [`start`](Self::start), sending [`AgentEvent`]s to `events` as the run goes.
    ///
    /// # Errors
    /// As for [`start`](Self::start).
    pub async fn start_with_events(
        &self,
        run_id: &str,
        input: RunInput,
        events: &mpsc::UnboundedSender<AgentEvent>,
    ) -> Result<RunOutcome> {
        self.start_with(run_id, input, Some(events)).await
    }

    async fn start_with(
        &self,
        run_id: &str,
        input: RunInput,
        sink: Sink<'_>,
    ) -> Result<RunOutcome> {
        validate_run_id(run_id)?;
        if input.messages.is_empty() {
            return Err(Error::invalid_input("a run needs at least one message"));
        }
        if self.checkpointer.latest(run_id).await?.is_some() {
            return Err(Error::invalid_input(format!(
                "run `{run_id}` exists already: resume it, or start another run id"
            )));
        }
        let mut messages = Vec::with_capacity(input.messages.len() + 1);
        if let Some(p) = &self.executor.config().system_prompt {
            messages.push(Message::system(p.clone()));
        }
        messages.extend(input.messages);
        let mut state = RunState {
            run_id: run_id.to_owned(),
            step: 0,
            messages,
            calls: Vec::new(),
            finished: Vec::new(),
            usage: Usage::default(),
            iterations: 0,
            status: RunStatus::Running,
        };
        self.save_first(&mut state).await?;
        self.drive(state, sink).await
    }

    /// Continues `run_id` from its latest checkpoint (after a crash or a restart, here or on
    /// another replica). A finished run returns its outcome again; a run awaiting approval
    /// stays so.
    ///
    /// # Errors
    /// [`Error::NotFound`] for an unknown run; the checkpointer's errors.
    pub async fn resume(&self, run_id: &str) -> Result<RunOutcome> {
        self.resume_with(run_id, None).await
    }

    /// As [`resume`](Self::resume), sending [`AgentEvent`]s to `events`.
    ///
    /// # Errors
    /// As for [`resume`](Self::resume).
    pub async fn resume_with_events(
        &self,
        run_id: &str,
        events: &mpsc::UnboundedSender<AgentEvent>,
    ) -> Result<RunOutcome> {
        self.resume_with(run_id, Some(events)).await
    }

    async fn resume_with(&self, run_id: &str, sink: Sink<'_>) -> Result<RunOutcome> {
        let state = self.load(run_id).await?;
        self.drive(state, sink).await
    }

    /// Records a decision about call `call_id` of `run_id` (which must await it) and
    /// continues the run.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] when the run does not await a decision about that call;
    /// [`Error::NotFound`] for an unknown run; the checkpointer's errors.
    pub async fn decide(
        &self,
        run_id: &str,
        call_id: &str,
        decision: Decision,
    ) -> Result<RunOutcome> {
        self.decide_with(run_id, call_id, decision, None).await
    }

    /// As [`decide`](Self::decide), sending [`AgentEvent`]s to `events`.
    ///
    /// # Errors
    /// As for [`decide`](Self::decide).
    pub async fn decide_with_events(
        &self,
        run_id: &str,
        call_id: &str,
        decision: Decision,
        events: &mpsc::UnboundedSender<AgentEvent>,
    ) -> Result<RunOutcome> {
        self.decide_with(run_id, call_id, decision, Some(events))
            .await
    }

    async fn decide_with(
        &self,
        run_id: &str,
        call_id: &str,
        decision: Decision,
        sink: Sink<'_>,
    ) -> Result<RunOutcome> {
        let mut state = self.load(run_id).await?;
        let waiting =
            matches!(&state.status, RunStatus::AwaitingApproval { call_id: c } if c == call_id);
        if !waiting {
            return Err(Error::invalid_input(format!(
                "run `{run_id}` is not waiting for a decision about call `{call_id}`"
            )));
        }
        let Some(record) = state
            .calls
            .iter_mut()
            .find(|r| r.call.id == call_id && r.status == CallStatus::AwaitingApproval)
        else {
            return Err(Error::invalid_input(format!(
                "run `{run_id}` has no call `{call_id}`"
            )));
        };
        match decision {
            Decision::Approve { arguments } => {
                if let Some(args) = &arguments {
                    serde_json::from_str::<serde_json::Value>(args).map_err(|e| {
                        Error::invalid_input(format!("the edited arguments are not JSON: {e}"))
                    })?;
                }
                record.status = CallStatus::Approved { arguments };
                state.status = RunStatus::Running;
            }
            Decision::Reject { message } => {
                record.status = CallStatus::Finished {
                    result: Err(format!("rejected by a person: {message}")),
                };
                state.status = RunStatus::Running;
            }
            Decision::Cancel => {
                state.status = RunStatus::Cancelled;
            }
        }
        self.save(&mut state).await?;
        self.drive(state, sink).await
    }

    /// Cancels `run_id` (a finished run stays as it is).
    ///
    /// # Errors
    /// [`Error::NotFound`] for an unknown run; the checkpointer's errors.
    pub async fn cancel(&self, run_id: &str) -> Result<()> {
        let mut state = self.load(run_id).await?;
        if matches!(
            state.status,
            RunStatus::Running | RunStatus::AwaitingApproval { .. }
        ) {
            state.status = RunStatus::Cancelled;
            self.save(&mut state).await?;
        }
        Ok(())
    }

    async fn load(&self, run_id: &str) -> Result<RunState> {
        validate_run_id(run_id)?;
        self.state(run_id)
            .await?
            .ok_or_else(|| Error::NotFound(format!("run `{run_id}`")))
    }

    async fn save_first(&self, state: &mut RunState) -> Result<()> {
        state.step = 0;
        let value = serde_json::to_value(&*state)
            .map_err(|e| Error::serialization("encoding a run state", e))?;
        self.checkpointer.put(&state.run_id, 0, &value).await
    }

    /// Saves the state as the next step (compare-and-set: fails when another process
    /// advanced the run).
    async fn save(&self, state: &mut RunState) -> Result<()> {
        state.step += 1;
        let value = serde_json::to_value(&*state)
            .map_err(|e| Error::serialization("encoding a run state", e))?;
        self.checkpointer
            .put(&state.run_id, state.step, &value)
            .await
    }

    fn tool(&self, name: &str) -> Option<&Arc<dyn Tool>> {
        self.executor
            .config()
            .tools
            .iter()
            .find(|t| t.name() == name)
    }

    fn needs_approval(&self, name: &str) -> bool {
        self.approval.contains(name) || self.tool(name).is_some_and(|t| t.requires_approval())
    }

    fn outcome(state: &RunState) -> Option<RunOutcome> {
        match &state.status {
            RunStatus::Running => None,
            RunStatus::Completed { output } => Some(RunOutcome::Completed {
                output: output.clone(),
                steps: state
                    .finished
                    .iter()
                    .map(|r| AgentStep {
                        call: r.call.clone(),
                        result: match &r.status {
                            CallStatus::Finished { result } => {
                                result.clone().map_err(StepError::Execution)
                            }
                            _ => Err(StepError::Execution(INTERRUPTED.to_owned())),
                        },
                        duration: std::time::Duration::ZERO,
                    })
                    .collect(),
                usage: state.usage,
            }),
            RunStatus::AwaitingApproval { call_id } => state
                .calls
                .iter()
                .find(|r| &r.call.id == call_id && r.status == CallStatus::AwaitingApproval)
                .map(|r| RunOutcome::AwaitingApproval {
                    call: r.call.clone(),
                    step: state.step,
                }),
            RunStatus::Failed { message } => Some(RunOutcome::Failed {
                message: message.clone(),
            }),
            RunStatus::Cancelled => Some(RunOutcome::Cancelled),
        }
    }

    /// The loop, one checkpoint per step.
    async fn drive(&self, mut state: RunState, sink: Sink<'_>) -> Result<RunOutcome> {
        let config = self.executor.config();
        loop {
            if let Some(outcome) = Self::outcome(&state) {
                if let RunOutcome::AwaitingApproval { call, .. } = &outcome {
                    emit(
                        sink,
                        AgentEvent::ApprovalRequired {
                            id: call.id.clone(),
                            name: call.name.clone(),
                            arguments: call.arguments.clone(),
                        },
                    );
                }
                return Ok(outcome);
            }
            if !state.calls.is_empty() {
                self.run_calls(&mut state, sink).await?;
                continue;
            }
            // Between turns: check the limits, then ask the model.
            let limit = if state.iterations >= config.max_iterations {
                Some(AgentError::MaxIterations {
                    limit: config.max_iterations,
                })
            } else {
                config
                    .token_budget
                    .filter(|b| state.usage.total_tokens > *b)
                    .map(|budget| AgentError::TokenBudget {
                        budget,
                        used: state.usage.total_tokens,
                    })
            };
            if let Some(limit) = limit {
                state.status = RunStatus::Failed {
                    message: limit.to_string(),
                };
                self.save(&mut state).await?;
                continue;
            }
            let mut request = ChatRequest::new(state.messages.clone());
            if !config.tools.is_empty() {
                request = request
                    .with_tools(config.tools.iter().map(|t| t.definition()))
                    .with_tool_choice(ToolChoice::Auto);
            }
            let step = state.iterations + 1;
            let response = match self.executor.model_turn(request, step, sink).await {
                Ok(r) => r,
                Err(e) => {
                    // The run can be resumed once the model is back: not a terminal state.
                    return Err(e);
                }
            };
            state.iterations += 1;
            state.usage += response.usage.unwrap_or_default();
            let mut message = response.message;
            unique_call_ids(&mut message.tool_calls, &state, state.iterations);
            let calls = message.tool_calls.clone();
            if calls.is_empty() {
                let output = message.text();
                state.messages.push(message);
                state.status = RunStatus::Completed {
                    output: output.clone(),
                };
                // Saved before it is told: a reader that stops at the final answer (and drops
                // the run) must find the run completed.
                self.save(&mut state).await?;
                emit(sink, AgentEvent::FinalAnswer(output));
                continue;
            }
            state.messages.push(message);
            state.calls = calls
                .into_iter()
                .map(|call| CallRecord {
                    call,
                    status: CallStatus::Pending,
                })
                .collect();
            self.save(&mut state).await?;
        }
    }

    /// Runs the current turn's calls in order, checkpointing each; returns when they are all
    /// finished (their results appended to the conversation) or one awaits approval.
    async fn run_calls(&self, state: &mut RunState, sink: Sink<'_>) -> Result<()> {
        for i in 0..state.calls.len() {
            let record = state.calls[i].clone();
            let arguments = match &record.status {
                CallStatus::Finished { .. } => continue,
                CallStatus::AwaitingApproval => {
                    state.status = RunStatus::AwaitingApproval {
                        call_id: record.call.id.clone(),
                    };
                    return Ok(());
                }
                CallStatus::Pending if self.needs_approval(&record.call.name) => {
                    state.calls[i].status = CallStatus::AwaitingApproval;
                    state.status = RunStatus::AwaitingApproval {
                        call_id: record.call.id.clone(),
                    };
                    self.save(state).await?;
                    return Ok(());
                }
                CallStatus::InFlight => {
                    let idempotent = self.tool(&record.call.name).is_some_and(|t| t.idempotent());
                    if !idempotent {
                        tracing::warn!(
                            run_id = %state.run_id,
                            call_id = %record.call.id,
                            tool = %record.call.name,
                            "a call was in flight when the run stopped; not repeating it"
                        );
                        state.calls[i].status = CallStatus::Finished {
                            result: Err(INTERRUPTED.to_owned()),
                        };
                        self.save(state).await?;
                        continue;
                    }
                    record.call.arguments.clone()
                }
                CallStatus::Approved { arguments } => arguments
                    .clone()
                    .unwrap_or_else(|| record.call.arguments.clone()),
                CallStatus::Pending => record.call.arguments.clone(),
            };
            let mut call = record.call.clone();
            call.arguments = arguments;
            state.calls[i] = CallRecord {
                call: call.clone(),
                status: CallStatus::InFlight,
            };
            // Recorded as in flight before it runs: a crash from here on is known.
            self.save(state).await?;
            emit(
                sink,
                AgentEvent::ToolCallStarted {
                    id: call.id.clone(),
                    name: call.name.clone(),
                    arguments: call.arguments.clone(),
                },
            );
            let result = self.invoke(&state.run_id, &call).await;
            state.calls[i].status = CallStatus::Finished {
                result: result.clone().map_err(|e| e.to_string()),
            };
            // Saved before it is told, as every event that records progress.
            self.save(state).await?;
            emit(
                sink,
                AgentEvent::ToolResult {
                    id: call.id.clone(),
                    name: call.name.clone(),
                    result,
                },
            );
        }
        // Every call finished: their results go to the conversation, in call order.
        let calls = std::mem::take(&mut state.calls);
        for record in &calls {
            let text = match &record.status {
                CallStatus::Finished { result: Ok(t) } => t.clone(),
                CallStatus::Finished { result: Err(e) } => format!("Error: {e}"),
                _ => format!("Error: {INTERRUPTED}"),
            };
            state
                .messages
                .push(Message::tool_result(record.call.id.clone(), text));
        }
        state.finished.extend(calls);
        self.save(state).await
    }

    async fn invoke(
        &self,
        run_id: &str,
        call: &ToolCall,
    ) -> std::result::Result<String, StepError> {
        let config = self.executor.config();
        let tool = self
            .tool(&call.name)
            .ok_or_else(|| StepError::UnknownTool {
                name: call.name.clone(),
                available: config.tools.iter().map(|t| t.name().to_owned()).collect(),
            })?;
        let args = call
            .arguments_json()
            .map_err(|e| StepError::InvalidArguments(e.to_string()))?;
        let ctx = ToolCallContext::new(run_id, call.id.clone());
        crate::executor::call_tool_with_context(tool.as_ref(), &ctx, args, config.tool_timeout)
            .await
    }
}
