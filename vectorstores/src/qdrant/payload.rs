//! Converting between JSON metadata and Qdrant payload values.

use std::collections::HashMap;

use catena_core::{Error, Metadata, Result};
use qdrant_client::qdrant::{self as q, value::Kind};
use serde_json::{Number, Value};

/// JSON to a Qdrant value. `path` names the value in errors.
///
/// # Errors
/// [`Error::InvalidInput`] for integers above `i64::MAX`, which Qdrant cannot hold exactly.
pub(crate) fn to_qdrant(value: &Value, path: &str) -> Result<q::Value> {
    let kind = match value {
        Value::Null => Kind::NullValue(0),
        Value::Bool(b) => Kind::BoolValue(*b),
        Value::String(s) => Kind::StringValue(s.clone()),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                Kind::IntegerValue(i)
            } else if n.is_u64() {
                return Err(Error::invalid_input(format!(
                    "metadata `{path}`: {n} is above i64::MAX, which Qdrant cannot store exactly"
                )));
            } else {
                Kind::DoubleValue(n.as_f64().unwrap_or(f64::NAN))
            }
        }
        Value::Array(items) => Kind::ListValue(q::ListValue {
            values: items
                .iter()
                .enumerate()
                .map(|(i, v)| to_qdrant(v, &format!("{path}[{i}]")))
                .collect::<Result<_>>()?,
        }),
        Value::Object(map) => Kind::StructValue(to_struct(map, path)?),
    };
    Ok(q::Value { kind: Some(kind) })
}

/// A JSON object to a Qdrant struct.
pub(crate) fn to_struct(map: &Metadata, path: &str) -> Result<q::Struct> {
    let fields = map
        .iter()
        .map(|(k, v)| {
            let p = if path.is_empty() {
                k.clone()
            } else {
                format!("{path}.{k}")
            };
            Ok((k.clone(), to_qdrant(v, &p)?))
        })
        .collect::<Result<HashMap<_, _>>>()?;
    Ok(q::Struct { fields })
}

/// A Qdrant value to JSON (a non-finite float, which JSON cannot hold, becomes `null`).
pub(crate) fn from_qdrant(value: q::Value) -> Value {
    match value.kind {
        None | Some(Kind::NullValue(_)) => Value::Null,
        Some(Kind::BoolValue(b)) => Value::Bool(b),
        Some(Kind::IntegerValue(i)) => Value::Number(i.into()),
        Some(Kind::DoubleValue(x)) => Number::from_f64(x).map_or(Value::Null, Value::Number),
        Some(Kind::StringValue(s)) => Value::String(s),
        Some(Kind::ListValue(l)) => Value::Array(l.values.into_iter().map(from_qdrant).collect()),
        Some(Kind::StructValue(s)) => Value::Object(from_struct(s)),
    }
}

/// A Qdrant struct to a JSON object.
pub(crate) fn from_struct(s: q::Struct) -> Metadata {
    s.fields
        .into_iter()
        .map(|(k, v)| (k, from_qdrant(v)))
        .collect()
}

/// A string payload value.
pub(crate) fn string(s: impl Into<String>) -> q::Value {
    q::Value {
        kind: Some(Kind::StringValue(s.into())),
    }
}

/// The string in a payload value, if it is one.
pub(crate) fn as_str(v: &q::Value) -> Option<&str> {
    match &v.kind {
        Some(Kind::StringValue(s)) => Some(s),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn round_trip() {
        let m = json!({
            "s": "x'y\"z", "i": -3, "big": 9_007_199_254_740_991i64, "f": 0.1, "one": 1.0,
            "b": true, "n": null, "nested": {"a": [1, 2, {"b": null}], "e": []},
        });
        let m = m.as_object().unwrap().clone();
        let back = from_struct(to_struct(&m, "").unwrap());
        assert_eq!(back, m);
    }

    #[test]
    fn huge_integers_are_refused() {
        let m = json!({"a": {"b": [u64::MAX]}});
        let err = to_struct(m.as_object().unwrap(), "").unwrap_err();
        assert!(
            matches!(&err, Error::InvalidInput(msg) if msg.contains("a.b[0]")),
            "{err}"
        );
    }
}
