//! The request and response types of [`ChatModel`](super::ChatModel).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Error, RateLimitInfo, Result};
use crate::message::{FinishReason, Message, Role, ToolCall, Usage};
use crate::tool::{schema_for, ToolDefinition};

/// Which tools the model may or must call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ToolChoice {
    /// The model decides (the default when tools are given).
    Auto,
    /// The model must not call tools.
    None,
    /// The model must call at least one tool.
    Required,
    /// The model must call this tool.
    Tool(String),
}

/// The shape the answer must take.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum ResponseFormat {
    /// Free text (the default).
    Text,
    /// Any JSON object.
    JsonObject,
    /// JSON matching a schema.
    JsonSchema {
        /// A name for the schema (`[a-zA-Z0-9_-]`, as OpenAI requires).
        name: String,
        /// The JSON schema.
        schema: Value,
        /// Whether the provider must enforce the schema strictly, where it can.
        strict: bool,
    },
}

impl ResponseFormat {
    /// A strict JSON-schema format derived from the Rust type `T` with `schemars`.
    ///
    /// ```
    /// use catena_core::ResponseFormat;
    /// #[derive(schemars::JsonSchema)]
    /// #[allow(dead_code)]
    /// struct Answer { city: String, population: u64 }
    ///
    /// let ResponseFormat::JsonSchema { name, schema, strict } = ResponseFormat::json_schema_for::<Answer>()
    /// else { unreachable!() };
    /// assert_eq!(name, "Answer");
    /// assert!(strict);
    /// assert_eq!(schema["properties"]["population"]["type"], "integer");
    /// ```
    pub fn json_schema_for<T: JsonSchema>() -> Self {
        let name: String = T::schema_name()
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        ResponseFormat::JsonSchema {
            name,
            schema: schema_for::<T>(),
            strict: true,
        }
    }
}

/// How much a reasoning model should think before it answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ReasoningEffort {
    /// As little as the model allows (OpenAI `minimal`).
    Minimal,
    /// Low effort.
    Low,
    /// Medium effort (most providers' default).
    Medium,
    /// High effort.
    High,
}

impl ReasoningEffort {
    /// The lowercase name OpenAI uses (`"minimal"`, `"low"`, `"medium"`, `"high"`).
    pub fn as_str(self) -> &'static str {
        match self {
            ReasoningEffort::Minimal => "minimal",
            ReasoningEffort::Low => "low",
            ReasoningEffort::Medium => "medium",
            ReasoningEffort::High => "high",
        }
    }
}

/// Reasoning ("thinking") options, for the models that have them.
///
/// OpenAI takes an effort; Anthropic's extended thinking takes a token budget (when only an
/// effort is given, Anthropic's client derives a budget from it). Providers without
/// reasoning ignore these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ReasoningOptions {
    /// How hard to think.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effort: Option<ReasoningEffort>,
    /// At most this many tokens of thinking (Anthropic's `budget_tokens`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget_tokens: Option<u32>,
}

impl ReasoningOptions {
    /// Options with this effort.
    pub fn effort(effort: ReasoningEffort) -> Self {
        ReasoningOptions {
            effort: Some(effort),
            budget_tokens: None,
        }
    }

    /// Options with this thinking budget in tokens.
    pub fn budget(tokens: u32) -> Self {
        ReasoningOptions {
            effort: None,
            budget_tokens: Some(tokens),
        }
    }
}

/// Prompt caching, as a request option every provider understands in its own way.
///
/// - Anthropic: `cache_control` breakpoints on the tools, the system prompt and every
///   message marked with [`Message::with_cache_breakpoint`] (at most four in all; with
///   `automatic`, the last message is a breakpoint too), with the `ttl` when it is one hour.
/// - OpenAI: `prompt_cache_key` from `key` (OpenAI caches prefixes on its own; the key
///   routes requests that share one to the same cache).
/// - Gemini: `cachedContent` from `cached_content`, the name of a cache created beforehand.
///
/// Cache hits come back in [`Usage::cached_input_tokens`] (and writes in
/// [`Usage::cache_creation_input_tokens`]) from every provider that reports them.
///
/// ```
/// use catena_core::{ChatRequest, Message, PromptCache};
/// let req = ChatRequest::new(vec![
///     Message::system("A long, stable system prompt...").with_cache_breakpoint(),
///     Message::user("question"),
/// ])
/// .with_prompt_cache(PromptCache::automatic().with_key("tenant-42"));
/// assert_eq!(req.prompt_cache.unwrap().key.as_deref(), Some("tenant-42"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[non_exhaustive]
pub struct PromptCache {
    /// Place breakpoints where they usually pay: after the tools, after the system prompt
    /// and at the last message (Anthropic).
    #[serde(default)]
    pub automatic: bool,
    /// A key grouping requests that share a prefix (OpenAI's `prompt_cache_key`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// The name of a cache created beforehand (Gemini's `cachedContent`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cached_content: Option<String>,
    /// How long cache entries should live, where the provider offers a choice (Anthropic:
    /// five minutes by default, or one hour).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_secs: Option<u64>,
}

