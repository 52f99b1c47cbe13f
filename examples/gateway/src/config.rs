//! Configuration: an optional TOML file, then environment variables (which win).
//!
//! ```
//! use example_gateway::config::Config;
//!
//! let config = Config::from_toml_str(r#"
//!     listen = "127.0.0.1:9000"
//!     [auth]
//!     api_key_sha256 = ["9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"]
//!     [limits]
//!     requests_per_minute = 120
//! "#).unwrap();
//! assert_eq!(config.limits.requests_per_minute, 120);
//! assert_eq!(config.limits.burst, 20); // defaults fill the rest
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use catena_vectorstores::VectorPrecision;
use serde::Deserialize;

use crate::error::GatewayError;

/// The variable naming the configuration file when the command line has no `--config`.
pub const CONFIG_FILE_ENV: &str = "CATENA_GATEWAY_CONFIG";

/// Everything the gateway can be told. Secrets (provider API keys) are never read from here:
/// only from the environment.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct Config {
    /// The address to listen on. Env `CATENA_GATEWAY_ADDR`. Default `127.0.0.1:8080`.
    pub listen: SocketAddr,
    /// Where the embedded defaults keep their state (the vector store and the ingest records).
    /// Env `CATENA_DATA_DIR`. Default `.catena/gateway`.
    pub data_dir: PathBuf,
    /// Authentication.
    pub auth: AuthConfig,
    /// Rate limits, budgets, sizes and timeouts.
    pub limits: LimitsConfig,
    /// Retrieval-augmented generation.
    pub rag: RagConfig,
    /// The agent service that `/v1/tasks` delegates to.
    pub agent: AgentConfig,
    /// The chat model's production settings: prices, client-side limits, circuit breaker,
    /// telemetry.
    pub models: ModelsConfig,
}

/// How the gateway calls its chat model.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct ModelsConfig {
    /// A price table (TOML, see `catena_core::PriceTable`): calls are costed on their spans and
    /// in `catena_gen_ai_client_cost`, and `limits.cost_budget` can be used. Env
    /// `CATENA_PRICE_TABLE`.
    pub prices: Option<PathBuf>,
    /// Requests per minute the gateway sends its model provider at most (client-side, before
    /// the provider's 429s). Env `CATENA_MODEL_RPM`.
    pub requests_per_minute: Option<u32>,
    /// Tokens per minute likewise. Env `CATENA_MODEL_TPM`.
    pub tokens_per_minute: Option<u32>,
    /// Model calls in flight at once.
    pub max_concurrency: Option<usize>,
    /// The longest a call waits for its turn under those limits, in seconds. Default 30.
    pub max_queue_secs: u64,
    /// Failures within a minute that open the model's circuit breaker (503 at once while it
    /// is open, for `breaker_open_secs`). None: no breaker.
    pub breaker_failures: Option<u32>,
    /// How long the breaker stays open. Default 30.
    pub breaker_open_secs: u64,
    /// GenAI spans and metrics for every model, embedding and tool call (on by default; env
    /// `CATENA_TELEMETRY=off` turns them off).
    pub telemetry: bool,
}

impl Default for ModelsConfig {
    fn default() -> Self {
        ModelsConfig {
            prices: None,
            requests_per_minute: None,
            tokens_per_minute: None,
            max_concurrency: None,
            max_queue_secs: 30,
            breaker_failures: None,
            breaker_open_secs: 30,
            telemetry: true,
        }
    }
}

/// API keys, and optionally JWTs.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct AuthConfig {
    /// SHA-256 hashes (hex) of the accepted API keys. Env `CATENA_API_KEY_SHA256` (comma
    /// separated). `printf %s "$KEY" | gateway hash-key` prints a key's hash (read from stdin).
    pub api_key_sha256: Vec<String>,
    /// Keys with a tenant and scopes (`[[auth.keys]]`). A key in `api_key_sha256` is a tenant
    /// of its own with the default scopes (ingest, query, tasks).
    pub keys: Vec<KeyConfig>,
    /// Accept JWT bearer tokens too (each `sub` gets its own rate-limit bucket and budget).
    pub jwt: Option<JwtConfig>,
}

