//! A chat model that answers from a script.

use std::collections::VecDeque;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use serde_json::Value;

use crate::chat::{
    response_to_chunks, stream_interrupted, ChatChunk, ChatModel, ChatRequest, ChatResponse,
    ChatStream, ModelInfo, ToolChoice,
};
use crate::error::{Error, Result};
use crate::message::{FinishReason, Message, Role, ToolCall, Usage};

type Responder = Arc<dyn Fn(&ChatRequest) -> Result<ChatResponse> + Send + Sync>;

enum Step {
    Respond(ChatResponse),
    Fail(Error),
    /// Streams the response's first `after` chunks, then fails as interrupted
    /// (`generate` fails the same way).
    Interrupt {
        response: ChatResponse,
        after: usize,
    },
}

/// A chat model for tests: returns queued responses (or errors) in order, records every
/// request, and streams answers in small deltas like a real provider.
///
/// When the script runs out it falls back to its responder, if it has one (see
/// [`ScriptedChatModel::echo`]), or fails with a clear error.
///
/// ```
/// use catena_core::{ChatModel, ChatRequest, Message};
/// use catena_core::test_utils::ScriptedChatModel;
///
/// # futures::executor::block_on(async {
/// let model = ScriptedChatModel::new()
///     .with_tool_call("search", r#"{"q":"rust"}"#)
///     .with_text("Rust is a language.");
/// let first = model.generate(ChatRequest::new(vec![Message::user("?")])).await.unwrap();
/// assert_eq!(first.tool_calls()[0].name, "search");
/// let second = model.generate(ChatRequest::new(vec![Message::user("?")])).await.unwrap();
/// assert_eq!(second.text(), "Rust is a language.");
/// assert_eq!(model.requests().len(), 2);
/// # });
/// ```
pub struct ScriptedChatModel {
    script: Mutex<VecDeque<Step>>,
    requests: Mutex<Vec<ChatRequest>>,
    responder: Option<Responder>,
    chunk_chars: usize,
    info: ModelInfo,
}

impl fmt::Debug for ScriptedChatModel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScriptedChatModel")
            .field("remaining", &self.remaining())
            .field("has_responder", &self.responder.is_some())
            .finish_non_exhaustive()
    }
}

impl Default for ScriptedChatModel {
    fn default() -> Self {
        Self::new()
    }
}

fn words(s: &str) -> u64 {
    s.split_whitespace().count() as u64
}

fn usage_for(request: &ChatRequest, response: &ChatResponse) -> Usage {
    let input: u64 = request.messages.iter().map(|m| words(&m.text())).sum();
    let output = words(&response.text())
        + response
            .tool_calls()
            .iter()
            .map(|c| words(&c.arguments).max(1))
            .sum::<u64>();
    Usage::new(input, output)
}

impl ScriptedChatModel {
    /// An empty script with no responder.
    pub fn new() -> Self {
        ScriptedChatModel {
            script: Mutex::new(VecDeque::new()),
            requests: Mutex::new(Vec::new()),
            responder: None,
            chunk_chars: 4,
            info: ModelInfo::new("scripted", "scripted-model")
                .with_tools(true)
                .with_json_schema(false)
                .with_streaming(true)
                .with_context_window(1 << 20),
        }
    }

    /// A model that answers every request by rule, for conformance tests:
    /// - when tools are offered and the tool choice is `Required` or names a tool, and the
    ///   last message is from the user, it calls that tool (or the first one), filling every
    ///   required string argument with the user's text;
    /// - after a tool result it answers `"Tool result: <result>"`;
    /// - otherwise it answers `"Echo: <last user text>"`.
    pub fn echo() -> Self {
        Self::new().with_responder(echo_response)
    }

    /// Answers with `f` whenever the script is empty.
    #[must_use]
    pub fn with_responder(
        mut self,
        f: impl Fn(&ChatRequest) -> Result<ChatResponse> + Send + Sync + 'static,
    ) -> Self {
        self.responder = Some(Arc::new(f));
        self
    }

    /// Queues a text answer (finish reason `Stop`).
    #[must_use]
    pub fn with_text(self, text: impl Into<String>) -> Self {
        self.with_response(
            ChatResponse::new(Message::assistant(text)).with_finish_reason(FinishReason::Stop),
        )
    }

