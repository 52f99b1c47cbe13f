//! The in-memory store against the shared conformance suite, plus persistence.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use catena_core::test_utils::vector_store_conformance;
use catena_core::{Document, EmbeddedDocument, Error, Filter, SearchRequest, VectorStore};
use catena_vectorstores::{DistanceMetric, InMemoryVectorStore, Quantization};

#[tokio::test]
async fn conformance_for_every_metric() {
    for metric in [
        DistanceMetric::Cosine,
        DistanceMetric::DotProduct,
        DistanceMetric::Euclidean,
    ] {
        let store = InMemoryVectorStore::builder()
            .metric(metric)
            .build()
            .unwrap();
        vector_store_conformance(&store, 8).await;
    }
}

#[tokio::test]
async fn conformance_with_fixed_dimensions_and_persistence() {
    let dir = tempfile::tempdir().unwrap();
    let store = InMemoryVectorStore::builder()
        .dimensions(16)
        .persist_to(dir.path().join("store.json"))
        .build()
        .unwrap();
    vector_store_conformance(&store, 16).await;
}

fn doc(id: &str, text: &str, v: Vec<f32>) -> EmbeddedDocument {
    EmbeddedDocument::new(
        Document::new(text)
            .with_id(id)
            .with_metadata("len", text.len()),
        v,
    )
}

#[tokio::test]
async fn scores_per_metric() {
    let q = vec![1.0, 0.0];
    let cases = [
        (DistanceMetric::Cosine, 0.6),
        (DistanceMetric::DotProduct, 3.0),
        (
            DistanceMetric::Euclidean,
            1.0 / (1.0 + (4.0f32 + 16.0).sqrt()),
        ),
    ];
    for (metric, want) in cases {
        let store = InMemoryVectorStore::builder()
            .metric(metric)
            .build()
            .unwrap();
        store
            .upsert(vec![doc("a", "x", vec![3.0, 4.0])])
            .await
            .unwrap();
        let hits = store
            .search(SearchRequest::new(q.clone(), 1))
            .await
            .unwrap();
        assert!(
            (hits[0].score - want).abs() < 1e-6,
            "{metric:?}: {}",
            hits[0].score
        );
    }
}

#[tokio::test]
async fn a_restart_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vectors.json");
    {
        let store = InMemoryVectorStore::builder()
            .metric(DistanceMetric::Euclidean)
            .persist_to(&path)
            .build()
            .unwrap();
        store
            .upsert(vec![
                doc("a", "alpha", vec![0.1, 0.2, 0.3]),
                doc("b", "beta ✓", vec![0.3, 0.2, 0.1]),
                doc("c", "gamma", vec![1e-7, -3.5, 2.25]),
            ])
            .await
            .unwrap();
        assert_eq!(store.delete(&["b".into()]).await.unwrap(), 1);
    }
    let reopened = InMemoryVectorStore::builder()
        .metric(DistanceMetric::Euclidean)
        .persist_to(&path)
        .build()
        .unwrap();
    assert_eq!(reopened.len(), 2);
    assert_eq!(reopened.dimensions(), Some(3));
    let got = reopened
        .get(&["c".into(), "b".into(), "a".into()])
        .await
        .unwrap();
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].content, "gamma");
    // Vectors survive bit for bit: an exact match scores exactly 1.
    let hit = reopened
        .search(SearchRequest::new(vec![1e-7, -3.5, 2.25], 1))
        .await
        .unwrap();
    assert_eq!(hit[0].score, 1.0);

    // A metric mismatch is refused rather than silently reinterpreting the vectors.
    let err = InMemoryVectorStore::builder()
        .metric(DistanceMetric::Cosine)
        .persist_to(&path)
        .build()
        .unwrap_err();
    assert!(matches!(err, Error::InvalidConfig(_)), "{err:?}");

    // Explicit save/load round trip.
    let copy = dir.path().join("copy.json");
    reopened.save(&copy).unwrap();
    let loaded = InMemoryVectorStore::load(&copy).unwrap();
    assert_eq!(loaded.metric(), DistanceMetric::Euclidean);
    assert_eq!(loaded.len(), 2);
}

