//! [`QdrantStore`]: reads, writes and searches.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use catena_core::backend::validate_vector;
use catena_core::{
    fuse, Document, DocumentId, EmbeddedDocument, Error, FailedUpsert, Filter, HybridHit,
    HybridRequest, HybridSearch, Metadata, Result, ScoredDocument, SearchRequest, UpsertReport,
    VectorStore,
};
use qdrant_client::qdrant::{
    self as q, condition::ConditionOneOf, point_id::PointIdOptions,
    points_selector::PointsSelectorOneOf, query::Variant, vector_output, vectors::VectorsOptions,
    with_payload_selector, with_vectors_selector, Condition, PointId, VectorInput,
};
use qdrant_client::Qdrant;
use tokio::sync::OnceCell;

use super::builder::{PayloadIndexKind, QdrantStoreBuilder};
use super::collection::Layout;
use catena_core::RetryPolicy;

use super::error::{convert, is_rejection, reason, RunQdrant};
use super::filter::{keyword, request_filter};
use super::ids::point_uuid;
use super::payload;
use super::sparse::Bm25;
use super::{METADATA_FIELD, PAYLOAD_CONTENT, PAYLOAD_ID, SPARSE_VECTOR};
use crate::DistanceMetric;

/// The shared state of a store and its tenant views.
pub(super) struct Inner {
    pub(super) client: Qdrant,
    pub(super) url: String,
    pub(super) collection: String,
    pub(super) dimensions: Option<usize>,
    pub(super) metric: DistanceMetric,
    pub(super) hnsw_m: Option<u64>,
    pub(super) hnsw_ef_construct: Option<u64>,
    pub(super) search_ef: Option<u64>,
    pub(super) payload_indexes: Vec<(String, PayloadIndexKind)>,
    pub(super) create_if_missing: bool,
    pub(super) batch_size: usize,
    pub(super) retry: RetryPolicy,
    pub(super) hybrid: bool,
    pub(super) bm25: Bm25,
    pub(super) tenant_key: Option<String>,
    pub(super) layout: OnceCell<Layout>,
}

/// A [`VectorStore`] on a [Qdrant](https://qdrant.tech) collection, over gRPC.
///
/// See the [module docs](super) for the data layout, filter semantics and costs. Cloning
/// is cheap and shares the connection pool.
#[derive(Clone)]
pub struct QdrantStore {
    inner: Arc<Inner>,
    tenant: Option<String>,
}

impl fmt::Debug for QdrantStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let i = &self.inner;
        f.debug_struct("QdrantStore")
            .field("url", &i.url)
            .field("collection", &i.collection)
            .field("dimensions", &i.dimensions)
            .field("metric", &i.metric)
            .field("hybrid", &i.hybrid)
            .field("batch_size", &i.batch_size)
            .field("tenant_key", &i.tenant_key)
            .field("tenant", &self.tenant)
            .finish_non_exhaustive()
    }
}

/// A document ready to write.
struct Prepared {
    /// Position in the caller's batch.
    index: usize,
    id: DocumentId,
    uuid: String,
    content: String,
    metadata: Metadata,
    payload_metadata: q::Struct,
    vector: Vec<f32>,
}

#[derive(Clone, Copy, PartialEq)]
enum Change {
    Insert,
    Update,
}

impl QdrantStore {
    pub(super) fn from_parts(inner: Inner, tenant: Option<String>) -> Self {
        QdrantStore {
            inner: Arc::new(inner),
            tenant,
        }
    }

    /// A builder; see [`QdrantStoreBuilder`] for the defaults.
    pub fn builder() -> QdrantStoreBuilder {
        QdrantStoreBuilder::new()
    }

    /// A store on `collection` at `$QDRANT_URL` (else `http://localhost:6334`) with
    /// `$QDRANT_API_KEY`, creating the collection with `dimensions` and cosine distance if
    /// it is missing.
    ///
    /// # Errors
    /// As [`QdrantStoreBuilder::build`].
    pub fn connect(collection: impl Into<String>, dimensions: usize) -> Result<Self> {
        QdrantStore::builder()
            .collection(collection)
            .dimensions(dimensions)
            .build()
    }

