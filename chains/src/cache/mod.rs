//! Caching layers for model calls, each a decorator implementing the trait it wraps:
//! - [`CachedChatModel`]: an exact LLM-response cache. The key is a SHA-256 of the model's
//!   identity (provider, model id, and an optional
//!   [deployment identity](CachedChatModel::with_model_identity)) and the whole request
//!   (messages, tools, tool choice, response format, sampling options, stop sequences, seed),
//!   so only an identical request hits.
//! - [`SemanticCachedChatModel`]: a semantic cache. The last user message is embedded, and a
//!   previous prompt at least as similar as the threshold answers, provided everything else
//!   in the request (system prompt, earlier turns, temperature, …) and the embedder are the
//!   same.
//! - [`CachedEmbedder`]: an embeddings cache keyed by the model and a hash of each text;
//!   only the misses reach the inner embedder, in one batch.
//!
//! Storage is any [`CacheStore`] / [`SemanticCacheStore`]: in memory
//! ([`InMemoryCacheStore`](catena_core::InMemoryCacheStore),
//! [`InMemorySemanticCacheStore`](catena_core::InMemorySemanticCacheStore)) or in Redis
//! (`catena_vectorstores::RedisCacheStore`, feature `redis`), which replicas share. Each
//! layer writes in one namespace ([`with_namespace`](CachedChatModel::with_namespace), one
//! per tenant); namespaces never share entries. Store failures never fail a call: the layer
//! logs a warning, counts the error and calls the model.
//!
//! **Set a namespace per tenant.** A layer built without
//! [`with_namespace`](CachedChatModel::with_namespace) uses
//! [`DEFAULT_CACHE_NAMESPACE`] (`"default"`), and so does every other such layer on the same
//! store: in a multi-tenant service, one tenant's answers would be served to another (by the
//! semantic cache, even for a merely similar prompt), and the embeddings cache would tell
//! which texts others embedded.
//!
//! A chat layer stores an answer only when the model it reports (if any) is the requested
//! one, give or take a version suffix (`gpt-4o` answered by `gpt-4o-2024-08-06`): a
//! [`Fallback`](crate::Fallback) inside the layer answers under the primary model's key, and
//! the fallback model's answer must not be replayed as the primary's. A hit returns the
//! stored response as it was, usage included: nothing in the response marks it as a hit
//! (the span's `cache.hit` and [`stats`](CachedChatModel::stats) do), so usage summed from
//! responses counts a hit as another call.
//!
//! Every lookup runs in an `info` span named `cache` with `cache.kind` (`llm_exact`,
//! `llm_semantic`, `embeddings`), `cache.namespace` and `cache.hit`, and counts in the
//! `metrics` facade: `catena_cache_lookups_total{cache, result = hit | miss | error}` and
//! `catena_cache_write_errors_total{cache}`. [`stats`](CachedChatModel::stats) gives the
//! same counts per layer.
//!
//! ```
//! use std::sync::Arc;
//! use catena_core::{ChatModel, ChatRequest, InMemoryCacheStore, Message};
//! use catena_core::test_utils::ScriptedChatModel;
//! use catena_chains::ComposeExt;
//!
//! # futures::executor::block_on(async {
//! let model = ScriptedChatModel::new()
//!     .with_text("Paris.")
//!     .with_cache(Arc::new(InMemoryCacheStore::new(10_000)))
//!     .with_namespace("tenant-a");
//! let request = ChatRequest::new(vec![Message::user("Capital of France?")]);
//! assert_eq!(model.generate(request.clone()).await.unwrap().text(), "Paris.");
//! // The script is spent: the second answer can only come from the cache.
//! assert_eq!(model.generate(request).await.unwrap().text(), "Paris.");
//! assert_eq!((model.stats().hits, model.stats().misses), (1, 1));
//! # });
//! ```

mod chat;
mod embed;
mod semantic;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use catena_core::ChatResponse;
use sha2::{Digest, Sha256};

pub use chat::CachedChatModel;
pub use embed::CachedEmbedder;
pub use semantic::SemanticCachedChatModel;

#[cfg(doc)]
use catena_core::{CacheStore, SemanticCacheStore};

/// How long a cached entry lives unless a layer's `with_ttl` says otherwise: one day.
pub const DEFAULT_CACHE_TTL: Duration = Duration::from_secs(24 * 60 * 60);

/// The namespace a layer uses unless `with_namespace` says otherwise.
///
/// Every layer left at this namespace shares its entries with every other one on the same
/// store: never leave it in a multi-tenant service (set `with_namespace(tenant)` on each
/// layer), or one tenant's cached answers are served to another.
pub const DEFAULT_CACHE_NAMESPACE: &str = "default";

