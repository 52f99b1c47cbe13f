//! [`MarkdownHeaderTextSplitter`]: cut Markdown at headers, recording them as metadata.
//!
//! ```
//! use catena_core::splitter::MarkdownHeaderTextSplitter;
//!
//! let splitter = MarkdownHeaderTextSplitter::new([("#", "Header 1"), ("##", "Header 2")]);
//! let docs = splitter.split_text("# Intro\nHello.\n## Install\n```sh\n# not a header\n```\n");
//! assert_eq!(docs.len(), 2);
//! assert_eq!(docs[0].content, "Hello.");
//! assert_eq!(docs[1].content, "```sh\n# not a header\n```");
//! assert_eq!(docs[1].metadata["Header 1"], "Intro");
//! assert_eq!(docs[1].metadata["Header 2"], "Install");
//! ```

use std::borrow::Cow;
use std::sync::LazyLock;

use regex::Regex;
use serde_json::Value;

use super::merge::py_strip;
use crate::{Document, Metadata};

/// Characters Python's `str.isprintable` rejects: categories "Other" and "Separator", except
/// the ASCII space.
static NON_PRINTABLE: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(r"[[\p{C}\p{Z}]--[ ]]").ok());

/// Splits Markdown into documents at the chosen header levels: a port of LangChain's
/// `MarkdownHeaderTextSplitter` with the same output.
///
/// Each document holds the text under one header path; the headers in force are recorded as
/// metadata under the names given (`("##", "Header 2")` records `"Header 2": "<title>"`).
/// Lines inside fenced code blocks (```` ``` ```` or `~~~`) are never headers. As in
/// LangChain, every line is stripped of surrounding whitespace and of non-printable
/// characters (tabs included), and lines with the same metadata are joined with `"  \n"`.
///
/// This splitter returns documents rather than strings, so it does not implement
/// [`TextSplitter`](super::TextSplitter); split its output further with one that does.
#[derive(Debug, Clone)]
pub struct MarkdownHeaderTextSplitter {
    /// `(marker, metadata name)`, longest marker first.
    headers: Vec<(String, String)>,
    /// `(marker, level)` for headers written like `**Title**`.
    custom_levels: Vec<(String, usize)>,
    return_each_line: bool,
    strip_headers: bool,
}

/// One output line (or group of lines) and the headers in force there.
struct Line {
    content: String,
    metadata: Metadata,
}

/// A header on the stack of headers in force.
struct Header {
    level: usize,
    name: String,
}

impl MarkdownHeaderTextSplitter {
    /// A splitter on the given `(marker, metadata name)` pairs, such as
    /// `[("#", "Header 1"), ("##", "Header 2")]`.
    pub fn new<M, N>(headers_to_split_on: impl IntoIterator<Item = (M, N)>) -> Self
    where
        M: Into<String>,
        N: Into<String>,
    {
        let mut headers: Vec<(String, String)> = headers_to_split_on
            .into_iter()
            .map(|(m, n)| (m.into(), n.into()))
            .collect();
        // Longest marker first, keeping the given order among equals (Python's stable sort).
        headers.sort_by_key(|(marker, _)| std::cmp::Reverse(marker.chars().count()));
        MarkdownHeaderTextSplitter {
            headers,
            custom_levels: Vec::new(),
            return_each_line: false,
            strip_headers: true,
        }
    }

    /// Whether to return each line as its own document instead of grouping lines that share
    /// headers. Default is `false`.
    #[must_use]
    pub fn with_return_each_line(mut self, each_line: bool) -> Self {
        self.return_each_line = each_line;
        self
    }

    /// Whether to leave the header lines out of the content. Default is `true`.
    #[must_use]
    pub fn with_strip_headers(mut self, strip: bool) -> Self {
        self.strip_headers = strip;
        self
    }

    /// Treats lines written `<marker>Title<marker>` (such as `**Title**`) as headers of `level`
    /// (LangChain's `custom_header_patterns`). The marker must also be one of the markers to
    /// split on. Default is none.
    #[must_use]
    pub fn with_custom_header_pattern(mut self, marker: impl Into<String>, level: usize) -> Self {
        let marker = marker.into();
        self.custom_levels.retain(|(m, _)| *m != marker);
        self.custom_levels.push((marker, level));
        self
    }

    /// Splits `text` into documents.
    pub fn split_text(&self, text: &str) -> Vec<Document> {
        let lines = self.lines_with_metadata(text);
        let lines = if self.return_each_line {
            lines
        } else {
            self.aggregate(lines)
        };
        lines
            .into_iter()
            .map(|line| Document::new(line.content).with_metadata_map(line.metadata))
            .collect()
    }

    /// Splits each document, keeping its metadata and adding the headers' (a header wins over
    /// a source entry of the same name).
    pub fn split_documents(&self, documents: &[Document]) -> Vec<Document> {
        let mut out = Vec::new();
        for document in documents {
            for mut chunk in self.split_text(&document.content) {
                let mut metadata = document.metadata.clone();
                metadata.append(&mut chunk.metadata);
                chunk.metadata = metadata;
                out.push(chunk);
            }
        }
        out
    }

    fn custom_level(&self, marker: &str) -> Option<usize> {
        self.custom_levels
            .iter()
            .find(|(m, _)| m == marker)
            .map(|(_, level)| *level)
    }

