//! [`Filter`] → SQL over the `metadata jsonb` column.
//!
//! Every value **and every key segment** is a bound parameter; the SQL text holds only
//! operators, casts and placeholders. Keys are checked with [`validate_key`] before any SQL
//! is produced, even when the caller already validated the filter.
//!
//! The translation follows [`Filter::matches`], the reference evaluator:
//! - a dotted key `a.b` reads `metadata -> $a -> $b`; `->` with a text operand only descends
//!   into objects (never array indices), like [`catena_core::backend::lookup`];
//! - `Eq` with a scalar value is two containment tests, `metadata @> {"a":{"b":v}}` (the
//!   field equals `v`; jsonb compares numbers numerically, so `1 = 1.0`) or
//!   `metadata @> {"a":{"b":[v]}}` (the field is an array holding `v`). Both can use the GIN
//!   index on `metadata`. Arrays and objects as values compare by jsonb equality instead,
//!   since containment would accept a sub-object;
//! - every predicate is two-valued (never SQL `NULL`), so `Ne`/`NotIn`/`Not` are plain
//!   `NOT (…)` and documents without the field match them;
//! - `Range` with number bounds only matches `jsonb_typeof = 'number'` fields (compared as
//!   `float8`, as the reference compares `f64`); with text bounds only strings, compared
//!   byte-wise with `COLLATE "C"`.

use catena_core::backend::validate_key;
use catena_core::{Error, Filter, RangeBound, RangeFilter, Result};
use serde_json::Value;

use super::sql::{Jsonb, Params};

/// Filters nested deeper than this are refused (they would only come from untrusted input).
const MAX_DEPTH: usize = 64;

/// Compiles `filter` into a boolean SQL expression over the column `metadata`, binding its
/// values into `params`.
///
/// # Errors
/// [`Error::InvalidInput`] for an invalid filter (bad key, mixed or non-finite range bounds,
/// too deep, too many values).
pub(crate) fn compile(filter: &Filter, params: &mut Params) -> Result<String> {
    filter.validate()?;
    let sql = compile_at(filter, params, 0)?;
    params.check_limit()?;
    Ok(sql)
}

fn compile_at(filter: &Filter, params: &mut Params, depth: usize) -> Result<String> {
    if depth > MAX_DEPTH {
        return Err(Error::invalid_input(format!(
            "filter nests deeper than {MAX_DEPTH} levels"
        )));
    }
    Ok(match filter {
        Filter::Eq(k, v) => eq(k, v, params)?,
        Filter::Ne(k, v) => format!("(NOT {})", eq(k, v, params)?),
        Filter::In(k, vs) => any_eq(k, vs, params)?,
        Filter::NotIn(k, vs) => format!("(NOT {})", any_eq(k, vs, params)?),
        Filter::Range(r) => range(r, params)?,
        Filter::Exists(k) => {
            let field = field(k, params)?;
            format!("COALESCE(jsonb_typeof({field}) <> 'null', false)")
        }
        Filter::And(fs) => join(fs, " AND ", "TRUE", params, depth)?,
        Filter::Or(fs) => join(fs, " OR ", "FALSE", params, depth)?,
        Filter::Not(f) => format!("(NOT {})", compile_at(f, params, depth + 1)?),
        // `Filter` is non-exhaustive: refuse what this version cannot translate faithfully.
        other => {
            return Err(Error::invalid_input(format!(
                "the pgvector store cannot translate filter {other:?}"
            )))
        }
    })
}

fn join(fs: &[Filter], op: &str, empty: &str, params: &mut Params, depth: usize) -> Result<String> {
    if fs.is_empty() {
        return Ok(empty.to_owned());
    }
    let parts = fs
        .iter()
        .map(|f| compile_at(f, params, depth + 1))
        .collect::<Result<Vec<_>>>()?;
    Ok(format!("({})", parts.join(op)))
}

/// The key's segments, checked again here so no unchecked key can reach SQL.
fn segments(key: &str) -> Result<Vec<&str>> {
    validate_key(key)?;
    Ok(key.split('.').collect())
}

/// `metadata -> $a -> $b` for the key `a.b` (object descent only).
fn field(key: &str, params: &mut Params) -> Result<String> {
    let mut sql = String::from("metadata");
    for seg in segments(key)? {
        let p = params.push(seg.to_owned());
        sql.push_str(&format!(" -> ({p}::text)"));
    }
    Ok(format!("({sql})"))
}

/// `{"a": {"b": leaf}}` for the key `a.b`.
fn nest(key: &str, leaf: Value) -> Result<Value> {
    let mut v = leaf;
    for seg in segments(key)?.into_iter().rev() {
        let mut m = serde_json::Map::new();
        m.insert(seg.to_owned(), v);
        v = Value::Object(m);
    }
    Ok(v)
}

fn eq(key: &str, value: &Value, params: &mut Params) -> Result<String> {
    match value {
        Value::Array(_) | Value::Object(_) => {
            // Exact jsonb equality of the field, or of one of its array items.
            let field = field(key, params)?;
            let p = params.push(Jsonb(value.clone()));
            Ok(format!(
                "COALESCE({field} = {p}::jsonb OR (CASE WHEN jsonb_typeof({field}) = 'array' \
                 THEN EXISTS (SELECT 1 FROM jsonb_array_elements({field}) AS e(v) WHERE e.v = {p}::jsonb) \
                 ELSE false END), false)"
            ))
        }
        scalar => {
            let equal = params.push(Jsonb(nest(key, scalar.clone())?));
            let member = params.push(Jsonb(nest(key, Value::Array(vec![scalar.clone()]))?));
            Ok(format!(
                "(metadata @> {equal}::jsonb OR metadata @> {member}::jsonb)"
            ))
        }
    }
}

