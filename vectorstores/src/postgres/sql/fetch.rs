//! Reading the rows of a model-written statement within a byte budget.
//!
//! Two things bound what reaches this process:
//! - **Each value is cut on the server.** The statement becomes a subquery:
//!   `SELECT <capped columns> FROM (<statement>) AS q(c1, …)`. A fixed-size column (integers,
//!   floats, booleans, dates, timestamps, UUIDs) passes through; any other is sent as two
//!   columns, the value itself when its text form is at most `cap` bytes, else only
//!   `left(value::text, cap)`. A value of any size therefore crosses the wire as at most
//!   `cap` characters (≤ 4 × `cap` bytes): the server still computes it (bounded by its
//!   1 GB value limit and the statement timeout), but never sends it whole — and a single
//!   row arrives as one protocol message, so nothing on the client side could cut it later.
//! - **Rows are streamed and counted.** At most `max_rows + 1` rows are asked of the portal;
//!   they are decoded one by one from the stream, with a running count of their JSON size,
//!   and reading stops (the stream is dropped, the rest discarded unread) as soon as the
//!   next row would pass `max_result_bytes`.
//!
//! `cap` is the smaller of `max_value_bytes` and `max_result_bytes` shared among the
//! columns (at least [`MIN_VALUE_BYTES`] each), so a thousand-column row is bounded too.

use std::fmt::Write as _;

use futures::TryStreamExt;
use serde_json::Value;
use tokio_postgres::types::{Kind, Type};
use tokio_postgres::{Column, Row, Statement, Transaction};

use super::decode::Cell;

/// The smallest per-value cap, however many columns share the budget.
pub(super) const MIN_VALUE_BYTES: usize = 64;

/// What is appended to a value that was cut.
pub(super) const CUT_MARKER: &str = "…";

/// The limits of one read.
#[derive(Debug, Clone, Copy)]
pub(super) struct Limits {
    /// The most rows returned.
    pub(super) max_rows: usize,
    /// The most bytes of one value's text.
    pub(super) max_value_bytes: usize,
    /// The most bytes of JSON of all the rows together.
    pub(super) max_result_bytes: usize,
}

impl Limits {
    /// The per-value cap for `columns` columns.
    fn value_cap(&self, columns: usize) -> usize {
        let share = self.max_result_bytes / columns.max(1);
        self.max_value_bytes.min(share.max(MIN_VALUE_BYTES))
    }
}

/// How one column of the user's statement is read.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Plan {
    /// A fixed-size value, selected as it is (one wrapper column).
    Pass,
    /// Two wrapper columns: the value when small (as text when `as_text`, for types the
    /// decoder does not know), and its cut text form when large.
    Capped { as_text: bool },
}

fn plan(ty: &Type) -> Plan {
    match *ty {
        Type::BOOL
        | Type::INT2
        | Type::INT4
        | Type::INT8
        | Type::OID
        | Type::FLOAT4
        | Type::FLOAT8
        | Type::DATE
        | Type::TIMESTAMP
        | Type::TIMESTAMPTZ
        | Type::UUID
        | Type::CHAR => Plan::Pass,
        Type::TEXT
        | Type::VARCHAR
        | Type::BPCHAR
        | Type::NAME
        | Type::UNKNOWN
        | Type::JSON
        | Type::JSONB
        | Type::BYTEA
        | Type::NUMERIC => Plan::Capped { as_text: false },
        _ if matches!(ty.kind(), Kind::Enum(_)) => Plan::Pass,
        _ => Plan::Capped { as_text: true },
    }
}

/// The user's statement wrapped so every value is cut to `cap` on the server, and how to
/// read the wrapper's columns.
pub(super) struct Wrapped {
    /// The wrapping `SELECT`.
    pub(super) sql: String,
    plans: Vec<Plan>,
    cap: usize,
}

impl Wrapped {
    /// Wraps `statement`, whose result columns are `columns` (at least one).
    pub(super) fn new(statement: &str, columns: &[Column], limits: &Limits) -> Wrapped {
        let cap = limits.value_cap(columns.len());
        let plans: Vec<Plan> = columns.iter().map(|c| plan(c.type_())).collect();
        let mut select = String::new();
        for (i, plan) in plans.iter().enumerate() {
            let c = format!("q.c{}", i + 1);
            if !select.is_empty() {
                select.push_str(", ");
            }
            match plan {
                Plan::Pass => select.push_str(&c),
                Plan::Capped { as_text } => {
                    let value = if *as_text {
                        format!("{c}::text")
                    } else {
                        c.clone()
                    };
                    let _ = write!(
                        select,
                        "CASE WHEN octet_length({c}::text) <= {cap} THEN {value} END, \
                         CASE WHEN octet_length({c}::text) > {cap} THEN left({c}::text, {cap}) END"
                    );
                }
            }
        }
        let aliases: Vec<String> = (1..=columns.len()).map(|i| format!("c{i}")).collect();
        // The newlines end a trailing `--` comment of the statement.
        let sql = format!(
            "SELECT {select} FROM (\n{statement}\n) AS q({})",
            aliases.join(", ")
        );
        Wrapped { sql, plans, cap }
    }

