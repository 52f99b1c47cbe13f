//! The Catena gateway: the operational plane of an AI backend, as an axum HTTP API.
//!
//! - `POST /v1/documents` ingests documents (split, embed, upsert through incremental
//!   indexing) and returns the ingest report;
//! - `POST /v1/query` answers a question with retrieval-augmented generation, with sources;
//!   `Accept: text/event-stream` streams the answer as server-sent events;
//! - `POST /v1/tasks` retrieves context and delegates the task to an agent service over gRPC
//!   (`catena.agent.v1`), streaming its events back as server-sent events;
//! - `GET /healthz` (liveness), `GET /readyz` (store and agent service reachable, not shutting
//!   down), `GET /metrics` (Prometheus), `GET /` (a chat page).
//!
//! Every route but `/`, `/healthz` and `/readyz` needs `Authorization: Bearer <api key>`; keys
//! are configured as SHA-256 hashes. Each key has its own GCRA rate limit and token budget;
//! errors are RFC 9457 problem details; a global concurrency limit sheds load with 503.
//!
//! The crate reads bottom-up, each floor using only the ones below it: the configuration,
//! [`auth`], [`limits`], [`problem`] and [`records`] at the bottom with [`GatewayError`] and
//! [`Backends`]; then the state every request shares; the middleware (tracing, metrics, load
//! shedding, authentication) and the handlers, one file per endpoint group; and this root,
//! which holds the [`Gateway`] and stacks the router. [`demo`] is the HTTP client behind
//! `gateway demo`.
//!
//! ```no_run
//! use std::sync::Arc;
//! use catena_core::test_utils::{DeterministicEmbedder, ScriptedChatModel};
//! use catena_vectorstores::InMemoryVectorStore;
//! use example_gateway::{auth::hash_key, config::Config, Backends, Gateway};
//!
//! # async fn run() -> Result<(), example_gateway::GatewayError> {
//! let mut config = Config::default();
//! config.auth.api_key_sha256 = vec![hash_key("dev-key")];
//! let backends = Backends {
//!     embedder: Arc::new(DeterministicEmbedder::new(64)),
//!     chat: Arc::new(ScriptedChatModel::new().with_text("42")),
//!     store: Arc::new(InMemoryVectorStore::new()),
//!     records: Arc::new(catena_core::InMemoryRecordManager::new()),
//!     chunk_tokens: None,
//!     description: "test doubles".into(),
//! };
//! let gateway = Gateway::new(config, backends)?;
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.map_err(example_gateway::GatewayError::Io)?;
//! gateway.serve(listener, std::future::pending()).await?;
//! # Ok(()) }
//! ```

// Handlers return `Result<_, Problem>`; a problem is built once per failed request, so its
// size (a few strings) does not matter.
#![allow(clippy::result_large_err)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod auth;
mod backends;
pub mod config;
pub mod demo;
mod error;
pub mod limits;
mod middleware;
pub mod problem;
pub mod records;
mod routes;
mod server;
pub mod shared;
mod signal;
mod state;

pub use backends::Backends;
pub use error::GatewayError;
pub use middleware::metrics::flush_otlp;
pub use signal::shutdown_signal;

/// Installs `ring` as the process's rustls crypto provider (idempotent). The workspace's
/// reqwest carries no provider of its own; the library clients (model providers, web tools)
/// configure theirs, and a program that builds plain `reqwest` clients, like the gateway's
/// demo client and its tests, calls this first.
pub fn install_crypto_provider() {
    // An error only means a provider is already installed, which is what we want.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

use std::future::Future;
use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::middleware::{from_fn, from_fn_with_state};
use axum::routing::{get, post};
use axum::Router;

use config::Config;
use problem::Problem;
use routes::{documents, health, query, runs, tasks};
use state::AppState;

/// A configured gateway, ready to serve.
pub struct Gateway {
    state: Arc<AppState>,
    description: String,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway")
            .field("backends", &self.description)
            .finish_non_exhaustive()
    }
}