/// One API key of a tenant: `[[auth.keys]]` with `sha256`, `tenant` and `scopes`.
///
/// Keys of the same tenant read and write the same documents; keys of different tenants
/// never see each other's.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct KeyConfig {
    /// The key's SHA-256 (64 hex digits).
    pub sha256: String,
    /// The tenant the key acts for.
    pub tenant: String,
    /// What the key may do: `ingest`, `query`, `tasks`, `admin` (`GET /metrics`). Default:
    /// all but `admin`.
    #[serde(default)]
    pub scopes: Option<Vec<crate::auth::Scope>>,
}

impl KeyConfig {
    /// The key with hash `sha256` acting for `tenant`, with the default scopes.
    pub fn new(sha256: impl Into<String>, tenant: impl Into<String>) -> Self {
        KeyConfig {
            sha256: sha256.into(),
            tenant: tenant.into(),
            scopes: None,
        }
    }

    /// Sets the key's scopes.
    #[must_use]
    pub fn scopes(mut self, scopes: impl IntoIterator<Item = crate::auth::Scope>) -> Self {
        self.scopes = Some(scopes.into_iter().collect());
        self
    }
}

/// JWT validation: the algorithm is pinned (a token naming another is refused, `none`
/// included), `exp` is required, `nbf`, `iss` and `aud` are checked.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct JwtConfig {
    /// `HS256`, `HS384`, `HS512` (shared secret from env `CATENA_JWT_SECRET`), `RS256`, `ES256` or
    /// `EdDSA` (public key PEM file `public_key_pem`).
    pub algorithm: String,
    /// The PEM file with the verifying key, for the asymmetric algorithms.
    #[serde(default)]
    pub public_key_pem: Option<PathBuf>,
    /// The required `iss`.
    pub issuer: String,
    /// The required `aud`.
    pub audience: String,
    /// Clock skew allowed for `exp` and `nbf`, in seconds. Default 30.
    #[serde(default = "default_leeway")]
    pub leeway_secs: u64,
    /// The claim naming the caller's tenant (a string); a token without it is refused.
    /// Default: none, each `sub` is a tenant of its own.
    #[serde(default)]
    pub tenant_claim: Option<String>,
    /// The HMAC secret for `HS*`: only from the environment (`CATENA_JWT_SECRET`), never
    /// from the file, never printed.
    #[serde(skip)]
    pub secret: Option<String>,
}

