//! The Responses API wire format (`POST /responses` and its stream events), as documented
//! in OpenAI's API reference. These types stay inside the crate; `responses.rs` and
//! `responses_stream.rs` convert them to and from `catena_core` types.
//!
//! Response types accept missing and `null` fields everywhere, as the Chat Completions
//! types do: compatible servers omit some of them.

use serde::{Deserialize, Serialize};
use serde_json::Value;

// ---------------------------------------------------------------- request

/// `POST /responses` body.
#[derive(Debug, Serialize)]
pub(crate) struct ResponsesRequest<'a> {
    pub(crate) model: &'a str,
    pub(crate) input: Vec<InputItem<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) tools: Vec<FunctionTool<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) tool_choice: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) text: Option<TextOptions>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) reasoning: Option<ReasoningConfig>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) include: Vec<&'static str>,
    pub(crate) store: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) parallel_tool_calls: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) service_tier: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) previous_response_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) prompt_cache_key: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) max_output_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) temperature: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) top_p: Option<f32>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub(crate) stream: bool,
}

/// One item of `input`.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum InputItem<'a> {
    /// A user, developer / system or assistant message.
    Message {
        role: &'static str,
        content: MessageContent<'a>,
    },
    /// A reasoning item of an earlier turn, sent back unchanged.
    Reasoning {
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<&'a str>,
        summary: Vec<SummaryText<'a>>,
        #[serde(skip_serializing_if = "Option::is_none")]
        encrypted_content: Option<&'a str>,
    },
    /// A tool call the assistant made earlier.
    FunctionCall {
        call_id: &'a str,
        name: &'a str,
        arguments: &'a str,
    },
    /// A tool's result.
    FunctionCallOutput { call_id: &'a str, output: String },
}

/// A message's content: a string, or an array of parts.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub(crate) enum MessageContent<'a> {
    Text(String),
    Parts(Vec<ContentPart<'a>>),
}

/// One part of a message's content.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum ContentPart<'a> {
    InputText {
        text: &'a str,
    },
    InputImage {
        image_url: String,
        detail: &'static str,
    },
    /// Assistant text of an earlier turn.
    OutputText {
        text: String,
        /// Always empty: citations are not kept between turns.
        annotations: Vec<Value>,
    },
}

/// One `summary_text` entry of a reasoning item.
#[derive(Debug, Serialize)]
pub(crate) struct SummaryText<'a> {
    #[serde(rename = "type")]
    pub(crate) kind: &'static str,
    pub(crate) text: &'a str,
}

/// A function tool (the Responses API flattens what Chat Completions nests in `function`).
#[derive(Debug, Serialize)]
pub(crate) struct FunctionTool<'a> {
    #[serde(rename = "type")]
    pub(crate) kind: &'static str,
    pub(crate) name: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    pub(crate) description: &'a str,
    pub(crate) parameters: Value,
    pub(crate) strict: bool,
}

/// `text`: the output format.
#[derive(Debug, Serialize)]
pub(crate) struct TextOptions {
    pub(crate) format: Value,
}

/// `reasoning`: effort and summaries.
#[derive(Debug, Serialize)]
pub(crate) struct ReasoningConfig {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) effort: Option<&'static str>,
    pub(crate) summary: &'static str,
}

// ---------------------------------------------------------------- response

/// A `response` object (the unary answer, and the payload of the lifecycle events).
#[derive(Debug, Default, Deserialize)]
pub(crate) struct WireResponse {
    pub(crate) id: Option<String>,
    pub(crate) status: Option<String>,
    pub(crate) error: Option<Value>,
    pub(crate) incomplete_details: Option<IncompleteDetails>,
    pub(crate) model: Option<String>,
    pub(crate) output: Option<Vec<OutputItem>>,
    pub(crate) usage: Option<ResponsesUsage>,
}

/// Why a response is `incomplete`.
#[derive(Debug, Deserialize)]
pub(crate) struct IncompleteDetails {
    pub(crate) reason: Option<String>,
}

/// One item of `output`. Items of other types (web search calls, ...) are kept as
/// [`OutputItem::Other`] and skipped.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum OutputItem {
    Message {
        id: Option<String>,
        content: Option<Vec<OutputContent>>,
    },
    FunctionCall {
        id: Option<String>,
        call_id: Option<String>,
        name: Option<String>,
        arguments: Option<Value>,
    },
    Reasoning {
        id: Option<String>,
        summary: Option<Vec<SummaryPart>>,
        encrypted_content: Option<String>,
    },
    #[serde(other)]
    Other,
}

/// One content part of an output message.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum OutputContent {
    OutputText {
        text: Option<String>,
    },
    Refusal {
        refusal: Option<String>,
    },
    #[serde(other)]
    Other,
}

/// One part of a reasoning item's summary.
#[derive(Debug, Deserialize)]
pub(crate) struct SummaryPart {
    pub(crate) text: Option<String>,
}

/// `usage` of a response.
#[derive(Debug, Clone, Copy, Deserialize)]
pub(crate) struct ResponsesUsage {
    pub(crate) input_tokens: Option<u64>,
    pub(crate) output_tokens: Option<u64>,
    pub(crate) total_tokens: Option<u64>,
    pub(crate) input_tokens_details: Option<InputTokensDetails>,
    pub(crate) output_tokens_details: Option<OutputTokensDetails>,
}

/// `usage.input_tokens_details`.
#[derive(Debug, Clone, Copy, Deserialize)]
pub(crate) struct InputTokensDetails {
    pub(crate) cached_tokens: Option<u64>,
}

/// `usage.output_tokens_details`.
#[derive(Debug, Clone, Copy, Deserialize)]
pub(crate) struct OutputTokensDetails {
    pub(crate) reasoning_tokens: Option<u64>,
}

// ---------------------------------------------------------------- stream events

/// The fields of a stream event this client reads; every event has a `type`, the others
/// depend on it.
#[derive(Debug, Deserialize)]
pub(crate) struct StreamEvent {
    #[serde(rename = "type")]
    pub(crate) kind: Option<String>,
    pub(crate) response: Option<WireResponse>,
    pub(crate) item: Option<OutputItem>,
    pub(crate) item_id: Option<String>,
    pub(crate) output_index: Option<usize>,
    pub(crate) summary_index: Option<usize>,
    pub(crate) delta: Option<Value>,
    pub(crate) arguments: Option<String>,
}
