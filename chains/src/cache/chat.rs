//! [`CachedChatModel`]: the exact LLM-response cache.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use catena_core::backend::response_to_chunks;
use catena_core::{
    CacheStore, ChatModel, ChatRequest, ChatResponse, ChatStream, ModelInfo, Result,
    StreamAccumulator,
};
use futures::future::BoxFuture;
use futures::StreamExt;
use tracing::{Instrument, Span};

use super::{
    decode_response, digest, encode_response, lookup_span, storable, CacheKind, CacheStats,
    Counters, Outcome, DEFAULT_CACHE_NAMESPACE, DEFAULT_CACHE_TTL,
};

const KIND: CacheKind = CacheKind::LlmExact;

/// A chat model whose answers are cached by exact request; see [`ComposeExt::with_cache`].
///
/// The key is a SHA-256 of the provider and model id ([`ModelInfo`], or the request's
/// `model` override), of the [model identity](Self::with_model_identity) when one is set,
/// and of the whole request: messages, tools, tool choice, response format, temperature,
/// top-p, max tokens, stop sequences and seed. A request that differs in any of them
/// misses. Sampled answers (temperature above 0) are cached too: a hit returns the one
/// answer that was stored.
///
/// [`ModelInfo`] names a model, not where it is served: two layers over the same model id
/// on different endpoints (another base URL, region, deployment or fine-tune behind one
/// name) share entries on a shared store unless each is given its own
/// [`with_model_identity`](Self::with_model_identity).
///
/// [`generate`](ChatModel::generate) and [`stream`](ChatModel::stream) share entries. A hit
/// on `stream` replays the stored answer as chunks (text, tool calls, then usage and the
/// finish reason); a miss streams through and stores the answer once the stream has ended
/// with a finish reason and no error, so a cut stream is never stored.
///
/// A hit is the stored response as it was, **usage included**: the usage is the original
/// call's, and nothing in the [`ChatResponse`] marks it as a hit (the `cache` span's
/// `cache.hit` and [`stats`](Self::stats) do). Code that sums usage from responses counts a
/// hit as a call.
///
/// Only successful answers are stored, and only when the model they report (if any) is the
/// requested one, up to a version suffix (`gpt-4o` answered by `gpt-4o-2024-08-06`): an
/// answer of another model, such as a [`Fallback`](crate::Fallback)'s inside this layer, is
/// passed on but not stored under the requested model's key (see
/// [`with_model_check`](Self::with_model_check)). Errors of the store never fail a call
/// (see [`CacheStats`](crate::CacheStats)).
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
/// use catena_core::{ChatModel, ChatRequest, InMemoryCacheStore, Message};
/// use catena_core::test_utils::ScriptedChatModel;
/// use catena_chains::CachedChatModel;
///
/// # futures::executor::block_on(async {
/// let store = Arc::new(InMemoryCacheStore::new(1_000));
/// let model = CachedChatModel::new(ScriptedChatModel::new().with_text("4"), store)
///     .with_namespace("tenant-a")
///     .with_ttl(Duration::from_secs(600));
/// let request = ChatRequest::new(vec![Message::user("2 + 2?")]).with_temperature(0.0);
/// model.generate(request.clone()).await.unwrap();
/// assert_eq!(model.generate(request).await.unwrap().text(), "4");
/// assert_eq!(model.stats().hits, 1);
/// # });
/// ```
///
/// [`ComposeExt::with_cache`]: crate::ComposeExt::with_cache
#[derive(Clone)]
pub struct CachedChatModel<M> {
    inner: M,
    store: Arc<dyn CacheStore>,
    namespace: String,
    ttl: Option<Duration>,
    model_identity: Option<String>,
    model_check: bool,
    counters: Arc<Counters>,
}