    /// The collection's name.
    pub fn collection(&self) -> &str {
        &self.inner.collection
    }

    /// The distance metric.
    pub fn metric(&self) -> DistanceMetric {
        self.inner.metric
    }

    /// The tenant this store reads and writes, in a multi-tenant store.
    pub fn tenant(&self) -> Option<&str> {
        self.tenant.as_deref()
    }

    /// The same store limited to `tenant` (sharing the client and collection).
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] when the store has no tenant key or `tenant` is empty.
    pub fn for_tenant(&self, tenant: impl Into<String>) -> Result<QdrantStore> {
        let tenant = tenant.into();
        if self.inner.tenant_key.is_none() {
            return Err(Error::invalid_config(
                "qdrant: for_tenant needs a store built with `tenant_key(..)`",
            ));
        }
        if tenant.is_empty() {
            return Err(Error::invalid_config(
                "qdrant: the tenant must not be empty",
            ));
        }
        Ok(QdrantStore {
            inner: Arc::clone(&self.inner),
            tenant: Some(tenant),
        })
    }

    /// The Qdrant point id (a UUID string) of a document id in this store: the UUIDv5 of
    /// the id (and of the tenant, in a multi-tenant store).
    pub fn point_id(&self, id: &DocumentId) -> String {
        point_uuid(id, self.tenant.as_deref()).to_string()
    }

    /// Checks the collection now (creating it if missing and allowed) and ensures the
    /// payload indexes, instead of on first use.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] when the collection's dimension or distance differ from the
    /// store's, or it lacks the vectors the store needs; provider errors from Qdrant.
    pub async fn ensure_collection(&self) -> Result<()> {
        self.layout().await.map(|_| ())
    }

    async fn layout(&self) -> Result<&Layout> {
        self.inner
            .layout
            .get_or_try_init(|| self.inner.init())
            .await
    }

    fn tenant_scope(&self) -> Result<Option<(&str, &str)>> {
        match (&self.inner.tenant_key, &self.tenant) {
            (None, _) => Ok(None),
            (Some(k), Some(t)) => Ok(Some((k.as_str(), t.as_str()))),
            (Some(k), None) => Err(Error::invalid_config(format!(
                "qdrant: this store is multi-tenant (tenant key `{k}`): pick a tenant with \
                 `for_tenant(..)` or `builder().tenant(..)`"
            ))),
        }
    }

    fn check_dims(&self, got: usize, layout: &Layout, what: &str) -> Result<()> {
        if got == layout.dims {
            Ok(())
        } else {
            Err(Error::invalid_input(format!(
                "{what} has {got} dimensions; the collection `{}` holds {}-dimensional vectors",
                self.inner.collection, layout.dims
            )))
        }
    }

    fn search_params(&self) -> Option<q::SearchParams> {
        self.inner.search_ef.map(|ef| q::SearchParams {
            hnsw_ef: Some(ef),
            ..Default::default()
        })
    }

    /// The similarity of a Qdrant score (Qdrant reports the distance for Euclid).
    fn similarity(&self, score: f32) -> f32 {
        match self.inner.metric {
            DistanceMetric::Euclidean => 1.0 / (1.0 + score.max(0.0)),
            _ => score,
        }
    }

    /// The server-side threshold for a similarity threshold; `Err(())` when nothing can
    /// score that high.
    fn server_threshold(&self, t: Option<f32>) -> std::result::Result<Option<f32>, ()> {
        match (self.inner.metric, t) {
            (_, None) => Ok(None),
            // Similarity 1/(1+d) ≥ t  ⇔  d ≤ 1/t − 1; Qdrant reads an Euclid threshold as a
            // maximum distance.
            (DistanceMetric::Euclidean, Some(t)) if t <= 0.0 => Ok(None),
            (DistanceMetric::Euclidean, Some(t)) if t > 1.0 => Err(()),
            (DistanceMetric::Euclidean, Some(t)) => Ok(Some(1.0 / t - 1.0)),
            (_, Some(t)) => Ok(Some(t)),
        }
    }

    fn with_dense_vector(&self, layout: &Layout) -> q::WithVectorsSelector {
        let options = match &layout.dense {
            None => with_vectors_selector::SelectorOptions::Enable(true),
            Some(name) => with_vectors_selector::SelectorOptions::Include(q::VectorsSelector {
                names: vec![name.clone()],
            }),
        };
        q::WithVectorsSelector {
            selector_options: Some(options),
        }
    }

    fn point(&self, p: &Prepared, layout: &Layout) -> q::PointStruct {
        let mut payload = HashMap::with_capacity(4);
        payload.insert(PAYLOAD_ID.to_owned(), payload::string(p.id.as_str()));
        payload.insert(
            PAYLOAD_CONTENT.to_owned(),
            payload::string(p.content.clone()),
        );
        payload.insert(
            METADATA_FIELD.to_owned(),
            q::Value {
                kind: Some(q::value::Kind::StructValue(p.payload_metadata.clone())),
            },
        );
        if let (Some(key), Some(tenant)) = (&self.inner.tenant_key, &self.tenant) {
            payload.insert(key.clone(), payload::string(tenant.clone()));
        }
        let dense = q::Vector::new_dense(p.vector.clone());
        let vectors = match &layout.dense {
            None => VectorsOptions::Vector(dense),
            Some(name) => {
                let mut map = HashMap::from([(name.clone(), dense)]);
                if self.inner.hybrid {
                    let sparse = self.inner.bm25.document(&p.content);
                    // A text without words has no sparse vector (Qdrant allows it missing).
                    if !sparse.is_empty() {
                        map.insert(
                            SPARSE_VECTOR.to_owned(),
                            q::Vector::new_sparse(sparse.indices, sparse.values),
                        );
                    }
                }
                VectorsOptions::Vectors(q::NamedVectors { vectors: map })
            }
        };
        q::PointStruct {
            id: Some(point_id(p.uuid.clone())),
            payload,
            vectors: Some(q::Vectors {
                vectors_options: Some(vectors),
            }),
        }
    }

    /// Whether the stored point holds exactly this document.
    fn unchanged(&self, stored: &q::RetrievedPoint, p: &Prepared, layout: &Layout) -> bool {
        let text = |k: &str| stored.payload.get(k).and_then(payload::as_str);
        if text(PAYLOAD_ID) != Some(p.id.as_str()) || text(PAYLOAD_CONTENT) != Some(&p.content) {
            return false;
        }
        let metadata = match stored.payload.get(METADATA_FIELD).map(|v| &v.kind) {
            Some(Some(q::value::Kind::StructValue(s))) => payload::from_struct(s.clone()),
            _ => return false,
        };
        if metadata != p.metadata {
            return false;
        }
        let Some(old) = stored.vectors.clone().and_then(|v| dense_vector(v, layout)) else {
            return false;
        };
        // Qdrant stores cosine vectors normalised: compare like with like.
        let new = match self.inner.metric {
            DistanceMetric::Cosine => normalised(&p.vector),
            _ => p.vector.clone(),
        };
        old.len() == new.len()
            && old
                .iter()
                .zip(&new)
                .all(|(a, b)| (a - b).abs() <= 1e-6 * a.abs().max(b.abs()).max(1.0))
    }

    /// Upserts `points` with `wait = true`, retrying transient failures; a rejected batch
    /// is split in halves until the rejected points are alone, so every good point is
    /// written and each bad one is reported with the server's reason.
    async fn write(
        &self,
        points: Vec<(usize, q::PointStruct)>,
        failed: &mut Vec<(usize, String)>,
    ) -> Result<()> {
        let mut pending = vec![points];
        while let Some(mut batch) = pending.pop() {
            let request = q::UpsertPoints {
                collection_name: self.inner.collection.clone(),
                wait: Some(true),
                points: batch.iter().map(|(_, p)| p.clone()).collect(),
                ..Default::default()
            };
            match self
                .inner
                .retry
                .run_qdrant("upsert", || {
                    self.inner.client.upsert_points(request.clone())
                })
                .await
            {
                Ok(_) => {}
                Err(e) if is_rejection(&e) => {
                    if batch.len() == 1 {
                        tracing::warn!(error = %e, "qdrant: a point was rejected");
                        failed.push((batch[0].0, reason(&e)));
                    } else {
                        let right = batch.split_off(batch.len() / 2);
                        pending.push(right);
                        pending.push(batch);
                    }
                }
                Err(e) => return Err(convert(e, "upserting points")),
            }
        }
        Ok(())
    }

    async fn count_filter(&self, filter: q::Filter) -> Result<usize> {
        let request = q::CountPoints {
            collection_name: self.inner.collection.clone(),
            filter: non_empty(filter),
            exact: Some(true),
            ..Default::default()
        };
        let response = self
            .inner
            .retry
            .run_qdrant("count", || self.inner.client.count(request.clone()))
            .await
            .map_err(|e| convert(e, "counting points"))?;
        Ok(response.result.map_or(0, |r| r.count) as usize)
    }

    /// Counts, then deletes, the points matching `filter`.
    async fn delete_filter(&self, filter: q::Filter) -> Result<usize> {
        let n = self.count_filter(filter.clone()).await?;
        if n == 0 {
            return Ok(0);
        }
        let request = q::DeletePoints {
            collection_name: self.inner.collection.clone(),
            wait: Some(true),
            points: Some(q::PointsSelector {
                points_selector_one_of: Some(PointsSelectorOneOf::Filter(filter)),
            }),
            ..Default::default()
        };
        self.inner
            .retry
            .run_qdrant("delete", || {
                self.inner.client.delete_points(request.clone())
            })
            .await
            .map_err(|e| convert(e, "deleting points"))?;
        Ok(n)
    }

    async fn retrieve(
        &self,
        uuids: Vec<String>,
        vectors: Option<q::WithVectorsSelector>,
    ) -> Result<Vec<q::RetrievedPoint>> {
        let mut out = Vec::with_capacity(uuids.len());
        for chunk in uuids.chunks(self.inner.batch_size) {
            let request = q::GetPoints {
                collection_name: self.inner.collection.clone(),
                ids: chunk.iter().cloned().map(point_id).collect(),
                with_payload: Some(with_payload()),
                with_vectors: vectors.clone(),
                ..Default::default()
            };
            let response = self
                .inner
                .retry
                .run_qdrant("get", || self.inner.client.get_points(request.clone()))
                .await
                .map_err(|e| convert(e, "retrieving points"))?;
            out.extend(response.result);
        }
        Ok(out)
    }

    fn in_tenant(&self, payload: &HashMap<String, q::Value>) -> bool {
        match (&self.inner.tenant_key, &self.tenant) {
            (Some(key), Some(t)) => payload.get(key).and_then(payload::as_str) == Some(t),
            _ => true,
        }
    }
}

