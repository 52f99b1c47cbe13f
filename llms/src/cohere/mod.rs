//! Cohere (feature `cohere`): [`CohereReranker`] speaks the v2 Rerank API
//! (`POST {base}/v2/rerank`), and works with any server that speaks the same format
//! through [`base_url`](CohereRerankerBuilder::base_url).
//!
//! Configure it with a builder or from the environment ([`API_KEY_ENV`] or
//! [`ALT_API_KEY_ENV`], [`BASE_URL_ENV`], [`RERANK_MODEL_ENV`]). The key is sent as a
//! sensitive `Authorization` header and is removed from every error message, even when a
//! server echoes it back. Errors are typed by what the caller can do: 401 is
//! [`Auth`](catena_core::ProviderErrorKind::Auth), 404 naming a model
//! [`ModelNotFound`](catena_core::ProviderErrorKind::ModelNotFound), 429
//! [`RateLimited`](catena_core::ProviderErrorKind::RateLimited) with the `Retry-After` wait,
//! 5xx and 499 (cancelled) retryable, 402 (billing) not; a response naming a document that
//! was not sent, or one document twice, is
//! [`MalformedResponse`](catena_core::ProviderErrorKind::MalformedResponse).
//!
//! ```no_run
//! use catena_core::{Document, Reranker};
//! use catena_llms::cohere::CohereReranker;
//!
//! # async fn run() -> catena_core::Result<()> {
//! // Reads COHERE_API_KEY (or CO_API_KEY), and CO_API_URL / COHERE_RERANK_MODEL when set.
//! let reranker = CohereReranker::from_env()?;
//! let docs = vec![
//!     Document::new("Carson City is the capital city of the American state of Nevada."),
//!     Document::new("Washington, D.C. is the capital of the United States."),
//! ];
//! for hit in reranker.rerank("What is the capital of the United States?", &docs, 1).await? {
//!     println!("{:.3} {}", hit.score, docs[hit.index].content);
//! }
//! # Ok(()) }
//! ```

mod error;
mod rerank;
mod wire;

pub use rerank::{
    CohereReranker, CohereRerankerBuilder, ALT_API_KEY_ENV, API_KEY_ENV, BASE_URL_ENV,
    DEFAULT_BASE_URL, DEFAULT_MAX_DOCUMENTS_PER_REQUEST, DEFAULT_RERANK_MODEL, RERANK_MODEL_ENV,
};
