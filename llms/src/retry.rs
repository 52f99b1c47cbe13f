//! Retries with exponential backoff, as the official SDKs do, and a decorator that adds
//! them to any chat model or embedder.
//!
//! ```
//! use std::time::Duration;
//! use catena_core::test_utils::ScriptedChatModel;
//! use catena_llms::{RetryExt, RetryPolicy};
//!
//! let model = ScriptedChatModel::new()
//!     .with_retry(RetryPolicy::default().max_retries(3).initial_backoff(Duration::from_millis(100)));
//! ```

use std::collections::hash_map::RandomState;
use std::future::Future;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use catena_core::{
    ChatModel, ChatRequest, ChatResponse, ChatStream, Embedder, Embedding, Error, ModelInfo, Result,
};

/// When and how long to wait before trying again.
///
/// Defaults follow the official OpenAI SDKs: 2 retries, backoff from 0.5 s doubling up to 8 s
/// with up to 25 % jitter, retrying connection errors, timeouts, 408, 409, 429 and 5xx, and
/// honouring the server's `retry-after-ms` / `retry-after` up to 60 s.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    max_retries: u32,
    initial_backoff: Duration,
    max_backoff: Duration,
    max_retry_after: Duration,
    jitter: bool,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_retries: 2,
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(8),
            max_retry_after: Duration::from_secs(60),
            jitter: true,
        }
    }
}

static JITTER_COUNTER: AtomicU64 = AtomicU64::new(0);

fn random_unit() -> f64 {
    let mut h = RandomState::new().build_hasher();
    h.write_u64(JITTER_COUNTER.fetch_add(1, Ordering::Relaxed));
    // 53 random bits in [0, 1).
    (h.finish() >> 11) as f64 / (1u64 << 53) as f64
}

impl RetryPolicy {
    /// The default policy.
    pub fn new() -> Self {
        Self::default()
    }

    /// A policy that never retries.
    pub fn none() -> Self {
        Self::default().max_retries(0)
    }

    /// Retries after the first attempt. Default 2.
    #[must_use]
    pub fn max_retries(mut self, n: u32) -> Self {
        self.max_retries = n;
        self
    }

    /// The first backoff. Default 0.5 s.
    #[must_use]
    pub fn initial_backoff(mut self, d: Duration) -> Self {
        self.initial_backoff = d;
        self
    }

    /// The largest backoff. Default 8 s.
    #[must_use]
    pub fn max_backoff(mut self, d: Duration) -> Self {
        self.max_backoff = d;
        self
    }

    /// The longest server-requested wait that is honoured; longer ones are capped to it.
    /// Default 60 s.
    #[must_use]
    pub fn max_retry_after(mut self, d: Duration) -> Self {
        self.max_retry_after = d;
        self
    }

    /// Whether to shorten each backoff by a random 0–25 %. Default true.
    #[must_use]
    pub fn jitter(mut self, yes: bool) -> Self {
        self.jitter = yes;
        self
    }

    /// The configured number of retries.
    pub fn retries(&self) -> u32 {
        self.max_retries
    }

    /// Whether `err` is worth retrying: retryable kinds (rate limit, server, transport,
    /// timeout), plus HTTP 408 and 409.
    pub fn should_retry(&self, err: &Error) -> bool {
        err.is_retryable() || matches!(err.as_provider().and_then(|p| p.status), Some(408 | 409))
    }

    /// How long to wait before retry number `retry` (0-based) after `err`.
    pub fn delay(&self, retry: u32, err: &Error) -> Duration {
        if let Some(ra) = err.retry_after() {
            return ra.min(self.max_retry_after);
        }
        let factor = 2f64.powi(i32::try_from(retry).unwrap_or(i32::MAX).min(30));
        let base = self.initial_backoff.mul_f64(factor).min(self.max_backoff);
        if self.jitter {
            base.mul_f64(1.0 - 0.25 * random_unit())
        } else {
            base
        }
    }

