//! A circuit breaker per model: stop calling a provider that keeps failing, probe it now and
//! then, and let a fallback take over meanwhile.
//!
//! [`CircuitBreaker`] wraps any [`ChatModel`] (or [`Embedder`]). It counts failures that say
//! the provider is unwell — server errors, transport failures, timeouts, interrupted streams
//! (not rate limits, and not bad requests: another call would not fail the same way). After
//! [`BreakerConfig::failure_threshold`] of them within [`BreakerConfig::window`] it **opens**:
//! calls fail at once with [`ProviderErrorKind::Unavailable`] (retryable, `retry_after` = the
//! time left open). After [`BreakerConfig::open_for`] it is **half-open**: up to
//! [`BreakerConfig::half_open_probes`] calls go through; a success closes it, a failure opens
//! it again. A stream counts when it ends: finished is a success, an error a failure, and a
//! stream dropped by its caller counts as neither.
//!
//! ```
//! use std::time::Duration;
//! use catena_core::{ChatModel, ChatRequest, Message, ProviderError, ProviderErrorKind};
//! use catena_core::test_utils::ScriptedChatModel;
//! use catena_chains::{BreakerConfig, BreakerState, CircuitBreaker};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let down = ScriptedChatModel::new()
//!     .with_error(ProviderError::new(ProviderErrorKind::Server, "502").into())
//!     .with_error(ProviderError::new(ProviderErrorKind::Server, "502").into());
//! let model = CircuitBreaker::new(
//!     down,
//!     BreakerConfig::new().failure_threshold(2).open_for(Duration::from_secs(30)),
//! );
//! let req = ChatRequest::new(vec![Message::user("hi")]);
//! for _ in 0..2 {
//!     assert!(model.generate(req.clone()).await.is_err());
//! }
//! assert_eq!(model.state(), BreakerState::Open);
//! let err = model.generate(req).await.unwrap_err();
//! assert_eq!(err.provider_kind(), Some(&ProviderErrorKind::Unavailable));
//! # }
//! ```

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use async_trait::async_trait;
use catena_core::{
    ChatChunk, ChatModel, ChatRequest, ChatResponse, ChatStream, Embedder, Embedding, Error,
    ModelInfo, ProviderError, ProviderErrorKind, Result,
};
use futures::Stream;
use tokio::time::Instant;

/// When a [`CircuitBreaker`] opens and how it recovers.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct BreakerConfig {
    /// Failures within `window` that open the breaker (default 5).
    pub failure_threshold: u32,
    /// The window failures are counted in (default 60 s).
    pub window: Duration,
    /// How long the breaker stays open before probing (default 30 s).
    pub open_for: Duration,
    /// Calls let through at once while half-open (default 1).
    pub half_open_probes: u32,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        BreakerConfig {
            failure_threshold: 5,
            window: Duration::from_secs(60),
            open_for: Duration::from_secs(30),
            half_open_probes: 1,
        }
    }
}

impl BreakerConfig {
    /// The defaults: 5 failures in 60 s open it for 30 s, then 1 probe.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the failures that open the breaker.
    #[must_use]
    pub fn failure_threshold(mut self, n: u32) -> Self {
        self.failure_threshold = n.max(1);
        self
    }

    /// Sets the counting window.
    #[must_use]
    pub fn window(mut self, window: Duration) -> Self {
        self.window = window;
        self
    }

    /// Sets how long it stays open.
    #[must_use]
    pub fn open_for(mut self, open_for: Duration) -> Self {
        self.open_for = open_for;
        self
    }

    /// Sets the probes let through while half-open.
    #[must_use]
    pub fn half_open_probes(mut self, n: u32) -> Self {
        self.half_open_probes = n.max(1);
        self
    }
}

/// Where a [`CircuitBreaker`] stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum BreakerState {
    /// Calls go through; failures are counted.
    Closed,
    /// Calls fail at once with [`ProviderErrorKind::Unavailable`].
    Open,
    /// A few probe calls go through to test the provider.
    HalfOpen,
}

#[derive(Debug)]
enum Inner {
    Closed { failures: VecDeque<Instant> },
    Open { until: Instant },
    HalfOpen { probes: u32 },
}

/// What a call was admitted as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Admission {
    Normal,
    Probe,
}

/// The state machine, shared by the decorator and its streams.
#[derive(Debug)]
struct Breaker {
    name: String,
    config: BreakerConfig,
    state: Mutex<Inner>,
}

