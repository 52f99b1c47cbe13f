//! The in-memory vector store, and the file-backed stores built on the same durable log.
//!
//! [`InMemoryVectorStore`] keeps its documents in process memory; with
//! [`persist_to`](InMemoryVectorStoreBuilder::persist_to) every write is also appended to a
//! file (one checksummed record per batch, synced before the call returns) that is compacted
//! when it grows past twice the live data. [`FileRecordManager`] keeps ingest records the
//! same way. The file work runs on tokio's blocking pool, so searches never wait for it.
//!
//! ```
//! use catena_core::{Document, EmbeddedDocument, VectorStore};
//! use catena_vectorstores::InMemoryVectorStore;
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let dir = tempfile::tempdir().unwrap();
//! let path = dir.path().join("vectors.log");
//! let store = InMemoryVectorStore::builder().persist_to(&path).build().unwrap();
//! store
//!     .upsert(vec![EmbeddedDocument::new(Document::new("red").with_id("a"), vec![1.0, 0.0])])
//!     .await
//!     .unwrap();
//! drop(store);
//! let reopened = InMemoryVectorStore::builder().persist_to(&path).build().unwrap();
//! assert_eq!(reopened.len(), 1);
//! # }
//! ```

mod arena;
mod filter_index;
#[cfg(feature = "hnsw")]
mod graph;
#[cfg(feature = "hnsw")]
mod hnsw;
mod kernel;
mod log;
mod persist;
mod quant;
mod records;

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, PoisonError, RwLock, RwLockReadGuard};

use async_trait::async_trait;
use catena_core::backend::validate_vector;
use catena_core::keyword::{KeywordIndex, TermCounts};
use catena_core::{
    fuse, Document, DocumentId, EmbeddedDocument, Error, Filter, HybridHit, HybridRequest,
    HybridSearch, Metadata, Result, ScoredDocument, SearchRequest, UpsertReport, VectorStore,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use self::arena::Arena;
pub use self::arena::VectorPrecision;
use self::filter_index::FilterIndex;
#[cfg(feature = "hnsw")]
pub use self::hnsw::HnswConfig;
pub use self::log::CorruptFile;
use self::log::LogFile;
use self::persist::Batch;
use self::quant::Int8Rows;
pub use self::quant::Quantization;
pub use self::records::FileRecordManager;

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
    /// Shared, when exactly equal ([`same_metadata`]), with the map of the row an update
    /// replaces or of a row beside it, or for a new row with the last row's (chunks of one
    /// source are written together and usually carry the same metadata).
    metadata: Arc<Metadata>,
    /// The vector on its way in (a write, a file) and out (a snapshot); empty once the entry
    /// is in a [`State`], which keeps every vector in its arena.
    vector: Vec<f32>,
    #[serde(skip)]
    norm: f32,
    /// About how many bytes the entry takes in the file, for the compaction trigger.
    #[serde(skip)]
    weight: usize,
}

impl Entry {
    fn document(&self) -> Document {
        Document::new(self.content.clone())
            .with_id(self.id.clone())
            .with_metadata_map(Metadata::clone(&self.metadata))
    }

    /// Fills in the derived fields (after deserialising).
    fn prepare(&mut self) {
        self.norm = norm(&self.vector);
        let mut metadata = ByteCount(0);
        let _ = serde_json::to_writer(&mut metadata, &self.metadata);
        // JSON floats take about 12 bytes each.
        self.weight =
            48 + self.id.as_str().len() + self.content.len() + metadata.0 + 12 * self.vector.len();
    }
}

/// Counts what is written to it.
struct ByteCount(usize);

impl std::io::Write for ByteCount {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len();
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[derive(Debug, Default)]
struct State {
    dimensions: Option<usize>,
    entries: Vec<Entry>,
    /// Every entry's vector, contiguous: row `i` (`dimensions` values) is `entries[i]`'s.
    arena: Arena,
    /// Every entry's norm, contiguous (`norms[i]` is `entries[i].norm`): scoring a scan
    /// reads these rather than one cache line of `entries` per row.
    norms: Vec<f32>,
    index: HashMap<DocumentId, usize>,
    /// The sum of the entries' weights.
    live_bytes: usize,
    /// BM25 statistics of the entries' contents, for keyword and hybrid search: built by
    /// the first such search (a store searched only by vector never analyses its texts),
    /// then kept in step by `insert` and `remove`.
    keywords: OnceLock<Keywords>,
    /// Equality indexes over metadata, built by filtered searches, cleared by every write.
    filters: FilterIndex,
    /// The HNSW index, when the store has one (kept in step with the rows by `insert`,
    /// `remove` and `apply`).
    #[cfg(feature = "hnsw")]
    hnsw: Option<hnsw::Index>,
    /// The int8 codes of the rows, when the store is built with [`Quantization::Int8`] (kept
    /// in step with the arena by `insert` and `remove`).
    quant: Option<Int8Rows>,
}

/// The keyword statistics of a [`State`]: the index and each row's terms.
#[derive(Debug, Default)]
struct Keywords {
    index: KeywordIndex,
    /// `terms[i]` are `entries[i]`'s.
    terms: Vec<TermCounts>,
}

impl State {
    /// The keyword statistics, built from the entries on first use.
    fn keywords(&self) -> &Keywords {
        self.keywords.get_or_init(|| {
            let mut index = KeywordIndex::new();
            let terms = self.entries.iter().map(|e| index.add(&e.content)).collect();
            Keywords { index, terms }
        })
    }

    /// Keeps the vectors in `precision` from now on (their norms those of the converted
    /// values): whether any value was rounded, or why one cannot be kept.
    fn set_precision(&mut self, precision: VectorPrecision) -> std::result::Result<bool, String> {
        let (arena, changed) = std::mem::take(&mut self.arena)
            .into_precision(precision)
            .map_err(|v| format!("the value {v} is beyond what {precision:?} vectors hold"))?;
        self.arena = arena;
        for (i, e) in self.entries.iter_mut().enumerate() {
            let n = norm(&self.arena.row(i, self.dimensions.unwrap_or(0)));
            if e.norm > 0.0 && n == 0.0 {
                return Err(format!(
                    "`{}` would be stored as zeros in {precision:?} (every value below its smallest)",
                    e.id
                ));
            }
            e.norm = n;
            if let Some(slot) = self.norms.get_mut(i) {
                *slot = n;
            }
        }
        Ok(changed)
    }

    fn get(&self, id: &DocumentId) -> Option<&Entry> {
        self.index.get(id).map(|&i| &self.entries[i])
    }

    /// Row `i` of the arena in f32 (empty past the end).
    fn row(&self, i: usize) -> Cow<'_, [f32]> {
        self.arena.row(i, self.dimensions.unwrap_or(0))
    }

