//! Streaming: typed deltas, and the one accumulator that turns them into a
//! [`ChatResponse`].

use std::collections::BTreeMap;
use std::pin::Pin;

use futures::{Stream, StreamExt};

use crate::chat::ChatResponse;
use crate::error::{Error, ProviderError, ProviderErrorKind, RateLimitInfo, Result};
use crate::message::{FinishReason, Message, ReasoningBlock, ToolCall, Usage};

/// A stream of chat deltas. Dropping it cancels the call.
pub type ChatStream = Pin<Box<dyn Stream<Item = Result<ChatChunk>> + Send + 'static>>;

/// One delta of a streamed answer.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ChatChunk {
    /// More answer text.
    TextDelta(String),
    /// Part of a tool call. The first delta of a call carries its `id` and `name`; later ones
    /// append to its arguments. `index` tells parallel calls apart.
    ToolCallDelta {
        /// Position of the call in this turn.
        index: usize,
        /// The call id (first delta only, usually).
        id: Option<String>,
        /// The tool name (first delta only, usually).
        name: Option<String>,
        /// More argument JSON text.
        arguments_delta: String,
    },
    /// Token usage; the last one seen wins (providers report totals).
    Usage(Usage),
    /// The model that answers.
    Model(String),
    /// Why the model stopped; the answer is complete.
    Finish(FinishReason),
    /// Part of a reasoning block (see [`ReasoningBlock`]). `index` tells blocks apart; text
    /// appends, and the other fields are set by whichever delta carries them.
    ReasoningDelta {
        /// Position of the block in this turn.
        index: usize,
        /// The provider's id for the block, when it has one.
        id: Option<String>,
        /// More visible reasoning text.
        text: String,
        /// The block's signature (Anthropic), usually in its last delta.
        signature: Option<String>,
        /// Opaque encrypted reasoning.
        encrypted: Option<String>,
    },
    /// The provider's id for this response.
    ResponseId(String),
    /// The provider's rate-limit headroom, read from the response headers.
    RateLimit(RateLimitInfo),
}

#[derive(Debug, Default)]
struct PartialCall {
    id: String,
    name: String,
    arguments: String,
}

/// Folds [`ChatChunk`]s into a [`ChatResponse`].
///
/// Every backend's stream and its unary answer end in the same `ChatResponse` because both go
/// through this type (or produce what it would).
///
/// ```
/// use catena_core::{ChatChunk, FinishReason, StreamAccumulator};
/// let mut acc = StreamAccumulator::new();
/// for chunk in [
///     ChatChunk::TextDelta("Hel".into()),
///     ChatChunk::TextDelta("lo".into()),
///     ChatChunk::ToolCallDelta { index: 0, id: Some("c1".into()), name: Some("search".into()), arguments_delta: "{\"q\":".into() },
///     ChatChunk::ToolCallDelta { index: 0, id: None, name: None, arguments_delta: "\"rust\"}".into() },
///     ChatChunk::Finish(FinishReason::ToolCalls),
/// ] {
///     acc.push(&chunk);
/// }
/// let resp = acc.finish().unwrap();
/// assert_eq!(resp.text(), "Hello");
/// assert_eq!(resp.tool_calls()[0].arguments, r#"{"q":"rust"}"#);
/// ```
#[derive(Debug, Default)]
pub struct StreamAccumulator {
    text: String,
    calls: BTreeMap<usize, PartialCall>,
    usage: Option<Usage>,
    model: Option<String>,
    finish_reason: Option<FinishReason>,
    reasoning: BTreeMap<usize, ReasoningBlock>,
    id: Option<String>,
    rate_limit: Option<RateLimitInfo>,
}

impl StreamAccumulator {
    /// An empty accumulator.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one chunk.
    pub fn push(&mut self, chunk: &ChatChunk) {
        match chunk {
            ChatChunk::TextDelta(t) => self.text.push_str(t),
            ChatChunk::ToolCallDelta {
                index,
                id,
                name,
                arguments_delta,
            } => {
                let call = self.calls.entry(*index).or_default();
                if let Some(id) = id {
                    if call.id.is_empty() {
                        call.id.clone_from(id);
                    }
                }
                if let Some(name) = name {
                    if call.name.is_empty() {
                        call.name.clone_from(name);
                    }
                }
                call.arguments.push_str(arguments_delta);
            }
            ChatChunk::Usage(u) => self.usage = Some(*u),
            ChatChunk::Model(m) => self.model = Some(m.clone()),
            ChatChunk::Finish(r) => self.finish_reason = Some(r.clone()),
            ChatChunk::ReasoningDelta {
                index,
                id,
                text,
                signature,
                encrypted,
            } => {
                let block = self.reasoning.entry(*index).or_default();
                block.text.push_str(text);
                if id.is_some() {
                    block.id.clone_from(id);
                }
                if signature.is_some() {
                    block.signature.clone_from(signature);
                }
                if encrypted.is_some() {
                    block.encrypted.clone_from(encrypted);
                }
            }
            ChatChunk::ResponseId(id) => self.id = Some(id.clone()),
            ChatChunk::RateLimit(info) => self.rate_limit = Some(*info),
        }
    }

    /// Whether a finish chunk has been seen.
    pub fn is_finished(&self) -> bool {
        self.finish_reason.is_some()
    }

