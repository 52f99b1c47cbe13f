//! The backend-neutral SQL database contract: what a SQL chain or a SQL tool runs a model's
//! query against.
//!
//! A [`SqlDatabase`] has a dialect name, the schema as text and a read-only query runner
//! that enforces its own row limit and timeout; the rows come back as [`SqlRows`]. Backends
//! live outside core (`catena_vectorstores::PostgresSqlDatabase` with its `postgres`
//! feature); consumers take an `Arc<dyn SqlDatabase>`.
//!
//! ```
//! use std::sync::Arc;
//! use async_trait::async_trait;
//! use catena_core::{SqlDatabase, SqlRows};
//!
//! #[derive(Debug)]
//! struct Cities(Vec<(String, i64)>);
//!
//! #[async_trait]
//! impl SqlDatabase for Cities {
//!     fn dialect(&self) -> &str { "PostgreSQL" }
//!     async fn table_info(&self) -> catena_core::Result<String> {
//!         Ok("CREATE TABLE cities (name text, population bigint);".into())
//!     }
//!     async fn run_read_only(&self, _sql: &str) -> catena_core::Result<SqlRows> {
//!         let rows = self.0.iter().map(|(n, p)| vec![n.as_str().into(), (*p).into()]).collect();
//!         Ok(SqlRows::new(vec!["name".into(), "population".into()], rows))
//!     }
//! }
//!
//! # futures::executor::block_on(async {
//! let db: Arc<dyn SqlDatabase> = Arc::new(Cities(vec![("Oslo".into(), 700_000)]));
//! let rows = db.run_read_only("SELECT name, population FROM cities").await.unwrap();
//! assert_eq!(rows.to_text(), "name | population\nOslo | 700000");
//! assert!(db.table_info().await.unwrap().contains("cities"));
//! # });
//! ```

use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::Result;

/// The rows a query returned.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[non_exhaustive]
pub struct SqlRows {
    /// Column names, in order.
    pub columns: Vec<String>,
    /// The rows, each with one JSON value per column.
    pub rows: Vec<Vec<Value>>,
    /// Whether the database had more rows than its row limit (and dropped them).
    pub truncated: bool,
}

impl SqlRows {
    /// Rows with these columns, not truncated.
    pub fn new(columns: Vec<String>, rows: Vec<Vec<Value>>) -> Self {
        SqlRows {
            columns,
            rows,
            truncated: false,
        }
    }

    /// Marks the rows as truncated.
    #[must_use]
    pub fn with_truncated(mut self, truncated: bool) -> Self {
        self.truncated = truncated;
        self
    }

    /// The rows as text for a prompt: a header line of column names, then one line per row,
    /// values separated by ` | ` (strings as they are, other values as JSON), and a note
    /// when truncated.
    pub fn to_text(&self) -> String {
        let mut out = self.columns.join(" | ");
        for row in &self.rows {
            out.push('\n');
            let cells: Vec<String> = row
                .iter()
                .map(|v| match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .collect();
            out.push_str(&cells.join(" | "));
        }
        if self.rows.is_empty() {
            out.push_str("\n(no rows)");
        }
        if self.truncated {
            out.push_str(&format!(
                "\n(truncated: only the first {} rows are shown)",
                self.rows.len()
            ));
        }
        out
    }
}

/// A database the model's SQL can be run against, read-only.
///
/// Implementations must make writes impossible (a read-only transaction, a read-only role)
/// and enforce their own row limit and timeout: the SQL comes from a model.
#[async_trait]
pub trait SqlDatabase: Send + Sync {
    /// The SQL dialect, for the prompt (`"PostgreSQL"`, `"SQLite"`, …).
    fn dialect(&self) -> &str;

    /// The schema the model may query, as text (typically `CREATE TABLE` statements).
    ///
    /// # Errors
    /// The database's errors.
    async fn table_info(&self) -> Result<String>;

    /// Runs one statement read-only and returns its rows (at most the database's row limit).
    ///
    /// # Errors
    /// [`Error::InvalidInput`](crate::Error::InvalidInput) for statements that are
    /// rejected or fail (including writes), [`Error::Timeout`](crate::Error::Timeout)
    /// when the statement runs too long, and connection errors.
    async fn run_read_only(&self, sql: &str) -> Result<SqlRows>;
}

#[async_trait]
impl<T: SqlDatabase + ?Sized> SqlDatabase for Arc<T> {
    fn dialect(&self) -> &str {
        (**self).dialect()
    }
    async fn table_info(&self) -> Result<String> {
        (**self).table_info().await
    }
    async fn run_read_only(&self, sql: &str) -> Result<SqlRows> {
        (**self).run_read_only(sql).await
    }
}

#[async_trait]
impl<T: SqlDatabase + ?Sized> SqlDatabase for Box<T> {
    fn dialect(&self) -> &str {
        (**self).dialect()
    }
    async fn table_info(&self) -> Result<String> {
        (**self).table_info().await
    }
    async fn run_read_only(&self, sql: &str) -> Result<SqlRows> {
        (**self).run_read_only(sql).await
    }
}
