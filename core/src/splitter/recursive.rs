//! [`RecursiveCharacterTextSplitter`]: LangChain's recursive character splitter.
//!
//! ```
//! use catena_core::splitter::{Language, RecursiveCharacterTextSplitter, TextSplitter};
//!
//! # fn run() -> catena_core::Result<()> {
//! let splitter = RecursiveCharacterTextSplitter::from_language(Language::Rust)
//!     .chunk_size(40)
//!     .chunk_overlap(0)
//!     .build()?;
//! let code = "fn one() -> u8 {\n    1\n}\n\nfn two() -> u8 {\n    2\n}\n";
//! assert_eq!(
//!     splitter.split_text(code),
//!     ["fn one() -> u8 {\n    1\n}", "fn two() -> u8 {\n    2\n}"]
//! );
//! # Ok(())
//! # }
//! # run().unwrap();
//! ```

use super::merge::{merge_splits, split_with_regex, Piece, Separator, SplitterConfig};
use super::{Chunk, KeepSeparator, Language, TextSplitter};
use crate::Result;

/// The separators tried when none are given: paragraphs, lines, words, characters.
const DEFAULT_SEPARATORS: [&str; 4] = ["\n\n", "\n", " ", ""];

/// Splits text by trying separators in order, recursing into pieces that are still too long.
///
/// A port of LangChain's `RecursiveCharacterTextSplitter` with the same output: the text is
/// split on the first separator that occurs in it; pieces shorter than `chunk_size` are merged
/// back into chunks (with `chunk_overlap`), and longer pieces are split again with the
/// remaining separators. With the default separators (ending in `""`, which splits into
/// characters) no chunk is longer than `chunk_size`.
///
/// Build one with [`builder`](RecursiveCharacterTextSplitter::builder) or
/// [`from_language`](RecursiveCharacterTextSplitter::from_language).
#[derive(Debug, Clone)]
pub struct RecursiveCharacterTextSplitter {
    config: SplitterConfig,
    separators: Vec<Separator>,
}

impl RecursiveCharacterTextSplitter {
    /// A builder with LangChain's defaults.
    pub fn builder() -> RecursiveCharacterTextSplitterBuilder {
        RecursiveCharacterTextSplitterBuilder {
            config: SplitterConfig::new(KeepSeparator::Start),
            separators: Vec::new(),
            is_separator_regex: false,
        }
    }

    /// A builder preset with `language`'s separators (regexes), like LangChain's
    /// `RecursiveCharacterTextSplitter.from_language`. Same as
    /// `builder().language(language)`.
    pub fn from_language(language: Language) -> RecursiveCharacterTextSplitterBuilder {
        Self::builder().language(language)
    }

    /// The separators, as given, in the order they are tried.
    pub fn separators(&self) -> impl Iterator<Item = &str> + '_ {
        self.separators.iter().map(|s| s.raw.as_str())
    }

    /// LangChain's `_split_text`.
    fn split_into(&self, text: &str, base: usize, separators: &[Separator], out: &mut Vec<Chunk>) {
        let Some((last, _)) = separators.split_last() else {
            return;
        };
        // Use the first separator that occurs in the text (the empty one always "occurs");
        // when none does, the last one, with nothing left to recurse with.
        let mut separator = last;
        let mut rest: &[Separator] = &[];
        for (i, candidate) in separators.iter().enumerate() {
            match &candidate.regex {
                None => {
                    separator = candidate;
                    break;
                }
                Some(regex) if regex.is_match(text) => {
                    separator = candidate;
                    rest = separators.get(i + 1..).unwrap_or(&[]);
                    break;
                }
                Some(_) => {}
            }
        }

        let keep = self.config.keep_separator;
        let pieces = split_with_regex(text, base, separator.regex.as_ref(), keep);
        let merge_separator = match keep {
            KeepSeparator::Discard => separator.raw.as_str(),
            KeepSeparator::Start | KeepSeparator::End => "",
        };

        let mut good: Vec<Piece<'_>> = Vec::new();
        let mut good_lengths: Vec<usize> = Vec::new();
        for piece in pieces {
            let len = self.config.length.measure(piece.text);
            if len < self.config.chunk_size {
                good.push(piece);
                good_lengths.push(len);
                continue;
            }
            if !good.is_empty() {
                merge_splits(&self.config, &good, &good_lengths, merge_separator, out);
                good.clear();
                good_lengths.clear();
            }
            if rest.is_empty() {
                out.push(Chunk::new(piece.start, piece.text));
            } else {
                self.split_into(piece.text, piece.start, rest, out);
            }
        }
        if !good.is_empty() {
            merge_splits(&self.config, &good, &good_lengths, merge_separator, out);
        }
    }
}

