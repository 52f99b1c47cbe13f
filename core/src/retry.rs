//! [`RetryPolicy`]: the one retry policy of the workspace — which errors are retried, how
//! long to wait, how many times — used by the HTTP transport of `catena-llms`, the Qdrant
//! store and the `Retry` decorator of `catena-chains`.
//!
//! The policy is a plain value; [`RetryPolicy::run`] drives the attempts with a sleep
//! function the caller supplies (core has no timer), e.g. `tokio::time::sleep`.
//!
//! **Attempts never multiply.** When a retry loop runs inside another one (a `Retry`
//! decorator around a client whose transport retries too), only the outermost loop retries:
//! the inner ones make a single attempt, so the total number of attempts is what the
//! outermost policy says, never the product of the layers.
//!
//! ```
//! use std::time::Duration;
//! use catena_core::{Error, ProviderError, ProviderErrorKind, RetryPolicy};
//!
//! let policy = RetryPolicy::default()
//!     .with_max_retries(3)
//!     .with_initial_backoff(Duration::from_millis(100))
//!     .with_jitter(false);
//! let down: Error = ProviderError::new(ProviderErrorKind::Server, "down").with_status(503).into();
//! assert!(policy.should_retry(&down));
//! assert_eq!(policy.delay(0, &down), Duration::from_millis(100));
//! assert_eq!(policy.delay(2, &down), Duration::from_millis(400));
//!
//! # futures::executor::block_on(async {
//! let mut calls = 0;
//! let answer = policy
//!     .run(|_| async {}, || {
//!         calls += 1;
//!         let ok = calls == 3;
//!         async move { if ok { Ok(42) } else { Err(Error::Timeout(Duration::from_secs(1))) } }
//!     })
//!     .await;
//! assert_eq!(answer.unwrap(), 42);
//! assert_eq!(calls, 3);
//! # });
//! ```

use std::cell::Cell;
use std::collections::hash_map::RandomState;
use std::future::Future;
use std::hash::{BuildHasher, Hasher};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use crate::error::{Error, Result};

/// When and how long to wait before trying again.
///
/// Defaults follow the official OpenAI SDKs: 2 retries, backoff from 0.5 s doubling up to 8 s
/// with up to 25 % jitter, retrying connection errors, timeouts, rate limits, server errors
/// and HTTP 408 and 409, and honouring a server's `Retry-After` up to 60 s. Components pick
/// their own defaults where the field has others (the Qdrant store: 3 retries from 100 ms).
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    max_retries: u32,
    initial_backoff: Duration,
    max_backoff: Duration,
    multiplier: f64,
    max_retry_after: Duration,
    jitter: bool,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_retries: 2,
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(8),
            multiplier: 2.0,
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

thread_local! {
    /// Set while a retry loop polls one of its attempts: a loop started inside makes one
    /// attempt only, so nested layers never multiply the attempts.
    static INSIDE_RETRY: Cell<bool> = const { Cell::new(false) };
}

/// Polls `inner` with [`INSIDE_RETRY`] set (the way `tokio::task_local!` scopes a value).
struct Attempt<F: Future> {
    inner: Pin<Box<F>>,
}

impl<F: Future> Future for Attempt<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let outer = INSIDE_RETRY.with(|c| c.replace(true));
        let out = self.inner.as_mut().poll(cx);
        INSIDE_RETRY.with(|c| c.set(outer));
        out
    }
}

impl RetryPolicy {
    /// The default policy (see the type's docs).
    pub fn new() -> Self {
        Self::default()
    }

    /// A policy that never retries.
    pub fn none() -> Self {
        Self::default().with_max_retries(0)
    }

    /// Retries after the first attempt (so up to `n + 1` attempts). Default 2.
    #[must_use]
    pub fn with_max_retries(mut self, n: u32) -> Self {
        self.max_retries = n;
        self
    }

    /// The wait before the first retry. Default 0.5 s.
    #[must_use]
    pub fn with_initial_backoff(mut self, backoff: Duration) -> Self {
        self.initial_backoff = backoff;
        self
    }

    /// The longest wait between retries (a server's `Retry-After` is capped by
    /// [`with_max_retry_after`](Self::with_max_retry_after) instead). Default 8 s.
    #[must_use]
    pub fn with_max_backoff(mut self, backoff: Duration) -> Self {
        self.max_backoff = backoff;
        self
    }

    /// The factor the wait grows by after each retry (values below 1, and non-finite ones,
    /// are treated as 1). Default 2.
    #[must_use]
    pub fn with_multiplier(mut self, multiplier: f64) -> Self {
        self.multiplier = if multiplier.is_finite() {
            multiplier.max(1.0)
        } else {
            1.0
        };
        self
    }

    /// The longest server-requested wait that is honoured; longer ones are capped to it.
    /// Default 60 s.
    #[must_use]
    pub fn with_max_retry_after(mut self, wait: Duration) -> Self {
        self.max_retry_after = wait;
        self
    }

    /// Whether to shorten each computed backoff by a random 0–25 % (never a server's
    /// `Retry-After`). Default true.
    #[must_use]
    pub fn with_jitter(mut self, jitter: bool) -> Self {
        self.jitter = jitter;
        self
    }

    /// How many retries are allowed after the first attempt.
    pub fn max_retries(&self) -> u32 {
        self.max_retries
    }

    /// Whether `err` is worth retrying: [retryable](Error::is_retryable) kinds (rate limit,
    /// server, transport, timeout), plus HTTP 408 and 409.
    pub fn should_retry(&self, err: &Error) -> bool {
        err.is_retryable() || matches!(err.as_provider().and_then(|p| p.status), Some(408 | 409))
    }

