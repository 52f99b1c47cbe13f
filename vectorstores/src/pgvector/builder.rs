//! [`PgVectorStoreBuilder`]: connection, collection, dimensions, metric, index options.

use std::fmt;
use std::sync::Arc;

use catena_core::{Embedder, Error, Result};
use deadpool_postgres::Pool;

use super::schema::{self, CollectionInfo};
use super::sql::PgFailure;
use super::store::{Inner, PgVectorStore};
use super::{DistanceMetric, Index};
use crate::postgres::ConnectConfig;

/// The largest dimension a `vector` column takes.
const MAX_DIMENSIONS: usize = 16_000;
/// The largest dimension pgvector's HNSW and IVFFlat indexes take on `vector`.
const MAX_INDEXED_DIMENSIONS: usize = 2_000;

/// Configures a [`PgVectorStore`]; start with [`PgVectorStore::builder`].
///
/// `Debug` never shows the connection string's password.
#[must_use]
pub struct PgVectorStoreBuilder {
    connect: ConnectConfig,
    collection: String,
    dimensions: Option<usize>,
    metric: Option<DistanceMetric>,
    embedding_model: Option<String>,
    index: Index,
    ef_search: Option<u32>,
    probes: Option<u32>,
    create_if_missing: bool,
    batch_size: usize,
    text_search_config: Option<String>,
}

impl Default for PgVectorStoreBuilder {
    fn default() -> Self {
        PgVectorStoreBuilder {
            connect: ConnectConfig::new(16),
            collection: "documents".to_owned(),
            dimensions: None,
            metric: None,
            embedding_model: None,
            index: Index::None,
            ef_search: None,
            probes: None,
            create_if_missing: true,
            batch_size: 1_000,
            text_search_config: None,
        }
    }
}

impl fmt::Debug for PgVectorStoreBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgVectorStoreBuilder")
            .field("connect", &self.connect)
            .field("collection", &self.collection)
            .field("dimensions", &self.dimensions)
            .field("metric", &self.metric)
            .field("embedding_model", &self.embedding_model)
            .field("index", &self.index)
            .field("ef_search", &self.ef_search)
            .field("probes", &self.probes)
            .field("create_if_missing", &self.create_if_missing)
            .field("batch_size", &self.batch_size)
            .field("text_search_config", &self.text_search_config)
            .finish_non_exhaustive()
    }
}

impl PgVectorStoreBuilder {
    crate::postgres::connection_setters!(
        max_connections = "16",
        url_default = "the [`DATABASE_URL`](crate::DATABASE_URL_ENV) environment variable"
    );

    /// The collection, stored as a table of that name: 1 to 63 characters of `a-z`, `0-9`
    /// and `_`, not starting with a digit. Default `"documents"`.
    pub fn collection(mut self, name: impl Into<String>) -> Self {
        self.collection = name.into();
        self
    }

    /// The vector dimension. Required to create a collection; when opening an existing
    /// one it must match (or be left unset to adopt the stored one). Default: unset.
    pub fn dimensions(mut self, dimensions: usize) -> Self {
        self.dimensions = Some(dimensions);
        self
    }

    /// Takes the dimension from the embedder that will fill the collection.
    pub fn dimensions_from<E: Embedder + ?Sized>(self, embedder: &E) -> Self {
        self.dimensions(embedder.dimensions())
    }

    /// The similarity metric, fixed when the collection is created; opening an existing
    /// collection with another metric fails. Default: the stored one, or
    /// [`DistanceMetric::Cosine`] for a new collection.
    pub fn metric(mut self, metric: DistanceMetric) -> Self {
        self.metric = Some(metric);
        self
    }

    /// The embedding model's name, recorded with the collection; reopening it with another
    /// model's name fails. Default: none recorded, and any model accepted.
    pub fn embedding_model(mut self, model: impl Into<String>) -> Self {
        self.embedding_model = Some(model.into());
        self
    }

    /// The approximate-nearest-neighbour index to create if missing. Default
    /// [`Index::None`] (exact search). Replace an existing index with
    /// [`PgVectorStore::set_index`].
    pub fn index(mut self, index: Index) -> Self {
        self.index = index;
        self
    }