impl Breaker {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn state(&self) -> BreakerState {
        match &*self.lock() {
            Inner::Closed { .. } => BreakerState::Closed,
            Inner::Open { until } if Instant::now() >= *until => BreakerState::HalfOpen,
            Inner::Open { .. } => BreakerState::Open,
            Inner::HalfOpen { .. } => BreakerState::HalfOpen,
        }
    }

    fn admit(&self) -> Result<Admission> {
        let now = Instant::now();
        let mut s = self.lock();
        if let Inner::Open { until } = &*s {
            if now < *until {
                let left = *until - now;
                return Err(ProviderError::new(
                    ProviderErrorKind::Unavailable,
                    format!(
                        "the circuit breaker of `{}` is open after repeated failures; \
                         it probes again in {:.1}s",
                        self.name,
                        left.as_secs_f64()
                    ),
                )
                .with_provider("catena")
                .with_retry_after(left)
                .into());
            }
            *s = Inner::HalfOpen { probes: 0 };
            tracing::info!(model = %self.name, "circuit breaker half-open: probing");
        }
        match &mut *s {
            Inner::HalfOpen { probes } if *probes >= self.config.half_open_probes => {
                Err(ProviderError::new(
                    ProviderErrorKind::Unavailable,
                    format!(
                        "the circuit breaker of `{}` is half-open and its probe is in flight",
                        self.name
                    ),
                )
                .with_provider("catena")
                .with_retry_after(Duration::from_millis(100))
                .into())
            }
            Inner::HalfOpen { probes } => {
                *probes += 1;
                Ok(Admission::Probe)
            }
            _ => Ok(Admission::Normal),
        }
    }

    /// Whether an error says the provider is unwell.
    fn counts(error: &Error) -> bool {
        matches!(
            error.provider_kind(),
            Some(
                ProviderErrorKind::Server
                    | ProviderErrorKind::Transport
                    | ProviderErrorKind::Timeout
                    | ProviderErrorKind::StreamInterrupted
            )
        ) || matches!(error, Error::Timeout(_))
    }

    fn on_success(&self, admission: Admission) {
        let mut s = self.lock();
        if admission == Admission::Probe || matches!(&*s, Inner::HalfOpen { .. }) {
            if !matches!(&*s, Inner::Closed { .. }) {
                tracing::info!(model = %self.name, "circuit breaker closed: the probe succeeded");
                metrics::counter!("catena.breaker.transitions", "model" => self.name.clone(), "to" => "closed")
                    .increment(1);
            }
            *s = Inner::Closed {
                failures: VecDeque::new(),
            };
        }
    }

    fn on_failure(&self, admission: Admission, error: &Error) {
        if !Self::counts(error) {
            self.on_neither(admission);
            return;
        }
        let now = Instant::now();
        let mut s = self.lock();
        let open = match &mut *s {
            Inner::Closed { failures } => {
                failures.push_back(now);
                while failures
                    .front()
                    .is_some_and(|t| now.duration_since(*t) > self.config.window)
                {
                    failures.pop_front();
                }
                failures.len() >= self.config.failure_threshold as usize
            }
            Inner::HalfOpen { .. } => true,
            Inner::Open { .. } => false,
        };
        if open {
            tracing::warn!(
                model = %self.name,
                open_for_s = self.config.open_for.as_secs_f64(),
                error = %error,
                "circuit breaker open"
            );
            metrics::counter!("catena.breaker.transitions", "model" => self.name.clone(), "to" => "open")
                .increment(1);
            // A year at most: an absurd setting must not overflow the clock.
            let open_for = self.config.open_for.min(Duration::from_secs(365 * 86_400));
            *s = Inner::Open {
                until: now.checked_add(open_for).unwrap_or(now),
            };
        }
    }

    /// A call that ended with no verdict (cancelled, or an error that says nothing about the
    /// provider): a probe's slot is given back.
    fn on_neither(&self, admission: Admission) {
        if admission == Admission::Probe {
            if let Inner::HalfOpen { probes } = &mut *self.lock() {
                *probes = probes.saturating_sub(1);
            }
        }
    }
}

/// An admitted call: gives a probe's slot back when dropped without a verdict (the caller's
/// future was cancelled: a timeout, a client that went away).
struct Admitted<'a> {
    breaker: &'a Breaker,
    admission: Admission,
    settled: bool,
}

impl<'a> Admitted<'a> {
    fn new(breaker: &'a Breaker) -> Result<Self> {
        Ok(Admitted {
            breaker,
            admission: breaker.admit()?,
            settled: false,
        })
    }

