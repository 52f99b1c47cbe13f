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

use ::redis::aio::{ConnectionManager, ConnectionManagerConfig};
use catena_core::{Error, ProviderError, ProviderErrorKind};

pub use cache::{RedisCacheStore, RedisCacheStoreBuilder};
pub use history::{RedisChatHistory, RedisChatHistoryBuilder};

/// The environment variable [`RedisChatHistory`] and [`RedisCacheStore`] read when given no
/// URL.
pub const REDIS_URL_ENV: &str = "REDIS_URL";

/// One connection per store, shared by its clones: a [`ConnectionManager`] over a multiplexed
/// connection, made on first use (a failed first attempt is retried by the next call) and
/// re-made in the background when Redis drops it (a restart, a fail-over, `CLIENT KILL`), so
/// a store outlives its server's restarts instead of failing every call after one.
type SharedConnection = std::sync::Arc<tokio::sync::OnceCell<ConnectionManager>>;

/// The connection in `cell`, made from `client` if there is none yet.
async fn shared_connection(
    cell: &SharedConnection,
    client: &::redis::Client,
) -> catena_core::Result<ConnectionManager> {
    cell.get_or_try_init(|| async {
        let config = ConnectionManagerConfig::new()
            .set_number_of_retries(2)
            .set_max_delay(std::time::Duration::from_secs(1));
        ConnectionManager::new_with_config(client.clone(), config)
            .await
            .map_err(map_redis_error)
    })
    .await
    .cloned()
}

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
