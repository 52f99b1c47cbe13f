//! Qdrant store tests.
//!
//! Two parts:
//! - **Always run, no server needed**: a loopback tonic server implementing Qdrant's own
//!   generated `Points` and `Collections` gRPC services (from `qdrant-client`) records every
//!   request and keeps points in a map. The tests check the exact requests the store sends
//!   (collection creation, payload indexes, upsert batches, searches, deletes, counts,
//!   hybrid queries, tenant conditions), the fault handling (a batch failing transiently, a
//!   point rejected), the dimension-mismatch error, and run the whole conformance suite
//!   against the loopback server. Filter compilation, point ids, sparse vectors and retry
//!   classification also have unit tests in `src/qdrant/` (`cargo test -p
//!   catena-vectorstores --features qdrant --lib qdrant`).
//! - **Against a real Qdrant, when `QDRANT_URL` is set**: the conformance suite per metric,
//!   hybrid search and tenancy, each on its own collection, dropped at the end. Without
//!   `QDRANT_URL` these tests print that they did not run and pass. To run them:
//!
//!   ```text
//!   docker run -p 6334:6334 qdrant/qdrant
//!   QDRANT_URL=http://localhost:6334 cargo test -p catena-vectorstores --features qdrant --test qdrant
//!   ```

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use catena_core::test_utils::VectorStoreConformance;
use catena_core::{
    Document, DocumentId, EmbeddedDocument, Error, Filter, Fusion, HybridRequest, HybridSearch,
    RetryPolicy, SearchRequest, VectorStore,
};
use catena_vectorstores::qdrant::{
    Bm25, PayloadIndexKind, QdrantStore, QdrantStoreBuilder, DENSE_VECTOR, METADATA_FIELD,
    PAYLOAD_CONTENT, PAYLOAD_ID, SPARSE_VECTOR,
};
use catena_vectorstores::DistanceMetric;
use qdrant_client::qdrant::{
    self as q, condition::ConditionOneOf, points_selector::PointsSelectorOneOf, query::Variant,
    r#match::MatchValue, vector_input,
};

use fake::{Call, Fake};

mod fake {
    //! A loopback Qdrant: the generated gRPC services over an in-memory map.

    use std::collections::{BTreeMap, HashMap, HashSet};
    use std::sync::{Arc, Mutex, MutexGuard};

    use qdrant_client::qdrant::{
        self as q, collections_server::Collections, collections_server::CollectionsServer,
        condition::ConditionOneOf, points_selector::PointsSelectorOneOf, points_server::Points,
        points_server::PointsServer, query::Variant, r#match::MatchValue, value::Kind, vector,
        vector_input, vector_output, vectors::VectorsOptions, vectors_config::Config,
        with_vectors_selector,
    };
    use tonic::transport::server::TcpIncoming;
    use tonic::{Request, Response, Status};

    /// A request the fake received (all are kept, for the failure messages).
    #[allow(dead_code)]
    #[derive(Debug, Clone)]
    pub(crate) enum Call {
        Exists(String),
        Info(String),
        Create(q::CreateCollection),
        DropCollection(String),
        Index(q::CreateFieldIndexCollection),
        Upsert(q::UpsertPoints),
        Get(q::GetPoints),
        Query(q::QueryPoints),
        Count(q::CountPoints),
        Delete(q::DeletePoints),
    }

    #[derive(Default)]
    pub(crate) struct Collection {
        pub(crate) create: q::CreateCollection,
        pub(crate) points: BTreeMap<String, q::PointStruct>,
    }

    #[derive(Default)]
    pub(crate) struct State {
        pub(crate) collections: HashMap<String, Collection>,
        pub(crate) calls: Vec<Call>,
        /// The next this-many upsert calls fail with `UNAVAILABLE`.
        pub(crate) transient_upsert_failures: usize,
        /// Upserts containing any of these point ids are rejected with `INVALID_ARGUMENT`.
        pub(crate) rejected: HashSet<String>,
        /// Successful writes per point id.
        pub(crate) writes: HashMap<String, usize>,
    }

    #[derive(Clone, Default)]
    pub(crate) struct Fake(Arc<Mutex<State>>);

    impl Fake {
        pub(crate) fn state(&self) -> MutexGuard<'_, State> {
            self.0.lock().unwrap()
        }

        pub(crate) fn calls(&self) -> Vec<Call> {
            self.state().calls.clone()
        }

        pub(crate) fn clear_calls(&self) {
            self.state().calls.clear();
        }

        /// Serves on a free loopback port; returns the url. The server lives as long as the
        /// test's runtime.
        pub(crate) async fn serve(&self) -> String {
            let incoming = TcpIncoming::bind("127.0.0.1:0".parse().unwrap()).unwrap();
            let addr = incoming.local_addr().unwrap();
            let router = tonic::transport::Server::builder()
                .add_service(PointsServer::new(self.clone()))
                .add_service(CollectionsServer::new(self.clone()));
            tokio::spawn(async move {
                router.serve_with_incoming(incoming).await.unwrap();
            });
            format!("http://{addr}")
        }

