//! Text splitters: cut long text into chunks small enough to embed or to fit a prompt.
//!
//! The splitters are ports of LangChain's `langchain_text_splitters` and give the same chunks
//! for the same configuration (the integration test `splitter_langchain` checks this against
//! recorded LangChain output):
//!
//! - [`RecursiveCharacterTextSplitter`] tries a list of separators in order (`"\n\n"`, `"\n"`,
//!   `" "`, `""` by default, or code-aware ones from [`Language`]) and merges the pieces back
//!   into chunks of at most `chunk_size`, with `chunk_overlap` carried over between chunks.
//! - [`CharacterTextSplitter`] splits on one separator and merges.
//! - [`TokenTextSplitter`] cuts a tiktoken token stream into windows; [`count_tokens`] counts.
//! - [`MarkdownHeaderTextSplitter`] cuts Markdown at headers and records them as metadata.
//!
//! Lengths are counted in characters (Unicode scalar values, like Python's `len`) unless a
//! [`LengthFunction`] says otherwise. Splitting is synchronous and CPU-only; once built, a
//! splitter never fails and never panics, whatever the input.
//!
//! ```
//! use catena_core::splitter::{RecursiveCharacterTextSplitter, TextSplitter};
//!
//! # fn run() -> catena_core::Result<()> {
//! let splitter = RecursiveCharacterTextSplitter::builder()
//!     .chunk_size(24)
//!     .chunk_overlap(8)
//!     .build()?;
//! let chunks = splitter.split_text("Rust has no garbage collector.\n\nIt has ownership.");
//! assert_eq!(chunks, ["Rust has no garbage", "garbage collector.", "It has ownership."]);
//! # Ok(())
//! # }
//! # run().unwrap();
//! ```

use std::fmt;
use std::sync::Arc;

use serde_json::Value;

use crate::{Document, Metadata};

/// Generates the builder setters shared by the character and recursive splitters. The builder
/// must have a `config: merge::SplitterConfig` field.
macro_rules! common_setters {
    (keep_separator_default = $keep_default:literal) => {
        /// The most a chunk may measure, in units of the length function. Default is 4000.
        #[must_use]
        pub fn chunk_size(mut self, chunk_size: usize) -> Self {
            self.config.chunk_size = chunk_size;
            self
        }

        /// How much of the previous chunk's tail a chunk repeats, in units of the length
        /// function; at most `chunk_size`. Default is 200.
        #[must_use]
        pub fn chunk_overlap(mut self, chunk_overlap: usize) -> Self {
            self.config.chunk_overlap = chunk_overlap;
            self
        }

        /// How lengths are measured. Default is [`LengthFunction::chars`](crate::splitter::LengthFunction::chars).
        #[must_use]
        pub fn length_function(mut self, length: crate::splitter::LengthFunction) -> Self {
            self.config.length = length;
            self
        }

        /// Measures lengths in tiktoken tokens of `encoding` (LangChain's
        /// `from_tiktoken_encoder`). Default is to count characters.
        #[must_use]
        pub fn token_length(mut self, encoding: crate::splitter::TokenEncoding) -> Self {
            self.config.length = crate::splitter::LengthFunction::tokens(encoding);
            self
        }

        #[doc = concat!("Whether and where to keep the separator (`true` means [`KeepSeparator::Start`](crate::splitter::KeepSeparator::Start)). Default is ", $keep_default, ".")]
        #[must_use]
        pub fn keep_separator(mut self, keep: impl Into<crate::splitter::KeepSeparator>) -> Self {
            self.config.keep_separator = keep.into();
            self
        }

        /// Whether `split_documents` records each chunk's start under
        /// [`START_INDEX_KEY`](crate::splitter::START_INDEX_KEY). Default is `false`.
        #[must_use]
        pub fn add_start_index(mut self, add: bool) -> Self {
            self.config.add_start_index = add;
            self
        }

        /// Whether to strip whitespace (as Python's `str.strip`) from both ends of each merged
        /// chunk, dropping chunks left empty. Default is `true`.
        #[must_use]
        pub fn strip_whitespace(mut self, strip: bool) -> Self {
            self.config.strip_whitespace = strip;
            self
        }
    };
}

mod character;
mod language;
mod markdown;
mod merge;
mod pretokens;
mod recursive;
mod token;

pub use character::{CharacterTextSplitter, CharacterTextSplitterBuilder};
pub use language::Language;
pub use markdown::MarkdownHeaderTextSplitter;
pub use recursive::{RecursiveCharacterTextSplitter, RecursiveCharacterTextSplitterBuilder};
pub use token::{count_tokens, TokenEncoding, TokenTextSplitter, TokenTextSplitterBuilder};

