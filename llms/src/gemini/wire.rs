//! The Gemini wire format (`generateContent`, `streamGenerateContent`, `embedContent`,
//! `batchEmbedContents`, and Vertex AI's `:predict` for embeddings), as documented in
//! <https://ai.google.dev/api/generate-content> and
//! <https://cloud.google.com/vertex-ai/generative-ai/docs/model-reference/text-embeddings-api>.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The body of `generateContent` / `streamGenerateContent`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct GenerateBody {
    pub(crate) contents: Vec<Content>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) system_instruction: Option<Content>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) tools: Vec<Tool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) tool_config: Option<ToolConfig>,
    #[serde(skip_serializing_if = "GenerationConfig::is_empty")]
    pub(crate) generation_config: GenerationConfig,
    /// The name of a cache created beforehand (`cachedContents/...`), from
    /// `PromptCache::cached_content`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) cached_content: Option<String>,
}

/// One turn: a role (`user` / `model`) and its parts.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct Content {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) role: Option<String>,
    #[serde(default)]
    pub(crate) parts: Vec<Part>,
}

/// One part of a turn; exactly one of the data fields is set.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Part {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) text: Option<String>,
    /// Whether this part is the model's thinking (skipped in answers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) thought: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) inline_data: Option<Blob>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) file_data: Option<FileData>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) function_call: Option<FunctionCall>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) function_response: Option<FunctionResponse>,
    /// Opaque signature of the model's reasoning that must travel back with its function
    /// calls (Gemini 2.5+ / 3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) thought_signature: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Blob {
    pub(crate) mime_type: String,
    pub(crate) data: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct FileData {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) mime_type: Option<String>,
    pub(crate) file_uri: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct FunctionCall {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) id: Option<String>,
    pub(crate) name: String,
    #[serde(default)]
    pub(crate) args: Value,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct FunctionResponse {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) id: Option<String>,
    pub(crate) name: String,
    pub(crate) response: Value,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Tool {
    pub(crate) function_declarations: Vec<FunctionDeclaration>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct FunctionDeclaration {
    pub(crate) name: String,
    pub(crate) description: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) parameters_json_schema: Option<Value>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ToolConfig {
    pub(crate) function_calling_config: FunctionCallingConfig,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct FunctionCallingConfig {
    pub(crate) mode: &'static str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) allowed_function_names: Vec<String>,
}

#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct GenerationConfig {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) temperature: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) top_p: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) max_output_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) stop_sequences: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) seed: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) response_mime_type: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) response_json_schema: Option<Value>,
}

impl GenerationConfig {
    fn is_empty(&self) -> bool {
        self.temperature.is_none()
            && self.top_p.is_none()
            && self.max_output_tokens.is_none()
            && self.stop_sequences.is_empty()
            && self.seed.is_none()
            && self.response_mime_type.is_none()
            && self.response_json_schema.is_none()
    }
}

/// A `GenerateContentResponse`: the unary answer, or one streamed chunk. A streamed
/// `{"error": ...}` event also parses into it (with only `error` set).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct GenerateReply {
    #[serde(default)]
    pub(crate) candidates: Vec<Candidate>,
    #[serde(default)]
    pub(crate) prompt_feedback: Option<PromptFeedback>,
    #[serde(default)]
    pub(crate) usage_metadata: Option<UsageMetadata>,
    #[serde(default)]
    pub(crate) model_version: Option<String>,
    #[serde(default)]
    pub(crate) error: Option<Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Candidate {
    #[serde(default)]
    pub(crate) content: Option<Content>,
    #[serde(default)]
    pub(crate) finish_reason: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PromptFeedback {
    #[serde(default)]
    pub(crate) block_reason: Option<String>,
    #[serde(default)]
    pub(crate) block_reason_message: Option<String>,
}

#[derive(Debug, Default, Clone, Copy, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct UsageMetadata {
    #[serde(default)]
    pub(crate) prompt_token_count: Option<u64>,
    #[serde(default)]
    pub(crate) candidates_token_count: Option<u64>,
    #[serde(default)]
    pub(crate) total_token_count: Option<u64>,
    #[serde(default)]
    pub(crate) cached_content_token_count: Option<u64>,
    #[serde(default)]
    pub(crate) thoughts_token_count: Option<u64>,
}

/// One `embedContent` request (also an element of `batchEmbedContents`).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct EmbedRequest<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) model: Option<String>,
    pub(crate) content: EmbedContent<'a>,
    pub(crate) task_type: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) output_dimensionality: Option<usize>,
}

#[derive(Debug, Serialize)]
pub(crate) struct EmbedContent<'a> {
    pub(crate) parts: [EmbedPart<'a>; 1],
}

#[derive(Debug, Serialize)]
pub(crate) struct EmbedPart<'a> {
    pub(crate) text: &'a str,
}

#[derive(Debug, Serialize)]
pub(crate) struct BatchEmbedBody<'a> {
    pub(crate) requests: Vec<EmbedRequest<'a>>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct Values {
    #[serde(default)]
    pub(crate) values: Vec<f32>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct BatchEmbedReply {
    #[serde(default)]
    pub(crate) embeddings: Vec<Values>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct EmbedReply {
    pub(crate) embedding: Values,
}

/// Vertex AI `:predict` for text-embedding models.
#[derive(Debug, Serialize)]
pub(crate) struct PredictBody<'a> {
    pub(crate) instances: Vec<PredictInstance<'a>>,
    #[serde(skip_serializing_if = "PredictParameters::is_empty")]
    pub(crate) parameters: PredictParameters,
}

#[derive(Debug, Serialize)]
pub(crate) struct PredictInstance<'a> {
    pub(crate) content: &'a str,
    pub(crate) task_type: &'static str,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PredictParameters {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) output_dimensionality: Option<usize>,
}

impl PredictParameters {
    fn is_empty(&self) -> bool {
        self.output_dimensionality.is_none()
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct PredictReply {
    #[serde(default)]
    pub(crate) predictions: Vec<Prediction>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct Prediction {
    pub(crate) embeddings: Values,
}
