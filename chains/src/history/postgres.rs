//! [`PostgresChatHistory`]: chat history in a PostgreSQL table.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use catena_core::{ChatHistory, Error, Message, Result, SessionId};
use deadpool_postgres::Pool;
use tokio::sync::OnceCell;

use super::pg::{self, Connection};

/// Chat history in a PostgreSQL table (feature `postgres`).
///
/// The table is created on first use (idempotent DDL under an advisory lock):
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
/// use catena_chains::history::PostgresChatHistory;
/// use catena_core::{ChatHistory, Message, SessionId};
///
/// # async fn run() -> catena_core::Result<()> {
/// let history = PostgresChatHistory::builder()
///     .connection_string("postgres://catena:catena@127.0.0.1:5432/catena_test")
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
    ready: std::sync::Arc<OnceCell<()>>,
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
    connection: Option<Connection>,
    table: String,
    max_connections: usize,
    connect_timeout: Duration,
}

impl PostgresChatHistoryBuilder {
    crate::history::pg::pg_builder_setters!(table = "catena_chat_history", max_connections = "8");

    /// Checks the options and opens the pool; connects (and creates the table) on first use.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] for a bad table name, a bad connection string or no
    /// connection at all.
    pub fn build(self) -> Result<PostgresChatHistory> {
        pg::validate_table_name(&self.table)?;
        let pool = pg::make_pool(self.connection, self.max_connections, self.connect_timeout)?;
        Ok(PostgresChatHistory {
            pool,
            table: self.table,
            ready: std::sync::Arc::new(OnceCell::new()),
        })
    }
}

impl PostgresChatHistory {
    /// A builder with the defaults.
    pub fn builder() -> PostgresChatHistoryBuilder {
        PostgresChatHistoryBuilder {
            connection: None,
            table: "catena_chat_history".to_owned(),
            max_connections: 8,
            connect_timeout: Duration::from_secs(10),
        }
    }

    /// The table name.
    pub fn table(&self) -> &str {
        &self.table
    }

    async fn ensure_table(&self) -> Result<()> {
        self.ready
            .get_or_try_init(|| async {
                let t = pg::quote_ident(&self.table);
                let idx = pg::quote_ident(&pg::index_name(&self.table, "session"));
                pg::ensure_schema(
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
            .await
            .map(|_| ())
    }
}

#[async_trait]
impl ChatHistory for PostgresChatHistory {
    async fn messages(&self, session: &SessionId) -> Result<Vec<Message>> {
        self.ensure_table().await?;
        let client = self.pool.get().await.map_err(pg::map_pool_error)?;
        let sql = format!(
            "SELECT message::text FROM {} WHERE session_id = $1 ORDER BY id",
            pg::quote_ident(&self.table)
        );
        let rows = client
            .query(&sql, &[&session.as_str()])
            .await
            .map_err(pg::map_pg_error)?;
        rows.iter()
            .map(|row| {
                let text: &str = row.try_get(0).map_err(pg::map_pg_error)?;
                serde_json::from_str(text)
                    .map_err(|e| Error::serialization("a stored chat message", e))
            })
            .collect()
    }

    async fn append(&self, session: &SessionId, messages: &[Message]) -> Result<()> {
        if messages.is_empty() {
            return Ok(());
        }
        let json = messages
            .iter()
            .map(serde_json::to_string)
            .collect::<std::result::Result<Vec<String>, _>>()
            .map_err(|e| Error::serialization("a chat message", e))?;
        self.ensure_table().await?;
        let client = self.pool.get().await.map_err(pg::map_pool_error)?;
        // One statement: atomic, and the identity values follow the batch's order.
        let sql = format!(
            "INSERT INTO {} (session_id, message) \
             SELECT $1, m::jsonb FROM unnest($2::text[]) WITH ORDINALITY AS u(m, n) ORDER BY n",
            pg::quote_ident(&self.table)
        );
        client
            .execute(&sql, &[&session.as_str(), &json])
            .await
            .map_err(pg::map_pg_error)?;
        Ok(())
    }

    async fn clear(&self, session: &SessionId) -> Result<()> {
        self.ensure_table().await?;
        let client = self.pool.get().await.map_err(pg::map_pool_error)?;
        let sql = format!(
            "DELETE FROM {} WHERE session_id = $1",
            pg::quote_ident(&self.table)
        );
        client
            .execute(&sql, &[&session.as_str()])
            .await
            .map_err(pg::map_pg_error)?;
        Ok(())
    }
}
