//! [`TracedChatModel`]: a `tracing` span around every model call, with the OpenTelemetry GenAI
//! semantic-convention attributes.

use std::pin::Pin;
use std::task::{Context, Poll};

use async_trait::async_trait;
use futures::Stream;
use tracing::field::Empty;
use tracing::{Instrument, Span};

use super::{ChatChunk, ChatModel, ChatRequest, ChatResponse, ChatStream, ModelInfo};
use crate::error::{Error, Result};
use crate::message::Usage;

/// Wraps a chat model so each `generate` or `stream` call runs in a span named
/// `chat {model}` with the [GenAI semantic conventions]: `gen_ai.operation.name = "chat"`,
/// `gen_ai.provider.name`, `gen_ai.request.model`, `gen_ai.request.max_tokens`,
/// `gen_ai.request.temperature`, and, once known, `gen_ai.response.model`,
/// `gen_ai.response.finish_reasons`, `gen_ai.usage.input_tokens`, `gen_ai.usage.output_tokens`
/// and `error.type`. A `tracing-opentelemetry` layer turns them into OpenTelemetry client spans.
/// Prompts and answers are never recorded.
///
/// A streamed call's span lasts until the stream ends or is dropped.
///
/// ```
/// use catena_core::{ChatModel, ChatModelExt, ChatRequest, Message};
/// use catena_core::test_utils::ScriptedChatModel;
///
/// # futures::executor::block_on(async {
/// let model = ScriptedChatModel::new().with_text("hi").traced();
/// let answer = model.generate(ChatRequest::new(vec![Message::user("hello")])).await.unwrap();
/// assert_eq!(answer.text(), "hi");
/// # });
/// ```
///
/// [GenAI semantic conventions]: https://opentelemetry.io/docs/specs/semconv/gen-ai/gen-ai-spans/
#[derive(Debug, Clone)]
pub struct TracedChatModel<M> {
    inner: M,
}

impl<M: ChatModel> TracedChatModel<M> {
    /// Wraps `inner`.
    pub fn new(inner: M) -> Self {
        TracedChatModel { inner }
    }

    fn span(&self, request: &ChatRequest) -> Span {
        let info = self.inner.model_info();
        let model = request.model.clone().unwrap_or(info.model);
        tracing::info_span!(
            "chat",
            otel.name = %format!("chat {model}"),
            otel.kind = "client",
            otel.status_code = Empty,
            gen_ai.operation.name = "chat",
            gen_ai.provider.name = %info.provider,
            gen_ai.request.model = %model,
            gen_ai.request.max_tokens = request.max_tokens,
            gen_ai.request.temperature = request.temperature,
            gen_ai.response.model = Empty,
            gen_ai.response.finish_reasons = Empty,
            gen_ai.usage.input_tokens = Empty,
            gen_ai.usage.output_tokens = Empty,
            error.type = Empty,
        )
    }
}

fn record_usage(span: &Span, usage: &Usage) {
    span.record("gen_ai.usage.input_tokens", usage.input_tokens);
    span.record("gen_ai.usage.output_tokens", usage.output_tokens);
}

fn record_error(span: &Span, error: &Error) {
    crate::traced::record_error(span, &crate::traced::error_type(error));
}

fn record_response(span: &Span, response: &ChatResponse) {
    if let Some(model) = &response.model {
        span.record("gen_ai.response.model", model.as_str());
    }
    if let Some(reason) = &response.finish_reason {
        span.record(
            "gen_ai.response.finish_reasons",
            format!("{reason:?}").to_lowercase().as_str(),
        );
    }
    if let Some(usage) = &response.usage {
        record_usage(span, usage);
    }
}

#[async_trait]
impl<M: ChatModel> ChatModel for TracedChatModel<M> {
    async fn generate(&self, request: ChatRequest) -> Result<ChatResponse> {
        let span = self.span(&request);
        let result = self.inner.generate(request).instrument(span.clone()).await;
        match &result {
            Ok(response) => record_response(&span, response),
            Err(e) => record_error(&span, e),
        }
        result
    }

    async fn stream(&self, request: ChatRequest) -> Result<ChatStream> {
        let span = self.span(&request);
        match self.inner.stream(request).instrument(span.clone()).await {
            Ok(inner) => Ok(Box::pin(TracedStream { inner, span })),
            Err(e) => {
                record_error(&span, &e);
                Err(e)
            }
        }
    }

    fn model_info(&self) -> ModelInfo {
        self.inner.model_info()
    }
}

/// Polls the inner stream inside the span and records what the chunks report.
struct TracedStream {
    inner: ChatStream,
    span: Span,
}

impl Stream for TracedStream {
    type Item = Result<ChatChunk>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        let _entered = this.span.enter();
        let item = this.inner.as_mut().poll_next(cx);
        if let Poll::Ready(Some(chunk)) = &item {
            match chunk {
                Ok(ChatChunk::Usage(usage)) => record_usage(&this.span, usage),
                Ok(ChatChunk::Model(model)) => {
                    this.span.record("gen_ai.response.model", model.as_str());
                }
                Ok(ChatChunk::Finish(reason)) => {
                    this.span.record(
                        "gen_ai.response.finish_reasons",
                        format!("{reason:?}").to_lowercase().as_str(),
                    );
                }
                Ok(_) => {}
                Err(e) => record_error(&this.span, e),
            }
        }
        item
    }
}

#[cfg(all(test, feature = "test-utils"))]
mod tests {
    use super::*;
    use crate::test_utils::ScriptedChatModel;
    use crate::Message;
    use futures::StreamExt;

    #[test]
    fn streams_pass_through_unchanged() {
        futures::executor::block_on(async {
            let model = TracedChatModel::new(ScriptedChatModel::new().with_text("hello there"));
            let chunks: Vec<_> = model
                .stream(ChatRequest::new(vec![Message::user("hi")]))
                .await
                .unwrap()
                .collect()
                .await;
            let text: String = chunks
                .iter()
                .filter_map(|c| match c {
                    Ok(ChatChunk::TextDelta(t)) => Some(t.as_str()),
                    _ => None,
                })
                .collect();
            assert_eq!(text, "hello there");
        });
    }
}
