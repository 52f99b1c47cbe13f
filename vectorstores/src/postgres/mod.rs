//! PostgreSQL (feature `postgres`): chat history ([`PostgresChatHistory`]), ingest records
//! ([`PostgresRecordManager`]) and a read-only SQL database for model-written queries
//! ([`PostgresSqlDatabase`]). The pgvector store (feature `pgvector`) is built on the same
//! plumbing.
//!
//! Every PostgreSQL type here is configured the same way: a connection string with `url()`
//! (or [`DATABASE_URL_ENV`] when none is given, except for the SQL database), or a shared
//! `deadpool-postgres` pool with `pool()`, plus `max_connections()` and `connect_timeout()`.
//! They share one pool builder, one redaction of connection strings in `Debug` output, one
//! table-name check, one identifier quoting and one mapping of database errors to
//! [`catena_core::Error`]. The driver is `tokio-postgres` without TLS; pass a pool built
//! with a TLS connector when you need it.
//!
//! ```no_run
//! use catena_core::{ChatHistory, Message, Record, RecordManager, SessionId};
//! use catena_vectorstores::{PostgresChatHistory, PostgresRecordManager};
//!
//! # async fn run() -> catena_core::Result<()> {
//! let url = "postgres://catena:catena@127.0.0.1:5432/catena_test";
//! let history = PostgresChatHistory::builder().url(url).build()?;
//! history.append(&SessionId::new("s"), &[Message::user("hi")]).await?;
//! let records = PostgresRecordManager::builder().url(url).max_connections(2).build()?;
//! records.update("docs", &[Record::new("key-1", None)]).await?;
//! # Ok(())
//! # }
//! ```

mod connect;
mod ddl;
mod error;
mod history;
mod records;
mod sql;

pub use history::{PostgresChatHistory, PostgresChatHistoryBuilder};
pub use records::{PostgresRecordManager, PostgresRecordManagerBuilder};
pub use sql::{PostgresSqlDatabase, PostgresSqlDatabaseBuilder};

// `Connection` is named by the setters macro; the rest serve the pgvector store.
pub(crate) use connect::Connection;
#[cfg(feature = "pgvector")]
pub(crate) use connect::{connection_setters, ConnectConfig};
#[cfg(feature = "pgvector")]
pub(crate) use ddl::{quote_ident, validate_table_name};
#[cfg(feature = "pgvector")]
pub(crate) use error::{is_connection_lost, map_pg_error, map_pool_error};

/// The environment variable the PostgreSQL types read when given no connection (the SQL
/// database excepted).
pub const DATABASE_URL_ENV: &str = "DATABASE_URL";
