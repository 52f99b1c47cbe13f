//! [`AnthropicChatModel`]: the Messages API (`POST {base}/v1/messages`).

use std::fmt;

use async_trait::async_trait;
use catena_core::{
    ChatChunk, ChatModel, ChatRequest, ChatResponse, ChatStream, ContentPart, Error, FinishReason,
    ImageSource, Message, ModelInfo, ProviderErrorKind, ReasoningBlock, ReasoningEffort,
    ResponseFormat, Result, Role, ToolCall, ToolChoice, Usage,
};
use serde_json::{json, Value};

use super::client::{process_env, AnthropicClient, ConnectionConfig, MODEL_ENV, PROVIDER};
use super::stream::chat_stream;
use super::wire::{
    Block, CacheControl, MessageResponse, MessagesRequest, ResponseBlock, WireMessage, WireTool,
    WireUsage,
};
use crate::http::{provider_error, rate_limit_info};

/// The chat model used when none is set: `claude-sonnet-4-6`.
pub const DEFAULT_CHAT_MODEL: &str = "claude-sonnet-4-6";

/// The answer-length limit sent when a request sets none: 4096 tokens (Anthropic requires
/// `max_tokens` on every request).
pub const DEFAULT_MAX_TOKENS: u32 = 4096;

/// Anthropic's limit on `cache_control` breakpoints in one request.
pub const MAX_CACHE_BREAKPOINTS: usize = 4;

const PATH: &str = "/v1/messages";

/// A Claude model, speaking Anthropic's Messages API.
///
/// Built with [`AnthropicChatModel::builder`] or [`AnthropicChatModel::from_env`]. Cloning
/// is cheap and shares the connection pool.
///
/// ```no_run
/// use catena_core::{ChatModel, ChatRequest, Message};
/// use catena_llms::anthropic::AnthropicChatModel;
///
/// # async fn run() -> catena_core::Result<()> {
/// let model = AnthropicChatModel::builder()
///     .api_key("sk-ant-...")
///     .model("claude-sonnet-4-6")
///     .build()?;
/// let answer = model.generate(ChatRequest::new(vec![Message::user("Hi!")])).await?;
/// println!("{}", answer.text());
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct AnthropicChatModel {
    client: AnthropicClient,
    model: String,
    max_tokens: u32,
}

impl fmt::Debug for AnthropicChatModel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AnthropicChatModel")
            .field("model", &self.model)
            .field("max_tokens", &self.max_tokens)
            .field("client", &self.client)
            .finish()
    }
}

/// Builds an [`AnthropicChatModel`]; see [`AnthropicChatModel::builder`].
#[derive(Clone, Default)]
#[must_use]
pub struct AnthropicChatModelBuilder {
    connection: ConnectionConfig,
    model: Option<String>,
    max_tokens: Option<u32>,
}

impl fmt::Debug for AnthropicChatModelBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AnthropicChatModelBuilder")
            .field("model", &self.model)
            .field("max_tokens", &self.max_tokens)
            .field("connection", &self.connection)
            .finish()
    }
}

impl AnthropicChatModelBuilder {
    /// The model id. Default [`DEFAULT_CHAT_MODEL`] (`claude-sonnet-4-6`).
    /// [`ChatRequest::model`] overrides it per call.
    pub fn model(mut self, model: impl Into<String>) -> Self {
        self.model = Some(model.into());
        self
    }

    /// The `max_tokens` sent when a request sets none. Default [`DEFAULT_MAX_TOKENS`]
    /// (4096).
    pub fn max_tokens(mut self, n: u32) -> Self {
        self.max_tokens = Some(n);
        self
    }

    /// The API key, sent as the sensitive `x-api-key` header. No default: required for
    /// `api.anthropic.com`; other base URLs (gateways) may go without one.
    pub fn api_key(mut self, key: impl Into<crate::ApiKey>) -> Self {
        self.connection.api_key = Some(key.into());
        self
    }

