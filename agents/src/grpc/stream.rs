//! The server side of one call: the runner's [`AgentEvent`]s mapped to wire events, with
//! step numbering, the deadline and the step limit applied.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::stream::BoxStream;
use futures::{FutureExt, Stream};
use tokio::time::{Instant, Sleep};
use tonic::Status;

use super::context::Report;
use super::error::{error_event, status_code};
use super::pb::{self, run_task_response::Event, ErrorCode};
use super::types::AnswerSource;
use crate::events::AgentEvent;

type Item = Result<pb::RunTaskResponse, Status>;

/// Where a call's events start: the run they belong to, the last sequence number the run
/// already used, and the number of the first step.
#[derive(Debug, Clone)]
pub(crate) struct Position {
    pub(crate) run_id: String,
    pub(crate) last_sequence: u64,
    pub(crate) first_step: u32,
}

impl Default for Position {
    fn default() -> Self {
        Position {
            run_id: String::new(),
            last_sequence: 0,
            first_step: 1,
        }
    }
}

/// Drives the agent while polled; dropping it (the client went away) drops the agent run
/// and its tools. Nothing is spawned.
pub(crate) struct EventStream {
    agent: Option<BoxStream<'static, AgentEvent>>,
    deadline: Pin<Box<Sleep>>,
    timeout: Duration,
    report: Arc<Report>,
    context_sources: Vec<AnswerSource>,
    max_steps: Option<u32>,
    queue: VecDeque<Item>,
    /// The run every event is stamped with (empty for none).
    run_id: String,
    sequence: u64,
    step: u32,
    /// The step's tool results have all arrived; the next event belongs to a new step.
    step_done: bool,
    /// Tool calls of the current step: expected (from the metered model), started, finished.
    expected: Option<usize>,
    started: usize,
    finished: usize,
    span: tracing::Span,
}

