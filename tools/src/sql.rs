//! SQL tools: let a model query a database read-only ([`SqlQueryTool`], `sql_query`) and see
//! its schema ([`SqlSchemaTool`], `sql_schema`).
//!
//! Both wrap any [`SqlDatabase`] (`catena_vectorstores::PostgresSqlDatabase` with its
//! `postgres` feature, or your own). The **database** is what keeps the model's SQL
//! harmless: a [`SqlDatabase`] must run one statement only, in a read-only transaction, with
//! a statement timeout, a row limit and a size limit applied while the rows are read
//! (`PostgresSqlDatabase` cuts long values on the server, so they end in `…`, and stops
//! reading at a byte budget). These tools add what belongs to the model's side:
//! input checks (an empty query or one over [`DEFAULT_MAX_QUERY_CHARS`] is
//! [`ToolError::InvalidArguments`]) and a **byte cap** on the JSON the model gets back
//! (default [`DEFAULT_MAX_OUTPUT_BYTES`], 64 KiB): whole rows are dropped from the end until
//! the serialised output fits, and `truncated` is set. A query the database refuses or
//! cancels (a write, a second statement, a timeout, a permission error) comes back as
//! [`ToolError::Execution`] holding the database's message, so the model can correct it.
//!
//! `sql_query` takes `{ "query": "SELECT …" }` and returns
//!
//! ```json
//! { "columns": ["name", "population"], "rows": [["Oslo", 700000]], "truncated": false }
//! ```
//!
//! `sql_schema` takes `{}` (every table the database describes) or `{ "table": "cities" }`
//! and returns the schema as text (typically `CREATE TABLE` statements).
//!
//! # Deploying against PostgreSQL: connect as a non-superuser
//! A read-only transaction stops writes, not everything. A **superuser** (or a member of
//! `pg_read_server_files` / `pg_execute_server_program`) can still read server files with
//! `pg_read_file('/etc/passwd')`, a member of `pg_signal_backend` can end other sessions,
//! and a read-only transaction does not stop functions that are not marked as writing.
//! Membership counts even through other roles: a login granted a superuser role can become
//! it inside the statement (`set_config('role', …, true)`), so `PostgresSqlDatabase`
//! refuses such logins by default. Connect these tools as a dedicated login role that is
//! not a superuser, is granted no other roles, and holds only `SELECT` on the tables the
//! model may see:
//!
//! ```sql
//! CREATE ROLE catena_reader LOGIN PASSWORD '…' NOSUPERUSER NOCREATEDB NOCREATEROLE;
//! GRANT USAGE ON SCHEMA public TO catena_reader;
//! GRANT SELECT ON orders, customers TO catena_reader;
//! ```
//!
//! # Example
//! ```
//! use std::sync::Arc;
//! use async_trait::async_trait;
//! use catena_core::{SqlDatabase, SqlRows, Tool, ToolError, TypedTool};
//! use catena_tools::{SqlQueryTool, SqlSchemaTool};
//!
//! /// A toy database over a Vec; it answers every query with all its rows.
//! #[derive(Debug)]
//! struct Cities(Vec<(&'static str, i64)>);
//!
//! #[async_trait]
//! impl SqlDatabase for Cities {
//!     fn dialect(&self) -> &str { "PostgreSQL" }
//!     async fn table_info(&self) -> catena_core::Result<String> {
//!         Ok("CREATE TABLE cities (\n  name text,\n  population bigint\n);".into())
//!     }
//!     async fn run_read_only(&self, sql: &str) -> catena_core::Result<SqlRows> {
//!         if !sql.trim_start().to_ascii_uppercase().starts_with("SELECT") {
//!             return Err(catena_core::Error::invalid_input("read-only: only SELECT"));
//!         }
//!         let rows = self.0.iter().map(|(n, p)| vec![(*n).into(), (*p).into()]).collect();
//!         Ok(SqlRows::new(vec!["name".into(), "population".into()], rows))
//!     }
//! }
//!
//! # futures::executor::block_on(async {
//! let db: Arc<dyn SqlDatabase> = Arc::new(Cities(vec![("Oslo", 700_000), ("Bergen", 290_000)]));
//! let query = SqlQueryTool::new(db.clone()).into_tool();
//! let schema = SqlSchemaTool::new(db).into_tool();
//! assert_eq!(query.name(), "sql_query");
//!
//! let out = query.call(serde_json::json!({"query": "SELECT * FROM cities"})).await.unwrap();
//! assert_eq!(out.content["rows"][0][0], "Oslo");
//! assert_eq!(out.content["truncated"], false);
//!
//! let err = query.call(serde_json::json!({"query": "DROP TABLE cities"})).await.unwrap_err();
//! assert!(matches!(err, ToolError::Execution(ref m) if m.contains("read-only")));
//! let err = query.call(serde_json::json!({"query": "  "})).await.unwrap_err();
//! assert!(matches!(err, ToolError::InvalidArguments(_)));
//!
//! let out = schema.call(serde_json::json!({"table": "cities"})).await.unwrap();
//! assert!(out.to_text().contains("population bigint"));
//! # });
//! ```

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use catena_core::{SqlDatabase, SqlRows, ToolError, TypedTool};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The default cap on the bytes of serialised JSON `sql_query` returns (64 KiB).
pub(crate) const DEFAULT_MAX_OUTPUT_BYTES: usize = 64 * 1024;