impl std::fmt::Debug for JwtConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtConfig")
            .field("algorithm", &self.algorithm)
            .field("public_key_pem", &self.public_key_pem)
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("leeway_secs", &self.leeway_secs)
            .field("tenant_claim", &self.tenant_claim)
            .field("secret", &self.secret.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

fn default_leeway() -> u64 {
    30
}

/// Rate limits, budgets, sizes and timeouts.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct LimitsConfig {
    /// Sustained requests per minute per API key (GCRA). Env `CATENA_RATE_PER_MINUTE`.
    pub requests_per_minute: u32,
    /// Requests a key may make at once above the sustained rate.
    pub burst: u32,
    /// Model tokens (input + output) a key may use per budget window; none = unlimited.
    /// Env `CATENA_TOKEN_BUDGET`.
    pub token_budget: Option<u64>,
    /// The budget window in seconds (for the cost budget too). Default one day.
    pub token_budget_window_secs: u64,
    /// What a key may spend on its model calls per budget window, in the price table's
    /// currency (needs `models.prices`, and the chat model priced in it). Env
    /// `CATENA_COST_BUDGET`.
    pub cost_budget: Option<f64>,
    /// The largest request body in bytes (413 above it). Default 1 MiB.
    pub max_body_bytes: usize,
    /// Time limit for a whole non-streaming request, in seconds. Default 60.
    pub request_timeout_secs: u64,
    /// A stream that sends nothing for this long is ended with an error event. Default 60.
    pub stream_idle_timeout_secs: u64,
    /// Requests handled at once; more are refused with 503 at once. Default 64.
    pub max_concurrent_requests: usize,
    /// Requests one API key (or JWT subject) may have in flight at once, streams included;
    /// more get 429 at once, so one key cannot hold every slot of
    /// `max_concurrent_requests`. Default 16.
    pub max_concurrent_per_key: usize,
    /// Connections open at once; more wait in the kernel's accept queue. Default 1024.
    pub max_connections: usize,
    /// A connection that does not send a request's headers within this many seconds (from
    /// its start, or after its previous response) is closed. Default 10.
    pub header_read_timeout_secs: u64,
    /// A request body that does not arrive whole within this many seconds gets 408.
    /// Default 30.
    pub body_read_timeout_secs: u64,
    /// The longest a stream may last, in seconds; then it ends with an error event
    /// (`max_duration`). Default 900.
    pub stream_max_secs: u64,
    /// Failed authentications a client address may make per minute; past it, 429 before any
    /// key is checked. Default 30.
    pub auth_failures_per_minute: u32,
    /// A Redis (`redis://[:password@]host:port/[db]`) that holds the rate limits and token
    /// budgets, shared by every replica on it. Env `CATENA_REDIS_URL`. None: each process
    /// keeps its own in memory.
    pub redis_url: Option<SecretUrl>,
}

/// A URL that may carry a password: `Debug` never shows it.
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct SecretUrl(pub String);

impl std::fmt::Debug for SecretUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<url redacted>")
    }
}

/// Retrieval-augmented generation.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct RagConfig {
    /// Characters per chunk when ingesting. Default 600, which keeps English prose and code
    /// under the 256-token limit of the embedded default embedder (all-MiniLM-L6-v2).
    pub chunk_size: usize,
    /// Characters shared by neighbouring chunks. Default 80.
    pub chunk_overlap: usize,
    /// Chunks retrieved per question unless the request says. Default 4.
    pub k: usize,
    /// The answer length limit passed to the model. Default 256.
    pub max_answer_tokens: u32,
    /// The embedded store answers from an HNSW index (approximate nearest neighbours,
    /// candidates re-scored exactly) once it holds this many chunks; below it, and for a
    /// tenant with fewer chunks, searches scan every chunk exactly. Default 5,000: at 10,000
    /// chunks of 384 dimensions the graph took a question from 0.58 to 0.40 ms of gateway CPU
    /// (3,244 to 4,199 questions/s on 2 cores, p99 106 to 74 ms) for 32 MB more memory; at
    /// 100,000 chunks it is what keeps the gateway bound by its model. Recall@10 against the
    /// exact scan was 1.0 on clustered embeddings. `0` turns the index off. The graph is built in the background
    /// at start (about a minute at 100,000 chunks on 2 cores). Only the embedded store;
    /// Qdrant and pgvector keep their own indexes.
    pub hnsw_min_rows: usize,
    /// The precision the embedded store keeps its vectors in: `"f16"` (the default) takes
    /// half the memory of `"f32"` (7.7 MB less at 10,000 chunks of 384 dimensions); scores
    /// are then those of the vectors rounded to f16 (they differ from f32's in the fourth
    /// digit). An existing store written in f32 is rewritten rounded when an f16 gateway
    /// opens it (one way: back in `"f32"` it keeps the rounded values). Only the embedded
    /// store.
    pub vector_precision: VectorPrecision,
}

