//! [`RedisCacheStore`]: the storage of Catena's caches in Redis, shared by every replica.
//!
//! ```no_run
//! use std::sync::Arc;
//! use std::time::Duration;
//! use catena_core::{CacheStore, SemanticCacheStore};
//! use catena_vectorstores::RedisCacheStore;
//!
//! # async fn run() -> catena_core::Result<()> {
//! let store = Arc::new(
//!     RedisCacheStore::builder()
//!         .url("redis://127.0.0.1:6379/")
//!         .key_prefix("myapp:cache:")
//!         .max_semantic_entries(500)
//!         .build()?,
//! );
//! store.put("tenant-a", "k", b"v".to_vec(), Some(Duration::from_secs(60))).await?;
//! assert_eq!(store.get("tenant-a", "k").await?, Some(b"v".to_vec()));
//! // The same store backs a semantic cache: `Arc<dyn SemanticCacheStore>`.
//! let _semantic: Arc<dyn SemanticCacheStore> = store;
//! # Ok(())
//! # }
//! ```

use std::collections::HashMap;
use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ::redis::aio::ConnectionManager;
use async_trait::async_trait;
use catena_core::backend::{cosine_similarity, effective_ttl};
use catena_core::{CacheStore, Error, Result, SemanticCacheStore, SemanticEntry, SemanticHit};

use super::{map_redis_error, shared_connection, SharedConnection, REDIS_URL_ENV};

/// Cache storage in Redis (feature `redis`): an exact [`CacheStore`] and a
/// [`SemanticCacheStore`] on one multiplexed connection, opened on first use. Several
/// processes on the same server and prefix share every entry.
///
/// Keys (`<ns>` is the namespace with `%` and `:` percent-escaped, so namespaces never
/// collide):
/// - exact: `<prefix>x:<ns>:<key>`, a string written with `SET … PX <ttl>`; Redis expires
///   it. Capacity is left to the server's `maxmemory` policy (`allkeys-lru` suits a cache).
///   A TTL of 100 years or more (such as `Duration::MAX`, which Redis would reject) means
///   no expiry, as in the in-memory stores.
/// - semantic: per namespace, a sorted set `<prefix>s:<ns>:order` of `<scope>:<id>` by
///   insertion time, and per scope a hash `<prefix>s:<ns>:e:<scope>` of id → entry (its
///   deadline, embedding and value, in binary). Redis 7 without RediSearch has no vector
///   index, so a lookup reads the scope's whole hash (`HGETALL`) and compares on the client:
///   about `entries × dimensions × 4` bytes per lookup, which is why each namespace holds at
///   most [`max_semantic_entries`](RedisCacheStoreBuilder::max_semantic_entries), the
///   oldest evicted first (`ZPOPMIN`). Expired entries are skipped and deleted when a lookup
///   meets them; the namespace's keys also get the TTL of the latest insert with one, so an
///   idle namespace disappears (use one TTL per namespace, as one cache layer does).
///
/// An insert (the entry, its place in the order, the keys' TTL and the eviction of the
/// oldest entries beyond the capacity) is one Lua script, atomic on the server, so
/// concurrent inserts from several replicas never leave an entry without its place in the
/// order (or the reverse), never delete an entry re-inserted meanwhile, and never leave a
/// namespace over its capacity. The deletion of expired entries met by a lookup is a script
/// too, which re-reads each entry's deadline and spares one re-inserted since the lookup
/// read it. The scripts touch the hashes of the scopes of the entries they evict, which
/// they cannot name in advance: the store needs a standalone server (or one primary), not
/// Redis Cluster. Redis 7 or later (`PEXPIRE … NX | GT`).
///
/// `Debug` shows the server address, never the URL's password.
#[derive(Clone)]
pub struct RedisCacheStore {
    client: ::redis::Client,
    connection: SharedConnection,
    key_prefix: String,
    max_semantic_entries: usize,
}

impl fmt::Debug for RedisCacheStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let info = self.client.get_connection_info();
        f.debug_struct("RedisCacheStore")
            .field("addr", &info.addr().to_string())
            .field("key_prefix", &self.key_prefix)
            .field("max_semantic_entries", &self.max_semantic_entries)
            .finish_non_exhaustive()
    }
}

/// Configures a [`RedisCacheStore`]; start with [`RedisCacheStore::builder`].
#[must_use]
pub struct RedisCacheStoreBuilder {
    url: Option<String>,
    key_prefix: String,
    max_semantic_entries: usize,
}

impl fmt::Debug for RedisCacheStoreBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisCacheStoreBuilder")
            .field("url", &self.url.as_ref().map(|_| "<set>"))
            .field("key_prefix", &self.key_prefix)
            .field("max_semantic_entries", &self.max_semantic_entries)
            .finish()
    }
}

