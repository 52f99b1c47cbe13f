//! [`TracedChatModel`]: a `tracing` span around every model call, with the OpenTelemetry GenAI
//! semantic-convention attributes.

use std::collections::HashSet;
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};
use std::time::Instant;

use async_trait::async_trait;
use futures::Stream;
use tracing::field::Empty;
use tracing::{Instrument, Span};

use super::{ChatChunk, ChatModel, ChatRequest, ChatResponse, ChatStream, ModelInfo};
use crate::cost::PriceTable;
use crate::error::{Error, Result};
use crate::genai_metrics::CallLabels;
use crate::message::Usage;

/// Wraps a chat model so each `generate` or `stream` call runs in a span named
/// `chat {model}` with the [GenAI semantic conventions]: `gen_ai.operation.name = "chat"`,
/// `gen_ai.provider.name`, `gen_ai.request.model`, `gen_ai.request.max_tokens`,
/// `gen_ai.request.temperature`, and, once known, `gen_ai.response.model`,
/// `gen_ai.response.finish_reasons`, `gen_ai.usage.input_tokens`, `gen_ai.usage.output_tokens`
/// and `error.type`. A `tracing-opentelemetry` layer turns them into OpenTelemetry client spans.
/// Prompts and answers are never recorded.
///
/// Every call is also metered ([`genai_metrics`](crate::genai_metrics)): its duration and
/// token usage, and — with a [`PriceTable`] ([`with_prices`](Self::with_prices)) — its cost,
/// which the span carries as `catena.gen_ai.usage.cost`.
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
    prices: Option<Arc<PriceTable>>,
}

impl<M: ChatModel> TracedChatModel<M> {
    /// Wraps `inner`.
    pub fn new(inner: M) -> Self {
        TracedChatModel {
            inner,
            prices: None,
        }
    }

    /// Prices calls with `prices`: the cost goes to the span and the
    /// [`COST`](crate::genai_metrics::COST) metric. A model the table does not price is
    /// logged once per model and not metered.
    #[must_use]
    pub fn with_prices(mut self, prices: Arc<PriceTable>) -> Self {
        self.prices = Some(prices);
        self
    }

    /// The wrapped model.
    pub fn get_ref(&self) -> &M {
        &self.inner
    }

    fn call(&self, request: &ChatRequest) -> Call {
        let info = self.inner.model_info();
        let model = request.model.clone().unwrap_or(info.model);
        Call {
            span: self.span(request, &info.provider, &model),
            labels: CallLabels {
                operation: "chat",
                provider: info.provider,
                model,
                tool: None,
            },
            prices: self.prices.clone(),
            start: Instant::now(),
        }
    }

    fn span(&self, request: &ChatRequest, provider: &str, model: &str) -> Span {
        tracing::info_span!(
            "chat",
            otel.name = %format!("chat {model}"),
            otel.kind = "client",
            otel.status_code = Empty,
            gen_ai.operation.name = "chat",
            gen_ai.provider.name = %provider,
            gen_ai.request.model = %model,
            gen_ai.request.max_tokens = request.max_tokens,
            gen_ai.request.temperature = request.temperature,
            gen_ai.response.model = Empty,
            gen_ai.response.finish_reasons = Empty,
            gen_ai.usage.input_tokens = Empty,
            gen_ai.usage.output_tokens = Empty,
            catena.gen_ai.usage.cost = Empty,
            error.type = Empty,
        )
    }
}

/// One call being traced and metered.
struct Call {
    span: Span,
    labels: CallLabels,
    prices: Option<Arc<PriceTable>>,
    start: Instant,
}

impl Call {
    /// Records a finished call: its duration, and its tokens and cost when it succeeded.
    fn finish(&self, usage: Option<&Usage>, response_model: Option<&str>, error: Option<&str>) {
        self.labels.duration(self.start.elapsed(), error);
        let Some(usage) = usage else { return };
        self.labels.tokens(usage);
        let Some(prices) = &self.prices else { return };
        let model = response_model.unwrap_or(&self.labels.model);
        match prices
            .cost(model, usage)
            .or_else(|| prices.cost(&self.labels.model, usage))
        {
            Some(cost) => {
                self.span.record("catena.gen_ai.usage.cost", cost.amount);
                self.labels.cost(cost.amount, &cost.currency);
            }
            None => warn_unpriced(model),
        }
    }
}