        fn record(&self, call: Call) -> MutexGuard<'_, State> {
            let mut s = self.state();
            s.calls.push(call);
            s
        }
    }

    fn no_collection(name: &str) -> Status {
        Status::not_found(format!("Collection `{name}` doesn't exist!"))
    }

    fn done() -> q::PointsOperationResponse {
        q::PointsOperationResponse {
            result: Some(q::UpdateResult {
                operation_id: Some(1),
                status: q::UpdateStatus::Completed as i32,
            }),
            time: 0.0,
            usage: None,
        }
    }

    pub(crate) fn id_of(id: &Option<q::PointId>) -> String {
        match id.as_ref().and_then(|p| p.point_id_options.as_ref()) {
            Some(q::point_id::PointIdOptions::Uuid(u)) => u.clone(),
            Some(q::point_id::PointIdOptions::Num(n)) => n.to_string(),
            None => String::new(),
        }
    }

    /// The named (or unnamed, for `""`) vector of a point.
    pub(crate) fn vector_of(p: &q::PointStruct, name: &str) -> Option<vector::Vector> {
        match p.vectors.as_ref()?.vectors_options.as_ref()? {
            VectorsOptions::Vector(v) if name.is_empty() => v.vector.clone(),
            VectorsOptions::Vectors(n) => n.vectors.get(name)?.vector.clone(),
            VectorsOptions::Vector(_) => None,
        }
    }

    fn dense(p: &q::PointStruct, name: &str) -> Option<Vec<f32>> {
        match vector_of(p, name)? {
            vector::Vector::Dense(d) => Some(d.data),
            _ => None,
        }
    }

    fn distance_of(c: &q::CreateCollection, name: &str) -> q::Distance {
        let d = match c.vectors_config.as_ref().and_then(|v| v.config.as_ref()) {
            Some(Config::Params(p)) => p.distance,
            Some(Config::ParamsMap(m)) => m.map.get(name).map_or(0, |p| p.distance),
            None => 0,
        };
        q::Distance::try_from(d).unwrap()
    }

    fn normalise(v: &mut [f32]) {
        let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        if n > 0.0 {
            v.iter_mut().for_each(|x| *x /= n);
        }
    }

    // --- filters, as Qdrant evaluates them ---

    fn values_at<'a>(payload: &'a HashMap<String, q::Value>, key: &str) -> Vec<&'a q::Value> {
        let mut parts = key.split('.');
        let Some(first) = payload.get(parts.next().unwrap()) else {
            return vec![];
        };
        let mut current = vec![first];
        for part in parts {
            let mut next = vec![];
            for v in current {
                match &v.kind {
                    Some(Kind::StructValue(s)) => next.extend(s.fields.get(part)),
                    Some(Kind::ListValue(l)) => {
                        for item in &l.values {
                            if let Some(Kind::StructValue(s)) = &item.kind {
                                next.extend(s.fields.get(part));
                            }
                        }
                    }
                    _ => {}
                }
            }
            current = next;
        }
        current
            .into_iter()
            .flat_map(|v| match &v.kind {
                Some(Kind::ListValue(l)) => l.values.iter().collect::<Vec<_>>(),
                _ => vec![v],
            })
            .collect()
    }

    fn number(v: &q::Value) -> Option<f64> {
        match v.kind {
            Some(Kind::IntegerValue(i)) => Some(i as f64),
            Some(Kind::DoubleValue(x)) => Some(x),
            _ => None,
        }
    }

    fn field_holds(p: &q::PointStruct, f: &q::FieldCondition) -> bool {
        let values = values_at(&p.payload, &f.key);
        if let Some(m) = f.r#match.as_ref().and_then(|m| m.match_value.as_ref()) {
            return values.iter().any(|v| match (m, &v.kind) {
                (MatchValue::Keyword(s), Some(Kind::StringValue(x))) => s == x,
                (MatchValue::Integer(i), Some(Kind::IntegerValue(x))) => i == x,
                (MatchValue::Boolean(b), Some(Kind::BoolValue(x))) => b == x,
                (MatchValue::Keywords(list), Some(Kind::StringValue(x))) => {
                    list.strings.contains(x)
                }
                _ => false,
            });
        }
        if let Some(r) = &f.range {
            return values.iter().filter_map(|v| number(v)).any(|x| {
                r.gt.is_none_or(|b| x > b)
                    && r.gte.is_none_or(|b| x >= b)
                    && r.lt.is_none_or(|b| x < b)
                    && r.lte.is_none_or(|b| x <= b)
            });
        }
        panic!("fake: unsupported field condition {f:?}")
    }

    fn holds(p: &q::PointStruct, c: &q::Condition) -> bool {
        match c.condition_one_of.as_ref().expect("empty condition") {
            ConditionOneOf::Field(f) => field_holds(p, f),
            ConditionOneOf::IsEmpty(e) => values_at(&p.payload, &e.key)
                .iter()
                .all(|v| matches!(v.kind, Some(Kind::NullValue(_)) | None)),
            ConditionOneOf::IsNull(n) => values_at(&p.payload, &n.key)
                .iter()
                .any(|v| matches!(v.kind, Some(Kind::NullValue(_)))),
            ConditionOneOf::HasId(h) => {
                let id = id_of(&p.id);
                h.has_id.iter().any(|x| id_of(&Some(x.clone())) == id)
            }
            ConditionOneOf::Filter(f) => matches(p, f),
            other => panic!("fake: unsupported condition {other:?}"),
        }
    }

    pub(crate) fn matches(p: &q::PointStruct, f: &q::Filter) -> bool {
        f.must.iter().all(|c| holds(p, c))
            && !f.must_not.iter().any(|c| holds(p, c))
            && (f.should.is_empty() || f.should.iter().any(|c| holds(p, c)))
    }

    fn selected<'a>(
        c: &'a Collection,
        filter: Option<&'a q::Filter>,
    ) -> impl Iterator<Item = &'a q::PointStruct> {
        c.points
            .values()
            .filter(move |p| filter.is_none_or(|f| matches(p, f)))
    }

    /// Ranks the points for a `nearest` query: (point id, score), best first.
    fn nearest(
        c: &Collection,
        input: &q::VectorInput,
        using: Option<&str>,
        filter: Option<&q::Filter>,
        threshold: Option<f32>,
        limit: usize,
    ) -> Vec<(String, f32)> {
        let name = using.unwrap_or("");
        let mut hits: Vec<(String, f32)> = match input.variant.as_ref().unwrap() {
            vector_input::Variant::Dense(d) => {
                let distance = distance_of(&c.create, name);
                let mut query = d.data.clone();
                if distance == q::Distance::Cosine {
                    normalise(&mut query);
                }
                selected(c, filter)
                    .filter_map(|p| {
                        let v = dense(p, name)?;
                        let score = match distance {
                            q::Distance::Euclid => query
                                .iter()
                                .zip(&v)
                                .map(|(a, b)| (a - b) * (a - b))
                                .sum::<f32>()
                                .sqrt(),
                            _ => query.iter().zip(&v).map(|(a, b)| a * b).sum(),
                        };
                        Some((id_of(&p.id), score))
                    })
                    .collect()
            }
            vector_input::Variant::Sparse(s) => selected(c, filter)
                .filter_map(|p| {
                    let Some(vector::Vector::Sparse(d)) = vector_of(p, name) else {
                        return None;
                    };
                    let score: f32 = s
                        .indices
                        .iter()
                        .zip(&s.values)
                        .filter_map(|(i, w)| {
                            d.indices
                                .iter()
                                .position(|x| x == i)
                                .map(|j| w * d.values[j])
                        })
                        .sum();
                    (score > 0.0).then(|| (id_of(&p.id), score))
                })
                .collect(),
            other => panic!("fake: unsupported query input {other:?}"),
        };
        let euclid = matches!(input.variant, Some(vector_input::Variant::Dense(_)))
            && distance_of(&c.create, name) == q::Distance::Euclid;
        if euclid {
            hits.retain(|(_, d)| threshold.is_none_or(|t| *d <= t));
            hits.sort_by(|a, b| a.1.total_cmp(&b.1));
        } else {
            hits.retain(|(_, s)| threshold.is_none_or(|t| *s >= t));
            hits.sort_by(|a, b| b.1.total_cmp(&a.1));
        }
        hits.truncate(limit);
        hits
    }

    fn output(
        c: &Collection,
        id: &str,
        score: f32,
        with_vectors: Option<&q::WithVectorsSelector>,
    ) -> q::ScoredPoint {
        let p = &c.points[id];
        let vectors = with_vectors
            .and_then(|w| w.selector_options.as_ref())
            .and_then(|o| vectors_out(p, o));
        q::ScoredPoint {
            id: p.id.clone(),
            payload: p.payload.clone(),
            score,
            vectors,
            ..Default::default()
        }
    }

    fn vectors_out(
        p: &q::PointStruct,
        o: &with_vectors_selector::SelectorOptions,
    ) -> Option<q::VectorsOutput> {
        let out = |v: &q::Vector| q::VectorOutput {
            vector: v.vector.clone().map(|v| match v {
                vector::Vector::Dense(d) => vector_output::Vector::Dense(d),
                vector::Vector::Sparse(s) => vector_output::Vector::Sparse(s),
                other => panic!("fake: unsupported stored vector {other:?}"),
            }),
            ..Default::default()
        };
        let options = match (p.vectors.as_ref()?.vectors_options.as_ref()?, o) {
            (_, with_vectors_selector::SelectorOptions::Enable(false)) => return None,
            (VectorsOptions::Vector(v), _) => q::vectors_output::VectorsOptions::Vector(out(v)),
            (VectorsOptions::Vectors(n), sel) => {
                let names: Option<&Vec<String>> = match sel {
                    with_vectors_selector::SelectorOptions::Include(s) => Some(&s.names),
                    _ => None,
                };
                q::vectors_output::VectorsOptions::Vectors(q::NamedVectorsOutput {
                    vectors: n
                        .vectors
                        .iter()
                        .filter(|(k, _)| names.is_none_or(|ns| ns.contains(k)))
                        .map(|(k, v)| (k.clone(), out(v)))
                        .collect(),
                })
            }
        };
        Some(q::VectorsOutput {
            vectors_options: Some(options),
        })
    }

    /// Methods the store never calls answer `UNIMPLEMENTED`. Written in the desugared
    /// `async_trait` form, since the attribute cannot see into a macro.
    macro_rules! unimplemented_methods {
        ($($name:ident($req:ident) -> $resp:ident;)*) => {$(
            fn $name<'life0, 'async_trait>(
                &'life0 self,
                _request: Request<q::$req>,
            ) -> std::pin::Pin<
                Box<
                    dyn std::future::Future<Output = Result<Response<q::$resp>, Status>>
                        + Send
                        + 'async_trait,
                >,
            >
            where
                'life0: 'async_trait,
                Self: 'async_trait,
            {
                Box::pin(async { Err(Status::unimplemented(stringify!($name))) })
            }
        )*};
    }

    #[tonic::async_trait]
    impl Collections for Fake {
        async fn collection_exists(
            &self,
            request: Request<q::CollectionExistsRequest>,
        ) -> Result<Response<q::CollectionExistsResponse>, Status> {
            let name = request.into_inner().collection_name;
            let s = self.record(Call::Exists(name.clone()));
            Ok(Response::new(q::CollectionExistsResponse {
                result: Some(q::CollectionExists {
                    exists: s.collections.contains_key(&name),
                }),
                time: 0.0,
            }))
        }

        async fn get(
            &self,
            request: Request<q::GetCollectionInfoRequest>,
        ) -> Result<Response<q::GetCollectionInfoResponse>, Status> {
            let name = request.into_inner().collection_name;
            let s = self.record(Call::Info(name.clone()));
            let c = s
                .collections
                .get(&name)
                .ok_or_else(|| no_collection(&name))?;
            let params = q::CollectionParams {
                vectors_config: c.create.vectors_config.clone(),
                sparse_vectors_config: c.create.sparse_vectors_config.clone(),
                ..Default::default()
            };
            Ok(Response::new(q::GetCollectionInfoResponse {
                result: Some(q::CollectionInfo {
                    config: Some(q::CollectionConfig {
                        params: Some(params),
                        hnsw_config: c.create.hnsw_config,
                        ..Default::default()
                    }),
                    points_count: Some(c.points.len() as u64),
                    ..Default::default()
                }),
                time: 0.0,
            }))
        }

        async fn create(
            &self,
            request: Request<q::CreateCollection>,
        ) -> Result<Response<q::CollectionOperationResponse>, Status> {
            let create = request.into_inner();
            let mut s = self.record(Call::Create(create.clone()));
            if s.collections.contains_key(&create.collection_name) {
                return Err(Status::invalid_argument("collection already exists"));
            }
            s.collections.insert(
                create.collection_name.clone(),
                Collection {
                    create,
                    points: BTreeMap::new(),
                },
            );
            Ok(Response::new(q::CollectionOperationResponse {
                result: true,
                time: 0.0,
            }))
        }

        async fn delete(
            &self,
            request: Request<q::DeleteCollection>,
        ) -> Result<Response<q::CollectionOperationResponse>, Status> {
            let name = request.into_inner().collection_name;
            let mut s = self.record(Call::DropCollection(name.clone()));
            let existed = s.collections.remove(&name).is_some();
            Ok(Response::new(q::CollectionOperationResponse {
                result: existed,
                time: 0.0,
            }))
        }

        unimplemented_methods! {
            list(ListCollectionsRequest) -> ListCollectionsResponse;
            update(UpdateCollection) -> CollectionOperationResponse;
            update_aliases(ChangeAliases) -> CollectionOperationResponse;
            list_collection_aliases(ListCollectionAliasesRequest) -> ListAliasesResponse;
            list_aliases(ListAliasesRequest) -> ListAliasesResponse;
            collection_cluster_info(CollectionClusterInfoRequest) -> CollectionClusterInfoResponse;
            update_collection_cluster_setup(UpdateCollectionClusterSetupRequest) -> UpdateCollectionClusterSetupResponse;
            create_shard_key(CreateShardKeyRequest) -> CreateShardKeyResponse;
            delete_shard_key(DeleteShardKeyRequest) -> DeleteShardKeyResponse;
            list_shard_keys(ListShardKeysRequest) -> ListShardKeysResponse;
        }
    }

    #[tonic::async_trait]
    impl Points for Fake {
        async fn upsert(
            &self,
            request: Request<q::UpsertPoints>,
        ) -> Result<Response<q::PointsOperationResponse>, Status> {
            let req = request.into_inner();
            let mut s = self.record(Call::Upsert(req.clone()));
            if s.transient_upsert_failures > 0 {
                s.transient_upsert_failures -= 1;
                return Err(Status::unavailable("fake: node is restarting"));
            }
            if let Some(bad) = req
                .points
                .iter()
                .find(|p| s.rejected.contains(&id_of(&p.id)))
            {
                return Err(Status::invalid_argument(format!(
                    "Wrong input: point {} has a bad payload",
                    id_of(&bad.id)
                )));
            }
            let State {
                collections,
                writes,
                ..
            } = &mut *s;
            let c = collections
                .get_mut(&req.collection_name)
                .ok_or_else(|| no_collection(&req.collection_name))?;
            for mut p in req.points {
                if let Some(VectorsOptions::Vectors(named)) =
                    p.vectors.as_mut().and_then(|v| v.vectors_options.as_mut())
                {
                    for (name, v) in &mut named.vectors {
                        if let Some(vector::Vector::Dense(d)) = v.vector.as_mut() {
                            if distance_of(&c.create, name) == q::Distance::Cosine {
                                normalise(&mut d.data);
                            }
                        }
                    }
                }
                let id = id_of(&p.id);
                *writes.entry(id.clone()).or_insert(0) += 1;
                c.points.insert(id, p);
            }
            Ok(Response::new(done()))
        }

        async fn delete(
            &self,
            request: Request<q::DeletePoints>,
        ) -> Result<Response<q::PointsOperationResponse>, Status> {
            let req = request.into_inner();
            let mut s = self.record(Call::Delete(req.clone()));
            let c = s
                .collections
                .get_mut(&req.collection_name)
                .ok_or_else(|| no_collection(&req.collection_name))?;
            match req.points.and_then(|p| p.points_selector_one_of) {
                Some(PointsSelectorOneOf::Points(list)) => {
                    for id in list.ids {
                        c.points.remove(&id_of(&Some(id)));
                    }
                }
                Some(PointsSelectorOneOf::Filter(f)) => c.points.retain(|_, p| !matches(p, &f)),
                None => return Err(Status::invalid_argument("no selector")),
            }
            Ok(Response::new(done()))
        }

        async fn get(
            &self,
            request: Request<q::GetPoints>,
        ) -> Result<Response<q::GetResponse>, Status> {
            let req = request.into_inner();
            let s = self.record(Call::Get(req.clone()));
            let c = s
                .collections
                .get(&req.collection_name)
                .ok_or_else(|| no_collection(&req.collection_name))?;
            let result = req
                .ids
                .iter()
                .filter_map(|id| c.points.get(&id_of(&Some(id.clone()))))
                .map(|p| q::RetrievedPoint {
                    id: p.id.clone(),
                    payload: p.payload.clone(),
                    vectors: req
                        .with_vectors
                        .as_ref()
                        .and_then(|w| w.selector_options.as_ref())
                        .and_then(|o| vectors_out(p, o)),
                    ..Default::default()
                })
                .collect();
            Ok(Response::new(q::GetResponse {
                result,
                time: 0.0,
                usage: None,
            }))
        }

        async fn create_field_index(
            &self,
            request: Request<q::CreateFieldIndexCollection>,
        ) -> Result<Response<q::PointsOperationResponse>, Status> {
            drop(self.record(Call::Index(request.into_inner())));
            Ok(Response::new(done()))
        }

        async fn count(
            &self,
            request: Request<q::CountPoints>,
        ) -> Result<Response<q::CountResponse>, Status> {
            let req = request.into_inner();
            let s = self.record(Call::Count(req.clone()));
            let c = s
                .collections
                .get(&req.collection_name)
                .ok_or_else(|| no_collection(&req.collection_name))?;
            let count = selected(c, req.filter.as_ref()).count() as u64;
            Ok(Response::new(q::CountResponse {
                result: Some(q::CountResult { count }),
                time: 0.0,
                usage: None,
            }))
        }

        async fn query(
            &self,
            request: Request<q::QueryPoints>,
        ) -> Result<Response<q::QueryResponse>, Status> {
            let req = request.into_inner();
            let s = self.record(Call::Query(req.clone()));
            let c = s
                .collections
                .get(&req.collection_name)
                .ok_or_else(|| no_collection(&req.collection_name))?;
            let limit = req.limit.unwrap_or(10) as usize;
            let ranked = match req.query.as_ref().and_then(|q| q.variant.as_ref()) {
                Some(Variant::Nearest(input)) => nearest(
                    c,
                    input,
                    req.using.as_deref(),
                    req.filter.as_ref(),
                    req.score_threshold,
                    limit,
                ),
                Some(Variant::Fusion(f)) if *f == q::Fusion::Rrf as i32 => {
                    let mut fused: HashMap<String, f32> = HashMap::new();
                    for pre in &req.prefetch {
                        let Some(Variant::Nearest(input)) =
                            pre.query.as_ref().and_then(|q| q.variant.as_ref())
                        else {
                            return Err(Status::invalid_argument("fake: prefetch"));
                        };
                        let hits = nearest(
                            c,
                            input,
                            pre.using.as_deref(),
                            pre.filter.as_ref(),
                            None,
                            pre.limit.unwrap_or(10) as usize,
                        );
                        for (rank, (id, _)) in hits.into_iter().enumerate() {
                            *fused.entry(id).or_insert(0.0) += 1.0 / (2.0 + rank as f32);
                        }
                    }
                    let mut ranked: Vec<_> = fused.into_iter().collect();
                    ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
                    ranked.truncate(limit);
                    ranked
                }
                other => {
                    return Err(Status::invalid_argument(format!(
                        "fake: unsupported query {other:?}"
                    )))
                }
            };
            let result = ranked
                .iter()
                .map(|(id, score)| output(c, id, *score, req.with_vectors.as_ref()))
                .collect();
            Ok(Response::new(q::QueryResponse {
                result,
                time: 0.0,
                usage: None,
            }))
        }

        unimplemented_methods! {
            update_vectors(UpdatePointVectors) -> PointsOperationResponse;
            delete_vectors(DeletePointVectors) -> PointsOperationResponse;
            set_payload(SetPayloadPoints) -> PointsOperationResponse;
            overwrite_payload(SetPayloadPoints) -> PointsOperationResponse;
            delete_payload(DeletePayloadPoints) -> PointsOperationResponse;
            clear_payload(ClearPayloadPoints) -> PointsOperationResponse;
            delete_field_index(DeleteFieldIndexCollection) -> PointsOperationResponse;
            create_vector_name(CreateVectorNameRequest) -> PointsOperationResponse;
            delete_vector_name(DeleteVectorNameRequest) -> PointsOperationResponse;
            search(SearchPoints) -> SearchResponse;
            search_batch(SearchBatchPoints) -> SearchBatchResponse;
            search_groups(SearchPointGroups) -> SearchGroupsResponse;
            scroll(ScrollPoints) -> ScrollResponse;
            recommend(RecommendPoints) -> RecommendResponse;
            recommend_batch(RecommendBatchPoints) -> RecommendBatchResponse;
            recommend_groups(RecommendPointGroups) -> RecommendGroupsResponse;
            discover(DiscoverPoints) -> DiscoverResponse;
            discover_batch(DiscoverBatchPoints) -> DiscoverBatchResponse;
            update_batch(UpdateBatchPoints) -> UpdateBatchResponse;
            query_batch(QueryBatchPoints) -> QueryBatchResponse;
            query_groups(QueryPointGroups) -> QueryGroupsResponse;
            facet(FacetCounts) -> FacetResponse;
            search_matrix_pairs(SearchMatrixPoints) -> SearchMatrixPairsResponse;
            search_matrix_offsets(SearchMatrixPoints) -> SearchMatrixOffsetsResponse;
        }
    }
}

