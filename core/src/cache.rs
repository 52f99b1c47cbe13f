//! Cache storage for model calls: the byte stores behind the caching layers of
//! `catena-chains` (an exact LLM-response cache, a semantic cache, an embeddings cache).
//!
//! Two object-safe traits, each with a bounded in-memory implementation here and a Redis one
//! in `catena-vectorstores` (feature `redis`), so replicas can share one cache:
//! - [`CacheStore`]: bytes by key, with a TTL, in a namespace (one per tenant). Exact lookups.
//! - [`SemanticCacheStore`]: the stored value of the entry whose embedding is nearest to a
//!   query embedding, above a similarity threshold, among the entries of one namespace and
//!   scope. Capacity-bounded per namespace (and, in memory, over all namespaces), oldest
//!   entries evicted first.
//!
//! Namespaces never share entries: a value put in `"tenant-a"` is invisible in `"tenant-b"`.
//! Expired entries are never returned, whether or not they have been purged yet. A TTL of
//! 100 years or more (up to `Duration::MAX`) means "never expires" in every store.
//!
//! ```
//! use std::time::Duration;
//! use catena_core::{
//!     CacheStore, InMemoryCacheStore, InMemorySemanticCacheStore, SemanticCacheStore,
//!     SemanticEntry,
//! };
//!
//! # futures::executor::block_on(async {
//! let store = InMemoryCacheStore::new(1_000);
//! store.put("tenant-a", "k", b"answer".to_vec(), Some(Duration::from_secs(60))).await.unwrap();
//! assert_eq!(store.get("tenant-a", "k").await.unwrap(), Some(b"answer".to_vec()));
//! assert_eq!(store.get("tenant-b", "k").await.unwrap(), None);
//!
//! let semantic = InMemorySemanticCacheStore::new(100);
//! let entry = SemanticEntry::new("id-1", "scope", vec![1.0, 0.0], b"cached".to_vec());
//! semantic.insert("tenant-a", entry, None).await.unwrap();
//! let hit = semantic.nearest("tenant-a", "scope", &[0.99, 0.05], 0.9).await.unwrap().unwrap();
//! assert_eq!(hit.value, b"cached");
//! assert!(semantic.nearest("tenant-a", "scope", &[0.0, 1.0], 0.9).await.unwrap().is_none());
//! # });
//! ```

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use async_trait::async_trait;

use crate::embed::{cosine_similarity, Embedding};
use crate::error::Result;

/// Bytes by key, in namespaces, with an optional time to live: the storage of an exact cache.
///
/// Object-safe, so a cache layer holds `Arc<dyn CacheStore>` and the same layer works over
/// memory ([`InMemoryCacheStore`]) or Redis (`catena_vectorstores::RedisCacheStore`).
/// Implementations must keep namespaces apart and must never return an expired value.
#[async_trait]
pub trait CacheStore: Send + Sync {
    /// The value stored under `key` in `namespace`, unless absent or expired.
    ///
    /// # Errors
    /// Storage failures (a cache layer logs them and calls the model instead).
    async fn get(&self, namespace: &str, key: &str) -> Result<Option<Vec<u8>>>;

    /// Stores `value` under `key` in `namespace`, replacing any previous value; it expires
    /// after `ttl` (`None`: only capacity limits evict it). A `ttl` of 100 years or more
    /// (such as `Duration::MAX`) is the same as `None`.
    ///
    /// # Errors
    /// Storage failures.
    async fn put(
        &self,
        namespace: &str,
        key: &str,
        value: Vec<u8>,
        ttl: Option<Duration>,
    ) -> Result<()>;

