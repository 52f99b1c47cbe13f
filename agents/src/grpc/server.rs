//! The server adapter: serves any Catena agent over `catena.agent.v1`.

use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use catena_core::{Checkpointer, Message, Result, Role, ScoredDocument};
use futures::stream::BoxStream;
use futures::{Stream, StreamExt};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tonic::transport::server::Router;
use tonic::{Request, Response, Status};
use tonic_health::server::HealthReporter;

use super::context::{Report, TaskContext};
use super::convert::duration_from_proto;
use super::durable::{
    check_run_id, decision, first_step, new_run_id, run_events, task_status, Call, Durable,
    DurableTask, LogEnd, TaskRecord, NO_CHECKPOINTS,
};
use super::error::start_status;
use super::pb::agent_service_server::{AgentService, AgentServiceServer};
use super::pb::{self, RunTaskRequest};
use super::stream::{EventStream, Position};
use super::types::{AnswerSource, TaskLimits};
use crate::durable::{DurableAgent, RunState, RunStatus};
use crate::events::AgentEvent;
use crate::executor::AgentExecutor;

/// The response stream of every streaming RPC.
type EventsStream =
    Pin<Box<dyn Stream<Item = std::result::Result<pb::RunTaskResponse, Status>> + Send>>;

/// Starts agent runs for the service: one call per task.
///
/// A closure `Fn(TaskContext) -> Result<S>` (where `S` is a stream of [`AgentEvent`]s,
/// such as [`AgentEventStream`](crate::AgentEventStream)) is the usual runner; see
/// [`AgentGrpcService::new`]. Implement this trait for runners that are not closures.
pub trait TaskRunner: Send + Sync + 'static {
    /// Starts the task described by `ctx`. The returned stream must end with
    /// [`AgentEvent::FinalAnswer`] or [`AgentEvent::Error`], and must stop its work when
    /// dropped (the service drops it when the client goes away or the deadline passes).
    ///
    /// # Errors
    /// Rejects the call before any event: [`Error::InvalidInput`](catena_core::Error::InvalidInput)
    /// as `INVALID_ARGUMENT` (for example from [`TaskContext::select_tools`]), anything else
    /// as `INTERNAL`.
    fn start(&self, ctx: TaskContext) -> Result<BoxStream<'static, AgentEvent>>;
}

struct FnRunner<F>(F);

impl<F, S> TaskRunner for FnRunner<F>
where
    F: Fn(TaskContext) -> Result<S> + Send + Sync + 'static,
    S: Stream<Item = AgentEvent> + Send + 'static,
{
    fn start(&self, ctx: TaskContext) -> Result<BoxStream<'static, AgentEvent>> {
        Ok((self.0)(ctx)?.boxed())
    }
}

/// The runner of a service built with [`AgentGrpcService::new_durable`]: never called,
/// since `RunTask` runs durably there.
struct DurableOnly;

impl TaskRunner for DurableOnly {
    fn start(&self, _ctx: TaskContext) -> Result<BoxStream<'static, AgentEvent>> {
        Err(catena_core::Error::invalid_config(
            "this agent service runs tasks durably only",
        ))
    }
}

