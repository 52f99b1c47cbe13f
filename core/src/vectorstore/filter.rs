//! The backend-neutral metadata filter.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::document::Metadata;
use crate::error::{Error, Result};

/// A condition on document metadata, translated by each store into its native filter.
///
/// Keys name top-level metadata fields. The semantics every store must honour (the
/// conformance suite checks them):
/// - [`Eq`](Filter::Eq): the field equals the value (numbers compare numerically, `1 == 1.0`),
///   or the field is an array that contains the value.
/// - [`Ne`](Filter::Ne): not `Eq`, so documents **without** the field match.
/// - [`In`](Filter::In): `Eq` for any of the values; an empty list matches nothing.
/// - [`NotIn`](Filter::NotIn): not `In`; documents without the field match.
/// - [`Range`](Filter::Range): the field is a number within the bounds; other values and
///   missing fields do not match.
/// - [`Exists`](Filter::Exists): the field is present and not `null`.
/// - [`And`](Filter::And) of nothing is true, [`Or`](Filter::Or) of nothing is false.
///
/// ```
/// use catena_core::Filter;
/// use serde_json::json;
///
/// let f = Filter::eq("lang", "rust").and(Filter::range("year").gte(2015.0).lt(2025.0));
/// let meta = json!({"lang": "rust", "year": 2021}).as_object().unwrap().clone();
/// assert!(f.matches(&meta));
/// let meta = json!({"lang": "rust", "year": 2010}).as_object().unwrap().clone();
/// assert!(!f.matches(&meta));
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Filter {
    /// Field equals value (or is an array containing it).
    Eq(String, Value),
    /// Not [`Filter::Eq`].
    Ne(String, Value),
    /// Field equals one of the values.
    In(String, Vec<Value>),
    /// Not [`Filter::In`].
    NotIn(String, Vec<Value>),
    /// Field is a number within bounds.
    Range(RangeFilter),
    /// Field is present and not null.
    Exists(String),
    /// All of these hold.
    And(Vec<Filter>),
    /// At least one of these holds.
    Or(Vec<Filter>),
    /// This does not hold.
    Not(Box<Filter>),
}

/// Numeric bounds on one field; build it with [`Filter::range`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct RangeFilter {
    /// The field.
    pub key: String,
    /// Exclusive lower bound.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gt: Option<f64>,
    /// Inclusive lower bound.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gte: Option<f64>,
    /// Exclusive upper bound.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lt: Option<f64>,
    /// Inclusive upper bound.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lte: Option<f64>,
}

impl RangeFilter {
    /// Sets the exclusive lower bound.
    #[must_use]
    pub fn gt(mut self, v: f64) -> Filter {
        self.gt = Some(v);
        Filter::Range(self)
    }
    /// Sets the inclusive lower bound.
    #[must_use]
    pub fn gte(mut self, v: f64) -> Filter {
        self.gte = Some(v);
        Filter::Range(self)
    }
    /// Sets the exclusive upper bound.
    #[must_use]
    pub fn lt(mut self, v: f64) -> Filter {
        self.lt = Some(v);
        Filter::Range(self)
    }
    /// Sets the inclusive upper bound.
    #[must_use]
    pub fn lte(mut self, v: f64) -> Filter {
        self.lte = Some(v);
        Filter::Range(self)
    }

    fn contains(&self, x: f64) -> bool {
        self.gt.is_none_or(|b| x > b)
            && self.gte.is_none_or(|b| x >= b)
            && self.lt.is_none_or(|b| x < b)
            && self.lte.is_none_or(|b| x <= b)
    }
}