    /// The stored vector of `id`.
    fn vector_of(&self, id: &DocumentId) -> Option<Cow<'_, [f32]>> {
        self.index.get(id).map(|&i| self.row(i))
    }

    /// `entries[i]` with its vector, as it is written to a file.
    fn with_vector(&self, i: usize) -> Entry {
        let mut e = self.entries[i].clone();
        e.vector = self.row(i).into_owned();
        e
    }

    /// The rows `filter` selects, in ascending order.
    fn rows_matching(&self, filter: &Filter) -> Vec<usize> {
        self.filters.rows(&self.entries, filter)
    }

    fn insert(&mut self, mut entry: Entry) -> Option<Entry> {
        self.filters.clear();
        // Kept for the store's life: without the spare capacity a `String` built by
        // pushing (or `format!`) carries, up to half its size.
        entry.content.shrink_to_fit();
        // One map for a run of entries with the same metadata (a map of even one key takes
        // a 600-byte tree node): an update's row and its neighbours, or the last row.
        let near = match self.index.get(&entry.id) {
            Some(&i) => [Some(i), i.checked_sub(1), i.checked_add(1)],
            None => [self.entries.len().checked_sub(1), None, None],
        };
        let same = near
            .into_iter()
            .flatten()
            .filter_map(|r| self.entries.get(r))
            .find(|e| same_metadata(&e.metadata, &entry.metadata));
        if let Some(e) = same {
            entry.metadata = Arc::clone(&e.metadata);
        }
        let terms = self.keywords.get_mut().map(|k| k.index.add(&entry.content));
        self.live_bytes += entry.weight;
        let vector = std::mem::take(&mut entry.vector);
        let d = vector.len();
        if self.dimensions.is_none() {
            self.dimensions = Some(d);
        }
        let old = match self.index.get(&entry.id) {
            Some(&i) => {
                if let Some(_changed) = self.arena.set(i, d, &vector) {
                    #[cfg(feature = "hnsw")]
                    if _changed {
                        if let Some(index) = &mut self.hnsw {
                            index.replaced(i);
                        }
                    }
                    if let Some(n) = self.norms.get_mut(i) {
                        *n = entry.norm;
                    }
                    if let Some(quant) = &mut self.quant {
                        quant.set(i, &vector);
                    }
                }
                if let (Some(k), Some(terms)) = (self.keywords.get_mut(), terms) {
                    if let Some(slot) = k.terms.get_mut(i) {
                        let old = std::mem::replace(slot, terms);
                        k.index.remove(&old);
                    }
                }
                Some(std::mem::replace(&mut self.entries[i], entry))
            }
            None => {
                self.index.insert(entry.id.clone(), self.entries.len());
                if let (Some(k), Some(terms)) = (self.keywords.get_mut(), terms) {
                    k.terms.push(terms);
                }
                self.norms.push(entry.norm);
                self.entries.push(entry);
                self.arena.push(&vector);
                if let Some(quant) = &mut self.quant {
                    quant.push(&vector);
                }
                #[cfg(feature = "hnsw")]
                if let Some(index) = &mut self.hnsw {
                    index.pushed(self.entries.len() - 1);
                }
                None
            }
        };
        if let Some(old) = &old {
            self.live_bytes -= old.weight;
        }
        debug_assert!(self
            .keywords
            .get()
            .is_none_or(|k| k.terms.len() == self.entries.len()));
        old
    }

    fn remove(&mut self, id: &DocumentId) -> Option<Entry> {
        let i = self.index.remove(id)?;
        self.filters.clear();
        let removed = self.entries.swap_remove(i);
        if i < self.norms.len() {
            self.norms.swap_remove(i);
        }
        let d = self.dimensions.unwrap_or(0);
        let last = self.entries.len();
        self.arena.swap_remove(i, last, d);
        if let Some(quant) = &mut self.quant {
            quant.swap_remove(i, d);
        }
        if let Some(moved) = self.entries.get(i) {
            self.index.insert(moved.id.clone(), i);
        }
        #[cfg(feature = "hnsw")]
        if let Some(index) = &mut self.hnsw {
            index.swap_removed(i);
        }
        self.live_bytes -= removed.weight;
        if let Some(k) = self.keywords.get_mut() {
            if i < k.terms.len() {
                let terms = k.terms.swap_remove(i);
                k.index.remove(&terms);
            }
            debug_assert_eq!(k.terms.len(), self.entries.len());
        }
        Some(removed)
    }

    /// Applies a write (already validated and, for a persisted store, logged).
    fn apply(&mut self, batch: Batch) {
        if let Some(d) = batch.dimensions {
            self.dimensions = Some(d);
        }
        for entry in batch.upsert {
            self.insert(entry);
        }
        for id in &batch.delete {
            self.remove(id);
        }
        #[cfg(feature = "hnsw")]
        if let Some(index) = &mut self.hnsw {
            index.written(
                self.arena.rows(),
                self.dimensions.unwrap_or(0),
                &self.entries,
            );
        }
    }
}

/// A vector store in process memory: exact (brute-force) search, every [`Filter`]
/// operator, upsert by id, and an optional file so a restart loses nothing. With feature
/// `hnsw`, [`InMemoryVectorStoreBuilder::hnsw`] adds an approximate index for large stores
/// (hits still scored exactly; see `HnswConfig`).
///
/// With [`persist_to`](InMemoryVectorStoreBuilder::persist_to), `build()` loads the file and
/// each write that changes something appends **one record** to it (its documents or ids,
/// with a length and CRC-32) and syncs it before returning: an acknowledged write survives a
/// crash at any point, and a write costs the size of its batch, not of the store. When the
/// file grows past twice the live data (plus 1 MiB) the next write compacts it: a snapshot
/// is written to a temporary file, synced and renamed over it. A write that fails to reach
/// the file is not applied in memory either, so memory and disk never disagree.
///
/// File work runs on tokio's blocking pool (inline under other executors). Writers queue
/// for the file one at a time; searches only take the in-memory state lock for as long as
/// they compute, never while a write waits for the disk.
///
/// A crash mid-write leaves a torn last record, which the next `build()` cuts off (it was
/// never acknowledged); damage anywhere else is an [`Error::Io`] whose source is a
/// [`CorruptFile`] naming the file. Files are created with mode 0600 and missing parent
/// directories with 0700 (unix). An old-format file (one JSON snapshot, as written before)
/// is read and rewritten in the new format when the store opens it.
pub struct InMemoryVectorStore {
    inner: Arc<Inner>,
}

struct Inner {
    state: RwLock<State>,
    metric: DistanceMetric,
    quantization: Quantization,
    path: Option<PathBuf>,
    /// The open file of a persisted store; its lock orders the writers.
    log: Mutex<Option<LogFile>>,
}