#[derive(Clone)]
struct Config {
    max_task_bytes: usize,
    max_documents: usize,
    max_context_bytes: usize,
    max_history: usize,
    max_duration: Duration,
    max_message_bytes: usize,
    max_steps: u32,
    max_tokens: Option<u64>,
    tasks: Arc<Semaphore>,
    max_tasks: usize,
    token: Option<Arc<str>>,
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("max_task_bytes", &self.max_task_bytes)
            .field("max_documents", &self.max_documents)
            .field("max_context_bytes", &self.max_context_bytes)
            .field("max_history", &self.max_history)
            .field("max_duration", &self.max_duration)
            .field("max_message_bytes", &self.max_message_bytes)
            .field("max_steps", &self.max_steps)
            .field("max_tokens", &self.max_tokens)
            .field("max_tasks", &self.max_tasks)
            // Never the token itself.
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// The most agent steps a task may run unless [`AgentGrpcService::max_steps`] says otherwise.
pub const DEFAULT_MAX_STEPS: u32 = 50;
/// The most model tokens a task may spend unless [`AgentGrpcService::max_tokens`] says otherwise.
pub const DEFAULT_MAX_TOKENS: u64 = 200_000;
/// The most tasks run at once unless [`AgentGrpcService::max_concurrent_tasks`] says otherwise.
pub const DEFAULT_MAX_CONCURRENT_TASKS: usize = 64;

const MAX_REQUEST_ID_CHARS: usize = 128;

/// Serves any agent as `catena.agent.v1.AgentService`; see the [module docs](super).
///
/// Per call it validates the request, builds a [`TaskContext`] (with the request's gRPC
/// metadata and the effective deadline), starts the [`TaskRunner`], and streams the
/// agent's events: a `StepStarted` per model turn, text deltas, tool calls and results,
/// then the final answer (with sources and usage) or an error. The agent runs inside the
/// response stream (nothing is spawned), so a client that goes away stops it, tools
/// included. When the deadline passes the agent is stopped the same way and the call
/// ends with `DEADLINE_EXCEEDED`.
///
/// Cheap to clone.
#[derive(Clone)]
pub struct AgentGrpcService {
    runner: Arc<dyn TaskRunner>,
    config: Config,
    durable: Option<Durable>,
    approval: Vec<String>,
}

impl fmt::Debug for AgentGrpcService {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AgentGrpcService")
            .field("config", &self.config)
            .field("durable", &self.durable.is_some())
            .field("approval", &self.approval)
            .finish_non_exhaustive()
    }
}

impl AgentGrpcService {
    /// A service that starts each task with `runner`, for example
    /// `|ctx| Ok(agent.run_stream(&ctx.prompt()))`.
    pub fn new<F, S>(runner: F) -> Self
    where
        F: Fn(TaskContext) -> Result<S> + Send + Sync + 'static,
        S: Stream<Item = AgentEvent> + Send + 'static,
    {
        Self::from_runner(FnRunner(runner))
    }

    /// A service that starts each task with a [`TaskRunner`].
    pub fn from_runner(runner: impl TaskRunner) -> Self {
        AgentGrpcService {
            runner: Arc::new(runner),
            config: Config {
                max_task_bytes: 64 * 1024,
                max_documents: 64,
                max_context_bytes: 1024 * 1024,
                max_history: 256,
                max_duration: Duration::from_secs(600),
                max_message_bytes: 4 * 1024 * 1024,
                max_steps: DEFAULT_MAX_STEPS,
                max_tokens: Some(DEFAULT_MAX_TOKENS),
                tasks: Arc::new(Semaphore::new(DEFAULT_MAX_CONCURRENT_TASKS)),
                max_tasks: DEFAULT_MAX_CONCURRENT_TASKS,
                token: None,
            },
            durable: None,
            approval: Vec::new(),
        }
    }

    /// Runs every task as a durable run ([`DurableAgent`]) with checkpoints in
    /// `checkpointer`, and serves `ResumeTask`, `Decide` and `GetTask`. `agents` builds the
    /// agent of a task from its context (it replaces the runner for `RunTask`); it is
    /// called again, with the task as first received, when a run is resumed — perhaps by
    /// another process sharing the checkpointer.
    ///
    /// Besides the run's state, the checkpointer keeps, under `{run_id}.task`, the task
    /// (to rebuild the agent) and under `{run_id}.events` every event streamed (for
    /// `GetTask` replay, and to number a resumed run's events on).
    ///
    /// Default: no checkpoints; `RunTask` runs the runner and the other RPCs answer
    /// `FAILED_PRECONDITION`.
    ///
    /// ```no_run
    /// use std::sync::Arc;
    /// use catena_agents::grpc::{AgentGrpcService, DurableTask, TaskContext};
    /// use catena_agents::{AgentExecutor, RunInput};
    /// use catena_core::test_utils::ScriptedChatModel;
    /// use catena_core::{Checkpointer, FileCheckpointer};
    ///
    /// # fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// let model = Arc::new(ScriptedChatModel::new().with_text("Done."));
    /// let checkpoints: Arc<dyn Checkpointer> = Arc::new(FileCheckpointer::new("checkpoints")?);
    /// let service = AgentGrpcService::new_durable(checkpoints, move |ctx: TaskContext| {
    ///     let executor = AgentExecutor::builder(ctx.model(model.clone())).build()?;
    ///     Ok(DurableTask::new(executor, RunInput::text(ctx.prompt())))
    /// })
    /// .require_approval(["pay"]);
    /// assert!(service.is_durable());
    /// # Ok(())
    /// # }
    /// ```
    #[must_use]
    pub fn durable<F>(mut self, checkpointer: Arc<dyn Checkpointer>, agents: F) -> Self
    where
        F: Fn(TaskContext) -> Result<DurableTask> + Send + Sync + 'static,
    {
        self.durable = Some(Durable {
            checkpointer,
            agents: Arc::new(agents),
        });
        self
    }

