//! Finding and parsing JSON in a model's output.

use std::sync::OnceLock;

use regex::Regex;
use serde_json::Value;

use super::{OutputParser, ParseError, StreamParser};

/// How many candidate objects/arrays in prose are tried before giving up, which bounds the
/// work on adversarial input.
const MAX_CANDIDATES: usize = 64;

/// Parses JSON out of a model's output into a [`serde_json::Value`].
///
/// Tried in order, first success wins:
/// 1. the whole (trimmed) text;
/// 2. each ```` ```json ```` or bare ```` ``` ```` fenced block;
/// 3. the first balanced `{...}` or `[...]` in the text that is valid JSON (strings and
///    escapes are respected when balancing; code blocks fenced with another language are
///    skipped), so JSON surrounded by prose is found.
///
/// A value nested inside a broken one is never taken for the answer: a balanced candidate
/// that does not parse is skipped as a whole, and text (or a JSON fenced block) that opens
/// with a bracket it never closes, or a prose candidate cut short mid-value, is reported as
/// [`ParseError::InvalidJson`]. So truncated output such as `{"items": [{"a": 1}, {"a"`
/// is an error, not `{"a": 1}`.
///
/// Errors: [`ParseError::Empty`] for blank text, [`ParseError::InvalidJson`] when something
/// looked like JSON but did not parse (the message has serde's line and column),
/// [`ParseError::NoJsonFound`] otherwise.
///
/// ```
/// use catena_core::parser::{JsonOutputParser, OutputParser, ParseError};
/// use serde_json::json;
///
/// let p = JsonOutputParser::new();
/// assert_eq!(p.parse("The answer is {\"x\": [1, 2]}. Anything else?")?, json!({"x": [1, 2]}));
/// assert_eq!(p.parse("```\n[true]\n```")?, json!([true]));
/// assert!(matches!(p.parse("{\"x\": }"), Err(ParseError::InvalidJson(_))));
/// assert_eq!(p.parse("no json here"), Err(ParseError::NoJsonFound));
/// # Ok::<(), ParseError>(())
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JsonOutputParser;

impl JsonOutputParser {
    /// A new parser.
    pub fn new() -> Self {
        JsonOutputParser
    }
}

impl OutputParser for JsonOutputParser {
    type Output = Value;

    fn parse(&self, text: &str) -> Result<Value, ParseError> {
        extract_json(text)
    }

    /// Partial objects as the JSON streams in (see [`parse_partial_json`]), each one emitted
    /// only when it differs from the last; at the end, the strict parse of the whole text
    /// (emitted if it differs, an error if the text is not valid JSON).
    fn stream_parser(&self) -> Option<Box<dyn StreamParser<Value>>> {
        Some(Box::new(PartialJson::new(
            |v: &Value| Ok(v.clone()),
            extract_json,
        )))
    }

    fn format_instructions(&self) -> Option<String> {
        Some(
            "Respond with a single JSON value (an object or an array) and nothing else.".to_owned(),
        )
    }
}

fn fence_regex() -> Option<&'static Regex> {
    static FENCE: OnceLock<Option<Regex>> = OnceLock::new();
    FENCE
        .get_or_init(|| Regex::new(r"(?s)```[ \t]*([A-Za-z0-9_+.-]*)[^\n]*\n(.*?)```").ok())
        .as_ref()
}

/// Finds and parses the JSON in `text`; see [`JsonOutputParser`].
pub(crate) fn extract_json(text: &str) -> Result<Value, ParseError> {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err(ParseError::Empty);
    }
    let mut first_error: Option<String> = None;

    match serde_json::from_str::<Value>(trimmed) {
        Ok(v) => return Ok(v),
        Err(e) if trimmed.starts_with(['{', '[']) => {
            // Output that opens with a bracket it never closes is truncated or broken JSON;
            // an object nested inside it is not the answer.
            if balanced_end(trimmed.as_bytes(), 0).is_none() {
                return Err(ParseError::InvalidJson(e.to_string()));
            }
            first_error = Some(e.to_string());
        }
        Err(_) => {}
    }

    // Prose search skips code blocks in other languages (`vec![1]` is not the answer).
    let mut prose = trimmed.to_owned();
    if let Some(fence) = fence_regex() {
        for caps in fence.captures_iter(trimmed) {
            let lang = caps.get(1).map_or("", |m| m.as_str());
            if !(lang.is_empty() || lang.eq_ignore_ascii_case("json")) {
                if let Some(block) = caps.get(0) {
                    prose.replace_range(block.range(), &" ".repeat(block.len()));
                }
                continue;
            }
            let body = caps.get(2).map_or("", |m| m.as_str()).trim();
            match serde_json::from_str::<Value>(body) {
                Ok(v) => return Ok(v),
                Err(e) => {
                    let message = e.to_string();
                    if body.starts_with(['{', '[']) && balanced_end(body.as_bytes(), 0).is_none() {
                        return Err(ParseError::InvalidJson(first_error.unwrap_or(message)));
                    }
                    first_error.get_or_insert(message);
                }
            }
        }
    }

    let bytes = prose.as_bytes();
    let mut attempts = 0;
    let mut start = 0;
    while attempts < MAX_CANDIDATES {
        let Some(offset) = bytes[start..].iter().position(|b| matches!(b, b'{' | b'[')) else {
            break;
        };
        let begin = start + offset;
        attempts += 1;
        match balanced_end(bytes, begin) {
            Some(end) => match serde_json::from_str::<Value>(&prose[begin..=end]) {
                Ok(v) => return Ok(v),
                Err(e) => {
                    first_error.get_or_insert_with(|| e.to_string());
                    // What is nested inside a broken value is not the answer either.
                    start = end + 1;
                }
            },
            None => {
                // Never closed. When the rest is a valid JSON prefix the output was cut
                // short: report it rather than answer with an object nested inside it.
                if let Err(e) = serde_json::from_str::<Value>(&prose[begin..]) {
                    if e.is_eof() {
                        return Err(ParseError::InvalidJson(
                            first_error.unwrap_or(e.to_string()),
                        ));
                    }
                }
                start = begin + 1;
            }
        }
    }

    Err(first_error.map_or(ParseError::NoJsonFound, ParseError::InvalidJson))
}

