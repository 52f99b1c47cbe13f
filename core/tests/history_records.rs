//! The in-memory chat history and record manager pass the conformance suites that the
//! PostgreSQL and Redis implementations run too, and the suites catch broken components.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use async_trait::async_trait;
use catena_core::test_utils::{chat_history_conformance, record_manager_conformance};
use catena_core::{
    ChatHistory, InMemoryChatHistory, InMemoryRecordManager, Message, Record, RecordManager,
    Result, SessionId,
};
use futures::FutureExt;

#[tokio::test]
async fn in_memory_history_passes_the_shared_check() {
    chat_history_conformance(&InMemoryChatHistory::new()).await;
    // Through a trait object in an `Arc`, as programs hold it.
    let shared: Arc<dyn ChatHistory> = Arc::new(InMemoryChatHistory::new());
    chat_history_conformance(&shared).await;
}

#[tokio::test]
async fn in_memory_record_manager_contract() {
    let records = InMemoryRecordManager::new();
    record_manager_conformance(&records).await;
    records
        .update("t", &[Record::new("k", None)])
        .await
        .unwrap();
    assert!(records.updated_at("t", "k").is_some());
    let shared: Arc<dyn RecordManager> = Arc::new(InMemoryRecordManager::new());
    record_manager_conformance(&shared).await;
}

/// A history that returns a session's messages newest first: the suite must notice.
#[derive(Default)]
struct Reversed(InMemoryChatHistory);

#[async_trait]
impl ChatHistory for Reversed {
    async fn messages(&self, session: &SessionId) -> Result<Vec<Message>> {
        let mut m = self.0.messages(session).await?;
        m.reverse();
        Ok(m)
    }
    async fn append(&self, session: &SessionId, messages: &[Message]) -> Result<()> {
        self.0.append(session, messages).await
    }
    async fn clear(&self, session: &SessionId) -> Result<()> {
        self.0.clear(session).await
    }
}

#[tokio::test]
async fn history_suite_catches_lost_order() {
    let outcome = AssertUnwindSafe(chat_history_conformance(&Reversed::default()))
        .catch_unwind()
        .await;
    assert!(outcome.is_err(), "a reordering history must fail the suite");
}

/// A record manager that never forgets: deletes report success but keep the records.
#[derive(Default)]
struct Sticky(InMemoryRecordManager);

#[async_trait]
impl RecordManager for Sticky {
    async fn exists(&self, namespace: &str, keys: &[String]) -> Result<Vec<bool>> {
        self.0.exists(namespace, keys).await
    }
    async fn update(&self, namespace: &str, records: &[Record]) -> Result<()> {
        self.0.update(namespace, records).await
    }
    async fn list_keys(&self, namespace: &str, groups: Option<&[String]>) -> Result<Vec<String>> {
        self.0.list_keys(namespace, groups).await
    }
    async fn delete_keys(&self, _namespace: &str, keys: &[String]) -> Result<usize> {
        Ok(keys.len())
    }
}

#[tokio::test]
async fn record_suite_catches_a_wrong_delete_count() {
    let outcome = AssertUnwindSafe(record_manager_conformance(&Sticky::default()))
        .catch_unwind()
        .await;
    let msg = outcome
        .err()
        .and_then(|p| p.downcast_ref::<String>().cloned())
        .expect("the suite must fail");
    assert!(msg.contains("delete_keys"), "{msg}");
}