/// The similarity a [`SemanticCachedChatModel`] needs for a hit unless
/// [`with_threshold`](SemanticCachedChatModel::with_threshold) says otherwise.
pub const DEFAULT_SIMILARITY_THRESHOLD: f32 = 0.95;

/// Version of the key derivation and stored format; bumping it orphans old entries.
const KEY_VERSION: &[u8] = b"catena-cache/v1";

/// A cache layer's counts since it was built (shared by its clones), from `stats()` on
/// [`CachedChatModel`], [`SemanticCachedChatModel`] and [`CachedEmbedder`].
///
/// Every lookup counts once, as a hit, a miss or an error (the store or the embedder
/// failed, or the stored bytes could not be read); a failed write counts in
/// `write_errors`. An embeddings cache counts one lookup per text. Failures of the store or
/// the embedder never fail a call: the layer logs a warning, counts the error and calls the
/// model.
///
/// The same counts go to the `metrics` facade (a no-op until the program installs a
/// recorder): `catena_cache_lookups_total{cache, result}` with `cache` one of `llm_exact`,
/// `llm_semantic`, `embeddings` and `result` one of `hit`, `miss`, `error`, and
/// `catena_cache_write_errors_total{cache}`. Each lookup runs in an `info` span named
/// `cache` with `cache.kind`, `cache.namespace` and `cache.hit` (plus `cache.similarity` on
/// a semantic hit, `cache.hits` and `cache.misses` for embeddings); prompts, texts and keys
/// are never recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct CacheStats {
    /// Lookups answered from the cache.
    pub hits: u64,
    /// Lookups that found nothing (the model was called).
    pub misses: u64,
    /// Lookups that failed (the model was called).
    pub errors: u64,
    /// Writes to the store that failed.
    pub write_errors: u64,
}

impl CacheStats {
    /// All lookups: hits, misses and errors.
    pub fn lookups(&self) -> u64 {
        self.hits + self.misses + self.errors
    }
}

/// The label values of `cache` in the metrics.
#[derive(Debug, Clone, Copy)]
enum CacheKind {
    LlmExact,
    LlmSemantic,
    Embeddings,
}