    /// A service that runs every task durably: [`durable`](Self::durable) without a
    /// runner of its own.
    pub fn new_durable<F>(checkpointer: Arc<dyn Checkpointer>, agents: F) -> Self
    where
        F: Fn(TaskContext) -> Result<DurableTask> + Send + Sync + 'static,
    {
        Self::from_runner(DurableOnly).durable(checkpointer, agents)
    }

    /// Requires a person's approval (`ApprovalRequired`, then `Decide`) before every call of
    /// these tools in durable runs, beside tools that say so themselves
    /// ([`Tool::requires_approval`](catena_core::Tool::requires_approval)). Default: none.
    #[must_use]
    pub fn require_approval<S: Into<String>>(mut self, tools: impl IntoIterator<Item = S>) -> Self {
        self.approval.extend(tools.into_iter().map(Into::into));
        self
    }

    /// Whether tasks run durably ([`durable`](Self::durable)).
    pub fn is_durable(&self) -> bool {
        self.durable.is_some()
    }

    /// Requires every `RunTask` call to carry `authorization: Bearer <token>`; any other is
    /// `UNAUTHENTICATED` before anything else is looked at. The health service stays open
    /// (probes carry no credentials). Default: no credentials required — serve only on
    /// loopback then ([`check_bind`]). Compared in constant time; never logged or printed.
    #[must_use]
    pub fn require_bearer_token(mut self, token: impl Into<String>) -> Self {
        self.config.token = Some(token.into().into());
        self
    }

    /// Whether calls must carry a bearer token ([`require_bearer_token`](Self::require_bearer_token)).
    pub fn requires_credentials(&self) -> bool {
        self.config.token.is_some()
    }

    /// The most agent steps (model turns) a task may run, whatever the request asks: a
    /// request for more gets this many (one that asks nothing gets the agent's own
    /// default). Default [`DEFAULT_MAX_STEPS`].
    #[must_use]
    pub fn max_steps(mut self, steps: u32) -> Self {
        self.config.max_steps = steps.max(1);
        self
    }

    /// The most model tokens (input plus output, over every call) a task may spend, whatever
    /// the request asks; `None` leaves it to the request. Default [`DEFAULT_MAX_TOKENS`].
    #[must_use]
    pub fn max_tokens(mut self, tokens: Option<u64>) -> Self {
        self.config.max_tokens = tokens;
        self
    }

    /// The most tasks running at once; a call beyond it is `RESOURCE_EXHAUSTED` at once
    /// (the client may retry elsewhere). Default [`DEFAULT_MAX_CONCURRENT_TASKS`].
    #[must_use]
    pub fn max_concurrent_tasks(mut self, n: usize) -> Self {
        let n = n.max(1);
        self.config.tasks = Arc::new(Semaphore::new(n));
        self.config.max_tasks = n;
        self
    }

    /// The longest task text accepted, in bytes; longer is `RESOURCE_EXHAUSTED`.
    /// Default 64 KiB.
    #[must_use]
    pub fn max_task_bytes(mut self, bytes: usize) -> Self {
        self.config.max_task_bytes = bytes;
        self
    }

    /// The most context documents accepted; more is `RESOURCE_EXHAUSTED`. Default 64.
    #[must_use]
    pub fn max_documents(mut self, n: usize) -> Self {
        self.config.max_documents = n;
        self
    }

