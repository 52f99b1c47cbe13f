//! Composition: the decorators every component takes, and bounded batches.
//!
//! Cross-cutting behaviour is a **decorator implementing the same trait**, as in tower, one
//! of each for the whole workspace: [`Retry`] re-runs a call after an error the
//! [`RetryPolicy`] retries (exponential backoff, `Retry-After` honoured) and [`Timeout`]
//! turns a slow call into [`Error::Timeout`] — both for any [`Chain`], [`ChatModel`],
//! [`Embedder`], [`VectorStore`] and [`Retriever`]. [`Fallback`] tries a second chain or
//! model when the first fails with a retryable error. They are built with [`ComposeExt`]
//! and stack in any order. A `Retry` around a client whose transport retries too never
//! multiplies the attempts: only the outermost policy retries (see [`RetryPolicy`]).
//! [`batch_bounded`] runs many inputs with at most `max_concurrency` in flight, keeping
//! input order and one result per input.
//!
//! ```
//! use std::time::Duration;
//! use catena_core::{chain_fn, Chain, Error, ProviderError, ProviderErrorKind, RetryPolicy};
//! use catena_chains::{batch_bounded, ComposeExt};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> catena_core::Result<()> {
//! let flaky = chain_fn(|n: u32| async move {
//!     if n == 0 {
//!         Err(Error::from(ProviderError::new(ProviderErrorKind::Server, "down")))
//!     } else {
//!         Ok(n * 2)
//!     }
//! });
//! let backup = chain_fn(|n: u32| async move { Ok(n + 100) });
//! let chain = flaky
//!     .with_retry(RetryPolicy::new().with_initial_backoff(Duration::from_millis(1)))
//!     .with_fallback(backup)
//!     .with_timeout(Duration::from_secs(5));
//!
//! assert_eq!(chain.invoke(0).await?, 100); // retried twice, then the fallback answered
//! let results = batch_bounded(&chain, vec![1, 2, 3], 2).await;
//! assert_eq!(results.into_iter().collect::<catena_core::Result<Vec<_>>>()?, vec![2, 4, 6]);
//! # Ok(())
//! # }
//! ```

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use catena_core::EmbeddedDocument;
use catena_core::{
    Chain, ChainStream, ChatChunk, ChatModel, ChatRequest, ChatResponse, ChatStream, Document,
    DocumentId, Embedder, Embedding, Error, Filter, MmrRequest, ModelInfo, Result, Retriever,
    RetryPolicy, ScoredDocument, SearchRequest, UpsertReport, VectorStore,
};
use futures::StreamExt;

/// Re-runs calls after the errors its [`RetryPolicy`] retries; see [`ComposeExt::with_retry`].
///
/// Implements [`Chain`] (the input must be `Clone`), [`ChatModel`], [`Embedder`],
/// [`VectorStore`] and [`Retriever`]. For a chat model's stream only the start is retried:
/// once a stream has been handed out, its chunks are never replayed.
#[derive(Debug, Clone)]
pub struct Retry<C> {
    inner: C,
    policy: RetryPolicy,
}

impl<C> Retry<C> {
    /// Wraps `inner`.
    pub fn new(inner: C, policy: RetryPolicy) -> Self {
        Retry { inner, policy }
    }

    /// The wrapped component.
    pub fn get_ref(&self) -> &C {
        &self.inner
    }

    /// The wrapped component, unwrapped.
    pub fn into_inner(self) -> C {
        self.inner
    }

    async fn run<T, F, Fut>(&self, op: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        self.policy.run(tokio::time::sleep, op).await
    }
}

#[async_trait]
impl<I, O, C> Chain<I, O> for Retry<C>
where
    I: Clone + Send + Sync + 'static,
    O: Send + 'static,
    C: Chain<I, O>,
{
    async fn invoke(&self, input: I) -> Result<O> {
        self.run(|| self.inner.invoke(input.clone())).await
    }

    /// Retries until the stream has produced its first item (an error before it counts as a
    /// failed attempt); once an item is out, later errors pass through and nothing replays.
    async fn stream(&self, input: I) -> Result<ChainStream<O>> {
        self.run(|| async { started(self.inner.stream(input.clone()).await?).await })
            .await
    }
}

