//! Limits shared by every replica through Redis: the per-key rate limit (GCRA, one atomic
//! script per check, on Redis's clock) and the token budgets (reservations and settlements,
//! each one script). With `limits.redis_url` (env `CATENA_REDIS_URL`) set, every gateway
//! replica on that Redis shares them; without it each process keeps its own in memory.
//!
//! Keys live under `catena:gw:` (`rate:<key>` holds the theoretical arrival time in ms and
//! expires when the bucket is full again; `budget:<key>` is a hash `used`/`reserved`/`w`
//! (the window's id) that expires with its window). When Redis cannot be reached a request
//! is refused with 503: limits that cannot be checked are not skipped.
//!
//! ```no_run
//! use example_gateway::shared::RedisLimits;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let limits = RedisLimits::new("redis://127.0.0.1:6379/")?;
//! let verdict = limits.rate("key-a", 60, 10).await?;
//! assert!(verdict.is_ok());
//! # Ok(())
//! # }
//! ```

use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::Script;

use crate::error::GatewayError;
use crate::limits::{Allowed, Limited};

const PREFIX: &str = "catena:gw:";

/// GCRA: KEYS[1] the bucket; ARGV interval (ms per request), burst. Returns
/// {allowed, retry_after_ms, remaining}.
const RATE: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local new_tat = tat + interval
local allow_at = new_tat - burst * interval
if now < allow_at then
  return {0, allow_at - now, 0}
end
redis.call('SET', KEYS[1], new_tat, 'PX', math.max(1, new_tat - now))
return {1, 0, math.floor((now - allow_at) / interval)}
";

/// KEYS[1] the budget; ARGV limit, window (ms), estimate. Returns {amount (0: refused),
/// retry_after_ms, window id}.
const RESERVE: &str = r"
local limit = tonumber(ARGV[1])
if redis.call('EXISTS', KEYS[1]) == 0 then
  local t = redis.call('TIME')
  redis.call('HSET', KEYS[1], 'used', 0, 'reserved', 0, 'w', t[1] .. '.' .. t[2])
  redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]))
end
local used = tonumber(redis.call('HGET', KEYS[1], 'used'))
local reserved = tonumber(redis.call('HGET', KEYS[1], 'reserved'))
local w = redis.call('HGET', KEYS[1], 'w')
local left = limit - used - reserved
if left <= 0 then
  return {0, math.max(1, redis.call('PTTL', KEYS[1])), w}
end
local amount = math.min(math.max(tonumber(ARGV[3]), 1), left)
redis.call('HINCRBY', KEYS[1], 'reserved', amount)
return {amount, 0, w}
";

/// KEYS[1] the budget; ARGV window id, reserved, used. A reservation of a window that has
/// ended releases nothing (that window is gone); the usage counts in the current one.
const SETTLE: &str = r"
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if redis.call('HGET', KEYS[1], 'w') == ARGV[1] then
  redis.call('HINCRBY', KEYS[1], 'reserved', -tonumber(ARGV[2]))
end
redis.call('HINCRBY', KEYS[1], 'used', tonumber(ARGV[3]))
return 1
";

/// The rate limit and token budgets of every replica, in Redis. See the [module docs](self).
pub struct RedisLimits {
    client: redis::Client,
    conn: tokio::sync::Mutex<Option<MultiplexedConnection>>,
    rate: Script,
    reserve: Script,
    settle: Script,
}

impl std::fmt::Debug for RedisLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may carry a password: only say where it points.
        let info = self.client.get_connection_info();
        f.debug_struct("RedisLimits")
            .field("addr", &info.addr().to_string())
            .finish_non_exhaustive()
    }
}

/// A budget reservation in Redis: how much, and in which window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedReservation {
    /// Tokens reserved.
    pub amount: u64,
    /// The budget window it was taken in.
    pub window: String,
}

impl RedisLimits {
    /// Limits on the Redis at `url` (`redis://[:password@]host:port/[db]`); connects on
    /// first use.
    ///
    /// # Errors
    /// [`GatewayError::Config`] for a URL that is not one.
    pub fn new(url: &str) -> Result<Self, GatewayError> {
        let client = redis::Client::open(url)
            .map_err(|_| GatewayError::Config("limits.redis_url is not a Redis URL".into()))?;
        Ok(RedisLimits {
            client,
            conn: tokio::sync::Mutex::new(None),
            rate: Script::new(RATE),
            reserve: Script::new(RESERVE),
            settle: Script::new(SETTLE),
        })
    }

