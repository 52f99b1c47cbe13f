//! The typed, Rust-side view of a task and its events.

use std::time::Duration;

use catena_core::{Document, DocumentId, Message, ScoredDocument, Usage};

use super::convert::{duration_from_proto, duration_to_proto};
use super::error::TaskError;
use super::pb;

/// Limits on one task; an unset limit means "the service's default".
///
/// ```
/// use std::time::Duration;
/// use catena_agents::grpc::TaskLimits;
///
/// let limits = TaskLimits::new().with_max_steps(5).with_max_duration(Duration::from_secs(20));
/// assert_eq!(limits.max_steps, Some(5));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct TaskLimits {
    /// The most agent steps (model turns).
    pub max_steps: Option<u32>,
    /// The longest the task may run; the gRPC deadline still applies, the earlier wins.
    pub max_duration: Option<Duration>,
    /// The most tokens, input plus output, summed over every model call.
    pub max_tokens: Option<u64>,
}

impl TaskLimits {
    /// No limits of its own: the service's defaults.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the most agent steps. Default: the service's.
    #[must_use]
    pub fn with_max_steps(mut self, steps: u32) -> Self {
        self.max_steps = Some(steps);
        self
    }

    /// Sets the longest the task may run. Default: the gRPC deadline, capped by the service.
    #[must_use]
    pub fn with_max_duration(mut self, duration: Duration) -> Self {
        self.max_duration = Some(duration);
        self
    }

    /// Sets the token budget. Default: the service's.
    #[must_use]
    pub fn with_max_tokens(mut self, tokens: u64) -> Self {
        self.max_tokens = Some(tokens);
        self
    }
}

impl From<TaskLimits> for pb::TaskLimits {
    fn from(l: TaskLimits) -> Self {
        pb::TaskLimits {
            max_steps: l.max_steps.unwrap_or(0),
            max_duration: l.max_duration.map(duration_to_proto),
            max_tokens: l.max_tokens.unwrap_or(0),
        }
    }
}

impl From<pb::TaskLimits> for TaskLimits {
    /// Zero values and negative durations read as unset.
    fn from(l: pb::TaskLimits) -> Self {
        TaskLimits {
            max_steps: (l.max_steps > 0).then_some(l.max_steps),
            max_duration: l
                .max_duration
                .and_then(duration_from_proto)
                .filter(|d| !d.is_zero()),
            max_tokens: (l.max_tokens > 0).then_some(l.max_tokens),
        }
    }
}

/// One task for an agent service: what [`AgentServiceClient::run_task`] sends.
///
/// [`AgentServiceClient::run_task`]: super::AgentServiceClient::run_task
///
/// ```
/// use std::time::Duration;
/// use catena_agents::grpc::{TaskLimits, TaskRequest};
/// use catena_core::{Document, Message};
///
/// let request = TaskRequest::new("Summarise the incident.")
///     .with_request_id("req-42")
///     .with_document(Document::new("At 03:12 the disk filled up.").with_id("log-1"))
///     .with_history([Message::user("Hi"), Message::assistant("Hello!")])
///     .with_allowed_tools(["search"])
///     .with_limits(TaskLimits::new().with_max_steps(4))
///     .with_timeout(Duration::from_secs(30));
/// assert_eq!(request.task(), "Summarise the incident.");
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct TaskRequest {
    pub(crate) message: pb::RunTaskRequest,
    pub(crate) timeout: Option<Duration>,
    pub(crate) error: Option<String>,
}

impl TaskRequest {
    /// A task with no context, no history, every tool and the service's limits.
    pub fn new(task: impl Into<String>) -> Self {
        TaskRequest {
            message: pb::RunTaskRequest {
                task: task.into(),
                ..Default::default()
            },
            timeout: None,
            error: None,
        }
    }

    /// The task text.
    pub fn task(&self) -> &str {
        &self.message.task
    }

    /// Sets the caller's request id, for logs and traces. Default: none.
    #[must_use]
    pub fn with_request_id(mut self, id: impl Into<String>) -> Self {
        self.message.request_id = id.into();
        self
    }

    /// Sets the id of the durable run this task becomes (on a service with checkpoints), so
    /// the caller can resume it or ask about it later. Default: none; the service
    /// generates one ([`TaskStream::run_id`](super::TaskStream::run_id) tells it).
    #[must_use]
    pub fn with_run_id(mut self, run_id: impl Into<String>) -> Self {
        self.message.run_id = run_id.into();
        self
    }

    /// Adds one context document (score 0). Default: no documents.
    #[must_use]
    pub fn with_document(mut self, document: Document) -> Self {
        self.message.documents.push(document.into());
        self
    }

    /// Adds retrieved documents with their scores, most relevant first.
    #[must_use]
    pub fn with_scored_documents(mut self, docs: impl IntoIterator<Item = ScoredDocument>) -> Self {
        self.message
            .documents
            .extend(docs.into_iter().map(pb::ContextDocument::from));
        self
    }

    /// Adds conversation history, oldest first. Only system, user and assistant messages
    /// travel; a tool message (or an assistant message's tool calls) cannot, and
    /// [`run_task`](super::AgentServiceClient::run_task) then fails with
    /// [`TaskError::InvalidRequest`]. Default: no history.
    #[must_use]
    pub fn with_history(mut self, messages: impl IntoIterator<Item = Message>) -> Self {
        for m in messages {
            match pb::ChatMessage::try_from(&m) {
                Ok(m) => self.message.history.push(m),
                Err(e) => {
                    self.error.get_or_insert(e);
                }
            }
        }
        self
    }

