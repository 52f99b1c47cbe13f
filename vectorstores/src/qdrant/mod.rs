//! A vector store on [Qdrant](https://qdrant.tech), over gRPC (`qdrant-client`).
//!
//! [`QdrantStore`] implements [`VectorStore`](catena_core::VectorStore): upsert with a
//! per-point failure report, search with every [`Filter`](catena_core::Filter) operator but
//! text ranges, MMR, delete by ids and by filter, get, count; plus
//! [hybrid search](QdrantStore::hybrid_search) (dense + BM25 sparse, fused with RRF) and
//! optional multi-tenancy. It needs Qdrant 1.16 or newer (the query API and the vector
//! wire format of `qdrant-client` 1.20).
//!
//! ```no_run
//! use catena_core::{Document, EmbeddedDocument, Filter, SearchRequest, VectorStore};
//! use catena_vectorstores::qdrant::{PayloadIndexKind, QdrantStore};
//! use catena_vectorstores::DistanceMetric;
//!
//! # async fn run() -> catena_core::Result<()> {
//! let store = QdrantStore::builder()
//!     .url("http://localhost:6334")
//!     .collection("docs")
//!     .dimensions(3)
//!     .metric(DistanceMetric::Cosine)
//!     .payload_index("lang", PayloadIndexKind::Keyword)
//!     .build()?;
//! let report = store
//!     .upsert(vec![EmbeddedDocument::new(
//!         Document::new("Rust has no garbage collector.").with_metadata("lang", "rust"),
//!         vec![0.1, 0.9, 0.2],
//!     )])
//!     .await?;
//! assert!(report.is_complete());
//! let hits = store
//!     .search(SearchRequest::new(vec![0.1, 0.8, 0.3], 5).with_filter(Filter::eq("lang", "rust")))
//!     .await?;
//! println!("{:?}", hits.first().map(|h| h.score));
//! # Ok(())
//! # }
//! ```
//!
//! # Collection
//! On first use (or [`QdrantStore::ensure_collection`]) the store checks the collection. A
//! missing one is created (unless [`create_if_missing(false)`](QdrantStoreBuilder::create_if_missing))
//! with a **named** dense vector `dense` of the configured dimension and distance, the HNSW
//! settings, and, with [`hybrid(true)`](QdrantStoreBuilder::hybrid), a sparse vector
//! `sparse` with Qdrant's IDF modifier. An existing collection with another dimension or
//! distance, or without the vectors the store needs, is an
//! [`Error::InvalidConfig`](catena_core::Error::InvalidConfig) naming both sides; an
//! existing collection with a single unnamed vector is accepted when hybrid search is off.
//! Payload indexes (and the tenant index) are created or confirmed each time.
//!
//! # Points
//! Qdrant point ids must be UUIDs or integers, so each [`DocumentId`](catena_core::DocumentId)
//! maps to the UUIDv5 of the id under a fixed namespace (of the tenant and the id, under
//! another namespace, in a multi-tenant store); [`QdrantStore::point_id`] computes it.
//! The payload holds the original id in [`PAYLOAD_ID`], the text in [`PAYLOAD_CONTENT`]
//! and the metadata, as JSON, under [`METADATA_FIELD`]; a multi-tenant store adds its
//! tenant key at the top level. Integers above `i64::MAX` in metadata are refused
//! (`InvalidInput`): Qdrant cannot hold them exactly. With cosine distance Qdrant stores
//! vectors normalised, so returned vectors are unit length.
//!
//! # Writes
//! An upsert validates every vector and every metadata value before any request. It then
//! fetches the stored version of each point (payload and vector, one read per batch) to
//! count inserted, updated and unchanged documents — that read roughly doubles the cost of
//! ingesting — and writes the changed ones in batches of `batch_size` with `wait = true`.
//! Qdrant batches are not atomic: a batch that fails transiently (`UNAVAILABLE`,
//! `DEADLINE_EXCEEDED`, `RESOURCE_EXHAUSTED`) is retried per the builder's [`catena_core::RetryPolicy`]; a batch
//! the server rejects (`INVALID_ARGUMENT` and the like) is split in halves until each
//! rejected point is alone, so every good point is stored once and every bad one is named
//! in [`UpsertReport::failed`](catena_core::UpsertReport::failed) with the server's reason.
//! Any other failure ends the call with an error; points of earlier batches stay written
//! and re-running the upsert is safe (ids are deterministic). `delete` and
//! `delete_by_filter` count the matching points, then delete them (two requests).
//!
//! # Filters
//! Filters compile to Qdrant conditions on `metadata.<key>` (see the [`Filter`](catena_core::Filter)
//! semantics): `Eq` on a string is a keyword match, on a boolean a boolean match, on a
//! number an exact range `gte = lte = x` (so `1` matches `1.0`; integers beyond 2^53 use an
//! exact integer match), on `null` an `is_null`; `Ne`/`NotIn` wrap it in `must_not`, so
//! missing keys match; `In` is a keyword-list match or an `Or` of equalities; numeric
//! `Range` is a Qdrant range; `Exists` is `must_not is_empty`; `And`/`Or`/`Not` nest as
//! `must`/`should`/`must_not`. `And []` matches everything; `Or []` and `In []` match
//! nothing and are answered without a request. Where Qdrant differs, it wins:
//! - A range with **text** bounds is refused with `InvalidInput` (Qdrant has no
//!   lexicographic range); run the conformance suite with `.text_ranges(false)`.
//! - `Eq` against a whole array or object is refused with `InvalidInput`.
//! - Conditions hold when **any element** of an array field holds, so a numeric range on
//!   an array of numbers can match (it never does in [`Filter::matches`](catena_core::Filter::matches)),
//!   and `Exists` does not match an empty array (Qdrant treats `[]` as empty).
//!
//! # Scores
//! Higher is closer: cosine similarity, the dot product, and for Euclid `1 / (1 + d)`
//! (Qdrant returns the distance `d`; a score threshold `t` is sent as the maximum distance
//! `1/t − 1`). MMR is the [`VectorStore`](catena_core::VectorStore) default: `fetch_k`
//! candidates with their vectors, re-ranked by Catena.
//!
//! # Multi-tenancy
//! With [`tenant_key`](QdrantStoreBuilder::tenant_key), each store value serves one tenant
//! ([`builder().tenant(..)`](QdrantStoreBuilder::tenant) or
//! [`for_tenant`](QdrantStore::for_tenant)): writes set the tenant field, and every search,
//! get, count and delete is limited to it. A multi-tenant store without a tenant refuses
//! every operation with `InvalidConfig`.

mod builder;
mod collection;
mod error;
mod filter;
mod ids;
mod payload;
mod sparse;
mod store;

pub use builder::{PayloadIndexKind, QdrantStoreBuilder};
pub use sparse::{Bm25, SparseEmbedding};
pub use store::QdrantStore;

/// The environment variable naming the Qdrant gRPC url.
pub const QDRANT_URL_ENV: &str = "QDRANT_URL";
/// The environment variable holding the Qdrant API key.
pub const QDRANT_API_KEY_ENV: &str = "QDRANT_API_KEY";
/// The url used when none is configured: Qdrant's local gRPC port.
pub const DEFAULT_URL: &str = "http://localhost:6334";
/// The payload field holding a point's original [`DocumentId`](catena_core::DocumentId).
pub const PAYLOAD_ID: &str = "_catena_id";
/// The payload field holding a point's text.
pub const PAYLOAD_CONTENT: &str = "_catena_content";
/// The payload field holding a point's metadata; filter keys are paths below it.
pub const METADATA_FIELD: &str = "metadata";
/// The name of the dense vector in collections the store creates.
pub const DENSE_VECTOR: &str = "dense";
/// The name of the sparse (BM25) vector of hybrid collections.
pub const SPARSE_VECTOR: &str = "sparse";