/// Waits for the first item of `stream`: an `Err` first item is returned as the error (so a
/// retry or a fallback can still act); otherwise the stream, that item included.
pub(crate) async fn started<O: Send + 'static>(
    mut stream: ChainStream<O>,
) -> Result<ChainStream<O>> {
    match stream.next().await {
        None => Ok(Box::pin(futures::stream::empty())),
        Some(Err(e)) => Err(e),
        Some(Ok(first)) => Ok(Box::pin(
            futures::stream::once(async move { Ok(first) }).chain(stream),
        )),
    }
}

#[async_trait]
impl<M: ChatModel> ChatModel for Retry<M> {
    async fn generate(&self, request: ChatRequest) -> Result<ChatResponse> {
        self.run(|| self.inner.generate(request.clone())).await
    }

    async fn stream(&self, request: ChatRequest) -> Result<ChatStream> {
        self.run(|| self.inner.stream(request.clone())).await
    }

    fn model_info(&self) -> ModelInfo {
        self.inner.model_info()
    }
}

#[async_trait]
impl<E: Embedder> Embedder for Retry<E> {
    async fn embed_documents(&self, texts: &[String]) -> Result<Vec<Embedding>> {
        self.run(|| self.inner.embed_documents(texts)).await
    }

    async fn embed_query(&self, text: &str) -> Result<Embedding> {
        self.run(|| self.inner.embed_query(text)).await
    }

    fn dimensions(&self) -> usize {
        self.inner.dimensions()
    }
}

#[async_trait]
impl<R: Retriever> Retriever for Retry<R> {
    async fn retrieve(&self, query: &str) -> Result<Vec<Document>> {
        self.run(|| self.inner.retrieve(query)).await
    }
}

#[async_trait]
impl<S: VectorStore> VectorStore for Retry<S> {
    async fn upsert(&self, documents: Vec<EmbeddedDocument>) -> Result<UpsertReport> {
        self.run(|| self.inner.upsert(documents.clone())).await
    }

    async fn search(&self, request: SearchRequest) -> Result<Vec<ScoredDocument>> {
        self.run(|| self.inner.search(request.clone())).await
    }

    async fn search_mmr(&self, request: MmrRequest) -> Result<Vec<ScoredDocument>> {
        self.run(|| self.inner.search_mmr(request.clone())).await
    }

    async fn delete(&self, ids: &[DocumentId]) -> Result<usize> {
        self.run(|| self.inner.delete(ids)).await
    }

    async fn delete_by_filter(&self, filter: &Filter) -> Result<usize> {
        self.run(|| self.inner.delete_by_filter(filter)).await
    }

    async fn get(&self, ids: &[DocumentId]) -> Result<Vec<Document>> {
        self.run(|| self.inner.get(ids)).await
    }

    async fn count(&self, filter: Option<&Filter>) -> Result<usize> {
        self.run(|| self.inner.count(filter)).await
    }
}

/// Tries `primary`, then `fallback` when the primary fails with a retryable error; see
/// [`ComposeExt::with_fallback`]. Implements [`Chain`] and [`ChatModel`].
///
/// Non-retryable errors (bad credentials, invalid input, parse failures) are returned as
/// they are: another model would fail the same way, or hide a bug.
#[derive(Debug, Clone)]
pub struct Fallback<A, B> {
    primary: A,
    fallback: B,
}

impl<A, B> Fallback<A, B> {
    /// Tries `primary`, then `fallback`.
    pub fn new(primary: A, fallback: B) -> Self {
        Fallback { primary, fallback }
    }
}

