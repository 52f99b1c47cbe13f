//! The memory of a store's vectors in f32 and in f16, measured as the growth of this
//! process's resident set while 20,000 × 384 vectors are written (Linux: `/proc/self/status`).
//! A test binary of its own, with one test, so no other test allocates meanwhile.
#![cfg(target_os = "linux")]
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use catena_core::{Document, EmbeddedDocument, SearchRequest, VectorStore};
use catena_vectorstores::{InMemoryVectorStore, VectorPrecision};

const N: usize = 20_000;
const D: usize = 384;

fn resident() -> usize {
    catena_core::test_utils::resident_bytes().expect("/proc/self/status")
}

/// The resident growth of writing the vectors into a store of `precision`, and the store.
async fn grown(precision: VectorPrecision) -> (usize, InMemoryVectorStore) {
    let mut x = 0x2545_F491_4F6C_DD1Du64;
    let docs: Vec<EmbeddedDocument> = (0..N)
        .map(|i| {
            let v = (0..D)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    (x >> 40) as f32 / (1u64 << 24) as f32 - 0.5
                })
                .collect();
            EmbeddedDocument::new(Document::new("").with_id(format!("d{i}")), v)
        })
        .collect();
    let store = InMemoryVectorStore::builder()
        .precision(precision)
        .build()
        .unwrap();
    let before = resident();
    store.upsert(docs).await.unwrap();
    (resident().saturating_sub(before), store)
}

#[tokio::test(flavor = "current_thread")]
async fn f16_vectors_take_half_the_memory_of_f32_ones() {
    let (f32_grown, store) = grown(VectorPrecision::F32).await;
    drop(store);
    let (f16_grown, store) = grown(VectorPrecision::F16).await;
    let vectors = N * D * 4;
    println!(
        "{N} × {D}: f32 {:.1} MB, f16 {:.1} MB resident ({:.1} MB of f32 values)",
        f32_grown as f64 / 1e6,
        f16_grown as f64 / 1e6,
        vectors as f64 / 1e6
    );
    // The entries, ids and index take the same either way; the vectors' half is saved.
    assert!(f32_grown > vectors, "f32 grew {f32_grown}");
    assert!(
        f32_grown.saturating_sub(f16_grown) > vectors * 4 / 10,
        "f16 grew {f16_grown} bytes, f32 {f32_grown}"
    );
    let hits = store
        .search(SearchRequest::new(vec![0.1; D], 3))
        .await
        .unwrap();
    assert_eq!(hits.len(), 3);
}
