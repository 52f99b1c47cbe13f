//! A retriever over the context documents of one task.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use catena_agents::grpc::{AnswerSource, TaskContext};
use catena_core::{
    Document, EmbeddedDocument, Embedder, Error, Result, Retriever, VectorStore,
    VectorStoreRetriever,
};
use catena_vectorstores::InMemoryVectorStore;
use tokio::sync::OnceCell;

/// Searches the documents the caller sent with the task. They are embedded into an
/// in-memory vector store on the first search (a task that never searches costs no
/// embedding), and every document a search returns is recorded as a source of the answer.
pub(crate) struct ContextRetriever {
    ctx: Arc<TaskContext>,
    embedder: Arc<dyn Embedder>,
    k: usize,
    index: OnceCell<Arc<InMemoryVectorStore>>,
    /// The context documents already recorded as sources, by position.
    recorded: Mutex<BTreeSet<usize>>,
}

impl ContextRetriever {
    pub(crate) fn new(ctx: Arc<TaskContext>, embedder: Arc<dyn Embedder>, k: usize) -> Self {
        ContextRetriever {
            ctx,
            embedder,
            k,
            index: OnceCell::new(),
            recorded: Mutex::new(BTreeSet::new()),
        }
    }

    /// Embeds the context documents; each is stored under its position as id.
    async fn build_index(&self) -> Result<Arc<InMemoryVectorStore>> {
        let docs = self.ctx.documents();
        let texts: Vec<String> = docs.iter().map(|d| d.document.content.clone()).collect();
        let vectors = self.embedder.embed_documents(&texts).await?;
        let store = InMemoryVectorStore::new();
        let batch = vectors
            .into_iter()
            .enumerate()
            .map(|(i, v)| {
                EmbeddedDocument::new(Document::new(texts[i].clone()).with_id(i.to_string()), v)
            })
            .collect();
        store.upsert(batch).await?;
        tracing::debug!(documents = docs.len(), "indexed the context documents");
        Ok(Arc::new(store))
    }
}

#[async_trait]
impl Retriever for ContextRetriever {
    async fn retrieve(&self, query: &str) -> Result<Vec<Document>> {
        let docs = self.ctx.documents();
        if docs.is_empty() {
            return Ok(Vec::new());
        }
        let store = self.index.get_or_try_init(|| self.build_index()).await?;
        let hits = VectorStoreRetriever::new(self.embedder.clone(), store.clone())
            .with_k(self.k)
            .retrieve_scored(query)
            .await?;
        let mut out = Vec::with_capacity(hits.len());
        for hit in hits {
            let position = hit
                .document
                .id
                .as_ref()
                .and_then(|id| id.as_str().parse::<usize>().ok())
                .filter(|&i| i < docs.len())
                .ok_or_else(|| Error::other("the context index returned an unknown document"))?;
            let sent = &docs[position];
            let first_time = self
                .recorded
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(position);
            if first_time {
                self.ctx.record_source(AnswerSource::from_document(sent));
            }
            // The document as the caller sent it (its `source` metadata included).
            out.push(sent.document.clone());
        }
        Ok(out)
    }
}
