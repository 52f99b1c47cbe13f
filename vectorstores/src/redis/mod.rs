//! Redis (feature `redis`): chat history ([`RedisChatHistory`]), one list per session, and
//! the storage of the model-call caches ([`RedisCacheStore`]).
//!
//! ```no_run
//! use std::time::Duration;
//! use catena_core::{ChatHistory, Message, SessionId};
//! use catena_vectorstores::RedisChatHistory;
//!
//! # async fn run() -> catena_core::Result<()> {
//! let history = RedisChatHistory::builder()
//!     .url("redis://127.0.0.1:6379/")
//!     .ttl(Duration::from_secs(3600))
//!     .build()?;
//! history.append(&SessionId::new("s"), &[Message::user("hi")]).await?;
//! # Ok(())
//! # }
//! ```

mod cache;
mod history;

use catena_core::{Error, ProviderError, ProviderErrorKind};

pub use cache::{RedisCacheStore, RedisCacheStoreBuilder};
pub use history::{RedisChatHistory, RedisChatHistoryBuilder};

/// The environment variable [`RedisChatHistory`] and [`RedisCacheStore`] read when given no
/// URL.
pub const REDIS_URL_ENV: &str = "REDIS_URL";

/// Maps a Redis error to a Catena error by what the caller can do about it.
fn map_redis_error(e: ::redis::RedisError) -> Error {
    let kind = if e.is_io_error() || e.is_connection_dropped() || e.is_connection_refusal() {
        ProviderErrorKind::Transport
    } else if e.is_timeout() {
        ProviderErrorKind::Timeout
    } else {
        ProviderErrorKind::Server
    };
    ProviderError::new(kind, e.to_string())
        .with_provider("redis")
        .with_source(e)
        .into()
}