fn point_id(uuid: String) -> PointId {
    PointId {
        point_id_options: Some(PointIdOptions::Uuid(uuid)),
    }
}

fn point_id_string(id: &PointId) -> String {
    match &id.point_id_options {
        Some(PointIdOptions::Uuid(u)) => u.clone(),
        Some(PointIdOptions::Num(n)) => n.to_string(),
        None => String::new(),
    }
}

fn nearest(input: VectorInput) -> q::Query {
    q::Query {
        variant: Some(Variant::Nearest(input)),
    }
}

fn with_payload() -> q::WithPayloadSelector {
    q::WithPayloadSelector {
        selector_options: Some(with_payload_selector::SelectorOptions::Enable(true)),
    }
}

fn non_empty(filter: q::Filter) -> Option<q::Filter> {
    (filter != q::Filter::default()).then_some(filter)
}

fn normalised(v: &[f32]) -> Vec<f32> {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        v.iter().map(|x| x / norm).collect()
    } else {
        v.to_vec()
    }
}

fn dense_vector(vectors: q::VectorsOutput, layout: &Layout) -> Option<Vec<f32>> {
    let v = match &layout.dense {
        None => vectors.get_vector(),
        Some(name) => vectors.get_vector_by_name(name),
    }?;
    match v {
        vector_output::Vector::Dense(d) => Some(d.data),
        _ => None,
    }
}

