//! Chat messages: roles, text and image content, tool calls and tool results, token usage
//! and finish reasons.
//!
//! ```
//! use catena_core::{Message, Role, ToolCall};
//!
//! let history = vec![
//!     Message::system("You are terse."),
//!     Message::user("What is 2 + 3?"),
//!     Message::assistant_with_tool_calls(
//!         "",
//!         vec![ToolCall::new("call_1", "add", r#"{"a":2,"b":3}"#)],
//!     ),
//!     Message::tool_result("call_1", "5"),
//! ];
//! assert_eq!(history[3].role, Role::Tool);
//! assert_eq!(history[2].tool_calls[0].arguments_json().unwrap()["a"], 2);
//! ```

use std::fmt;
use std::ops::{Add, AddAssign};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Error, Result};

/// Who wrote a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Instructions for the model.
    System,
    /// The human (or calling program).
    User,
    /// The model.
    Assistant,
    /// The result of a tool call, sent back to the model.
    Tool,
}

impl Role {
    /// The lowercase name (`"system"`, `"user"`, `"assistant"`, `"tool"`).
    pub fn as_str(self) -> &'static str {
        match self {
            Role::System => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
            Role::Tool => "tool",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where an image comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum ImageSource {
    /// An `https:` (or `data:`) URL the provider fetches.
    Url {
        /// The URL.
        url: String,
    },
    /// Inline bytes, base64-encoded.
    Base64 {
        /// The MIME type, e.g. `image/png`.
        media_type: String,
        /// The base64 data (no `data:` prefix).
        data: String,
    },
}

/// How closely the model should look at an image (OpenAI's `detail`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ImageDetail {
    /// Let the provider decide.
    Auto,
    /// Low resolution, fewer tokens.
    Low,
    /// High resolution.
    High,
}

/// One part of a message's content.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum ContentPart {
    /// Text.
    Text {
        /// The text.
        text: String,
    },
    /// An image.
    Image {
        /// Where the image comes from.
        source: ImageSource,
        /// Requested detail level, when the provider supports one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        detail: Option<ImageDetail>,
    },
}

impl ContentPart {
    /// A text part.
    pub fn text(text: impl Into<String>) -> Self {
        ContentPart::Text { text: text.into() }
    }

    /// An image part from a URL.
    pub fn image_url(url: impl Into<String>) -> Self {
        ContentPart::Image {
            source: ImageSource::Url { url: url.into() },
            detail: None,
        }
    }

    /// An image part from base64 data.
    pub fn image_base64(media_type: impl Into<String>, data: impl Into<String>) -> Self {
        ContentPart::Image {
            source: ImageSource::Base64 {
                media_type: media_type.into(),
                data: data.into(),
            },
            detail: None,
        }
    }

    /// The text, when this is a text part.
    pub fn as_text(&self) -> Option<&str> {
        match self {
            ContentPart::Text { text } => Some(text),
            ContentPart::Image { .. } => None,
        }
    }
}

/// A call the model asked for.
///
/// `arguments` is the JSON text exactly as the model produced it, so nothing is lost when a
/// model emits invalid JSON; [`ToolCall::arguments_json`] parses it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ToolCall {
    /// The provider's id for this call; the tool result refers to it.
    pub id: String,
    /// The tool's name.
    pub name: String,
    /// The arguments as JSON text.
    pub arguments: String,
}

impl ToolCall {
    /// A tool call from its parts.
    pub fn new(
        id: impl Into<String>,
        name: impl Into<String>,
        arguments: impl Into<String>,
    ) -> Self {
        ToolCall {
            id: id.into(),
            name: name.into(),
            arguments: arguments.into(),
        }
    }

