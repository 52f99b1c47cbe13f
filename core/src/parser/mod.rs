//! Output parsers: turn a model's text into a value.
//!
//! An [`OutputParser`] is synchronous (parsing needs no I/O) and object-safe for a given
//! output type, so a chain can hold an `Arc<dyn OutputParser<Output = Value>>`. Parsers can
//! also say how the model should answer, through
//! [`format_instructions`](OutputParser::format_instructions), to put into the prompt.
//!
//! | parser | output |
//! | --- | --- |
//! | [`StrOutputParser`] | the trimmed text |
//! | [`JsonOutputParser`] | a [`serde_json::Value`], found in a fenced block or in prose |
//! | [`TypedOutputParser<T>`] | a `T: DeserializeOwned + JsonSchema`, with field-level errors |
//! | [`CommaSeparatedListOutputParser`] | `Vec<String>` from `a, b, c` |
//! | [`LineListOutputParser`] | `Vec<String>` from numbered or bulleted lines |
//!
//! ```
//! use catena_core::parser::{JsonOutputParser, OutputParser, ParseError, TypedOutputParser};
//! use schemars::JsonSchema;
//! use serde::Deserialize;
//!
//! let reply = "Sure! Here it is:\n```json\n{\"name\": \"Ada\", \"age\": 36}\n```";
//! let value = JsonOutputParser::new().parse(reply)?;
//! assert_eq!(value["name"], "Ada");
//!
//! #[derive(Debug, Deserialize, JsonSchema)]
//! struct Person {
//!     name: String,
//!     age: u32,
//! }
//! let parser = TypedOutputParser::<Person>::new();
//! assert_eq!(parser.parse(reply)?.age, 36);
//! let err = parser.parse(r#"{"name": "Ada", "age": "old"}"#).unwrap_err();
//! assert!(matches!(&err, ParseError::SchemaMismatch { path, .. } if path == "age"));
//! # Ok::<(), ParseError>(())
//! ```

mod json;
mod list;
mod schema;
mod typed;

use std::sync::Arc;

use crate::Message;

pub use json::{parse_partial_json, JsonOutputParser};
pub use list::{CommaSeparatedListOutputParser, LineListOutputParser};
pub use typed::TypedOutputParser;

/// Why a model's output could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseError {
    /// The output is not valid JSON.
    #[error("output is not valid JSON: {0}")]
    InvalidJson(String),
    /// The output holds no JSON object or array.
    #[error("no JSON object or array found in the output")]
    NoJsonFound,
    /// The output is empty (or only whitespace).
    #[error("the output is empty")]
    Empty,
    /// The JSON does not match the expected type. `path` names the offending field
    /// (`address.city`, `items[2]`; empty for the whole value).
    #[error("{}", mismatch_message(.path, .message))]
    SchemaMismatch {
        /// Where the mismatch is: field names joined by `.`, array indices in brackets;
        /// empty for the top-level value.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// The output does not have the expected shape (for parsers that are not JSON-based).
    #[error("unexpected output format: {0}")]
    InvalidFormat(String),
}

fn mismatch_message(path: &str, message: &str) -> String {
    if path.is_empty() {
        format!("output does not match the expected schema: {message}")
    } else {
        format!("output does not match the expected schema at `{path}`: {message}")
    }
}

/// Parses a model's text output into [`Output`](OutputParser::Output).
///
/// ```
/// use catena_core::parser::{OutputParser, ParseError, StrOutputParser};
///
/// let parser: Box<dyn OutputParser<Output = String>> = Box::new(StrOutputParser::new());
/// assert_eq!(parser.parse("  hello \n")?, "hello");
/// # Ok::<(), ParseError>(())
/// ```
pub trait OutputParser: Send + Sync {
    /// What the parser produces.
    type Output;

    /// Parses `text`.
    ///
    /// # Errors
    ///
    /// A [`ParseError`] describing why `text` does not have the expected shape; it is
    /// written so that it can be sent back to the model to correct itself.
    fn parse(&self, text: &str) -> Result<Self::Output, ParseError>;

    /// Instructions for the model on how to format its answer, to include in the prompt.
    /// Default: `None`.
    fn format_instructions(&self) -> Option<String> {
        None
    }

    /// Parses the text of `message` (its text parts, concatenated).
    ///
    /// # Errors
    ///
    /// As [`parse`](OutputParser::parse).
    fn parse_message(&self, message: &Message) -> Result<Self::Output, ParseError> {
        self.parse(&message.text())
    }

    /// A parser for the answer as it streams, or `None` (the default) when outputs only come
    /// from the whole text: a streaming chain then yields one [`parse`](OutputParser::parse)
    /// of the full text at the end. [`StrOutputParser`] streams text deltas,
    /// [`JsonOutputParser`] and [`TypedOutputParser`] partial objects.
    fn stream_parser(&self) -> Option<Box<dyn StreamParser<Self::Output>>> {
        None
    }
}

