//! The in-memory vector store.

mod persist;

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{PoisonError, RwLock};

use async_trait::async_trait;
use catena_core::backend::validate_vector;
use catena_core::{
    Document, DocumentId, EmbeddedDocument, Error, Filter, Metadata, Result, ScoredDocument,
    SearchRequest, UpsertReport, VectorStore,
};
use serde::{Deserialize, Serialize};

/// How similarity is measured. Scores are always "higher is closer".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum DistanceMetric {
    /// Cosine similarity, in `[-1, 1]` (the default).
    #[default]
    Cosine,
    /// The dot product; equal to cosine for unit vectors.
    DotProduct,
    /// `1 / (1 + euclidean distance)`, in `(0, 1]`.
    Euclidean,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Entry {
    id: DocumentId,
    content: String,
    metadata: Metadata,
    vector: Vec<f32>,
    #[serde(skip)]
    norm: f32,
}

impl Entry {
    fn document(&self) -> Document {
        Document::new(self.content.clone())
            .with_id(self.id.clone())
            .with_metadata_map(self.metadata.clone())
    }
}

#[derive(Debug, Default)]
struct State {
    dimensions: Option<usize>,
    entries: Vec<Entry>,
    index: HashMap<DocumentId, usize>,
}

impl State {
    fn insert(&mut self, entry: Entry) -> Option<Entry> {
        match self.index.get(&entry.id) {
            Some(&i) => Some(std::mem::replace(&mut self.entries[i], entry)),
            None => {
                self.index.insert(entry.id.clone(), self.entries.len());
                self.entries.push(entry);
                None
            }
        }
    }

    fn remove(&mut self, id: &DocumentId) -> Option<Entry> {
        let i = self.index.remove(id)?;
        let removed = self.entries.swap_remove(i);
        if let Some(moved) = self.entries.get(i) {
            self.index.insert(moved.id.clone(), i);
        }
        Some(removed)
    }
}

/// A vector store in process memory: exact (brute-force) search, every [`Filter`]
/// operator, upsert by id, and an optional write-through file so a restart loses nothing.
///
/// With [`persist_to`](InMemoryVectorStoreBuilder::persist_to), `build()` loads the file if it
/// exists and every successful write rewrites it atomically (temporary file + rename) before
/// returning. If the write fails, the change is rolled back in memory too and the error
/// returned, so memory and disk never disagree.
pub struct InMemoryVectorStore {
    state: RwLock<State>,
    metric: DistanceMetric,
    path: Option<PathBuf>,
}

impl fmt::Debug for InMemoryVectorStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InMemoryVectorStore")
            .field("metric", &self.metric)
            .field("len", &self.len())
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl Default for InMemoryVectorStore {
    fn default() -> Self {
        Self::new()
    }
}

/// Configures an [`InMemoryVectorStore`].
#[derive(Debug, Clone, Default)]
#[must_use]
pub struct InMemoryVectorStoreBuilder {
    metric: DistanceMetric,
    dimensions: Option<usize>,
    path: Option<PathBuf>,
}

impl InMemoryVectorStoreBuilder {
    /// The similarity metric. Default [`DistanceMetric::Cosine`].
    pub fn metric(mut self, metric: DistanceMetric) -> Self {
        self.metric = metric;
        self
    }

    /// Fixes the vector dimension. Default: set by the first upsert.
    pub fn dimensions(mut self, dimensions: usize) -> Self {
        self.dimensions = Some(dimensions);
        self
    }

    /// Keeps the store in this file: loaded at `build()` when it exists, rewritten after every
    /// write. Default: memory only.
    pub fn persist_to(mut self, path: impl Into<PathBuf>) -> Self {
        self.path = Some(path.into());
        self
    }

    /// Builds the store.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] for zero dimensions, or a file whose metric or dimension
    /// differs from the ones asked for; [`Error::Io`]/[`Error::Serialization`] for a file
    /// that cannot be read.
    pub fn build(self) -> Result<InMemoryVectorStore> {
        if self.dimensions == Some(0) {
            return Err(Error::invalid_config("dimensions must be at least 1"));
        }
        let mut state = State {
            dimensions: self.dimensions,
            ..State::default()
        };
        let mut metric = self.metric;
        if let Some(path) = &self.path {
            if path.exists() {
                let snap = persist::read(path)?;
                if snap.metric != self.metric {
                    return Err(Error::invalid_config(format!(
                        "{} was saved with metric {:?}, not {:?}",
                        path.display(),
                        snap.metric,
                        self.metric
                    )));
                }
                if let (Some(want), Some(have)) = (self.dimensions, snap.dimensions) {
                    if want != have {
                        return Err(Error::invalid_config(format!(
                            "{} holds {have}-dimensional vectors, not {want}",
                            path.display()
                        )));
                    }
                }
                metric = snap.metric;
                state = snap.into_state()?;
                if state.dimensions.is_none() {
                    state.dimensions = self.dimensions;
                }
            }
        }
        Ok(InMemoryVectorStore {
            state: RwLock::new(state),
            metric,
            path: self.path,
        })
    }
}