    /// The API root, without `/v1`. Default
    /// [`DEFAULT_BASE_URL`](super::DEFAULT_BASE_URL) (`https://api.anthropic.com`).
    pub fn base_url(mut self, url: impl Into<String>) -> Self {
        self.connection.base_url = url.into();
        self
    }

    /// Adds a header to every request (`anthropic-beta` for beta features, gateway
    /// credentials). Its value is treated as a secret: never logged or printed. Default:
    /// none.
    pub fn default_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.connection.headers.push((name.into(), value.into()));
        self
    }

    /// Timeouts, retries and limits. Default [`HttpOptions::default`](crate::HttpOptions)
    /// (2 retries, 600 s request timeout, 120 s stream idle timeout).
    pub fn http(mut self, options: crate::HttpOptions) -> Self {
        self.connection.http = options;
        self
    }

    /// Shares an existing `reqwest` client and its connection pool; shorthand for
    /// `http(options.client(client))`. Default: a client of our own.
    pub fn http_client(mut self, client: reqwest::Client) -> Self {
        self.connection.http = self.connection.http.client(client);
        self
    }

    /// Builds the model.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] for a missing key (with Anthropic's own base URL), an
    /// invalid base URL, an empty model id, a zero `max_tokens`, or values that cannot be
    /// HTTP headers.
    pub fn build(self) -> Result<AnthropicChatModel> {
        let model = self.model.unwrap_or_else(|| DEFAULT_CHAT_MODEL.to_owned());
        if model.trim().is_empty() {
            return Err(Error::invalid_config("the Anthropic model id is empty"));
        }
        let max_tokens = self.max_tokens.unwrap_or(DEFAULT_MAX_TOKENS);
        if max_tokens == 0 {
            return Err(Error::invalid_config("max_tokens must be at least 1"));
        }
        Ok(AnthropicChatModel {
            client: AnthropicClient::new(self.connection)?,
            model,
            max_tokens,
        })
    }

    fn apply_env(mut self, get: &dyn Fn(&str) -> Option<String>) -> Self {
        self.connection.apply_env(get);
        if let Some(m) = get(MODEL_ENV).filter(|m| !m.trim().is_empty()) {
            self.model = Some(m.trim().to_owned());
        }
        self
    }
}

impl AnthropicChatModel {
    /// A builder with every setting at its default.
    pub fn builder() -> AnthropicChatModelBuilder {
        AnthropicChatModelBuilder::default()
    }

    /// A model configured from the environment: [`API_KEY_ENV`](super::API_KEY_ENV)
    /// (required for `api.anthropic.com`), [`BASE_URL_ENV`](super::BASE_URL_ENV) and
    /// [`MODEL_ENV`](super::MODEL_ENV); unset or empty variables keep the defaults.
    ///
    /// # Errors
    /// As for [`AnthropicChatModelBuilder::build`].
    pub fn from_env() -> Result<Self> {
        Self::builder().apply_env(&process_env).build()
    }

    /// The default model id.
    pub fn model(&self) -> &str {
        &self.model
    }

    /// The API root requests go to.
    pub fn base_url(&self) -> &str {
        self.client.base_url()
    }
}

#[async_trait]
impl ChatModel for AnthropicChatModel {
    async fn generate(&self, request: ChatRequest) -> Result<ChatResponse> {
        request.validate()?;
        let model = request.model.as_deref().unwrap_or(&self.model);
        let body = build_request(&request, model, self.max_tokens, false)?;
        tracing::debug!(provider = PROVIDER, model, "messages");
        let (message, headers): (MessageResponse, _) = self.client.post_json(PATH, &body).await?;
        let mut response = parse_message(message)?;
        response.rate_limit = rate_limit_info(&headers);
        Ok(response)
    }

    async fn stream(&self, request: ChatRequest) -> Result<ChatStream> {
        request.validate()?;
        let model = request.model.as_deref().unwrap_or(&self.model);
        let body = build_request(&request, model, self.max_tokens, true)?;
        tracing::debug!(provider = PROVIDER, model, "messages stream");
        let response = self.client.post_stream(PATH, &body).await?;
        let first = rate_limit_info(response.headers()).map(ChatChunk::RateLimit);
        Ok(chat_stream(response, &self.client, first))
    }

