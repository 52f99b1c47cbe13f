//! [`PostgresSqlDatabase`]: a read-only [`SqlDatabase`] on PostgreSQL. The model's SQL
//! runs in a read-only transaction with a statement timeout, a row limit and a byte budget,
//! on a connection that is reset before it goes back to the pool.

mod decode;
mod fetch;
mod session;
mod statement;

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use catena_core::{Error, Result, SqlDatabase, SqlRows};
use deadpool_postgres::{Object, Pool};
use tokio_postgres::error::SqlState;
use tokio_postgres::Transaction;

use super::connect::ConnectConfig;
use super::error::{pg_error, pool_error};
use fetch::{Limits, Wrapped};
use session::Session;
pub(crate) use statement::single_statement;

/// The login, and the first role it is or can become (directly or through other roles:
/// `pg_has_role(…, 'MEMBER')`, whatever `INHERIT` or `SET` say) that a read-only
/// transaction does not contain: a superuser, or a predefined role that reads or writes
/// server files, runs server programs or signals other sessions. No row when there is none.
const PRIVILEGED_ROLE_SQL: &str = "SELECT session_user::text, r.rolname::text, r.rolsuper \
    FROM pg_roles r \
    WHERE (r.rolsuper OR r.rolname IN ('pg_signal_backend', 'pg_read_server_files', \
           'pg_write_server_files', 'pg_execute_server_program')) \
      AND (pg_has_role(session_user, r.oid, 'MEMBER') \
           OR pg_has_role(current_user, r.oid, 'MEMBER')) \
    ORDER BY r.rolname = session_user DESC, r.rolsuper DESC, r.rolname \
    LIMIT 1";

/// The installed extensions that reach outside the database (other servers, HTTP), which a
/// read-only transaction does not stop.
const OUTWARD_EXTENSIONS_SQL: &str = "SELECT coalesce(string_agg(extname::text, ', ' \
    ORDER BY extname), '') FROM pg_extension \
    WHERE extname IN ('dblink', 'http', 'pg_net', 'postgres_fdw')";

/// Statements that may run unwrapped when they cannot be a subquery: `SHOW` (a setting's
/// value) and writes, which a read-only transaction refuses before they return a row.
const UNWRAPPED_KEYWORDS: &[&str] = &["SHOW", "INSERT", "UPDATE", "DELETE", "MERGE", "WITH"];

/// The most bytes of a server message passed on in an error.
const MAX_ERROR_MESSAGE_BYTES: usize = 1024;

/// A read-only [`SqlDatabase`] on PostgreSQL (feature `postgres`).
///
/// Each call of [`run_read_only`](SqlDatabase::run_read_only) takes a pooled connection and:
/// 1. rejects text holding more than one statement (semicolons inside strings, quoted
///    identifiers, dollar quotes and comments are understood; one trailing `;` is allowed);
/// 2. opens a `READ ONLY` transaction, runs `SET LOCAL statement_timeout` and takes the
///    transaction's snapshot (so `SET TRANSACTION READ WRITE` is refused); refuses to go on
///    when the role is a superuser or may read server files or run programs (unless
///    [`allow_privileged_role`](PostgresSqlDatabaseBuilder::allow_privileged_role));
/// 3. prepares the statement, then reads it as a subquery that **cuts every value on the
///    server**: a value whose text is longer than
///    [`max_value_bytes`](PostgresSqlDatabaseBuilder::max_value_bytes) arrives as its first
///    characters followed by `…` (a value of any size never crosses the wire whole);
///    statements that cannot be a subquery run as they are only when they are `SHOW` or a
///    write (which the transaction refuses), others (`EXPLAIN`, `CALL`, `FETCH`) are
///    refused;
/// 4. **streams at most `max_rows + 1` rows** from a portal, counting their JSON size, and
///    stops reading once the next row would pass
///    [`max_result_bytes`](PostgresSqlDatabaseBuilder::max_result_bytes); rows left out or
///    values cut mark the result [`truncated`](SqlRows::truncated);
/// 5. rolls back, then **resets the session** before the connection goes back to the pool:
///    session advisory locks, `PREPARE`d statements, held cursors, `LISTEN`s and session
///    settings survive a rollback. The reset is `DISCARD ALL` without `DEALLOCATE ALL`
///    (which would drop the statements the driver and pool cache); a connection the model
///    left a prepared statement on, or whose reset fails, or whose call was dropped midway,
///    is closed instead of returned. With a shared [`pool`](PostgresSqlDatabaseBuilder::pool)
///    this resets its connections' session settings to their defaults.
///
/// Writes (`INSERT`, `UPDATE`, `DROP TABLE`, `nextval`, …) fail because the transaction is
/// read-only, and are reported as [`Error::InvalidInput`]; a statement running past the
/// timeout is [`Error::Timeout`]. Installed extensions that reach other servers (`dblink`,
/// `http`, `pg_net`, `postgres_fdw`) are logged as a warning once per handle. The optional
/// table allow-list restricts the schema shown
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
    max_value_bytes: usize,
    max_result_bytes: usize,
    statement_timeout: Duration,
    allow_privileged_role: bool,
    /// Whether the outward extensions were looked for (once per handle and its clones).
    extensions_checked: Arc<AtomicBool>,
}

