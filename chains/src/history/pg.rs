//! PostgreSQL plumbing shared by the chat history and the record manager: connection pools,
//! table-name checks, identifier quoting, idempotent DDL under an advisory lock, and the
//! mapping of database errors to [`catena_core::Error`].

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use catena_core::{Error, ProviderError, ProviderErrorKind, Result};
use deadpool_postgres::{Manager, ManagerConfig, Pool, PoolError, RecyclingMethod, Runtime};
use tokio_postgres::NoTls;

use super::DATABASE_URL_ENV;

/// The provider name carried by these errors.
const PROVIDER: &str = "postgres";

/// Where connections come from.
pub(crate) enum Connection {
    /// A connection string; the type opens its own pool.
    Url(String),
    /// A pool shared with the rest of the program.
    Pool(Pool),
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Connection::Url(url) => f.write_str(&redact_url(url)),
            Connection::Pool(_) => f.write_str("<shared pool>"),
        }
    }
}

/// The connection string with any password replaced by `***`.
/// The connection setters shared by the PostgreSQL builders (each has the fields
/// `connection`, `table`, `max_connections` and `connect_timeout`).
macro_rules! pg_builder_setters {
    (table = $table:literal, max_connections = $max:literal) => {
        /// Connects with a connection string (a URL or `key=value` pairs; no TLS). Default:
        /// the [`DATABASE_URL`]($crate::history::DATABASE_URL_ENV) environment variable.
        pub fn connection_string(mut self, url: impl Into<String>) -> Self {
            self.connection = Some($crate::history::pg::Connection::Url(url.into()));
            self
        }

        /// Uses an existing `deadpool-postgres` pool. Overrides
        /// [`connection_string`](Self::connection_string). Default: a pool of its own.
        pub fn pool(mut self, pool: deadpool_postgres::Pool) -> Self {
            self.connection = Some($crate::history::pg::Connection::Pool(pool));
            self
        }

        #[doc = concat!(
            "The table: 1 to 63 characters of `a-z`, `0-9` and `_`, not starting with a digit.\n",
            "Default `\"", $table, "\"`."
        )]
        pub fn table(mut self, name: impl Into<String>) -> Self {
            self.table = name.into();
            self
        }

        #[doc = concat!("The size of its own pool. Default ", $max, ".")]
        pub fn max_connections(mut self, n: usize) -> Self {
            self.max_connections = n;
            self
        }

        /// How long to wait for a connection. Default 10 s.
        pub fn connect_timeout(mut self, timeout: std::time::Duration) -> Self {
            self.connect_timeout = timeout;
            self
        }
    };
}
pub(crate) use pg_builder_setters;