    /// The most context text accepted (all documents' content together), in bytes; more
    /// is `RESOURCE_EXHAUSTED`. Default 1 MiB.
    #[must_use]
    pub fn max_context_bytes(mut self, bytes: usize) -> Self {
        self.config.max_context_bytes = bytes;
        self
    }

    /// The most history messages accepted; more is `RESOURCE_EXHAUSTED`. Default 256.
    #[must_use]
    pub fn max_history(mut self, n: usize) -> Self {
        self.config.max_history = n;
        self
    }

    /// The longest a task may run: the deadline when the call has none, and a cap on the
    /// call's deadline and `max_duration`. Default 10 minutes.
    #[must_use]
    pub fn max_duration(mut self, duration: Duration) -> Self {
        self.config.max_duration = duration;
        self
    }

    /// The largest encoded request accepted, in bytes (gRPC's own check, answered with
    /// `OUT_OF_RANGE` by tonic). Default 4 MiB.
    #[must_use]
    pub fn max_message_bytes(mut self, bytes: usize) -> Self {
        self.config.max_message_bytes = bytes;
        self
    }

    /// The tonic service, to add to a server of your own.
    pub fn into_server(self) -> AgentServiceServer<AgentGrpcService> {
        let max = self.config.max_message_bytes;
        AgentServiceServer::new(self).max_decoding_message_size(max)
    }

