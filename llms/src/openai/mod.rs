//! OpenAI: [`OpenAiChatModel`] speaks the Chat Completions API (unary and SSE streaming,
//! tools, structured outputs, images), [`OpenAiResponsesModel`] the newer Responses API
//! (the same, plus reasoning items carried between turns and stored conversations), and
//! [`OpenAiEmbedder`] the Embeddings API. All work with any OpenAI-compatible server (vLLM,
//! llama.cpp, Ollama, LM Studio, ...) that speaks the API in question, through
//! [`base_url`](OpenAiChatModelBuilder::base_url).
//!
//! Configure them with a builder or from the environment ([`API_KEY_ENV`],
//! [`BASE_URL_ENV`], [`ORG_ID_ENV`], [`PROJECT_ID_ENV`], [`MODEL_ENV`],
//! [`EMBEDDING_MODEL_ENV`]). The key is sent as a sensitive `Authorization` header and is
//! removed from every error message, even when a server echoes it back.
//!
//! ```no_run
//! use catena_core::{ChatModel, ChatRequest, Embedder, Message};
//! use catena_llms::openai::{OpenAiChatModel, OpenAiEmbedder};
//!
//! # async fn run() -> catena_core::Result<()> {
//! // Reads OPENAI_API_KEY (and the optional OPENAI_* settings).
//! let model = OpenAiChatModel::from_env()?;
//! let request = ChatRequest::new(vec![
//!     Message::system("You are terse."),
//!     Message::user("What is the capital of France?"),
//! ])
//! .with_temperature(0.0);
//! let answer = model.generate(request).await?;
//! println!("{}", answer.text());
//!
//! let embedder = OpenAiEmbedder::builder()
//!     .api_key(std::env::var("OPENAI_API_KEY").unwrap_or_default())
//!     .build()?;
//! let vector = embedder.embed_query("capital cities").await?;
//! assert_eq!(vector.len(), embedder.dimensions());
//! # Ok(()) }
//! ```
//!
//! Mapping notes (Chat Completions; [`OpenAiResponsesModel`] documents its own):
//! - [`ChatRequest::max_tokens`](catena_core::ChatRequest::max_tokens) is sent as
//!   `max_completion_tokens` (OpenAI deprecated `max_tokens`).
//! - The prompt cache's [`key`](catena_core::PromptCache::key) is sent as
//!   `prompt_cache_key`; cache hits come back as
//!   [`Usage::cached_input_tokens`](catena_core::Usage::cached_input_tokens) (from
//!   `prompt_tokens_details.cached_tokens`). `parallel_tool_calls`, `service_tier` and the
//!   reasoning effort (`reasoning_effort`) come from the request fields of the same names.
//! - [`ChatResponse::rate_limit`](catena_core::ChatResponse::rate_limit) (and a leading
//!   [`ChatChunk::RateLimit`](catena_core::ChatChunk::RateLimit) in streams) is read from
//!   the `x-ratelimit-*` response headers.
//! - A model *refusal* (OpenAI's `refusal` field, mostly under structured outputs) is
//!   returned as an error of kind
//!   [`ContentFiltered`](catena_core::ProviderErrorKind::ContentFiltered) carrying the
//!   refusal text, never as answer text.
//! - Strict JSON schemas get `"additionalProperties": false` on every object that does not
//!   say otherwise, as OpenAI's strict mode requires.
//! - Streams ask for the final usage chunk (`stream_options.include_usage`), and hold their
//!   [`Finish`](catena_core::ChatChunk::Finish) until `data: [DONE]`.

mod chat;
mod client;
mod embed;
mod error;
mod responses;
mod responses_stream;
mod responses_wire;
mod stream;
mod wire;

#[cfg(feature = "fuzzing")]
pub(crate) use self::{
    chat::parse_completion,
    client::{ConnectionConfig, OpenAiClient},
    error::openai_error_hook,
    stream::chat_stream,
    wire::ChatCompletion,
};

pub use chat::{OpenAiChatModel, OpenAiChatModelBuilder, DEFAULT_CHAT_MODEL};
pub use client::{
    API_KEY_ENV, BASE_URL_ENV, DEFAULT_BASE_URL, EMBEDDING_MODEL_ENV, MODEL_ENV, ORG_ID_ENV,
    PROJECT_ID_ENV,
};
pub use embed::{
    OpenAiEmbedder, OpenAiEmbedderBuilder, DEFAULT_EMBEDDING_BATCH_SIZE, DEFAULT_EMBEDDING_MODEL,
    MAX_INPUT_TOKENS, MAX_REQUEST_TOKENS,
};
pub use responses::{OpenAiResponsesModel, OpenAiResponsesModelBuilder};