    fn model_info(&self) -> ModelInfo {
        ModelInfo::new(PROVIDER, self.model.clone())
            .with_tools(true)
            .with_json_schema(true)
            .with_images(true)
            .with_streaming(true)
            .with_context_window(200_000)
    }
}

// ---------------------------------------------------------------- request

/// The thinking budget for an effort, when a request gives no budget of its own.
pub(crate) fn effort_budget(effort: ReasoningEffort) -> u32 {
    match effort {
        ReasoningEffort::Medium => 4096,
        ReasoningEffort::High => 16_384,
        // Minimal, Low, and efforts added later: Anthropic's minimum budget.
        _ => 1024,
    }
}

/// Where a breakpoint can go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    Tool(usize),
    System(usize),
    /// A block of a wire message.
    Block(usize, usize),
}

/// The wire request for `request`. Fails with [`Error::InvalidInput`] for what Anthropic
/// cannot take (images in system messages, a `max_tokens` at or below the thinking budget,
/// variants added to core later).
pub(crate) fn build_request<'a>(
    request: &'a ChatRequest,
    model: &'a str,
    default_max_tokens: u32,
    stream: bool,
) -> Result<MessagesRequest<'a>> {
    let mut system: Vec<Block> = Vec::new();
    let mut messages: Vec<WireMessage> = Vec::new();
    // Whether the last wire message holds tool results (later results and user text join it).
    let mut open_tool_results = false;
    let mut breakpoints: Vec<Slot> = Vec::new();

    for (i, m) in request.messages.iter().enumerate() {
        match m.role {
            Role::System => {
                for part in &m.content {
                    match part {
                        ContentPart::Text { text } if !text.is_empty() => system.push(Block::Text {
                            text: text.clone(),
                            cache_control: None,
                        }),
                        ContentPart::Text { .. } => {}
                        _ => {
                            return Err(Error::invalid_input(format!(
                                "message {i} (system) has an image; Anthropic's system prompt takes text only"
                            )))
                        }
                    }
                }
                if m.cache_breakpoint && !system.is_empty() {
                    breakpoints.push(Slot::System(system.len() - 1));
                }
                continue;
            }
            Role::User => {
                let blocks = content_blocks(i, &m.content)?;
                match messages.last_mut() {
                    Some(last) if open_tool_results => last.content.extend(blocks),
                    _ => messages.push(WireMessage {
                        role: "user",
                        content: blocks,
                    }),
                }
                open_tool_results = false;
            }
            Role::Assistant => {
                messages.push(WireMessage {
                    role: "assistant",
                    content: assistant_blocks(i, m)?,
                });
                open_tool_results = false;
            }
            Role::Tool => {
                let blocks = content_blocks(i, &m.content)?;
                let content = if blocks.iter().all(|b| matches!(b, Block::Text { .. })) {
                    Value::String(m.text())
                } else {
                    serde_json::to_value(&blocks)
                        .map_err(|e| Error::serialization("could not encode a tool result", e))?
                };
                let block = Block::ToolResult {
                    tool_use_id: m.tool_call_id.clone().unwrap_or_default(),
                    content,
                    cache_control: None,
                };
                match messages.last_mut() {
                    Some(last) if open_tool_results => last.content.push(block),
                    _ => messages.push(WireMessage {
                        role: "user",
                        content: vec![block],
                    }),
                }
                open_tool_results = true;
            }
        }
        if m.cache_breakpoint {
            if let Some(slot) = last_cacheable(&mut messages) {
                breakpoints.push(slot);
            }
        }
    }

    let mut tools: Vec<WireTool<'a>> = request
        .tools
        .iter()
        .map(|t| WireTool {
            name: &t.name,
            description: &t.description,
            input_schema: &t.parameters,
            cache_control: None,
        })
        .collect();

    let cache = request.prompt_cache.as_ref();
    if cache.is_some_and(|c| c.automatic) {
        let mut auto = Vec::new();
        if !tools.is_empty() {
            auto.push(Slot::Tool(tools.len() - 1));
        }
        if !system.is_empty() {
            auto.push(Slot::System(system.len() - 1));
        }
        // Prefix order: tools, then system, then messages.
        breakpoints.splice(0..0, auto);
        if let Some(slot) = last_cacheable(&mut messages) {
            breakpoints.push(slot);
        }
    }
    breakpoints.dedup();
    let mut seen = Vec::new();
    breakpoints.retain(|s| {
        let new = !seen.contains(s);
        seen.push(*s);
        new
    });
    // Anthropic rejects more than four: the latest (longest) prefixes are kept.
    let skip = breakpoints.len().saturating_sub(MAX_CACHE_BREAKPOINTS);
    let control = CacheControl {
        kind: "ephemeral",
        ttl: cache
            .and_then(|c| c.ttl_secs)
            .filter(|s| *s >= 3600)
            .map(|_| "1h"),
    };
    for slot in breakpoints.into_iter().skip(skip) {
        let target = match slot {
            Slot::Tool(t) => tools.get_mut(t).map(|t| &mut t.cache_control),
            Slot::System(s) => system.get_mut(s).and_then(Block::cache_control_mut),
            Slot::Block(m, b) => messages
                .get_mut(m)
                .and_then(|m| m.content.get_mut(b))
                .and_then(Block::cache_control_mut),
        };
        if let Some(target) = target {
            *target = Some(control.clone());
        }
    }

    let disable_parallel = request.parallel_tool_calls == Some(false);
    let tool_choice = match &request.tool_choice {
        None if disable_parallel && !request.tools.is_empty() => {
            Some(json!({"type": "auto", "disable_parallel_tool_use": true}))
        }
        None => None,
        Some(ToolChoice::None) => Some(json!({"type": "none"})),
        Some(choice) => {
            let mut v = match choice {
                ToolChoice::Auto => json!({"type": "auto"}),
                ToolChoice::Required => json!({"type": "any"}),
                ToolChoice::Tool(name) => json!({"type": "tool", "name": name}),
                other => {
                    return Err(Error::invalid_input(format!(
                        "Anthropic does not support the tool choice {other:?}"
                    )))
                }
            };
            if disable_parallel {
                v["disable_parallel_tool_use"] = Value::Bool(true);
            }
            Some(v)
        }
    };

    let output_config = match &request.response_format {
        None | Some(ResponseFormat::Text) => None,
        Some(ResponseFormat::JsonSchema { schema, strict, .. }) => {
            let mut schema = schema.clone();
            if *strict {
                close_objects(&mut schema);
            }
            Some(json!({"format": {"type": "json_schema", "schema": schema}}))
        }
        Some(ResponseFormat::JsonObject) => {
            return Err(Error::invalid_input(
                "Anthropic has no schema-less JSON mode: use ResponseFormat::JsonSchema (structured outputs)",
            ))
        }
        Some(other) => {
            return Err(Error::invalid_input(format!(
                "Anthropic does not support the response format {other:?}"
            )))
        }
    };

    let mut max_tokens = request.max_tokens.unwrap_or(default_max_tokens);
    let thinking = match request.reasoning {
        None => None,
        Some(r) => {
            let budget = r
                .budget_tokens
                .or(r.effort.map(effort_budget))
                .unwrap_or(effort_budget(ReasoningEffort::Medium));
            if max_tokens <= budget {
                if request.max_tokens.is_some() {
                    return Err(Error::invalid_input(format!(
                        "max_tokens ({max_tokens}) must exceed the thinking budget ({budget})"
                    )));
                }
                // The default limit leaves room for the answer after the thinking.
                max_tokens = budget.saturating_add(default_max_tokens);
            }
            Some(json!({"type": "enabled", "budget_tokens": budget}))
        }
    };

    Ok(MessagesRequest {
        model,
        max_tokens,
        system,
        messages,
        tools,
        tool_choice,
        thinking,
        output_config,
        temperature: request.temperature,
        top_p: request.top_p,
        stop_sequences: &request.stop,
        service_tier: request.service_tier.as_deref(),
        stream,
    })
}

