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
    /// Per-key money budgets (millionths of the price table's currency) and the chat model's
    /// price, with `limits.cost_budget`.
    pub(crate) cost_budgets: Option<(Arc<TokenBudgets>, catena_core::ModelPrice)>,
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
    /// The durable runs this gateway is driving now (`agent.durable`), with how many
    /// drivers each: a second driver (`resume`) is refused while one runs here.
    pub(crate) driving: std::sync::Mutex<std::collections::HashMap<String, usize>>,
    /// Permits for durable runs that go on without a reader (`agent.max_detached_runs`).
    pub(crate) detached: Arc<Semaphore>,
    /// Durable runs going on without a reader, per key (at most
    /// `limits.max_concurrent_per_key` each).
    pub(crate) detached_per_key: std::sync::Mutex<std::collections::HashMap<String, usize>>,
    /// The budget reservations of runs stopped for approval, by run id, since when: the
    /// decision's call settles them with the run's usage; one never decided is charged in
    /// full when it expires (or the gateway stops).
    pub(crate) held: std::sync::Mutex<
        std::collections::HashMap<String, (std::time::Instant, crate::routes::Charge)>,
    >,
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
        let window = Duration::from_secs(config.limits.token_budget_window_secs.max(1));
        let mut budgets = TokenBudgets::new(config.limits.token_budget, window);
        if let Some(redis) = &shared {
            budgets = budgets.shared(Arc::clone(redis));
        }
        let prices = config
            .models
            .prices
            .as_ref()
            .map(|path| {
                catena_core::PriceTable::from_file(path)
                    .map(Arc::new)
                    .map_err(|e| GatewayError::Config(format!("models.prices: {e}")))
            })
            .transpose()?;
        let model_id = backends.chat.model_info().model;
        let cost_budgets = match (config.limits.cost_budget, &prices) {
            (Some(budget), Some(table)) => {
                let price = *table.price(&model_id).ok_or_else(|| {
                    GatewayError::Config(format!(
                        "limits.cost_budget: the price table has no price for the chat model \
                         `{model_id}`"
                    ))
                })?;
                let mut b = TokenBudgets::new(Some((budget * 1_000_000.0).floor() as u64), window)
                    .with_namespace("cost");
                if let Some(redis) = &shared {
                    b = b.shared(Arc::clone(redis));
                }
                Some((Arc::new(b), price))
            }
            _ => None,
        };
        let chat = model_stack(backends.chat, &config.models, prices);
        let embedder: Arc<dyn Embedder> = if config.models.telemetry {
            // Embedding calls (ingest and questions) get an `embeddings` span too.
            Arc::new(catena_core::TracedEmbedder::new(backends.embedder))
        } else {
            backends.embedder
        };
        let (shutdown_tx, shutdown) = watch::channel(false);
        let state = AppState {
            cost_budgets,
            rate: RateLimits::new(config.limits.requests_per_minute, config.limits.burst),
            budgets: Arc::new(budgets),
            shared,
            inflight: Arc::new(Semaphore::new(config.limits.max_concurrent_requests)),
            per_key: crate::limits::KeyConcurrency::new(config.limits.max_concurrent_per_key),
            auth_failures: crate::limits::AuthFailures::new(config.limits.auth_failures_per_minute),
            readiness: tokio::sync::Mutex::new(None),
            embedder,
            chat,
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
            driving: std::sync::Mutex::default(),
            detached_per_key: std::sync::Mutex::default(),
            held: std::sync::Mutex::default(),
            detached: Arc::new(Semaphore::new(
                config.agent.max_detached_runs.min(Semaphore::MAX_PERMITS),
            )),
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

/// The chat model as the gateway calls it: traced and metered (GenAI spans, metrics and, with
/// a price table, cost), inside the client-side limits, behind the circuit breaker — each
/// layer only when configured.
fn model_stack(
    model: Arc<dyn ChatModel>,
    config: &crate::config::ModelsConfig,
    prices: Option<Arc<catena_core::PriceTable>>,
) -> Arc<dyn ChatModel> {
    use catena_chains::{BreakerConfig, CircuitBreaker, ClientLimits, RateLimited, RateLimiter};
    let mut model = model;
    if config.telemetry {
        let mut traced = catena_core::TracedChatModel::new(model);
        if let Some(p) = prices {
            traced = traced.with_prices(p);
        }
        model = Arc::new(traced);
    }
    if config.requests_per_minute.is_some()
        || config.tokens_per_minute.is_some()
        || config.max_concurrency.is_some()
    {
        let mut limits =
            ClientLimits::new().max_queue_time(Duration::from_secs(config.max_queue_secs));
        if let Some(n) = config.requests_per_minute {
            limits = limits.requests_per_minute(n);
        }
        if let Some(n) = config.tokens_per_minute {
            limits = limits.tokens_per_minute(n);
        }
        if let Some(n) = config.max_concurrency {
            limits = limits.max_concurrency(n);
        }
        // validate() refused zeros, the only values RateLimiter::new refuses.
        if let Ok(limiter) = RateLimiter::new(limits) {
            model = Arc::new(RateLimited::new(model, Arc::new(limiter)));
        }
    }
    if let Some(failures) = config.breaker_failures {
        model = Arc::new(CircuitBreaker::new(
            model,
            BreakerConfig::new()
                .failure_threshold(failures)
                .open_for(Duration::from_secs(config.breaker_open_secs.max(1))),
        ));
    }
    model
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
