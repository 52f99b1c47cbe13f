//! The Ollama embedder (`POST /api/embed`).

use async_trait::async_trait;
use catena_core::{Embedder, Embedding, Error, ProviderErrorKind, Result};

use super::client::{host_from_env, OllamaClient, OLLAMA_EMBED_MODEL_ENV};
use super::wire::{EmbedBody, EmbedReply};
use crate::http::{provider_error, HttpOptions};

/// Embedding sizes of common Ollama embedding models, used when `dimensions` is not set.
fn known_dimensions(model: &str) -> Option<usize> {
    let base = model.split(':').next().unwrap_or(model);
    match base {
        "nomic-embed-text" => Some(768),
        "mxbai-embed-large" => Some(1024),
        "all-minilm" => Some(384),
        "snowflake-arctic-embed" => Some(1024),
        "bge-m3" => Some(1024),
        _ => None,
    }
}

/// An [`Embedder`] backed by Ollama's `/api/embed`.
///
/// Texts are sent in batches of [`batch_size`](OllamaEmbedderBuilder::batch_size); the
/// vectors come back in input order, and each is checked against
/// [`dimensions`](Embedder::dimensions).
#[derive(Debug, Clone)]
pub struct OllamaEmbedder {
    client: OllamaClient,
    model: String,
    dimensions: usize,
    request_dimensions: bool,
    batch_size: usize,
    truncate: Option<bool>,
}

/// Configures an [`OllamaEmbedder`].
#[derive(Debug, Clone, Default)]
#[must_use]
pub struct OllamaEmbedderBuilder {
    host: Option<String>,
    model: Option<String>,
    dimensions: Option<usize>,
    batch_size: Option<usize>,
    truncate: Option<bool>,
    keep_alive: Option<String>,
    http: HttpOptions,
}

impl OllamaEmbedderBuilder {
    /// The server: `host:port` or a URL. Default `http://127.0.0.1:11434`.
    pub fn host(mut self, host: impl Into<String>) -> Self {
        self.host = Some(host.into());
        self
    }

    /// The embedding model. Default `nomic-embed-text`.
    pub fn model(mut self, model: impl Into<String>) -> Self {
        self.model = Some(model.into());
        self
    }

    /// The vector size. Required for models Catena does not know; when set it is also sent
    /// as `dimensions` so models that can shorten their vectors do. Default: the model's
    /// known size.
    pub fn dimensions(mut self, n: usize) -> Self {
        self.dimensions = Some(n);
        self
    }

    /// Texts per request. Default 256.
    pub fn batch_size(mut self, n: usize) -> Self {
        self.batch_size = Some(n);
        self
    }

    /// Whether the server may truncate inputs longer than the model's context (`false`
    /// makes them an error). Default: the server's (truncate).
    pub fn truncate(mut self, yes: bool) -> Self {
        self.truncate = Some(yes);
        self
    }

    /// How long the server keeps the model loaded (`"5m"`, `"-1"`). Default: the server's.
    pub fn keep_alive(mut self, d: impl Into<String>) -> Self {
        self.keep_alive = Some(d.into());
        self
    }

    /// HTTP settings. Default [`HttpOptions::default`].
    pub fn http(mut self, http: HttpOptions) -> Self {
        self.http = http;
        self
    }

    /// Builds the embedder.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] for an unknown model without `dimensions`, a zero batch size
    /// or a bad host.
    pub fn build(self) -> Result<OllamaEmbedder> {
        let model = self.model.unwrap_or_else(|| "nomic-embed-text".to_owned());
        let request_dimensions = self.dimensions.is_some();
        let dimensions = self
            .dimensions
            .or_else(|| known_dimensions(&model))
            .ok_or_else(|| {
                Error::invalid_config(format!(
                    "the vector size of Ollama model `{model}` is not known; set `dimensions`"
                ))
            })?;
        if dimensions == 0 {
            return Err(Error::invalid_config("dimensions must be at least 1"));
        }
        let batch_size = self.batch_size.unwrap_or(256);
        if batch_size == 0 {
            return Err(Error::invalid_config("batch_size must be at least 1"));
        }
        let host = self.host.unwrap_or_else(host_from_env);
        Ok(OllamaEmbedder {
            client: OllamaClient::new(&host, self.http, self.keep_alive)?,
            model,
            dimensions,
            request_dimensions,
            batch_size,
            truncate: self.truncate,
        })
    }
}

impl OllamaEmbedder {
    /// Configures an embedder.
    pub fn builder() -> OllamaEmbedderBuilder {
        OllamaEmbedderBuilder::default()
    }

    /// An embedder from `OLLAMA_HOST` and `OLLAMA_EMBED_MODEL` (default `nomic-embed-text`).
    ///
    /// # Errors
    /// As for [`OllamaEmbedderBuilder::build`].
    pub fn from_env() -> Result<Self> {
        let mut b = Self::builder();
        if let Ok(m) = std::env::var(OLLAMA_EMBED_MODEL_ENV) {
            b = b.model(m);
        }
        b.build()
    }

    async fn embed_batch(&self, batch: &[String]) -> Result<Vec<Embedding>> {
        let body = EmbedBody {
            model: &self.model,
            input: batch,
            truncate: self.truncate,
            dimensions: self.request_dimensions.then_some(self.dimensions),
            keep_alive: self.client.keep_alive.as_deref(),
        };
        let url = self.client.url("/api/embed");
        let reply: EmbedReply = self
            .client
            .transport
            .json(|| self.client.transport.client.post(&url).json(&body))
            .await?;
        if reply.embeddings.len() != batch.len() {
            return Err(provider_error(
                "ollama",
                ProviderErrorKind::MalformedResponse,
                format!(
                    "sent {} texts, got {} embeddings",
                    batch.len(),
                    reply.embeddings.len()
                ),
            ));
        }
        if let Some((i, v)) = reply
            .embeddings
            .iter()
            .enumerate()
            .find(|(_, v)| v.len() != self.dimensions)
        {
            return Err(provider_error(
                "ollama",
                ProviderErrorKind::MalformedResponse,
                format!(
                    "embedding {i} has {} dimensions, expected {}",
                    v.len(),
                    self.dimensions
                ),
            ));
        }
        Ok(reply.embeddings)
    }
}

#[async_trait]
impl Embedder for OllamaEmbedder {
    async fn embed_documents(&self, texts: &[String]) -> Result<Vec<Embedding>> {
        let mut out = Vec::with_capacity(texts.len());
        for batch in texts.chunks(self.batch_size) {
            out.extend(self.embed_batch(batch).await?);
        }
        Ok(out)
    }

    fn dimensions(&self) -> usize {
        self.dimensions
    }
}
