//! LangChain's `index()` scenarios against any record manager: run by the in-memory record
//! manager's tests here (`tests/indexing.rs`) and by the PostgreSQL record manager's tests in
//! catena-vectorstores (`vectorstores/tests/postgres.rs`, which includes this file).

#![allow(dead_code)]

use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use catena_chains::{content_key, index, Cleanup, IndexOptions};
use catena_core::test_utils::DeterministicEmbedder;
use catena_core::{Document, Embedder, Embedding, Error, RecordManager, Result, VectorStore};
use catena_vectorstores::InMemoryVectorStore;

/// Counts the texts it embeds.
#[derive(Debug)]
pub(crate) struct CountingEmbedder {
    inner: DeterministicEmbedder,
    texts: AtomicUsize,
}

impl CountingEmbedder {
    /// A counting 16-dimensional deterministic embedder.
    pub(crate) fn new() -> Self {
        CountingEmbedder {
            inner: DeterministicEmbedder::new(16),
            texts: AtomicUsize::new(0),
        }
    }
    /// How many texts it embedded.
    pub(crate) fn count(&self) -> usize {
        self.texts.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl Embedder for CountingEmbedder {
    async fn embed_documents(&self, texts: &[String]) -> Result<Vec<Embedding>> {
        self.texts.fetch_add(texts.len(), Ordering::SeqCst);
        self.inner.embed_documents(texts).await
    }
    fn dimensions(&self) -> usize {
        self.inner.dimensions()
    }
}

fn doc(text: &str, source: &str) -> Document {
    Document::new(text).with_metadata("source", source)
}

async fn stored(store: &InMemoryVectorStore, docs: &[Document]) -> Vec<bool> {
    let mut out = Vec::new();
    for d in docs {
        let id = content_key(d, "source");
        out.push(!store.get(&[id]).await.unwrap().is_empty());
    }
    out
}

/// LangChain's `index()` behaviour, against any record manager.
pub(crate) async fn scenarios(records: &dyn RecordManager) {
    let store = InMemoryVectorStore::new();
    let embedder = CountingEmbedder::new();
    let incremental = IndexOptions::new()
        .cleanup(Cleanup::Incremental)
        .namespace("scenarios")
        .batch_size(2);
    let a1 = doc("Rust has no garbage collector.", "a.md");
    let a2 = doc("Ownership decides when memory is freed.", "a.md");
    let b1 = doc("Cargo builds Rust projects.", "b.md");

    // First ingest: everything is new.
    let docs = vec![a1.clone(), a2.clone(), b1.clone()];
    let r = index(docs.clone(), records, &store, &embedder, &incremental)
        .await
        .unwrap();
    assert_eq!((r.added, r.updated, r.skipped, r.deleted), (3, 0, 0, 0));
    assert_eq!(embedder.count(), 3);
    assert_eq!(store.count(None).await.unwrap(), 3);
    let hit = store.get(&[content_key(&a1, "source")]).await.unwrap();
    assert_eq!(hit[0].content, a1.content);
    assert_eq!(hit[0].metadata["source"], "a.md");

    // Unchanged re-run: nothing written, nothing embedded.
    let r = index(docs.clone(), records, &store, &embedder, &incremental)
        .await
        .unwrap();
    assert_eq!((r.added, r.updated, r.skipped, r.deleted), (0, 0, 3, 0));
    assert_eq!(embedder.count(), 3, "the embedder is not called again");
    assert_eq!(store.count(None).await.unwrap(), 3);

    // A changed chunk of a.md replaces the old one; b.md is not in this run and stays.
    let a2_new = doc(
        "Ownership and borrowing decide when memory is freed.",
        "a.md",
    );
    let r = index(
        vec![a1.clone(), a2_new.clone()],
        records,
        &store,
        &embedder,
        &incremental,
    )
    .await
    .unwrap();
    assert_eq!((r.added, r.updated, r.skipped, r.deleted), (1, 0, 1, 1));
    assert_eq!(embedder.count(), 4);
    assert_eq!(
        stored(
            &store,
            &[a1.clone(), a2.clone(), a2_new.clone(), b1.clone()]
        )
        .await,
        [true, false, true, true]
    );

    // Cleanup none: a new version of b.md is added, the old one kept.
    let b1_new = doc("Cargo builds and tests Rust projects.", "b.md");
    let none = incremental.clone().cleanup(Cleanup::None);
    let r = index(vec![b1_new.clone()], records, &store, &embedder, &none)
        .await
        .unwrap();
    assert_eq!((r.added, r.skipped, r.deleted), (1, 0, 0));
    assert_eq!(
        stored(&store, &[b1.clone(), b1_new.clone()]).await,
        [true, true]
    );

    // Duplicates in the input are skipped; force_update rewrites and counts updates.
    let forced = incremental.clone().force_update(true);
    let r = index(
        vec![a1.clone(), a1.clone(), a2_new.clone()],
        records,
        &store,
        &embedder,
        &forced,
    )
    .await
    .unwrap();
    assert_eq!((r.added, r.updated, r.skipped, r.deleted), (0, 2, 1, 0));

    // Incremental cleanup needs a source on every document; nothing is written then.
    let before = store.count(None).await.unwrap();
    let err = index(
        vec![Document::new("no source")],
        records,
        &store,
        &embedder,
        &incremental,
    )
    .await
    .unwrap_err();
    assert!(matches!(err, Error::InvalidInput(_)), "{err:?}");
    assert_eq!(store.count(None).await.unwrap(), before);

    // Full cleanup: b.md vanished from the input, so both its versions go.
    let full = incremental.clone().cleanup(Cleanup::Full);
    let r = index(
        vec![a1.clone(), a2_new.clone()],
        records,
        &store,
        &embedder,
        &full,
    )
    .await
    .unwrap();
    assert_eq!((r.added, r.skipped, r.deleted), (0, 2, 2));
    assert_eq!(
        stored(&store, &[b1.clone(), b1_new.clone()]).await,
        [false, false]
    );
    assert_eq!(store.count(None).await.unwrap(), 2);
    let mut keys = records.list_keys("scenarios", None).await.unwrap();
    keys.sort();
    let mut want = vec![
        content_key(&a1, "source").into_inner(),
        content_key(&a2_new, "source").into_inner(),
    ];
    want.sort();
    assert_eq!(keys, want);

    // Full cleanup allows documents without a source, and an empty run empties the namespace.
    let r = index(
        vec![Document::new("loose")],
        records,
        &store,
        &embedder,
        &full,
    )
    .await
    .unwrap();
    assert_eq!((r.added, r.deleted), (1, 2));
    let r = index(Vec::new(), records, &store, &embedder, &full)
        .await
        .unwrap();
    assert_eq!(r.deleted, 1);
    assert_eq!(store.count(None).await.unwrap(), 0);
    assert!(records
        .list_keys("scenarios", None)
        .await
        .unwrap()
        .is_empty());

    // Namespaces are separate.
    let other = IndexOptions::new().namespace("other");
    index(vec![a1.clone()], records, &store, &embedder, &other)
        .await
        .unwrap();
    assert!(records
        .list_keys("scenarios", None)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(records.list_keys("other", None).await.unwrap().len(), 1);
    assert_eq!(
        records
            .delete_keys("other", &[content_key(&a1, "source").into_inner()])
            .await
            .unwrap(),
        1
    );
}
