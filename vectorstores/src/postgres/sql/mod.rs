//! [`PostgresSqlDatabase`]: a read-only [`SqlDatabase`] on PostgreSQL. The model's SQL
//! runs in a read-only transaction with a statement timeout and a row limit.

mod decode;
mod statement;

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use catena_core::{Error, Result, SqlDatabase, SqlRows};
use deadpool_postgres::Pool;
use tokio_postgres::error::SqlState;

use super::connect::ConnectConfig;
use super::error::{pg_error, pool_error};
use decode::Cell;
use statement::single_statement;

/// True when the current role can escape a read-only transaction through the server's file
/// and program functions.
const PRIVILEGED_ROLE_SQL: &str = "SELECT coalesce(bool_or(r.rolsuper), false) \
    OR pg_has_role(current_user, 'pg_read_server_files', 'MEMBER') \
    OR pg_has_role(current_user, 'pg_write_server_files', 'MEMBER') \
    OR pg_has_role(current_user, 'pg_execute_server_program', 'MEMBER') \
    FROM pg_roles r WHERE r.rolname = current_user";

/// A read-only [`SqlDatabase`] on PostgreSQL (feature `postgres`).
///
/// Each call of [`run_read_only`](SqlDatabase::run_read_only) takes a pooled connection and:
/// 1. rejects text holding more than one statement (semicolons inside strings, quoted
///    identifiers, dollar quotes and comments are understood; one trailing `;` is allowed);
/// 2. opens a `READ ONLY` transaction, runs `SET LOCAL statement_timeout` and takes the
///    transaction's snapshot (so `SET TRANSACTION READ WRITE` is refused); refuses to go on
///    when the role is a superuser or may read server files or run programs (unless
///    [`allow_privileged_role`](PostgresSqlDatabaseBuilder::allow_privileged_role));
/// 3. prepares the statement as it is (no wrapping) and **fetches at most `max_rows + 1`
///    rows** from a portal, so the server stops producing rows there; when a row beyond
///    `max_rows` exists it is dropped and the result is marked
///    [`truncated`](SqlRows::truncated);
/// 4. rolls back.
///
/// Writes (`INSERT`, `UPDATE`, `DROP TABLE`, `nextval`, …) fail because the transaction is
/// read-only, and are reported as [`Error::InvalidInput`]; a statement running past the
/// timeout is [`Error::Timeout`]. The optional table allow-list restricts the schema shown
/// to the model ([`table_info`](SqlDatabase::table_info)); it is not an access control —
/// connect as a role with `SELECT` on those tables only when that matters, and never as a
/// superuser (a read-only transaction does not stop server-side file functions).
///
/// ```no_run
/// use std::time::Duration;
/// use catena_core::SqlDatabase;
/// use catena_vectorstores::PostgresSqlDatabase;
///
/// # async fn run() -> catena_core::Result<()> {
/// let db = PostgresSqlDatabase::builder()
///     .url("postgres://reader:secret@127.0.0.1/shop")
///     .allowed_tables(["orders", "customers"])
///     .max_rows(50)
///     .statement_timeout(Duration::from_secs(3))
///     .build()?;
/// println!("{}", db.table_info().await?);
/// let rows = db.run_read_only("SELECT count(*) FROM orders").await?;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct PostgresSqlDatabase {
    pool: Pool,
    schema: String,
    allowed_tables: Option<Vec<String>>,
    max_rows: usize,
    statement_timeout: Duration,
    allow_privileged_role: bool,
}

impl fmt::Debug for PostgresSqlDatabase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresSqlDatabase")
            .field("schema", &self.schema)
            .field("allowed_tables", &self.allowed_tables)
            .field("max_rows", &self.max_rows)
            .field("statement_timeout", &self.statement_timeout)
            .field("allow_privileged_role", &self.allow_privileged_role)
            .finish_non_exhaustive()
    }
}

/// Builds a [`PostgresSqlDatabase`]; start with [`PostgresSqlDatabase::builder`].
///
/// `Debug` never shows the connection string's password.
#[must_use]
pub struct PostgresSqlDatabaseBuilder {
    connect: ConnectConfig,
    schema: Option<String>,
    allowed_tables: Option<Vec<String>>,
    max_rows: Option<usize>,
    statement_timeout: Option<Duration>,
    allow_privileged_role: bool,
}

