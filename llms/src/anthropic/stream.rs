//! Decoding a Messages API server-sent-event stream into [`ChatChunk`]s.
//!
//! A stream is `message_start`, then for each content block `content_block_start`, its
//! `content_block_delta`s and `content_block_stop`, then `message_delta` (stop reason and
//! cumulative usage) and `message_stop`; `ping` events may come anywhere, and an `error`
//! event may replace the rest. Unknown event and delta types are ignored, as Anthropic asks.
//!
//! Tool-use blocks become [`ChatChunk::ToolCallDelta`]s numbered by their order among the
//! tool calls (id and name on the first), thinking and redacted-thinking blocks become
//! [`ChatChunk::ReasoningDelta`]s numbered by their order among the reasoning blocks. The
//! [`ChatChunk::Finish`] is held back until `message_stop`, so a `Finish` always means the
//! answer arrived whole; a stream that ends before it ends with an error of kind
//! [`StreamInterrupted`](ProviderErrorKind::StreamInterrupted) quoting the text so far.

use std::collections::{HashMap, VecDeque};

use catena_core::{ChatChunk, ChatStream, Error, ProviderErrorKind, Result};

use super::chat::{finish_reason, refusal_error, usage};
use super::client::{AnthropicClient, PROVIDER};
use super::error::stream_error;
use super::wire::{Delta, ResponseBlock, StreamEvent, WireUsage};
use crate::http::{decode_sse, provider_error, with_partial_text, SseDecoder, SseEvent};

/// The chunks of a streaming response whose headers have arrived; `first` (the rate-limit
/// headroom from the headers) comes before everything else.
pub(crate) fn chat_stream(
    response: reqwest::Response,
    client: &AnthropicClient,
    first: Option<ChatChunk>,
) -> ChatStream {
    decode_sse(
        response,
        PROVIDER,
        &client.transport().options,
        client.api_key().cloned(),
        first.into_iter().collect(),
        Decoder::default(),
    )
}

/// What a content block index stands for.
#[derive(Debug, Clone, Copy)]
enum Open {
    Text,
    /// A tool call: its ordinal among the tool calls, and whether arguments arrived.
    Tool(usize, bool),
    /// A reasoning block: its ordinal among the reasoning blocks.
    Reasoning(usize),
    Ignored,
}

/// The protocol logic, free of I/O.
#[derive(Debug, Default)]
struct Decoder {
    blocks: HashMap<usize, Open>,
    tools: usize,
    reasoning: usize,
    text: String,
    usage: Option<WireUsage>,
    stop_reason: Option<String>,
    started: bool,
    events: usize,
    done: bool,
}

impl SseDecoder for Decoder {
    fn is_done(&self) -> bool {
        self.done
    }

    fn on_event(&mut self, event: &SseEvent, out: &mut VecDeque<Result<ChatChunk>>) {
        self.decode(event, out);
    }

    fn interrupted(&self) -> Error {
        self.interruption()
    }

    fn with_partial(&self, err: Error) -> Error {
        with_partial_text(err, &self.text)
    }
}

impl Decoder {
    fn decode(&mut self, event: &SseEvent, out: &mut VecDeque<Result<ChatChunk>>) {
        let data = event.data.trim();
        if data.is_empty() {
            return;
        }
        self.events += 1;
        let parsed: StreamEvent = match serde_json::from_str(data) {
            Ok(e) => e,
            Err(e) => {
                self.done = true;
                out.push_back(Err(self.with_partial(provider_error(
                    PROVIDER,
                    ProviderErrorKind::MalformedResponse,
                    format!("stream event is not a Messages API event: {e}"),
                ))));
                return;
            }
        };
        match parsed {
            StreamEvent::MessageStart { message } => {
                self.started = true;
                if let Some(id) = message.id.filter(|i| !i.is_empty()) {
                    out.push_back(Ok(ChatChunk::ResponseId(id)));
                }
                if let Some(model) = message.model.filter(|m| !m.is_empty()) {
                    out.push_back(Ok(ChatChunk::Model(model)));
                }
                if let Some(u) = message.usage {
                    self.push_usage(u, out);
                }
            }
            StreamEvent::ContentBlockStart {
                index,
                content_block,
            } => self.on_block_start(index, content_block, out),
            StreamEvent::ContentBlockDelta { index, delta } => self.on_delta(index, delta, out),
            StreamEvent::ContentBlockStop { index } => {
                // A tool call without arguments: `{}`, as the unary answer says.
                if let Some(i) = index {
                    if let Some(Open::Tool(ordinal, false)) = self.blocks.get(&i).copied() {
                        self.blocks.insert(i, Open::Tool(ordinal, true));
                        out.push_back(Ok(ChatChunk::ToolCallDelta {
                            index: ordinal,
                            id: None,
                            name: None,
                            arguments_delta: "{}".to_owned(),
                        }));
                    }
                }
            }
            StreamEvent::MessageDelta { delta, usage } => {
                if let Some(r) = delta.stop_reason {
                    self.stop_reason = Some(r);
                }
                if let Some(u) = usage {
                    self.push_usage(u, out);
                }
            }
            StreamEvent::MessageStop => {
                self.done = true;
                out.push_back(self.finished());
            }
            StreamEvent::Error { error } => {
                self.done = true;
                out.push_back(Err(self.with_partial(stream_error(&error))));
            }
            StreamEvent::Ping | StreamEvent::Unknown => {}
        }
    }

