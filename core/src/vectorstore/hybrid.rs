//! Hybrid search: dense vectors and keywords, fused per request.
//!
//! [`HybridSearch`] is the capability; the in-memory store (BM25 over its documents),
//! pgvector (PostgreSQL full text) and Qdrant (BM25 sparse vectors) implement it, and
//! [`HybridRetriever`] uses any of them. [`fuse`] is the fusion the stores share (pgvector
//! runs the same arithmetic in SQL).
//!
//! ```
//! use std::sync::Arc;
//! use catena_core::{Fusion, HybridRequest, HybridRetriever, HybridSearch, Embedder};
//!
//! fn retriever(embedder: Arc<dyn Embedder>, store: Arc<dyn HybridSearch>) -> HybridRetriever {
//!     HybridRetriever::new(embedder, store)
//!         .with_k(5)
//!         .with_fusion(Fusion::Weighted)
//!         .with_weights(0.7, 0.3)
//! }
//! ```

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;

use crate::backend::validate_vector;
use crate::document::{Document, DocumentId};
use crate::embed::{Embedder, Embedding};
use crate::error::{Error, Result};
use crate::retriever::Retriever;
use crate::vectorstore::{Filter, ScoredDocument};

/// How a hybrid search fuses its dense and keyword rankings; see [`HybridRequest`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Fusion {
    /// Weighted reciprocal rank fusion (ranks only; robust to score scales).
    #[default]
    Rrf,
    /// A weighted sum of min-max normalised scores (keeps how far apart the scores are).
    Weighted,
}

/// A hybrid query: `text` against the store's keyword index, `vector` against its
/// embeddings, each ranked separately (`fetch_k` candidates each, under the filter) and fused
/// per [`Fusion`]:
/// - [`Fusion::Rrf`] (default): `score = w_vector / (rrf_k + vector_rank) + w_text / (rrf_k +
///   text_rank)`, a missing rank adding nothing;
/// - [`Fusion::Weighted`]: each ranking's scores min-max normalised to `[0, 1]` over its
///   candidates, then `score = w_vector · vector_norm + w_text · text_norm`.
///
/// ```
/// use catena_core::{Fusion, HybridRequest};
/// let req = HybridRequest::new("rust borrow checker", vec![0.1, 0.2], 5)
///     .with_weights(1.0, 0.5)
///     .with_rrf_k(60.0);
/// assert_eq!(req.fetch_k, 20);
/// assert_eq!(req.fusion, Fusion::Rrf);
/// assert!(req.validate().is_ok());
/// assert!(req.with_fusion(Fusion::Weighted).validate().is_ok());
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct HybridRequest {
    /// The keyword query, parsed with `websearch_to_tsquery` (quotes for phrases, `or`,
    /// `-word` to exclude). Empty: vector ranking only.
    pub text: String,
    /// The query vector.
    pub vector: Embedding,
    /// How many results.
    pub k: usize,
    /// How many candidates each ranking contributes (default `max(4·k, 20)`, at least `k`).
    pub fetch_k: usize,
    /// Only documents whose metadata match.
    pub filter: Option<Filter>,
    /// Weight of the vector ranking (default 1).
    pub vector_weight: f32,
    /// Weight of the full-text ranking (default 1).
    pub text_weight: f32,
    /// The RRF constant; larger flattens the head of each ranking (default 60).
    pub rrf_k: f32,
    /// How the two rankings are fused (default [`Fusion::Rrf`]).
    pub fusion: Fusion,
}

impl HybridRequest {
    /// The `k` best documents for `text` and `vector`, equally weighted, RRF constant 60.
    pub fn new(text: impl Into<String>, vector: Embedding, k: usize) -> Self {
        HybridRequest {
            text: text.into(),
            vector,
            k,
            fetch_k: (k.saturating_mul(4)).max(20),
            filter: None,
            vector_weight: 1.0,
            text_weight: 1.0,
            rrf_k: 60.0,
            fusion: Fusion::Rrf,
        }
    }

    /// Sets how the rankings are fused.
    #[must_use]
    pub fn with_fusion(mut self, fusion: Fusion) -> Self {
        self.fusion = fusion;
        self
    }

    /// Sets the weights of the vector and the full-text rankings.
    #[must_use]
    pub fn with_weights(mut self, vector: f32, text: f32) -> Self {
        self.vector_weight = vector;
        self.text_weight = text;
        self
    }

    /// Sets the RRF constant.
    #[must_use]
    pub fn with_rrf_k(mut self, rrf_k: f32) -> Self {
        self.rrf_k = rrf_k;
        self
    }

