//! Index small chunks, return their parents.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use catena_core::{
    Document, DocumentId, EmbeddedDocument, Embedder, Error, Result, Retriever, SearchRequest,
    TextSplitter, VectorStore,
};

/// The metadata key that links a child chunk to its parent.
pub const PARENT_ID_KEY: &str = "parent_id";

/// Parent documents by id, in process memory.
#[derive(Debug, Default)]
pub struct InMemoryDocStore {
    docs: Mutex<HashMap<DocumentId, Document>>,
}

impl InMemoryDocStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Stores documents under their ids.
    pub fn put(&self, docs: impl IntoIterator<Item = (DocumentId, Document)>) {
        let mut map = self.docs.lock().unwrap_or_else(PoisonError::into_inner);
        map.extend(docs);
    }

    /// The documents with these ids, in the order asked; unknown ids are skipped.
    pub fn get(&self, ids: &[DocumentId]) -> Vec<Document> {
        let map = self.docs.lock().unwrap_or_else(PoisonError::into_inner);
        ids.iter().filter_map(|id| map.get(id).cloned()).collect()
    }

    /// How many documents are stored.
    pub fn len(&self) -> usize {
        self.docs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// Whether the store is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// LangChain's `ParentDocumentRetriever`: documents (or, with a parent splitter, large
/// chunks of them) are kept whole in a doc store; small child chunks are embedded and indexed,
/// each pointing at its parent through [`PARENT_ID_KEY`]. A search finds children and returns
/// their parents, de-duplicated, in order of their best child.
#[derive(Clone)]
pub struct ParentDocumentRetriever {
    store: Arc<dyn VectorStore>,
    embedder: Arc<dyn Embedder>,
    docstore: Arc<InMemoryDocStore>,
    child_splitter: Arc<dyn TextSplitter>,
    parent_splitter: Option<Arc<dyn TextSplitter>>,
    k: usize,
    child_k: usize,
}

impl fmt::Debug for ParentDocumentRetriever {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ParentDocumentRetriever")
            .field("k", &self.k)
            .field("child_k", &self.child_k)
            .field("parents", &self.docstore.len())
            .finish_non_exhaustive()
    }
}

impl ParentDocumentRetriever {
    /// Children cut by `child_splitter` into `store`; parents kept in `docstore`. Returns 4
    /// parents, found among the 20 best children.
    pub fn new(
        store: Arc<dyn VectorStore>,
        embedder: Arc<dyn Embedder>,
        docstore: Arc<InMemoryDocStore>,
        child_splitter: Arc<dyn TextSplitter>,
    ) -> Self {
        ParentDocumentRetriever {
            store,
            embedder,
            docstore,
            child_splitter,
            parent_splitter: None,
            k: 4,
            child_k: 20,
        }
    }

    /// Cut documents into parents first (otherwise each document is a parent). Default none.
    #[must_use]
    pub fn with_parent_splitter(mut self, splitter: Arc<dyn TextSplitter>) -> Self {
        self.parent_splitter = Some(splitter);
        self
    }

    /// How many parents to return. Default 4.
    #[must_use]
    pub fn with_k(mut self, k: usize) -> Self {
        self.k = k;
        self
    }

    /// How many children to search for. Default 20.
    #[must_use]
    pub fn with_child_k(mut self, k: usize) -> Self {
        self.child_k = k;
        self
    }

    /// Splits, embeds and indexes `docs`; returns the parent ids.
    ///
    /// # Errors
    /// Embedder or store failures; [`Error::InvalidInput`] if a document has no text.
    pub async fn add_documents(&self, docs: Vec<Document>) -> Result<Vec<DocumentId>> {
        let parents = match &self.parent_splitter {
            Some(s) => s.split_documents(&docs),
            None => docs,
        };
        let mut parent_ids = Vec::with_capacity(parents.len());
        let mut children = Vec::new();
        let mut stored = Vec::with_capacity(parents.len());
        for parent in parents {
            if parent.content.trim().is_empty() {
                return Err(Error::invalid_input("a parent document has no text"));
            }
            let id = parent.id_or_derived();
            for mut child in self
                .child_splitter
                .split_documents(std::slice::from_ref(&parent))
            {
                child.id = None;
                child
                    .metadata
                    .insert(PARENT_ID_KEY.into(), id.as_str().into());
                children.push(child);
            }
            parent_ids.push(id.clone());
            stored.push((id.clone(), parent.with_id(id)));
        }
        let texts: Vec<String> = children.iter().map(|c| c.content.clone()).collect();
        let vectors = self.embedder.embed_documents(&texts).await?;
        let batch = children
            .into_iter()
            .zip(vectors)
            .map(|(c, v)| EmbeddedDocument::new(c, v))
            .collect();
        self.store.upsert(batch).await?;
        // Parents become visible only once their children are indexed.
        self.docstore.put(stored);
        Ok(parent_ids)
    }
}

#[async_trait]
impl Retriever for ParentDocumentRetriever {
    async fn retrieve(&self, query: &str) -> Result<Vec<Document>> {
        let vector = self.embedder.embed_query(query).await?;
        let hits = self
            .store
            .search(SearchRequest::new(vector, self.child_k.max(self.k)))
            .await?;
        let mut seen = HashSet::new();
        let ids: Vec<DocumentId> = hits
            .iter()
            .filter_map(|h| h.document.metadata.get(PARENT_ID_KEY)?.as_str())
            .map(DocumentId::from)
            .filter(|id| seen.insert(id.clone()))
            .take(self.k)
            .collect();
        Ok(self.docstore.get(&ids))
    }
}