// ---------------------------------------------------------------- helpers

fn fast_retry() -> RetryPolicy {
    RetryPolicy::default()
        .with_max_retries(3)
        .with_initial_backoff(Duration::from_millis(1))
        .with_max_backoff(Duration::from_millis(5))
        .with_max_retry_after(Duration::from_millis(5))
        .with_jitter(false)
}

async fn fake_store() -> (Fake, String) {
    let fake = Fake::default();
    let url = fake.serve().await;
    (fake, url)
}

fn builder(url: &str, collection: &str) -> QdrantStoreBuilder {
    QdrantStore::builder()
        .url(url)
        .collection(collection)
        .retry(fast_retry())
}

fn doc(id: &str, text: &str, v: Vec<f32>) -> EmbeddedDocument {
    EmbeddedDocument::new(
        Document::new(text)
            .with_id(id)
            .with_metadata("lang", "rust"),
        v,
    )
}

fn unit(dims: usize, i: usize) -> Vec<f32> {
    let mut v = vec![0.0; dims];
    v[i % dims] = 1.0;
    v
}

fn upserts(calls: &[Call]) -> Vec<q::UpsertPoints> {
    calls
        .iter()
        .filter_map(|c| match c {
            Call::Upsert(u) => Some(u.clone()),
            _ => None,
        })
        .collect()
}

