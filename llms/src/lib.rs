//! Chat models and embedders for Catena: OpenAI (Chat Completions and Responses), Anthropic, Gemini and Ollama.
//!
//! Every client implements [`catena_core::ChatModel`] and/or [`catena_core::Embedder`], so
//! programs hold `Arc<dyn ChatModel>` and pick the provider from configuration. All clients
//! share one HTTP transport ([`HttpOptions`]): connect / request / stream-idle timeouts,
//! retries with exponential backoff that honour `Retry-After` ([`catena_core::RetryPolicy`]), bounded
//! bodies and stream lines, and typed errors that never contain the API key ([`ApiKey`]).
//!
//! | feature | default | provides |
//! | --- | --- | --- |
//! | `openai` | yes | OpenAI Chat Completions, the Responses API and Embeddings, and any OpenAI-compatible server |
//! | `gemini` | yes | Gemini (Generative Language API with an API key; Vertex AI) |
//! | `ollama` | yes | Ollama's native `/api/chat` and `/api/embed` |
//! | `anthropic` | no | Anthropic's Messages API (Claude): streaming, tools, extended thinking, prompt caching, structured outputs |
//! | `cohere` | no | Cohere's hosted rerankers (`/v2/rerank`) |
//! | `local` | no | in-process models on the CPU (candle): a sentence-transformer embedder and a GGUF chat model |
//!
//! The transport retries by the one [`catena_core::RetryPolicy`] of the workspace; the
//! `Retry` decorator of `catena-chains` adds the same behaviour to any chat model, embedder,
//! store or chain, and never multiplies the attempts of a transport it wraps:
//!
//! ```
//! use catena_core::RetryPolicy;
//! use catena_llms::HttpOptions;
//!
//! let http = HttpOptions::new().retry(RetryPolicy::default().with_max_retries(3));
//! ```

#![cfg_attr(docsrs, feature(doc_cfg))]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

mod env;
#[cfg(any(feature = "openai", feature = "anthropic"))]
mod schema;
mod secret;

#[cfg(feature = "__http")]
mod http;

#[cfg(feature = "anthropic")]
#[cfg_attr(docsrs, doc(cfg(feature = "anthropic")))]
pub mod anthropic;
#[cfg(feature = "cohere")]
#[cfg_attr(docsrs, doc(cfg(feature = "cohere")))]
pub mod cohere;
#[cfg(feature = "gemini")]
#[cfg_attr(docsrs, doc(cfg(feature = "gemini")))]
pub mod gemini;
#[cfg(feature = "local")]
#[cfg_attr(docsrs, doc(cfg(feature = "local")))]
pub mod local;
#[cfg(feature = "ollama")]
#[cfg_attr(docsrs, doc(cfg(feature = "ollama")))]
pub mod ollama;
#[cfg(feature = "openai")]
#[cfg_attr(docsrs, doc(cfg(feature = "openai")))]
pub mod openai;

#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;

#[cfg(feature = "local")]
#[cfg_attr(docsrs, doc(cfg(feature = "local")))]
pub use env::local_models;
pub use env::{from_env, model_cache_dir, Providers};
pub use secret::ApiKey;

#[cfg(feature = "__http")]
pub use http::HttpOptions;