/// The default cap on the characters of a query `sql_query` accepts.
pub(crate) const DEFAULT_MAX_QUERY_CHARS: usize = 16 * 1024;

/// The arguments of [`SqlQueryTool`].
#[derive(Debug, Clone, Deserialize, JsonSchema)]
pub struct SqlQueryArgs {
    /// One read-only SQL statement (a `SELECT`), in the database's dialect.
    pub query: String,
}

/// What [`SqlQueryTool`] returns to the model.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[non_exhaustive]
pub struct SqlQueryOutput {
    /// Column names, in order.
    pub columns: Vec<String>,
    /// The rows, each with one JSON value per column.
    pub rows: Vec<Vec<Value>>,
    /// Whether rows were left out: by the database's row limit or by the byte cap.
    pub truncated: bool,
}

impl SqlQueryOutput {
    /// The rows of `result`, dropping whole rows from the end until the compact JSON
    /// serialisation is at most `max_bytes` long; `truncated` is set when the database
    /// truncated or rows were dropped. When even the columns alone do not fit, no rows are
    /// returned (and `truncated` is set if there were any).
    pub fn capped(result: SqlRows, max_bytes: usize) -> Self {
        let SqlRows {
            columns,
            rows,
            truncated,
            ..
        } = result;
        let mut out = SqlQueryOutput {
            columns,
            rows: Vec::new(),
            truncated: true,
        };
        // Bytes of `{"columns":[..],"rows":[],"truncated":true}`; `true` is one byte
        // shorter than `false`, so reserve one byte for it.
        let mut used = json_len(&out).saturating_add(1);
        let total = rows.len();
        for row in rows {
            let separator = usize::from(!out.rows.is_empty());
            let len = json_len(&row).saturating_add(separator);
            if used.saturating_add(len) > max_bytes {
                break;
            }
            used += len;
            out.rows.push(row);
        }
        out.truncated = truncated || out.rows.len() < total;
        out
    }
}

/// The length of `value` as compact JSON (0 if it cannot be serialised, which does not
/// happen for JSON values and strings).
fn json_len<T: Serialize + ?Sized>(value: &T) -> usize {
    serde_json::to_vec(value).map_or(0, |v| v.len())
}

/// Runs one read-only SQL query chosen by the model; see the [module docs](self).
#[derive(Clone)]
pub struct SqlQueryTool {
    database: Arc<dyn SqlDatabase>,
    description: String,
    max_output_bytes: usize,
    max_query_chars: usize,
}

impl fmt::Debug for SqlQueryTool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqlQueryTool")
            .field("dialect", &self.database.dialect())
            .field("max_output_bytes", &self.max_output_bytes)
            .field("max_query_chars", &self.max_query_chars)
            .finish_non_exhaustive()
    }
}

