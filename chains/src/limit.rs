//! Client-side limits: stay under a provider's requests- and tokens-per-minute and a
//! concurrency cap *before* the 429s come.
//!
//! A [`RateLimiter`] holds the budget of one provider account (share it with an `Arc` between
//! every model and embedder that spends it); [`RateLimited`] wraps any [`ChatModel`] or
//! [`Embedder`] so each call first waits its turn. Calls queue in arrival order (reservations
//! on a [GCRA] schedule, no polling), and a call that would wait longer than
//! [`ClientLimits::max_queue_time`] fails at once with a typed, retryable
//! [`RateLimited`](ProviderErrorKind::RateLimited) error saying how long it would have taken.
//!
//! Tokens are estimated before the call — with the provider's tokenizer where it is known
//! (tiktoken's `o200k_base` for OpenAI models), else about four characters per token — plus
//! the request's `max_tokens`, and corrected from the usage the provider reports. The
//! limiter adapts: a 429 pauses every caller until its `Retry-After`, and `x-ratelimit-*` /
//! `anthropic-ratelimit-*` headroom that reaches zero pauses until the window resets.
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//! use catena_core::{ChatModel, ChatRequest, Message};
//! use catena_core::test_utils::ScriptedChatModel;
//! use catena_chains::{ClientLimits, RateLimiter, RateLimited};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> catena_core::Result<()> {
//! let account = Arc::new(RateLimiter::new(
//!     ClientLimits::new()
//!         .requests_per_minute(500)
//!         .tokens_per_minute(200_000)
//!         .max_concurrency(16)
//!         .max_queue_time(Duration::from_secs(30)),
//! )?);
//! let model = RateLimited::new(ScriptedChatModel::new().with_text("hi"), account.clone());
//! let answer = model.generate(ChatRequest::new(vec![Message::user("hello")])).await?;
//! assert_eq!(answer.text(), "hi");
//! # Ok(()) }
//! ```
//!
//! [GCRA]: https://en.wikipedia.org/wiki/Generic_cell_rate_algorithm

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use async_trait::async_trait;
use catena_core::{
    count_tokens, ChatChunk, ChatModel, ChatRequest, ChatResponse, ChatStream, ContentPart,
    Embedder, Embedding, Error, ModelInfo, ProviderError, ProviderErrorKind, RateLimitInfo, Result,
    TokenEncoding, Usage,
};
use futures::Stream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

/// The limits of one provider account, as the client should keep them.
///
/// Leave a margin under the provider's published limits: other clients may share the
/// account, and providers measure over windows of their own.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ClientLimits {
    /// Requests per minute; `None` is unlimited.
    pub requests_per_minute: Option<u32>,
    /// Tokens per minute (prompt estimate + `max_tokens`, corrected by reported usage);
    /// `None` is unlimited.
    pub tokens_per_minute: Option<u32>,
    /// Calls in flight at once (a stream counts until it ends); `None` is unlimited.
    pub max_concurrency: Option<usize>,
    /// The longest a call may wait for its turn before failing.
    pub max_queue_time: Duration,
    /// Requests that may start back to back before the per-minute pace applies (default 1:
    /// evenly spaced, as providers that enforce per-second quanta expect).
    pub request_burst: u32,
    /// Seconds' worth of tokens that may be spent at once (default 6).
    pub token_burst_secs: u32,
    /// Output tokens assumed for a request without `max_tokens` (default 512).
    pub default_output_tokens: u32,
}

impl Default for ClientLimits {
    fn default() -> Self {
        ClientLimits {
            requests_per_minute: None,
            tokens_per_minute: None,
            max_concurrency: None,
            max_queue_time: Duration::from_secs(60),
            request_burst: 1,
            token_burst_secs: 6,
            default_output_tokens: 512,
        }
    }
}

impl ClientLimits {
    /// No limits yet; queue time 60 s.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets requests per minute.
    #[must_use]
    pub fn requests_per_minute(mut self, n: u32) -> Self {
        self.requests_per_minute = Some(n);
        self
    }

    /// Sets requests per second (× 60 per minute).
    #[must_use]
    pub fn requests_per_second(mut self, n: u32) -> Self {
        self.requests_per_minute = Some(n.saturating_mul(60));
        self
    }

