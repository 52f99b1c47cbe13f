//! Incremental indexing (LangChain's `index()` with a record manager): load documents into
//! a vector store so that re-running an ingest only writes what changed.
//!
//! The details and an example are on [`index`].

use std::collections::HashSet;

use catena_core::{
    Document, DocumentId, EmbeddedDocument, Embedder, Error, Record, RecordManager, Result,
    VectorStore,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A document to index: its key, its source and the document.
type Pending = (String, Option<String>, Document);

/// What [`index`] deletes after writing; see [`index`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Cleanup {
    /// Delete nothing. The default.
    #[default]
    None,
    /// Delete the old chunks of the sources seen in this run.
    Incremental,
    /// Delete every chunk of the namespace this run did not produce.
    Full,
}

/// Options of [`index`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct IndexOptions {
    /// The cleanup mode.
    pub cleanup: Cleanup,
    /// The metadata entry naming a document's source.
    pub source_key: String,
    /// Documents per embedding call and upsert.
    pub batch_size: usize,
    /// The record manager's namespace.
    pub namespace: String,
    /// Re-embed and rewrite documents even when already recorded.
    pub force_update: bool,
}

impl Default for IndexOptions {
    fn default() -> Self {
        IndexOptions {
            cleanup: Cleanup::None,
            source_key: "source".to_owned(),
            batch_size: 100,
            namespace: "default".to_owned(),
            force_update: false,
        }
    }
}

impl IndexOptions {
    /// The defaults.
    pub fn new() -> Self {
        Self::default()
    }

    /// The cleanup mode. Default [`Cleanup::None`].
    #[must_use]
    pub fn cleanup(mut self, cleanup: Cleanup) -> Self {
        self.cleanup = cleanup;
        self
    }

    /// The metadata entry naming a document's source (a string). Required on every
    /// document under [`Cleanup::Incremental`]. Default `"source"`.
    #[must_use]
    pub fn source_key(mut self, key: impl Into<String>) -> Self {
        self.source_key = key.into();
        self
    }

    /// Documents per embedding call and upsert (at least 1). Default 100.
    #[must_use]
    pub fn batch_size(mut self, n: usize) -> Self {
        self.batch_size = n;
        self
    }

    /// The record manager's namespace; use one per vector store or collection.
    /// Default `"default"`.
    #[must_use]
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = namespace.into();
        self
    }

    /// Re-embed and rewrite documents even when already recorded (counted as updated).
    /// Default false.
    #[must_use]
    pub fn force_update(mut self, yes: bool) -> Self {
        self.force_update = yes;
        self
    }
}

/// What [`index`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[non_exhaustive]
pub struct IndexReport {
    /// Documents embedded and written for the first time.
    pub added: usize,
    /// Documents already recorded and rewritten ([`IndexOptions::force_update`]).
    pub updated: usize,
    /// Documents already recorded (or repeated in the input) and left alone.
    pub skipped: usize,
    /// Chunks deleted by the cleanup.
    pub deleted: usize,
}

