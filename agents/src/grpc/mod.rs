//! The versioned gRPC delegation contract (`catena.agent.v1`): a gateway hands an agent a
//! task with the context it retrieved, and the agent streams back what it does.
//!
//! The contract is `agents/proto/catena/agent/v1/agent.proto` ([`PROTO_PATH`],
//! [`PROTO_SOURCE`]; its compiled [`FILE_DESCRIPTOR_SET`] is here too, so services in
//! other languages generate stubs from the same file). What is here:
//!
//! - [`AgentServiceClient`]: a typed client. [`run_task`](AgentServiceClient::run_task)
//!   sends a [`TaskRequest`] and returns a [`TaskStream`] of [`TaskEvent`]s; the request's
//!   timeout becomes the gRPC deadline, and [`with_metadata`](AgentServiceClient::with_metadata)
//!   or [`with_interceptor`](AgentServiceClient::with_interceptor) add headers such as
//!   W3C `traceparent` or `authorization` to every call.
//! - [`AgentGrpcService`]: serves **any** agent through a [`TaskRunner`] (for example a
//!   closure `Fn(TaskContext) -> Result<AgentEventStream>`). It validates requests, maps
//!   [`AgentEvent`](crate::AgentEvent)s to the wire, honours the deadline, stops the agent
//!   when the client goes away, and hands the request's metadata to the runner in its
//!   [`TaskContext`]. [`into_router`](AgentGrpcService::into_router) adds the standard gRPC
//!   health service, set to `SERVING`.
//! - Durable runs: [`AgentGrpcService::durable`] runs every task as a
//!   [`DurableAgent`](crate::DurableAgent) under its run id (the request's `run_id`, or one
//!   the service generates, stamped on every event), checkpointed after each step.
//!   `ResumeTask` continues a run after a crash or restart, `Decide` answers an
//!   `ApprovalRequired` event (approve, perhaps with edited arguments; reject; cancel), and
//!   `GetTask` tells where a run stands and replays its events from a sequence number. A
//!   service without checkpoints answers those three with `FAILED_PRECONDITION`.
//! - [`pb`]: the generated protobuf types and stubs, with conversions to and from
//!   `catena_core`'s [`Document`](catena_core::Document),
//!   [`ScoredDocument`](catena_core::ScoredDocument), [`Message`](catena_core::Message) and
//!   [`Usage`](catena_core::Usage).
//!
//! ```no_run
//! use std::sync::Arc;
//! use catena_agents::AgentExecutor;
//! use catena_agents::grpc::{AgentGrpcService, AgentServiceClient, TaskContext, TaskEvent, TaskRequest};
//! use catena_core::test_utils::ScriptedChatModel;
//! use catena_core::Document;
//! use futures::StreamExt;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! // Server: any agent, built per task from the task's context.
//! let model = Arc::new(ScriptedChatModel::new().with_text("Rust has no GC."));
//! let service = AgentGrpcService::new(move |ctx: TaskContext| {
//!     let agent = ctx.apply_limits(AgentExecutor::builder(ctx.model(model.clone()))).build()?;
//!     Ok(agent.run_stream(&ctx.prompt()))
//! });
//! let (router, _health) = service.into_router().await;
//! tokio::spawn(router.serve("127.0.0.1:50051".parse()?));
//!
//! // Client.
//! let client = AgentServiceClient::connect("http://127.0.0.1:50051")
//!     .await?
//!     .with_metadata("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
//! let request = TaskRequest::new("Does Rust have a garbage collector?")
//!     .with_document(Document::new("Rust has no garbage collector.").with_id("faq-1"))
//!     .with_timeout(std::time::Duration::from_secs(30));
//! let mut events = client.run_task(request);
//! while let Some(event) = events.next().await {
//!     match event? {
//!         TaskEvent::TextDelta(text) => print!("{text}"),
//!         TaskEvent::FinalAnswer { text, sources, usage } => {
//!             println!("\n{text} ({} sources, {} tokens)", sources.len(), usage.total_tokens)
//!         }
//!         _ => {}
//!     }
//! }
//! # Ok(())
//! # }
//! ```

mod client;
mod context;
mod convert;
mod durable;
mod error;
#[cfg(feature = "otel")]
mod otel;
mod server;
mod stream;
mod types;

/// The generated protobuf messages and gRPC stubs of `catena.agent.v1`.
///
/// Prefer the typed wrappers ([`AgentServiceClient`], [`TaskRequest`], [`TaskEvent`],
/// [`AgentGrpcService`]); these are for code that works on the wire format directly.
#[allow(
    missing_docs,
    missing_debug_implementations,
    unreachable_pub,
    clippy::all,
    clippy::pedantic,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::return_self_not_must_use,
    rustdoc::all
)]
pub mod pb {
    tonic::include_proto!("catena.agent.v1");
}

pub use client::{AgentServiceClient, TaskStream};
pub use context::TaskContext;
pub use durable::DurableTask;
pub use error::TaskError;
pub use server::{
    check_bind, AgentGrpcService, TaskRunner, DEFAULT_MAX_CONCURRENT_TASKS, DEFAULT_MAX_STEPS,
    DEFAULT_MAX_TOKENS,
};
pub use types::{AnswerSource, TaskEvent, TaskLimits, TaskRequest};

/// The contract's path inside the repository, relative to the `agents` crate; its import
/// root (the buf module) is `agents/proto`.
pub const PROTO_PATH: &str = "proto/catena/agent/v1/agent.proto";

/// The contract's source text, as compiled into this crate.
pub const PROTO_SOURCE: &str = include_str!("../../proto/catena/agent/v1/agent.proto");

/// The protobuf package of the contract.
pub const PROTO_PACKAGE: &str = "catena.agent.v1";

/// The encoded `google.protobuf.FileDescriptorSet` of the contract (with its imports), for
/// gRPC reflection and for tools that generate code from descriptors.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/catena_agent_v1_descriptor.bin"));