/// A document from a point's payload; points written by other tools fall back to their
/// point id and an empty content.
fn document(id: Option<PointId>, mut payload: HashMap<String, q::Value>) -> Document {
    let take_text = |payload: &mut HashMap<String, q::Value>, key: &str| {
        payload
            .remove(key)
            .and_then(|v| payload::as_str(&v).map(str::to_owned))
    };
    let doc_id = take_text(&mut payload, PAYLOAD_ID)
        .unwrap_or_else(|| id.as_ref().map(point_id_string).unwrap_or_default());
    let content = take_text(&mut payload, PAYLOAD_CONTENT).unwrap_or_default();
    let metadata = match payload.remove(METADATA_FIELD).and_then(|v| v.kind) {
        Some(q::value::Kind::StructValue(s)) => payload::from_struct(s),
        _ => Metadata::new(),
    };
    Document::new(content)
        .with_id(doc_id)
        .with_metadata_map(metadata)
}

fn has_id(uuids: Vec<String>) -> Condition {
    Condition {
        condition_one_of: Some(ConditionOneOf::HasId(q::HasIdCondition {
            has_id: uuids.into_iter().map(point_id).collect(),
        })),
    }
}

#[async_trait]
impl VectorStore for QdrantStore {
    /// Writes in batches of [`batch_size`](QdrantStoreBuilder::batch_size) with
    /// `wait = true`. Before writing, the stored versions of the batch's points are fetched
    /// (payload and vector: one extra read per batch) to count inserted, updated and
    /// unchanged documents; unchanged ones are not rewritten. Duplicate ids within one call
    /// collapse to their last occurrence. A point Qdrant rejects is listed in
    /// [`UpsertReport::failed`] while every other point is stored.
    async fn upsert(&self, documents: Vec<EmbeddedDocument>) -> Result<UpsertReport> {
        let tenant = self.tenant_scope()?.map(|(_, t)| t.to_owned());
        let mut prepared = Vec::with_capacity(documents.len());
        for (index, d) in documents.into_iter().enumerate() {
            validate_vector(&d.embedding)
                .map_err(|e| Error::invalid_input(format!("document {index}: {e}")))?;
            if let Some(dims) = self.inner.dimensions {
                if d.embedding.len() != dims {
                    return Err(Error::invalid_input(format!(
                        "document {index}'s vector has {} dimensions; this store holds \
                         {dims}-dimensional vectors",
                        d.embedding.len()
                    )));
                }
            }
            let id = d.id();
            let payload_metadata = payload::to_struct(&d.document.metadata, "")
                .map_err(|e| Error::invalid_input(format!("document {index}: {e}")))?;
            prepared.push(Prepared {
                index,
                uuid: point_uuid(&id, tenant.as_deref()).to_string(),
                id,
                content: d.document.content,
                metadata: d.document.metadata,
                payload_metadata,
                vector: d.embedding,
            });
        }
        let ids: Vec<DocumentId> = prepared.iter().map(|p| p.id.clone()).collect();
        if prepared.is_empty() {
            return Ok(UpsertReport::new(ids));
        }
        let layout = self.layout().await?;
        for p in &prepared {
            self.check_dims(
                p.vector.len(),
                layout,
                &format!("document {}'s vector", p.index),
            )?;
        }
        // Duplicate ids: the last occurrence wins.
        let last: HashMap<&str, usize> = prepared
            .iter()
            .map(|p| (p.uuid.as_str(), p.index))
            .collect();
        let keep: HashSet<usize> = last.into_values().collect();
        prepared.retain(|p| keep.contains(&p.index));

        let mut report = UpsertReport::new(ids);
        let (mut inserted, mut updated, mut unchanged) = (0, 0, 0);
        for batch in prepared.chunks(self.inner.batch_size) {
            let stored = self
                .retrieve(
                    batch.iter().map(|p| p.uuid.clone()).collect(),
                    Some(self.with_dense_vector(layout)),
                )
                .await?;
            let stored: HashMap<String, q::RetrievedPoint> = stored
                .into_iter()
                .filter_map(|p| Some((point_id_string(p.id.as_ref()?), p)))
                .collect();
            let mut changes: HashMap<usize, Change> = HashMap::new();
            let mut points = Vec::new();
            for p in batch {
                match stored.get(&p.uuid) {
                    Some(old) if self.unchanged(old, p, layout) => unchanged += 1,
                    old => {
                        let change = if old.is_some() {
                            Change::Update
                        } else {
                            Change::Insert
                        };
                        changes.insert(p.index, change);
                        points.push((p.index, self.point(p, layout)));
                    }
                }
            }
            if points.is_empty() {
                continue;
            }
            let mut failed = Vec::new();
            self.write(points, &mut failed).await?;
            for (index, why) in failed {
                changes.remove(&index);
                report
                    .failed
                    .push(FailedUpsert::new(report.ids[index].clone(), why));
            }
            for change in changes.values() {
                match change {
                    Change::Insert => inserted += 1,
                    Change::Update => updated += 1,
                }
            }
        }
        Ok(report.with_counts(inserted, updated, unchanged))
    }

