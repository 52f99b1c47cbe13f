//! [`PostgresCheckpointer`]: durable-run checkpoints in a PostgreSQL table.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use catena_core::{validate_run_id, Checkpoint, CheckpointError, Checkpointer, Error, Result};
use deadpool_postgres::Pool;
use serde_json::Value;
use tokio::sync::OnceCell;

use super::connect::ConnectConfig;
use super::ddl::{ensure_schema, quote_ident, validate_table_name};
use super::error::{pg_error, pool_error};

/// The default table.
const DEFAULT_TABLE: &str = "catena_checkpoints";

/// Checkpoints of durable runs in a PostgreSQL table (feature `postgres`), shared by every
/// replica on the database: a run saved by one process is resumed by another.
///
/// ```text
/// run_id     text        NOT NULL
/// step       bigint      NOT NULL          -- PRIMARY KEY (run_id, step)
/// state      jsonb       NOT NULL
/// created_at timestamptz NOT NULL DEFAULT now()
/// ```
///
/// A write is one `INSERT … SELECT … WHERE` statement that adds step `n` only when the run's
/// latest step is `n - 1` (or the run is new and `n` is 0); the primary key turns a race
/// between two writers of the same step into one success and one
/// [`CheckpointError::Conflict`]. `jsonb` cannot hold U+0000, so a state containing it is
/// rejected.
///
/// ```no_run
/// use catena_core::Checkpointer;
/// use catena_vectorstores::PostgresCheckpointer;
///
/// # async fn run() -> catena_core::Result<()> {
/// let saver = PostgresCheckpointer::builder()
///     .url("postgres://catena:catena@127.0.0.1:5432/catena_test")
///     .build()?;
/// saver.put("run-1", 0, &serde_json::json!({"messages": []})).await?;
/// assert_eq!(saver.latest("run-1").await?.unwrap().step, 0);
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct PostgresCheckpointer {
    pool: Pool,
    table: String,
    ready: Arc<OnceCell<()>>,
}

impl fmt::Debug for PostgresCheckpointer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresCheckpointer")
            .field("table", &self.table)
            .field("created", &self.ready.initialized())
            .finish_non_exhaustive()
    }
}

/// Configures a [`PostgresCheckpointer`]; start with [`PostgresCheckpointer::builder`].
///
/// `Debug` never shows the connection string's password.
#[must_use]
#[derive(Debug)]
pub struct PostgresCheckpointerBuilder {
    connect: ConnectConfig,
    table: String,
}

impl PostgresCheckpointerBuilder {
    super::connect::connection_setters!(
        max_connections = "8",
        url_default = "the [`DATABASE_URL`](crate::DATABASE_URL_ENV) environment variable"
    );

    /// The table: 1 to 63 characters of `a-z`, `0-9` and `_`, not starting with a digit.
    /// Default `"catena_checkpoints"`.
    pub fn table(mut self, name: impl Into<String>) -> Self {
        self.table = name.into();
        self
    }

    /// Checks the options and opens the pool; connects (and creates the table) on first use.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] for a bad table name, a bad connection string or no
    /// connection at all.
    pub fn build(self) -> Result<PostgresCheckpointer> {
        validate_table_name(&self.table, "table")?;
        let (pool, _) = self.connect.build_pool()?;
        Ok(PostgresCheckpointer {
            pool,
            table: self.table,
            ready: Arc::new(OnceCell::new()),
        })
    }
}

impl PostgresCheckpointer {
    /// A builder with the defaults.
    pub fn builder() -> PostgresCheckpointerBuilder {
        PostgresCheckpointerBuilder {
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
                ensure_schema(
                    &self.pool,
                    &self.table,
                    &[format!(
                        "CREATE TABLE IF NOT EXISTS {t} (\
                           run_id text NOT NULL, \
                           step bigint NOT NULL, \
                           state jsonb NOT NULL, \
                           created_at timestamptz NOT NULL DEFAULT now(), \
                           PRIMARY KEY (run_id, step))"
                    )],
                )
                .await
            })
            .await?;
        self.pool.get().await.map_err(pool_error)
    }

    async fn latest_step(
        &self,
        client: &deadpool_postgres::Client,
        run_id: &str,
    ) -> Result<Option<u64>> {
        let sql = format!(
            "SELECT max(step) FROM {} WHERE run_id = $1",
            quote_ident(&self.table)
        );
        let row = client.query_one(&sql, &[&run_id]).await.map_err(pg_error)?;
        let step: Option<i64> = row.try_get(0).map_err(pg_error)?;
        Ok(step.and_then(|s| u64::try_from(s).ok()))
    }
}

