//! Parsing a model's JSON output into a Rust type.

use std::fmt;
use std::marker::PhantomData;

use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::json::{extract_json, PartialJson};
use super::schema::find_mismatch;
use super::{OutputParser, ParseError, StreamParser};

/// Parses a model's output into `T`: the JSON is found as by
/// [`JsonOutputParser`](super::JsonOutputParser), then deserialised with serde.
///
/// The JSON schema of `T` (derived with `schemars`) is available from
/// [`schema`](Self::schema) and embedded in [`format_instructions`](OutputParser::format_instructions).
/// When the JSON does not fit `T`, the error is [`ParseError::SchemaMismatch`] with the
/// `path` of the offending field (`address.city`, `tags[1]`) and what is wrong with it.
///
/// ```
/// use catena_core::parser::{OutputParser, ParseError, TypedOutputParser};
/// use schemars::JsonSchema;
/// use serde::Deserialize;
///
/// #[derive(Debug, Deserialize, JsonSchema)]
/// struct Verdict {
///     /// Whether the claim holds.
///     valid: bool,
///     /// Why.
///     reason: String,
/// }
///
/// let parser = TypedOutputParser::<Verdict>::new();
/// assert!(parser.format_instructions().unwrap().contains("\"valid\""));
/// let v = parser.parse(r#"{"valid": true, "reason": "checked"}"#)?;
/// assert!(v.valid);
///
/// let err = parser.parse(r#"{"valid": "yes", "reason": "?"}"#).unwrap_err();
/// assert_eq!(
///     err,
///     ParseError::SchemaMismatch {
///         path: "valid".into(),
///         message: "expected boolean, found string \"yes\"".into(),
///     }
/// );
/// # Ok::<(), ParseError>(())
/// ```
pub struct TypedOutputParser<T> {
    schema: Value,
    _marker: PhantomData<fn() -> T>,
}

impl<T: DeserializeOwned + JsonSchema> TypedOutputParser<T> {
    /// A parser for `T`; derives `T`'s JSON schema once.
    pub fn new() -> Self {
        TypedOutputParser {
            schema: crate::schema_for::<T>(),
            _marker: PhantomData,
        }
    }

    /// The JSON schema of `T`.
    pub fn schema(&self) -> &Value {
        &self.schema
    }

    /// Deserialises an already parsed JSON value into `T`.
    ///
    /// # Errors
    ///
    /// [`ParseError::SchemaMismatch`] naming the offending field.
    pub fn parse_value(&self, value: &Value) -> Result<T, ParseError> {
        T::deserialize(value).map_err(|e| match find_mismatch(value, &self.schema) {
            Some(m) => ParseError::SchemaMismatch {
                path: m.path,
                message: m.message,
            },
            None => ParseError::SchemaMismatch {
                path: String::new(),
                message: e.to_string(),
            },
        })
    }
}

impl<T: DeserializeOwned + JsonSchema> Default for TypedOutputParser<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> Clone for TypedOutputParser<T> {
    fn clone(&self) -> Self {
        TypedOutputParser {
            schema: self.schema.clone(),
            _marker: PhantomData,
        }
    }
}

impl<T> fmt::Debug for TypedOutputParser<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TypedOutputParser")
            .field("type", &std::any::type_name::<T>())
            .finish_non_exhaustive()
    }
}

impl<T: DeserializeOwned + JsonSchema + 'static> OutputParser for TypedOutputParser<T> {
    type Output = T;

    fn parse(&self, text: &str) -> Result<T, ParseError> {
        self.parse_value(&extract_json(text)?)
    }

    /// Partial values of `T` as the JSON streams in: each time the partial JSON (see
    /// [`parse_partial_json`](super::parse_partial_json)) changes and deserialises into `T`
    /// (fields not yet there must be optional or defaulted for that); at the end the strict
    /// parse of the whole text, with schema mismatches reported as by [`parse`](Self::parse).
    fn stream_parser(&self) -> Option<Box<dyn StreamParser<T>>> {
        let parser = self.clone();
        Some(Box::new(PartialJson::new(
            move |v: &Value| parser.parse_value(v),
            extract_json,
        )))
    }

    fn format_instructions(&self) -> Option<String> {
        let schema = serde_json::to_string_pretty(&self.schema).ok()?;
        Some(format!(
            "The output should be a JSON instance that conforms to the JSON schema below.\n\n\
             For example, for the schema {{\"type\": \"object\", \"properties\": {{\"foo\": \
             {{\"type\": \"array\", \"items\": {{\"type\": \"string\"}}}}}}, \"required\": \
             [\"foo\"]}} the object {{\"foo\": [\"bar\", \"baz\"]}} is well-formatted; the \
             object {{\"properties\": {{\"foo\": [\"bar\", \"baz\"]}}}} is not.\n\n\
             Here is the output schema:\n```json\n{schema}\n```"
        ))
    }
}