#[tokio::test]
async fn failed_persistence_rolls_back_the_write() {
    let dir = tempfile::tempdir().unwrap();
    let sub = dir.path().join("sub");
    std::fs::create_dir(&sub).unwrap();
    let path = sub.join("store.json");
    let store = InMemoryVectorStore::builder()
        .persist_to(&path)
        .build()
        .unwrap();
    store
        .upsert(vec![doc("a", "kept", vec![1.0, 0.0])])
        .await
        .unwrap();
    // Make the directory disappear so the next write cannot be persisted.
    std::fs::remove_dir_all(&sub).unwrap();
    let err = store
        .upsert(vec![
            doc("a", "replaced", vec![0.0, 1.0]),
            doc("b", "new", vec![1.0, 1.0]),
        ])
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Io { .. }), "{err:?}");
    let got = store.get(&["a".into(), "b".into()]).await.unwrap();
    assert_eq!(got.len(), 1, "the new document must not stay in memory");
    assert_eq!(
        got[0].content, "kept",
        "the replaced document must be restored"
    );
    let err = store
        .delete_by_filter(&Filter::exists("len"))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Io { .. }));
    assert_eq!(store.len(), 1, "a failed delete keeps the document");
}

#[tokio::test]
async fn corrupt_files_are_typed_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.json");
    std::fs::write(
        &path,
        b"{\"format\":\"catena-in-memory-vector-store\",\"version\":1,",
    )
    .unwrap();
    assert!(matches!(
        InMemoryVectorStore::load(&path).unwrap_err(),
        Error::Serialization { .. }
    ));
    std::fs::write(
        &path,
        br#"{"format":"catena-in-memory-vector-store","version":1,"metric":"cosine","dimensions":2,
            "entries":[{"id":"a","content":"","metadata":{},"vector":[1.0]}]}"#,
    )
    .unwrap();
    let err = InMemoryVectorStore::load(&path).unwrap_err();
    assert!(
        err.to_string().contains("reading") || err.to_string().contains("entry 0"),
        "{err}"
    );
    assert!(matches!(
        InMemoryVectorStore::load(dir.path().join("missing.json")).unwrap_err(),
        Error::Io { .. }
    ));
}

/// A store that forgets `Ne`'s rule for missing fields: the suite must catch it.
struct MissingFieldsDontMatchNe(InMemoryVectorStore);

#[async_trait::async_trait]
impl VectorStore for MissingFieldsDontMatchNe {
    async fn upsert(
        &self,
        documents: Vec<EmbeddedDocument>,
    ) -> catena_core::Result<catena_core::UpsertReport> {
        self.0.upsert(documents).await
    }
    async fn count(&self, filter: Option<&Filter>) -> catena_core::Result<usize> {
        self.0.count(filter).await
    }
    async fn search(
        &self,
        mut request: SearchRequest,
    ) -> catena_core::Result<Vec<catena_core::ScoredDocument>> {
        if let Some(Filter::Ne(k, v)) = request.filter.clone() {
            request.filter = Some(Filter::exists(k.clone()).and(Filter::Ne(k, v)));
        }
        self.0.search(request).await
    }
    async fn delete(&self, ids: &[catena_core::DocumentId]) -> catena_core::Result<usize> {
        self.0.delete(ids).await
    }
    async fn delete_by_filter(&self, filter: &Filter) -> catena_core::Result<usize> {
        self.0.delete_by_filter(filter).await
    }
    async fn get(&self, ids: &[catena_core::DocumentId]) -> catena_core::Result<Vec<Document>> {
        self.0.get(ids).await
    }
}

#[tokio::test]
async fn the_suite_catches_wrong_filter_semantics() {
    use futures::FutureExt;
    let store = MissingFieldsDontMatchNe(InMemoryVectorStore::new());
    let outcome = std::panic::AssertUnwindSafe(vector_store_conformance(&store, 4))
        .catch_unwind()
        .await;
    assert!(
        outcome.is_err(),
        "a store with wrong Ne semantics must fail the suite"
    );
}

#[tokio::test]
async fn huge_vectors_are_rejected_instead_of_scoring_nan() {
    let store = InMemoryVectorStore::builder()
        .metric(DistanceMetric::DotProduct)
        .build()
        .unwrap();
    let err = store
        .upsert(vec![doc("a", "x", vec![1e20, -1e20])])
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidInput(_)), "{err:?}");
    store
        .upsert(vec![doc("b", "y", vec![1.0, 1.0])])
        .await
        .unwrap();
    let err = store
        .search(SearchRequest::new(vec![1e20, 1e20], 1))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidInput(_)), "{err:?}");
}

#[tokio::test]
async fn concurrent_saves_leave_a_valid_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.json");
    let store = std::sync::Arc::new(InMemoryVectorStore::new());
    let docs = (0..200)
        .map(|i| doc(&format!("d{i}"), "some text", vec![i as f32, 1.0]))
        .collect();
    store.upsert(docs).await.unwrap();
    let handles: Vec<_> = (0..8)
        .map(|_| {
            let (s, p) = (store.clone(), path.clone());
            std::thread::spawn(move || s.save(&p))
        })
        .collect();
    for h in handles {
        h.join().unwrap().unwrap();
    }
    assert_eq!(InMemoryVectorStore::load(&path).unwrap().len(), 200);
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .filter(|e| e.as_ref().unwrap().file_name() != "s.json")
        .collect();
    assert!(leftovers.is_empty(), "temporary files left behind");
}