impl PromptCache {
    /// Caching with breakpoints placed automatically.
    pub fn automatic() -> Self {
        PromptCache {
            automatic: true,
            ..Default::default()
        }
    }

    /// Caching only where messages are marked, plus the options below.
    pub fn manual() -> Self {
        PromptCache::default()
    }

    /// Sets the cache key (OpenAI).
    #[must_use]
    pub fn with_key(mut self, key: impl Into<String>) -> Self {
        self.key = Some(key.into());
        self
    }

    /// Names a cache created beforehand (Gemini).
    #[must_use]
    pub fn with_cached_content(mut self, name: impl Into<String>) -> Self {
        self.cached_content = Some(name.into());
        self
    }

    /// Asks for entries that live this long, where the provider offers a choice.
    #[must_use]
    pub fn with_ttl(mut self, ttl: std::time::Duration) -> Self {
        self.ttl_secs = Some(ttl.as_secs());
        self
    }
}

/// Everything a chat model needs for one call.
///
/// Built with [`ChatRequest::new`] and `with_*` setters so new fields never break callers.
///
/// ```
/// use catena_core::{ChatRequest, Message, ToolChoice};
/// let req = ChatRequest::new(vec![Message::user("hi")])
///     .with_temperature(0.2)
///     .with_max_tokens(64)
///     .with_stop(["\n\n"])
///     .with_seed(7)
///     .with_tool_choice(ToolChoice::None);
/// assert!(req.validate().is_ok());
/// ```
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ChatRequest {
    /// The conversation so far.
    pub messages: Vec<Message>,
    /// Tools the model may call.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<ToolDefinition>,
    /// Which tools the model may or must call; `None` leaves it to the provider.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<ToolChoice>,
    /// The shape the answer must take; `None` is free text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_format: Option<ResponseFormat>,
    /// Sampling temperature (0 to 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f32>,
    /// Nucleus sampling mass (0 to 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f32>,
    /// Maximum tokens in the answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    /// Stop sequences.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stop: Vec<String>,
    /// Seed for reproducible sampling, where supported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// A model id that overrides the client's default for this call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Prompt caching; `None` leaves it to the provider.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_cache: Option<PromptCache>,
    /// Reasoning options, for reasoning models.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning: Option<ReasoningOptions>,
    /// Whether the model may call several tools in one turn; `None` leaves it to the
    /// provider.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parallel_tool_calls: Option<bool>,
    /// The provider's service tier (`"auto"`, `"default"`, `"flex"`, `"priority"`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_tier: Option<String>,
    /// Continue from a response the provider stored (OpenAI Responses API's
    /// `previous_response_id`): only the new messages need to be sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_response_id: Option<String>,
}

impl ChatRequest {
    /// A request with these messages and everything else left to the provider.
    pub fn new(messages: Vec<Message>) -> Self {
        ChatRequest {
            messages,
            ..Default::default()
        }
    }

    /// Adds tools the model may call.
    #[must_use]
    pub fn with_tools(mut self, tools: impl IntoIterator<Item = ToolDefinition>) -> Self {
        self.tools.extend(tools);
        self
    }

    /// Sets the tool choice.
    #[must_use]
    pub fn with_tool_choice(mut self, choice: ToolChoice) -> Self {
        self.tool_choice = Some(choice);
        self
    }

    /// Sets the response format.
    #[must_use]
    pub fn with_response_format(mut self, format: ResponseFormat) -> Self {
        self.response_format = Some(format);
        self
    }