    /// `hnsw.ef_search` for every query (1..=1000; higher is more accurate and slower).
    /// Default: the server's (40). Per query: [`QueryOptions`](super::QueryOptions).
    pub fn ef_search(mut self, ef_search: u32) -> Self {
        self.ef_search = Some(ef_search);
        self
    }

    /// `ivfflat.probes` for every query (at least 1). Default: the server's (1).
    pub fn probes(mut self, probes: u32) -> Self {
        self.probes = Some(probes);
        self
    }

    /// Whether `build()` creates the collection (and the `vector` extension, the catalog,
    /// the indexes) when missing, via [`PgVectorStore::migrate`]. With `false`, a missing
    /// collection is [`Error::NotFound`]. Default true.
    pub fn create_if_missing(mut self, yes: bool) -> Self {
        self.create_if_missing = yes;
        self
    }

    /// Rows per `INSERT` statement inside an upsert's transaction. Default 1,000.
    pub fn batch_size(mut self, rows: usize) -> Self {
        self.batch_size = rows;
        self
    }

    /// The PostgreSQL text search configuration of the full-text column used by
    /// [`PgVectorStore::hybrid_search`] (`simple`, `english`, …), fixed at creation.
    /// Default: the stored one, or `"simple"` (lower-casing, no stemming, no stop words)
    /// for a new collection.
    pub fn text_search_config(mut self, name: impl Into<String>) -> Self {
        self.text_search_config = Some(name.into());
        self
    }

    fn check(&self) -> Result<()> {
        schema::validate_collection_name(&self.collection)?;
        if let Some(cfg) = &self.text_search_config {
            schema::validate_text_config(cfg)?;
        }
        if let Some(d) = self.dimensions {
            if d == 0 || d > MAX_DIMENSIONS {
                return Err(Error::invalid_config(format!(
                    "dimensions must be within 1..={MAX_DIMENSIONS}, got {d}"
                )));
            }
            if d > MAX_INDEXED_DIMENSIONS && self.index != Index::None {
                return Err(Error::invalid_config(format!(
                    "pgvector indexes take at most {MAX_INDEXED_DIMENSIONS} dimensions, got {d}; \
                     use Index::None"
                )));
            }
        }
        self.index.validate()?;
        if let Some(ef) = self.ef_search {
            if !(1..=1000).contains(&ef) {
                return Err(Error::invalid_config(format!(
                    "ef_search must be within 1..=1000, got {ef}"
                )));
            }
        }
        if self.probes == Some(0) {
            return Err(Error::invalid_config("probes must be at least 1"));
        }
        if self.batch_size == 0 {
            return Err(Error::invalid_config("batch_size must be at least 1"));
        }
        self.connect.check()
    }