/// Counts the batches it is asked to embed; fails on the batch numbered `fail_on`.
struct Batches {
    inner: catena_core::test_utils::DeterministicEmbedder,
    sizes: std::sync::Mutex<Vec<usize>>,
    fail_on: Option<usize>,
}

#[async_trait::async_trait]
impl catena_core::Embedder for Batches {
    async fn embed_documents(&self, texts: &[String]) -> catena_core::Result<Vec<Vec<f32>>> {
        let n = {
            let mut sizes = self.sizes.lock().unwrap();
            sizes.push(texts.len());
            sizes.len()
        };
        if self.fail_on == Some(n) {
            return Err(Error::invalid_input("embedder down"));
        }
        self.inner.embed_documents(texts).await
    }
    fn dimensions(&self) -> usize {
        self.inner.dimensions()
    }
}

fn batches(fail_on: Option<usize>) -> Batches {
    Batches {
        inner: catena_core::test_utils::DeterministicEmbedder::new(32),
        sizes: std::sync::Mutex::new(Vec::new()),
        fail_on,
    }
}

#[tokio::test]
async fn add_documents_embeds_in_batches_and_reports_every_id_in_order() {
    use catena_core::{Retriever, VectorStoreExt};
    let docs: Vec<Document> = (0..150)
        .map(|i| Document::new(format!("chunk number {i}")).with_metadata("source", "a.md"))
        .collect();
    let embedder = std::sync::Arc::new(batches(None));
    let store = std::sync::Arc::new(InMemoryVectorStore::new());
    let report = store
        .add_documents(embedder.as_ref(), docs.clone())
        .await
        .unwrap();
    assert_eq!(*embedder.sizes.lock().unwrap(), vec![64, 64, 22]);
    assert_eq!(
        (report.inserted, report.unchanged, report.ids.len()),
        (150, 0, 150)
    );
    let stored = store.get(&report.ids[..3]).await.unwrap();
    assert_eq!(stored[2].content, "chunk number 2");

    // Again: nothing changes, in batches of 100.
    let again = store
        .add_documents_in_batches(embedder.as_ref(), docs, 100)
        .await
        .unwrap();
    assert_eq!((again.inserted, again.unchanged), (0, 150));
    assert_eq!(again.ids, report.ids);
    assert!(store
        .add_documents_in_batches(embedder.as_ref(), vec![], 0)
        .await
        .is_err());

    // The retriever over the same store and embedder finds them.
    let retriever = store.as_retriever(embedder).with_k(2);
    let hits = retriever.retrieve("chunk number 7").await.unwrap();
    assert_eq!(hits[0].content, "chunk number 7");
    assert_eq!(hits.len(), 2);
}

#[tokio::test]
async fn add_documents_keeps_the_embedders_error_and_what_was_stored() {
    use catena_core::VectorStoreExt;
    let docs: Vec<Document> = (0..100)
        .map(|i| Document::new(format!("text {i}")))
        .collect();
    let store = InMemoryVectorStore::new();
    let err = store
        .add_documents_in_batches(&batches(Some(2)), docs, 40)
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::InvalidInput(ref m) if m == "embedder down"),
        "{err:?}"
    );
    // The first batch is stored whole; nothing of the failed one.
    assert_eq!(store.count(None).await.unwrap(), 40);
}

mod hybrid {
    use std::sync::Arc;

    use catena_core::test_utils::DeterministicEmbedder;
    use catena_core::{
        Document, EmbeddedDocument, Filter, Fusion, HybridRequest, HybridRetriever, HybridSearch,
        Retriever, VectorStore,
    };
    use catena_vectorstores::InMemoryVectorStore;

    fn axis(a: f32) -> Vec<f32> {
        vec![a.cos(), a.sin(), 0.0]
    }

    async fn store() -> InMemoryVectorStore {
        let store = InMemoryVectorStore::new();
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
        docs.push(EmbeddedDocument::new(
            Document::new("Zanzibar spice islands travel guide")
                .with_id("kw")
                .with_metadata("lang", "en"),
            axis(3.0),
        ));
        store.upsert(docs).await.unwrap();
        store
    }

    fn ids(hits: &[catena_core::HybridHit]) -> Vec<&str> {
        hits.iter()
            .map(|h| h.document.id.as_ref().unwrap().as_str())
            .collect()
    }

