//! [`OpenAiEmbedder`]: Embeddings (`POST {base}/embeddings`).

use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use catena_core::{Embedder, Embedding, Error, ProviderErrorKind, Result};

use super::client::{process_env, ConnectionConfig, OpenAiClient, EMBEDDING_MODEL_ENV, PROVIDER};
use super::wire::{EmbeddingRequest, EmbeddingResponse, EmbeddingVector};
use crate::http::provider_error;

/// The embedding model used when none is set: `text-embedding-3-small`.
pub const DEFAULT_EMBEDDING_MODEL: &str = "text-embedding-3-small";

/// Texts per request when not set: 2048, OpenAI's limit.
pub const DEFAULT_EMBEDDING_BATCH_SIZE: usize = 2048;

const PATH: &str = "/embeddings";

/// The vector length of OpenAI's embedding models at their full size.
fn native_dimensions(model: &str) -> Option<usize> {
    match model {
        "text-embedding-3-small" | "text-embedding-ada-002" => Some(1536),
        "text-embedding-3-large" => Some(3072),
        _ => None,
    }
}

/// OpenAI embeddings (or those of any OpenAI-compatible server).
///
/// Any number of texts may be passed: they are sent in batches of
/// [`batch_size`](OpenAiEmbedderBuilder::batch_size), one request after the other, and the
/// vectors come back in input order (by each item's `index`).
///
/// [`dimensions()`](Embedder::dimensions) is the configured
/// [`dimensions`](OpenAiEmbedderBuilder::dimensions), else the model's native size
/// (`text-embedding-3-small` and `text-embedding-ada-002`: 1536; `text-embedding-3-large`:
/// 3072). For any other model (on a compatible server) it is learned from the first
/// response, and is **0 until then**: call [`probe_dimensions`](Self::probe_dimensions)
/// first where the length must be known up front (creating a vector collection). Once
/// known, every vector is checked against it; clones share what was learned.
///
/// A server that answers one vector per token (llama.cpp run with `--pooling none`) gets an
/// error that says so rather than a parse error.
///
/// ```no_run
/// use catena_core::Embedder;
/// use catena_llms::openai::OpenAiEmbedder;
///
/// # async fn run() -> catena_core::Result<()> {
/// let embedder = OpenAiEmbedder::builder()
///     .api_key("sk-...")
///     .model("text-embedding-3-large")
///     .dimensions(Some(256))
///     .build()?;
/// let vectors = embedder.embed_documents(&["a cat".to_string()]).await?;
/// assert_eq!(vectors[0].len(), 256);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct OpenAiEmbedder {
    client: OpenAiClient,
    model: String,
    requested_dimensions: Option<u32>,
    /// The vector length; 0 until learned from the first response.
    dimensions: Arc<AtomicUsize>,
    batch_size: usize,
    max_request_tokens: usize,
}

impl fmt::Debug for OpenAiEmbedder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenAiEmbedder")
            .field("model", &self.model)
            .field("dimensions", &self.dimensions.load(Ordering::Relaxed))
            .field("batch_size", &self.batch_size)
            .field("max_request_tokens", &self.max_request_tokens)
            .field("client", &self.client)
            .finish()
    }
}

/// Builds an [`OpenAiEmbedder`]; see [`OpenAiEmbedder::builder`].
#[derive(Clone)]
#[must_use]
pub struct OpenAiEmbedderBuilder {
    connection: ConnectionConfig,
    model: Option<String>,
    dimensions: Option<u32>,
    batch_size: usize,
    max_request_tokens: usize,
}

impl Default for OpenAiEmbedderBuilder {
    fn default() -> Self {
        OpenAiEmbedderBuilder {
            connection: ConnectionConfig::default(),
            model: None,
            dimensions: None,
            batch_size: DEFAULT_EMBEDDING_BATCH_SIZE,
            max_request_tokens: MAX_REQUEST_TOKENS,
        }
    }
}

impl fmt::Debug for OpenAiEmbedderBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenAiEmbedderBuilder")
            .field("model", &self.model)
            .field("dimensions", &self.dimensions)
            .field("batch_size", &self.batch_size)
            .field("connection", &self.connection)
            .finish()
    }
}

impl OpenAiEmbedderBuilder {
    /// The model id. Default [`DEFAULT_EMBEDDING_MODEL`] (`text-embedding-3-small`).
    pub fn model(mut self, model: impl Into<String>) -> Self {
        self.model = Some(model.into());
        self
    }

    super::client::connection_setters!();

    /// The vector length to ask for, sent as `dimensions` when set (the
    /// `text-embedding-3-*` models shorten their vectors to it; most compatible servers
    /// ignore or reject the field). Default `None`: not sent, and the model's native size
    /// is used: known for OpenAI's models, learned from the first response for others.
    pub fn dimensions(mut self, dimensions: Option<u32>) -> Self {
        self.dimensions = dimensions;
        self
    }