/// Writes JSON with object keys sorted, so equal metadata hashes equally whatever the
/// insertion order.
fn canonical_json(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            out.push('{');
            for (i, (k, v)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                canonical_json(v, out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical_json(v, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

/// The key of a document: a UUIDv5 ([`DocumentId::derived`]) of its content, its metadata
/// (keys sorted) and its source. A document's own id is ignored; equal content and
/// metadata always give the same key.
pub fn content_key(document: &Document, source_key: &str) -> DocumentId {
    let mut text = String::with_capacity(document.content.len() + 64);
    canonical_json(&Value::Object(document.metadata.clone()), &mut text);
    text.push('\u{0}');
    text.push_str(&document.content);
    let source = document.metadata.get(source_key).and_then(Value::as_str);
    DocumentId::derived(&text, source)
}

/// Indexes `documents` into `store`, writing only what `records` does not already hold,
/// then cleans up as `options.cleanup` says.
///
/// Each document's id is a hash of its content and metadata ([`content_key`]); a
/// [`RecordManager`] ([`InMemoryRecordManager`](catena_core::InMemoryRecordManager), or
/// `catena_vectorstores::PostgresRecordManager`) remembers, per namespace, which keys were
/// written and from which source (the document's `source` metadata, or another
/// [`IndexOptions::source_key`]). [`index`] then:
///
/// 1. skips documents whose key is already recorded: no embedding, no write
///    ([`IndexReport::skipped`]) — unless [`IndexOptions::force_update`];
/// 2. embeds and upserts the rest, batch by batch, and records their keys
///    ([`IndexReport::added`], or [`IndexReport::updated`] for forced rewrites);
/// 3. cleans up, **after** every new chunk is written, as chosen by [`Cleanup`]:
///    - [`Cleanup::None`]: deletes nothing;
///    - [`Cleanup::Incremental`]: deletes the recorded chunks of every source seen in this
///      run that this run did not produce — a changed document replaces its old chunks;
///    - [`Cleanup::Full`]: deletes every recorded chunk of the namespace this run did not
///      produce, so sources that vanished from the input are removed too. Pass the
///      **whole** corpus with `Full`.
///
/// ```
/// use catena_chains::{index, Cleanup, IndexOptions};
/// use catena_core::test_utils::DeterministicEmbedder;
/// use catena_core::{Document, InMemoryRecordManager};
/// use catena_vectorstores::InMemoryVectorStore;
///
/// # futures::executor::block_on(async {
/// let (records, store, embedder) =
///     (InMemoryRecordManager::new(), InMemoryVectorStore::new(), DeterministicEmbedder::new(8));
/// let docs = vec![Document::new("Rust is fast.").with_metadata("source", "faq.md")];
/// let options = IndexOptions::new().cleanup(Cleanup::Incremental);
/// let first = index(docs.clone(), &records, &store, &embedder, &options).await.unwrap();
/// assert_eq!(first.added, 1);
/// let again = index(docs, &records, &store, &embedder, &options).await.unwrap();
/// assert_eq!((again.added, again.skipped), (0, 1));
/// # });
/// ```
///
/// Documents are stored under their [`content_key`]. Deletions happen only after every new
/// document is written and recorded, so a failure midway never loses content: the next
/// run writes the rest and cleans up then.
///
/// # Errors
/// [`Error::InvalidInput`] for a document without a string source under
/// [`Cleanup::Incremental`] (nothing is written then) or a `batch_size` of 0; embedder,
/// store and record manager failures.
pub async fn index(
    documents: Vec<Document>,
    records: &dyn RecordManager,
    store: &dyn VectorStore,
    embedder: &dyn Embedder,
    options: &IndexOptions,
) -> Result<IndexReport> {
    if options.batch_size == 0 {
        return Err(Error::invalid_input("batch_size must be at least 1"));
    }
    let ns = options.namespace.as_str();
    let mut report = IndexReport::default();

    // Keys and sources first, so a bad document fails the run before anything is written.
    let mut seen_keys: HashSet<String> = HashSet::new();
    let mut seen_sources: Vec<String> = Vec::new();
    let mut unique: Vec<Pending> = Vec::new();
    for (i, doc) in documents.into_iter().enumerate() {
        let source = doc
            .metadata
            .get(&options.source_key)
            .and_then(Value::as_str)
            .map(str::to_owned);
        if source.is_none() && options.cleanup == Cleanup::Incremental {
            return Err(Error::invalid_input(format!(
                "document {i} has no string `{}` metadata; incremental cleanup needs a source \
                 on every document",
                options.source_key
            )));
        }
        let key = content_key(&doc, &options.source_key).into_inner();
        if !seen_keys.insert(key.clone()) {
            report.skipped += 1;
            continue;
        }
        if let Some(s) = &source {
            if !seen_sources.contains(s) {
                seen_sources.push(s.clone());
            }
        }
        unique.push((key, source, doc));
    }

    for batch in unique.chunks(options.batch_size) {
        let keys: Vec<String> = batch.iter().map(|(k, _, _)| k.clone()).collect();
        let exists = records.exists(ns, &keys).await?;
        if exists.len() != keys.len() {
            return Err(Error::other(
                "record manager returned a wrong number of answers",
            ));
        }
        let to_write: Vec<(&Pending, bool)> = batch
            .iter()
            .zip(exists)
            .filter(|(_, existed)| options.force_update || !existed)
            .collect();
        report.skipped += batch.len() - to_write.len();
        if !to_write.is_empty() {
            let texts: Vec<String> = to_write
                .iter()
                .map(|((_, _, d), _)| d.content.clone())
                .collect();
            let vectors = embedder.embed_documents(&texts).await?;
            if vectors.len() != texts.len() {
                return Err(Error::other(format!(
                    "embedder returned {} vectors for {} texts",
                    vectors.len(),
                    texts.len()
                )));
            }
            let embedded: Vec<EmbeddedDocument> = to_write
                .iter()
                .zip(vectors)
                .map(|(((key, _, doc), _), v)| {
                    let doc = doc.clone().with_id(key.as_str());
                    EmbeddedDocument::new(doc, v)
                })
                .collect();
            let upserted = store.upsert(embedded).await?;
            if !upserted.is_complete() {
                let first = upserted
                    .failed
                    .first()
                    .map(|f| format!("{}: {}", f.id, f.reason))
                    .unwrap_or_default();
                return Err(Error::other(format!(
                    "the vector store did not store {} documents (first: {first})",
                    upserted.failed.len()
                )));
            }
            for (_, existed) in &to_write {
                if *existed {
                    report.updated += 1;
                } else {
                    report.added += 1;
                }
            }
        }
        // Recorded after the write (and refreshed for skipped ones), never before.
        let batch_records: Vec<Record> = batch
            .iter()
            .map(|(k, s, _)| Record::new(k.clone(), s.clone()))
            .collect();
        records.update(ns, &batch_records).await?;
    }

    let stale: Vec<String> = match options.cleanup {
        Cleanup::None => Vec::new(),
        Cleanup::Incremental if seen_sources.is_empty() => Vec::new(),
        Cleanup::Incremental => records.list_keys(ns, Some(&seen_sources)).await?,
        Cleanup::Full => records.list_keys(ns, None).await?,
    }
    .into_iter()
    .filter(|k| !seen_keys.contains(k))
    .collect();
    for batch in stale.chunks(options.batch_size) {
        let ids: Vec<DocumentId> = batch.iter().map(|k| DocumentId::new(k.as_str())).collect();
        store.delete(&ids).await?;
        report.deleted += records.delete_keys(ns, batch).await?;
    }
    tracing::debug!(
        namespace = ns,
        added = report.added,
        updated = report.updated,
        skipped = report.skipped,
        deleted = report.deleted,
        "index finished"
    );
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_ignore_metadata_order_and_ids() {
        let a = Document::new("x")
            .with_metadata("source", "s")
            .with_metadata("page", 1);
        let mut b = Document::new("x").with_metadata("page", 1);
        b = b.with_metadata("source", "s").with_id("ignored");
        assert_eq!(content_key(&a, "source"), content_key(&b, "source"));
        let c = a.clone().with_metadata("page", 2);
        assert_ne!(content_key(&a, "source"), content_key(&c, "source"));
    }
}
