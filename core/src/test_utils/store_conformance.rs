//! The vector-store conformance suite.

use serde_json::{json, Value};

use crate::document::{Document, DocumentId, Metadata};
use crate::embed::Embedding;
use crate::error::Error;
use crate::vectorstore::{EmbeddedDocument, Filter, MmrRequest, SearchRequest, VectorStore};

/// Every document the suite writes carries this metadata key, so it can clean up.
const CASE_KEY: &str = "conformance_case";

/// A unit vector at `angle` radians from the first axis, in the plane of the first two
/// axes. Similarity to the first axis falls as the angle grows, for cosine, dot product
/// and euclidean metrics alike.
fn at_angle(dims: usize, angle: f32) -> Embedding {
    let mut v = vec![0.0; dims];
    v[0] = angle.cos();
    v[1] = angle.sin();
    v
}

fn axis(dims: usize) -> Embedding {
    at_angle(dims, 0.0)
}

fn meta(v: Value) -> Metadata {
    v.as_object().cloned().unwrap_or_default()
}

fn ids_of(docs: &[crate::vectorstore::ScoredDocument]) -> Vec<String> {
    docs.iter()
        .map(|d| {
            d.document
                .id
                .as_ref()
                .expect("conformance: search results must carry ids")
                .to_string()
        })
        .collect()
}

/// The ranked fixture: 10 documents `c-0` … `c-9`, `c-i` at angle `0.1·i` from the query
/// axis, so the expected ranking for the axis query is `c-0, c-1, …`.
fn fixture(dims: usize) -> Vec<EmbeddedDocument> {
    (0..10)
        .map(|i| {
            let mut m = json!({
                CASE_KEY: "ranked",
                "i": i,
                "parity": if i % 2 == 0 { "even" } else { "odd" },
                "tags": if i < 5 { json!(["low", "all"]) } else { json!(["high", "all"]) },
                "score_f": (i as f64) * 0.5,
                "title": format!("t{i}"),
                "author": {"name": format!("A{}", i % 3), "year": 2000 + i},
            });
            if i % 3 == 0 {
                m["opt"] = json!(format!("o{i}"));
            }
            if i == 9 {
                m["opt"] = Value::Null;
            }
            let doc = Document::new(format!("document {i}"))
                .with_id(format!("c-{i}"))
                .with_metadata_map(meta(m));
            EmbeddedDocument::new(doc, at_angle(dims, 0.1 * i as f32))
        })
        .collect()
}

/// Runs the vector-store contract against `store`, which must start empty and take
/// `dims`-dimensional vectors (at least 2). It leaves the store empty. Same as
/// `VectorStoreConformance::new(dims).run(store)`.
///
/// Checked: ids kept, or derived from content and source (so re-ingesting changes nothing);
/// upsert reports (inserted / updated / unchanged); ranking and `k`; score threshold; every
/// [`Filter`] operator including nested keys and text ranges, compared against
/// [`Filter::matches`] as the reference; upsert replaces by id; `get` order and unknown ids;
/// `count` with and without a filter; vectors returned on request; MMR; delete by ids and
/// by filter with counts; all-or-nothing rejection of bad vectors; `k = 0`; a selective
/// filter over 1,000 documents returning a full `k` (the pgvector HNSW pitfall); concurrent
/// upserts; Unicode content and nested metadata surviving a round trip.
///
/// # Panics
/// When the store breaks a rule; the message names it.
pub async fn vector_store_conformance(store: &dyn VectorStore, dims: usize) {
    VectorStoreConformance::new(dims).run(store).await;
}

/// The vector-store conformance suite with options; see [`vector_store_conformance`].
#[derive(Debug, Clone)]
pub struct VectorStoreConformance {
    dims: usize,
    text_ranges: bool,
}

impl VectorStoreConformance {
    /// The suite for `dims`-dimensional vectors, every check on.
    pub fn new(dims: usize) -> Self {
        VectorStoreConformance {
            dims,
            text_ranges: true,
        }
    }

    /// Whether to check range filters with text bounds. Turn it off only for a backend that
    /// documents it cannot compare strings by range (and rejects such filters). Default true.
    #[must_use]
    pub fn text_ranges(mut self, yes: bool) -> Self {
        self.text_ranges = yes;
        self
    }