    #[tokio::test]
    async fn bm25_over_the_documents_surfaces_keyword_only_matches() {
        let store = store().await;
        let req = HybridRequest::new("zanzibar", axis(0.0), 5).with_fetch_k(5);
        let hits = store.hybrid_search(req.clone()).await.unwrap();
        assert_eq!(hits.len(), 5);
        // The vector's best and the keyword's best tie at 1/61; the vector rank breaks it.
        assert_eq!(&ids(&hits)[..2], &["n0", "kw"]);
        assert_eq!((hits[1].vector_rank, hits[1].text_rank), (None, Some(1)));
        assert!((hits[0].score - hits[1].score).abs() < 1e-7);

        let up = store
            .hybrid_search(req.clone().with_weights(1.0, 3.0))
            .await
            .unwrap();
        assert_eq!(ids(&up)[0], "kw");
        assert!((up[0].score - 3.0 / 61.0).abs() < 1e-6);
        let dense_only = store
            .hybrid_search(req.clone().with_weights(1.0, 0.0))
            .await
            .unwrap();
        assert!(!ids(&dense_only).contains(&"kw"));
        let weighted = store
            .hybrid_search(req.clone().with_fusion(Fusion::Weighted))
            .await
            .unwrap();
        assert_eq!(&ids(&weighted)[..2], &["n0", "kw"]);
        assert!((weighted[1].score - 1.0).abs() < 1e-6);
        let french = store
            .hybrid_search(req.clone().with_filter(Filter::eq("lang", "fr")))
            .await
            .unwrap();
        assert!(french.iter().all(|h| h.document.metadata["lang"] == "fr"));
        // Stemming: "islands" and "island" are one term; stop words match nothing.
        let stem = store.keyword_search("island", 3, None).unwrap();
        assert_eq!(stem[0].document.id.as_ref().unwrap().as_str(), "kw");
        assert!(store
            .keyword_search("the of and", 3, None)
            .unwrap()
            .is_empty());
    }

    /// A document of words from a small vocabulary, picked by `seed`.
    fn words(seed: usize, n: usize) -> String {
        const VOCABULARY: [&str; 12] = [
            "river", "garden", "stone", "lantern", "copper", "harbour", "meadow", "signal",
            "orchard", "violet", "engine", "summit",
        ];
        (0..n)
            .map(|j| VOCABULARY[(seed * 7 + j * j * 5 + j) % VOCABULARY.len()])
            .collect::<Vec<_>>()
            .join(" ")
    }

    fn doc(id: usize, seed: usize) -> EmbeddedDocument {
        EmbeddedDocument::new(
            Document::new(words(seed, 3 + seed % 9)).with_id(format!("w{id}")),
            axis(0.1 * seed as f32),
        )
    }

    #[tokio::test]
    async fn keyword_scores_after_any_writes_are_those_of_a_store_holding_the_result() {
        // The keyword statistics are built by the first keyword search and kept in step by
        // later writes: inserts, rewrites, deletes that move the last row into the hole.
        let writes = |store: InMemoryVectorStore, search_first: bool| async move {
            store
                .upsert((0..40).map(|i| doc(i, i)).collect())
                .await
                .unwrap();
            if search_first {
                assert!(!store.keyword_search("copper", 5, None).unwrap().is_empty());
            }
            store
                .upsert((5..12).map(|i| doc(i, i + 100)).collect())
                .await
                .unwrap();
            let gone: Vec<_> = [0, 3, 17, 39, 22]
                .iter()
                .map(|i| format!("w{i}").into())
                .collect();
            store.delete(&gone).await.unwrap();
            store
                .upsert((40..46).map(|i| doc(i, i * 3)).collect())
                .await
                .unwrap();
            store.upsert(vec![doc(3, 77)]).await.unwrap();
            store
        };
        let searched = writes(InMemoryVectorStore::new(), true).await;
        let unsearched = writes(InMemoryVectorStore::new(), false).await;
        let mut last: Vec<EmbeddedDocument> = (0..46)
            .filter(|i| ![0, 3, 17, 39, 22].contains(i))
            .map(|i| match i {
                5..12 => doc(i, i + 100),
                40.. => doc(i, i * 3),
                _ => doc(i, i),
            })
            .collect();
        last.push(doc(3, 77));
        let fresh = InMemoryVectorStore::new();
        fresh.upsert(last).await.unwrap();
        for query in [
            "copper",
            "river lantern",
            "violet summit engine",
            "harbour meadow",
        ] {
            let want = fresh.keyword_search(query, 50, None).unwrap();
            assert!(!want.is_empty(), "{query}");
            for store in [&searched, &unsearched] {
                let got = store.keyword_search(query, 50, None).unwrap();
                let pairs = |hits: &[catena_core::ScoredDocument]| -> Vec<(String, f32)> {
                    hits.iter()
                        .map(|h| (h.document.id.as_ref().unwrap().as_str().to_owned(), h.score))
                        .collect()
                };
                assert_eq!(pairs(&got), pairs(&want), "{query}");
            }
        }
    }

