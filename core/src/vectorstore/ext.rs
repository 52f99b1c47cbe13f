//! [`VectorStoreExt`]: the short paths over any [`VectorStore`] — embed and index documents
//! in one call, and a retriever over the store and an embedder.

use std::sync::Arc;

use async_trait::async_trait;

use super::{EmbeddedDocument, UpsertReport, VectorStore};
use crate::document::Document;
use crate::embed::Embedder;
use crate::error::{Error, Result};
use crate::retriever::VectorStoreRetriever;

/// How many documents [`VectorStoreExt::add_documents`] embeds per embedder call.
pub const DEFAULT_EMBED_BATCH: usize = 64;

/// Short paths over any [`VectorStore`], implemented for every store (including
/// `Arc<dyn VectorStore>`).
///
/// ```
/// use std::sync::Arc;
/// use catena_core::prelude::*;
/// use catena_core::{Document, VectorStoreExt};
///
/// async fn answer_sources(
///     store: Arc<dyn VectorStore>,
///     embedder: Arc<dyn Embedder>,
///     documents: Vec<Document>,
/// ) -> catena_core::Result<Vec<Document>> {
///     let report = store.add_documents(embedder.as_ref(), documents).await?;
///     println!("{} new, {} unchanged", report.inserted, report.unchanged);
///     store.as_retriever(embedder).with_k(3).retrieve("What is borrowing?").await
/// }
/// ```
///
/// `InMemoryVectorStore` (in `catena-vectorstores`) shows the same calls running.
#[async_trait]
pub trait VectorStoreExt: VectorStore {
    /// Embeds `documents` with `embedder`, [`DEFAULT_EMBED_BATCH`] at a time, and upserts
    /// each batch as it is embedded; returns one report for all of them (ids in input
    /// order). LangChain's `add_documents`.
    ///
    /// # Errors
    /// The embedder's and the store's errors, as they were. Batches stored before the
    /// failing one stay stored (a warning says how many): upserts are idempotent, so calling
    /// again with the same documents finishes the job without duplicates.
    async fn add_documents(
        &self,
        embedder: &dyn Embedder,
        documents: Vec<Document>,
    ) -> Result<UpsertReport> {
        self.add_documents_in_batches(embedder, documents, DEFAULT_EMBED_BATCH)
            .await
    }

    /// As [`add_documents`](Self::add_documents), `batch_size` documents per embedder call.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] for a zero `batch_size`; otherwise as
    /// [`add_documents`](Self::add_documents).
    async fn add_documents_in_batches(
        &self,
        embedder: &dyn Embedder,
        documents: Vec<Document>,
        batch_size: usize,
    ) -> Result<UpsertReport> {
        if batch_size == 0 {
            return Err(Error::invalid_config("batch_size must be at least 1"));
        }
        let mut total = UpsertReport::default();
        let mut rest = documents.into_iter().peekable();
        while rest.peek().is_some() {
            let batch: Vec<Document> = rest.by_ref().take(batch_size).collect();
            let texts: Vec<String> = batch.iter().map(|d| d.content.clone()).collect();
            let stored = total.ids.len();
            let vectors = embedder
                .embed_documents(&texts)
                .await
                .inspect_err(|_| warn_partial(stored))?;
            if vectors.len() != batch.len() {
                return Err(Error::invalid_input(format!(
                    "the embedder returned {} vectors for {} texts ({stored} documents stored \
                     before this batch)",
                    vectors.len(),
                    batch.len()
                )));
            }
            let embedded = batch
                .into_iter()
                .zip(vectors)
                .map(|(d, v)| EmbeddedDocument::new(d, v))
                .collect();
            let report = self
                .upsert(embedded)
                .await
                .inspect_err(|_| warn_partial(stored))?;
            total.ids.extend(report.ids);
            total.inserted += report.inserted;
            total.updated += report.updated;
            total.unchanged += report.unchanged;
            total.failed.extend(report.failed);
        }
        Ok(total)
    }

    /// A retriever that embeds each query with `embedder` and searches this store; set `k`,
    /// a filter, a score threshold or MMR on it. LangChain's `as_retriever`.
    fn as_retriever(&self, embedder: Arc<dyn Embedder>) -> VectorStoreRetriever
    where
        Self: Clone + Sized + 'static,
    {
        VectorStoreRetriever::new(embedder, Arc::new(self.clone()))
    }
}

impl<S: VectorStore + ?Sized> VectorStoreExt for S {}

/// Says how many documents earlier batches stored before one failed.
fn warn_partial(stored: usize) {
    if stored > 0 {
        tracing::warn!(
            stored,
            "add_documents failed after storing {stored} documents; calling it again with \
             the same documents finishes the job"
        );
    }
}