    /// LangChain's `_is_custom_header`: the line is `marker + title + marker` where the title
    /// neither starts nor ends with the marker and is more than marker characters and spaces.
    fn is_custom_header(&self, line: &str, marker: &str) -> bool {
        if marker.is_empty() || self.custom_level(marker).is_none() {
            return false;
        }
        let Some(after_open) = line.strip_prefix(marker) else {
            return false;
        };
        if after_open.starts_with(marker) {
            return false;
        }
        let Some(before_close) = line.strip_suffix(marker) else {
            return false;
        };
        if before_close.ends_with(marker) {
            return false;
        }
        let Some(title) = line.get(marker.len()..line.len() - marker.len()) else {
            return false;
        };
        if title.is_empty() || line.len() < 2 * marker.len() + 1 {
            return false;
        }
        let title = py_strip(title).1;
        !title.is_empty()
            && !title
                .chars()
                .filter(|&c| c != ' ')
                .all(|c| marker.contains(c))
    }

    /// LangChain's `split_text` up to the aggregation step.
    fn lines_with_metadata(&self, text: &str) -> Vec<Line> {
        let mut lines = Vec::new();
        let mut current_content: Vec<String> = Vec::new();
        let mut current_metadata = Metadata::new();
        let mut header_stack: Vec<Header> = Vec::new();
        let mut initial_metadata = Metadata::new();
        let mut in_code_block = false;
        let mut opening_fence = "";

        for raw_line in text.split('\n') {
            let stripped = printable(py_strip(raw_line).1);
            let stripped: &str = &stripped;
            if !in_code_block {
                if stripped.starts_with("```") && stripped.matches("```").count() == 1 {
                    in_code_block = true;
                    opening_fence = "```";
                } else if stripped.starts_with("~~~") {
                    in_code_block = true;
                    opening_fence = "~~~";
                }
            } else if stripped.starts_with(opening_fence) {
                in_code_block = false;
                opening_fence = "";
            }

            if in_code_block {
                current_content.push(stripped.to_owned());
                continue;
            }

            let mut matched_header = false;
            for (marker, name) in &self.headers {
                let is_standard = stripped.starts_with(marker.as_str())
                    && (stripped.len() == marker.len()
                        || stripped.as_bytes().get(marker.len()) == Some(&b' '));
                let is_custom = self.is_custom_header(stripped, marker);
                if !(is_standard || is_custom) {
                    continue;
                }
                let level = self
                    .custom_level(marker)
                    .unwrap_or_else(|| marker.matches('#').count());
                while header_stack.last().is_some_and(|h| h.level >= level) {
                    if let Some(popped) = header_stack.pop() {
                        initial_metadata.remove(&popped.name);
                    }
                }
                let title = if is_custom {
                    stripped
                        .get(marker.len()..stripped.len().saturating_sub(marker.len()))
                        .unwrap_or("")
                } else {
                    stripped.get(marker.len()..).unwrap_or("")
                };
                let title = py_strip(title).1;
                header_stack.push(Header {
                    level,
                    name: name.clone(),
                });
                initial_metadata.insert(name.clone(), Value::from(title));

                if !current_content.is_empty() {
                    lines.push(Line {
                        content: current_content.join("\n"),
                        metadata: current_metadata.clone(),
                    });
                    current_content.clear();
                }
                if !self.strip_headers {
                    current_content.push(stripped.to_owned());
                }
                matched_header = true;
                break;
            }
            if !matched_header {
                if !stripped.is_empty() {
                    current_content.push(stripped.to_owned());
                } else if !current_content.is_empty() {
                    lines.push(Line {
                        content: current_content.join("\n"),
                        metadata: current_metadata.clone(),
                    });
                    current_content.clear();
                }
            }
            current_metadata = initial_metadata.clone();
        }
        if !current_content.is_empty() {
            lines.push(Line {
                content: current_content.join("\n"),
                metadata: current_metadata,
            });
        }
        lines
    }

    /// LangChain's `aggregate_lines_to_chunks`.
    fn aggregate(&self, lines: Vec<Line>) -> Vec<Line> {
        let mut chunks: Vec<Line> = Vec::new();
        for line in lines {
            if let Some(last) = chunks.last_mut() {
                if last.metadata == line.metadata {
                    last.content.push_str("  \n");
                    last.content.push_str(&line.content);
                    continue;
                }
                let last_is_header = last
                    .content
                    .rsplit('\n')
                    .next()
                    .is_some_and(|l| l.starts_with('#'));
                if last.metadata.len() < line.metadata.len()
                    && last_is_header
                    && !self.strip_headers
                {
                    last.content.push_str("  \n");
                    last.content.push_str(&line.content);
                    last.metadata = line.metadata;
                    continue;
                }
            }
            chunks.push(line);
        }
        chunks
    }
}

/// Drops the characters Python's `str.isprintable` rejects.
fn printable(line: &str) -> Cow<'_, str> {
    match NON_PRINTABLE.as_ref() {
        Some(regex) => regex.replace_all(line, ""),
        None => Cow::Owned(line.chars().filter(|c| !c.is_control()).collect()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_headers_and_levels() {
        let splitter = MarkdownHeaderTextSplitter::new([("#", "H1"), ("##", "H2")]);
        let docs = splitter.split_text("# A\n## B\nb text\n# C\nc text\n");
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[0].metadata["H2"], "B");
        assert_eq!(docs[1].metadata.get("H2"), None);
        assert_eq!(docs[1].metadata["H1"], "C");
    }

    #[test]
    fn custom_headers() {
        let splitter =
            MarkdownHeaderTextSplitter::new([("**", "Bold")]).with_custom_header_pattern("**", 1);
        let docs = splitter.split_text("**Title**\ntext\n****\n**x");
        assert_eq!(docs.len(), 1);
        assert_eq!(docs[0].metadata["Bold"], "Title");
        assert_eq!(docs[0].content, "text\n****\n**x");
    }

    #[test]
    fn tabs_and_controls_are_removed() {
        assert_eq!(printable("a\tb\u{200b}c d"), "abc d");
    }
}