    #[tokio::test]
    async fn the_keyword_index_follows_updates_and_deletes() {
        let store = store().await;
        assert_eq!(store.keyword_search("zanzibar", 5, None).unwrap().len(), 1);
        // Rewritten without the word: no longer a keyword match.
        store
            .upsert(vec![EmbeddedDocument::new(
                Document::new("a travel guide to nowhere").with_id("kw"),
                axis(3.0),
            )])
            .await
            .unwrap();
        assert!(store
            .keyword_search("zanzibar", 5, None)
            .unwrap()
            .is_empty());
        assert_eq!(store.keyword_search("nowhere", 5, None).unwrap().len(), 1);
        store.delete(&["kw".into()]).await.unwrap();
        assert!(store.keyword_search("nowhere", 5, None).unwrap().is_empty());
        // A reopened persisted store rebuilds the index from its file.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.log");
        {
            let s = InMemoryVectorStore::builder()
                .persist_to(&path)
                .build()
                .unwrap();
            s.upsert(vec![EmbeddedDocument::new(
                Document::new("Zanzibar again").with_id("z"),
                axis(1.0),
            )])
            .await
            .unwrap();
        }
        let s = InMemoryVectorStore::builder()
            .persist_to(&path)
            .build()
            .unwrap();
        assert_eq!(s.keyword_search("zanzibar", 5, None).unwrap().len(), 1);
    }

    #[tokio::test]
    async fn a_hybrid_retriever_embeds_the_query_and_returns_fused_scores() {
        let embedder = Arc::new(DeterministicEmbedder::new(16));
        let store = Arc::new(InMemoryVectorStore::new());
        let texts = [
            "the borrow checker enforces ownership",
            "garbage collection in Go",
            "Zanzibar spice islands",
        ];
        let vectors = catena_core::Embedder::embed_documents(
            embedder.as_ref(),
            &texts.iter().map(|t| t.to_string()).collect::<Vec<_>>(),
        )
        .await
        .unwrap();
        store
            .upsert(
                texts
                    .iter()
                    .zip(vectors)
                    .enumerate()
                    .map(|(i, (t, v))| {
                        EmbeddedDocument::new(Document::new(*t).with_id(format!("d{i}")), v)
                    })
                    .collect(),
            )
            .await
            .unwrap();
        let retriever = HybridRetriever::new(embedder, store).with_k(2);
        let hits = retriever.retrieve_scored("ownership borrow").await.unwrap();
        assert_eq!(hits.len(), 2);
        assert_eq!(hits[0].document.id.as_ref().unwrap().as_str(), "d0");
        assert!(hits[0].score > hits[1].score);
        assert_eq!(
            retriever.retrieve("ownership borrow").await.unwrap().len(),
            2
        );
    }
}

/// A deterministic pseudo-random vector of `d` components in [-1, 1].
fn pseudo_random(seed: u64, d: usize) -> Vec<f32> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..d)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % 2000) as f32 / 1000.0 - 1.0
        })
        .collect()
}

/// A batch answers each search as one search at a time does (same ids, same scores), with
/// and without filters, for every metric, after updates and deletes moved rows around.
#[tokio::test]
async fn a_batch_of_searches_answers_as_single_searches_do() {
    for metric in [
        DistanceMetric::Cosine,
        DistanceMetric::DotProduct,
        DistanceMetric::Euclidean,
    ] {
        let store = InMemoryVectorStore::builder()
            .metric(metric)
            .build()
            .unwrap();
        let d = 37;
        let docs: Vec<EmbeddedDocument> = (0..500)
            .map(|i| {
                EmbeddedDocument::new(
                    Document::new(format!("doc {i}"))
                        .with_id(format!("d{i}"))
                        .with_metadata("even", i % 2 == 0),
                    pseudo_random(i, d),
                )
            })
            .collect();
        store.upsert(docs).await.unwrap();
        // Rewrite some rows and delete others: the arena's rows move.
        let ids: Vec<_> = (0..50).map(|i| format!("d{}", i * 7).into()).collect();
        store.delete(&ids).await.unwrap();
        store
            .upsert(vec![EmbeddedDocument::new(
                Document::new("doc 3 again").with_id("d3"),
                pseudo_random(9_999, d),
            )])
            .await
            .unwrap();
        let requests: Vec<SearchRequest> = (0..9)
            .map(|q| {
                let r = SearchRequest::new(pseudo_random(1_000 + q, d), 10);
                if q % 3 == 0 {
                    r.with_filter(Filter::eq("even", true))
                } else {
                    r
                }
            })
            .collect();
        let batch = store.search_batch(&requests).unwrap();
        assert_eq!(batch.len(), requests.len());
        for (r, got) in requests.iter().zip(&batch) {
            let one = store.search(r.clone()).await.unwrap();
            let ids = |hits: &[catena_core::ScoredDocument]| -> Vec<(String, f32)> {
                hits.iter()
                    .map(|h| (h.document.id.as_ref().unwrap().to_string(), h.score))
                    .collect()
            };
            assert_eq!(ids(got), ids(&one), "{metric:?}");
            assert_eq!(got.len(), 10);
        }
        // A bad request fails the batch.
        let bad = [SearchRequest::new(vec![0.0; d + 1], 3)];
        assert!(store.search_batch(&bad).is_err());
    }
}

