//! [`RedisChatHistory`]: chat history in Redis lists.

use std::fmt;
use std::time::Duration;

use ::redis::aio::ConnectionManager;
use async_trait::async_trait;
use catena_core::{ChatHistory, Error, Message, Result, SessionId};

use super::{map_redis_error, shared_connection, SharedConnection, REDIS_URL_ENV};
use crate::stored_messages;

/// Chat history in Redis (feature `redis`): one list per session under
/// `<prefix><session id>`, one JSON-encoded [`Message`] per element, so messages come back
/// exactly as they were appended (tool calls, tool-call ids, images and names included).
///
/// An append is one `MULTI`/`EXEC` transaction (`RPUSH` of the whole batch, then `EXPIRE`
/// when a TTL is set), so a batch lands whole and the TTL restarts with each append.
/// [`messages`](ChatHistory::messages) is `LRANGE key 0 -1`; [`clear`](ChatHistory::clear)
/// is `DEL`. The connection is opened on first use and shared (multiplexed) by all calls.
///
/// ```no_run
/// use std::time::Duration;
/// use catena_core::{ChatHistory, Message, SessionId};
/// use catena_vectorstores::RedisChatHistory;
///
/// # async fn run() -> catena_core::Result<()> {
/// let history = RedisChatHistory::builder()
///     .url("redis://127.0.0.1:6379/")
///     .key_prefix("myapp:chat:")
///     .ttl(Duration::from_secs(24 * 3600))
///     .build()?;
/// let session = SessionId::new("user-42");
/// history.append(&session, &[Message::user("hi")]).await?;
/// assert_eq!(history.messages(&session).await?.len(), 1);
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct RedisChatHistory {
    client: ::redis::Client,
    connection: SharedConnection,
    key_prefix: String,
    ttl: Option<Duration>,
}

impl fmt::Debug for RedisChatHistory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let info = self.client.get_connection_info();
        f.debug_struct("RedisChatHistory")
            .field("addr", &info.addr().to_string())
            .field("key_prefix", &self.key_prefix)
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

/// Configures a [`RedisChatHistory`]; start with [`RedisChatHistory::builder`].
#[must_use]
pub struct RedisChatHistoryBuilder {
    url: Option<String>,
    key_prefix: String,
    ttl: Option<Duration>,
}

impl fmt::Debug for RedisChatHistoryBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisChatHistoryBuilder")
            .field("url", &self.url.as_ref().map(|_| "<set>"))
            .field("key_prefix", &self.key_prefix)
            .field("ttl", &self.ttl)
            .finish()
    }
}

impl RedisChatHistoryBuilder {
    /// The server URL, such as `redis://127.0.0.1:6379/` (`rediss://` is not built in).
    /// Default: the [`REDIS_URL`](REDIS_URL_ENV) environment variable.
    pub fn url(mut self, url: impl Into<String>) -> Self {
        self.url = Some(url.into());
        self
    }

    /// The prefix of every session's key. Default `"catena:chat:"`.
    pub fn key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.key_prefix = prefix.into();
        self
    }

    /// Expire a session this long after its last append (whole seconds, at least one).
    /// Default: never.
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = Some(ttl);
        self
    }

    /// Checks the options; connects on first use.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] for a bad or missing URL or a TTL under one second.
    pub fn build(self) -> Result<RedisChatHistory> {
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
        if self.ttl.is_some_and(|t| t.as_secs() == 0) {
            return Err(Error::invalid_config("ttl must be at least one second"));
        }
        let client = ::redis::Client::open(url.as_str())
            .map_err(|e| Error::invalid_config(format!("invalid Redis URL: {e}")))?;
        Ok(RedisChatHistory {
            client,
            connection: SharedConnection::default(),
            key_prefix: self.key_prefix,
            ttl: self.ttl,
        })
    }
}

impl RedisChatHistory {
    /// A builder with the defaults.
    pub fn builder() -> RedisChatHistoryBuilder {
        RedisChatHistoryBuilder {
            url: None,
            key_prefix: "catena:chat:".to_owned(),
            ttl: None,
        }
    }

    /// The key holding `session`'s messages.
    pub fn key(&self, session: &SessionId) -> String {
        format!("{}{}", self.key_prefix, session.as_str())
    }

    async fn connection(&self) -> Result<ConnectionManager> {
        shared_connection(&self.connection, &self.client).await
    }
}

#[async_trait]
impl ChatHistory for RedisChatHistory {
    async fn messages(&self, session: &SessionId) -> Result<Vec<Message>> {
        let mut con = self.connection().await?;
        let items: Vec<String> = ::redis::cmd("LRANGE")
            .arg(self.key(session))
            .arg(0)
            .arg(-1)
            .query_async(&mut con)
            .await
            .map_err(map_redis_error)?;
        items.iter().map(|s| stored_messages::decode(s)).collect()
    }

    async fn append(&self, session: &SessionId, messages: &[Message]) -> Result<()> {
        if messages.is_empty() {
            return Ok(());
        }
        let json = stored_messages::encode(messages)?;
        let key = self.key(session);
        let mut pipe = ::redis::pipe();
        pipe.atomic().cmd("RPUSH").arg(&key).arg(json).ignore();
        if let Some(ttl) = self.ttl {
            pipe.cmd("EXPIRE").arg(&key).arg(ttl.as_secs()).ignore();
        }
        let mut con = self.connection().await?;
        pipe.exec_async(&mut con).await.map_err(map_redis_error)
    }

    async fn clear(&self, session: &SessionId) -> Result<()> {
        let mut con = self.connection().await?;
        ::redis::cmd("DEL")
            .arg(self.key(session))
            .exec_async(&mut con)
            .await
            .map_err(map_redis_error)
    }
}
