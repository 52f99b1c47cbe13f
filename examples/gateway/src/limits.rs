//! Per-key rate limiting (GCRA, via `governor`), per-key model-token budgets, per-key
//! concurrency, and throttling of failed authentications per client address. Every map here
//! is pruned of idle entries as it grows, so clients cannot grow it without bound.
//!
//! ```
//! use example_gateway::limits::RateLimits;
//!
//! let limits = RateLimits::new(60, 2);
//! assert!(limits.check("key-a").is_ok());
//! assert!(limits.check("key-a").is_ok());
//! assert!(limits.check("key-a").is_err()); // burst of 2 spent
//! assert!(limits.check("key-b").is_ok()); // another key, another bucket
//! ```

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};

/// What a successful check leaves for the `RateLimit` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Allowed {
    /// Requests left right now.
    pub remaining: u32,
    /// Seconds until the bucket is full again.
    pub reset_secs: u64,
}

/// A refused request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limited {
    /// When to retry; at least one second.
    pub retry_after: Duration,
}

type Limiter =
    RateLimiter<String, DefaultKeyedStateStore<String>, DefaultClock, StateInformationMiddleware>;

/// One GCRA bucket per key.
pub struct RateLimits {
    limiter: Limiter,
    clock: DefaultClock,
    per_minute: u32,
    burst: u32,
    checks: AtomicU64,
}

/// Entries a map may hold before its idle ones are pruned.
const PRUNE_ABOVE: usize = 4096;

impl std::fmt::Debug for RateLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimits")
            .field("per_minute", &self.per_minute)
            .field("burst", &self.burst)
            .finish()
    }
}

impl RateLimits {
    /// `per_minute` sustained, `burst` at once (both at least 1).
    pub fn new(per_minute: u32, burst: u32) -> Self {
        let per_minute = per_minute.max(1);
        let burst = burst.max(1);
        let quota = Quota::per_minute(NonZeroU32::MIN.saturating_add(per_minute - 1))
            .allow_burst(NonZeroU32::MIN.saturating_add(burst - 1));
        RateLimits {
            limiter: RateLimiter::keyed(quota).with_middleware::<StateInformationMiddleware>(),
            clock: DefaultClock::default(),
            per_minute,
            burst,
            checks: AtomicU64::new(0),
        }
    }

    /// How many keys have a bucket (full buckets are pruned as keys come and go).
    pub fn len(&self) -> usize {
        self.limiter.len()
    }

    /// Whether no key has a bucket.
    pub fn is_empty(&self) -> bool {
        self.limiter.is_empty()
    }

    /// The `RateLimit-Policy` header value (IETF draft-ietf-httpapi-ratelimit-headers).
    pub fn policy(&self) -> String {
        format!("\"per-key\";q={};w=60", self.per_minute)
    }

    /// The burst size.
    pub fn burst(&self) -> u32 {
        self.burst
    }

    /// Takes one request from `key`'s bucket.
    ///
    /// # Errors
    /// [`Limited`] when the bucket is empty.
    pub fn check(&self, key: &str) -> Result<Allowed, Limited> {
        if self.checks.fetch_add(1, Ordering::Relaxed) % 1024 == 1023
            && self.limiter.len() > PRUNE_ABOVE
        {
            // Buckets that are full again are indistinguishable from new ones.
            self.limiter.retain_recent();
            self.limiter.shrink_to_fit();
        }
        match self.limiter.check_key(&key.to_owned()) {
            Ok(snapshot) => {
                let remaining = snapshot.remaining_burst_capacity();
                let used = self.burst.saturating_sub(remaining);
                let reset_secs = (u64::from(used) * 60).div_ceil(u64::from(self.per_minute));
                Ok(Allowed {
                    remaining,
                    reset_secs,
                })
            }
            Err(not_until) => {
                let wait = not_until.wait_time_from(self.clock.now());
                Err(Limited {
                    retry_after: wait.max(Duration::from_secs(1)),
                })
            }
        }
    }
}

/// Model tokens used per key in a fixed window.
#[derive(Debug)]
pub struct TokenBudgets {
    limit: Option<u64>,
    window: Duration,
    used: Mutex<HashMap<String, (Instant, u64)>>,
}

impl TokenBudgets {
    /// `limit` tokens per `window` per key; `None` never refuses.
    pub fn new(limit: Option<u64>, window: Duration) -> Self {
        TokenBudgets {
            limit,
            window,
            used: Mutex::new(HashMap::new()),
        }
    }