/// A large batch (scored as a register-blocked matrix product, split across threads, whose
/// sums run in another order than a single search's) still answers exactly as single
/// searches do, down to the last bit of every score, even where many rows score within
/// rounding of each other: the rows are a few vectors repeated with perturbations of a
/// few units in the last place, and the queries are those vectors themselves.
#[tokio::test]
async fn a_large_batch_over_near_ties_answers_as_single_searches_do() {
    for metric in [DistanceMetric::Cosine, DistanceMetric::DotProduct] {
        let store = InMemoryVectorStore::builder()
            .metric(metric)
            .build()
            .unwrap();
        let d = 64;
        let bases: Vec<Vec<f32>> = (0..6).map(|b| pseudo_random(10_000 + b, d)).collect();
        let docs: Vec<EmbeddedDocument> = (0..3_000u64)
            .map(|i| {
                let mut v = bases[(i % 6) as usize].clone();
                let slot = (i as usize / 6) % d;
                v[slot] *= 1.0 + f32::EPSILON * ((i % 5) as f32);
                EmbeddedDocument::new(
                    Document::new(format!("doc {i}")).with_id(format!("n{i:05}")),
                    v,
                )
            })
            .collect();
        store.upsert(docs).await.unwrap();
        let requests: Vec<SearchRequest> = (0..70u64)
            .map(|q| {
                let v = if q % 2 == 0 {
                    bases[(q / 2 % 6) as usize].clone()
                } else {
                    pseudo_random(20_000 + q, d)
                };
                SearchRequest::new(v, 1 + (q as usize % 3) * 7)
            })
            .collect();
        let batch = store.search_batch(&requests).unwrap();
        for (q, (r, got)) in requests.iter().zip(&batch).enumerate() {
            let one = store.search(r.clone()).await.unwrap();
            let hits = |hits: &[catena_core::ScoredDocument]| -> Vec<(String, u32)> {
                hits.iter()
                    .map(|h| {
                        (
                            h.document.id.as_ref().unwrap().to_string(),
                            h.score.to_bits(),
                        )
                    })
                    .collect()
            };
            assert_eq!(hits(got), hits(&one), "{metric:?}, query {q}");
            assert_eq!(got.len(), r.k);
        }
    }
}

/// Clustered vectors: 40 centres, each row a centre plus noise.
fn clustered(i: u64, d: usize) -> Vec<f32> {
    let centre = pseudo_random(50_000 + i % 40, d);
    let noise = pseudo_random(i + 1, d);
    centre
        .iter()
        .zip(&noise)
        .map(|(c, n)| c + 0.35 * n)
        .collect()
}

/// The hits of `request` from the int8 store against the exact one: every hit's score is
/// the exact store's score for that document, to the bit; returns how many of the exact
/// top k were found.
async fn found_of_exact(
    exact: &InMemoryVectorStore,
    int8: &InMemoryVectorStore,
    request: &SearchRequest,
) -> usize {
    let want = exact.search(request.clone()).await.unwrap();
    let got = int8.search(request.clone()).await.unwrap();
    assert_eq!(got.len(), want.len());
    let mut every = request.clone();
    every.k = exact.len();
    let all = exact.search(every).await.unwrap();
    for hit in &got {
        let same = all
            .iter()
            .find(|h| h.document.id == hit.document.id)
            .unwrap();
        assert_eq!(
            hit.score.to_bits(),
            same.score.to_bits(),
            "{:?}",
            hit.document.id
        );
    }
    got.iter()
        .filter(|h| want.iter().any(|w| w.document.id == h.document.id))
        .count()
}