    /// Runs the suite.
    ///
    /// # Panics
    /// When the store breaks a rule; the message names it.
    pub async fn run(&self, store: &dyn VectorStore) {
        let dims = self.dims;
        assert!(
            dims >= 2,
            "conformance: the suite needs at least 2 dimensions"
        );
        ranking_and_k(store, dims).await;
        threshold(store, dims).await;
        filters(store, dims, self.text_ranges).await;
        upsert_replaces_and_get(store, dims).await;
        assigned_ids(store, dims).await;
        counts(store, dims).await;
        vectors_and_mmr(store, dims).await;
        deletes(store, dims).await;
        bad_input_writes_nothing(store, dims).await;
        selective_filter(store, dims).await;
        concurrent_upserts(store, dims).await;
        round_trip(store, dims).await;
        cleanup(store).await;
        let left = store
            .search(SearchRequest::new(axis(dims), 10_000))
            .await
            .expect("conformance: search failed");
        assert!(
            left.is_empty(),
            "conformance: the store must be empty at the end"
        );
    }
}

async fn cleanup(store: &dyn VectorStore) {
    store
        .delete_by_filter(&Filter::exists(CASE_KEY))
        .await
        .expect("conformance: cleanup failed");
}

async fn load_fixture(store: &dyn VectorStore, dims: usize) {
    let report = store
        .upsert(fixture(dims))
        .await
        .expect("conformance: upsert failed");
    let want: Vec<DocumentId> = (0..10)
        .map(|i| DocumentId::from(format!("c-{i}")))
        .collect();
    assert_eq!(
        report.ids, want,
        "conformance: upsert must return the given ids in order"
    );
    assert_eq!(
        (report.inserted, report.updated, report.unchanged),
        (10, 0, 0),
        "conformance: a fresh upsert inserts every document"
    );
    assert!(
        report.is_complete(),
        "conformance: nothing may fail: {:?}",
        report.failed
    );
}

async fn ranking_and_k(store: &dyn VectorStore, dims: usize) {
    load_fixture(store, dims).await;
    let top3 = store
        .search(SearchRequest::new(axis(dims), 3))
        .await
        .expect("conformance: search failed");
    assert_eq!(ids_of(&top3), ["c-0", "c-1", "c-2"], "conformance: ranking");
    for w in top3.windows(2) {
        assert!(
            w[0].score >= w[1].score,
            "conformance: scores must not increase"
        );
    }
    assert_eq!(top3[0].document.content, "document 0");
    assert_eq!(top3[0].document.metadata["parity"], "even");
    let all = store
        .search(SearchRequest::new(axis(dims), 50))
        .await
        .expect("conformance: search failed");
    assert_eq!(
        all.len(),
        10,
        "conformance: k above the count returns everything"
    );
    let err = store.search(SearchRequest::new(axis(dims), 0)).await;
    assert!(
        matches!(err, Err(Error::InvalidInput(_))),
        "conformance: k = 0 must be InvalidInput"
    );
    let err = store
        .search(SearchRequest::new(vec![1.0; dims + 1], 3))
        .await;
    assert!(
        matches!(err, Err(Error::InvalidInput(_))),
        "conformance: a query of the wrong dimension must be InvalidInput"
    );
    cleanup(store).await;
}

async fn threshold(store: &dyn VectorStore, dims: usize) {
    load_fixture(store, dims).await;
    let all = store
        .search(SearchRequest::new(axis(dims), 10))
        .await
        .expect("conformance: search failed");
    let cut = (all[4].score + all[5].score) / 2.0;
    let kept = store
        .search(SearchRequest::new(axis(dims), 10).with_score_threshold(cut))
        .await
        .expect("conformance: search failed");
    assert_eq!(
        ids_of(&kept),
        ["c-0", "c-1", "c-2", "c-3", "c-4"],
        "conformance: score threshold keeps exactly the documents scoring above it"
    );
    cleanup(store).await;
}