fn queries(calls: &[Call]) -> Vec<q::QueryPoints> {
    calls
        .iter()
        .filter_map(|c| match c {
            Call::Query(u) => Some(u.clone()),
            _ => None,
        })
        .collect()
}

fn text(v: Option<&q::Value>) -> Option<&str> {
    match v.and_then(|v| v.kind.as_ref()) {
        Some(q::value::Kind::StringValue(s)) => Some(s),
        _ => None,
    }
}

fn field_key(c: &q::Condition) -> &str {
    match c.condition_one_of.as_ref() {
        Some(ConditionOneOf::Field(f)) => &f.key,
        other => panic!("expected a field condition, got {other:?}"),
    }
}

fn match_value(c: &q::Condition) -> MatchValue {
    match c.condition_one_of.as_ref() {
        Some(ConditionOneOf::Field(f)) => f.r#match.clone().unwrap().match_value.unwrap(),
        other => panic!("expected a field condition, got {other:?}"),
    }
}

// ---------------------------------------------------------------- loopback tests

/// The whole conformance suite against the loopback server, per metric: the store's
/// requests and its reading of the responses are consistent end to end.
#[tokio::test]
async fn conformance_against_the_loopback_server() {
    let (_fake, url) = fake_store().await;
    for (metric, name) in [
        (DistanceMetric::Cosine, "conf-cosine"),
        (DistanceMetric::DotProduct, "conf-dot"),
        (DistanceMetric::Euclidean, "conf-euclid"),
    ] {
        let store = builder(&url, name)
            .dimensions(8)
            .metric(metric)
            .batch_size(64)
            .build()
            .unwrap();
        VectorStoreConformance::new(8)
            .text_ranges(false)
            .run(&store)
            .await;
    }
}