impl fmt::Debug for PostgresSqlDatabaseBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresSqlDatabaseBuilder")
            .field("connect", &self.connect)
            .field("schema", &self.schema)
            .field("allowed_tables", &self.allowed_tables)
            .field("max_rows", &self.max_rows)
            .field("statement_timeout", &self.statement_timeout)
            .field("allow_privileged_role", &self.allow_privileged_role)
            .finish()
    }
}

impl PostgresSqlDatabaseBuilder {
    super::connect::connection_setters!(
        max_connections = "4",
        url_default = "none: either this or a [`pool`](Self::pool) is required (the \
                       `DATABASE_URL` environment variable is never read, so model-written \
                       SQL runs only where it is pointed explicitly)"
    );

    /// Sets the schema whose tables are described. Default `public`.
    pub fn schema(mut self, schema: impl Into<String>) -> Self {
        self.schema = Some(schema.into());
        self
    }

    /// Restricts the tables described to the model. Default: every table and view of the
    /// schema.
    pub fn allowed_tables<S: Into<String>>(mut self, tables: impl IntoIterator<Item = S>) -> Self {
        self.allowed_tables = Some(tables.into_iter().map(Into::into).collect());
        self
    }

    /// Sets the most rows a query returns. Default 100.
    pub fn max_rows(mut self, max_rows: usize) -> Self {
        self.max_rows = Some(max_rows);
        self
    }

    /// Sets the statement timeout. Default 5 s.
    pub fn statement_timeout(mut self, timeout: Duration) -> Self {
        self.statement_timeout = Some(timeout);
        self
    }

    /// Whether queries may run as a superuser or as a member of `pg_read_server_files`,
    /// `pg_write_server_files` or `pg_execute_server_program`. A read-only transaction does
    /// not stop such a role from reading server files (`pg_read_file`) or running programs
    /// (`COPY … TO PROGRAM`), so by default every call first checks the role and refuses
    /// with [`Error::InvalidConfig`]. Default false; turn it on only for trusted SQL.
    pub fn allow_privileged_role(mut self, yes: bool) -> Self {
        self.allow_privileged_role = yes;
        self
    }

    /// Builds the database handle (no connection is opened yet).
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] with neither a pool nor a URL, an unparsable URL, a pool
    /// size or row limit of 0, or a timeout under 1 ms.
    pub fn build(self) -> Result<PostgresSqlDatabase> {
        if self.connect.connection.is_none() {
            return Err(Error::invalid_config(
                "PostgresSqlDatabase needs a pool or a connection URL",
            ));
        }
        let (pool, _) = self.connect.build_pool()?;
        let max_rows = self.max_rows.unwrap_or(100);
        if max_rows == 0 {
            return Err(Error::invalid_config("max_rows must be at least 1"));
        }
        let statement_timeout = self.statement_timeout.unwrap_or(Duration::from_secs(5));
        if statement_timeout < Duration::from_millis(1) {
            return Err(Error::invalid_config(
                "statement_timeout must be at least 1 ms",
            ));
        }
        Ok(PostgresSqlDatabase {
            pool,
            schema: self.schema.unwrap_or_else(|| "public".to_owned()),
            allowed_tables: self.allowed_tables,
            max_rows,
            statement_timeout,
            allow_privileged_role: self.allow_privileged_role,
        })
    }
}

impl PostgresSqlDatabase {
    /// Starts a builder.
    pub fn builder() -> PostgresSqlDatabaseBuilder {
        PostgresSqlDatabaseBuilder {
            connect: ConnectConfig::new(4),
            schema: None,
            allowed_tables: None,
            max_rows: None,
            statement_timeout: None,
            allow_privileged_role: false,
        }
    }

    /// The row limit.
    pub fn max_rows(&self) -> usize {
        self.max_rows
    }

    /// The statement timeout.
    pub fn statement_timeout(&self) -> Duration {
        self.statement_timeout
    }

    async fn client(&self) -> Result<deadpool_postgres::Object> {
        self.pool.get().await.map_err(pool_error)
    }

