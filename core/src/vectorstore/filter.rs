//! The backend-neutral metadata filter.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::document::Metadata;
use crate::error::{Error, Result};

/// A condition on document metadata, translated by each store into its native filter.
///
/// Keys name metadata fields; a dotted key (`"author.name"`) reaches into nested objects.
/// A key is one or more segments of ASCII letters, digits, `_` and `-`, joined by `.`;
/// anything else is rejected by [`Filter::validate`], so no key can carry syntax into a
/// store's query language. The semantics every store must honour (the conformance suite
/// checks them):
/// - [`Eq`](Filter::Eq): the field equals the value (numbers compare numerically, `1 == 1.0`),
///   or the field is an array that contains the value.
/// - [`Ne`](Filter::Ne): not `Eq`, so documents **without** the field match.
/// - [`In`](Filter::In): `Eq` for any of the values; an empty list matches nothing.
/// - [`NotIn`](Filter::NotIn): not `In`; documents without the field match.
/// - [`Range`](Filter::Range): with number bounds, the field is a number within them; with
///   text bounds, the field is a string within them in byte-wise (code point) order. Other
///   values and missing fields do not match.
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
    /// Field is within bounds (numbers, or strings in byte-wise order).
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

/// One bound of a [`RangeFilter`]: a number, or a string compared byte-wise.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
#[non_exhaustive]
pub enum RangeBound {
    /// Matches numeric fields.
    Number(f64),
    /// Matches string fields, in byte-wise (code point) order.
    Text(String),
}

impl From<f64> for RangeBound {
    fn from(v: f64) -> Self {
        RangeBound::Number(v)
    }
}

impl From<i64> for RangeBound {
    fn from(v: i64) -> Self {
        // Precision beyond 2^53 is not representable in the comparison anyway.
        RangeBound::Number(v as f64)
    }
}

impl From<i32> for RangeBound {
    fn from(v: i32) -> Self {
        RangeBound::Number(f64::from(v))
    }
}

impl From<&str> for RangeBound {
    fn from(v: &str) -> Self {
        RangeBound::Text(v.to_owned())
    }
}

impl From<String> for RangeBound {
    fn from(v: String) -> Self {
        RangeBound::Text(v)
    }
}

impl RangeBound {
    /// Compares a metadata value with this bound: `Some(ordering of value vs bound)` when
    /// they are of the same type, `None` otherwise.
    fn compare(&self, value: &Value) -> Option<std::cmp::Ordering> {
        match (self, value) {
            (RangeBound::Number(b), Value::Number(n)) => n.as_f64()?.partial_cmp(b),
            (RangeBound::Text(b), Value::String(s)) => Some(s.as_bytes().cmp(b.as_bytes())),
            _ => None,
        }
    }
}

/// Bounds on one field; build it with [`Filter::range`]. All bounds of one range must be
/// of the same type ([`Filter::validate`] checks).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct RangeFilter {
    /// The field.
    pub key: String,
    /// Exclusive lower bound.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gt: Option<RangeBound>,
    /// Inclusive lower bound.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gte: Option<RangeBound>,
    /// Exclusive upper bound.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lt: Option<RangeBound>,
    /// Inclusive upper bound.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lte: Option<RangeBound>,
}

impl RangeFilter {
    /// Sets the exclusive lower bound.
    #[must_use]
    pub fn gt(mut self, v: impl Into<RangeBound>) -> Filter {
        self.gt = Some(v.into());
        Filter::Range(self)
    }
    /// Sets the inclusive lower bound.
    #[must_use]
    pub fn gte(mut self, v: impl Into<RangeBound>) -> Filter {
        self.gte = Some(v.into());
        Filter::Range(self)
    }
    /// Sets the exclusive upper bound.
    #[must_use]
    pub fn lt(mut self, v: impl Into<RangeBound>) -> Filter {
        self.lt = Some(v.into());
        Filter::Range(self)
    }
    /// Sets the inclusive upper bound.
    #[must_use]
    pub fn lte(mut self, v: impl Into<RangeBound>) -> Filter {
        self.lte = Some(v.into());
        Filter::Range(self)
    }

    /// The bounds that are set, in the order gt, gte, lt, lte.
    pub fn bounds(&self) -> impl Iterator<Item = &RangeBound> {
        [&self.gt, &self.gte, &self.lt, &self.lte]
            .into_iter()
            .flatten()
    }

