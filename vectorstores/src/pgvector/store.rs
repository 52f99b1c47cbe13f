//! [`PgVectorStore`]: the [`VectorStore`] implementation.

use std::collections::HashMap;
use std::fmt;
use std::ops::Range;
use std::sync::Arc;

use async_trait::async_trait;
use catena_core::backend::validate_vector;
use catena_core::{
    Document, DocumentId, EmbeddedDocument, Error, Filter, Metadata, Result, ScoredDocument,
    SearchRequest, UpsertReport, VectorStore,
};
use deadpool_postgres::Pool;
use pgvector::Vector;
use serde_json::Value;
use tokio_postgres::Row;

use super::builder::PgVectorStoreBuilder;
use super::filter::compile;
use super::schema::{self, CollectionInfo};
use super::sql::{discard_if_lost, retry_once, Jsonb, Params, PgFailure};
use super::{DistanceMetric, Index};
use crate::postgres::quote_ident;

/// Per-query index settings, applied with `SET LOCAL` inside the query's transaction so they
/// never leak to other users of a pooled connection.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct QueryOptions {
    /// `hnsw.ef_search` (1..=1000): candidates kept while searching an HNSW index; higher
    /// is more accurate and slower. `None`: the store's default.
    pub ef_search: Option<u32>,
    /// `ivfflat.probes` (at least 1): IVFFlat lists visited. `None`: the store's default.
    pub probes: Option<u32>,
}

impl QueryOptions {
    /// No overrides.
    pub fn new() -> Self {
        QueryOptions::default()
    }

    /// Sets `hnsw.ef_search` for this query.
    #[must_use]
    pub fn ef_search(mut self, ef_search: u32) -> Self {
        self.ef_search = Some(ef_search);
        self
    }

    /// Sets `ivfflat.probes` for this query.
    #[must_use]
    pub fn probes(mut self, probes: u32) -> Self {
        self.probes = Some(probes);
        self
    }

    fn validate(&self) -> Result<()> {
        if let Some(ef) = self.ef_search {
            if !(1..=1000).contains(&ef) {
                return Err(Error::invalid_input(format!(
                    "ef_search must be within 1..=1000, got {ef}"
                )));
            }
        }
        if self.probes == Some(0) {
            return Err(Error::invalid_input("probes must be at least 1"));
        }
        Ok(())
    }
}

pub(crate) struct Inner {
    pub(crate) pool: Pool,
    pub(crate) endpoint: String,
    pub(crate) table: String,
    pub(crate) info: CollectionInfo,
    pub(crate) index: Index,
    pub(crate) ef_search: Option<u32>,
    pub(crate) probes: Option<u32>,
    pub(crate) batch_size: usize,
    pub(crate) iterative_scan: bool,
}

/// A [`VectorStore`] on PostgreSQL with pgvector: one table per collection, searched with
/// pgvector's distance operators and filtered in SQL. Cheap to clone (the pool is shared).
///
/// See the [module documentation](super) for the schema, the scores and an example.
#[derive(Clone)]
pub struct PgVectorStore {
    inner: Arc<Inner>,
}

impl fmt::Debug for PgVectorStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let i = &self.inner;
        f.debug_struct("PgVectorStore")
            .field("endpoint", &i.endpoint)
            .field("collection", &i.table)
            .field("dimensions", &i.info.dimensions)
            .field("metric", &i.info.metric)
            .field("embedding_model", &i.info.embedding_model)
            .field("index", &i.index)
            .field("pool_size", &i.pool.status().size)
            .finish_non_exhaustive()
    }
}

/// A validated, de-duplicated upsert batch in column form.
struct Rows {
    ids: Vec<String>,
    contents: Vec<String>,
    metadata: Vec<Jsonb>,
    vectors: Vec<Vector>,
}

impl PgVectorStore {
    /// Configures a store.
    pub fn builder() -> PgVectorStoreBuilder {
        PgVectorStoreBuilder::default()
    }

    pub(crate) fn from_inner(inner: Arc<Inner>) -> Self {
        PgVectorStore { inner }
    }

    /// The collection (table) name.
    pub fn collection(&self) -> &str {
        &self.inner.table
    }

    /// The vector dimension.
    pub fn dimensions(&self) -> usize {
        self.inner.info.dimensions
    }

