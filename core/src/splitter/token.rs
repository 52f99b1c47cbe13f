//! Token counting and [`TokenTextSplitter`], with OpenAI's tiktoken encodings.
//!
//! Tokens are computed by the linear-time byte-pair encoder of the `bpe-openai` crate (GitHub's
//! `rust-gems`): the same token ids as tiktoken's `encode_ordinary`, byte for byte (tests
//! compare them with `tiktoken-rs` on real text and on adversarial input), about three times as
//! fast as OpenAI's tiktoken (`docs/benchmarks.md`), and without tiktoken's backtracking
//! pre-tokenizer, which needs a cut for very long runs of one character class. Pre-tokens that
//! are whole tokens, most of them in real text, are looked up instead of encoded.
//!
//! ```
//! use catena_core::splitter::{count_tokens, TextSplitter, TokenEncoding, TokenTextSplitter};
//!
//! # fn run() -> catena_core::Result<()> {
//! assert_eq!(count_tokens(TokenEncoding::Cl100kBase, "hello world"), 2);
//!
//! let splitter = TokenTextSplitter::builder()
//!     .encoding_name("cl100k_base")
//!     .chunk_size(2)
//!     .chunk_overlap(0)
//!     .build()?;
//! assert_eq!(splitter.split_text("hello world, again"), ["hello world", ", again"]);
//! # Ok(())
//! # }
//! # run().unwrap();
//! ```

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::sync::OnceLock;

use bpe_openai::Tokenizer;
use foldhash::fast::FixedState;

use super::merge::validate_sizes;
use super::pretokens::cl100k_pieces;
use super::{Chunk, TextSplitter};
use crate::{Error, Result};

/// A tiktoken encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TokenEncoding {
    /// `cl100k_base`: GPT-4, GPT-3.5-turbo and `text-embedding-3-*`.
    Cl100kBase,
    /// `o200k_base`: GPT-4o and later.
    O200kBase,
}

impl TokenEncoding {
    /// The encoding's tiktoken name, such as `"cl100k_base"`.
    pub fn name(self) -> &'static str {
        match self {
            TokenEncoding::Cl100kBase => "cl100k_base",
            TokenEncoding::O200kBase => "o200k_base",
        }
    }

    /// Looks an encoding up by its tiktoken name.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] for an unknown name.
    pub fn from_name(name: &str) -> Result<Self> {
        match name {
            "cl100k_base" => Ok(TokenEncoding::Cl100kBase),
            "o200k_base" => Ok(TokenEncoding::O200kBase),
            other => Err(Error::invalid_config(format!(
                "unknown tiktoken encoding {other:?} (expected \"cl100k_base\" or \"o200k_base\")"
            ))),
        }
    }

    /// The shared tokenizer, loaded on first use.
    fn tokenizer(self) -> &'static Tokenizer {
        match self {
            TokenEncoding::Cl100kBase => bpe_openai::cl100k_base(),
            TokenEncoding::O200kBase => bpe_openai::o200k_base(),
        }
    }

    /// Every token's bytes, to its id: a pre-token that is a whole token encodes to that token
    /// alone, as tiktoken's own fast path has it (and the byte-pair encoder agrees: the longest
    /// token at the start of the piece is the piece itself, and nothing precedes it). Most
    /// pre-tokens of real text are, and a lookup spares them the encoder's set-up, which is
    /// most of its cost on short pieces. Built on first use, with the encoder's own tables: the
    /// first call takes 25 ms for cl100k and 56 ms for o200k in a release build (both together).
    fn whole_tokens(self) -> &'static HashMap<&'static [u8], u32, FixedState> {
        static CL100K: OnceLock<HashMap<&'static [u8], u32, FixedState>> = OnceLock::new();
        static O200K: OnceLock<HashMap<&'static [u8], u32, FixedState>> = OnceLock::new();
        let cell = match self {
            TokenEncoding::Cl100kBase => &CL100K,
            TokenEncoding::O200kBase => &O200K,
        };
        cell.get_or_init(|| {
            let bpe = &self.tokenizer().bpe;
            (0..bpe.num_tokens())
                .filter_map(|id| u32::try_from(id).ok())
                .map(|id| (bpe.token_bytes(id), id))
                .collect()
        })
    }

    /// The token ids of `text`, as tiktoken's `encode_ordinary` gives them: special-token text
    /// such as `<|endoftext|>` is encoded as ordinary text.
    pub fn encode(self, text: &str) -> Vec<u32> {
        let tokenizer = self.tokenizer();
        let whole = self.whole_tokens();
        let text = tokenizer.normalize(text);
        let mut ids = Vec::with_capacity(text.as_str().len() / 4);
        self.each_piece(text.as_str(), |piece| match whole.get(piece.as_bytes()) {
            Some(&id) => ids.push(id),
            None => ids.extend(tokenizer.bpe.encode_via_backtracking(piece.as_bytes())),
        });
        ids
    }

    /// The number of tokens of `text` (see [`count_tokens`]).
    fn count(self, text: &str) -> usize {
        let tokenizer = self.tokenizer();
        let whole = self.whole_tokens();
        let text = tokenizer.normalize(text);
        let mut count = 0;
        self.each_piece(text.as_str(), |piece| {
            count += if whole.contains_key(piece.as_bytes()) {
                1
            } else {
                tokenizer.bpe.count(piece.as_bytes())
            };
        });
        count
    }

    /// Calls `f` with each pre-token of the normalized `text`, in order: for cl100k from the
    /// hand-written ASCII pre-tokenizer, which leaves only non-ASCII pieces to the regex.
    fn each_piece<'t>(self, text: &'t str, f: impl FnMut(&'t str)) {
        let tokenizer = self.tokenizer();
        match self {
            TokenEncoding::Cl100kBase => cl100k_pieces(tokenizer, text).for_each(f),
            TokenEncoding::O200kBase => tokenizer.split(text).for_each(f),
        }
    }
}