    /// Sets how many candidates each ranking contributes.
    #[must_use]
    pub fn with_fetch_k(mut self, fetch_k: usize) -> Self {
        self.fetch_k = fetch_k;
        self
    }

    /// Sets the metadata filter (applied to both rankings).
    #[must_use]
    pub fn with_filter(mut self, filter: Filter) -> Self {
        self.filter = Some(filter);
        self
    }

    /// Checks `k`, `fetch_k`, the weights, the RRF constant, the vector and the filter.
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
        for (name, w) in [("vector", self.vector_weight), ("text", self.text_weight)] {
            if !w.is_finite() || w < 0.0 {
                return Err(Error::invalid_input(format!(
                    "the {name} weight must be finite and non-negative, got {w}"
                )));
            }
        }
        if self.vector_weight == 0.0 && self.text_weight == 0.0 {
            return Err(Error::invalid_input("at least one weight must be positive"));
        }
        if !self.rrf_k.is_finite() || self.rrf_k < 0.0 {
            return Err(Error::invalid_input(format!(
                "rrf_k must be finite and non-negative, got {}",
                self.rrf_k
            )));
        }
        if self.text.contains('\0') {
            return Err(Error::invalid_input("the text contains a NUL character"));
        }
        validate_vector(&self.vector)?;
        if let Some(f) = &self.filter {
            f.validate()?;
        }
        Ok(())
    }
}

/// A hybrid search hit: the document, its fused score, and its rank (from 1) in each
/// ranking it appeared in.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct HybridHit {
    /// The document, with its id.
    pub document: Document,
    /// The fused score; higher is better (not a similarity: no threshold applies).
    pub score: f32,
    /// Rank among the vector candidates, if it was one.
    pub vector_rank: Option<usize>,
    /// Rank among the full-text matches, if it matched.
    pub text_rank: Option<usize>,
}

impl HybridHit {
    /// A hit with its fused score and its ranks (from 1) in the rankings that found it.
    pub fn new(
        document: Document,
        score: f32,
        vector_rank: Option<usize>,
        text_rank: Option<usize>,
    ) -> Self {
        HybridHit {
            document,
            score,
            vector_rank,
            text_rank,
        }
    }
}

impl From<HybridHit> for ScoredDocument {
    fn from(hit: HybridHit) -> Self {
        ScoredDocument::new(hit.document, hit.score)
    }
}

/// Dense + keyword search with fusion; see [`HybridRequest`].
#[async_trait]
pub trait HybridSearch: Send + Sync {
    /// The `k` best documents for the request's text and vector, best first.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a bad request (see [`HybridRequest::validate`]) or a
    /// vector of the wrong dimension; backend errors.
    async fn hybrid_search(&self, request: HybridRequest) -> Result<Vec<HybridHit>>;
}

#[async_trait]
impl<T: HybridSearch + ?Sized> HybridSearch for Arc<T> {
    async fn hybrid_search(&self, request: HybridRequest) -> Result<Vec<HybridHit>> {
        (**self).hybrid_search(request).await
    }
}

/// The identity of a hit for fusion: its id, else its content.
fn fusion_key(doc: &Document) -> DocumentId {
    doc.id
        .clone()
        .unwrap_or_else(|| DocumentId::new(format!("content:{}", doc.content)))
}

/// Min-max normalises `scores` to `[0, 1]` (all equal: all 1). A score that is not a finite
/// number (a backend's NaN) counts as the worst, 0.
fn normalised(scores: &[f32]) -> Vec<f32> {
    let (lo, hi) = scores
        .iter()
        .filter(|s| s.is_finite())
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &s| {
            (lo.min(s), hi.max(s))
        });
    scores
        .iter()
        .map(|&s| match s.is_finite() {
            false => 0.0,
            true if hi > lo => (s - lo) / (hi - lo),
            true => 1.0,
        })
        .collect()
}

