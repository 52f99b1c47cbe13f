//! Decoding a Responses API event stream into [`ChatChunk`]s.
//!
//! Each server-sent event carries a JSON object whose `type` names it. The stream has no
//! `[DONE]`: it ends with `response.completed`, `response.incomplete` or
//! `response.failed` (or an `error` event). Only a completed or incomplete response yields
//! a [`ChatChunk::Finish`]; a stream that ends before either is an error of kind
//! [`StreamInterrupted`](ProviderErrorKind::StreamInterrupted) quoting the text received.
//!
//! Tool calls are numbered in the order they start (`ChatChunk::ToolCallDelta::index`),
//! their `call_id` and name in the first delta; reasoning items likewise
//! (`ChatChunk::ReasoningDelta::index`), their encrypted content arriving with
//! `response.output_item.done`. Events this client does not use are skipped.

use std::collections::{HashMap, VecDeque};

use catena_core::{ChatChunk, ChatStream, Error, ProviderErrorKind, Result};
use serde_json::Value;

use super::chat::{arguments_text, refusal_error};
use super::client::{OpenAiClient, PROVIDER};
use super::responses::{finish_reason, reasoning_block, response_error, usage, SUMMARY_SEPARATOR};
use super::responses_wire::{OutputContent, OutputItem, StreamEvent, WireResponse};
use super::stream::{decode_sse, with_partial_text, SseDecoder};
use crate::http::{provider_error, SseEvent};

/// The chunks of a Responses API stream whose headers have arrived.
pub(crate) fn responses_stream(response: reqwest::Response, client: &OpenAiClient) -> ChatStream {
    decode_sse(response, client, ResponsesDecoder::default())
}

/// What the decoder knows about one output item, by `output_index`.
#[derive(Debug, Clone, Copy)]
enum Slot {
    Call {
        ordinal: usize,
        streamed: bool,
    },
    Reasoning {
        ordinal: usize,
        last_part: Option<usize>,
        streamed: bool,
    },
    Message {
        streamed: bool,
    },
}

/// The protocol logic, free of I/O.
#[derive(Debug, Default)]
pub(crate) struct ResponsesDecoder {
    slots: HashMap<usize, Slot>,
    /// Item id → `output_index`, for events that name only the item.
    ids: HashMap<String, usize>,
    next_call: usize,
    next_reasoning: usize,
    /// `output_index` given to items that arrive without one.
    next_anonymous: usize,
    id_sent: bool,
    model_sent: bool,
    text: String,
    refusal: String,
    events: usize,
    done: bool,
}

fn text_of(delta: Option<&Value>) -> &str {
    delta.and_then(Value::as_str).unwrap_or("")
}

impl SseDecoder for ResponsesDecoder {
    fn is_done(&self) -> bool {
        self.done
    }

    fn interrupted(&self) -> Error {
        self.with_partial(provider_error(
            PROVIDER,
            ProviderErrorKind::StreamInterrupted,
            format!(
                "stream closed before response.completed (after {} events)",
                self.events
            ),
        ))
    }

    fn with_partial(&self, err: Error) -> Error {
        with_partial_text(err, &self.text)
    }