/// An int8 store scans its codes first and scores the candidates exactly: for every metric,
/// with and without a filter, after deletes and updates moved rows around and after a
/// restart from its file, its hits carry exact scores and find the exact top 10 (recall
/// at least 0.97 on clustered vectors).
#[tokio::test]
async fn an_int8_store_scores_exactly_and_finds_the_exact_top_k() {
    let dir = tempfile::tempdir().unwrap();
    for metric in [
        DistanceMetric::Cosine,
        DistanceMetric::DotProduct,
        DistanceMetric::Euclidean,
    ] {
        let d = 48;
        let path = dir.path().join(format!("{metric:?}.log"));
        let open = || {
            InMemoryVectorStore::builder()
                .metric(metric)
                .quantization(Quantization::int8())
                .persist_to(&path)
                .build()
                .unwrap()
        };
        let int8 = open();
        let exact = InMemoryVectorStore::builder()
            .metric(metric)
            .build()
            .unwrap();
        let docs: Vec<EmbeddedDocument> = (0..3_000u64)
            .map(|i| {
                EmbeddedDocument::new(
                    Document::new(format!("doc {i}"))
                        .with_id(format!("q{i}"))
                        .with_metadata("even", i % 2 == 0),
                    clustered(i, d),
                )
            })
            .collect();
        int8.upsert(docs.clone()).await.unwrap();
        exact.upsert(docs).await.unwrap();
        let requests: Vec<SearchRequest> = (0..30u64)
            .map(|q| {
                let r = SearchRequest::new(clustered(90_000 + q, d), 10);
                if q % 3 == 0 {
                    r.with_filter(Filter::eq("even", true))
                } else {
                    r
                }
            })
            .collect();
        let recall = |found: usize| found as f64 / (10 * requests.len()) as f64;
        let mut found = 0;
        for r in &requests {
            found += found_of_exact(&exact, &int8, r).await;
        }
        assert!(
            recall(found) >= 0.97,
            "{metric:?}: recall {}",
            recall(found)
        );

        // Deletes and updates: the codes follow the rows.
        let gone: Vec<_> = (0..3_000)
            .step_by(3)
            .map(|i| format!("q{i}").into())
            .collect();
        int8.delete(&gone).await.unwrap();
        exact.delete(&gone).await.unwrap();
        let moved: Vec<EmbeddedDocument> = (1..3_000u64)
            .step_by(6)
            .map(|i| {
                EmbeddedDocument::new(
                    Document::new(format!("doc {i}")).with_id(format!("q{i}")),
                    clustered(i + 7, d),
                )
            })
            .collect();
        int8.upsert(moved.clone()).await.unwrap();
        exact.upsert(moved).await.unwrap();
        let mut found = 0;
        for r in &requests {
            found += found_of_exact(&exact, &int8, r).await;
        }
        assert!(
            recall(found) >= 0.97,
            "{metric:?} after writes: {}",
            recall(found)
        );

        // A restart codes the loaded rows again.
        drop(int8);
        let int8 = open();
        let mut found_again = 0;
        for r in &requests {
            found_again += found_of_exact(&exact, &int8, r).await;
        }
        assert_eq!(found_again, found, "{metric:?} after a restart");
    }
}

/// The candidates really are chosen by the int8 codes: rows built so that their codes
/// overrate them (a large second coordinate coarsens the first) outrank, in the first
/// pass, the row that is truly best; with fewer candidates than such rows the int8 store
/// misses it (the documented trade), with enough it finds it, and the exact store always
/// does.
#[tokio::test]
async fn int8_candidates_are_chosen_by_the_codes() {
    let query = SearchRequest::new(vec![1.0, 0.0], 1);
    let top = |hits: Vec<catena_core::ScoredDocument>| hits[0].document.id.clone().unwrap();
    let build = |q: Quantization| {
        InMemoryVectorStore::builder()
            .metric(DistanceMetric::DotProduct)
            .quantization(q)
            .build()
            .unwrap()
    };
    let few = build(Quantization::Int8 { oversampling: 1 });
    let many = build(Quantization::Int8 { oversampling: 200 });
    let exact = build(Quantization::None);
    for store in [&few, &many, &exact] {
        let mut docs: Vec<EmbeddedDocument> = (0..100)
            .map(|i| {
                EmbeddedDocument::new(
                    Document::new("overrated").with_id(format!("o{i}")),
                    vec![0.485, 3.0],
                )
            })
            .collect();
        docs.push(EmbeddedDocument::new(
            Document::new("best").with_id("best"),
            vec![0.4884, 1.0],
        ));
        store.upsert(docs).await.unwrap();
    }
    assert_ne!(
        top(few.search(query.clone()).await.unwrap()).as_str(),
        "best"
    );
    assert_eq!(
        top(many.search(query.clone()).await.unwrap()).as_str(),
        "best"
    );
    assert_eq!(top(exact.search(query).await.unwrap()).as_str(), "best");
}