impl SqlQueryTool {
    /// A `sql_query` tool over `database`, with the default caps.
    pub fn new(database: Arc<dyn SqlDatabase>) -> Self {
        let description = format!(
            "Runs one read-only {} SQL query (a single SELECT statement) and returns the \
             columns and rows as JSON. Writes are refused, long queries are cancelled and \
             large results are cut (`truncated` is then true): select only the columns you \
             need and use LIMIT. Call sql_schema first to see the tables.",
            database.dialect()
        );
        SqlQueryTool {
            database,
            description,
            max_output_bytes: DEFAULT_MAX_OUTPUT_BYTES,
            max_query_chars: DEFAULT_MAX_QUERY_CHARS,
        }
    }

    /// Caps the bytes of serialised JSON returned (default [`DEFAULT_MAX_OUTPUT_BYTES`]).
    #[must_use]
    pub fn with_max_output_bytes(mut self, max_bytes: usize) -> Self {
        self.max_output_bytes = max_bytes;
        self
    }

    /// Caps the characters of a query accepted (default [`DEFAULT_MAX_QUERY_CHARS`]).
    #[must_use]
    pub fn with_max_query_chars(mut self, max_chars: usize) -> Self {
        self.max_query_chars = max_chars;
        self
    }

    /// Checks `query`, runs it read-only and applies the byte cap.
    ///
    /// # Errors
    /// [`ToolError::InvalidArguments`] for an empty query or one over the length cap;
    /// [`ToolError::Execution`] with the database's message when the database refuses,
    /// fails or cancels the query.
    pub async fn query(&self, query: &str) -> Result<SqlQueryOutput, ToolError> {
        if query.trim().is_empty() {
            return Err(ToolError::invalid_arguments("query must not be empty"));
        }
        let chars = query.chars().count();
        if chars > self.max_query_chars {
            return Err(ToolError::invalid_arguments(format!(
                "query is {chars} characters long; the limit is {}",
                self.max_query_chars
            )));
        }
        let rows = self
            .database
            .run_read_only(query)
            .await
            .map_err(|e| ToolError::execution(e.to_string()))?;
        Ok(SqlQueryOutput::capped(rows, self.max_output_bytes))
    }
}

#[async_trait]
impl TypedTool for SqlQueryTool {
    type Args = SqlQueryArgs;
    type Output = SqlQueryOutput;

    fn name(&self) -> &str {
        "sql_query"
    }

    fn description(&self) -> &str {
        &self.description
    }

    async fn call(&self, args: SqlQueryArgs) -> Result<SqlQueryOutput, ToolError> {
        self.query(&args.query).await
    }
}

/// The arguments of [`SqlSchemaTool`].
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
pub struct SqlSchemaArgs {
    /// Only describe this table (case-insensitive); leave out to describe every table.
    #[serde(default)]
    pub table: Option<String>,
}

/// Describes the database's tables and columns to the model; see the [module docs](self).
#[derive(Clone)]
pub struct SqlSchemaTool {
    database: Arc<dyn SqlDatabase>,
    description: String,
}

impl fmt::Debug for SqlSchemaTool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqlSchemaTool")
            .field("dialect", &self.database.dialect())
            .finish_non_exhaustive()
    }
}

impl SqlSchemaTool {
    /// A `sql_schema` tool over `database`.
    pub fn new(database: Arc<dyn SqlDatabase>) -> Self {
        let description = format!(
            "Describes the tables and columns of the {} database that sql_query can read. \
             Pass `table` to describe only that table.",
            database.dialect()
        );
        SqlSchemaTool {
            database,
            description,
        }
    }

    /// The schema text, or only the part describing `table`.
    ///
    /// With a table, the schema text is split into blank-line separated blocks and the
    /// blocks beginning `CREATE TABLE <table>` (or `CREATE VIEW <table>`, case-insensitive,
    /// optionally schema-qualified or quoted) are kept.
    ///
    /// # Errors
    /// [`ToolError::Execution`] when the database fails; [`ToolError::InvalidArguments`]
    /// when no table has that name (the message lists the tables there are).
    pub async fn schema(&self, table: Option<&str>) -> Result<String, ToolError> {
        let info = self
            .database
            .table_info()
            .await
            .map_err(|e| ToolError::execution(e.to_string()))?;
        let Some(table) = table.map(str::trim).filter(|t| !t.is_empty()) else {
            return Ok(info);
        };
        let blocks: Vec<&str> = info
            .split("\n\n")
            .map(str::trim)
            .filter(|b| !b.is_empty())
            .collect();
        let matching: Vec<&str> = blocks
            .iter()
            .copied()
            .filter(|b| block_table(b).is_some_and(|name| name.eq_ignore_ascii_case(table)))
            .collect();
        if matching.is_empty() {
            let known: Vec<&str> = blocks.iter().filter_map(|b| block_table(b)).collect();
            return Err(ToolError::invalid_arguments(format!(
                "no table named `{table}`; the tables are: {}",
                known.join(", ")
            )));
        }
        Ok(matching.join("\n\n"))
    }
}

