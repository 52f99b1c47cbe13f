//! Identifiers and schema creation: table-name checks, identifier quoting, index names and
//! idempotent DDL under an advisory lock.

use catena_core::{Error, Result};
use deadpool_postgres::Pool;

use super::error::{pg_error, pool_error};

/// Checks a table name: `[a-z_][a-z0-9_]{0,62}`. `what` names it in the error (`table`,
/// `collection`).
pub(crate) fn validate_table_name(name: &str, what: &str) -> Result<()> {
    let mut bytes = name.bytes();
    let first_ok = bytes
        .next()
        .is_some_and(|b| b.is_ascii_lowercase() || b == b'_');
    let rest_ok = bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if !first_ok || !rest_ok || name.len() > 63 {
        return Err(Error::invalid_config(format!(
            "invalid {what} name {name:?}: use 1 to 63 characters of a-z, 0-9 and _, \
             not starting with a digit"
        )));
    }
    Ok(())
}

/// Quotes an identifier for SQL. Callers pass names already validated by
/// [`validate_table_name`]; quoting is a second line of defence.
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

/// A schema-unique index name for the chat-history and record tables: a readable prefix of
/// the table name, a hash of the whole name (so long names cannot collide once PostgreSQL
/// truncates them) and the purpose. (The pgvector store names its indexes with its own,
/// older hash; both are kept so existing databases keep their index names.)
pub(crate) fn index_name(table: &str, purpose: &str) -> String {
    let prefix: String = table.chars().take(40).collect();
    format!("{prefix}_{:08x}_{purpose}", fnv1a64(table) as u32)
}

/// Runs idempotent DDL in one transaction under an advisory lock keyed by the table name,
/// so concurrent first uses do not race on the catalog.
pub(crate) async fn ensure_schema(pool: &Pool, table: &str, statements: &[String]) -> Result<()> {
    let mut client = pool.get().await.map_err(pool_error)?;
    let tx = client.transaction().await.map_err(pg_error)?;
    // Reinterpreting the hash's bits as i64 is the point: any 64-bit key will do. The
    // prefix is the one the first release used, so old and new processes share the lock.
    let key = fnv1a64(&format!("catena-chains:{table}")) as i64;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&key])
        .await
        .map_err(pg_error)?;
    for sql in statements {
        tx.batch_execute(sql).await.map_err(pg_error)?;
    }
    tx.commit().await.map_err(pg_error)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        assert!(validate_table_name("chat_history_1", "table").is_ok());
        for bad in ["", "1a", "A", "a-b", "a\"; drop", &"a".repeat(64)] {
            assert!(validate_table_name(bad, "table").is_err(), "{bad}");
        }
        assert!(index_name(&"x".repeat(63), "session").len() <= 63);
    }

    #[test]
    fn identifiers_are_quoted() {
        assert_eq!(quote_ident("docs"), "\"docs\"");
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
    }
}