    async fn conn(&self) -> redis::RedisResult<MultiplexedConnection> {
        let mut slot = self.conn.lock().await;
        if let Some(c) = slot.as_ref() {
            return Ok(c.clone());
        }
        let c = tokio::time::timeout(
            Duration::from_secs(2),
            self.client.get_multiplexed_async_connection(),
        )
        .await
        .map_err(|_| redis::RedisError::from((redis::ErrorKind::Io, "connect timed out")))??;
        *slot = Some(c.clone());
        Ok(c)
    }

    /// Runs `script`; a broken connection is dropped so the next call reconnects.
    async fn run<T: redis::FromRedisValue>(
        &self,
        invocation: redis::ScriptInvocation<'_>,
    ) -> redis::RedisResult<T> {
        let mut conn = self.conn().await?;
        let result = tokio::time::timeout(
            Duration::from_secs(2),
            invocation.invoke_async::<T>(&mut conn),
        )
        .await
        .map_err(|_| redis::RedisError::from((redis::ErrorKind::Io, "Redis timed out")))
        .and_then(|r| r);
        if let Err(e) = &result {
            if e.is_io_error() || e.is_connection_dropped() || e.is_timeout() {
                *self.conn.lock().await = None;
            }
        }
        result
    }

    /// Takes one request from `key`'s bucket: `per_minute` sustained, `burst` at once.
    ///
    /// # Errors
    /// The Redis error when the check could not be made.
    pub async fn rate(
        &self,
        key: &str,
        per_minute: u32,
        burst: u32,
    ) -> redis::RedisResult<Result<Allowed, Limited>> {
        let per_minute = per_minute.max(1);
        let burst = burst.max(1);
        let interval_ms = 60_000u64.div_ceil(u64::from(per_minute));
        let mut invocation = self.rate.prepare_invoke();
        invocation
            .key(format!("{PREFIX}rate:{key}"))
            .arg(interval_ms)
            .arg(burst);
        let (allowed, retry_ms, remaining): (u8, u64, u32) = self.run(invocation).await?;
        Ok(if allowed == 1 {
            let remaining = remaining.min(burst);
            let used = burst.saturating_sub(remaining);
            Ok(Allowed {
                remaining,
                reset_secs: (u64::from(used) * 60).div_ceil(u64::from(per_minute)),
            })
        } else {
            Err(Limited {
                retry_after: Duration::from_millis(retry_ms).max(Duration::from_secs(1)),
            })
        })
    }

    /// Reserves up to `estimate` of `key`'s `limit` tokens per `window`.
    ///
    /// # Errors
    /// The Redis error when it could not be asked; `Ok(Err(retry_after))` when nothing is
    /// left in the window.
    pub async fn reserve(
        &self,
        key: &str,
        limit: u64,
        window: Duration,
        estimate: u64,
    ) -> redis::RedisResult<Result<SharedReservation, Duration>> {
        let mut invocation = self.reserve.prepare_invoke();
        invocation
            .key(format!("{PREFIX}budget:{key}"))
            .arg(limit)
            .arg(u64::try_from(window.as_millis()).unwrap_or(u64::MAX).max(1))
            .arg(estimate);
        let (amount, retry_ms, window): (u64, u64, String) = self.run(invocation).await?;
        Ok(if amount == 0 {
            Err(Duration::from_millis(retry_ms))
        } else {
            Ok(SharedReservation { amount, window })
        })
    }

    /// Replaces `reservation` of `key` with `used` tokens.
    ///
    /// # Errors
    /// The Redis error when it could not be told.
    pub async fn settle(
        &self,
        key: &str,
        reservation: &SharedReservation,
        used: u64,
    ) -> redis::RedisResult<()> {
        let mut invocation = self.settle.prepare_invoke();
        invocation
            .key(format!("{PREFIX}budget:{key}"))
            .arg(&reservation.window)
            .arg(reservation.amount)
            .arg(used);
        let _: i64 = self.run(invocation).await?;
        Ok(())
    }

    /// Whether Redis answers (for `/readyz`).
    pub async fn ping(&self) -> bool {
        match self.conn().await {
            Ok(mut c) => redis::cmd("PING")
                .query_async::<String>(&mut c)
                .await
                .is_ok(),
            Err(_) => false,
        }
    }
}
