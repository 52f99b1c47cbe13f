//! [`SemanticCachedChatModel`]: answers for prompts similar to previous ones.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use catena_core::{
    ChatModel, ChatRequest, ChatResponse, ChatStream, ContentPart, Embedder, Embedding, Error,
    ModelInfo, Result, Role, SemanticCacheStore, SemanticEntry,
};
use tracing::{Instrument, Span};

use super::chat::{replay, store_on_completion, Writer};
use super::{
    decode_response, digest, encode_response, lookup_span, storable, CacheKind, CacheStats,
    Counters, Outcome, DEFAULT_CACHE_NAMESPACE, DEFAULT_CACHE_TTL, DEFAULT_SIMILARITY_THRESHOLD,
};

const KIND: CacheKind = CacheKind::LlmSemantic;

/// A chat model that answers a prompt similar enough to a previous one from the cache; see
/// [`ComposeExt::with_semantic_cache`].
///
/// The prompt is the request's last message, which must be a user message of text only;
/// it is embedded with the given [`Embedder`] (`embed_query`), and the nearest previous
/// prompt with a cosine similarity of at least the
/// [threshold](Self::with_threshold) answers. Everything else must match exactly: the
/// entries are scoped by a SHA-256 of the model's identity (provider, model id and the
/// optional [model identity](Self::with_model_identity)), of the embedder's identity, and
/// of the request without its prompt (system prompt, earlier turns, response format,
/// temperature, max tokens, stop sequences, seed), so a different system prompt or
/// temperature never hits.
///
/// Vectors of different embedders are not comparable, so layers with different embedders
/// must not meet on a shared store. The embedder's identity is its dimensions and, unless
/// [`with_embedder_id`](Self::with_embedder_id) names it, its Rust type: two embedders of
/// the same type with different models or settings (two OpenAI embedding models of the same
/// dimensions) are told apart only by their ids, so set one whenever a store is shared.
///
/// Answers are stored only when the model they report (if any) is the requested one, up to
/// a version suffix, as in [`CachedChatModel`](crate::CachedChatModel); a hit is the stored
/// response, with the original call's usage.
///
/// Requests with tools, and requests whose last message is not a text-only user message,
/// pass straight through (no lookup, nothing counted): a paraphrase may need another tool
/// call. Stack an exact [`CachedChatModel`](crate::CachedChatModel) outside this layer to
/// cache those exactly.
///
/// A hit on `stream` replays the stored answer; a miss stores the answer of a stream that
/// ended without error. Errors of the embedder or the store never fail a call (see
/// [`CacheStats`](crate::CacheStats)).
///
/// ```
/// use std::sync::Arc;
/// use catena_core::{ChatModel, ChatRequest, InMemorySemanticCacheStore, Message};
/// use catena_core::test_utils::{DeterministicEmbedder, ScriptedChatModel};
/// use catena_chains::SemanticCachedChatModel;
///
/// # futures::executor::block_on(async {
/// let model = SemanticCachedChatModel::new(
///     ScriptedChatModel::new().with_text("Paris."),
///     DeterministicEmbedder::new(256),
///     Arc::new(InMemorySemanticCacheStore::new(1_000)),
/// )
/// .with_embedder_id("hash-256")
/// .with_threshold(0.8)
/// .unwrap();
/// let ask = |q: &str| ChatRequest::new(vec![Message::system("Be brief."), Message::user(q)]);
/// model.generate(ask("What is the capital of France?")).await.unwrap();
/// let answer = model.generate(ask("what is the capital of France")).await.unwrap();
/// assert_eq!(answer.text(), "Paris.");
/// assert_eq!(model.stats().hits, 1);
/// # });
/// ```
///
/// [`ComposeExt::with_semantic_cache`]: crate::ComposeExt::with_semantic_cache
#[derive(Clone)]
pub struct SemanticCachedChatModel<M, E> {
    inner: M,
    embedder: E,
    store: Arc<dyn SemanticCacheStore>,
    namespace: String,
    ttl: Option<Duration>,
    threshold: f32,
    model_identity: Option<String>,
    embedder_id: Option<String>,
    model_check: bool,
    counters: Arc<Counters>,
}