    /// Reports how the call ended.
    fn settle<T>(self, result: &Result<T>) {
        self.report(result.as_ref().err());
    }

    fn report(mut self, error: Option<&Error>) {
        self.settled = true;
        match error {
            None => self.breaker.on_success(self.admission),
            Some(e) => self.breaker.on_failure(self.admission, e),
        }
    }

    /// The admission, handed on to a stream that reports its own end.
    fn hand_over(mut self) -> Admission {
        self.settled = true;
        self.admission
    }
}

impl Drop for Admitted<'_> {
    fn drop(&mut self) {
        if !self.settled {
            self.breaker.on_neither(self.admission);
        }
    }
}

/// A [`ChatModel`] or [`Embedder`] behind a circuit breaker configured by [`BreakerConfig`].
#[derive(Debug, Clone)]
pub struct CircuitBreaker<M> {
    inner: M,
    breaker: Arc<Breaker>,
}

impl<M> CircuitBreaker<M> {
    /// Wraps `inner` with a breaker called `name` (embedders have no model info to name it
    /// after; chat models get `provider/model` from [`new`](CircuitBreaker::new)).
    pub fn with_name(inner: M, name: impl Into<String>, config: BreakerConfig) -> Self {
        CircuitBreaker {
            inner,
            breaker: Arc::new(Breaker {
                name: name.into(),
                config,
                state: Mutex::new(Inner::Closed {
                    failures: VecDeque::new(),
                }),
            }),
        }
    }

    /// Renames the breaker (in logs, errors and the `catena.breaker.transitions` metric).
    #[must_use]
    pub fn named(self, name: impl Into<String>) -> Self {
        let config = self.breaker.config.clone();
        Self::with_name(self.inner, name, config)
    }

    /// The current state.
    pub fn state(&self) -> BreakerState {
        self.breaker.state()
    }

    /// The wrapped component.
    pub fn get_ref(&self) -> &M {
        &self.inner
    }
}

impl<M: ChatModel> CircuitBreaker<M> {
    /// Wraps `inner`; the breaker is named `provider/model`.
    pub fn new(inner: M, config: BreakerConfig) -> Self {
        let info = inner.model_info();
        let name = format!("{}/{}", info.provider, info.model);
        Self::with_name(inner, name, config)
    }
}

#[async_trait]
impl<M: ChatModel> ChatModel for CircuitBreaker<M> {
    async fn generate(&self, request: ChatRequest) -> Result<ChatResponse> {
        let admitted = Admitted::new(&self.breaker)?;
        let result = self.inner.generate(request).await;
        admitted.settle(&result);
        result
    }

    async fn stream(&self, request: ChatRequest) -> Result<ChatStream> {
        let admitted = Admitted::new(&self.breaker)?;
        match self.inner.stream(request).await {
            Ok(inner) => Ok(Box::pin(BreakerStream {
                inner,
                breaker: self.breaker.clone(),
                admission: admitted.hand_over(),
                verdict: false,
            })),
            Err(e) => {
                admitted.report(Some(&e));
                Err(e)
            }
        }
    }

    fn model_info(&self) -> ModelInfo {
        self.inner.model_info()
    }
}

/// Reports a stream's end to its breaker.
struct BreakerStream {
    inner: ChatStream,
    breaker: Arc<Breaker>,
    admission: Admission,
    verdict: bool,
}

impl Stream for BreakerStream {
    type Item = Result<ChatChunk>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        let item = this.inner.as_mut().poll_next(cx);
        if !this.verdict {
            match &item {
                Poll::Ready(Some(Ok(ChatChunk::Finish(_)))) | Poll::Ready(None) => {
                    this.verdict = true;
                    this.breaker.on_success(this.admission);
                }
                Poll::Ready(Some(Err(e))) => {
                    this.verdict = true;
                    this.breaker.on_failure(this.admission, e);
                }
                _ => {}
            }
        }
        item
    }
}

impl Drop for BreakerStream {
    fn drop(&mut self) {
        if !self.verdict {
            self.breaker.on_neither(self.admission);
        }
    }
}

#[async_trait]
impl<E: Embedder> Embedder for CircuitBreaker<E> {
    async fn embed_documents(&self, texts: &[String]) -> Result<Vec<Embedding>> {
        let admitted = Admitted::new(&self.breaker)?;
        let result = self.inner.embed_documents(texts).await;
        admitted.settle(&result);
        result
    }

    async fn embed_query(&self, text: &str) -> Result<Embedding> {
        let admitted = Admitted::new(&self.breaker)?;
        let result = self.inner.embed_query(text).await;
        admitted.settle(&result);
        result
    }