enum Undo {
    Restore(Vec<(DocumentId, Option<Entry>)>),
    Reinsert(Vec<Entry>),
}

impl InMemoryVectorStore {
    /// An empty, memory-only store with cosine similarity.
    pub fn new() -> Self {
        InMemoryVectorStore {
            state: RwLock::new(State::default()),
            metric: DistanceMetric::Cosine,
            path: None,
        }
    }

    /// Configures a store.
    pub fn builder() -> InMemoryVectorStoreBuilder {
        InMemoryVectorStoreBuilder::default()
    }

    /// Loads a store saved with [`save`](Self::save) (memory-only afterwards).
    ///
    /// # Errors
    /// [`Error::Io`] or [`Error::Serialization`] when the file cannot be read or is invalid.
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        let snap = persist::read(path.as_ref())?;
        let metric = snap.metric;
        Ok(InMemoryVectorStore {
            state: RwLock::new(snap.into_state()?),
            metric,
            path: None,
        })
    }

    /// Writes the whole store to `path`, atomically.
    ///
    /// # Errors
    /// [`Error::Io`] when the file cannot be written; the previous file is then untouched.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        let state = self.state.read().unwrap_or_else(PoisonError::into_inner);
        persist::write(path.as_ref(), self.metric, &state)
    }

    /// The metric.
    pub fn metric(&self) -> DistanceMetric {
        self.metric
    }

    /// The vector dimension, once known.
    pub fn dimensions(&self) -> Option<usize> {
        self.state
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .dimensions
    }

    /// How many documents are stored.
    pub fn len(&self) -> usize {
        self.state
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .entries
            .len()
    }

    /// Whether the store is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Persists after a write, or undoes the write and reports why.
    fn commit(&self, state: &mut State, undo: Undo) -> Result<()> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        match persist::write(path, self.metric, state) {
            Ok(()) => Ok(()),
            Err(e) => {
                match undo {
                    Undo::Restore(items) => {
                        for (id, old) in items.into_iter().rev() {
                            match old {
                                Some(entry) => {
                                    state.insert(entry);
                                }
                                None => {
                                    state.remove(&id);
                                }
                            }
                        }
                    }
                    Undo::Reinsert(entries) => {
                        for entry in entries {
                            state.insert(entry);
                        }
                    }
                }
                tracing::warn!(error = %e, "in-memory store: persisting failed; write rolled back");
                Err(e)
            }
        }
    }

    fn score(&self, query: &[f32], query_norm: f32, entry: &Entry) -> f32 {
        match self.metric {
            DistanceMetric::Cosine => {
                if query_norm == 0.0 || entry.norm == 0.0 {
                    0.0
                } else {
                    dot(query, &entry.vector) / (query_norm * entry.norm)
                }
            }
            DistanceMetric::DotProduct => dot(query, &entry.vector),
            DistanceMetric::Euclidean => {
                let d2: f32 = query
                    .iter()
                    .zip(&entry.vector)
                    .map(|(a, b)| (a - b) * (a - b))
                    .sum();
                1.0 / (1.0 + d2.sqrt())
            }
        }
    }
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn norm(v: &[f32]) -> f32 {
    dot(v, v).sqrt()
}

fn check_dims(expected: Option<usize>, got: usize, what: &str) -> Result<()> {
    match expected {
        Some(d) if d != got => Err(Error::invalid_input(format!(
            "{what} has {got} dimensions; this store holds {d}-dimensional vectors"
        ))),
        _ => Ok(()),
    }
}

