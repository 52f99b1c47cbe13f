//! Dropping retrieved documents a judge finds irrelevant.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use catena_core::backend::cosine_similarity;
use catena_core::prompt::PromptTemplate;
use catena_core::{
    ChatModel, ChatRequest, Document, Embedder, Error, Message, Result, Retriever, ScoredDocument,
};

/// Filters (or rewrites) retrieved documents for a query.
#[async_trait]
pub trait DocumentCompressor: Send + Sync {
    /// The documents worth keeping, in their order.
    ///
    /// # Errors
    /// Failures of the judge.
    async fn compress(&self, documents: Vec<Document>, query: &str) -> Result<Vec<Document>>;
}

/// Keeps documents whose embedding is similar enough to the query's (LangChain's
/// `EmbeddingsFilter`).
#[derive(Clone)]
pub struct EmbeddingsFilter {
    embedder: Arc<dyn Embedder>,
    threshold: f32,
}

impl fmt::Debug for EmbeddingsFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmbeddingsFilter")
            .field("threshold", &self.threshold)
            .finish_non_exhaustive()
    }
}

impl EmbeddingsFilter {
    /// Keeps documents with cosine similarity to the query of at least `threshold`.
    pub fn new(embedder: Arc<dyn Embedder>, threshold: f32) -> Self {
        EmbeddingsFilter {
            embedder,
            threshold,
        }
    }
}

#[async_trait]
impl DocumentCompressor for EmbeddingsFilter {
    async fn compress(&self, documents: Vec<Document>, query: &str) -> Result<Vec<Document>> {
        if documents.is_empty() {
            return Ok(documents);
        }
        let q = self.embedder.embed_query(query).await?;
        let texts: Vec<String> = documents.iter().map(|d| d.content.clone()).collect();
        let vectors = self.embedder.embed_documents(&texts).await?;
        if vectors.len() != documents.len() {
            return Err(Error::other("embedder returned a wrong number of vectors"));
        }
        Ok(documents
            .into_iter()
            .zip(vectors)
            .filter(|(_, v)| cosine_similarity(&q, v) >= self.threshold)
            .map(|(d, _)| d)
            .collect())
    }
}

/// LangChain's `LLMChainFilter` prompt.
pub const LLM_FILTER_PROMPT: &str = "Given the following question and context, return YES if the \
context is relevant to the question and NO if it isn't.\n\n> Question: {question}\n> Context:\n>>>\n{context}\n>>>\n> Relevant (YES / NO):";

/// Asks a model, for each document concurrently, whether it is relevant; keeps the YES ones.
#[derive(Clone)]
pub struct LlmFilter {
    model: Arc<dyn ChatModel>,
    prompt: PromptTemplate,
}

impl fmt::Debug for LlmFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LlmFilter").finish_non_exhaustive()
    }
}

impl LlmFilter {
    /// A filter with LangChain's prompt.
    ///
    /// # Errors
    /// Never for the built-in prompt.
    pub fn new(model: Arc<dyn ChatModel>) -> Result<Self> {
        Ok(LlmFilter {
            model,
            prompt: PromptTemplate::new(LLM_FILTER_PROMPT)?,
        })
    }
}

#[async_trait]
impl DocumentCompressor for LlmFilter {
    async fn compress(&self, documents: Vec<Document>, query: &str) -> Result<Vec<Document>> {
        let verdicts = futures::future::try_join_all(documents.iter().map(|d| async move {
            let text = self
                .prompt
                .format([("question", query), ("context", d.content.as_str())])?;
            let answer = self
                .model
                .generate(ChatRequest::new(vec![Message::user(text)]).with_temperature(0.0))
                .await?;
            Ok::<bool, Error>(answer.text().trim().to_uppercase().starts_with("YES"))
        }))
        .await?;
        Ok(documents
            .into_iter()
            .zip(verdicts)
            .filter(|(_, keep)| *keep)
            .map(|(d, _)| d)
            .collect())
    }
}

/// A retriever whose results pass through a [`DocumentCompressor`].
#[derive(Clone)]
pub struct ContextualCompressionRetriever {
    base: Arc<dyn Retriever>,
    compressor: Arc<dyn DocumentCompressor>,
}

impl fmt::Debug for ContextualCompressionRetriever {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ContextualCompressionRetriever")
            .finish_non_exhaustive()
    }
}

impl ContextualCompressionRetriever {
    /// Retrieves with `base`, then keeps what `compressor` keeps.
    pub fn new(base: Arc<dyn Retriever>, compressor: Arc<dyn DocumentCompressor>) -> Self {
        ContextualCompressionRetriever { base, compressor }
    }
}

#[async_trait]
impl Retriever for ContextualCompressionRetriever {
    async fn retrieve(&self, query: &str) -> Result<Vec<Document>> {
        let docs = self.base.retrieve(query).await?;
        self.compressor.compress(docs, query).await
    }

    /// The kept documents with the score a reranking compressor wrote under
    /// [`RELEVANCE_SCORE_KEY`](super::RELEVANCE_SCORE_KEY) (`NaN` without one).
    async fn retrieve_scored(&self, query: &str) -> Result<Vec<ScoredDocument>> {
        Ok(self
            .retrieve(query)
            .await?
            .into_iter()
            .map(|d| {
                let score = d
                    .metadata
                    .get(super::RELEVANCE_SCORE_KEY)
                    .and_then(serde_json::Value::as_f64)
                    .map_or(f32::NAN, |s| s as f32);
                ScoredDocument::new(d, score)
            })
            .collect())
    }
}
