//! The machinery the character splitters share: the configuration, splitting on a separator
//! with LangChain's `_split_text_with_regex` semantics, and LangChain's `_merge_splits`.
//!
//! Pieces are slices of the source text with their byte offsets, so every chunk knows where
//! it starts and no slice is ever cut inside a UTF-8 character.

use regex::Regex;

use super::{Chunk, KeepSeparator, LengthFunction};
use crate::{Error, Result};

/// Settings common to the character and recursive splitters (LangChain's `TextSplitter`).
#[derive(Debug, Clone)]
pub(crate) struct SplitterConfig {
    pub(crate) chunk_size: usize,
    pub(crate) chunk_overlap: usize,
    pub(crate) length: LengthFunction,
    pub(crate) keep_separator: KeepSeparator,
    pub(crate) add_start_index: bool,
    pub(crate) strip_whitespace: bool,
}

impl SplitterConfig {
    /// LangChain's defaults: 4000 / 200, character length, whitespace stripped.
    pub(crate) fn new(keep_separator: KeepSeparator) -> Self {
        SplitterConfig {
            chunk_size: 4000,
            chunk_overlap: 200,
            length: LengthFunction::chars(),
            keep_separator,
            add_start_index: false,
            strip_whitespace: true,
        }
    }

    pub(crate) fn validate(&self) -> Result<()> {
        validate_sizes(self.chunk_size, self.chunk_overlap)
    }
}

/// Checks `chunk_size > 0` and `chunk_overlap <= chunk_size`, as LangChain does.
pub(crate) fn validate_sizes(chunk_size: usize, chunk_overlap: usize) -> Result<()> {
    if chunk_size == 0 {
        return Err(Error::invalid_config("chunk_size must be > 0, got 0"));
    }
    if chunk_overlap > chunk_size {
        return Err(Error::invalid_config(format!(
            "got a larger chunk overlap ({chunk_overlap}) than chunk size ({chunk_size}), \
             should be smaller"
        )));
    }
    Ok(())
}

/// A separator as given (used when it is put back between pieces) and compiled.
#[derive(Debug, Clone)]
pub(crate) struct Separator {
    pub(crate) raw: String,
    /// `None` for the empty separator, which splits into characters.
    pub(crate) regex: Option<Regex>,
}

impl Separator {
    /// Compiles `raw`, escaping it first unless it is a regex.
    pub(crate) fn compile(raw: &str, is_regex: bool) -> Result<Self> {
        let regex = if raw.is_empty() {
            None
        } else {
            let pattern = if is_regex {
                raw.to_owned()
            } else {
                regex::escape(raw)
            };
            Some(Regex::new(&pattern).map_err(|e| {
                Error::invalid_config(format!("invalid separator regex {raw:?}: {e}"))
            })?)
        };
        Ok(Separator {
            raw: raw.to_owned(),
            regex,
        })
    }
}

/// A slice of the source text and its byte offset there.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Piece<'a> {
    pub(crate) start: usize,
    pub(crate) text: &'a str,
}

/// Splits `text` (which starts at byte `base` of the source) on `separator`, keeping the
/// matches where `keep` says, and drops empty pieces: LangChain's `_split_text_with_regex`.
///
/// With the separator kept, the pieces concatenate back to `text` exactly.
pub(crate) fn split_with_regex<'a>(
    text: &'a str,
    base: usize,
    separator: Option<&Regex>,
    keep: KeepSeparator,
) -> Vec<Piece<'a>> {
    let mut pieces = Vec::new();
    let mut push = |from: usize, to: usize| {
        if let Some(slice) = text.get(from..to) {
            if !slice.is_empty() {
                pieces.push(Piece {
                    start: base + from,
                    text: slice,
                });
            }
        }
    };
    let Some(regex) = separator else {
        for (i, c) in text.char_indices() {
            push(i, i + c.len_utf8());
        }
        return pieces;
    };
    // `from` is where the current piece starts.
    let mut from = 0;
    for m in regex.find_iter(text) {
        match keep {
            KeepSeparator::Discard => {
                push(from, m.start());
                from = m.end();
            }
            KeepSeparator::Start => {
                push(from, m.start());
                from = m.start();
            }
            KeepSeparator::End => {
                push(from, m.end());
                from = m.end();
            }
        }
    }
    push(from, text.len());
    pieces
}

/// Strips whitespace as Python's `str.strip()` does, returning how many bytes were cut from
/// the front and the stripped text.
pub(crate) fn py_strip(text: &str) -> (usize, &str) {
    let trimmed_start = text.trim_start_matches(is_py_whitespace);
    let lead = text.len() - trimmed_start.len();
    (lead, trimmed_start.trim_end_matches(is_py_whitespace))
}