    /// Sets tokens per minute.
    #[must_use]
    pub fn tokens_per_minute(mut self, n: u32) -> Self {
        self.tokens_per_minute = Some(n);
        self
    }

    /// Sets the concurrency cap.
    #[must_use]
    pub fn max_concurrency(mut self, n: usize) -> Self {
        self.max_concurrency = Some(n);
        self
    }

    /// Sets the longest wait for a turn.
    #[must_use]
    pub fn max_queue_time(mut self, wait: Duration) -> Self {
        self.max_queue_time = wait;
        self
    }

    /// Sets the request burst.
    #[must_use]
    pub fn request_burst(mut self, n: u32) -> Self {
        self.request_burst = n;
        self
    }

    /// Sets the seconds' worth of tokens that may go at once.
    #[must_use]
    pub fn token_burst_secs(mut self, secs: u32) -> Self {
        self.token_burst_secs = secs;
        self
    }

    /// Sets the output tokens assumed when a request has no `max_tokens`.
    #[must_use]
    pub fn default_output_tokens(mut self, n: u32) -> Self {
        self.default_output_tokens = n;
        self
    }
}

/// The most schedule one call (or one correction) can add: a day. Bounds the arithmetic,
/// so absurd token counts slow the account down instead of overflowing a clock.
const MAX_DEBT: Duration = Duration::from_secs(86_400);

/// `per_token × tokens`, at most [`MAX_DEBT`].
fn token_time(per_token: Duration, tokens: u64) -> Duration {
    Duration::try_from_secs_f64(per_token.as_secs_f64() * tokens as f64)
        .unwrap_or(MAX_DEBT)
        .min(MAX_DEBT)
}

/// `at + by`, with `by` capped at [`MAX_DEBT`] (never overflows).
fn later(at: Instant, by: Duration) -> Instant {
    at.checked_add(by.min(MAX_DEBT)).unwrap_or(at)
}

/// The schedule: theoretical arrival times of the request and token GCRAs, and a pause.
#[derive(Debug)]
struct Schedule {
    request_tat: Instant,
    token_tat: Instant,
    paused_until: Instant,
}

/// The shared budget of one provider account, spent through [`RateLimited`].
#[derive(Debug)]
pub struct RateLimiter {
    limits: ClientLimits,
    /// Time per request, and the burst tolerance.
    request_interval: Option<Duration>,
    request_tolerance: Duration,
    /// Time per token, and the burst tolerance.
    token_interval: Option<Duration>,
    token_tolerance: Duration,
    concurrency: Option<Arc<Semaphore>>,
    schedule: Mutex<Schedule>,
}

/// A turn granted by [`RateLimiter::acquire`]: holds the concurrency slot until dropped, and
/// corrects the token estimate from reported usage.
#[derive(Debug)]
#[must_use = "the concurrency slot is released when the permit is dropped"]
pub struct Permit {
    limiter: Arc<RateLimiter>,
    estimated_tokens: u64,
    _slot: Option<OwnedSemaphorePermit>,
}

impl Permit {
    /// Replaces the estimate with the tokens the provider reported.
    pub fn settle(&mut self, usage: &Usage) {
        let actual = usage
            .total_tokens
            .max(usage.input_tokens.saturating_add(usage.output_tokens));
        self.limiter
            .adjust_tokens(i128::from(actual) - i128::from(self.estimated_tokens));
        self.estimated_tokens = actual;
    }
}

impl RateLimiter {
    /// A limiter for `limits`.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] for a zero rate, burst or concurrency.
    pub fn new(limits: ClientLimits) -> Result<Self> {
        if limits.requests_per_minute == Some(0)
            || limits.tokens_per_minute == Some(0)
            || limits.max_concurrency == Some(0)
            || limits.request_burst == 0
        {
            return Err(Error::invalid_config(
                "client limits must be at least 1 (leave a limit unset for none)",
            ));
        }
        let request_interval = limits
            .requests_per_minute
            .map(|n| Duration::from_secs(60) / n);
        let request_tolerance = request_interval
            .map(|t| t * (limits.request_burst - 1))
            .unwrap_or_default();
        let token_interval = limits
            .tokens_per_minute
            .map(|n| Duration::from_secs_f64(60.0 / f64::from(n)));
        // A burst of `token_burst_secs` seconds' worth of tokens.
        let token_tolerance = limits
            .tokens_per_minute
            .map(|_| Duration::from_secs(u64::from(limits.token_burst_secs.max(1))))
            .unwrap_or_default();
        let now = Instant::now();
        Ok(RateLimiter {
            concurrency: limits.max_concurrency.map(|n| Arc::new(Semaphore::new(n))),
            limits,
            request_interval,
            request_tolerance,
            token_interval,
            token_tolerance,
            schedule: Mutex::new(Schedule {
                request_tat: now,
                token_tat: now,
                paused_until: now,
            }),
        })
    }

