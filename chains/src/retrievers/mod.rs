//! Retrievers beyond the plain vector-store one: several phrasings of the question
//! ([`MultiQueryRetriever`]), keyword search in process ([`Bm25Retriever`]), fusion of several
//! retrievers ([`EnsembleRetriever`]), filtering by an embedding or model judge
//! ([`ContextualCompressionRetriever`]), small chunks indexed but their parents returned
//! ([`ParentDocumentRetriever`]), and a token budget for the context ([`BudgetedRetriever`]).
//!
//! Every one implements [`catena_core::Retriever`] and wraps any other, so they compose.
//! For MMR over a vector store, see
//! [`VectorStoreRetriever::with_mmr`](catena_core::VectorStoreRetriever::with_mmr).
//!
//! ```
//! use std::sync::Arc;
//! use catena_core::{Document, Retriever};
//! use catena_chains::{Bm25Retriever, EnsembleRetriever};
//!
//! # futures::executor::block_on(async {
//! let docs = vec![
//!     Document::new("Rust ownership moves values").with_id("a"),
//!     Document::new("Borrowing lends a value").with_id("b"),
//!     Document::new("Sourdough bread needs time").with_id("c"),
//! ];
//! let keyword = Arc::new(Bm25Retriever::new(docs.clone()).with_k(2));
//! let fused = EnsembleRetriever::new(vec![keyword.clone(), keyword]);
//! let hits = fused.retrieve("borrowing a value").await.unwrap();
//! assert_eq!(hits[0].id.as_ref().unwrap().as_str(), "b");
//! # });
//! ```

mod bm25;
mod budget;
mod compression;
mod ensemble;
mod multi_query;
mod parent;
mod rerank;

pub use bm25::Bm25Retriever;
pub use budget::{trim_to_token_budget, BudgetedRetriever};
pub use compression::{
    ContextualCompressionRetriever, DocumentCompressor, EmbeddingsFilter, LlmFilter,
    LLM_FILTER_PROMPT,
};
pub use ensemble::{reciprocal_rank_fusion, EnsembleRetriever};
pub use multi_query::{MultiQueryRetriever, DEFAULT_PROMPT as MULTI_QUERY_PROMPT};
pub use parent::{InMemoryDocStore, ParentDocumentRetriever, PARENT_ID_KEY};
pub use rerank::{LlmReranker, RerankCompressor, LLM_RERANK_PROMPT, RELEVANCE_SCORE_KEY};

use catena_core::{Document, DocumentId};

/// The key documents are de-duplicated by: the id, or the derived id of content and source.
pub(crate) fn dedup_key(doc: &Document) -> DocumentId {
    doc.id_or_derived()
}
