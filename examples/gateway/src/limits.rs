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

/// Model tokens per key in a fixed window, spent through [`Reservation`]s: a request
/// reserves what it may use *before* its model call (so a burst of concurrent requests
/// cannot all pass on the same remaining budget) and settles with the reported usage on
/// every way it can end. A reservation dropped unsettled (an error without usage, a
/// deadline, a client that went away) is charged in full: the budget cannot be dodged.
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
/// use example_gateway::limits::TokenBudgets;
///
/// # futures::executor::block_on(async {
/// let budgets = Arc::new(TokenBudgets::new(Some(1_000), Duration::from_secs(60)));
/// let a = budgets.reserve("key", 600).await.unwrap();
/// let b = budgets.reserve("key", 600).await.unwrap(); // only 400 were left
/// assert_eq!(b.amount(), 400);
/// assert!(budgets.reserve("key", 1).await.is_err()); // everything is reserved
/// a.settle(100); // the call used less than it reserved
/// drop(b); // ended without usage: charged in full
/// assert_eq!(budgets.remaining("key"), Some(500));
/// # });
/// ```
#[derive(Debug)]
pub struct TokenBudgets {
    limit: Option<u64>,
    window: Duration,
    used: Mutex<HashMap<String, BudgetEntry>>,
    shared: Option<Arc<crate::shared::RedisLimits>>,
    /// Prefixes the keys kept in Redis, so budgets of different units never share an entry.
    namespace: &'static str,
}

/// Why a reservation was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// Nothing is left in the current window; it resets after this long.
    Spent(Duration),
    /// The shared budget store (Redis) could not be asked.
    Unavailable,
}

#[derive(Debug, Clone, Copy)]
struct BudgetEntry {
    start: Instant,
    used: u64,
    reserved: u64,
}

impl TokenBudgets {
    /// `limit` tokens per `window` per key; `None` never refuses.
    pub fn new(limit: Option<u64>, window: Duration) -> Self {
        TokenBudgets {
            limit,
            window,
            used: Mutex::new(HashMap::new()),
            shared: None,
            namespace: "",
        }
    }

    /// Keeps these budgets apart from others in a shared store (`cost` for money budgets).
    #[must_use]
    pub fn with_namespace(mut self, namespace: &'static str) -> Self {
        self.namespace = namespace;
        self
    }

    fn shared_key(&self, key: &str) -> String {
        if self.namespace.is_empty() {
            key.to_owned()
        } else {
            format!("{}:{key}", self.namespace)
        }
    }

    /// The same budgets kept in Redis, shared by every replica on it.
    #[must_use]
    pub fn shared(mut self, redis: Arc<crate::shared::RedisLimits>) -> Self {
        self.shared = Some(redis);
        self
    }

    /// Whether there is a budget at all.
    pub fn is_limited(&self) -> bool {
        self.limit.is_some()
    }

    /// When `key` has nothing left in the current window: the time until it resets. A cheap
    /// early refusal (no reservation is made); shared budgets are only checked by
    /// [`reserve`](Self::reserve), which asks Redis anyway.
    pub fn spent(&self, key: &str) -> Option<Duration> {
        if self.shared.is_some() || self.remaining(key) != Some(0) {
            return None;
        }
        let used = self.used.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        let start = used.get(key).map_or(now, |e| e.start);
        Some(self.window.saturating_sub(now.duration_since(start)))
    }

    /// What `key` has left in the current window, reservations taken out; `None` without a
    /// budget. In-process budgets only (shared ones live in Redis).
    pub fn remaining(&self, key: &str) -> Option<u64> {
        let limit = self.limit?;
        let used = self.used.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        Some(match used.get(key) {
            Some(e) if now.duration_since(e.start) < self.window => {
                limit.saturating_sub(e.used.saturating_add(e.reserved))
            }
            _ => limit,
        })
    }

    /// Reserves up to `estimate` tokens for `key`: all of it when that much is left, else
    /// what is left ([`Reservation::amount`] says how much; bound the call by it). Without a
    /// budget the reservation is `estimate` and charges nothing.
    ///
    /// # Errors
    /// [`Refused::Spent`] with the time until the window resets when nothing is left;
    /// [`Refused::Unavailable`] when shared budgets cannot be reached.
    pub async fn reserve(
        self: &Arc<Self>,
        key: &str,
        estimate: u64,
    ) -> Result<Reservation, Refused> {
        let Some(limit) = self.limit else {
            return Ok(Reservation {
                budgets: None,
                key: String::new(),
                amount: estimate,
                window_start: Instant::now(),
                shared: None,
            });
        };
        if let Some(redis) = &self.shared {
            return match redis
                .reserve(&self.shared_key(key), limit, self.window, estimate)
                .await
            {
                Ok(Ok(r)) => Ok(Reservation {
                    budgets: Some(Arc::clone(self)),
                    key: key.to_owned(),
                    amount: r.amount,
                    window_start: Instant::now(),
                    shared: Some(r),
                }),
                Ok(Err(after)) => Err(Refused::Spent(after.max(Duration::from_secs(1)))),
                Err(e) => {
                    tracing::warn!(error = %e, "the shared token budgets (Redis) are unreachable");
                    Err(Refused::Unavailable)
                }
            };
        }
        self.reserve_here(key, limit, estimate)
            .map_err(Refused::Spent)
    }

