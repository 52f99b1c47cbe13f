//! Catena core: the vocabulary every Catena crate speaks.
//!
//! Messages and documents, the component traits ([`ChatModel`], [`Embedder`],
//! [`VectorStore`], [`Retriever`], [`Tool`], [`ChatHistory`], [`Chain`]), prompt templates,
//! output parsers, text splitters, document loaders and one error type. No network clients,
//! no runtime: backends live in `catena-llms` and `catena-vectorstores`, and depend on this.
//!
//! # Features
//! | feature | default | what it adds |
//! | --- | --- | --- |
//! | `test-utils` | no | [`test_utils`]: a scripted chat model, a deterministic embedder, and the conformance suites backends run |
//! | `pdf` | no | `loader::PdfLoader`: the text of each page of a PDF (pure Rust, `lopdf`) |
//! | `docx` | no | `loader::DocxLoader`: the text of a Word (.docx) file (pure Rust, `zip` + `quick-xml`) |
//!
//! # Example
//! ```
//! use std::sync::Arc;
//! use catena_core::{ChatModel, ChatModelExt, ChatRequest, Message};
//! use catena_core::prompt::PromptTemplate;
//! use catena_core::test_utils::ScriptedChatModel;
//!
//! # futures::executor::block_on(async {
//! let prompt = PromptTemplate::new("Answer briefly: {question}").unwrap();
//! let text = prompt.format([("question", "What is Rust?")]).unwrap();
//!
//! let model: Arc<dyn ChatModel> = ScriptedChatModel::new().with_text("A language.").boxed();
//! let answer = model.generate(ChatRequest::new(vec![Message::user(text)])).await.unwrap();
//! assert_eq!(answer.text(), "A language.");
//! # });
//! ```

#![cfg_attr(docsrs, feature(doc_cfg))]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod backend;
mod cache;
mod chain;
mod chat;
mod checkpoint;
mod cost;
mod document;
mod embed;
mod error;
mod history;
mod message;
mod record;
mod rerank;
mod retriever;
mod retry;
mod sql;
mod tool;
mod traced;
mod vectorstore;

pub mod genai_metrics;
pub mod keyword;
pub mod loader;
pub mod parser;
pub mod prompt;
pub mod splitter;
#[cfg(feature = "test-utils")]
#[cfg_attr(docsrs, doc(cfg(feature = "test-utils")))]
pub mod test_utils;

pub use cache::{
    CacheStore, InMemoryCacheStore, InMemorySemanticCacheStore, SemanticCacheStore, SemanticEntry,
    SemanticHit,
};
pub use chain::{chain_fn, stream_once, Chain, ChainExt, ChainStream, FnChain, Pipe};
pub use chat::{
    collect_stream, ChatChunk, ChatModel, ChatModelExt, ChatRequest, ChatResponse, ChatStream,
    ModelInfo, PromptCache, ReasoningEffort, ReasoningOptions, ResponseFormat, StreamAccumulator,
    ToolChoice, TracedChatModel,
};
pub use checkpoint::{
    validate_run_id, Checkpoint, CheckpointError, Checkpointer, FileCheckpointer,
    InMemoryCheckpointer,
};
pub use cost::{Cost, ModelPrice, PriceTable, StalePolicy};
pub use document::{Document, DocumentId, Metadata};
pub use embed::{Embedder, Embedding};
pub use error::{BoxError, Error, ProviderError, ProviderErrorKind, RateLimitInfo, Result};
pub use history::{ChatHistory, InMemoryChatHistory, SessionId};
pub use loader::{DocumentLoader, LoadError};
pub use message::{
    ContentPart, FinishReason, ImageDetail, ImageSource, Message, ReasoningBlock, Role, ToolCall,
    Usage,
};
pub use parser::{OutputParser, ParseError};
pub use prompt::{ChatPromptTemplate, MessagesPlaceholder, Prompt, PromptError, PromptTemplate};
pub use record::{InMemoryRecordManager, Record, RecordManager};
pub use rerank::{sort_rerank_results, RerankResult, Reranker};
pub use retriever::{Retriever, VectorStoreRetriever};
pub use retry::RetryPolicy;
pub use splitter::{
    count_tokens, CharacterTextSplitter, MarkdownHeaderTextSplitter,
    RecursiveCharacterTextSplitter, TextSplitter, TokenEncoding, TokenTextSplitter,
};
pub use sql::{SqlDatabase, SqlRows};
pub use tool::{
    schema_for, Tool, ToolCallContext, ToolDefinition, ToolError, ToolOutput, TypedTool,
    TypedToolAdapter,
};
pub use traced::{TracedEmbedder, TracedRetriever, TracedTool};
pub use vectorstore::{
    fuse, EmbeddedDocument, FailedUpsert, Filter, Fusion, HybridHit, HybridRequest,
    HybridRetriever, HybridSearch, MmrRequest, RangeBound, RangeFilter, ScoredDocument,
    SearchRequest, UpsertReport, VectorStore, VectorStoreExt, DEFAULT_EMBED_BATCH,
};

/// The traits, for `use catena_core::prelude::*`.
pub mod prelude {
    pub use crate::{
        Chain, ChainExt, ChatHistory, ChatModel, ChatModelExt, DocumentLoader, Embedder,
        OutputParser, Prompt, Retriever, TextSplitter, Tool, TypedTool, VectorStore,
        VectorStoreExt,
    };
}

// Contracts checked at compile time: the component traits are object-safe, and their
// trait objects can be shared across threads.
#[allow(dead_code)]
fn _assert_contracts() {
    use std::sync::Arc;
    fn assert_send_sync<T: Send + Sync + ?Sized>() {}
    assert_send_sync::<Arc<dyn ChatModel>>();
    assert_send_sync::<Arc<dyn Embedder>>();
    assert_send_sync::<Arc<dyn VectorStore>>();
    assert_send_sync::<Arc<dyn Retriever>>();
    assert_send_sync::<Arc<dyn Tool>>();
    assert_send_sync::<Arc<dyn ChatHistory>>();
    assert_send_sync::<Arc<dyn RecordManager>>();
    assert_send_sync::<Arc<dyn Chain<String, String>>>();
    assert_send_sync::<Error>();
    fn assert_send<T: Send + ?Sized>() {}
    assert_send::<ChatStream>();
    // Boxed trait objects are components too (the forwarding impls exist for Arc and Box).
    fn forwards<H: ChatHistory, S: SqlDatabase, R: RecordManager, M: ChatModel, T: Tool>() {}
    forwards::<
        Box<dyn ChatHistory>,
        Box<dyn SqlDatabase>,
        Box<dyn RecordManager>,
        Box<dyn ChatModel>,
        Box<dyn Tool>,
    >();
}