pub(crate) fn redact_url(url: &str) -> String {
    if let Some((scheme, rest)) = url.split_once("://") {
        if let Some((userinfo, host)) = rest.rsplit_once('@') {
            let user = userinfo.split(':').next().unwrap_or("");
            return format!("{scheme}://{user}:***@{host}");
        }
        return url.to_owned();
    }
    // key=value form: drop the password pair.
    url.split_whitespace()
        .map(|kv| {
            if kv.starts_with("password=") {
                "password=***"
            } else {
                kv
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Opens the pool for `connection` (or `$DATABASE_URL`).
pub(crate) fn make_pool(
    connection: Option<Connection>,
    max_connections: usize,
    connect_timeout: Duration,
) -> Result<Pool> {
    if max_connections == 0 {
        return Err(Error::invalid_config("max_connections must be at least 1"));
    }
    let connection = match connection {
        Some(c) => c,
        None => match std::env::var(DATABASE_URL_ENV) {
            Ok(url) if !url.is_empty() => Connection::Url(url),
            _ => {
                return Err(Error::invalid_config(format!(
                    "no database: set {DATABASE_URL_ENV} or call connection_string()/pool()"
                )))
            }
        },
    };
    match connection {
        Connection::Pool(pool) => Ok(pool),
        Connection::Url(url) => {
            let mut config = tokio_postgres::Config::from_str(&url)
                .map_err(|e| Error::invalid_config(format!("invalid connection string: {e}")))?;
            if config.get_connect_timeout().is_none() {
                config.connect_timeout(connect_timeout);
            }
            let manager = Manager::from_config(
                config,
                NoTls,
                ManagerConfig {
                    recycling_method: RecyclingMethod::Fast,
                },
            );
            Pool::builder(manager)
                .max_size(max_connections)
                .runtime(Runtime::Tokio1)
                .wait_timeout(Some(connect_timeout))
                .create_timeout(Some(connect_timeout))
                .build()
                .map_err(|e| Error::invalid_config(format!("cannot build the pool: {e}")))
        }
    }
}

/// Checks a table name: `[a-z_][a-z0-9_]{0,62}`.
pub(crate) fn validate_table_name(name: &str) -> Result<()> {
    let mut bytes = name.bytes();
    let first_ok = bytes
        .next()
        .is_some_and(|b| b.is_ascii_lowercase() || b == b'_');
    let rest_ok = bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if !first_ok || !rest_ok || name.len() > 63 {
        return Err(Error::invalid_config(format!(
            "invalid table name {name:?}: use 1 to 63 characters of a-z, 0-9 and _, \
             not starting with a digit"
        )));
    }
    Ok(())
}

/// Quotes an identifier. Callers pass names already validated by [`validate_table_name`];
/// quoting is a second line of defence.
pub(crate) fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn fnv1a64(text: &str) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

/// A schema-unique index name: a readable prefix of the table name, a hash of the whole
/// name (so long names cannot collide once PostgreSQL truncates them) and the purpose.
pub(crate) fn index_name(table: &str, purpose: &str) -> String {
    let prefix: String = table.chars().take(40).collect();
    format!("{prefix}_{:08x}_{purpose}", fnv1a64(table) as u32)
}

/// Runs idempotent DDL in one transaction under an advisory lock keyed by the table name,
/// so concurrent first uses do not race on the catalog.
pub(crate) async fn ensure_schema(pool: &Pool, table: &str, statements: &[String]) -> Result<()> {
    let mut client = pool.get().await.map_err(map_pool_error)?;
    let tx = client.transaction().await.map_err(map_pg_error)?;
    // Reinterpreting the hash's bits as i64 is the point: any 64-bit key will do.
    let key = fnv1a64(&format!("catena-chains:{table}")) as i64;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&key])
        .await
        .map_err(map_pg_error)?;
    for sql in statements {
        tx.batch_execute(sql).await.map_err(map_pg_error)?;
    }
    tx.commit().await.map_err(map_pg_error)
}

fn provider(kind: ProviderErrorKind, message: impl Into<String>) -> ProviderError {
    ProviderError::new(kind, message).with_provider(PROVIDER)
}

/// Maps a pool failure to a Catena error.
pub(crate) fn map_pool_error(e: PoolError) -> Error {
    match e {
        PoolError::Backend(e) => map_pg_error(e),
        PoolError::Timeout(t) => provider(
            ProviderErrorKind::Timeout,
            format!("timed out waiting for a pooled connection ({t:?})"),
        )
        .into(),
        other => provider(ProviderErrorKind::Transport, other.to_string())
            .with_source(other)
            .into(),
    }
}

/// Maps a `tokio-postgres` error to a Catena error by what the caller can do about it.
pub(crate) fn map_pg_error(e: tokio_postgres::Error) -> Error {
    let Some(db) = e.as_db_error() else {
        let kind = if e.is_closed() {
            ProviderErrorKind::Transport
        } else {
            ProviderErrorKind::MalformedResponse
        };
        return provider(kind, e.to_string()).with_source(e).into();
    };
    let code = db.code().code();
    let kind = match code {
        c if c.starts_with("28") => ProviderErrorKind::Auth,
        "42501" => ProviderErrorKind::PermissionDenied,
        "57014" => ProviderErrorKind::Timeout,
        c if c.starts_with("08") || c.starts_with("57P") => ProviderErrorKind::Transport,
        c if c.starts_with("22") || c.starts_with("23") || c.starts_with("42") => {
            ProviderErrorKind::InvalidRequest
        }
        _ => ProviderErrorKind::Server,
    };
    let message = format!("{} (SQLSTATE {code})", db.message());
    provider(kind, message).with_source(e).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked_and_passwords_hidden() {
        assert!(validate_table_name("chat_history_1").is_ok());
        for bad in ["", "1a", "A", "a-b", "a\"; drop", &"a".repeat(64)] {
            assert!(validate_table_name(bad).is_err(), "{bad}");
        }
        assert_eq!(
            redact_url("postgres://u:secret@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(redact_url("host=h password=secret"), "host=h password=***");
        assert!(index_name(&"x".repeat(63), "session").len() <= 63);
    }
}
