//! The values a template is formatted with.

use std::collections::{btree_map, BTreeMap, HashMap};

use serde_json::Value;

use crate::Message;

/// One value for a template variable: text for a `{variable}` slot, or messages for a
/// [`MessagesPlaceholder`](super::MessagesPlaceholder).
///
/// Converts from strings, numbers, booleans, JSON values (strings as is, anything else as
/// compact JSON) and message lists.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum PromptValue {
    /// Text, inserted verbatim.
    Text(String),
    /// Messages, inserted by a messages placeholder.
    Messages(Vec<Message>),
}

impl PromptValue {
    /// The text, when this is text.
    pub fn as_text(&self) -> Option<&str> {
        match self {
            PromptValue::Text(t) => Some(t),
            PromptValue::Messages(_) => None,
        }
    }

    /// The messages, when these are messages.
    pub fn as_messages(&self) -> Option<&[Message]> {
        match self {
            PromptValue::Messages(m) => Some(m),
            PromptValue::Text(_) => None,
        }
    }
}

impl From<String> for PromptValue {
    fn from(s: String) -> Self {
        PromptValue::Text(s)
    }
}

impl From<&str> for PromptValue {
    fn from(s: &str) -> Self {
        PromptValue::Text(s.to_owned())
    }
}

impl From<&String> for PromptValue {
    fn from(s: &String) -> Self {
        PromptValue::Text(s.clone())
    }
}

impl From<std::borrow::Cow<'_, str>> for PromptValue {
    fn from(s: std::borrow::Cow<'_, str>) -> Self {
        PromptValue::Text(s.into_owned())
    }
}

impl From<Vec<Message>> for PromptValue {
    fn from(m: Vec<Message>) -> Self {
        PromptValue::Messages(m)
    }
}

impl From<&[Message]> for PromptValue {
    fn from(m: &[Message]) -> Self {
        PromptValue::Messages(m.to_vec())
    }
}

impl From<&Vec<Message>> for PromptValue {
    fn from(m: &Vec<Message>) -> Self {
        PromptValue::Messages(m.clone())
    }
}

impl From<&PromptValue> for PromptValue {
    fn from(v: &PromptValue) -> Self {
        v.clone()
    }
}

impl From<&Value> for PromptValue {
    fn from(v: &Value) -> Self {
        match v {
            Value::String(s) => PromptValue::Text(s.clone()),
            other => PromptValue::Text(other.to_string()),
        }
    }
}

impl From<Value> for PromptValue {
    fn from(v: Value) -> Self {
        match v {
            Value::String(s) => PromptValue::Text(s),
            other => PromptValue::Text(other.to_string()),
        }
    }
}

macro_rules! display_into_text {
    ($($t:ty),*) => {$(
        impl From<$t> for PromptValue {
            fn from(v: $t) -> Self {
                PromptValue::Text(v.to_string())
            }
        }
    )*};
}

display_into_text!(
    char, bool, i8, i16, i32, i64, i128, isize, u8, u16, u32, u64, u128, usize, f32, f64
);

/// A set of named [`PromptValue`]s, ordered by name.
///
/// Most formatting methods accept anything that iterates over `(name, value)` pairs
/// (arrays of tuples, `&HashMap<String, String>`, `serde_json::Map`, ...); use this type
/// when the values have to be stored or passed through a `dyn` [`Prompt`](super::Prompt).
///
/// ```
/// use catena_core::prompt::{PromptValue, PromptValues};
/// use catena_core::Message;
///
/// let values = PromptValues::new()
///     .with("question", "Why?")
///     .with("history", vec![Message::user("Hi")]);
/// assert_eq!(values.get("question"), Some(&PromptValue::from("Why?")));
/// assert_eq!(values.len(), 2);
/// ```
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PromptValues(BTreeMap<String, PromptValue>);

impl PromptValues {
    /// No values.
    pub fn new() -> Self {
        PromptValues(BTreeMap::new())
    }

    /// Adds (or replaces) a value.
    #[must_use]
    pub fn with(mut self, name: impl Into<String>, value: impl Into<PromptValue>) -> Self {
        self.0.insert(name.into(), value.into());
        self
    }

    /// Adds (or replaces) a value, returning the previous one.
    pub fn insert(
        &mut self,
        name: impl Into<String>,
        value: impl Into<PromptValue>,
    ) -> Option<PromptValue> {
        self.0.insert(name.into(), value.into())
    }

    /// The value named `name`.
    pub fn get(&self, name: &str) -> Option<&PromptValue> {
        self.0.get(name)
    }

    /// Whether a value named `name` is set.
    pub fn contains(&self, name: &str) -> bool {
        self.0.contains_key(name)
    }

    /// Removes the value named `name`, returning it.
    pub fn remove(&mut self, name: &str) -> Option<PromptValue> {
        self.0.remove(name)
    }

    /// The number of values.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are no values.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The names, in order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }

    /// The `(name, value)` pairs, ordered by name.
    pub fn iter(&self) -> btree_map::Iter<'_, String, PromptValue> {
        self.0.iter()
    }

    /// Collects `(name, value)` pairs; a later pair replaces an earlier one of the same name.
    pub(crate) fn collect_from<I, K, V>(values: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<PromptValue>,
    {
        values.into_iter().collect()
    }
}

impl<K: Into<String>, V: Into<PromptValue>> FromIterator<(K, V)> for PromptValues {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        let mut values = PromptValues::new();
        values.extend(iter);
        values
    }
}

impl<K: Into<String>, V: Into<PromptValue>> Extend<(K, V)> for PromptValues {
    fn extend<I: IntoIterator<Item = (K, V)>>(&mut self, iter: I) {
        for (k, v) in iter {
            self.0.insert(k.into(), v.into());
        }
    }
}

impl<K: Into<String>, V: Into<PromptValue>, const N: usize> From<[(K, V); N]> for PromptValues {
    fn from(pairs: [(K, V); N]) -> Self {
        pairs.into_iter().collect()
    }
}

impl<K: Into<String>, V: Into<PromptValue>> From<Vec<(K, V)>> for PromptValues {
    fn from(pairs: Vec<(K, V)>) -> Self {
        pairs.into_iter().collect()
    }
}

impl<K: Into<String>, V: Into<PromptValue>, S> From<HashMap<K, V, S>> for PromptValues {
    fn from(map: HashMap<K, V, S>) -> Self {
        map.into_iter().collect()
    }
}

impl<K: Into<String>, V: Into<PromptValue>> From<BTreeMap<K, V>> for PromptValues {
    fn from(map: BTreeMap<K, V>) -> Self {
        map.into_iter().collect()
    }
}

impl From<serde_json::Map<String, Value>> for PromptValues {
    fn from(map: serde_json::Map<String, Value>) -> Self {
        map.into_iter().collect()
    }
}

impl IntoIterator for PromptValues {
    type Item = (String, PromptValue);
    type IntoIter = btree_map::IntoIter<String, PromptValue>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl<'a> IntoIterator for &'a PromptValues {
    type Item = (&'a String, &'a PromptValue);
    type IntoIter = btree_map::Iter<'a, String, PromptValue>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversions() {
        assert_eq!(PromptValue::from(3), PromptValue::Text("3".into()));
        assert_eq!(
            PromptValue::from(serde_json::json!("x")),
            PromptValue::Text("x".into())
        );
        assert_eq!(
            PromptValue::from(serde_json::json!({"a": 1})),
            PromptValue::Text(r#"{"a":1}"#.into())
        );
        let v = PromptValues::from([("a", "1"), ("a", "2")]);
        assert_eq!(v.get("a").and_then(PromptValue::as_text), Some("2"));
    }
}