impl fmt::Debug for InMemoryVectorStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InMemoryVectorStore")
            .field("metric", &self.inner.metric)
            .field("len", &self.len())
            .field("path", &self.inner.path)
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
    #[cfg(feature = "hnsw")]
    hnsw: Option<HnswConfig>,
    quantization: Quantization,
    precision: VectorPrecision,
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

    /// Keeps the store in this file: loaded at `build()` when it exists (created otherwise),
    /// every write appended and synced before it returns (see [`InMemoryVectorStore`]).
    /// Default: memory only.
    pub fn persist_to(mut self, path: impl Into<PathBuf>) -> Self {
        self.path = Some(path.into());
        self
    }

    /// Adds an approximate (HNSW) index, used by searches once the store holds
    /// [`min_rows`](HnswConfig::min_rows) documents; smaller stores, and filters expected
    /// to match fewer than `min_rows`, are still scanned exactly. For the Cosine and
    /// Euclidean metrics (`build()` refuses it for DotProduct). The graph is not saved
    /// with [`persist_to`](Self::persist_to): `build()` builds it again from the loaded
    /// documents (when they reach `min_rows`). See [`HnswConfig`] and the module
    /// documentation. Default: no index, every search exact.
    #[cfg(feature = "hnsw")]
    #[cfg_attr(docsrs, doc(cfg(feature = "hnsw")))]
    pub fn hnsw(mut self, config: HnswConfig) -> Self {
        self.hnsw = Some(config);
        self
    }

    /// Keeps compressed copies of the vectors that exact searches scan first, scoring only
    /// their best candidates at full precision: [`Quantization::Int8`] reads a quarter of
    /// the bytes per query for 25 % more memory, scores stay exact (see [`Quantization`]).
    /// Batches ([`InMemoryVectorStore::search_batch`]) and the HNSW graph are unaffected.
    /// Default [`Quantization::None`].
    pub fn quantization(mut self, quantization: Quantization) -> Self {
        self.quantization = quantization;
        self
    }

    /// The precision the vectors are kept in: [`VectorPrecision::F16`] halves their memory
    /// (scores are then those of the rounded values; see [`VectorPrecision`]). A file
    /// written at another precision is converted as it is loaded. Default
    /// [`VectorPrecision::F32`].
    pub fn precision(mut self, precision: VectorPrecision) -> Self {
        self.precision = precision;
        self
    }

    /// Builds the store: with [`persist_to`](Self::persist_to), loads the file, cuts off a
    /// torn last record, rewrites an old-format file in the new format, or creates the file.
    /// This blocks on file I/O (and, with an HNSW index over a loaded file of at least
    /// `min_rows` documents, on building the graph).
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] for zero dimensions, HNSW settings out of range or with the
    /// DotProduct metric, or a file whose metric or dimension differs from the ones asked
    /// for; [`Error::Io`] for a file that cannot be read or written, or is damaged before
    /// its last record (source [`CorruptFile`]); [`Error::Serialization`] for an invalid
    /// old-format file.
    pub fn build(self) -> Result<InMemoryVectorStore> {
        if self.dimensions == Some(0) {
            return Err(Error::invalid_config("dimensions must be at least 1"));
        }
        #[cfg(feature = "hnsw")]
        let index = self
            .hnsw
            .map(|config| hnsw::Index::new(config, self.metric))
            .transpose()?;
        let mut state = State {
            dimensions: self.dimensions,
            arena: Arena::new(self.precision),
            ..State::default()
        };
        let mut metric = self.metric;
        let mut log = None;
        if let Some(path) = &self.path {
            match persist::load(path)? {
                None => log = Some(LogFile::create(path, &persist::snapshot(metric, &state)?)?),
                Some(loaded) => {
                    if loaded.metric != self.metric {
                        return Err(Error::invalid_config(format!(
                            "{} was saved with metric {:?}, not {:?}",
                            path.display(),
                            loaded.metric,
                            self.metric
                        )));
                    }
                    if let (Some(want), Some(have)) = (self.dimensions, loaded.state.dimensions) {
                        if want != have {
                            return Err(Error::invalid_config(format!(
                                "{} holds {have}-dimensional vectors, not {want}",
                                path.display()
                            )));
                        }
                    }
                    metric = loaded.metric;
                    state = loaded.state;
                    if state.dimensions.is_none() {
                        state.dimensions = self.dimensions;
                    }
                    // Converted before the file is touched: a value the precision cannot hold
                    // fails the build with the file as it was.
                    let rounded = state.set_precision(self.precision).map_err(|why| {
                        Error::invalid_config(format!("{}: {why}", path.display()))
                    })?;
                    log = Some(match loaded.valid_len {
                        Some(len) if !rounded => LogFile::append_to(path, len)?,
                        // The old format, or values the store's precision rounded: rewritten
                        // as the store keeps them before the first append (so the file never
                        // holds values the store no longer has).
                        _ => LogFile::create(path, &persist::snapshot(metric, &state)?)?,
                    });
                }
            }
        }
        if self.quantization != Quantization::None {
            state.quant = Some(Int8Rows::from_arena(
                metric,
                state.arena.rows(),
                state.dimensions.unwrap_or(0),
            ));
        }
        #[cfg(feature = "hnsw")]
        if let Some(mut index) = index {
            // The graph is not in the file: build it again from what was loaded.
            if index.serves(state.entries.len()) {
                index.rebuild(
                    state.arena.rows(),
                    state.dimensions.unwrap_or(0),
                    &state.entries,
                );
            }
            state.hnsw = Some(index);
        }
        Ok(InMemoryVectorStore {
            inner: Arc::new(Inner {
                state: RwLock::new(state),
                metric,
                quantization: self.quantization,
                path: self.path,
                log: Mutex::new(log),
            }),
        })
    }
}

impl Inner {
    fn read(&self) -> RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// One write: plans it against the current state (under the read lock), appends it to
    /// the file (under no state lock), then applies it (under the write lock, briefly).
    /// Holding the log lock throughout keeps the state unchanged between plan and apply.
    fn write<T>(&self, plan: impl FnOnce(&State) -> Result<(Batch, T)>) -> Result<T> {
        let mut log = self.log.lock().unwrap_or_else(PoisonError::into_inner);
        let (batch, out) = plan(&self.read())?;
        if batch.is_empty() {
            return Ok(out);
        }
        if let Some(file) = log.as_mut() {
            file.append(&persist::encode_batch(&batch)?).inspect_err(|e| {
                tracing::warn!(error = %e, "in-memory store: persisting failed; nothing written");
            })?;
        }
        let live_bytes = {
            let mut state = self.state.write().unwrap_or_else(PoisonError::into_inner);
            state.apply(batch);
            state.live_bytes
        };
        if let Some(file) = log.as_mut() {
            if log::should_compact(file.len(), live_bytes as u64) {
                // The write is durable already; a failed compaction only leaves a longer file.
                if let Err(e) = self.compact(file) {
                    tracing::warn!(error = %e, "in-memory store: compaction failed");
                }
            }
        }
        Ok(out)
    }

    /// Replaces the file with a snapshot of the state. The caller holds the log lock, so no
    /// write runs meanwhile; searches still do.
    fn compact(&self, file: &mut LogFile) -> Result<()> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        let records = persist::snapshot(self.metric, &self.read())?;
        *file = LogFile::create(path, &records)?;
        Ok(())
    }
}