/// Lets a bound be added to an existing range filter: `Filter::range("x").gte(1.0).lt(5.0)`.
impl Filter {
    /// Field equals value.
    pub fn eq(key: impl Into<String>, value: impl Into<Value>) -> Filter {
        Filter::Eq(key.into(), value.into())
    }
    /// Field does not equal value (missing fields match).
    pub fn ne(key: impl Into<String>, value: impl Into<Value>) -> Filter {
        Filter::Ne(key.into(), value.into())
    }
    /// Field equals one of the values.
    pub fn is_in<V: Into<Value>>(
        key: impl Into<String>,
        values: impl IntoIterator<Item = V>,
    ) -> Filter {
        Filter::In(key.into(), values.into_iter().map(Into::into).collect())
    }
    /// Field equals none of the values (missing fields match).
    pub fn not_in<V: Into<Value>>(
        key: impl Into<String>,
        values: impl IntoIterator<Item = V>,
    ) -> Filter {
        Filter::NotIn(key.into(), values.into_iter().map(Into::into).collect())
    }
    /// An unbounded range on `key`; add bounds with `gt`/`gte`/`lt`/`lte`.
    pub fn range(key: impl Into<String>) -> RangeFilter {
        RangeFilter {
            key: key.into(),
            gt: None,
            gte: None,
            lt: None,
            lte: None,
        }
    }
    /// Field is present and not null.
    pub fn exists(key: impl Into<String>) -> Filter {
        Filter::Exists(key.into())
    }
    /// Both this and `other`.
    #[must_use]
    pub fn and(self, other: Filter) -> Filter {
        match self {
            Filter::And(mut v) => {
                v.push(other);
                Filter::And(v)
            }
            f => Filter::And(vec![f, other]),
        }
    }
    /// This or `other`.
    #[must_use]
    pub fn or(self, other: Filter) -> Filter {
        match self {
            Filter::Or(mut v) => {
                v.push(other);
                Filter::Or(v)
            }
            f => Filter::Or(vec![f, other]),
        }
    }
    /// The negation.
    #[allow(clippy::should_implement_trait)]
    #[must_use]
    pub fn not(self) -> Filter {
        Filter::Not(Box::new(self))
    }

    /// Adds a bound to a range filter (other filters are returned unchanged).
    #[must_use]
    pub fn lt(self, v: f64) -> Filter {
        self.with_range(|r| r.lt(v))
    }
    /// Adds a bound to a range filter (other filters are returned unchanged).
    #[must_use]
    pub fn lte(self, v: f64) -> Filter {
        self.with_range(|r| r.lte(v))
    }
    /// Adds a bound to a range filter (other filters are returned unchanged).
    #[must_use]
    pub fn gt(self, v: f64) -> Filter {
        self.with_range(|r| r.gt(v))
    }
    /// Adds a bound to a range filter (other filters are returned unchanged).
    #[must_use]
    pub fn gte(self, v: f64) -> Filter {
        self.with_range(|r| r.gte(v))
    }

    fn with_range(self, f: impl FnOnce(RangeFilter) -> Filter) -> Filter {
        match self {
            Filter::Range(r) => f(r),
            other => other,
        }
    }

    /// Checks the filter is well formed: keys non-empty, range bounds finite.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] naming the problem.
    pub fn validate(&self) -> Result<()> {
        let key_ok = |k: &str| {
            if k.is_empty() {
                Err(Error::invalid_input("filter key must not be empty"))
            } else {
                Ok(())
            }
        };
        match self {
            Filter::Eq(k, _) | Filter::Ne(k, _) | Filter::In(k, _) | Filter::NotIn(k, _) => {
                key_ok(k)
            }
            Filter::Exists(k) => key_ok(k),
            Filter::Range(r) => {
                key_ok(&r.key)?;
                for b in [r.gt, r.gte, r.lt, r.lte].into_iter().flatten() {
                    if !b.is_finite() {
                        return Err(Error::invalid_input(format!(
                            "range bound on `{}` must be finite, got {b}",
                            r.key
                        )));
                    }
                }
                Ok(())
            }
            Filter::And(fs) | Filter::Or(fs) => fs.iter().try_for_each(Filter::validate),
            Filter::Not(f) => f.validate(),
        }
    }

