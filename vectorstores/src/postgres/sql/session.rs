//! A pooled connection checked out for one model-written statement, and its reset.
//!
//! Rolling back the statement's transaction is not enough: session advisory locks
//! (`pg_advisory_lock`), `PREPARE`d statements, `WITH HOLD` cursors and `LISTEN`s survive a
//! `ROLLBACK`. [`Session::reset`] clears them before the connection goes back to the pool,
//! and a connection that cannot be proven clean is closed instead of returned.

use std::collections::BTreeSet;

use deadpool_postgres::{Object, Pool};
use tokio_postgres::SimpleQueryMessage;

use catena_core::Result;

use super::super::error::{pg_error, pool_error};

/// The statements the driver and the pool prepared on the connection (not the ones made
/// with SQL `PREPARE`).
const PROTOCOL_STATEMENTS_SQL: &str =
    "SELECT coalesce(string_agg(name, ' ' ORDER BY name), '') FROM pg_prepared_statements \
     WHERE NOT from_sql";

/// `DISCARD ALL` without its `DEALLOCATE ALL`, in one round trip, then what is left of the
/// prepared statements. `DEALLOCATE ALL` would also drop statements `tokio-postgres` and
/// `deadpool-postgres` cache on the connection (type lookups, `prepare_cached`), breaking
/// whoever uses it next; a statement the model `PREPARE`d is dealt with by closing the
/// connection instead. (`DISCARD ALL` itself cannot run in the implicit transaction of a
/// multi-statement query.)
const RESET_SQL: &str = "SELECT pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL; \
    SET SESSION AUTHORIZATION DEFAULT; DISCARD PLANS; DISCARD SEQUENCES; DISCARD TEMP; \
    SELECT coalesce(string_agg(name, ' ' ORDER BY name) FILTER (WHERE NOT from_sql), ''), \
    count(*) FILTER (WHERE from_sql) FROM pg_prepared_statements";

/// A connection out of the pool. Dropped without a successful [`reset`](Session::reset)
/// (an error, or the caller's future dropped mid-statement), it is **closed**, never
/// returned: the server then ends the session and everything it held.
pub(super) struct Session {
    object: Option<Object>,
    /// The protocol-level statements prepared before the model's statement ran.
    statements: BTreeSet<String>,
}

impl Session {
    /// Checks a connection out and notes its prepared statements.
    pub(super) async fn checkout(pool: &Pool) -> Result<Session> {
        let object = pool.get().await.map_err(pool_error)?;
        let mut session = Session {
            object: Some(object),
            statements: BTreeSet::new(),
        };
        // On failure the session is dropped unclean, so the connection is closed.
        let listed = match session.object.as_ref() {
            Some(object) => object.simple_query(PROTOCOL_STATEMENTS_SQL).await,
            None => Ok(Vec::new()),
        };
        let messages = listed.map_err(pg_error)?;
        if let Some(names) = last_row(&messages).and_then(|row| row.first().cloned()) {
            session.statements = names.split_whitespace().map(str::to_owned).collect();
        }
        Ok(session)
    }

    /// The client, for the statement's transaction.
    pub(super) fn client_mut(&mut self) -> Option<&mut Object> {
        self.object.as_mut()
    }

    /// Clears what survives a `ROLLBACK` and lets the connection go back to the pool; closes
    /// it instead when the reset fails, when the model left a `PREPARE`d statement behind,
    /// or when a statement the driver or the pool had prepared is gone (a `DEALLOCATE`).
    pub(super) async fn reset(mut self) {
        let Some(object) = self.object.as_ref() else {
            return;
        };
        let clean = match object.simple_query(RESET_SQL).await {
            Ok(messages) => match last_row(&messages).as_deref() {
                Some([names, from_sql]) => {
                    let left: BTreeSet<&str> = names.split_whitespace().collect();
                    from_sql == "0"
                        && self
                            .statements
                            .iter()
                            .all(|name| left.contains(name.as_str()))
                }
                _ => false,
            },
            Err(e) => {
                tracing::debug!(error = %e, "resetting a SQL connection failed; closing it");
                false
            }
        };
        if clean {
            // Back to the pool.
            drop(self.object.take());
        }
        // Otherwise `Drop` closes it.
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        if let Some(object) = self.object.take() {
            // Detached from the pool; dropping the client closes the connection.
            drop(Object::take(object));
        }
    }
}

/// The cells (as text) of the last row among `messages` (the last statement's).
fn last_row(messages: &[SimpleQueryMessage]) -> Option<Vec<String>> {
    messages.iter().rev().find_map(|m| match m {
        SimpleQueryMessage::Row(row) => Some(
            (0..row.len())
                .map(|i| row.get(i).unwrap_or_default().to_owned())
                .collect(),
        ),
        _ => None,
    })
}