    /// Connects, checks the server (pgvector installed, version), opens the collection,
    /// and creates it when missing (see [`create_if_missing`](Self::create_if_missing)).
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] for a bad name or option, a missing connection string, or a
    /// collection created with another dimension, metric, embedding model or text search
    /// configuration; [`Error::NotFound`] for a missing collection with
    /// `create_if_missing(false)`; [`Error::Provider`] when the server cannot be reached.
    pub async fn build(self) -> Result<PgVectorStore> {
        self.check()?;
        let (pool, endpoint) = self.connect.build_pool()?;
        let name = self.collection.clone();
        let (info, iterative_scan) = self.open(&pool, &name).await?;
        Ok(PgVectorStore::from_inner(Arc::new(Inner {
            pool,
            endpoint,
            table: name,
            info,
            index: self.index,
            ef_search: self.ef_search,
            probes: self.probes,
            batch_size: self.batch_size,
            iterative_scan,
        })))
    }

    async fn open(&self, pool: &Pool, name: &str) -> Result<(CollectionInfo, bool)> {
        let mut client = pool.get().await.map_err(PgFailure::from)?;
        let version: Option<String> = client
            .query_opt(
                "SELECT extversion FROM pg_extension WHERE extname = 'vector'",
                &[],
            )
            .await
            .map_err(PgFailure::from)?
            .map(|r| r.try_get(0))
            .transpose()
            .map_err(PgFailure::from)?;
        let existing = schema::read_info(&client, name).await?;
        let table_exists = schema::table_exists(&client, name).await?;
        let existing = existing.filter(|_| table_exists);
        let dimensions = match (self.dimensions, &existing) {
            (Some(d), _) => d,
            (None, Some(have)) => have.dimensions,
            (None, None) => {
                return Err(Error::invalid_config(format!(
                    "collection {name:?} does not exist; set dimensions() to create it"
                )))
            }
        };
        let want = CollectionInfo {
            dimensions,
            metric: self
                .metric
                .or(existing.as_ref().map(|h| h.metric))
                .unwrap_or_default(),
            embedding_model: self.embedding_model.clone(),
            text_search_config: self
                .text_search_config
                .clone()
                .or_else(|| existing.as_ref().map(|h| h.text_search_config.clone()))
                .unwrap_or_else(|| "simple".to_owned()),
        };
        if dimensions > MAX_INDEXED_DIMENSIONS && self.index != Index::None {
            return Err(Error::invalid_config(format!(
                "pgvector indexes take at most {MAX_INDEXED_DIMENSIONS} dimensions; \
                 collection {name:?} has {dimensions}"
            )));
        }
        let info = if self.create_if_missing {
            schema::migrate(&mut client, name, &want, &self.index).await?
        } else {
            let Some(have) = existing else {
                return Err(Error::NotFound(format!(
                    "collection {name:?} (create_if_missing is off)"
                )));
            };
            schema::check_compatible(name, &have, &want)?;
            have
        };
        // Re-read: migrate may just have installed the extension.
        let version = match version {
            Some(v) => Some(v),
            None => client
                .query_opt(
                    "SELECT extversion FROM pg_extension WHERE extname = 'vector'",
                    &[],
                )
                .await
                .map_err(PgFailure::from)?
                .map(|r| r.try_get::<_, String>(0))
                .transpose()
                .map_err(PgFailure::from)?,
        };
        let iterative_scan = version.as_deref().is_some_and(supports_iterative_scan);
        if !iterative_scan {
            tracing::warn!(
                version = version.as_deref().unwrap_or("none"),
                "pgvector < 0.8: filtered searches on an HNSW/IVFFlat index may return fewer than k rows"
            );
        }
        Ok((info, iterative_scan))
    }
}

/// Whether a pgvector version string is 0.8 or later (iterative index scans).
fn supports_iterative_scan(version: &str) -> bool {
    let mut parts = version.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    let major = parts.next().unwrap_or(0);
    let minor = parts.next().unwrap_or(0);
    (major, minor) >= (0, 8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_password() {
        for url in [
            "postgres://alice:s3cr3t-pw@db.example:5433/app",
            "host=db.example user=alice password=s3cr3t-pw dbname=app",
            "postgres://alice:s3cr3t-pw@[bad",
        ] {
            let b = PgVectorStore::builder().url(url);
            let dbg = format!("{b:?}");
            assert!(!dbg.contains("s3cr3t"), "{dbg}");
        }
    }

    #[test]
    fn options_are_checked() {
        let bad = [
            PgVectorStore::builder().collection("Bad-Name"),
            PgVectorStore::builder().dimensions(0),
            PgVectorStore::builder()
                .dimensions(3000)
                .index(Index::hnsw()),
            PgVectorStore::builder().ef_search(0),
            PgVectorStore::builder().probes(0),
            PgVectorStore::builder().batch_size(0),
            PgVectorStore::builder().text_search_config("english'); --"),
            PgVectorStore::builder().index(Index::Hnsw {
                m: 1,
                ef_construction: 64,
            }),
            PgVectorStore::builder().index(Index::IvfFlat { lists: 0 }),
        ];
        for b in bad {
            assert!(matches!(b.check(), Err(Error::InvalidConfig(_))), "{b:?}");
        }
        assert!(PgVectorStore::builder().dimensions(3).check().is_ok());
    }

    #[test]
    fn iterative_scan_versions() {
        assert!(supports_iterative_scan("0.8.0"));
        assert!(supports_iterative_scan("0.8.6"));
        assert!(supports_iterative_scan("1.0"));
        assert!(!supports_iterative_scan("0.7.4"));
    }
}
