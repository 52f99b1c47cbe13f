//! The Gemini embedder: `:batchEmbedContents` / `:embedContent` on the Gemini API,
//! `:predict` on Vertex AI.

use async_trait::async_trait;
use catena_core::{Embedder, Embedding, Error, ProviderErrorKind, Result};

use super::client::{client_setters, model_id, ClientConfig, GeminiClient, GEMINI_EMBED_MODEL_ENV};
use super::wire::{
    BatchEmbedBody, BatchEmbedReply, EmbedContent, EmbedPart, EmbedReply, EmbedRequest,
    PredictBody, PredictInstance, PredictParameters, PredictReply,
};
use crate::http::provider_error;

/// The embedding model used when none is set.
pub const DEFAULT_EMBED_MODEL: &str = "gemini-embedding-001";
/// The most texts one `batchEmbedContents` request may carry (the Gemini API's limit).
pub const GEMINI_API_MAX_BATCH: usize = 100;
/// The most texts one Vertex AI `:predict` request may carry (Vertex AI's limit for
/// `text-embedding-*` models; `gemini-embedding-001` takes one text per request there).
pub const VERTEX_MAX_BATCH: usize = 250;

const DOCUMENT: &str = "RETRIEVAL_DOCUMENT";
const QUERY: &str = "RETRIEVAL_QUERY";

/// Vector sizes of Google's embedding models, used when `output_dimensionality` is not set.
fn known_dimensions(model: &str) -> Option<usize> {
    match model_id(model) {
        "gemini-embedding-001" => Some(3072),
        "text-embedding-004" | "text-embedding-005" | "text-multilingual-embedding-002" => {
            Some(768)
        }
        _ => None,
    }
}

/// An [`Embedder`] backed by Gemini embeddings (Gemini API or Vertex AI).
///
/// Documents are embedded with task type `RETRIEVAL_DOCUMENT` and queries
/// ([`embed_query`](Embedder::embed_query)) with `RETRIEVAL_QUERY`, as Google recommends for
/// retrieval. Texts go in batches (see [`batch_size`](GeminiEmbedderBuilder::batch_size));
/// vectors come back in input order, and their count and length are checked.
#[derive(Debug, Clone)]
pub struct GeminiEmbedder {
    client: GeminiClient,
    model: String,
    dimensions: usize,
    request_dimensions: bool,
    batch_size: usize,
}

/// Configures a [`GeminiEmbedder`].
#[derive(Debug, Clone, Default)]
#[must_use]
pub struct GeminiEmbedderBuilder {
    config: ClientConfig,
    model: Option<String>,
    dimensions: Option<usize>,
    batch_size: Option<usize>,
}

impl GeminiEmbedderBuilder {
    client_setters!();

    /// The embedding model. Default `gemini-embedding-001`.
    pub fn model(mut self, model: impl Into<String>) -> Self {
        self.model = Some(model.into());
        self
    }

    /// Asks for vectors of `n` dimensions (`outputDimensionality`; `gemini-embedding-001`
    /// recommends 768, 1536 or 3072). Required for models Catena does not know. Default: the
    /// model's full size (3072 for `gemini-embedding-001`, 768 for `text-embedding-004/005`).
    pub fn output_dimensionality(mut self, n: usize) -> Self {
        self.dimensions = Some(n);
        self
    }

    /// Texts per request. Default and maximum: 100 on the Gemini API; on Vertex AI 250,
    /// except 1 for `gemini-embedding-*` models.
    pub fn batch_size(mut self, n: usize) -> Self {
        self.batch_size = Some(n);
        self
    }

    /// Builds the embedder.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] for an unknown model without `output_dimensionality`, a
    /// batch size of 0 or above the API's limit, and as for
    /// [`GeminiChatModelBuilder::build`](super::GeminiChatModelBuilder::build).
    pub fn build(self) -> Result<GeminiEmbedder> {
        let model = self.model.unwrap_or_else(|| DEFAULT_EMBED_MODEL.to_owned());
        if model.trim().is_empty() {
            return Err(Error::invalid_config("the model name must not be empty"));
        }
        let request_dimensions = self.dimensions.is_some();
        let dimensions = self.dimensions.or_else(|| known_dimensions(&model)).ok_or_else(|| {
            Error::invalid_config(format!(
                "the vector size of embedding model `{model}` is not known; set `output_dimensionality`"
            ))
        })?;
        if dimensions == 0 {
            return Err(Error::invalid_config(
                "output_dimensionality must be at least 1",
            ));
        }
        let client = self.config.build()?;
        let (limit, default) = if client.is_vertex() {
            let default = if model_id(&model).starts_with("gemini-embedding") {
                1
            } else {
                VERTEX_MAX_BATCH
            };
            (VERTEX_MAX_BATCH, default)
        } else {
            (GEMINI_API_MAX_BATCH, GEMINI_API_MAX_BATCH)
        };
        let batch_size = self.batch_size.unwrap_or(default);
        if batch_size == 0 || batch_size > limit {
            return Err(Error::invalid_config(format!(
                "batch_size must be within 1..={limit}"
            )));
        }
        Ok(GeminiEmbedder {
            client,
            model,
            dimensions,
            request_dimensions,
            batch_size,
        })
    }
}

