//! Composition: decorators any [`Chain`] can take, and bounded batches.
//!
//! Cross-cutting behaviour is a **decorator implementing the same trait**, as in tower:
//! [`Retry`] re-runs a chain after a [retryable](catena_core::Error::is_retryable) error with
//! exponential backoff, [`Fallback`] tries a second chain when the first fails with a
//! retryable error, and [`Timeout`] turns a slow call into [`Error::Timeout`]. They are built
//! with [`ChainComposeExt`] and stack in any order. [`batch_bounded`] runs many inputs with at
//! most `max_concurrency` in flight, keeping input order and one result per input.
//!
//! ```
//! use std::time::Duration;
//! use catena_core::{chain_fn, Chain, Error, ProviderError, ProviderErrorKind};
//! use catena_chains::compose::{batch_bounded, ChainComposeExt, RetryPolicy};
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
//!     .with_retry(RetryPolicy::new(2).with_initial_backoff(Duration::from_millis(1)))
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
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use catena_core::{Chain, Error, Result};
use futures::StreamExt;

/// When and how long to wait before retrying a failed call.
///
/// Only [retryable](catena_core::Error::is_retryable) errors are retried. The wait before
/// retry `n` (from 0) is `initial_backoff * multiplier^n`, capped at `max_backoff`; a
/// provider's `Retry-After` takes precedence when it is longer.
///
/// ```
/// use std::time::Duration;
/// use catena_chains::compose::RetryPolicy;
///
/// let policy = RetryPolicy::new(3).with_initial_backoff(Duration::from_millis(100));
/// assert_eq!(policy.backoff(0, None), Duration::from_millis(100));
/// assert_eq!(policy.backoff(2, None), Duration::from_millis(400));
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    max_retries: u32,
    initial_backoff: Duration,
    max_backoff: Duration,
    multiplier: f64,
}

impl Default for RetryPolicy {
    /// Three retries, 200 ms initial backoff, doubling, capped at 10 s.
    fn default() -> Self {
        RetryPolicy::new(3)
    }
}

impl RetryPolicy {
    /// A policy that retries at most `max_retries` times (so up to `max_retries + 1`
    /// calls), with the default backoff.
    pub fn new(max_retries: u32) -> Self {
        RetryPolicy {
            max_retries,
            initial_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(10),
            multiplier: 2.0,
        }
    }

    /// Sets the wait before the first retry. Default 200 ms.
    #[must_use]
    pub fn with_initial_backoff(mut self, backoff: Duration) -> Self {
        self.initial_backoff = backoff;
        self
    }

    /// Caps the wait between retries. Default 10 s.
    #[must_use]
    pub fn with_max_backoff(mut self, backoff: Duration) -> Self {
        self.max_backoff = backoff;
        self
    }

    /// Sets the factor the wait grows by after each retry (values below 1 are treated as
    /// 1). Default 2.
    #[must_use]
    pub fn with_multiplier(mut self, multiplier: f64) -> Self {
        self.multiplier = if multiplier.is_finite() {
            multiplier.max(1.0)
        } else {
            1.0
        };
        self
    }

    /// How many retries are allowed.
    pub fn max_retries(&self) -> u32 {
        self.max_retries
    }

    /// The wait before retry number `retry` (from 0), given the provider's `Retry-After`.
    pub fn backoff(&self, retry: u32, retry_after: Option<Duration>) -> Duration {
        let factor = self
            .multiplier
            .powi(i32::try_from(retry).unwrap_or(i32::MAX));
        let scaled = self.initial_backoff.as_secs_f64() * factor;
        let backoff = if scaled.is_finite() && scaled < self.max_backoff.as_secs_f64() {
            Duration::from_secs_f64(scaled)
        } else {
            self.max_backoff
        };
        match retry_after {
            Some(after) if after > backoff => after,
            _ => backoff,
        }
    }
}

/// Re-runs a chain after retryable errors; see [`ChainComposeExt::with_retry`].
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

    /// The wrapped chain.
    pub fn get_ref(&self) -> &C {
        &self.inner
    }

    /// The wrapped chain, unwrapped.
    pub fn into_inner(self) -> C {
        self.inner
    }
}

#[async_trait]
impl<I, O, C> Chain<I, O> for Retry<C>
where
    I: Clone + Send + 'static,
    O: Send + 'static,
    C: Chain<I, O>,
{
    async fn invoke(&self, input: I) -> Result<O> {
        let mut retry = 0;
        loop {
            match self.inner.invoke(input.clone()).await {
                Err(e) if e.is_retryable() && retry < self.policy.max_retries => {
                    let wait = self.policy.backoff(retry, e.retry_after());
                    tracing::debug!(retry, ?wait, error = %e, "retrying chain");
                    tokio::time::sleep(wait).await;
                    retry += 1;
                }
                other => return other,
            }
        }
    }
}

/// Tries `primary`, then `fallback` when the primary fails with a retryable error; see
/// [`ChainComposeExt::with_fallback`].
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
}

/// Fails a call that takes longer than its deadline with [`Error::Timeout`]; see
/// [`ChainComposeExt::with_timeout`].
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
}

#[async_trait]
impl<I, O, C> Chain<I, O> for Timeout<C>
where
    I: Send + 'static,
    O: Send + 'static,
    C: Chain<I, O>,
{
    async fn invoke(&self, input: I) -> Result<O> {
        tokio::time::timeout(self.timeout, self.inner.invoke(input))
            .await
            .unwrap_or(Err(Error::Timeout(self.timeout)))
    }
}

/// Retry, fallback and timeout for every [`Chain`].
pub trait ChainComposeExt<I, O>: Chain<I, O>
where
    I: Send + 'static,
    O: Send + 'static,
{
    /// Retries retryable errors under `policy`. The input must be `Clone`.
    fn with_retry(self, policy: RetryPolicy) -> Retry<Self>
    where
        Self: Sized,
    {
        Retry::new(self, policy)
    }

    /// Tries `fallback` when this chain fails with a retryable error.
    fn with_fallback<B>(self, fallback: B) -> Fallback<Self, B>
    where
        Self: Sized,
        B: Chain<I, O>,
    {
        Fallback::new(self, fallback)
    }

    /// Fails calls that take longer than `timeout` with [`Error::Timeout`] (which is
    /// retryable, so a [`Retry`] outside a [`Timeout`] retries slow calls).
    fn with_timeout(self, timeout: Duration) -> Timeout<Self>
    where
        Self: Sized,
    {
        Timeout::new(self, timeout)
    }
}

impl<I, O, T> ChainComposeExt<I, O> for T
where
    I: Send + 'static,
    O: Send + 'static,
    T: Chain<I, O> + ?Sized,
{
}

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
}
