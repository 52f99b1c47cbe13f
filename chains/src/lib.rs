//! Chains for Catena: compositions of the core traits (LLM chain, sequential chains,
//! retrieval QA, conversational retrieval, summarisation, SQL question answering), memory,
//! retrievers, incremental indexing and retrieval evaluation.
//!
//! Everything here works with any [`catena_core::ChatModel`], [`catena_core::Embedder`],
//! [`catena_core::VectorStore`] and [`catena_core::ChatHistory`] — never a concrete backend.
//!
//! | feature | default | adds |
//! | --- | --- | --- |
//! | `postgres` | no | chat history, record manager and read-only SQL database on PostgreSQL |
//! | `redis` | no | chat history on Redis |
//!
//! ```
//! use catena_core::{chain_fn, Chain, ChainExt};
//!
//! # futures::executor::block_on(async {
//! let trim = chain_fn(|s: String| async move { Ok(s.trim().to_owned()) });
//! let words = chain_fn(|s: String| async move { Ok(s.split_whitespace().count()) });
//! assert_eq!(trim.pipe(words).invoke("  two words ".into()).await.unwrap(), 2);
//! # });
//! ```

#![cfg_attr(docsrs, feature(doc_cfg))]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod compose;
pub mod conversational;
pub mod eval;
pub mod history;
pub mod indexing;
pub mod llm;
pub mod memory;
pub mod qa;
pub mod retrievers;
pub mod sequential;
pub mod sql;
pub mod summarize;

pub use compose::{
    batch_bounded, ChainComposeExt, Fallback, FallbackList, Retry, RetryPolicy, SharedChain,
    Timeout,
};
pub use conversational::{ConversationTurn, ConversationalAnswer, ConversationalRetrieval};
pub use eval::{evaluate, evaluate_ranking, EvalCase, EvalReport};
#[cfg(feature = "postgres")]
pub use history::PostgresChatHistory;
#[cfg(feature = "redis")]
pub use history::RedisChatHistory;
#[cfg(feature = "postgres")]
pub use indexing::PostgresRecordManager;
pub use indexing::{
    index, Cleanup, InMemoryRecordManager, IndexOptions, IndexReport, Record, RecordManager,
};
pub use llm::LlmChain;
pub use memory::{
    BufferMemory, Memory, SummaryBufferMemory, SummaryMemory, TokenBufferMemory, WindowMemory,
};
pub use qa::{QaAnswer, RetrievalQa};
pub use retrievers::{
    Bm25Retriever, BudgetedRetriever, ContextualCompressionRetriever, EnsembleRetriever,
    MultiQueryRetriever, ParentDocumentRetriever,
};
pub use sequential::{SequentialChain, SequentialError, SequentialStep};
#[cfg(feature = "postgres")]
pub use sql::PostgresSqlDatabase;
pub use sql::{SqlAnswer, SqlDatabase, SqlQaChain, SqlRows};
pub use summarize::{SummarizeError, SummarizeStrategy, Summarizer};
