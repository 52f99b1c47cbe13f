//! Decoding `streamGenerateContent?alt=sse`: every event is a whole
//! `GenerateContentResponse` chunk; the answer is complete when a candidate carries a
//! `finishReason`.

use std::collections::VecDeque;

use catena_core::{ChatChunk, ChatStream, Error, ProviderErrorKind, Result, StreamAccumulator};
use futures::stream::BoxStream;
use futures::StreamExt;
use serde_json::Value;

use super::chat::{blocked_prompt, finish_reason, parts_calls, parts_text, usage};
use super::error::{classify, finish_error};
use super::wire::{GenerateReply, UsageMetadata};
use crate::http::{provider_error, SseEvent};

/// The error for an `{"error": {...}}` event.
fn error_event(provider: &str, error: &Value) -> Error {
    let body = serde_json::json!({ "error": error });
    let status = error
        .get("code")
        .and_then(Value::as_u64)
        .and_then(|c| u16::try_from(c).ok())
        .unwrap_or(500);
    let outcome = classify(status, &body);
    let kind = outcome
        .kind
        .unwrap_or_else(|| ProviderErrorKind::from_status(status));
    let mut err = catena_core::ProviderError::new(
        kind,
        outcome.message.unwrap_or_else(|| "error event".into()),
    )
    .with_status(status)
    .with_provider(provider);
    if let Some(d) = outcome.retry_after {
        err = err.with_retry_after(d);
    }
    finish_error(err.into(), &[])
}

struct Decoder {
    events: BoxStream<'static, Result<SseEvent>>,
    provider: &'static str,
    pending: VecDeque<Result<ChatChunk>>,
    partial: StreamAccumulator,
    tool_calls: usize,
    usage: Option<UsageMetadata>,
    model_sent: bool,
    finished: bool,
}

impl Decoder {
    fn push(&mut self, chunk: ChatChunk) {
        self.partial.push(&chunk);
        self.pending.push_back(Ok(chunk));
    }

    fn fail(&mut self, err: Error) {
        self.pending.push_back(Err(err));
        self.finished = true;
    }

    fn on_event(&mut self, data: &str) {
        let reply: GenerateReply = match serde_json::from_str(data) {
            Ok(r) => r,
            Err(e) => {
                return self.fail(provider_error(
                    self.provider,
                    ProviderErrorKind::MalformedResponse,
                    format!("stream event is not valid JSON: {e}"),
                ))
            }
        };
        if let Some(error) = &reply.error {
            return self.fail(error_event(self.provider, error));
        }
        if let Some(e) = blocked_prompt(self.provider, &reply) {
            return self.fail(e);
        }
        if let (false, Some(m)) = (self.model_sent, &reply.model_version) {
            self.model_sent = true;
            self.push(ChatChunk::Model(m.clone()));
        }
        if reply.usage_metadata.is_some() {
            self.usage = reply.usage_metadata;
        }
        let Some(candidate) = reply.candidates.into_iter().next() else {
            return;
        };
        if let Some(content) = &candidate.content {
            let text = parts_text(&content.parts);
            if !text.is_empty() {
                self.push(ChatChunk::TextDelta(text));
            }
            for call in parts_calls(&content.parts, self.tool_calls) {
                let index = self.tool_calls;
                self.tool_calls += 1;
                // Gemini sends each call whole: one delta carries it all.
                self.push(ChatChunk::ToolCallDelta {
                    index,
                    id: Some(call.id),
                    name: Some(call.name),
                    arguments_delta: call.arguments,
                });
            }
        }
        if let Some(reason) = &candidate.finish_reason {
            if let Some(u) = self.usage.take() {
                self.push(ChatChunk::Usage(usage(&u)));
            }
            self.push(ChatChunk::Finish(finish_reason(
                reason,
                self.tool_calls > 0,
            )));
            self.finished = true;
        }
    }

    fn interrupted(&mut self, why: &str) {
        let text = self.partial.text().to_owned();
        self.fail(provider_error(
            self.provider,
            ProviderErrorKind::StreamInterrupted,
            format!("{why}; partial answer so far: {text:?}"),
        ));
    }
}

/// Turns SSE events into chat chunks. A stream that ends before a `finishReason` yields a
/// final [`StreamInterrupted`](ProviderErrorKind::StreamInterrupted) error carrying the
/// partial text; an error event becomes a typed error after the deltas already delivered.
pub(crate) fn decode_stream(
    events: BoxStream<'static, Result<SseEvent>>,
    provider: &'static str,
) -> ChatStream {
    let decoder = Decoder {
        events,
        provider,
        pending: VecDeque::new(),
        partial: StreamAccumulator::new(),
        tool_calls: 0,
        usage: None,
        model_sent: false,
        finished: false,
    };
    Box::pin(futures::stream::unfold(decoder, |mut d| async move {
        loop {
            if let Some(item) = d.pending.pop_front() {
                return Some((item, d));
            }
            if d.finished {
                return None;
            }
            match d.events.next().await {
                Some(Ok(event)) => d.on_event(&event.data),
                Some(Err(e)) => {
                    let partial = d.partial.text().to_owned();
                    let e = match e {
                        Error::Provider(mut p)
                            if p.kind == ProviderErrorKind::StreamInterrupted =>
                        {
                            p.message =
                                format!("{}; partial answer so far: {partial:?}", p.message);
                            Error::Provider(p)
                        }
                        other => other,
                    };
                    d.fail(e);
                }
                None => d.interrupted("the stream ended without a finishReason"),
            }
        }
    }))
}