/// The metadata key under which [`TextSplitter::split_documents`] records where a chunk starts
/// in its source text, when the splitter was built with `add_start_index(true)`.
///
/// As in LangChain, the value is a character index (Unicode scalar values), not a byte offset.
pub const START_INDEX_KEY: &str = "start_index";

/// One chunk of a split text, with where it starts in the source.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Chunk {
    /// Byte offset in the source text where the chunk starts.
    ///
    /// When the splitter keeps separators (the default for the recursive splitter), the chunk
    /// is a verbatim slice: `text == source[start..start + text.len()]`. When separators are
    /// discarded and re-inserted between pieces, `start` is where the first piece begins.
    pub start: usize,
    /// The chunk's text.
    pub text: String,
}

impl Chunk {
    /// A chunk of `text` starting at byte offset `start` of its source.
    pub fn new(start: usize, text: impl Into<String>) -> Self {
        Chunk {
            start,
            text: text.into(),
        }
    }
}

/// Whether and where a splitter keeps the separator it split on.
///
/// `From<bool>` follows LangChain: `true` is [`KeepSeparator::Start`], `false` is
/// [`KeepSeparator::Discard`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum KeepSeparator {
    /// Drop the separator, and put it back (literally) between merged pieces.
    Discard,
    /// Keep the separator at the start of the piece that follows it.
    Start,
    /// Keep the separator at the end of the piece that precedes it.
    End,
}

impl From<bool> for KeepSeparator {
    fn from(keep: bool) -> Self {
        if keep {
            KeepSeparator::Start
        } else {
            KeepSeparator::Discard
        }
    }
}

type LengthFn = dyn Fn(&str) -> usize + Send + Sync;

/// How a splitter measures the length of a piece of text.
///
/// The default is [`LengthFunction::chars`], which matches Python's `len`.
#[derive(Clone, Default)]
pub struct LengthFunction {
    kind: LengthKind,
}

#[derive(Clone, Default)]
enum LengthKind {
    #[default]
    Chars,
    Bytes,
    Tokens(TokenEncoding),
    Custom(Arc<LengthFn>),
}

impl LengthFunction {
    /// Counts Unicode scalar values (Python's `len`). The default.
    pub fn chars() -> Self {
        LengthFunction {
            kind: LengthKind::Chars,
        }
    }

    /// Counts UTF-8 bytes.
    pub fn bytes() -> Self {
        LengthFunction {
            kind: LengthKind::Bytes,
        }
    }

    /// Counts tiktoken tokens, like LangChain's `from_tiktoken_encoder`. See [`count_tokens`].
    pub fn tokens(encoding: TokenEncoding) -> Self {
        LengthFunction {
            kind: LengthKind::Tokens(encoding),
        }
    }

    /// Any function of the text, for example a Hugging Face tokenizer's token count.
    pub fn custom(f: impl Fn(&str) -> usize + Send + Sync + 'static) -> Self {
        LengthFunction {
            kind: LengthKind::Custom(Arc::new(f)),
        }
    }

    /// The length of `text`.
    pub fn measure(&self, text: &str) -> usize {
        match &self.kind {
            LengthKind::Chars => text.chars().count(),
            LengthKind::Bytes => text.len(),
            LengthKind::Tokens(encoding) => count_tokens(*encoding, text),
            LengthKind::Custom(f) => f(text),
        }
    }
}

impl fmt::Debug for LengthFunction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            LengthKind::Chars => f.write_str("LengthFunction::Chars"),
            LengthKind::Bytes => f.write_str("LengthFunction::Bytes"),
            LengthKind::Tokens(encoding) => write!(f, "LengthFunction::Tokens({encoding:?})"),
            LengthKind::Custom(_) => f.write_str("LengthFunction::Custom(..)"),
        }
    }
}

/// Splits text into chunks.
///
/// Implementors provide [`split_text`](TextSplitter::split_text); the splitters in this module
/// also override [`split_chunks`](TextSplitter::split_chunks) with exact offsets. The trait is
/// object safe, so a splitter can be chosen at run time as `Arc<dyn TextSplitter>`.
pub trait TextSplitter: Send + Sync {
    /// Splits `text` into chunks.
    fn split_text(&self, text: &str) -> Vec<String>;

    /// Splits `text` into chunks, each with the byte offset where it starts in `text`.
    ///
    /// The default implementation calls [`split_text`](TextSplitter::split_text) and finds each
    /// chunk in `text`, searching from where the previous chunk started; a chunk that is not a
    /// verbatim slice of `text` gets the previous chunk's start.
    fn split_chunks(&self, text: &str) -> Vec<Chunk> {
        let mut from = 0;
        self.split_text(text)
            .into_iter()
            .map(|chunk| {
                if let Some(pos) = text.get(from..).and_then(|rest| rest.find(chunk.as_str())) {
                    from += pos;
                }
                Chunk::new(from, chunk)
            })
            .collect()
    }

