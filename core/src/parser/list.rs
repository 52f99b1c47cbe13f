//! List parsers: comma-separated values and one item per line.

use std::sync::OnceLock;

use regex::Regex;

use super::{OutputParser, ParseError};

/// Parses `a, b, c` into `["a", "b", "c"]`.
///
/// Items are trimmed and empty items dropped; an item in double quotes may contain commas
/// (`"a, b", c` gives `["a, b", "c"]`, and `""` inside quotes is a literal quote). Blank
/// output gives an empty list.
///
/// ```
/// use catena_core::parser::{CommaSeparatedListOutputParser, OutputParser};
///
/// let p = CommaSeparatedListOutputParser::new();
/// assert_eq!(p.parse(" red, green ,blue,")?, ["red", "green", "blue"]);
/// assert_eq!(p.parse(r#""Paris, France", Rome"#)?, ["Paris, France", "Rome"]);
/// # Ok::<(), catena_core::parser::ParseError>(())
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CommaSeparatedListOutputParser;

impl CommaSeparatedListOutputParser {
    /// A new parser.
    pub fn new() -> Self {
        CommaSeparatedListOutputParser
    }
}

impl OutputParser for CommaSeparatedListOutputParser {
    type Output = Vec<String>;

    fn parse(&self, text: &str) -> Result<Vec<String>, ParseError> {
        let mut items = Vec::new();
        let mut current = String::new();
        let mut in_quotes = false;
        let mut chars = text.trim().chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '"' if in_quotes && chars.peek() == Some(&'"') => {
                    chars.next();
                    current.push('"');
                }
                '"' => in_quotes = !in_quotes,
                ',' if !in_quotes => items.push(std::mem::take(&mut current)),
                _ => current.push(c),
            }
        }
        items.push(current);
        Ok(items
            .into_iter()
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .collect())
    }

    fn format_instructions(&self) -> Option<String> {
        Some(
            "Your response should be a list of comma separated values, \
             eg: `foo, bar, baz` or `foo,bar,baz`"
                .to_owned(),
        )
    }
}

/// Parses one item per line, stripping list markers: `1.`, `1)`, `-`, `*`, `+` and `•`
/// followed by a space. Lines are trimmed and empty lines dropped.
///
/// ```
/// use catena_core::parser::{LineListOutputParser, OutputParser};
///
/// let p = LineListOutputParser::new();
/// assert_eq!(
///     p.parse("Here you go:\n1. apples\n2) pears\n\n- 3.5 kg of plums\n* -5 degrees")?,
///     ["Here you go:", "apples", "pears", "3.5 kg of plums", "-5 degrees"]
/// );
/// # Ok::<(), catena_core::parser::ParseError>(())
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LineListOutputParser;

impl LineListOutputParser {
    /// A new parser.
    pub fn new() -> Self {
        LineListOutputParser
    }
}

fn marker_regex() -> Option<&'static Regex> {
    static MARKER: OnceLock<Option<Regex>> = OnceLock::new();
    MARKER
        .get_or_init(|| Regex::new(r"^(?:[-*+•]|\d+[.)])(?:\s+|$)").ok())
        .as_ref()
}

impl OutputParser for LineListOutputParser {
    type Output = Vec<String>;

    fn parse(&self, text: &str) -> Result<Vec<String>, ParseError> {
        let marker = marker_regex();
        Ok(text
            .lines()
            .map(str::trim)
            .map(|line| match marker.and_then(|m| m.find(line)) {
                Some(found) => line[found.end()..].trim(),
                None => line,
            })
            .filter(|line| !line.is_empty())
            .map(str::to_owned)
            .collect())
    }

    fn format_instructions(&self) -> Option<String> {
        Some("Your response should be a list with one item per line.".to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_and_escapes() {
        let p = CommaSeparatedListOutputParser::new();
        assert_eq!(
            p.parse(r#"a, "b ""c"", d", e"#).unwrap(),
            ["a", r#"b "c", d"#, "e"]
        );
        assert!(p.parse("  ").unwrap().is_empty());
    }

    #[test]
    fn markers_need_a_space() {
        let p = LineListOutputParser::new();
        assert_eq!(
            p.parse("1.5 liters\n-\n10. ten\n  * star  ").unwrap(),
            ["1.5 liters", "ten", "star"]
        );
    }
}