#[async_trait]
impl<I, O, A, B> Chain<I, O> for Fallback<A, B>
where
    I: Clone + Send + 'static,
    O: Send + 'static,
    A: Chain<I, O>,
    B: Chain<I, O>,
{
    async fn invoke(&self, input: I) -> Result<O> {
        match self.primary.invoke(input.clone()).await {
            Err(e) if e.is_retryable() => {
                tracing::debug!(error = %e, "primary chain failed; using the fallback");
                self.fallback.invoke(input).await
            }
            other => other,
        }
    }

    /// The primary's stream, unless it fails with a retryable error before its first item:
    /// then the fallback's. Once an item is out there is no switching.
    async fn stream(&self, input: I) -> Result<ChainStream<O>> {
        let primary = match self.primary.stream(input.clone()).await {
            Ok(s) => started(s).await,
            Err(e) => Err(e),
        };
        match primary {
            Err(e) if e.is_retryable() => {
                tracing::debug!(error = %e, "primary chain failed; streaming the fallback");
                self.fallback.stream(input).await
            }
            other => other,
        }
    }
}

#[async_trait]
impl<A: ChatModel, B: ChatModel> ChatModel for Fallback<A, B> {
    async fn generate(&self, request: ChatRequest) -> Result<ChatResponse> {
        match self.primary.generate(request.clone()).await {
            Err(e) if e.is_retryable() => {
                tracing::debug!(error = %e, "primary model failed; using the fallback");
                self.fallback.generate(request).await
            }
            other => other,
        }
    }

    /// The primary's stream, unless it fails with a retryable error before its first token
    /// (see [`ModelFallbacks`]): then the fallback's.
    async fn stream(&self, request: ChatRequest) -> Result<ChatStream> {
        let primary = match self.primary.stream(request.clone()).await {
            Ok(s) => first_token(s).await,
            Err(e) => Err(e),
        };
        match primary {
            Err(e) if e.is_retryable() => {
                tracing::debug!(error = %e, "primary model failed; using the fallback");
                self.fallback.stream(request).await
            }
            other => other,
        }
    }

    fn model_info(&self) -> ModelInfo {
        self.primary.model_info()
    }
}

/// Waits for a chat stream's first token (text, tool call, reasoning or finish), keeping the
/// metadata chunks that came before it (response id, model, rate limits, usage), so a
/// caller can still switch models when the stream fails before saying anything.
pub(crate) async fn first_token(mut stream: ChatStream) -> Result<ChatStream> {
    const MAX_HEAD: usize = 64;
    let mut head = Vec::new();
    loop {
        match stream.next().await {
            None => return Ok(Box::pin(futures::stream::iter(head.into_iter().map(Ok)))),
            Some(Err(e)) => return Err(e),
            Some(Ok(chunk)) => {
                let metadata = matches!(
                    chunk,
                    ChatChunk::Model(_)
                        | ChatChunk::ResponseId(_)
                        | ChatChunk::RateLimit(_)
                        | ChatChunk::Usage(_)
                );
                head.push(chunk);
                // A stream that only ever sends metadata is taken as started after a while,
                // rather than buffered without bound.
                if !metadata || head.len() >= MAX_HEAD {
                    let head = futures::stream::iter(head.into_iter().map(Ok));
                    return Ok(Box::pin(head.chain(stream)));
                }
            }
        }
    }
}