    /// Runs `op`, retrying failures this policy deems retryable.
    ///
    /// # Errors
    /// The last error, once retries are spent or the error is not retryable.
    pub async fn run<T, F, Fut>(&self, mut op: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let mut retry = 0;
        loop {
            match op().await {
                Ok(v) => return Ok(v),
                Err(e) if retry < self.max_retries && self.should_retry(&e) => {
                    let wait = self.delay(retry, &e);
                    tracing::debug!(retry = retry + 1, wait_ms = wait.as_millis() as u64, error = %e, "retrying");
                    tokio::time::sleep(wait).await;
                    retry += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }
}

/// A chat model or embedder whose calls are retried by a [`RetryPolicy`].
///
/// For streams only the start is retried: once a stream has been handed out, its chunks
/// are never replayed.
#[derive(Debug, Clone)]
pub struct Retry<M> {
    inner: M,
    policy: RetryPolicy,
}

impl<M> Retry<M> {
    /// Wraps `inner`.
    pub fn new(inner: M, policy: RetryPolicy) -> Self {
        Retry { inner, policy }
    }

    /// The wrapped component.
    pub fn get_ref(&self) -> &M {
        &self.inner
    }

    /// Unwraps the component.
    pub fn into_inner(self) -> M {
        self.inner
    }
}

/// Adds [`with_retry`](RetryExt::with_retry) to every type.
pub trait RetryExt: Sized {
    /// Wraps `self` in [`Retry`].
    fn with_retry(self, policy: RetryPolicy) -> Retry<Self> {
        Retry::new(self, policy)
    }
}

impl<T> RetryExt for T {}

#[async_trait]
impl<M: ChatModel> ChatModel for Retry<M> {
    async fn generate(&self, request: ChatRequest) -> Result<ChatResponse> {
        self.policy
            .run(|| self.inner.generate(request.clone()))
            .await
    }

    async fn stream(&self, request: ChatRequest) -> Result<ChatStream> {
        self.policy.run(|| self.inner.stream(request.clone())).await
    }

    fn model_info(&self) -> ModelInfo {
        self.inner.model_info()
    }
}

#[async_trait]
impl<M: Embedder> Embedder for Retry<M> {
    async fn embed_documents(&self, texts: &[String]) -> Result<Vec<Embedding>> {
        self.policy.run(|| self.inner.embed_documents(texts)).await
    }

    async fn embed_query(&self, text: &str) -> Result<Embedding> {
        self.policy.run(|| self.inner.embed_query(text)).await
    }

    fn dimensions(&self) -> usize {
        self.inner.dimensions()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use catena_core::test_utils::ScriptedChatModel;
    use catena_core::{Message, ProviderError, ProviderErrorKind};

    fn err(kind: ProviderErrorKind, status: u16) -> Error {
        ProviderError::new(kind, "x").with_status(status).into()
    }

    #[test]
    fn backoff_schedule_doubles_and_caps() {
        let p = RetryPolicy::default().jitter(false);
        let e = err(ProviderErrorKind::Server, 503);
        let got: Vec<u64> = (0..6).map(|i| p.delay(i, &e).as_millis() as u64).collect();
        assert_eq!(got, [500, 1000, 2000, 4000, 8000, 8000]);
        let jittered = RetryPolicy::default().delay(1, &e);
        assert!(jittered <= Duration::from_millis(1000) && jittered >= Duration::from_millis(750));
    }

    #[test]
    fn retry_after_is_honoured_up_to_the_cap() {
        let p = RetryPolicy::default();
        let e: Error = ProviderError::new(ProviderErrorKind::RateLimited, "x")
            .with_retry_after(Duration::from_secs(3))
            .into();
        assert_eq!(p.delay(0, &e), Duration::from_secs(3));
        let e: Error = ProviderError::new(ProviderErrorKind::RateLimited, "x")
            .with_retry_after(Duration::from_secs(3600))
            .into();
        assert_eq!(p.delay(0, &e), Duration::from_secs(60));
    }

    #[test]
    fn what_is_retried() {
        let p = RetryPolicy::default();
        assert!(p.should_retry(&err(ProviderErrorKind::RateLimited, 429)));
        assert!(p.should_retry(&err(ProviderErrorKind::Server, 500)));
        assert!(p.should_retry(&err(ProviderErrorKind::InvalidRequest, 409)));
        assert!(p.should_retry(&err(ProviderErrorKind::Timeout, 408)));
        assert!(!p.should_retry(&err(ProviderErrorKind::InvalidRequest, 400)));
        assert!(!p.should_retry(&err(ProviderErrorKind::Auth, 401)));
        assert!(!p.should_retry(&err(ProviderErrorKind::ModelNotFound, 404)));
    }

    #[tokio::test(start_paused = true)]
    async fn decorator_retries_then_gives_up_on_schedule() {
        let model = ScriptedChatModel::new()
            .with_error(err(ProviderErrorKind::Server, 503))
            .with_error(err(ProviderErrorKind::Server, 503))
            .with_error(err(ProviderErrorKind::Server, 503))
            .with_text("never reached")
            .with_retry(RetryPolicy::default().jitter(false));
        let start = tokio::time::Instant::now();
        let e = model
            .generate(ChatRequest::new(vec![Message::user("hi")]))
            .await
            .unwrap_err();
        assert_eq!(e.as_provider().and_then(|p| p.status), Some(503));
        assert_eq!(model.get_ref().requests().len(), 3, "1 attempt + 2 retries");
        assert_eq!(start.elapsed(), Duration::from_millis(1500));
        // The next call gets the queued answer on its first try.
        let ok = model
            .generate(ChatRequest::new(vec![Message::user("hi")]))
            .await
            .unwrap();
        assert_eq!(ok.text(), "never reached");
    }

    #[tokio::test(start_paused = true)]
    async fn no_retry_on_client_errors() {
        let model = ScriptedChatModel::new()
            .with_error(err(ProviderErrorKind::Auth, 401))
            .with_text("unused")
            .with_retry(RetryPolicy::default());
        assert!(model
            .generate(ChatRequest::new(vec![Message::user("hi")]))
            .await
            .unwrap_err()
            .is_auth());
        assert_eq!(model.get_ref().requests().len(), 1);
    }
}