    fn on_event(&mut self, event: &SseEvent, out: &mut VecDeque<Result<ChatChunk>>) {
        let data = event.data.trim();
        if data.is_empty() || data == "[DONE]" {
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
                    format!("stream event is not a Responses API event: {e}"),
                ))));
                return;
            }
        };
        let kind = parsed
            .kind
            .clone()
            .or_else(|| event.event.clone())
            .unwrap_or_default();
        match kind.as_str() {
            "response.created" | "response.in_progress" | "response.queued" => {
                if let Some(r) = &parsed.response {
                    self.identify(r, out);
                }
            }
            "response.output_item.added" => self.item_added(parsed, out),
            "response.output_text.delta" => {
                let delta = text_of(parsed.delta.as_ref()).to_owned();
                match self.slot_mut(&parsed) {
                    Some(Slot::Message { streamed }) => *streamed = true,
                    Some(_) => {}
                    None => {
                        let index = self.index_of(&parsed);
                        self.register(
                            index,
                            parsed.item_id.as_ref(),
                            Slot::Message { streamed: true },
                        );
                    }
                }
                if !delta.is_empty() {
                    self.text.push_str(&delta);
                    out.push_back(Ok(ChatChunk::TextDelta(delta)));
                }
            }
            "response.refusal.delta" => self.refusal.push_str(text_of(parsed.delta.as_ref())),
            "response.function_call_arguments.delta" => {
                let delta = text_of(parsed.delta.as_ref()).to_owned();
                let ordinal = self.call_slot(&parsed);
                if let Some(Slot::Call { streamed, .. }) = self.slot_mut(&parsed) {
                    *streamed |= !delta.is_empty();
                }
                if !delta.is_empty() {
                    out.push_back(Ok(ChatChunk::ToolCallDelta {
                        index: ordinal,
                        id: None,
                        name: None,
                        arguments_delta: delta,
                    }));
                }
            }
            "response.function_call_arguments.done" => {
                // Only for servers that send the arguments whole, without deltas.
                let ordinal = self.call_slot(&parsed);
                let arguments = parsed.arguments.clone().unwrap_or_default();
                if let Some(Slot::Call { streamed, .. }) = self.slot_mut(&parsed) {
                    if !*streamed && !arguments.is_empty() {
                        *streamed = true;
                        out.push_back(Ok(ChatChunk::ToolCallDelta {
                            index: ordinal,
                            id: None,
                            name: None,
                            arguments_delta: arguments,
                        }));
                    }
                }
            }
            "response.reasoning_summary_text.delta" => {
                let delta = text_of(parsed.delta.as_ref());
                let part = parsed.summary_index.unwrap_or(0);
                let ordinal = self.reasoning_slot(&parsed);
                let Some(Slot::Reasoning {
                    last_part,
                    streamed,
                    ..
                }) = self.slot_mut(&parsed)
                else {
                    return;
                };
                // Parts are joined by a blank line, as in unary answers.
                let separator = match *last_part {
                    Some(last) if last != part && *streamed => SUMMARY_SEPARATOR,
                    _ => "",
                };
                *last_part = Some(part);
                if delta.is_empty() {
                    return;
                }
                *streamed = true;
                out.push_back(Ok(ChatChunk::ReasoningDelta {
                    index: ordinal,
                    id: None,
                    text: format!("{separator}{delta}"),
                    signature: None,
                    encrypted: None,
                }));
            }
            "response.output_item.done" => self.item_done(parsed, out),
            "response.completed" | "response.incomplete" => {
                self.done = true;
                let response = parsed.response.unwrap_or_default();
                self.identify(&response, out);
                if !self.refusal.is_empty() {
                    out.push_back(Err(refusal_error(&self.refusal)));
                    return;
                }
                if let Some(u) = response.usage {
                    out.push_back(Ok(ChatChunk::Usage(usage(u))));
                }
                let status = response
                    .status
                    .as_deref()
                    .or_else(|| kind.strip_prefix("response."));
                let reason = finish_reason(
                    status,
                    response
                        .incomplete_details
                        .as_ref()
                        .and_then(|d| d.reason.as_deref()),
                    self.next_call > 0,
                );
                if let Some(reason) = reason {
                    out.push_back(Ok(ChatChunk::Finish(reason)));
                }
            }
            "response.failed" => {
                self.done = true;
                let error = parsed
                    .response
                    .and_then(|r| r.error)
                    .filter(|e| !e.is_null())
                    .unwrap_or_else(|| serde_json::json!({"message": "no error details"}));
                out.push_back(Err(self.with_partial(response_error(&error))));
            }
            "error" => {
                self.done = true;
                let value: Value = serde_json::from_str(data).unwrap_or(Value::Null);
                // OpenAI puts `code` and `message` on the event; some servers nest them.
                let error = value
                    .get("error")
                    .filter(|e| e.is_object())
                    .unwrap_or(&value);
                out.push_back(Err(self.with_partial(response_error(error))));
            }
            _ => {}
        }
    }
}

impl ResponsesDecoder {
    /// Sends the response id and model once.
    fn identify(&mut self, response: &WireResponse, out: &mut VecDeque<Result<ChatChunk>>) {
        if let Some(id) = response.id.as_ref().filter(|id| !id.is_empty()) {
            if !self.id_sent {
                self.id_sent = true;
                out.push_back(Ok(ChatChunk::ResponseId(id.clone())));
            }
        }
        if let Some(model) = response.model.as_ref().filter(|m| !m.is_empty()) {
            if !self.model_sent {
                self.model_sent = true;
                out.push_back(Ok(ChatChunk::Model(model.clone())));
            }
        }
    }

    /// The `output_index` an event refers to: its own, else its item's.
    fn index_of(&self, event: &StreamEvent) -> Option<usize> {
        event.output_index.or_else(|| {
            event
                .item_id
                .as_ref()
                .and_then(|id| self.ids.get(id).copied())
        })
    }