    /// Queues a single tool call (finish reason `ToolCalls`); ids are `call_<n>`.
    #[must_use]
    pub fn with_tool_call(self, name: impl Into<String>, arguments: impl Into<String>) -> Self {
        let n = self.remaining();
        self.with_response(
            ChatResponse::new(Message::assistant_with_tool_calls(
                "",
                vec![ToolCall::new(format!("call_{n}"), name, arguments)],
            ))
            .with_finish_reason(FinishReason::ToolCalls),
        )
    }

    /// Queues a complete response. Usage is filled in (word counts) when it has none.
    #[must_use]
    pub fn with_response(self, response: ChatResponse) -> Self {
        self.push(Step::Respond(response));
        self
    }

    /// Queues an error.
    #[must_use]
    pub fn with_error(self, error: Error) -> Self {
        self.push(Step::Fail(error));
        self
    }

    /// Queues an answer whose stream is cut after `after_chunks` chunks.
    #[must_use]
    pub fn with_interrupted_stream(self, text: impl Into<String>, after_chunks: usize) -> Self {
        self.push(Step::Interrupt {
            response: ChatResponse::new(Message::assistant(text))
                .with_finish_reason(FinishReason::Stop),
            after: after_chunks,
        });
        self
    }

    /// Sets how many characters each streamed text delta carries. Default 4.
    #[must_use]
    pub fn with_chunk_chars(mut self, n: usize) -> Self {
        self.chunk_chars = n.max(1);
        self
    }

    /// Replaces the reported model info.
    #[must_use]
    pub fn with_model_info(mut self, info: ModelInfo) -> Self {
        self.info = info;
        self
    }

    /// Every request received so far, in order.
    pub fn requests(&self) -> Vec<ChatRequest> {
        self.requests
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// How many scripted steps are left.
    pub fn remaining(&self) -> usize {
        self.script
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    fn push(&self, step: Step) {
        self.script
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push_back(step);
    }

    fn next_step(&self, request: &ChatRequest) -> Result<Step> {
        request.validate()?;
        self.requests
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(request.clone());
        let step = self
            .script
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop_front();
        let step = match step {
            Some(s) => s,
            None => match &self.responder {
                Some(f) => Step::Respond(f(request)?),
                None => {
                    return Err(Error::other(
                        "ScriptedChatModel: the script is exhausted and no responder is set",
                    ))
                }
            },
        };
        Ok(match step {
            Step::Respond(r) => Step::Respond(complete(request, r, &self.info)),
            Step::Interrupt { response, after } => Step::Interrupt {
                response: complete(request, response, &self.info),
                after,
            },
            fail => fail,
        })
    }

    fn chunks(&self, response: &ChatResponse) -> Vec<ChatChunk> {
        let mut out = Vec::new();
        for chunk in response_to_chunks(response) {
            match chunk {
                ChatChunk::TextDelta(t) => {
                    out.extend(split_chars(&t, self.chunk_chars).map(ChatChunk::TextDelta));
                }
                ChatChunk::ToolCallDelta {
                    index,
                    id,
                    name,
                    arguments_delta,
                } => {
                    out.push(ChatChunk::ToolCallDelta {
                        index,
                        id,
                        name,
                        arguments_delta: String::new(),
                    });
                    out.extend(split_chars(&arguments_delta, self.chunk_chars).map(|a| {
                        ChatChunk::ToolCallDelta {
                            index,
                            id: None,
                            name: None,
                            arguments_delta: a,
                        }
                    }));
                }
                other => out.push(other),
            }
        }
        out
    }
}

fn complete(request: &ChatRequest, mut response: ChatResponse, info: &ModelInfo) -> ChatResponse {
    if response.usage.is_none() {
        response.usage = Some(usage_for(request, &response));
    }
    if response.model.is_none() {
        response.model = Some(request.model.clone().unwrap_or_else(|| info.model.clone()));
    }
    response
}

fn split_chars(s: &str, n: usize) -> impl Iterator<Item = String> + '_ {
    let chars: Vec<char> = s.chars().collect();
    let pieces: Vec<String> = chars.chunks(n).map(|c| c.iter().collect()).collect();
    pieces.into_iter()
}

fn echo_response(request: &ChatRequest) -> Result<ChatResponse> {
    let last = request
        .messages
        .last()
        .ok_or_else(|| Error::invalid_input("no messages"))?;
    if last.role == Role::Tool {
        return Ok(
            ChatResponse::new(Message::assistant(format!("Tool result: {}", last.text())))
                .with_finish_reason(FinishReason::Stop),
        );
    }
    let user_text = request
        .messages
        .iter()
        .rev()
        .find(|m| m.role == Role::User)
        .map(Message::text)
        .unwrap_or_default();
    let wanted = match &request.tool_choice {
        Some(ToolChoice::Tool(name)) => request.tools.iter().find(|t| &t.name == name),
        Some(ToolChoice::Required) => request.tools.first(),
        _ => None,
    };
    if let Some(tool) = wanted {
        let mut args = serde_json::Map::new();
        if let Some(required) = tool.parameters.get("required").and_then(Value::as_array) {
            for key in required.iter().filter_map(Value::as_str) {
                args.insert(key.to_owned(), Value::String(user_text.clone()));
            }
        }
        let arguments = Value::Object(args).to_string();
        return Ok(ChatResponse::new(Message::assistant_with_tool_calls(
            "",
            vec![ToolCall::new("call_echo_0", tool.name.clone(), arguments)],
        ))
        .with_finish_reason(FinishReason::ToolCalls));
    }
    Ok(
        ChatResponse::new(Message::assistant(format!("Echo: {user_text}")))
            .with_finish_reason(FinishReason::Stop),
    )
}

#[async_trait]
impl ChatModel for ScriptedChatModel {
    async fn generate(&self, request: ChatRequest) -> Result<ChatResponse> {
        match self.next_step(&request)? {
            Step::Respond(r) => Ok(r),
            Step::Fail(e) => Err(e),
            Step::Interrupt { .. } => Err(stream_interrupted("scripted interruption")),
        }
    }

