//! The in-memory store's optional approximate index (feature `hnsw`): an HNSW graph
//! (Catena's own, over int8 codes of the store's vectors: see `graph.rs`), used once the
//! store holds
//! [`min_rows`](HnswConfig::min_rows) documents. Below that, and whenever the graph cannot
//! fill `k`, searches are the exact scan.
//!
//! ```
//! use catena_core::{Document, EmbeddedDocument, SearchRequest, VectorStore};
//! use catena_vectorstores::{DistanceMetric, HnswConfig, InMemoryVectorStore};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let store = InMemoryVectorStore::builder()
//!     .metric(DistanceMetric::Cosine)
//!     .hnsw(HnswConfig::new().min_rows(1_000).ef_search(64))
//!     .build()
//!     .unwrap();
//! let docs = (0..2_000u32)
//!     .map(|i| {
//!         let angle = i as f32 / 100.0;
//!         EmbeddedDocument::new(
//!             Document::new(format!("doc {i}")).with_id(format!("d{i}")),
//!             vec![angle.cos(), angle.sin(), 1.0],
//!         )
//!     })
//!     .collect();
//! store.upsert(docs).await.unwrap();
//! // 2,000 documents, past `min_rows`: the first search builds the graph and uses it.
//! let hits = store.search(SearchRequest::new(vec![1.0, 0.0, 1.0], 3)).await.unwrap();
//! assert_eq!(hits[0].document.id.as_ref().unwrap().as_str(), "d0");
//! # }
//! ```
//!
//! How the graph follows the store:
//! - HNSW point ids are the index's own *slots*, mapped to arena rows (`row_of_slot`) and
//!   back (`slot_of_row`), so a delete that moves the last row into the hole only updates
//!   the map. A slot is never reused until the graph is rebuilt.
//! - An insert adds a point; an update whose vector changed tombstones the old slot and adds
//!   a point (an update of content or metadata alone keeps it); a delete tombstones. The
//!   points of one write go in after the write is applied, one after another, under the
//!   store's write lock (about 0.12 ms a point at 100,000 × 384: a write of 50,000 new
//!   documents holds searches back for several seconds; `prepare_index` after a bulk load
//!   builds the whole graph at the same rate).
//! - When more than [`REBUILD_FRACTION`] of the points are tombstones, or the store shrinks
//!   below `min_rows`, the graph is dropped; the next search past `min_rows` builds it again
//!   from the arena ([`InMemoryVectorStore::prepare_index`] builds it ahead of time).
//! - Searches never trust the graph's distances: the candidates are scored again against
//!   the arena with the store's kernels, so a hit's score is exactly the exact scan's.
//! - Filters: one expected to match fewer than `min_rows` documents takes the exact scan; a
//!   common one is applied to the candidates of a widened plain search; the rest are
//!   checked during the graph walk (which passes through the points that fail it). Whenever
//!   fewer than `k`
//!   live matching candidates come back, the exact scan answers instead.

use std::fmt;
use std::num::NonZeroUsize;
use std::sync::{PoisonError, RwLock, RwLockReadGuard};

use super::graph::{splitmix64, Hnsw, Kind};
use super::kernel::Rows;
use super::{check_dims, hits_to_documents, kernel, DistanceMetric, InMemoryVectorStore, Inner};
use super::{Entry, State};
use catena_core::{Error, Filter, Result, ScoredDocument, SearchRequest};

/// The graph is dropped (and rebuilt by the next search) when more than this fraction of
/// its points are tombstones: past it, searches spend more and more of their `ef` on
/// deleted documents.
const REBUILD_FRACTION: f64 = 0.25;

/// Rows sampled to estimate how many documents a filter matches.
const FILTER_SAMPLE: usize = 256;

/// Filters expected to match at least this share of the documents are applied to the
/// candidates of a widened plain search (at most 16 × `ef`, more with tombstones), not
/// during the graph walk.
const POST_FILTER_SHARE: f64 = 0.125;

/// The most links per point and level that [`HnswConfig::m`] accepts.
const MAX_M: usize = 255;

/// No row: the slot's document was deleted or updated (a tombstone).
const DEAD: usize = usize::MAX;