impl fmt::Debug for PostgresSqlDatabase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresSqlDatabase")
            .field("schema", &self.schema)
            .field("allowed_tables", &self.allowed_tables)
            .field("max_rows", &self.max_rows)
            .field("max_value_bytes", &self.max_value_bytes)
            .field("max_result_bytes", &self.max_result_bytes)
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
    max_value_bytes: Option<usize>,
    max_result_bytes: Option<usize>,
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
            .field("max_value_bytes", &self.max_value_bytes)
            .field("max_result_bytes", &self.max_result_bytes)
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

    /// Sets the most bytes of one value's text: longer values are cut on the server and end
    /// in `…` (at least 64; with many columns each gets at most its share of
    /// [`max_result_bytes`](Self::max_result_bytes), but never under 64). Default 8 KiB.
    pub fn max_value_bytes(mut self, bytes: usize) -> Self {
        self.max_value_bytes = Some(bytes);
        self
    }

    /// Sets the most bytes of JSON a result holds: reading stops before the row that would
    /// pass it. Default 256 KiB.
    pub fn max_result_bytes(mut self, bytes: usize) -> Self {
        self.max_result_bytes = Some(bytes);
        self
    }

    /// Sets the statement timeout. Default 5 s.
    pub fn statement_timeout(mut self, timeout: Duration) -> Self {
        self.statement_timeout = Some(timeout);
        self
    }

    /// Whether queries may run as a login that is, or is a member (directly or through other
    /// roles) of, a superuser role, `pg_read_server_files`, `pg_write_server_files`,
    /// `pg_execute_server_program` or `pg_signal_backend`. A read-only transaction does not
    /// stop such a role from reading server files (`pg_read_file`), running programs
    /// (`COPY … TO PROGRAM`) or ending other sessions, and a member can become the role
    /// inside the statement (`set_config('role', …)`), so by default every call first checks
    /// and refuses with [`Error::InvalidConfig`] naming the role. Default false; turn it on
    /// only for trusted SQL.
    pub fn allow_privileged_role(mut self, yes: bool) -> Self {
        self.allow_privileged_role = yes;
        self
    }

    /// Builds the database handle (no connection is opened yet).
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] with neither a pool nor a URL, an unparsable URL, a pool
    /// size or row limit of 0, a value cap under 64 bytes, a result budget smaller than the
    /// value cap, or a timeout under 1 ms.
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
        let max_value_bytes = self.max_value_bytes.unwrap_or(8 * 1024);
        if max_value_bytes < fetch::MIN_VALUE_BYTES {
            return Err(Error::invalid_config(format!(
                "max_value_bytes must be at least {}",
                fetch::MIN_VALUE_BYTES
            )));
        }
        let max_result_bytes = self.max_result_bytes.unwrap_or(256 * 1024);
        if max_result_bytes < max_value_bytes {
            return Err(Error::invalid_config(
                "max_result_bytes must be at least max_value_bytes",
            ));
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
            max_value_bytes,
            max_result_bytes,
            statement_timeout,
            allow_privileged_role: self.allow_privileged_role,
            extensions_checked: Arc::new(AtomicBool::new(false)),
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
            max_value_bytes: None,
            max_result_bytes: None,
            statement_timeout: None,
            allow_privileged_role: false,
        }
    }

    /// The row limit.
    pub fn max_rows(&self) -> usize {
        self.max_rows
    }

    /// The cap on one value's text, in bytes.
    pub fn max_value_bytes(&self) -> usize {
        self.max_value_bytes
    }

    /// The budget of a result's JSON, in bytes.
    pub fn max_result_bytes(&self) -> usize {
        self.max_result_bytes
    }

    /// The statement timeout.
    pub fn statement_timeout(&self) -> Duration {
        self.statement_timeout
    }

    fn limits(&self) -> Limits {
        Limits {
            max_rows: self.max_rows,
            max_value_bytes: self.max_value_bytes,
            max_result_bytes: self.max_result_bytes,
        }
    }

    /// Runs `statement` in a read-only transaction on `client` and reads its rows within
    /// the limits.
    async fn run_statement(&self, client: &mut Object, statement: &str) -> Result<SqlRows> {
        let tx = client
            .build_transaction()
            .read_only(true)
            .start()
            .await
            .map_err(|e| self.map_error(e))?;
        let millis = self.statement_timeout.as_millis().max(1);
        // The `SELECT 1` takes the transaction's snapshot, after which PostgreSQL refuses
        // `SET TRANSACTION READ WRITE`: the transaction stays read-only whatever is run.
        // Notices are not sent: their text is not bounded.
        tx.batch_execute(&format!(
            "SET LOCAL statement_timeout = {millis}; SET LOCAL client_min_messages = error; \
             SELECT 1"
        ))
        .await
        .map_err(|e| self.map_error(e))?;
        self.check_session(&tx).await?;
        let prepared = tx.prepare(statement).await.map_err(|e| self.map_error(e))?;
        let limits = self.limits();
        let columns: Vec<String> = prepared
            .columns()
            .iter()
            .map(|c| c.name().to_owned())
            .collect();
        let wrapped = if columns.is_empty() {
            None
        } else {
            let wrapped = Wrapped::new(statement, prepared.columns(), &limits);
            // A failed prepare aborts the transaction: keep a savepoint to return to.
            tx.batch_execute("SAVEPOINT catena_wrap")
                .await
                .map_err(|e| self.map_error(e))?;
            match tx.prepare(&wrapped.sql).await {
                Ok(s) if s.columns().len() == wrapped.width() => Some((wrapped, s)),
                Ok(_) => {
                    return Err(Error::invalid_input(
                        "the SQL query could not be read as a subquery",
                    ))
                }
                Err(e) => {
                    if !runs_unwrapped(statement) {
                        return Err(match e.as_db_error() {
                            Some(db) => Error::invalid_input(format!(
                                "only a query whose rows can be read as a subquery (SELECT, \
                                 VALUES, TABLE, WITH … SELECT) or SHOW can run here ({}): {}",
                                db.code().code(),
                                clip(db.message())
                            )),
                            None => pg_error(e),
                        });
                    }
                    tx.batch_execute("ROLLBACK TO SAVEPOINT catena_wrap")
                        .await
                        .map_err(|e| self.map_error(e))?;
                    None
                }
            }
        };
        let fetched = match &wrapped {
            Some((w, s)) => fetch::fetch(&tx, s, Some(w), &limits).await,
            None => fetch::fetch(&tx, &prepared, None, &limits).await,
        }
        .map_err(|e| self.map_error(e))?;
        drop(wrapped);
        drop(prepared);
        // Read-only anyway: roll back so nothing the statement did (SET, temp state) lingers.
        tx.rollback().await.map_err(|e| self.map_error(e))?;
        Ok(SqlRows::new(columns, fetched.rows).with_truncated(fetched.truncated))
    }

    /// Refuses a privileged login (unless allowed) and, once per handle, warns about
    /// extensions that reach other servers.
    async fn check_session(&self, tx: &Transaction<'_>) -> Result<()> {
        if !self.extensions_checked.swap(true, Ordering::Relaxed) {
            let found: String = tx
                .query_one(OUTWARD_EXTENSIONS_SQL, &[])
                .await
                .map_err(|e| self.map_error(e))?
                .try_get(0)
                .map_err(|e| self.map_error(e))?;
            if !found.is_empty() {
                tracing::warn!(
                    extensions = %found,
                    "the database has extensions that reach other servers installed; \
                     model-written SQL may use them if the role can (a read-only \
                     transaction does not stop them)"
                );
            }
        }
        if self.allow_privileged_role {
            return Ok(());
        }
        let Some(row) = tx
            .query_opt(PRIVILEGED_ROLE_SQL, &[])
            .await
            .map_err(|e| self.map_error(e))?
        else {
            return Ok(());
        };
        let login: String = row.try_get(0).map_err(|e| self.map_error(e))?;
        let role: String = row.try_get(1).map_err(|e| self.map_error(e))?;
        let superuser: bool = row.try_get(2).map_err(|e| self.map_error(e))?;
        let what = match (role == login, superuser) {
            (true, _) => format!("the login `{login}` is a superuser"),
            (false, true) => format!(
                "the login `{login}` is a member of the superuser role `{role}` (it can \
                 become it with SET ROLE)"
            ),
            (false, false) => format!(
                "the login `{login}` is a member of `{role}`, which can reach server files, \
                 programs or other sessions"
            ),
        };
        Err(Error::invalid_config(format!(
            "refusing to run model-written SQL: {what}; a read-only transaction does not \
             contain that. Connect as a role with SELECT only, or call \
             `allow_privileged_role(true)`"
        )))
    }

    async fn client(&self) -> Result<Object> {
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
                clip(db.message())
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
        let mut session = Session::checkout(&self.pool).await?;
        let result = match session.client_mut() {
            Some(client) => self.run_statement(client, statement).await,
            None => Err(Error::invalid_config(
                "the SQL connection was already released",
            )),
        };
        // Success or not: what survives a rollback must not reach the next caller.
        session.reset().await;
        result
    }
}

