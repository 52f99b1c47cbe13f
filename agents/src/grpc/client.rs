//! The typed client.

use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::future::BoxFuture;
use futures::stream::BoxStream;
use futures::{FutureExt, Stream, StreamExt};
use tokio::time::Sleep;
use tonic::metadata::{AsciiMetadataKey, AsciiMetadataValue, MetadataMap};
use tonic::transport::{Channel, Endpoint};

use super::error::TaskError;
use super::pb::{self, agent_service_client};
use super::types::{TaskEvent, TaskRequest};
use crate::durable::Decision;

type Interceptor = Arc<dyn Fn(&mut MetadataMap) + Send + Sync>;

/// A typed client for `catena.agent.v1.AgentService`; see the [module docs](super).
///
/// Cheap to clone (clones share the connection).
#[derive(Clone)]
pub struct AgentServiceClient {
    inner: agent_service_client::AgentServiceClient<Channel>,
    metadata: Vec<(AsciiMetadataKey, AsciiMetadataValue)>,
    interceptors: Vec<Interceptor>,
    default_timeout: Option<Duration>,
    error: Option<String>,
}

impl fmt::Debug for AgentServiceClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Values may be credentials: show only the header names.
        let keys: Vec<&str> = self.metadata.iter().map(|(k, _)| k.as_str()).collect();
        f.debug_struct("AgentServiceClient")
            .field("metadata", &keys)
            .field("interceptors", &self.interceptors.len())
            .field("default_timeout", &self.default_timeout)
            .finish_non_exhaustive()
    }
}

impl AgentServiceClient {
    /// Connects to the service at `endpoint` (for example `http://127.0.0.1:50051`).
    ///
    /// # Errors
    /// [`TaskError::Connect`] when the address is invalid or the service cannot be reached.
    pub async fn connect(endpoint: impl Into<String>) -> Result<Self, TaskError> {
        let endpoint = endpoint.into();
        let channel = Endpoint::from_shared(endpoint.clone())
            .map_err(|e| TaskError::Connect {
                message: format!("invalid endpoint `{endpoint}`"),
                source: Box::new(e),
            })?
            .connect()
            .await
            .map_err(|e| TaskError::Connect {
                message: format!("cannot reach `{endpoint}`"),
                source: Box::new(e),
            })?;
        Ok(Self::new(channel))
    }

    /// A client on an existing channel (to share a connection or configure TLS,
    /// keep-alive and load balancing on the [`Endpoint`]).
    pub fn new(channel: Channel) -> Self {
        AgentServiceClient {
            inner: agent_service_client::AgentServiceClient::new(channel),
            metadata: Vec::new(),
            interceptors: Vec::new(),
            default_timeout: None,
            error: None,
        }
    }

    /// Adds a header to every call, such as `authorization` or a fixed `traceparent`.
    /// An invalid name or value makes every [`run_task`](Self::run_task) fail with
    /// [`TaskError::InvalidRequest`]. Default: no extra headers.
    #[must_use]
    pub fn with_metadata(mut self, key: &str, value: &str) -> Self {
        match (
            key.parse::<AsciiMetadataKey>(),
            value.parse::<AsciiMetadataValue>(),
        ) {
            (Ok(k), Ok(v)) => self.metadata.push((k, v)),
            _ => {
                self.error
                    .get_or_insert_with(|| format!("invalid metadata `{key}`"));
            }
        }
        self
    }

    /// Sends `authorization: Bearer <token>` with every call (what
    /// [`AgentGrpcService::require_bearer_token`](super::AgentGrpcService::require_bearer_token)
    /// checks). The value is marked sensitive and never shown by `Debug`.
    #[must_use]
    pub fn with_bearer_token(mut self, token: &str) -> Self {
        match format!("Bearer {token}").parse::<AsciiMetadataValue>() {
            Ok(mut v) => {
                v.set_sensitive(true);
                self.metadata
                    .push((AsciiMetadataKey::from_static("authorization"), v));
            }
            Err(_) => {
                self.error
                    .get_or_insert_with(|| "invalid bearer token (not ASCII text)".to_owned());
            }
        }
        self
    }

    /// Runs `f` on each call's metadata just before it is sent, after the fixed headers:
    /// the place to inject the *current* trace context (`traceparent` of the active span)
    /// or a refreshed token. Default: none.
    #[must_use]
    pub fn with_interceptor(
        mut self,
        f: impl Fn(&mut MetadataMap) + Send + Sync + 'static,
    ) -> Self {
        self.interceptors.push(Arc::new(f));
        self
    }