    /// The values of many keys, one per key, in order. The default calls
    /// [`get`](Self::get) per key; remote stores fetch them in one round trip.
    ///
    /// # Errors
    /// Storage failures.
    async fn get_many(&self, namespace: &str, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>> {
        let mut out = Vec::with_capacity(keys.len());
        for key in keys {
            out.push(self.get(namespace, key).await?);
        }
        Ok(out)
    }

    /// Stores many `(key, value)` pairs with one TTL. The default calls [`put`](Self::put)
    /// per pair; remote stores send them in one round trip.
    ///
    /// # Errors
    /// Storage failures.
    async fn put_many(
        &self,
        namespace: &str,
        entries: Vec<(String, Vec<u8>)>,
        ttl: Option<Duration>,
    ) -> Result<()> {
        for (key, value) in entries {
            self.put(namespace, &key, value, ttl).await?;
        }
        Ok(())
    }
}

#[async_trait]
impl<T: CacheStore + ?Sized> CacheStore for Arc<T> {
    async fn get(&self, namespace: &str, key: &str) -> Result<Option<Vec<u8>>> {
        (**self).get(namespace, key).await
    }
    async fn put(
        &self,
        namespace: &str,
        key: &str,
        value: Vec<u8>,
        ttl: Option<Duration>,
    ) -> Result<()> {
        (**self).put(namespace, key, value, ttl).await
    }
    async fn get_many(&self, namespace: &str, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>> {
        (**self).get_many(namespace, keys).await
    }
    async fn put_many(
        &self,
        namespace: &str,
        entries: Vec<(String, Vec<u8>)>,
        ttl: Option<Duration>,
    ) -> Result<()> {
        (**self).put_many(namespace, entries, ttl).await
    }
}

#[async_trait]
impl<T: CacheStore + ?Sized> CacheStore for Box<T> {
    async fn get(&self, namespace: &str, key: &str) -> Result<Option<Vec<u8>>> {
        (**self).get(namespace, key).await
    }
    async fn put(
        &self,
        namespace: &str,
        key: &str,
        value: Vec<u8>,
        ttl: Option<Duration>,
    ) -> Result<()> {
        (**self).put(namespace, key, value, ttl).await
    }
    async fn get_many(&self, namespace: &str, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>> {
        (**self).get_many(namespace, keys).await
    }
    async fn put_many(
        &self,
        namespace: &str,
        entries: Vec<(String, Vec<u8>)>,
        ttl: Option<Duration>,
    ) -> Result<()> {
        (**self).put_many(namespace, entries, ttl).await
    }
}

/// One entry of a [`SemanticCacheStore`]: a prompt's embedding and the stored answer.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct SemanticEntry {
    /// The entry's id within its namespace; inserting the same id again replaces it.
    pub id: String,
    /// What must match exactly besides the embedding (a semantic chat cache puts the hash
    /// of the model and of everything in the request but the prompt here).
    pub scope: String,
    /// The prompt's embedding.
    pub embedding: Embedding,
    /// The stored value.
    pub value: Vec<u8>,
}

impl SemanticEntry {
    /// An entry.
    pub fn new(
        id: impl Into<String>,
        scope: impl Into<String>,
        embedding: Embedding,
        value: Vec<u8>,
    ) -> Self {
        SemanticEntry {
            id: id.into(),
            scope: scope.into(),
            embedding,
            value,
        }
    }
}

/// What [`SemanticCacheStore::nearest`] found.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct SemanticHit {
    /// The entry's id.
    pub id: String,
    /// Cosine similarity of the query to the entry's embedding.
    pub similarity: f32,
    /// The stored value.
    pub value: Vec<u8>,
}

impl SemanticHit {
    /// A hit.
    pub fn new(id: impl Into<String>, similarity: f32, value: Vec<u8>) -> Self {
        SemanticHit {
            id: id.into(),
            similarity,
            value,
        }
    }
}

/// Embeddings of previous prompts and their stored answers, searched by similarity: the
/// storage of a semantic cache.
///
/// Entries live in a namespace (one per tenant, never shared) and carry a scope that must
/// match exactly. Implementations bound the number of entries per namespace, evicting the
/// oldest first, and never return an expired entry. A `ttl` of 100 years or more (such as
/// `Duration::MAX`) means the entry never expires.
#[async_trait]
pub trait SemanticCacheStore: Send + Sync {
    /// The entry of `namespace` with the same `scope` whose embedding has the highest cosine
    /// similarity to `embedding`, when that similarity is at least `min_similarity`.
    /// Entries whose embedding has another length never match.
    ///
    /// # Errors
    /// Storage failures.
    async fn nearest(
        &self,
        namespace: &str,
        scope: &str,
        embedding: &[f32],
        min_similarity: f32,
    ) -> Result<Option<SemanticHit>>;