    /// Parses the arguments. Empty arguments parse as `{}`.
    ///
    /// # Errors
    /// [`Error::Parse`] when the model produced invalid JSON.
    pub fn arguments_json(&self) -> Result<Value> {
        if self.arguments.trim().is_empty() {
            return Ok(Value::Object(Default::default()));
        }
        serde_json::from_str(&self.arguments).map_err(|e| {
            Error::Parse(crate::parser::ParseError::InvalidJson(format!(
                "arguments of tool call `{}` ({}): {e}",
                self.name, self.id
            )))
        })
    }
}

/// A chat message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Message {
    /// Who wrote it.
    pub role: Role,
    /// Text and image parts, in order.
    #[serde(default)]
    pub content: Vec<ContentPart>,
    /// Tool calls the assistant asked for (assistant messages only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCall>,
    /// The call this message answers (tool messages only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
    /// An optional participant name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The model's reasoning that came with this (assistant) message: Anthropic's thinking
    /// blocks with their signatures, OpenAI's reasoning items with their encrypted content.
    /// Sent back unchanged on the next turn, as the providers require for tool use.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reasoning: Vec<ReasoningBlock>,
    /// Whether the prompt up to and including this message is a prompt-cache breakpoint
    /// (Anthropic's `cache_control`; other providers cache prefixes on their own).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub cache_breakpoint: bool,
}

/// One block of a model's reasoning, kept so it can be sent back on the next turn.
///
/// Providers differ in what they show: Anthropic returns the thinking text with a
/// `signature` (or, redacted, only `encrypted` data); OpenAI's Responses API returns an item
/// `id`, a summary as `text` and, when asked, `encrypted` content. Catena keeps every field
/// and never edits them.
///
/// ```
/// use catena_core::{Message, ReasoningBlock};
/// let turn = Message::assistant("42")
///     .with_reasoning(vec![ReasoningBlock::thinking("6 x 7", "sig-1")]);
/// assert_eq!(turn.reasoning[0].signature.as_deref(), Some("sig-1"));
/// assert_eq!(turn.text(), "42");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ReasoningBlock {
    /// The provider's id for the block (OpenAI reasoning items), when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The visible reasoning text (Anthropic's thinking, OpenAI's summary); may be empty.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub text: String,
    /// Anthropic's signature over the thinking text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
    /// Opaque encrypted reasoning (Anthropic's `redacted_thinking` data, OpenAI's
    /// `encrypted_content`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encrypted: Option<String>,
}

impl ReasoningBlock {
    /// A visible thinking block with its signature (Anthropic).
    pub fn thinking(text: impl Into<String>, signature: impl Into<String>) -> Self {
        ReasoningBlock {
            text: text.into(),
            signature: Some(signature.into()),
            ..Default::default()
        }
    }

    /// A block whose content is only opaque, encrypted data.
    pub fn encrypted(data: impl Into<String>) -> Self {
        ReasoningBlock {
            encrypted: Some(data.into()),
            ..Default::default()
        }
    }

    /// Sets the provider's id.
    #[must_use]
    pub fn with_id(mut self, id: impl Into<String>) -> Self {
        self.id = Some(id.into());
        self
    }

    /// Sets the visible text.
    #[must_use]
    pub fn with_text(mut self, text: impl Into<String>) -> Self {
        self.text = text.into();
        self
    }

    /// Sets the encrypted content.
    #[must_use]
    pub fn with_encrypted(mut self, data: impl Into<String>) -> Self {
        self.encrypted = Some(data.into());
        self
    }
}

impl Message {
    /// A message with one text part.
    pub fn new(role: Role, text: impl Into<String>) -> Self {
        let text = text.into();
        Message {
            role,
            content: if text.is_empty() {
                Vec::new()
            } else {
                vec![ContentPart::text(text)]
            },
            tool_calls: Vec::new(),
            tool_call_id: None,
            name: None,
            reasoning: Vec::new(),
            cache_breakpoint: false,
        }
    }

    /// A system message.
    pub fn system(text: impl Into<String>) -> Self {
        Message::new(Role::System, text)
    }