/// Settings of the in-memory store's HNSW index (feature `hnsw`), passed to
/// [`InMemoryVectorStoreBuilder::hnsw`](super::InMemoryVectorStoreBuilder::hnsw).
///
/// The index serves [`DistanceMetric::Cosine`] (an angular distance on unit-length copies of
/// the vectors) and [`DistanceMetric::Euclidean`] (squared L2); `build()` refuses it for
/// [`DistanceMetric::DotProduct`], whose "distance" between unnormalised vectors is not a
/// metric a proximity graph can navigate. Memory: the graph keeps int8 codes of every
/// vector (a quarter of its full-precision size) and `2 × m + 1` four-byte links per
/// document, plus a few more for the one in `m` that has upper levels: 5.3 MB for 10,000
/// documents of 384 dimensions at `m` 16, beside the store's own 15.4 MB of vectors.
///
/// ```
/// use catena_vectorstores::HnswConfig;
///
/// let config = HnswConfig::new().min_rows(50_000).m(24).ef_construction(200).ef_search(100);
/// assert_eq!(config.get_ef_search(), 100);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
#[must_use]
pub struct HnswConfig {
    min_rows: usize,
    m: usize,
    ef_construction: usize,
    ef_search: usize,
    capacity: usize,
}

impl Default for HnswConfig {
    fn default() -> Self {
        HnswConfig {
            min_rows: 20_000,
            m: 16,
            ef_construction: 100,
            ef_search: 64,
            capacity: 0,
        }
    }
}

impl HnswConfig {
    /// The defaults: `min_rows` 20,000, `m` 16, `ef_construction` 100, `ef_search` 64,
    /// `capacity` 0 (sized to the store when the graph is built).
    pub fn new() -> Self {
        Self::default()
    }

    /// The store size from which searches use the graph; smaller stores (and filters
    /// expected to match fewer documents) are scanned exactly. Default 20,000: an exact
    /// scan of 20,000 × 384 floats takes under a millisecond on one core (about 0.4 ms at
    /// 10,000), is exact, and needs no graph in memory; past it the scan grows linearly
    /// while a graph search stays near 0.1–0.3 ms. `0` uses the graph at any size.
    pub fn min_rows(mut self, rows: usize) -> Self {
        self.min_rows = rows;
        self
    }

    /// Links per point and layer (the bottom layer keeps `2 × m`). More links: better
    /// recall, slower builds, more memory. Default 16; 2 to 255.
    pub fn m(mut self, m: usize) -> Self {
        self.m = m;
        self
    }

    /// Candidates examined when a point is linked in. Larger: a better graph, slower
    /// inserts. Default 100; at least 1.
    pub fn ef_construction(mut self, ef: usize) -> Self {
        self.ef_construction = ef;
        self
    }

    /// Candidates examined per search (at least `k` are): the recall / speed dial.
    /// Default 64; at least 1. [`InMemoryVectorStore::search_with_ef`] overrides it per
    /// search.
    pub fn ef_search(mut self, ef: usize) -> Self {
        self.ef_search = ef;
        self
    }

    /// How many documents the graph's tables are first sized for. A hint, not a limit: the
    /// graph grows past it. Default 0: the number of documents when the graph is built.
    pub fn capacity(mut self, documents: usize) -> Self {
        self.capacity = documents;
        self
    }

    /// See [`min_rows`](Self::min_rows).
    pub fn get_min_rows(&self) -> usize {
        self.min_rows
    }

    /// See [`m`](Self::m).
    pub fn get_m(&self) -> usize {
        self.m
    }

    /// See [`ef_construction`](Self::ef_construction).
    pub fn get_ef_construction(&self) -> usize {
        self.ef_construction
    }

    /// See [`ef_search`](Self::ef_search).
    pub fn get_ef_search(&self) -> usize {
        self.ef_search
    }

    /// See [`capacity`](Self::capacity).
    pub fn get_capacity(&self) -> usize {
        self.capacity
    }

    fn validate(&self, metric: DistanceMetric) -> Result<()> {
        if !(2..=MAX_M).contains(&self.m) {
            return Err(Error::invalid_config(format!(
                "HNSW m must be between 2 and {MAX_M}, not {}",
                self.m
            )));
        }
        if self.ef_construction == 0 || self.ef_search == 0 {
            return Err(Error::invalid_config(
                "HNSW ef_construction and ef_search must be at least 1",
            ));
        }
        if metric == DistanceMetric::DotProduct {
            return Err(Error::invalid_config(
                "the HNSW index serves the Cosine and Euclidean metrics; with DotProduct \
                 the in-memory store searches exactly (leave out .hnsw(..))",
            ));
        }
        Ok(())
    }
}