impl TextSplitter for RecursiveCharacterTextSplitter {
    fn split_text(&self, text: &str) -> Vec<String> {
        self.split_chunks(text)
            .into_iter()
            .map(|c| c.text)
            .collect()
    }

    fn split_chunks(&self, text: &str) -> Vec<Chunk> {
        let mut out = Vec::new();
        self.split_into(text, 0, &self.separators, &mut out);
        out
    }

    fn add_start_index(&self) -> bool {
        self.config.add_start_index
    }
}

/// Builds a [`RecursiveCharacterTextSplitter`].
#[derive(Debug, Clone)]
pub struct RecursiveCharacterTextSplitterBuilder {
    config: SplitterConfig,
    separators: Vec<String>,
    is_separator_regex: bool,
}

impl RecursiveCharacterTextSplitterBuilder {
    common_setters!(keep_separator_default = "`KeepSeparator::Start`");

    /// The separators to try, in order. Default (and when given an empty list) is
    /// `["\n\n", "\n", " ", ""]`.
    #[must_use]
    pub fn separators<S: Into<String>>(mut self, separators: impl IntoIterator<Item = S>) -> Self {
        self.separators = separators.into_iter().map(Into::into).collect();
        self
    }

    /// Whether the separators are regular expressions (Rust `regex` syntax, which has no
    /// look-around) rather than literal strings. Default is `false`.
    #[must_use]
    pub fn is_separator_regex(mut self, is_regex: bool) -> Self {
        self.is_separator_regex = is_regex;
        self
    }

    /// Uses `language`'s separators, which are regexes (this also sets
    /// [`is_separator_regex`](Self::is_separator_regex)). Default is the plain-text separators.
    #[must_use]
    pub fn language(mut self, language: Language) -> Self {
        self.separators = language
            .separators()
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
        self.is_separator_regex = true;
        self
    }

    /// Validates the configuration and builds the splitter.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`](crate::Error::InvalidConfig) when `chunk_size` is 0,
    /// `chunk_overlap` is larger than `chunk_size`, or a separator is not a valid regex.
    pub fn build(self) -> Result<RecursiveCharacterTextSplitter> {
        self.config.validate()?;
        let separators = if self.separators.is_empty() {
            DEFAULT_SEPARATORS
                .iter()
                .map(|s| Separator::compile(s, false))
                .collect::<Result<Vec<_>>>()?
        } else {
            self.separators
                .iter()
                .map(|s| Separator::compile(s, self.is_separator_regex))
                .collect::<Result<Vec<_>>>()?
        };
        Ok(RecursiveCharacterTextSplitter {
            config: self.config,
            separators,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Error;

    fn splitter(size: usize, overlap: usize) -> RecursiveCharacterTextSplitter {
        RecursiveCharacterTextSplitter::builder()
            .chunk_size(size)
            .chunk_overlap(overlap)
            .build()
            .unwrap()
    }

    #[test]
    fn matches_langchain_small_example() {
        // From LangChain's test_iterative_text_splitter.
        let text = "Hi.\n\nI'm Harrison.\n\nHow? Are? You?\nOkay then f f f f.\n\
                    This is a weird text to write, but gotta test the splittingggg some how.\n\n\
                    Bye!\n\n-H.";
        let expected = [
            "Hi.",
            "I'm",
            "Harrison.",
            "How? Are?",
            "You?",
            "Okay then",
            "f f f f.",
            "This is a",
            "weird",
            "text to",
            "write,",
            "but gotta",
            "test the",
            "splitting",
            "gggg",
            "some how.",
            "Bye!",
            "-H.",
        ];
        assert_eq!(splitter(10, 1).split_text(text), expected);
    }

    #[test]
    fn chunk_size_one_splits_into_characters() {
        // A piece of exactly chunk_size is emitted as is, unstripped, as in LangChain.
        assert_eq!(splitter(1, 0).split_text("né ü"), ["n", "é", " ", "ü"]);
    }

    #[test]
    fn invalid_configuration_is_rejected() {
        assert!(matches!(
            RecursiveCharacterTextSplitter::builder()
                .chunk_size(0)
                .build(),
            Err(Error::InvalidConfig(_))
        ));
        assert!(matches!(
            RecursiveCharacterTextSplitter::builder()
                .chunk_size(5)
                .chunk_overlap(6)
                .build(),
            Err(Error::InvalidConfig(_))
        ));
        assert!(matches!(
            RecursiveCharacterTextSplitter::builder()
                .separators(["("])
                .is_separator_regex(true)
                .build(),
            Err(Error::InvalidConfig(_))
        ));
    }

    #[test]
    fn offsets_point_into_the_source() {
        let text = "ab cd\n\nef gh ij\nkl";
        for chunk in splitter(5, 2).split_chunks(text) {
            assert_eq!(
                &text[chunk.start..chunk.start + chunk.text.len()],
                chunk.text
            );
        }
    }
}