/// Fuses a dense and a keyword ranking (each best first, higher scores better) as `request`
/// says, keeping its `k` best. Ties go to the better vector rank, then the better text rank.
pub fn fuse(
    dense: Vec<ScoredDocument>,
    keyword: Vec<ScoredDocument>,
    request: &HybridRequest,
) -> Vec<HybridHit> {
    struct Acc {
        document: Document,
        score: f32,
        vector_rank: Option<usize>,
        text_rank: Option<usize>,
    }
    let mut fused: HashMap<DocumentId, Acc> = HashMap::new();
    for (which, list, weight) in [
        (0, dense, request.vector_weight),
        (1, keyword, request.text_weight),
    ] {
        let norms = normalised(&list.iter().map(|h| h.score).collect::<Vec<_>>());
        for (i, (hit, norm)) in list.into_iter().zip(norms).enumerate() {
            let rank = i + 1;
            let add = match request.fusion {
                Fusion::Rrf => weight / (request.rrf_k + rank as f32),
                Fusion::Weighted => weight * norm,
            };
            let acc = fused.entry(fusion_key(&hit.document)).or_insert(Acc {
                document: hit.document,
                score: 0.0,
                vector_rank: None,
                text_rank: None,
            });
            let seen = if which == 0 {
                acc.vector_rank
            } else {
                acc.text_rank
            };
            if seen.is_some() {
                continue; // a duplicate within one ranking counts once, at its best rank
            }
            acc.score += add;
            if which == 0 {
                acc.vector_rank = Some(rank);
            } else {
                acc.text_rank = Some(rank);
            }
        }
    }
    let mut hits: Vec<HybridHit> = fused
        .into_values()
        .map(|a| HybridHit {
            document: a.document,
            score: a.score,
            vector_rank: a.vector_rank,
            text_rank: a.text_rank,
        })
        .collect();
    hits.sort_by(|a, b| {
        b.score
            .total_cmp(&a.score)
            .then(
                a.vector_rank
                    .unwrap_or(usize::MAX)
                    .cmp(&b.vector_rank.unwrap_or(usize::MAX)),
            )
            .then(
                a.text_rank
                    .unwrap_or(usize::MAX)
                    .cmp(&b.text_rank.unwrap_or(usize::MAX)),
            )
    });
    hits.truncate(request.k);
    hits
}

/// A [`Retriever`] over any [`HybridSearch`]: embeds the query and runs a hybrid search with
/// the same text. Defaults: `k = 4`, RRF, equal weights.
#[derive(Clone)]
pub struct HybridRetriever {
    embedder: Arc<dyn Embedder>,
    store: Arc<dyn HybridSearch>,
    k: usize,
    fetch_k: Option<usize>,
    fusion: Fusion,
    weights: (f32, f32),
    rrf_k: f32,
    filter: Option<Filter>,
}

impl fmt::Debug for HybridRetriever {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HybridRetriever")
            .field("k", &self.k)
            .field("fetch_k", &self.fetch_k)
            .field("fusion", &self.fusion)
            .field("weights", &self.weights)
            .field("filter", &self.filter)
            .finish_non_exhaustive()
    }
}

impl HybridRetriever {
    /// Retrieves the 4 best documents with RRF and equal weights.
    pub fn new(embedder: Arc<dyn Embedder>, store: Arc<dyn HybridSearch>) -> Self {
        HybridRetriever {
            embedder,
            store,
            k: 4,
            fetch_k: None,
            fusion: Fusion::Rrf,
            weights: (1.0, 1.0),
            rrf_k: 60.0,
            filter: None,
        }
    }

    /// How many documents to return.
    #[must_use]
    pub fn with_k(mut self, k: usize) -> Self {
        self.k = k;
        self
    }

    /// How many candidates each ranking contributes (default `max(4·k, 20)`).
    #[must_use]
    pub fn with_fetch_k(mut self, fetch_k: usize) -> Self {
        self.fetch_k = Some(fetch_k);
        self
    }

    /// How the rankings are fused.
    #[must_use]
    pub fn with_fusion(mut self, fusion: Fusion) -> Self {
        self.fusion = fusion;
        self
    }

    /// The weights of the dense and the keyword rankings.
    #[must_use]
    pub fn with_weights(mut self, vector: f32, text: f32) -> Self {
        self.weights = (vector, text);
        self
    }

    /// The RRF constant (default 60).
    #[must_use]
    pub fn with_rrf_k(mut self, rrf_k: f32) -> Self {
        self.rrf_k = rrf_k;
        self
    }

    /// Only documents matching `filter`.
    #[must_use]
    pub fn with_filter(mut self, filter: Filter) -> Self {
        self.filter = Some(filter);
        self
    }

    /// The request this retriever sends for `query` with its vector.
    pub fn request(&self, query: &str, vector: Embedding) -> HybridRequest {
        let mut request = HybridRequest::new(query, vector, self.k)
            .with_fusion(self.fusion)
            .with_weights(self.weights.0, self.weights.1)
            .with_rrf_k(self.rrf_k);
        if let Some(fetch_k) = self.fetch_k {
            request = request.with_fetch_k(fetch_k);
        }
        if let Some(filter) = &self.filter {
            request = request.with_filter(filter.clone());
        }
        request
    }
}