    /// Adds `entry` to `namespace` (replacing an entry with the same id), expiring after
    /// `ttl`; evicts the oldest entries beyond the store's capacity.
    ///
    /// # Errors
    /// Storage failures.
    async fn insert(
        &self,
        namespace: &str,
        entry: SemanticEntry,
        ttl: Option<Duration>,
    ) -> Result<()>;
}

#[async_trait]
impl<T: SemanticCacheStore + ?Sized> SemanticCacheStore for Arc<T> {
    async fn nearest(
        &self,
        namespace: &str,
        scope: &str,
        embedding: &[f32],
        min_similarity: f32,
    ) -> Result<Option<SemanticHit>> {
        (**self)
            .nearest(namespace, scope, embedding, min_similarity)
            .await
    }
    async fn insert(
        &self,
        namespace: &str,
        entry: SemanticEntry,
        ttl: Option<Duration>,
    ) -> Result<()> {
        (**self).insert(namespace, entry, ttl).await
    }
}

#[async_trait]
impl<T: SemanticCacheStore + ?Sized> SemanticCacheStore for Box<T> {
    async fn nearest(
        &self,
        namespace: &str,
        scope: &str,
        embedding: &[f32],
        min_similarity: f32,
    ) -> Result<Option<SemanticHit>> {
        (**self)
            .nearest(namespace, scope, embedding, min_similarity)
            .await
    }
    async fn insert(
        &self,
        namespace: &str,
        entry: SemanticEntry,
        ttl: Option<Duration>,
    ) -> Result<()> {
        (**self).insert(namespace, entry, ttl).await
    }
}

/// TTLs at least this long (100 years) mean "never expires", in every store (Redis rejects
/// deadlines that do not fit in 64 bits of milliseconds, so `Duration::MAX` cannot be sent).
pub const NEVER_EXPIRES_FROM: Duration = Duration::from_secs(100 * 365 * 24 * 60 * 60);

/// The TTL a cache store applies for a requested `ttl`: `None` (no expiry) for none and for
/// 100 years or more (up to `Duration::MAX`), so every store reads a huge TTL the same way.
pub fn effective_ttl(ttl: Option<Duration>) -> Option<Duration> {
    ttl.filter(|t| *t < NEVER_EXPIRES_FROM)
}

fn expiry(ttl: Option<Duration>) -> Option<Instant> {
    effective_ttl(ttl).and_then(|t| Instant::now().checked_add(t))
}

fn is_expired(expires: Option<Instant>, now: Instant) -> bool {
    expires.is_some_and(|at| at <= now)
}

type SlotKey = (String, String);

struct Slot {
    value: Vec<u8>,
    expires: Option<Instant>,
    /// Position in the recency order.
    tick: u64,
    /// The tick of the put that stored it: tells entries with one deadline apart.
    born: u64,
}

#[derive(Default)]
struct Lru {
    slots: HashMap<SlotKey, Slot>,
    /// tick → key, least recently used first.
    order: BTreeMap<u64, SlotKey>,
    /// (deadline, born) → key, soonest first: expired entries are purged without a scan.
    expiries: BTreeMap<(Instant, u64), SlotKey>,
    next_tick: u64,
}

impl Lru {
    fn tick(&mut self) -> u64 {
        self.next_tick += 1;
        self.next_tick
    }

    fn get(&mut self, key: SlotKey, now: Instant) -> Option<Vec<u8>> {
        let expired = is_expired(self.slots.get(&key)?.expires, now);
        if expired {
            self.remove(&key);
            return None;
        }
        let tick = self.tick();
        let slot = self.slots.get_mut(&key)?;
        let old = std::mem::replace(&mut slot.tick, tick);
        let value = slot.value.clone();
        self.order.remove(&old);
        self.order.insert(tick, key);
        Some(value)
    }

    fn put(
        &mut self,
        key: SlotKey,
        value: Vec<u8>,
        expires: Option<Instant>,
        max: usize,
        now: Instant,
    ) {
        self.remove(&key);
        if self.slots.len() >= max {
            // Expired entries make room before any live one is evicted.
            self.purge_expired(now);
        }
        while self.slots.len() >= max {
            let Some(victim) = self.order.first_key_value().map(|(_, k)| k.clone()) else {
                break;
            };
            self.remove(&victim);
        }
        let tick = self.tick();
        self.order.insert(tick, key.clone());
        if let Some(at) = expires {
            self.expiries.insert((at, tick), key.clone());
        }
        self.slots.insert(
            key,
            Slot {
                value,
                expires,
                tick,
                born: tick,
            },
        );
    }

    fn remove(&mut self, key: &SlotKey) {
        if let Some(slot) = self.slots.remove(key) {
            self.order.remove(&slot.tick);
            if let Some(at) = slot.expires {
                self.expiries.remove(&(at, slot.born));
            }
        }
    }

    fn purge_expired(&mut self, now: Instant) {
        while let Some(key) = self
            .expiries
            .first_key_value()
            .filter(|((at, _), _)| is_expired(Some(*at), now))
            .map(|(_, key)| key.clone())
        {
            self.remove(&key);
        }
    }
}

/// A bounded in-process [`CacheStore`]: at most `max_entries` values over all namespaces;
/// when full, expired values are dropped first, then the least recently used one (each in
/// O(log n)). Expiry is checked on every read. Cheap to share behind an `Arc`; not shared between processes (use
/// the Redis store for that).
///
/// ```
/// use catena_core::{CacheStore, InMemoryCacheStore};
///
/// # futures::executor::block_on(async {
/// let store = InMemoryCacheStore::new(2);
/// for key in ["a", "b", "c"] {
///     store.put("ns", key, key.as_bytes().to_vec(), None).await.unwrap();
/// }
/// assert_eq!(store.len(), 2);
/// assert_eq!(store.get("ns", "a").await.unwrap(), None); // least recently used: evicted
/// # });
/// ```
pub struct InMemoryCacheStore {
    max_entries: usize,
    lru: Mutex<Lru>,
}

impl fmt::Debug for InMemoryCacheStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InMemoryCacheStore")
            .field("max_entries", &self.max_entries)
            .field("len", &self.len())
            .finish()
    }
}