impl Gateway {
    /// A gateway over `backends`, configured by `config`.
    ///
    /// # Errors
    /// [`GatewayError::Config`] for bad values (an API key hash that is not hex, a bad agent
    /// URL).
    pub fn new(config: Config, backends: Backends) -> Result<Self, GatewayError> {
        let description = backends.description.clone();
        let state = AppState::new(config, backends, middleware::metrics::recorder)?;
        Ok(Gateway {
            state: Arc::new(state),
            description,
        })
    }

    /// What the gateway runs on, for the start-up line.
    pub fn description(&self) -> &str {
        &self.description
    }

    /// The axum router, for embedding the gateway in another server
    /// (`docs/guides/gateway-router.md`). It keeps working after the `Gateway` is dropped;
    /// call [`shutdown`](Self::shutdown) (through a [`ShutdownHandle`]) when that server stops.
    pub fn router(&self) -> Router {
        router(Arc::clone(&self.state))
    }

    /// A handle that starts this gateway's graceful shutdown, for a gateway served by your own
    /// server ([`serve`](Self::serve) does it itself).
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        ShutdownHandle {
            state: Arc::clone(&self.state),
        }
    }

    /// Starts the graceful shutdown of the gateway's side now: `/readyz` answers 503 and open
    /// streams get a terminal `error` event (`shutdown`) and end. In-flight non-streaming
    /// requests are the server's to finish.
    pub fn shutdown(&self) {
        self.state.begin_shutdown();
    }

    /// Serves on `listener` until `shutdown` completes, then shuts down gracefully: readiness
    /// turns false first, open streams get a terminal `error` event and end, in-flight requests
    /// finish.
    ///
    /// # Errors
    /// [`GatewayError::Io`] if serving fails.
    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), GatewayError> {
        let state = Arc::clone(&self.state);
        let app = router(Arc::clone(&state));
        let signal = async move {
            shutdown.await;
            tracing::info!("shutting down: not ready, ending streams, finishing requests");
            state.begin_shutdown();
        };
        let limits = &self.state.config.limits;
        let limits = server::ServerLimits {
            header_read_timeout: std::time::Duration::from_secs(
                limits.header_read_timeout_secs.max(1),
            ),
            max_connections: limits.max_connections.max(1),
        };
        server::serve(listener, app, limits, signal).await?;
        Ok(())
    }
}

/// Starts a [`Gateway`]'s graceful shutdown from wherever the server that serves its router
/// stops; cheap to clone.
#[derive(Clone)]
pub struct ShutdownHandle {
    state: Arc<AppState>,
}

impl std::fmt::Debug for ShutdownHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShutdownHandle").finish_non_exhaustive()
    }
}

impl ShutdownHandle {
    /// As [`Gateway::shutdown`].
    pub fn shutdown(&self) {
        self.state.begin_shutdown();
    }
}

/// The routes and the middleware around them (the last layer added runs first).
fn router(state: Arc<AppState>) -> Router {
    let protected = Router::new()
        .route("/v1/documents", post(documents::ingest))
        .route("/v1/query", post(query::query))
        .route("/v1/tasks", post(tasks::task))
        .route("/v1/tasks/{id}", get(runs::get))
        .route("/v1/tasks/{id}/approve", post(runs::approve))
        .route("/v1/tasks/{id}/reject", post(runs::reject))
        .route("/v1/tasks/{id}/cancel", post(runs::cancel))
        .route("/v1/tasks/{id}/resume", post(runs::resume))
        .route("/metrics", get(health::metrics))
        .route_layer(from_fn_with_state(
            Arc::clone(&state),
            middleware::auth::authenticate,
        ));
    Router::new()
        .route("/", get(health::index_page))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .merge(protected)
        .fallback(|| async { Problem::new(StatusCode::NOT_FOUND, "not found") })
        .layer(DefaultBodyLimit::max(state.config.limits.max_body_bytes))
        .layer(from_fn_with_state(
            Arc::clone(&state),
            middleware::load_shed::shed_load,
        ))
        .layer(from_fn(middleware::metrics::record_metrics))
        .layer(from_fn_with_state(
            Arc::clone(&state),
            middleware::trace::trace_request,
        ))
        .with_state(state)
}

/// The guide `docs/guides/gateway-router.md`, compiled and run as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../../../docs/guides/gateway-router.md")]
pub struct GatewayRouterGuide;