/// The index of a store: its settings and, once built, its graph.
pub(super) struct Index {
    config: HnswConfig,
    kind: Kind,
    /// `None` until a search past `min_rows` (or [`InMemoryVectorStore::prepare_index`])
    /// builds it, and again after a write drops it. Writes reach it through `&mut State`;
    /// searches hold the state's read lock, so the graph never changes under them.
    graph: RwLock<Option<Graph>>,
}

impl fmt::Debug for Index {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // `try_read`: a search may be building the graph right now.
        let points = match self.graph.try_read() {
            Ok(graph) => graph.as_ref().map(|g| g.hnsw.points()),
            Err(_) => None,
        };
        f.debug_struct("Index")
            .field("config", &self.config)
            .field("kind", &self.kind)
            .field("points", &points)
            .finish()
    }
}

/// An HNSW graph over the store's rows.
struct Graph {
    hnsw: Hnsw,
    /// The arena row of each point id (slot), or [`DEAD`].
    row_of_slot: Vec<usize>,
    /// The slot of each arena row.
    slot_of_row: Vec<usize>,
    /// Slots given to rows by the current write, not yet in the graph.
    pending: Vec<usize>,
    /// Live points: points of the graph whose slot still has a row.
    live: usize,
}

impl Index {
    /// The index of a store with `metric`.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] for settings out of range or the dot-product metric.
    pub(super) fn new(config: HnswConfig, metric: DistanceMetric) -> Result<Index> {
        config.validate(metric)?;
        Ok(Index {
            config,
            kind: match metric {
                DistanceMetric::Euclidean => Kind::L2Squared,
                DistanceMetric::Cosine | DistanceMetric::DotProduct => Kind::Angular,
            },
            graph: RwLock::new(None),
        })
    }

    fn graph_mut(&mut self) -> Option<&mut Graph> {
        self.graph
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .as_mut()
    }

    /// Whether searches of a store of `rows` documents go through the graph.
    pub(super) fn serves(&self, rows: usize) -> bool {
        rows > 0 && rows >= self.config.min_rows
    }

    /// A new row `row` was pushed.
    pub(super) fn pushed(&mut self, row: usize) {
        if let Some(g) = self.graph_mut() {
            let slot = g.row_of_slot.len();
            g.row_of_slot.push(row);
            debug_assert_eq!(g.slot_of_row.len(), row);
            g.slot_of_row.push(slot);
            g.pending.push(slot);
        }
    }

    /// The vector of row `row` changed: its old point becomes a tombstone, a new one takes
    /// its place.
    pub(super) fn replaced(&mut self, row: usize) {
        if let Some(g) = self.graph_mut() {
            let Some(old) = g.slot_of_row.get(row).copied() else {
                return;
            };
            g.kill(old);
            let slot = g.row_of_slot.len();
            g.row_of_slot.push(row);
            g.slot_of_row[row] = slot;
            g.pending.push(slot);
        }
    }

    /// Row `row` was removed by `swap_remove` (the last row, if any, moved into it).
    pub(super) fn swap_removed(&mut self, row: usize) {
        if let Some(g) = self.graph_mut() {
            if row >= g.slot_of_row.len() {
                return;
            }
            let slot = g.slot_of_row.swap_remove(row);
            g.kill(slot);
            if let Some(&moved) = g.slot_of_row.get(row) {
                g.row_of_slot[moved] = row;
            }
        }
    }

    /// After a write: links in its new points, or drops the graph when the store shrank
    /// below `min_rows` or too many points are tombstones.
    pub(super) fn written(&mut self, arena: Rows<'_>, d: usize, entries: &[Entry]) {
        let serves = self.serves(entries.len());
        let kind = self.kind;
        let slot = self.graph.get_mut().unwrap_or_else(PoisonError::into_inner);
        let Some(g) = slot.as_mut() else {
            return;
        };
        let points = g.hnsw.points();
        let dead = points.saturating_sub(g.live);
        let pending = std::mem::take(&mut g.pending);
        let new: Vec<(usize, usize)> = pending
            .into_iter()
            .filter_map(|s| {
                g.row_of_slot
                    .get(s)
                    .filter(|&&r| r != DEAD)
                    .map(|&r| (s, r))
            })
            .collect();
        let total = points + new.len();
        if !serves || dead as f64 > REBUILD_FRACTION * total.max(1) as f64 {
            *slot = None;
            return;
        }
        g.insert(kind, arena, d, entries, &new);
    }