    /// A user message.
    pub fn user(text: impl Into<String>) -> Self {
        Message::new(Role::User, text)
    }

    /// A user message made of several parts (text and images).
    pub fn user_parts(parts: Vec<ContentPart>) -> Self {
        Message {
            content: parts,
            ..Message::new(Role::User, "")
        }
    }

    /// An assistant message.
    pub fn assistant(text: impl Into<String>) -> Self {
        Message::new(Role::Assistant, text)
    }

    /// An assistant message that asks for tool calls (its text may be empty).
    pub fn assistant_with_tool_calls(text: impl Into<String>, tool_calls: Vec<ToolCall>) -> Self {
        Message {
            tool_calls,
            ..Message::new(Role::Assistant, text)
        }
    }

    /// The result of the tool call `tool_call_id`.
    pub fn tool_result(tool_call_id: impl Into<String>, text: impl Into<String>) -> Self {
        Message {
            tool_call_id: Some(tool_call_id.into()),
            ..Message::new(Role::Tool, text)
        }
    }

    /// Sets the participant name.
    #[must_use]
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Attaches the model's reasoning blocks (assistant messages).
    #[must_use]
    pub fn with_reasoning(mut self, reasoning: Vec<ReasoningBlock>) -> Self {
        self.reasoning = reasoning;
        self
    }

    /// Marks this message as a prompt-cache breakpoint: the provider may cache the prompt up
    /// to and including it (Anthropic's `cache_control`).
    #[must_use]
    pub fn with_cache_breakpoint(mut self) -> Self {
        self.cache_breakpoint = true;
        self
    }

    /// All text parts, concatenated.
    pub fn text(&self) -> String {
        let mut out = String::new();
        for part in &self.content {
            if let Some(t) = part.as_text() {
                out.push_str(t);
            }
        }
        out
    }

    /// Whether any part is an image.
    pub fn has_images(&self) -> bool {
        self.content
            .iter()
            .any(|p| matches!(p, ContentPart::Image { .. }))
    }
}

/// Token counts a provider reported for one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Usage {
    /// Tokens in the prompt.
    pub input_tokens: u64,
    /// Tokens in the answer.
    pub output_tokens: u64,
    /// Total as reported (usually input + output).
    pub total_tokens: u64,
    /// Prompt tokens served from the provider's cache, when reported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cached_input_tokens: Option<u64>,
    /// Output tokens spent on hidden reasoning, when reported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning_tokens: Option<u64>,
    /// Prompt tokens written to the provider's cache by this call (Anthropic's
    /// `cache_creation_input_tokens`), when reported. Counted in `input_tokens`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_creation_input_tokens: Option<u64>,
}

impl Usage {
    /// Usage with input and output counts; the total is their sum.
    pub fn new(input_tokens: u64, output_tokens: u64) -> Self {
        Usage {
            input_tokens,
            output_tokens,
            total_tokens: input_tokens.saturating_add(output_tokens),
            cached_input_tokens: None,
            reasoning_tokens: None,
            cache_creation_input_tokens: None,
        }
    }

    /// Sets the total, when the provider reports one that differs from the sum.
    #[must_use]
    pub fn with_total_tokens(mut self, total: u64) -> Self {
        self.total_tokens = total;
        self
    }

    /// Sets the cached prompt tokens.
    #[must_use]
    pub fn with_cached_input_tokens(mut self, n: u64) -> Self {
        self.cached_input_tokens = Some(n);
        self
    }

    /// Sets the reasoning tokens.
    #[must_use]
    pub fn with_reasoning_tokens(mut self, n: u64) -> Self {
        self.reasoning_tokens = Some(n);
        self
    }

    /// Sets the prompt tokens written to the cache.
    #[must_use]
    pub fn with_cache_creation_input_tokens(mut self, n: u64) -> Self {
        self.cache_creation_input_tokens = Some(n);
        self
    }
}