    async fn search(&self, request: SearchRequest) -> Result<Vec<ScoredDocument>> {
        request.validate()?;
        let tenant = self.tenant_scope()?;
        let Some(filter) = request_filter(request.filter.as_ref(), tenant)? else {
            return Ok(Vec::new());
        };
        let Ok(threshold) = self.server_threshold(request.score_threshold) else {
            return Ok(Vec::new());
        };
        let layout = self.layout().await?;
        self.check_dims(request.vector.len(), layout, "the query vector")?;
        let query = q::QueryPoints {
            collection_name: self.inner.collection.clone(),
            query: Some(nearest(VectorInput::new_dense(request.vector))),
            using: layout.dense.clone(),
            filter: non_empty(filter),
            params: self.search_params(),
            score_threshold: threshold,
            limit: Some(request.k as u64),
            with_payload: Some(with_payload()),
            with_vectors: request
                .include_vectors
                .then(|| self.with_dense_vector(layout)),
            ..Default::default()
        };
        let response = self
            .inner
            .retry
            .run_qdrant("query", || self.inner.client.query(query.clone()))
            .await
            .map_err(|e| convert(e, "searching"))?;
        Ok(response
            .result
            .into_iter()
            .map(|p| {
                let vector = p.vectors.and_then(|v| dense_vector(v, layout));
                let hit = ScoredDocument::new(document(p.id, p.payload), self.similarity(p.score));
                match vector {
                    Some(v) if request.include_vectors => hit.with_embedding(v),
                    _ => hit,
                }
            })
            .collect())
    }

