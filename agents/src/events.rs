//! Typed events of a streamed agent run ([`AgentExecutor::run_stream`]): [`AgentEvent`] and
//! the [`AgentEventStream`] that yields them.

use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use catena_core::Error;
use futures::future::BoxFuture;
use futures::{FutureExt, Stream};
use tokio::sync::mpsc;

use crate::executor::{AgentExecutor, StepError};

/// One thing that happened during a streamed run ([`AgentExecutor::run_stream`]).
///
/// Events come in the order things happen: the model's text deltas
/// ([`AgentEvent::ModelDelta`]), then for each tool call [`AgentEvent::ToolCallStarted`] and
/// later its [`AgentEvent::ToolResult`], and so on for each turn, ending with exactly one
/// [`AgentEvent::FinalAnswer`] or [`AgentEvent::Error`]. Dropping the stream cancels the run,
/// including tools that are still running.
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
/// assert_eq!(events.last(), Some(&AgentEvent::FinalAnswer("Hello there".into())));
/// # Ok::<(), catena_core::Error>(())
/// # }).unwrap();
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum AgentEvent {
    /// More text from the model (any turn, including text beside tool calls).
    ModelDelta(String),
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
    /// as with [`AgentExecutor::run`].
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
            (Error(a), Error(b)) => a.to_string() == b.to_string(),
            _ => false,
        }
    }
}

/// The stream returned by [`AgentExecutor::run_stream`].
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
    pub(crate) fn new(executor: AgentExecutor, input: String) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        let driver = async move {
            let last = match executor.drive(&input, Some(&tx)).await {
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
