//! Finding and parsing JSON in a model's output.

use std::sync::OnceLock;

use regex::Regex;
use serde_json::Value;

use super::{OutputParser, ParseError};

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
