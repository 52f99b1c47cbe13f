//! Chat models: one trait for every provider, a complete answer or a stream of typed
//! deltas, and one accumulator so both end in the same [`ChatResponse`].
//!
//! ```
//! use std::sync::Arc;
//! use catena_core::{ChatModel, ChatModelExt, ChatRequest, Message};
//! use catena_core::test_utils::ScriptedChatModel;
//! use futures::StreamExt;
//!
//! # futures::executor::block_on(async {
//! let model: Arc<dyn ChatModel> = ScriptedChatModel::new()
//!     .with_text("Paris.")
//!     .with_text("Paris.")
//!     .boxed();
//! let req = ChatRequest::new(vec![Message::user("Capital of France?")]);
//! let unary = model.generate(req.clone()).await.unwrap();
//!
//! let mut stream = model.stream(req).await.unwrap();
//! let mut streamed = String::new();
//! while let Some(chunk) = stream.next().await {
//!     if let catena_core::ChatChunk::TextDelta(t) = chunk.unwrap() {
//!         streamed.push_str(&t);
//!     }
//! }
//! assert_eq!(unary.text(), streamed);
//! # });
//! ```

mod request;
mod stream;
mod traced;

use std::sync::Arc;

use async_trait::async_trait;

pub use request::{
    ChatRequest, ChatResponse, ModelInfo, PromptCache, ReasoningEffort, ReasoningOptions,
    ResponseFormat, ToolChoice,
};
pub use stream::{
    collect_stream, response_to_chunks, stream_interrupted, ChatChunk, ChatStream,
    StreamAccumulator,
};
pub use traced::TracedChatModel;

use crate::error::Result;

/// A chat model: OpenAI, Gemini, Ollama, a local model, or a test double.
///
/// Object-safe, so programs hold `Arc<dyn ChatModel>` and pick the backend from
/// configuration.
#[async_trait]
pub trait ChatModel: Send + Sync {
    /// The complete answer.
    ///
    /// # Errors
    /// [`Error::Provider`](crate::Error::Provider) classified by what the caller can do;
    /// [`Error::InvalidInput`](crate::Error::InvalidInput) for requests that cannot be sent.
    async fn generate(&self, request: ChatRequest) -> Result<ChatResponse>;

    /// The answer as a stream of deltas. The default wraps [`generate`](Self::generate)
    /// into a one-shot stream; real backends stream. A stream that stops before its
    /// [`ChatChunk::Finish`] yields an error of kind
    /// [`StreamInterrupted`](crate::ProviderErrorKind::StreamInterrupted).
    ///
    /// # Errors
    /// As for [`generate`](Self::generate), for failures before the first chunk.
    async fn stream(&self, request: ChatRequest) -> Result<ChatStream> {
        let response = self.generate(request).await?;
        let chunks = response_to_chunks(&response).into_iter().map(Ok);
        Ok(Box::pin(futures::stream::iter(chunks)))
    }

    /// What the model can do.
    fn model_info(&self) -> ModelInfo;
}

#[async_trait]
impl<T: ChatModel + ?Sized> ChatModel for Arc<T> {
    async fn generate(&self, request: ChatRequest) -> Result<ChatResponse> {
        (**self).generate(request).await
    }
    async fn stream(&self, request: ChatRequest) -> Result<ChatStream> {
        (**self).stream(request).await
    }
    fn model_info(&self) -> ModelInfo {
        (**self).model_info()
    }
}

#[async_trait]
impl<T: ChatModel + ?Sized> ChatModel for Box<T> {
    async fn generate(&self, request: ChatRequest) -> Result<ChatResponse> {
        (**self).generate(request).await
    }
    async fn stream(&self, request: ChatRequest) -> Result<ChatStream> {
        (**self).stream(request).await
    }
    fn model_info(&self) -> ModelInfo {
        (**self).model_info()
    }
}

/// Combinators for every [`ChatModel`].
pub trait ChatModelExt: ChatModel {
    /// Erases the model's type.
    fn boxed(self) -> Arc<dyn ChatModel>
    where
        Self: Sized + 'static,
    {
        Arc::new(self)
    }

    /// Wraps the model in a [`TracedChatModel`]: a span with the OpenTelemetry GenAI
    /// attributes around every call.
    fn traced(self) -> TracedChatModel<Self>
    where
        Self: Sized,
    {
        TracedChatModel::new(self)
    }
}

impl<T: ChatModel + ?Sized> ChatModelExt for T {}