    /// Texts per request. Default [`DEFAULT_EMBEDDING_BATCH_SIZE`] (2048, OpenAI's limit);
    /// lower it for servers with smaller limits. Must be at least 1.
    pub fn batch_size(mut self, n: usize) -> Self {
        self.batch_size = n;
        self
    }

    /// Tokens per request, summed over its texts, for OpenAI's own `text-embedding-*`
    /// models (counted with `cl100k_base`). Default [`MAX_REQUEST_TOKENS`] (300,000,
    /// OpenAI's limit). Must be at least [`MAX_INPUT_TOKENS`].
    pub fn max_request_tokens(mut self, n: usize) -> Self {
        self.max_request_tokens = n;
        self
    }

    /// Builds the embedder.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] for a missing key (with OpenAI's own base URL), an invalid
    /// base URL, or a batch size or `dimensions` of zero.
    pub fn build(self) -> Result<OpenAiEmbedder> {
        let model = self
            .model
            .unwrap_or_else(|| DEFAULT_EMBEDDING_MODEL.to_owned());
        if model.trim().is_empty() {
            return Err(Error::invalid_config(
                "the OpenAI embedding model id is empty",
            ));
        }
        if self.batch_size == 0 {
            return Err(Error::invalid_config(
                "the embedding batch size must be at least 1",
            ));
        }
        if self.max_request_tokens < MAX_INPUT_TOKENS {
            return Err(Error::invalid_config(format!(
                "max_request_tokens must be at least {MAX_INPUT_TOKENS} (one full input)"
            )));
        }
        let dimensions = match self.dimensions {
            Some(0) => {
                return Err(Error::invalid_config(
                    "embedding dimensions must be at least 1",
                ))
            }
            Some(n) => usize::try_from(n)
                .map_err(|_| Error::invalid_config("embedding dimensions are too large"))?,
            // Unknown: learned from the first response.
            None => native_dimensions(&model).unwrap_or(0),
        };
        Ok(OpenAiEmbedder {
            client: OpenAiClient::new(self.connection)?,
            model,
            requested_dimensions: self.dimensions,
            dimensions: Arc::new(AtomicUsize::new(dimensions)),
            batch_size: self.batch_size,
            max_request_tokens: self.max_request_tokens,
        })
    }

    fn apply_env(mut self, get: &dyn Fn(&str) -> Option<String>) -> Self {
        self.connection.apply_env(get);
        if let Some(m) = get(EMBEDDING_MODEL_ENV).filter(|m| !m.trim().is_empty()) {
            self.model = Some(m.trim().to_owned());
        }
        self
    }
}

impl OpenAiEmbedder {
    /// A builder with every setting at its default.
    pub fn builder() -> OpenAiEmbedderBuilder {
        OpenAiEmbedderBuilder::default()
    }

    /// An embedder configured from the environment: [`API_KEY_ENV`](super::API_KEY_ENV)
    /// (required for `api.openai.com`), [`BASE_URL_ENV`](super::BASE_URL_ENV),
    /// [`ORG_ID_ENV`](super::ORG_ID_ENV), [`PROJECT_ID_ENV`](super::PROJECT_ID_ENV) and
    /// [`EMBEDDING_MODEL_ENV`](super::EMBEDDING_MODEL_ENV); unset or empty variables keep
    /// the defaults.
    ///
    /// # Errors
    /// As for [`OpenAiEmbedderBuilder::build`].
    pub fn from_env() -> Result<Self> {
        Self::builder().apply_env(&process_env).build()
    }

    /// The model id.
    pub fn model(&self) -> &str {
        &self.model
    }

    /// The vector length, embedding a short probe text to learn it when no response has
    /// told it yet (models other than OpenAI's own, without
    /// [`dimensions`](OpenAiEmbedderBuilder::dimensions)). Costs one request at most once.
    ///
    /// # Errors
    /// As for [`embed_query`](Embedder::embed_query).
    pub async fn probe_dimensions(&self) -> Result<usize> {
        let known = self.dimensions.load(Ordering::Acquire);
        if known > 0 {
            return Ok(known);
        }
        Ok(self.embed_query("dimension probe").await?.len())
    }

    /// Checks a vector's length against the known one, or learns it from the first.
    fn check_length(&self, index: usize, len: usize) -> Result<()> {
        if len == 0 {
            return Err(malformed(format!("embedding {index} is empty")));
        }
        let expected =
            match self
                .dimensions
                .compare_exchange(0, len, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return Ok(()),
                Err(known) => known,
            };
        if len != expected {
            return Err(malformed(format!(
                "embedding {index} has {len} dimensions, expected {expected}"
            )));
        }
        Ok(())
    }