impl InMemoryVectorStore {
    /// An empty, memory-only store with cosine similarity.
    pub fn new() -> Self {
        InMemoryVectorStore {
            inner: Arc::new(Inner {
                state: RwLock::new(State::default()),
                metric: DistanceMetric::Cosine,
                quantization: Quantization::None,
                path: None,
                log: Mutex::new(None),
            }),
        }
    }

    /// Configures a store.
    pub fn builder() -> InMemoryVectorStoreBuilder {
        InMemoryVectorStoreBuilder::default()
    }

    /// Loads a store saved with [`save`](Self::save) or kept with
    /// [`persist_to`](InMemoryVectorStoreBuilder::persist_to) (memory-only afterwards; the
    /// file is not changed). Reads old-format files too.
    ///
    /// # Errors
    /// [`Error::Io`] when the file cannot be read or is damaged (source [`CorruptFile`]);
    /// [`Error::Serialization`] for an invalid old-format file.
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let loaded = persist::load(path)?.ok_or_else(|| {
            Error::io(
                format!("opening {}", path.display()),
                std::io::ErrorKind::NotFound.into(),
            )
        })?;
        Ok(InMemoryVectorStore {
            inner: Arc::new(Inner {
                state: RwLock::new(loaded.state),
                metric: loaded.metric,
                quantization: Quantization::None,
                path: None,
                log: Mutex::new(None),
            }),
        })
    }

    /// Writes a snapshot of the whole store to `path`, atomically (temporary file, sync,
    /// rename), mode 0600. Saving to the store's own file compacts it. This blocks on file
    /// I/O; writes wait meanwhile, searches do not.
    ///
    /// # Errors
    /// [`Error::Io`] when the file cannot be written; the previous file is then untouched.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        if self.inner.path.as_deref() == Some(path) {
            let mut log = self
                .inner
                .log
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if let Some(file) = log.as_mut() {
                return self.inner.compact(file);
            }
        }
        let records = persist::snapshot(self.inner.metric, &self.inner.read())?;
        LogFile::create(path, &records).map(drop)
    }

    /// Compacts the store's file now: rewrites it as a snapshot of the live documents
    /// (temporary file, sync, rename, directory sync). Writes do this by themselves when the
    /// file grows past twice the live data; this is for shrinking it at a time of your
    /// choosing. Does nothing for a memory-only store.
    ///
    /// # Errors
    /// [`Error::Io`] when the snapshot cannot be written; the old file is then kept.
    pub async fn compact(&self) -> Result<()> {
        self.run(|inner| {
            let mut log = inner.log.lock().unwrap_or_else(PoisonError::into_inner);
            match log.as_mut() {
                Some(file) => inner.compact(file),
                None => Ok(()),
            }
        })
        .await
    }

    /// The metric.
    pub fn metric(&self) -> DistanceMetric {
        self.inner.metric
    }

    /// The vector dimension, once known.
    pub fn dimensions(&self) -> Option<usize> {
        self.inner.read().dimensions
    }

    /// How many documents are stored.
    pub fn len(&self) -> usize {
        self.inner.read().entries.len()
    }

    /// Whether the store is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Answers several searches at once, each as [`VectorStore::search`] would, in order.
    /// The ones without a filter are scored together as one matrix product (each stored
    /// vector is read once for the whole batch, and a large batch uses every core), which
    /// is several times faster per query than one search at a time; for cosine and dot
    /// products the product's best candidates are then scored again as a single search
    /// scores them, so the answers are the same rows with the same scores (with int8 codes,
    /// [`Quantization::Int8`], a batch still scores every row at full precision, so it can
    /// find a row a single search's int8 pass missed). When an HNSW index
    /// serves the store (feature `hnsw`), each search goes through the graph instead, a
    /// large batch split across the cores.
    ///
    /// # Errors
    /// As [`VectorStore::search`]: the first invalid request (a bad `k`, a vector of the
    /// wrong length, an invalid filter) fails the whole batch before anything is scored.
    pub fn search_batch(&self, requests: &[SearchRequest]) -> Result<Vec<Vec<ScoredDocument>>> {
        self.search_batch_within(requests, SCORES_BYTES)
    }

    /// [`search_batch`](Self::search_batch) holding at most `scores_bytes` of scores at once
    /// (at least one query's).
    fn search_batch_within(
        &self,
        requests: &[SearchRequest],
        scores_bytes: usize,
    ) -> Result<Vec<Vec<ScoredDocument>>> {
        let inner = &*self.inner;
        let state = inner.read();
        for r in requests {
            r.validate()?;
            check_dims(state.dimensions, r.vector.len(), "the query vector")?;
        }
        #[cfg(feature = "hnsw")]
        if state.uses_index() {
            return Ok(inner.search_batch_indexed(&state, requests));
        }
        let plain: Vec<usize> = (0..requests.len())
            .filter(|&i| requests[i].filter.is_none())
            .collect();
        let n = state.entries.len();
        let d = state.dimensions.unwrap_or(0);
        let kernel = inner.kernel();
        let norms = if kernel == kernel::Kernel::Dot
            && matches!(state.arena, Arena::F32(_))
            && !plain.is_empty()
        {
            RowNorms::of(&state.norms, inner.metric)
        } else {
            RowNorms::default()
        };
        let mut hits: Vec<Option<Vec<(f32, usize)>>> = vec![None; requests.len()];
        // The plain searches, a chunk of queries at a time: every row is read once per
        // chunk, and the score matrix stays within `scores_bytes` (SCORES_BYTES: at 100,000
        // rows, 335 queries per chunk; at 10 million, 3).
        let chunk = (scores_bytes / 4 / n.max(1)).clamp(1, plain.len().max(1));
        let mut raw = if plain.is_empty() {
            Vec::new()
        } else {
            vec![0.0f32; chunk * n]
        };
        for ids in plain.chunks(chunk) {
            let queries: Vec<&[f32]> = ids.iter().map(|&i| requests[i].vector.as_slice()).collect();
            let raw = &mut raw[..ids.len() * n];
            // The matrix product for dot products of f32 rows; f16 rows are converted a block
            // at a time and scored with the single-search kernel (exact, no re-scoring).
            let matrix = match (&state.arena, kernel) {
                (Arena::F32(arena), kernel::Kernel::Dot) => {
                    kernel::dot_matrix(arena, d, &queries, raw);
                    true
                }
                _ => {
                    kernel::scan_many(kernel, state.arena.rows(), d, &queries, raw);
                    false
                }
            };
            for (j, &i) in ids.iter().enumerate() {
                let r = &requests[i];
                let scores = raw.get(j * n..(j + 1) * n).unwrap_or(&[]);
                hits[i] = Some(if matrix {
                    inner.rescored(&state, &r.vector, scores, &norms, r.k, r.score_threshold)
                } else {
                    inner.best(&state, &r.vector, scores, None, r.k, r.score_threshold)
                });
            }
        }
        let mut out = Vec::with_capacity(requests.len());
        for (r, hits) in requests.iter().zip(hits) {
            let hits = hits.unwrap_or_else(|| {
                inner.dense_hits(&state, &r.vector, r.k, r.filter.as_ref(), r.score_threshold)
            });
            out.push(hits_to_documents(&state, hits, r.include_vectors));
        }
        Ok(out)
    }

    /// Runs `work` on the blocking pool for a persisted store, right here for a memory-only
    /// one (which does no I/O).
    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Inner) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        if self.inner.path.is_none() {
            return work(&self.inner);
        }
        let inner = Arc::clone(&self.inner);
        log::blocking(move || work(&inner)).await
    }
}

