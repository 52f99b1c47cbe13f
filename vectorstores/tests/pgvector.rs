//! The pgvector store against a real PostgreSQL: the shared conformance suite for every metric
//! and with ANN indexes, collection lifecycle, SQL injection, hybrid search, index settings,
//! a backend killed mid-batch, and concurrency through the pool.
//!
//! Needs `DATABASE_URL` (PostgreSQL with pgvector ≥ 0.8). Start a throw-away server with
//! `eval "$(scripts/pg.sh start)"` and stop it with `scripts/pg.sh stop`. Without it these
//! tests fail: they never skip silently. Every test works in its own collection and drops it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use catena_core::test_utils::vector_store_conformance;
use catena_core::{
    Document, DocumentId, EmbeddedDocument, Error, Filter, Fusion, HybridSearch, SearchRequest,
    VectorStore,
};
use catena_vectorstores::pgvector::{
    HybridRequest, Index, PgVectorStore, PgVectorStoreBuilder, QueryOptions,
};
use catena_vectorstores::{DistanceMetric, InMemoryVectorStore};
use serde_json::json;

fn database_url() -> String {
    match std::env::var("DATABASE_URL") {
        Ok(url) if !url.is_empty() => url,
        _ => panic!(
            "DATABASE_URL is not set. These tests need PostgreSQL with pgvector: run \
             `eval \"$(scripts/pg.sh start)\"` from the repository root, then the tests \
             again (and `scripts/pg.sh stop` afterwards)."
        ),
    }
}