    /// The similarity metric.
    pub fn metric(&self) -> DistanceMetric {
        self.inner.info.metric
    }

    /// The embedding model recorded with the collection, if any.
    pub fn embedding_model(&self) -> Option<&str> {
        self.inner.info.embedding_model.as_deref()
    }

    /// The text search configuration of the full-text column (`simple`, `english`, …).
    pub fn text_search_config(&self) -> &str {
        &self.inner.info.text_search_config
    }

    /// The connection pool, to share with other stores or code.
    pub fn pool(&self) -> &Pool {
        &self.inner.pool
    }

    pub(crate) fn table_sql(&self) -> String {
        quote_ident(&self.inner.table)
    }

    /// Creates whatever is missing: the `vector` extension, the catalog, the collection's
    /// table and row, and its indexes (the configured ANN index included). Idempotent, and
    /// safe to run from several processes at once (an advisory lock serialises it).
    /// `build()` runs it unless `create_if_missing(false)`.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] when the collection exists with other settings;
    /// [`Error::Provider`] for database failures (nothing is changed then).
    pub async fn migrate(&self) -> Result<()> {
        let mut client = self.inner.pool.get().await.map_err(PgFailure::from)?;
        schema::migrate(
            &mut client,
            &self.inner.table,
            &self.inner.info,
            &self.inner.index,
        )
        .await?;
        Ok(())
    }

    /// Replaces the collection's approximate-nearest-neighbour index: drops the HNSW or
    /// IVFFlat index this crate manages, then builds `index` (nothing for [`Index::None`]).
    /// Build IVFFlat after loading data: its lists are trained on the rows present.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] for bad index parameters or more than 2,000 dimensions;
    /// [`Error::Provider`] for database failures (the old index is kept then).
    pub async fn set_index(&self, index: Index) -> Result<()> {
        index.validate()?;
        if index != Index::None && self.dimensions() > 2_000 {
            return Err(Error::invalid_config(
                "pgvector indexes take at most 2000 dimensions",
            ));
        }
        let mut client = self.inner.pool.get().await.map_err(PgFailure::from)?;
        let tx = client.transaction().await.map_err(PgFailure::from)?;
        for sql in schema::drop_ann_indexes_sql(&self.inner.table) {
            tx.batch_execute(&sql).await.map_err(PgFailure::from)?;
        }
        if let Some(sql) = schema::ann_index_sql(&self.inner.table, self.metric(), &index) {
            tx.batch_execute(&sql).await.map_err(PgFailure::from)?;
        }
        tx.commit().await.map_err(PgFailure::from)?;
        Ok(())
    }

    /// Drops the collection: its table and its catalog row. The store cannot be used
    /// afterwards (build a new one to recreate the collection).
    ///
    /// # Errors
    /// [`Error::Provider`] for database failures.
    pub async fn drop_collection(&self) -> Result<()> {
        let mut client = self.inner.pool.get().await.map_err(PgFailure::from)?;
        let tx = client.transaction().await.map_err(PgFailure::from)?;
        tx.batch_execute(&format!("DROP TABLE IF EXISTS {}", self.table_sql()))
            .await
            .map_err(PgFailure::from)?;
        let catalog_exists: bool = tx
            .query_one("SELECT to_regclass($1) IS NOT NULL", &[&schema::CATALOG])
            .await
            .map_err(PgFailure::from)?
            .get(0);
        if catalog_exists {
            let sql = format!(
                "DELETE FROM {} WHERE name = $1",
                quote_ident(schema::CATALOG)
            );
            tx.execute(&sql, &[&self.inner.table])
                .await
                .map_err(PgFailure::from)?;
        }
        tx.commit().await.map_err(PgFailure::from)?;
        // Cached statements refer to the dropped table.
        self.inner.pool.manager().statement_caches.clear();
        Ok(())
    }

