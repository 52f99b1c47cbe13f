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
//!     records: Arc::new(catena_chains::indexing::InMemoryRecordManager::new()),
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
pub mod backends;
pub mod config;
pub mod limits;
pub mod problem;
pub mod records;
mod routes;

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use catena_agents::grpc::AgentServiceClient;
use catena_chains::indexing::RecordManager;
use catena_core::{ChatModel, Embedder, VectorStore};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tokio::sync::{watch, Semaphore};

pub use backends::Backends;

use auth::{ApiKeys, Caller};
use config::Config;
use limits::{RateLimits, TokenBudgets};
use problem::Problem;

/// Why the gateway could not start or run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GatewayError {
    /// A configuration value is wrong; the message names it.
    #[error("configuration: {0}")]
    Config(String),
    /// A backend could not be set up.
    #[error("backend: {0}")]
    Backend(#[from] catena_core::Error),
    /// Listening or serving failed.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
}

/// What every handler shares.
pub(crate) struct AppState {
    pub(crate) config: Config,
    pub(crate) embedder: Arc<dyn Embedder>,
    pub(crate) chat: Arc<dyn ChatModel>,
    pub(crate) store: Arc<dyn VectorStore>,
    pub(crate) records: Arc<dyn RecordManager>,
    pub(crate) chunk_tokens: Option<(catena_core::splitter::LengthFunction, usize)>,
    pub(crate) agent: Option<AgentServiceClient>,
    pub(crate) agent_channel: Option<tonic::transport::Channel>,
    pub(crate) keys: ApiKeys,
    pub(crate) jwt: Option<auth::JwtVerifier>,
    pub(crate) rate: RateLimits,
    pub(crate) budgets: TokenBudgets,
    pub(crate) inflight: Arc<Semaphore>,
    pub(crate) ready: AtomicBool,
    pub(crate) shutdown: watch::Receiver<bool>,
    pub(crate) metrics: PrometheusHandle,
}

/// A configured gateway, ready to serve.
pub struct Gateway {
    state: Arc<AppState>,
    shutdown_tx: watch::Sender<bool>,
    description: String,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway")
            .field("backends", &self.description)
            .finish_non_exhaustive()
    }
}

/// The process-wide Prometheus recorder (installed once).
fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Full("http_request_duration_seconds".to_owned()),
                    &[
                        0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
                    ],
                )
                .map(PrometheusBuilder::build_recorder);
            match recorder {
                Ok(recorder) => {
                    let handle = recorder.handle();
                    // Another recorder may already be installed (a host program's); then our
                    // handle renders only what we record through it.
                    let _ = metrics::set_global_recorder(recorder);
                    handle
                }
                Err(_) => PrometheusBuilder::new().build_recorder().handle(),
            }
        })
        .clone()
}

impl Gateway {
    /// A gateway over `backends`, configured by `config`.
    ///
    /// # Errors
    /// [`GatewayError::Config`] for bad values (an API key hash that is not hex, a bad agent
    /// URL).
    pub fn new(config: Config, backends: Backends) -> Result<Self, GatewayError> {
        config.validate()?;
        let keys = ApiKeys::from_hashes(&config.auth.api_key_sha256)?;
        let jwt = config
            .auth
            .jwt
            .as_ref()
            .map(auth::JwtVerifier::new)
            .transpose()?;
        let (agent, agent_channel) = match &config.agent.url {
            Some(url) => {
                let channel = tonic::transport::Endpoint::from_shared(url.clone())
                    .map_err(|e| GatewayError::Config(format!("agent.url {url:?}: {e}")))?
                    .connect_timeout(Duration::from_secs(5))
                    .connect_lazy();
                (
                    Some(AgentServiceClient::new(channel.clone())),
                    Some(channel),
                )
            }
            None => (None, None),
        };
        let (shutdown_tx, shutdown) = watch::channel(false);
        let state = AppState {
            rate: RateLimits::new(config.limits.requests_per_minute, config.limits.burst),
            budgets: TokenBudgets::new(
                config.limits.token_budget,
                Duration::from_secs(config.limits.token_budget_window_secs.max(1)),
            ),
            inflight: Arc::new(Semaphore::new(config.limits.max_concurrent_requests)),
            embedder: backends.embedder,
            // Every model call gets a span with the OpenTelemetry GenAI attributes.
            chat: Arc::new(catena_core::TracedChatModel::new(backends.chat)),
            store: backends.store,
            records: backends.records,
            chunk_tokens: backends.chunk_tokens,
            agent,
            agent_channel,
            keys,
            jwt,
            ready: AtomicBool::new(true),
            shutdown,
            metrics: metrics_handle(),
            config,
        };
        Ok(Gateway {
            state: Arc::new(state),
            shutdown_tx,
            description: backends.description,
        })
    }

    /// What the gateway runs on, for the start-up line.
    pub fn description(&self) -> &str {
        &self.description
    }

    /// The axum router (for embedding the gateway in another server).
    pub fn router(&self) -> Router {
        router(Arc::clone(&self.state))
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
        let tx = self.shutdown_tx;
        let app = router(Arc::clone(&state));
        let signal = async move {
            shutdown.await;
            tracing::info!("shutting down: not ready, ending streams, finishing requests");
            state.ready.store(false, Ordering::SeqCst);
            let _ = tx.send(true);
        };
        axum::serve(listener, app)
            .with_graceful_shutdown(signal)
            .await?;
        Ok(())
    }
}