    /// A server router with this service and the standard gRPC health service
    /// (`grpc.health.v1.Health`), where both the server (`""`) and
    /// `catena.agent.v1.AgentService` are `SERVING`. Keep the [`HealthReporter`] to report
    /// `NOT_SERVING` while draining.
    ///
    /// ```no_run
    /// # use catena_agents::grpc::AgentGrpcService;
    /// # async fn run(service: AgentGrpcService) -> Result<(), Box<dyn std::error::Error>> {
    /// let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    /// let (router, _health) = service.into_router().await;
    /// router
    ///     .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener))
    ///     .await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn into_router(self) -> (Router, HealthReporter) {
        let (reporter, health) = tonic_health::server::health_reporter();
        reporter
            .set_serving::<AgentServiceServer<AgentGrpcService>>()
            .await;
        let router = tonic::transport::Server::builder()
            .add_service(health)
            .add_service(self.into_server());
        (router, reporter)
    }

    fn authorize(
        &self,
        metadata: &tonic::metadata::MetadataMap,
    ) -> std::result::Result<(), Status> {
        if let Some(token) = &self.config.token {
            if !bearer_matches(metadata, token) {
                return Err(Status::unauthenticated(
                    "this agent service needs `authorization: Bearer <token>`",
                ));
            }
        }
        Ok(())
    }

    fn permit(&self) -> std::result::Result<OwnedSemaphorePermit, Status> {
        Arc::clone(&self.config.tasks)
            .try_acquire_owned()
            .map_err(|_| {
                Status::resource_exhausted(format!(
                    "this agent service runs at most {} tasks at once",
                    self.config.max_tasks
                ))
            })
    }

    fn durable_config(&self) -> std::result::Result<&Durable, Status> {
        self.durable
            .as_ref()
            .ok_or_else(|| Status::failed_precondition(NO_CHECKPOINTS))
    }

    fn durable_agent(&self, durable: &Durable, executor: AgentExecutor) -> DurableAgent {
        DurableAgent::new(executor, durable.checkpointer.clone())
            .require_approval(self.approval.iter().cloned())
    }

    /// Continues durable run `run_id` with `call` (made from its state), streaming the
    /// events from where the run left off.
    async fn continue_run(
        &self,
        metadata: tonic::metadata::MetadataMap,
        run_id: &str,
        call: impl FnOnce(&RunState) -> std::result::Result<Call, Status>,
    ) -> std::result::Result<Response<EventsStream>, Status> {
        self.authorize(&metadata)?;
        let durable = self.durable_config()?;
        check_run_id(run_id)?;
        let record = durable.task(run_id).await?;
        let state = durable.state(run_id).await?;
        let call = call(&state)?;
        let permit = self.permit()?;
        let timeout = [grpc_timeout(&metadata), Some(self.config.max_duration)]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(self.config.max_duration);
        let deadline = Instant::now() + timeout;
        let report = Arc::new(Report::default());
        // The final answer reports the whole run's usage, not only this call's.
        report.finish_turn(Some(state.usage), None);
        let context_sources = record
            .documents
            .iter()
            .map(AnswerSource::from_document)
            .collect();
        let span = tracing::info_span!(
            "agent.continue_task",
            run_id = %run_id,
            request_id = %record.request_id,
            traceparent = metadata.get("traceparent").and_then(|v| v.to_str().ok()).unwrap_or(""),
        );
        #[cfg(feature = "otel")]
        super::otel::set_parent_from_metadata(&span, &metadata);
        let limits = record.limits();
        let ctx = TaskContext {
            request_id: record.request_id,
            task: record.task,
            documents: record.documents,
            history: record.history,
            allowed_tools: record.allowed_tools,
            limits,
            deadline,
            metadata,
            report: report.clone(),
        };
        let task = {
            let _entered = span.enter();
            (durable.agents)(ctx).map_err(|e| start_status(&e))?
        };
        let log = durable.log_end(run_id).await?;
        let agent = self.durable_agent(durable, task.executor);
        let events = run_events(agent, run_id.to_owned(), call);
        let stream = EventStream::continuing(
            events,
            deadline,
            timeout,
            report,
            context_sources,
            limits.max_steps,
            span,
            Position {
                run_id: run_id.to_owned(),
                last_sequence: log.last_sequence,
                first_step: first_step(&state),
            },
        );
        let stream = durable.recorded(run_id.to_owned(), log, stream.boxed());
        Ok(Response::new(with_permit(stream, permit)))
    }

    fn validate(&self, req: &RunTaskRequest) -> std::result::Result<(), Status> {
        let c = &self.config;
        if req.task.trim().is_empty() {
            return Err(Status::invalid_argument("task is empty"));
        }
        if req.task.len() > c.max_task_bytes {
            return Err(Status::resource_exhausted(format!(
                "task is {} bytes; this service accepts at most {}",
                req.task.len(),
                c.max_task_bytes
            )));
        }
        if req.request_id.chars().count() > MAX_REQUEST_ID_CHARS {
            return Err(Status::invalid_argument(format!(
                "request_id is longer than {MAX_REQUEST_ID_CHARS} characters"
            )));
        }
        if req.documents.len() > c.max_documents {
            return Err(Status::resource_exhausted(format!(
                "request has {} context documents; this service accepts at most {}",
                req.documents.len(),
                c.max_documents
            )));
        }
        let context_bytes: usize = req.documents.iter().map(|d| d.content.len()).sum();
        if context_bytes > c.max_context_bytes {
            return Err(Status::resource_exhausted(format!(
                "context documents hold {context_bytes} bytes of text; this service accepts at most {}",
                c.max_context_bytes
            )));
        }
        if req.history.len() > c.max_history {
            return Err(Status::resource_exhausted(format!(
                "history has {} messages; this service accepts at most {}",
                req.history.len(),
                c.max_history
            )));
        }
        if let Some(i) = req.allowed_tools.iter().position(|t| t.trim().is_empty()) {
            return Err(Status::invalid_argument(format!(
                "allowed_tools[{i}] is empty"
            )));
        }
        if let Some(d) = req.limits.as_ref().and_then(|l| l.max_duration) {
            if duration_from_proto(d).is_none() {
                return Err(Status::invalid_argument(
                    "limits.max_duration is negative or malformed",
                ));
            }
        }
        Ok(())
    }
}

/// `stream`, holding `permit` until it ends or is dropped.
fn with_permit(
    stream: impl Stream<Item = std::result::Result<pb::RunTaskResponse, Status>> + Send + 'static,
    permit: OwnedSemaphorePermit,
) -> EventsStream {
    Box::pin(stream.map(move |item| {
        let _running = &permit;
        item
    }))
}

#[tonic::async_trait]
impl AgentService for AgentGrpcService {
    type RunTaskStream = EventsStream;
    type ResumeTaskStream = EventsStream;
    type DecideStream = EventsStream;