/// The agent service.
#[derive(Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct AgentConfig {
    /// Its gRPC endpoint, e.g. `http://127.0.0.1:50051`. Env `CATENA_AGENT_URL`. None: tasks
    /// are refused with 503.
    pub url: Option<String>,
    /// The deadline of a delegated task in seconds, unless the request asks for less. Default 120.
    pub task_timeout_secs: u64,
    /// Run tasks as durable runs (the agent service must keep checkpoints): `POST /v1/tasks`
    /// names the run first (`accepted` carries its `run_id`), every event has an SSE `id`,
    /// the run goes on when the client goes away, and `GET /v1/tasks/{id}` (status and
    /// events, resumable from `Last-Event-ID`), `POST /v1/tasks/{id}/approve`, `reject`,
    /// `cancel` and `resume` act on it, for the tenant that started it only. Env
    /// `CATENA_AGENT_DURABLE` (`on`/`off`). Default off: a task lives as long as its request.
    pub durable: bool,
    /// Durable runs that go on after their client went away, at most, per gateway; past it
    /// a run whose client leaves stops at its checkpoint until `POST /v1/tasks/{id}/resume`.
    /// Env `CATENA_AGENT_MAX_DETACHED`. Default 256.
    pub max_detached_runs: usize,
    /// The bearer token sent to the agent service with every task: only from the
    /// environment (`CATENA_AGENT_TOKEN`, the variable the agent services check), never from
    /// the file, never printed.
    #[serde(skip)]
    pub token: Option<String>,
}

impl std::fmt::Debug for AgentConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentConfig")
            .field("url", &self.url)
            .field("task_timeout_secs", &self.task_timeout_secs)
            .field("durable", &self.durable)
            .field("max_detached_runs", &self.max_detached_runs)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from(".catena/gateway"),
            auth: AuthConfig::default(),
            limits: LimitsConfig::default(),
            rag: RagConfig::default(),
            agent: AgentConfig::default(),
            models: ModelsConfig::default(),
        }
    }
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            requests_per_minute: 60,
            burst: 20,
            token_budget: None,
            token_budget_window_secs: 86_400,
            cost_budget: None,
            max_body_bytes: 1 << 20,
            request_timeout_secs: 60,
            stream_idle_timeout_secs: 60,
            max_concurrent_requests: 64,
            max_concurrent_per_key: 16,
            max_connections: 1024,
            header_read_timeout_secs: 10,
            body_read_timeout_secs: 30,
            stream_max_secs: 900,
            auth_failures_per_minute: 30,
            redis_url: None,
        }
    }
}

impl Default for RagConfig {
    fn default() -> Self {
        RagConfig {
            chunk_size: 600,
            chunk_overlap: 80,
            k: 4,
            max_answer_tokens: 256,
            hnsw_min_rows: 5_000,
            vector_precision: VectorPrecision::F16,
        }
    }
}

impl Default for AgentConfig {
    fn default() -> Self {
        AgentConfig {
            url: None,
            task_timeout_secs: 120,
            durable: false,
            max_detached_runs: 256,
            token: None,
        }
    }
}

impl Config {
    /// Parses a TOML document (missing keys take their defaults; unknown keys are errors).
    ///
    /// # Errors
    /// [`GatewayError::Config`] naming the bad key.
    pub fn from_toml_str(text: &str) -> Result<Self, GatewayError> {
        let config: Config =
            toml::from_str(text).map_err(|e| GatewayError::Config(format!("config file: {e}")))?;
        config.validate()?;
        Ok(config)
    }

    /// Reads `path` (when given), then applies the environment.
    ///
    /// # Errors
    /// [`GatewayError::Config`] for an unreadable file or a bad value.
    pub fn load(path: Option<&Path>) -> Result<Self, GatewayError> {
        let mut config = match path {
            Some(p) => {
                let text = std::fs::read_to_string(p).map_err(|e| {
                    GatewayError::Config(format!("cannot read {}: {e}", p.display()))
                })?;
                Self::from_toml_str(&text)?
            }
            None => Config::default(),
        };
        config.apply_env(|k| std::env::var(k).ok())?;
        config.validate()?;
        Ok(config)
    }