/// The last block of the last wire message that can carry a breakpoint.
fn last_cacheable(messages: &mut [WireMessage]) -> Option<Slot> {
    let m = messages.len().checked_sub(1)?;
    let b = messages[m]
        .content
        .iter_mut()
        .rposition(|b| b.cache_control_mut().is_some())?;
    Some(Slot::Block(m, b))
}

/// Text and image parts as blocks (empty text is dropped: Anthropic rejects it).
fn content_blocks(index: usize, parts: &[ContentPart]) -> Result<Vec<Block>> {
    let mut out = Vec::with_capacity(parts.len());
    for p in parts {
        match p {
            ContentPart::Text { text } if text.is_empty() => {}
            ContentPart::Text { text } => out.push(Block::Text {
                text: text.clone(),
                cache_control: None,
            }),
            ContentPart::Image { source, .. } => {
                let source = match source {
                    ImageSource::Base64 { media_type, data } => {
                        json!({"type": "base64", "media_type": media_type, "data": data})
                    }
                    ImageSource::Url { url } => json!({"type": "url", "url": url}),
                    other => {
                        return Err(Error::invalid_input(format!(
                            "message {index}: Anthropic does not support the image source {other:?}"
                        )))
                    }
                };
                out.push(Block::Image {
                    source,
                    cache_control: None,
                });
            }
            other => {
                return Err(Error::invalid_input(format!(
                    "message {index}: Anthropic does not support the content part {other:?}"
                )))
            }
        }
    }
    Ok(out)
}