impl EventStream {
    #[cfg(test)]
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        agent: BoxStream<'static, AgentEvent>,
        deadline: Instant,
        timeout: Duration,
        report: Arc<Report>,
        context_sources: Vec<AnswerSource>,
        max_steps: Option<u32>,
        span: tracing::Span,
    ) -> Self {
        Self::continuing(
            agent,
            deadline,
            timeout,
            report,
            context_sources,
            max_steps,
            span,
            Position::default(),
        )
    }

    /// As [`new`](Self::new), for a run that already emitted events: numbering goes on
    /// from `position`, and every event carries its run id.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn continuing(
        agent: BoxStream<'static, AgentEvent>,
        deadline: Instant,
        timeout: Duration,
        report: Arc<Report>,
        context_sources: Vec<AnswerSource>,
        max_steps: Option<u32>,
        span: tracing::Span,
        position: Position,
    ) -> Self {
        let mut stream = EventStream {
            agent: Some(agent),
            deadline: Box::pin(tokio::time::sleep_until(deadline)),
            timeout,
            report,
            context_sources,
            max_steps,
            queue: VecDeque::new(),
            run_id: position.run_id,
            sequence: position.last_sequence,
            step: position.first_step.saturating_sub(1),
            step_done: false,
            expected: None,
            started: 0,
            finished: 0,
            span,
        };
        stream.start_step();
        stream
    }

    fn push(&mut self, event: Event) {
        self.sequence += 1;
        self.queue.push_back(Ok(pb::RunTaskResponse {
            sequence: self.sequence,
            event: Some(event),
            run_id: self.run_id.clone(),
        }));
    }

    fn start_step(&mut self) {
        self.step += 1;
        self.step_done = false;
        self.expected = None;
        self.started = 0;
        self.finished = 0;
        let step = self.step;
        let usage = Some(self.report.usage().into());
        self.push(Event::StepStarted(pb::StepStarted { step, usage }));
    }

    /// Ends the call: stops the agent (dropping it cancels its work), sends the error event
    /// and closes with the matching status.
    fn fail(&mut self, mut event: pb::ErrorEvent) {
        self.agent = None;
        // What the task spent before it failed is spent all the same.
        event.usage = Some(self.report.usage().into());
        let code = status_code(ErrorCode::try_from(event.code).unwrap_or(ErrorCode::Internal));
        tracing::debug!(parent: &self.span, code = ?code, message = %event.message, "task failed");
        let status = Status::new(code, event.message.clone());
        self.push(Event::Error(event));
        self.queue.push_back(Err(status));
    }

    fn on_event(&mut self, event: AgentEvent) {
        // The wire contract has no tool-call pieces or per-step usage (its `StepStarted`
        // carries the running total from the metered model). Skipped before the step
        // bookkeeping, so they never open a step.
        if matches!(
            event,
            AgentEvent::ToolCallDelta { .. } | AgentEvent::StepFinished { .. }
        ) {
            return;
        }
        let terminal = matches!(event, AgentEvent::FinalAnswer(_) | AgentEvent::Error(_));
        if self.step_done && !matches!(event, AgentEvent::Error(_)) {
            if !terminal && self.max_steps.is_some_and(|max| self.step >= max) {
                let max = self.max_steps.unwrap_or_default();
                return self.fail(pb::ErrorEvent {
                    code: ErrorCode::LimitExceeded.into(),
                    message: format!("the agent went over max_steps = {max}"),
                    retryable: false,
                    usage: None,
                });
            }
            self.start_step();
        }
        match event {
            AgentEvent::ModelDelta(text) => self.push(Event::TextDelta(pb::TextDelta { text })),
            AgentEvent::ToolCallStarted {
                id,
                name,
                arguments,
            } => {
                if self.started == 0 {
                    self.expected = self.report.next_turn_calls();
                }
                self.started += 1;
                self.push(Event::ToolCall(pb::ToolCall {
                    id,
                    name,
                    arguments_json: arguments,
                }));
            }
            AgentEvent::ToolResult { id, name, result } => {
                self.finished += 1;
                let (content, is_error) = match result {
                    Ok(text) => (text, false),
                    Err(e) => (format!("Error: {e}"), true),
                };
                self.push(Event::ToolResult(pb::ToolResult {
                    id,
                    name,
                    content,
                    is_error,
                }));
                // Without the metered model's count, a step ends when no call is running.
                self.step_done = self.finished >= self.expected.unwrap_or(self.started);
            }
            AgentEvent::FinalAnswer(text) => {
                self.agent = None;
                let mut sources = self.report.sources();
                if sources.is_empty() {
                    sources = std::mem::take(&mut self.context_sources);
                }
                let usage = self.report.usage();
                tracing::debug!(parent: &self.span, steps = self.step, tokens = usage.total_tokens, "task answered");
                self.push(Event::FinalAnswer(pb::FinalAnswer {
                    text,
                    sources: sources.into_iter().map(pb::Source::from).collect(),
                    usage: Some(usage.into()),
                }));
            }
            AgentEvent::Error(e) => self.fail(error_event(&e)),
            // A durable run stopped for a person's decision: the call ends here, with OK.
            AgentEvent::ApprovalRequired {
                id,
                name,
                arguments,
            } => {
                self.agent = None;
                self.push(Event::ApprovalRequired(pb::ApprovalRequired {
                    call_id: id,
                    name,
                    arguments_json: arguments,
                }));
            }
            // Returned above.
            AgentEvent::ToolCallDelta { .. } | AgentEvent::StepFinished { .. } => {}
        }
    }
}

