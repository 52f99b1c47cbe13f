//! [`CachedEmbedder`]: the embeddings cache.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use catena_core::{CacheStore, Embedder, Embedding, Error, Result};
use tracing::{Instrument, Span};

use super::{
    digest, lookup_span, CacheKind, CacheStats, Counters, Outcome, DEFAULT_CACHE_NAMESPACE,
    DEFAULT_CACHE_TTL,
};

const KIND: CacheKind = CacheKind::Embeddings;

/// An embedder whose vectors are cached per text; see [`ComposeExt::with_embedding_cache`].
///
/// The key of a text is a SHA-256 of the model id given here, the dimensions, whether it is
/// embedded as a document or as a query (providers may embed them differently) and the
/// text. [`embed_documents`](Embedder::embed_documents) looks every text up in one store
/// round trip, sends only the misses (each distinct text once) to the inner embedder in one
/// call, stores their vectors, and returns one vector per text in input order. Vectors are
/// stored as little-endian `f32`s.
///
/// [`Embedder`] has no model identity of its own, so the layer is given one: use a
/// different id whenever the vectors would differ (another model, version or setting).
///
/// ```
/// use std::sync::Arc;
/// use catena_core::{Embedder, InMemoryCacheStore};
/// use catena_core::test_utils::DeterministicEmbedder;
/// use catena_chains::CachedEmbedder;
///
/// # futures::executor::block_on(async {
/// let store = Arc::new(InMemoryCacheStore::new(100_000));
/// let embedder = CachedEmbedder::new(DeterministicEmbedder::new(64), store, "hash-64");
/// embedder.embed_documents(&["a".to_string(), "b".to_string()]).await.unwrap();
/// let vectors = embedder.embed_documents(&["b".to_string(), "c".to_string()]).await.unwrap();
/// assert_eq!(vectors.len(), 2);
/// assert_eq!((embedder.stats().hits, embedder.stats().misses), (1, 3));
/// # });
/// ```
///
/// [`ComposeExt::with_embedding_cache`]: crate::ComposeExt::with_embedding_cache
#[derive(Clone)]
pub struct CachedEmbedder<E> {
    inner: E,
    store: Arc<dyn CacheStore>,
    model: String,
    namespace: String,
    ttl: Option<Duration>,
    counters: Arc<Counters>,
}

impl<E: fmt::Debug> fmt::Debug for CachedEmbedder<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CachedEmbedder")
            .field("inner", &self.inner)
            .field("model", &self.model)
            .field("namespace", &self.namespace)
            .field("ttl", &self.ttl)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl<E> CachedEmbedder<E> {
    /// Caches `inner`'s vectors in `store` under the model id `model`.
    pub fn new(inner: E, store: Arc<dyn CacheStore>, model: impl Into<String>) -> Self {
        CachedEmbedder {
            inner,
            store,
            model: model.into(),
            namespace: DEFAULT_CACHE_NAMESPACE.to_owned(),
            ttl: Some(DEFAULT_CACHE_TTL),
            counters: Arc::default(),
        }
    }

    /// The namespace entries are read from and written to (one per tenant, when tenants
    /// must not learn which texts others embedded). Default
    /// [`DEFAULT_CACHE_NAMESPACE`](crate::DEFAULT_CACHE_NAMESPACE).
    #[must_use]
    pub fn with_namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = namespace.into();
        self
    }

    /// How long a stored vector lives; `None` keeps it until the store's capacity evicts
    /// it. Default [`DEFAULT_CACHE_TTL`](crate::DEFAULT_CACHE_TTL) (one day).
    #[must_use]
    pub fn with_ttl(mut self, ttl: impl Into<Option<Duration>>) -> Self {
        self.ttl = ttl.into();
        self
    }

    /// The model id the keys are derived from.
    pub fn model(&self) -> &str {
        &self.model
    }

    /// The namespace.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// Hits, misses and errors since the layer was built (one lookup per text).
    pub fn stats(&self) -> CacheStats {
        self.counters.stats()
    }

    /// The wrapped embedder.
    pub fn get_ref(&self) -> &E {
        &self.inner
    }

    /// The wrapped embedder, unwrapped.
    pub fn into_inner(self) -> E {
        self.inner
    }
}

/// How a text is embedded: part of its key.
#[derive(Clone, Copy)]
enum Use {
    Document,
    Query,
}