impl Inner {
    /// The `k` entries under `filter` closest to `query` by the store's metric, best first
    /// (ties by id), keeping only scores at or above `threshold`: from the HNSW graph's
    /// candidates when the store has one that serves this search (feature `hnsw`), else
    /// (and whenever the graph cannot fill `k`) by the exact scan.
    fn dense_hits(
        &self,
        state: &State,
        query: &[f32],
        k: usize,
        filter: Option<&Filter>,
        threshold: Option<f32>,
    ) -> Vec<(f32, usize)> {
        if k == 0 {
            return Vec::new();
        }
        #[cfg(feature = "hnsw")]
        if let Some(hits) = self.approximate_hits(state, query, k, filter, threshold, None) {
            return hits;
        }
        self.exact_hits(state, query, k, filter, threshold)
    }

    /// [`dense_hits`](Self::dense_hits) by one scan of the arena (or of the filtered rows)
    /// with the SIMD kernels: exact.
    fn exact_hits(
        &self,
        state: &State,
        query: &[f32],
        k: usize,
        filter: Option<&Filter>,
        threshold: Option<f32>,
    ) -> Vec<(f32, usize)> {
        if k == 0 {
            return Vec::new();
        }
        // A filter that selects every row (one tenant's store) scans the arena straight.
        let rows: Option<Vec<usize>> = filter
            .map(|f| state.rows_matching(f))
            .filter(|rows| rows.len() < state.entries.len());
        let n = rows.as_ref().map_or(state.entries.len(), Vec::len);
        let d = state.dimensions.unwrap_or(0);
        if let (Some(quant), Some(c)) = (&state.quant, self.quantization.candidates(k)) {
            if n > c && d <= quant::MAX_DIMENSIONS {
                if let Some(hits) =
                    self.quantized_hits(state, quant, query, k, c, rows.as_deref(), threshold)
                {
                    return hits;
                }
            }
        }
        let mut raw = vec![0.0f32; n];
        kernel::scan(
            self.kernel(),
            state.arena.rows(),
            d,
            query,
            rows.as_deref(),
            &mut raw,
        );
        self.best(state, query, &raw, rows.as_deref(), k, threshold)
    }

    /// [`exact_hits`](Self::exact_hits) over the int8 codes: the `c` best rows (of `rows`,
    /// or of all) by approximate score, then those scored exactly and ranked. `None` when
    /// the approximate scores cannot pick `c` rows (a NaN query): the caller scans exactly.
    #[allow(clippy::too_many_arguments)]
    fn quantized_hits(
        &self,
        state: &State,
        quant: &Int8Rows,
        query: &[f32],
        k: usize,
        c: usize,
        rows: Option<&[usize]>,
        threshold: Option<f32>,
    ) -> Option<Vec<(f32, usize)>> {
        let n = rows.map_or(state.entries.len(), <[usize]>::len);
        let (codes, scale) = quant.code_query(query);
        let mut approx = vec![0.0f32; n];
        quant.scores(&codes, scale, rows, &mut approx);
        let picked = within_margin(&approx, &[], c, 0.0);
        if picked.len() < c {
            return None;
        }
        let candidates: Vec<usize> = match rows {
            Some(rows) => picked
                .iter()
                .filter_map(|&j| rows.get(j).copied())
                .collect(),
            None => picked,
        };
        let mut raw = vec![0.0f32; candidates.len()];
        kernel::scan(
            self.kernel(),
            state.arena.rows(),
            state.dimensions.unwrap_or(0),
            query,
            Some(&candidates),
            &mut raw,
        );
        Some(self.best(state, query, &raw, Some(&candidates), k, threshold))
    }

    /// The `k` best of the raw kernel values `raw` of `query` (for the entries `rows`, or
    /// every entry), as the metric's scores at or above `threshold`.
    fn best(
        &self,
        state: &State,
        query: &[f32],
        raw: &[f32],
        rows: Option<&[usize]>,
        k: usize,
        threshold: Option<f32>,
    ) -> Vec<(f32, usize)> {
        let qn = norm(query);
        let score = |j: usize, raw: f32| {
            let i = rows.map_or(j, |r| r[j]);
            let score = match self.metric {
                DistanceMetric::Cosine => {
                    let en = state.norms[i];
                    if qn == 0.0 || en == 0.0 {
                        0.0
                    } else {
                        raw / (qn * en)
                    }
                }
                DistanceMetric::DotProduct => raw,
                DistanceMetric::Euclidean => 1.0 / (1.0 + raw.max(0.0).sqrt()),
            };
            (score, i)
        };
        let keep = |(s, _): &(f32, usize)| threshold.is_none_or(|t| *s >= t);
        if k > 0 && k < raw.len() / 4 {
            // Only the rows scoring at least the k-th best (ties included) are ranked.
            let scores: Vec<f32> = raw
                .iter()
                .enumerate()
                .map(|(j, &r)| score(j, r).0)
                .collect();
            let picked = within_margin(&scores, &[], k, 0.0);
            if picked.len() >= k {
                let hits = picked
                    .into_iter()
                    .map(|j| score(j, raw[j]))
                    .filter(keep)
                    .collect();
                return rank(state, hits, k);
            }
        }
        let hits = raw
            .iter()
            .enumerate()
            .map(|(j, &raw)| score(j, raw))
            .filter(keep)
            .collect();
        rank(state, hits, k)
    }

    /// The `k` best of `raw`, a row of [`kernel::dot_matrix`]: the rows whose scores come
    /// within that kernel's error margin of the `k`-th best are scored again with the
    /// single-search kernel and ranked as [`Inner::best`] ranks, so a batch answers exactly
    /// what one search at a time would (same rows, same scores to the bit). Queries or
    /// rows so small that products may fall among the subnormal numbers (where rounding
    /// errors are absolute, not relative) re-score every row.
    fn rescored(
        &self,
        state: &State,
        query: &[f32],
        raw: &[f32],
        norms: &RowNorms,
        k: usize,
        threshold: Option<f32>,
    ) -> Vec<(f32, usize)> {
        let n = raw.len();
        let qn = norm(query);
        let candidates = if k == 0 || k >= n || qn < NORM_FLOOR || norms.smallest < NORM_FLOOR {
            (0..n).collect()
        } else {
            let margin = 2.0 * kernel::dot_margin(query.len()) * qn * norms.bound;
            let picked = within_margin(raw, &norms.weights, k, margin);
            if picked.len() < k {
                (0..n).collect()
            } else {
                picked
            }
        };
        let d = state.dimensions.unwrap_or(0);
        let mut exact = vec![0.0f32; candidates.len()];
        kernel::scan(
            kernel::Kernel::Dot,
            state.arena.rows(),
            d,
            query,
            Some(&candidates),
            &mut exact,
        );
        self.best(state, query, &exact, Some(&candidates), k, threshold)
    }

