//! Compiling the backend-neutral [`Filter`] into Qdrant conditions.
//!
//! Metadata lives under the `metadata` payload field, so a filter key `author.name` becomes
//! the Qdrant path `metadata.author.name`; no filter can reach the store's own payload
//! fields (the id, the content, the tenant).
//!
//! Constants fold away before anything is sent: `And []` is "everything", `Or []` and
//! `In []` are "nothing", and a filter that can match nothing ([`Compiled::Nothing`]) is
//! answered without a request at all.

use catena_core::{Error, Filter, RangeBound, RangeFilter, Result};
use qdrant_client::qdrant::{
    self as q, condition::ConditionOneOf, r#match::MatchValue, Condition, FieldCondition,
    IsEmptyCondition, IsNullCondition, Match, Range, RepeatedStrings,
};
use serde_json::Value;

use super::METADATA_FIELD;

/// Integers up to this magnitude are exact in `f64`, so equality through a range
/// `gte = lte = x` is exact for them and matches both integer and float payloads.
const EXACT_F64_INT: u64 = 1 << 53;

/// A compiled filter. Short-lived, so the size of `Where` does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Compiled {
    /// Matches every point (no condition needed).
    All,
    /// Matches no point: the caller answers without asking the server.
    Nothing,
    /// Matches the points satisfying this condition.
    Where(Condition),
}

impl Compiled {
    fn not(self) -> Compiled {
        match self {
            Compiled::All => Compiled::Nothing,
            Compiled::Nothing => Compiled::All,
            Compiled::Where(c) => Compiled::Where(nested(q::Filter {
                must_not: vec![c],
                ..Default::default()
            })),
        }
    }
}

/// Compiles `filter` (validating it first).
///
/// # Errors
/// [`Error::InvalidInput`] for a malformed filter, a range with text bounds (Qdrant has no
/// lexicographic string range), or an equality on a whole object or array.
pub(crate) fn compile(filter: &Filter) -> Result<Compiled> {
    filter.validate()?;
    compile_inner(filter)
}

/// The full Qdrant filter for a request: the compiled user filter and the tenant condition.
/// `None` means "no point can match".
pub(crate) fn request_filter(
    filter: Option<&Filter>,
    tenant: Option<(&str, &str)>,
) -> Result<Option<q::Filter>> {
    let compiled = match filter {
        Some(f) => compile(f)?,
        None => Compiled::All,
    };
    let mut must = Vec::new();
    if let Some((key, value)) = tenant {
        must.push(keyword(key, value));
    }
    match compiled {
        Compiled::Nothing => return Ok(None),
        Compiled::All => {}
        Compiled::Where(c) => must.push(c),
    }
    Ok(Some(q::Filter {
        must,
        ..Default::default()
    }))
}

/// `key == value` on a top-level keyword payload field (the tenant condition).
pub(crate) fn keyword(key: &str, value: &str) -> Condition {
    field(key, |f| {
        f.r#match = Some(Match {
            match_value: Some(MatchValue::Keyword(value.to_owned())),
        });
    })
}

fn compile_inner(filter: &Filter) -> Result<Compiled> {
    Ok(match filter {
        Filter::Eq(k, v) => eq(k, v)?,
        Filter::Ne(k, v) => eq(k, v)?.not(),
        Filter::In(k, vs) => any_of(k, vs)?,
        Filter::NotIn(k, vs) => any_of(k, vs)?.not(),
        Filter::Range(r) => range(r)?,
        Filter::Exists(k) => {
            // Qdrant's `is_empty` holds for a missing field, `null` and `[]`.
            Compiled::Where(nested(q::Filter {
                must_not: vec![Condition {
                    condition_one_of: Some(ConditionOneOf::IsEmpty(IsEmptyCondition {
                        key: path(k),
                    })),
                }],
                ..Default::default()
            }))
        }
        Filter::And(fs) => {
            let mut must = Vec::with_capacity(fs.len());
            for f in fs {
                match compile_inner(f)? {
                    Compiled::All => {}
                    Compiled::Nothing => return Ok(Compiled::Nothing),
                    Compiled::Where(c) => must.push(c),
                }
            }
            match must.len() {
                0 => Compiled::All,
                1 => Compiled::Where(must.remove(0)),
                _ => Compiled::Where(nested(q::Filter {
                    must,
                    ..Default::default()
                })),
            }
        }
        Filter::Or(fs) => {
            let mut should = Vec::with_capacity(fs.len());
            for f in fs {
                match compile_inner(f)? {
                    Compiled::All => return Ok(Compiled::All),
                    Compiled::Nothing => {}
                    Compiled::Where(c) => should.push(c),
                }
            }
            or(should)
        }
        Filter::Not(f) => compile_inner(f)?.not(),
        // `Filter` is non-exhaustive: an operator added later is refused, not guessed.
        #[allow(unreachable_patterns)]
        other => {
            return Err(Error::invalid_input(format!(
                "the Qdrant store cannot compile the filter {other:?}"
            )))
        }
    })
}