    async fn resume_task(
        &self,
        request: Request<pb::ResumeTaskRequest>,
    ) -> std::result::Result<Response<Self::ResumeTaskStream>, Status> {
        let (metadata, _extensions, req) = request.into_parts();
        self.continue_run(metadata, &req.run_id, |_| Ok(Call::Resume))
            .await
    }

    async fn decide(
        &self,
        request: Request<pb::DecideRequest>,
    ) -> std::result::Result<Response<Self::DecideStream>, Status> {
        let (metadata, _extensions, req) = request.into_parts();
        let decision = decision(req.decision)?;
        let call_id = req.call_id;
        self.continue_run(metadata, &req.run_id, |state| {
            let waiting = matches!(
                &state.status,
                RunStatus::AwaitingApproval { call_id: c } if *c == call_id
            );
            if !waiting {
                return Err(Status::failed_precondition(format!(
                    "run `{}` is not waiting for a decision about call `{call_id}`",
                    state.run_id
                )));
            }
            Ok(Call::Decide { call_id, decision })
        })
        .await
    }

    async fn get_task(
        &self,
        request: Request<pb::GetTaskRequest>,
    ) -> std::result::Result<Response<pb::GetTaskResponse>, Status> {
        let (metadata, _extensions, req) = request.into_parts();
        self.authorize(&metadata)?;
        let durable = self.durable_config()?;
        check_run_id(&req.run_id)?;
        let state = durable.state(&req.run_id).await?;
        let events = durable.replay(&req.run_id, req.from_sequence).await?;
        Ok(Response::new(pb::GetTaskResponse {
            status: task_status(&state.status).into(),
            events,
        }))
    }

    async fn run_task(
        &self,
        request: Request<RunTaskRequest>,
    ) -> std::result::Result<Response<Self::RunTaskStream>, Status> {
        let (metadata, _extensions, req) = request.into_parts();
        self.authorize(&metadata)?;
        self.validate(&req)?;
        let run_id = if req.run_id.is_empty() {
            new_run_id()
        } else {
            check_run_id(&req.run_id)?;
            req.run_id.clone()
        };
        let permit = self.permit()?;
        let mut history = req
            .history
            .into_iter()
            .enumerate()
            .map(|(i, m)| {
                Message::try_from(m)
                    .map_err(|e| Status::invalid_argument(format!("history[{i}]: {e}")))
            })
            .collect::<std::result::Result<Vec<_>, _>>()?;
        // The caller speaks as the user or quotes the assistant; instructions are the
        // service's own.
        let before = history.len();
        history.retain(|m| m.role != Role::System);
        if history.len() < before {
            tracing::warn!(
                dropped = before - history.len(),
                "dropped caller-sent system messages from the history"
            );
        }
        let mut limits = TaskLimits::from(req.limits.unwrap_or_default());
        // None leaves the agent's own default (the executor's `max_iterations`).
        limits.max_steps = limits.max_steps.map(|s| s.min(self.config.max_steps));
        if let Some(cap) = self.config.max_tokens {
            limits.max_tokens = Some(limits.max_tokens.map_or(cap, |t| t.min(cap)));
        }
        let timeout = [
            grpc_timeout(&metadata),
            limits.max_duration,
            Some(self.config.max_duration),
        ]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(self.config.max_duration);
        let deadline = Instant::now() + timeout;
        let documents: Vec<ScoredDocument> = req
            .documents
            .into_iter()
            .map(ScoredDocument::from)
            .collect();
        let context_sources = documents.iter().map(AnswerSource::from_document).collect();
        let span = tracing::info_span!(
            "agent.run_task",
            request_id = %req.request_id,
            run_id = %run_id,
            traceparent = metadata.get("traceparent").and_then(|v| v.to_str().ok()).unwrap_or(""),
        );
        #[cfg(feature = "otel")]
        super::otel::set_parent_from_metadata(&span, &metadata);
        let report = Arc::new(Report::default());
        let ctx = TaskContext {
            request_id: req.request_id,
            task: req.task,
            documents,
            history,
            allowed_tools: req.allowed_tools,
            limits,
            deadline,
            metadata,
            report: report.clone(),
        };
        let position = Position {
            run_id: run_id.clone(),
            ..Position::default()
        };
        if let Some(durable) = &self.durable {
            let record = TaskRecord {
                request_id: ctx.request_id.clone(),
                task: ctx.task.clone(),
                documents: ctx.documents.clone(),
                history: ctx.history.clone(),
                allowed_tools: ctx.allowed_tools.clone(),
                max_steps: ctx.limits.max_steps,
                max_tokens: ctx.limits.max_tokens,
            };
            // The agent is built before the run id is taken: a request it refuses (an
            // unknown tool) leaves no run behind.
            let task = {
                let _entered = span.enter();
                (durable.agents)(ctx).map_err(|e| start_status(&e))?
            };
            durable.claim(&run_id, &record).await?;
            let agent = self.durable_agent(durable, task.executor);
            let events = run_events(agent, run_id.clone(), Call::Start(task.input));
            let stream = EventStream::continuing(
                events,
                deadline,
                timeout,
                report,
                context_sources,
                limits.max_steps,
                span,
                position,
            );
            let stream = durable.recorded(run_id, LogEnd::default(), stream.boxed());
            return Ok(Response::new(with_permit(stream, permit)));
        }
        let agent = {
            let _entered = span.enter();
            self.runner.start(ctx).map_err(|e| start_status(&e))?
        };
        let stream = EventStream::continuing(
            agent,
            deadline,
            timeout,
            report,
            context_sources,
            limits.max_steps,
            span,
            position,
        );
        // The permit is released when the stream ends or is dropped.
        Ok(Response::new(with_permit(stream, permit)))
    }
}