    fn dimensions(&self) -> usize {
        self.inner.dimensions()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use catena_core::test_utils::ScriptedChatModel;
    use catena_core::Message;

    fn server_error() -> ProviderError {
        ProviderError::new(ProviderErrorKind::Server, "502 bad gateway")
    }

    #[tokio::test(start_paused = true)]
    async fn opens_after_failures_in_the_window_probes_and_closes() {
        let model = ScriptedChatModel::new()
            .with_error(server_error().into())
            .with_error(server_error().into())
            .with_error(server_error().into())
            .with_error(server_error().into())
            .with_text("back");
        let cb = CircuitBreaker::new(
            model,
            BreakerConfig::new()
                .failure_threshold(2)
                .window(Duration::from_secs(10))
                .open_for(Duration::from_secs(5)),
        );
        let req = ChatRequest::new(vec![Message::user("x")]);
        // Two failures 11 s apart do not open it: the first left the window.
        assert!(cb.generate(req.clone()).await.is_err());
        tokio::time::advance(Duration::from_secs(11)).await;
        assert!(cb.generate(req.clone()).await.is_err());
        assert_eq!(cb.state(), BreakerState::Closed);
        assert!(cb.generate(req.clone()).await.is_err());
        assert_eq!(cb.state(), BreakerState::Open);
        let err = cb.generate(req.clone()).await.unwrap_err();
        assert_eq!(err.provider_kind(), Some(&ProviderErrorKind::Unavailable));
        assert!(err.is_retryable());
        assert_eq!(err.retry_after(), Some(Duration::from_secs(5)));
        // Half-open: the probe fails, so it opens again.
        tokio::time::advance(Duration::from_secs(5)).await;
        assert_eq!(cb.state(), BreakerState::HalfOpen);
        assert!(cb.generate(req.clone()).await.is_err());
        assert_eq!(cb.state(), BreakerState::Open);
        // The next probe succeeds and closes it.
        tokio::time::advance(Duration::from_secs(5)).await;
        assert_eq!(cb.generate(req).await.unwrap().text(), "back");
        assert_eq!(cb.state(), BreakerState::Closed);
    }

    /// Fails, then hangs, then answers.
    struct FailHangAnswer(std::sync::atomic::AtomicUsize);

    #[async_trait]
    impl ChatModel for FailHangAnswer {
        async fn generate(&self, _: ChatRequest) -> Result<ChatResponse> {
            match self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst) {
                0 => Err(server_error().into()),
                1 => std::future::pending().await,
                _ => Ok(ChatResponse::new(Message::assistant("late"))),
            }
        }
        fn model_info(&self) -> ModelInfo {
            ModelInfo::new("test", "hangs")
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_probe_cancelled_by_its_caller_gives_its_slot_back() {
        // Before: a half-open probe whose future was dropped (a request timeout) kept its
        // slot for ever, and every later call was refused as "probe in flight".
        use futures::FutureExt;
        let cb = CircuitBreaker::new(
            FailHangAnswer(Default::default()),
            BreakerConfig::new()
                .failure_threshold(1)
                .open_for(Duration::from_secs(5)),
        );
        let req = ChatRequest::new(vec![Message::user("x")]);
        assert!(cb.generate(req.clone()).await.is_err());
        assert_eq!(cb.state(), BreakerState::Open);
        tokio::time::advance(Duration::from_secs(5)).await;
        // The probe is admitted, hangs, and its caller gives up (the future is dropped).
        assert!(cb.generate(req.clone()).now_or_never().is_none());
        assert_eq!(cb.generate(req).await.unwrap().text(), "late");
        assert_eq!(cb.state(), BreakerState::Closed);
    }

    #[tokio::test]
    async fn bad_requests_and_rate_limits_do_not_count() {
        let model = ScriptedChatModel::new()
            .with_error(ProviderError::new(ProviderErrorKind::InvalidRequest, "bad").into())
            .with_error(ProviderError::new(ProviderErrorKind::RateLimited, "slow").into())
            .with_error(ProviderError::new(ProviderErrorKind::Auth, "key").into());
        let cb = CircuitBreaker::new(model, BreakerConfig::new().failure_threshold(1));
        let req = ChatRequest::new(vec![Message::user("x")]);
        for _ in 0..3 {
            assert!(cb.generate(req.clone()).await.is_err());
            assert_eq!(cb.state(), BreakerState::Closed);
        }
    }
}