/// Parses an answer while it streams: text goes in piece by piece, outputs come out as soon
/// as they are ready; see [`OutputParser::stream_parser`].
pub trait StreamParser<O>: Send {
    /// Takes the next piece of text; an output when this piece made one ready.
    fn push(&mut self, delta: &str) -> Option<Result<O, ParseError>>;

    /// The text has ended: the last output, if there is one more (for structured parsers, the
    /// strict parse of the whole text, or its error).
    fn finish(&mut self) -> Option<Result<O, ParseError>>;
}

impl<P: OutputParser + ?Sized> OutputParser for &P {
    type Output = P::Output;
    fn parse(&self, text: &str) -> Result<Self::Output, ParseError> {
        (**self).parse(text)
    }
    fn format_instructions(&self) -> Option<String> {
        (**self).format_instructions()
    }
    fn stream_parser(&self) -> Option<Box<dyn StreamParser<Self::Output>>> {
        (**self).stream_parser()
    }
}

impl<P: OutputParser + ?Sized> OutputParser for Box<P> {
    type Output = P::Output;
    fn parse(&self, text: &str) -> Result<Self::Output, ParseError> {
        (**self).parse(text)
    }
    fn format_instructions(&self) -> Option<String> {
        (**self).format_instructions()
    }
    fn stream_parser(&self) -> Option<Box<dyn StreamParser<Self::Output>>> {
        (**self).stream_parser()
    }
}

impl<P: OutputParser + ?Sized> OutputParser for Arc<P> {
    type Output = P::Output;
    fn parse(&self, text: &str) -> Result<Self::Output, ParseError> {
        (**self).parse(text)
    }
    fn format_instructions(&self) -> Option<String> {
        (**self).format_instructions()
    }
    fn stream_parser(&self) -> Option<Box<dyn StreamParser<Self::Output>>> {
        (**self).stream_parser()
    }
}

/// Returns the output text with surrounding whitespace trimmed. Never fails; empty text
/// gives an empty string.
///
/// ```
/// use catena_core::parser::{OutputParser, StrOutputParser};
///
/// assert_eq!(StrOutputParser::new().parse("\n Paris.\n").unwrap(), "Paris.");
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StrOutputParser;

impl StrOutputParser {
    /// A new parser.
    pub fn new() -> Self {
        StrOutputParser
    }
}

impl OutputParser for StrOutputParser {
    type Output = String;

    fn parse(&self, text: &str) -> Result<String, ParseError> {
        Ok(text.trim().to_owned())
    }

    /// Text deltas as they arrive, trimmed like [`parse`](OutputParser::parse): leading
    /// whitespace is dropped and trailing whitespace held back until more text follows, so
    /// the deltas concatenate to exactly what `parse` returns for the whole text.
    fn stream_parser(&self) -> Option<Box<dyn StreamParser<String>>> {
        Some(Box::new(TextDeltas::default()))
    }
}

/// [`StrOutputParser`]'s stream parser.
#[derive(Debug, Default)]
struct TextDeltas {
    started: bool,
    held: String,
}

impl StreamParser<String> for TextDeltas {
    fn push(&mut self, delta: &str) -> Option<Result<String, ParseError>> {
        let delta = if self.started {
            delta
        } else {
            delta.trim_start()
        };
        if delta.is_empty() {
            return None;
        }
        self.started = true;
        let body = delta.trim_end();
        if body.is_empty() {
            self.held.push_str(delta);
            return None;
        }
        let mut out = std::mem::take(&mut self.held);
        out.push_str(body);
        self.held.push_str(&delta[body.len()..]);
        Some(Ok(out))
    }

    fn finish(&mut self) -> Option<Result<String, ParseError>> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_deltas_concatenate_to_the_trimmed_text() {
        let pieces = ["  \n", "Par", "is ", " \n", "is", " big.", "\n\n"];
        let mut p = StrOutputParser.stream_parser().unwrap();
        let mut out = String::new();
        for piece in pieces {
            if let Some(d) = p.push(piece) {
                out.push_str(&d.unwrap());
            }
        }
        assert!(p.finish().is_none());
        assert_eq!(out, StrOutputParser.parse(&pieces.concat()).unwrap());
        assert_eq!(out, "Paris  \nis big.");
    }

    #[test]
    fn object_safe() {
        fn _obj_safe(_: &dyn OutputParser<Output = serde_json::Value>) {}
    }

    #[test]
    fn mismatch_display() {
        let e = ParseError::SchemaMismatch {
            path: "a.b".into(),
            message: "expected integer".into(),
        };
        assert_eq!(
            e.to_string(),
            "output does not match the expected schema at `a.b`: expected integer"
        );
    }
}
