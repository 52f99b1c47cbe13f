//! The Redis cache store against a real server: exact and semantic entries, TTL, namespace
//! isolation, capacity eviction, and the caching layers of `catena-chains` sharing hits
//! across separate connections (as replicas do).
//!
//! Needs `REDIS_URL`: `eval "$(bash scripts/redis.sh start)"` (stop with
//! `bash scripts/redis.sh stop`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use catena_chains::{CachedChatModel, CachedEmbedder, SemanticCachedChatModel};
use catena_core::test_utils::{DeterministicEmbedder, ScriptedChatModel};
use catena_core::{
    CacheStore, ChatModel, ChatRequest, Embedder, Error, Message, SemanticCacheStore, SemanticEntry,
};
use catena_vectorstores::RedisCacheStore;

fn redis_url() -> String {
    match std::env::var("REDIS_URL") {
        Ok(url) if !url.is_empty() => url,
        _ => panic!(
            "REDIS_URL is not set: start Redis with `eval \"$(bash scripts/redis.sh start)\"` \
             (stop it with `bash scripts/redis.sh stop`)"
        ),
    }
}

fn unique_prefix(tag: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("catena-test:{tag}:{}:{nanos}:", std::process::id())
}

async fn raw() -> redis::aio::MultiplexedConnection {
    redis::Client::open(redis_url().as_str())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

async fn keys(prefix: &str) -> Vec<String> {
    let mut con = raw().await;
    let mut keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query_async(&mut con)
        .await
        .unwrap();
    keys.sort();
    keys
}

async fn delete_prefix(prefix: &str) {
    let keys = keys(prefix).await;
    if !keys.is_empty() {
        let mut con = raw().await;
        redis::cmd("DEL")
            .arg(keys)
            .exec_async(&mut con)
            .await
            .unwrap();
    }
}

fn store(prefix: &str) -> RedisCacheStore {
    RedisCacheStore::builder()
        .url(redis_url())
        .key_prefix(prefix)
        .build()
        .unwrap()
}

#[tokio::test]
async fn redis_exact_entries_namespaces_and_ttl() {
    let prefix = unique_prefix("exact");
    let s = store(&prefix);

    s.put("tenant-a", "k", b"a".to_vec(), None).await.unwrap();
    s.put("tenant-b", "k", b"b".to_vec(), None).await.unwrap();
    assert_eq!(s.get("tenant-a", "k").await.unwrap(), Some(b"a".to_vec()));
    assert_eq!(s.get("tenant-b", "k").await.unwrap(), Some(b"b".to_vec()));
    assert_eq!(s.get("tenant-c", "k").await.unwrap(), None);
    // Namespaces with the key separator never collide with other namespace/key pairs.
    s.put("a:b", "c", b"1".to_vec(), None).await.unwrap();
    assert_eq!(s.get("a", "b:c").await.unwrap(), None);
    assert_eq!(s.get("a:b", "c").await.unwrap(), Some(b"1".to_vec()));

    // Binary values survive, and batches keep their order.
    let binary = vec![0u8, 255, 10, 13, 0];
    s.put_many(
        "tenant-a",
        vec![("x".into(), binary.clone()), ("z".into(), b"z".to_vec())],
        None,
    )
    .await
    .unwrap();
    let got = s
        .get_many("tenant-a", &["z".into(), "missing".into(), "x".into()])
        .await
        .unwrap();
    assert_eq!(got, vec![Some(b"z".to_vec()), None, Some(binary)]);
    assert!(s.get_many("tenant-a", &[]).await.unwrap().is_empty());

    // SET … PX: Redis expires the entry.
    s.put(
        "tenant-a",
        "short",
        b"s".to_vec(),
        Some(Duration::from_millis(150)),
    )
    .await
    .unwrap();
    let mut con = raw().await;
    let pttl: i64 = redis::cmd("PTTL")
        .arg(s.exact_key("tenant-a", "short"))
        .query_async(&mut con)
        .await
        .unwrap();
    assert!((1..=150).contains(&pttl), "PTTL {pttl}");
    assert!(s.get("tenant-a", "short").await.unwrap().is_some());
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert_eq!(s.get("tenant-a", "short").await.unwrap(), None);
    s.put_many(
        "tenant-a",
        vec![("y".into(), b"y".to_vec())],
        Some(Duration::from_millis(100)),
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(s.get("tenant-a", "y").await.unwrap(), None);

    assert!(keys(&prefix).await.iter().all(|k| k.starts_with(&prefix)));
    delete_prefix(&prefix).await;
}

fn entry(id: &str, scope: &str, v: Vec<f32>) -> SemanticEntry {
    SemanticEntry::new(id, scope, v, id.as_bytes().to_vec())
}

#[tokio::test]
async fn redis_semantic_nearest_scope_namespaces_and_ttl() {
    let prefix = unique_prefix("semantic");
    let s = store(&prefix);
    s.insert("ns", entry("x", "s1", vec![1.0, 0.0, 0.0]), None)
        .await
        .unwrap();
    s.insert("ns", entry("xy", "s1", vec![0.8, 0.6, 0.0]), None)
        .await
        .unwrap();
    s.insert("ns", entry("other-scope", "s:2", vec![1.0, 0.0, 0.0]), None)
        .await
        .unwrap();
    s.insert("ns", entry("short", "s1", vec![1.0, 0.0]), None)
        .await
        .unwrap();

    let hit = s
        .nearest("ns", "s1", &[0.9, 0.1, 0.0], 0.5)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((hit.id.as_str(), hit.value.as_slice()), ("x", &b"x"[..]));
    assert!(hit.similarity > 0.99);
    let hit = s
        .nearest("ns", "s1", &[0.7, 0.7, 0.0], 0.5)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(hit.id, "xy");
    assert!(s
        .nearest("ns", "s1", &[0.0, 0.0, 1.0], 0.5)
        .await
        .unwrap()
        .is_none());
    let hit = s
        .nearest("ns", "s:2", &[1.0, 0.0, 0.0], 0.5)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(hit.id, "other-scope");
    assert!(s
        .nearest("other-ns", "s1", &[1.0, 0.0, 0.0], 0.5)
        .await
        .unwrap()
        .is_none());

    // Re-inserting an id replaces it.
    s.insert("ns", entry("x", "s1", vec![0.0, 0.0, 1.0]), None)
        .await
        .unwrap();
    let hit = s
        .nearest("ns", "s1", &[0.0, 0.0, 1.0], 0.9)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(hit.id, "x");

    // An entry past its TTL is never returned, and is deleted when met.
    s.insert(
        "ttl",
        entry("t", "s", vec![1.0, 1.0]),
        Some(Duration::from_millis(150)),
    )
    .await
    .unwrap();
    assert!(s
        .nearest("ttl", "s", &[1.0, 1.0], 0.9)
        .await
        .unwrap()
        .is_some());
    let ttl_keys: Vec<String> = keys(&format!("{prefix}s:ttl:")).await;
    assert_eq!(ttl_keys.len(), 2, "{ttl_keys:?}");
    let mut con = raw().await;
    for key in &ttl_keys {
        let pttl: i64 = redis::cmd("PTTL")
            .arg(key)
            .query_async(&mut con)
            .await
            .unwrap();
        assert!((1..=150).contains(&pttl), "{key}: PTTL {pttl}");
    }
    // Stop Redis from expiring the keys themselves, to see the per-entry deadline at work.
    for key in &ttl_keys {
        redis::cmd("PERSIST")
            .arg(key)
            .exec_async(&mut con)
            .await
            .unwrap();
    }
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert!(s
        .nearest("ttl", "s", &[1.0, 1.0], 0.9)
        .await
        .unwrap()
        .is_none());
    assert!(
        keys(&format!("{prefix}s:ttl:")).await.is_empty(),
        "the expired entry was deleted"
    );
    delete_prefix(&prefix).await;
}

#[tokio::test]
async fn redis_semantic_capacity_evicts_the_oldest() {
    let prefix = unique_prefix("evict");
    let s = RedisCacheStore::builder()
        .url(redis_url())
        .key_prefix(&prefix)
        .max_semantic_entries(3)
        .build()
        .unwrap();
    let vectors = [
        vec![1.0, 0.0, 0.0, 0.0],
        vec![0.0, 1.0, 0.0, 0.0],
        vec![0.0, 0.0, 1.0, 0.0],
        vec![0.0, 0.0, 0.0, 1.0],
        vec![-1.0, 0.0, 0.0, 0.0],
    ];
    for (i, v) in vectors.iter().enumerate() {
        // Two scopes in one namespace share its capacity.
        let scope = if i % 2 == 0 { "even" } else { "odd" };
        s.insert("ns", entry(&format!("e{i}"), scope, v.clone()), None)
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    // Another namespace has a capacity of its own.
    s.insert("other", entry("o", "even", vectors[0].clone()), None)
        .await
        .unwrap();

    let mut con = raw().await;
    let order: Vec<String> = redis::cmd("ZRANGE")
        .arg(format!("{prefix}s:ns:order"))
        .arg(0)
        .arg(-1)
        .query_async(&mut con)
        .await
        .unwrap();
    assert_eq!(order, vec!["even:e2", "odd:e3", "even:e4"]);
    for (i, v) in vectors.iter().enumerate() {
        let scope = if i % 2 == 0 { "even" } else { "odd" };
        let found = s.nearest("ns", scope, v, 0.99).await.unwrap();
        assert_eq!(found.is_some(), i >= 2, "entry e{i}");
    }
    let even: usize = redis::cmd("HLEN")
        .arg(format!("{prefix}s:ns:e:even"))
        .query_async(&mut con)
        .await
        .unwrap();
    assert_eq!(even, 2, "evicted entries left their scope's hash");
    assert!(s
        .nearest("other", "even", &vectors[0], 0.99)
        .await
        .unwrap()
        .is_some());
    delete_prefix(&prefix).await;
}

fn ask(question: &str) -> ChatRequest {
    ChatRequest::new(vec![Message::system("Be brief."), Message::user(question)])
}

#[tokio::test]
async fn layers_on_separate_connections_share_hits() {
    let prefix = unique_prefix("replicas");
    // Two replicas: each its own store (and connection) and its own model.
    let replica = || {
        let s: Arc<RedisCacheStore> = Arc::new(store(&prefix));
        let model = Arc::new(ScriptedChatModel::echo());
        (s, model)
    };
    let (store_1, model_1) = replica();
    let (store_2, model_2) = replica();

    let exact_1 = CachedChatModel::new(Arc::clone(&model_1), store_1.clone()).with_namespace("t");
    let exact_2 = CachedChatModel::new(Arc::clone(&model_2), store_2.clone()).with_namespace("t");
    let first = exact_1.generate(ask("Shared?")).await.unwrap();
    let second = exact_2.generate(ask("Shared?")).await.unwrap();
    assert_eq!(first, second);
    assert_eq!((model_1.requests().len(), model_2.requests().len()), (1, 0));
    assert_eq!(exact_2.stats().hits, 1);
    // Another tenant on the same server does not see it.
    let other_tenant =
        CachedChatModel::new(Arc::clone(&model_2), store_2.clone()).with_namespace("u");
    other_tenant.generate(ask("Shared?")).await.unwrap();
    assert_eq!(model_2.requests().len(), 1);

    let embedder = DeterministicEmbedder::new(64);
    let semantic = |model: &Arc<ScriptedChatModel>, s: &Arc<RedisCacheStore>| {
        SemanticCachedChatModel::new(Arc::clone(model), embedder.clone(), s.clone())
            .with_threshold(0.8)
            .unwrap()
            .with_namespace("t")
    };
    let semantic_1 = semantic(&model_1, &store_1);
    let semantic_2 = semantic(&model_2, &store_2);
    semantic_1
        .generate(ask("How does the borrow checker work in Rust?"))
        .await
        .unwrap();
    let answer = semantic_2
        .generate(ask("how does the Rust borrow checker work"))
        .await
        .unwrap();
    assert_eq!(
        answer.text(),
        "Echo: How does the borrow checker work in Rust?"
    );
    assert_eq!((model_1.requests().len(), model_2.requests().len()), (2, 1));

    let texts: Vec<String> = vec!["alpha".into(), "beta".into()];
    let embed_1 = CachedEmbedder::new(embedder.clone(), store_1.clone(), "hash-64");
    let embed_2 = CachedEmbedder::new(embedder.clone(), store_2.clone(), "hash-64");
    let v1 = embed_1.embed_documents(&texts).await.unwrap();
    let v2 = embed_2.embed_documents(&texts).await.unwrap();
    assert_eq!(v1, v2);
    assert_eq!(embed_2.stats().hits, 2);
    delete_prefix(&prefix).await;
}

#[tokio::test]
async fn an_unreachable_redis_never_fails_the_call() {
    // A port nothing listens on: bind one, then free it.
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let s = Arc::new(
        RedisCacheStore::builder()
            .url(format!("redis://:secret-password@127.0.0.1:{port}/"))
            .build()
            .unwrap(),
    );
    let err = s.get("ns", "k").await.unwrap_err();
    assert!(err.is_retryable(), "{err}");
    assert!(!err.to_string().contains("secret-password"), "{err}");
    assert!(!format!("{s:?}").contains("secret-password"));

    let model = Arc::new(ScriptedChatModel::echo());
    let cached = CachedChatModel::new(Arc::clone(&model), s.clone());
    assert_eq!(cached.generate(ask("q")).await.unwrap().text(), "Echo: q");
    let stats = cached.stats();
    assert_eq!((stats.errors, stats.write_errors), (1, 1));
    let semantic = SemanticCachedChatModel::new(model, DeterministicEmbedder::new(8), s);
    semantic.generate(ask("q")).await.unwrap();
    assert_eq!(semantic.stats().errors, 1);
}

#[tokio::test]
async fn redis_cache_config_errors() {
    let err = RedisCacheStore::builder()
        .url(redis_url())
        .max_semantic_entries(0)
        .build()
        .unwrap_err();
    assert!(matches!(err, Error::InvalidConfig(_)), "{err}");
    let err = RedisCacheStore::builder()
        .url("not a url")
        .build()
        .unwrap_err();
    assert!(matches!(err, Error::InvalidConfig(_)), "{err}");
}

async fn pttl(key: &str) -> i64 {
    let mut con = raw().await;
    redis::cmd("PTTL")
        .arg(key)
        .query_async(&mut con)
        .await
        .unwrap()
}

#[tokio::test]
async fn redis_huge_ttls_mean_no_expiry() {
    let prefix = unique_prefix("huge-ttl");
    let s = store(&prefix);
    // What the in-memory store treats as "never expires" must not fail every write here.
    for ttl in [Duration::MAX, Duration::from_secs(u64::MAX / 2)] {
        s.put("ns", "k", b"v".to_vec(), Some(ttl)).await.unwrap();
        assert_eq!(s.get("ns", "k").await.unwrap(), Some(b"v".to_vec()));
        assert_eq!(pttl(&s.exact_key("ns", "k")).await, -1, "no expiry");
        s.put_many("ns", vec![("m".into(), b"m".to_vec())], Some(ttl))
            .await
            .unwrap();
        assert_eq!(pttl(&s.exact_key("ns", "m")).await, -1, "no expiry");

        s.insert("sem", entry("e", "s", vec![1.0, 0.0]), Some(ttl))
            .await
            .unwrap();
        let hit = s.nearest("sem", "s", &[1.0, 0.0], 0.9).await.unwrap();
        assert_eq!(hit.map(|h| h.id), Some("e".to_owned()));
        for key in keys(&format!("{prefix}s:sem:")).await {
            assert_eq!(pttl(&key).await, -1, "{key}: no expiry");
        }
    }
    delete_prefix(&prefix).await;
}

/// Every member of a namespace's order set has its entry, and every entry its member.
async fn assert_consistent(prefix: &str, namespace: &str, scopes: &[&str]) {
    let mut con = raw().await;
    let mut order: Vec<String> = redis::cmd("ZRANGE")
        .arg(format!("{prefix}s:{namespace}:order"))
        .arg(0)
        .arg(-1)
        .query_async(&mut con)
        .await
        .unwrap();
    order.sort();
    let mut entries = Vec::new();
    for scope in scopes {
        let ids: Vec<String> = redis::cmd("HKEYS")
            .arg(format!("{prefix}s:{namespace}:e:{scope}"))
            .query_async(&mut con)
            .await
            .unwrap();
        entries.extend(ids.into_iter().map(|id| format!("{scope}:{id}")));
    }
    entries.sort();
    assert_eq!(order, entries, "the order set and the entries disagree");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_eviction_never_deletes_a_concurrent_reinsert() {
    let prefix = unique_prefix("evict-race");
    // Two replicas (own connections) on a namespace that holds one entry, "a". One inserts
    // "b", which evicts "a"; the other re-inserts "a" at the same time. An eviction whose
    // pop and delete are two commands deletes the re-inserted "a" when the re-insert lands
    // between them, leaving "a" in the order set without its entry.
    let replica = || {
        Arc::new(
            RedisCacheStore::builder()
                .url(redis_url())
                .key_prefix(&prefix)
                .max_semantic_entries(1)
                .build()
                .unwrap(),
        )
    };
    let (one, two) = (replica(), replica());
    for round in 0..300u64 {
        let ns = format!("ns{round}");
        one.insert(&ns, entry("a", "s", vec![1.0, 0.0]), None)
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(2)).await;
        let evicting = {
            let (one, ns) = (Arc::clone(&one), ns.clone());
            tokio::spawn(
                async move { one.insert(&ns, entry("b", "s", vec![0.0, 1.0]), None).await },
            )
        };
        let reinserting = {
            let (two, ns) = (Arc::clone(&two), ns.clone());
            tokio::spawn(async move {
                // Sweep the moment of the re-insert over the eviction's round trips.
                let start = std::time::Instant::now();
                let delay = Duration::from_micros((round % 100) * 3);
                while start.elapsed() < delay {
                    std::hint::spin_loop();
                }
                two.insert(&ns, entry("a", "s", vec![1.0, 0.0]), None).await
            })
        };
        evicting.await.unwrap().unwrap();
        reinserting.await.unwrap().unwrap();
        assert_consistent(&prefix, &ns, &["s"]).await;
    }
    delete_prefix(&prefix).await;
}

#[tokio::test]
async fn redis_expired_cleanup_spares_a_concurrent_reinsert() {
    let prefix = unique_prefix("expire-race");
    let s = store(&prefix);
    for round in 0..40 {
        s.insert(
            "ns",
            entry("x", "s", vec![1.0, 0.0]),
            Some(Duration::from_millis(30)),
        )
        .await
        .unwrap();
        // A later entry with a longer TTL keeps the namespace's keys alive past x's deadline.
        s.insert(
            "ns",
            entry("keep", "s", vec![0.0, 1.0]),
            Some(Duration::from_secs(60)),
        )
        .await
        .unwrap();
        tokio::time::sleep(Duration::from_millis(40)).await;
        // A lookup meets the expired entry while another caller re-inserts it fresh.
        let (found, inserted) = tokio::join!(
            s.nearest("ns", "s", &[1.0, 0.0], 0.9),
            s.insert("ns", entry("x", "s", vec![1.0, 0.0]), None),
        );
        found.unwrap();
        inserted.unwrap();
        let hit = s.nearest("ns", "s", &[1.0, 0.0], 0.9).await.unwrap();
        assert!(hit.is_some(), "round {round}: the fresh entry was deleted");
        assert_consistent(&prefix, "ns", &["s"]).await;
    }
    delete_prefix(&prefix).await;
}

#[tokio::test]
async fn redis_unreadable_entries_are_deleted_when_met_and_readable_ones_kept() {
    let prefix = unique_prefix("unreadable");
    let s = store(&prefix);
    s.insert("ns", entry("good", "s", vec![1.0, 0.0]), None)
        .await
        .unwrap();
    let mut con = raw().await;
    // A short header, and a header announcing more dimensions than it carries.
    let mut truncated = vec![0u8; 8];
    truncated.extend_from_slice(&5u32.to_le_bytes());
    truncated.extend_from_slice(&1.0f32.to_le_bytes());
    for (id, bytes) in [("short", vec![1u8, 2, 3]), ("truncated", truncated)] {
        redis::pipe()
            .cmd("HSET")
            .arg(format!("{prefix}s:ns:e:s"))
            .arg(id)
            .arg(bytes)
            .cmd("ZADD")
            .arg(format!("{prefix}s:ns:order"))
            .arg(0)
            .arg(format!("s:{id}"))
            .exec_async(&mut con)
            .await
            .unwrap();
    }
    let hit = s.nearest("ns", "s", &[1.0, 0.0], 0.9).await.unwrap();
    assert_eq!(hit.map(|h| h.id), Some("good".to_owned()));
    assert_consistent(&prefix, "ns", &["s"]).await;
    let ids: Vec<String> = redis::cmd("HKEYS")
        .arg(format!("{prefix}s:ns:e:s"))
        .query_async(&mut con)
        .await
        .unwrap();
    assert_eq!(ids, vec!["good"]);
    delete_prefix(&prefix).await;
}

/// Redis drops the stores' connections (as a restart or a fail-over does): both the cache
/// store and the chat history reconnect instead of failing every call from then on. The
/// stores log in as their own ACL user, so `CLIENT KILL USER` drops only their connections.
#[tokio::test]
async fn the_stores_reconnect_after_redis_drops_their_connections() {
    use catena_core::{ChatHistory, SessionId};
    use catena_vectorstores::RedisChatHistory;

    let prefix = unique_prefix("reconnect");
    let user = format!("catena-reconnect-{}", std::process::id());
    let password = format!("pw-{}", prefix.len() * 7919);
    let mut admin = raw().await;
    let _: () = redis::cmd("ACL")
        .arg(
            &[
                "SETUSER",
                &user,
                "reset",
                "on",
                &format!(">{password}"),
                "~*",
                "&*",
                "+@all",
            ][..],
        )
        .query_async(&mut admin)
        .await
        .unwrap();
    let base = redis_url();
    let (scheme, rest) = base.split_once("://").unwrap();
    let host = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
    let url = format!("{scheme}://{user}:{password}@{host}");

    let cache = RedisCacheStore::builder()
        .url(url.clone())
        .key_prefix(prefix.clone())
        .build()
        .unwrap();
    let history = RedisChatHistory::builder()
        .url(url)
        .key_prefix(format!("{prefix}h:"))
        .build()
        .unwrap();
    let session = SessionId::new("s");
    cache.put("ns", "k", b"v".to_vec(), None).await.unwrap();
    history
        .append(&session, &[Message::user("hi")])
        .await
        .unwrap();

    let killed: i64 = redis::cmd("CLIENT")
        .arg(&["KILL", "USER", &user][..])
        .query_async(&mut admin)
        .await
        .unwrap();
    assert!(killed >= 2, "killed {killed} connections");

    // The call that meets the dropped connection may fail; the next ones must not.
    let mut cache_ok = false;
    let mut history_ok = false;
    for _ in 0..20 {
        cache_ok = cache_ok || matches!(cache.get("ns", "k").await, Ok(Some(v)) if v == b"v");
        history_ok = history_ok || history.messages(&session).await.is_ok_and(|m| m.len() == 1);
        if cache_ok && history_ok {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _: () = redis::cmd("ACL")
        .arg(&["DELUSER", &user][..])
        .query_async(&mut admin)
        .await
        .unwrap();
    delete_prefix(&prefix).await;
    assert!(
        cache_ok,
        "the cache store never recovered from the dropped connection"
    );
    assert!(
        history_ok,
        "the chat history never recovered from the dropped connection"
    );
}