impl GeminiEmbedder {
    /// Configures an embedder.
    pub fn builder() -> GeminiEmbedderBuilder {
        GeminiEmbedderBuilder::default()
    }

    /// A Gemini API embedder with the key from `GEMINI_API_KEY` (else `GOOGLE_API_KEY`) and
    /// the model from `GEMINI_EMBED_MODEL` (default `gemini-embedding-001`).
    ///
    /// # Errors
    /// As for [`GeminiEmbedderBuilder::build`].
    pub fn from_env() -> Result<Self> {
        let mut b = Self::builder();
        if let Some(key) = ClientConfig::api_key_from_env() {
            b = b.api_key(key);
        }
        if let Ok(m) = std::env::var(GEMINI_EMBED_MODEL_ENV) {
            b = b.model(m);
        }
        b.build()
    }

    /// A Vertex AI embedder in `GOOGLE_CLOUD_PROJECT` / `GOOGLE_CLOUD_LOCATION` (default
    /// `us-central1`) with Application Default Credentials and the model from
    /// `GEMINI_EMBED_MODEL`.
    ///
    /// # Errors
    /// As for [`GeminiEmbedderBuilder::build`], and when the project is not set.
    pub fn vertex_from_env() -> Result<Self> {
        let (project, location) = ClientConfig::vertex_from_env()?;
        let mut b = Self::builder().vertex(project, location);
        if let Ok(m) = std::env::var(GEMINI_EMBED_MODEL_ENV) {
            b = b.model(m);
        }
        b.build()
    }

    fn requested_dimensions(&self) -> Option<usize> {
        self.request_dimensions.then_some(self.dimensions)
    }

    fn malformed(&self, message: String) -> Error {
        provider_error(
            self.client.provider(),
            ProviderErrorKind::MalformedResponse,
            message,
        )
    }

    fn check(&self, sent: usize, vectors: Vec<Embedding>) -> Result<Vec<Embedding>> {
        if vectors.len() != sent {
            return Err(self.malformed(format!(
                "sent {sent} texts, got {} embeddings",
                vectors.len()
            )));
        }
        if let Some((i, v)) = vectors
            .iter()
            .enumerate()
            .find(|(_, v)| v.len() != self.dimensions)
        {
            return Err(self.malformed(format!(
                "embedding {i} has {} dimensions, expected {}",
                v.len(),
                self.dimensions
            )));
        }
        Ok(vectors)
    }

    async fn embed_batch(&self, batch: &[&str], task_type: &'static str) -> Result<Vec<Embedding>> {
        let vectors = if self.client.is_vertex() {
            let body = PredictBody {
                instances: batch
                    .iter()
                    .map(|t| PredictInstance {
                        content: t,
                        task_type,
                    })
                    .collect(),
                parameters: PredictParameters {
                    output_dimensionality: self.requested_dimensions(),
                },
            };
            let reply: PredictReply = self
                .client
                .post_json(&self.client.url(&self.model, "predict"), &body)
                .await?;
            reply
                .predictions
                .into_iter()
                .map(|p| p.embeddings.values)
                .collect()
        } else if task_type == QUERY && batch.len() == 1 {
            let body = EmbedRequest {
                model: None,
                content: EmbedContent {
                    parts: [EmbedPart { text: batch[0] }],
                },
                task_type,
                output_dimensionality: self.requested_dimensions(),
            };
            let reply: EmbedReply = self
                .client
                .post_json(&self.client.url(&self.model, "embedContent"), &body)
                .await?;
            vec![reply.embedding.values]
        } else {
            let resource = format!("models/{}", model_id(&self.model));
            let body = BatchEmbedBody {
                requests: batch
                    .iter()
                    .map(|t| EmbedRequest {
                        model: Some(resource.clone()),
                        content: EmbedContent {
                            parts: [EmbedPart { text: t }],
                        },
                        task_type,
                        output_dimensionality: self.requested_dimensions(),
                    })
                    .collect(),
            };
            let reply: BatchEmbedReply = self
                .client
                .post_json(&self.client.url(&self.model, "batchEmbedContents"), &body)
                .await?;
            reply.embeddings.into_iter().map(|e| e.values).collect()
        };
        self.check(batch.len(), vectors)
    }
}

#[async_trait]
impl Embedder for GeminiEmbedder {
    async fn embed_documents(&self, texts: &[String]) -> Result<Vec<Embedding>> {
        let mut out = Vec::with_capacity(texts.len());
        for batch in texts.chunks(self.batch_size) {
            let batch: Vec<&str> = batch.iter().map(String::as_str).collect();
            out.extend(self.embed_batch(&batch, DOCUMENT).await?);
        }
        Ok(out)
    }

    async fn embed_query(&self, text: &str) -> Result<Embedding> {
        let mut v = self.embed_batch(&[text], QUERY).await?;
        v.pop()
            .ok_or_else(|| self.malformed("no embedding for the query".into()))
    }

    fn dimensions(&self) -> usize {
        self.dimensions
    }
}
