//! Google Gemini: chat and embeddings through the Gemini API (an API key from Google AI
//! Studio, sent in the `x-goog-api-key` header) or Vertex AI (OAuth bearer tokens from a
//! [`TokenSource`]: a service account, `gcloud` user credentials, or your own).
//!
//! The same [`GeminiChatModel`] and [`GeminiEmbedder`] serve both; `.vertex(project,
//! location)` on the builder switches to Vertex AI. Streams use server-sent events; one
//! that ends before Gemini's `finishReason` is an error of kind
//! [`StreamInterrupted`](catena_core::ProviderErrorKind::StreamInterrupted) carrying the
//! partial answer. Errors are classified from Google's error body (`API_KEY_INVALID` and
//! `PERMISSION_DENIED` are auth errors, `RESOURCE_EXHAUSTED` is a rate limit whose
//! `RetryInfo` delay is honoured, ...), and keys and tokens never appear in them.
//!
//! With an API key:
//!
//! ```no_run
//! use catena_core::{ChatModel, ChatRequest, Embedder, Message};
//! use catena_llms::gemini::{GeminiChatModel, GeminiEmbedder};
//!
//! # async fn run() -> catena_core::Result<()> {
//! let chat = GeminiChatModel::from_env()?; // GEMINI_API_KEY, GEMINI_MODEL
//! let answer = chat
//!     .generate(ChatRequest::new(vec![Message::user("Why is the sky blue?")]))
//!     .await?;
//! println!("{}", answer.text());
//!
//! let embedder = GeminiEmbedder::builder()
//!     .api_key(std::env::var("GEMINI_API_KEY").unwrap_or_default())
//!     .output_dimensionality(768)
//!     .build()?;
//! let vectors = embedder.embed_documents(&["hello".to_string()]).await?;
//! assert_eq!(vectors[0].len(), 768);
//! # Ok(()) }
//! ```
//!
//! On Vertex AI:
//!
//! ```no_run
//! use catena_core::{ChatModel, ChatRequest, Message};
//! use catena_llms::gemini::{GeminiChatModel, ServiceAccountTokenSource};
//!
//! # async fn run() -> catena_core::Result<()> {
//! let chat = GeminiChatModel::builder()
//!     .vertex("my-project", "us-central1")
//!     // Without this, Application Default Credentials are used.
//!     .token_source(ServiceAccountTokenSource::from_file("service-account.json")?)
//!     .model("gemini-2.5-flash")
//!     .build()?;
//! let answer = chat
//!     .generate(ChatRequest::new(vec![Message::user("Hello!")]))
//!     .await?;
//! println!("{}", answer.text());
//! # Ok(()) }
//! ```

mod auth;
mod chat;
mod client;
mod embed;
mod error;
mod stream;
mod wire;

#[cfg(feature = "fuzzing")]
pub(crate) use self::{
    chat::to_response,
    error::{error_hook, finish_error},
    stream::decode_stream,
    wire::GenerateReply,
};

pub use auth::{
    application_default_credentials, credentials_from_json, AccessToken, AuthorizedUserTokenSource,
    CachedTokenSource, ServiceAccountTokenSource, StaticToken, TokenSource, CLOUD_PLATFORM_SCOPE,
    DEFAULT_TOKEN_URI, GOOGLE_APPLICATION_CREDENTIALS_ENV,
};
pub use chat::{GeminiChatModel, GeminiChatModelBuilder, DEFAULT_CHAT_MODEL};
pub use client::{
    DEFAULT_BASE_URL, DEFAULT_VERTEX_LOCATION, GEMINI_API_KEY_ENV, GEMINI_EMBED_MODEL_ENV,
    GEMINI_MODEL_ENV, GOOGLE_API_KEY_ENV, GOOGLE_CLOUD_LOCATION_ENV, GOOGLE_CLOUD_PROJECT_ENV,
};
pub use embed::{
    GeminiEmbedder, GeminiEmbedderBuilder, DEFAULT_EMBED_MODEL, GEMINI_API_MAX_BATCH,
    VERTEX_MAX_BATCH,
};