    fn kernel(&self) -> kernel::Kernel {
        match self.metric {
            DistanceMetric::Euclidean => kernel::Kernel::L2Squared,
            DistanceMetric::Cosine | DistanceMetric::DotProduct => kernel::Kernel::Dot,
        }
    }
}

/// The documents of `hits` (score, entry index), with their vectors when asked.
fn hits_to_documents(
    state: &State,
    hits: Vec<(f32, usize)>,
    include_vectors: bool,
) -> Vec<ScoredDocument> {
    hits.into_iter()
        .map(|(score, i)| {
            let hit = ScoredDocument::new(state.entries[i].document(), score);
            if include_vectors {
                hit.with_embedding(state.row(i).into_owned())
            } else {
                hit
            }
        })
        .collect()
}

/// The rows whose weighted score (`raw[i] * weights[i]`, or `raw[i]` when `weights` is
/// empty) is at least the `k`-th best minus `margin`, in row order, found in one pass: a
/// heap of the `k` best so far raises the floor as it goes, and blocks of rows wholly
/// under it are skipped after one vectorised maximum. Empty when `k` is 0; NaN scores are
/// never picked.
fn within_margin(raw: &[f32], weights: &[f32], k: usize, margin: f32) -> Vec<usize> {
    const BLOCK: usize = 32;
    let mut picked = Vec::new();
    if k == 0 {
        return picked;
    }
    let mut heap = std::collections::BinaryHeap::with_capacity(k.min(raw.len()) + 1);
    let mut floor = f32::NEG_INFINITY;
    let mut block = [0.0f32; BLOCK];
    for (b, scores) in raw.chunks(BLOCK).enumerate() {
        let block = &mut block[..scores.len()];
        match weights.get(b * BLOCK..b * BLOCK + scores.len()) {
            Some(w) => {
                for ((t, s), w) in block.iter_mut().zip(scores).zip(w) {
                    *t = s * w;
                }
            }
            None => block.copy_from_slice(scores),
        }
        let best = block.iter().fold(f32::NEG_INFINITY, |m, &t| m.max(t));
        if best < floor {
            continue;
        }
        for (j, &t) in block.iter().enumerate() {
            if t.partial_cmp(&floor).is_none_or(std::cmp::Ordering::is_lt) {
                continue;
            }
            picked.push(b * BLOCK + j);
            let key = ordered(t);
            if heap.len() < k {
                heap.push(std::cmp::Reverse(key));
            } else if heap.peek().is_some_and(|m| key > m.0) {
                heap.pop();
                heap.push(std::cmp::Reverse(key));
            } else {
                continue;
            }
            if heap.len() == k {
                floor = heap
                    .peek()
                    .map_or(f32::NEG_INFINITY, |m| unordered(m.0) - margin);
            }
        }
    }
    let weighted =
        |i: usize| raw.get(i).copied().unwrap_or(f32::NAN) * weights.get(i).copied().unwrap_or(1.0);
    picked.retain(|&i| weighted(i) >= floor);
    picked
}

/// Queries and rows shorter than this (2⁻⁴⁰) make a batch re-score every row: their
/// products may be subnormal, where the matrix kernel's rounding error is no longer
/// bounded relative to the norms.
const NORM_FLOOR: f32 = 1.0 / (1u64 << 40) as f32;

/// What a batch needs of the rows' norms to pick candidates from a matrix product.
#[derive(Debug, Default)]
struct RowNorms {
    /// Empty (dot products) or `1/|row|` per row (cosine; 0 for a zero row): what a row's
    /// product is multiplied by to rank it (the query's norm is common to all rows).
    weights: Vec<f32>,
    /// Bounds `|row|` after the weight: 1 for cosine, the largest row norm for dot products.
    bound: f32,
    /// The smallest norm of a nonzero row.
    smallest: f32,
}

impl RowNorms {
    fn of(norms: &[f32], metric: DistanceMetric) -> RowNorms {
        let weights: Vec<f32> = if metric == DistanceMetric::Cosine {
            norms
                .iter()
                .map(|&n| if n == 0.0 { 0.0 } else { 1.0 / n })
                .collect()
        } else {
            Vec::new()
        };
        let bound = if weights.is_empty() {
            norms.iter().copied().fold(0.0f32, f32::max)
        } else {
            1.0
        };
        let smallest = norms
            .iter()
            .copied()
            .filter(|&n| n > 0.0)
            .fold(f32::INFINITY, f32::min);
        RowNorms {
            weights,
            bound,
            smallest,
        }
    }
}

/// The most bytes of scores a batch holds at once (its plain searches are scored together
/// as one matrix product, a chunk of queries at a time, to stay under this).
const SCORES_BYTES: usize = 128 << 20;

/// `x` as an unsigned key in the order of `f32::total_cmp` (NaN first, as the lowest).
fn ordered(x: f32) -> u32 {
    let x = if x.is_nan() { f32::NEG_INFINITY } else { x };
    let bits = x.to_bits();
    if bits >> 31 == 1 {
        !bits
    } else {
        bits | 0x8000_0000
    }
}

/// The inverse of [`ordered`].
fn unordered(key: u32) -> f32 {
    f32::from_bits(if key >> 31 == 1 {
        key & 0x7FFF_FFFF
    } else {
        !key
    })
}

/// Whether two metadata maps are the same to the bit: `==` on JSON values holds for `0.0`
/// and `-0.0`, and (with serde_json's `preserve_order`) for maps whose keys differ in order;
/// a document must not get back another's sign or order through a shared map.
fn same_metadata(a: &Metadata, b: &Metadata) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|((ka, va), (kb, vb))| ka == kb && same_value(va, vb))
}

fn same_value(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_f64(), y.as_f64()) {
            (Some(fx), Some(fy)) if x.is_f64() && y.is_f64() => fx.to_bits() == fy.to_bits(),
            _ => x == y,
        },
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| same_value(p, q))
        }
        (Value::Object(x), Value::Object(y)) => same_metadata(x, y),
        _ => a == b,
    }
}

fn norm(v: &[f32]) -> f32 {
    kernel::dot(v, v).sqrt()
}

fn check_dims(expected: Option<usize>, got: usize, what: &str) -> Result<()> {
    match expected {
        Some(d) if d != got => Err(Error::invalid_input(format!(
            "{what} has {got} dimensions; this store holds {d}-dimensional vectors"
        ))),
        _ => Ok(()),
    }
}