/// The table a `CREATE TABLE name (` / `CREATE VIEW name` block describes, without a schema
/// prefix or quotes.
fn block_table(block: &str) -> Option<&str> {
    let mut words = block.split_whitespace();
    if !words.next()?.eq_ignore_ascii_case("create") {
        return None;
    }
    let kind = words.next()?;
    if !kind.eq_ignore_ascii_case("table") && !kind.eq_ignore_ascii_case("view") {
        return None;
    }
    let name = words.next()?;
    let name = name.split('(').next().unwrap_or(name);
    let name = name.rsplit('.').next().unwrap_or(name);
    let name = name.trim_matches(|c| c == '"' || c == '`' || c == '[' || c == ']');
    (!name.is_empty()).then_some(name)
}

#[async_trait]
impl TypedTool for SqlSchemaTool {
    type Args = SqlSchemaArgs;
    type Output = String;

    fn name(&self) -> &str {
        "sql_schema"
    }

    fn description(&self) -> &str {
        &self.description
    }

    async fn call(&self, args: SqlSchemaArgs) -> Result<String, ToolError> {
        self.schema(args.table.as_deref()).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rows(n: usize, width: usize) -> SqlRows {
        SqlRows::new(
            vec!["id".into(), "text".into()],
            (0..n)
                .map(|i| vec![json!(i), json!("x".repeat(width))])
                .collect(),
        )
    }

    #[test]
    fn byte_cap_cuts_whole_rows_and_fits() {
        for cap in [0, 10, 40, 100, 500, 1000, 5000] {
            let out = SqlQueryOutput::capped(rows(50, 30), cap);
            let len = serde_json::to_vec(&out).unwrap().len();
            if !out.rows.is_empty() {
                assert!(len <= cap, "cap {cap}: {len}");
            }
            assert_eq!(out.truncated, out.rows.len() < 50, "cap {cap}");
            // One more row would not have fitted.
            if out.rows.len() < 50 {
                let mut more = out.clone();
                more.rows
                    .push(vec![json!(out.rows.len()), json!("x".repeat(30))]);
                // (`+ 1`: the cap reserves a byte for `false`, even when `true` is written.)
                assert!(serde_json::to_vec(&more).unwrap().len() + 1 > cap);
            }
        }
        let out = SqlQueryOutput::capped(rows(3, 5), DEFAULT_MAX_OUTPUT_BYTES);
        assert_eq!(out.rows.len(), 3);
        assert!(!out.truncated);
        let out = SqlQueryOutput::capped(rows(3, 5).with_truncated(true), DEFAULT_MAX_OUTPUT_BYTES);
        assert!(out.truncated);
    }

    #[test]
    fn exact_fit_is_not_truncated() {
        let full = SqlQueryOutput::capped(rows(4, 7), usize::MAX);
        let len = serde_json::to_vec(&full).unwrap().len();
        let out = SqlQueryOutput::capped(rows(4, 7), len);
        assert_eq!(out.rows.len(), 4);
        assert!(!out.truncated);
    }

    #[test]
    fn finds_table_blocks() {
        assert_eq!(
            block_table("CREATE TABLE cities (\n a int\n);"),
            Some("cities")
        );
        assert_eq!(
            block_table("create table public.\"Cities\" (a int)"),
            Some("Cities")
        );
        assert_eq!(block_table("CREATE VIEW v AS SELECT 1"), Some("v"));
        assert_eq!(block_table("-- comment"), None);
    }
}