impl Default for InMemoryCacheStore {
    /// A store of [`DEFAULT_MAX_ENTRIES`](Self::DEFAULT_MAX_ENTRIES) entries.
    fn default() -> Self {
        Self::new(Self::DEFAULT_MAX_ENTRIES)
    }
}

impl InMemoryCacheStore {
    /// The capacity of [`InMemoryCacheStore::default`].
    pub const DEFAULT_MAX_ENTRIES: usize = 10_000;

    /// A store holding at most `max_entries` values (at least 1).
    pub fn new(max_entries: usize) -> Self {
        InMemoryCacheStore {
            max_entries: max_entries.max(1),
            lru: Mutex::new(Lru::default()),
        }
    }

    /// The capacity.
    pub fn max_entries(&self) -> usize {
        self.max_entries
    }

    /// How many unexpired values the store holds (expired ones are purged first).
    pub fn len(&self) -> usize {
        let mut lru = self.lock();
        lru.purge_expired(Instant::now());
        lru.slots.len()
    }

    /// Whether the store holds no unexpired value.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Lru> {
        self.lru.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[async_trait]
impl CacheStore for InMemoryCacheStore {
    async fn get(&self, namespace: &str, key: &str) -> Result<Option<Vec<u8>>> {
        let slot = (namespace.to_owned(), key.to_owned());
        Ok(self.lock().get(slot, Instant::now()))
    }

    async fn put(
        &self,
        namespace: &str,
        key: &str,
        value: Vec<u8>,
        ttl: Option<Duration>,
    ) -> Result<()> {
        let slot = (namespace.to_owned(), key.to_owned());
        self.lock()
            .put(slot, value, expiry(ttl), self.max_entries, Instant::now());
        Ok(())
    }
}

struct SemanticSlot {
    entry: SemanticEntry,
    expires: Option<Instant>,
    /// Insertion number, over all namespaces.
    seq: u64,
}

/// The entries of an [`InMemorySemanticCacheStore`], with their insertion order over all
/// namespaces. Every slot in `namespaces` has its `seq` in `order`, and no namespace is
/// empty.
#[derive(Default)]
struct SemanticState {
    /// Per namespace, its entries in insertion order (oldest first).
    namespaces: HashMap<String, VecDeque<SemanticSlot>>,
    /// seq → namespace, oldest insert first.
    order: BTreeMap<u64, String>,
    next_seq: u64,
}

impl SemanticState {
    fn len(&self) -> usize {
        self.order.len()
    }

    /// Removes the entries of `namespace` for which `remove` holds; forgets the namespace
    /// once it is empty.
    fn remove_where(&mut self, namespace: &str, mut remove: impl FnMut(&SemanticSlot) -> bool) {
        let Some(slots) = self.namespaces.get_mut(namespace) else {
            return;
        };
        let order = &mut self.order;
        slots.retain(|slot| {
            let gone = remove(slot);
            if gone {
                order.remove(&slot.seq);
            }
            !gone
        });
        if slots.is_empty() {
            self.namespaces.remove(namespace);
        }
    }

    /// Removes every expired entry of every namespace.
    fn purge_expired(&mut self, now: Instant) {
        let order = &mut self.order;
        self.namespaces.retain(|_, slots| {
            slots.retain(|slot| {
                let expired = is_expired(slot.expires, now);
                if expired {
                    order.remove(&slot.seq);
                }
                !expired
            });
            !slots.is_empty()
        });
    }

    /// Evicts the oldest entry of `namespace`.
    fn pop_oldest_in(&mut self, namespace: &str) {
        let Some(slots) = self.namespaces.get_mut(namespace) else {
            return;
        };
        if let Some(slot) = slots.pop_front() {
            self.order.remove(&slot.seq);
        }
        if slots.is_empty() {
            self.namespaces.remove(namespace);
        }
    }