impl fmt::Display for TokenEncoding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for TokenEncoding {
    type Err = Error;

    fn from_str(name: &str) -> Result<Self> {
        TokenEncoding::from_name(name)
    }
}

/// The number of tokens in `text` with `encoding`.
///
/// Special-token text such as `<|endoftext|>` is counted as ordinary text (LangChain's
/// tiktoken length function raises an error on it instead).
pub fn count_tokens(encoding: TokenEncoding, text: &str) -> usize {
    encoding.count(text)
}

/// Splits text into windows of `chunk_size` tokens, each starting `chunk_size - chunk_overlap`
/// tokens after the previous one: LangChain's `TokenTextSplitter`.
///
/// LangChain decodes each window of token ids, so a character whose bytes are spread over two
/// windows comes out as U+FFFD on both sides. This splitter instead cuts the source text at
/// the windows' byte offsets, moved forward to the next character boundary: such a character
/// goes whole to the earlier window, nothing is lost or replaced, and with `chunk_overlap(0)`
/// the chunks concatenate back to the input exactly. A chunk can therefore hold a few bytes
/// more than its `chunk_size` tokens. Whitespace is not stripped.
#[derive(Debug, Clone)]
pub struct TokenTextSplitter {
    encoding: TokenEncoding,
    chunk_size: usize,
    chunk_overlap: usize,
    add_start_index: bool,
}

impl TokenTextSplitter {
    /// A builder with LangChain's default sizes and the `cl100k_base` encoding.
    pub fn builder() -> TokenTextSplitterBuilder {
        TokenTextSplitterBuilder {
            encoding: Ok(TokenEncoding::Cl100kBase),
            chunk_size: 4000,
            chunk_overlap: 200,
            add_start_index: false,
        }
    }

    /// The encoding.
    pub fn encoding(&self) -> TokenEncoding {
        self.encoding
    }
}

impl TextSplitter for TokenTextSplitter {
    fn split_text(&self, text: &str) -> Vec<String> {
        self.split_chunks(text)
            .into_iter()
            .map(|c| c.text)
            .collect()
    }

    fn split_chunks(&self, text: &str) -> Vec<Chunk> {
        let tokenizer = self.encoding.tokenizer();
        let tokens = self.encoding.encode(text);
        // offsets[i] is the byte offset where token i starts; offsets[len] is the end. The text
        // is encoded once; every window is a slice of it.
        let mut offsets = Vec::with_capacity(tokens.len() + 1);
        let mut at = 0;
        offsets.push(0);
        for &token in &tokens {
            at += tokenizer.bpe.token_len(token);
            offsets.push(at.min(text.len()));
        }
        if let Some(last) = offsets.last_mut() {
            // The tokens of `encode_ordinary` cover the text; make sure of it.
            *last = text.len();
        }

        let step = self.chunk_size.saturating_sub(self.chunk_overlap).max(1);
        let mut chunks = Vec::new();
        let mut start_idx = 0;
        while start_idx < tokens.len() {
            let end_idx = (start_idx + self.chunk_size).min(tokens.len());
            let from = offsets.get(start_idx).copied().unwrap_or(text.len());
            let to = offsets.get(end_idx).copied().unwrap_or(text.len());
            let (from, to) = (ceil_char_boundary(text, from), ceil_char_boundary(text, to));
            if let Some(slice) = text.get(from..to) {
                if !slice.is_empty() {
                    chunks.push(Chunk::new(from, slice));
                }
            }
            if end_idx == tokens.len() {
                break;
            }
            start_idx += step;
        }
        chunks
    }

