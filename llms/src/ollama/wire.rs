//! Ollama's native wire format (`/api/chat`, `/api/embed`), as documented in
//! <https://github.com/ollama/ollama/blob/main/docs/api.md>.

use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Debug, Serialize)]
pub(crate) struct ChatBody<'a> {
    pub(crate) model: &'a str,
    pub(crate) messages: Vec<WireMessage>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) tools: Vec<WireTool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) format: Option<Value>,
    #[serde(skip_serializing_if = "Options::is_empty")]
    pub(crate) options: Options,
    pub(crate) stream: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) keep_alive: Option<&'a str>,
}

#[derive(Debug, Default, Serialize)]
pub(crate) struct Options {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) temperature: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) top_p: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) seed: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) num_predict: Option<u32>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) stop: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) num_ctx: Option<u32>,
}

impl Options {
    fn is_empty(&self) -> bool {
        self.temperature.is_none()
            && self.top_p.is_none()
            && self.seed.is_none()
            && self.num_predict.is_none()
            && self.stop.is_empty()
            && self.num_ctx.is_none()
    }
}

/// Ollama sends `null` for absent lists and strings (`"images": null`).
fn null_as_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct WireMessage {
    #[serde(default, deserialize_with = "null_as_default")]
    pub(crate) role: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub(crate) content: String,
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub(crate) images: Vec<String>,
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub(crate) tool_calls: Vec<WireToolCall>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) tool_name: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct WireToolCall {
    pub(crate) function: WireFunctionCall,
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct WireFunctionCall {
    pub(crate) name: String,
    #[serde(default)]
    pub(crate) arguments: Value,
}

#[derive(Debug, Serialize)]
pub(crate) struct WireTool {
    #[serde(rename = "type")]
    pub(crate) kind: &'static str,
    pub(crate) function: WireFunction,
}

#[derive(Debug, Serialize)]
pub(crate) struct WireFunction {
    pub(crate) name: String,
    pub(crate) description: String,
    pub(crate) parameters: Value,
}

/// One response object: the whole answer, or one line of a stream.
#[derive(Debug, Deserialize)]
pub(crate) struct ChatReply {
    #[serde(default)]
    pub(crate) model: Option<String>,
    #[serde(default)]
    pub(crate) message: Option<WireMessage>,
    #[serde(default)]
    pub(crate) done: bool,
    #[serde(default)]
    pub(crate) done_reason: Option<String>,
    #[serde(default)]
    pub(crate) prompt_eval_count: Option<u64>,
    #[serde(default)]
    pub(crate) eval_count: Option<u64>,
    #[serde(default)]
    pub(crate) error: Option<String>,
}

#[derive(Debug, Serialize)]
pub(crate) struct EmbedBody<'a> {
    pub(crate) model: &'a str,
    pub(crate) input: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) truncate: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) dimensions: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) keep_alive: Option<&'a str>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct EmbedReply {
    #[serde(default, deserialize_with = "null_as_default")]
    pub(crate) embeddings: Vec<Vec<f32>>,
}