    fn slot_mut(&mut self, event: &StreamEvent) -> Option<&mut Slot> {
        let index = self.index_of(event)?;
        self.slots.get_mut(&index)
    }

    /// Registers an item at `index` (or a fresh index) and returns the index used.
    fn register(&mut self, index: Option<usize>, id: Option<&String>, slot: Slot) -> usize {
        let index = index.unwrap_or_else(|| {
            self.next_anonymous += 1;
            usize::MAX - self.next_anonymous
        });
        if let Some(id) = id.filter(|id| !id.is_empty()) {
            self.ids.insert(id.clone(), index);
        }
        self.slots.insert(index, slot);
        index
    }

    /// The ordinal of the tool call an event refers to, registering it when no
    /// `output_item.added` announced it.
    fn call_slot(&mut self, event: &StreamEvent) -> usize {
        if let Some(Slot::Call { ordinal, .. }) = self.slot_mut(event) {
            return *ordinal;
        }
        let ordinal = self.next_call;
        self.next_call += 1;
        let index = self.index_of(event);
        self.register(
            index,
            event.item_id.as_ref(),
            Slot::Call {
                ordinal,
                streamed: false,
            },
        );
        ordinal
    }

    /// The ordinal of the reasoning item an event refers to, registering it when needed.
    fn reasoning_slot(&mut self, event: &StreamEvent) -> usize {
        if let Some(Slot::Reasoning { ordinal, .. }) = self.slot_mut(event) {
            return *ordinal;
        }
        let ordinal = self.next_reasoning;
        self.next_reasoning += 1;
        let index = self.index_of(event);
        self.register(
            index,
            event.item_id.as_ref(),
            Slot::Reasoning {
                ordinal,
                last_part: None,
                streamed: false,
            },
        );
        ordinal
    }

    fn item_added(&mut self, event: StreamEvent, out: &mut VecDeque<Result<ChatChunk>>) {
        let index = event.output_index;
        match event.item {
            Some(OutputItem::FunctionCall {
                id,
                call_id,
                name,
                arguments,
            }) => {
                let ordinal = self.next_call;
                self.next_call += 1;
                let arguments = arguments_text(arguments);
                self.register(
                    index,
                    id.as_ref(),
                    Slot::Call {
                        ordinal,
                        streamed: !arguments.is_empty(),
                    },
                );
                out.push_back(Ok(ChatChunk::ToolCallDelta {
                    index: ordinal,
                    id: call_id.or(id).filter(|id| !id.is_empty()),
                    name: name.filter(|n| !n.is_empty()),
                    arguments_delta: arguments,
                }));
            }
            Some(OutputItem::Reasoning {
                id,
                encrypted_content,
                ..
            }) => {
                let ordinal = self.next_reasoning;
                self.next_reasoning += 1;
                self.register(
                    index,
                    id.as_ref(),
                    Slot::Reasoning {
                        ordinal,
                        last_part: None,
                        streamed: false,
                    },
                );
                out.push_back(Ok(ChatChunk::ReasoningDelta {
                    index: ordinal,
                    id: id.filter(|id| !id.is_empty()),
                    text: String::new(),
                    signature: None,
                    encrypted: encrypted_content.filter(|e| !e.is_empty()),
                }));
            }
            Some(OutputItem::Message { id, .. }) => {
                self.register(index, id.as_ref(), Slot::Message { streamed: false });
            }
            Some(OutputItem::Other) | None => {}
        }
    }