/// Python's `str.isspace` for one character: Unicode `White_Space` plus the ASCII
/// information separators U+001C..U+001F.
pub(crate) fn is_py_whitespace(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// LangChain's `_merge_splits`: combines pieces into chunks of at most `chunk_size` (unless a
/// single piece is longer), carrying up to `chunk_overlap` of the previous chunk's tail into
/// the next one. `lengths[i]` is the length of `pieces[i]`.
pub(crate) fn merge_splits(
    config: &SplitterConfig,
    pieces: &[Piece<'_>],
    lengths: &[usize],
    separator: &str,
    out: &mut Vec<Chunk>,
) {
    let separator_len = config.length.measure(separator);
    let size = config.chunk_size;
    // The current chunk is `pieces[lo..hi]`; `total` is its length with separators.
    let mut lo = 0;
    let mut total: usize = 0;
    for (hi, &len) in lengths.iter().enumerate().take(pieces.len()) {
        let sep_if = |count: usize| if count > 0 { separator_len } else { 0 };
        if total + len + sep_if(hi - lo) > size {
            if total > size {
                tracing::warn!(
                    size = total,
                    chunk_size = size,
                    "created a chunk of size {total}, which is longer than the specified {size}"
                );
            }
            if hi > lo {
                push_joined(config, pieces.get(lo..hi).unwrap_or(&[]), separator, out);
                // Pop from the front while the chunk is longer than the overlap, or while the
                // next piece would not fit.
                while total > config.chunk_overlap
                    || (total + len + sep_if(hi - lo) > size && total > 0)
                {
                    if lo >= hi {
                        total = 0;
                        break;
                    }
                    let first = lengths.get(lo).copied().unwrap_or(0);
                    let sep = if hi - lo > 1 { separator_len } else { 0 };
                    total = total.saturating_sub(first + sep);
                    lo += 1;
                }
            }
        }
        total += len + if hi + 1 - lo > 1 { separator_len } else { 0 };
    }
    push_joined(config, pieces.get(lo..).unwrap_or(&[]), separator, out);
}

/// LangChain's `_join_docs`: joins pieces with `separator`, strips if configured, and drops
/// the chunk if nothing is left.
fn push_joined(
    config: &SplitterConfig,
    pieces: &[Piece<'_>],
    separator: &str,
    out: &mut Vec<Chunk>,
) {
    let Some(first) = pieces.first() else {
        return;
    };
    let capacity = pieces.iter().map(|p| p.text.len()).sum::<usize>()
        + separator.len() * pieces.len().saturating_sub(1);
    let mut text = String::with_capacity(capacity);
    for (i, piece) in pieces.iter().enumerate() {
        if i > 0 {
            text.push_str(separator);
        }
        text.push_str(piece.text);
    }
    let mut start = first.start;
    if config.strip_whitespace {
        let (lead, stripped) = py_strip(&text);
        let end = lead + stripped.len();
        start = source_offset(pieces, separator, lead);
        text.truncate(end);
        text.drain(..lead);
    }
    if !text.is_empty() {
        out.push(Chunk { start, text });
    }
}

/// Maps byte `offset` of `pieces` joined with `separator` back to the source. An offset inside
/// an inserted separator maps to the start of the piece after it.
fn source_offset(pieces: &[Piece<'_>], separator: &str, mut offset: usize) -> usize {
    let mut fallback = 0;
    for (i, piece) in pieces.iter().enumerate() {
        if i > 0 {
            if offset < separator.len() {
                return piece.start;
            }
            offset -= separator.len();
        }
        if offset < piece.text.len() {
            return piece.start + offset;
        }
        offset -= piece.text.len();
        fallback = piece.start + piece.text.len();
    }
    fallback
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(pieces: &[Piece<'_>]) -> Vec<String> {
        pieces.iter().map(|p| p.text.to_owned()).collect()
    }

    #[test]
    fn split_keeps_separator_where_asked() {
        let re = Regex::new("-").unwrap();
        let text = "a-b--c-";
        assert_eq!(
            texts(&split_with_regex(
                text,
                0,
                Some(&re),
                KeepSeparator::Discard
            )),
            ["a", "b", "c"]
        );
        assert_eq!(
            texts(&split_with_regex(text, 0, Some(&re), KeepSeparator::Start)),
            ["a", "-b", "-", "-c", "-"]
        );
        assert_eq!(
            texts(&split_with_regex(text, 0, Some(&re), KeepSeparator::End)),
            ["a-", "b-", "-", "c-"]
        );
        let chars = split_with_regex("né", 5, None, KeepSeparator::Start);
        assert_eq!(texts(&chars), ["n", "é"]);
        assert_eq!(chars[1].start, 6);
    }

    #[test]
    fn strip_matches_python() {
        assert_eq!(py_strip("\u{1c} a b\u{3000}\n"), (2, "a b"));
        assert_eq!(py_strip("   "), (3, ""));
    }

    #[test]
    fn sizes_are_validated() {
        assert!(validate_sizes(0, 0).is_err());
        assert!(validate_sizes(10, 11).is_err());
        assert!(validate_sizes(10, 10).is_ok());
    }
}
