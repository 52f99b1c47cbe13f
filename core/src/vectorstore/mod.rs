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

mod ext;
mod filter;
mod hybrid;

use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

pub use ext::{VectorStoreExt, DEFAULT_EMBED_BATCH};
pub use filter::{lookup, validate_key, Filter, RangeBound, RangeFilter};
pub use hybrid::{fuse, Fusion, HybridHit, HybridRequest, HybridRetriever, HybridSearch};

use crate::document::{Document, DocumentId};
use crate::embed::{cosine_similarity, Embedding};
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

    /// The id the document is stored under: its own, or the
    /// [deterministic](DocumentId::derived) id of its content and source.
    pub fn id(&self) -> DocumentId {
        self.document.id_or_derived()
    }
}

/// A document an upsert could not store, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct FailedUpsert {
    /// The document's id.
    pub id: DocumentId,
    /// What went wrong.
    pub reason: String,
}

impl FailedUpsert {
    /// A failure record.
    pub fn new(id: DocumentId, reason: impl Into<String>) -> Self {
        FailedUpsert {
            id,
            reason: reason.into(),
        }
    }
}

/// What an upsert did: the ids in input order, and how many documents were new, changed,
/// identical to what was stored, or not stored.
///
/// Stores with atomic batches (in-memory, pgvector) fail the whole call instead of listing
/// failures; stores whose batches are not atomic (Qdrant) list them in `failed`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[non_exhaustive]
pub struct UpsertReport {
    /// The id of every input document, in input order.
    pub ids: Vec<DocumentId>,
    /// Documents that did not exist before.
    pub inserted: usize,
    /// Documents that existed and changed.
    pub updated: usize,
    /// Documents that existed with the same content, metadata and vector.
    pub unchanged: usize,
    /// Documents that could not be stored.
    pub failed: Vec<FailedUpsert>,
}

impl UpsertReport {
    /// A report for `ids` with all counts at zero.
    pub fn new(ids: Vec<DocumentId>) -> Self {
        UpsertReport {
            ids,
            ..Default::default()
        }
    }

    /// Sets the counts.
    #[must_use]
    pub fn with_counts(mut self, inserted: usize, updated: usize, unchanged: usize) -> Self {
        self.inserted = inserted;
        self.updated = updated;
        self.unchanged = unchanged;
        self
    }

    /// Adds a failure.
    #[must_use]
    pub fn with_failure(mut self, failure: FailedUpsert) -> Self {
        self.failed.push(failure);
        self
    }

    /// Whether every document was stored.
    pub fn is_complete(&self) -> bool {
        self.failed.is_empty()
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
    /// Whether results carry their vectors ([`ScoredDocument::embedding`]).
    #[serde(default)]
    pub include_vectors: bool,
}

impl SearchRequest {
    /// The `k` nearest neighbours of `vector`.
    pub fn new(vector: Embedding, k: usize) -> Self {
        SearchRequest {
            vector,
            k,
            score_threshold: None,
            filter: None,
            include_vectors: false,
        }
    }

    /// Asks for the results' vectors too. Default false.
    #[must_use]
    pub fn with_vectors(mut self, yes: bool) -> Self {
        self.include_vectors = yes;
        self
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
    /// Its vector, when the search asked for vectors.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub embedding: Option<Embedding>,
}

impl ScoredDocument {
    /// A hit.
    pub fn new(document: Document, score: f32) -> Self {
        ScoredDocument {
            document,
            score,
            embedding: None,
        }
    }

