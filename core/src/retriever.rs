//! Retrievers: a query in, relevant documents out.
//!
//! [`VectorStoreRetriever`] is the usual one: it embeds the query and searches a store.
//!
//! ```
//! use std::sync::Arc;
//! use catena_core::{Document, Embedder, Filter, Retriever, VectorStore, VectorStoreRetriever};
//!
//! async fn top_rust_docs(
//!     embedder: Arc<dyn Embedder>,
//!     store: Arc<dyn VectorStore>,
//! ) -> catena_core::Result<Vec<Document>> {
//!     let retriever = VectorStoreRetriever::new(embedder, store)
//!         .with_k(3)
//!         .with_filter(Filter::eq("lang", "rust"));
//!     retriever.retrieve("how does borrowing work?").await
//! }
//! ```

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;

use crate::document::Document;
use crate::embed::Embedder;
use crate::error::Result;
use crate::vectorstore::{Filter, MmrRequest, ScoredDocument, SearchRequest, VectorStore};

/// Finds documents relevant to a query.
#[async_trait]
pub trait Retriever: Send + Sync {
    /// The relevant documents, most relevant first.
    ///
    /// # Errors
    /// Failures of the backing embedder or store.
    async fn retrieve(&self, query: &str) -> Result<Vec<Document>>;

    /// The relevant documents with their scores (higher is more relevant; the scale is the
    /// retriever's own: a similarity, a fused rank score, a reranker's logit), most relevant
    /// first. Default: [`retrieve`](Retriever::retrieve) with every score `NaN`, for
    /// retrievers that do not score.
    ///
    /// # Errors
    /// As [`retrieve`](Retriever::retrieve).
    async fn retrieve_scored(&self, query: &str) -> Result<Vec<ScoredDocument>> {
        Ok(self
            .retrieve(query)
            .await?
            .into_iter()
            .map(|d| ScoredDocument::new(d, f32::NAN))
            .collect())
    }
}

#[async_trait]
impl<T: Retriever + ?Sized> Retriever for Arc<T> {
    async fn retrieve(&self, query: &str) -> Result<Vec<Document>> {
        (**self).retrieve(query).await
    }

    async fn retrieve_scored(&self, query: &str) -> Result<Vec<ScoredDocument>> {
        (**self).retrieve_scored(query).await
    }
}

#[async_trait]
impl<T: Retriever + ?Sized> Retriever for Box<T> {
    async fn retrieve(&self, query: &str) -> Result<Vec<Document>> {
        (**self).retrieve(query).await
    }

    async fn retrieve_scored(&self, query: &str) -> Result<Vec<ScoredDocument>> {
        (**self).retrieve_scored(query).await
    }
}

/// A [`Retriever`] over an [`Embedder`] and a [`VectorStore`].
#[derive(Clone)]
pub struct VectorStoreRetriever {
    embedder: Arc<dyn Embedder>,
    store: Arc<dyn VectorStore>,
    k: usize,
    score_threshold: Option<f32>,
    filter: Option<Filter>,
    mmr: Option<(usize, f32)>,
}

impl fmt::Debug for VectorStoreRetriever {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VectorStoreRetriever")
            .field("k", &self.k)
            .field("score_threshold", &self.score_threshold)
            .field("filter", &self.filter)
            .field("mmr", &self.mmr)
            .finish_non_exhaustive()
    }
}

impl VectorStoreRetriever {
    /// Retrieves the 4 nearest documents (LangChain's default) with no filter.
    pub fn new(embedder: Arc<dyn Embedder>, store: Arc<dyn VectorStore>) -> Self {
        VectorStoreRetriever {
            embedder,
            store,
            k: 4,
            score_threshold: None,
            filter: None,
            mmr: None,
        }
    }

    /// How many documents to return. Default 4.
    #[must_use]
    pub fn with_k(mut self, k: usize) -> Self {
        self.k = k;
        self
    }

    /// Drops documents scoring below `threshold`. Default none.
    #[must_use]
    pub fn with_score_threshold(mut self, threshold: f32) -> Self {
        self.score_threshold = Some(threshold);
        self
    }

    /// Only documents matching `filter`. Default none.
    #[must_use]
    pub fn with_filter(mut self, filter: Filter) -> Self {
        self.filter = Some(filter);
        self
    }

    /// Picks the `k` results by maximal marginal relevance among the `fetch_k` nearest,
    /// with `lambda` trading relevance (1) for diversity (0); see [`MmrRequest`]. The score
    /// threshold does not apply to MMR. Default: plain similarity search.
    #[must_use]
    pub fn with_mmr(mut self, fetch_k: usize, lambda: f32) -> Self {
        self.mmr = Some((fetch_k, lambda));
        self
    }

    /// The hits with their scores.
    ///
    /// # Errors
    /// Failures of the embedder or the store.
    pub async fn retrieve_scored(&self, query: &str) -> Result<Vec<ScoredDocument>> {
        let vector = self.embedder.embed_query(query).await?;
        if let Some((fetch_k, lambda)) = self.mmr {
            let mut req = MmrRequest::new(vector, self.k)
                .with_fetch_k(fetch_k)
                .with_lambda(lambda);
            req.filter = self.filter.clone();
            return self.store.search_mmr(req).await;
        }
        let mut req = SearchRequest::new(vector, self.k);
        req.score_threshold = self.score_threshold;
        req.filter = self.filter.clone();
        self.store.search(req).await
    }
}

#[async_trait]
impl Retriever for VectorStoreRetriever {
    async fn retrieve(&self, query: &str) -> Result<Vec<Document>> {
        Ok(self
            .retrieve_scored(query)
            .await?
            .into_iter()
            .map(|s| s.document)
            .collect())
    }

    async fn retrieve_scored(&self, query: &str) -> Result<Vec<ScoredDocument>> {
        VectorStoreRetriever::retrieve_scored(self, query).await
    }
}