    /// Counts the ids that exist (in the tenant), then deletes them: two requests.
    async fn delete(&self, ids: &[DocumentId]) -> Result<usize> {
        let tenant = self.tenant_scope()?;
        if ids.is_empty() {
            return Ok(0);
        }
        let uuids: Vec<String> = ids
            .iter()
            .map(|id| self.point_id(id))
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        self.layout().await?;
        let mut must = Vec::with_capacity(2);
        if let Some((key, value)) = tenant {
            must.push(keyword(key, value));
        }
        must.push(has_id(uuids));
        self.delete_filter(q::Filter {
            must,
            ..Default::default()
        })
        .await
    }

    /// Counts the matching points, then deletes them: two requests, so a concurrent write
    /// can make the count inexact.
    async fn delete_by_filter(&self, filter: &Filter) -> Result<usize> {
        let tenant = self.tenant_scope()?;
        let Some(filter) = request_filter(Some(filter), tenant)? else {
            return Ok(0);
        };
        self.layout().await?;
        self.delete_filter(filter).await
    }

    async fn get(&self, ids: &[DocumentId]) -> Result<Vec<Document>> {
        self.tenant_scope()?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let asked: Vec<String> = ids.iter().map(|id| self.point_id(id)).collect();
        let unique: Vec<String> = asked
            .iter()
            .cloned()
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        self.layout().await?;
        let mut found: HashMap<String, Document> = self
            .retrieve(unique, None)
            .await?
            .into_iter()
            .filter(|p| self.in_tenant(&p.payload))
            .filter_map(|p| {
                let key = point_id_string(p.id.as_ref()?);
                Some((key, document(p.id, p.payload)))
            })
            .collect();
        let mut remaining: HashMap<&str, usize> = HashMap::new();
        for uuid in &asked {
            *remaining.entry(uuid.as_str()).or_insert(0) += 1;
        }
        let mut out = Vec::with_capacity(asked.len());
        for uuid in &asked {
            // The last request for an id takes the document; earlier ones clone it.
            let left = remaining.get_mut(uuid.as_str()).map_or(0, |n| {
                *n -= 1;
                *n
            });
            let doc = if left == 0 {
                found.remove(uuid)
            } else {
                found.get(uuid).cloned()
            };
            out.extend(doc);
        }
        Ok(out)
    }

