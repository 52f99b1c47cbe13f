//! The HNSW graph's memory, measured as the growth of this process's resident set while the
//! graph of 5,000 × 384 vectors is built (Linux: `/proc/self/status`). A test binary of its
//! own, with one test, so no other test allocates meanwhile.
#![cfg(target_os = "linux")]
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use catena_core::{Document, EmbeddedDocument, SearchRequest, VectorStore};
use catena_vectorstores::{DistanceMetric, HnswConfig, InMemoryVectorStore};

/// This process's resident set, in bytes.
fn resident() -> usize {
    catena_core::test_utils::resident_bytes().expect("/proc/self/status")
}

#[tokio::test(flavor = "current_thread")]
async fn the_graph_takes_a_fraction_of_the_vectors_memory() {
    const N: usize = 5_000;
    const D: usize = 384;
    let mut x = 0x2545_F491_4F6C_DD1Du64;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        (x >> 40) as f32 / (1u64 << 24) as f32 - 0.5
    };
    let centres: Vec<Vec<f32>> = (0..50).map(|_| (0..D).map(|_| next()).collect()).collect();
    let docs: Vec<EmbeddedDocument> = (0..N)
        .map(|i| {
            let v = centres[i % 50].iter().map(|c| c + 0.2 * next()).collect();
            EmbeddedDocument::new(
                Document::new(format!("doc {i}")).with_id(format!("d{i}")),
                v,
            )
        })
        .collect();
    let store = InMemoryVectorStore::builder()
        .metric(DistanceMetric::Cosine)
        .hnsw(HnswConfig::new().min_rows(1))
        .build()
        .unwrap();
    store.upsert(docs).await.unwrap();
    let vectors = N * D * 4;
    let before = resident();
    assert!(store.prepare_index());
    let grown = resident().saturating_sub(before);
    println!(
        "the graph of {N} × {D}: {:.1} MB resident, beside {:.1} MB of vectors",
        grown as f64 / 1e6,
        vectors as f64 / 1e6
    );
    // int8 codes (a quarter of the vectors) and 33 links of 4 bytes per point: 2.6 MB. A
    // graph holding full-precision copies of the vectors needs more than they take.
    assert!(
        grown < vectors / 2,
        "the graph grew the process by {grown} bytes, the vectors take {vectors}"
    );
    let hits = store
        .search(SearchRequest::new(centres[7].clone(), 5))
        .await
        .unwrap();
    assert_eq!(hits.len(), 5);
    assert!(hits.iter().all(|h| {
        let id = h.document.id.as_ref().unwrap().as_str();
        id[1..].parse::<usize>().unwrap() % 50 == 7
    }));
}