    /// Attaches the hit's vector.
    #[must_use]
    pub fn with_embedding(mut self, embedding: Embedding) -> Self {
        self.embedding = Some(embedding);
        self
    }
}

/// A maximal-marginal-relevance search: fetch the `fetch_k` nearest documents, then pick `k`
/// of them that are relevant to the query **and** unlike each other.
///
/// `lambda` trades the two: 1 is plain similarity ranking, 0 is maximal diversity
/// (LangChain's `lambda_mult`, default 0.5).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct MmrRequest {
    /// The query vector.
    pub vector: Embedding,
    /// How many results.
    pub k: usize,
    /// How many candidates to choose from (default 20, at least `k`).
    pub fetch_k: usize,
    /// Relevance versus diversity, in `0..=1` (default 0.5).
    pub lambda: f32,
    /// Only documents whose metadata match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<Filter>,
}

impl MmrRequest {
    /// `k` results chosen from 20 candidates with λ = 0.5 (LangChain's defaults).
    pub fn new(vector: Embedding, k: usize) -> Self {
        MmrRequest {
            vector,
            k,
            fetch_k: 20,
            lambda: 0.5,
            filter: None,
        }
    }

    /// Sets how many candidates to fetch.
    #[must_use]
    pub fn with_fetch_k(mut self, fetch_k: usize) -> Self {
        self.fetch_k = fetch_k;
        self
    }

    /// Sets λ.
    #[must_use]
    pub fn with_lambda(mut self, lambda: f32) -> Self {
        self.lambda = lambda;
        self
    }

    /// Sets the metadata filter.
    #[must_use]
    pub fn with_filter(mut self, filter: Filter) -> Self {
        self.filter = Some(filter);
        self
    }

    /// Checks `k`, `fetch_k`, λ, the vector and the filter.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] naming the problem.
    pub fn validate(&self) -> Result<()> {
        if self.k == 0 {
            return Err(Error::invalid_input("k must be at least 1"));
        }
        if self.fetch_k < self.k {
            return Err(Error::invalid_input("fetch_k must be at least k"));
        }
        if !(0.0..=1.0).contains(&self.lambda) {
            return Err(Error::invalid_input(format!(
                "lambda must be within 0..=1, got {}",
                self.lambda
            )));
        }
        validate_vector(&self.vector)?;
        if let Some(f) = &self.filter {
            f.validate()?;
        }
        Ok(())
    }
}

/// Maximal marginal relevance over candidates that carry their vectors: repeatedly picks the
/// candidate maximising `λ·sim(query, d) − (1−λ)·max sim(d, picked)` (cosine similarities),
/// as LangChain's `maximal_marginal_relevance`. Returns indices into `candidates`, in pick
/// order; candidates without a vector are skipped.
pub fn mmr_select(
    query: &[f32],
    candidates: &[ScoredDocument],
    k: usize,
    lambda: f32,
) -> Vec<usize> {
    let usable: Vec<(usize, &Embedding)> = candidates
        .iter()
        .enumerate()
        .filter_map(|(i, c)| c.embedding.as_ref().map(|e| (i, e)))
        .collect();
    let relevance: Vec<f32> = usable
        .iter()
        .map(|(_, e)| cosine_similarity(query, e))
        .collect();
    let mut picked: Vec<usize> = Vec::with_capacity(k.min(usable.len()));
    let mut taken = vec![false; usable.len()];
    while picked.len() < k.min(usable.len()) {
        let mut best: Option<(usize, f32)> = None;
        for (j, (_, e)) in usable.iter().enumerate() {
            if taken[j] {
                continue;
            }
            let redundancy = picked
                .iter()
                .map(|&p| cosine_similarity(e, usable[p].1))
                .fold(f32::NEG_INFINITY, f32::max);
            let redundancy = if picked.is_empty() { 0.0 } else { redundancy };
            let score = lambda * relevance[j] - (1.0 - lambda) * redundancy;
            if best.is_none_or(|(_, s)| score > s) {
                best = Some((j, score));
            }
        }
        let Some((j, _)) = best else { break };
        taken[j] = true;
        picked.push(j);
    }
    picked.into_iter().map(|j| usable[j].0).collect()
}

/// A store of embedded documents searchable by vector.
///
/// Writes are all-or-nothing: a batch with one bad vector writes nothing.
#[async_trait]
pub trait VectorStore: Send + Sync {
    /// Inserts or replaces documents. Documents without an id are stored under their
    /// [deterministic id](EmbeddedDocument::id), so ingesting the same document twice
    /// changes nothing. The report lists the ids in input order and what happened.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for vectors of the wrong dimension or with non-finite values;
    /// nothing is written then.
    async fn upsert(&self, documents: Vec<EmbeddedDocument>) -> Result<UpsertReport>;

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

