//! Persistent chat histories: [`ChatHistory`](catena_core::ChatHistory) on PostgreSQL
//! (feature `postgres`) and on Redis (feature `redis`). The in-memory one is
//! [`catena_core::InMemoryChatHistory`].
//!
//! Messages are stored as the JSON of [`catena_core::Message`], so they come back exactly
//! as they were appended (tool calls, tool-call ids, images and names included).
//!
//! | type | feature | storage |
//! | --- | --- | --- |
//! | `PostgresChatHistory` | `postgres` | one table, a row per message, ordered by an identity column |
//! | `RedisChatHistory` | `redis` | a list per session, optional TTL |
//!
//! ```
//! use catena_core::{ChatHistory, InMemoryChatHistory, Message, SessionId};
//!
//! # futures::executor::block_on(async {
//! // Every history has the same three operations; the persistent ones keep the messages
//! // across restarts.
//! let history = InMemoryChatHistory::new();
//! let session = SessionId::new("s");
//! history.append(&session, &[Message::user("hi")]).await.unwrap();
//! assert_eq!(history.messages(&session).await.unwrap()[0].text(), "hi");
//! # });
//! ```

#[cfg(feature = "postgres")]
pub(crate) mod pg;
#[cfg(feature = "postgres")]
mod postgres;
#[cfg(feature = "redis")]
mod redis;

#[cfg(feature = "postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
pub use postgres::{PostgresChatHistory, PostgresChatHistoryBuilder};
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub use redis::{RedisChatHistory, RedisChatHistoryBuilder};

/// The environment variable the PostgreSQL types read when given no connection string.
pub const DATABASE_URL_ENV: &str = "DATABASE_URL";

/// The environment variable [`RedisChatHistory`](self) reads when given no URL.
pub const REDIS_URL_ENV: &str = "REDIS_URL";
