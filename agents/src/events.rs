//! Typed events of a streamed agent run
//! ([`AgentExecutor::run_stream`](crate::AgentExecutor::run_stream),
//! [`ReactAgent::run_stream`](crate::ReactAgent::run_stream)): [`AgentEvent`] and the
//! [`AgentEventStream`] that yields them.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use catena_core::{Error, Result, Usage};
use futures::future::BoxFuture;
use futures::{FutureExt, Stream};
use tokio::sync::mpsc;

use crate::executor::{AgentRun, StepError};

/// One thing that happened during a streamed run
/// ([`AgentExecutor::run_stream`](crate::AgentExecutor::run_stream),
/// [`ReactAgent::run_stream`](crate::ReactAgent::run_stream), or a
/// [`DurableAgent`](crate::DurableAgent) run with events).
///
/// Events come in the order things happen. Each model turn streams its text deltas
/// ([`AgentEvent::ModelDelta`]) and the pieces of its native tool calls
/// ([`AgentEvent::ToolCallDelta`]) as they arrive, then ends with
/// [`AgentEvent::StepFinished`] and the turn's token usage. Then for each tool call come
/// [`AgentEvent::ToolCallStarted`] and later its [`AgentEvent::ToolResult`], and so on for
/// each turn; the run ends with exactly one [`AgentEvent::FinalAnswer`] or
/// [`AgentEvent::Error`]. Dropping the stream cancels the run, including tools that are
/// still running.
///
/// A [`ReactAgent`](crate::ReactAgent) offers the model no native tools (it reads tool calls
/// from the text), so its turns have no [`AgentEvent::ToolCallDelta`]s: its
/// [`AgentEvent::ToolCallStarted`] comes once the turn's text is parsed.
///
/// ```
/// use std::sync::Arc;
/// use catena_agents::{AgentEvent, AgentExecutor};
/// use catena_core::test_utils::ScriptedChatModel;
/// use futures::StreamExt;
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let model = Arc::new(ScriptedChatModel::new().with_text("Hello there"));
/// let agent = AgentExecutor::builder(model).build()?;
/// let events: Vec<AgentEvent> = agent.run_stream("hi").collect().await;
/// let streamed: String = events
///     .iter()
///     .filter_map(|e| match e { AgentEvent::ModelDelta(d) => Some(d.as_str()), _ => None })
///     .collect();
/// assert_eq!(streamed, "Hello there");
/// // One model turn, with the usage the model reported for it.
/// let usage = events.iter().find_map(|e| match e {
///     AgentEvent::StepFinished { step: 1, usage } => Some(*usage),
///     _ => None,
/// });
/// assert!(usage.is_some_and(|u| u.output_tokens == 2));
/// assert_eq!(events.last(), Some(&AgentEvent::FinalAnswer("Hello there".into())));
/// # Ok::<(), catena_core::Error>(())
/// # }).unwrap();
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum AgentEvent {
    /// More text from the model (any turn, including text beside tool calls).
    ModelDelta(String),
    /// A piece of a native tool call as the model streams it, before the turn ends.
    ///
    /// The pieces with the same `index` belong to one call of the turn: their `arguments`
    /// concatenated, in order, are the call's arguments in the
    /// [`ToolCallStarted`](AgentEvent::ToolCallStarted) that follows the turn.
    ToolCallDelta {
        /// Position of the call in this turn.
        index: usize,
        /// The call id, when this piece carries it (usually the first piece only). A
        /// [`DurableAgent`](crate::DurableAgent) replaces a missing or repeated id, so the
        /// started call's id may differ; `index` still pairs them.
        id: Option<String>,
        /// The tool's name, when this piece carries it (usually the first piece only).
        name: Option<String>,
        /// More argument JSON text (may be empty).
        arguments: String,
    },
    /// A model turn finished (its text and tool calls are complete).
    StepFinished {
        /// The model call's number in the run, from 1; the last one is
        /// [`AgentRun::iterations`]. A resumed durable run goes on from its checkpoint.
        step: usize,
        /// The tokens this turn used, as the model reported them (zero when it reported
        /// none). Summed over the steps, this is [`AgentRun::usage`].
        usage: Usage,
    },
    /// A tool call is about to run.
    ToolCallStarted {
        /// The call id.
        id: String,
        /// The tool's name.
        name: String,
        /// The arguments as JSON text, as the model emitted them.
        arguments: String,
    },
    /// A tool call finished; the model gets the output, or the error as `"Error: …"`.
    ToolResult {
        /// The call id.
        id: String,
        /// The tool's name.
        name: String,
        /// The output text, or why there is none.
        result: Result<String, StepError>,
    },
    /// A durable run stopped before this call: a person must approve, edit, reject or
    /// cancel it ([`DurableAgent::decide`](crate::DurableAgent::decide)). The last event of
    /// the run until then.
    ApprovalRequired {
        /// The call id.
        id: String,
        /// The tool's name.
        name: String,
        /// The arguments as JSON text, as the model emitted them.
        arguments: String,
    },
    /// The model's final answer; the last event of a successful run.
    FinalAnswer(String),
    /// The run failed; the last event. An [`AgentError`](crate::AgentError) limit is inside
    /// as with [`AgentExecutor::run`](crate::AgentExecutor::run).
    Error(Arc<Error>),
}

