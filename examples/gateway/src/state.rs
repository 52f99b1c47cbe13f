//! What every handler and middleware shares: [`AppState`], built once per gateway from its
//! configuration and backends, and the name of the caller a request runs for. This is the
//! bottom floor of the request path: it depends on the configuration, auth, limits and
//! backends, and everything that serves requests depends on it.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use catena_agents::grpc::AgentServiceClient;
use catena_core::splitter::LengthFunction;
use catena_core::{ChatModel, Embedder, RecordManager, VectorStore};
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::sync::{watch, Semaphore};

use crate::auth::{ApiKeys, Caller, JwtVerifier};
use crate::backends::Backends;
use crate::config::Config;
use crate::error::GatewayError;
use crate::limits::{RateLimits, TokenBudgets};

/// What every handler shares.
pub(crate) struct AppState {
    pub(crate) config: Config,
    pub(crate) embedder: Arc<dyn Embedder>,
    pub(crate) chat: Arc<dyn ChatModel>,
    pub(crate) store: Arc<dyn VectorStore>,
    pub(crate) records: Arc<dyn RecordManager>,
    pub(crate) chunk_tokens: Option<(LengthFunction, usize)>,
    pub(crate) agent: Option<AgentServiceClient>,
    pub(crate) agent_channel: Option<tonic::transport::Channel>,
    pub(crate) keys: ApiKeys,
    pub(crate) jwt: Option<JwtVerifier>,
    pub(crate) rate: RateLimits,
    pub(crate) budgets: Arc<TokenBudgets>,
    /// The limits shared by every replica (Redis), when configured.
    pub(crate) shared: Option<Arc<crate::shared::RedisLimits>>,
    pub(crate) inflight: Arc<Semaphore>,
    pub(crate) per_key: crate::limits::KeyConcurrency,
    pub(crate) auth_failures: crate::limits::AuthFailures,
    /// The last readiness answer and when it was computed (`/readyz` is cached briefly).
    pub(crate) readiness: tokio::sync::Mutex<Option<(std::time::Instant, bool, serde_json::Value)>>,
    pub(crate) ready: AtomicBool,
    pub(crate) shutdown: watch::Receiver<bool>,
    /// Kept with the state (not only by the [`Gateway`](crate::Gateway)), so a router that
    /// outlives its `Gateway` never reads a closed channel as a shutdown.
    pub(crate) shutdown_tx: watch::Sender<bool>,
    pub(crate) metrics: PrometheusHandle,
}

impl AppState {
    /// The state of a gateway over `backends`, configured by `config`, rendering metrics
    /// through the handle `metrics` gives once the configuration is valid.
    ///
    /// # Errors
    /// [`GatewayError::Config`] for bad values (an API key hash that is not hex, a bad agent
    /// URL).
    pub(crate) fn new(
        config: Config,
        backends: Backends,
        metrics: impl FnOnce() -> PrometheusHandle,
    ) -> Result<Self, GatewayError> {
        config.validate()?;
        let keys = ApiKeys::new(&config.auth.api_key_sha256, &config.auth.keys)?;
        let jwt = config.auth.jwt.as_ref().map(JwtVerifier::new).transpose()?;
        let (agent, agent_channel) = match &config.agent.url {
            Some(url) => {
                let channel = tonic::transport::Endpoint::from_shared(url.clone())
                    .map_err(|e| GatewayError::Config(format!("agent.url {url:?}: {e}")))?
                    .connect_timeout(Duration::from_secs(5))
                    .connect_lazy();
                let mut client = AgentServiceClient::new(channel.clone());
                if let Some(token) = &config.agent.token {
                    client = client.with_bearer_token(token);
                }
                (Some(client), Some(channel))
            }
            None => (None, None),
        };
        let shared = config
            .limits
            .redis_url
            .as_ref()
            .map(|url| crate::shared::RedisLimits::new(&url.0).map(Arc::new))
            .transpose()?;
        let mut budgets = TokenBudgets::new(
            config.limits.token_budget,
            Duration::from_secs(config.limits.token_budget_window_secs.max(1)),
        );
        if let Some(redis) = &shared {
            budgets = budgets.shared(Arc::clone(redis));
        }
        let (shutdown_tx, shutdown) = watch::channel(false);
        let state = AppState {
            rate: RateLimits::new(config.limits.requests_per_minute, config.limits.burst),
            budgets: Arc::new(budgets),
            shared,
            inflight: Arc::new(Semaphore::new(config.limits.max_concurrent_requests)),
            per_key: crate::limits::KeyConcurrency::new(config.limits.max_concurrent_per_key),
            auth_failures: crate::limits::AuthFailures::new(config.limits.auth_failures_per_minute),
            readiness: tokio::sync::Mutex::new(None),
            // Embedding calls (ingest and questions) get an `embeddings` span too.
            embedder: Arc::new(catena_core::TracedEmbedder::new(backends.embedder)),
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
            shutdown_tx,
            metrics: metrics(),
            config,
        };
        Ok(state)
    }

    /// Starts the graceful shutdown: readiness turns false, open streams get a terminal
    /// `error` event and end.
    pub(crate) fn begin_shutdown(&self) {
        self.ready.store(false, std::sync::atomic::Ordering::SeqCst);
        self.shutdown_tx.send_replace(true);
    }

    /// How long a whole non-streaming request may take.
    pub(crate) fn request_timeout(&self) -> Duration {
        Duration::from_secs(self.config.limits.request_timeout_secs.max(1))
    }
}

/// The name of the caller a handler runs for (the authentication middleware sets the
/// [`Caller`]); `anonymous` on routes without authentication.
pub(crate) fn caller_of(request_caller: Option<&Caller>) -> Caller {
    request_caller.cloned().unwrap_or_else(|| Caller {
        id: "anonymous".to_owned(),
        tenant: "anonymous".to_owned(),
        scopes: Vec::new(),
    })
}
