//! [`SqlDatabase`] on PostgreSQL: the model's SQL runs in a read-only transaction with a
//! statement timeout and a row limit.

use std::error::Error as StdError;
use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use catena_core::{Error, ProviderError, ProviderErrorKind, Result};
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use serde_json::{Number, Value};
use tokio_postgres::error::SqlState;
use tokio_postgres::types::{FromSql, Kind, Type};
use tokio_postgres::NoTls;

use super::{SqlDatabase, SqlRows};

/// True when the current role can escape a read-only transaction through the server's file
/// and program functions.
const PRIVILEGED_ROLE_SQL: &str = "SELECT coalesce(bool_or(r.rolsuper), false) \
    OR pg_has_role(current_user, 'pg_read_server_files', 'MEMBER') \
    OR pg_has_role(current_user, 'pg_write_server_files', 'MEMBER') \
    OR pg_has_role(current_user, 'pg_execute_server_program', 'MEMBER') \
    FROM pg_roles r WHERE r.rolname = current_user";

/// A read-only [`SqlDatabase`] on PostgreSQL.
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
/// use catena_chains::sql::{PostgresSqlDatabase, SqlDatabase};
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

/// Builds a [`PostgresSqlDatabase`].
#[derive(Default)]
#[must_use]
pub struct PostgresSqlDatabaseBuilder {
    pool: Option<Pool>,
    url: Option<String>,
    schema: Option<String>,
    allowed_tables: Option<Vec<String>>,
    max_rows: Option<usize>,
    statement_timeout: Option<Duration>,
    allow_privileged_role: bool,
}

impl fmt::Debug for PostgresSqlDatabaseBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The URL may hold a password: not shown.
        f.debug_struct("PostgresSqlDatabaseBuilder")
            .field("has_pool", &self.pool.is_some())
            .field("has_url", &self.url.is_some())
            .field("schema", &self.schema)
            .field("allowed_tables", &self.allowed_tables)
            .field("max_rows", &self.max_rows)
            .field("statement_timeout", &self.statement_timeout)
            .finish()
    }
}

impl PostgresSqlDatabaseBuilder {
    /// Uses an existing pool (shared with the rest of the program). Either this or
    /// [`url`](Self::url) is required.
    pub fn pool(mut self, pool: Pool) -> Self {
        self.pool = Some(pool);
        self
    }