    /// How many documents match `filter` (all of them for `None`).
    ///
    /// # Errors
    /// Backend failures; [`Error::InvalidInput`] for a malformed filter.
    async fn count(&self, filter: Option<&Filter>) -> Result<usize>;

    /// A [maximal-marginal-relevance](MmrRequest) search. The default fetches `fetch_k`
    /// candidates with their vectors through [`search`](Self::search) and picks with
    /// [`mmr_select`](crate::backend::mmr_select); scores are the candidates' similarity scores.
    ///
    /// # Errors
    /// As for [`search`](Self::search); [`Error::InvalidInput`] for a bad request.
    async fn search_mmr(&self, request: MmrRequest) -> Result<Vec<ScoredDocument>> {
        request.validate()?;
        let mut search =
            SearchRequest::new(request.vector.clone(), request.fetch_k).with_vectors(true);
        search.filter = request.filter.clone();
        let candidates = self.search(search).await?;
        let order = mmr_select(&request.vector, &candidates, request.k, request.lambda);
        let mut slots: Vec<Option<ScoredDocument>> = candidates.into_iter().map(Some).collect();
        Ok(order
            .into_iter()
            .filter_map(|i| slots.get_mut(i).and_then(Option::take))
            .collect())
    }
}

#[async_trait]
impl<T: VectorStore + ?Sized> VectorStore for Arc<T> {
    async fn upsert(&self, documents: Vec<EmbeddedDocument>) -> Result<UpsertReport> {
        (**self).upsert(documents).await
    }
    async fn count(&self, filter: Option<&Filter>) -> Result<usize> {
        (**self).count(filter).await
    }
    async fn search_mmr(&self, request: MmrRequest) -> Result<Vec<ScoredDocument>> {
        (**self).search_mmr(request).await
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
    async fn upsert(&self, documents: Vec<EmbeddedDocument>) -> Result<UpsertReport> {
        (**self).upsert(documents).await
    }
    async fn count(&self, filter: Option<&Filter>) -> Result<usize> {
        (**self).count(filter).await
    }
    async fn search_mmr(&self, request: MmrRequest) -> Result<Vec<ScoredDocument>> {
        (**self).search_mmr(request).await
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

#[cfg(test)]
mod tests {
    use super::*;

    fn hit(id: &str, v: Vec<f32>) -> ScoredDocument {
        ScoredDocument::new(Document::new(id).with_id(id), 0.0).with_embedding(v)
    }

    #[test]
    fn mmr_trades_relevance_for_diversity() {
        let query = [1.0, 0.0];
        let candidates = vec![
            hit("a", vec![1.0, 0.0]),
            hit("a-copy", vec![0.999, 0.04]),
            hit("b", vec![0.7, 0.7]),
            ScoredDocument::new(Document::new("no vector"), 0.9),
        ];
        assert_eq!(mmr_select(&query, &candidates, 2, 1.0), [0, 1]);
        assert_eq!(mmr_select(&query, &candidates, 2, 0.3), [0, 2]);
        assert_eq!(
            mmr_select(&query, &candidates, 10, 0.5).len(),
            3,
            "no vector, not picked"
        );
        assert!(mmr_select(&query, &[], 3, 0.5).is_empty());
    }

    #[test]
    fn requests_validate() {
        assert!(MmrRequest::new(vec![1.0], 2).validate().is_ok());
        assert!(MmrRequest::new(vec![1.0], 0).validate().is_err());
        assert!(MmrRequest::new(vec![1.0], 2)
            .with_lambda(1.5)
            .validate()
            .is_err());
        assert!(MmrRequest::new(vec![1.0], 5)
            .with_fetch_k(4)
            .validate()
            .is_err());
        assert!(SearchRequest::new(vec![f32::NAN], 1).validate().is_err());
        assert!(
            validate_vector(&[1e20, 1e20]).is_err(),
            "squared length overflows f32"
        );
    }
}