fn router(state: Arc<AppState>) -> Router {
    let protected = Router::new()
        .route("/v1/documents", post(routes::ingest))
        .route("/v1/query", post(routes::query))
        .route("/v1/tasks", post(routes::task))
        .route("/metrics", get(routes::metrics))
        .route_layer(middleware::from_fn_with_state(
            Arc::clone(&state),
            authenticate,
        ));
    Router::new()
        .route("/", get(routes::index_page))
        .route("/healthz", get(routes::healthz))
        .route("/readyz", get(routes::readyz))
        .merge(protected)
        .fallback(|| async { Problem::new(StatusCode::NOT_FOUND, "not found") })
        .layer(DefaultBodyLimit::max(state.config.limits.max_body_bytes))
        .layer(middleware::from_fn_with_state(
            Arc::clone(&state),
            shed_load,
        ))
        .layer(middleware::from_fn(record_metrics))
        .layer(middleware::from_fn(trace_request))
        .with_state(state)
}

/// Runs each request in a server span that continues the caller's W3C trace context
/// (`traceparent` header) and returns the span's own context in the response's `traceparent`.
async fn trace_request(request: Request, next: Next) -> Response {
    use tracing::Instrument;
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| request.uri().path().to_owned());
    let method = request.method().as_str().to_owned();
    let span = tracing::info_span!(
        "http.request",
        otel.name = %format!("{method} {route}"),
        otel.kind = "server",
        http.request.method = %method,
        http.route = %route,
        http.response.status_code = tracing::field::Empty,
    );
    let headers = request.headers();
    catena_agents::grpc::otel::set_remote_parent(&span, |name| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    });
    let mut response = next.run(request).instrument(span.clone()).await;
    span.record("http.response.status_code", response.status().as_u16());
    for (name, value) in catena_agents::grpc::otel::headers_of(&span) {
        if let (Ok(name), Ok(value)) = (
            header::HeaderName::try_from(name),
            HeaderValue::from_str(&value),
        ) {
            response.headers_mut().insert(name, value);
        }
    }
    response
}

/// Counts requests and their latency by route and status.
async fn record_metrics(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let method = request.method().as_str().to_owned();
    let start = Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    let labels = [("route", route), ("method", method), ("status", status)];
    metrics::counter!("http_requests_total", &labels).increment(1);
    metrics::histogram!("http_request_duration_seconds", &labels)
        .record(start.elapsed().as_secs_f64());
    response
}

/// Refuses requests over the concurrency limit at once (503 + `Retry-After`), instead of
/// queueing them. The permit lives as long as the response body, so streams count too.
async fn shed_load(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    let path = request.uri().path();
    if path == "/healthz" || path == "/readyz" {
        return next.run(request).await;
    }
    let Ok(permit) = Arc::clone(&state.inflight).try_acquire_owned() else {
        metrics::counter!("http_shed_total").increment(1);
        return Problem::unavailable("the gateway is at its concurrency limit; retry shortly")
            .into_response();
    };
    let response = next.run(request).await;
    let (parts, body) = response.into_parts();
    let stream = futures::StreamExt::map(body.into_data_stream(), move |chunk| {
        let _held = &permit;
        chunk
    });
    Response::from_parts(parts, axum::body::Body::from_stream(stream))
}

/// Checks the bearer key and the caller's rate limit; adds the `RateLimit` headers.
async fn authenticate(
    State(state): State<Arc<AppState>>,
    mut request: Request,
    next: Next,
) -> Response {
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(auth::bearer);
    let Some(presented) = presented else {
        return Problem::unauthorized("send `Authorization: Bearer <api key>`").into_response();
    };
    let caller = match (&state.jwt, auth::looks_like_jwt(presented)) {
        (Some(jwt), true) => match jwt.verify(presented) {
            Ok(caller) => caller,
            Err(reason) => return Problem::unauthorized(&reason).into_response(),
        },
        _ => match state.keys.verify(presented) {
            Some(caller) => caller,
            None => return Problem::unauthorized("the API key is not valid").into_response(),
        },
    };
    // Buckets are per key: headers such as X-Forwarded-For are not trusted and never pick one.
    let policy = HeaderValue::from_str(&state.rate.policy()).ok();
    match state.rate.check(&caller.0) {
        Ok(allowed) => {
            request.extensions_mut().insert(caller);
            let mut response = next.run(request).await;
            let h = response.headers_mut();
            if let Some(policy) = policy {
                h.insert("ratelimit-policy", policy);
            }
            if let Ok(v) = HeaderValue::from_str(&format!(
                "\"per-key\";r={};t={}",
                allowed.remaining, allowed.reset_secs
            )) {
                h.insert("ratelimit", v);
            }
            response
        }
        Err(limited) => {
            metrics::counter!("http_rate_limited_total").increment(1);
            let secs =
                limited.retry_after.as_secs() + u64::from(limited.retry_after.subsec_nanos() > 0);
            let mut response = Problem::new(StatusCode::TOO_MANY_REQUESTS, "rate limited")
                .with_detail(format!(
                    "this API key may make {} requests per minute",
                    state.config.limits.requests_per_minute
                ))
                .with_retry_after(limited.retry_after)
                .into_response();
            let h = response.headers_mut();
            if let Some(policy) = policy {
                h.insert("ratelimit-policy", policy);
            }
            if let Ok(v) = HeaderValue::from_str(&format!("\"per-key\";r=0;t={}", secs.max(1))) {
                h.insert("ratelimit", v);
            }
            response
        }
    }
}

/// The caller a handler runs for (set by [`authenticate`]).
pub(crate) fn caller_of(request_caller: Option<&Caller>) -> String {
    request_caller
        .map(|c| c.0.clone())
        .unwrap_or_else(|| "anonymous".to_owned())
}