/// Logs a model missing from the price table, once per model per process.
fn warn_unpriced(model: &str) {
    static SEEN: OnceLock<Mutex<HashSet<String>>> = OnceLock::new();
    let seen = SEEN.get_or_init(Default::default);
    let first = seen
        .lock()
        .map(|mut s| s.len() < 1024 && s.insert(model.to_owned()))
        .unwrap_or(false);
    if first {
        tracing::warn!(
            model,
            "the price table has no price for this model: its calls are not costed"
        );
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
        let call = self.call(&request);
        let result = self
            .inner
            .generate(request)
            .instrument(call.span.clone())
            .await;
        match &result {
            Ok(response) => {
                record_response(&call.span, response);
                call.finish(response.usage.as_ref(), response.model.as_deref(), None);
            }
            Err(e) => {
                record_error(&call.span, e);
                call.finish(None, None, Some(&crate::traced::error_type(e)));
            }
        }
        result
    }

    async fn stream(&self, request: ChatRequest) -> Result<ChatStream> {
        let call = self.call(&request);
        match self
            .inner
            .stream(request)
            .instrument(call.span.clone())
            .await
        {
            Ok(inner) => Ok(Box::pin(TracedStream {
                inner,
                call,
                usage: None,
                model: None,
                error: None,
                finished: false,
                recorded: false,
            })),
            Err(e) => {
                record_error(&call.span, &e);
                call.finish(None, None, Some(&crate::traced::error_type(&e)));
                Err(e)
            }
        }
    }

    fn model_info(&self) -> ModelInfo {
        self.inner.model_info()
    }
}

/// Polls the inner stream inside the span, records what the chunks report, and meters the
/// call when the stream ends or is dropped (`error.type = "cancelled"` when dropped before
/// its finish).
struct TracedStream {
    inner: ChatStream,
    call: Call,
    usage: Option<Usage>,
    model: Option<String>,
    error: Option<String>,
    finished: bool,
    recorded: bool,
}

impl TracedStream {
    fn record(&mut self) {
        if std::mem::replace(&mut self.recorded, true) {
            return;
        }
        let error = match (&self.error, self.finished) {
            (Some(e), _) => Some(e.as_str()),
            (None, true) => None,
            (None, false) => Some("cancelled"),
        };
        // Usage the provider reported is billed even when the stream then failed or was
        // dropped: meter it.
        let usage = self.usage.as_ref();
        self.call.finish(usage, self.model.as_deref(), error);
    }
}

impl Drop for TracedStream {
    fn drop(&mut self) {
        self.record();
    }
}

impl Stream for TracedStream {
    type Item = Result<ChatChunk>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        let span = this.call.span.clone();
        let _entered = span.enter();
        let item = this.inner.as_mut().poll_next(cx);
        match &item {
            Poll::Ready(Some(chunk)) => match chunk {
                Ok(ChatChunk::Usage(usage)) => {
                    record_usage(&span, usage);
                    this.usage = Some(*usage);
                }
                Ok(ChatChunk::Model(model)) => {
                    span.record("gen_ai.response.model", model.as_str());
                    this.model = Some(model.clone());
                }
                Ok(ChatChunk::Finish(reason)) => {
                    span.record(
                        "gen_ai.response.finish_reasons",
                        format!("{reason:?}").to_lowercase().as_str(),
                    );
                    this.finished = true;
                }
                Ok(_) => {}
                Err(e) => {
                    record_error(&span, e);
                    this.error = Some(crate::traced::error_type(e));
                }
            },
            Poll::Ready(None) => this.record(),
            Poll::Pending => {}
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