impl RedisCacheStoreBuilder {
    /// The server URL, such as `redis://127.0.0.1:6379/` (`rediss://` is not built in).
    /// Default: the [`REDIS_URL`](REDIS_URL_ENV) environment variable.
    pub fn url(mut self, url: impl Into<String>) -> Self {
        self.url = Some(url.into());
        self
    }

    /// The prefix of every key. Default `"catena:cache:"`.
    pub fn key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.key_prefix = prefix.into();
        self
    }

    /// The most entries a namespace of the semantic cache holds; the oldest are evicted
    /// beyond it. Default
    /// [`DEFAULT_MAX_SEMANTIC_ENTRIES`](RedisCacheStore::DEFAULT_MAX_SEMANTIC_ENTRIES) (1000).
    pub fn max_semantic_entries(mut self, max: usize) -> Self {
        self.max_semantic_entries = max;
        self
    }

    /// Checks the options; connects on first use.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] for a bad or missing URL or a capacity of 0.
    pub fn build(self) -> Result<RedisCacheStore> {
        let url = match self.url {
            Some(url) => url,
            None => match std::env::var(REDIS_URL_ENV) {
                Ok(url) if !url.is_empty() => url,
                _ => {
                    return Err(Error::invalid_config(format!(
                        "no Redis server: set {REDIS_URL_ENV} or call url()"
                    )))
                }
            },
        };
        if self.max_semantic_entries == 0 {
            return Err(Error::invalid_config(
                "max_semantic_entries must be at least 1",
            ));
        }
        let client = ::redis::Client::open(url.as_str())
            .map_err(|e| Error::invalid_config(format!("invalid Redis URL: {e}")))?;
        Ok(RedisCacheStore {
            client,
            connection: SharedConnection::default(),
            key_prefix: self.key_prefix,
            max_semantic_entries: self.max_semantic_entries,
        })
    }
}

impl RedisCacheStore {
    /// The per-namespace capacity of the semantic cache unless the builder says otherwise.
    pub const DEFAULT_MAX_SEMANTIC_ENTRIES: usize = 1_000;

    /// A builder with the defaults.
    pub fn builder() -> RedisCacheStoreBuilder {
        RedisCacheStoreBuilder {
            url: None,
            key_prefix: "catena:cache:".to_owned(),
            max_semantic_entries: Self::DEFAULT_MAX_SEMANTIC_ENTRIES,
        }
    }

    /// The key of an exact entry.
    pub fn exact_key(&self, namespace: &str, key: &str) -> String {
        format!("{}x:{}:{key}", self.key_prefix, escape(namespace))
    }

    /// The sorted set ordering a semantic namespace's entries by insertion time.
    fn order_key(&self, namespace: &str) -> String {
        format!("{}s:{}:order", self.key_prefix, escape(namespace))
    }

    /// The hash of a semantic namespace's entries in one scope.
    fn entries_key(&self, namespace: &str, escaped_scope: &str) -> String {
        format!(
            "{}s:{}:e:{escaped_scope}",
            self.key_prefix,
            escape(namespace)
        )
    }

    async fn connection(&self) -> Result<ConnectionManager> {
        shared_connection(&self.connection, &self.client).await
    }
}

/// Percent-escapes `%` and `:` so an escaped name never contains the key separator.
fn escape(name: &str) -> String {
    name.replace('%', "%25").replace(':', "%3A")
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}

/// The TTL to send, in milliseconds; `None` for no expiry (also for a huge TTL, as in the
/// in-memory stores: Redis rejects a `PX` or `PEXPIRE` whose deadline does not fit in 64 bits).
fn ttl_millis(ttl: Option<Duration>) -> Option<u64> {
    effective_ttl(ttl).map(millis)
}

/// Inserts a semantic entry and evicts the oldest of its namespace beyond the capacity, in
/// one atomic step.
///
/// KEYS: the scope's hash, the namespace's order set. ARGV: id, entry bytes, score (now, in
/// ms), order member (`<scope>:<id>`), TTL in ms (`""`: none), capacity, and the prefix of
/// the namespace's hashes (`<prefix>s:<ns>:e:`). Returns how many entries were evicted.
const INSERT_SCRIPT: &str = r"
local entries, order = KEYS[1], KEYS[2]
local ttl = ARGV[5]
redis.call('HSET', entries, ARGV[1], ARGV[2])
redis.call('ZADD', order, ARGV[3], ARGV[4])
for _, key in ipairs(KEYS) do
  if ttl == '' then
    redis.call('PERSIST', key)
  else
    -- NX then GT: a fresh key gets the TTL, a key that expires sooner gets it too.
    redis.call('PEXPIRE', key, ttl, 'NX')
    redis.call('PEXPIRE', key, ttl, 'GT')
  end
end
local excess = redis.call('ZCARD', order) - tonumber(ARGV[6])
if excess <= 0 then
  return 0