    /// Sets the temperature.
    #[must_use]
    pub fn with_temperature(mut self, temperature: f32) -> Self {
        self.temperature = Some(temperature);
        self
    }

    /// Sets top-p.
    #[must_use]
    pub fn with_top_p(mut self, top_p: f32) -> Self {
        self.top_p = Some(top_p);
        self
    }

    /// Sets the maximum answer length in tokens.
    #[must_use]
    pub fn with_max_tokens(mut self, max_tokens: u32) -> Self {
        self.max_tokens = Some(max_tokens);
        self
    }

    /// Adds stop sequences.
    #[must_use]
    pub fn with_stop<S: Into<String>>(mut self, stop: impl IntoIterator<Item = S>) -> Self {
        self.stop.extend(stop.into_iter().map(Into::into));
        self
    }

    /// Sets the seed.
    #[must_use]
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// Overrides the model id for this call.
    #[must_use]
    pub fn with_model(mut self, model: impl Into<String>) -> Self {
        self.model = Some(model.into());
        self
    }

    /// Sets prompt caching.
    #[must_use]
    pub fn with_prompt_cache(mut self, cache: PromptCache) -> Self {
        self.prompt_cache = Some(cache);
        self
    }

    /// Sets the reasoning options.
    #[must_use]
    pub fn with_reasoning(mut self, reasoning: ReasoningOptions) -> Self {
        self.reasoning = Some(reasoning);
        self
    }

    /// Allows or forbids several tool calls in one turn.
    #[must_use]
    pub fn with_parallel_tool_calls(mut self, yes: bool) -> Self {
        self.parallel_tool_calls = Some(yes);
        self
    }

    /// Sets the service tier.
    #[must_use]
    pub fn with_service_tier(mut self, tier: impl Into<String>) -> Self {
        self.service_tier = Some(tier.into());
        self
    }

    /// Continues from a response the provider stored.
    #[must_use]
    pub fn with_previous_response_id(mut self, id: impl Into<String>) -> Self {
        self.previous_response_id = Some(id.into());
        self
    }

    /// Checks what can be checked without a provider: at least one message, sampling values
    /// in range, a named tool choice that names a given tool, tool results that answer a
    /// call.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] naming the problem.
    pub fn validate(&self) -> Result<()> {
        if self.messages.is_empty() {
            return Err(Error::invalid_input(
                "a chat request needs at least one message",
            ));
        }
        if let Some(t) = self.temperature {
            if !(0.0..=2.0).contains(&t) {
                return Err(Error::invalid_input(format!(
                    "temperature must be within 0..=2, got {t}"
                )));
            }
        }
        if let Some(p) = self.top_p {
            if !(0.0..=1.0).contains(&p) {
                return Err(Error::invalid_input(format!(
                    "top_p must be within 0..=1, got {p}"
                )));
            }
        }
        if self.max_tokens == Some(0) {
            return Err(Error::invalid_input("max_tokens must be at least 1"));
        }
        if let Some(ToolChoice::Tool(name)) = &self.tool_choice {
            if !self.tools.iter().any(|t| &t.name == name) {
                return Err(Error::invalid_input(format!(
                    "tool_choice names `{name}`, which is not among the request's tools"
                )));
            }
        }
        if matches!(self.tool_choice, Some(ToolChoice::Required)) && self.tools.is_empty() {
            return Err(Error::invalid_input(
                "tool_choice is `required` but no tools were given",
            ));
        }
        for (i, m) in self.messages.iter().enumerate() {
            if m.role == Role::Tool && m.tool_call_id.is_none() {
                return Err(Error::invalid_input(format!(
                    "message {i} is a tool result without a tool_call_id"
                )));
            }
        }
        Ok(())
    }
}

/// A chat model's complete answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ChatResponse {
    /// The assistant message: text and/or tool calls.
    pub message: Message,
    /// Why the model stopped, when reported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finish_reason: Option<FinishReason>,
    /// Token usage, when reported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
    /// The model that answered, when reported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// The provider's id for this response (OpenAI's `resp_...`, Anthropic's `msg_...`),
    /// when reported; pass it as [`ChatRequest::previous_response_id`] to continue.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The provider's rate-limit headroom after this call, when it reported one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RateLimitInfo>,
}