    /// The deadline of calls whose request sets none. Default: none (the service's cap).
    #[must_use]
    pub fn with_default_timeout(mut self, timeout: Duration) -> Self {
        self.default_timeout = Some(timeout);
        self
    }

    /// Sends `request` and streams the task's events. The stream yields
    /// [`TaskEvent`]s and ends after [`TaskEvent::FinalAnswer`], or yields one
    /// [`TaskError`] and ends. The request's timeout is sent as the gRPC deadline and
    /// also enforced here. Dropping the stream cancels the call, and the service stops
    /// the agent.
    pub fn run_task(&self, request: TaskRequest) -> TaskStream {
        let timeout = request.timeout.or(self.default_timeout);
        if let Some(e) = request.error.clone().or_else(|| self.error.clone()) {
            return TaskStream::failed(TaskError::InvalidRequest(e));
        }
        let call = self.request(request.message, timeout);
        let mut inner = self.inner.clone();
        TaskStream::starting(async move { inner.run_task(call).await }.boxed(), timeout)
    }

    /// Continues the durable run `run_id` (after a crash, a restart or a dropped call) and
    /// streams the rest of its events, as [`run_task`](Self::run_task) does. The stream
    /// also ends after [`TaskEvent::ApprovalRequired`]. Uses the default timeout.
    pub fn resume_task(&self, run_id: impl Into<String>) -> TaskStream {
        let timeout = self.default_timeout;
        if let Some(e) = self.error.clone() {
            return TaskStream::failed(TaskError::InvalidRequest(e));
        }
        let call = self.request(
            pb::ResumeTaskRequest {
                run_id: run_id.into(),
            },
            timeout,
        );
        let mut inner = self.inner.clone();
        TaskStream::starting(
            async move { inner.resume_task(call).await }.boxed(),
            timeout,
        )
    }

    /// Sends a person's decision about call `call_id` of the durable run `run_id` (from a
    /// [`TaskEvent::ApprovalRequired`]) and streams the continued run's events. Uses the
    /// default timeout.
    pub fn decide(
        &self,
        run_id: impl Into<String>,
        call_id: impl Into<String>,
        decision: Decision,
    ) -> TaskStream {
        use pb::decide_request as d;
        let timeout = self.default_timeout;
        if let Some(e) = self.error.clone() {
            return TaskStream::failed(TaskError::InvalidRequest(e));
        }
        let decision = match decision {
            Decision::Approve { arguments } => d::Decision::Approve(d::Approve {
                arguments_json: arguments.unwrap_or_default(),
            }),
            Decision::Reject { message } => d::Decision::Reject(d::Reject { message }),
            Decision::Cancel => d::Decision::Cancel(d::Cancel {}),
        };
        let call = self.request(
            pb::DecideRequest {
                run_id: run_id.into(),
                call_id: call_id.into(),
                decision: Some(decision),
            },
            timeout,
        );
        let mut inner = self.inner.clone();
        TaskStream::starting(async move { inner.decide(call).await }.boxed(), timeout)
    }

    /// Where the durable run `run_id` stands, with the events it emitted from sequence
    /// `from_sequence` on (0: all of them).
    ///
    /// # Errors
    /// [`TaskError::Status`] with `NOT_FOUND` for an unknown run and
    /// `FAILED_PRECONDITION` when the service keeps no checkpoints; transport errors.
    pub async fn get_task(
        &self,
        run_id: impl Into<String>,
        from_sequence: u64,
    ) -> Result<pb::GetTaskResponse, TaskError> {
        if let Some(e) = self.error.clone() {
            return Err(TaskError::InvalidRequest(e));
        }
        let call = self.request(
            pb::GetTaskRequest {
                run_id: run_id.into(),
                from_sequence,
            },
            self.default_timeout,
        );
        let mut inner = self.inner.clone();
        inner
            .get_task(call)
            .await
            .map(tonic::Response::into_inner)
            .map_err(|s| TaskError::from_status(&s))
    }

    /// `message` as a call with the deadline, the metadata and the interceptors applied.
    fn request<M>(&self, message: M, timeout: Option<Duration>) -> tonic::Request<M> {
        let mut call = tonic::Request::new(message);
        if let Some(t) = timeout {
            call.set_timeout(t);
        }
        for (k, v) in &self.metadata {
            call.metadata_mut().insert(k.clone(), v.clone());
        }
        for f in &self.interceptors {
            f(call.metadata_mut());
        }
        call
    }
}