#[tokio::test]
async fn creates_the_collection_with_size_distance_hnsw_and_indexes() {
    let (fake, url) = fake_store().await;
    let store = builder(&url, "created")
        .dimensions(4)
        .metric(DistanceMetric::DotProduct)
        .hnsw_m(32)
        .hnsw_ef_construct(200)
        .payload_index("lang", PayloadIndexKind::Keyword)
        .payload_index("author.year", PayloadIndexKind::Integer)
        .hybrid(true)
        .tenant_key("tenant")
        .tenant("acme")
        .build()
        .unwrap();
    store.ensure_collection().await.unwrap();
    store.ensure_collection().await.unwrap(); // checked once
    let calls = fake.calls();
    assert!(
        matches!(&calls[0], Call::Exists(n) if n == "created"),
        "{calls:?}"
    );
    let Call::Create(create) = &calls[1] else {
        panic!("expected a create, got {calls:?}");
    };
    assert_eq!(create.collection_name, "created");
    let Some(q::vectors_config::Config::ParamsMap(map)) =
        create.vectors_config.clone().and_then(|v| v.config)
    else {
        panic!("expected named vectors: {create:?}");
    };
    let dense = &map.map[DENSE_VECTOR];
    assert_eq!(dense.size, 4);
    assert_eq!(dense.distance, q::Distance::Dot as i32);
    let hnsw = create.hnsw_config.unwrap();
    assert_eq!((hnsw.m, hnsw.ef_construct), (Some(32), Some(200)));
    let sparse = &create.sparse_vectors_config.as_ref().unwrap().map[SPARSE_VECTOR];
    assert_eq!(sparse.modifier, Some(q::Modifier::Idf as i32));

    let indexes: Vec<_> = calls
        .iter()
        .filter_map(|c| match c {
            Call::Index(i) => Some(i.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(indexes.len(), 3, "{indexes:?}");
    assert_eq!(indexes[0].field_name, "tenant");
    assert_eq!(indexes[0].field_type, Some(q::FieldType::Keyword as i32));
    assert_eq!(indexes[0].wait, Some(true));
    let Some(q::payload_index_params::IndexParams::KeywordIndexParams(kw)) = indexes[0]
        .field_index_params
        .clone()
        .and_then(|p| p.index_params)
    else {
        panic!("tenant index params: {:?}", indexes[0]);
    };
    assert_eq!(kw.is_tenant, Some(true));
    assert_eq!(indexes[1].field_name, "metadata.lang");
    assert_eq!(indexes[1].field_type, Some(q::FieldType::Keyword as i32));
    assert_eq!(indexes[2].field_name, "metadata.author.year");
    assert_eq!(indexes[2].field_type, Some(q::FieldType::Integer as i32));
    assert_eq!(calls.len(), 5, "nothing else: {calls:?}");
}

#[tokio::test]
async fn an_existing_collection_with_another_dimension_or_distance_is_invalid_config() {
    let (fake, url) = fake_store().await;
    builder(&url, "existing")
        .dimensions(8)
        .build()
        .unwrap()
        .ensure_collection()
        .await
        .unwrap();

    let err = builder(&url, "existing")
        .dimensions(4)
        .build()
        .unwrap()
        .ensure_collection()
        .await
        .unwrap_err();
    let Error::InvalidConfig(msg) = &err else {
        panic!("expected InvalidConfig, got {err:?}");
    };
    assert!(
        msg.contains("existing") && msg.contains('8') && msg.contains('4'),
        "{msg}"
    );

    let store = builder(&url, "existing").dimensions(4).build().unwrap();
    let err = store
        .upsert(vec![doc("a", "x", unit(4, 0))])
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidConfig(_)), "{err:?}");
    assert!(upserts(&fake.calls()).is_empty(), "nothing may be written");

    let err = builder(&url, "existing")
        .metric(DistanceMetric::Euclidean)
        .build()
        .unwrap()
        .ensure_collection()
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::InvalidConfig(m) if m.contains("Cosine") && m.contains("Euclid")),
        "{err:?}"
    );

    let err = builder(&url, "existing")
        .hybrid(true)
        .build()
        .unwrap()
        .ensure_collection()
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::InvalidConfig(m) if m.contains(SPARSE_VECTOR)),
        "{err:?}"
    );

    // Dimensions come from the existing collection when not configured.
    let store = builder(&url, "existing").build().unwrap();
    let err = store
        .search(SearchRequest::new(unit(4, 0), 3))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidInput(_)), "{err:?}");

    let err = builder(&url, "missing")
        .create_if_missing(false)
        .dimensions(4)
        .build()
        .unwrap()
        .ensure_collection()
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidConfig(_)), "{err:?}");
    let err = builder(&url, "missing")
        .build()
        .unwrap()
        .ensure_collection()
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::InvalidConfig(m) if m.contains("dimensions")),
        "{err:?}"
    );
}

