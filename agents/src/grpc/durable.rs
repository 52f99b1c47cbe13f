//! Durable runs over the contract: `RunTask` under a run id, `ResumeTask`, `Decide` and
//! `GetTask`, with each run's wire events kept in the checkpointer for replay.
//!
//! Per run the checkpointer holds three sequences: the run's own state (`{run_id}`, written
//! by [`DurableAgent`]), the task as the service received it (`{run_id}.task`, one
//! checkpoint, so another process can rebuild the agent to resume it), and the events the
//! run emitted (`{run_id}.events`: each checkpoint one batch of the events streamed
//! together, written before they are sent, so a client never saw an event that replay
//! lacks; compare-and-set keeps two writers from interleaving).

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use catena_core::{validate_run_id, Checkpointer, Error, Message, Result, ScoredDocument};
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use futures::{FutureExt, Stream, StreamExt};
use prost::Message as _;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tonic::Status;

use super::context::TaskContext;
use super::error::run_ended;
use super::pb::{self, ErrorCode};
use super::types::TaskLimits;
use crate::durable::{Decision, DurableAgent, RunInput, RunOutcome, RunState, RunStatus};
use crate::events::AgentEvent;
use crate::executor::AgentExecutor;

/// What a durable service runs for one task: the agent, and the run's input.
///
/// Built by the closure given to
/// [`AgentGrpcService::durable`](super::AgentGrpcService::durable) from the task's
/// [`TaskContext`]. When a run is resumed (`ResumeTask`, `Decide`), the closure gets the
/// task as first received and its input is not used again: the run goes on from its
/// checkpoint.
#[derive(Debug)]
pub struct DurableTask {
    pub(crate) executor: AgentExecutor,
    pub(crate) input: RunInput,
}

impl DurableTask {
    /// Runs `executor` on `input` (for example
    /// `RunInput::text(ctx.prompt())`).
    pub fn new(executor: AgentExecutor, input: RunInput) -> Self {
        DurableTask { executor, input }
    }
}

/// Builds the agent of a durable task.
pub(crate) type AgentFactory = Arc<dyn Fn(TaskContext) -> Result<DurableTask> + Send + Sync>;

/// The durable half of the service's configuration.
#[derive(Clone)]
pub(crate) struct Durable {
    pub(crate) checkpointer: Arc<dyn Checkpointer>,
    pub(crate) agents: AgentFactory,
}

/// The message of every new RPC on a service without checkpoints.
pub(crate) const NO_CHECKPOINTS: &str = "this agent service keeps no checkpoints";

/// The task as the service received it (without its metadata), kept to rebuild the agent.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct TaskRecord {
    pub(crate) request_id: String,
    pub(crate) task: String,
    pub(crate) documents: Vec<ScoredDocument>,
    pub(crate) history: Vec<Message>,
    pub(crate) allowed_tools: Vec<String>,
    pub(crate) max_steps: Option<u32>,
    pub(crate) max_tokens: Option<u64>,
}

impl TaskRecord {
    pub(crate) fn limits(&self) -> TaskLimits {
        TaskLimits {
            max_steps: self.max_steps,
            max_duration: None,
            max_tokens: self.max_tokens,
        }
    }
}

/// One stored batch of wire events (those streamed together), in order: each its
/// sequence number and its protobuf encoding (hex).
#[derive(Debug, Default, Serialize, Deserialize)]
struct StoredBatch {
    events: Vec<StoredEvent>,
}

#[derive(Debug, Serialize, Deserialize)]
struct StoredEvent {
    sequence: u64,
    event: String,
}

/// Where a run's event log stands: the step its next batch takes, and the last sequence
/// number used (0 before the first event).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct LogEnd {
    pub(crate) next_step: u64,
    pub(crate) last_sequence: u64,
}

/// The most events kept in one checkpoint of the event log.
const MAX_BATCH: usize = 256;

fn task_key(run_id: &str) -> String {
    format!("{run_id}.task")
}

fn events_key(run_id: &str) -> String {
    format!("{run_id}.events")
}