type Events = BoxStream<'static, Result<pb::RunTaskResponse, tonic::Status>>;

type Starting = BoxFuture<
    'static,
    Result<tonic::Response<tonic::Streaming<pb::RunTaskResponse>>, tonic::Status>,
>;

enum State {
    Starting(Starting),
    Streaming(Events),
    Failed(TaskError),
    Done,
}

/// The events of one task, from [`AgentServiceClient::run_task`].
#[must_use = "the call is only made while the stream is polled"]
pub struct TaskStream {
    state: State,
    deadline: Option<(Pin<Box<Sleep>>, Duration)>,
    run_id: Option<String>,
    last_sequence: u64,
}

impl fmt::Debug for TaskStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            State::Starting(_) => "starting",
            State::Streaming(_) => "streaming",
            State::Failed(_) => "failed",
            State::Done => "done",
        };
        f.debug_struct("TaskStream")
            .field("state", &state)
            .field("run_id", &self.run_id)
            .field("last_sequence", &self.last_sequence)
            .finish()
    }
}

impl TaskStream {
    fn failed(error: TaskError) -> Self {
        TaskStream {
            state: State::Failed(error),
            deadline: None,
            run_id: None,
            last_sequence: 0,
        }
    }

    fn starting(start: Starting, timeout: Option<Duration>) -> Self {
        TaskStream {
            state: State::Starting(start),
            deadline: timeout.map(|t| (Box::pin(tokio::time::sleep(t)), t)),
            run_id: None,
            last_sequence: 0,
        }
    }

    /// The run id the service reported (the request's, or one it generated), once an
    /// event arrived; keep it to resume the run or ask about it (`GetTask`).
    pub fn run_id(&self) -> Option<&str> {
        self.run_id.as_deref()
    }

    /// The sequence number of the last event read from the service (0 before the first):
    /// after an item, the number of the event it came from — the event, or the
    /// `ErrorEvent` behind a [`TaskError::Task`]. A reader that keeps it can replay what it
    /// missed with [`AgentServiceClient::get_task`] from the next number on.
    pub fn last_sequence(&self) -> u64 {
        self.last_sequence
    }

    fn finish(&mut self, error: TaskError) -> Poll<Option<Result<TaskEvent, TaskError>>> {
        self.state = State::Done;
        Poll::Ready(Some(Err(error)))
    }
}

impl Stream for TaskStream {
    type Item = Result<TaskEvent, TaskError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        loop {
            if matches!(this.state, State::Done) {
                return Poll::Ready(None);
            }
            if let State::Failed(_) = this.state {
                let State::Failed(e) = std::mem::replace(&mut this.state, State::Done) else {
                    return Poll::Ready(None);
                };
                return Poll::Ready(Some(Err(e)));
            }
            if let Some((sleep, timeout)) = &mut this.deadline {
                if sleep.poll_unpin(cx).is_ready() {
                    let timeout = *timeout;
                    return this.finish(TaskError::DeadlineExceeded(timeout));
                }
            }
            match &mut this.state {
                State::Starting(fut) => match fut.poll_unpin(cx) {
                    Poll::Ready(Ok(response)) => {
                        this.state = State::Streaming(response.into_inner().boxed());
                    }
                    Poll::Ready(Err(status)) => {
                        return this.finish(TaskError::from_status(&status))
                    }
                    Poll::Pending => return Poll::Pending,
                },
                State::Streaming(events) => match events.poll_next_unpin(cx) {
                    Poll::Ready(Some(Ok(response))) => {
                        if !response.run_id.is_empty() && this.run_id.is_none() {
                            this.run_id = Some(response.run_id.clone());
                        }
                        this.last_sequence = response.sequence;
                        match TaskEvent::from_proto(response) {
                            Ok(Some(event)) => {
                                if event.is_final() {
                                    this.state = State::Done;
                                }
                                return Poll::Ready(Some(Ok(event)));
                            }
                            // An event kind from a newer service: skip it.
                            Ok(None) => {}
                            Err(e) => return this.finish(e),
                        }
                    }
                    Poll::Ready(Some(Err(status))) => {
                        return this.finish(TaskError::from_status(&status))
                    }
                    Poll::Ready(None) => {
                        return this.finish(TaskError::Protocol(
                            "the stream ended without a final answer or an error".into(),
                        ))
                    }
                    Poll::Pending => return Poll::Pending,
                },
                State::Failed(_) | State::Done => {}
            }
        }
    }
}