    /// Evaluates the filter against metadata, with the semantics documented on [`Filter`].
    pub fn matches(&self, metadata: &Metadata) -> bool {
        match self {
            Filter::Eq(k, v) => metadata.get(k).is_some_and(|x| value_matches(x, v)),
            Filter::Ne(k, v) => !metadata.get(k).is_some_and(|x| value_matches(x, v)),
            Filter::In(k, vs) => metadata
                .get(k)
                .is_some_and(|x| vs.iter().any(|v| value_matches(x, v))),
            Filter::NotIn(k, vs) => !metadata
                .get(k)
                .is_some_and(|x| vs.iter().any(|v| value_matches(x, v))),
            Filter::Range(r) => metadata
                .get(&r.key)
                .and_then(Value::as_f64)
                .is_some_and(|x| r.contains(x)),
            Filter::Exists(k) => metadata.get(k).is_some_and(|x| !x.is_null()),
            Filter::And(fs) => fs.iter().all(|f| f.matches(metadata)),
            Filter::Or(fs) => fs.iter().any(|f| f.matches(metadata)),
            Filter::Not(f) => !f.matches(metadata),
        }
    }
}

fn scalar_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            if let (Some(x), Some(y)) = (x.as_i64(), y.as_i64()) {
                x == y
            } else if let (Some(x), Some(y)) = (x.as_u64(), y.as_u64()) {
                x == y
            } else if x.is_f64() || y.is_f64() {
                // One side is fractional (or out of integer range): compare as numbers.
                matches!((x.as_f64(), y.as_f64()), (Some(x), Some(y)) if x == y)
            } else {
                // One negative integer and one beyond i64: never equal.
                false
            }
        }
        _ => a == b,
    }
}

fn value_matches(field: &Value, wanted: &Value) -> bool {
    if scalar_eq(field, wanted) {
        return true;
    }
    match field {
        Value::Array(items) => items.iter().any(|i| scalar_eq(i, wanted)),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn meta(v: Value) -> Metadata {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn semantics_of_each_operator() {
        let m = meta(json!({"a": 1, "tags": ["x", "y"], "s": "t", "n": null}));
        assert!(Filter::eq("a", 1.0).matches(&m));
        // Integers beyond 2^53 compare exactly, not through f64.
        let big = meta(json!({"id": 9_007_199_254_740_992u64}));
        assert!(!Filter::eq("id", 9_007_199_254_740_993u64).matches(&big));
        assert!(Filter::eq("id", 9_007_199_254_740_992u64).matches(&big));
        assert!(Filter::eq("tags", "y").matches(&m));
        assert!(!Filter::eq("missing", 1).matches(&m));
        assert!(Filter::ne("missing", 1).matches(&m));
        assert!(!Filter::ne("a", 1).matches(&m));
        assert!(Filter::is_in("s", ["u", "t"]).matches(&m));
        assert!(!Filter::is_in("s", Vec::<Value>::new()).matches(&m));
        assert!(Filter::not_in("s", ["u"]).matches(&m));
        assert!(Filter::not_in("missing", ["u"]).matches(&m));
        assert!(Filter::range("a").gte(1.0).lt(2.0).matches(&m));
        assert!(!Filter::range("a").gt(1.0).matches(&m));
        assert!(!Filter::range("s").gt(0.0).matches(&m));
        assert!(Filter::exists("a").matches(&m));
        assert!(!Filter::exists("n").matches(&m));
        assert!(Filter::And(vec![]).matches(&m));
        assert!(!Filter::Or(vec![]).matches(&m));
        assert!(Filter::eq("a", 2).or(Filter::eq("s", "t")).matches(&m));
        assert!(Filter::eq("a", 2).not().matches(&m));
    }

    #[test]
    fn validation_and_serde() {
        assert!(Filter::eq("", 1).validate().is_err());
        assert!(Filter::range("x").lt(f64::NAN).validate().is_err());
        let f = Filter::eq("a", 1).and(Filter::range("b").gte(2.0).not());
        assert!(f.validate().is_ok());
        let back: Filter = serde_json::from_str(&serde_json::to_string(&f).unwrap()).unwrap();
        assert_eq!(back, f);
    }
}