/// A chain of chat models: the first that answers wins; see [`ModelFallbacks::new`].
///
/// The next model is tried after a **retryable** error (rate limit, server error, timeout,
/// transport failure, and [`Unavailable`](catena_core::ProviderErrorKind::Unavailable) from
/// an open [`CircuitBreaker`](crate::CircuitBreaker)); a stream switches when it fails
/// before its first token, never after (the caller would see a duplicated answer). Other
/// errors (bad key, invalid request) end the call: another model would hide them. Each
/// switch is logged and counted in `catena.model.fallbacks` (labels `from`, `to`).
///
/// ```
/// use std::sync::Arc;
/// use catena_core::{ChatModel, ChatModelExt, ChatRequest, Message, ModelInfo, ProviderError, ProviderErrorKind};
/// use catena_core::test_utils::ScriptedChatModel;
/// use catena_chains::ModelFallbacks;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> catena_core::Result<()> {
/// let primary = ScriptedChatModel::new()
///     .with_error(ProviderError::new(ProviderErrorKind::Server, "overloaded").into())
///     .with_model_info(ModelInfo::new("anthropic", "claude"));
/// let backup = ScriptedChatModel::new()
///     .with_text("from the backup")
///     .with_model_info(ModelInfo::new("openai", "gpt"));
/// let models = ModelFallbacks::new(vec![primary.boxed(), backup.boxed()])?;
/// let answer = models.generate(ChatRequest::new(vec![Message::user("hi")])).await?;
/// assert_eq!(answer.text(), "from the backup");
/// # Ok(()) }
/// ```
pub struct ModelFallbacks {
    models: Vec<Arc<dyn ChatModel>>,
}

impl fmt::Debug for ModelFallbacks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<String> = self
            .models
            .iter()
            .map(|m| {
                let info = m.model_info();
                format!("{}/{}", info.provider, info.model)
            })
            .collect();
        f.debug_struct("ModelFallbacks")
            .field("models", &names)
            .finish()
    }
}

impl ModelFallbacks {
    /// Tries `models` in order.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] when `models` is empty.
    pub fn new(models: Vec<Arc<dyn ChatModel>>) -> Result<Self> {
        if models.is_empty() {
            return Err(Error::invalid_config(
                "a model fallback chain needs at least one model",
            ));
        }
        Ok(ModelFallbacks { models })
    }

    /// The models, in order.
    pub fn models(&self) -> &[Arc<dyn ChatModel>] {
        &self.models
    }

    fn switching(&self, from: usize, error: &Error) {
        let name = |i: usize| {
            let info = self.models[i].model_info();
            format!("{}/{}", info.provider, info.model)
        };
        if from + 1 < self.models.len() {
            let (from, to) = (name(from), name(from + 1));
            tracing::warn!(%from, %to, error = %error, "model failed; falling back");
            metrics::counter!("catena.model.fallbacks", "from" => from, "to" => to).increment(1);
        }
    }
}

#[async_trait]
impl ChatModel for ModelFallbacks {
    async fn generate(&self, request: ChatRequest) -> Result<ChatResponse> {
        let mut last = None;
        for (i, model) in self.models.iter().enumerate() {
            match model.generate(request.clone()).await {
                Err(e) if e.is_retryable() => {
                    self.switching(i, &e);
                    last = Some(e);
                }
                other => return other,
            }
        }
        Err(last.unwrap_or_else(|| Error::other("model fallback chain is empty")))
    }

    /// The first stream to produce a token without a retryable error before it.
    async fn stream(&self, request: ChatRequest) -> Result<ChatStream> {
        let mut last = None;
        for (i, model) in self.models.iter().enumerate() {
            let attempt = match model.stream(request.clone()).await {
                Ok(s) => first_token(s).await,
                Err(e) => Err(e),
            };
            match attempt {
                Err(e) if e.is_retryable() => {
                    self.switching(i, &e);
                    last = Some(e);
                }
                other => return other,
            }
        }
        Err(last.unwrap_or_else(|| Error::other("model fallback chain is empty")))
    }

    /// The first model's info.
    fn model_info(&self) -> ModelInfo {
        self.models[0].model_info()
    }
}

/// Fails a call that takes longer than its deadline with [`Error::Timeout`]; see
/// [`ComposeExt::with_timeout`].
///
/// Implements [`Chain`], [`ChatModel`] (for a stream, the deadline covers its start),
/// [`Embedder`], [`VectorStore`] and [`Retriever`].
#[derive(Debug, Clone)]
pub struct Timeout<C> {
    inner: C,
    timeout: Duration,
}

impl<C> Timeout<C> {
    /// Wraps `inner` with a deadline of `timeout` per call.
    pub fn new(inner: C, timeout: Duration) -> Self {
        Timeout { inner, timeout }
    }

