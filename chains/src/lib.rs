//! Chains for Catena: compositions of the core traits (LLM chain, sequential chains,
//! retrieval QA, conversational retrieval, summarisation, SQL question answering), memory,
//! retrievers, incremental indexing and retrieval evaluation.
//!
//! Everything here works with any [`catena_core::ChatModel`], [`catena_core::Embedder`],
//! [`catena_core::VectorStore`], [`catena_core::ChatHistory`], [`catena_core::RecordManager`]
//! and [`catena_core::SqlDatabase`] — never a concrete backend, and with no database client:
//! the PostgreSQL and Redis chat histories, the PostgreSQL record manager and the read-only
//! PostgreSQL SQL database live in `catena-vectorstores` (features `postgres`, `redis`). The
//! crate has no features.
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

mod breaker;
mod cache;
mod compose;
mod conversational;
mod eval;
mod indexing;
mod limit;
mod llm;
mod loading;
mod memory;
mod qa;
mod retrievers;
pub mod runnable;
mod sequential;
mod sql;
mod summarize;

pub use breaker::{BreakerConfig, BreakerState, CircuitBreaker};
pub use cache::{
    CacheStats, CachedChatModel, CachedEmbedder, SemanticCachedChatModel, DEFAULT_CACHE_NAMESPACE,
    DEFAULT_CACHE_TTL, DEFAULT_SIMILARITY_THRESHOLD,
};
pub use compose::{
    batch_bounded, ComposeExt, Fallback, FallbackList, ModelFallbacks, Retry, SharedChain, Timeout,
};
pub use conversational::{
    format_chat_history, ConversationTurn, ConversationalAnswer, ConversationalRetrieval,
    ConversationalRetrievalBuilder, DEFAULT_CONDENSE_PROMPT,
};
pub use eval::{evaluate, evaluate_ranking, CaseScores, EvalCase, EvalReport};
pub use indexing::{content_key, index, Cleanup, IndexOptions, IndexReport};
pub use limit::{ClientLimits, Permit, RateLimited, RateLimiter, TokenEstimator};
pub use llm::{parse_chat_stream, LlmChain, FORMAT_INSTRUCTIONS_VARIABLE};
pub use loading::AsyncDocumentLoader;
pub use memory::{
    message_tokens, summary_session, BufferMemory, Memory, SummaryBufferMemory, SummaryMemory,
    TokenBufferMemory, WindowMemory, DEFAULT_MEMORY_SUMMARY_PROMPT, MESSAGE_OVERHEAD_TOKENS,
    SUMMARY_MESSAGE_PREFIX,
};
pub use qa::{
    stuff_documents, PreparedAnswer, QaAnswer, QaEvent, QaEventStream, RetrievalQa,
    RetrievalQaBuilder, DEFAULT_DOCUMENT_SEPARATOR, DEFAULT_QA_PROMPT,
};
pub use retrievers::{
    reciprocal_rank_fusion, trim_to_token_budget, Bm25Retriever, BudgetedRetriever,
    ContextualCompressionRetriever, DocumentCompressor, EmbeddingsFilter, EnsembleRetriever,
    InMemoryDocStore, LlmFilter, LlmReranker, MultiQueryRetriever, ParentDocumentRetriever,
    RerankCompressor, LLM_FILTER_PROMPT, LLM_RERANK_PROMPT, MULTI_QUERY_PROMPT, PARENT_ID_KEY,
    RELEVANCE_SCORE_KEY,
};
pub use sequential::{
    SequentialChain, SequentialChainBuilder, SequentialError, SequentialStep, Values,
};
pub use sql::{
    extract_sql, SqlAnswer, SqlDatabase, SqlQaChain, SqlQaChainBuilder, SqlRows,
    DEFAULT_SQL_ANSWER_PROMPT, DEFAULT_SQL_QUERY_PROMPT,
};
pub use summarize::{
    SummarizeError, SummarizeStrategy, Summarizer, DEFAULT_REFINE_PROMPT, DEFAULT_SUMMARY_PROMPT,
    SUMMARY_SEPARATOR,
};
