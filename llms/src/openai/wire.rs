//! OpenAI's wire format (Chat Completions and Embeddings), as documented in the API
//! reference. These types stay inside the crate; `chat.rs`, `stream.rs` and `embed.rs`
//! convert them to and from `catena_core` types.
//!
//! Response types accept missing and `null` fields everywhere: compatible servers (vLLM,
//! llama.cpp, Ollama, LM Studio) omit some of them.

use serde::{Deserialize, Serialize};
use serde_json::Value;

// ---------------------------------------------------------------- chat request

/// `POST /chat/completions` body.
#[derive(Debug, Serialize)]
pub(crate) struct ChatCompletionRequest<'a> {
    pub(crate) model: &'a str,
    pub(crate) messages: Vec<RequestMessage<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) tools: Vec<RequestTool<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) tool_choice: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) response_format: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) temperature: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) top_p: Option<f32>,
    /// OpenAI deprecated `max_tokens` for this (reasoning models reject `max_tokens`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) max_completion_tokens: Option<u32>,
    /// The legacy field, for compatible servers that only read it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) max_tokens: Option<u32>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    pub(crate) stop: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) seed: Option<u64>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub(crate) stream: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) stream_options: Option<StreamOptions>,
    /// Routes requests sharing a prompt prefix to the same cache.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) prompt_cache_key: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) parallel_tool_calls: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) service_tier: Option<&'a str>,
    /// `minimal` / `low` / `medium` / `high`, for reasoning models.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) reasoning_effort: Option<&'static str>,
}

/// `stream_options`: asks for the final usage chunk.
#[derive(Debug, Serialize)]
pub(crate) struct StreamOptions {
    pub(crate) include_usage: bool,
}

/// One message of the request.
#[derive(Debug, Serialize)]
pub(crate) struct RequestMessage<'a> {
    pub(crate) role: &'static str,
    /// `null` only for an assistant message that carries tool calls and no text.
    pub(crate) content: Option<RequestContent>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) name: Option<&'a str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) tool_calls: Vec<RequestToolCall<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) tool_call_id: Option<&'a str>,
}

/// Message content: a string, or (user messages with images) an array of parts.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub(crate) enum RequestContent {
    Text(String),
    Parts(Vec<RequestPart>),
}

/// One part of a user message.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum RequestPart {
    Text { text: String },
    ImageUrl { image_url: ImageUrl },
}

/// `image_url` of an image part; base64 images travel as `data:` URLs.
#[derive(Debug, Serialize)]
pub(crate) struct ImageUrl {
    pub(crate) url: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) detail: Option<&'static str>,
}

/// A tool call the assistant made earlier in the conversation.
#[derive(Debug, Serialize)]
pub(crate) struct RequestToolCall<'a> {
    pub(crate) id: &'a str,
    #[serde(rename = "type")]
    pub(crate) kind: &'static str,
    pub(crate) function: RequestFunctionCall<'a>,
}

/// The function part of [`RequestToolCall`].
#[derive(Debug, Serialize)]
pub(crate) struct RequestFunctionCall<'a> {
    pub(crate) name: &'a str,
    pub(crate) arguments: &'a str,
}

/// A tool offered to the model.
#[derive(Debug, Serialize)]
pub(crate) struct RequestTool<'a> {
    #[serde(rename = "type")]
    pub(crate) kind: &'static str,
    pub(crate) function: RequestFunction<'a>,
}

/// The function part of [`RequestTool`].
#[derive(Debug, Serialize)]
pub(crate) struct RequestFunction<'a> {
    pub(crate) name: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    pub(crate) description: &'a str,
    pub(crate) parameters: &'a Value,
}

// ---------------------------------------------------------------- chat response

/// A `chat.completion` object.
#[derive(Debug, Deserialize)]
pub(crate) struct ChatCompletion {
    pub(crate) model: Option<String>,
    pub(crate) choices: Option<Vec<Choice>>,
    pub(crate) usage: Option<WireUsage>,
}