fn or(mut should: Vec<Condition>) -> Compiled {
    match should.len() {
        0 => Compiled::Nothing,
        1 => Compiled::Where(should.remove(0)),
        _ => Compiled::Where(nested(q::Filter {
            should,
            ..Default::default()
        })),
    }
}

/// The payload path of a metadata key.
fn path(key: &str) -> String {
    format!("{METADATA_FIELD}.{key}")
}

fn nested(filter: q::Filter) -> Condition {
    Condition {
        condition_one_of: Some(ConditionOneOf::Filter(filter)),
    }
}

fn field(key: &str, set: impl FnOnce(&mut FieldCondition)) -> Condition {
    let mut f = FieldCondition {
        key: key.to_owned(),
        ..Default::default()
    };
    set(&mut f);
    Condition {
        condition_one_of: Some(ConditionOneOf::Field(f)),
    }
}

fn matching(key: &str, value: MatchValue) -> Condition {
    field(&path(key), |f| {
        f.r#match = Some(Match {
            match_value: Some(value),
        });
    })
}

fn exact_number(key: &str, x: f64) -> Condition {
    field(&path(key), |f| {
        f.range = Some(Range {
            gte: Some(x),
            lte: Some(x),
            ..Default::default()
        });
    })
}

/// `Eq`: Qdrant's conditions hold when any element of an array field holds, which is the
/// "array containing the value" rule of [`Filter::Eq`].
fn eq(key: &str, value: &Value) -> Result<Compiled> {
    Ok(Compiled::Where(match value {
        Value::String(s) => matching(key, MatchValue::Keyword(s.clone())),
        Value::Bool(b) => matching(key, MatchValue::Boolean(*b)),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                if i.unsigned_abs() <= EXACT_F64_INT {
                    // A range matches integer and float payloads alike (1 == 1.0).
                    exact_number(key, i as f64)
                } else {
                    // Beyond 2^53 only an exact integer match is exact.
                    matching(key, MatchValue::Integer(i))
                }
            } else if n.is_u64() {
                // Above i64::MAX: the store never holds such a value (upsert rejects it).
                return Ok(Compiled::Nothing);
            } else {
                match n.as_f64() {
                    Some(x) => exact_number(key, x),
                    None => return Ok(Compiled::Nothing),
                }
            }
        }
        Value::Null => Condition {
            condition_one_of: Some(ConditionOneOf::IsNull(IsNullCondition { key: path(key) })),
        },
        Value::Array(_) | Value::Object(_) => {
            return Err(Error::invalid_input(format!(
                "filter on `{key}`: the Qdrant store compares scalar values only, not whole \
                 arrays or objects"
            )))
        }
    }))
}

/// `In`: one keyword match for all-string lists, otherwise an `Or` of equalities.
fn any_of(key: &str, values: &[Value]) -> Result<Compiled> {
    if values.is_empty() {
        return Ok(Compiled::Nothing);
    }
    if values.len() > 1 && values.iter().all(Value::is_string) {
        let strings = values
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect();
        return Ok(Compiled::Where(matching(
            key,
            MatchValue::Keywords(RepeatedStrings { strings }),
        )));
    }
    let mut should = Vec::with_capacity(values.len());
    for v in values {
        match eq(key, v)? {
            Compiled::All => return Ok(Compiled::All),
            Compiled::Nothing => {}
            Compiled::Where(c) => should.push(c),
        }
    }
    Ok(or(should))
}