    /// `Err(retry_after)` when `key` has spent its budget in the current window.
    ///
    /// # Errors
    /// The time until the window resets.
    pub fn check(&self, key: &str) -> Result<(), Duration> {
        let Some(limit) = self.limit else {
            return Ok(());
        };
        let used = self.used.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        match used.get(key) {
            Some((start, n)) if now.duration_since(*start) < self.window && *n >= limit => {
                Err(self.window - now.duration_since(*start))
            }
            _ => Ok(()),
        }
    }

    /// Records `tokens` used by `key`.
    pub fn record(&self, key: &str, tokens: u64) {
        if self.limit.is_none() {
            return;
        }
        let mut used = self.used.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        if used.len() > PRUNE_ABOVE && !used.contains_key(key) {
            let window = self.window;
            used.retain(|_, (start, _)| now.duration_since(*start) < window);
        }
        let entry = used.entry(key.to_owned()).or_insert((now, 0));
        if now.duration_since(entry.0) >= self.window {
            *entry = (now, 0);
        }
        entry.1 = entry.1.saturating_add(tokens);
    }
}

/// How many requests each key may have in flight at once.
#[derive(Debug)]
pub struct KeyConcurrency {
    per_key: usize,
    slots: Mutex<HashMap<String, Arc<Semaphore>>>,
}

impl KeyConcurrency {
    /// `per_key` requests at once per key (at least 1).
    pub fn new(per_key: usize) -> Self {
        KeyConcurrency {
            per_key: per_key.max(1),
            slots: Mutex::new(HashMap::new()),
        }
    }

    /// A slot for one request of `key`, held until the permit is dropped; `None` when the key
    /// has all its slots in use.
    pub fn try_acquire(&self, key: &str) -> Option<OwnedSemaphorePermit> {
        let semaphore = {
            let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
            if slots.len() > PRUNE_ABOVE && !slots.contains_key(key) {
                let per_key = self.per_key;
                slots.retain(|_, s| s.available_permits() < per_key);
            }
            Arc::clone(
                slots
                    .entry(key.to_owned())
                    .or_insert_with(|| Arc::new(Semaphore::new(self.per_key))),
            )
        };
        semaphore.try_acquire_owned().ok()
    }
}

/// Failed authentications per client address in a fixed one-minute window.
#[derive(Debug)]
pub struct AuthFailures {
    per_minute: u32,
    failures: Mutex<HashMap<IpAddr, (Instant, u32)>>,
}

impl AuthFailures {
    const WINDOW: Duration = Duration::from_secs(60);

    /// `per_minute` failures per address (at least 1).
    pub fn new(per_minute: u32) -> Self {
        AuthFailures {
            per_minute: per_minute.max(1),
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// `Err(retry_after)` when `addr` has failed too often in the current window; its
    /// credentials are then not even checked.
    ///
    /// # Errors
    /// The time until the window resets (at least a second).
    pub fn check(&self, addr: IpAddr) -> Result<(), Duration> {
        let failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        match failures.get(&addr) {
            Some((start, n)) if start.elapsed() < Self::WINDOW && *n >= self.per_minute => {
                Err((Self::WINDOW - start.elapsed()).max(Duration::from_secs(1)))
            }
            _ => Ok(()),
        }
    }

    /// Counts a failed authentication from `addr`.
    pub fn record(&self, addr: IpAddr) {
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        if failures.len() > PRUNE_ABOVE && !failures.contains_key(&addr) {
            failures.retain(|_, (start, _)| now.duration_since(*start) < Self::WINDOW);
        }
        let entry = failures.entry(addr).or_insert((now, 0));
        if now.duration_since(entry.0) >= Self::WINDOW {
            *entry = (now, 0);
        }
        entry.1 = entry.1.saturating_add(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_is_at_least_a_second() {
        let l = RateLimits::new(6000, 1);
        l.check("k").unwrap();
        let refused = l.check("k").unwrap_err();
        assert!(refused.retry_after >= Duration::from_secs(1));
    }

    #[test]
    fn budgets_refuse_after_the_limit() {
        let b = TokenBudgets::new(Some(10), Duration::from_secs(60));
        b.check("k").unwrap();
        b.record("k", 12);
        assert!(b.check("k").is_err());
        assert!(b.check("other").is_ok());
    }
}
