//! The mapping of PostgreSQL failures to [`catena_core::Error`], shared by every type of the
//! engine (the pgvector store included).

use std::error::Error as StdError;

use catena_core::{Error, ProviderError, ProviderErrorKind};
use deadpool_postgres::PoolError;
use tokio_postgres::error::SqlState;

/// The provider name the PostgreSQL types report (the pgvector store reports `pgvector`).
pub(crate) const PROVIDER: &str = "postgres";

/// The [`ProviderErrorKind::Other`] name of a TLS failure: the server declined TLS that the
/// `sslmode` requires, or its certificate did not pass the check. Not retryable.
pub(crate) const TLS_KIND: &str = "tls";

/// tokio-postgres's words when the server answers `N` to the TLS request (its error kinds are
/// private, so this is how that case is told apart).
const SERVER_WITHOUT_TLS: &str = "server does not support TLS";

fn provider_error(provider: &str, kind: ProviderErrorKind, message: String) -> ProviderError {
    ProviderError::new(kind, message).with_provider(provider)
}

/// Whether the connection was lost (server restart, `pg_terminate_backend`, network
/// failure), so an idempotent operation may be retried on a fresh connection.
pub(crate) fn is_connection_lost(e: &tokio_postgres::Error) -> bool {
    if e.is_closed() {
        return true;
    }
    if let Some(code) = e.code() {
        return code.code().starts_with("08")
            || *code == SqlState::ADMIN_SHUTDOWN
            || *code == SqlState::CRASH_SHUTDOWN
            || *code == SqlState::CANNOT_CONNECT_NOW;
    }
    let mut source = e.source();
    while let Some(s) = source {
        if s.is::<std::io::Error>() {
            return true;
        }
        source = s.source();
    }
    false
}

/// The message of a TLS failure that retrying cannot fix: a rustls error anywhere in the
/// chain (a certificate that failed the check, a handshake the peer broke off), or a server
/// that does not offer TLS. `None` for anything else, TLS handshakes cut by the network
/// included (those are transport failures).
fn tls_failure(e: &tokio_postgres::Error) -> Option<String> {
    let mut source = e.source();
    while let Some(s) = source {
        if s.to_string() == SERVER_WITHOUT_TLS {
            return Some(
                "the server does not offer TLS, which the connection's sslmode requires (for \
                 a host that is not loopback, sslmode=prefer requires it too; sslmode=disable \
                 allows plaintext)"
                    .to_owned(),
            );
        }
        let rustls_error = s.downcast_ref::<rustls::Error>().or_else(|| {
            s.downcast_ref::<std::io::Error>()
                .and_then(|io| io.get_ref())
                .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        });
        if let Some(r) = rustls_error {
            return Some(format!("TLS with the PostgreSQL server failed: {r}"));
        }
        source = s.source();
    }
    None
}

/// Maps a `tokio-postgres` error to a Catena error by what the caller can do about it,
/// naming `provider`. TLS failures are [`ProviderErrorKind::Other`]`("tls")` (see
/// [`TLS_KIND`]), not retryable.
pub(crate) fn map_pg_error(provider: &str, e: tokio_postgres::Error) -> Error {
    if let Some(message) = tls_failure(&e) {
        let kind = ProviderErrorKind::Other(TLS_KIND.to_owned());
        return provider_error(provider, kind, message)
            .with_source(e)
            .into();
    }
    if is_connection_lost(&e) && e.as_db_error().is_none() {
        let message = format!("connection to PostgreSQL lost: {e}");
        return provider_error(provider, ProviderErrorKind::Transport, message)
            .with_source(e)
            .into();
    }
    let Some(db) = e.as_db_error() else {
        // Not from the server: a value that did not convert, a protocol surprise.
        let message = e.to_string();
        return provider_error(provider, ProviderErrorKind::MalformedResponse, message)
            .with_source(e)
            .into();
    };
    let code = db.code().code();
    let kind = match code {
        c if c.starts_with("28") => ProviderErrorKind::Auth,
        "42501" => ProviderErrorKind::PermissionDenied,
        "57014" => ProviderErrorKind::Timeout,
        c if c.starts_with("08") || c.starts_with("57P") => ProviderErrorKind::Transport,
        c if c.starts_with("53") || c.starts_with("40") => ProviderErrorKind::Server,
        c if c.starts_with("22") || c.starts_with("23") || c.starts_with("42") => {
            ProviderErrorKind::InvalidRequest
        }
        _ => ProviderErrorKind::Server,
    };
    let mut message = format!("{} (SQLSTATE {code})", db.message());
    if let Some(detail) = db.detail() {
        message.push_str(": ");
        message.push_str(detail);
    }
    provider_error(provider, kind, message)
        .with_source(e)
        .into()
}

/// Maps a failure to check a connection out of the pool, naming `provider`.
pub(crate) fn map_pool_error(provider: &str, e: PoolError) -> Error {
    match e {
        PoolError::Backend(e) => map_pg_error(provider, e),
        PoolError::Timeout(t) => provider_error(
            provider,
            ProviderErrorKind::Timeout,
            format!("timed out waiting for a pooled connection ({t:?})"),
        )
        .into(),
        other => provider_error(provider, ProviderErrorKind::Transport, other.to_string())
            .with_source(other)
            .into(),
    }
}

/// [`map_pg_error`] for the types that report as [`PROVIDER`].
pub(crate) fn pg_error(e: tokio_postgres::Error) -> Error {
    map_pg_error(PROVIDER, e)
}

/// [`map_pool_error`] for the types that report as [`PROVIDER`].
pub(crate) fn pool_error(e: PoolError) -> Error {
    map_pool_error(PROVIDER, e)
}
