//! Agent loops for Catena: a chat model that calls tools until it can answer.
//!
//! What is here:
//! - [`AgentExecutor`]: the tool-calling agent, using the provider's native tool calls.
//!   Several calls in one turn run concurrently with a bound and are paired back by call
//!   id; tool errors, timeouts, bad arguments and unknown tools go back to the model as
//!   `"Error: …"` results instead of ending the run. Limits: `max_iterations`, a
//!   `time_budget`, a `token_budget`, a per-tool timeout, and [`EarlyStopping`]. Every run
//!   returns its intermediate [`AgentStep`]s.
//! - [`AgentExecutor::run_stream`] (and [`ReactAgent::run_stream`]): the same run as a
//!   stream of typed [`AgentEvent`]s — text deltas, tool-call argument pieces, each turn's
//!   usage, tool calls and results.
//!   Dropping the stream (or the `run` future) cancels the run and its tools.
//! - [`AgentTool`]: an agent offered to another agent as a tool.
//! - [`AgentError`]: the typed limits; runs return [`catena_core::Result`] with the
//!   `AgentError` kept as the source of [`catena_core::Error::Other`]
//!   (see [`AgentError::from_error`]).
//!
//! - [`ReactAgent`]: the ReAct text agent, for models without native tool calling (tools
//!   described in the prompt, `Thought:`/`Action:`/`Action Input:`/`Final Answer:` parsed
//!   leniently, one format reminder before [`AgentError::OutputParse`]).
//! - [`Router`]: picks a chain or agent for an input by a model's classification.
//!
//! - [`AgentOptions`]: the system prompt, tools and limits both agent builders share.
//! - [`Agent`]: the loop that suits a model — [`AgentExecutor`] when the model's
//!   [`ModelInfo`](catena_core::ModelInfo) says it calls tools, [`ReactAgent`] otherwise.
//!   An [`AgentExecutor`] with tools refuses, at build time, a model that cannot call them.
//!
//! Everything above is at the crate root. Two feature-gated modules hold the rest, each
//! item at one path:
//! - `grpc` (feature `grpc`): the versioned gRPC delegation contract
//!   (`catena.agent.v1`): a typed client, a server adapter that serves any agent, and the
//!   standard health service.
//! - `otel` (feature `otel`): W3C trace context to and from any transport's headers, and
//!   (feature `otlp`) the process's tracing set-up that the example binaries share.
//!
//! | feature | default | what it adds |
//! | --- | --- | --- |
//! | `grpc` | no | the `grpc` module: tonic client and server for `agents/proto/catena/agent/v1/agent.proto` |
//! | `otel` | no | the `otel` module: trace-context propagation; with `grpc`, served tasks continue the caller's trace |
//! | `otlp` | no | `otel` plus `otel::init_tracing`: logs to stderr and spans over OTLP/gRPC |
//!
//! ```
//! use std::sync::Arc;
//! use catena_agents::{AgentError, AgentExecutor, EarlyStopping};
//! use catena_core::test_utils::ScriptedChatModel;
//! use catena_core::{ToolError, TypedTool};
//!
//! #[derive(serde::Deserialize, schemars::JsonSchema)]
//! struct AddArgs { a: i64, b: i64 }
//!
//! struct Add;
//! #[async_trait::async_trait]
//! impl TypedTool for Add {
//!     type Args = AddArgs;
//!     type Output = i64;
//!     fn name(&self) -> &str { "add" }
//!     fn description(&self) -> &str { "Adds two integers." }
//!     async fn call(&self, a: AddArgs) -> Result<i64, ToolError> {
//!         a.a.checked_add(a.b).ok_or_else(|| ToolError::execution("overflow"))
//!     }
//! }
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! // A model that keeps calling tools is stopped at the limit with a typed error.
//! let looping = ScriptedChatModel::new().with_responder(|_| {
//!     Ok(catena_core::ChatResponse::new(catena_core::Message::assistant_with_tool_calls(
//!         "",
//!         vec![catena_core::ToolCall::new("c", "add", r#"{"a":1,"b":2}"#)],
//!     )))
//! });
//! let agent = AgentExecutor::builder(Arc::new(looping))
//!     .tool(Add.into_tool())
//!     .max_iterations(3)
//!     .early_stopping(EarlyStopping::Force)
//!     .build()?;
//! let err = agent.run("1+2, forever").await.unwrap_err();
//! assert_eq!(AgentError::from_error(&err), Some(&AgentError::MaxIterations { limit: 3 }));
//! # Ok::<(), catena_core::Error>(())
//! # }).unwrap();
//! ```

#![cfg_attr(docsrs, feature(doc_cfg))]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

mod agent;
mod agent_tool;
mod durable;
mod error;
mod events;
mod executor;
mod options;
mod react;
mod router;

#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;

#[cfg(feature = "grpc")]
#[cfg_attr(docsrs, doc(cfg(feature = "grpc")))]
pub mod grpc;
#[cfg(feature = "otel")]
#[cfg_attr(docsrs, doc(cfg(feature = "otel")))]
pub mod otel;

pub use agent::Agent;
pub use agent_tool::{AgentTool, AgentToolArgs};
pub use durable::{
    CallRecord, CallStatus, Decision, DurableAgent, RunInput, RunOutcome, RunState, RunStatus,
    INTERRUPTED,
};
pub use error::AgentError;
pub use events::{AgentEvent, AgentEventStream};
pub use executor::{
    AgentExecutor, AgentExecutorBuilder, AgentRun, AgentStep, EarlyStopping, StepError,
};
pub use options::AgentOptions;
pub use react::{ReactAgent, ReactAgentBuilder, REACT_STOP};
pub use router::{Route, Router, RouterBuilder, RouterError, RouterOutput};