/// Plans an upsert: validates the whole batch, then keeps only the documents that change
/// something (a later duplicate id in the batch wins, as if applied in order).
fn plan_upsert(state: &State, documents: Vec<EmbeddedDocument>) -> Result<(Batch, UpsertReport)> {
    let mut dims = state.dimensions;
    let mut documents = documents;
    for (i, d) in documents.iter_mut().enumerate() {
        validate_vector(&d.embedding)
            .map_err(|e| Error::invalid_input(format!("document {i}: {e}")))?;
        check_dims(dims, d.embedding.len(), &format!("document {i}'s vector"))?;
        dims = Some(d.embedding.len());
        // As the store keeps it, so that an unchanged document compares equal.
        d.embedding = state
            .arena
            .rounded(std::mem::take(&mut d.embedding))
            .map_err(|why| Error::invalid_input(format!("document {i}: {why}")))?;
    }
    let mut batch = Batch {
        dimensions: dims.filter(|_| state.dimensions != dims),
        ..Batch::default()
    };
    let mut pending: HashMap<DocumentId, usize> = HashMap::new();
    let mut ids = Vec::with_capacity(documents.len());
    let (mut inserted, mut updated, mut unchanged) = (0, 0, 0);
    for d in documents {
        let id = d.id();
        let mut entry = Entry {
            id: id.clone(),
            content: d.document.content,
            metadata: Arc::new(d.document.metadata),
            vector: d.embedding,
            norm: 0.0,
            weight: 0,
        };
        let current = match pending.get(&id) {
            Some(&i) => Some((
                &batch.upsert[i],
                Cow::Borrowed(batch.upsert[i].vector.as_slice()),
            )),
            None => state.get(&id).zip(state.vector_of(&id)),
        };
        let same = current.as_ref().is_some_and(|(old, vector)| {
            old.content == entry.content
                && old.metadata == entry.metadata
                && **vector == *entry.vector
        });
        if same {
            unchanged += 1;
        } else {
            if current.is_some() {
                updated += 1;
            } else {
                inserted += 1;
            }
            entry.prepare();
            match pending.get(&id) {
                Some(&i) => batch.upsert[i] = entry,
                None => {
                    pending.insert(id.clone(), batch.upsert.len());
                    batch.upsert.push(entry);
                }
            }
        }
        ids.push(id);
    }
    Ok((
        batch,
        UpsertReport::new(ids).with_counts(inserted, updated, unchanged),
    ))
}

/// Plans a delete of the stored ones of `ids` (each once).
fn plan_delete(state: &State, ids: impl IntoIterator<Item = DocumentId>) -> (Batch, usize) {
    let mut seen = std::collections::HashSet::new();
    let delete: Vec<DocumentId> = ids
        .into_iter()
        .filter(|id| state.index.contains_key(id) && seen.insert(id.clone()))
        .collect();
    let n = delete.len();
    (
        Batch {
            delete,
            ..Batch::default()
        },
        n,
    )
}

/// The `k` best entries under `filter` by `score` of their row (rows it scores `None` are
/// skipped),
/// best first, ties by id; a NaN score ranks last.
fn top_k(
    state: &State,
    k: usize,
    filter: Option<&Filter>,
    score: impl Fn(usize) -> Option<f32>,
    threshold: Option<f32>,
) -> Vec<(f32, usize)> {
    let rows: Vec<usize> = match filter {
        Some(f) => state.rows_matching(f),
        None => (0..state.entries.len()).collect(),
    };
    let hits: Vec<(f32, usize)> = rows
        .into_iter()
        .filter_map(|i| score(i).map(|s| (s, i)))
        .filter(|(s, _)| threshold.is_none_or(|t| *s >= t))
        .collect();
    rank(state, hits, k)
}

/// The `k` best of `hits` (score, entry index), best first, ties by id; a NaN score ranks
/// last.
fn rank(state: &State, mut hits: Vec<(f32, usize)>, k: usize) -> Vec<(f32, usize)> {
    // A total order even if a score were NaN (ranked last), so sorting cannot panic.
    let key = |s: f32| if s.is_nan() { f32::NEG_INFINITY } else { s };
    let by_rank = |a: &(f32, usize), b: &(f32, usize)| {
        key(b.0)
            .total_cmp(&key(a.0))
            .then_with(|| state.entries[a.1].id.cmp(&state.entries[b.1].id))
    };
    if k == 0 {
        return Vec::new();
    }
    if hits.len() > k {
        hits.select_nth_unstable_by(k - 1, by_rank);
        hits.truncate(k);
    }
    hits.sort_by(by_rank);
    hits
}

/// The `k` entries under `filter` with the best BM25 score for `text` (only entries sharing
/// a term with it), best first.
fn keyword_hits(state: &State, text: &str, k: usize, filter: Option<&Filter>) -> Vec<(f32, usize)> {
    let keywords = state.keywords();
    let query = keywords.index.query(text);
    if query.is_empty() {
        return Vec::new();
    }
    top_k(
        state,
        k,
        filter,
        |i| {
            let terms = keywords.terms.get(i)?;
            Some(query.score(terms)).filter(|s| *s > 0.0)
        },
        None,
    )
}

impl InMemoryVectorStore {
    /// Keyword search alone: the `k` documents with the best BM25 score for `text` (English
    /// analysis: see [`catena_core::keyword`]), under `filter`; documents without any of the
    /// query's terms are not returned.
    ///
    /// The store builds its keyword statistics for the first keyword or hybrid search (a
    /// store searched only by vector never analyses its texts): that search analyses every
    /// stored text, on the calling thread and holding back writes meanwhile (a time in
    /// proportion to the stored text). After a bulk load, one search from a blocking context
    /// (for example `tokio::task::spawn_blocking`) builds them ahead of the traffic. Later
    /// writes keep them up to date.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for `k = 0` or an invalid filter.
    pub fn keyword_search(
        &self,
        text: &str,
        k: usize,
        filter: Option<&Filter>,
    ) -> Result<Vec<ScoredDocument>> {
        if k == 0 {
            return Err(Error::invalid_input("k must be at least 1"));
        }
        if let Some(f) = filter {
            f.validate()?;
        }
        let state = self.inner.read();
        Ok(keyword_hits(&state, text, k, filter)
            .into_iter()
            .map(|(score, i)| ScoredDocument::new(state.entries[i].document(), score))
            .collect())
    }
}

