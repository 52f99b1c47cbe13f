//! Per-key rate limiting (GCRA, via `governor`) and per-key model-token budgets.
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
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::{Duration, Instant};

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
}

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
        }
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
        let entry = used.entry(key.to_owned()).or_insert((now, 0));
        if now.duration_since(entry.0) >= self.window {
            *entry = (now, 0);
        }
        entry.1 = entry.1.saturating_add(tokens);
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