impl ChatResponse {
    /// A response carrying `message`.
    pub fn new(message: Message) -> Self {
        ChatResponse {
            message,
            finish_reason: None,
            usage: None,
            model: None,
            id: None,
            rate_limit: None,
        }
    }

    /// Sets the provider's response id.
    #[must_use]
    pub fn with_id(mut self, id: impl Into<String>) -> Self {
        self.id = Some(id.into());
        self
    }

    /// Sets the rate-limit headroom.
    #[must_use]
    pub fn with_rate_limit(mut self, info: RateLimitInfo) -> Self {
        self.rate_limit = Some(info);
        self
    }

    /// Sets the finish reason.
    #[must_use]
    pub fn with_finish_reason(mut self, reason: FinishReason) -> Self {
        self.finish_reason = Some(reason);
        self
    }

    /// Sets the usage.
    #[must_use]
    pub fn with_usage(mut self, usage: Usage) -> Self {
        self.usage = Some(usage);
        self
    }

    /// Sets the model name.
    #[must_use]
    pub fn with_model(mut self, model: impl Into<String>) -> Self {
        self.model = Some(model.into());
        self
    }

    /// The answer's text.
    pub fn text(&self) -> String {
        self.message.text()
    }

    /// The tool calls the model asked for.
    pub fn tool_calls(&self) -> &[ToolCall] {
        &self.message.tool_calls
    }
}

/// What a model can do, so callers can pick features without trial and error.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ModelInfo {
    /// The provider (`"openai"`, `"gemini"`, `"ollama"`, `"local"`, `"scripted"`).
    pub provider: String,
    /// The model id.
    pub model: String,
    /// Whether the model can call tools.
    pub supports_tools: bool,
    /// Whether the provider enforces a JSON schema natively.
    pub supports_json_schema: bool,
    /// Whether the model accepts images.
    pub supports_images: bool,
    /// Whether [`ChatModel::stream`](super::ChatModel::stream) streams for real (not one chunk).
    pub supports_streaming: bool,
    /// The context window in tokens, when known.
    pub context_window: Option<u32>,
}

impl ModelInfo {
    /// Info for `model` of `provider`, with every capability off.
    pub fn new(provider: impl Into<String>, model: impl Into<String>) -> Self {
        ModelInfo {
            provider: provider.into(),
            model: model.into(),
            ..Default::default()
        }
    }

    /// Sets tool support.
    #[must_use]
    pub fn with_tools(mut self, yes: bool) -> Self {
        self.supports_tools = yes;
        self
    }

    /// Sets native JSON-schema support.
    #[must_use]
    pub fn with_json_schema(mut self, yes: bool) -> Self {
        self.supports_json_schema = yes;
        self
    }

    /// Sets image support.
    #[must_use]
    pub fn with_images(mut self, yes: bool) -> Self {
        self.supports_images = yes;
        self
    }

    /// Sets real streaming support.
    #[must_use]
    pub fn with_streaming(mut self, yes: bool) -> Self {
        self.supports_streaming = yes;
        self
    }

    /// Sets the context window.
    #[must_use]
    pub fn with_context_window(mut self, tokens: u32) -> Self {
        self.context_window = Some(tokens);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::Message;

    #[test]
    fn validation_rejects_bad_requests() {
        let ok = ChatRequest::new(vec![Message::user("x")]);
        assert!(ok.validate().is_ok());
        assert!(ChatRequest::new(vec![]).validate().is_err());
        assert!(ok.clone().with_temperature(3.0).validate().is_err());
        assert!(ok.clone().with_top_p(1.5).validate().is_err());
        assert!(ok.clone().with_max_tokens(0).validate().is_err());
        let err = ok
            .clone()
            .with_tool_choice(ToolChoice::Tool("search".into()))
            .validate()
            .unwrap_err();
        assert!(err.to_string().contains("search"), "{err}");
        assert!(ok
            .clone()
            .with_tool_choice(ToolChoice::Required)
            .validate()
            .is_err());
        let mut bad_tool = Message::tool_result("x", "y");
        bad_tool.tool_call_id = None;
        assert!(ChatRequest::new(vec![bad_tool]).validate().is_err());
    }
}