/// Dense search and BM25 over the documents' contents (see
/// [`keyword_search`](InMemoryVectorStore::keyword_search)), `fetch_k` candidates each,
/// fused by [`catena_core::fuse`].
#[async_trait]
impl HybridSearch for InMemoryVectorStore {
    async fn hybrid_search(&self, request: HybridRequest) -> Result<Vec<HybridHit>> {
        request.validate()?;
        let inner = &*self.inner;
        let state = inner.read();
        check_dims(state.dimensions, request.vector.len(), "the query vector")?;
        let filter = request.filter.as_ref();
        let to_docs = |hits: Vec<(f32, usize)>| -> Vec<ScoredDocument> {
            hits.into_iter()
                .map(|(score, i)| ScoredDocument::new(state.entries[i].document(), score))
                .collect()
        };
        let dense = if request.vector_weight > 0.0 {
            to_docs(inner.dense_hits(&state, &request.vector, request.fetch_k, filter, None))
        } else {
            Vec::new()
        };
        let keyword = if request.text_weight > 0.0 {
            to_docs(keyword_hits(&state, &request.text, request.fetch_k, filter))
        } else {
            Vec::new()
        };
        Ok(fuse(dense, keyword, &request))
    }
}

#[async_trait]
impl VectorStore for InMemoryVectorStore {
    async fn upsert(&self, documents: Vec<EmbeddedDocument>) -> Result<UpsertReport> {
        self.run(move |inner| inner.write(|state| plan_upsert(state, documents)))
            .await
    }

    async fn search(&self, request: SearchRequest) -> Result<Vec<ScoredDocument>> {
        request.validate()?;
        let inner = &*self.inner;
        let state = inner.read();
        check_dims(state.dimensions, request.vector.len(), "the query vector")?;
        let hits = inner.dense_hits(
            &state,
            &request.vector,
            request.k,
            request.filter.as_ref(),
            request.score_threshold,
        );
        Ok(hits_to_documents(&state, hits, request.include_vectors))
    }

    async fn count(&self, filter: Option<&Filter>) -> Result<usize> {
        if let Some(f) = filter {
            f.validate()?;
        }
        let state = self.inner.read();
        Ok(match filter {
            None => state.entries.len(),
            Some(f) => state.rows_matching(f).len(),
        })
    }

    async fn delete(&self, ids: &[DocumentId]) -> Result<usize> {
        let ids = ids.to_vec();
        self.run(move |inner| inner.write(|state| Ok(plan_delete(state, ids))))
            .await
    }

    async fn delete_by_filter(&self, filter: &Filter) -> Result<usize> {
        filter.validate()?;
        let filter = filter.clone();
        self.run(move |inner| {
            inner.write(|state| {
                let doomed = state
                    .entries
                    .iter()
                    .filter(|e| filter.matches(&e.metadata))
                    .map(|e| e.id.clone());
                Ok(plan_delete(state, doomed))
            })
        })
        .await
    }

    async fn get(&self, ids: &[DocumentId]) -> Result<Vec<Document>> {
        let state = self.inner.read();
        Ok(ids
            .iter()
            .filter_map(|id| state.get(id).map(Entry::document))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    /// Equal metadata of entries written one after another is one map, in memory and after
    /// a reopen; a different map is not shared, and documents come back with their own
    /// metadata.
    #[tokio::test]
    async fn equal_metadata_written_together_shares_one_map() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.log");
        let doc = |i: usize, source: &str| {
            EmbeddedDocument::new(
                Document::new(format!("chunk {i}"))
                    .with_id(format!("c{i}"))
                    .with_metadata("source", source)
                    .with_metadata("tenant", "t"),
                vec![1.0, i as f32],
            )
        };
        let docs = (0..6)
            .map(|i| doc(i, if i < 4 { "a.md" } else { "b.md" }))
            .collect();
        let check = |store: &InMemoryVectorStore| {
            let state = store.inner.read();
            let m: Vec<&Arc<Metadata>> = state.entries.iter().map(|e| &e.metadata).collect();
            assert!((1..4).all(|i| Arc::ptr_eq(m[0], m[i])));
            assert!(!Arc::ptr_eq(m[3], m[4]));
            assert!(Arc::ptr_eq(m[4], m[5]));
            assert_eq!(m[5].get("source"), Some(&Value::from("b.md")));
        };
        {
            let store = InMemoryVectorStore::builder()
                .persist_to(&path)
                .build()
                .unwrap();
            store.upsert(docs).await.unwrap();
            check(&store);
            // An update with other metadata gets its own map; the others keep theirs.
            store.upsert(vec![doc(1, "c.md")]).await.unwrap();
            let hits = store.get(&["c1".into(), "c2".into()]).await.unwrap();
            assert_eq!(hits[0].metadata.get("source"), Some(&Value::from("c.md")));
            assert_eq!(hits[1].metadata.get("source"), Some(&Value::from("a.md")));
            store.upsert(vec![doc(1, "a.md")]).await.unwrap();
        }
        let reopened = InMemoryVectorStore::builder()
            .persist_to(&path)
            .build()
            .unwrap();
        check(&reopened);
    }

    /// Maps that `==` calls equal but that differ (the sign of a zero) are not shared.
    #[tokio::test]
    async fn metadata_equal_only_by_json_equality_is_not_shared() {
        let store = InMemoryVectorStore::new();
        let doc = |id: &str, x: f64| {
            EmbeddedDocument::new(
                Document::new(id).with_id(id).with_metadata("x", x),
                vec![1.0, 0.0],
            )
        };
        store
            .upsert(vec![doc("a", 0.0), doc("b", -0.0)])
            .await
            .unwrap();
        let docs = store.get(&["a".into(), "b".into()]).await.unwrap();
        let sign = |d: &Document| d.metadata["x"].as_f64().unwrap().is_sign_negative();
        assert!(!sign(&docs[0]));
        assert!(sign(&docs[1]), "b came back with a's 0.0");
    }

    /// A batch too large for its score budget is scored a few queries at a time, and still
    /// answers as single searches do.
    #[tokio::test]
    async fn a_batch_over_its_score_budget_is_scored_in_chunks() {
        let store = InMemoryVectorStore::new();
        let d = 8;
        let vector = |i: usize| -> Vec<f32> {
            (0..d)
                .map(|j| ((i * 31 + j * 17) % 23) as f32 - 11.0)
                .collect()
        };
        let docs = (0..300)
            .map(|i| EmbeddedDocument::new(Document::new("x").with_id(format!("c{i}")), vector(i)))
            .collect();
        store.upsert(docs).await.unwrap();
        let requests: Vec<SearchRequest> = (0..7)
            .map(|q| SearchRequest::new(vector(1_000 + q), 5))
            .collect();
        // Room for two queries' scores (300 rows × 4 bytes each): four chunks.
        let chunked = store.search_batch_within(&requests, 2 * 300 * 4).unwrap();
        let tiny = store.search_batch_within(&requests, 0).unwrap();
        for ((r, a), b) in requests.iter().zip(&chunked).zip(&tiny) {
            let one = store.search(r.clone()).await.unwrap();
            let key = |h: &[ScoredDocument]| -> Vec<(Option<DocumentId>, u32)> {
                h.iter()
                    .map(|h| (h.document.id.clone(), h.score.to_bits()))
                    .collect()
            };
            assert_eq!(key(a), key(&one));
            assert_eq!(key(b), key(&one));
            assert_eq!(a.len(), 5);
        }
    }
}