    fn contains(&self, x: &Value) -> bool {
        use std::cmp::Ordering::{Equal, Greater, Less};
        let check = |b: &Option<RangeBound>, ok: &[std::cmp::Ordering]| {
            b.as_ref()
                .is_none_or(|b| b.compare(x).is_some_and(|o| ok.contains(&o)))
        };
        // A range with no bounds still requires a value of a comparable type: a number.
        let typed = self
            .bounds()
            .next()
            .map_or(x.is_number(), |b| b.compare(x).is_some());
        typed
            && check(&self.gt, &[Greater])
            && check(&self.gte, &[Greater, Equal])
            && check(&self.lt, &[Less])
            && check(&self.lte, &[Less, Equal])
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
    pub fn lt(self, v: impl Into<RangeBound>) -> Filter {
        self.with_range(|r| r.lt(v))
    }
    /// Adds a bound to a range filter (other filters are returned unchanged).
    #[must_use]
    pub fn lte(self, v: impl Into<RangeBound>) -> Filter {
        self.with_range(|r| r.lte(v))
    }
    /// Adds a bound to a range filter (other filters are returned unchanged).
    #[must_use]
    pub fn gt(self, v: impl Into<RangeBound>) -> Filter {
        self.with_range(|r| r.gt(v))
    }
    /// Adds a bound to a range filter (other filters are returned unchanged).
    #[must_use]
    pub fn gte(self, v: impl Into<RangeBound>) -> Filter {
        self.with_range(|r| r.gte(v))
    }

    fn with_range(self, f: impl FnOnce(RangeFilter) -> Filter) -> Filter {
        match self {
            Filter::Range(r) => f(r),
            other => other,
        }
    }

    /// Checks the filter is well formed: every key is a valid path (see [`Filter`]), range
    /// bounds are finite and of one type.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] naming the problem.
    pub fn validate(&self) -> Result<()> {
        match self {
            Filter::Eq(k, _) | Filter::Ne(k, _) | Filter::In(k, _) | Filter::NotIn(k, _) => {
                validate_key(k)
            }
            Filter::Exists(k) => validate_key(k),
            Filter::Range(r) => {
                validate_key(&r.key)?;
                let mut kinds = r.bounds().map(|b| matches!(b, RangeBound::Number(_)));
                if let Some(first) = kinds.next() {
                    if kinds.any(|k| k != first) {
                        return Err(Error::invalid_input(format!(
                            "range on `{}` mixes number and text bounds",
                            r.key
                        )));
                    }
                }
                for b in r.bounds() {
                    if let RangeBound::Number(n) = b {
                        if !n.is_finite() {
                            return Err(Error::invalid_input(format!(
                                "range bound on `{}` must be finite, got {n}",
                                r.key
                            )));
                        }
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
            Filter::Eq(k, v) => lookup(metadata, k).is_some_and(|x| value_matches(x, v)),
            Filter::Ne(k, v) => !lookup(metadata, k).is_some_and(|x| value_matches(x, v)),
            Filter::In(k, vs) => {
                lookup(metadata, k).is_some_and(|x| vs.iter().any(|v| value_matches(x, v)))
            }
            Filter::NotIn(k, vs) => {
                !lookup(metadata, k).is_some_and(|x| vs.iter().any(|v| value_matches(x, v)))
            }
            Filter::Range(r) => lookup(metadata, &r.key).is_some_and(|x| r.contains(x)),
            Filter::Exists(k) => lookup(metadata, k).is_some_and(|x| !x.is_null()),
            Filter::And(fs) => fs.iter().all(|f| f.matches(metadata)),
            Filter::Or(fs) => fs.iter().any(|f| f.matches(metadata)),
            Filter::Not(f) => !f.matches(metadata),
        }
    }
}

/// Checks a filter key: segments of ASCII letters, digits, `_` and `-`, joined by `.`.
///
/// # Errors
/// [`Error::InvalidInput`] naming the key.
pub fn validate_key(key: &str) -> Result<()> {
    let ok = !key.is_empty()
        && key.len() <= 256
        && key.split('.').all(|seg| {
            !seg.is_empty()
                && seg
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        });
    if ok {
        Ok(())
    } else {
        Err(Error::invalid_input(format!(
            "invalid filter key {key:?}: use segments of letters, digits, `_` or `-` joined by `.`"
        )))
    }
}

/// The value at a dotted path in `metadata`.
pub fn lookup<'a>(metadata: &'a Metadata, key: &str) -> Option<&'a Value> {
    let mut parts = key.split('.');
    let mut current = metadata.get(parts.next()?)?;
    for part in parts {
        current = current.as_object()?.get(part)?;
    }
    Some(current)
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
        assert!(Filter::range("s").gte("s").lt("u").matches(&m));
        assert!(
            !Filter::range("a").gte("0").matches(&m),
            "text bounds skip numbers"
        );
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
    fn nested_paths() {
        let m = meta(json!({"author": {"name": "Ada", "born": 1815, "tags": ["math"]}, "flat": 1}));
        assert!(Filter::eq("author.name", "Ada").matches(&m));
        assert!(Filter::eq("author.tags", "math").matches(&m));
        assert!(Filter::range("author.born").lt(1900).matches(&m));
        assert!(Filter::exists("author.born").matches(&m));
        assert!(!Filter::exists("author.died").matches(&m));
        assert!(!Filter::exists("flat.deeper").matches(&m));
        assert!(Filter::ne("author.died", 1).matches(&m));
    }

    #[test]
    fn validation_and_serde() {
        assert!(Filter::eq("", 1).validate().is_err());
        assert!(Filter::range("x").lt(f64::NAN).validate().is_err());
        assert!(Filter::range("x").gt(1.0).lt("z").validate().is_err());
        for bad in ["a') OR 1=1 --", "a..b", ".a", "a b", "a\"", "é"] {
            assert!(Filter::eq(bad, 1).validate().is_err(), "{bad}");
        }
        assert!(Filter::exists("author.name_2.x-y").validate().is_ok());
        let f = Filter::eq("a", 1).and(Filter::range("b").gte(2.0).not());
        assert!(f.validate().is_ok());
        let back: Filter = serde_json::from_str(&serde_json::to_string(&f).unwrap()).unwrap();
        assert_eq!(back, f);
    }
}