    /// Connects with a `postgres://` URL or key-value connection string, without TLS, in a
    /// pool of 4 connections. Either this or [`pool`](Self::pool) is required.
    pub fn url(mut self, url: impl Into<String>) -> Self {
        self.url = Some(url.into());
        self
    }

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
    /// [`Error::InvalidConfig`] with neither a pool nor a URL, an unparsable URL, a row
    /// limit of 0, or a timeout under 1 ms.
    pub fn build(self) -> Result<PostgresSqlDatabase> {
        let pool = match (self.pool, self.url) {
            (Some(pool), _) => pool,
            (None, Some(url)) => {
                let config: tokio_postgres::Config = url.parse().map_err(|e| {
                    Error::invalid_config(format!("invalid PostgreSQL connection string: {e}"))
                })?;
                let manager = Manager::from_config(
                    config,
                    NoTls,
                    ManagerConfig {
                        recycling_method: RecyclingMethod::Fast,
                    },
                );
                Pool::builder(manager)
                    .max_size(4)
                    .build()
                    .map_err(|e| Error::invalid_config(format!("PostgreSQL pool: {e}")))?
            }
            (None, None) => {
                return Err(Error::invalid_config(
                    "PostgresSqlDatabase needs a pool or a connection URL",
                ))
            }
        };
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
        PostgresSqlDatabaseBuilder::default()
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
        self.pool.get().await.map_err(|e| {
            ProviderError::new(
                ProviderErrorKind::Transport,
                format!("PostgreSQL pool: {e}"),
            )
            .with_provider("postgres")
            .with_source(e)
            .into()
        })
    }

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
            None => ProviderError::new(ProviderErrorKind::Transport, e.to_string())
                .with_provider("postgres")
                .with_source(e)
                .into(),
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

/// The one statement in `sql`, without its trailing `;`.
///
/// # Errors
/// [`Error::InvalidInput`] for empty text or more than one statement.
fn single_statement(sql: &str) -> Result<&str> {
    #[derive(PartialEq)]
    enum State {
        Normal,
        Single { escapes: bool },
        Double,
        Line,
        Block(usize),
        Dollar(String),
    }
    let bytes = sql.as_bytes();
    let mut state = State::Normal;
    let mut i = 0;
    let mut end = None;
    while i < bytes.len() {
        let b = bytes[i];
        let next = bytes.get(i + 1).copied();
        match &mut state {
            State::Normal => match b {
                b'\'' => {
                    let escapes = i > 0 && matches!(bytes[i - 1], b'e' | b'E');
                    state = State::Single { escapes };
                }
                b'"' => state = State::Double,
                b'-' if next == Some(b'-') => {
                    state = State::Line;
                    i += 1;
                }
                b'/' if next == Some(b'*') => {
                    state = State::Block(1);
                    i += 1;
                }
                b'$' if !(i > 0
                    && (bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_')) =>
                {
                    // `$tag$` or `$$` opens a dollar quote; `$1` is a parameter.
                    let rest = &sql[i + 1..];
                    if let Some(close) = rest.find('$') {
                        let tag = &rest[..close];
                        let valid = tag.chars().enumerate().all(|(k, c)| {
                            c == '_' || c.is_alphabetic() || (k > 0 && c.is_ascii_digit())
                        });
                        if valid {
                            state = State::Dollar(tag.to_owned());
                            i += close + 1;
                        }
                    }
                }
                b';' => {
                    end = Some(i);
                    break;
                }
                _ => {}
            },
            State::Single { escapes } => {
                if *escapes && b == b'\\' {
                    i += 1;
                } else if b == b'\'' {
                    if next == Some(b'\'') {
                        i += 1;
                    } else {
                        state = State::Normal;
                    }
                }
            }
            State::Double => {
                if b == b'"' {
                    if next == Some(b'"') {
                        i += 1;
                    } else {
                        state = State::Normal;
                    }
                }
            }
            State::Line => {
                if b == b'\n' {
                    state = State::Normal;
                }
            }
            State::Block(depth) => {
                if b == b'*' && next == Some(b'/') {
                    *depth -= 1;
                    i += 1;
                    if *depth == 0 {
                        state = State::Normal;
                    }
                } else if b == b'/' && next == Some(b'*') {
                    *depth += 1;
                    i += 1;
                }
            }
            State::Dollar(tag) => {
                let closing = format!("${tag}$");
                if sql[i..].starts_with(&closing) {
                    i += closing.len() - 1;
                    state = State::Normal;
                }
            }
        }
        i += 1;
    }
    let statement = match end {
        Some(end) => {
            if !sql[end..].chars().all(|c| c == ';' || c.is_whitespace()) {
                return Err(Error::invalid_input(
                    "the SQL holds more than one statement; only one is allowed",
                ));
            }
            &sql[..end]
        }
        None => sql,
    };
    let statement = statement.trim();
    if statement.is_empty() {
        return Err(Error::invalid_input("the SQL is empty"));
    }
    Ok(statement)
}

/// One value of any column type, as JSON.
struct Cell(Value);

type BoxedError = Box<dyn StdError + Sync + Send>;

impl<'a> FromSql<'a> for Cell {
    fn from_sql(ty: &Type, raw: &'a [u8]) -> std::result::Result<Self, BoxedError> {
        Ok(Cell(decode(ty, raw)?))
    }

    fn from_sql_null(_ty: &Type) -> std::result::Result<Self, BoxedError> {
        Ok(Cell(Value::Null))
    }

    fn accepts(_ty: &Type) -> bool {
        true
    }
}

fn decode(ty: &Type, raw: &[u8]) -> std::result::Result<Value, BoxedError> {
    Ok(match *ty {
        Type::BOOL => Value::Bool(bool::from_sql(ty, raw)?),
        Type::INT2 => Value::from(i16::from_sql(ty, raw)?),
        Type::INT4 => Value::from(i32::from_sql(ty, raw)?),
        Type::INT8 => Value::from(i64::from_sql(ty, raw)?),
        Type::OID => Value::from(u32::from_sql(ty, raw)?),
        Type::FLOAT4 => float(f64::from(f32::from_sql(ty, raw)?)),
        Type::FLOAT8 => float(f64::from_sql(ty, raw)?),
        Type::NUMERIC => numeric(raw)?,
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::UNKNOWN | Type::CHAR => {
            Value::String(String::from_utf8_lossy(raw).into_owned())
        }
        Type::JSON => serde_json::from_slice(raw)?,
        Type::JSONB => serde_json::from_slice(raw.get(1..).unwrap_or_default())?,
        Type::UUID => Value::String(uuid(raw)),
        Type::DATE => {
            let days = i32::from_sql(ty, raw)?;
            let (y, m, d) = civil_from_days(i64::from(days) + 10_957);
            Value::String(format!("{y:04}-{m:02}-{d:02}"))
        }
        Type::TIMESTAMP | Type::TIMESTAMPTZ => {
            let micros = i64::from_sql(ty, raw)?;
            let secs = micros.div_euclid(1_000_000);
            let frac = micros.rem_euclid(1_000_000);
            let (y, m, d) = civil_from_days(secs.div_euclid(86_400) + 10_957);
            let s = secs.rem_euclid(86_400);
            let zone = if *ty == Type::TIMESTAMPTZ { "Z" } else { "" };
            Value::String(format!(
                "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{frac:06}{zone}",
                s / 3600,
                s % 3600 / 60,
                s % 60
            ))
        }
        Type::BYTEA => Value::String(format!(
            "\\x{}",
            raw.iter().map(|b| format!("{b:02x}")).collect::<String>()
        )),
        _ if matches!(ty.kind(), Kind::Enum(_)) => {
            Value::String(String::from_utf8_lossy(raw).into_owned())
        }
        _ => Value::String(format!("<{} value>", ty.name())),
    })
}

fn float(f: f64) -> Value {
    Number::from_f64(f).map_or_else(|| Value::String(f.to_string()), Value::Number)
}

fn uuid(raw: &[u8]) -> String {
    let hex: String = raw.iter().map(|b| format!("{b:02x}")).collect();
    if hex.len() == 32 {
        format!(
            "{}-{}-{}-{}-{}",
            &hex[..8],
            &hex[8..12],
            &hex[12..16],
            &hex[16..20],
            &hex[20..]
        )
    } else {
        hex
    }
}

/// Decodes PostgreSQL's binary `numeric` (base-10000 digits) into a JSON number when it
/// fits, else its decimal text.
fn numeric(raw: &[u8]) -> std::result::Result<Value, BoxedError> {
    let word = |k: usize| -> std::result::Result<i32, BoxedError> {
        let b = raw.get(2 * k..2 * k + 2).ok_or("truncated numeric")?;
        Ok(i32::from(i16::from_be_bytes([b[0], b[1]])))
    };
    let ndigits = usize::try_from(word(0)?).map_err(|_| "bad numeric")?;
    let weight = word(1)?;
    let sign = word(2)? as u16;
    let dscale = usize::try_from(word(3)?).map_err(|_| "bad numeric")?;
    match sign {
        0xC000 => return Ok(Value::String("NaN".into())),
        0xD000 => return Ok(Value::String("Infinity".into())),
        0xF000 => return Ok(Value::String("-Infinity".into())),
        _ => {}
    }
    let digit = |p: i32| -> std::result::Result<i32, BoxedError> {
        match usize::try_from(p) {
            Ok(p) if p < ndigits => word(4 + p),
            _ => Ok(0),
        }
    };
    let mut text = String::new();
    if sign == 0x4000 {
        text.push('-');
    }
    if weight < 0 {
        text.push('0');
    } else {
        for p in 0..=weight {
            let d = digit(p)?;
            if p == 0 {
                text.push_str(&d.to_string());
            } else {
                text.push_str(&format!("{d:04}"));
            }
        }
    }
    if dscale > 0 {
        let mut frac = String::new();
        let mut p = weight + 1;
        while frac.len() < dscale {
            frac.push_str(&format!("{:04}", digit(p)?));
            p += 1;
        }
        frac.truncate(dscale);
        text.push('.');
        text.push_str(&frac);
    }
    if let Ok(i) = text.parse::<i64>() {
        return Ok(Value::from(i));
    }
    // Up to 15 significant digits survive an f64 exactly; longer values stay text.
    let significant = text
        .chars()
        .filter(char::is_ascii_digit)
        .skip_while(|c| *c == '0')
        .count();
    match text.parse::<f64>() {
        Ok(f) if significant <= 15 => Ok(float(f)),
        _ => Ok(Value::String(text)),
    }
}

/// (year, month, day) of a day count since 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_are_split_outside_quotes_and_comments() {
        assert_eq!(single_statement("SELECT 1;").unwrap(), "SELECT 1");
        assert_eq!(single_statement(" SELECT ';' ; ").unwrap(), "SELECT ';'");
        assert_eq!(
            single_statement("SELECT $$a;b$$").unwrap(),
            "SELECT $$a;b$$"
        );
        assert_eq!(
            single_statement("SELECT $t$;$t$").unwrap(),
            "SELECT $t$;$t$"
        );
        assert_eq!(
            single_statement("SELECT \"a;b\" -- x;\n").unwrap(),
            "SELECT \"a;b\" -- x;"
        );
        assert_eq!(
            single_statement("SELECT /* ; */ 1").unwrap(),
            "SELECT /* ; */ 1"
        );
        assert_eq!(
            single_statement("SELECT E'\\';' ").unwrap(),
            "SELECT E'\\';'"
        );
        assert!(single_statement("SELECT 1; DROP TABLE t").is_err());
        assert!(single_statement("SELECT 'it''s'; DELETE FROM t").is_err());
        assert!(single_statement(" ; ").is_err());
    }

    #[test]
    fn dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(10_957), (2000, 1, 1));
        assert_eq!(civil_from_days(19_782), (2024, 2, 29));
    }
}