    /// [`search`](VectorStore::search) with per-query index settings.
    ///
    /// # Errors
    /// As for [`VectorStore::search`], and [`Error::InvalidInput`] for out-of-range options.
    pub async fn search_with(
        &self,
        request: SearchRequest,
        options: QueryOptions,
    ) -> Result<Vec<ScoredDocument>> {
        request.validate()?;
        options.validate()?;
        self.check_query(&request.vector)?;
        let mut params = Params::new();
        let v = params.push(Vector::from(request.vector.clone()));
        let filter = match &request.filter {
            Some(f) => compile(f, &mut params)?,
            None => "TRUE".to_owned(),
        };
        let limit = params.push(i64::try_from(request.k).unwrap_or(i64::MAX));
        let vectors = if request.include_vectors {
            ", embedding"
        } else {
            ""
        };
        let score = score_sql(self.metric(), "distance");
        let threshold = match request.score_threshold {
            Some(t) => format!("WHERE {score} >= {}::float8", params.push(f64::from(t))),
            None => String::new(),
        };
        // The CTE lets an ANN index produce the top k (with the filter applied during the
        // index scan); the outer query re-sorts (iterative scans may return rows slightly
        // out of order), breaks ties by id like the in-memory store, and applies the
        // threshold, which is monotone in the distance so it cannot change which rows
        // qualify.
        let sql = format!(
            "WITH hits AS MATERIALIZED (\
               SELECT id, content, metadata{vectors}, embedding {op} {v} AS distance \
               FROM {t} WHERE {filter} ORDER BY distance LIMIT {limit}) \
             SELECT id, content, metadata, ({score})::float8 AS score{vectors} \
             FROM hits {threshold} ORDER BY distance + 0, id",
            op = operator(self.metric()),
            t = self.table_sql(),
        );
        let rows = retry_once("search", || self.query_rows(&sql, &params, options)).await?;
        rows.iter()
            .map(|row| {
                let doc = document_from_row(row)?;
                let score: f64 = row.try_get("score").map_err(PgFailure::from)?;
                let hit = ScoredDocument::new(doc, score as f32);
                if request.include_vectors {
                    let v: Vector = row.try_get("embedding").map_err(PgFailure::from)?;
                    Ok(hit.with_embedding(v.to_vec()))
                } else {
                    Ok(hit)
                }
            })
            .collect()
    }

    pub(crate) fn check_query(&self, vector: &[f32]) -> Result<()> {
        if vector.len() != self.dimensions() {
            return Err(Error::invalid_input(format!(
                "the query vector has {} dimensions; collection {:?} holds {}-dimensional vectors",
                vector.len(),
                self.inner.table,
                self.dimensions()
            )));
        }
        Ok(())
    }

    /// The `SET LOCAL` statements for a query, or `None` when there is nothing to set.
    fn settings_sql(&self, options: QueryOptions) -> Option<String> {
        let mut sets = Vec::new();
        if self.inner.iterative_scan {
            // Keeps filtered HNSW/IVFFlat scans going until k rows pass the filter
            // (pgvector >= 0.8); without it a selective filter returns fewer than k.
            sets.push("SET LOCAL hnsw.iterative_scan = relaxed_order".to_owned());
            sets.push("SET LOCAL ivfflat.iterative_scan = relaxed_order".to_owned());
        }
        // Integers, validated: safe to inline (SET takes no parameters).
        if let Some(ef) = options.ef_search.or(self.inner.ef_search) {
            sets.push(format!("SET LOCAL hnsw.ef_search = {ef}"));
        }
        if let Some(p) = options.probes.or(self.inner.probes) {
            sets.push(format!("SET LOCAL ivfflat.probes = {p}"));
        }
        (!sets.is_empty()).then(|| sets.join("; "))
    }

    /// Runs a read query, inside a transaction carrying the index settings when there are
    /// any. The settings and the query are pipelined: one round trip for both.
    pub(crate) async fn query_rows(
        &self,
        sql: &str,
        params: &Params,
        options: QueryOptions,
    ) -> std::result::Result<Vec<Row>, PgFailure> {
        let mut client = self.inner.pool.get().await?;
        let result = self.query_on(&mut client, sql, params, options).await;
        discard_if_lost(client, &result);
        result
    }

    async fn query_on(
        &self,
        client: &mut deadpool_postgres::Client,
        sql: &str,
        params: &Params,
        options: QueryOptions,
    ) -> std::result::Result<Vec<Row>, PgFailure> {
        let stmt = client.prepare_cached(sql).await?;
        let refs = params.as_refs();
        let Some(settings) = self.settings_sql(options) else {
            return Ok(client.query(&stmt, &refs).await?);
        };
        // A dropped `Transaction` rolls back, so a cancelled search never leaves a pooled
        // connection inside a transaction.
        let tx = client.transaction().await?;
        let (_, rows) =
            futures::future::try_join(tx.batch_execute(&settings), tx.query(&stmt, &refs)).await?;
        tx.commit().await?;
        Ok(rows)
    }