    /// The wrapped component.
    pub fn get_ref(&self) -> &C {
        &self.inner
    }

    async fn run<T>(&self, call: impl Future<Output = Result<T>>) -> Result<T> {
        tokio::time::timeout(self.timeout, call)
            .await
            .unwrap_or(Err(Error::Timeout(self.timeout)))
    }
}

#[async_trait]
impl<I, O, C> Chain<I, O> for Timeout<C>
where
    I: Send + 'static,
    O: Send + 'static,
    C: Chain<I, O>,
{
    async fn invoke(&self, input: I) -> Result<O> {
        self.run(self.inner.invoke(input)).await
    }

    /// The timeout bounds the wait for the first item; the rest streams at its own pace.
    async fn stream(&self, input: I) -> Result<ChainStream<O>> {
        self.run(async { started(self.inner.stream(input).await?).await })
            .await
    }
}

#[async_trait]
impl<M: ChatModel> ChatModel for Timeout<M> {
    async fn generate(&self, request: ChatRequest) -> Result<ChatResponse> {
        self.run(self.inner.generate(request)).await
    }

    async fn stream(&self, request: ChatRequest) -> Result<ChatStream> {
        self.run(self.inner.stream(request)).await
    }

    fn model_info(&self) -> ModelInfo {
        self.inner.model_info()
    }
}

#[async_trait]
impl<E: Embedder> Embedder for Timeout<E> {
    async fn embed_documents(&self, texts: &[String]) -> Result<Vec<Embedding>> {
        self.run(self.inner.embed_documents(texts)).await
    }

    async fn embed_query(&self, text: &str) -> Result<Embedding> {
        self.run(self.inner.embed_query(text)).await
    }

    fn dimensions(&self) -> usize {
        self.inner.dimensions()
    }
}

#[async_trait]
impl<R: Retriever> Retriever for Timeout<R> {
    async fn retrieve(&self, query: &str) -> Result<Vec<Document>> {
        self.run(self.inner.retrieve(query)).await
    }
}

#[async_trait]
impl<S: VectorStore> VectorStore for Timeout<S> {
    async fn upsert(&self, documents: Vec<EmbeddedDocument>) -> Result<UpsertReport> {
        self.run(self.inner.upsert(documents)).await
    }

    async fn search(&self, request: SearchRequest) -> Result<Vec<ScoredDocument>> {
        self.run(self.inner.search(request)).await
    }

    async fn search_mmr(&self, request: MmrRequest) -> Result<Vec<ScoredDocument>> {
        self.run(self.inner.search_mmr(request)).await
    }

    async fn delete(&self, ids: &[DocumentId]) -> Result<usize> {
        self.run(self.inner.delete(ids)).await
    }

    async fn delete_by_filter(&self, filter: &Filter) -> Result<usize> {
        self.run(self.inner.delete_by_filter(filter)).await
    }

    async fn get(&self, ids: &[DocumentId]) -> Result<Vec<Document>> {
        self.run(self.inner.get(ids)).await
    }

    async fn count(&self, filter: Option<&Filter>) -> Result<usize> {
        self.run(self.inner.count(filter)).await
    }
}

/// Retry, timeout and fallback for every component: chains, chat models, embedders, stores
/// and retrievers (whatever the wrapped type implements, the decorator implements too); and
/// caches for chat models and embedders.
pub trait ComposeExt: Sized {
    /// Retries the errors `policy` retries. A chain's input must be `Clone`.
    fn with_retry(self, policy: RetryPolicy) -> Retry<Self> {
        Retry::new(self, policy)
    }

    /// Fails calls that take longer than `timeout` with [`Error::Timeout`] (which is
    /// retryable, so a [`Retry`] outside a [`Timeout`] retries slow calls).
    fn with_timeout(self, timeout: Duration) -> Timeout<Self> {
        Timeout::new(self, timeout)
    }