    /// A finished item: whatever did not arrive as deltas (the reasoning's encrypted
    /// content always; text and arguments only from servers that send no deltas).
    fn item_done(&mut self, event: StreamEvent, out: &mut VecDeque<Result<ChatChunk>>) {
        let slot = event.output_index.and_then(|i| self.slots.get(&i).copied());
        match event.item {
            Some(OutputItem::Reasoning {
                id,
                summary,
                encrypted_content,
            }) => {
                let (ordinal, streamed) = match slot {
                    Some(Slot::Reasoning {
                        ordinal, streamed, ..
                    }) => (ordinal, streamed),
                    _ => {
                        let ordinal = self.next_reasoning;
                        self.next_reasoning += 1;
                        (ordinal, false)
                    }
                };
                let block = reasoning_block(id, &summary.unwrap_or_default(), encrypted_content);
                out.push_back(Ok(ChatChunk::ReasoningDelta {
                    index: ordinal,
                    id: block.id,
                    text: if streamed { String::new() } else { block.text },
                    signature: None,
                    encrypted: block.encrypted,
                }));
            }
            Some(OutputItem::FunctionCall {
                id,
                call_id,
                name,
                arguments,
            }) => match slot {
                Some(Slot::Call { ordinal, streamed }) => {
                    let arguments = arguments_text(arguments);
                    if !streamed && !arguments.is_empty() {
                        out.push_back(Ok(ChatChunk::ToolCallDelta {
                            index: ordinal,
                            id: None,
                            name: None,
                            arguments_delta: arguments,
                        }));
                    }
                }
                _ => {
                    // Never announced: the whole call at once.
                    let ordinal = self.next_call;
                    self.next_call += 1;
                    out.push_back(Ok(ChatChunk::ToolCallDelta {
                        index: ordinal,
                        id: call_id.or(id).filter(|id| !id.is_empty()),
                        name: name.filter(|n| !n.is_empty()),
                        arguments_delta: arguments_text(arguments),
                    }));
                }
            },
            Some(OutputItem::Message { content, .. }) => {
                if matches!(slot, Some(Slot::Message { streamed: true })) {
                    return;
                }
                for part in content.unwrap_or_default() {
                    match part {
                        OutputContent::OutputText { text: Some(t) } if !t.is_empty() => {
                            self.text.push_str(&t);
                            out.push_back(Ok(ChatChunk::TextDelta(t)));
                        }
                        OutputContent::Refusal { refusal: Some(r) } if self.refusal.is_empty() => {
                            self.refusal.push_str(&r);
                        }
                        _ => {}
                    }
                }
            }
            Some(OutputItem::Other) | None => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use catena_core::{FinishReason, StreamAccumulator};

    fn run(events: &[&str]) -> Vec<Result<ChatChunk>> {
        let mut d = ResponsesDecoder::default();
        let mut out = VecDeque::new();
        for e in events {
            d.on_event(
                &SseEvent {
                    event: None,
                    data: (*e).to_owned(),
                },
                &mut out,
            );
            if d.is_done() {
                break;
            }
        }
        if !d.is_done() {
            out.push_back(Err(d.interrupted()));
        }
        out.into_iter().collect()
    }

    #[test]
    fn items_without_added_events_or_deltas_still_arrive() {
        let out = run(&[
            r#"{"type":"response.output_item.done","output_index":0,"item":{"type":"reasoning","id":"rs_1","summary":[{"type":"summary_text","text":"a"},{"type":"summary_text","text":"b"}],"encrypted_content":"enc"}}"#,
            r#"{"type":"response.output_item.done","output_index":1,"item":{"type":"message","content":[{"type":"output_text","text":"hi"}]}}"#,
            r#"{"type":"response.output_item.done","output_index":2,"item":{"type":"function_call","id":"fc_1","call_id":"call_1","name":"f","arguments":"{}"}}"#,
            r#"{"type":"response.completed","response":{"status":"completed"}}"#,
        ]);
        let mut acc = StreamAccumulator::new();
        for c in &out {
            acc.push(c.as_ref().unwrap());
        }
        let r = acc.finish().unwrap();
        assert_eq!(r.text(), "hi");
        assert_eq!(r.message.reasoning[0].text, "a\n\nb");
        assert_eq!(r.message.reasoning[0].encrypted.as_deref(), Some("enc"));
        assert_eq!(
            r.tool_calls()[0],
            catena_core::ToolCall::new("call_1", "f", "{}")
        );
        assert_eq!(r.finish_reason, Some(FinishReason::ToolCalls));
    }

    #[test]
    fn refusal_and_malformed_events_are_errors() {
        let out = run(&[
            r#"{"type":"response.refusal.delta","output_index":0,"delta":"I can't"}"#,
            r#"{"type":"response.completed","response":{"status":"completed"}}"#,
        ]);
        let err = out.last().unwrap().as_ref().unwrap_err();
        assert_eq!(
            err.provider_kind(),
            Some(&ProviderErrorKind::ContentFiltered)
        );
        let out = run(&["{not json"]);
        let err = out.last().unwrap().as_ref().unwrap_err();
        assert_eq!(
            err.provider_kind(),
            Some(&ProviderErrorKind::MalformedResponse)
        );
        let out = run(&[r#"{"type":"response.output_text.delta","output_index":0,"delta":"par"}"#]);
        let err = out.last().unwrap().as_ref().unwrap_err();
        assert_eq!(
            err.provider_kind(),
            Some(&ProviderErrorKind::StreamInterrupted)
        );
        assert!(err.to_string().contains("\"par\""), "{err}");
    }
}