impl PartialEq for AgentEvent {
    /// Errors compare by their message text; everything else structurally.
    fn eq(&self, other: &Self) -> bool {
        use AgentEvent::*;
        match (self, other) {
            (ModelDelta(a), ModelDelta(b)) | (FinalAnswer(a), FinalAnswer(b)) => a == b,
            (
                ToolCallStarted {
                    id: a,
                    name: b,
                    arguments: c,
                },
                ToolCallStarted {
                    id: x,
                    name: y,
                    arguments: z,
                },
            ) => a == x && b == y && c == z,
            (
                ToolResult {
                    id: a,
                    name: b,
                    result: c,
                },
                ToolResult {
                    id: x,
                    name: y,
                    result: z,
                },
            ) => a == x && b == y && c == z,
            (
                ApprovalRequired {
                    id: a,
                    name: b,
                    arguments: c,
                },
                ApprovalRequired {
                    id: x,
                    name: y,
                    arguments: z,
                },
            ) => a == x && b == y && c == z,
            (
                ToolCallDelta {
                    index: a,
                    id: b,
                    name: c,
                    arguments: d,
                },
                ToolCallDelta {
                    index: w,
                    id: x,
                    name: y,
                    arguments: z,
                },
            ) => a == w && b == x && c == y && d == z,
            (StepFinished { step: a, usage: b }, StepFinished { step: x, usage: y }) => {
                a == x && b == y
            }
            (Error(a), Error(b)) => a.to_string() == b.to_string(),
            _ => false,
        }
    }
}

/// The stream returned by [`AgentExecutor::run_stream`](crate::AgentExecutor::run_stream)
/// and [`ReactAgent::run_stream`](crate::ReactAgent::run_stream).
///
/// It owns the run as a future and drives it while being polled (nothing is spawned), so
/// dropping the stream drops the run and every tool call in flight.
#[must_use = "the run only makes progress while the stream is polled"]
pub struct AgentEventStream {
    rx: mpsc::UnboundedReceiver<AgentEvent>,
    driver: Option<BoxFuture<'static, ()>>,
}

impl fmt::Debug for AgentEventStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AgentEventStream")
            .field("running", &self.driver.is_some())
            .finish_non_exhaustive()
    }
}

impl AgentEventStream {
    /// A stream driving the run that `start` makes from the events' sender; the run's
    /// outcome becomes the last event.
    pub(crate) fn new<F>(start: impl FnOnce(mpsc::UnboundedSender<AgentEvent>) -> F) -> Self
    where
        F: Future<Output = Result<AgentRun>> + Send + 'static,
    {
        let (tx, rx) = mpsc::unbounded_channel();
        let run = start(tx.clone());
        let driver = async move {
            let last = match run.await {
                Ok(run) => AgentEvent::FinalAnswer(run.output),
                Err(e) => AgentEvent::Error(Arc::new(e)),
            };
            let _ = tx.send(last);
        }
        .boxed();
        AgentEventStream {
            rx,
            driver: Some(driver),
        }
    }
}

impl Stream for AgentEventStream {
    type Item = AgentEvent;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<AgentEvent>> {
        let this = &mut *self;
        loop {
            if let Poll::Ready(Some(event)) = this.rx.poll_recv(cx) {
                return Poll::Ready(Some(event));
            }
            match &mut this.driver {
                Some(driver) => match driver.as_mut().poll(cx) {
                    // The run is over; its sender is dropped. Drain what is left.
                    Poll::Ready(()) => this.driver = None,
                    Poll::Pending => return Poll::Pending,
                },
                // The sender went with the driver, so `poll_recv` has said `None`.
                None => return Poll::Ready(None),
            }
        }
    }
}