fn range(r: &RangeFilter) -> Result<Compiled> {
    let number = |b: &Option<RangeBound>| -> Result<Option<f64>> {
        match b {
            None => Ok(None),
            Some(RangeBound::Number(x)) => Ok(Some(*x)),
            Some(_) => Err(Error::invalid_input(format!(
                "range on `{}`: Qdrant has no lexicographic range over strings; only number \
                 bounds are supported by the Qdrant store",
                r.key
            ))),
        }
    };
    let range = Range {
        gt: number(&r.gt)?,
        gte: number(&r.gte)?,
        lt: number(&r.lt)?,
        lte: number(&r.lte)?,
    };
    Ok(Compiled::Where(field(&path(&r.key), |f| {
        f.range = Some(range);
    })))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cond(c: Compiled) -> Condition {
        match c {
            Compiled::Where(c) => c,
            other => panic!("expected a condition, got {other:?}"),
        }
    }

    fn field_of(c: &Condition) -> &FieldCondition {
        match &c.condition_one_of {
            Some(ConditionOneOf::Field(f)) => f,
            other => panic!("expected a field condition, got {other:?}"),
        }
    }

    fn filter_of(c: &Condition) -> &q::Filter {
        match &c.condition_one_of {
            Some(ConditionOneOf::Filter(f)) => f,
            other => panic!("expected a nested filter, got {other:?}"),
        }
    }

    fn match_of(c: &Condition) -> &MatchValue {
        field_of(c)
            .r#match
            .as_ref()
            .and_then(|m| m.match_value.as_ref())
            .expect("a match")
    }

    #[test]
    fn eq_by_value_type() {
        let c = cond(compile(&Filter::eq("lang", "rust")).unwrap());
        assert_eq!(field_of(&c).key, "metadata.lang");
        assert_eq!(match_of(&c), &MatchValue::Keyword("rust".into()));

        let c = cond(compile(&Filter::eq("ok", true)).unwrap());
        assert_eq!(match_of(&c), &MatchValue::Boolean(true));

        // Integers and floats alike become an exact range, so 3 matches 3.0.
        for f in [Filter::eq("i", 3), Filter::eq("i", 3.0)] {
            let c = cond(compile(&f).unwrap());
            let r = field_of(&c).range.unwrap();
            assert_eq!(
                (r.gte, r.lte, r.gt, r.lt),
                (Some(3.0), Some(3.0), None, None)
            );
        }
        let c = cond(compile(&Filter::eq("x", 0.25)).unwrap());
        assert_eq!(field_of(&c).range.unwrap().gte, Some(0.25));

        // Beyond 2^53 an integer match keeps exactness.
        let big = 9_007_199_254_740_993i64;
        let c = cond(compile(&Filter::eq("id", big)).unwrap());
        assert_eq!(match_of(&c), &MatchValue::Integer(big));
        assert_eq!(
            compile(&Filter::eq("id", u64::MAX)).unwrap(),
            Compiled::Nothing
        );

        let c = cond(compile(&Filter::eq("n", Value::Null)).unwrap());
        assert!(matches!(
            &c.condition_one_of,
            Some(ConditionOneOf::IsNull(IsNullCondition { key })) if key == "metadata.n"
        ));
        for v in [json!([1]), json!({"a": 1})] {
            assert!(matches!(
                compile(&Filter::eq("a", v)),
                Err(Error::InvalidInput(_))
            ));
        }
    }

    #[test]
    fn negations_use_must_not() {
        for f in [
            Filter::ne("lang", "rust"),
            Filter::not_in("lang", ["rust", "go"]),
        ] {
            let c = cond(compile(&f).unwrap());
            let inner = filter_of(&c);
            assert!(inner.must.is_empty() && inner.should.is_empty());
            assert_eq!(inner.must_not.len(), 1);
            assert_eq!(field_of(&inner.must_not[0]).key, "metadata.lang");
        }
        // NotIn [] is "everything".
        assert_eq!(
            compile(&Filter::not_in("lang", Vec::<Value>::new())).unwrap(),
            Compiled::All
        );
    }

    #[test]
    fn in_lists() {
        let c = cond(compile(&Filter::is_in("lang", ["rust", "go"])).unwrap());
        assert_eq!(
            match_of(&c),
            &MatchValue::Keywords(RepeatedStrings {
                strings: vec!["rust".into(), "go".into()]
            })
        );
        let c = cond(compile(&Filter::is_in("i", [1, 4, 7])).unwrap());
        let should = &filter_of(&c).should;
        assert_eq!(should.len(), 3);
        assert_eq!(field_of(&should[1]).range.unwrap().gte, Some(4.0));
        // A single value is a plain equality.
        let c = cond(compile(&Filter::is_in("lang", ["rust"])).unwrap());
        assert_eq!(match_of(&c), &MatchValue::Keyword("rust".into()));
        // In [] matches nothing and is answered without a request.
        assert_eq!(
            compile(&Filter::is_in("i", Vec::<i64>::new())).unwrap(),
            Compiled::Nothing
        );
    }

    #[test]
    fn ranges() {
        let c = cond(compile(&Filter::range("i").gt(2.0).lte(6.0)).unwrap());
        let f = field_of(&c);
        assert_eq!(f.key, "metadata.i");
        let r = f.range.unwrap();
        assert_eq!(
            (r.gt, r.gte, r.lt, r.lte),
            (Some(2.0), None, None, Some(6.0))
        );
        let err = compile(&Filter::range("title").gte("t3")).unwrap_err();
        assert!(
            matches!(&err, Error::InvalidInput(m) if m.contains("lexicographic")),
            "{err}"
        );
    }

    #[test]
    fn exists_is_not_empty() {
        let c = cond(compile(&Filter::exists("opt")).unwrap());
        let inner = filter_of(&c);
        assert!(matches!(
            &inner.must_not[..],
            [Condition { condition_one_of: Some(ConditionOneOf::IsEmpty(IsEmptyCondition { key })) }]
                if key == "metadata.opt"
        ));
    }

    #[test]
    fn boolean_structure_and_constants() {
        assert_eq!(compile(&Filter::And(vec![])).unwrap(), Compiled::All);
        assert_eq!(compile(&Filter::Or(vec![])).unwrap(), Compiled::Nothing);
        assert_eq!(compile(&Filter::Or(vec![]).not()).unwrap(), Compiled::All);
        assert_eq!(
            compile(&Filter::And(vec![]).not()).unwrap(),
            Compiled::Nothing
        );
        // Constants fold inside And/Or.
        let f = Filter::eq("a", "x").and(Filter::And(vec![]));
        assert_eq!(
            compile(&f).unwrap(),
            compile(&Filter::eq("a", "x")).unwrap()
        );
        let f = Filter::eq("a", "x").and(Filter::Or(vec![]));
        assert_eq!(compile(&f).unwrap(), Compiled::Nothing);
        let f = Filter::eq("a", "x").or(Filter::And(vec![]));
        assert_eq!(compile(&f).unwrap(), Compiled::All);

        let f = Filter::eq("a", "x").and(Filter::eq("b", "y").or(Filter::eq("c", "z")));
        let c = cond(compile(&f).unwrap());
        let and = filter_of(&c);
        assert_eq!(and.must.len(), 2);
        assert_eq!(filter_of(&and.must[1]).should.len(), 2);

        let c = cond(compile(&Filter::eq("a", "x").not()).unwrap());
        assert_eq!(filter_of(&c).must_not.len(), 1);
    }

    #[test]
    fn nested_keys_and_validation() {
        let c = cond(compile(&Filter::eq("author.name", "Ada")).unwrap());
        assert_eq!(field_of(&c).key, "metadata.author.name");
        let c = cond(compile(&Filter::range("author.year").gte(2003)).unwrap());
        assert_eq!(field_of(&c).key, "metadata.author.year");
        for bad in ["a') OR 1=1 --", "", "a..b", "a b"] {
            assert!(matches!(
                compile(&Filter::eq(bad, 1)),
                Err(Error::InvalidInput(_))
            ));
        }
    }

    #[test]
    fn tenant_condition_is_added_to_every_request_filter() {
        let f = request_filter(Some(&Filter::eq("lang", "rust")), Some(("tenant", "acme")))
            .unwrap()
            .unwrap();
        assert_eq!(f.must.len(), 2);
        assert_eq!(field_of(&f.must[0]).key, "tenant");
        assert_eq!(match_of(&f.must[0]), &MatchValue::Keyword("acme".into()));
        assert_eq!(field_of(&f.must[1]).key, "metadata.lang");

        let f = request_filter(None, Some(("tenant", "acme")))
            .unwrap()
            .unwrap();
        assert_eq!(f.must.len(), 1);
        let f = request_filter(None, None).unwrap().unwrap();
        assert_eq!(f, q::Filter::default());
        assert_eq!(
            request_filter(Some(&Filter::Or(vec![])), Some(("tenant", "acme"))).unwrap(),
            None
        );
        // Metadata keys cannot reach the tenant field: they live under `metadata.`.
        let f = request_filter(
            Some(&Filter::eq("tenant", "other")),
            Some(("tenant", "acme")),
        )
        .unwrap()
        .unwrap();
        assert_eq!(field_of(&f.must[1]).key, "metadata.tenant");
    }
}