impl<M: fmt::Debug> fmt::Debug for CachedChatModel<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CachedChatModel")
            .field("inner", &self.inner)
            .field("namespace", &self.namespace)
            .field("ttl", &self.ttl)
            .field("model_identity", &self.model_identity)
            .field("model_check", &self.model_check)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl<M> CachedChatModel<M> {
    /// Caches `inner`'s answers in `store`.
    pub fn new(inner: M, store: Arc<dyn CacheStore>) -> Self {
        CachedChatModel {
            inner,
            store,
            namespace: DEFAULT_CACHE_NAMESPACE.to_owned(),
            ttl: Some(DEFAULT_CACHE_TTL),
            model_identity: None,
            model_check: true,
            counters: Arc::default(),
        }
    }

    /// The namespace entries are read from and written to: one per tenant, so tenants never
    /// see each other's answers. Default
    /// [`DEFAULT_CACHE_NAMESPACE`](crate::DEFAULT_CACHE_NAMESPACE), which every layer left
    /// at it shares: set one per tenant in a multi-tenant service.
    #[must_use]
    pub fn with_namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = namespace.into();
        self
    }

    /// How long a stored answer lives; `None` keeps it until the store's capacity evicts
    /// it. Default [`DEFAULT_CACHE_TTL`](crate::DEFAULT_CACHE_TTL) (one day).
    #[must_use]
    pub fn with_ttl(mut self, ttl: impl Into<Option<Duration>>) -> Self {
        self.ttl = ttl.into();
        self
    }

    /// Mixes `identity` into every key: where the model is served, when the model id alone
    /// does not say (a base URL, region, deployment or fine-tune behind one model name).
    /// Layers with different identities never share entries; give each endpoint its own.
    /// Never put a secret here: it is hashed, but it is also shown by `Debug`.
    #[must_use]
    pub fn with_model_identity(mut self, identity: impl Into<String>) -> Self {
        self.model_identity = Some(identity.into());
        self
    }

    /// Whether to store only answers whose reported model is the requested one (up to a
    /// version suffix); default `true`. Turn it off only for a backend that reports another
    /// name than the one requested for the same model (an Azure OpenAI deployment name, an
    /// alias the server resolves), and never with a [`Fallback`](crate::Fallback) to
    /// another model inside the layer: its answers would then be stored, and served, as the
    /// primary model's.
    #[must_use]
    pub fn with_model_check(mut self, check: bool) -> Self {
        self.model_check = check;
        self
    }

    /// The namespace.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The model identity, when one is set.
    pub fn model_identity(&self) -> Option<&str> {
        self.model_identity.as_deref()
    }

    /// Hits, misses and errors since the layer was built.
    pub fn stats(&self) -> CacheStats {
        self.counters.stats()
    }

    /// The wrapped model.
    pub fn get_ref(&self) -> &M {
        &self.inner
    }

    /// The wrapped model, unwrapped.
    pub fn into_inner(self) -> M {
        self.inner
    }
}

/// What a cacheable request is stored under.
struct Key {
    key: String,
    /// The requested model id, which an answer must report to be stored.
    model: String,
}

impl<M: ChatModel> CachedChatModel<M> {
    /// The cache key of `request`, or `None` (with the error counted) when it cannot be
    /// serialised.
    fn key(&self, request: &ChatRequest) -> Option<Key> {
        let info = self.inner.model_info();
        let model = request.model.clone().unwrap_or(info.model);
        let mut normalised = request.clone();
        normalised.model = None;
        match serde_json::to_vec(&normalised) {
            Ok(body) => Some(Key {
                key: digest(&[
                    b"chat",
                    info.provider.as_bytes(),
                    model.as_bytes(),
                    self.model_identity
                        .as_deref()
                        .unwrap_or_default()
                        .as_bytes(),
                    &body,
                ]),
                model,
            }),
            Err(e) => {
                self.counters.lookup_failed(KIND, 1, &e);
                None
            }
        }
    }