/// Whether `metadata` carries `authorization: Bearer <token>`, compared in constant time.
fn bearer_matches(metadata: &tonic::metadata::MetadataMap, token: &str) -> bool {
    let Some(given) = metadata
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    else {
        return false;
    };
    let (a, b) = (given.as_bytes(), token.as_bytes());
    // The length is not a secret worth hiding; the content is compared without early exit.
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Refuses to serve on `addr` without credentials unless it is a loopback address: an agent
/// service runs tools (web fetches, searches) on a caller's behalf and must not be open to
/// the network. Call it before binding, with
/// [`requires_credentials`](AgentGrpcService::requires_credentials).
///
/// # Errors
/// A message naming the address and what to configure.
pub fn check_bind(
    addr: std::net::SocketAddr,
    has_credentials: bool,
) -> std::result::Result<(), String> {
    if has_credentials || addr.ip().is_loopback() {
        Ok(())
    } else {
        Err(format!(
            "refusing to serve on {addr} without credentials: set a bearer token \
             (CATENA_AGENT_TOKEN) or listen on a loopback address"
        ))
    }
}

/// The call's `grpc-timeout` header, when present and well formed (gRPC over HTTP/2:
/// at most 8 digits and a unit).
fn grpc_timeout(metadata: &tonic::metadata::MetadataMap) -> Option<Duration> {
    let value = metadata.get("grpc-timeout")?.to_str().ok()?;
    let split = value.len().checked_sub(1)?;
    let (digits, unit) = (value.get(..split)?, value.get(split..)?);
    if digits.is_empty() || digits.len() > 8 {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n * 3600),
        "M" => Duration::from_secs(n * 60),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_grpc_timeouts() {
        let mut m = tonic::metadata::MetadataMap::new();
        assert_eq!(grpc_timeout(&m), None);
        m.insert("grpc-timeout", "250m".parse().unwrap());
        assert_eq!(grpc_timeout(&m), Some(Duration::from_millis(250)));
        m.insert("grpc-timeout", "3S".parse().unwrap());
        assert_eq!(grpc_timeout(&m), Some(Duration::from_secs(3)));
        m.insert("grpc-timeout", "123456789S".parse().unwrap());
        assert_eq!(grpc_timeout(&m), None);
        m.insert("grpc-timeout", "5x".parse().unwrap());
        assert_eq!(grpc_timeout(&m), None);
    }
}