    /// Restricts the agent to these tools. Default: every tool the service offers.
    #[must_use]
    pub fn with_allowed_tools(
        mut self,
        names: impl IntoIterator<Item = impl Into<String>>,
    ) -> Self {
        self.message
            .allowed_tools
            .extend(names.into_iter().map(Into::into));
        self
    }

    /// Sets the task's limits. Default: the service's.
    #[must_use]
    pub fn with_limits(mut self, limits: TaskLimits) -> Self {
        self.message.limits = Some(limits.into());
        self
    }

    /// Sets the call's deadline, sent as the gRPC timeout and enforced by the client too.
    /// Default: the client's default timeout (see
    /// [`AgentServiceClient::with_default_timeout`](super::AgentServiceClient::with_default_timeout)).
    #[must_use]
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// The wire message.
    pub fn as_proto(&self) -> &pb::RunTaskRequest {
        &self.message
    }

    /// A request from a wire message (no timeout).
    pub fn from_proto(message: pb::RunTaskRequest) -> Self {
        TaskRequest {
            message,
            timeout: None,
            error: None,
        }
    }
}

/// A piece of context an answer drew on.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct AnswerSource {
    /// The document's id, when it had one.
    pub id: Option<DocumentId>,
    /// Where it came from (its `source` metadata), when known.
    pub source: Option<String>,
    /// Its retrieval score (0 when it was not scored).
    pub score: f32,
}

impl AnswerSource {
    /// The source of a context document.
    pub fn from_document(doc: &ScoredDocument) -> Self {
        AnswerSource {
            id: doc.document.id.clone(),
            source: doc.document.source().map(str::to_owned),
            score: doc.score,
        }
    }
}

impl From<AnswerSource> for pb::Source {
    fn from(s: AnswerSource) -> Self {
        pb::Source {
            id: s.id.map(DocumentId::into_inner).unwrap_or_default(),
            source: s.source.unwrap_or_default(),
            score: s.score,
        }
    }
}

impl From<pb::Source> for AnswerSource {
    fn from(s: pb::Source) -> Self {
        AnswerSource {
            id: (!s.id.is_empty()).then(|| DocumentId::new(s.id)),
            source: (!s.source.is_empty()).then_some(s.source),
            score: s.score,
        }
    }
}

/// What happened in a running task, as the client sees it. Failures are not events: the
/// [`TaskStream`](super::TaskStream) yields a [`TaskError`] and ends.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum TaskEvent {
    /// A new agent step (model turn) began; steps count from 1.
    StepStarted(u32),
    /// More text from the model.
    TextDelta(String),
    /// The agent is calling a tool.
    ToolCall {
        /// The call id, repeated in the matching [`TaskEvent::ToolResult`].
        id: String,
        /// The tool's name.
        name: String,
        /// The arguments as JSON text, as the model wrote them.
        arguments: String,
    },
    /// A tool call finished.
    ToolResult {
        /// The call id.
        id: String,
        /// The tool's name.
        name: String,
        /// The output, or why there is none when `is_error`.
        content: String,
        /// Whether the call failed (the task goes on; the model sees the error).
        is_error: bool,
    },
    /// A durable run stopped before this tool call for a person's decision; the last event
    /// of the call (continue the run with `Decide`).
    ApprovalRequired {
        /// The call id.
        id: String,
        /// The tool's name.
        name: String,
        /// The arguments as JSON text, as the model wrote them.
        arguments: String,
    },
    /// The task's answer; the last event.
    FinalAnswer {
        /// The answer.
        text: String,
        /// The context the answer drew on.
        sources: Vec<AnswerSource>,
        /// Tokens used by every model call of the task.
        usage: Usage,
    },
}

impl TaskEvent {
    /// Reads a wire event. `Ok(None)` for an event this version does not know (skip it);
    /// an error event becomes [`TaskError::Task`].
    ///
    /// # Errors
    /// [`TaskError::Task`] for an `ErrorEvent`.
    pub fn from_proto(response: pb::RunTaskResponse) -> Result<Option<TaskEvent>, TaskError> {
        use pb::run_task_response::Event;
        let Some(event) = response.event else {
            return Ok(None);
        };
        Ok(Some(match event {
            Event::StepStarted(s) => TaskEvent::StepStarted(s.step),
            Event::TextDelta(d) => TaskEvent::TextDelta(d.text),
            Event::ToolCall(c) => TaskEvent::ToolCall {
                id: c.id,
                name: c.name,
                arguments: c.arguments_json,
            },
            Event::ToolResult(r) => TaskEvent::ToolResult {
                id: r.id,
                name: r.name,
                content: r.content,
                is_error: r.is_error,
            },
            Event::FinalAnswer(a) => TaskEvent::FinalAnswer {
                text: a.text,
                sources: a.sources.into_iter().map(AnswerSource::from).collect(),
                usage: a.usage.map(Usage::from).unwrap_or_default(),
            },
            Event::ApprovalRequired(a) => TaskEvent::ApprovalRequired {
                id: a.call_id,
                name: a.name,
                arguments: a.arguments_json,
            },
            Event::Error(e) => return Err(TaskError::from_event(e)),
        }))
    }

    /// Whether this is the last event of a call: the final answer, or a durable run
    /// stopping for approval.
    pub fn is_final(&self) -> bool {
        matches!(
            self,
            TaskEvent::FinalAnswer { .. } | TaskEvent::ApprovalRequired { .. }
        )
    }
}