#[tokio::test]
async fn upserts_in_batches_with_wait_and_the_documented_payload() {
    let (fake, url) = fake_store().await;
    let store = builder(&url, "batches")
        .dimensions(4)
        .batch_size(3)
        .build()
        .unwrap();
    let docs: Vec<_> = (0..7)
        .map(|i| doc(&format!("d{i}"), &format!("text {i}"), unit(4, i)))
        .collect();
    let report = store.upsert(docs.clone()).await.unwrap();
    assert_eq!(
        (report.inserted, report.updated, report.unchanged),
        (7, 0, 0)
    );
    assert!(report.is_complete());

    let calls = fake.calls();
    let ups = upserts(&calls);
    assert_eq!(
        ups.iter().map(|u| u.points.len()).collect::<Vec<_>>(),
        [3, 3, 1]
    );
    // Each batch's stored versions are read first (payload and dense vector).
    let gets: Vec<_> = calls
        .iter()
        .filter_map(|c| match c {
            Call::Get(g) => Some(g.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(gets.len(), 3);
    assert_eq!(gets[0].ids.len(), 3);
    assert!(gets[0].with_vectors.is_some());
    for u in &ups {
        assert_eq!(u.wait, Some(true));
        assert_eq!(u.collection_name, "batches");
    }
    let first = &ups[0].points[0];
    let id = DocumentId::from("d0");
    assert_eq!(fake::id_of(&first.id), store.point_id(&id));
    assert_eq!(text(first.payload.get(PAYLOAD_ID)), Some("d0"));
    assert_eq!(text(first.payload.get(PAYLOAD_CONTENT)), Some("text 0"));
    let Some(q::value::Kind::StructValue(meta)) = first
        .payload
        .get(METADATA_FIELD)
        .and_then(|v| v.kind.clone())
    else {
        panic!("metadata must be a struct: {first:?}");
    };
    assert_eq!(text(meta.fields.get("lang")), Some("rust"));
    assert_eq!(first.payload.len(), 3, "no other payload fields");
    let Some(q::vector::Vector::Dense(d)) = fake::vector_of(first, DENSE_VECTOR) else {
        panic!("a named dense vector: {first:?}");
    };
    assert_eq!(d.data, unit(4, 0));
    assert!(fake::vector_of(first, SPARSE_VECTOR).is_none());

    // Re-upserting identical documents writes nothing; a changed one is one write.
    fake.clear_calls();
    let report = store.upsert(docs.clone()).await.unwrap();
    assert_eq!(
        (report.inserted, report.updated, report.unchanged),
        (0, 0, 7)
    );
    assert!(upserts(&fake.calls()).is_empty());
    let mut changed = docs.clone();
    changed[5] = doc("d5", "text 5, revised", unit(4, 5));
    changed.push(doc("d7", "new", unit(4, 3)));
    let report = store.upsert(changed).await.unwrap();
    assert_eq!(
        (report.inserted, report.updated, report.unchanged),
        (1, 1, 6)
    );
    let ups = upserts(&fake.calls());
    let written: Vec<_> = ups.iter().flat_map(|u| &u.points).collect();
    assert_eq!(written.len(), 2);

    // Duplicate ids in one call: one point, the last version.
    fake.clear_calls();
    let report = store
        .upsert(vec![
            doc("dup", "first", unit(4, 0)),
            doc("dup", "second", unit(4, 1)),
        ])
        .await
        .unwrap();
    assert_eq!(report.ids, vec![DocumentId::from("dup"); 2]);
    assert_eq!(report.inserted, 1);
    let ups = upserts(&fake.calls());
    assert_eq!(ups.len(), 1);
    assert_eq!(ups[0].points.len(), 1);
    assert_eq!(
        text(ups[0].points[0].payload.get(PAYLOAD_CONTENT)),
        Some("second")
    );

    // Bad input: nothing is sent at all.
    fake.clear_calls();
    let mut nan = unit(4, 0);
    nan[1] = f32::NAN;
    for bad in [
        vec![doc("ok", "x", unit(4, 0)), doc("nan", "x", nan)],
        vec![
            doc("ok", "x", unit(4, 0)),
            doc("short", "x", vec![1.0, 0.0]),
        ],
        vec![EmbeddedDocument::new(
            Document::new("huge").with_metadata("n", u64::MAX),
            unit(4, 0),
        )],
    ] {
        let err = store.upsert(bad).await.unwrap_err();
        assert!(matches!(err, Error::InvalidInput(_)), "{err:?}");
    }
    assert!(fake.calls().is_empty(), "{:?}", fake.calls());
}

#[tokio::test]
async fn search_requests_carry_the_compiled_filter_limit_and_threshold() {
    let (fake, url) = fake_store().await;
    let store = builder(&url, "search")
        .dimensions(4)
        .search_ef(64)
        .build()
        .unwrap();
    store
        .upsert(vec![
            doc("a", "alpha", unit(4, 0)),
            doc("b", "beta", vec![0.8, 0.6, 0.0, 0.0]),
        ])
        .await
        .unwrap();
    fake.clear_calls();
    let hits = store
        .search(
            SearchRequest::new(unit(4, 0), 5)
                .with_score_threshold(0.5)
                .with_filter(Filter::eq("lang", "rust").and(Filter::range("year").gte(2020))),
        )
        .await
        .unwrap();
    assert!(hits.is_empty(), "no document has a year");
    let qs = queries(&fake.calls());
    assert_eq!(qs.len(), 1);
    let query = &qs[0];
    assert_eq!(query.limit, Some(5));
    assert_eq!(query.score_threshold, Some(0.5));
    assert_eq!(query.using.as_deref(), Some(DENSE_VECTOR));
    assert_eq!(query.params.clone().and_then(|p| p.hnsw_ef), Some(64));
    assert!(query.with_vectors.is_none());
    let Some(Variant::Nearest(input)) = query.query.clone().and_then(|q| q.variant) else {
        panic!("a nearest query: {query:?}");
    };
    assert!(matches!(input.variant, Some(vector_input::Variant::Dense(d)) if d.data == unit(4, 0)));
    let filter = query.filter.clone().unwrap();
    assert_eq!(filter.must.len(), 1);
    let Some(ConditionOneOf::Filter(and)) = filter.must[0].condition_one_of.clone() else {
        panic!("{filter:?}");
    };
    assert_eq!(field_key(&and.must[0]), "metadata.lang");
    assert_eq!(
        match_value(&and.must[0]),
        MatchValue::Keyword("rust".into())
    );
    assert_eq!(field_key(&and.must[1]), "metadata.year");

    let hits = store
        .search(SearchRequest::new(unit(4, 0), 5).with_vectors(true))
        .await
        .unwrap();
    assert_eq!(hits.len(), 2);
    assert_eq!(hits[0].document.id, Some("a".into()));
    assert_eq!(hits[0].document.content, "alpha");
    assert_eq!(hits[0].embedding.as_deref(), Some(&unit(4, 0)[..]));
    assert!((hits[1].score - 0.8).abs() < 1e-6);

    // Filters that match nothing are answered without a request; text ranges are refused.
    fake.clear_calls();
    let none = store
        .search(
            SearchRequest::new(unit(4, 0), 5)
                .with_filter(Filter::is_in("lang", Vec::<String>::new())),
        )
        .await
        .unwrap();
    assert!(none.is_empty());
    assert_eq!(store.count(Some(&Filter::Or(vec![]))).await.unwrap(), 0);
    assert_eq!(
        store.delete_by_filter(&Filter::Or(vec![])).await.unwrap(),
        0
    );
    let err = store
        .search(SearchRequest::new(unit(4, 0), 5).with_filter(Filter::range("lang").gte("a")))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::InvalidInput(m) if m.contains("lexicographic")),
        "{err:?}"
    );
    assert!(queries(&fake.calls()).is_empty());
    assert!(fake.calls().is_empty(), "{:?}", fake.calls());
}

#[tokio::test]
async fn euclidean_scores_are_similarities_and_thresholds_distances() {
    let (fake, url) = fake_store().await;
    let store = builder(&url, "euclid")
        .dimensions(2)
        .metric(DistanceMetric::Euclidean)
        .build()
        .unwrap();
    store
        .upsert(vec![
            doc("near", "n", vec![1.0, 0.0]),
            doc("far", "f", vec![4.0, 0.0]),
        ])
        .await
        .unwrap();
    fake.clear_calls();
    let hits = store
        .search(SearchRequest::new(vec![0.0, 0.0], 5).with_score_threshold(0.4))
        .await
        .unwrap();
    // Distance 1 → 0.5; distance 4 → 0.2 is below the threshold.
    assert_eq!(hits.len(), 1);
    assert!((hits[0].score - 0.5).abs() < 1e-6);
    let qs = queries(&fake.calls());
    assert!(
        (qs[0].score_threshold.unwrap() - 1.5).abs() < 1e-6,
        "1/0.4 − 1"
    );
    assert!(store
        .search(SearchRequest::new(vec![0.0, 0.0], 5).with_score_threshold(1.5))
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn delete_and_count_requests() {
    let (fake, url) = fake_store().await;
    let store = builder(&url, "deletes").dimensions(2).build().unwrap();
    store
        .upsert(vec![
            doc("a", "a", vec![1.0, 0.0]),
            doc("b", "b", vec![0.0, 1.0]),
            EmbeddedDocument::new(
                Document::new("c").with_id("c").with_metadata("lang", "go"),
                vec![1.0, 1.0],
            ),
        ])
        .await
        .unwrap();
    fake.clear_calls();
    assert_eq!(store.count(None).await.unwrap(), 3);
    let calls = fake.calls();
    let Call::Count(count) = &calls[0] else {
        panic!("{calls:?}");
    };
    assert_eq!(count.filter, None);
    assert_eq!(count.exact, Some(true));

    fake.clear_calls();
    let n = store
        .delete(&["a".into(), "missing".into(), "a".into()])
        .await
        .unwrap();
    assert_eq!(n, 1);
    let calls = fake.calls();
    assert_eq!(calls.len(), 2, "{calls:?}");
    let (Call::Count(count), Call::Delete(delete)) = (&calls[0], &calls[1]) else {
        panic!("count then delete: {calls:?}");
    };
    let Some(PointsSelectorOneOf::Filter(f)) =
        delete.points.clone().and_then(|p| p.points_selector_one_of)
    else {
        panic!("{delete:?}");
    };
    assert_eq!(count.filter.as_ref(), Some(&f));
    assert_eq!(delete.wait, Some(true));
    let Some(ConditionOneOf::HasId(ids)) = f.must[0].condition_one_of.clone() else {
        panic!("{f:?}");
    };
    let mut got: Vec<_> = ids
        .has_id
        .iter()
        .map(|i| fake::id_of(&Some(i.clone())))
        .collect();
    got.sort();
    let mut want = vec![
        store.point_id(&"a".into()),
        store.point_id(&"missing".into()),
    ];
    want.sort();
    assert_eq!(got, want, "unique ids");

    fake.clear_calls();
    assert_eq!(
        store
            .delete_by_filter(&Filter::eq("lang", "go"))
            .await
            .unwrap(),
        1
    );
    let calls = fake.calls();
    let Call::Delete(delete) = &calls[1] else {
        panic!("{calls:?}");
    };
    let Some(PointsSelectorOneOf::Filter(f)) =
        delete.points.clone().and_then(|p| p.points_selector_one_of)
    else {
        panic!("{delete:?}");
    };
    assert_eq!(field_key(&f.must[0]), "metadata.lang");
    // Nothing matched: counted, not deleted.
    fake.clear_calls();
    assert_eq!(
        store
            .delete_by_filter(&Filter::eq("lang", "cobol"))
            .await
            .unwrap(),
        0
    );
    assert!(matches!(&fake.calls()[..], [Call::Count(_)]));
    assert_eq!(store.count(None).await.unwrap(), 1);
}

/// The issue's fault case: one batch fails transiently, one point is rejected. Every good
/// point is stored exactly once and the report names the bad one.
#[tokio::test]
async fn a_transient_batch_failure_and_a_rejected_point() {
    let (fake, url) = fake_store().await;
    let store = builder(&url, "faults")
        .dimensions(4)
        .batch_size(4)
        .build()
        .unwrap();
    store.ensure_collection().await.unwrap();
    let docs: Vec<_> = (0..10)
        .map(|i| doc(&format!("p{i}"), &format!("point {i}"), unit(4, i)))
        .collect();
    let bad = store.point_id(&"p6".into());
    {
        let mut s = fake.state();
        // The client reconnects once on UNAVAILABLE by itself; two failures in a row
        // reach the store's retry policy.
        s.transient_upsert_failures = 2;
        s.rejected.insert(bad.clone());
    }
    fake.clear_calls();
    let report = store.upsert(docs).await.unwrap();
    assert_eq!(report.failed.len(), 1, "{report:?}");
    assert_eq!(report.failed[0].id, DocumentId::from("p6"));
    assert!(
        report.failed[0].reason.contains("bad payload"),
        "{report:?}"
    );
    assert_eq!(
        (report.inserted, report.updated, report.unchanged),
        (9, 0, 0)
    );
    assert_eq!(report.ids.len(), 10);

    {
        let s = fake.state();
        let points = &s.collections["faults"].points;
        assert_eq!(points.len(), 9);
        assert!(!points.contains_key(&bad));
        for i in (0..10).filter(|&i| i != 6) {
            let id = store.point_id(&format!("p{i}").into());
            assert_eq!(
                s.writes.get(&id),
                Some(&1),
                "p{i} must be written exactly once"
            );
        }
        // The first batch was sent three times (two transient failures); the rejected second
        // batch [p4..p7] was split: [p4, p5] stored, [p6, p7] rejected, [p6] rejected, [p7]
        // stored; then the last batch [p8, p9].
        let sizes: Vec<usize> = upserts(&s.calls).iter().map(|u| u.points.len()).collect();
        assert_eq!(sizes, [4, 4, 4, 4, 2, 2, 1, 1, 2]);
    }

    // Transient failures outlasting the retry policy end the call with a retryable error:
    // 4 attempts (3 retries), each sent twice (the client reconnects once by itself).
    fake.state().transient_upsert_failures = 100;
    fake.clear_calls();
    let err = store
        .upsert(vec![doc("late", "late", unit(4, 1))])
        .await
        .unwrap_err();
    assert!(err.is_retryable(), "{err:?}");
    assert!(err.to_string().contains("qdrant"), "{err}");
    assert_eq!(upserts(&fake.calls()).len(), 8);
}

#[tokio::test]
async fn tenants_cannot_see_each_other() {
    let (fake, url) = fake_store().await;
    let base = builder(&url, "tenants")
        .dimensions(2)
        .tenant_key("tenant")
        .build()
        .unwrap();
    let err = base.count(None).await.unwrap_err();
    assert!(matches!(err, Error::InvalidConfig(_)), "{err:?}");
    assert!(fake.calls().is_empty());
    let acme = base.for_tenant("acme").unwrap();
    let globex = base.for_tenant("globex").unwrap();
    assert_ne!(
        acme.point_id(&"same".into()),
        globex.point_id(&"same".into())
    );

    acme.upsert(vec![
        doc("same", "acme's", vec![1.0, 0.0]),
        doc("only-acme", "acme only", vec![0.0, 1.0]),
    ])
    .await
    .unwrap();
    let report = globex
        .upsert(vec![doc("same", "globex's", vec![1.0, 0.0])])
        .await
        .unwrap();
    assert_eq!(
        report.inserted, 1,
        "a different tenant's point, not an update"
    );
    let ups = upserts(&fake.calls());
    assert_eq!(text(ups[0].points[0].payload.get("tenant")), Some("acme"));
    assert_eq!(text(ups[1].points[0].payload.get("tenant")), Some("globex"));

    assert_eq!(acme.count(None).await.unwrap(), 2);
    assert_eq!(globex.count(None).await.unwrap(), 1);
    let hits = globex
        .search(SearchRequest::new(vec![1.0, 0.0], 10))
        .await
        .unwrap();
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].document.content, "globex's");
    let q = queries(&fake.calls()).pop().unwrap();
    let f = q.filter.unwrap();
    assert_eq!(field_key(&f.must[0]), "tenant");
    assert_eq!(
        match_value(&f.must[0]),
        MatchValue::Keyword("globex".into())
    );
    assert!(globex.get(&["only-acme".into()]).await.unwrap().is_empty());
    assert_eq!(
        globex.get(&["same".into()]).await.unwrap()[0].content,
        "globex's"
    );
    assert_eq!(globex.delete(&["only-acme".into()]).await.unwrap(), 0);
    assert_eq!(
        globex.delete_by_filter(&Filter::And(vec![])).await.unwrap(),
        1
    );
    assert_eq!(
        acme.count(None).await.unwrap(),
        2,
        "acme's documents are untouched"
    );
    // A metadata key named like the tenant key cannot reach it.
    assert_eq!(
        acme.count(Some(&Filter::eq("tenant", "globex")))
            .await
            .unwrap(),
        0
    );

    assert!(matches!(
        builder(&url, "x").tenant("acme").build(),
        Err(Error::InvalidConfig(_))
    ));
    assert!(matches!(
        builder(&url, "x").tenant_key("metadata").build(),
        Err(Error::InvalidConfig(_))
    ));
    assert!(matches!(
        builder(&url, "x")
            .dimensions(2)
            .build()
            .unwrap()
            .for_tenant("a"),
        Err(Error::InvalidConfig(_))
    ));
}

#[tokio::test]
async fn hybrid_search_fuses_dense_and_bm25_queries_client_side() {
    let (fake, url) = fake_store().await;
    let store = builder(&url, "hybrid")
        .dimensions(2)
        .hybrid(true)
        .build()
        .unwrap();
    store
        .upsert(vec![
            doc("mem", "Rust manages memory with ownership", vec![0.0, 1.0]),
            doc("gc", "Go has a garbage collector", vec![1.0, 0.0]),
            doc("empty", "...", vec![0.7, 0.7]),
        ])
        .await
        .unwrap();
    let ups = upserts(&fake.calls());
    let mem = &ups[0].points[0];
    let Some(q::vector::Vector::Sparse(s)) = fake::vector_of(mem, SPARSE_VECTOR) else {
        panic!("a sparse vector: {mem:?}");
    };
    let want = Bm25::new().document("Rust manages memory with ownership");
    assert_eq!((s.indices, s.values), (want.indices, want.values));
    assert!(
        fake::vector_of(&ups[0].points[2], SPARSE_VECTOR).is_none(),
        "no words, no sparse vector"
    );

    fake.clear_calls();
    let request = HybridRequest::new("memory ownership", vec![1.0, 0.0], 2)
        .with_filter(Filter::eq("lang", "rust"));
    let hits = store.hybrid_search(request.clone()).await.unwrap();
    assert_eq!(hits.len(), 2);
    // "gc" is the dense winner; "mem" is third by vector but the only keyword match, and a
    // document both rankings found wins: 1/63 + 1/61 > 1/61.
    assert_eq!(hits[0].document.id, Some("mem".into()), "{hits:?}");
    assert_eq!((hits[0].vector_rank, hits[0].text_rank), (Some(3), Some(1)));
    assert!((hits[0].score - (1.0 / 63.0 + 1.0 / 61.0)).abs() < 1e-6);
    assert_eq!(hits[1].document.id, Some("gc".into()), "{hits:?}");
    assert_eq!((hits[1].vector_rank, hits[1].text_rank), (Some(1), None));
    let qs = queries(&fake.calls());
    assert_eq!(qs.len(), 2, "one dense and one sparse query: {qs:?}");
    let (dense, sparse) = (&qs[0], &qs[1]);
    assert_eq!(dense.using.as_deref(), Some(DENSE_VECTOR));
    assert_eq!(sparse.using.as_deref(), Some(SPARSE_VECTOR));
    assert_eq!((dense.limit, sparse.limit), (Some(20), Some(20)));
    let Some(Variant::Nearest(input)) = sparse.query.clone().and_then(|q| q.variant) else {
        panic!("{sparse:?}");
    };
    let want = Bm25::new().query("memory ownership");
    assert!(matches!(
        input.variant,
        Some(vector_input::Variant::Sparse(s)) if s.indices == want.indices && s.values == want.values
    ));
    for f in [&dense.filter, &sparse.filter] {
        assert_eq!(field_key(&f.as_ref().unwrap().must[0]), "metadata.lang");
    }

    // The dense ranking alone (keyword weight 0): no sparse query, the dense order.
    fake.clear_calls();
    let hits = store
        .hybrid_search(request.clone().with_weights(1.0, 0.0))
        .await
        .unwrap();
    assert_eq!(hits[0].document.id, Some("gc".into()), "{hits:?}");
    assert_eq!(queries(&fake.calls()).len(), 1);
    // Weighted fusion, keyword only.
    let hits = store
        .hybrid_search(
            request
                .clone()
                .with_fusion(Fusion::Weighted)
                .with_weights(0.0, 1.0),
        )
        .await
        .unwrap();
    assert_eq!(hits.len(), 1, "{hits:?}");
    assert_eq!(hits[0].document.id, Some("mem".into()));

    let plain = builder(&url, "plain").dimensions(2).build().unwrap();
    let err = plain
        .hybrid_search(HybridRequest::new("x", vec![1.0, 0.0], 2))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidConfig(_)), "{err:?}");
    let err = store
        .hybrid_search(HybridRequest::new("x", vec![1.0, 0.0], 0))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidInput(_)), "{err:?}");
}