    fn push_usage(&mut self, u: WireUsage, out: &mut VecDeque<Result<ChatChunk>>) {
        let merged = match &mut self.usage {
            Some(acc) => {
                acc.merge(u);
                *acc
            }
            None => {
                self.usage = Some(u);
                u
            }
        };
        out.push_back(Ok(ChatChunk::Usage(usage(merged))));
    }

    fn on_block_start(
        &mut self,
        index: usize,
        block: ResponseBlock,
        out: &mut VecDeque<Result<ChatChunk>>,
    ) {
        let open = match block {
            ResponseBlock::Text { text } => {
                if !text.is_empty() {
                    self.text.push_str(&text);
                    out.push_back(Ok(ChatChunk::TextDelta(text)));
                }
                Open::Text
            }
            ResponseBlock::ToolUse { id, name, input } => {
                let ordinal = self.tools;
                self.tools += 1;
                // Streams start tool inputs as `{}` and send them as deltas; a server that
                // sends the input whole here is taken at its word.
                let whole = input.as_object().is_some_and(|o| !o.is_empty());
                out.push_back(Ok(ChatChunk::ToolCallDelta {
                    index: ordinal,
                    id: Some(id).filter(|i| !i.is_empty()),
                    name: Some(name).filter(|n| !n.is_empty()),
                    arguments_delta: if whole {
                        input.to_string()
                    } else {
                        String::new()
                    },
                }));
                Open::Tool(ordinal, whole)
            }
            ResponseBlock::Thinking {
                thinking,
                signature,
            } => {
                let ordinal = self.reasoning;
                self.reasoning += 1;
                out.push_back(Ok(ChatChunk::ReasoningDelta {
                    index: ordinal,
                    id: None,
                    text: thinking,
                    signature: signature.filter(|s| !s.is_empty()),
                    encrypted: None,
                }));
                Open::Reasoning(ordinal)
            }
            ResponseBlock::RedactedThinking { data } => {
                let ordinal = self.reasoning;
                self.reasoning += 1;
                out.push_back(Ok(ChatChunk::ReasoningDelta {
                    index: ordinal,
                    id: None,
                    text: String::new(),
                    signature: None,
                    encrypted: Some(data),
                }));
                Open::Reasoning(ordinal)
            }
            ResponseBlock::Unknown => Open::Ignored,
        };
        self.blocks.insert(index, open);
    }

    fn on_delta(&mut self, index: usize, delta: Delta, out: &mut VecDeque<Result<ChatChunk>>) {
        let open = self.blocks.get(&index).copied();
        match (open, delta) {
            (Some(Open::Text) | None, Delta::Text { text }) if !text.is_empty() => {
                self.text.push_str(&text);
                out.push_back(Ok(ChatChunk::TextDelta(text)));
            }
            (Some(Open::Tool(ordinal, _)), Delta::InputJson { partial_json })
                if !partial_json.is_empty() =>
            {
                self.blocks.insert(index, Open::Tool(ordinal, true));
                out.push_back(Ok(ChatChunk::ToolCallDelta {
                    index: ordinal,
                    id: None,
                    name: None,
                    arguments_delta: partial_json,
                }));
            }
            (Some(Open::Reasoning(ordinal)), Delta::Thinking { thinking }) => {
                out.push_back(Ok(ChatChunk::ReasoningDelta {
                    index: ordinal,
                    id: None,
                    text: thinking,
                    signature: None,
                    encrypted: None,
                }));
            }
            (Some(Open::Reasoning(ordinal)), Delta::Signature { signature }) => {
                out.push_back(Ok(ChatChunk::ReasoningDelta {
                    index: ordinal,
                    id: None,
                    text: String::new(),
                    signature: Some(signature),
                    encrypted: None,
                }));
            }
            // Empty deltas, `citations_delta`, deltas of server-tool blocks, anything new.
            _ => {}
        }
    }

