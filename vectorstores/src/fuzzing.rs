//! Entry points for the cargo-fuzz targets in `fuzz/` (feature `fuzzing`): the check that the
//! SQL a model wrote is one statement. Not a stable API.

/// The one statement in `sql`, without its trailing `;`, as `PostgresSqlDatabase` checks it.
///
/// # Errors
/// An invalid-input error for empty text or more than one statement.
pub fn single_statement(sql: &str) -> catena_core::Result<&str> {
    crate::postgres::single_statement(sql)
}