end
local popped = redis.call('ZPOPMIN', order, excess)
for i = 1, #popped, 2 do
  local member = popped[i]
  local sep = string.find(member, ':', 1, true)
  if sep then
    redis.call('HDEL', ARGV[7] .. string.sub(member, 1, sep - 1), string.sub(member, sep + 1))
  end
end
return excess
";

/// Deletes the entries a lookup found expired (or unreadable), re-reading each first: an
/// entry re-inserted since the lookup read it has a new deadline and is kept.
///
/// KEYS: the scope's hash, the namespace's order set. ARGV: now (ms since the epoch), the
/// escaped scope, then the ids. The deadline and dimensions are read as
/// [`encode_entry`] writes them. Returns how many entries were deleted.
const DELETE_EXPIRED_SCRIPT: &str = r"
local entries, order = KEYS[1], KEYS[2]
local now = tonumber(ARGV[1])
local deleted = 0
for i = 3, #ARGV do
  local id = ARGV[i]
  local value = redis.call('HGET', entries, id)
  if value then
    local expired = true -- unreadable unless its header and embedding are all there
    if #value >= 12 then
      local deadline, dims = 0, 0
      for b = 8, 1, -1 do deadline = deadline * 256 + string.byte(value, b) end
      for b = 12, 9, -1 do dims = dims * 256 + string.byte(value, b) end
      if #value >= 12 + dims * 4 then
        expired = deadline ~= 0 and deadline <= now
      end
    end
    if expired then
      redis.call('HDEL', entries, id)
      redis.call('ZREM', order, ARGV[2] .. ':' .. id)
      deleted = deleted + 1
    end
  end
end
return deleted
";

fn now_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// A semantic entry as stored: deadline (ms since the epoch, 0 = never, u64 LE), dimensions
/// (u32 LE), the embedding (f32 LE), then the value.
fn encode_entry(embedding: &[f32], value: &[u8], deadline: u64) -> Result<Vec<u8>> {
    let dims = u32::try_from(embedding.len())
        .map_err(|_| Error::invalid_input("embedding too long for the cache"))?;
    let mut out = Vec::with_capacity(12 + embedding.len() * 4 + value.len());
    out.extend_from_slice(&deadline.to_le_bytes());
    out.extend_from_slice(&dims.to_le_bytes());
    for x in embedding {
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.extend_from_slice(value);
    Ok(out)
}

struct StoredEntry<'a> {
    deadline: u64,
    embedding: Vec<f32>,
    value: &'a [u8],
}

fn decode_entry(bytes: &[u8]) -> Option<StoredEntry<'_>> {
    let deadline = u64::from_le_bytes(bytes.get(0..8)?.try_into().ok()?);
    let dims = u32::from_le_bytes(bytes.get(8..12)?.try_into().ok()?) as usize;
    let end = 12usize.checked_add(dims.checked_mul(4)?)?;
    let embedding = bytes
        .get(12..end)?
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    Some(StoredEntry {
        deadline,
        embedding,
        value: bytes.get(end..)?,
    })
}

#[async_trait]
impl CacheStore for RedisCacheStore {
    async fn get(&self, namespace: &str, key: &str) -> Result<Option<Vec<u8>>> {
        let mut con = self.connection().await?;
        ::redis::cmd("GET")
            .arg(self.exact_key(namespace, key))
            .query_async(&mut con)
            .await
            .map_err(map_redis_error)
    }

    async fn put(
        &self,
        namespace: &str,
        key: &str,
        value: Vec<u8>,
        ttl: Option<Duration>,
    ) -> Result<()> {
        let mut cmd = ::redis::cmd("SET");
        cmd.arg(self.exact_key(namespace, key)).arg(value);
        if let Some(ttl) = ttl_millis(ttl) {
            cmd.arg("PX").arg(ttl);
        }
        let mut con = self.connection().await?;
        cmd.exec_async(&mut con).await.map_err(map_redis_error)
    }

    async fn get_many(&self, namespace: &str, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<String> = keys.iter().map(|k| self.exact_key(namespace, k)).collect();
        let mut con = self.connection().await?;
        ::redis::cmd("MGET")
            .arg(keys)
            .query_async(&mut con)
            .await
            .map_err(map_redis_error)
    }

    async fn put_many(
        &self,
        namespace: &str,
        entries: Vec<(String, Vec<u8>)>,
        ttl: Option<Duration>,
    ) -> Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
        let ttl = ttl_millis(ttl);
        let mut pipe = ::redis::pipe();
        for (key, value) in entries {
            let cmd = pipe
                .cmd("SET")
                .arg(self.exact_key(namespace, &key))
                .arg(value);
            if let Some(ttl) = ttl {
                cmd.arg("PX").arg(ttl);
            }
            cmd.ignore();
        }
        let mut con = self.connection().await?;
        pipe.exec_async(&mut con).await.map_err(map_redis_error)
    }
}

