//! [`PostgresRecordManager`]: the indexing records in a PostgreSQL table.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use catena_core::Result;
use deadpool_postgres::Pool;
use tokio::sync::OnceCell;

use super::{Record, RecordManager};
use crate::history::pg::{self, Connection};

/// A [`RecordManager`] in a PostgreSQL table (feature `postgres`).
///
/// The table is created on first use (idempotent DDL under an advisory lock):
///
/// ```text
/// namespace  text        NOT NULL
/// key        text        NOT NULL     -- PRIMARY KEY (namespace, key)
/// group_id   text                     -- the source; indexed with namespace
/// updated_at timestamptz NOT NULL     -- the server's now() at the last write
/// ```
///
/// ```no_run
/// use catena_chains::indexing::{index, Cleanup, IndexOptions, PostgresRecordManager};
/// use catena_core::test_utils::DeterministicEmbedder;
/// use catena_core::Document;
/// use catena_vectorstores::InMemoryVectorStore;
///
/// # async fn run() -> catena_core::Result<()> {
/// let records = PostgresRecordManager::builder()
///     .connection_string("postgres://catena:catena@127.0.0.1:5432/catena_test")
///     .table("catena_records")
///     .build()?;
/// let (store, embedder) = (InMemoryVectorStore::new(), DeterministicEmbedder::new(8));
/// let docs = vec![Document::new("Rust is fast.").with_metadata("source", "faq.md")];
/// let options = IndexOptions::new().cleanup(Cleanup::Incremental).namespace("faq");
/// let report = index(docs, &records, &store, &embedder, &options).await?;
/// # let _ = report;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct PostgresRecordManager {
    pool: Pool,
    table: String,
    ready: std::sync::Arc<OnceCell<()>>,
}

impl fmt::Debug for PostgresRecordManager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresRecordManager")
            .field("table", &self.table)
            .field("created", &self.ready.initialized())
            .finish_non_exhaustive()
    }
}

/// Configures a [`PostgresRecordManager`]; start with [`PostgresRecordManager::builder`].
///
/// `Debug` never shows the connection string's password.
#[must_use]
#[derive(Debug)]
pub struct PostgresRecordManagerBuilder {
    connection: Option<Connection>,
    table: String,
    max_connections: usize,
    connect_timeout: Duration,
}

impl PostgresRecordManagerBuilder {
    crate::history::pg::pg_builder_setters!(table = "catena_index_records", max_connections = "4");

    /// Checks the options and opens the pool; connects (and creates the table) on first use.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`](catena_core::Error) for a bad table name, a bad connection
    /// string or no connection at all.
    pub fn build(self) -> Result<PostgresRecordManager> {
        pg::validate_table_name(&self.table)?;
        let pool = pg::make_pool(self.connection, self.max_connections, self.connect_timeout)?;
        Ok(PostgresRecordManager {
            pool,
            table: self.table,
            ready: std::sync::Arc::new(OnceCell::new()),
        })
    }
}

impl PostgresRecordManager {
    /// A builder with the defaults.
    pub fn builder() -> PostgresRecordManagerBuilder {
        PostgresRecordManagerBuilder {
            connection: None,
            table: "catena_index_records".to_owned(),
            max_connections: 4,
            connect_timeout: Duration::from_secs(10),
        }
    }

    /// The table name.
    pub fn table(&self) -> &str {
        &self.table
    }

    async fn client(&self) -> Result<deadpool_postgres::Client> {
        self.ready
            .get_or_try_init(|| async {
                let t = pg::quote_ident(&self.table);
                let idx = pg::quote_ident(&pg::index_name(&self.table, "group"));
                pg::ensure_schema(
                    &self.pool,
                    &self.table,
                    &[
                        format!(
                            "CREATE TABLE IF NOT EXISTS {t} (\
                               namespace text NOT NULL, \
                               key text NOT NULL, \
                               group_id text, \
                               updated_at timestamptz NOT NULL DEFAULT now(), \
                               PRIMARY KEY (namespace, key))"
                        ),
                        format!("CREATE INDEX IF NOT EXISTS {idx} ON {t} (namespace, group_id)"),
                    ],
                )
                .await
            })
            .await?;
        self.pool.get().await.map_err(pg::map_pool_error)
    }
}

#[async_trait]
impl RecordManager for PostgresRecordManager {
    async fn exists(&self, namespace: &str, keys: &[String]) -> Result<Vec<bool>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let client = self.client().await?;
        let sql = format!(
            "SELECT key FROM {} WHERE namespace = $1 AND key = ANY($2)",
            pg::quote_ident(&self.table)
        );
        let rows = client
            .query(&sql, &[&namespace, &keys])
            .await
            .map_err(pg::map_pg_error)?;
        let found: std::collections::HashSet<String> = rows
            .iter()
            .map(|r| r.try_get::<_, String>(0))
            .collect::<std::result::Result<_, _>>()
            .map_err(pg::map_pg_error)?;
        Ok(keys.iter().map(|k| found.contains(k)).collect())
    }

    async fn update(&self, namespace: &str, records: &[Record]) -> Result<()> {
        if records.is_empty() {
            return Ok(());
        }
        let keys: Vec<&str> = records.iter().map(|r| r.key.as_str()).collect();
        let groups: Vec<Option<&str>> = records.iter().map(|r| r.group.as_deref()).collect();
        let client = self.client().await?;
        // DISTINCT ON: one row per key, so a repeated key cannot hit the same row twice.
        let sql = format!(
            "INSERT INTO {} (namespace, key, group_id, updated_at) \
             SELECT DISTINCT ON (k) $1, k, g, now() FROM unnest($2::text[], $3::text[]) AS u(k, g) \
             ON CONFLICT (namespace, key) DO UPDATE \
             SET group_id = EXCLUDED.group_id, updated_at = EXCLUDED.updated_at",
            pg::quote_ident(&self.table)
        );
        client
            .execute(&sql, &[&namespace, &keys, &groups])
            .await
            .map_err(pg::map_pg_error)?;
        Ok(())
    }

    async fn list_keys(&self, namespace: &str, groups: Option<&[String]>) -> Result<Vec<String>> {
        let client = self.client().await?;
        let t = pg::quote_ident(&self.table);
        let rows = match groups {
            None => {
                let sql = format!("SELECT key FROM {t} WHERE namespace = $1 ORDER BY key");
                client.query(&sql, &[&namespace]).await
            }
            Some(groups) => {
                let sql = format!(
                    "SELECT key FROM {t} WHERE namespace = $1 AND group_id = ANY($2) ORDER BY key"
                );
                client.query(&sql, &[&namespace, &groups]).await
            }
        }
        .map_err(pg::map_pg_error)?;
        rows.iter()
            .map(|r| r.try_get::<_, String>(0).map_err(pg::map_pg_error))
            .collect()
    }

    async fn delete_keys(&self, namespace: &str, keys: &[String]) -> Result<usize> {
        if keys.is_empty() {
            return Ok(0);
        }
        let client = self.client().await?;
        let sql = format!(
            "DELETE FROM {} WHERE namespace = $1 AND key = ANY($2)",
            pg::quote_ident(&self.table)
        );
        let n = client
            .execute(&sql, &[&namespace, &keys])
            .await
            .map_err(pg::map_pg_error)?;
        Ok(usize::try_from(n).unwrap_or(usize::MAX))
    }
}