    /// The configuration a command line names: the file of `--config FILE` in `args`, else
    /// of `CATENA_GATEWAY_CONFIG`, else none; then the environment (see [`Config::load`]).
    ///
    /// # Errors
    /// [`GatewayError::Config`] for an unreadable file or a bad value.
    pub fn from_args(args: &[String]) -> Result<Self, GatewayError> {
        let flag = args
            .iter()
            .position(|a| a == "--config")
            .and_then(|i| args.get(i + 1));
        let path = flag
            .cloned()
            .or_else(|| std::env::var(CONFIG_FILE_ENV).ok());
        Self::load(path.map(PathBuf::from).as_deref())
    }

    /// Applies the `CATENA_*` variables read through `var`.
    ///
    /// # Errors
    /// [`GatewayError::Config`] naming a variable with a bad value.
    pub fn apply_env(&mut self, var: impl Fn(&str) -> Option<String>) -> Result<(), GatewayError> {
        fn parse<T: std::str::FromStr>(name: &str, value: &str) -> Result<T, GatewayError> {
            value
                .trim()
                .parse()
                .map_err(|_| GatewayError::Config(format!("{name}={value:?} is not valid")))
        }
        fn switch(name: &str, value: &str) -> Result<bool, GatewayError> {
            match value.trim() {
                "on" | "true" | "1" => Ok(true),
                "off" | "false" | "0" => Ok(false),
                _ => Err(GatewayError::Config(format!(
                    "{name}={value:?} is not valid (on or off)"
                ))),
            }
        }
        let get = |name: &str| var(name).filter(|v| !v.trim().is_empty());
        if let Some(v) = get("CATENA_GATEWAY_ADDR") {
            self.listen = parse("CATENA_GATEWAY_ADDR", &v)?;
        }
        if let Some(v) = get("CATENA_DATA_DIR") {
            self.data_dir = PathBuf::from(v);
        }
        if let Some(v) = get("CATENA_API_KEY_SHA256") {
            self.auth.api_key_sha256 = v
                .split(',')
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .collect();
        }
        if let Some(v) = get("CATENA_RATE_PER_MINUTE") {
            self.limits.requests_per_minute = parse("CATENA_RATE_PER_MINUTE", &v)?;
        }
        if let Some(v) = get("CATENA_TOKEN_BUDGET") {
            self.limits.token_budget = Some(parse("CATENA_TOKEN_BUDGET", &v)?);
        }
        if let Some(v) = get("CATENA_COST_BUDGET") {
            self.limits.cost_budget = Some(parse("CATENA_COST_BUDGET", &v)?);
        }
        if let Some(v) = get("CATENA_PRICE_TABLE") {
            self.models.prices = Some(PathBuf::from(v));
        }
        if let Some(v) = get("CATENA_MODEL_RPM") {
            self.models.requests_per_minute = Some(parse("CATENA_MODEL_RPM", &v)?);
        }
        if let Some(v) = get("CATENA_MODEL_TPM") {
            self.models.tokens_per_minute = Some(parse("CATENA_MODEL_TPM", &v)?);
        }
        if let Some(v) = get("CATENA_TELEMETRY") {
            self.models.telemetry = switch("CATENA_TELEMETRY", &v)?;
        }
        if let Some(v) = get("CATENA_AGENT_DURABLE") {
            self.agent.durable = switch("CATENA_AGENT_DURABLE", &v)?;
        }
        if let Some(v) = get("CATENA_AGENT_MAX_DETACHED") {
            self.agent.max_detached_runs = parse("CATENA_AGENT_MAX_DETACHED", &v)?;
        }
        if let Some(v) = get("CATENA_AGENT_URL") {
            self.agent.url = Some(v);
        }
        if let Some(v) = get("CATENA_REDIS_URL") {
            self.limits.redis_url = Some(SecretUrl(v.trim().to_owned()));
        }
        if let Some(v) = get("CATENA_AGENT_TOKEN") {
            self.agent.token = Some(v.trim().to_owned());
        }
        if let Some(jwt) = self.auth.jwt.as_mut() {
            if let Some(secret) = var("CATENA_JWT_SECRET").filter(|v| !v.is_empty()) {
                jwt.secret = Some(secret);
            }
        }
        Ok(())
    }