impl Stream for EventStream {
    type Item = Item;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Item>> {
        let this = &mut *self;
        loop {
            if let Some(item) = this.queue.pop_front() {
                return Poll::Ready(Some(item));
            }
            let Some(agent) = this.agent.as_mut() else {
                return Poll::Ready(None);
            };
            if this.deadline.poll_unpin(cx).is_ready() {
                let timeout = this.timeout;
                this.fail(pb::ErrorEvent {
                    code: ErrorCode::DeadlineExceeded.into(),
                    message: format!("the task did not finish within its deadline of {timeout:?}"),
                    retryable: false,
                    usage: None,
                });
                continue;
            }
            let agent_event = {
                let _entered = this.span.enter();
                agent.as_mut().poll_next(cx)
            };
            match agent_event {
                Poll::Ready(Some(event)) => this.on_event(event),
                Poll::Ready(None) => this.fail(pb::ErrorEvent {
                    code: ErrorCode::Internal.into(),
                    message: "the agent stopped without a final answer or an error".into(),
                    retryable: false,
                    usage: None,
                }),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::executor::StepError;
    use futures::StreamExt;

    fn call(id: &str) -> AgentEvent {
        AgentEvent::ToolCallStarted {
            id: id.into(),
            name: "t".into(),
            arguments: "{}".into(),
        }
    }

    fn result(id: &str) -> AgentEvent {
        AgentEvent::ToolResult {
            id: id.into(),
            name: "t".into(),
            result: Ok("ok".into()),
        }
    }

    /// The wire events as short labels.
    async fn run(events: Vec<AgentEvent>, report: Report, max_steps: Option<u32>) -> Vec<String> {
        let stream = EventStream::new(
            futures::stream::iter(events).boxed(),
            Instant::now() + Duration::from_secs(60),
            Duration::from_secs(60),
            Arc::new(report),
            vec![],
            max_steps,
            tracing::Span::none(),
        );
        stream
            .map(|item| match item {
                Ok(r) => match r.event.unwrap() {
                    Event::StepStarted(s) => format!("step{}", s.step),
                    Event::TextDelta(d) => format!("delta:{}", d.text),
                    Event::ToolCall(c) => format!("call:{}", c.id),
                    Event::ToolResult(r) => format!("result:{}", r.id),
                    Event::FinalAnswer(a) => format!("final:{}", a.text),
                    Event::Error(e) => format!("error:{}", e.code),
                    Event::ApprovalRequired(a) => format!("approval:{}", a.call_id),
                },
                Err(status) => format!("status:{:?}", status.code()),
            })
            .collect()
            .await
    }

    #[tokio::test]
    async fn the_metered_count_keeps_sequential_calls_in_one_step() {
        // One turn with two calls run one after the other (max_concurrent_tools = 1).
        let report = Report::default();
        report.finish_turn(None, Some(2));
        let events = vec![
            call("a"),
            result("a"),
            call("b"),
            result("b"),
            AgentEvent::FinalAnswer("done".into()),
        ];
        assert_eq!(
            run(events, report, None).await,
            [
                "step1",
                "call:a",
                "result:a",
                "call:b",
                "result:b",
                "step2",
                "final:done"
            ]
        );
    }

    #[tokio::test]
    async fn without_a_count_a_step_ends_when_no_call_is_running() {
        let events = vec![
            AgentEvent::ModelDelta("hm".into()),
            call("a"),
            call("b"),
            result("a"),
            AgentEvent::ToolResult {
                id: "b".into(),
                name: "t".into(),
                result: Err(StepError::Execution("boom".into())),
            },
            AgentEvent::ModelDelta("ok".into()),
            AgentEvent::FinalAnswer("ok".into()),
        ];
        assert_eq!(
            run(events, Report::default(), None).await,
            [
                "step1", "delta:hm", "call:a", "call:b", "result:a", "result:b", "step2",
                "delta:ok", "final:ok"
            ]
        );
    }

    #[tokio::test]
    async fn tool_call_pieces_and_step_usage_are_not_on_the_wire() {
        let piece = |arguments: &str| AgentEvent::ToolCallDelta {
            index: 0,
            id: None,
            name: None,
            arguments: arguments.into(),
        };
        let finished = |step| AgentEvent::StepFinished {
            step,
            usage: catena_core::Usage::new(5, 1),
        };
        let events = vec![
            AgentEvent::ModelDelta("hm".into()),
            piece("{}"),
            finished(1),
            call("a"),
            result("a"),
            piece("{"),
            piece("}"),
            finished(2),
            call("b"),
            result("b"),
            finished(3),
            AgentEvent::FinalAnswer("ok".into()),
        ];
        assert_eq!(
            run(events, Report::default(), None).await,
            [
                "step1", "delta:hm", "call:a", "result:a", "step2", "call:b", "result:b", "step3",
                "final:ok"
            ]
        );
    }

    #[tokio::test]
    async fn the_service_enforces_max_steps_itself() {
        let events = vec![call("a"), result("a"), call("b"), result("b")];
        let code = ErrorCode::LimitExceeded as i32;
        assert_eq!(
            run(events, Report::default(), Some(1)).await,
            [
                "step1".to_owned(),
                "call:a".into(),
                "result:a".into(),
                format!("error:{code}"),
                "status:ResourceExhausted".into()
            ]
        );
    }

    #[tokio::test]
    async fn a_stream_that_just_ends_is_an_internal_error() {
        let code = ErrorCode::Internal as i32;
        assert_eq!(
            run(vec![], Report::default(), None).await,
            [
                "step1".to_owned(),
                format!("error:{code}"),
                "status:Internal".into()
            ]
        );
    }
}
