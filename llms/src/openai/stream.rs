//! Decoding a Chat Completions server-sent-event stream into [`ChatChunk`]s.
//!
//! Each event is `data: {chat.completion.chunk}`; the stream ends with `data: [DONE]`. With
//! `stream_options.include_usage` the last chunk before `[DONE]` has no choices and carries
//! the usage. The [`ChatChunk::Finish`] is held back until `[DONE]`, so a `Finish` always
//! means the answer arrived whole; a stream that ends without `[DONE]` or without a
//! `finish_reason` ends with an error of kind
//! [`StreamInterrupted`](ProviderErrorKind::StreamInterrupted) whose message quotes the text
//! received so far.

use std::collections::VecDeque;

use catena_core::{ChatChunk, ChatStream, Error, FinishReason, ProviderErrorKind, Result};
use serde_json::Value;

use super::chat::{arguments_text, finish_reason, refusal_error, usage};
use super::client::{OpenAiClient, PROVIDER};
use super::error::stream_error_kind;
use super::wire::ChatCompletionChunk;
use crate::http::{provider_error, SseEvent};
pub(crate) use crate::http::{with_partial_text, SseDecoder};

/// The chunks of a streaming response whose headers have arrived.
pub(crate) fn chat_stream(response: reqwest::Response, client: &OpenAiClient) -> ChatStream {
    decode_sse(response, client, Decoder::default())
}

/// Runs `decoder` over the events of `response`; errors are redacted of the client's key.
pub(crate) fn decode_sse<D: SseDecoder>(
    response: reqwest::Response,
    client: &OpenAiClient,
    decoder: D,
) -> ChatStream {
    crate::http::decode_sse(
        response,
        PROVIDER,
        &client.transport().options,
        client.api_key().cloned(),
        Vec::new(),
        decoder,
    )
}

/// The protocol logic, free of I/O.
#[derive(Debug, Default)]
struct Decoder {
    model_sent: bool,
    text: String,
    refusal: String,
    finish: Option<FinishReason>,
    next_call: usize,
    events: usize,
    done: bool,
}

impl SseDecoder for Decoder {
    fn is_done(&self) -> bool {
        self.done
    }

    fn interrupted(&self) -> Error {
        let what = if self.finish.is_some() {
            "stream closed before [DONE]"
        } else {
            "stream closed before the answer finished"
        };
        self.with_partial(provider_error(
            PROVIDER,
            ProviderErrorKind::StreamInterrupted,
            format!("{what} (after {} events)", self.events),
        ))
    }

    fn with_partial(&self, err: Error) -> Error {
        with_partial_text(err, &self.text)
    }

    fn on_event(&mut self, event: &SseEvent, out: &mut VecDeque<Result<ChatChunk>>) {
        let data = event.data.trim();
        if data.is_empty() {
            return;
        }
        if data == "[DONE]" {
            self.done = true;
            out.push_back(self.finished());
            return;
        }
        self.events += 1;
        let chunk: ChatCompletionChunk = match serde_json::from_str(data) {
            Ok(c) => c,
            Err(e) => {
                self.done = true;
                out.push_back(Err(self.with_partial(provider_error(
                    PROVIDER,
                    ProviderErrorKind::MalformedResponse,
                    format!("stream event is not a chat completion chunk: {e}"),
                ))));
                return;
            }
        };
        let error = chunk
            .error
            .filter(|e| !e.is_null())
            .or_else(|| (event.event.as_deref() == Some("error")).then_some(Value::Null));
        if let Some(error) = error {
            self.done = true;
            out.push_back(Err(self.stream_error(&error, data)));
            return;
        }
        if let Some(model) = chunk.model.filter(|m| !m.is_empty()) {
            if !self.model_sent {
                self.model_sent = true;
                out.push_back(Ok(ChatChunk::Model(model)));
            }
        }
        // Only the first choice is followed (requests never ask for `n > 1`).
        for choice in chunk.choices.unwrap_or_default() {
            if choice.index.unwrap_or(0) != 0 {
                continue;
            }
            if let Some(delta) = choice.delta {
                if let Some(text) = delta.content.filter(|t| !t.is_empty()) {
                    self.text.push_str(&text);
                    out.push_back(Ok(ChatChunk::TextDelta(text)));
                }
                if let Some(refusal) = delta.refusal {
                    self.refusal.push_str(&refusal);
                }
                for call in delta.tool_calls.unwrap_or_default() {
                    // OpenAI always sends `index`; servers that do not send each call whole.
                    let index = call.index.unwrap_or(if call.id.is_some() {
                        self.next_call
                    } else {
                        self.next_call.saturating_sub(1)
                    });
                    self.next_call = self.next_call.max(index.saturating_add(1));
                    let (name, arguments) = match call.function {
                        Some(f) => (
                            f.name.filter(|n| !n.is_empty()),
                            arguments_text(f.arguments),
                        ),
                        None => (None, String::new()),
                    };
                    out.push_back(Ok(ChatChunk::ToolCallDelta {
                        index,
                        id: call.id.filter(|id| !id.is_empty()),
                        name,
                        arguments_delta: arguments,
                    }));
                }
            }
            if let Some(reason) = choice.finish_reason.as_deref() {
                self.finish = Some(finish_reason(reason));
            }
        }
        if let Some(u) = chunk.usage {
            out.push_back(Ok(ChatChunk::Usage(usage(u))));
        }
    }
}