/// One choice of a completion.
#[derive(Debug, Deserialize)]
pub(crate) struct Choice {
    pub(crate) index: Option<u32>,
    pub(crate) message: Option<ResponseMessage>,
    pub(crate) finish_reason: Option<String>,
}

/// The assistant message of a choice.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct ResponseMessage {
    /// A string (OpenAI), or an array of text parts (a few compatible servers).
    pub(crate) content: Option<Value>,
    pub(crate) refusal: Option<String>,
    pub(crate) tool_calls: Option<Vec<ResponseToolCall>>,
}

/// A tool call in a response message or a stream delta.
#[derive(Debug, Deserialize)]
pub(crate) struct ResponseToolCall {
    /// Present in stream deltas.
    pub(crate) index: Option<usize>,
    pub(crate) id: Option<String>,
    pub(crate) function: Option<ResponseFunction>,
}

/// The function part of [`ResponseToolCall`].
#[derive(Debug, Deserialize)]
pub(crate) struct ResponseFunction {
    pub(crate) name: Option<String>,
    /// A JSON string (OpenAI); some compatible servers send the object itself.
    pub(crate) arguments: Option<Value>,
}

/// `usage` of a completion or of the final stream chunk.
#[derive(Debug, Clone, Copy, Deserialize)]
pub(crate) struct WireUsage {
    pub(crate) prompt_tokens: Option<u64>,
    pub(crate) completion_tokens: Option<u64>,
    pub(crate) total_tokens: Option<u64>,
    pub(crate) prompt_tokens_details: Option<PromptTokensDetails>,
    pub(crate) completion_tokens_details: Option<CompletionTokensDetails>,
}

/// `usage.prompt_tokens_details`.
#[derive(Debug, Clone, Copy, Deserialize)]
pub(crate) struct PromptTokensDetails {
    pub(crate) cached_tokens: Option<u64>,
}

/// `usage.completion_tokens_details`.
#[derive(Debug, Clone, Copy, Deserialize)]
pub(crate) struct CompletionTokensDetails {
    pub(crate) reasoning_tokens: Option<u64>,
}

// ---------------------------------------------------------------- stream chunks

/// A `chat.completion.chunk` object (or an `{"error": ...}` object mid-stream).
#[derive(Debug, Deserialize)]
pub(crate) struct ChatCompletionChunk {
    pub(crate) model: Option<String>,
    pub(crate) choices: Option<Vec<StreamChoice>>,
    pub(crate) usage: Option<WireUsage>,
    pub(crate) error: Option<Value>,
}

/// One choice of a chunk.
#[derive(Debug, Deserialize)]
pub(crate) struct StreamChoice {
    pub(crate) index: Option<u32>,
    pub(crate) delta: Option<Delta>,
    pub(crate) finish_reason: Option<String>,
}

/// The delta of a chunk's choice.
#[derive(Debug, Deserialize)]
pub(crate) struct Delta {
    pub(crate) content: Option<String>,
    pub(crate) refusal: Option<String>,
    pub(crate) tool_calls: Option<Vec<ResponseToolCall>>,
}

// ---------------------------------------------------------------- embeddings

/// `POST /embeddings` body.
#[derive(Debug, Serialize)]
pub(crate) struct EmbeddingRequest<'a> {
    pub(crate) model: &'a str,
    pub(crate) input: &'a [String],
    pub(crate) encoding_format: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) dimensions: Option<u32>,
}

/// The embeddings list.
#[derive(Debug, Deserialize)]
pub(crate) struct EmbeddingResponse {
    pub(crate) data: Option<Vec<EmbeddingItem>>,
}

/// One embedding; `index` is its input's position.
#[derive(Debug, Deserialize)]
pub(crate) struct EmbeddingItem {
    pub(crate) index: Option<usize>,
    pub(crate) embedding: EmbeddingVector,
}

/// An item's `embedding`: one pooled vector (what OpenAI sends), or one vector per token
/// (llama.cpp's server run with `--pooling none`), which is recognised to say so.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(crate) enum EmbeddingVector {
    Pooled(Vec<f32>),
    PerToken(Vec<Vec<f32>>),
}