#[test]
fn builder_validation_and_redacted_key() {
    let ok = || {
        QdrantStore::builder()
            .url("http://127.0.0.1:1")
            .collection("c")
    };
    assert!(matches!(
        QdrantStore::builder().url("http://127.0.0.1:1").build(),
        Err(Error::InvalidConfig(_))
    ));
    assert!(matches!(
        ok().dimensions(0).build(),
        Err(Error::InvalidConfig(_))
    ));
    assert!(matches!(
        ok().batch_size(0).build(),
        Err(Error::InvalidConfig(_))
    ));
    assert!(matches!(
        ok().payload_index("bad key", PayloadIndexKind::Keyword)
            .build(),
        Err(Error::InvalidConfig(_))
    ));
    assert!(matches!(
        ok().bm25(Bm25::new().with_b(2.0)).build(),
        Err(Error::InvalidConfig(_))
    ));
    let b = ok().api_key("super-secret-key");
    assert!(!format!("{b:?}").contains("super-secret-key"));
    let store = b.build().unwrap();
    assert!(!format!("{store:?}").contains("super-secret-key"));
}

#[test]
fn point_ids_are_uuid_v5_per_tenant() {
    let store = QdrantStore::builder()
        .url("http://127.0.0.1:1")
        .collection("c")
        .tenant_key("t")
        .build()
        .unwrap();
    let a = store.for_tenant("a").unwrap();
    let id = DocumentId::from("doc");
    assert_eq!(a.point_id(&id), a.point_id(&id));
    assert_eq!(a.point_id(&id).len(), 36);
    assert_eq!(&a.point_id(&id)[14..15], "5", "version 5");
    assert_ne!(
        a.point_id(&id),
        store.for_tenant("b").unwrap().point_id(&id)
    );
    assert_ne!(a.point_id(&id), store.point_id(&id));
}

