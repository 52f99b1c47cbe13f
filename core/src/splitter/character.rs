//! [`CharacterTextSplitter`]: split on one separator, then merge.
//!
//! ```
//! use catena_core::splitter::{CharacterTextSplitter, TextSplitter};
//!
//! # fn run() -> catena_core::Result<()> {
//! let splitter = CharacterTextSplitter::builder()
//!     .separator(" ")
//!     .chunk_size(7)
//!     .chunk_overlap(3)
//!     .build()?;
//! assert_eq!(splitter.split_text("foo bar baz 123"), ["foo bar", "bar baz", "baz 123"]);
//! # Ok(())
//! # }
//! # run().unwrap();
//! ```

use super::merge::{merge_splits, split_with_regex, Separator, SplitterConfig};
use super::{Chunk, KeepSeparator, TextSplitter};
use crate::Result;

/// Splits text on one separator and merges the pieces into chunks of at most `chunk_size`.
///
/// A port of LangChain's `CharacterTextSplitter`. Unlike
/// [`RecursiveCharacterTextSplitter`](super::RecursiveCharacterTextSplitter), a piece longer
/// than `chunk_size` is kept whole (and a warning is logged through `tracing`).
#[derive(Debug, Clone)]
pub struct CharacterTextSplitter {
    config: SplitterConfig,
    separator: Separator,
}

impl CharacterTextSplitter {
    /// A builder with LangChain's defaults.
    pub fn builder() -> CharacterTextSplitterBuilder {
        CharacterTextSplitterBuilder {
            config: SplitterConfig::new(KeepSeparator::Discard),
            separator: "\n\n".to_owned(),
            is_separator_regex: false,
        }
    }
}

impl TextSplitter for CharacterTextSplitter {
    fn split_text(&self, text: &str) -> Vec<String> {
        self.split_chunks(text)
            .into_iter()
            .map(|c| c.text)
            .collect()
    }

    fn split_chunks(&self, text: &str) -> Vec<Chunk> {
        let keep = self.config.keep_separator;
        let pieces = split_with_regex(text, 0, self.separator.regex.as_ref(), keep);
        let lengths: Vec<usize> = pieces
            .iter()
            .map(|p| self.config.length.measure(p.text))
            .collect();
        let merge_separator = match keep {
            KeepSeparator::Discard => self.separator.raw.as_str(),
            KeepSeparator::Start | KeepSeparator::End => "",
        };
        let mut out = Vec::new();
        merge_splits(&self.config, &pieces, &lengths, merge_separator, &mut out);
        out
    }

    fn add_start_index(&self) -> bool {
        self.config.add_start_index
    }
}

/// Builds a [`CharacterTextSplitter`].
#[derive(Debug, Clone)]
pub struct CharacterTextSplitterBuilder {
    config: SplitterConfig,
    separator: String,
    is_separator_regex: bool,
}

impl CharacterTextSplitterBuilder {
    common_setters!(keep_separator_default = "`KeepSeparator::Discard`");

    /// The separator to split on; `""` splits into characters. Default is `"\n\n"`.
    #[must_use]
    pub fn separator(mut self, separator: impl Into<String>) -> Self {
        self.separator = separator.into();
        self
    }

    /// Whether the separator is a regular expression (Rust `regex` syntax, which has no
    /// look-around) rather than a literal string. Default is `false`.
    ///
    /// When separators are discarded, the separator as written is put back between merged
    /// pieces, as LangChain does.
    #[must_use]
    pub fn is_separator_regex(mut self, is_regex: bool) -> Self {
        self.is_separator_regex = is_regex;
        self
    }

    /// Validates the configuration and builds the splitter.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`](crate::Error::InvalidConfig) when `chunk_size` is 0,
    /// `chunk_overlap` is larger than `chunk_size`, or the separator is not a valid regex.
    pub fn build(self) -> Result<CharacterTextSplitter> {
        self.config.validate()?;
        let separator = Separator::compile(&self.separator, self.is_separator_regex)?;
        Ok(CharacterTextSplitter {
            config: self.config,
            separator,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_pieces_stay_whole() {
        let splitter = CharacterTextSplitter::builder()
            .separator(" ")
            .chunk_size(3)
            .chunk_overlap(1)
            .build()
            .unwrap();
        assert_eq!(
            splitter.split_text("foo bar baz a a"),
            ["foo", "bar", "baz", "a a"]
        );
    }

    #[test]
    fn keep_separator_end() {
        let splitter = CharacterTextSplitter::builder()
            .separator(".")
            .keep_separator(KeepSeparator::End)
            .chunk_size(1)
            .chunk_overlap(0)
            .build()
            .unwrap();
        assert_eq!(splitter.split_text("a.b.c"), ["a.", "b.", "c"]);
    }
}