    /// The stored answer for `key`, counting the lookup and recording a hit on `span`.
    async fn lookup(&self, key: &str, span: &Span) -> Option<ChatResponse> {
        let found = match self.store.get(&self.namespace, key).await {
            Ok(found) => found,
            Err(e) => {
                self.counters.lookup_failed(KIND, 1, &e);
                return None;
            }
        };
        let response = match found.map(|bytes| decode_response(&bytes)) {
            Some(Ok(response)) => {
                self.counters.lookup(KIND, Outcome::Hit, 1);
                Some(response)
            }
            Some(Err(e)) => {
                self.counters.lookup_failed(KIND, 1, &e);
                None
            }
            None => {
                self.counters.lookup(KIND, Outcome::Miss, 1);
                None
            }
        };
        if response.is_some() {
            span.record("cache.hit", true);
        }
        response
    }

    fn writer(&self, key: Key) -> Writer {
        let store = Arc::clone(&self.store);
        let counters = Arc::clone(&self.counters);
        let namespace = self.namespace.clone();
        let ttl = self.ttl;
        let requested = self.model_check.then_some(key.model);
        let key = key.key;
        Box::new(move |response: ChatResponse| {
            Box::pin(async move {
                if !storable(requested.as_deref(), &response) {
                    return;
                }
                let bytes = match encode_response(&response) {
                    Ok(bytes) => bytes,
                    Err(e) => return counters.write_failed(KIND, &e),
                };
                if let Err(e) = store.put(&namespace, &key, bytes, ttl).await {
                    counters.write_failed(KIND, &e);
                }
            })
        })
    }
}

#[async_trait]
impl<M: ChatModel> ChatModel for CachedChatModel<M> {
    async fn generate(&self, request: ChatRequest) -> Result<ChatResponse> {
        let span = lookup_span(KIND, &self.namespace);
        async {
            let Some(key) = self.key(&request) else {
                return self.inner.generate(request).await;
            };
            if let Some(hit) = self.lookup(&key.key, &span).await {
                return Ok(hit);
            }
            let response = self.inner.generate(request).await?;
            (self.writer(key))(response.clone()).await;
            Ok(response)
        }
        .instrument(span.clone())
        .await
    }

    async fn stream(&self, request: ChatRequest) -> Result<ChatStream> {
        let span = lookup_span(KIND, &self.namespace);
        async {
            let Some(key) = self.key(&request) else {
                return self.inner.stream(request).await;
            };
            if let Some(hit) = self.lookup(&key.key, &span).await {
                return Ok(replay(&hit));
            }
            let stream = self.inner.stream(request).await?;
            Ok(store_on_completion(stream, self.writer(key)))
        }
        .instrument(span.clone())
        .await
    }

    fn model_info(&self) -> ModelInfo {
        self.inner.model_info()
    }
}

/// Stores a completed answer.
pub(super) type Writer = Box<dyn FnOnce(ChatResponse) -> BoxFuture<'static, ()> + Send>;

/// A stored answer as a stream: text, tool calls, usage, finish reason.
pub(super) fn replay(response: &ChatResponse) -> ChatStream {
    let chunks = response_to_chunks(response).into_iter().map(Ok);
    Box::pin(futures::stream::iter(chunks))
}

struct Completion {
    inner: ChatStream,
    accumulator: StreamAccumulator,
    /// Taken (dropped) on the first error: a failed stream is never stored.
    write: Option<Writer>,
}

/// Passes `inner` through and, once it has ended after a finish chunk without any error,
/// hands the accumulated answer to `write` (before the stream reports its end).
pub(super) fn store_on_completion(inner: ChatStream, write: Writer) -> ChatStream {
    let state = Completion {
        inner,
        accumulator: StreamAccumulator::new(),
        write: Some(write),
    };
    Box::pin(futures::stream::unfold(state, |mut state| async move {
        match state.inner.next().await {
            Some(Ok(chunk)) => {
                state.accumulator.push(&chunk);
                Some((Ok(chunk), state))
            }
            Some(Err(e)) => {
                state.write = None;
                Some((Err(e), state))
            }
            None => {
                let accumulator = std::mem::take(&mut state.accumulator);
                if let (Some(write), true) = (state.write.take(), accumulator.is_finished()) {
                    if let Ok(response) = accumulator.finish() {
                        write(response).await;
                    }
                }
                None
            }
        }
    }))
}