    fn prepare_rows(&self, documents: Vec<EmbeddedDocument>) -> Result<(Vec<DocumentId>, Rows)> {
        let dims = self.dimensions();
        for (i, d) in documents.iter().enumerate() {
            validate_vector(&d.embedding)
                .map_err(|e| Error::invalid_input(format!("document {i}: {e}")))?;
            if d.embedding.len() != dims {
                return Err(Error::invalid_input(format!(
                    "document {i}'s vector has {} dimensions; collection {:?} holds \
                     {dims}-dimensional vectors",
                    d.embedding.len(),
                    self.inner.table
                )));
            }
            check_no_nul(i, d)?;
        }
        let ids: Vec<DocumentId> = documents.iter().map(EmbeddedDocument::id).collect();
        // The last occurrence of an id wins; ON CONFLICT cannot touch a row twice.
        let mut last: HashMap<&DocumentId, usize> = HashMap::with_capacity(ids.len());
        for (i, id) in ids.iter().enumerate() {
            last.insert(id, i);
        }
        let keep: Vec<bool> = ids
            .iter()
            .enumerate()
            .map(|(i, id)| last[id] == i)
            .collect();
        let n = last.len();
        let mut rows = Rows {
            ids: Vec::with_capacity(n),
            contents: Vec::with_capacity(n),
            metadata: Vec::with_capacity(n),
            vectors: Vec::with_capacity(n),
        };
        for ((d, id), keep) in documents.into_iter().zip(&ids).zip(keep) {
            if keep {
                rows.ids.push(id.as_str().to_owned());
                rows.contents.push(d.document.content);
                rows.metadata
                    .push(Jsonb(Value::Object(d.document.metadata)));
                rows.vectors.push(Vector::from(d.embedding));
            }
        }
        Ok((ids, rows))
    }

    fn upsert_sql(&self) -> String {
        format!(
            "INSERT INTO {t} AS t (id, content, metadata, embedding) \
             SELECT * FROM unnest($1::text[], $2::text[], $3::jsonb[], $4::vector[]) \
             ON CONFLICT (id) DO UPDATE SET content = EXCLUDED.content, \
               metadata = EXCLUDED.metadata, embedding = EXCLUDED.embedding \
             WHERE (t.content, t.metadata, t.embedding) \
               IS DISTINCT FROM (EXCLUDED.content, EXCLUDED.metadata, EXCLUDED.embedding) \
             RETURNING (xmax = 0) AS inserted",
            t = self.table_sql()
        )
    }

    /// One attempt: every chunk in one transaction, pipelined. Returns (inserted, updated).
    async fn upsert_once(
        &self,
        sql: &str,
        rows: &Rows,
    ) -> std::result::Result<(usize, usize), PgFailure> {
        let mut client = self.inner.pool.get().await?;
        let result = self.upsert_on(&mut client, sql, rows).await;
        discard_if_lost(client, &result);
        result
    }

    async fn upsert_on(
        &self,
        client: &mut deadpool_postgres::Client,
        sql: &str,
        rows: &Rows,
    ) -> std::result::Result<(usize, usize), PgFailure> {
        let stmt = client.prepare_cached(sql).await?;
        let tx = client.transaction().await?;
        let chunks: Vec<Range<usize>> = (0..rows.ids.len())
            .step_by(self.inner.batch_size)
            .map(|s| s..(s + self.inner.batch_size).min(rows.ids.len()))
            .collect();
        let results = futures::future::try_join_all(chunks.into_iter().map(|r| {
            let stmt = &stmt;
            let tx = &tx;
            async move {
                tx.query(
                    stmt,
                    &[
                        &&rows.ids[r.clone()],
                        &&rows.contents[r.clone()],
                        &&rows.metadata[r.clone()],
                        &&rows.vectors[r],
                    ],
                )
                .await
            }
        }))
        .await?;
        tx.commit().await?;
        let (mut inserted, mut updated) = (0, 0);
        for row in results.iter().flatten() {
            if row.try_get::<_, bool>(0)? {
                inserted += 1;
            } else {
                updated += 1;
            }
        }
        Ok((inserted, updated))
    }
}