/// A collection name no other test (or test run) uses.
fn unique(prefix: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!(
        "t_{prefix}_{}_{}_{nanos:x}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

fn builder(name: &str, dims: usize) -> PgVectorStoreBuilder {
    PgVectorStore::builder()
        .url(database_url())
        .collection(name)
        .dimensions(dims)
        .max_connections(8)
}

/// A deterministic pseudo-random vector (splitmix64).
fn pseudo_vector(seed: u64, dims: usize) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15).wrapping_add(1);
    (0..dims)
        .map(|_| {
            s = s.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = s;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            (z >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
        })
        .collect()
}

async fn raw_client() -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(&database_url(), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    client
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_for_every_metric() {
    for metric in [
        DistanceMetric::Cosine,
        DistanceMetric::DotProduct,
        DistanceMetric::Euclidean,
    ] {
        let name = unique("conf");
        let store = builder(&name, 8).metric(metric).build().await.unwrap();
        vector_store_conformance(&store, 8).await;
        store.drop_collection().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_with_an_hnsw_index() {
    for metric in [DistanceMetric::Cosine, DistanceMetric::Euclidean] {
        let name = unique("hnsw");
        let store = builder(&name, 8)
            .metric(metric)
            .index(Index::hnsw())
            .build()
            .await
            .unwrap();
        let indexes = index_methods(&name).await;
        assert!(indexes.contains(&"hnsw".to_owned()), "{indexes:?}");
        vector_store_conformance(&store, 8).await;
        store.drop_collection().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_with_an_ivfflat_index() {
    let name = unique("ivf");
    let store = builder(&name, 8)
        .index(Index::ivfflat(4))
        .probes(2)
        .build()
        .await
        .unwrap();
    vector_store_conformance(&store, 8).await;
    store.drop_collection().await.unwrap();
}

/// The access methods of the indexes on `table`.
async fn index_methods(table: &str) -> Vec<String> {
    raw_client()
        .await
        .query(
            "SELECT am.amname::text FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid \
             JOIN pg_am am ON am.oid = c.relam WHERE i.indrelid = to_regclass($1)",
            &[&format!("\"{table}\"")],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scores_equal_the_in_memory_store() {
    for metric in [
        DistanceMetric::Cosine,
        DistanceMetric::DotProduct,
        DistanceMetric::Euclidean,
    ] {
        let name = unique("scores");
        let pg = builder(&name, 16).metric(metric).build().await.unwrap();
        let mem = InMemoryVectorStore::builder()
            .metric(metric)
            .build()
            .unwrap();
        let docs: Vec<_> = (0..50)
            .map(|i| {
                EmbeddedDocument::new(
                    Document::new(format!("doc {i}")).with_id(format!("d{i}")),
                    pseudo_vector(i, 16),
                )
            })
            .collect();
        pg.upsert(docs.clone()).await.unwrap();
        mem.upsert(docs).await.unwrap();
        let q = pseudo_vector(999, 16);
        let a = pg.search(SearchRequest::new(q.clone(), 10)).await.unwrap();
        let b = mem.search(SearchRequest::new(q, 10)).await.unwrap();
        assert_eq!(a.len(), 10);
        for (x, y) in a.iter().zip(&b) {
            assert_eq!(x.document.id, y.document.id, "{metric:?}");
            assert!(
                (x.score - y.score).abs() < 1e-4,
                "{metric:?}: {} vs {}",
                x.score,
                y.score
            );
        }
        pg.drop_collection().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collection_lifecycle_and_mismatches() {
    let name = unique("life");
    let store = builder(&name, 4)
        .metric(DistanceMetric::Euclidean)
        .embedding_model("model-a")
        .build()
        .await
        .unwrap();
    assert_eq!(store.dimensions(), 4);
    assert_eq!(store.embedding_model(), Some("model-a"));
    store
        .upsert(vec![EmbeddedDocument::new(
            Document::new("kept").with_id("k"),
            vec![1.0, 0.0, 0.0, 0.0],
        )])
        .await
        .unwrap();

    // The catalog records what the collection was created with.
    let row = raw_client()
        .await
        .query_one(
            "SELECT dimensions, metric, embedding_model FROM catena_collections WHERE name = $1",
            &[&name],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, i32>(0), 4);
    assert_eq!(row.get::<_, String>(1), "euclidean");
    assert_eq!(row.get::<_, Option<String>>(2).as_deref(), Some("model-a"));

    // Reopening adopts the stored dimension and metric, and keeps the data.
    let reopened = PgVectorStore::builder()
        .url(database_url())
        .collection(&name)
        .create_if_missing(false)
        .build()
        .await
        .unwrap();
    assert_eq!(reopened.dimensions(), 4);
    assert_eq!(reopened.metric(), DistanceMetric::Euclidean);
    assert_eq!(reopened.count(None).await.unwrap(), 1);

    let mismatch = |b: PgVectorStoreBuilder, needles: &'static [&'static str]| async move {
        match b.build().await {
            Err(Error::InvalidConfig(msg)) => {
                for n in needles {
                    assert!(msg.contains(n), "{msg:?} should mention {n:?}");
                }
            }
            other => panic!("expected InvalidConfig, got {other:?}"),
        }
    };
    mismatch(
        builder(&name, 8).metric(DistanceMetric::Euclidean),
        &["4-dimensional", "8 dimensions", "model-a"],
    )
    .await;
    mismatch(
        builder(&name, 4).metric(DistanceMetric::Cosine),
        &["euclidean", "cosine"],
    )
    .await;
    mismatch(
        builder(&name, 4)
            .metric(DistanceMetric::Euclidean)
            .embedding_model("model-b"),
        &["model-a", "model-b"],
    )
    .await;
    // Nothing was changed by the failed opens.
    assert_eq!(reopened.count(None).await.unwrap(), 1);

    // A missing collection without create_if_missing; a missing one without dimensions.
    let missing = unique("missing");
    let err = builder(&missing, 4).create_if_missing(false).build().await;
    assert!(matches!(err, Err(Error::NotFound(_))), "{err:?}");
    let err = PgVectorStore::builder()
        .url(database_url())
        .collection(&missing)
        .build()
        .await;
    assert!(matches!(err, Err(Error::InvalidConfig(_))), "{err:?}");

    // A table that is not a Catena collection is not taken over.
    let foreign = unique("foreign");
    raw_client()
        .await
        .batch_execute(&format!("CREATE TABLE \"{foreign}\" (x int)"))
        .await
        .unwrap();
    let err = builder(&foreign, 4).build().await;
    assert!(
        matches!(&err, Err(Error::InvalidConfig(m)) if m.contains("not a Catena collection")),
        "{err:?}"
    );
    raw_client()
        .await
        .batch_execute(&format!("DROP TABLE \"{foreign}\""))
        .await
        .unwrap();

    // Dropping removes table and catalog row.
    store.drop_collection().await.unwrap();
    let err = builder(&name, 4).create_if_missing(false).build().await;
    assert!(matches!(err, Err(Error::NotFound(_))), "{err:?}");
    // `migrate()` is idempotent and recreates what is missing.
    let again = builder(&name, 4).build().await.unwrap();
    again.migrate().await.unwrap();
    again.migrate().await.unwrap();
    assert_eq!(again.count(None).await.unwrap(), 0);
    again.drop_collection().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_names_and_options_fail_before_connecting() {
    for name in [
        "x\"; DROP TABLE t; --",
        "a') OR 1=1 --",
        "Upper",
        "1abc",
        "",
    ] {
        let err = PgVectorStore::builder()
            // Unreachable on purpose: the name must be refused before any connection.
            .url("postgres://nobody:pw@127.0.0.1:1/none")
            .collection(name)
            .dimensions(3)
            .build()
            .await;
        assert!(
            matches!(err, Err(Error::InvalidConfig(_))),
            "{name:?}: {err:?}"
        );
    }
    let err = PgVectorStore::builder()
        .url("postgres://nobody:pw@127.0.0.1:1/none")
        .dimensions(3)
        .index(Index::Hnsw {
            m: 64,
            ef_construction: 16,
        })
        .build()
        .await;
    assert!(matches!(err, Err(Error::InvalidConfig(_))), "{err:?}");
    // An unreachable server is a provider error that never shows the password.
    let err = PgVectorStore::builder()
        .url("postgres://nobody:s3cr3t@127.0.0.1:1/none")
        .dimensions(3)
        .connect_timeout(Duration::from_secs(2))
        .build()
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Provider(_)), "{err:?}");
    assert!(!format!("{err} {err:?}").contains("s3cr3t"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn debug_output_never_shows_the_password() {
    let name = unique("debug");
    let store = builder(&name, 3).build().await.unwrap();
    let url = database_url();
    let password = url
        .split("://")
        .nth(1)
        .and_then(|rest| rest.split('@').next())
        .and_then(|userinfo| userinfo.split(':').nth(1))
        .unwrap_or("")
        .to_owned();
    let dbg = format!("{store:?} {:?}", builder(&name, 3));
    if !password.is_empty() {
        assert!(!dbg.contains(&format!(":{password}@")), "{dbg}");
    }
    assert!(dbg.contains(&name));
    store.drop_collection().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn injection_is_impossible() {
    let name = unique("inject");
    let store = builder(&name, 3).build().await.unwrap();
    let evil = [
        "it's",
        "back\\slash",
        "$1",
        "'; DROP TABLE x; --",
        "\"quoted\"",
        "') OR 1=1 --",
    ];
    let docs: Vec<_> = evil
        .iter()
        .enumerate()
        .map(|(i, v)| {
            EmbeddedDocument::new(
                Document::new(*v)
                    .with_id(format!("e{i}"))
                    .with_metadata("v", *v)
                    .with_metadata("nested", json!({"v": v})),
                vec![1.0, i as f32, 0.0],
            )
        })
        .chain(std::iter::once(EmbeddedDocument::new(
            Document::new("plain")
                .with_id("plain")
                .with_metadata("v", "plain"),
            vec![0.0, 1.0, 0.0],
        )))
        .collect();
    store.upsert(docs).await.unwrap();
    let q = vec![1.0, 0.0, 0.0];

    // Keys carrying SQL are refused before any SQL exists, by every method taking a filter.
    for key in [
        "a') OR 1=1 --",
        "v; DROP TABLE x",
        "v'",
        "nested.v' --",
        "v\"",
        "a b",
    ] {
        let f = Filter::eq(key, 1);
        let e = store
            .search(SearchRequest::new(q.clone(), 5).with_filter(f.clone()))
            .await;
        assert!(matches!(e, Err(Error::InvalidInput(_))), "{key:?}: {e:?}");
        assert!(matches!(
            store.count(Some(&f)).await,
            Err(Error::InvalidInput(_))
        ));
        assert!(matches!(
            store.delete_by_filter(&f).await,
            Err(Error::InvalidInput(_))
        ));
        let e = store
            .hybrid_search(HybridRequest::new("x", q.clone(), 3).with_filter(f))
            .await;
        assert!(matches!(e, Err(Error::InvalidInput(_))), "{key:?}: {e:?}");
    }
    assert_eq!(store.count(None).await.unwrap(), evil.len() + 1);

    // Values match literally, through every operator that takes one.
    for (i, v) in evil.iter().enumerate() {
        let id = format!("e{i}");
        for f in [
            Filter::eq("v", *v),
            Filter::eq("nested.v", *v),
            Filter::is_in("v", [*v, "nothing"]),
            Filter::range("v").gte(*v).lte(*v),
        ] {
            let hits = store
                .search(SearchRequest::new(q.clone(), 10).with_filter(f.clone()))
                .await
                .unwrap();
            let ids: Vec<_> = hits
                .iter()
                .map(|h| h.document.id.clone().unwrap().into_inner())
                .collect();
            assert_eq!(ids, std::slice::from_ref(&id), "{f:?}");
        }
        let n = store.count(Some(&Filter::ne("v", *v))).await.unwrap();
        assert_eq!(n, evil.len(), "ne {v:?}");
        let got = store.get(&[DocumentId::from(id.as_str())]).await.unwrap();
        assert_eq!(got[0].content, *v, "content round-trips");
    }
    // Ids carrying SQL are just ids.
    let weird = DocumentId::from("x'); DELETE FROM t; --");
    store
        .upsert(vec![EmbeddedDocument::new(
            Document::new("w").with_id(weird.clone()),
            vec![0.0, 0.0, 1.0],
        )])
        .await
        .unwrap();
    assert_eq!(
        store.get(std::slice::from_ref(&weird)).await.unwrap().len(),
        1
    );
    assert_eq!(store.delete(&[weird]).await.unwrap(), 1);
    assert_eq!(store.count(None).await.unwrap(), evil.len() + 1);
    // Hybrid text with tsquery syntax and quotes is a literal search.
    store
        .hybrid_search(HybridRequest::new(
            "'; DROP TABLE x; -- & | ! (",
            q.clone(),
            3,
        ))
        .await
        .unwrap();
    assert_eq!(store.count(None).await.unwrap(), evil.len() + 1);
    store.drop_collection().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hybrid_search_surfaces_keyword_only_matches() {
    let name = unique("hybrid");
    let dims = 8;
    let store = builder(&name, dims).build().await.unwrap();
    let axis = |a: f32| {
        let mut v = vec![0.0; dims];
        v[0] = a.cos();
        v[1] = a.sin();
        v
    };
    let mut docs: Vec<_> = (0..30)
        .map(|i| {
            EmbeddedDocument::new(
                Document::new(format!("ordinary note number {i} about gardening"))
                    .with_id(format!("n{i}"))
                    .with_metadata("lang", if i % 2 == 0 { "en" } else { "fr" }),
                axis(0.01 * i as f32),
            )
        })
        .collect();
    // Far from the query vector, but the only document with the keyword.
    docs.push(EmbeddedDocument::new(
        Document::new("Zanzibar spice islands travel guide")
            .with_id("kw")
            .with_metadata("lang", "en"),
        axis(3.0),
    ));
    store.upsert(docs).await.unwrap();

    let plain = store
        .search(SearchRequest::new(axis(0.0), 5))
        .await
        .unwrap();
    assert!(plain
        .iter()
        .all(|h| h.document.id.as_ref().unwrap().as_str() != "kw"));

    let req = HybridRequest::new("zanzibar", axis(0.0), 5).with_fetch_k(5);
    let hits = store.hybrid_search(req.clone()).await.unwrap();
    assert_eq!(hits.len(), 5);
    let kw = hits
        .iter()
        .find(|h| h.document.id.as_ref().unwrap().as_str() == "kw")
        .expect("the keyword-only match must surface");
    assert_eq!(kw.text_rank, Some(1));
    assert_eq!(kw.vector_rank, None);
    // The vector ranking's best and the text ranking's best tie at 1 / (60 + 1).
    let best = hits
        .iter()
        .find(|h| h.document.id.as_ref().unwrap().as_str() == "n0")
        .unwrap();
    assert_eq!(best.vector_rank, Some(1));
    assert!((best.score - kw.score).abs() < 1e-7);
    for w in hits.windows(2) {
        assert!(w[0].score >= w[1].score);
    }
    // Weighting the text ranking up puts the keyword match first.
    let hits = store
        .hybrid_search(req.clone().with_weights(1.0, 3.0))
        .await
        .unwrap();
    assert_eq!(hits[0].document.id.as_ref().unwrap().as_str(), "kw");
    assert!(
        (hits[0].score - 3.0 / 61.0).abs() < 1e-6,
        "{}",
        hits[0].score
    );
    // Weighted fusion of min-max normalised scores: each ranking's best scores its weight.
    let weighted = req.clone().with_fusion(Fusion::Weighted);
    let hits = store.hybrid_search(weighted.clone()).await.unwrap();
    let ids: Vec<&str> = hits
        .iter()
        .map(|h| h.document.id.as_ref().unwrap().as_str())
        .collect();
    assert_eq!(
        &ids[..2],
        &["n0", "kw"],
        "a tie goes to the better vector rank"
    );
    assert!((hits[0].score - 1.0).abs() < 1e-6 && (hits[1].score - 1.0).abs() < 1e-6);
    // The other vector candidates fall between the farthest (0) and the nearest (1).
    assert!(hits[2..]
        .windows(2)
        .all(|w| w[0].score > w[1].score && w[1].score > 0.0 && w[0].score < 1.0));
    let hits = store
        .hybrid_search(weighted.clone().with_weights(0.5, 2.0))
        .await
        .unwrap();
    assert_eq!(hits[0].document.id.as_ref().unwrap().as_str(), "kw");
    assert!((hits[0].score - 2.0).abs() < 1e-6);
    // Weight 0 drops the text ranking entirely.
    let hits = store
        .hybrid_search(req.clone().with_weights(1.0, 0.0))
        .await
        .unwrap();
    assert!(hits
        .iter()
        .all(|h| h.document.id.as_ref().unwrap().as_str() != "kw"));
    // The filter applies to both rankings.
    let hits = store
        .hybrid_search(req.clone().with_filter(Filter::eq("lang", "fr")))
        .await
        .unwrap();
    assert!(!hits.is_empty());
    assert!(hits.iter().all(|h| h.document.metadata["lang"] == "fr"));
    // Phrase syntax of websearch_to_tsquery; no match means vector ranking only.
    let hits = store
        .hybrid_search(HybridRequest::new("\"spice islands\"", axis(0.0), 3).with_fetch_k(3))
        .await
        .unwrap();
    assert!(hits
        .iter()
        .any(|h| h.document.id.as_ref().unwrap().as_str() == "kw"));
    let hits = store
        .hybrid_search(HybridRequest::new("nonexistentword", axis(0.0), 3))
        .await
        .unwrap();
    assert!(hits.iter().all(|h| h.text_rank.is_none()));
    // Wrong dimension.
    let e = store
        .hybrid_search(HybridRequest::new("x", vec![1.0; dims + 1], 3))
        .await;
    assert!(matches!(e, Err(Error::InvalidInput(_))));
    store.drop_collection().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn index_settings_per_query() {
    let name = unique("settings");
    let dims = 16;
    let store = builder(&name, dims)
        .index(Index::Hnsw {
            m: 8,
            ef_construction: 32,
        })
        .ef_search(80)
        .probes(3)
        .build()
        .await
        .unwrap();
    let docs: Vec<_> = (0..500)
        .map(|i| {
            EmbeddedDocument::new(
                Document::new(format!("d{i}"))
                    .with_id(format!("d{i}"))
                    .with_metadata("bucket", i % 50),
                pseudo_vector(i, dims),
            )
        })
        .collect();
    store.upsert(docs).await.unwrap();
    let q = pseudo_vector(7, dims);
    for opts in [
        QueryOptions::new(),
        QueryOptions::new().ef_search(200),
        QueryOptions::new().ef_search(10).probes(1),
    ] {
        let hits = store
            .search_with(
                SearchRequest::new(q.clone(), 10).with_filter(Filter::eq("bucket", 7)),
                opts,
            )
            .await
            .unwrap();
        assert_eq!(hits.len(), 10, "{opts:?}: a 2% filter still fills k");
        assert_eq!(hits[0].document.id.as_ref().unwrap().as_str(), "d7");
    }
    for bad in [
        QueryOptions::new().ef_search(0),
        QueryOptions::new().probes(0),
    ] {
        let e = store
            .search_with(SearchRequest::new(q.clone(), 3), bad)
            .await;
        assert!(matches!(e, Err(Error::InvalidInput(_))));
    }
    // Settings are transaction-local: they never leak into pooled connections.
    let client = store.pool().get().await.unwrap();
    let ef: String = client
        .query_one("SELECT current_setting('hnsw.ef_search', true)", &[])
        .await
        .unwrap()
        .get::<_, Option<String>>(0)
        .unwrap_or_else(|| "40".into());
    assert_eq!(ef, "40");
    drop(client);

    // Replace HNSW with IVFFlat (trained on the rows now present), then drop it.
    store.set_index(Index::ivfflat(10)).await.unwrap();
    assert_eq!(
        index_methods(&name)
            .await
            .iter()
            .filter(|m| *m == "ivfflat")
            .count(),
        1
    );
    assert!(!index_methods(&name).await.contains(&"hnsw".to_owned()));
    let hits = store
        .search_with(
            SearchRequest::new(q.clone(), 10).with_filter(Filter::eq("bucket", 7)),
            QueryOptions::new().probes(10),
        )
        .await
        .unwrap();
    assert_eq!(hits.len(), 10);
    store.set_index(Index::None).await.unwrap();
    let methods = index_methods(&name).await;
    assert!(
        !methods.iter().any(|m| m == "hnsw" || m == "ivfflat"),
        "{methods:?}"
    );
    store.drop_collection().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_ids_in_a_batch_last_one_wins() {
    let name = unique("dups");
    let store = builder(&name, 2).batch_size(2).build().await.unwrap();
    let d = |id: &str, text: &str| {
        EmbeddedDocument::new(Document::new(text).with_id(id), vec![1.0, 0.0])
    };
    let report = store
        .upsert(vec![
            d("a", "first"),
            d("b", "b"),
            d("a", "second"),
            d("c", "c"),
            d("a", "third"),
        ])
        .await
        .unwrap();
    let ids: Vec<_> = report.ids.iter().map(|i| i.as_str().to_owned()).collect();
    assert_eq!(ids, ["a", "b", "a", "c", "a"]);
    assert_eq!(
        (report.inserted, report.updated, report.unchanged),
        (3, 0, 0)
    );
    assert_eq!(store.count(None).await.unwrap(), 3);
    assert_eq!(store.get(&["a".into()]).await.unwrap()[0].content, "third");
    let report = store
        .upsert(vec![d("a", "third"), d("b", "changed")])
        .await
        .unwrap();
    assert_eq!(
        (report.inserted, report.updated, report.unchanged),
        (0, 1, 1)
    );
    // NUL characters cannot be stored by PostgreSQL: refused up front, nothing written.
    let e = store.upsert(vec![d("n", "ok"), d("m", "bad\0")]).await;
    assert!(matches!(e, Err(Error::InvalidInput(_))), "{e:?}");
    assert!(store.get(&["n".into()]).await.unwrap().is_empty());
    store.drop_collection().await.unwrap();
}

/// The fault test: the backend running an upsert is terminated mid-batch; the store retries
/// the batch once on a fresh connection and every id ends up stored exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminated_backend_mid_batch_is_retried_without_duplicates() {
    let name = unique("fault");
    let dims = 32;
    let n = 20_000;
    let store = builder(&name, dims).batch_size(250).build().await.unwrap();
    let docs: Vec<_> = (0..n)
        .map(|i| {
            EmbeddedDocument::new(
                Document::new(format!("row {i}")).with_id(format!("r{i}")),
                pseudo_vector(i as u64, dims),
            )
        })
        .collect();

    let killer = {
        let table = name.clone();
        tokio::spawn(async move {
            let client = raw_client().await;
            let pattern = format!("INSERT INTO \"{table}\"%");
            let deadline = Instant::now() + Duration::from_secs(60);
            while Instant::now() < deadline {
                let rows = client
                    .query(
                        "SELECT pid FROM pg_stat_activity WHERE datname = current_database() \
                         AND pid <> pg_backend_pid() AND state = 'active' AND query LIKE $1",
                        &[&pattern],
                    )
                    .await
                    .unwrap();
                if let Some(row) = rows.first() {
                    let pid: i32 = row.get(0);
                    let killed: bool = client
                        .query_one("SELECT pg_terminate_backend($1)", &[&pid])
                        .await
                        .unwrap()
                        .get(0);
                    if killed {
                        return Some(pid);
                    }
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            None
        })
    };
    let report = store.upsert(docs.clone()).await.unwrap();
    let killed = killer.await.unwrap();
    assert!(
        killed.is_some(),
        "the upsert's backend was never caught mid-batch"
    );
    assert_eq!(report.ids.len(), n);
    // The killed attempt was rolled back whole, so the retry inserted everything.
    assert_eq!(report.inserted + report.unchanged, n, "{report:?}");

    let row = raw_client()
        .await
        .query_one(
            &format!("SELECT count(*), count(DISTINCT id) FROM \"{name}\""),
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, i64>(0), n as i64, "exactly one row per id");
    assert_eq!(row.get::<_, i64>(1), n as i64);

    // Re-running the batch changes nothing.
    let again = store.upsert(docs).await.unwrap();
    assert_eq!((again.inserted, again.updated, again.unchanged), (0, 0, n));
    store.drop_collection().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_upserts_and_searches_through_the_pool() {
    let name = unique("conc");
    let dims = 16;
    let store = builder(&name, dims)
        .max_connections(4)
        .index(Index::hnsw())
        .build()
        .await
        .unwrap();
    let tasks = (0..32u64).map(|t| {
        let store = store.clone();
        tokio::spawn(async move {
            let docs: Vec<_> = (0..50u64)
                .map(|i| {
                    EmbeddedDocument::new(
                        Document::new(format!("t{t} d{i}"))
                            .with_id(format!("t{t}-{i}"))
                            .with_metadata("task", t),
                        pseudo_vector(t * 1000 + i, dims),
                    )
                })
                .collect();
            let report = store.upsert(docs).await.unwrap();
            assert_eq!(report.inserted, 50);
            for s in 0..5 {
                let hits = store
                    .search(
                        SearchRequest::new(pseudo_vector(t * 1000 + s, dims), 5)
                            .with_filter(Filter::eq("task", t)),
                    )
                    .await
                    .unwrap();
                assert_eq!(hits.len(), 5);
                assert_eq!(
                    hits[0].document.id.as_ref().unwrap().as_str(),
                    format!("t{t}-{s}")
                );
            }
        })
    });
    for r in futures::future::join_all(tasks).await {
        r.unwrap();
    }
    assert_eq!(store.count(None).await.unwrap(), 32 * 50);
    assert!(store.pool().status().size <= 4);
    store.drop_collection().await.unwrap();
}
