//! Catena: a LangChain-style framework for Rust — typed building blocks for
//! retrieval-augmented generation (RAG) and tool-using agents — in one dependency.
//!
//! ```toml
//! [dependencies]
//! catena = { version = "0.1", features = ["openai", "qdrant"] }
//! ```
//!
//! Each module re-exports one of the Catena crates, so an item has one path under this
//! crate (`catena::core::ChatModel`, `catena::llms::openai::OpenAiChatModel`,
//! `catena::chains::RetrievalQa`, …) and the same path under its own crate for those who
//! depend on the crates directly.
//!
//! | module | crate | what it gives you |
//! | --- | --- | --- |
//! | [`core`] | `catena-core` | messages, documents, the component traits, prompts, parsers, splitters, loaders, the retry policy, tracing decorators |
//! | [`llms`] | `catena-llms` | OpenAI, Gemini, Ollama, local (candle) chat models and embedders |
//! | [`vectorstores`] | `catena-vectorstores` | every engine in one place: in-memory, PostgreSQL (pgvector, chat history, record manager, SQL), Qdrant, Redis |
//! | [`chains`] | `catena-chains` | composition (retry, timeout, fallback), LLM/QA/conversational/summarisation/SQL chains, memory, retrievers, indexing, evaluation |
//! | [`agents`] | `catena-agents` | the tool-calling executor, ReAct, router, the gRPC delegation contract, OpenTelemetry propagation |
//! | [`tools`] | `catena-tools` | calculator, time, retriever and SQL tools, `tool_fn`, web tools, MCP |
//!
//! | feature | default | adds |
//! | --- | --- | --- |
//! | `openai`, `gemini`, `ollama` | yes | the hosted providers |
//! | `local` | no | in-process candle models (and the cross-encoder reranker) |
//! | `cohere` | no | Cohere's hosted reranker |
//! | `pdf`, `docx` | no | the PDF and Word (.docx) document loaders |
//! | `postgres`, `pgvector`, `qdrant`, `redis` | no | the database engines |
//! | `grpc`, `otel`, `otlp` | no | the agent delegation contract and OpenTelemetry |
//! | `web`, `mcp` | no | web tools and MCP servers' tools |
//! | `test-utils` | no | test doubles and the conformance suites |
//!
//! ```
//! use catena::core::prelude::*;
//! use catena::core::{Document, EmbeddedDocument, SearchRequest};
//! use catena::vectorstores::InMemoryVectorStore;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> catena::core::Result<()> {
//! let store = InMemoryVectorStore::builder().build()?;
//! store
//!     .upsert(vec![EmbeddedDocument::new(Document::new("Catena is a Rust framework."), vec![1.0, 0.0])])
//!     .await?;
//! let hits = store.search(SearchRequest::new(vec![1.0, 0.0], 1)).await?;
//! assert_eq!(hits[0].document.content, "Catena is a Rust framework.");
//! # Ok(())
//! # }
//! ```

#![cfg_attr(docsrs, feature(doc_cfg))]

#[doc(inline)]
pub use catena_agents as agents;
#[doc(inline)]
pub use catena_chains as chains;
#[doc(inline)]
pub use catena_core as core;
#[doc(inline)]
pub use catena_llms as llms;
#[doc(inline)]
pub use catena_tools as tools;
#[doc(inline)]
pub use catena_vectorstores as vectorstores;

/// The guides in `docs/guides`, compiled (and, except the first, run) as doctests by
/// `cargo test`, so that every program a guide shows works as written. Not part of the API:
/// it exists only while doctests are collected.
#[cfg(all(
    doctest,
    feature = "local",
    feature = "openai",
    feature = "anthropic",
    feature = "gemini",
    feature = "qdrant",
    feature = "pgvector",
    feature = "test-utils"
))]
pub mod guides {
    #[doc = include_str!("../../docs/guides/rag-local.md")]
    pub struct RagLocal;
    #[doc = include_str!("../../docs/guides/rag-backends.md")]
    pub struct RagBackends;
    #[doc = include_str!("../../docs/guides/agent.md")]
    pub struct Agent;
    #[doc = include_str!("../../docs/guides/streaming.md")]
    pub struct Streaming;
    #[doc = include_str!("../../docs/guides/custom-backends.md")]
    pub struct CustomBackends;
    #[doc = include_str!("../../docs/models.md")]
    pub struct Models;
    #[doc = include_str!("../../docs/agents.md")]
    pub struct Agents;
}
