//! Incremental indexing over the in-memory record manager and vector store. The scenarios
//! (`support/indexing.rs`) are shared with the PostgreSQL record manager's tests in
//! catena-vectorstores; the record manager contract itself is core's
//! `record_manager_conformance`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use catena_chains::{index, IndexOptions};
use catena_core::test_utils::DeterministicEmbedder;
use catena_core::{Document, Error, InMemoryRecordManager};
use catena_vectorstores::InMemoryVectorStore;
use support::indexing::scenarios;

fn doc(text: &str, source: &str) -> Document {
    Document::new(text).with_metadata("source", source)
}

#[tokio::test]
async fn in_memory_scenarios() {
    scenarios(&InMemoryRecordManager::new()).await;
}

#[tokio::test]
async fn zero_batch_size_is_rejected() {
    let err = index(
        vec![doc("x", "s")],
        &InMemoryRecordManager::new(),
        &InMemoryVectorStore::new(),
        &DeterministicEmbedder::new(4),
        &IndexOptions::new().batch_size(0),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, Error::InvalidInput(_)));
}
