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
//! [`catena_core::Error`]. The driver is `tokio-postgres`.
//!
//! # TLS
//!
//! A connection string's pool speaks TLS (rustls on `ring`) as its `sslmode` parameter asks,
//! with libpq's meanings, in the URL query (`?sslmode=verify-full&sslrootcert=/etc/ca.pem`)
//! or as `key=value` pairs:
//!
//! | `sslmode` | TLS | certificate check |
//! |---|---|---|
//! | `disable` | never | — |
//! | `prefer` (the default) | if the server offers it; **for a host that is not loopback, required** | none |
//! | `require` | required | none: encrypted, but anyone on the path can pose as the server |
//! | `verify-ca` | required | chain up to a CA of `sslrootcert` (a file; needed) |
//! | `verify-full` | required | chain and host name, against `sslrootcert`, or the system's roots without it |
//!
//! - `prefer` never falls back to plaintext for a host that is not loopback (`localhost`,
//!   `127.0.0.0/8`, `::1`, a local socket; a `hostaddr` counts over its name): there it
//!   means TLS or no connection, so a server (or an attacker) that declines TLS never sees
//!   the password in the clear. Ask for plaintext with `sslmode=disable`.
//! - `require` does not check the certificate (libpq's semantics): it stops passive
//!   eavesdropping, not an active attacker. Use `verify-full` across untrusted networks.
//! - `sslrootcert=<file>` (PEM) is trusted alone, not with the system's roots; with
//!   `prefer` or `require` it also turns on the chain check, as in libpq.
//!   `sslrootcert=system` means the platform's trust store and needs `verify-full`.
//! - `sslmode=allow`, unknown values, an unreadable or empty `sslrootcert` are
//!   [`Error::InvalidConfig`](catena_core::Error::InvalidConfig) from `build()`. Client
//!   certificates (`sslcert`, `sslkey`) are not supported: build a [`deadpool_postgres::Pool`]
//!   with your own connector and pass it to `pool()`.
//! - A server that declines required TLS, or a certificate that fails the check, is a
//!   [`ProviderError`](catena_core::ProviderError) of kind
//!   [`Other("tls")`](catena_core::ProviderErrorKind::Other), not retryable.
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

mod checkpoint;
mod connect;
mod ddl;
mod error;
mod history;
mod records;
mod sql;

#[cfg(feature = "fuzzing")]
pub(crate) use sql::single_statement;

pub use checkpoint::{PostgresCheckpointer, PostgresCheckpointerBuilder};
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