async fn filters(store: &dyn VectorStore, dims: usize, text_ranges: bool) {
    load_fixture(store, dims).await;
    let fixture = fixture(dims);
    let mut cases = vec![
        Filter::eq("parity", "odd"),
        Filter::eq("i", 3),
        Filter::eq("i", 3.0),
        Filter::eq("tags", "high"),
        Filter::ne("parity", "odd"),
        Filter::ne("opt", "o3"),
        Filter::is_in("i", [1, 4, 7, 42]),
        Filter::is_in("i", Vec::<i64>::new()),
        Filter::not_in("opt", ["o0", "o6"]),
        Filter::range("i").gt(2.0).lte(6.0),
        Filter::range("score_f").gte(1.0).lt(2.5),
        Filter::range("parity").gt(0.0),
        Filter::exists("opt"),
        Filter::exists("nope"),
        Filter::eq("parity", "even").and(Filter::range("i").gte(4.0)),
        Filter::eq("i", 1).or(Filter::eq("tags", "high").and(Filter::eq("parity", "even"))),
        Filter::eq("parity", "even").not(),
        Filter::And(vec![]),
        Filter::exists("opt").not().and(Filter::eq("tags", "low")),
        Filter::eq("author.name", "A1"),
        Filter::ne("author.name", "A1"),
        Filter::range("author.year").gte(2003).lt(2007),
        Filter::exists("author.year"),
        Filter::exists("author.missing"),
        Filter::ne("author.missing", 1),
        Filter::is_in("author.name", ["A0", "A2"]).and(Filter::range("i").lt(6)),
    ];
    if text_ranges {
        cases.push(Filter::range("title").gte("t3").lt("t7"));
        cases.push(Filter::range("title").gt("t8"));
        cases.push(Filter::range("author.name").lte("A1"));
    }
    for f in cases {
        let expected: Vec<String> = fixture
            .iter()
            .filter(|d| f.matches(&d.document.metadata))
            .map(|d| {
                d.document
                    .id
                    .as_ref()
                    .map(ToString::to_string)
                    .unwrap_or_default()
            })
            .collect();
        let got = store
            .search(SearchRequest::new(axis(dims), 100).with_filter(f.clone()))
            .await
            .unwrap_or_else(|e| panic!("conformance: search with filter {f:?} failed: {e}"));
        assert_eq!(ids_of(&got), expected, "conformance: filter {f:?}");
    }
    cleanup(store).await;
}

async fn upsert_replaces_and_get(store: &dyn VectorStore, dims: usize) {
    load_fixture(store, dims).await;
    let replacement = Document::new("document 4, revised")
        .with_id("c-4")
        .with_metadata(CASE_KEY, "ranked")
        .with_metadata("revised", true);
    let report = store
        .upsert(vec![EmbeddedDocument::new(
            replacement,
            at_angle(dims, 1.5),
        )])
        .await
        .expect("conformance: upsert failed");
    assert_eq!(
        (report.inserted, report.updated, report.unchanged),
        (0, 1, 0),
        "conformance: replacing a document counts as an update"
    );
    let again = store
        .upsert(fixture(dims).into_iter().skip(5).collect())
        .await
        .expect("conformance: upsert failed");
    assert_eq!(
        (again.inserted, again.updated, again.unchanged),
        (0, 0, 5),
        "conformance: upserting identical documents changes nothing"
    );
    let all = store
        .search(SearchRequest::new(axis(dims), 100))
        .await
        .expect("conformance: search failed");
    assert_eq!(
        all.len(),
        10,
        "conformance: upsert by id must replace, not duplicate"
    );
    assert_eq!(
        ids_of(&all).last().map(String::as_str),
        Some("c-4"),
        "conformance: the replaced vector must be used"
    );
    let got = store
        .get(&["c-4".into(), "missing".into(), "c-1".into()])
        .await
        .expect("conformance: get failed");
    assert_eq!(got.len(), 2, "conformance: get skips unknown ids");
    assert_eq!(
        got[0].id,
        Some("c-4".into()),
        "conformance: get keeps the asked order"
    );
    assert_eq!(got[0].content, "document 4, revised");
    assert_eq!(got[0].metadata.get("revised"), Some(&json!(true)));
    assert!(
        !got[0].metadata.contains_key("parity"),
        "conformance: upsert replaces metadata entirely"
    );
    assert_eq!(got[1].id, Some("c-1".into()));
    cleanup(store).await;
}

async fn assigned_ids(store: &dyn VectorStore, dims: usize) {
    let docs = || -> Vec<EmbeddedDocument> {
        (0..3)
            .map(|i| {
                EmbeddedDocument::new(
                    Document::new(format!("anonymous {i}"))
                        .with_metadata(CASE_KEY, "anon")
                        .with_metadata("source", "conformance.txt"),
                    at_angle(dims, 0.2 * i as f32),
                )
            })
            .collect()
    };
    let report = store
        .upsert(docs())
        .await
        .expect("conformance: upsert failed");
    let ids = report.ids.clone();
    let want: Vec<DocumentId> = (0..3)
        .map(|i| DocumentId::derived(&format!("anonymous {i}"), Some("conformance.txt")))
        .collect();
    assert_eq!(
        ids, want,
        "conformance: documents without ids get their derived ids"
    );
    let got = store.get(&ids).await.expect("conformance: get failed");
    let contents: Vec<_> = got.iter().map(|d| d.content.as_str()).collect();
    assert_eq!(contents, ["anonymous 0", "anonymous 1", "anonymous 2"]);
    assert_eq!(
        got[0].id.as_ref(),
        Some(&ids[0]),
        "conformance: get returns ids"
    );
    // Re-ingesting the same documents changes nothing and duplicates nothing.
    let again = store
        .upsert(docs())
        .await
        .expect("conformance: upsert failed");
    assert_eq!(again.ids, ids);
    assert_eq!((again.inserted, again.updated, again.unchanged), (0, 0, 3));
    let n = store
        .count(Some(&Filter::eq(CASE_KEY, "anon")))
        .await
        .expect("conformance: count failed");
    assert_eq!(n, 3, "conformance: re-ingesting must not duplicate");
    cleanup(store).await;
}

