//! [`PostgresRecordManager`]: the indexing records in a PostgreSQL table.

use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use catena_core::{Record, RecordManager, Result};
use deadpool_postgres::Pool;
use tokio::sync::OnceCell;

use super::connect::ConnectConfig;
use super::ddl::{ensure_schema, index_name, quote_ident, validate_table_name};
use super::error::{pg_error, pool_error};

/// The default table.
const DEFAULT_TABLE: &str = "catena_index_records";

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
/// use catena_core::{Record, RecordManager};
/// use catena_vectorstores::PostgresRecordManager;
///
/// # async fn run() -> catena_core::Result<()> {
/// let records = PostgresRecordManager::builder()
///     .url("postgres://catena:catena@127.0.0.1:5432/catena_test")
///     .table("catena_records")
///     .build()?;
/// records.update("faq", &[Record::new("key-1", Some("faq.md".into()))]).await?;
/// assert_eq!(records.exists("faq", &["key-1".to_owned()]).await?, [true]);
/// # Ok(())
/// # }
/// ```
///
/// `catena_chains::index` takes it as its record manager for incremental indexing.
#[derive(Clone)]
pub struct PostgresRecordManager {
    pool: Pool,
    table: String,
    ready: Arc<OnceCell<()>>,
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
    connect: ConnectConfig,
    table: String,
}

impl PostgresRecordManagerBuilder {
    super::connect::connection_setters!(
        max_connections = "4",
        url_default = "the [`DATABASE_URL`](crate::DATABASE_URL_ENV) environment variable"
    );

    /// The table: 1 to 63 characters of `a-z`, `0-9` and `_`, not starting with a digit.
    /// Default `"catena_index_records"`.
    pub fn table(mut self, name: impl Into<String>) -> Self {
        self.table = name.into();
        self
    }

    /// Checks the options and opens the pool; connects (and creates the table) on first use.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`](catena_core::Error::InvalidConfig) for a bad table name, a
    /// bad connection string or no connection at all.
    pub fn build(self) -> Result<PostgresRecordManager> {
        validate_table_name(&self.table, "table")?;
        let (pool, _) = self.connect.build_pool()?;
        Ok(PostgresRecordManager {
            pool,
            table: self.table,
            ready: Arc::new(OnceCell::new()),
        })
    }
}

impl PostgresRecordManager {
    /// A builder with the defaults.
    pub fn builder() -> PostgresRecordManagerBuilder {
        PostgresRecordManagerBuilder {
            connect: ConnectConfig::new(4),
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
                let idx = quote_ident(&index_name(&self.table, "group"));
                ensure_schema(
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
        self.pool.get().await.map_err(pool_error)
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
            quote_ident(&self.table)
        );
        let rows = client
            .query(&sql, &[&namespace, &keys])
            .await
            .map_err(pg_error)?;
        let found: HashSet<String> = rows
            .iter()
            .map(|r| r.try_get::<_, String>(0))
            .collect::<std::result::Result<_, _>>()
            .map_err(pg_error)?;
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
            quote_ident(&self.table)
        );
        client
            .execute(&sql, &[&namespace, &keys, &groups])
            .await
            .map_err(pg_error)?;
        Ok(())
    }

    async fn list_keys(&self, namespace: &str, groups: Option<&[String]>) -> Result<Vec<String>> {
        let client = self.client().await?;
        let t = quote_ident(&self.table);
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
        .map_err(pg_error)?;
        rows.iter()
            .map(|r| r.try_get::<_, String>(0).map_err(pg_error))
            .collect()
    }

    async fn delete_keys(&self, namespace: &str, keys: &[String]) -> Result<usize> {
        if keys.is_empty() {
            return Ok(0);
        }
        let client = self.client().await?;
        let sql = format!(
            "DELETE FROM {} WHERE namespace = $1 AND key = ANY($2)",
            quote_ident(&self.table)
        );
        let n = client
            .execute(&sql, &[&namespace, &keys])
            .await
            .map_err(pg_error)?;
        Ok(usize::try_from(n).unwrap_or(usize::MAX))
    }
}