    /// A failed statement is the model's to fix ([`Error::InvalidInput`] with the server's
    /// message) or a [`Error::Timeout`]; anything else is the connection's.
    fn map_error(&self, e: tokio_postgres::Error) -> Error {
        match e.as_db_error() {
            Some(db) if *db.code() == SqlState::QUERY_CANCELED => {
                Error::Timeout(self.statement_timeout)
            }
            Some(db) => Error::invalid_input(format!(
                "the SQL query failed ({}): {}",
                db.code().code(),
                db.message()
            )),
            None => pg_error(e),
        }
    }
}

#[async_trait]
impl SqlDatabase for PostgresSqlDatabase {
    fn dialect(&self) -> &str {
        "PostgreSQL"
    }

    async fn table_info(&self) -> Result<String> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT c.table_name::text, c.column_name::text, c.data_type::text, c.is_nullable::text \
                 FROM information_schema.columns c \
                 JOIN information_schema.tables t \
                   ON t.table_schema = c.table_schema AND t.table_name = c.table_name \
                 WHERE c.table_schema = $1 \
                   AND ($2::text[] IS NULL OR c.table_name = ANY($2::text[])) \
                 ORDER BY c.table_name, c.ordinal_position",
                &[&self.schema, &self.allowed_tables],
            )
            .await
            .map_err(|e| self.map_error(e))?;
        let mut out = String::new();
        let mut current: Option<String> = None;
        for row in rows {
            let table: String = row.get(0);
            let column: String = row.get(1);
            let data_type: String = row.get(2);
            let nullable: String = row.get(3);
            if current.as_deref() != Some(table.as_str()) {
                if current.is_some() {
                    out.push_str("\n);\n\n");
                }
                out.push_str(&format!("CREATE TABLE {table} ("));
                current = Some(table);
            } else {
                out.push(',');
            }
            out.push_str(&format!("\n  {column} {data_type}"));
            if nullable == "NO" {
                out.push_str(" NOT NULL");
            }
        }
        if current.is_some() {
            out.push_str("\n);");
        }
        Ok(out)
    }

    async fn run_read_only(&self, sql: &str) -> Result<SqlRows> {
        let statement = single_statement(sql)?;
        let mut client = self.client().await?;
        let tx = client
            .build_transaction()
            .read_only(true)
            .start()
            .await
            .map_err(|e| self.map_error(e))?;
        let millis = self.statement_timeout.as_millis().max(1);
        // The `SELECT 1` takes the transaction's snapshot, after which PostgreSQL refuses
        // `SET TRANSACTION READ WRITE`: the transaction stays read-only whatever is run.
        tx.batch_execute(&format!("SET LOCAL statement_timeout = {millis}; SELECT 1"))
            .await
            .map_err(|e| self.map_error(e))?;
        if !self.allow_privileged_role {
            let privileged: bool = tx
                .query_one(PRIVILEGED_ROLE_SQL, &[])
                .await
                .map_err(|e| self.map_error(e))?
                .get(0);
            if privileged {
                return Err(Error::invalid_config(
                    "refusing to run model-written SQL as a superuser or a role that can read \
                     server files or run programs; connect as a role with SELECT only, or call \
                     `allow_privileged_role(true)`",
                ));
            }
        }
        let prepared = tx.prepare(statement).await.map_err(|e| self.map_error(e))?;
        let portal = tx
            .bind(&prepared, &[])
            .await
            .map_err(|e| self.map_error(e))?;
        let fetch = i32::try_from(self.max_rows.saturating_add(1)).unwrap_or(i32::MAX);
        let mut rows = tx
            .query_portal(&portal, fetch)
            .await
            .map_err(|e| self.map_error(e))?;
        // Read-only anyway: roll back so nothing the statement did (SET, temp state) lingers.
        tx.rollback().await.map_err(|e| self.map_error(e))?;

        let truncated = rows.len() > self.max_rows;
        rows.truncate(self.max_rows);
        let columns = prepared
            .columns()
            .iter()
            .map(|c| c.name().to_owned())
            .collect::<Vec<_>>();
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            let mut cells = Vec::with_capacity(columns.len());
            for i in 0..columns.len() {
                let cell: Cell = row.try_get(i).map_err(|e| self.map_error(e))?;
                cells.push(cell.0);
            }
            out.push(cells);
        }
        Ok(SqlRows::new(columns, out).with_truncated(truncated))
    }
}