/// Checks a run id for a durable run (the companion suffixes are the service's own).
pub(crate) fn check_run_id(run_id: &str) -> std::result::Result<(), Status> {
    validate_run_id(run_id).map_err(|e| Status::invalid_argument(format!("run_id: {e}")))?;
    if run_id.ends_with(".events") || run_id.ends_with(".task") {
        return Err(Status::invalid_argument(
            "run_id: `.events` and `.task` endings are reserved by the service",
        ));
    }
    Ok(())
}

/// A fresh run id: time, process and a counter (unique per process; across replicas as
/// unique as their clocks and process ids).
pub(crate) fn new_run_id() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("run-{nanos:x}-{:x}-{n:x}", std::process::id())
}

/// The status a checkpointer (or durable agent) error answers a call with.
pub(crate) fn store_status(e: &Error) -> Status {
    if e.as_checkpoint_conflict().is_some() {
        return Status::aborted(format!("another call advanced the run meanwhile: {e}"));
    }
    match e {
        Error::NotFound(m) => Status::not_found(m.clone()),
        Error::InvalidInput(m) => Status::invalid_argument(m.clone()),
        other => Status::internal(format!("checkpoints: {other}")),
    }
}

impl Durable {
    /// Saves the task of a new run; `ALREADY_EXISTS` when the run id is taken.
    pub(crate) async fn claim(
        &self,
        run_id: &str,
        record: &TaskRecord,
    ) -> std::result::Result<(), Status> {
        let taken = || Status::already_exists(format!("run `{run_id}` exists already"));
        if self
            .checkpointer
            .latest(run_id)
            .await
            .map_err(|e| store_status(&e))?
            .is_some()
        {
            return Err(taken());
        }
        let value = serde_json::to_value(record)
            .map_err(|e| Status::internal(format!("encoding the task: {e}")))?;
        match self.checkpointer.put(&task_key(run_id), 0, &value).await {
            Ok(()) => Ok(()),
            Err(e) if e.as_checkpoint_conflict().is_some() => Err(taken()),
            Err(e) => Err(store_status(&e)),
        }
    }

    /// The task of `run_id`; `NOT_FOUND` for an unknown run.
    pub(crate) async fn task(&self, run_id: &str) -> std::result::Result<TaskRecord, Status> {
        let checkpoint = self
            .checkpointer
            .latest(&task_key(run_id))
            .await
            .map_err(|e| store_status(&e))?
            .ok_or_else(|| Status::not_found(format!("run `{run_id}`")))?;
        serde_json::from_value(checkpoint.state)
            .map_err(|e| Status::internal(format!("the saved task of run `{run_id}`: {e}")))
    }

    /// The state of `run_id`; `NOT_FOUND` for an unknown run.
    pub(crate) async fn state(&self, run_id: &str) -> std::result::Result<RunState, Status> {
        let checkpoint = self
            .checkpointer
            .latest(run_id)
            .await
            .map_err(|e| store_status(&e))?
            .ok_or_else(|| Status::not_found(format!("run `{run_id}`")))?;
        serde_json::from_value(checkpoint.state)
            .map_err(|e| Status::internal(format!("the checkpoint of run `{run_id}`: {e}")))
    }

    /// Where the event log of `run_id` stands.
    pub(crate) async fn log_end(&self, run_id: &str) -> std::result::Result<LogEnd, Status> {
        let Some(latest) = self
            .checkpointer
            .latest(&events_key(run_id))
            .await
            .map_err(|e| store_status(&e))?
        else {
            return Ok(LogEnd::default());
        };
        let batch: StoredBatch = serde_json::from_value(latest.state)
            .map_err(|e| Status::internal(format!("the saved events of `{run_id}`: {e}")))?;
        Ok(LogEnd {
            next_step: latest.step + 1,
            last_sequence: batch.events.last().map_or(0, |e| e.sequence),
        })
    }

    /// The events of `run_id` from sequence `from` on, in order.
    pub(crate) async fn replay(
        &self,
        run_id: &str,
        from: u64,
    ) -> std::result::Result<Vec<pb::RunTaskResponse>, Status> {
        let stored = self
            .checkpointer
            .history(&events_key(run_id), 0)
            .await
            .map_err(|e| store_status(&e))?;
        let bad =
            |what: String| Status::internal(format!("the saved events of `{run_id}`: {what}"));
        let mut out = Vec::new();
        for checkpoint in stored {
            let batch: StoredBatch =
                serde_json::from_value(checkpoint.state).map_err(|e| bad(e.to_string()))?;
            for event in batch.events.into_iter().filter(|e| e.sequence >= from) {
                let bytes = from_hex(&event.event).ok_or_else(|| bad("not hex".into()))?;
                out.push(
                    pb::RunTaskResponse::decode(bytes.as_slice())
                        .map_err(|e| bad(e.to_string()))?,
                );
            }
        }
        Ok(out)
    }