    /// Builds the graph from the whole arena now (replacing any).
    pub(super) fn rebuild(&mut self, arena: Rows<'_>, d: usize, entries: &[Entry]) {
        let graph = Graph::build(&self.config, self.kind, arena, d, entries);
        *self.graph.get_mut().unwrap_or_else(PoisonError::into_inner) = Some(graph);
    }

    /// The graph for searching `state`, built first when the store has none yet. `None`
    /// when searches of `state` do not use the index.
    fn graph_for<'a>(&'a self, state: &State) -> Option<RwLockReadGuard<'a, Option<Graph>>> {
        let rows = state.entries.len();
        if !self.serves(rows) {
            return None;
        }
        {
            let graph = self.graph.read().unwrap_or_else(PoisonError::into_inner);
            if graph.is_some() {
                return Some(graph);
            }
        }
        {
            let mut graph = self.graph.write().unwrap_or_else(PoisonError::into_inner);
            if graph.is_none() {
                let d = state.dimensions.unwrap_or(0);
                let built = Graph::build(
                    &self.config,
                    self.kind,
                    state.arena.rows(),
                    d,
                    &state.entries,
                );
                *graph = Some(built);
            }
        }
        Some(self.graph.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// The share of the store's documents that `filter` matches, estimated from a fixed
    /// pseudo-random sample of rows (every row of a small store).
    fn estimate_share(state: &State, filter: &Filter) -> f64 {
        let n = state.entries.len();
        let matches = |e: &Entry| filter.matches(&e.metadata);
        if n <= FILTER_SAMPLE {
            let hits = state.entries.iter().filter(|e| matches(e)).count();
            return hits as f64 / n.max(1) as f64;
        }
        let hits = (0..FILTER_SAMPLE as u64)
            .filter(|&j| {
                let i = (splitmix64(j) % n as u64) as usize;
                state.entries.get(i).is_some_and(matches)
            })
            .count();
        hits as f64 / FILTER_SAMPLE as f64
    }

    /// The rows of the graph's nearest live candidates of `query` under `filter`, best
    /// first by the graph's distance; `None` when the exact scan should answer: the store
    /// is below `min_rows`, the query has no direction (cosine), or the filter is expected
    /// to match fewer than `min_rows` documents (the exact scan of few matching rows beats
    /// walking a graph where they are scarce).
    ///
    /// A filter expected to match at least [`POST_FILTER_SHARE`] of the documents: the
    /// plain graph search with `ef` widened by twice the inverse of that share, keeping the
    /// matching candidates, when at least `ef` match. A rarer filter, or one that matches
    /// few of this query's neighbours: the filtered walk, which checks the filter at each
    /// point it visits and keeps going until it holds `4 × ef` matches (it never stops
    /// early, so for common filters it costs several times the plain search).
    fn candidates(
        &self,
        state: &State,
        query: &[f32],
        k: usize,
        filter: Option<&Filter>,
        ef_search: Option<usize>,
    ) -> Option<Vec<usize>> {
        let rows = state.entries.len();
        let (share, filter) = match filter {
            None => (1.0, None),
            Some(f) => {
                let count = state.filters.count(&state.entries, f);
                let share = count.map_or_else(
                    || Self::estimate_share(state, f),
                    |c| c as f64 / rows.max(1) as f64,
                );
                if share * (rows as f64) < self.config.min_rows.max(k) as f64 {
                    return None;
                }
                // A filter that selects every row (counted, not estimated: one tenant's
                // store) changes nothing: search without checking it on each candidate.
                (share, if count == Some(rows) { None } else { Some(f) })
            }
        };
        let unit;
        let query = match self.kind {
            Kind::L2Squared => query,
            Kind::Angular => {
                let n = super::norm(query);
                if n == 0.0 || !n.is_finite() {
                    return None;
                }
                unit = query.iter().map(|x| x / n).collect::<Vec<f32>>();
                unit.as_slice()
            }
        };
        let guard = self.graph_for(state)?;
        let g = guard.as_ref()?;
        let ef = ef_search.unwrap_or(self.config.ef_search).max(k).max(1);
        // The live row of a point: tombstones ([`DEAD`]) map past the last row.
        let live = |slot: usize| g.row_of_slot.get(slot).copied().filter(|&r| r < rows);
        let matching = |r: usize| {
            filter.is_none_or(|f| state.entries.get(r).is_some_and(|e| f.matches(&e.metadata)))
        };
        if share >= POST_FILTER_SHARE {
            // Tombstones and non-matching points take places among the nearest: widen by
            // their share, so that about `ef` live matching candidates come back.
            let dead_factor = g.hnsw.points() as f64 / g.live.max(1) as f64;
            // With a filter, twice that: the graph ranks by int8 codes, and the matching
            // candidates at the tail of a beam just `ef / share` wide are where a filtered
            // search lost recall (0.97 against 0.99 on the tests' clustered vectors).
            let margin = if filter.is_some() { 2.0 } else { 1.0 };
            let wide = ((margin * ef as f64 * dead_factor / share).ceil() as usize).max(ef);
            let found = g.hnsw.search(query, wide, None);
            let rows: Vec<usize> = found
                .into_iter()
                .filter_map(live)
                .filter(|&r| matching(r))
                .collect();
            // Fewer than `ef` (half of what the widening expects): the filter avoids this
            // query's neighbourhood (it follows the clusters), and the last of these
            // candidates, from the graph's least accurate tail, would stand in for better
            // ones: walk with the filter.
            if filter.is_none() || rows.len() >= ef.max(k) {
                return Some(rows);
            }
        }
        let keep = |slot: usize| live(slot).is_some_and(matching);
        // Four times `ef`: a filter that follows the clusters leaves the walk few matching
        // points near the query, and int8 distances rank those few less surely. On the
        // benchmark's 100,000 vectors, recall@10 under such a filter was 0.967 with `ef`,
        // 0.974 with 2 × `ef` (after the plain search at half `ef` matching), 0.984 with
        // 4 × `ef` (after it at `ef`), at half the speed of 2 × (hnsw_rs had 0.98).
        let found = g.hnsw.search(query, ef.saturating_mul(4), Some(&keep));
        Some(found.into_iter().filter_map(live).collect())
    }
}