async fn counts(store: &dyn VectorStore, dims: usize) {
    load_fixture(store, dims).await;
    let all = store.count(None).await.expect("conformance: count failed");
    assert_eq!(all, 10, "conformance: count(None) counts everything");
    let odd = store
        .count(Some(&Filter::eq("parity", "odd")))
        .await
        .expect("conformance: count failed");
    assert_eq!(odd, 5, "conformance: count with a filter");
    assert!(
        matches!(
            store.count(Some(&Filter::eq("bad key!", 1))).await,
            Err(Error::InvalidInput(_))
        ),
        "conformance: count with a malformed filter must be InvalidInput"
    );
    cleanup(store).await;
}

async fn vectors_and_mmr(store: &dyn VectorStore, dims: usize) {
    let doc = |id: &str, angle: f32| {
        EmbeddedDocument::new(
            Document::new(format!("mmr {id}"))
                .with_id(id)
                .with_metadata(CASE_KEY, "mmr"),
            at_angle(dims, angle),
        )
    };
    store
        .upsert(vec![
            doc("mmr-0", 0.0),
            doc("mmr-1", 0.01),
            doc("mmr-2", 0.02),
            doc("mmr-far", 0.6),
        ])
        .await
        .expect("conformance: upsert failed");
    let hits = store
        .search(SearchRequest::new(axis(dims), 2).with_vectors(true))
        .await
        .expect("conformance: search failed");
    let v = hits[0]
        .embedding
        .as_ref()
        .expect("conformance: include_vectors must return vectors");
    assert_eq!(v.len(), dims);
    assert!(
        (v[0] - 1.0).abs() < 1e-4 && v[1].abs() < 1e-4,
        "conformance: the stored vector"
    );

    let relevant = store
        .search_mmr(MmrRequest::new(axis(dims), 2).with_lambda(1.0))
        .await
        .expect("conformance: mmr failed");
    assert_eq!(
        ids_of(&relevant),
        ["mmr-0", "mmr-1"],
        "conformance: MMR with λ = 1 ranks by relevance"
    );
    let diverse = store
        .search_mmr(
            MmrRequest::new(axis(dims), 2)
                .with_lambda(0.3)
                .with_fetch_k(4),
        )
        .await
        .expect("conformance: mmr failed");
    assert_eq!(
        ids_of(&diverse),
        ["mmr-0", "mmr-far"],
        "conformance: MMR with λ = 0.3 diversifies"
    );
    assert!(
        matches!(
            store
                .search_mmr(MmrRequest::new(axis(dims), 3).with_fetch_k(2))
                .await,
            Err(Error::InvalidInput(_))
        ),
        "conformance: fetch_k below k must be InvalidInput"
    );
    cleanup(store).await;
}

async fn deletes(store: &dyn VectorStore, dims: usize) {
    load_fixture(store, dims).await;
    let n = store
        .delete(&["c-0".into(), "c-1".into(), "never-existed".into()])
        .await
        .expect("conformance: delete failed");
    assert_eq!(n, 2, "conformance: delete counts the ids that existed");
    assert!(store
        .get(&["c-0".into()])
        .await
        .expect("conformance: get failed")
        .is_empty());
    let n = store
        .delete_by_filter(&Filter::eq("parity", "odd"))
        .await
        .expect("conformance: delete_by_filter failed");
    assert_eq!(
        n, 4,
        "conformance: delete_by_filter counts what it removed (c-3,5,7,9)"
    );
    let left = store
        .search(SearchRequest::new(axis(dims), 100))
        .await
        .expect("conformance: search failed");
    assert_eq!(ids_of(&left), ["c-2", "c-4", "c-6", "c-8"]);
    cleanup(store).await;
}

