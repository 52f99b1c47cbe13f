//! An agent service: a Catena tool-calling agent served over the `catena.agent.v1` gRPC
//! contract, for a gateway to delegate tasks to.
//!
//! Each task gets its own [`AgentExecutor`](catena_agents::AgentExecutor) over these tools,
//! narrowed to the request's `allowed_tools`:
//!
//! | tool | name | what it does |
//! | --- | --- | --- |
//! | retriever | [`SEARCH_DOCUMENTS`] | searches the context documents the caller sent with the task (embedded into a per-task in-memory vector store on first use); the documents it returns become the answer's sources |
//! | calculator | [`CALCULATOR`] | arithmetic ([`catena_tools::Calculator`]) |
//! | web search | [`WEB_SEARCH`] | DuckDuckGo results ([`catena_tools::WebSearch`]) |
//! | web fetch | [`WEB_FETCH`] | a page as text ([`catena_tools::WebFetch`]), behind the SSRF guard |
//!
//! The request's step and token limits apply ([`TaskContext::apply_limits`]), the chat model
//! is metered so the final answer reports usage ([`TaskContext::model`]), and the gRPC
//! adapter stops the agent, running tools included, when the deadline passes or the
//! client goes away. [`serve`] runs the service with the standard health service until a
//! shutdown signal.
//!
//! [`TaskContext::apply_limits`]: catena_agents::grpc::TaskContext::apply_limits
//! [`TaskContext::model`]: catena_agents::grpc::TaskContext::model
//!
//! With a checkpointer ([`ServiceOptions::with_checkpointer`]; the binary's
//! `CATENA_AGENT_CHECKPOINTS` directory) every task is a durable run: checkpointed after
//! each step, continued after a crash or restart with `ResumeTask`, stopped before the tools
//! of [`ServiceOptions::with_approval_tool`] (`CATENA_APPROVAL_TOOLS`) until `Decide`, and
//! replayed by `GetTask`; `tests/durable.rs` kills the binary mid-run and resumes it.
//!
//! The binary (`cargo run -p example-agent-service`) picks the chat model and embedder from
//! the environment with [`catena_llms::from_env`]; see `src/main.rs`. `examples/python-agent` serves the same
//! contract from Python with LangChain, and `tests/python.rs` checks that both stream the
//! same events for the same task.
//!
//! ```no_run
//! use example_agent_service::{serve, service, ServiceOptions};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let models = catena_llms::from_env()?;
//! let options = ServiceOptions::new().with_retriever_k(3);
//! let service = service(models.chat, models.embedder, options)?;
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:50051").await?;
//! serve(listener, service, async {
//!     let _ = tokio::signal::ctrl_c().await;
//! })
//! .await?;
//! # Ok(())
//! # }
//! ```

#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

mod agent;
mod options;
mod retriever;
mod telemetry;

pub use agent::{service, CALCULATOR, SEARCH_DOCUMENTS, WEB_FETCH, WEB_SEARCH};
pub use options::ServiceOptions;
pub use telemetry::task_span;

use std::future::Future;

use catena_agents::grpc::pb::agent_service_server::AgentServiceServer;
use catena_agents::grpc::AgentGrpcService;
use tonic::transport::server::TcpIncoming;
use tonic_health::ServingStatus;

/// The address the binary listens on when neither `--addr` nor `CATENA_AGENT_ADDR` is set.
pub const DEFAULT_ADDR: &str = "127.0.0.1:50051";

/// Serves `service` (with the standard gRPC health service, `SERVING`) on `listener` until
/// `shutdown` completes. Then health turns `NOT_SERVING`, new calls are refused, and the
/// server waits for running tasks to end (each is bounded by its deadline).
///
/// # Errors
/// The transport's error when the server fails.
pub async fn serve(
    listener: tokio::net::TcpListener,
    service: AgentGrpcService,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), tonic::transport::Error> {
    let (router, health) = service.into_router().await;
    router
        .serve_with_incoming_shutdown(TcpIncoming::from(listener), async move {
            shutdown.await;
            tracing::info!("shutting down: health is NOT_SERVING, draining running tasks");
            health
                .set_service_status("", ServingStatus::NotServing)
                .await;
            health
                .set_not_serving::<AgentServiceServer<AgentGrpcService>>()
                .await;
        })
        .await
}