#[async_trait]
impl VectorStore for InMemoryVectorStore {
    async fn upsert(&self, documents: Vec<EmbeddedDocument>) -> Result<UpsertReport> {
        let mut state = self.state.write().unwrap_or_else(PoisonError::into_inner);
        // Validate the whole batch before touching anything.
        let mut dims = state.dimensions;
        for (i, d) in documents.iter().enumerate() {
            validate_vector(&d.embedding)
                .map_err(|e| Error::invalid_input(format!("document {i}: {e}")))?;
            check_dims(dims, d.embedding.len(), &format!("document {i}'s vector"))?;
            dims = Some(d.embedding.len());
        }
        let mut ids = Vec::with_capacity(documents.len());
        let mut undo = Vec::with_capacity(documents.len());
        let (mut inserted, mut updated, mut unchanged) = (0, 0, 0);
        for d in documents {
            let id = d.id();
            let entry = Entry {
                norm: norm(&d.embedding),
                id: id.clone(),
                content: d.document.content,
                metadata: d.document.metadata,
                vector: d.embedding,
            };
            let same = state.index.get(&id).is_some_and(|&i| {
                let old = &state.entries[i];
                old.content == entry.content
                    && old.metadata == entry.metadata
                    && old.vector == entry.vector
            });
            if same {
                unchanged += 1;
            } else {
                let old = state.insert(entry);
                if old.is_some() {
                    updated += 1;
                } else {
                    inserted += 1;
                }
                undo.push((id.clone(), old));
            }
            ids.push(id);
        }
        let old_dims = state.dimensions;
        state.dimensions = dims;
        if !undo.is_empty() || old_dims != dims {
            if let Err(e) = self.commit(&mut state, Undo::Restore(undo)) {
                state.dimensions = old_dims;
                return Err(e);
            }
        }
        Ok(UpsertReport::new(ids).with_counts(inserted, updated, unchanged))
    }

    async fn search(&self, request: SearchRequest) -> Result<Vec<ScoredDocument>> {
        request.validate()?;
        let state = self.state.read().unwrap_or_else(PoisonError::into_inner);
        check_dims(state.dimensions, request.vector.len(), "the query vector")?;
        let qn = norm(&request.vector);
        let mut hits: Vec<(f32, usize)> = state
            .entries
            .iter()
            .enumerate()
            .filter(|(_, e)| {
                request
                    .filter
                    .as_ref()
                    .is_none_or(|f| f.matches(&e.metadata))
            })
            .map(|(i, e)| (self.score(&request.vector, qn, e), i))
            .filter(|(s, _)| request.score_threshold.is_none_or(|t| *s >= t))
            .collect();
        // A total order even if a score were NaN (ranked last), so sorting cannot panic.
        let key = |s: f32| if s.is_nan() { f32::NEG_INFINITY } else { s };
        let by_rank = |a: &(f32, usize), b: &(f32, usize)| {
            key(b.0)
                .total_cmp(&key(a.0))
                .then_with(|| state.entries[a.1].id.cmp(&state.entries[b.1].id))
        };
        if hits.len() > request.k {
            hits.select_nth_unstable_by(request.k - 1, by_rank);
            hits.truncate(request.k);
        }
        hits.sort_by(by_rank);
        Ok(hits
            .into_iter()
            .map(|(score, i)| {
                let entry = &state.entries[i];
                let hit = ScoredDocument::new(entry.document(), score);
                if request.include_vectors {
                    hit.with_embedding(entry.vector.clone())
                } else {
                    hit
                }
            })
            .collect())
    }

    async fn count(&self, filter: Option<&Filter>) -> Result<usize> {
        if let Some(f) = filter {
            f.validate()?;
        }
        let state = self.state.read().unwrap_or_else(PoisonError::into_inner);
        Ok(match filter {
            None => state.entries.len(),
            Some(f) => state
                .entries
                .iter()
                .filter(|e| f.matches(&e.metadata))
                .count(),
        })
    }

    async fn delete(&self, ids: &[DocumentId]) -> Result<usize> {
        let mut state = self.state.write().unwrap_or_else(PoisonError::into_inner);
        let removed: Vec<Entry> = ids.iter().filter_map(|id| state.remove(id)).collect();
        let n = removed.len();
        if n > 0 {
            self.commit(&mut state, Undo::Reinsert(removed))?;
        }
        Ok(n)
    }

    async fn delete_by_filter(&self, filter: &Filter) -> Result<usize> {
        filter.validate()?;
        let mut state = self.state.write().unwrap_or_else(PoisonError::into_inner);
        let doomed: Vec<DocumentId> = state
            .entries
            .iter()
            .filter(|e| filter.matches(&e.metadata))
            .map(|e| e.id.clone())
            .collect();
        let removed: Vec<Entry> = doomed.iter().filter_map(|id| state.remove(id)).collect();
        let n = removed.len();
        if n > 0 {
            self.commit(&mut state, Undo::Reinsert(removed))?;
        }
        Ok(n)
    }

    async fn get(&self, ids: &[DocumentId]) -> Result<Vec<Document>> {
        let state = self.state.read().unwrap_or_else(PoisonError::into_inner);
        Ok(ids
            .iter()
            .filter_map(|id| state.index.get(id).map(|&i| state.entries[i].document()))
            .collect())
    }
}
