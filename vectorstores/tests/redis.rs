//! The Redis chat history against a real server: the shared conformance suite, then what is
//! Redis's own (keys, TTL, U+0000, configuration errors).
//!
//! Needs `REDIS_URL`: `eval "$(bash scripts/redis.sh start)"` (stop with
//! `bash scripts/redis.sh stop`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use catena_core::test_utils::chat_history_conformance;
use catena_core::{ChatHistory, ContentPart, Error, Message, SessionId, ToolCall};
use catena_vectorstores::RedisChatHistory;

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

async fn delete_prefix(prefix: &str) {
    let mut con = raw().await;
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query_async(&mut con)
        .await
        .unwrap();
    if !keys.is_empty() {
        redis::cmd("DEL")
            .arg(keys)
            .exec_async(&mut con)
            .await
            .unwrap();
    }
}

/// Messages with what Redis keeps and PostgreSQL's `jsonb` cannot: U+0000 (the shared suite
/// leaves it out).
fn tricky_messages() -> Vec<Message> {
    vec![
        Message::system("You are terse."),
        Message::user_parts(vec![
            ContentPart::text("what's this? \"quotes\" \\ 'single' ünïcødé 🚀 \u{0}"),
            ContentPart::image_base64("image/png", "iVBORw0KGgo="),
        ])
        .with_name("alice"),
        Message::assistant_with_tool_calls(
            "",
            vec![
                ToolCall::new("call_1", "lookup", r#"{"q":"cat","n":2}"#),
                ToolCall::new("call_2", "broken", "{not json"),
            ],
        ),
        Message::tool_result("call_1", "a cat"),
        Message::tool_result("call_2", ""),
        Message::assistant("It is a cat.\nLine two."),
    ]
}

#[tokio::test]
async fn redis_history_behaves_like_in_memory() {
    let prefix = unique_prefix("basic");
    let history = RedisChatHistory::builder()
        .url(redis_url())
        .key_prefix(&prefix)
        .build()
        .unwrap();
    chat_history_conformance(&history).await;
    // Stored as bytes: even U+0000 and a base64 image come back exactly.
    let tricky = tricky_messages();
    let t = SessionId::new("tricky");
    history.append(&t, &tricky[..2]).await.unwrap();
    history.append(&t, &tricky[2..]).await.unwrap();
    assert_eq!(
        history.messages(&t).await.unwrap(),
        tricky,
        "exact round trip, in order"
    );
    history.clear(&t).await.unwrap();
    assert!(history.messages(&t).await.unwrap().is_empty());
    let s = SessionId::new("keyed");
    history.append(&s, &[Message::user("x")]).await.unwrap();
    assert_eq!(history.key(&s), format!("{prefix}keyed"));
    let mut con = raw().await;
    let len: usize = redis::cmd("LLEN")
        .arg(history.key(&s))
        .query_async(&mut con)
        .await
        .unwrap();
    assert_eq!(len, 1);
    let ttl: i64 = redis::cmd("TTL")
        .arg(history.key(&s))
        .query_async(&mut con)
        .await
        .unwrap();
    assert_eq!(ttl, -1, "no TTL by default");
    delete_prefix(&prefix).await;
}

#[tokio::test]
async fn redis_ttl_is_set_and_refreshed_on_append() {
    let prefix = unique_prefix("ttl");
    let history = RedisChatHistory::builder()
        .url(redis_url())
        .key_prefix(&prefix)
        .ttl(Duration::from_secs(100))
        .build()
        .unwrap();
    let s = SessionId::new("s");
    let key = history.key(&s);
    let mut con = raw().await;
    history.append(&s, &[Message::user("1")]).await.unwrap();
    let ttl: i64 = redis::cmd("TTL")
        .arg(&key)
        .query_async(&mut con)
        .await
        .unwrap();
    assert!((90..=100).contains(&ttl), "{ttl}");
    redis::cmd("EXPIRE")
        .arg(&key)
        .arg(5)
        .exec_async(&mut con)
        .await
        .unwrap();
    history
        .append(&s, &[Message::assistant("2")])
        .await
        .unwrap();
    let ttl: i64 = redis::cmd("TTL")
        .arg(&key)
        .query_async(&mut con)
        .await
        .unwrap();
    assert!(ttl > 5, "refreshed: {ttl}");
    assert_eq!(history.messages(&s).await.unwrap().len(), 2);

    let short = RedisChatHistory::builder()
        .url(redis_url())
        .key_prefix(&prefix)
        .ttl(Duration::from_secs(1))
        .build()
        .unwrap();
    let gone = SessionId::new("gone");
    short.append(&gone, &[Message::user("bye")]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert!(short.messages(&gone).await.unwrap().is_empty(), "expired");
    delete_prefix(&prefix).await;
}

#[tokio::test]
async fn redis_config_errors() {
    let err = RedisChatHistory::builder()
        .url("not a url")
        .build()
        .unwrap_err();
    assert!(matches!(err, Error::InvalidConfig(_)), "{err:?}");
    let err = RedisChatHistory::builder()
        .url(redis_url())
        .ttl(Duration::from_millis(10))
        .build()
        .unwrap_err();
    assert!(matches!(err, Error::InvalidConfig(_)));
    // An unreachable server is a transport error, not a panic.
    let dead = RedisChatHistory::builder()
        .url("redis://127.0.0.1:1/")
        .build()
        .unwrap();
    let err = dead.messages(&SessionId::new("x")).await.unwrap_err();
    assert!(err.as_provider().is_some(), "{err:?}");
}