#[async_trait]
impl Retriever for HybridRetriever {
    async fn retrieve(&self, query: &str) -> Result<Vec<Document>> {
        Ok(self
            .retrieve_scored(query)
            .await?
            .into_iter()
            .map(|h| h.document)
            .collect())
    }

    /// The documents with their fused scores.
    async fn retrieve_scored(&self, query: &str) -> Result<Vec<ScoredDocument>> {
        let vector = self.embedder.embed_query(query).await?;
        let hits = self
            .store
            .hybrid_search(self.request(query, vector))
            .await?;
        Ok(hits.into_iter().map(ScoredDocument::from).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hit(id: &str, score: f32) -> ScoredDocument {
        ScoredDocument::new(Document::new(id).with_id(id), score)
    }

    #[test]
    fn a_nan_score_ranks_last_and_a_duplicate_counts_once() {
        let request = HybridRequest::new("q", vec![1.0], 4).with_fusion(Fusion::Weighted);
        let hits = fuse(
            vec![
                hit("a", 0.9),
                hit("b", f32::NAN),
                hit("c", 0.5),
                hit("d", 0.1),
            ],
            vec![],
            &request,
        );
        let order: Vec<_> = hits.iter().map(|h| h.document.content.as_str()).collect();
        // NaN counts as the worst score (0, tied with "d", which ranked below it).
        assert_eq!(order, ["a", "c", "b", "d"]);
        assert!(hits.iter().all(|h| h.score.is_finite()));
        // "a" listed twice by the keyword ranking: counted once, at rank 1.
        let rrf = HybridRequest::new("q", vec![1.0], 3);
        let hits = fuse(
            vec![hit("b", 0.5)],
            vec![hit("a", 2.0), hit("a", 1.0)],
            &rrf,
        );
        let a = hits.iter().find(|h| h.document.content == "a").unwrap();
        assert_eq!(a.text_rank, Some(1));
        assert!((a.score - 1.0 / 61.0).abs() < 1e-6, "{}", a.score);
    }

    #[test]
    fn requests_are_checked() {
        let ok = HybridRequest::new("q", vec![1.0, 0.0], 3);
        assert!(ok.validate().is_ok());
        assert_eq!(ok.fetch_k, 20);
        assert_eq!(HybridRequest::new("q", vec![1.0], 10).fetch_k, 40);
        for bad in [
            HybridRequest::new("q", vec![1.0], 0),
            ok.clone().with_fetch_k(2),
            ok.clone().with_weights(-1.0, 1.0),
            ok.clone().with_weights(0.0, 0.0),
            ok.clone().with_weights(f32::NAN, 1.0),
            ok.clone().with_rrf_k(f32::INFINITY),
            HybridRequest::new("q", vec![f32::NAN], 1),
            ok.clone().with_filter(Filter::eq("a') OR 1=1 --", 1)),
        ] {
            assert!(
                matches!(bad.validate(), Err(Error::InvalidInput(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn rrf_rewards_documents_both_rankings_found() {
        let req = HybridRequest::new("q", vec![1.0], 3);
        let hits = fuse(
            vec![hit("a", 0.9), hit("b", 0.8), hit("c", 0.7)],
            vec![hit("c", 12.0), hit("d", 3.0)],
            &req,
        );
        let ids: Vec<&str> = hits.iter().map(|h| h.document.content.as_str()).collect();
        assert_eq!(ids, vec!["c", "a", "b"]);
        assert_eq!((hits[0].vector_rank, hits[0].text_rank), (Some(3), Some(1)));
        assert!((hits[0].score - (1.0 / 63.0 + 1.0 / 61.0)).abs() < 1e-6);
    }

    #[test]
    fn weighted_fusion_uses_normalised_scores_and_weights() {
        let req = HybridRequest::new("q", vec![1.0], 2)
            .with_fusion(Fusion::Weighted)
            .with_weights(0.2, 0.8);
        // The dense ranking barely separates a and b; the keyword ranking strongly prefers b.
        let hits = fuse(
            vec![hit("a", 0.91), hit("b", 0.90)],
            vec![hit("b", 9.0), hit("a", 1.0)],
            &req,
        );
        assert_eq!(hits[0].document.content, "b");
        assert!((hits[0].score - 0.8).abs() < 1e-6, "{}", hits[0].score);
        assert!((hits[1].score - 0.2).abs() < 1e-6, "{}", hits[1].score);
        // Keyword weight 0: the dense order.
        let dense_only = fuse(
            vec![hit("a", 0.91), hit("b", 0.90)],
            vec![hit("b", 9.0)],
            &req.clone().with_weights(1.0, 0.0),
        );
        assert_eq!(dense_only[0].document.content, "a");
    }
}