impl Decoder {
    /// What `[DONE]` turns into: the finish, a refusal, or an interruption when no
    /// `finish_reason` came.
    fn finished(&mut self) -> Result<ChatChunk> {
        if !self.refusal.is_empty() {
            return Err(refusal_error(&self.refusal));
        }
        match self.finish.take() {
            Some(reason) => Ok(ChatChunk::Finish(reason)),
            None => Err(self.with_partial(provider_error(
                PROVIDER,
                ProviderErrorKind::StreamInterrupted,
                "stream ended with [DONE] but without a finish_reason",
            ))),
        }
    }

    fn stream_error(&self, error: &Value, raw: &str) -> Error {
        let (kind, message) = if error.is_null() {
            (ProviderErrorKind::Server, raw.chars().take(500).collect())
        } else {
            let message = error
                .get("message")
                .and_then(Value::as_str)
                .map_or_else(|| error.to_string(), str::to_owned);
            (stream_error_kind(error), message)
        };
        self.with_partial(provider_error(
            PROVIDER,
            kind,
            format!("error event mid-stream: {message}"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(data: &str) -> SseEvent {
        SseEvent {
            event: None,
            data: data.to_owned(),
        }
    }

    fn run(events: &[&str]) -> (Vec<Result<ChatChunk>>, Decoder) {
        let mut d = Decoder::default();
        let mut out = VecDeque::new();
        for e in events {
            d.on_event(&ev(e), &mut out);
            if d.is_done() {
                break;
            }
        }
        (out.into_iter().collect(), d)
    }

    #[test]
    fn finish_waits_for_done_and_usage_comes_first() {
        let (out, d) = run(&[
            r#"{"model":"m","choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}"#,
            r#"{"model":"m","choices":[{"index":0,"delta":{"content":"Hi"},"finish_reason":null}]}"#,
            r#"{"model":"m","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}"#,
            r#"{"model":"m","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":1,"total_tokens":4}}"#,
            "[DONE]",
        ]);
        assert!(d.is_done());
        let out: Vec<ChatChunk> = out.into_iter().map(Result::unwrap).collect();
        assert_eq!(
            out,
            vec![
                ChatChunk::Model("m".into()),
                ChatChunk::TextDelta("Hi".into()),
                ChatChunk::Usage(catena_core::Usage::new(3, 1)),
                ChatChunk::Finish(FinishReason::Stop),
            ]
        );
    }

    #[test]
    fn done_without_finish_reason_is_interrupted() {
        let (out, _) = run(&[r#"{"choices":[{"delta":{"content":"abc"}}]}"#, "[DONE]"]);
        let err = out.last().unwrap().as_ref().unwrap_err();
        assert_eq!(
            err.provider_kind(),
            Some(&ProviderErrorKind::StreamInterrupted)
        );
        assert!(err.to_string().contains("\"abc\""), "{err}");
    }

    #[test]
    fn tool_calls_without_index_are_numbered() {
        let (out, _) = run(&[
            r#"{"choices":[{"delta":{"tool_calls":[{"id":"a","function":{"name":"f","arguments":{"x":1}}},{"id":"b","function":{"name":"g","arguments":"{}"}}]}}]}"#,
        ]);
        let idx: Vec<usize> = out
            .iter()
            .filter_map(|c| match c {
                Ok(ChatChunk::ToolCallDelta { index, .. }) => Some(*index),
                _ => None,
            })
            .collect();
        assert_eq!(idx, [0, 1]);
        assert!(
            matches!(&out[0], Ok(ChatChunk::ToolCallDelta { arguments_delta, .. }) if arguments_delta == r#"{"x":1}"#)
        );
    }

    #[test]
    fn a_huge_tool_call_index_does_not_overflow() {
        let max = usize::MAX;
        let (out, _) = run(&[
            format!(r#"{{"choices":[{{"delta":{{"tool_calls":[{{"index":{max},"id":"a","function":{{"name":"f","arguments":"{{}}"}}}}]}}}}]}}"#).as_str(),
            r#"{"choices":[{"delta":{"tool_calls":[{"id":"b","function":{"name":"g","arguments":"{}"}}]}}]}"#,
        ]);
        let idx: Vec<usize> = out
            .iter()
            .filter_map(|c| match c {
                Ok(ChatChunk::ToolCallDelta { index, .. }) => Some(*index),
                _ => None,
            })
            .collect();
        assert_eq!(idx, [max, max]);
    }

    #[test]
    fn refusal_becomes_content_filtered() {
        let (out, _) = run(&[
            r#"{"choices":[{"delta":{"refusal":"I can't"}}]}"#,
            r#"{"choices":[{"delta":{},"finish_reason":"stop"}]}"#,
            "[DONE]",
        ]);
        let err = out.last().unwrap().as_ref().unwrap_err();
        assert_eq!(
            err.provider_kind(),
            Some(&ProviderErrorKind::ContentFiltered)
        );
    }
}