async fn bad_input_writes_nothing(store: &dyn VectorStore, dims: usize) {
    let good = EmbeddedDocument::new(
        Document::new("good")
            .with_id("bad-batch-good")
            .with_metadata(CASE_KEY, "bad"),
        axis(dims),
    );
    let wrong_len = EmbeddedDocument::new(
        Document::new("wrong")
            .with_id("bad-batch-len")
            .with_metadata(CASE_KEY, "bad"),
        vec![0.5; dims + 3],
    );
    let err = store.upsert(vec![good.clone(), wrong_len]).await;
    assert!(
        matches!(err, Err(Error::InvalidInput(_))),
        "conformance: a vector of the wrong dimension must be InvalidInput, got {err:?}"
    );
    let mut nan = axis(dims);
    nan[1] = f32::NAN;
    let nan_doc = EmbeddedDocument::new(
        Document::new("nan")
            .with_id("bad-batch-nan")
            .with_metadata(CASE_KEY, "bad"),
        nan,
    );
    let err = store.upsert(vec![good, nan_doc]).await;
    assert!(
        matches!(err, Err(Error::InvalidInput(_))),
        "conformance: a non-finite vector must be InvalidInput, got {err:?}"
    );
    let got = store
        .get(&["bad-batch-good".into()])
        .await
        .expect("conformance: get failed");
    assert!(
        got.is_empty(),
        "conformance: a rejected batch must write nothing"
    );
    let err = store
        .search(SearchRequest::new(axis(dims), 3).with_filter(Filter::eq("", 1)))
        .await;
    assert!(
        matches!(err, Err(Error::InvalidInput(_))),
        "conformance: a malformed filter must be InvalidInput"
    );
}

async fn selective_filter(store: &dyn VectorStore, dims: usize) {
    let docs: Vec<_> = (0..1000)
        .map(|i| {
            let doc = Document::new(format!("bulk {i}"))
                .with_id(format!("bulk-{i}"))
                .with_metadata(CASE_KEY, "bulk")
                .with_metadata("rare", i % 100 == 7);
            EmbeddedDocument::new(doc, at_angle(dims, (i as f32) * 0.0015))
        })
        .collect();
    let report = store
        .upsert(docs)
        .await
        .expect("conformance: bulk upsert failed");
    assert_eq!(report.inserted, 1000, "conformance: bulk insert count");
    let hits = store
        .search(SearchRequest::new(axis(dims), 5).with_filter(Filter::eq("rare", true)))
        .await
        .expect("conformance: selective search failed");
    assert_eq!(
        ids_of(&hits),
        ["bulk-7", "bulk-107", "bulk-207", "bulk-307", "bulk-407"],
        "conformance: a 1% filter must still return a full, correctly ranked k"
    );
    cleanup(store).await;
}

async fn concurrent_upserts(store: &dyn VectorStore, dims: usize) {
    let tasks = (0..8).map(|t| {
        let docs: Vec<_> = (0..25)
            .map(|i| {
                EmbeddedDocument::new(
                    Document::new(format!("task {t} doc {i}"))
                        .with_id(format!("conc-{t}-{i}"))
                        .with_metadata(CASE_KEY, "concurrent"),
                    at_angle(dims, (t * 25 + i) as f32 * 0.005),
                )
            })
            .collect();
        store.upsert(docs)
    });
    for r in futures::future::join_all(tasks).await {
        r.expect("conformance: concurrent upsert failed");
    }
    let ids: Vec<DocumentId> = (0..8)
        .flat_map(|t| (0..25).map(move |i| DocumentId::from(format!("conc-{t}-{i}"))))
        .collect();
    let got = store.get(&ids).await.expect("conformance: get failed");
    assert_eq!(
        got.len(),
        200,
        "conformance: every concurrent upsert must land"
    );
    cleanup(store).await;
}

async fn round_trip(store: &dyn VectorStore, dims: usize) {
    let content = "Ünïcödé ✓ — 東京 🚀\nline two\t\"quoted\" \\ backslash";
    let metadata = meta(json!({
        CASE_KEY: "roundtrip",
        "nested": {"a": [1, 2, {"b": null}], "s": "x'y\"z"},
        "big": 9_007_199_254_740_991i64,
        "float": 0.1,
    }));
    let doc = Document::new(content)
        .with_id("rt-1")
        .with_metadata_map(metadata.clone());
    store
        .upsert(vec![EmbeddedDocument::new(doc, axis(dims))])
        .await
        .expect("conformance: upsert failed");
    let got = store
        .get(&["rt-1".into()])
        .await
        .expect("conformance: get failed");
    assert_eq!(got.len(), 1);
    assert_eq!(
        got[0].content, content,
        "conformance: content must round-trip"
    );
    assert_eq!(
        got[0].metadata, metadata,
        "conformance: metadata must round-trip"
    );
    cleanup(store).await;
}