/// Whether `statement` may run as it is when it cannot be a subquery: its first word is one
/// of [`UNWRAPPED_KEYWORDS`].
fn runs_unwrapped(statement: &str) -> bool {
    let first = statement
        .trim_start_matches(|c: char| c == '(' || c.is_whitespace())
        .split(|c: char| !c.is_ascii_alphabetic())
        .next()
        .unwrap_or("");
    UNWRAPPED_KEYWORDS
        .iter()
        .any(|k| k.eq_ignore_ascii_case(first))
}

/// A server message cut to [`MAX_ERROR_MESSAGE_BYTES`] (its text comes from the statement
/// and can be as long as a value).
fn clip(message: &str) -> String {
    if message.len() <= MAX_ERROR_MESSAGE_BYTES {
        return message.to_owned();
    }
    fetch::cut_text(message.to_owned(), MAX_ERROR_MESSAGE_BYTES)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_show_and_writes_run_unwrapped() {
        for yes in [
            "SHOW search_path",
            "insert into t values (1)",
            "WITH x AS (DELETE FROM t) SELECT 1",
        ] {
            assert!(runs_unwrapped(yes), "{yes}");
        }
        for no in [
            "EXPLAIN VERBOSE SELECT 1",
            "CALL p()",
            "FETCH ALL FROM c",
            "-- x\nSHOW a",
        ] {
            assert!(!runs_unwrapped(no), "{no}");
        }
    }

    #[test]
    fn long_messages_are_clipped() {
        assert_eq!(clip("short"), "short");
        let long = "ü".repeat(2000);
        assert!(clip(&long).len() <= MAX_ERROR_MESSAGE_BYTES + CUT_LEN);
    }

    const CUT_LEN: usize = fetch::CUT_MARKER.len();
}