    /// The limits it keeps.
    pub fn limits(&self) -> &ClientLimits {
        &self.limits
    }

    /// Waits for a turn for a call of about `tokens` tokens.
    ///
    /// # Errors
    /// [`ProviderErrorKind::RateLimited`] (retryable, with the wait as `retry_after`) when
    /// the turn would come later than `max_queue_time` from now.
    pub async fn acquire(self: &Arc<Self>, tokens: u64) -> Result<Permit> {
        let deadline = later(Instant::now(), self.limits.max_queue_time);
        let slot = match &self.concurrency {
            None => None,
            Some(sem) => {
                let acquire = sem.clone().acquire_owned();
                match tokio::time::timeout_at(deadline, acquire).await {
                    Ok(Ok(permit)) => Some(permit),
                    Ok(Err(_closed)) => return Err(Error::other("rate limiter closed")),
                    Err(_) => {
                        return Err(self.too_long(self.limits.max_queue_time, "concurrency"));
                    }
                }
            }
        };
        let start_at = self.reserve(tokens, deadline)?;
        // A turn that is due now starts now: a zero-length sleep still waits for the next
        // timer tick (about a millisecond).
        if start_at > Instant::now() {
            tokio::time::sleep_until(start_at).await;
        }
        Ok(Permit {
            limiter: self.clone(),
            estimated_tokens: tokens,
            _slot: slot,
        })
    }

    /// Reserves the earliest start no later than `deadline`, in arrival order.
    fn reserve(&self, tokens: u64, deadline: Instant) -> Result<Instant> {
        let now = Instant::now();
        let mut s = self.lock();
        let mut start = now.max(s.paused_until);
        if self.request_interval.is_some() {
            start = start.max(
                s.request_tat
                    .checked_sub(self.request_tolerance)
                    .unwrap_or(now),
            );
        }
        if self.token_interval.is_some() {
            start = start.max(s.token_tat.checked_sub(self.token_tolerance).unwrap_or(now));
        }
        if start > deadline {
            let wait = start - now;
            drop(s);
            return Err(self.too_long(wait, "rate"));
        }
        if let Some(t) = self.request_interval {
            s.request_tat = later(s.request_tat.max(start), t);
        }
        if let Some(t) = self.token_interval {
            s.token_tat = later(s.token_tat.max(start), token_time(t, tokens));
        }
        Ok(start)
    }

    /// Moves the token schedule by `delta` tokens (positive: more were spent than estimated).
    fn adjust_tokens(&self, delta: i128) {
        let Some(t) = self.token_interval else { return };
        let shift = token_time(t, u64::try_from(delta.unsigned_abs()).unwrap_or(u64::MAX));
        let now = Instant::now();
        let mut s = self.lock();
        s.token_tat = if delta >= 0 {
            later(s.token_tat, shift)
        } else {
            s.token_tat.checked_sub(shift).unwrap_or(now).max(now)
        };
    }

    /// Learns from a provider's answer: a 429 pauses everyone until its `Retry-After`
    /// (1 s when it gave none); headroom at zero pauses until the window resets.
    pub fn observe(
        &self,
        rate_limited: bool,
        retry_after: Option<Duration>,
        info: Option<&RateLimitInfo>,
    ) {
        let mut pause = None;
        if rate_limited {
            pause = Some(retry_after.unwrap_or(Duration::from_secs(1)));
        }
        if let Some(info) = info {
            if info.remaining_requests == Some(0) {
                pause = pause.max(info.reset_requests);
            }
            if info.remaining_tokens == Some(0) {
                pause = pause.max(info.reset_tokens);
            }
        }
        let Some(pause) = pause else { return };
        let pause = pause.min(Duration::from_secs(300));
        let until = later(Instant::now(), pause);
        let mut s = self.lock();
        if until > s.paused_until {
            tracing::warn!(
                pause_ms = pause.as_millis() as u64,
                "provider rate limit reached: pausing new calls"
            );
            s.paused_until = until;
        }
    }

