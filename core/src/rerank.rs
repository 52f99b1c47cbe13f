//! Rerankers: score documents against a query, best first.
//!
//! A [`Reranker`] reads the query and each candidate together (a cross-encoder, an LLM asked
//! for a relevance score, or a hosted rerank API) and is slower but sharper than the
//! similarity a first-stage search ranks by. Rerank the few dozen candidates a search
//! returns, not a whole corpus.
//!
//! ```
//! use async_trait::async_trait;
//! use catena_core::{Document, Reranker, RerankResult, Result};
//!
//! /// Scores by the number of query words a document contains (an illustration).
//! struct WordOverlap;
//!
//! #[async_trait]
//! impl Reranker for WordOverlap {
//!     async fn rerank(&self, query: &str, documents: &[Document], top_n: usize) -> Result<Vec<RerankResult>> {
//!         let mut scored: Vec<RerankResult> = documents
//!             .iter()
//!             .enumerate()
//!             .map(|(index, d)| {
//!                 let hits = query.split_whitespace().filter(|w| d.content.contains(w)).count();
//!                 RerankResult::new(index, hits as f32)
//!             })
//!             .collect();
//!         catena_core::sort_rerank_results(&mut scored);
//!         scored.truncate(top_n);
//!         Ok(scored)
//!     }
//! }
//!
//! # futures::executor::block_on(async {
//! let docs = [Document::new("cats purr"), Document::new("rust borrow checker")];
//! let top = WordOverlap.rerank("rust borrow", &docs, 1).await.unwrap();
//! assert_eq!(top[0].index, 1);
//! # });
//! ```

use std::cmp::Ordering;
use std::sync::Arc;

use async_trait::async_trait;

use crate::document::Document;
use crate::error::Result;

/// One document's relevance to the query: its position in the input slice and its score
/// (higher is more relevant; the scale is the reranker's own).
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct RerankResult {
    /// Index of the document in the slice given to [`Reranker::rerank`].
    pub index: usize,
    /// Relevance; higher is better. Comparable only within one reranker.
    pub score: f32,
}

impl RerankResult {
    /// A result for the document at `index`.
    pub fn new(index: usize, score: f32) -> Self {
        RerankResult { index, score }
    }
}

/// Sorts results best first: by score descending (NaN last), ties by input position.
pub fn sort_rerank_results(results: &mut [RerankResult]) {
    results.sort_by(|a, b| match (a.score.is_nan(), b.score.is_nan()) {
        (true, false) => Ordering::Greater,
        (false, true) => Ordering::Less,
        _ => b
            .score
            .partial_cmp(&a.score)
            .unwrap_or(Ordering::Equal)
            .then(a.index.cmp(&b.index)),
    });
}

/// Scores documents against a query.
#[async_trait]
pub trait Reranker: Send + Sync {
    /// The `top_n` most relevant of `documents` (fewer when there are fewer), best first,
    /// each naming its index in `documents`. No index appears twice.
    ///
    /// # Errors
    /// Failures of the model or service behind the reranker; [`crate::Error::InvalidInput`]
    /// for input it cannot score.
    async fn rerank(
        &self,
        query: &str,
        documents: &[Document],
        top_n: usize,
    ) -> Result<Vec<RerankResult>>;
}

#[async_trait]
impl<T: Reranker + ?Sized> Reranker for Arc<T> {
    async fn rerank(
        &self,
        query: &str,
        documents: &[Document],
        top_n: usize,
    ) -> Result<Vec<RerankResult>> {
        (**self).rerank(query, documents, top_n).await
    }
}

#[async_trait]
impl<T: Reranker + ?Sized> Reranker for Box<T> {
    async fn rerank(
        &self,
        query: &str,
        documents: &[Document],
        top_n: usize,
    ) -> Result<Vec<RerankResult>> {
        (**self).rerank(query, documents, top_n).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_sort_best_first_with_nan_last_and_stable_ties() {
        let mut r = vec![
            RerankResult::new(0, 0.5),
            RerankResult::new(1, f32::NAN),
            RerankResult::new(2, 0.9),
            RerankResult::new(3, 0.5),
        ];
        sort_rerank_results(&mut r);
        let order: Vec<usize> = r.iter().map(|x| x.index).collect();
        assert_eq!(order, vec![2, 0, 3, 1]);
    }
}