    /// `events` with each event appended to the run's event log before it is passed on:
    /// the events ready together are kept as one checkpoint (one write, not one per text
    /// delta), starting at step `log.next_step`.
    pub(crate) fn recorded(
        &self,
        run_id: String,
        log: LogEnd,
        events: BoxStream<'static, std::result::Result<pb::RunTaskResponse, Status>>,
    ) -> BoxStream<'static, std::result::Result<pb::RunTaskResponse, Status>> {
        let checkpointer = self.checkpointer.clone();
        let key = events_key(&run_id);
        let next_step = Arc::new(AtomicU64::new(log.next_step));
        events
            .ready_chunks(MAX_BATCH)
            .then(move |items| {
                let checkpointer = checkpointer.clone();
                let key = key.clone();
                let next_step = next_step.clone();
                async move {
                    let batch = StoredBatch {
                        events: items
                            .iter()
                            .filter_map(|item| item.as_ref().ok())
                            .map(|r| StoredEvent {
                                sequence: r.sequence,
                                event: to_hex(&r.encode_to_vec()),
                            })
                            .collect(),
                    };
                    if !batch.events.is_empty() {
                        let step = next_step.load(Ordering::SeqCst);
                        let saved = match serde_json::to_value(&batch) {
                            Ok(value) => checkpointer.put(&key, step, &value).await,
                            Err(e) => Err(Error::serialization("encoding events", e)),
                        };
                        match saved {
                            Ok(()) => {
                                next_step.store(step + 1, Ordering::SeqCst);
                            }
                            Err(e) => {
                                tracing::warn!(run = %key, step, error = %e, "could not keep events for replay");
                            }
                        }
                    }
                    futures::stream::iter(items)
                }
            })
            .flatten()
            .boxed()
    }
}

/// The wire status of a run state.
pub(crate) fn task_status(status: &RunStatus) -> pb::TaskStatus {
    match status {
        RunStatus::Running => pb::TaskStatus::Running,
        RunStatus::AwaitingApproval { .. } => pb::TaskStatus::AwaitingApproval,
        RunStatus::Completed { .. } => pb::TaskStatus::Completed,
        RunStatus::Failed { .. } => pb::TaskStatus::Failed,
        RunStatus::Cancelled => pb::TaskStatus::Cancelled,
    }
}

/// The number of the first step a continued run's events belong to.
pub(crate) fn first_step(state: &RunState) -> u32 {
    let iterations = u32::try_from(state.iterations).unwrap_or(u32::MAX);
    if state.calls.is_empty() && matches!(state.status, RunStatus::Running) {
        iterations.saturating_add(1)
    } else {
        iterations.max(1)
    }
}

/// A decision from the wire.
pub(crate) fn decision(
    decision: Option<pb::decide_request::Decision>,
) -> std::result::Result<Decision, Status> {
    use pb::decide_request::Decision as D;
    match decision {
        Some(D::Approve(a)) if a.arguments_json.trim().is_empty() => Ok(Decision::approve()),
        Some(D::Approve(a)) => {
            // Refused before the run is touched: nothing is streamed or kept.
            serde_json::from_str::<serde_json::Value>(&a.arguments_json).map_err(|e| {
                Status::invalid_argument(format!(
                    "decision.approve.arguments_json is not JSON: {e}"
                ))
            })?;
            Ok(Decision::approve_with_arguments(a.arguments_json))
        }
        Some(D::Reject(r)) => Ok(Decision::reject(r.message)),
        Some(D::Cancel(_)) => Ok(Decision::Cancel),
        None => Err(Status::invalid_argument("decision is not set")),
    }
}

/// What a call asks of the durable agent.
pub(crate) enum Call {
    Start(RunInput),
    Resume,
    Decide { call_id: String, decision: Decision },
}