    /// The number of columns the wrapper selects.
    pub(super) fn width(&self) -> usize {
        self.plans
            .iter()
            .map(|p| match p {
                Plan::Pass => 1,
                Plan::Capped { .. } => 2,
            })
            .sum()
    }

    /// One row of the wrapper as the user's cells; `true` when a value was cut.
    fn decode(&self, row: &Row) -> Result<(Vec<Value>, bool), tokio_postgres::Error> {
        let mut cells = Vec::with_capacity(self.plans.len());
        let mut cut = false;
        let mut at = 0;
        for plan in &self.plans {
            match plan {
                Plan::Pass => {
                    cells.push(row.try_get::<_, Cell>(at)?.0);
                    at += 1;
                }
                Plan::Capped { .. } => {
                    let large: Option<String> = row.try_get(at + 1)?;
                    match large {
                        Some(prefix) => {
                            cells.push(Value::String(cut_text(prefix, self.cap)));
                            cut = true;
                        }
                        None => cells.push(row.try_get::<_, Cell>(at)?.0),
                    }
                    at += 2;
                }
            }
        }
        Ok((cells, cut))
    }
}

/// `text` cut to at most `cap` bytes at a character boundary, with [`CUT_MARKER`].
pub(super) fn cut_text(mut text: String, cap: usize) -> String {
    let mut end = cap.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.truncate(end);
    text.push_str(CUT_MARKER);
    text
}

/// The rows read, and whether anything was left out.
pub(super) struct Fetched {
    pub(super) rows: Vec<Vec<Value>>,
    pub(super) truncated: bool,
}

/// Streams the rows of `statement` (bound with no parameters) and decodes them: through
/// `wrapped` when given, else as they are (statements that cannot be a subquery, such as
/// `SHOW`; their text values are still cut, after decoding).
pub(super) async fn fetch(
    tx: &Transaction<'_>,
    statement: &Statement,
    wrapped: Option<&Wrapped>,
    limits: &Limits,
) -> Result<Fetched, tokio_postgres::Error> {
    let portal = tx.bind(statement, &[]).await?;
    let ask = i32::try_from(limits.max_rows.saturating_add(1)).unwrap_or(i32::MAX);
    let stream = tx.query_portal_raw(&portal, ask).await?;
    futures::pin_mut!(stream);
    let cap = limits.value_cap(statement.columns().len());
    let mut rows = Vec::new();
    let mut truncated = false;
    // The bytes of `{"rows":[…]}`-style JSON so far: brackets and separators included.
    let mut used = 2usize;
    while let Some(row) = stream.try_next().await? {
        if rows.len() == limits.max_rows {
            truncated = true;
            break;
        }
        let (cells, cut) = match wrapped {
            Some(w) => w.decode(&row)?,
            None => decode_plain(&row, cap)?,
        };
        truncated |= cut;
        let size = cells.iter().map(json_len).sum::<usize>() + cells.len() + 2;
        if used.saturating_add(size) > limits.max_result_bytes {
            truncated = true;
            break;
        }
        used += size;
        rows.push(cells);
    }
    Ok(Fetched { rows, truncated })
}

/// A row of an unwrapped statement, its text values cut to `cap`.
fn decode_plain(row: &Row, cap: usize) -> Result<(Vec<Value>, bool), tokio_postgres::Error> {
    let mut cells = Vec::with_capacity(row.len());
    let mut cut = false;
    for i in 0..row.len() {
        let cell = row.try_get::<_, Cell>(i)?.0;
        cells.push(match cell {
            Value::String(s) if s.len() > cap => {
                cut = true;
                Value::String(cut_text(s, cap))
            }
            other => other,
        });
    }
    Ok((cells, cut))
}

/// The length of `value` as compact JSON.
fn json_len(value: &Value) -> usize {
    match value {
        // Quotes; escapes are not counted (an estimate that errs by at most 6× on control
        // characters, which the per-value cap bounds anyway).
        Value::String(s) => s.len() + 2,
        other => serde_json::to_vec(other).map_or(0, |v| v.len()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_cut_at_character_boundaries() {
        assert_eq!(cut_text("Zürich".into(), 2), "Z…");
        assert_eq!(cut_text("Zürich".into(), 3), "Zü…");
        assert_eq!(cut_text("abc".into(), 10), "abc…");
        assert_eq!(cut_text("🚀🚀".into(), 5), "🚀…");
    }

    #[test]
    fn the_budget_is_shared_among_columns() {
        let limits = Limits {
            max_rows: 10,
            max_value_bytes: 8192,
            max_result_bytes: 65_536,
        };
        assert_eq!(limits.value_cap(1), 8192);
        assert_eq!(limits.value_cap(16), 4096);
        assert_eq!(limits.value_cap(1664), MIN_VALUE_BYTES);
    }

    #[test]
    fn fixed_size_columns_pass_and_others_are_capped() {
        assert_eq!(plan(&Type::INT8), Plan::Pass);
        assert_eq!(plan(&Type::TEXT), Plan::Capped { as_text: false });
        assert_eq!(plan(&Type::INT4_ARRAY), Plan::Capped { as_text: true });
    }
}