/// Reasoning first (as Anthropic requires), then text, then tool calls.
fn assistant_blocks(index: usize, m: &Message) -> Result<Vec<Block>> {
    let mut out = Vec::new();
    for r in &m.reasoning {
        // OpenAI's reasoning items always carry an id (`rs_…`), Anthropic's blocks never do:
        // another provider's encrypted reasoning would be rejected (a 400 no fallback fixes).
        if r.id.is_some() {
            continue;
        }
        if let Some(data) = &r.encrypted {
            out.push(Block::RedactedThinking { data: data.clone() });
        } else if let Some(signature) = &r.signature {
            out.push(Block::Thinking {
                thinking: r.text.clone(),
                signature: signature.clone(),
            });
        }
        // Unsigned reasoning (another provider's summaries) cannot be verified by
        // Anthropic, which would reject it: it is left out.
    }
    if m.has_images() {
        return Err(Error::invalid_input(format!(
            "message {index} (assistant) has an image; Anthropic accepts images only from the user"
        )));
    }
    out.extend(content_blocks(index, &m.content)?);
    for call in &m.tool_calls {
        let input = if call.arguments.trim().is_empty() {
            json!({})
        } else {
            serde_json::from_str(&call.arguments).map_err(|e| {
                Error::invalid_input(format!(
                    "message {index}: the arguments of tool call `{}` ({}) are not JSON: {e}",
                    call.name, call.id
                ))
            })?
        };
        out.push(Block::ToolUse {
            id: call.id.clone(),
            name: call.name.clone(),
            input,
            cache_control: None,
        });
    }
    Ok(out)
}

/// Structured outputs require `"additionalProperties": false` on every object schema;
/// `schemars` leaves it out unless the type denies unknown fields. Sets it where missing;
/// schemas that set it keep theirs.
fn close_objects(schema: &mut Value) {
    crate::schema::close_objects(schema, false);
}

// ---------------------------------------------------------------- response

/// Anthropic's `stop_reason`, with unknown values kept verbatim. `refusal` is handled
/// before this (it becomes an error).
pub(crate) fn finish_reason(s: &str) -> FinishReason {
    match s {
        "end_turn" | "stop_sequence" => FinishReason::Stop,
        "max_tokens" | "model_context_window_exceeded" => FinishReason::Length,
        "tool_use" => FinishReason::ToolCalls,
        other => FinishReason::Other(other.to_owned()),
    }
}

