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
    /// Whether something was left out: rows beyond the database's row limit or byte budget,
    /// or the end of a value too long to return whole.
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
        self.to_text_capped(usize::MAX)
    }

    /// [`to_text`](Self::to_text) in at most about `max_bytes` bytes: the text stops at the
    /// line (or value) that would pass the cap, at a character boundary, and ends with a
    /// note saying so. The note itself is not counted.
    ///
    /// ```
    /// use catena_core::SqlRows;
    /// let rows = SqlRows::new(vec!["n".into()], (0..1000).map(|i| vec![i.into()]).collect());
    /// let text = rows.to_text_capped(40);
    /// assert!(text.starts_with("n\n0\n1\n"));
    /// assert!(text.ends_with("(truncated: the result was cut to fit)"));
    /// assert!(text.len() < 100);
    /// ```
    pub fn to_text_capped(&self, max_bytes: usize) -> String {
        let mut out = String::new();
        let full = push_capped(&mut out, &self.columns.join(" | "), max_bytes);
        let mut shown = 0;
        let mut cut = !full;
        if full {
            for row in &self.rows {
                if !push_capped(&mut out, "\n", max_bytes) {
                    cut = true;
                    break;
                }
                let mut complete = true;
                for (i, v) in row.iter().enumerate() {
                    if i > 0 && !push_capped(&mut out, " | ", max_bytes) {
                        complete = false;
                        break;
                    }
                    let fits = match v {
                        Value::String(s) => push_capped(&mut out, s, max_bytes),
                        other => push_capped(&mut out, &other.to_string(), max_bytes),
                    };
                    if !fits {
                        complete = false;
                        break;
                    }
                }
                if !complete {
                    cut = true;
                    break;
                }
                shown += 1;
            }
        }
        if cut {
            out.push_str("\n(truncated: the result was cut to fit)");
            return out;
        }
        if self.rows.is_empty() {
            out.push_str("\n(no rows)");
        }
        if self.truncated {
            out.push_str(&format!(
                "\n(truncated: {shown} rows shown; further rows or the ends of long values \
                 were left out)"
            ));
        }
        out
    }
}

/// Appends as much of `text` as fits in `max_bytes` of `out` (cut at a character
/// boundary); `true` when all of it did.
fn push_capped(out: &mut String, text: &str, max_bytes: usize) -> bool {
    let room = max_bytes.saturating_sub(out.len());
    if text.len() <= room {
        out.push_str(text);
        return true;
    }
    let mut end = room;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    out.push_str(&text[..end]);
    false
}

/// A database the model's SQL can be run against, read-only.
///
/// Implementations must make writes impossible (a read-only transaction, a read-only role)
/// and enforce their own row limit, timeout and size limit (bounding the memory a result
/// takes *while* it is read, not after): the SQL comes from a model.
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_capped_at_character_boundaries() {
        let rows = SqlRows::new(
            vec!["city".into()],
            vec![vec!["Zürich".repeat(100).into()], vec!["Oslo".into()]],
        );
        for cap in 0..40 {
            let text = rows.to_text_capped(cap);
            let body = text.split("\n(truncated").next().unwrap_or_default();
            assert!(body.len() <= cap, "{cap}: {text}");
            assert!(text.ends_with("(truncated: the result was cut to fit)"));
        }
        assert_eq!(rows.to_text_capped(usize::MAX), rows.to_text());
        assert!(!rows.to_text().contains("truncated"));
    }

    #[test]
    fn truncated_rows_say_so() {
        let rows = SqlRows::new(vec!["a".into()], vec![vec![1.into()]]).with_truncated(true);
        assert_eq!(
            rows.to_text(),
            "a\n1\n(truncated: 1 rows shown; further rows or the ends of long values were left out)"
        );
    }
}