#[async_trait]
impl SemanticCacheStore for RedisCacheStore {
    async fn nearest(
        &self,
        namespace: &str,
        scope: &str,
        embedding: &[f32],
        min_similarity: f32,
    ) -> Result<Option<SemanticHit>> {
        let scope = escape(scope);
        let mut con = self.connection().await?;
        let entries: HashMap<String, Vec<u8>> = ::redis::cmd("HGETALL")
            .arg(self.entries_key(namespace, &scope))
            .query_async(&mut con)
            .await
            .map_err(map_redis_error)?;
        let now = now_millis();
        let mut expired = Vec::new();
        let mut best: Option<(f32, &str, &[u8])> = None;
        for (id, bytes) in &entries {
            let Some(entry) = decode_entry(bytes) else {
                // Unreadable (another format): treated as expired.
                expired.push(id.as_str());
                continue;
            };
            if entry.deadline != 0 && entry.deadline <= now {
                expired.push(id.as_str());
                continue;
            }
            if entry.embedding.len() != embedding.len() {
                continue;
            }
            let similarity = cosine_similarity(&entry.embedding, embedding);
            if similarity >= min_similarity && best.is_none_or(|(s, _, _)| similarity > s) {
                best = Some((similarity, id.as_str(), entry.value));
            }
        }
        if !expired.is_empty() {
            let result = ::redis::cmd("EVAL")
                .arg(DELETE_EXPIRED_SCRIPT)
                .arg(2)
                .arg(self.entries_key(namespace, &scope))
                .arg(self.order_key(namespace))
                .arg(now)
                .arg(&scope)
                .arg(&expired)
                .exec_async(&mut con)
                .await;
            if let Err(e) = result {
                tracing::debug!(error = %e, "could not delete expired semantic cache entries");
            }
        }
        Ok(best.map(|(similarity, id, value)| SemanticHit::new(id, similarity, value.to_vec())))
    }

    async fn insert(
        &self,
        namespace: &str,
        entry: SemanticEntry,
        ttl: Option<Duration>,
    ) -> Result<()> {
        let now = now_millis();
        let ttl = ttl_millis(ttl);
        let deadline = ttl.map_or(0, |t| now.saturating_add(t));
        let bytes = encode_entry(&entry.embedding, &entry.value, deadline)?;
        let scope = escape(&entry.scope);
        let mut con = self.connection().await?;
        ::redis::cmd("EVAL")
            .arg(INSERT_SCRIPT)
            .arg(2)
            .arg(self.entries_key(namespace, &scope))
            .arg(self.order_key(namespace))
            .arg(&entry.id)
            .arg(bytes)
            .arg(now)
            .arg(format!("{scope}:{}", entry.id))
            .arg(ttl.map(|t| t.to_string()).unwrap_or_default())
            .arg(self.max_semantic_entries)
            .arg(self.entries_key(namespace, ""))
            .exec_async(&mut con)
            .await
            .map_err(map_redis_error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip_and_names_are_escaped() {
        let bytes = encode_entry(&[1.0, -0.5], b"value", 42).unwrap();
        let entry = decode_entry(&bytes).unwrap();
        assert_eq!(
            (entry.deadline, entry.embedding, entry.value),
            (42, vec![1.0, -0.5], &b"value"[..])
        );
        assert!(decode_entry(&bytes[..10]).is_none());
        assert!(decode_entry(&bytes[..15]).is_none());
        assert_eq!(escape("a:b%c"), "a%3Ab%25c");
        assert_ne!(escape("a:b"), escape("a%3Ab"));
    }

    #[test]
    fn huge_ttls_mean_no_expiry() {
        use catena_core::backend::NEVER_EXPIRES_FROM;
        assert_eq!(ttl_millis(None), None);
        assert_eq!(ttl_millis(Some(Duration::MAX)), None);
        assert_eq!(ttl_millis(Some(NEVER_EXPIRES_FROM)), None);
        assert_eq!(ttl_millis(Some(Duration::from_secs(60))), Some(60_000));
        assert_eq!(ttl_millis(Some(Duration::ZERO)), Some(1));
        let longest = ttl_millis(Some(NEVER_EXPIRES_FROM - Duration::from_millis(1))).unwrap();
        assert!(now_millis()
            .checked_add(longest)
            .is_some_and(|d| d < i64::MAX as u64));
    }

    #[test]
    fn debug_hides_the_password() {
        let store = RedisCacheStore::builder()
            .url("redis://:hunter2@127.0.0.1:6379/")
            .build()
            .unwrap();
        let shown = format!("{store:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("127.0.0.1"), "{shown}");
        let builder = RedisCacheStore::builder().url("redis://:hunter2@h/");
        assert!(!format!("{builder:?}").contains("hunter2"));
    }
}