/// PostgreSQL rejects NUL in `text` and `jsonb`: refuse it up front, writing nothing.
fn check_no_nul(i: usize, d: &EmbeddedDocument) -> Result<()> {
    fn value_has_nul(v: &Value) -> bool {
        match v {
            Value::String(s) => s.contains('\0'),
            Value::Array(a) => a.iter().any(value_has_nul),
            Value::Object(m) => m.iter().any(|(k, v)| k.contains('\0') || value_has_nul(v)),
            _ => false,
        }
    }
    let bad = d.document.content.contains('\0')
        || d.document
            .id
            .as_ref()
            .is_some_and(|id| id.as_str().contains('\0'))
        || d.document
            .metadata
            .iter()
            .any(|(k, v)| k.contains('\0') || value_has_nul(v));
    if bad {
        return Err(Error::invalid_input(format!(
            "document {i} contains a NUL character, which PostgreSQL text cannot hold"
        )));
    }
    Ok(())
}

/// The pgvector distance operator for the metric.
pub(crate) fn operator(metric: DistanceMetric) -> &'static str {
    match metric {
        DistanceMetric::Cosine => "<=>",
        DistanceMetric::DotProduct => "<#>",
        DistanceMetric::Euclidean => "<->",
    }
}

/// The similarity (higher is closer) for a distance column, equal to the in-memory store's
/// score: `1 - cosine distance` (0 when a vector is all zeros, where pgvector gives NaN),
/// `-(negative inner product)`, `1 / (1 + euclidean distance)`.
pub(crate) fn score_sql(metric: DistanceMetric, distance: &str) -> String {
    match metric {
        DistanceMetric::Cosine => {
            format!("(CASE WHEN {distance} = 'NaN'::float8 THEN 0 ELSE 1 - {distance} END)")
        }
        DistanceMetric::DotProduct => format!("(-{distance})"),
        DistanceMetric::Euclidean => format!("(1 / (1 + {distance}))"),
    }
}

pub(crate) fn document_from_row(row: &Row) -> std::result::Result<Document, PgFailure> {
    let id: String = row.try_get("id")?;
    let content: String = row.try_get("content")?;
    let Jsonb(metadata) = row.try_get("metadata")?;
    let metadata: Metadata = match metadata {
        Value::Object(m) => m,
        other => {
            return Err(PgFailure::Catena(Error::other(format!(
                "row {id:?} has metadata that is not a JSON object: {other}"
            ))))
        }
    };
    Ok(Document::new(content)
        .with_id(id)
        .with_metadata_map(metadata))
}

#[async_trait]
impl VectorStore for PgVectorStore {
    /// Validates the whole batch (dimension, finite values, no NUL characters) before
    /// writing; de-duplicates ids (the last document wins); writes everything in **one
    /// transaction** with `INSERT … ON CONFLICT (id) DO UPDATE … WHERE … IS DISTINCT FROM`,
    /// in statements of [`batch_size`](PgVectorStoreBuilder::batch_size) rows. Rows whose
    /// content, metadata and vector are identical are left alone and counted as
    /// `unchanged`. Counts are per distinct id. If the connection is lost mid-way the
    /// transaction is rolled back by the server and the batch is retried once on a fresh
    /// connection (an upsert is idempotent); should the loss hit the commit itself, the
    /// retry finds the rows written and reports them as unchanged.
    async fn upsert(&self, documents: Vec<EmbeddedDocument>) -> Result<UpsertReport> {
        let (ids, rows) = self.prepare_rows(documents)?;
        if rows.ids.is_empty() {
            return Ok(UpsertReport::new(ids));
        }
        let sql = self.upsert_sql();
        let (inserted, updated) = retry_once("upsert", || self.upsert_once(&sql, &rows)).await?;
        let unchanged = rows.ids.len().saturating_sub(inserted + updated);
        Ok(UpsertReport::new(ids).with_counts(inserted, updated, unchanged))
    }

    async fn search(&self, request: SearchRequest) -> Result<Vec<ScoredDocument>> {
        self.search_with(request, QueryOptions::default()).await
    }