    fn add_start_index(&self) -> bool {
        self.add_start_index
    }
}

/// The smallest character boundary of `text` at or after `index` (at most `text.len()`).
fn ceil_char_boundary(text: &str, index: usize) -> usize {
    let mut index = index.min(text.len());
    while !text.is_char_boundary(index) {
        index += 1;
    }
    index
}

/// Builds a [`TokenTextSplitter`].
#[derive(Debug, Clone)]
pub struct TokenTextSplitterBuilder {
    /// The encoding, or the unknown name given for it.
    encoding: std::result::Result<TokenEncoding, String>,
    chunk_size: usize,
    chunk_overlap: usize,
    add_start_index: bool,
}

impl TokenTextSplitterBuilder {
    /// The encoding. Default is [`TokenEncoding::Cl100kBase`].
    #[must_use]
    pub fn encoding(mut self, encoding: TokenEncoding) -> Self {
        self.encoding = Ok(encoding);
        self
    }

    /// The encoding, by tiktoken name. Default is `"cl100k_base"`. An unknown name is reported
    /// by [`build`](Self::build).
    #[must_use]
    pub fn encoding_name(mut self, name: &str) -> Self {
        self.encoding = TokenEncoding::from_name(name).map_err(|_| name.to_owned());
        self
    }

    /// Tokens per chunk. Default is 4000.
    #[must_use]
    pub fn chunk_size(mut self, chunk_size: usize) -> Self {
        self.chunk_size = chunk_size;
        self
    }

    /// Tokens a chunk shares with the previous one; less than `chunk_size`. Default is 200.
    #[must_use]
    pub fn chunk_overlap(mut self, chunk_overlap: usize) -> Self {
        self.chunk_overlap = chunk_overlap;
        self
    }

    /// Whether `split_documents` records each chunk's start under
    /// [`START_INDEX_KEY`](super::START_INDEX_KEY). Default is `false`.
    #[must_use]
    pub fn add_start_index(mut self, add: bool) -> Self {
        self.add_start_index = add;
        self
    }

    /// Validates the configuration and builds the splitter.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] when the encoding name is unknown, `chunk_size` is 0, or
    /// `chunk_overlap` is not smaller than `chunk_size`.
    pub fn build(self) -> Result<TokenTextSplitter> {
        let encoding = match self.encoding {
            Ok(encoding) => encoding,
            Err(name) => {
                return Err(TokenEncoding::from_name(&name).err().unwrap_or_else(|| {
                    Error::invalid_config(format!("unknown tiktoken encoding {name:?}"))
                }))
            }
        };
        validate_sizes(self.chunk_size, self.chunk_overlap)?;
        if self.chunk_overlap >= self.chunk_size {
            return Err(Error::invalid_config(format!(
                "chunk_overlap ({}) must be smaller than chunk_size ({}) for token splitting",
                self.chunk_overlap, self.chunk_size
            )));
        }
        Ok(TokenTextSplitter {
            encoding,
            chunk_size: self.chunk_size,
            chunk_overlap: self.chunk_overlap,
            add_start_index: self.add_start_index,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn splitter(size: usize, overlap: usize) -> TokenTextSplitter {
        TokenTextSplitter::builder()
            .chunk_size(size)
            .chunk_overlap(overlap)
            .build()
            .unwrap()
    }

    #[test]
    fn long_runs_do_not_panic() {
        let spaces = " ".repeat(1 << 20);
        assert!(count_tokens(TokenEncoding::Cl100kBase, &spaces) > 0);
        let emoji = "😀".repeat(1 << 16);
        let chunks = splitter(1000, 0).split_text(&emoji);
        assert_eq!(chunks.concat(), emoji);
    }

    #[test]
    fn unknown_encoding_is_invalid_config() {
        let err = TokenTextSplitter::builder()
            .encoding_name("gpt2")
            .build()
            .unwrap_err();
        assert!(matches!(err, Error::InvalidConfig(_)));
        assert!("o200k_base".parse::<TokenEncoding>().is_ok());
    }

    #[test]
    fn overlap_must_be_smaller() {
        assert!(TokenTextSplitter::builder()
            .chunk_size(3)
            .chunk_overlap(3)
            .build()
            .is_err());
    }

    #[test]
    fn characters_split_between_tokens_are_kept_whole() {
        // Emoji and rare CJK take several tokens each in cl100k_base.
        let text = "🦀🦀 蟹 𝄞 x";
        for size in 1..6 {
            let chunks = splitter(size, 0).split_text(text);
            assert_eq!(chunks.concat(), text, "chunk_size {size}");
        }
    }
}
