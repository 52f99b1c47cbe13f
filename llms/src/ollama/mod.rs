//! Ollama: chat and embeddings through Ollama's native API (`/api/chat`, `/api/embed`).
//!
//! The server comes from [`OLLAMA_HOST_ENV`] (`OLLAMA_HOST`, any form the Ollama CLI
//! accepts) and defaults to `http://127.0.0.1:11434`. Streams are newline-delimited JSON;
//! a stream that ends before Ollama's `done: true` is an error of kind
//! [`StreamInterrupted`](catena_core::ProviderErrorKind::StreamInterrupted) carrying the
//! partial answer.
//!
//! ```no_run
//! use catena_core::{ChatModel, ChatRequest, Embedder, Message};
//! use catena_llms::ollama::{OllamaChatModel, OllamaEmbedder};
//!
//! # async fn run() -> catena_core::Result<()> {
//! let chat = OllamaChatModel::builder().model("llama3.2").build()?;
//! let answer = chat
//!     .generate(ChatRequest::new(vec![Message::user("Why is the sky blue?")]))
//!     .await?;
//! println!("{}", answer.text());
//!
//! let embedder = OllamaEmbedder::builder().model("nomic-embed-text").build()?;
//! let vectors = embedder.embed_documents(&["hello".to_string()]).await?;
//! assert_eq!(vectors[0].len(), embedder.dimensions());
//! # Ok(()) }
//! ```

mod chat;
mod client;
mod embed;
mod wire;

#[cfg(feature = "fuzzing")]
pub(crate) use self::{chat::decode_stream, client::error_hook};

pub use chat::{OllamaChatModel, OllamaChatModelBuilder};
pub use client::{DEFAULT_HOST, OLLAMA_EMBED_MODEL_ENV, OLLAMA_HOST_ENV, OLLAMA_MODEL_ENV};
pub use embed::{OllamaEmbedder, OllamaEmbedderBuilder};