#[test]
fn sparse_vectors() {
    let bm = Bm25::new().with_avg_len(3.0);
    let d = bm.document("Tokio tokio runtime");
    assert_eq!(d.indices.len(), 2);
    let tokio = Bm25::token_index("tokio");
    let i = d.indices.iter().position(|&x| x == tokio).unwrap();
    let norm = 1.2 * (1.0 - 0.75 + 0.75 * 3.0 / 3.0);
    assert!((d.values[i] - 2.0 * 2.2 / (2.0 + norm)).abs() < 1e-6);
    assert_eq!(Bm25::tokenize("It's BM25!"), ["it", "s", "bm25"]);
    assert!(bm.query("").is_empty());
}

// ---------------------------------------------------------------- against a real Qdrant

fn real_url() -> Option<String> {
    match std::env::var("QDRANT_URL") {
        Ok(u) if !u.is_empty() => Some(u),
        _ => {
            eprintln!(
                "QDRANT_URL is not set: the tests against a real Qdrant did not run \
                 (docker run -p 6334:6334 qdrant/qdrant; QDRANT_URL=http://localhost:6334)"
            );
            None
        }
    }
}

fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("catena-test-{prefix}-{}-{nanos}", std::process::id())
}

async fn drop_collection(url: &str, name: &str) {
    let client = qdrant_client::Qdrant::from_url(url)
        .skip_compatibility_check()
        .build()
        .unwrap();
    let _ = client.delete_collection(name).await;
}

#[tokio::test]
async fn real_conformance_per_metric() {
    let Some(url) = real_url() else { return };
    for metric in [
        DistanceMetric::Cosine,
        DistanceMetric::DotProduct,
        DistanceMetric::Euclidean,
    ] {
        let name = unique(&format!("{metric:?}").to_lowercase());
        let store = builder(&url, &name)
            .dimensions(8)
            .metric(metric)
            .payload_index("parity", PayloadIndexKind::Keyword)
            .build()
            .unwrap();
        let result = tokio::spawn({
            let store = store.clone();
            async move {
                VectorStoreConformance::new(8)
                    .text_ranges(false)
                    .run(&store)
                    .await;
            }
        })
        .await;
        drop_collection(&url, &name).await;
        if let Err(e) = result {
            std::panic::resume_unwind(e.into_panic());
        }
    }
}

#[tokio::test]
async fn real_hybrid_and_tenancy() {
    let Some(url) = real_url() else { return };
    let name = unique("hybrid");
    let base = builder(&url, &name)
        .dimensions(2)
        .hybrid(true)
        .tenant_key("tenant")
        .build()
        .unwrap();
    let result = tokio::spawn({
        let base = base.clone();
        async move {
            let acme = base.for_tenant("acme").unwrap();
            let globex = base.for_tenant("globex").unwrap();
            acme.upsert(vec![
                doc("mem", "Rust manages memory with ownership", vec![0.0, 1.0]),
                doc("gc", "Go has a garbage collector", vec![1.0, 0.0]),
            ])
            .await
            .unwrap();
            globex
                .upsert(vec![doc(
                    "mem",
                    "globex memory ownership notes",
                    vec![0.0, 1.0],
                )])
                .await
                .unwrap();
            let hits = acme
                .hybrid_search(HybridRequest::new("memory ownership", vec![1.0, 0.0], 2))
                .await
                .unwrap();
            assert_eq!(hits.len(), 2);
            assert_eq!(hits[0].document.id, Some("mem".into()), "{hits:?}");
            assert!(hits
                .iter()
                .all(|h| !h.document.content.starts_with("globex")));
            assert_eq!(acme.count(None).await.unwrap(), 2);
            assert_eq!(globex.count(None).await.unwrap(), 1);
            assert!(globex.get(&["gc".into()]).await.unwrap().is_empty());
            assert_eq!(
                globex.delete_by_filter(&Filter::And(vec![])).await.unwrap(),
                1
            );
            assert_eq!(acme.count(None).await.unwrap(), 2);
        }
    })
    .await;
    drop_collection(&url, &name).await;
    if let Err(e) = result {
        std::panic::resume_unwind(e.into_panic());
    }
}