fn add_opt(a: Option<u64>, b: Option<u64>) -> Option<u64> {
    match (a, b) {
        (None, None) => None,
        (a, b) => Some(a.unwrap_or(0).saturating_add(b.unwrap_or(0))),
    }
}

impl Add for Usage {
    type Output = Usage;
    fn add(self, rhs: Usage) -> Usage {
        Usage {
            input_tokens: self.input_tokens.saturating_add(rhs.input_tokens),
            output_tokens: self.output_tokens.saturating_add(rhs.output_tokens),
            total_tokens: self.total_tokens.saturating_add(rhs.total_tokens),
            cached_input_tokens: add_opt(self.cached_input_tokens, rhs.cached_input_tokens),
            reasoning_tokens: add_opt(self.reasoning_tokens, rhs.reasoning_tokens),
            cache_creation_input_tokens: add_opt(
                self.cache_creation_input_tokens,
                rhs.cache_creation_input_tokens,
            ),
        }
    }
}

impl AddAssign for Usage {
    fn add_assign(&mut self, rhs: Usage) {
        *self = *self + rhs;
    }
}

/// Why the model stopped.
///
/// Values a provider sends that have no category here are kept as [`FinishReason::Other`],
/// never guessed.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum FinishReason {
    /// The model finished its answer (or hit a stop sequence).
    Stop,
    /// The answer hit the token limit and is cut.
    Length,
    /// The model asked for tool calls.
    ToolCalls,
    /// A safety filter stopped the answer.
    ContentFilter,
    /// A provider value with no category here, kept verbatim.
    Other(String),
}

impl FinishReason {
    /// Whether the answer was cut short (length or content filter).
    pub fn is_truncated(&self) -> bool {
        matches!(self, FinishReason::Length | FinishReason::ContentFilter)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constructors_set_roles_and_ids() {
        let m = Message::tool_result("c1", "ok");
        assert_eq!(m.role, Role::Tool);
        assert_eq!(m.tool_call_id.as_deref(), Some("c1"));
        assert_eq!(m.text(), "ok");
        let m = Message::user_parts(vec![
            ContentPart::text("what is this? "),
            ContentPart::image_url("https://example.com/cat.png"),
            ContentPart::text("be brief"),
        ]);
        assert_eq!(m.text(), "what is this? be brief");
        assert!(m.has_images());
        assert!(Message::assistant("").content.is_empty());
    }

    #[test]
    fn tool_call_arguments_parse_or_report() {
        assert_eq!(
            ToolCall::new("1", "f", "").arguments_json().unwrap(),
            serde_json::json!({})
        );
        let err = ToolCall::new("1", "f", "{\"a\":")
            .arguments_json()
            .unwrap_err();
        assert!(matches!(err, Error::Parse(_)), "{err:?}");
        assert!(err.to_string().contains("`f`"));
    }

    #[test]
    fn usage_adds_optional_counts() {
        let a = Usage::new(10, 5).with_cached_input_tokens(4);
        let b = Usage::new(1, 2).with_reasoning_tokens(7);
        let s = a + b;
        assert_eq!(
            (s.input_tokens, s.output_tokens, s.total_tokens),
            (11, 7, 18)
        );
        assert_eq!(s.cached_input_tokens, Some(4));
        assert_eq!(s.reasoning_tokens, Some(7));
        assert_eq!(
            (Usage::new(1, 1) + Usage::new(1, 1)).cached_input_tokens,
            None
        );
    }

    #[test]
    fn message_serde_round_trip() {
        let m = Message::assistant_with_tool_calls("x", vec![ToolCall::new("i", "n", "{}")]);
        let json = serde_json::to_string(&m).unwrap();
        let back: Message = serde_json::from_str(&json).unwrap();
        assert_eq!(back, m);
        let fr: FinishReason = serde_json::from_str("{\"other\":\"recitation\"}").unwrap();
        assert_eq!(fr, FinishReason::Other("recitation".into()));
    }
}