impl Graph {
    /// A graph of the rows of `arena` (one per entry), point id = row.
    fn build(
        config: &HnswConfig,
        kind: Kind,
        arena: Rows<'_>,
        d: usize,
        entries: &[Entry],
    ) -> Graph {
        let rows = entries.len();
        let mut hnsw = Hnsw::new(kind, d, config.m, config.ef_construction);
        hnsw.reserve(config.capacity.max(rows));
        let mut g = Graph {
            hnsw,
            row_of_slot: (0..rows).collect(),
            slot_of_row: (0..rows).collect(),
            pending: Vec::new(),
            live: 0,
        };
        let all: Vec<(usize, usize)> = (0..rows).map(|r| (r, r)).collect();
        g.insert(kind, arena, d, entries, &all);
        g
    }

    /// Links in the points `(slot, row)` (slots increasing), the vectors read from `arena`
    /// (scaled to unit length with the entries' norms for the angular distance).
    fn insert(
        &mut self,
        kind: Kind,
        arena: Rows<'_>,
        d: usize,
        entries: &[Entry],
        new: &[(usize, usize)],
    ) {
        if d == 0 {
            return;
        }
        let before = self.hnsw.points();
        self.hnsw.insert(new.iter().filter_map(|&(slot, r)| {
            let v = arena.row(r, d)?;
            let unit = match kind {
                Kind::L2Squared => 1.0,
                Kind::Angular => {
                    let n = entries.get(r).map_or(0.0, |e| e.norm);
                    if n > 0.0 {
                        1.0 / n
                    } else {
                        0.0
                    }
                }
            };
            Some((slot, v, unit))
        }));
        self.live += self.hnsw.points() - before;
    }

    /// Points in the graph: the slots given before the current write (its own slots,
    /// `pending`, are the last ones).
    fn in_graph(&self) -> usize {
        self.row_of_slot.len() - self.pending.len()
    }

    /// Makes `slot` a tombstone.
    fn kill(&mut self, slot: usize) {
        if let Some(r) = self.row_of_slot.get_mut(slot) {
            if *r != DEAD {
                *r = DEAD;
                if slot < self.in_graph() {
                    self.live = self.live.saturating_sub(1);
                }
            }
        }
    }
}