    /// Tries `fallback` when this chain or chat model fails with a retryable error.
    fn with_fallback<B>(self, fallback: B) -> Fallback<Self, B> {
        Fallback::new(self, fallback)
    }

    /// Caches this chat model's answers by exact request in `store`; see
    /// [`CachedChatModel`](crate::CachedChatModel).
    fn with_cache(
        self,
        store: std::sync::Arc<dyn catena_core::CacheStore>,
    ) -> crate::CachedChatModel<Self> {
        crate::CachedChatModel::new(self, store)
    }

    /// Answers prompts similar to previous ones (by `embedder`) from `store`; see
    /// [`SemanticCachedChatModel`](crate::SemanticCachedChatModel).
    fn with_semantic_cache<E>(
        self,
        embedder: E,
        store: std::sync::Arc<dyn catena_core::SemanticCacheStore>,
    ) -> crate::SemanticCachedChatModel<Self, E> {
        crate::SemanticCachedChatModel::new(self, embedder, store)
    }

    /// Caches this embedder's vectors per text in `store`, keyed by the model id `model`;
    /// see [`CachedEmbedder`](crate::CachedEmbedder).
    fn with_embedding_cache(
        self,
        store: std::sync::Arc<dyn catena_core::CacheStore>,
        model: impl Into<String>,
    ) -> crate::CachedEmbedder<Self> {
        crate::CachedEmbedder::new(self, store, model)
    }
}

impl<T> ComposeExt for T {}

/// Runs `chain` on every input with at most `max_concurrency` calls in flight (0 is
/// treated as 1). Results come back in input order, one per input, so one failure does not
/// hide the others.
pub async fn batch_bounded<I, O, C>(
    chain: &C,
    inputs: Vec<I>,
    max_concurrency: usize,
) -> Vec<Result<O>>
where
    I: Send + 'static,
    O: Send + 'static,
    C: Chain<I, O> + ?Sized,
{
    futures::stream::iter(inputs)
        .map(|input| chain.invoke(input))
        .buffered(max_concurrency.max(1))
        .collect()
        .await
}

/// A type-erased chain that can be shared: `Arc<dyn Chain<I, O>>`.
pub type SharedChain<I, O> = Arc<dyn Chain<I, O>>;

/// A chain that is tried in order with others: the first success wins, and the next chain
/// is tried only after a retryable error. Built from a list, for more than two chains.
pub struct FallbackList<I, O> {
    chains: Vec<SharedChain<I, O>>,
}

impl<I, O> fmt::Debug for FallbackList<I, O> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FallbackList")
            .field("chains", &self.chains.len())
            .finish()
    }
}

impl<I, O> FallbackList<I, O> {
    /// Tries `chains` in order.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] when `chains` is empty.
    pub fn new(chains: Vec<SharedChain<I, O>>) -> Result<Self> {
        if chains.is_empty() {
            return Err(Error::invalid_config(
                "a fallback list needs at least one chain",
            ));
        }
        Ok(FallbackList { chains })
    }
}

#[async_trait]
impl<I, O> Chain<I, O> for FallbackList<I, O>
where
    I: Clone + Send + 'static,
    O: Send + 'static,
{
    async fn invoke(&self, input: I) -> Result<O> {
        let mut last = None;
        for chain in &self.chains {
            match chain.invoke(input.clone()).await {
                Err(e) if e.is_retryable() => last = Some(e),
                other => return other,
            }
        }
        Err(last.unwrap_or_else(|| Error::other("fallback list is empty")))
    }

    /// The first stream that starts (produces its first item) without a retryable error.
    async fn stream(&self, input: I) -> Result<ChainStream<O>> {
        let mut last = None;
        for chain in &self.chains {
            let attempt = match chain.stream(input.clone()).await {
                Ok(s) => started(s).await,
                Err(e) => Err(e),
            };
            match attempt {
                Err(e) if e.is_retryable() => last = Some(e),
                other => return other,
            }
        }
        Err(last.unwrap_or_else(|| Error::other("fallback list is empty")))
    }
}