    /// Checks the values that have rules.
    ///
    /// # Errors
    /// [`GatewayError::Config`] naming the bad value.
    pub fn validate(&self) -> Result<(), GatewayError> {
        let bad = |m: &str| Err(GatewayError::Config(m.to_owned()));
        if self.limits.requests_per_minute == 0 {
            return bad("limits.requests_per_minute must be at least 1");
        }
        let l = &self.limits;
        for (name, value) in [
            ("max_concurrent_requests", l.max_concurrent_requests as u64),
            ("max_concurrent_per_key", l.max_concurrent_per_key as u64),
            ("max_connections", l.max_connections as u64),
            ("header_read_timeout_secs", l.header_read_timeout_secs),
            ("body_read_timeout_secs", l.body_read_timeout_secs),
            ("stream_max_secs", l.stream_max_secs),
            (
                "auth_failures_per_minute",
                u64::from(l.auth_failures_per_minute),
            ),
        ] {
            if value == 0 {
                return Err(GatewayError::Config(format!(
                    "limits.{name} must be at least 1"
                )));
            }
        }
        if self.rag.chunk_size == 0 || self.rag.chunk_overlap >= self.rag.chunk_size {
            return bad("rag.chunk_size must be positive and larger than rag.chunk_overlap");
        }
        if self.rag.k == 0 {
            return bad("rag.k must be at least 1");
        }
        if let Some(budget) = self.limits.cost_budget {
            if !budget.is_finite() || budget <= 0.0 {
                return bad("limits.cost_budget must be a positive amount");
            }
            if self.models.prices.is_none() {
                return bad("limits.cost_budget needs a price table (models.prices)");
            }
        }
        let m = &self.models;
        if m.requests_per_minute == Some(0)
            || m.tokens_per_minute == Some(0)
            || m.max_concurrency == Some(0)
            || m.breaker_failures == Some(0)
        {
            return bad("models limits must be at least 1 (leave one out for none)");
        }
        for h in &self.auth.api_key_sha256 {
            if h.len() != 64 || !h.bytes().all(|b| b.is_ascii_hexdigit()) {
                return bad("auth.api_key_sha256 entries must be 64 hex digits (a SHA-256)");
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_overrides_file_and_bad_values_are_named() {
        let mut c = Config::from_toml_str("[limits]\nrequests_per_minute = 5").unwrap();
        c.apply_env(|k| (k == "CATENA_RATE_PER_MINUTE").then(|| "7".to_owned()))
            .unwrap();
        assert_eq!(c.limits.requests_per_minute, 7);
        let err = c
            .apply_env(|k| (k == "CATENA_GATEWAY_ADDR").then(|| "nowhere".to_owned()))
            .unwrap_err();
        assert!(err.to_string().contains("CATENA_GATEWAY_ADDR"), "{err}");
    }

    #[test]
    fn the_embedded_store_keeps_f16_vectors_unless_told() {
        assert_eq!(Config::default().rag.vector_precision, VectorPrecision::F16);
        let c = Config::from_toml_str("[rag]\nvector_precision = \"f32\"").unwrap();
        assert_eq!(c.rag.vector_precision, VectorPrecision::F32);
        let err = Config::from_toml_str("[rag]\nvector_precision = \"f8\"").unwrap_err();
        assert!(err.to_string().contains("f8"), "{err}");
    }

    #[test]
    fn unknown_keys_and_bad_hashes_are_refused() {
        assert!(Config::from_toml_str("lisen = \"x\"").is_err());
        let err = Config::from_toml_str("[auth]\napi_key_sha256 = [\"abc\"]").unwrap_err();
        assert!(err.to_string().contains("64 hex"), "{err}");
    }
}