    /// Evicts the oldest entry of all; false when there is none.
    fn pop_oldest(&mut self) -> bool {
        let Some((seq, namespace)) = self.order.pop_first() else {
            return false;
        };
        if let Some(slots) = self.namespaces.get_mut(&namespace) {
            // A namespace's entries are in insertion order: its oldest is in front.
            if slots.front().is_some_and(|s| s.seq == seq) {
                slots.pop_front();
            } else {
                slots.retain(|s| s.seq != seq);
            }
            if slots.is_empty() {
                self.namespaces.remove(&namespace);
            }
        }
        true
    }
}

/// A bounded in-process [`SemanticCacheStore`]: at most `max_entries_per_namespace` entries
/// per namespace and at most [`max_entries`](Self::max_entries) over all namespaces (so one
/// namespace per tenant cannot grow it without bound), the oldest inserted evicted first;
/// expired entries are dropped before a live one is evicted, and a namespace left empty is
/// forgotten. A lookup scans the namespace (brute force: fine for thousands of entries,
/// which is what a cache of prompts holds). Expiry is checked on every lookup.
///
/// ```
/// use catena_core::{InMemorySemanticCacheStore, SemanticCacheStore, SemanticEntry};
///
/// # futures::executor::block_on(async {
/// let store = InMemorySemanticCacheStore::new(1);
/// let a = SemanticEntry::new("a", "s", vec![1.0, 0.0], b"A".to_vec());
/// let b = SemanticEntry::new("b", "s", vec![0.0, 1.0], b"B".to_vec());
/// store.insert("ns", a, None).await.unwrap();
/// store.insert("ns", b, None).await.unwrap();
/// assert_eq!(store.len("ns"), 1); // "a" was evicted
/// assert!(store.nearest("ns", "s", &[1.0, 0.0], 0.9).await.unwrap().is_none());
///
/// // At most two entries over all namespaces.
/// let store = InMemorySemanticCacheStore::new(10).with_max_entries(2);
/// for tenant in ["t1", "t2", "t3"] {
///     let entry = SemanticEntry::new("id", "s", vec![1.0, 0.0], b"v".to_vec());
///     store.insert(tenant, entry, None).await.unwrap();
/// }
/// assert_eq!((store.len("t1"), store.total_len()), (0, 2));
/// # });
/// ```
pub struct InMemorySemanticCacheStore {
    max_entries_per_namespace: usize,
    max_entries: usize,
    state: Mutex<SemanticState>,
}

impl fmt::Debug for InMemorySemanticCacheStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (namespaces, entries) = {
            let state = self.lock();
            (state.namespaces.len(), state.len())
        };
        f.debug_struct("InMemorySemanticCacheStore")
            .field("max_entries_per_namespace", &self.max_entries_per_namespace)
            .field("max_entries", &self.max_entries)
            .field("namespaces", &namespaces)
            .field("entries", &entries)
            .finish()
    }
}

impl Default for InMemorySemanticCacheStore {
    /// A store of [`DEFAULT_MAX_ENTRIES_PER_NAMESPACE`](Self::DEFAULT_MAX_ENTRIES_PER_NAMESPACE)
    /// entries per namespace and [`DEFAULT_MAX_ENTRIES`](Self::DEFAULT_MAX_ENTRIES) in all.
    fn default() -> Self {
        Self::new(Self::DEFAULT_MAX_ENTRIES_PER_NAMESPACE)
    }
}

impl InMemorySemanticCacheStore {
    /// The capacity per namespace of [`InMemorySemanticCacheStore::default`].
    pub const DEFAULT_MAX_ENTRIES_PER_NAMESPACE: usize = 1_000;

    /// The capacity over all namespaces unless
    /// [`with_max_entries`](Self::with_max_entries) says otherwise (raised to the capacity
    /// per namespace when that is larger).
    pub const DEFAULT_MAX_ENTRIES: usize = 10_000;

    /// A store holding at most `max_entries_per_namespace` entries (at least 1) in each
    /// namespace, and at most [`DEFAULT_MAX_ENTRIES`](Self::DEFAULT_MAX_ENTRIES) (or
    /// `max_entries_per_namespace`, if larger) in all.
    pub fn new(max_entries_per_namespace: usize) -> Self {
        let max_entries_per_namespace = max_entries_per_namespace.max(1);
        InMemorySemanticCacheStore {
            max_entries_per_namespace,
            max_entries: Self::DEFAULT_MAX_ENTRIES.max(max_entries_per_namespace),
            state: Mutex::new(SemanticState::default()),
        }
    }

    /// Holds at most `max_entries` entries (at least 1) over all namespaces; beyond it the
    /// oldest entry of all is evicted, whatever its namespace.
    #[must_use]
    pub fn with_max_entries(mut self, max_entries: usize) -> Self {
        self.max_entries = max_entries.max(1);
        self
    }

    /// The capacity per namespace.
    pub fn max_entries_per_namespace(&self) -> usize {
        self.max_entries_per_namespace
    }

    /// The capacity over all namespaces.
    pub fn max_entries(&self) -> usize {
        self.max_entries
    }

    /// How many unexpired entries `namespace` holds (expired ones are purged first).
    pub fn len(&self, namespace: &str) -> usize {
        let now = Instant::now();
        let mut state = self.lock();
        state.remove_where(namespace, |s| is_expired(s.expires, now));
        state.namespaces.get(namespace).map_or(0, VecDeque::len)
    }