/// A `k` near `usize::MAX` (accepted: it only asks for every document) returns every
/// document from single searches, batches and int8 stores alike, for every metric, instead
/// of overflowing the arithmetic that sizes the candidate heap.
#[tokio::test]
async fn an_enormous_k_returns_every_document() {
    for metric in [
        DistanceMetric::Cosine,
        DistanceMetric::DotProduct,
        DistanceMetric::Euclidean,
    ] {
        for quantization in [Quantization::None, Quantization::int8()] {
            let store = InMemoryVectorStore::builder()
                .metric(metric)
                .quantization(quantization)
                .build()
                .unwrap();
            let docs = (0..20)
                .map(|i| {
                    EmbeddedDocument::new(
                        Document::new("x").with_id(format!("k{i:02}")),
                        pseudo_random(i, 4),
                    )
                })
                .collect();
            store.upsert(docs).await.unwrap();
            for k in [usize::MAX, 1 << 62, usize::MAX / 4 + 1] {
                let request = SearchRequest::new(pseudo_random(99, 4), k);
                assert_eq!(store.search(request.clone()).await.unwrap().len(), 20);
                let batch = store.search_batch(&[request]).unwrap();
                assert_eq!(batch[0].len(), 20, "{metric:?} {quantization:?} k {k}");
            }
        }
    }
}

/// Queries whose own norm underflows to zero (components around 1e-30, which validation
/// accepts) score every row 0 in a single search, ties going to the lower id; a batch must
/// agree rather than trust a rounding margin that collapsed to zero with the norm.
#[tokio::test]
async fn a_batch_agrees_with_single_searches_for_vanishing_queries() {
    type Case = (DistanceMetric, Vec<(&'static str, Vec<f32>)>, Vec<f32>);
    let cases: [Case; 2] = [
        (
            DistanceMetric::Cosine,
            vec![("a", vec![-1.0, 0.0, 0.0]), ("b", vec![1.0, 0.0, 0.0])],
            vec![1e-30, 0.0, 0.0],
        ),
        (
            DistanceMetric::DotProduct,
            vec![
                ("a", vec![0.086_726_95, 0.333_047_8, -0.098_120_54]),
                ("b", vec![0.086_726_956, 0.333_047_8, -0.098_120_55]),
            ],
            vec![-1.557_635_3e-30, -1.156_662_9e-30, -1.623_798_7e-30],
        ),
    ];
    for (metric, rows, query) in cases {
        let store = InMemoryVectorStore::builder()
            .metric(metric)
            .build()
            .unwrap();
        let mut docs: Vec<EmbeddedDocument> = rows
            .into_iter()
            .map(|(id, v)| EmbeddedDocument::new(Document::new(id).with_id(id), v))
            .collect();
        // Enough other rows for the batch to pick candidates (k well below the row count).
        docs.extend((0..30).map(|i| {
            EmbeddedDocument::new(
                Document::new("far").with_id(format!("z{i:02}")),
                vec![0.0, -1.0 - i as f32, 0.5],
            )
        }));
        store.upsert(docs).await.unwrap();
        let request = SearchRequest::new(query, 1);
        let one = store.search(request.clone()).await.unwrap();
        let batch = store.search_batch(&[request]).unwrap();
        let key = |h: &[catena_core::ScoredDocument]| -> Vec<(String, u32)> {
            h.iter()
                .map(|h| {
                    (
                        h.document.id.as_ref().unwrap().to_string(),
                        h.score.to_bits(),
                    )
                })
                .collect()
        };
        assert_eq!(key(&batch[0]), key(&one), "{metric:?}");
    }
}

/// Int8 Euclidean scores `q · r - |r|² / 2` approximately; with vectors near the largest
/// that validation accepts, `2 q · r - |r|²` overflowed to infinity for the far rows, which
/// then filled every candidate slot and hid the nearest row.
#[tokio::test]
async fn int8_euclidean_survives_vectors_near_the_float_range() {
    let store = InMemoryVectorStore::builder()
        .metric(DistanceMetric::Euclidean)
        .quantization(Quantization::int8())
        .build()
        .unwrap();
    let mut docs: Vec<EmbeddedDocument> = (0..66)
        .map(|i| {
            EmbeddedDocument::new(
                Document::new("far").with_id(format!("far{i}")),
                vec![1e19, 1.4e19],
            )
        })
        .collect();
    docs.push(EmbeddedDocument::new(
        Document::new("near").with_id("near"),
        vec![8e18, 0.0],
    ));
    store.upsert(docs).await.unwrap();
    let hits = store
        .search(SearchRequest::new(vec![1.84e19, 0.0], 1))
        .await
        .unwrap();
    assert_eq!(hits[0].document.id.as_ref().unwrap().as_str(), "near");
}