    fn reserve_here(
        self: &Arc<Self>,
        key: &str,
        limit: u64,
        estimate: u64,
    ) -> Result<Reservation, Duration> {
        let mut used = self.used.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        if used.len() > PRUNE_ABOVE && !used.contains_key(key) {
            let window = self.window;
            used.retain(|_, e| now.duration_since(e.start) < window || e.reserved > 0);
        }
        let entry = used.entry(key.to_owned()).or_insert(BudgetEntry {
            start: now,
            used: 0,
            reserved: 0,
        });
        if now.duration_since(entry.start) >= self.window {
            // A new window; reservations of the old one settle into nothing.
            *entry = BudgetEntry {
                start: now,
                used: 0,
                reserved: 0,
            };
        }
        let left = limit.saturating_sub(entry.used.saturating_add(entry.reserved));
        if left == 0 {
            return Err(self.window.saturating_sub(now.duration_since(entry.start)));
        }
        let amount = estimate.clamp(1, left);
        entry.reserved += amount;
        Ok(Reservation {
            budgets: Some(Arc::clone(self)),
            key: key.to_owned(),
            amount,
            window_start: entry.start,
            shared: None,
        })
    }

    fn settle(
        &self,
        key: &str,
        window_start: Instant,
        reserved: u64,
        used_tokens: u64,
        shared: Option<crate::shared::SharedReservation>,
    ) {
        if let (Some(redis), Some(r)) = (&self.shared, shared) {
            // Settling must not wait (it happens in drops): Redis is told in the background.
            let (redis, key) = (Arc::clone(redis), self.shared_key(key));
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                rt.spawn(async move {
                    if let Err(e) = redis.settle(&key, &r, used_tokens).await {
                        tracing::warn!(error = %e, "could not settle a shared token reservation");
                    }
                });
            }
            return;
        }
        let mut used = self.used.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(entry) = used.get_mut(key) {
            if entry.start == window_start {
                entry.reserved = entry.reserved.saturating_sub(reserved);
            }
            entry.used = entry.used.saturating_add(used_tokens);
        }
    }
}

/// Tokens set aside for one request by [`TokenBudgets::reserve`]. [`settle`](Self::settle)
/// it with the reported usage; dropped unsettled, it is charged in full.
#[derive(Debug)]
#[must_use = "a reservation dropped at once is charged in full"]
pub struct Reservation {
    budgets: Option<Arc<TokenBudgets>>,
    key: String,
    amount: u64,
    window_start: Instant,
    shared: Option<crate::shared::SharedReservation>,
}

impl Reservation {
    /// The tokens reserved: the most the request may use.
    pub fn amount(&self) -> u64 {
        self.amount
    }

    /// Replaces the reservation with the tokens the request used.
    pub fn settle(mut self, used: u64) {
        if let Some(b) = self.budgets.take() {
            b.settle(
                &self.key,
                self.window_start,
                self.amount,
                used,
                self.shared.take(),
            );
        }
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if let Some(b) = self.budgets.take() {
            b.settle(
                &self.key,
                self.window_start,
                self.amount,
                self.amount,
                self.shared.take(),
            );
        }
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

    #[tokio::test]
    async fn budgets_refuse_once_everything_is_reserved_or_spent() {
        let b = Arc::new(TokenBudgets::new(Some(10), Duration::from_secs(60)));
        b.reserve("k", 4).await.unwrap().settle(12);
        assert!(b.reserve("k", 1).await.is_err());
        assert!(b.reserve("other", 1).await.is_ok());
        // Concurrent reservations share what is left, never more.
        let c = Arc::new(TokenBudgets::new(Some(10), Duration::from_secs(60)));
        let mut held = Vec::new();
        for _ in 0..5 {
            if let Ok(r) = c.reserve("k", 4).await {
                held.push(r);
            }
        }
        assert_eq!(held.iter().map(Reservation::amount).sum::<u64>(), 10);
        assert_eq!(held.len(), 3);
    }
}