    async fn count(&self, filter: Option<&Filter>) -> Result<usize> {
        let tenant = self.tenant_scope()?;
        let Some(filter) = request_filter(filter, tenant)? else {
            return Ok(0);
        };
        self.layout().await?;
        self.count_filter(filter).await
    }
}

/// Hybrid search: the dense search for the vector and the BM25 sparse search for the text
/// (`fetch_k` candidates each, both under the filter and the tenant scope, as two queries
/// sent at once), fused by [`catena_core::fuse`] so that the fusion, its weights and its
/// RRF constant are exactly those of the other stores. Text without words searches the dense
/// vectors alone.
///
/// # Errors
/// [`Error::InvalidConfig`] unless the store was built with
/// [`hybrid(true)`](QdrantStoreBuilder::hybrid); [`Error::InvalidInput`] for a bad request
/// (see [`HybridRequest::validate`]); provider errors from Qdrant.
#[async_trait]
impl HybridSearch for QdrantStore {
    async fn hybrid_search(&self, request: HybridRequest) -> Result<Vec<HybridHit>> {
        if !self.inner.hybrid {
            return Err(Error::invalid_config(
                "qdrant: hybrid_search needs a store built with `hybrid(true)`",
            ));
        }
        request.validate()?;
        let tenant = self.tenant_scope()?;
        let Some(filter) = request_filter(request.filter.as_ref(), tenant)? else {
            return Ok(Vec::new());
        };
        let filter = non_empty(filter);
        let layout = self.layout().await?;
        self.check_dims(request.vector.len(), layout, "the query vector")?;
        let fetch = request.fetch_k as u64;
        let points = |query, using, params| q::QueryPoints {
            collection_name: self.inner.collection.clone(),
            query: Some(query),
            using,
            filter: filter.clone(),
            params,
            limit: Some(fetch),
            with_payload: Some(with_payload()),
            ..Default::default()
        };
        let run = |request: q::QueryPoints| async move {
            self.inner
                .retry
                .run_qdrant("query", || self.inner.client.query(request.clone()))
                .await
                .map_err(|e| convert(e, "hybrid search"))
        };
        let dense_query = points(
            nearest(VectorInput::new_dense(request.vector.clone())),
            layout.dense.clone(),
            self.search_params(),
        );
        let sparse = self.inner.bm25.query(&request.text);
        let dense_wanted = request.vector_weight > 0.0;
        let sparse_wanted = request.text_weight > 0.0 && !sparse.is_empty();
        let sparse_query = points(
            nearest(VectorInput::new_sparse(sparse.indices, sparse.values)),
            Some(SPARSE_VECTOR.to_owned()),
            None,
        );
        let (dense, keyword) = futures::future::try_join(
            async {
                if dense_wanted {
                    run(dense_query).await.map(|r| r.result)
                } else {
                    Ok(Vec::new())
                }
            },
            async {
                if sparse_wanted {
                    run(sparse_query).await.map(|r| r.result)
                } else {
                    Ok(Vec::new())
                }
            },
        )
        .await?;
        let dense = dense
            .into_iter()
            .map(|p| ScoredDocument::new(document(p.id, p.payload), self.similarity(p.score)))
            .collect();
        let keyword = keyword
            .into_iter()
            .map(|p| ScoredDocument::new(document(p.id, p.payload), p.score))
            .collect();
        Ok(fuse(dense, keyword, &request))
    }
}