    /// The text so far.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The complete response.
    ///
    /// # Errors
    /// [`ProviderErrorKind::MalformedResponse`] when a tool call never received a name.
    pub fn finish(self) -> Result<ChatResponse> {
        let mut tool_calls = Vec::with_capacity(self.calls.len());
        for (index, call) in self.calls {
            if call.name.is_empty() {
                return Err(ProviderError::new(
                    ProviderErrorKind::MalformedResponse,
                    format!("streamed tool call at index {index} has no name"),
                )
                .into());
            }
            let id = if call.id.is_empty() {
                format!("call_{index}")
            } else {
                call.id
            };
            tool_calls.push(ToolCall::new(id, call.name, call.arguments));
        }
        let mut message = Message::assistant_with_tool_calls(self.text, tool_calls);
        message.reasoning = self.reasoning.into_values().collect();
        Ok(ChatResponse {
            message,
            finish_reason: self.finish_reason,
            usage: self.usage,
            model: self.model,
            id: self.id,
            rate_limit: self.rate_limit,
        })
    }
}

/// Drains a stream into one response.
///
/// # Errors
/// The first error the stream yields, or a malformed-response error from
/// [`StreamAccumulator::finish`].
pub async fn collect_stream(mut stream: ChatStream) -> Result<ChatResponse> {
    let mut acc = StreamAccumulator::new();
    while let Some(chunk) = stream.next().await {
        acc.push(&chunk?);
    }
    acc.finish()
}

/// The chunks that replay `response`; accumulating them gives `response` back (text parts
/// merged into one).
pub fn response_to_chunks(response: &ChatResponse) -> Vec<ChatChunk> {
    let mut out = Vec::new();
    if let Some(id) = &response.id {
        out.push(ChatChunk::ResponseId(id.clone()));
    }
    if let Some(info) = response.rate_limit {
        out.push(ChatChunk::RateLimit(info));
    }
    if let Some(m) = &response.model {
        out.push(ChatChunk::Model(m.clone()));
    }
    for (index, block) in response.message.reasoning.iter().enumerate() {
        out.push(ChatChunk::ReasoningDelta {
            index,
            id: block.id.clone(),
            text: block.text.clone(),
            signature: block.signature.clone(),
            encrypted: block.encrypted.clone(),
        });
    }
    let text = response.text();
    if !text.is_empty() {
        out.push(ChatChunk::TextDelta(text));
    }
    for (index, call) in response.message.tool_calls.iter().enumerate() {
        out.push(ChatChunk::ToolCallDelta {
            index,
            id: Some(call.id.clone()),
            name: Some(call.name.clone()),
            arguments_delta: call.arguments.clone(),
        });
    }
    if let Some(u) = response.usage {
        out.push(ChatChunk::Usage(u));
    }
    if let Some(r) = &response.finish_reason {
        out.push(ChatChunk::Finish(r.clone()));
    }
    out
}

/// An error for a stream that ended before its finish chunk.
pub fn stream_interrupted(message: impl Into<String>) -> Error {
    ProviderError::new(ProviderErrorKind::StreamInterrupted, message).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parallel_tool_calls_assemble_by_index() {
        let mut acc = StreamAccumulator::new();
        let chunks = [
            ChatChunk::ToolCallDelta {
                index: 1,
                id: Some("b".into()),
                name: Some("g".into()),
                arguments_delta: "{\"y\"".into(),
            },
            ChatChunk::ToolCallDelta {
                index: 0,
                id: Some("a".into()),
                name: Some("f".into()),
                arguments_delta: "{\"x\":1}".into(),
            },
            ChatChunk::ToolCallDelta {
                index: 1,
                id: None,
                name: None,
                arguments_delta: ":2}".into(),
            },
            ChatChunk::Usage(Usage::new(1, 1)),
            ChatChunk::Usage(Usage::new(3, 4)),
            ChatChunk::Finish(FinishReason::ToolCalls),
        ];
        for c in &chunks {
            acc.push(c);
        }
        let r = acc.finish().unwrap();
        let calls = r.tool_calls();
        assert_eq!(calls.len(), 2);
        assert_eq!(
            (calls[0].id.as_str(), calls[0].arguments.as_str()),
            ("a", "{\"x\":1}")
        );
        assert_eq!(
            (calls[1].id.as_str(), calls[1].arguments.as_str()),
            ("b", "{\"y\":2}")
        );
        assert_eq!(r.usage, Some(Usage::new(3, 4)));
        assert_eq!(r.finish_reason, Some(FinishReason::ToolCalls));
    }

    #[test]
    fn nameless_tool_call_is_malformed() {
        let mut acc = StreamAccumulator::new();
        acc.push(&ChatChunk::ToolCallDelta {
            index: 0,
            id: Some("a".into()),
            name: None,
            arguments_delta: "{}".into(),
        });
        let err = acc.finish().unwrap_err();
        assert_eq!(
            err.provider_kind(),
            Some(&ProviderErrorKind::MalformedResponse)
        );
    }

    #[test]
    fn replayed_chunks_rebuild_the_response() {
        let resp = ChatResponse::new(
            Message::assistant_with_tool_calls(
                "thinking",
                vec![
                    ToolCall::new("c", "f", "{}"),
                    ToolCall::new("d", "g", "[1]"),
                ],
            )
            .with_reasoning(vec![
                ReasoningBlock::thinking("hmm", "sig"),
                ReasoningBlock::encrypted("opaque").with_id("rs_1"),
            ]),
        )
        .with_id("resp_1")
        .with_rate_limit(RateLimitInfo {
            remaining_requests: Some(3),
            ..Default::default()
        })
        .with_usage(
            Usage::new(5, 6)
                .with_cached_input_tokens(2)
                .with_cache_creation_input_tokens(1),
        )
        .with_model("m")
        .with_finish_reason(FinishReason::Other("weird".into()));
        let mut acc = StreamAccumulator::new();
        for c in response_to_chunks(&resp) {
            acc.push(&c);
        }
        assert_eq!(acc.finish().unwrap(), resp);
    }
}