    /// The wait before retry number `retry` (from 0): the server's `retry_after` when it
    /// gave one (capped by the max retry-after), else the exponential backoff.
    pub fn backoff(&self, retry: u32, retry_after: Option<Duration>) -> Duration {
        if let Some(after) = retry_after {
            return after.min(self.max_retry_after);
        }
        let factor = self
            .multiplier
            .powi(i32::try_from(retry).unwrap_or(i32::MAX).min(64));
        let scaled = self.initial_backoff.as_secs_f64() * factor;
        let base = if scaled.is_finite() && scaled < self.max_backoff.as_secs_f64() {
            Duration::from_secs_f64(scaled)
        } else {
            self.max_backoff
        };
        if self.jitter {
            base.mul_f64(1.0 - 0.25 * random_unit())
        } else {
            base
        }
    }

    /// How long to wait before retry number `retry` (from 0) after `err`.
    pub fn delay(&self, retry: u32, err: &Error) -> Duration {
        self.backoff(retry, err.retry_after())
    }

    /// Runs `op`, retrying the failures this policy [retries](Self::should_retry), waiting
    /// with `sleep` (e.g. `tokio::time::sleep`) in between.
    ///
    /// # Errors
    /// The last error, once retries are spent or the error is not retried.
    pub async fn run<T, F, Fut, S, SFut>(&self, sleep: S, op: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T>>,
        S: Fn(Duration) -> SFut,
        SFut: Future<Output = ()>,
    {
        self.run_classified(
            sleep,
            |e: &Error| self.should_retry(e).then(|| e.retry_after()),
            op,
        )
        .await
    }

    /// [`run`](Self::run) for any error type: `classify` returns `None` for an error that
    /// must not be retried, and `Some(retry_after)` (the server's requested wait, if any)
    /// for one that may be.
    ///
    /// # Errors
    /// The last error, once retries are spent or `classify` says stop.
    pub async fn run_classified<T, E, F, Fut, C, S, SFut>(
        &self,
        sleep: S,
        classify: C,
        mut op: F,
    ) -> std::result::Result<T, E>
    where
        E: std::fmt::Display,
        F: FnMut() -> Fut,
        Fut: Future<Output = std::result::Result<T, E>>,
        C: Fn(&E) -> Option<Option<Duration>>,
        S: Fn(Duration) -> SFut,
        SFut: Future<Output = ()>,
    {
        // Read on the first poll, i.e. inside any enclosing attempt.
        let max_retries = if INSIDE_RETRY.with(Cell::get) {
            0
        } else {
            self.max_retries
        };
        let mut retry = 0;
        loop {
            let outcome = Attempt {
                inner: Box::pin(op()),
            }
            .await;
            match outcome {
                Ok(v) => return Ok(v),
                Err(e) => {
                    let Some(retry_after) = classify(&e) else {
                        return Err(e);
                    };
                    if retry >= max_retries {
                        return Err(e);
                    }
                    let wait = self.backoff(retry, retry_after);
                    tracing::debug!(
                        retry = retry + 1,
                        wait_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
                        error = %e,
                        "retrying"
                    );
                    sleep(wait).await;
                    retry += 1;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{ProviderError, ProviderErrorKind};
    use std::sync::atomic::AtomicU32;

    fn err(kind: ProviderErrorKind, status: u16) -> Error {
        ProviderError::new(kind, "x").with_status(status).into()
    }

    #[test]
    fn backoff_schedule_doubles_and_caps() {
        let p = RetryPolicy::default().with_jitter(false);
        let e = err(ProviderErrorKind::Server, 503);
        let got: Vec<u64> = (0..6).map(|i| p.delay(i, &e).as_millis() as u64).collect();
        assert_eq!(got, [500, 1000, 2000, 4000, 8000, 8000]);
        let jittered = RetryPolicy::default().delay(1, &e);
        assert!(jittered <= Duration::from_millis(1000) && jittered >= Duration::from_millis(750));
        let flat = RetryPolicy::default()
            .with_jitter(false)
            .with_multiplier(f64::NAN);
        assert_eq!(flat.backoff(5, None), Duration::from_millis(500));
        assert_eq!(p.backoff(u32::MAX, None), Duration::from_secs(8));
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

    async fn no_sleep(_: Duration) {}

    #[test]
    fn nested_loops_make_the_outer_number_of_attempts_not_the_product() {
        let calls = AtomicU32::new(0);
        let inner = RetryPolicy::default().with_max_retries(2);
        let outer = RetryPolicy::default().with_max_retries(4);
        let failing = || async {
            inner
                .run(no_sleep, || async {
                    calls.fetch_add(1, Ordering::SeqCst);
                    Err::<(), _>(err(ProviderErrorKind::Server, 503))
                })
                .await
        };
        let e = futures::executor::block_on(outer.run(no_sleep, failing)).unwrap_err();
        assert_eq!(e.as_provider().and_then(|p| p.status), Some(503));
        assert_eq!(calls.load(Ordering::SeqCst), 5, "1 + 4 retries, not 3 × 5");

        // Alone, the inner policy still retries.
        calls.store(0, Ordering::SeqCst);
        let _ = futures::executor::block_on(failing());
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[test]
    fn non_retryable_errors_stop_at_once() {
        let calls = AtomicU32::new(0);
        let e = futures::executor::block_on(RetryPolicy::default().run(no_sleep, || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err::<(), _>(err(ProviderErrorKind::Auth, 401))
        }))
        .unwrap_err();
        assert!(e.is_auth());
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }
}