/// Anthropic's usage in Catena's terms. Anthropic's `input_tokens` counts only the input
/// after the last cache breakpoint; Catena's `input_tokens` is the whole prompt, so it is
/// `input_tokens + cache_creation_input_tokens + cache_read_input_tokens`, with the cache
/// reads in `cached_input_tokens` and the writes in `cache_creation_input_tokens`.
pub(crate) fn usage(u: WireUsage) -> Usage {
    let created = u.cache_creation_input_tokens.unwrap_or(0);
    let read = u.cache_read_input_tokens.unwrap_or(0);
    let input = u
        .input_tokens
        .unwrap_or(0)
        .saturating_add(created)
        .saturating_add(read);
    let mut usage = Usage::new(input, u.output_tokens.unwrap_or(0));
    if let Some(n) = u.cache_read_input_tokens {
        usage = usage.with_cached_input_tokens(n);
    }
    if let Some(n) = u.cache_creation_input_tokens {
        usage = usage.with_cache_creation_input_tokens(n);
    }
    usage
}

/// The error for a refusal (`stop_reason: refusal`): the model declined, as OpenAI's
/// refusals do, so a caller never takes a partial refusal for an answer.
pub(crate) fn refusal_error(text: &str) -> Error {
    let text = text.trim();
    let message = if text.is_empty() {
        "the model refused to answer (stop_reason: refusal)".to_owned()
    } else {
        format!("the model refused to answer (stop_reason: refusal): {text}")
    };
    provider_error(PROVIDER, ProviderErrorKind::ContentFiltered, message)
}

fn malformed(message: impl Into<String>) -> Error {
    provider_error(PROVIDER, ProviderErrorKind::MalformedResponse, message)
}

