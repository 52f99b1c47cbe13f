//! Helpers shared by the cache tests (`cache.rs`, and `cache_observe.rs`, which runs alone in
//! its process).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use catena_core::test_utils::ScriptedChatModel;
use catena_core::{
    CacheStore, ChatRequest, Embedder, Embedding, Error, InMemoryCacheStore, Message, Result,
    SemanticCacheStore, SemanticEntry, SemanticHit,
};

/// A terse system prompt and `question`.
pub(crate) fn ask(question: &str) -> ChatRequest {
    ChatRequest::new(vec![
        Message::system("You are terse."),
        Message::user(question),
    ])
}

/// An echo model behind an `Arc`, so the test can count the requests it received.
pub(crate) fn echo() -> Arc<ScriptedChatModel> {
    Arc::new(ScriptedChatModel::echo().with_chunk_chars(3))
}

/// An in-memory exact cache store of 1,000 entries.
pub(crate) fn exact_store() -> Arc<dyn CacheStore> {
    Arc::new(InMemoryCacheStore::new(1_000))
}

/// An embedder with the vectors the test chooses, counting calls.
#[derive(Debug, Default)]
pub(crate) struct TableEmbedder {
    table: HashMap<String, Embedding>,
    calls: Mutex<Vec<Vec<String>>>,
}

impl TableEmbedder {
    /// Answers `vector` for `text`.
    pub(crate) fn with(mut self, text: &str, vector: Vec<f32>) -> Self {
        self.table.insert(text.to_owned(), vector);
        self
    }
}

#[async_trait]
impl Embedder for TableEmbedder {
    async fn embed_documents(&self, texts: &[String]) -> Result<Vec<Embedding>> {
        self.calls.lock().unwrap().push(texts.to_vec());
        texts
            .iter()
            .map(|t| {
                self.table
                    .get(t)
                    .cloned()
                    .ok_or_else(|| Error::invalid_input(format!("no vector for {t:?}")))
            })
            .collect()
    }

    fn dimensions(&self) -> usize {
        3
    }
}

/// Two paraphrases of one question, a near question and a far one.
pub(crate) fn paraphrase_table() -> Arc<TableEmbedder> {
    Arc::new(
        TableEmbedder::default()
            .with("What is the capital of France?", vec![1.0, 0.0, 0.0])
            // cosine 0.98 with the question above
            .with("Tell me France's capital city", vec![0.98, 0.199, 0.0])
            // cosine 0.6
            .with("What is the capital of Spain?", vec![0.6, 0.8, 0.0])
            .with("How do I bake bread?", vec![0.0, 0.0, 1.0]),
    )
}

/// Owned copies of `texts`.
pub(crate) fn strings(texts: &[&str]) -> Vec<String> {
    texts.iter().map(|s| (*s).to_owned()).collect()
}

/// A store whose every operation fails, as an unreachable Redis would.
#[derive(Debug)]
pub(crate) struct BrokenStore;

fn broken() -> Error {
    Error::other("the cache store is down")
}

#[async_trait]
impl CacheStore for BrokenStore {
    async fn get(&self, _: &str, _: &str) -> Result<Option<Vec<u8>>> {
        Err(broken())
    }
    async fn put(&self, _: &str, _: &str, _: Vec<u8>, _: Option<Duration>) -> Result<()> {
        Err(broken())
    }
}

#[async_trait]
impl SemanticCacheStore for BrokenStore {
    async fn nearest(&self, _: &str, _: &str, _: &[f32], _: f32) -> Result<Option<SemanticHit>> {
        Err(broken())
    }
    async fn insert(&self, _: &str, _: SemanticEntry, _: Option<Duration>) -> Result<()> {
        Err(broken())
    }
}