    /// How many unexpired entries all namespaces hold (expired ones are purged first).
    pub fn total_len(&self) -> usize {
        let mut state = self.lock();
        state.purge_expired(Instant::now());
        state.len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, SemanticState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[async_trait]
impl SemanticCacheStore for InMemorySemanticCacheStore {
    async fn nearest(
        &self,
        namespace: &str,
        scope: &str,
        embedding: &[f32],
        min_similarity: f32,
    ) -> Result<Option<SemanticHit>> {
        let now = Instant::now();
        let mut state = self.lock();
        state.remove_where(namespace, |s| is_expired(s.expires, now));
        let Some(entries) = state.namespaces.get(namespace) else {
            return Ok(None);
        };
        let best = entries
            .iter()
            .filter(|s| s.entry.scope == scope && s.entry.embedding.len() == embedding.len())
            .map(|s| (cosine_similarity(&s.entry.embedding, embedding), &s.entry))
            .filter(|(similarity, _)| *similarity >= min_similarity)
            .max_by(|a, b| a.0.total_cmp(&b.0));
        Ok(best.map(|(similarity, e)| SemanticHit::new(e.id.clone(), similarity, e.value.clone())))
    }

    async fn insert(
        &self,
        namespace: &str,
        entry: SemanticEntry,
        ttl: Option<Duration>,
    ) -> Result<()> {
        let now = Instant::now();
        let mut state = self.lock();
        state.remove_where(namespace, |s| {
            s.entry.id == entry.id || is_expired(s.expires, now)
        });
        while state
            .namespaces
            .get(namespace)
            .is_some_and(|slots| slots.len() >= self.max_entries_per_namespace)
        {
            state.pop_oldest_in(namespace);
        }
        if state.len() >= self.max_entries {
            // Expired entries of other namespaces make room before any live one is evicted.
            state.purge_expired(now);
        }
        while state.len() >= self.max_entries && state.pop_oldest() {}
        state.next_seq += 1;
        let seq = state.next_seq;
        state.order.insert(seq, namespace.to_owned());
        state
            .namespaces
            .entry(namespace.to_owned())
            .or_default()
            .push_back(SemanticSlot {
                entry,
                expires: expiry(ttl),
                seq,
            });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        futures::executor::block_on(f)
    }

    #[test]
    fn exact_store_keeps_namespaces_apart_and_honours_ttl() {
        block_on(async {
            let store = InMemoryCacheStore::new(10);
            store.put("a", "k", b"1".to_vec(), None).await.unwrap();
            store.put("b", "k", b"2".to_vec(), None).await.unwrap();
            assert_eq!(store.get("a", "k").await.unwrap(), Some(b"1".to_vec()));
            assert_eq!(store.get("b", "k").await.unwrap(), Some(b"2".to_vec()));
            assert_eq!(store.get("c", "k").await.unwrap(), None);

            store
                .put("a", "short", b"x".to_vec(), Some(Duration::from_millis(20)))
                .await
                .unwrap();
            assert!(store.get("a", "short").await.unwrap().is_some());
            std::thread::sleep(Duration::from_millis(40));
            assert_eq!(store.get("a", "short").await.unwrap(), None);
            assert_eq!(store.len(), 2);
        });
    }

    #[test]
    fn exact_store_evicts_least_recently_used_and_never_returns_expired() {
        block_on(async {
            let store = InMemoryCacheStore::new(3);
            for k in ["a", "b", "c"] {
                store.put("ns", k, k.into(), None).await.unwrap();
            }
            // Reading "a" makes "b" the least recently used.
            assert!(store.get("ns", "a").await.unwrap().is_some());
            store.put("ns", "d", b"d".to_vec(), None).await.unwrap();
            assert_eq!(store.get("ns", "b").await.unwrap(), None);
            assert!(store.get("ns", "a").await.unwrap().is_some());
            assert!(store.get("ns", "c").await.unwrap().is_some());

            // An expired entry is never returned and no longer counted.
            store
                .put("ns", "a", b"a".to_vec(), Some(Duration::from_millis(1)))
                .await
                .unwrap();
            std::thread::sleep(Duration::from_millis(5));
            assert_eq!(store.get("ns", "a").await.unwrap(), None);
            assert_eq!(store.len(), 2);
            store.put("ns", "e", b"e".to_vec(), None).await.unwrap();
            for k in ["c", "d", "e"] {
                assert!(store.get("ns", k).await.unwrap().is_some(), "{k}");
            }
            assert_eq!(store.len(), 3);

            // Replacing a key does not grow the store.
            store.put("ns", "e", b"E".to_vec(), None).await.unwrap();
            assert_eq!(store.len(), 3);
            assert_eq!(store.get("ns", "e").await.unwrap(), Some(b"E".to_vec()));
        });
    }

    #[test]
    fn exact_store_batches_keep_order() {
        block_on(async {
            let store = InMemoryCacheStore::default();
            store
                .put_many(
                    "ns",
                    vec![("x".into(), b"1".to_vec()), ("z".into(), b"3".to_vec())],
                    None,
                )
                .await
                .unwrap();
            let got = store
                .get_many("ns", &["z".into(), "y".into(), "x".into()])
                .await
                .unwrap();
            assert_eq!(got, vec![Some(b"3".to_vec()), None, Some(b"1".to_vec())]);
        });
    }

    #[test]
    fn semantic_store_matches_scope_threshold_and_nearest() {
        block_on(async {
            let store = InMemorySemanticCacheStore::new(10);
            let put = |id: &str, scope: &str, v: Vec<f32>| {
                store.insert(
                    "ns",
                    SemanticEntry::new(id, scope, v, id.as_bytes().to_vec()),
                    None,
                )
            };
            put("x", "s1", vec![1.0, 0.0, 0.0]).await.unwrap();
            put("xy", "s1", vec![0.8, 0.6, 0.0]).await.unwrap();
            put("other-scope", "s2", vec![1.0, 0.0, 0.0]).await.unwrap();
            put("short", "s1", vec![1.0, 0.0]).await.unwrap();

            let hit = store
                .nearest("ns", "s1", &[0.9, 0.1, 0.0], 0.5)
                .await
                .unwrap()
                .unwrap();
            assert_eq!(hit.id, "x");
            assert!(hit.similarity > 0.99);
            let hit = store
                .nearest("ns", "s1", &[0.7, 0.7, 0.0], 0.5)
                .await
                .unwrap()
                .unwrap();
            assert_eq!(hit.id, "xy");
            assert!(store
                .nearest("ns", "s1", &[0.0, 0.0, 1.0], 0.5)
                .await
                .unwrap()
                .is_none());
            assert_eq!(
                store
                    .nearest("ns", "s2", &[1.0, 0.0, 0.0], 0.5)
                    .await
                    .unwrap()
                    .unwrap()
                    .id,
                "other-scope"
            );
            assert!(store
                .nearest("other", "s1", &[1.0, 0.0, 0.0], 0.5)
                .await
                .unwrap()
                .is_none());
        });
    }

    #[test]
    fn semantic_store_evicts_oldest_replaces_ids_and_expires() {
        block_on(async {
            let store = InMemorySemanticCacheStore::new(2);
            let entry = |id: &str, v: Vec<f32>| SemanticEntry::new(id, "s", v, id.into());
            store
                .insert("ns", entry("a", vec![1.0, 0.0]), None)
                .await
                .unwrap();
            store
                .insert("ns", entry("a", vec![1.0, 0.0]), None)
                .await
                .unwrap();
            assert_eq!(store.len("ns"), 1, "same id replaces");
            store
                .insert("ns", entry("b", vec![0.0, 1.0]), None)
                .await
                .unwrap();
            store
                .insert("ns", entry("c", vec![-1.0, 0.0]), None)
                .await
                .unwrap();
            assert_eq!(store.len("ns"), 2);
            assert!(store
                .nearest("ns", "s", &[1.0, 0.0], 0.9)
                .await
                .unwrap()
                .is_none());
            // Other namespaces have their own capacity.
            store
                .insert("other", entry("z", vec![1.0, 0.0]), None)
                .await
                .unwrap();
            assert_eq!(store.len("ns"), 2);

            store
                .insert(
                    "ns",
                    entry("d", vec![1.0, 1.0]),
                    Some(Duration::from_millis(20)),
                )
                .await
                .unwrap();
            assert!(store
                .nearest("ns", "s", &[1.0, 1.0], 0.9)
                .await
                .unwrap()
                .is_some());
            std::thread::sleep(Duration::from_millis(40));
            assert!(store
                .nearest("ns", "s", &[1.0, 1.0], 0.9)
                .await
                .unwrap()
                .is_none());
        });
    }

    #[test]
    fn exact_store_purges_expired_entries_before_evicting_live_ones() {
        block_on(async {
            let store = InMemoryCacheStore::new(2);
            store.put("ns", "live", b"l".to_vec(), None).await.unwrap();
            store
                .put("ns", "short", b"s".to_vec(), Some(Duration::from_millis(1)))
                .await
                .unwrap();
            std::thread::sleep(Duration::from_millis(5));
            // The store is full, but one of its two entries has expired: that one goes.
            store.put("ns", "new", b"n".to_vec(), None).await.unwrap();
            assert_eq!(store.get("ns", "live").await.unwrap(), Some(b"l".to_vec()));
            assert_eq!(store.get("ns", "new").await.unwrap(), Some(b"n".to_vec()));
            assert_eq!(store.len(), 2);
        });
    }

    #[test]
    fn semantic_store_bounds_entries_across_namespaces() {
        block_on(async {
            // One entry per namespace, one namespace per tenant: the total is still bounded.
            let store = InMemorySemanticCacheStore::new(1);
            let n = 10_001;
            for i in 0..n {
                let entry = SemanticEntry::new("id", "s", vec![1.0, 0.0], b"v".to_vec());
                store
                    .insert(&format!("tenant-{i}"), entry, None)
                    .await
                    .unwrap();
            }
            assert_eq!(
                store.len("tenant-0"),
                0,
                "the oldest entry overall was evicted"
            );
            assert_eq!(store.len(&format!("tenant-{}", n - 1)), 1);
            let shown = format!("{store:?}");
            assert!(shown.contains("namespaces: 10000"), "{shown}");
        });
    }

    #[test]
    fn semantic_store_drops_empty_namespaces() {
        block_on(async {
            let store = InMemorySemanticCacheStore::new(10);
            let entry = SemanticEntry::new("id", "s", vec![1.0, 0.0], b"v".to_vec());
            store
                .insert("gone", entry.clone(), Some(Duration::from_millis(1)))
                .await
                .unwrap();
            store
                .insert("also-gone", entry, Some(Duration::from_millis(1)))
                .await
                .unwrap();
            std::thread::sleep(Duration::from_millis(5));
            assert!(store
                .nearest("gone", "s", &[1.0, 0.0], 0.5)
                .await
                .unwrap()
                .is_none());
            assert_eq!(store.len("also-gone"), 0);
            let shown = format!("{store:?}");
            assert!(shown.contains("namespaces: 0"), "{shown}");
        });
    }

    #[test]
    fn semantic_store_total_capacity_evicts_the_oldest_of_all_and_expired_first() {
        block_on(async {
            let store = InMemorySemanticCacheStore::new(2).with_max_entries(3);
            assert_eq!(
                (store.max_entries_per_namespace(), store.max_entries()),
                (2, 3)
            );
            let entry = |id: &str| SemanticEntry::new(id, "s", vec![1.0, 0.0], id.into());
            store.insert("a", entry("a1"), None).await.unwrap();
            store.insert("b", entry("b1"), None).await.unwrap();
            store.insert("a", entry("a2"), None).await.unwrap();
            store.insert("a", entry("a3"), None).await.unwrap(); // per namespace: a1 goes
            assert_eq!(
                (store.len("a"), store.len("b"), store.total_len()),
                (2, 1, 3)
            );
            store.insert("c", entry("c1"), None).await.unwrap(); // in all: b1 goes
            assert_eq!((store.len("a"), store.len("b"), store.len("c")), (2, 0, 1));
            let shown = format!("{store:?}");
            assert!(shown.contains("namespaces: 2"), "{shown}");

            // An expired entry elsewhere makes room before the oldest live one goes.
            store
                .insert("d", entry("d1"), Some(Duration::from_millis(1)))
                .await
                .unwrap(); // a2 goes
            std::thread::sleep(Duration::from_millis(5));
            store.insert("e", entry("e1"), None).await.unwrap(); // d1 (expired) goes
            assert_eq!(
                (
                    store.len("a"),
                    store.len("c"),
                    store.len("d"),
                    store.len("e")
                ),
                (1, 1, 0, 1)
            );
            assert_eq!(store.total_len(), 3);
            let hit = store.nearest("a", "s", &[1.0, 0.0], 0.9).await.unwrap();
            assert_eq!(hit.map(|h| h.id), Some("a3".to_owned()));
        });
    }

    #[test]
    fn huge_ttls_never_expire() {
        block_on(async {
            let store = InMemoryCacheStore::new(10);
            for ttl in [Duration::MAX, Duration::from_secs(200 * 365 * 24 * 3600)] {
                store
                    .put("ns", "k", b"v".to_vec(), Some(ttl))
                    .await
                    .unwrap();
                assert_eq!(store.get("ns", "k").await.unwrap(), Some(b"v".to_vec()));
                assert!(expiry(Some(ttl)).is_none());
            }
            assert!(expiry(Some(Duration::from_secs(60))).is_some());
            let semantic = InMemorySemanticCacheStore::new(10);
            let entry = SemanticEntry::new("id", "s", vec![1.0], b"v".to_vec());
            semantic
                .insert("ns", entry, Some(Duration::MAX))
                .await
                .unwrap();
            assert_eq!(semantic.len("ns"), 1);
        });
    }
}
