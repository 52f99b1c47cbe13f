//! [`QdrantStoreBuilder`]: configuration, validated once by `build`.

use std::fmt;
use std::time::Duration;

use catena_core::backend::validate_key;
use catena_core::{Error, Result};
use qdrant_client::qdrant as q;
use qdrant_client::Qdrant;
use tokio::sync::OnceCell;

use catena_core::RetryPolicy;

use super::error::{convert, default_retry};
use super::sparse::Bm25;
use super::store::{Inner, QdrantStore};
use super::{DEFAULT_URL, METADATA_FIELD, QDRANT_API_KEY_ENV, QDRANT_URL_ENV};
use crate::DistanceMetric;

/// The type of a payload index on a metadata key (see
/// [`QdrantStoreBuilder::payload_index`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PayloadIndexKind {
    /// Strings, for equality and `In`.
    Keyword,
    /// Integers, for equality and ranges.
    Integer,
    /// Floating-point numbers, for ranges (and float equality).
    Float,
    /// Booleans.
    Bool,
}

impl PayloadIndexKind {
    pub(super) fn field_type(self) -> q::FieldType {
        match self {
            PayloadIndexKind::Keyword => q::FieldType::Keyword,
            PayloadIndexKind::Integer => q::FieldType::Integer,
            PayloadIndexKind::Float => q::FieldType::Float,
            PayloadIndexKind::Bool => q::FieldType::Bool,
        }
    }
}

/// An API key, kept out of `Debug` output.
#[derive(Clone)]
struct ApiKey(String);

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey(<redacted>)")
    }
}

/// Builds a [`QdrantStore`]; start with [`QdrantStore::builder`].
#[must_use]
pub struct QdrantStoreBuilder {
    url: String,
    api_key: Option<ApiKey>,
    client: Option<Qdrant>,
    timeout: Duration,
    collection: Option<String>,
    dimensions: Option<usize>,
    metric: DistanceMetric,
    hnsw_m: Option<u64>,
    hnsw_ef_construct: Option<u64>,
    search_ef: Option<u64>,
    payload_indexes: Vec<(String, PayloadIndexKind)>,
    create_if_missing: bool,
    batch_size: usize,
    retry: RetryPolicy,
    hybrid: bool,
    bm25: Bm25,
    tenant_key: Option<String>,
    tenant: Option<String>,
}

impl fmt::Debug for QdrantStoreBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QdrantStoreBuilder")
            .field("url", &self.url)
            .field("api_key", &self.api_key)
            .field("client", &self.client.as_ref().map(|_| "<shared client>"))
            .field("timeout", &self.timeout)
            .field("collection", &self.collection)
            .field("dimensions", &self.dimensions)
            .field("metric", &self.metric)
            .field("hnsw_m", &self.hnsw_m)
            .field("hnsw_ef_construct", &self.hnsw_ef_construct)
            .field("search_ef", &self.search_ef)
            .field("payload_indexes", &self.payload_indexes)
            .field("create_if_missing", &self.create_if_missing)
            .field("batch_size", &self.batch_size)
            .field("retry", &self.retry)
            .field("hybrid", &self.hybrid)
            .field("bm25", &self.bm25)
            .field("tenant_key", &self.tenant_key)
            .field("tenant", &self.tenant)
            .finish()
    }
}

impl QdrantStoreBuilder {
    pub(super) fn new() -> Self {
        QdrantStoreBuilder {
            url: std::env::var(QDRANT_URL_ENV)
                .ok()
                .filter(|u| !u.is_empty())
                .unwrap_or_else(|| DEFAULT_URL.to_owned()),
            api_key: std::env::var(QDRANT_API_KEY_ENV)
                .ok()
                .filter(|k| !k.is_empty())
                .map(ApiKey),
            client: None,
            timeout: Duration::from_secs(30),
            collection: None,
            dimensions: None,
            metric: DistanceMetric::Cosine,
            hnsw_m: None,
            hnsw_ef_construct: None,
            search_ef: None,
            payload_indexes: Vec::new(),
            create_if_missing: true,
            batch_size: 256,
            retry: default_retry(),
            hybrid: false,
            bm25: Bm25::new(),
            tenant_key: None,
            tenant: None,
        }
    }

    /// The gRPC endpoint. Default: `$QDRANT_URL`, else `http://localhost:6334`.
    pub fn url(mut self, url: impl Into<String>) -> Self {
        self.url = url.into();
        self
    }

    /// The API key, sent with every request and never printed. Default: `$QDRANT_API_KEY`,
    /// else none.
    pub fn api_key(mut self, key: impl Into<String>) -> Self {
        self.api_key = Some(ApiKey(key.into()));
        self
    }

    /// Uses an existing client, so several stores share one connection pool; `url`,
    /// `api_key` and `timeout` are then ignored. Default: a new client.
    pub fn client(mut self, client: Qdrant) -> Self {
        self.client = Some(client);
        self
    }

    /// The per-request timeout. Default 30 s (upserts wait for the write to be applied).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The collection. Required.
    pub fn collection(mut self, name: impl Into<String>) -> Self {
        self.collection = Some(name.into());
        self
    }

    /// The vector dimension, used to create the collection and checked against an
    /// existing one. Default: taken from the existing collection (creating one then fails).
    pub fn dimensions(mut self, n: usize) -> Self {
        self.dimensions = Some(n);
        self
    }

    /// The distance. Default [`DistanceMetric::Cosine`]. Scores are similarities (higher is
    /// closer): cosine similarity, the dot product, or `1 / (1 + distance)` for
    /// [`DistanceMetric::Euclidean`].
    pub fn metric(mut self, metric: DistanceMetric) -> Self {
        self.metric = metric;
        self
    }