    async fn embed_batch(&self, texts: &[String]) -> Result<Vec<Embedding>> {
        let body = EmbeddingRequest {
            model: &self.model,
            input: texts,
            encoding_format: "float",
            dimensions: self.requested_dimensions,
        };
        let response: EmbeddingResponse = self.client.post_json(PATH, &body).await?;
        let items = response.data.unwrap_or_default();
        if items.len() != texts.len() {
            return Err(malformed(format!(
                "sent {} texts, received {} embeddings",
                texts.len(),
                items.len()
            )));
        }
        let mut slots: Vec<Option<Embedding>> = vec![None; texts.len()];
        for (position, item) in items.into_iter().enumerate() {
            let index = item.index.unwrap_or(position);
            let embedding = match item.embedding {
                EmbeddingVector::Pooled(v) => v,
                EmbeddingVector::PerToken(tokens) => {
                    return Err(malformed(format!(
                        "embedding {index} is {} vectors, not one: the server returned one vector per token (pooling none?); use a pooled embedding model or --pooling mean",
                        tokens.len()
                    )))
                }
            };
            match slots.get_mut(index) {
                Some(slot @ None) => *slot = Some(embedding),
                Some(Some(_)) => {
                    return Err(malformed(format!("embedding index {index} appears twice")))
                }
                None => {
                    return Err(malformed(format!(
                        "embedding index {index} is out of range"
                    )))
                }
            }
        }
        // Every slot is filled: as many items as slots, each index used once.
        let vectors: Vec<Embedding> = slots.into_iter().flatten().collect();
        // The whole response agrees on one length before it is learned or compared: one
        // malformed answer must not fix a wrong length for every later call.
        if let Some(first) = vectors.first() {
            if let Some((i, v)) = vectors
                .iter()
                .enumerate()
                .find(|(_, v)| v.len() != first.len())
            {
                return Err(malformed(format!(
                    "embedding {i} has {} dimensions, embedding 0 has {}",
                    v.len(),
                    first.len()
                )));
            }
            self.check_length(0, first.len())?;
        }
        Ok(vectors)
    }
}

fn malformed(message: String) -> Error {
    provider_error(PROVIDER, ProviderErrorKind::MalformedResponse, message)
}

/// OpenAI's per-input limit for its embedding models, in tokens.
pub const MAX_INPUT_TOKENS: usize = 8191;
/// OpenAI's per-request limit for the embeddings endpoint, in tokens summed over inputs.
pub const MAX_REQUEST_TOKENS: usize = 300_000;

impl OpenAiEmbedder {
    /// Whether the model is one of OpenAI's own (tokenised with `cl100k_base`), whose token
    /// limits are known; other models on compatible servers are batched by count only.
    fn has_known_token_limits(&self) -> bool {
        self.model.starts_with("text-embedding-")
    }

    /// Splits `texts` into requests of at most `batch_size` texts and, for OpenAI's own
    /// models, at most `max_request_tokens` tokens; an input over [`MAX_INPUT_TOKENS`] is an
    /// error rather than silently truncated.
    fn batches<'a>(&self, texts: &'a [String]) -> Result<Vec<&'a [String]>> {
        if !self.has_known_token_limits() {
            return Ok(texts.chunks(self.batch_size).collect());
        }
        let mut batches = Vec::new();
        let (mut start, mut tokens) = (0usize, 0usize);
        for (i, text) in texts.iter().enumerate() {
            let n = catena_core::count_tokens(catena_core::TokenEncoding::Cl100kBase, text);
            if n > MAX_INPUT_TOKENS {
                return Err(Error::invalid_input(format!(
                    "text {i} has {n} tokens; `{}` takes at most {MAX_INPUT_TOKENS} (split it first)",
                    self.model
                )));
            }
            if i > start && (i - start == self.batch_size || tokens + n > self.max_request_tokens) {
                batches.push(&texts[start..i]);
                start = i;
                tokens = 0;
            }
            tokens += n;
        }
        if start < texts.len() {
            batches.push(&texts[start..]);
        }
        Ok(batches)
    }
}

#[async_trait]
impl Embedder for OpenAiEmbedder {
    async fn embed_documents(&self, texts: &[String]) -> Result<Vec<Embedding>> {
        if let Some(i) = texts.iter().position(|t| t.is_empty()) {
            // OpenAI rejects the whole request for one empty string.
            return Err(Error::invalid_input(format!(
                "text {i} is empty; OpenAI cannot embed empty strings"
            )));
        }
        let mut out = Vec::with_capacity(texts.len());
        for batch in self.batches(texts)? {
            tracing::debug!(provider = PROVIDER, model = %self.model, texts = batch.len(), "embeddings");
            out.extend(self.embed_batch(batch).await?);
        }
        Ok(out)
    }

    /// The vector length; 0 until the first response for a model whose length is not
    /// known up front (see [`OpenAiEmbedder::probe_dimensions`]).
    fn dimensions(&self) -> usize {
        self.dimensions.load(Ordering::Acquire)
    }
}