impl Inner {
    /// The `k` best entries under `filter` from the graph's candidates, scored exactly
    /// against the arena (so each score is the exact scan's); `None` when the exact scan
    /// must answer: the index is off or does not serve this store or filter, or fewer than
    /// `k` live matching candidates came back.
    pub(super) fn approximate_hits(
        &self,
        state: &State,
        query: &[f32],
        k: usize,
        filter: Option<&Filter>,
        threshold: Option<f32>,
        ef_search: Option<usize>,
    ) -> Option<Vec<(f32, usize)>> {
        let index = state.hnsw.as_ref()?;
        let rows = index.candidates(state, query, k, filter, ef_search)?;
        if rows.len() < k {
            return None;
        }
        let mut raw = vec![0.0f32; rows.len()];
        let d = state.dimensions.unwrap_or(0);
        kernel::scan(
            self.kernel(),
            state.arena.rows(),
            d,
            query,
            Some(&rows),
            &mut raw,
        );
        Some(self.best(state, query, &raw, Some(&rows), k, threshold))
    }
}

/// Batches of at least this many searches through the graph are split across threads.
const PARALLEL_BATCH_MIN: usize = 16;

impl Inner {
    /// [`InMemoryVectorStore::search_batch`] through the graph (requests validated), in
    /// order; a large batch on every core.
    pub(super) fn search_batch_indexed(
        &self,
        state: &State,
        requests: &[SearchRequest],
    ) -> Vec<Vec<ScoredDocument>> {
        // Built here, once, not by the first search of each thread.
        state.ensure_index();
        let answer = |r: &SearchRequest| {
            let hits = self.dense_hits(state, &r.vector, r.k, r.filter.as_ref(), r.score_threshold);
            hits_to_documents(state, hits, r.include_vectors)
        };
        let threads = if requests.len() >= PARALLEL_BATCH_MIN {
            std::thread::available_parallelism()
                .map_or(1, NonZeroUsize::get)
                .min(requests.len() / (PARALLEL_BATCH_MIN / 2))
        } else {
            1
        };
        if threads <= 1 {
            return requests.iter().map(answer).collect();
        }
        let per = requests.len().div_ceil(threads);
        std::thread::scope(|scope| {
            let parts: Vec<_> = requests
                .chunks(per)
                .map(|part| {
                    let handle = scope.spawn(move || part.iter().map(answer).collect::<Vec<_>>());
                    (part, handle)
                })
                .collect();
            parts
                .into_iter()
                .flat_map(|(part, handle)| {
                    // A search does not panic; were one to, its part is answered again on
                    // this thread, where the panic surfaces as it would without threads.
                    handle
                        .join()
                        .unwrap_or_else(|_| part.iter().map(answer).collect())
                })
                .collect()
        })
    }
}

impl State {
    /// Whether searches of this state go through the HNSW graph.
    pub(super) fn uses_index(&self) -> bool {
        self.hnsw
            .as_ref()
            .is_some_and(|ix| ix.serves(self.entries.len()))
    }

    /// Builds the graph now when searches use it and it is not built yet.
    fn ensure_index(&self) -> bool {
        self.hnsw
            .as_ref()
            .is_some_and(|ix| ix.graph_for(self).is_some())
    }
}

impl InMemoryVectorStore {
    /// Builds the HNSW graph now, when the store is configured with one
    /// ([`hnsw`](super::InMemoryVectorStoreBuilder::hnsw)), holds at least `min_rows`
    /// documents and has none built: otherwise the next search does, and that search waits
    /// for it (seconds at 100,000 documents). Call it from a blocking context (for example
    /// `tokio::task::spawn_blocking`) after a bulk load, a restart or many deletes.
    /// Returns whether searches now use the graph.
    pub fn prepare_index(&self) -> bool {
        self.inner.read().ensure_index()
    }

    /// [`VectorStore::search`](catena_core::VectorStore::search) with `ef_search`
    /// candidates examined in the HNSW graph instead of the configured number (more:
    /// better recall, slower). Without an index, or below its `min_rows`, the same as
    /// `search`.
    ///
    /// # Errors
    /// As `search`, and [`Error::InvalidInput`] for `ef_search = 0`.
    pub fn search_with_ef(
        &self,
        request: SearchRequest,
        ef_search: usize,
    ) -> Result<Vec<ScoredDocument>> {
        request.validate()?;
        if ef_search == 0 {
            return Err(Error::invalid_input("ef_search must be at least 1"));
        }
        let inner = &*self.inner;
        let state = inner.read();
        check_dims(state.dimensions, request.vector.len(), "the query vector")?;
        let filter = request.filter.as_ref();
        let (q, k, t) = (&request.vector, request.k, request.score_threshold);
        let hits = inner
            .approximate_hits(&state, q, k, filter, t, Some(ef_search))
            .unwrap_or_else(|| inner.exact_hits(&state, q, k, filter, t));
        Ok(hits_to_documents(&state, hits, request.include_vectors))
    }
}