    /// HNSW `m` (edges per node) for a new collection. Default: Qdrant's (16).
    pub fn hnsw_m(mut self, m: u64) -> Self {
        self.hnsw_m = Some(m);
        self
    }

    /// HNSW `ef_construct` for a new collection. Default: Qdrant's (100).
    pub fn hnsw_ef_construct(mut self, ef: u64) -> Self {
        self.hnsw_ef_construct = Some(ef);
        self
    }

    /// HNSW `ef` for every search. Default: Qdrant's (`ef_construct`).
    pub fn search_ef(mut self, ef: u64) -> Self {
        self.search_ef = Some(ef);
        self
    }

    /// Indexes a metadata key (a filter key such as `lang` or `author.name`) for filtered
    /// search; call once per key. Created with the collection and ensured on an existing
    /// one. Default: no indexes (Qdrant filters unindexed keys too, more slowly).
    pub fn payload_index(mut self, key: impl Into<String>, kind: PayloadIndexKind) -> Self {
        self.payload_indexes.push((key.into(), kind));
        self
    }

    /// Whether to create a missing collection (with [`dimensions`](Self::dimensions) and
    /// the metric). Default true.
    pub fn create_if_missing(mut self, yes: bool) -> Self {
        self.create_if_missing = yes;
        self
    }

    /// Points per upsert request. Default 256.
    pub fn batch_size(mut self, n: usize) -> Self {
        self.batch_size = n;
        self
    }

    /// How transient failures are retried. Default: 3 retries, backoff from 100 ms doubling up
    /// to 5 s, a server's retry-after honoured up to 5 s, no jitter.
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.retry = policy;
        self
    }

    /// Enables [hybrid search](QdrantStore::hybrid_search): documents get a BM25 sparse
    /// vector and a new collection gets a sparse vector `sparse` with Qdrant's IDF
    /// modifier. Default false.
    pub fn hybrid(mut self, yes: bool) -> Self {
        self.hybrid = yes;
        self
    }

    /// The BM25 parameters of hybrid search. Default [`Bm25::new`].
    pub fn bm25(mut self, bm25: Bm25) -> Self {
        self.bm25 = bm25;
        self
    }

    /// Makes the store multi-tenant: every point carries the tenant in this top-level
    /// payload field (indexed as a Qdrant tenant index), and every read, write, count and
    /// delete is limited to the store's tenant. Default: single-tenant.
    pub fn tenant_key(mut self, key: impl Into<String>) -> Self {
        self.tenant_key = Some(key.into());
        self
    }

    /// The tenant of a multi-tenant store (see also [`QdrantStore::for_tenant`]). Default:
    /// none, and a multi-tenant store without a tenant refuses every operation.
    pub fn tenant(mut self, tenant: impl Into<String>) -> Self {
        self.tenant = Some(tenant.into());
        self
    }

    /// Checks the configuration and creates the client. Makes no request: the collection
    /// is checked (and created) on first use, or by [`QdrantStore::ensure_collection`].
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] for a missing collection name, a zero dimension or batch
    /// size, an invalid payload-index or tenant key, bad BM25 parameters or an invalid url.
    pub fn build(self) -> Result<QdrantStore> {
        let collection = self
            .collection
            .filter(|c| !c.is_empty())
            .ok_or_else(|| Error::invalid_config("qdrant: a collection name is required"))?;
        if self.dimensions == Some(0) {
            return Err(Error::invalid_config(
                "qdrant: dimensions must be at least 1",
            ));
        }
        if self.batch_size == 0 {
            return Err(Error::invalid_config(
                "qdrant: batch_size must be at least 1",
            ));
        }
        for (key, _) in &self.payload_indexes {
            validate_key(key)
                .map_err(|e| Error::invalid_config(format!("qdrant payload index: {e}")))?;
        }
        if let Some(key) = &self.tenant_key {
            let reserved = key == METADATA_FIELD || key.starts_with("_catena");
            if validate_key(key).is_err() || key.contains('.') || reserved {
                return Err(Error::invalid_config(format!(
                    "qdrant: invalid tenant key {key:?}: use letters, digits, `_` or `-`, not \
                     `{METADATA_FIELD}` nor a `_catena` prefix"
                )));
            }
        }
        match (&self.tenant_key, &self.tenant) {
            (None, Some(_)) => {
                return Err(Error::invalid_config(
                    "qdrant: a tenant needs a tenant key (`tenant_key(..)`)",
                ))
            }
            (Some(_), Some(t)) if t.is_empty() => {
                return Err(Error::invalid_config(
                    "qdrant: the tenant must not be empty",
                ))
            }
            _ => {}
        }
        self.bm25.validate()?;
        let client = match self.client {
            Some(c) => c,
            None => {
                let mut config = Qdrant::from_url(&self.url)
                    .timeout(self.timeout)
                    .skip_compatibility_check();
                if let Some(ApiKey(key)) = &self.api_key {
                    config.set_api_key(key);
                }
                config
                    .build()
                    .map_err(|e| convert(e, "creating the client"))?
            }
        };
        Ok(QdrantStore::from_parts(
            Inner {
                client,
                url: self.url,
                collection,
                dimensions: self.dimensions,
                metric: self.metric,
                hnsw_m: self.hnsw_m,
                hnsw_ef_construct: self.hnsw_ef_construct,
                search_ef: self.search_ef,
                payload_indexes: self.payload_indexes,
                create_if_missing: self.create_if_missing,
                batch_size: self.batch_size,
                retry: self.retry,
                hybrid: self.hybrid,
                bm25: self.bm25,
                tenant_key: self.tenant_key,
                layout: OnceCell::new(),
            },
            self.tenant,
        ))
    }
}
