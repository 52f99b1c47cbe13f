//! Vector stores for Catena, and everything else Catena keeps in a database, one module per
//! engine.
//!
//! Every store implements [`catena_core::VectorStore`] and passes the shared conformance
//! suite (`catena_core::test_utils::vector_store_conformance`). The chat histories pass
//! `catena_core::test_utils::chat_history_conformance` and the record manager
//! `catena_core::test_utils::record_manager_conformance` (feature `test-utils` of core).
//!
//! | feature | default | adds |
//! | --- | --- | --- |
//! | — | always built | [`InMemoryVectorStore`]: exact search in process memory, optionally kept in an append-only file; [`FileRecordManager`]: ingest records in such a file |
//! | `hnsw` | off | [`HnswConfig`]: an approximate (HNSW, over int8 codes) index for [`InMemoryVectorStore`], used from a configurable size; hits scored exactly, deleted documents never returned, filtered searches still fill `k` |
//! | `postgres` | off | PostgreSQL (tokio-postgres + deadpool, one shared connection config): [`PostgresChatHistory`], [`PostgresRecordManager`] (ingest records for `catena_chains::index`), [`PostgresSqlDatabase`] (read-only SQL for model-written queries) |
//! | `pgvector` | off | [`pgvector::PgVectorStore`]: PostgreSQL + pgvector, HNSW/IVFFlat, hybrid search; implies `postgres` |
//! | `qdrant` | off | [`qdrant::QdrantStore`]: Qdrant over gRPC, payload indexes, hybrid (dense + BM25) search, tenants |
//! | `redis` | off | [`RedisChatHistory`]: chat history in Redis lists, optional TTL; [`RedisCacheStore`]: the exact and semantic cache stores of `catena_chains`' caching layers, shared by replicas |
//!
//! ```
//! use catena_core::{Document, EmbeddedDocument, Filter, SearchRequest, VectorStore};
//! use catena_vectorstores::{DistanceMetric, InMemoryVectorStore};
//!
//! # futures::executor::block_on(async {
//! let store = InMemoryVectorStore::builder().metric(DistanceMetric::Cosine).build().unwrap();
//! store.upsert(vec![
//!     EmbeddedDocument::new(Document::new("red").with_id("a").with_metadata("kind", "colour"), vec![1.0, 0.0]),
//!     EmbeddedDocument::new(Document::new("car").with_id("b").with_metadata("kind", "thing"), vec![0.9, 0.1]),
//! ]).await.unwrap();
//! let hits = store
//!     .search(SearchRequest::new(vec![1.0, 0.0], 5).with_filter(Filter::eq("kind", "thing")))
//!     .await
//!     .unwrap();
//! assert_eq!(hits.len(), 1);
//! assert_eq!(hits[0].document.content, "car");
//! # });
//! ```

#![cfg_attr(docsrs, feature(doc_cfg))]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

mod memory;
#[cfg(feature = "pgvector")]
#[cfg_attr(docsrs, doc(cfg(feature = "pgvector")))]
pub mod pgvector;
#[cfg(feature = "postgres")]
mod postgres;
#[cfg(feature = "qdrant")]
#[cfg_attr(docsrs, doc(cfg(feature = "qdrant")))]
pub mod qdrant;
#[cfg(feature = "redis")]
mod redis;
#[cfg(any(feature = "postgres", feature = "redis"))]
mod stored_messages;

#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;

#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub use self::redis::{
    RedisCacheStore, RedisCacheStoreBuilder, RedisChatHistory, RedisChatHistoryBuilder,
    REDIS_URL_ENV,
};
#[cfg(feature = "hnsw")]
#[cfg_attr(docsrs, doc(cfg(feature = "hnsw")))]
pub use memory::HnswConfig;
pub use memory::{
    CorruptFile, DistanceMetric, FileRecordManager, InMemoryVectorStore,
    InMemoryVectorStoreBuilder, Quantization, VectorPrecision,
};
#[cfg(feature = "postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
pub use postgres::{
    PostgresChatHistory, PostgresChatHistoryBuilder, PostgresCheckpointer,
    PostgresCheckpointerBuilder, PostgresRecordManager, PostgresRecordManagerBuilder,
    PostgresSqlDatabase, PostgresSqlDatabaseBuilder, DATABASE_URL_ENV,
};

/// The README's Rust examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
struct ReadmeDoctests;