    fn observe_error(&self, error: &Error) {
        if let Some(p) = error.as_provider() {
            self.observe(
                p.kind == ProviderErrorKind::RateLimited,
                p.retry_after,
                p.rate_limit.as_ref(),
            );
        }
    }

    fn too_long(&self, wait: Duration, what: &str) -> Error {
        ProviderError::new(
            ProviderErrorKind::RateLimited,
            format!(
                "client-side {what} limit: the call would wait {:.1}s, more than max_queue_time {:.1}s",
                wait.as_secs_f64(),
                self.limits.max_queue_time.as_secs_f64()
            ),
        )
        .with_provider("catena")
        .with_retry_after(wait)
        .into()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Schedule> {
        // The schedule stays consistent even if a holder panicked: every update is one store.
        self.schedule
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// How a [`RateLimited`] model counts a request's tokens before sending it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum TokenEstimator {
    /// tiktoken's encoding for OpenAI models (by the model's provider), else characters / 4.
    #[default]
    Auto,
    /// Characters / 4, rounded up.
    Chars,
    /// A tiktoken encoding.
    Tiktoken(TokenEncoding),
}

impl TokenEstimator {
    fn count(self, provider: &str, text: &str) -> u64 {
        let encoding = match self {
            TokenEstimator::Tiktoken(e) => Some(e),
            TokenEstimator::Auto if provider == "openai" => Some(TokenEncoding::O200kBase),
            _ => None,
        };
        match encoding {
            Some(e) => count_tokens(e, text) as u64,
            None => (text.chars().count() as u64).div_ceil(4),
        }
    }

    /// The prompt tokens of `request`: every message's text, ~4 tokens of framing per
    /// message, tool definitions, and a flat 1,000 per image.
    pub fn prompt_tokens(self, provider: &str, request: &ChatRequest) -> u64 {
        let mut n = 0u64;
        for m in &request.messages {
            n += 4;
            for part in &m.content {
                n += match part {
                    ContentPart::Text { text } => self.count(provider, text),
                    _ => 1_000,
                };
            }
            for call in &m.tool_calls {
                n += self.count(provider, &call.name) + self.count(provider, &call.arguments);
            }
        }
        for tool in &request.tools {
            n += self.count(provider, &tool.name)
                + self.count(provider, &tool.description)
                + self.count(provider, &tool.parameters.to_string());
        }
        n
    }
}

/// Any [`ChatModel`] or [`Embedder`] that waits for its [`RateLimiter`]: calls queue in
/// arrival order, wait at most [`ClientLimits::max_queue_time`], and teach the limiter from
/// 429s, `Retry-After` and rate-limit headers.
#[derive(Debug, Clone)]
pub struct RateLimited<M> {
    inner: M,
    limiter: Arc<RateLimiter>,
    estimator: TokenEstimator,
}

impl<M> RateLimited<M> {
    /// Wraps `inner`, spending `limiter`'s budget.
    pub fn new(inner: M, limiter: Arc<RateLimiter>) -> Self {
        RateLimited {
            inner,
            limiter,
            estimator: TokenEstimator::Auto,
        }
    }

    /// Sets how tokens are estimated.
    #[must_use]
    pub fn with_estimator(mut self, estimator: TokenEstimator) -> Self {
        self.estimator = estimator;
        self
    }

    /// The shared limiter.
    pub fn limiter(&self) -> &Arc<RateLimiter> {
        &self.limiter
    }

    /// The wrapped component.
    pub fn get_ref(&self) -> &M {
        &self.inner
    }
}

impl<M: ChatModel> RateLimited<M> {
    fn estimate(&self, request: &ChatRequest) -> u64 {
        if self.limiter.token_interval.is_none() {
            return 0;
        }
        let provider = self.inner.model_info().provider;
        self.estimator.prompt_tokens(&provider, request)
            + u64::from(
                request
                    .max_tokens
                    .unwrap_or(self.limiter.limits.default_output_tokens),
            )
    }
}

#[async_trait]
impl<M: ChatModel> ChatModel for RateLimited<M> {
    async fn generate(&self, request: ChatRequest) -> Result<ChatResponse> {
        let mut permit = self.limiter.acquire(self.estimate(&request)).await?;
        match self.inner.generate(request).await {
            Ok(response) => {
                if let Some(usage) = &response.usage {
                    permit.settle(usage);
                }
                self.limiter
                    .observe(false, None, response.rate_limit.as_ref());
                Ok(response)
            }
            Err(e) => {
                self.limiter.observe_error(&e);
                Err(e)
            }
        }
    }

    async fn stream(&self, request: ChatRequest) -> Result<ChatStream> {
        let permit = self.limiter.acquire(self.estimate(&request)).await?;
        match self.inner.stream(request).await {
            Ok(inner) => Ok(Box::pin(LimitedStream {
                inner,
                permit: Some(permit),
            })),
            Err(e) => {
                self.limiter.observe_error(&e);
                Err(e)
            }
        }
    }

    fn model_info(&self) -> ModelInfo {
        self.inner.model_info()
    }
}

/// Holds the permit until the stream ends, settling the estimate from its usage.
struct LimitedStream {
    inner: ChatStream,
    permit: Option<Permit>,
}

impl Stream for LimitedStream {
    type Item = Result<ChatChunk>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        let item = this.inner.as_mut().poll_next(cx);
        match &item {
            Poll::Ready(Some(Ok(ChatChunk::Usage(usage)))) => {
                if let Some(p) = this.permit.as_mut() {
                    p.settle(usage);
                }
            }
            Poll::Ready(Some(Ok(ChatChunk::RateLimit(info)))) => {
                if let Some(p) = &this.permit {
                    p.limiter.observe(false, None, Some(info));
                }
            }
            Poll::Ready(Some(Err(e))) => {
                if let Some(p) = &this.permit {
                    p.limiter.observe_error(e);
                }
            }
            Poll::Ready(None) => this.permit = None,
            _ => {}
        }
        item
    }
}

#[async_trait]
impl<E: Embedder> Embedder for RateLimited<E> {
    async fn embed_documents(&self, texts: &[String]) -> Result<Vec<Embedding>> {
        let tokens = if self.limiter.token_interval.is_some() {
            texts.iter().map(|t| self.estimator.count("", t)).sum()
        } else {
            0
        };
        let _permit = self.limiter.acquire(tokens).await?;
        let result = self.inner.embed_documents(texts).await;
        if let Err(e) = &result {
            self.limiter.observe_error(e);
        }
        result
    }