    async fn stream(&self, request: ChatRequest) -> Result<ChatStream> {
        let (response, cut_after) = match self.next_step(&request)? {
            Step::Respond(r) => (r, None),
            Step::Fail(e) => return Err(e),
            Step::Interrupt { response, after } => (response, Some(after)),
        };
        let mut items: Vec<Result<ChatChunk>> =
            self.chunks(&response).into_iter().map(Ok).collect();
        if let Some(after) = cut_after {
            items.truncate(after);
            items.push(Err(stream_interrupted(
                "scripted stream cut before its finish chunk",
            )));
        }
        Ok(Box::pin(futures::stream::iter(items)))
    }

    fn model_info(&self) -> ModelInfo {
        self.info.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::collect_stream;
    use crate::error::ProviderErrorKind;
    use futures::StreamExt;

    fn req() -> ChatRequest {
        ChatRequest::new(vec![Message::user("héllo wörld")])
    }

    #[test]
    fn streams_in_small_deltas_and_matches_generate() {
        futures::executor::block_on(async {
            let m = ScriptedChatModel::new()
                .with_text("héllo wörld, again")
                .with_text("héllo wörld, again")
                .with_chunk_chars(3);
            let unary = m.generate(req()).await.unwrap();
            let stream = m.stream(req()).await.unwrap();
            let chunks: Vec<_> = stream.collect().await;
            let text_deltas = chunks
                .iter()
                .filter(|c| matches!(c, Ok(ChatChunk::TextDelta(_))))
                .count();
            assert_eq!(text_deltas, 6);
            let streamed = collect_stream(Box::pin(futures::stream::iter(chunks)))
                .await
                .unwrap();
            assert_eq!(unary, streamed);
            assert_eq!(unary.usage, Some(Usage::new(2, 3)));
        });
    }

    #[test]
    fn interrupted_stream_ends_in_an_error() {
        futures::executor::block_on(async {
            let m = ScriptedChatModel::new().with_interrupted_stream("abcdefgh", 2);
            let err = collect_stream(m.stream(req()).await.unwrap())
                .await
                .unwrap_err();
            assert_eq!(
                err.provider_kind(),
                Some(&ProviderErrorKind::StreamInterrupted)
            );
            assert!(err.is_retryable());
        });
    }

    #[test]
    fn exhausted_script_and_queued_errors() {
        futures::executor::block_on(async {
            let m = ScriptedChatModel::new().with_error(Error::invalid_input("boom"));
            assert!(m
                .generate(req())
                .await
                .unwrap_err()
                .to_string()
                .contains("boom"));
            assert!(m
                .generate(req())
                .await
                .unwrap_err()
                .to_string()
                .contains("exhausted"));
            assert!(m.generate(ChatRequest::new(vec![])).await.is_err());
            assert_eq!(m.requests().len(), 2, "invalid requests are not recorded");
        });
    }
}
