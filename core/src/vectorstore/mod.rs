//! Vector stores: upsert embedded documents, search by vector with a metadata filter,
//! delete, get.
//!
//! Scores are similarities: **higher is closer**, whatever the metric (cosine similarity,
//! dot product, or `1 / (1 + distance)` for euclidean), so a `score_threshold` means the same
//! thing on every backend.
//!
//! ```
//! use catena_core::{Filter, SearchRequest};
//! let req = SearchRequest::new(vec![0.1, 0.2, 0.3], 4)
//!     .with_score_threshold(0.5)
//!     .with_filter(Filter::eq("lang", "rust"));
//! assert_eq!(req.k, 4);
//! assert!(req.validate().is_ok());
//! ```

mod filter;

use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

pub use filter::{Filter, RangeFilter};

use crate::document::{Document, DocumentId};
use crate::embed::Embedding;
use crate::error::{Error, Result};

/// A document with its vector, ready to upsert.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct EmbeddedDocument {
    /// The document; its `id` is kept, or the store assigns one.
    pub document: Document,
    /// Its embedding.
    pub embedding: Embedding,
}

impl EmbeddedDocument {
    /// Pairs a document with its vector.
    pub fn new(document: Document, embedding: Embedding) -> Self {
        EmbeddedDocument {
            document,
            embedding,
        }
    }
}

/// A similarity search.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct SearchRequest {
    /// The query vector.
    pub vector: Embedding,
    /// How many results at most.
    pub k: usize,
    /// Drop results scoring below this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score_threshold: Option<f32>,
    /// Only documents whose metadata match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<Filter>,
}

impl SearchRequest {
    /// The `k` nearest neighbours of `vector`.
    pub fn new(vector: Embedding, k: usize) -> Self {
        SearchRequest {
            vector,
            k,
            score_threshold: None,
            filter: None,
        }
    }

    /// Sets the score threshold.
    #[must_use]
    pub fn with_score_threshold(mut self, threshold: f32) -> Self {
        self.score_threshold = Some(threshold);
        self
    }

    /// Sets the metadata filter.
    #[must_use]
    pub fn with_filter(mut self, filter: Filter) -> Self {
        self.filter = Some(filter);
        self
    }

    /// Checks `k`, the vector's values and the filter.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] naming the problem.
    pub fn validate(&self) -> Result<()> {
        if self.k == 0 {
            return Err(Error::invalid_input("k must be at least 1"));
        }
        validate_vector(&self.vector)?;
        if let Some(t) = self.score_threshold {
            if !t.is_finite() {
                return Err(Error::invalid_input("score_threshold must be finite"));
            }
        }
        if let Some(f) = &self.filter {
            f.validate()?;
        }
        Ok(())
    }
}

/// Checks that a vector is non-empty, all finite, and small enough that its squared length
/// is finite in `f32` (so similarity scores cannot overflow to NaN).
///
/// # Errors
/// [`Error::InvalidInput`] naming the problem.
pub fn validate_vector(vector: &[f32]) -> Result<()> {
    if vector.is_empty() {
        return Err(Error::invalid_input("vector must not be empty"));
    }
    if let Some(i) = vector.iter().position(|x| !x.is_finite()) {
        return Err(Error::invalid_input(format!(
            "vector value at position {i} is not finite"
        )));
    }
    if !vector.iter().map(|x| x * x).sum::<f32>().is_finite() {
        return Err(Error::invalid_input(
            "vector magnitude overflows f32; normalise it first",
        ));
    }
    Ok(())
}

/// A search hit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ScoredDocument {
    /// The document, with its id.
    pub document: Document,
    /// Its similarity to the query; higher is closer.
    pub score: f32,
}

impl ScoredDocument {
    /// A hit.
    pub fn new(document: Document, score: f32) -> Self {
        ScoredDocument { document, score }
    }
}

/// A store of embedded documents searchable by vector.
///
/// Writes are all-or-nothing: a batch with one bad vector writes nothing.
#[async_trait]
pub trait VectorStore: Send + Sync {
    /// Inserts or replaces documents, returning their ids in input order. Documents without an
    /// id get a new one.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for vectors of the wrong dimension or with non-finite values;
    /// nothing is written then.
    async fn upsert(&self, documents: Vec<EmbeddedDocument>) -> Result<Vec<DocumentId>>;

    /// The closest documents, best first.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a bad request (see [`SearchRequest::validate`]).
    async fn search(&self, request: SearchRequest) -> Result<Vec<ScoredDocument>>;

    /// Deletes these ids; returns how many existed.
    ///
    /// # Errors
    /// Backend failures.
    async fn delete(&self, ids: &[DocumentId]) -> Result<usize>;

    /// Deletes every document matching `filter`; returns how many.
    ///
    /// # Errors
    /// Backend failures; [`Error::InvalidInput`] for a malformed filter.
    async fn delete_by_filter(&self, filter: &Filter) -> Result<usize>;

    /// The documents with these ids, in the order asked; unknown ids are skipped.
    ///
    /// # Errors
    /// Backend failures.
    async fn get(&self, ids: &[DocumentId]) -> Result<Vec<Document>>;
}

#[async_trait]
impl<T: VectorStore + ?Sized> VectorStore for Arc<T> {
    async fn upsert(&self, documents: Vec<EmbeddedDocument>) -> Result<Vec<DocumentId>> {
        (**self).upsert(documents).await
    }
    async fn search(&self, request: SearchRequest) -> Result<Vec<ScoredDocument>> {
        (**self).search(request).await
    }
    async fn delete(&self, ids: &[DocumentId]) -> Result<usize> {
        (**self).delete(ids).await
    }
    async fn delete_by_filter(&self, filter: &Filter) -> Result<usize> {
        (**self).delete_by_filter(filter).await
    }
    async fn get(&self, ids: &[DocumentId]) -> Result<Vec<Document>> {
        (**self).get(ids).await
    }
}

#[async_trait]
impl<T: VectorStore + ?Sized> VectorStore for Box<T> {
    async fn upsert(&self, documents: Vec<EmbeddedDocument>) -> Result<Vec<DocumentId>> {
        (**self).upsert(documents).await
    }
    async fn search(&self, request: SearchRequest) -> Result<Vec<ScoredDocument>> {
        (**self).search(request).await
    }
    async fn delete(&self, ids: &[DocumentId]) -> Result<usize> {
        (**self).delete(ids).await
    }
    async fn delete_by_filter(&self, filter: &Filter) -> Result<usize> {
        (**self).delete_by_filter(filter).await
    }
    async fn get(&self, ids: &[DocumentId]) -> Result<Vec<Document>> {
        (**self).get(ids).await
    }
}