    async fn delete(&self, ids: &[DocumentId]) -> Result<usize> {
        if ids.is_empty() {
            return Ok(0);
        }
        let ids: Vec<&str> = ids.iter().map(DocumentId::as_str).collect();
        let sql = format!(
            "DELETE FROM {} WHERE id = ANY($1::text[])",
            self.table_sql()
        );
        let client = self.inner.pool.get().await.map_err(PgFailure::from)?;
        let stmt = client.prepare_cached(&sql).await.map_err(PgFailure::from)?;
        let n = client
            .execute(&stmt, &[&ids])
            .await
            .map_err(PgFailure::from)?;
        Ok(usize::try_from(n).unwrap_or(usize::MAX))
    }

    async fn delete_by_filter(&self, filter: &Filter) -> Result<usize> {
        let mut params = Params::new();
        let cond = compile(filter, &mut params)?;
        let sql = format!("DELETE FROM {} WHERE {cond}", self.table_sql());
        let client = self.inner.pool.get().await.map_err(PgFailure::from)?;
        let stmt = client.prepare_cached(&sql).await.map_err(PgFailure::from)?;
        let n = client
            .execute(&stmt, &params.as_refs())
            .await
            .map_err(PgFailure::from)?;
        Ok(usize::try_from(n).unwrap_or(usize::MAX))
    }

    async fn get(&self, ids: &[DocumentId]) -> Result<Vec<Document>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut params = Params::new();
        let p = params.push(
            ids.iter()
                .map(|i| i.as_str().to_owned())
                .collect::<Vec<_>>(),
        );
        let sql = format!(
            "SELECT id, content, metadata FROM {} WHERE id = ANY({p}::text[])",
            self.table_sql()
        );
        let rows = retry_once("get", || {
            self.query_rows(&sql, &params, QueryOptions::default())
        })
        .await?;
        let mut found: HashMap<String, Document> = HashMap::with_capacity(rows.len());
        for row in &rows {
            let doc = document_from_row(row)?;
            let id = doc
                .id
                .as_ref()
                .map(|i| i.as_str().to_owned())
                .unwrap_or_default();
            found.insert(id, doc);
        }
        Ok(ids
            .iter()
            .filter_map(|id| found.get(id.as_str()).cloned())
            .collect())
    }

    async fn count(&self, filter: Option<&Filter>) -> Result<usize> {
        let mut params = Params::new();
        let cond = match filter {
            Some(f) => compile(f, &mut params)?,
            None => "TRUE".to_owned(),
        };
        let sql = format!("SELECT count(*) FROM {} WHERE {cond}", self.table_sql());
        let rows = retry_once("count", || {
            self.query_rows(&sql, &params, QueryOptions::default())
        })
        .await?;
        let n: i64 = match rows.first() {
            Some(r) => r.try_get(0).map_err(PgFailure::from)?,
            None => 0,
        };
        Ok(usize::try_from(n).unwrap_or(0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_match_the_in_memory_store() {
        assert_eq!(operator(DistanceMetric::Cosine), "<=>");
        assert_eq!(operator(DistanceMetric::DotProduct), "<#>");
        assert_eq!(operator(DistanceMetric::Euclidean), "<->");
        assert!(score_sql(DistanceMetric::Cosine, "d").contains("1 - d"));
        assert_eq!(score_sql(DistanceMetric::DotProduct, "d"), "(-d)");
        assert_eq!(score_sql(DistanceMetric::Euclidean, "d"), "(1 / (1 + d))");
    }

    #[test]
    fn query_options_are_checked() {
        assert!(QueryOptions::new().ef_search(0).validate().is_err());
        assert!(QueryOptions::new().ef_search(1001).validate().is_err());
        assert!(QueryOptions::new().probes(0).validate().is_err());
        assert!(QueryOptions::new()
            .ef_search(64)
            .probes(3)
            .validate()
            .is_ok());
    }

    #[test]
    fn nul_characters_are_refused() {
        let d = EmbeddedDocument::new(Document::new("a\0b"), vec![1.0]);
        assert!(check_no_nul(0, &d).is_err());
        let d = EmbeddedDocument::new(
            Document::new("ok").with_metadata("k", serde_json::json!(["x\0"])),
            vec![1.0],
        );
        assert!(check_no_nul(0, &d).is_err());
        let d = EmbeddedDocument::new(Document::new("ok").with_metadata("k", "v"), vec![1.0]);
        assert!(check_no_nul(0, &d).is_ok());
    }
}