    async fn embed_query(&self, text: &str) -> Result<Embedding> {
        let tokens = if self.limiter.token_interval.is_some() {
            self.estimator.count("", text)
        } else {
            0
        };
        let _permit = self.limiter.acquire(tokens).await?;
        let result = self.inner.embed_query(text).await;
        if let Err(e) = &result {
            self.limiter.observe_error(e);
        }
        result
    }

    fn dimensions(&self) -> usize {
        self.inner.dimensions()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn requests_are_spaced_in_arrival_order_and_overlong_waits_fail_fast() {
        let limiter = Arc::new(
            RateLimiter::new(
                ClientLimits::new()
                    .requests_per_second(10)
                    .max_queue_time(Duration::from_millis(450)),
            )
            .unwrap(),
        );
        let t0 = Instant::now();
        let mut starts = Vec::new();
        for _ in 0..5 {
            let _p = limiter.acquire(0).await.unwrap();
            starts.push((Instant::now() - t0).as_millis());
        }
        assert_eq!(starts, vec![0, 100, 200, 300, 400]);
        // Five more reserved at once: the ones past 450 ms of queueing fail at once.
        let now = Instant::now();
        let mut ok = 0;
        let mut refused = Vec::new();
        for _ in 0..6 {
            match limiter.reserve(0, now + Duration::from_millis(450)) {
                Ok(_) => ok += 1,
                Err(e) => refused.push(e),
            }
        }
        assert_eq!(ok, 4); // at 500, 600, 700 and 800 ms; 900 is past the 850 ms deadline
        assert!(refused[0].is_rate_limited(), "{}", refused[0]);
        assert!(refused[0].retry_after().is_some());
    }

    #[tokio::test(start_paused = true)]
    async fn tokens_are_paced_and_corrected_by_usage() {
        // 6,000 tokens/min = 100/s, 1 s of burst.
        let limiter = Arc::new(
            RateLimiter::new(
                ClientLimits::new()
                    .tokens_per_minute(6_000)
                    .token_burst_secs(1),
            )
            .unwrap(),
        );
        let t0 = Instant::now();
        let mut p = limiter.acquire(300).await.unwrap(); // starts at once
        p.settle(&Usage::new(50, 50)); // only 100 were spent
        drop(p);
        let _p = limiter.acquire(100).await.unwrap(); // 100 spent: within the 1 s burst
        let _p = limiter.acquire(100).await.unwrap();
        // 300 tokens (3 s at 100/s) are on the schedule after the correction; with 1 s of
        // burst the third call starts at 2 s - 1 s.
        let elapsed = (Instant::now() - t0).as_millis();
        assert_eq!(elapsed, 1_000, "{elapsed}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_429_or_exhausted_headroom_pauses_everyone() {
        let limiter = Arc::new(RateLimiter::new(ClientLimits::new()).unwrap());
        let t0 = Instant::now();
        limiter.observe(true, Some(Duration::from_millis(700)), None);
        let _p = limiter.acquire(0).await.unwrap();
        assert_eq!((Instant::now() - t0).as_millis(), 700);
        let info = RateLimitInfo::from_headers([
            ("x-ratelimit-remaining-requests", "0"),
            ("x-ratelimit-reset-requests", "2s"),
        ]);
        limiter.observe(false, None, info.as_ref());
        let _p = limiter.acquire(0).await.unwrap();
        assert_eq!((Instant::now() - t0).as_millis(), 2_700);
    }

    #[tokio::test(start_paused = true)]
    async fn the_concurrency_cap_holds_and_times_out() {
        let limiter = Arc::new(
            RateLimiter::new(
                ClientLimits::new()
                    .max_concurrency(1)
                    .max_queue_time(Duration::from_millis(100)),
            )
            .unwrap(),
        );
        let held = limiter.acquire(0).await.unwrap();
        let err = limiter.acquire(0).await.unwrap_err();
        assert!(err.to_string().contains("concurrency"), "{err}");
        drop(held);
        assert!(limiter.acquire(0).await.is_ok());
    }

    #[tokio::test]
    async fn a_turn_that_is_due_starts_without_waiting_for_the_timer() {
        // Before the fix every call slept until "now", which waits for the next timer tick:
        // about 1 ms per call (the limits benchmark showed 1.15 ms instead of 2 µs).
        use futures::FutureExt;
        let limiter = Arc::new(
            RateLimiter::new(
                ClientLimits::new()
                    .requests_per_minute(u32::MAX)
                    .max_concurrency(4),
            )
            .unwrap(),
        );
        for _ in 0..3 {
            let permit = limiter.acquire(10).now_or_never();
            assert!(
                permit.is_some_and(|p| p.is_ok()),
                "a due turn must not wait"
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn absurd_token_counts_slow_the_account_down_without_overflowing() {
        let limiter = Arc::new(
            RateLimiter::new(
                ClientLimits::new()
                    .tokens_per_minute(1)
                    .max_queue_time(Duration::from_secs(5)),
            )
            .unwrap(),
        );
        let mut p = limiter.acquire(u64::MAX).await.unwrap();
        p.settle(&Usage::new(u64::MAX, u64::MAX));
        drop(p);
        let err = limiter.acquire(1).await.unwrap_err();
        assert!(err.is_rate_limited(), "{err}");
        let big = RateLimitInfo::from_headers([
            ("x-ratelimit-remaining-tokens", "0"),
            ("x-ratelimit-reset-tokens", "999999999s"),
        ]);
        limiter.observe(true, Some(Duration::MAX), big.as_ref());
    }

    #[test]
    fn zero_limits_are_refused() {
        assert!(RateLimiter::new(ClientLimits::new().requests_per_minute(0)).is_err());
        assert!(RateLimiter::new(ClientLimits::new().max_concurrency(0)).is_err());
        assert!(RateLimiter::new(ClientLimits::new().request_burst(0)).is_err());
    }
}