impl CacheKind {
    fn as_str(self) -> &'static str {
        match self {
            CacheKind::LlmExact => "llm_exact",
            CacheKind::LlmSemantic => "llm_semantic",
            CacheKind::Embeddings => "embeddings",
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Outcome {
    Hit,
    Miss,
    Error,
}

/// The counters of one layer, shared by its clones.
#[derive(Debug, Default)]
struct Counters {
    hits: AtomicU64,
    misses: AtomicU64,
    errors: AtomicU64,
    write_errors: AtomicU64,
}

impl Counters {
    fn lookup(&self, kind: CacheKind, outcome: Outcome, n: u64) {
        if n == 0 {
            return;
        }
        let (counter, result) = match outcome {
            Outcome::Hit => (&self.hits, "hit"),
            Outcome::Miss => (&self.misses, "miss"),
            Outcome::Error => (&self.errors, "error"),
        };
        counter.fetch_add(n, Ordering::Relaxed);
        metrics::counter!(
            "catena_cache_lookups_total",
            "cache" => kind.as_str(),
            "result" => result,
        )
        .increment(n);
    }

    fn lookup_failed(&self, kind: CacheKind, n: u64, error: &dyn std::fmt::Display) {
        tracing::warn!(
            cache = kind.as_str(),
            error = %error,
            "cache lookup failed; calling the model"
        );
        self.lookup(kind, Outcome::Error, n);
    }

    fn write_failed(&self, kind: CacheKind, error: &dyn std::fmt::Display) {
        tracing::warn!(cache = kind.as_str(), error = %error, "cache write failed");
        self.write_errors.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("catena_cache_write_errors_total", "cache" => kind.as_str()).increment(1);
    }

    fn stats(&self) -> CacheStats {
        CacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
            write_errors: self.write_errors.load(Ordering::Relaxed),
        }
    }
}

/// The span of one lookup: `cache.hit` is false until a hit records true.
fn lookup_span(kind: CacheKind, namespace: &str) -> tracing::Span {
    tracing::info_span!(
        "cache",
        cache.kind = kind.as_str(),
        cache.namespace = namespace,
        cache.hit = false,
        cache.similarity = tracing::field::Empty,
        cache.hits = tracing::field::Empty,
        cache.misses = tracing::field::Empty,
    )
}

/// SHA-256 of the parts, each length-prefixed so no two part lists collide, as lowercase hex.
fn digest(parts: &[&[u8]]) -> String {
    let mut hasher = Sha256::new();
    hasher.update(KEY_VERSION);
    for part in parts {
        hasher.update((part.len() as u64).to_le_bytes());
        hasher.update(part);
    }
    let bytes = hasher.finalize();
    let mut hex = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        hex.push(char::from(HEX[usize::from(b >> 4)]));
        hex.push(char::from(HEX[usize::from(b & 0xf)]));
    }
    hex
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Whether an answer that reports `reported` as its model may be stored under the key of
/// `requested`: when no model (or an empty name) is reported, when both name the same model (ignoring case and
/// a `models/` prefix), or when one is the other plus a version suffix (`gpt-4o` and
/// `gpt-4o-2024-08-06`, `gemini-1.5-flash` and `gemini-1.5-flash-002`, `llama3` and
/// `llama3:latest`). Another model of the same family (`gpt-4o-mini`) is another model.
fn answered_by(requested: &str, reported: Option<&str>) -> bool {
    let Some(reported) = reported.filter(|m| !m.trim().is_empty()) else {
        return true;
    };
    let normalise = |m: &str| {
        let m = m.trim().to_ascii_lowercase();
        m.strip_prefix("models/").map(str::to_owned).unwrap_or(m)
    };
    let (requested, reported) = (normalise(requested), normalise(reported));
    requested == reported
        || is_version_of(&reported, &requested)
        || is_version_of(&requested, &reported)
}

/// Whether `model` is `base` followed by a version or date suffix: `-`, `@` or `:` then
/// `latest`, or digits, dashes and dots with at least three digits (`-2024-08-06`,
/// `-002`, `@20240620`), so `-mini`, `-8b` or `-32k` are other models.
fn is_version_of(model: &str, base: &str) -> bool {
    let Some(rest) = model.strip_prefix(base) else {
        return false;
    };
    let Some(suffix) = rest
        .strip_prefix('-')
        .or_else(|| rest.strip_prefix('@'))
        .or_else(|| rest.strip_prefix(':'))
    else {
        return false;
    };
    suffix == "latest"
        || (suffix.chars().filter(char::is_ascii_digit).count() >= 3
            && suffix
                .chars()
                .all(|c| c.is_ascii_digit() || c == '-' || c == '.'))
}

/// Whether `response` may be stored under the key of `requested` (`None`: the check is
/// off); logs why not.
fn storable(requested: Option<&str>, response: &ChatResponse) -> bool {
    let Some(requested) = requested else {
        return true;
    };
    let ok = answered_by(requested, response.model.as_deref());
    if !ok {
        tracing::debug!(
            requested,
            answered = response.model.as_deref().unwrap_or_default(),
            "another model answered; not caching its answer under the requested model"
        );
    }
    ok
}

fn encode_response(response: &ChatResponse) -> serde_json::Result<Vec<u8>> {
    serde_json::to_vec(response)
}

fn decode_response(bytes: &[u8]) -> serde_json::Result<ChatResponse> {
    serde_json::from_slice(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_is_stable_and_unambiguous() {
        assert_eq!(digest(&[b"a", b"bc"]), digest(&[b"a", b"bc"]));
        assert_ne!(digest(&[b"a", b"bc"]), digest(&[b"ab", b"c"]));
        assert_ne!(digest(&[b"abc"]), digest(&[b"abc", b""]));
        assert_eq!(digest(&[]).len(), 64);
    }

    #[test]
    fn a_reported_model_matches_its_own_versions_only() {
        for (requested, reported) in [
            ("gpt-4o", None),
            ("gpt-4o", Some(" ")),
            ("gpt-4o", Some("gpt-4o")),
            ("gpt-4o", Some("GPT-4o")),
            ("gpt-4o", Some("gpt-4o-2024-08-06")),
            ("gpt-4o-2024-08-06", Some("gpt-4o")),
            ("gpt-3.5-turbo", Some("gpt-3.5-turbo-0125")),
            ("gemini-1.5-flash", Some("gemini-1.5-flash-002")),
            ("models/gemini-1.5-flash", Some("gemini-1.5-flash-002")),
            ("claude-3-5-sonnet", Some("claude-3-5-sonnet@20240620")),
            ("llama3", Some("llama3:latest")),
        ] {
            assert!(
                answered_by(requested, reported),
                "{requested} / {reported:?}"
            );
        }
        for (requested, reported) in [
            ("gpt-4o", "gpt-4o-mini"),
            ("gpt-4", "gpt-4-32k"),
            ("gpt-4", "gpt-4.5"),
            ("gpt-4", "gpt-4-1"),
            ("gemini-1.5-flash", "gemini-1.5-flash-8b"),
            ("llama3", "llama3:70b"),
            ("primary-model", "fallback-model"),
        ] {
            assert!(
                !answered_by(requested, Some(reported)),
                "{requested} / {reported}"
            );
        }
    }
}