fn any_eq(key: &str, values: &[Value], params: &mut Params) -> Result<String> {
    if values.is_empty() {
        // Still check the key, so a bad key is an error even with no values.
        segments(key)?;
        return Ok("FALSE".to_owned());
    }
    let parts = values
        .iter()
        .map(|v| eq(key, v, params))
        .collect::<Result<Vec<_>>>()?;
    Ok(format!("({})", parts.join(" OR ")))
}

fn range(r: &RangeFilter, params: &mut Params) -> Result<String> {
    let field = field(&r.key, params)?;
    let text = matches!(r.bounds().next(), Some(RangeBound::Text(_)));
    let (typ, value) = if text {
        ("string", format!("(({field} #>> '{{}}') COLLATE \"C\")"))
    } else {
        ("number", format!("({field})::float8"))
    };
    let mut conds = Vec::new();
    for (bound, op) in [(&r.gt, ">"), (&r.gte, ">="), (&r.lt, "<"), (&r.lte, "<=")] {
        let Some(bound) = bound else { continue };
        let p = match bound {
            RangeBound::Number(n) => format!("{}::float8", params.push(*n)),
            RangeBound::Text(s) => format!("({}::text COLLATE \"C\")", params.push(s.clone())),
            other => {
                return Err(Error::invalid_input(format!(
                    "the pgvector store cannot translate range bound {other:?}"
                )))
            }
        };
        conds.push(format!("{value} {op} {p}"));
    }
    let cond = if conds.is_empty() {
        "true".to_owned()
    } else {
        conds.join(" AND ")
    };
    Ok(format!(
        "COALESCE(CASE WHEN jsonb_typeof({field}) = '{typ}' THEN {cond} ELSE false END, false)"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sql(f: &Filter) -> (String, Vec<String>) {
        let mut p = Params::new();
        let s = compile(f, &mut p).unwrap();
        let vals = format!("{p:?}");
        (s, vec![vals])
    }

    #[test]
    fn scalar_eq_is_two_containments_with_bound_values() {
        let (s, p) = sql(&Filter::eq("author.name", "x'y"));
        assert_eq!(s, "(metadata @> $1::jsonb OR metadata @> $2::jsonb)");
        assert!(
            p[0].contains(r#"{"author": Object {"name": String("x'y")}}"#) || p[0].contains("x'y")
        );
    }

    #[test]
    fn keys_are_parameters_too() {
        let (s, _) = sql(&Filter::exists("a.b-c.d_e"));
        assert_eq!(
            s,
            "COALESCE(jsonb_typeof((metadata -> ($1::text) -> ($2::text) -> ($3::text))) <> 'null', false)"
        );
    }

    #[test]
    fn negations_and_empty_lists() {
        let (s, _) = sql(&Filter::ne("a", 1));
        assert!(s.starts_with("(NOT (metadata @>"));
        let (s, _) = sql(&Filter::is_in("a", Vec::<Value>::new()));
        assert_eq!(s, "FALSE");
        let (s, _) = sql(&Filter::not_in("a", Vec::<Value>::new()));
        assert_eq!(s, "(NOT FALSE)");
        assert_eq!(sql(&Filter::And(vec![])).0, "TRUE");
        assert_eq!(sql(&Filter::Or(vec![])).0, "FALSE");
    }

    #[test]
    fn ranges_are_typed() {
        let (s, _) = sql(&Filter::range("year").gte(2000).lt(2010));
        assert!(s.contains("jsonb_typeof((metadata -> ($1::text))) = 'number'"));
        assert!(s.contains("::float8 >= $2::float8"));
        assert!(s.contains("::float8 < $3::float8"));
        let (s, _) = sql(&Filter::range("title").gt("t"));
        assert!(s.contains("= 'string'"));
        assert!(s.contains("COLLATE \"C\") > ($2::text COLLATE \"C\")"));
        let (s, _) = sql(&Filter::Range(Filter::range("n")));
        assert!(s.contains("= 'number' THEN true"));
    }

    #[test]
    fn injection_keys_are_rejected_before_sql() {
        for key in [
            "a') OR 1=1 --",
            "a b",
            "a..b",
            "",
            "a;DROP TABLE x",
            "a\"b",
            "é",
        ] {
            let mut p = Params::new();
            let err = compile(&Filter::eq(key, 1), &mut p);
            assert!(matches!(err, Err(Error::InvalidInput(_))), "{key:?}");
            assert_eq!(p.len(), 0);
            // The compiler checks keys itself too, even past `Filter::validate`.
            assert!(matches!(
                field(key, &mut Params::new()),
                Err(Error::InvalidInput(_))
            ));
        }
        let mut p = Params::new();
        let nested = Filter::eq("ok", 1).and(Filter::is_in("x') --", Vec::<Value>::new()));
        assert!(matches!(
            compile(&nested, &mut p),
            Err(Error::InvalidInput(_))
        ));
    }

    #[test]
    fn values_never_reach_the_sql_text() {
        let evil = "'; DROP TABLE x; -- $1 \\ \"";
        let f = Filter::eq("a", evil)
            .or(Filter::range("b").gte(evil))
            .or(Filter::is_in("c", [evil]))
            .or(Filter::eq("d", serde_json::json!([evil])));
        let mut p = Params::new();
        let s = compile(&f, &mut p).unwrap();
        assert!(!s.contains("DROP"), "{s}");
        assert!(!s.contains('\\'), "{s}");
    }

    #[test]
    fn depth_is_bounded() {
        let mut f = Filter::eq("a", 1);
        for _ in 0..(MAX_DEPTH + 2) {
            f = f.not();
        }
        assert!(matches!(
            compile(&f, &mut Params::new()),
            Err(Error::InvalidInput(_))
        ));
    }
}