    /// What `message_stop` turns into: the finish, a refusal, or an interruption when no
    /// stop reason came.
    fn finished(&mut self) -> Result<ChatChunk> {
        match self.stop_reason.take() {
            Some(r) if r == "refusal" => Err(refusal_error(&self.text)),
            Some(r) => Ok(ChatChunk::Finish(finish_reason(&r))),
            None => Err(self.with_partial(provider_error(
                PROVIDER,
                ProviderErrorKind::StreamInterrupted,
                "stream ended with message_stop but without a stop_reason",
            ))),
        }
    }

    fn interruption(&self) -> Error {
        let what = if self.started {
            "stream closed before message_stop"
        } else {
            "stream closed before message_start"
        };
        self.with_partial(provider_error(
            PROVIDER,
            ProviderErrorKind::StreamInterrupted,
            format!("{what} (after {} events)", self.events),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use catena_core::{FinishReason, StreamAccumulator, Usage};

    fn run(events: &[&str]) -> Vec<Result<ChatChunk>> {
        let mut d = Decoder::default();
        let mut out = VecDeque::new();
        for e in events {
            d.on_event(
                &SseEvent {
                    event: None,
                    data: (*e).to_owned(),
                },
                &mut out,
            );
            if d.done {
                break;
            }
        }
        out.into_iter().collect()
    }

    #[test]
    fn tool_calls_and_reasoning_are_numbered_by_kind() {
        let out = run(&[
            r#"{"type":"message_start","message":{"id":"msg_1","model":"claude","content":[],"usage":{"input_tokens":10,"cache_read_input_tokens":5,"output_tokens":1}}}"#,
            r#"{"type":"content_block_start","index":0,"content_block":{"type":"thinking","thinking":"","signature":""}}"#,
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"hm"}}"#,
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"signature_delta","signature":"sig"}}"#,
            r#"{"type":"content_block_stop","index":0}"#,
            r#"{"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"toolu_a","name":"f","input":{}}}"#,
            r#"{"type":"content_block_stop","index":1}"#,
            r#"{"type":"content_block_start","index":2,"content_block":{"type":"tool_use","id":"toolu_b","name":"g","input":{}}}"#,
            r#"{"type":"content_block_delta","index":2,"delta":{"type":"input_json_delta","partial_json":"{\"x\":"}}"#,
            r#"{"type":"content_block_delta","index":2,"delta":{"type":"input_json_delta","partial_json":"1}"}}"#,
            r#"{"type":"content_block_stop","index":2}"#,
            r#"{"type":"message_delta","delta":{"stop_reason":"tool_use"},"usage":{"output_tokens":7}}"#,
            r#"{"type":"brand_new_event","whatever":1}"#,
            r#"{"type":"message_stop","amazon-bedrock-invocationMetrics":{"inputTokenCount":15}}"#,
        ]);
        let mut acc = StreamAccumulator::new();
        for c in &out {
            acc.push(c.as_ref().unwrap());
        }
        let r = acc.finish().unwrap();
        assert_eq!(r.id.as_deref(), Some("msg_1"));
        assert_eq!(r.tool_calls()[0].arguments, "{}");
        assert_eq!(r.tool_calls()[1].arguments, r#"{"x":1}"#);
        assert_eq!(r.message.reasoning[0].signature.as_deref(), Some("sig"));
        assert_eq!(r.finish_reason, Some(FinishReason::ToolCalls));
        assert_eq!(r.usage, Some(Usage::new(15, 7).with_cached_input_tokens(5)));
    }

    #[test]
    fn stop_without_reason_is_interrupted_and_refusal_is_filtered() {
        let out = run(&[
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"abc"}}"#,
            r#"{"type":"message_stop"}"#,
        ]);
        let err = out.last().unwrap().as_ref().unwrap_err();
        assert_eq!(
            err.provider_kind(),
            Some(&ProviderErrorKind::StreamInterrupted)
        );
        assert!(err.to_string().contains("\"abc\""), "{err}");
        let out = run(&[
            r#"{"type":"message_delta","delta":{"stop_reason":"refusal"}}"#,
            r#"{"type":"message_stop"}"#,
        ]);
        let err = out.last().unwrap().as_ref().unwrap_err();
        assert_eq!(
            err.provider_kind(),
            Some(&ProviderErrorKind::ContentFiltered)
        );
    }
}
