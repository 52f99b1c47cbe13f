//! [`PostgresChatHistory`]: chat history in a PostgreSQL table.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use catena_core::{ChatHistory, Message, Result, SessionId};
use deadpool_postgres::Pool;
use tokio::sync::OnceCell;

use super::connect::ConnectConfig;
use super::ddl::{ensure_schema, index_name, quote_ident, validate_table_name};
use super::error::{pg_error, pool_error};
use crate::stored_messages;

/// The default table.
const DEFAULT_TABLE: &str = "catena_chat_history";

/// Chat history in a PostgreSQL table (feature `postgres`).
///
/// Messages are stored as the JSON of [`Message`], so they come back exactly as they were
/// appended (tool calls, tool-call ids, images and names included). The table is created
/// on first use (idempotent DDL under an advisory lock):
///
/// ```text
/// id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY  -- the order of messages
/// session_id text        NOT NULL                            -- indexed with id
/// message    jsonb       NOT NULL                            -- a catena_core::Message
/// created_at timestamptz NOT NULL DEFAULT now()
/// ```
///
/// An append is one `INSERT` statement (one transaction), so a batch lands whole or not at
/// all, and its messages get consecutive positions in the session's order. Concurrent
/// appends to one session all land; each batch keeps its own order. `jsonb` cannot hold the
/// character U+0000, so a message containing it is rejected.
///
/// ```no_run
/// use catena_core::{ChatHistory, Message, SessionId};
/// use catena_vectorstores::PostgresChatHistory;
///
/// # async fn run() -> catena_core::Result<()> {
/// let history = PostgresChatHistory::builder()
///     .url("postgres://catena:catena@127.0.0.1:5432/catena_test")
///     .table("chat_history")
///     .build()?;
/// let session = SessionId::new("user-42");
/// history.append(&session, &[Message::user("hi"), Message::assistant("hello")]).await?;
/// assert_eq!(history.messages(&session).await?.len(), 2);
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct PostgresChatHistory {
    pool: Pool,
    table: String,
    ready: Arc<OnceCell<()>>,
}

impl fmt::Debug for PostgresChatHistory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresChatHistory")
            .field("table", &self.table)
            .field("created", &self.ready.initialized())
            .finish_non_exhaustive()
    }
}

/// Configures a [`PostgresChatHistory`]; start with [`PostgresChatHistory::builder`].
///
/// `Debug` never shows the connection string's password.
#[must_use]
#[derive(Debug)]
pub struct PostgresChatHistoryBuilder {
    connect: ConnectConfig,
    table: String,
}

impl PostgresChatHistoryBuilder {
    super::connect::connection_setters!(
        max_connections = "8",
        url_default = "the [`DATABASE_URL`](crate::DATABASE_URL_ENV) environment variable"
    );

    /// The table: 1 to 63 characters of `a-z`, `0-9` and `_`, not starting with a digit.
    /// Default `"catena_chat_history"`.
    pub fn table(mut self, name: impl Into<String>) -> Self {
        self.table = name.into();
        self
    }

    /// Checks the options and opens the pool; connects (and creates the table) on first use.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`](catena_core::Error::InvalidConfig) for a bad table name, a bad connection string or no
    /// connection at all.
    pub fn build(self) -> Result<PostgresChatHistory> {
        validate_table_name(&self.table, "table")?;
        let (pool, _) = self.connect.build_pool()?;
        Ok(PostgresChatHistory {
            pool,
            table: self.table,
            ready: Arc::new(OnceCell::new()),
        })
    }
}

impl PostgresChatHistory {
    /// A builder with the defaults.
    pub fn builder() -> PostgresChatHistoryBuilder {
        PostgresChatHistoryBuilder {
            connect: ConnectConfig::new(8),
            table: DEFAULT_TABLE.to_owned(),
        }
    }

    /// The table name.
    pub fn table(&self) -> &str {
        &self.table
    }

    async fn client(&self) -> Result<deadpool_postgres::Client> {
        self.ready
            .get_or_try_init(|| async {
                let t = quote_ident(&self.table);
                let idx = quote_ident(&index_name(&self.table, "session"));
                ensure_schema(
                    &self.pool,
                    &self.table,
                    &[
                        format!(
                            "CREATE TABLE IF NOT EXISTS {t} (\
                               id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, \
                               session_id text NOT NULL, \
                               message jsonb NOT NULL, \
                               created_at timestamptz NOT NULL DEFAULT now())"
                        ),
                        format!("CREATE INDEX IF NOT EXISTS {idx} ON {t} (session_id, id)"),
                    ],
                )
                .await
            })
            .await?;
        self.pool.get().await.map_err(pool_error)
    }
}

#[async_trait]
impl ChatHistory for PostgresChatHistory {
    async fn messages(&self, session: &SessionId) -> Result<Vec<Message>> {
        let client = self.client().await?;
        let sql = format!(
            "SELECT message::text FROM {} WHERE session_id = $1 ORDER BY id",
            quote_ident(&self.table)
        );
        let rows = client
            .query(&sql, &[&session.as_str()])
            .await
            .map_err(pg_error)?;
        rows.iter()
            .map(|row| {
                let text: &str = row.try_get(0).map_err(pg_error)?;
                stored_messages::decode(text)
            })
            .collect()
    }

    async fn append(&self, session: &SessionId, messages: &[Message]) -> Result<()> {
        if messages.is_empty() {
            return Ok(());
        }
        let json = stored_messages::encode(messages)?;
        let client = self.client().await?;
        // One statement: atomic, and the identity values follow the batch's order.
        let sql = format!(
            "INSERT INTO {} (session_id, message) \
             SELECT $1, m::jsonb FROM unnest($2::text[]) WITH ORDINALITY AS u(m, n) ORDER BY n",
            quote_ident(&self.table)
        );
        client
            .execute(&sql, &[&session.as_str(), &json])
            .await
            .map_err(pg_error)?;
        Ok(())
    }

    async fn clear(&self, session: &SessionId) -> Result<()> {
        let client = self.client().await?;
        let sql = format!(
            "DELETE FROM {} WHERE session_id = $1",
            quote_ident(&self.table)
        );
        client
            .execute(&sql, &[&session.as_str()])
            .await
            .map_err(pg_error)?;
        Ok(())
    }
}
