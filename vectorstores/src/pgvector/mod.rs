//! PostgreSQL + pgvector: [`PgVectorStore`], a [`VectorStore`](catena_core::VectorStore) on a
//! real database, with SQL-side filtering, HNSW/IVFFlat indexes and hybrid (full-text +
//! vector) search. Feature `pgvector`.
//!
//! The driver is `tokio-postgres` with a `deadpool-postgres` pool, chosen over `sqlx`: it is
//! lighter (no macros, no compile-time database), gives direct access to binary parameters
//! and `COPY`, and pgvector's `Vector` type plugs straight into it. TLS is not built in;
//! pass a [`pool`](PgVectorStoreBuilder::pool) made with a TLS connector when you need it.
//! The connection settings (`url`, `pool`, `max_connections`, `connect_timeout`), the pool
//! and the error mapping are the ones every PostgreSQL type of this crate shares (feature
//! `postgres`, which `pgvector` turns on), so the store and, say,
//! [`PostgresChatHistory`](crate::PostgresChatHistory) can share one pool.
//!
//! ```no_run
//! use catena_core::{Document, EmbeddedDocument, Filter, SearchRequest, VectorStore};
//! use catena_vectorstores::pgvector::{HybridRequest, HybridSearch, Index, PgVectorStore};
//! use catena_vectorstores::DistanceMetric;
//!
//! # async fn run() -> catena_core::Result<()> {
//! let store = PgVectorStore::builder()
//!     .url("postgres://catena:catena@127.0.0.1:5432/catena_test")
//!     .collection("faq")
//!     .dimensions(3)
//!     .metric(DistanceMetric::Cosine)
//!     .embedding_model("text-embedding-3-small")
//!     .index(Index::hnsw())
//!     .build()
//!     .await?;
//! let report = store
//!     .upsert(vec![EmbeddedDocument::new(
//!         Document::new("Rust has no garbage collector.").with_metadata("lang", "rust"),
//!         vec![0.1, 0.9, 0.2],
//!     )])
//!     .await?;
//! assert_eq!(report.inserted, 1);
//! let hits = store
//!     .search(SearchRequest::new(vec![0.1, 0.8, 0.3], 5).with_filter(Filter::eq("lang", "rust")))
//!     .await?;
//! let fused = store
//!     .hybrid_search(HybridRequest::new("garbage collector", vec![0.1, 0.8, 0.3], 5))
//!     .await?;
//! # let _ = (hits, fused);
//! # Ok(())
//! # }
//! ```
//!
//! # Schema
//! [`migrate`](PgVectorStore::migrate) (run by `build()` unless
//! [`create_if_missing(false)`](PgVectorStoreBuilder::create_if_missing)) creates, under an
//! advisory lock and in one transaction:
//! - the `vector` extension, when missing;
//! - the catalog `catena_collections (name, dimensions, metric, embedding_model,
//!   text_search_config, created_at)`; opening a collection with another dimension, metric,
//!   embedding model or text configuration is [`Error::InvalidConfig`](catena_core::Error)
//!   naming both values;
//! - one table per collection: `id text PRIMARY KEY, content text, metadata jsonb,
//!   embedding vector(n), content_tsv tsvector GENERATED ALWAYS AS (to_tsvector(cfg, content))`;
//! - a GIN index on `metadata` (`jsonb_path_ops`, serving the `@>` containment tests equality
//!   filters compile to), a GIN index on `content_tsv`, and the configured [`Index`].
//!
//! # Scores
//! Higher is closer, and equal to [`InMemoryVectorStore`](crate::InMemoryVectorStore)'s:
//!
//! | metric | operator | score |
//! | --- | --- | --- |
//! | [`Cosine`](crate::DistanceMetric::Cosine) | `<=>` | `1 - (a <=> b)`, the cosine similarity in `[-1, 1]` |
//! | [`DotProduct`](crate::DistanceMetric::DotProduct) | `<#>` | `-(a <#> b)`, the inner product |
//! | [`Euclidean`](crate::DistanceMetric::Euclidean) | `<->` | `1 / (1 + (a <-> b))`, in `(0, 1]` |
//!
//! A `score_threshold` is applied in SQL to that expression.
//!
//! # Filters
//! A [`Filter`](catena_core::Filter) compiles to SQL in which every value and every key
//! segment is a bound parameter; keys are validated before any SQL exists, so a key like
//! `a') OR 1=1 --` is [`Error::InvalidInput`](catena_core::Error) and a value like
//! `'; DROP TABLE x; --` matches literally. With an HNSW or IVFFlat index, searches run with
//! `SET LOCAL hnsw.iterative_scan = relaxed_order` (pgvector ≥ 0.8), so a selective filter
//! still returns `k` rows instead of the handful the first index pass happened to visit.
//!
//! # Writes
//! An upsert validates the whole batch first (nothing is written on bad input), keeps the
//! last document per id, and writes in one transaction with
//! `INSERT … SELECT FROM unnest(…) ON CONFLICT (id) DO UPDATE … WHERE … IS DISTINCT FROM`
//! (statements of [`batch_size`](PgVectorStoreBuilder::batch_size) rows, pipelined). Each
//! statement carries its rows as four binary array parameters, which costs about what a
//! binary `COPY` does without its temporary table. A lost connection (server restart,
//! `pg_terminate_backend`) is retried once on a fresh connection; reads are retried the same
//! way, deletes are not (their counts would be wrong).

mod builder;
mod filter;
mod hybrid;
mod schema;
mod sql;
mod store;

use catena_core::{Error, Result};

use crate::DistanceMetric;
pub use builder::PgVectorStoreBuilder;
pub use catena_core::{Fusion, HybridHit, HybridRequest, HybridSearch};
pub use store::{PgVectorStore, QueryOptions};

/// An approximate-nearest-neighbour index on the embedding column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Index {
    /// No index: exact (sequential) search. The default.
    #[default]
    None,
    /// HNSW: the better speed/recall trade-off; can be built on an empty table.
    Hnsw {
        /// Connections per node (2..=100; pgvector's default 16).
        m: u32,
        /// Candidate list size while building (at least `2·m`, at most 1000; default 64).
        ef_construction: u32,
    },
    /// IVFFlat: faster to build, lower recall; build it after loading data.
    IvfFlat {
        /// Number of lists (1..=32768; about rows/1000 up to 1M rows).
        lists: u32,
    },
}

impl Index {
    /// HNSW with pgvector's defaults (`m = 16`, `ef_construction = 64`).
    pub fn hnsw() -> Index {
        Index::Hnsw {
            m: 16,
            ef_construction: 64,
        }
    }

    /// IVFFlat with `lists` lists.
    pub fn ivfflat(lists: u32) -> Index {
        Index::IvfFlat { lists }
    }

    fn validate(&self) -> Result<()> {
        match *self {
            Index::None => Ok(()),
            Index::Hnsw { m, ef_construction } => {
                if !(2..=100).contains(&m) {
                    return Err(Error::invalid_config(format!(
                        "HNSW m must be within 2..=100, got {m}"
                    )));
                }
                if ef_construction < 2 * m || ef_construction > 1000 {
                    return Err(Error::invalid_config(format!(
                        "HNSW ef_construction must be within 2·m..=1000, got {ef_construction}"
                    )));
                }
                Ok(())
            }
            Index::IvfFlat { lists } => {
                if !(1..=32_768).contains(&lists) {
                    return Err(Error::invalid_config(format!(
                        "IVFFlat lists must be within 1..=32768, got {lists}"
                    )));
                }
                Ok(())
            }
        }
    }
}