    /// Whether [`create_documents`](TextSplitter::create_documents) records each chunk's
    /// start (under [`START_INDEX_KEY`]). Defaults to `false`.
    fn add_start_index(&self) -> bool {
        false
    }

    /// Splits each text into documents. `metadatas[i]` is copied into every chunk of
    /// `texts[i]`; texts without an entry get empty metadata.
    fn create_documents(&self, texts: &[&str], metadatas: &[Metadata]) -> Vec<Document> {
        let mut documents = Vec::new();
        for (i, text) in texts.iter().enumerate() {
            let base = metadatas.get(i).cloned().unwrap_or_default();
            let mut chars = CharIndex::new(text);
            for chunk in self.split_chunks(text) {
                let mut metadata = base.clone();
                if self.add_start_index() {
                    metadata.insert(
                        START_INDEX_KEY.to_owned(),
                        Value::from(chars.char_index(chunk.start)),
                    );
                }
                documents.push(Document::new(chunk.text).with_metadata_map(metadata));
            }
        }
        documents
    }

    /// Splits documents, copying each document's metadata into its chunks. Chunks get no id,
    /// since one id cannot name several chunks.
    fn split_documents(&self, documents: &[Document]) -> Vec<Document> {
        let texts: Vec<&str> = documents.iter().map(|d| d.content.as_str()).collect();
        let metadatas: Vec<Metadata> = documents.iter().map(|d| d.metadata.clone()).collect();
        self.create_documents(&texts, &metadatas)
    }
}

impl<T: TextSplitter + ?Sized> TextSplitter for Arc<T> {
    fn split_text(&self, text: &str) -> Vec<String> {
        (**self).split_text(text)
    }
    fn split_chunks(&self, text: &str) -> Vec<Chunk> {
        (**self).split_chunks(text)
    }
    fn add_start_index(&self) -> bool {
        (**self).add_start_index()
    }
    fn create_documents(&self, texts: &[&str], metadatas: &[Metadata]) -> Vec<Document> {
        (**self).create_documents(texts, metadatas)
    }
    fn split_documents(&self, documents: &[Document]) -> Vec<Document> {
        (**self).split_documents(documents)
    }
}

impl<T: TextSplitter + ?Sized> TextSplitter for Box<T> {
    fn split_text(&self, text: &str) -> Vec<String> {
        (**self).split_text(text)
    }
    fn split_chunks(&self, text: &str) -> Vec<Chunk> {
        (**self).split_chunks(text)
    }
    fn add_start_index(&self) -> bool {
        (**self).add_start_index()
    }
    fn create_documents(&self, texts: &[&str], metadatas: &[Metadata]) -> Vec<Document> {
        (**self).create_documents(texts, metadatas)
    }
    fn split_documents(&self, documents: &[Document]) -> Vec<Document> {
        (**self).split_documents(documents)
    }
}

const _: fn() = || {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Arc<dyn TextSplitter>>();
    fn _obj_safe(_: &dyn TextSplitter) {}
};

/// Converts increasing byte offsets of one text into character indices without rescanning
/// from the start each time.
struct CharIndex<'a> {
    text: &'a str,
    byte: usize,
    chars: usize,
}

impl<'a> CharIndex<'a> {
    fn new(text: &'a str) -> Self {
        CharIndex {
            text,
            byte: 0,
            chars: 0,
        }
    }

    fn char_index(&mut self, byte: usize) -> usize {
        if byte < self.byte {
            self.byte = 0;
            self.chars = 0;
        }
        let counted = self
            .text
            .get(self.byte..)
            .map(|rest| {
                rest.char_indices()
                    .take_while(|(i, _)| self.byte + i < byte)
                    .count()
            })
            .unwrap_or(0);
        self.chars += counted;
        self.byte = byte;
        self.chars
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn char_index_counts_scalar_values() {
        let text = "aé😀b";
        let mut index = CharIndex::new(text);
        assert_eq!(index.char_index(0), 0);
        assert_eq!(index.char_index(1), 1);
        assert_eq!(index.char_index(3), 2);
        assert_eq!(index.char_index(7), 3);
        assert_eq!(index.char_index(1), 1);
    }

    #[test]
    fn length_functions() {
        assert_eq!(LengthFunction::chars().measure("né"), 2);
        assert_eq!(LengthFunction::bytes().measure("né"), 3);
        assert_eq!(LengthFunction::custom(|_| 7).measure("x"), 7);
        assert_eq!(
            format!("{:?}", LengthFunction::custom(|_| 7)),
            "LengthFunction::Custom(..)"
        );
    }
}