/// The durable agent's events for one call, ending with a final answer, an error or an
/// approval request (made up from the outcome when the agent emitted none, as for a run
/// that had finished already). Nothing is spawned: the run goes on while this is polled.
pub(crate) fn run_events(
    agent: DurableAgent,
    run_id: String,
    call: Call,
) -> BoxStream<'static, AgentEvent> {
    let (tx, rx) = mpsc::unbounded_channel();
    let run = async move {
        match call {
            Call::Start(input) => agent.start_with_events(&run_id, input, &tx).await,
            Call::Resume => agent.resume_with_events(&run_id, &tx).await,
            Call::Decide { call_id, decision } => {
                agent
                    .decide_with_events(&run_id, &call_id, decision, &tx)
                    .await
            }
        }
        // `tx` is dropped here: the receiver ends once drained.
    }
    .boxed();
    DurableEvents {
        run: Some(run),
        rx,
        outcome: None,
        ended: false,
    }
    .boxed()
}

struct DurableEvents {
    run: Option<BoxFuture<'static, Result<RunOutcome>>>,
    rx: mpsc::UnboundedReceiver<AgentEvent>,
    outcome: Option<Result<RunOutcome>>,
    /// A last event went by.
    ended: bool,
}

impl DurableEvents {
    fn closing(&mut self) -> Option<AgentEvent> {
        let outcome = self.outcome.take()?;
        if self.ended {
            return None;
        }
        self.ended = true;
        Some(match outcome {
            Ok(RunOutcome::Completed { output, .. }) => AgentEvent::FinalAnswer(output),
            Ok(RunOutcome::AwaitingApproval { call, .. }) => AgentEvent::ApprovalRequired {
                id: call.id,
                name: call.name,
                arguments: call.arguments,
            },
            Ok(RunOutcome::Cancelled) => AgentEvent::Error(Arc::new(run_ended(
                ErrorCode::Cancelled,
                "the run was cancelled",
            ))),
            Ok(RunOutcome::Failed { message }) => {
                AgentEvent::Error(Arc::new(run_ended(ErrorCode::LimitExceeded, message)))
            }
            Err(e) => AgentEvent::Error(Arc::new(e)),
        })
    }
}

impl Stream for DurableEvents {
    type Item = AgentEvent;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<AgentEvent>> {
        let this = &mut *self;
        loop {
            match this.rx.poll_recv(cx) {
                Poll::Ready(Some(event)) => {
                    if matches!(
                        event,
                        AgentEvent::FinalAnswer(_)
                            | AgentEvent::Error(_)
                            | AgentEvent::ApprovalRequired { .. }
                    ) {
                        this.ended = true;
                    }
                    return Poll::Ready(Some(event));
                }
                // The run finished and every event was read.
                Poll::Ready(None) => return Poll::Ready(this.closing()),
                Poll::Pending => {}
            }
            let Some(run) = this.run.as_mut() else {
                return Poll::Pending;
            };
            match run.poll_unpin(cx) {
                Poll::Ready(outcome) => {
                    this.run = None;
                    this.outcome = Some(outcome);
                }
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}

fn from_hex(text: &str) -> Option<Vec<u8>> {
    let digit = |c: u8| {
        char::from(c)
            .to_digit(16)
            .and_then(|d| u8::try_from(d).ok())
    };
    let bytes = text.as_bytes();
    if !bytes.len().is_multiple_of(2) {
        return None;
    }
    bytes
        .chunks(2)
        .map(|pair| match pair {
            [hi, lo] => Some(digit(*hi)? << 4 | digit(*lo)?),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trips() {
        let bytes: Vec<u8> = (0..=255).collect();
        assert_eq!(from_hex(&to_hex(&bytes)).unwrap(), bytes);
        assert!(from_hex("abc").is_none());
        assert!(from_hex("zz").is_none());
    }

    #[test]
    fn reserved_and_bad_run_ids_are_refused() {
        assert!(check_run_id("run-1").is_ok());
        assert!(check_run_id("run-1.events").is_err());
        assert!(check_run_id("run-1.task").is_err());
        assert!(check_run_id("a/b").is_err());
        assert_ne!(new_run_id(), new_run_id());
        assert!(check_run_id(&new_run_id()).is_ok());
    }
}