/// A `message` object as a [`ChatResponse`].
pub(crate) fn parse_message(message: MessageResponse) -> Result<ChatResponse> {
    let mut text = String::new();
    let mut calls = Vec::new();
    let mut reasoning = Vec::new();
    for block in message.content {
        match block {
            ResponseBlock::Text { text: t } => text.push_str(&t),
            ResponseBlock::ToolUse { id, name, input } => {
                if name.is_empty() {
                    return Err(malformed(format!(
                        "tool_use block {} has no name",
                        calls.len()
                    )));
                }
                let id = if id.is_empty() {
                    format!("call_{}", calls.len())
                } else {
                    id
                };
                let arguments = if input.is_null() {
                    "{}".to_owned()
                } else {
                    input.to_string()
                };
                calls.push(ToolCall::new(id, name, arguments));
            }
            ResponseBlock::Thinking {
                thinking,
                signature,
            } => {
                let mut block = ReasoningBlock::default().with_text(thinking);
                block.signature = signature;
                reasoning.push(block);
            }
            ResponseBlock::RedactedThinking { data } => {
                reasoning.push(ReasoningBlock::encrypted(data));
            }
            ResponseBlock::Unknown => {}
        }
    }
    if message.stop_reason.as_deref() == Some("refusal") {
        return Err(refusal_error(&text));
    }
    let mut response = ChatResponse::new(
        Message::assistant_with_tool_calls(text, calls).with_reasoning(reasoning),
    );
    if let Some(r) = message.stop_reason.as_deref() {
        response = response.with_finish_reason(finish_reason(r));
    }
    if let Some(u) = message.usage {
        response = response.with_usage(usage(u));
    }
    if let Some(m) = message.model.filter(|m| !m.is_empty()) {
        response = response.with_model(m);
    }
    if let Some(id) = message.id.filter(|id| !id.is_empty()) {
        response = response.with_id(id);
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;
    use catena_core::{PromptCache, ReasoningOptions, ToolDefinition};

    #[test]
    fn efforts_map_to_budgets_and_leave_room_for_the_answer() {
        let req = ChatRequest::new(vec![Message::user("hi")])
            .with_reasoning(ReasoningOptions::effort(ReasoningEffort::High));
        let body = serde_json::to_value(build_request(&req, "m", 4096, false).unwrap()).unwrap();
        assert_eq!(
            body["thinking"],
            json!({"type": "enabled", "budget_tokens": 16384})
        );
        assert_eq!(body["max_tokens"], 16384 + 4096);
        let req = req.with_max_tokens(1000);
        assert!(matches!(
            build_request(&req, "m", 4096, false),
            Err(Error::InvalidInput(_))
        ));
        assert_eq!(effort_budget(ReasoningEffort::Minimal), 1024);
        assert_eq!(effort_budget(ReasoningEffort::Low), 1024);
        assert_eq!(effort_budget(ReasoningEffort::Medium), 4096);
    }

    #[test]
    fn never_more_than_four_breakpoints_and_the_latest_win() {
        let mut messages = vec![Message::system("sys").with_cache_breakpoint()];
        for i in 0..6 {
            messages.push(Message::user(format!("u{i}")).with_cache_breakpoint());
            messages.push(Message::assistant(format!("a{i}")));
        }
        messages.push(Message::user("last"));
        let req = ChatRequest::new(messages)
            .with_tools([ToolDefinition::new("t", "d", json!({"type": "object"}))])
            .with_prompt_cache(PromptCache::automatic());
        let body = serde_json::to_value(build_request(&req, "m", 10, false).unwrap()).unwrap();
        let text = body.to_string();
        assert_eq!(text.matches("cache_control").count(), 4, "{text}");
        assert!(body["tools"][0].get("cache_control").is_none());
        assert!(body["system"][0].get("cache_control").is_none());
        let msgs = body["messages"].as_array().unwrap();
        assert_eq!(
            msgs.last().unwrap()["content"][0]["cache_control"]["type"],
            "ephemeral"
        );
        assert_eq!(msgs[10]["content"][0]["cache_control"]["type"], "ephemeral");
    }

    #[test]
    fn stop_reasons_map_or_are_kept() {
        assert_eq!(finish_reason("end_turn"), FinishReason::Stop);
        assert_eq!(finish_reason("stop_sequence"), FinishReason::Stop);
        assert_eq!(finish_reason("max_tokens"), FinishReason::Length);
        assert_eq!(finish_reason("tool_use"), FinishReason::ToolCalls);
        assert_eq!(
            finish_reason("pause_turn"),
            FinishReason::Other("pause_turn".into())
        );
    }

    #[test]
    fn unknown_blocks_are_skipped_and_refusals_are_errors() {
        let m: MessageResponse = serde_json::from_value(json!({
            "id": "msg_1", "type": "message", "role": "assistant", "model": "claude",
            "content": [{"type": "server_tool_use", "id": "x", "name": "web_search", "input": {}},
                        {"type": "text", "text": "hi"}],
            "stop_reason": "end_turn", "usage": {"input_tokens": 1, "output_tokens": 2}
        }))
        .unwrap();
        let r = parse_message(m).unwrap();
        assert_eq!(r.text(), "hi");
        assert_eq!(r.id.as_deref(), Some("msg_1"));
        let m: MessageResponse = serde_json::from_value(json!({
            "content": [{"type": "text", "text": "I can't help with that."}],
            "stop_reason": "refusal"
        }))
        .unwrap();
        let err = parse_message(m).unwrap_err();
        assert_eq!(
            err.provider_kind(),
            Some(&ProviderErrorKind::ContentFiltered)
        );
    }

    #[test]
    fn env_sets_the_model() {
        let get = |name: &str| match name {
            "ANTHROPIC_API_KEY" => Some("sk-ant-from-env".to_owned()),
            "ANTHROPIC_MODEL" => Some("claude-opus-4-1".to_owned()),
            _ => None,
        };
        let m = AnthropicChatModel::builder()
            .apply_env(&get)
            .build()
            .unwrap();
        assert_eq!(m.model(), "claude-opus-4-1");
        let m = AnthropicChatModel::builder()
            .apply_env(&|_: &str| None)
            .api_key("k")
            .build()
            .unwrap();
        assert_eq!(m.model(), DEFAULT_CHAT_MODEL);
        assert!(AnthropicChatModel::builder()
            .api_key("k")
            .max_tokens(0)
            .build()
            .is_err());
    }
}