/// The index of the bracket closing the one at `start`, skipping JSON strings; `None` when
/// it is never closed or the brackets do not match.
fn balanced_end(bytes: &[u8], start: usize) -> Option<usize> {
    let mut stack: Vec<u8> = Vec::new();
    let mut in_string = false;
    let mut escaped = false;
    for (i, &b) in bytes.iter().enumerate().skip(start) {
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'{' => stack.push(b'}'),
            b'[' => stack.push(b']'),
            b'}' | b']' => {
                if stack.pop() != Some(b) {
                    return None;
                }
                if stack.is_empty() {
                    return Some(i);
                }
            }
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn balancing_respects_strings() {
        let s = br#"x {"a": "}{\"]"} y"#;
        assert_eq!(balanced_end(s, 2), Some(s.len() - 3));
        assert_eq!(balanced_end(b"{]", 0), None);
        assert_eq!(balanced_end(b"{{}", 0), None);
    }

    #[test]
    fn skips_non_json_brackets_in_prose() {
        assert_eq!(
            extract_json("Use [brackets] like {this}. Result: {\"ok\": true}").unwrap(),
            json!({"ok": true})
        );
    }

    #[test]
    fn other_language_fences_are_skipped() {
        let text = "```python\nprint({1: 2})\n```\n```json\n{\"a\": 1}\n```";
        assert_eq!(extract_json(text).unwrap(), json!({"a": 1}));
    }

    #[test]
    fn bounded_on_adversarial_input() {
        let text = "[".repeat(100_000);
        assert!(matches!(
            extract_json(&text),
            Err(ParseError::InvalidJson(_))
        ));
        let prose = format!("x {}", "{".repeat(100_000));
        assert_eq!(extract_json(&prose), Err(ParseError::NoJsonFound));
    }
}

/// How many characters [`parse_partial_json`] drops from the end, one at a time, looking for
/// a prefix it can close; bounds the work per call.
const MAX_PARTIAL_BACKTRACK: usize = 64;

/// The value a JSON text cut short would have if it ended here: the first `{` or `[` of
/// `text` up to its end, with an open string closed, a dangling key, `:` or `,` dropped and
/// the open brackets closed. `None` until there is a value to show (or when the text is not
/// JSON-like).
///
/// ```
/// use catena_core::parser::parse_partial_json;
/// use serde_json::json;
///
/// assert_eq!(parse_partial_json(r#"{"name": "Ad"#), Some(json!({"name": "Ad"})));
/// assert_eq!(parse_partial_json(r#"```json\n{"items": [1, 2, "#), Some(json!({"items": [1, 2]})));
/// assert_eq!(parse_partial_json(r#"{"a": 1, "b"#), Some(json!({"a": 1})));
/// assert_eq!(parse_partial_json("no json yet"), None);
/// ```
pub fn parse_partial_json(text: &str) -> Option<Value> {
    let start = text.find(['{', '['])?;
    let mut body = &text[start..];
    for _ in 0..MAX_PARTIAL_BACKTRACK {
        if body.is_empty() {
            return None;
        }
        match close_partial(body) {
            Closed::Complete(end) => return serde_json::from_str(&body[..end]).ok(),
            Closed::Candidate(candidate) => {
                if let Ok(v) = serde_json::from_str(&candidate) {
                    return Some(v);
                }
            }
            Closed::Broken => return None,
        }
        // Drop the last character and try again.
        let cut = body.char_indices().next_back().map_or(0, |(i, _)| i);
        body = &body[..cut];
    }
    None
}

enum Closed {
    /// The first value is complete and ends at this byte offset.
    Complete(usize),
    /// The text closed as far as it goes.
    Candidate(String),
    /// A closing bracket that does not match: not JSON.
    Broken,
}

/// Closes an open string and the open brackets of `text` (which starts with `{` or `[`).
fn close_partial(text: &str) -> Closed {
    let mut stack: Vec<char> = Vec::new();
    let mut in_string = false;
    let mut escaped = false;
    for (i, c) in text.char_indices() {
        if in_string {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
            continue;
        }
        match c {
            '"' => in_string = true,
            '{' => stack.push('}'),
            '[' => stack.push(']'),
            '}' | ']' => {
                if stack.pop() != Some(c) {
                    return Closed::Broken;
                }
                if stack.is_empty() {
                    return Closed::Complete(i + 1);
                }
            }
            _ => {}
        }
    }
    let mut out = String::with_capacity(text.len() + stack.len() + 1);
    if in_string {
        // A string cut inside an escape loses the lone backslash.
        out.push_str(if escaped {
            &text[..text.len() - 1]
        } else {
            text
        });
        out.push('"');
    } else {
        out.push_str(text.trim_end().trim_end_matches(','));
    }
    out.extend(stack.iter().rev());
    Closed::Candidate(out)
}

/// Turns a (partial) JSON value into the parser's output.
type Convert<O> = Box<dyn Fn(&Value) -> Result<O, ParseError> + Send>;

/// The stream parser of the JSON-based parsers: partial values as the text grows, deduplicated
/// by their JSON text, then the strict parse of the whole text.
pub(super) struct PartialJson<O> {
    text: String,
    last: Option<String>,
    convert: Convert<O>,
    strict: fn(&str) -> Result<Value, ParseError>,
}

impl<O> PartialJson<O> {
    pub(super) fn new(
        convert: impl Fn(&Value) -> Result<O, ParseError> + Send + 'static,
        strict: fn(&str) -> Result<Value, ParseError>,
    ) -> Self {
        PartialJson {
            text: String::new(),
            last: None,
            convert: Box::new(convert),
            strict,
        }
    }

    fn emit(&mut self, value: &Value) -> Option<Result<O, ParseError>> {
        let key = value.to_string();
        if self.last.as_deref() == Some(key.as_str()) {
            return None;
        }
        // A partial value that does not convert yet (a required field still missing) is
        // skipped; the final parse reports real mismatches.
        let out = (self.convert)(value).ok()?;
        self.last = Some(key);
        Some(Ok(out))
    }
}

impl<O> StreamParser<O> for PartialJson<O> {
    fn push(&mut self, delta: &str) -> Option<Result<O, ParseError>> {
        self.text.push_str(delta);
        if delta.is_empty() {
            return None;
        }
        let value = parse_partial_json(&self.text)?;
        self.emit(&value)
    }

    fn finish(&mut self) -> Option<Result<O, ParseError>> {
        match (self.strict)(&self.text) {
            Ok(value) => {
                let key = value.to_string();
                if self.last.as_deref() == Some(key.as_str()) {
                    return None;
                }
                self.last = Some(key);
                Some((self.convert)(&value))
            }
            Err(e) => Some(Err(e)),
        }
    }
}

#[cfg(test)]
mod partial_tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn partial_values_grow_with_the_text() {
        let full = r#"{"title": "Ru\"st", "tags": ["a", "bc"], "n": 12, "ok": true}"#;
        let mut seen = Vec::new();
        for end in 1..=full.len() {
            if let Some(v) = parse_partial_json(&full[..end]) {
                seen.push(v);
            }
        }
        assert_eq!(
            seen.last(),
            Some(&serde_json::from_str::<Value>(full).unwrap())
        );
        assert!(seen.contains(&json!({"title": "Ru\""})));
        assert!(seen.contains(&json!({"title": "Ru\"st", "tags": ["a", "b"]})));
    }

    #[test]
    fn not_json_and_mismatched_brackets_give_nothing() {
        assert_eq!(parse_partial_json("plain words"), None);
        assert_eq!(parse_partial_json("{]"), None);
    }

    #[test]
    fn the_stream_parser_emits_changes_then_the_strict_parse() {
        let mut p = JsonOutputParser.stream_parser().unwrap();
        let mut out = Vec::new();
        for piece in [
            "Here:\n```json\n{\"a\"",
            ": 1",
            ", \"b\": [",
            "2",
            "]}",
            "\n```",
        ] {
            if let Some(v) = p.push(piece) {
                out.push(v.unwrap());
            }
        }
        assert!(
            p.finish().is_none(),
            "the last partial value was already the whole one"
        );
        assert_eq!(
            out,
            vec![
                json!({}),
                json!({"a": 1}),
                json!({"a": 1, "b": []}),
                json!({"a": 1, "b": [2]})
            ]
        );

        let mut broken = JsonOutputParser.stream_parser().unwrap();
        let _ = broken.push("{\"a\": ");
        assert!(matches!(
            broken.finish(),
            Some(Err(ParseError::InvalidJson(_)))
        ));
    }
}
