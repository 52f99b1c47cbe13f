//! SQL plumbing: bound parameters, a `jsonb` codec, and the store's failures (mapped to
//! [`catena_core::Error`] by the engine's shared mapping) with a retry on a lost connection.

use std::error::Error as StdError;
use std::fmt;
use std::future::Future;

use catena_core::Error;
use deadpool_postgres::PoolError;
use serde_json::Value;
use tokio_postgres::types::{to_sql_checked, FromSql, IsNull, ToSql, Type};

use crate::postgres::{is_connection_lost, map_pg_error, map_pool_error};

/// The provider name carried by this backend's [`ProviderError`](catena_core::ProviderError)s.
pub(crate) const PROVIDER: &str = "pgvector";

/// PostgreSQL's limit on bound parameters per statement.
const MAX_PARAMS: usize = 65_535;

/// A `jsonb` (or `json`) value, encoded in PostgreSQL's binary format: a version byte (1)
/// followed by the JSON text. Written by hand so the crate needs no `tokio-postgres` feature.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Jsonb(pub(crate) Value);

impl ToSql for Jsonb {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut bytes::BytesMut,
    ) -> Result<IsNull, Box<dyn StdError + Sync + Send>> {
        if *ty == Type::JSONB {
            out.extend_from_slice(&[1]);
        }
        out.extend_from_slice(&serde_json::to_vec(&self.0)?);
        Ok(IsNull::No)
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::JSONB || *ty == Type::JSON
    }

    to_sql_checked!();
}

impl<'a> FromSql<'a> for Jsonb {
    fn from_sql(ty: &Type, raw: &'a [u8]) -> Result<Self, Box<dyn StdError + Sync + Send>> {
        let body = if *ty == Type::JSONB {
            match raw.split_first() {
                Some((1, rest)) => rest,
                Some((v, _)) => return Err(format!("unsupported jsonb version {v}").into()),
                None => return Err("empty jsonb value".into()),
            }
        } else {
            raw
        };
        Ok(Jsonb(serde_json::from_slice(body)?))
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::JSONB || *ty == Type::JSON
    }
}

/// Bound parameters of one statement, numbered `$1`, `$2`, … in push order.
#[derive(Debug, Default)]
pub(crate) struct Params {
    values: Vec<Box<dyn ToSql + Sync + Send>>,
}

impl Params {
    pub(crate) fn new() -> Self {
        Params::default()
    }

    /// Binds `value` and returns its placeholder (`$n`).
    pub(crate) fn push<T: ToSql + Sync + Send + 'static>(&mut self, value: T) -> String {
        self.values.push(Box::new(value));
        format!("${}", self.values.len())
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.values.len()
    }

    /// Fails when the statement would exceed PostgreSQL's parameter limit.
    pub(crate) fn check_limit(&self) -> catena_core::Result<()> {
        if self.values.len() > MAX_PARAMS {
            return Err(Error::invalid_input(format!(
                "the filter needs {} bound values; PostgreSQL allows {MAX_PARAMS}",
                self.values.len()
            )));
        }
        Ok(())
    }

    pub(crate) fn as_refs(&self) -> Vec<&(dyn ToSql + Sync)> {
        self.values
            .iter()
            .map(|v| v.as_ref() as &(dyn ToSql + Sync))
            .collect()
    }
}

/// A failure inside the backend, before it is mapped to [`Error`].
#[derive(Debug)]
pub(crate) enum PgFailure {
    /// Checking a connection out of the pool failed.
    Pool(PoolError),
    /// The server or the connection failed.
    Pg(tokio_postgres::Error),
    /// Already a Catena error (bad input, bad data).
    Catena(Error),
}

impl From<PoolError> for PgFailure {
    fn from(e: PoolError) -> Self {
        PgFailure::Pool(e)
    }
}

impl From<tokio_postgres::Error> for PgFailure {
    fn from(e: tokio_postgres::Error) -> Self {
        PgFailure::Pg(e)
    }
}

impl From<Error> for PgFailure {
    fn from(e: Error) -> Self {
        PgFailure::Catena(e)
    }
}

impl PgFailure {
    /// Whether the connection was lost (server restart, `pg_terminate_backend`, network
    /// failure), so an idempotent operation may be retried on a fresh connection.
    pub(crate) fn is_connection_lost(&self) -> bool {
        match self {
            PgFailure::Pg(e) => is_connection_lost(e),
            PgFailure::Pool(PoolError::Backend(e)) => is_connection_lost(e),
            _ => false,
        }
    }
}

impl From<PgFailure> for Error {
    fn from(f: PgFailure) -> Self {
        match f {
            PgFailure::Catena(e) => e,
            PgFailure::Pg(e) => map_pg_error(PROVIDER, e),
            PgFailure::Pool(e) => map_pool_error(PROVIDER, e),
        }
    }
}

/// Takes a connection whose operation failed because the connection was lost out of the
/// pool, so a retry cannot be handed the same dead connection.
pub(crate) fn discard_if_lost<T>(client: deadpool_postgres::Client, result: &Result<T, PgFailure>) {
    if matches!(result, Err(e) if e.is_connection_lost()) {
        drop(deadpool_postgres::Object::take(client));
    }
}

/// Runs an idempotent operation, retrying it once on a fresh connection when the first
/// attempt lost its connection.
pub(crate) async fn retry_once<T, F, Fut>(what: &str, mut op: F) -> catena_core::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, PgFailure>>,
{
    match op().await {
        Err(e) if e.is_connection_lost() => {
            tracing::warn!(
                operation = what,
                error = %DisplayFailure(&e),
                "pgvector: connection lost; retrying once on a fresh connection"
            );
            op().await.map_err(Error::from)
        }
        other => other.map_err(Error::from),
    }
}

struct DisplayFailure<'a>(&'a PgFailure);

impl fmt::Display for DisplayFailure<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            PgFailure::Pool(e) => write!(f, "{e}"),
            PgFailure::Pg(e) => write!(f, "{e}"),
            PgFailure::Catena(e) => write!(f, "{e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jsonb_round_trips_in_binary_format() {
        let v = Jsonb(serde_json::json!({"a": [1, "x'y", null]}));
        let mut buf = bytes::BytesMut::new();
        v.to_sql(&Type::JSONB, &mut buf).unwrap();
        assert_eq!(buf[0], 1);
        let back = Jsonb::from_sql(&Type::JSONB, &buf).unwrap();
        assert_eq!(back, v);
        assert!(Jsonb::from_sql(&Type::JSONB, &[2, b'1']).is_err());
    }

    #[test]
    fn placeholders_are_numbered_in_order() {
        let mut p = Params::new();
        assert_eq!(p.push(1_i64), "$1");
        assert_eq!(p.push("x".to_owned()), "$2");
        assert_eq!(p.len(), 2);
        assert_eq!(p.as_refs().len(), 2);
    }
}