fn encode(vector: &[f32]) -> Vec<u8> {
    vector.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn decode(bytes: &[u8], dimensions: usize) -> Option<Embedding> {
    // An embedder that does not know its dimensions (0) is taken at its word.
    let fits = if dimensions == 0 {
        !bytes.is_empty()
    } else {
        bytes.len() == dimensions * 4
    };
    if !fits || !bytes.len().is_multiple_of(4) {
        return None;
    }
    let vector = bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    Some(vector)
}

impl<E: Embedder> CachedEmbedder<E> {
    fn key(&self, text: &str, usage: Use) -> String {
        let usage: &[u8] = match usage {
            Use::Document => b"document",
            Use::Query => b"query",
        };
        let dimensions = self.inner.dimensions().to_string();
        digest(&[
            b"embed",
            self.model.as_bytes(),
            dimensions.as_bytes(),
            usage,
            text.as_bytes(),
        ])
    }

    /// One stored vector per key, `None` for misses; counts the lookups.
    async fn lookup(&self, keys: &[String], span: &Span) -> Vec<Option<Embedding>> {
        let dimensions = self.inner.dimensions();
        let found = match self.store.get_many(&self.namespace, keys).await {
            Ok(found) if found.len() == keys.len() => found,
            Ok(found) => {
                let e = Error::other(format!(
                    "the cache store returned {} values for {} keys",
                    found.len(),
                    keys.len()
                ));
                self.counters.lookup_failed(KIND, keys.len() as u64, &e);
                return vec![None; keys.len()];
            }
            Err(e) => {
                self.counters.lookup_failed(KIND, keys.len() as u64, &e);
                return vec![None; keys.len()];
            }
        };
        let (mut hits, mut misses, mut errors) = (0u64, 0u64, 0u64);
        let vectors: Vec<Option<Embedding>> = found
            .into_iter()
            .map(|bytes| match bytes.map(|b| decode(&b, dimensions)) {
                Some(Some(v)) => {
                    hits += 1;
                    Some(v)
                }
                Some(None) => {
                    errors += 1;
                    None
                }
                None => {
                    misses += 1;
                    None
                }
            })
            .collect();
        self.counters.lookup(KIND, Outcome::Hit, hits);
        self.counters.lookup(KIND, Outcome::Miss, misses);
        if errors > 0 {
            let e = Error::other("stored vectors of the wrong length");
            self.counters.lookup_failed(KIND, errors, &e);
        }
        span.record("cache.hit", misses + errors == 0);
        span.record("cache.hits", hits);
        span.record("cache.misses", misses + errors);
        vectors
    }

    async fn write(&self, entries: Vec<(String, Vec<u8>)>) {
        if entries.is_empty() {
            return;
        }
        if let Err(e) = self
            .store
            .put_many(&self.namespace, entries, self.ttl)
            .await
        {
            self.counters.write_failed(KIND, &e);
        }
    }
}

#[async_trait]
impl<E: Embedder> Embedder for CachedEmbedder<E> {
    async fn embed_documents(&self, texts: &[String]) -> Result<Vec<Embedding>> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let span = lookup_span(KIND, &self.namespace);
        async {
            let keys: Vec<String> = texts.iter().map(|t| self.key(t, Use::Document)).collect();
            let mut vectors = self.lookup(&keys, &span).await;

            // Each distinct missing text once, in first-seen order.
            let mut positions: HashMap<&str, usize> = HashMap::new();
            let mut missing: Vec<String> = Vec::new();
            let mut missing_keys: Vec<&str> = Vec::new();
            for (i, text) in texts.iter().enumerate() {
                if vectors[i].is_none() && !positions.contains_key(text.as_str()) {
                    positions.insert(text, missing.len());
                    missing.push(text.clone());
                    missing_keys.push(&keys[i]);
                }
            }
            if missing.is_empty() {
                return Ok(vectors.into_iter().flatten().collect());
            }

            let embedded = self.inner.embed_documents(&missing).await?;
            if embedded.len() != missing.len() {
                return Err(Error::other(format!(
                    "the embedder returned {} vectors for {} texts",
                    embedded.len(),
                    missing.len()
                )));
            }
            let entries = missing_keys
                .iter()
                .zip(&embedded)
                .map(|(key, v)| ((*key).to_owned(), encode(v)))
                .collect();
            self.write(entries).await;

            let mut out = Vec::with_capacity(texts.len());
            for (text, cached) in texts.iter().zip(vectors.iter_mut()) {
                match cached.take() {
                    Some(v) => out.push(v),
                    None => {
                        let i = positions
                            .get(text.as_str())
                            .copied()
                            .ok_or_else(|| Error::other("cache: a missing text was lost"))?;
                        out.push(embedded[i].clone());
                    }
                }
            }
            Ok(out)
        }
        .instrument(span.clone())
        .await
    }

    async fn embed_query(&self, text: &str) -> Result<Embedding> {
        let span = lookup_span(KIND, &self.namespace);
        async {
            let key = self.key(text, Use::Query);
            if let Some(Some(v)) = self.lookup(std::slice::from_ref(&key), &span).await.pop() {
                return Ok(v);
            }
            let vector = self.inner.embed_query(text).await?;
            self.write(vec![(key, encode(&vector))]).await;
            Ok(vector)
        }
        .instrument(span.clone())
        .await
    }

    fn dimensions(&self) -> usize {
        self.inner.dimensions()
    }
}