impl<M: fmt::Debug, E: fmt::Debug> fmt::Debug for SemanticCachedChatModel<M, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SemanticCachedChatModel")
            .field("inner", &self.inner)
            .field("embedder", &self.embedder)
            .field("namespace", &self.namespace)
            .field("ttl", &self.ttl)
            .field("threshold", &self.threshold)
            .field("model_identity", &self.model_identity)
            .field("embedder_id", &self.embedder_id)
            .field("model_check", &self.model_check)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl<M, E> SemanticCachedChatModel<M, E> {
    /// Caches `inner`'s answers in `store`, finding similar prompts with `embedder`.
    pub fn new(inner: M, embedder: E, store: Arc<dyn SemanticCacheStore>) -> Self {
        SemanticCachedChatModel {
            inner,
            embedder,
            store,
            namespace: DEFAULT_CACHE_NAMESPACE.to_owned(),
            ttl: Some(DEFAULT_CACHE_TTL),
            threshold: DEFAULT_SIMILARITY_THRESHOLD,
            model_identity: None,
            embedder_id: None,
            model_check: true,
            counters: Arc::default(),
        }
    }

    /// The namespace entries are read from and written to: one per tenant, so tenants never
    /// see each other's answers (not even answers to similar prompts). Default
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

    /// The cosine similarity a previous prompt needs to answer: above 0, at most 1 (higher
    /// is stricter). What "similar" means depends on the embedder: tune it on real
    /// paraphrases. Default
    /// [`DEFAULT_SIMILARITY_THRESHOLD`](crate::DEFAULT_SIMILARITY_THRESHOLD) (0.95).
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] for a threshold that is not a number in (0, 1]: at 0 or
    /// below unrelated prompts would share answers (at -1, every prompt answers every
    /// other), above 1 or NaN nothing would ever hit.
    pub fn with_threshold(mut self, threshold: f32) -> Result<Self> {
        if threshold.is_nan() || threshold <= 0.0 || threshold > 1.0 {
            return Err(Error::invalid_config(format!(
                "the similarity threshold must be above 0 and at most 1, not {threshold}"
            )));
        }
        self.threshold = threshold;
        Ok(self)
    }

    /// Mixes `identity` into every scope: where the model is served, when the model id
    /// alone does not say (a base URL, region, deployment or fine-tune behind one model
    /// name), as [`CachedChatModel::with_model_identity`](crate::CachedChatModel::with_model_identity).
    #[must_use]
    pub fn with_model_identity(mut self, identity: impl Into<String>) -> Self {
        self.model_identity = Some(identity.into());
        self
    }

    /// Names the embedder (its model, version and settings) in every scope, instead of its
    /// Rust type: layers whose embedders have different ids never share entries. Set it
    /// whenever the store is shared with layers that may embed differently.
    #[must_use]
    pub fn with_embedder_id(mut self, id: impl Into<String>) -> Self {
        self.embedder_id = Some(id.into());
        self
    }

    /// Whether to store only answers whose reported model is the requested one; default
    /// `true`. See [`CachedChatModel::with_model_check`](crate::CachedChatModel::with_model_check).
    #[must_use]
    pub fn with_model_check(mut self, check: bool) -> Self {
        self.model_check = check;
        self
    }

    /// The namespace.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The similarity threshold.
    pub fn threshold(&self) -> f32 {
        self.threshold
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

/// What a cacheable request is looked up by.
struct Probe {
    scope: String,
    id: String,
    embedding: Embedding,
    /// The requested model id, which an answer must report to be stored.
    model: String,
}

/// The prompt of a cacheable request: the text of its last message, when that is a user
/// message of text only and no tools are offered.
fn prompt(request: &ChatRequest) -> Option<String> {
    let last = request.messages.last()?;
    let text_only = last
        .content
        .iter()
        .all(|p| matches!(p, ContentPart::Text { .. }));
    if !request.tools.is_empty() || last.role != Role::User || !text_only {
        return None;
    }
    let text = last.text();
    (!text.trim().is_empty()).then_some(text)
}

impl<M: ChatModel, E: Embedder> SemanticCachedChatModel<M, E> {
    /// The scope and embedding of a cacheable request; `None` for requests that pass
    /// through, or (with the error counted) when the embedder fails.
    async fn probe(&self, request: &ChatRequest, prompt: &str) -> Option<Probe> {
        let info = self.inner.model_info();
        let model = request.model.clone().unwrap_or(info.model);
        let mut rest = request.clone();
        rest.model = None;
        let name = rest.messages.pop().and_then(|m| m.name);
        let body = match serde_json::to_vec(&(rest, name)) {
            Ok(body) => body,
            Err(e) => {
                self.counters.lookup_failed(KIND, 1, &e);
                return None;
            }
        };
        let embedder = self
            .embedder_id
            .as_deref()
            .unwrap_or(std::any::type_name::<E>());
        let dimensions = self.embedder.dimensions().to_string();
        let scope = digest(&[
            b"semantic",
            info.provider.as_bytes(),
            model.as_bytes(),
            self.model_identity
                .as_deref()
                .unwrap_or_default()
                .as_bytes(),
            embedder.as_bytes(),
            dimensions.as_bytes(),
            &body,
        ]);
        let id = digest(&[scope.as_bytes(), prompt.as_bytes()]);
        match self.embedder.embed_query(prompt).await {
            Ok(embedding) => Some(Probe {
                scope,
                id,
                embedding,
                model,
            }),
            Err(e) => {
                self.counters.lookup_failed(KIND, 1, &e);
                None
            }
        }
    }

    async fn lookup(&self, probe: &Probe, span: &Span) -> Option<ChatResponse> {
        let found = self
            .store
            .nearest(
                &self.namespace,
                &probe.scope,
                &probe.embedding,
                self.threshold,
            )
            .await;
        let response = match found {
            Ok(Some(hit)) => match decode_response(&hit.value) {
                Ok(response) => {
                    span.record("cache.hit", true);
                    span.record("cache.similarity", hit.similarity);
                    self.counters.lookup(KIND, Outcome::Hit, 1);
                    Some(response)
                }
                Err(e) => {
                    self.counters.lookup_failed(KIND, 1, &e);
                    None
                }
            },
            Ok(None) => {
                self.counters.lookup(KIND, Outcome::Miss, 1);
                None
            }
            Err(e) => {
                self.counters.lookup_failed(KIND, 1, &e);
                None
            }
        };
        response
    }

    fn writer(&self, probe: Probe) -> Writer {
        let store = Arc::clone(&self.store);
        let counters = Arc::clone(&self.counters);
        let namespace = self.namespace.clone();
        let ttl = self.ttl;
        let requested = self.model_check.then(|| probe.model.clone());
        Box::new(move |response: ChatResponse| {
            Box::pin(async move {
                if !storable(requested.as_deref(), &response) {
                    return;
                }
                let bytes = match encode_response(&response) {
                    Ok(bytes) => bytes,
                    Err(e) => return counters.write_failed(KIND, &e),
                };
                let entry = SemanticEntry::new(probe.id, probe.scope, probe.embedding, bytes);
                if let Err(e) = store.insert(&namespace, entry, ttl).await {
                    counters.write_failed(KIND, &e);
                }
            })
        })
    }
}

#[async_trait]
impl<M: ChatModel, E: Embedder> ChatModel for SemanticCachedChatModel<M, E> {
    async fn generate(&self, request: ChatRequest) -> Result<ChatResponse> {
        let Some(prompt) = prompt(&request) else {
            return self.inner.generate(request).await;
        };
        let span = lookup_span(KIND, &self.namespace);
        async {
            let Some(probe) = self.probe(&request, &prompt).await else {
                return self.inner.generate(request).await;
            };
            if let Some(hit) = self.lookup(&probe, &span).await {
                return Ok(hit);
            }
            let response = self.inner.generate(request).await?;
            (self.writer(probe))(response.clone()).await;
            Ok(response)
        }
        .instrument(span.clone())
        .await
    }

    async fn stream(&self, request: ChatRequest) -> Result<ChatStream> {
        let Some(prompt) = prompt(&request) else {
            return self.inner.stream(request).await;
        };
        let span = lookup_span(KIND, &self.namespace);
        async {
            let Some(probe) = self.probe(&request, &prompt).await else {
                return self.inner.stream(request).await;
            };
            if let Some(hit) = self.lookup(&probe, &span).await {
                return Ok(replay(&hit));
            }
            let stream = self.inner.stream(request).await?;
            Ok(store_on_completion(stream, self.writer(probe)))
        }
        .instrument(span.clone())
        .await
    }

    fn model_info(&self) -> ModelInfo {
        self.inner.model_info()
    }
}