fn row_to_checkpoint(row: &tokio_postgres::Row, run_id: &str) -> Result<Checkpoint> {
    let step: i64 = row.try_get(0).map_err(pg_error)?;
    let text: &str = row.try_get(1).map_err(pg_error)?;
    let state: Value = serde_json::from_str(text)
        .map_err(|e| Error::serialization(format!("checkpoint of run `{run_id}`"), e))?;
    let step = u64::try_from(step)
        .map_err(|_| Error::other(format!("run `{run_id}` has a negative checkpoint step")))?;
    Ok(Checkpoint::new(run_id, step, state))
}

#[async_trait]
impl Checkpointer for PostgresCheckpointer {
    async fn put(&self, run_id: &str, step: u64, state: &Value) -> Result<()> {
        validate_run_id(run_id)?;
        let text = serde_json::to_string(state)
            .map_err(|e| Error::serialization("encoding a checkpoint", e))?;
        if text.contains("\\u0000") {
            return Err(Error::invalid_input(
                "a checkpoint cannot contain U+0000 (PostgreSQL jsonb refuses it)",
            ));
        }
        let step_i = i64::try_from(step)
            .map_err(|_| Error::invalid_input("a checkpoint step must fit in i64"))?;
        let client = self.client().await?;
        let t = quote_ident(&self.table);
        // Inserted only when the run's latest step is the one before (none for step 0); the
        // primary key settles two writers of the same step.
        let sql = format!(
            "INSERT INTO {t} (run_id, step, state) \
             SELECT $1::text, $2::bigint, $3::text::jsonb \
             WHERE (SELECT max(step) FROM {t} WHERE run_id = $1::text) IS NOT DISTINCT FROM \
                   CASE WHEN $2::bigint = 0 THEN NULL ELSE $2::bigint - 1 END \
             ON CONFLICT (run_id, step) DO NOTHING"
        );
        let inserted = client
            .execute(&sql, &[&run_id, &step_i, &text])
            .await
            .map_err(pg_error)?;
        if inserted == 1 {
            return Ok(());
        }
        let latest = self.latest_step(&client, run_id).await?;
        Err(CheckpointError::Conflict {
            run_id: run_id.to_owned(),
            step,
            latest,
        }
        .into())
    }

    async fn latest(&self, run_id: &str) -> Result<Option<Checkpoint>> {
        validate_run_id(run_id)?;
        let client = self.client().await?;
        let sql = format!(
            "SELECT step, state::text FROM {} WHERE run_id = $1 ORDER BY step DESC LIMIT 1",
            quote_ident(&self.table)
        );
        let rows = client.query(&sql, &[&run_id]).await.map_err(pg_error)?;
        rows.first()
            .map(|r| row_to_checkpoint(r, run_id))
            .transpose()
    }

    async fn history(&self, run_id: &str, from: u64) -> Result<Vec<Checkpoint>> {
        validate_run_id(run_id)?;
        let from = i64::try_from(from).unwrap_or(i64::MAX);
        let client = self.client().await?;
        let sql = format!(
            "SELECT step, state::text FROM {} WHERE run_id = $1 AND step >= $2 ORDER BY step",
            quote_ident(&self.table)
        );
        let rows = client
            .query(&sql, &[&run_id, &from])
            .await
            .map_err(pg_error)?;
        rows.iter().map(|r| row_to_checkpoint(r, run_id)).collect()
    }

    async fn delete(&self, run_id: &str) -> Result<()> {
        validate_run_id(run_id)?;
        let client = self.client().await?;
        let sql = format!("DELETE FROM {} WHERE run_id = $1", quote_ident(&self.table));
        client.execute(&sql, &[&run_id]).await.map_err(pg_error)?;
        Ok(())
    }
}
