//! [`OpenAiResponsesModel`]: the Responses API (`POST {base}/responses`).

use std::fmt;

use async_trait::async_trait;
use catena_core::backend::response_to_chunks;
use catena_core::{
    ChatModel, ChatRequest, ChatResponse, ChatStream, ContentPart, Error, FinishReason, Message,
    ModelInfo, ProviderErrorKind, ReasoningBlock, ReasoningEffort, ResponseFormat, Result, Role,
    ToolCall, ToolChoice, Usage,
};
use futures::StreamExt;
use serde_json::{json, Value};

use super::chat::{
    arguments_text, close_objects, image_url, prompt_cache_key, refusal_error, DEFAULT_CHAT_MODEL,
};
use super::client::{process_env, ConnectionConfig, OpenAiClient, MODEL_ENV, PROVIDER};
use super::error::stream_error_kind;
use super::responses_stream::responses_stream;
use super::responses_wire::{
    ContentPart as WirePart, FunctionTool, InputItem, MessageContent, OutputContent, OutputItem,
    ReasoningConfig, ResponsesRequest, ResponsesUsage, SummaryText, TextOptions, WireResponse,
};
use crate::http::{provider_error, rate_limit_info, read_limited};

const PATH: &str = "/responses";

/// Separates the parts of a reasoning summary in [`ReasoningBlock::text`].
pub(crate) const SUMMARY_SEPARATOR: &str = "\n\n";

/// An OpenAI model behind the Responses API (`POST {base}/responses`), OpenAI's newer
/// interface, which carries reasoning items between turns.
///
/// Built with [`OpenAiResponsesModel::builder`] or [`OpenAiResponsesModel::from_env`] (the
/// same settings and environment variables as [`OpenAiChatModel`](super::OpenAiChatModel)).
/// Cloning is cheap and shares the connection pool.
///
/// Mapping:
/// - Messages become `input` items: system messages are `developer` messages (or `system`,
///   see [`developer_role`](OpenAiResponsesModelBuilder::developer_role)); user text and
///   images are `input_text` / `input_image` parts; an assistant turn becomes its
///   [`reasoning`](Message::reasoning) items, an output message with its text, then one
///   `function_call` item per tool call; tool results are `function_call_output` items.
/// - Reasoning: [`ChatRequest::reasoning`] sends `reasoning: {effort, summary: "auto"}` (a
///   token budget without an effort is Anthropic's notion and is not sent).
///   Unless [`store`](OpenAiResponsesModelBuilder::store) is set, responses are not stored
///   by OpenAI, and reasoning models are asked for `reasoning.encrypted_content`, which
///   comes back in [`ReasoningBlock::encrypted`] (with the item id and the summary as
///   text) so the next turn can send it back.
/// - [`ChatRequest::max_tokens`] is `max_output_tokens`; the prompt cache key,
///   `parallel_tool_calls`, `service_tier` and `previous_response_id` are sent as such.
///   The Responses API has no `seed` (ignored) and no stop sequences (rejected with
///   [`Error::InvalidInput`]).
/// - Tool calls keep OpenAI's `call_id` as [`ToolCall::id`]. A `refusal` is an error of
///   kind [`ContentFiltered`](ProviderErrorKind::ContentFiltered); a response with status
///   `failed` is a typed error; `incomplete` for `max_output_tokens` is
///   [`FinishReason::Length`].
/// - [`ChatResponse::id`] is the response id (`resp_...`), usable as
///   [`ChatRequest::previous_response_id`] when responses are stored;
///   [`ChatResponse::rate_limit`] comes from the `x-ratelimit-*` headers.
///
/// ```no_run
/// use catena_core::{ChatModel, ChatRequest, Message, ReasoningEffort, ReasoningOptions};
/// use catena_llms::openai::OpenAiResponsesModel;
///
/// # async fn run() -> catena_core::Result<()> {
/// let model = OpenAiResponsesModel::builder()
///     .api_key("sk-...")
///     .model("o4-mini")
///     .build()?;
/// let request = ChatRequest::new(vec![Message::user("How many r's in strawberry?")])
///     .with_reasoning(ReasoningOptions::effort(ReasoningEffort::Low));
/// let answer = model.generate(request).await?;
/// println!("{} (reasoning blocks: {})", answer.text(), answer.message.reasoning.len());
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct OpenAiResponsesModel {
    client: OpenAiClient,
    model: String,
    developer_role: bool,
    store: bool,
    strict_tools: bool,
}

impl fmt::Debug for OpenAiResponsesModel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenAiResponsesModel")
            .field("model", &self.model)
            .field("developer_role", &self.developer_role)
            .field("store", &self.store)
            .field("strict_tools", &self.strict_tools)
            .field("client", &self.client)
            .finish()
    }
}

/// Builds an [`OpenAiResponsesModel`]; see [`OpenAiResponsesModel::builder`].
#[derive(Clone)]
#[must_use]
pub struct OpenAiResponsesModelBuilder {
    connection: ConnectionConfig,
    model: Option<String>,
    developer_role: bool,
    store: bool,
    strict_tools: bool,
}

impl Default for OpenAiResponsesModelBuilder {
    fn default() -> Self {
        OpenAiResponsesModelBuilder {
            connection: ConnectionConfig::default(),
            model: None,
            developer_role: true,
            store: false,
            strict_tools: false,
        }
    }
}

impl fmt::Debug for OpenAiResponsesModelBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenAiResponsesModelBuilder")
            .field("model", &self.model)
            .field("developer_role", &self.developer_role)
            .field("store", &self.store)
            .field("strict_tools", &self.strict_tools)
            .field("connection", &self.connection)
            .finish()
    }
}

impl OpenAiResponsesModelBuilder {
    /// The model id. Default [`DEFAULT_CHAT_MODEL`] (`gpt-4o-mini`).
    /// [`ChatRequest::model`] overrides it per call.
    pub fn model(mut self, model: impl Into<String>) -> Self {
        self.model = Some(model.into());
        self
    }

    super::client::connection_setters!();

    /// Sends system messages with role `developer`, as OpenAI recommends for the Responses
    /// API. Default true; false sends role `system`, for compatible servers that only know
    /// that one.
    pub fn developer_role(mut self, yes: bool) -> Self {
        self.developer_role = yes;
        self
    }

    /// Lets OpenAI store responses (`store: true`), so a later request can continue with
    /// [`ChatRequest::previous_response_id`]. Default false: nothing is stored, and
    /// reasoning travels with the conversation as encrypted content (`include:
    /// ["reasoning.encrypted_content"]` is sent with every reasoning request).
    pub fn store(mut self, yes: bool) -> Self {
        self.store = yes;
        self
    }

    /// Marks every function tool `strict` (OpenAI then enforces the parameter schema, whose
    /// objects get `"additionalProperties": false` and every property required). Default
    /// false: tools are sent with `strict: false` (the Responses API's own default is
    /// strict, which rejects most hand-written schemas).
    pub fn strict_tools(mut self, yes: bool) -> Self {
        self.strict_tools = yes;
        self
    }

    /// Builds the model.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] for a missing key (with OpenAI's own base URL), an invalid
    /// base URL, an empty model id, or values that cannot be HTTP headers.
    pub fn build(self) -> Result<OpenAiResponsesModel> {
        let model = self.model.unwrap_or_else(|| DEFAULT_CHAT_MODEL.to_owned());
        if model.trim().is_empty() {
            return Err(Error::invalid_config("the OpenAI model id is empty"));
        }
        Ok(OpenAiResponsesModel {
            client: OpenAiClient::new(self.connection)?,
            model,
            developer_role: self.developer_role,
            store: self.store,
            strict_tools: self.strict_tools,
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

impl OpenAiResponsesModel {
    /// A builder with every setting at its default.
    pub fn builder() -> OpenAiResponsesModelBuilder {
        OpenAiResponsesModelBuilder::default()
    }

    /// A model configured from the environment, as
    /// [`OpenAiChatModel::from_env`](super::OpenAiChatModel::from_env):
    /// [`API_KEY_ENV`](super::API_KEY_ENV) (required for `api.openai.com`),
    /// [`BASE_URL_ENV`](super::BASE_URL_ENV), [`ORG_ID_ENV`](super::ORG_ID_ENV),
    /// [`PROJECT_ID_ENV`](super::PROJECT_ID_ENV) and [`MODEL_ENV`](super::MODEL_ENV); unset
    /// or empty variables keep the defaults.
    ///
    /// # Errors
    /// As for [`OpenAiResponsesModelBuilder::build`].
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

    fn body<'a>(&'a self, request: &'a ChatRequest, stream: bool) -> Result<ResponsesRequest<'a>> {
        request.validate()?;
        let model = request.model.as_deref().unwrap_or(&self.model);
        build_request(request, model, stream, self.options())
    }

    fn options(&self) -> Options {
        Options {
            developer_role: self.developer_role,
            store: self.store,
            strict_tools: self.strict_tools,
        }
    }
}

#[async_trait]
impl ChatModel for OpenAiResponsesModel {
    async fn generate(&self, request: ChatRequest) -> Result<ChatResponse> {
        let body = self.body(&request, false)?;
        tracing::debug!(provider = PROVIDER, model = body.model, "response");
        let (response, rate_limit): (WireResponse, _) =
            self.client.post_json_with_rate_limit(PATH, &body).await?;
        let mut response = parse_response(response)?;
        response.rate_limit = rate_limit;
        Ok(response)
    }

    async fn stream(&self, request: ChatRequest) -> Result<ChatStream> {
        let body = self.body(&request, true)?;
        tracing::debug!(provider = PROVIDER, model = body.model, "response stream");
        let response = self.client.post_stream(PATH, &body).await?;
        let rate_limit = rate_limit_info(response.headers());
        let is_json = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/json"));
        if is_json {
            // A server that ignored `stream: true` and answered in one piece.
            let transport = self.client.transport();
            let bytes = read_limited(response, transport.options.max_response_bytes, PROVIDER)
                .await
                .map_err(|e| self.client.redact(e))?;
            let parsed: WireResponse = serde_json::from_slice(&bytes)
                .map_err(|e| malformed(format!("response is not the expected JSON: {e}")))?;
            let mut parsed = parse_response(parsed)?;
            parsed.rate_limit = rate_limit;
            let chunks = response_to_chunks(&parsed);
            return Ok(Box::pin(futures::stream::iter(chunks.into_iter().map(Ok))));
        }
        let head =
            futures::stream::iter(rate_limit.map(|r| Ok(catena_core::ChatChunk::RateLimit(r))));
        Ok(Box::pin(
            head.chain(responses_stream(response, &self.client)),
        ))
    }

    fn model_info(&self) -> ModelInfo {
        ModelInfo::new(PROVIDER, self.model.clone())
            .with_tools(true)
            .with_json_schema(true)
            .with_images(true)
            .with_streaming(true)
    }
}

// ---------------------------------------------------------------- request

/// The builder settings that shape a request.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Options {
    pub(crate) developer_role: bool,
    pub(crate) store: bool,
    pub(crate) strict_tools: bool,
}

/// The wire request for `request`. Fails with [`Error::InvalidInput`] for what the
/// Responses API cannot take (stop sequences, images outside user messages, variants
/// added to core later).
pub(crate) fn build_request<'a>(
    request: &'a ChatRequest,
    model: &'a str,
    stream: bool,
    options: Options,
) -> Result<ResponsesRequest<'a>> {
    if !request.stop.is_empty() {
        return Err(Error::invalid_input(
            "the OpenAI Responses API has no stop sequences; use OpenAiChatModel for `stop`",
        ));
    }
    let mut input = Vec::with_capacity(request.messages.len());
    for (i, m) in request.messages.iter().enumerate() {
        push_items(i, m, options, &mut input)?;
    }
    let tools = request
        .tools
        .iter()
        .map(|t| {
            let mut parameters = t.parameters.clone();
            if options.strict_tools {
                close_objects(&mut parameters);
            }
            FunctionTool {
                kind: "function",
                name: &t.name,
                description: &t.description,
                parameters,
                strict: options.strict_tools,
            }
        })
        .collect();
    let tool_choice = match &request.tool_choice {
        None => None,
        Some(ToolChoice::Auto) => Some(json!("auto")),
        Some(ToolChoice::None) => Some(json!("none")),
        Some(ToolChoice::Required) => Some(json!("required")),
        Some(ToolChoice::Tool(name)) => Some(json!({"type": "function", "name": name})),
        Some(other) => {
            return Err(Error::invalid_input(format!(
                "OpenAI does not support the tool choice {other:?}"
            )))
        }
    };
    let text = match &request.response_format {
        None | Some(ResponseFormat::Text) => None,
        Some(ResponseFormat::JsonObject) => Some(TextOptions {
            format: json!({"type": "json_object"}),
        }),
        Some(ResponseFormat::JsonSchema {
            name,
            schema,
            strict,
        }) => {
            let mut schema = schema.clone();
            if *strict {
                close_objects(&mut schema);
            }
            Some(TextOptions {
                format: json!({"type": "json_schema", "name": name, "schema": schema, "strict": strict}),
            })
        }
        Some(other) => {
            return Err(Error::invalid_input(format!(
                "OpenAI does not support the response format {other:?}"
            )))
        }
    };
    let effort = request.reasoning.and_then(|r| r.effort);
    let reasoning = effort.map(|e| ReasoningConfig {
        effort: Some(ReasoningEffort::as_str(e)),
        summary: "auto",
    });
    // Without storage, reasoning survives between turns only as encrypted content.
    let include = if reasoning.is_some() && !options.store {
        vec!["reasoning.encrypted_content"]
    } else {
        Vec::new()
    };
    Ok(ResponsesRequest {
        model,
        input,
        tools,
        tool_choice,
        text,
        reasoning,
        include,
        store: options.store,
        parallel_tool_calls: request.parallel_tool_calls,
        service_tier: request.service_tier.as_deref(),
        previous_response_id: request.previous_response_id.as_deref(),
        prompt_cache_key: prompt_cache_key(request),
        max_output_tokens: request.max_tokens,
        temperature: request.temperature,
        top_p: request.top_p,
        stream,
    })
}

fn images_not_allowed(index: usize, role: Role) -> Error {
    Error::invalid_input(format!(
        "message {index} ({role}) has an image; OpenAI accepts images only in user messages"
    ))
}

/// Appends the input items of message `index`.
fn push_items<'a>(
    index: usize,
    m: &'a Message,
    options: Options,
    out: &mut Vec<InputItem<'a>>,
) -> Result<()> {
    if m.role != Role::User && m.has_images() {
        return Err(images_not_allowed(index, m.role));
    }
    match m.role {
        Role::System => out.push(InputItem::Message {
            role: if options.developer_role {
                "developer"
            } else {
                "system"
            },
            content: MessageContent::Text(m.text()),
        }),
        Role::User => out.push(InputItem::Message {
            role: "user",
            content: user_content(&m.content)?,
        }),
        Role::Assistant => {
            // Only OpenAI's own reasoning items (they carry an `rs_` id) can go back: with
            // storage, by id; without, only with their encrypted content (OpenAI cannot look
            // the id up). Other providers' blocks (no id; Anthropic's redacted thinking has
            // encrypted data too) would be rejected.
            for block in m
                .reasoning
                .iter()
                // Anthropic's blocks have no id (and a signature): never OpenAI's.
                .filter(|b| b.id.is_some() && b.signature.is_none())
                .filter(|b| b.encrypted.is_some() || options.store)
            {
                // The summary parts were joined into one text; they go back as one part
                // (the summary is informational, the encrypted content is what counts).
                let summary = if block.text.is_empty() {
                    Vec::new()
                } else {
                    vec![SummaryText {
                        kind: "summary_text",
                        text: &block.text,
                    }]
                };
                out.push(InputItem::Reasoning {
                    id: block.id.as_deref(),
                    summary,
                    encrypted_content: block.encrypted.as_deref(),
                });
            }
            let text = m.text();
            if !text.is_empty() || m.tool_calls.is_empty() {
                out.push(InputItem::Message {
                    role: "assistant",
                    content: MessageContent::Parts(vec![WirePart::OutputText {
                        text,
                        annotations: Vec::new(),
                    }]),
                });
            }
            out.extend(m.tool_calls.iter().map(|c| InputItem::FunctionCall {
                call_id: &c.id,
                name: &c.name,
                arguments: &c.arguments,
            }));
        }
        Role::Tool => {
            let call_id = m.tool_call_id.as_deref().ok_or_else(|| {
                Error::invalid_input(format!(
                    "message {index} is a tool result without a call id"
                ))
            })?;
            out.push(InputItem::FunctionCallOutput {
                call_id,
                output: m.text(),
            });
        }
    }
    Ok(())
}

/// A string when the content is one text part, else `input_text` / `input_image` parts.
fn user_content(parts: &[ContentPart]) -> Result<MessageContent<'_>> {
    if parts.len() <= 1 && parts.iter().all(|p| p.as_text().is_some()) {
        return Ok(MessageContent::Text(
            parts.iter().filter_map(ContentPart::as_text).collect(),
        ));
    }
    parts
        .iter()
        .map(|p| match p {
            ContentPart::Text { text } => Ok(WirePart::InputText { text }),
            ContentPart::Image { source, detail } => {
                let (url, detail) = image_url(source, *detail)?;
                Ok(WirePart::InputImage {
                    image_url: url,
                    detail: detail.unwrap_or("auto"),
                })
            }
            other => Err(Error::invalid_input(format!(
                "OpenAI does not support the content part {other:?}"
            ))),
        })
        .collect::<Result<Vec<_>>>()
        .map(MessageContent::Parts)
}

// ---------------------------------------------------------------- response

fn malformed(message: impl Into<String>) -> Error {
    provider_error(PROVIDER, ProviderErrorKind::MalformedResponse, message)
}

/// Maps `usage`.
pub(crate) fn usage(u: ResponsesUsage) -> Usage {
    let mut usage = Usage::new(u.input_tokens.unwrap_or(0), u.output_tokens.unwrap_or(0));
    if let Some(total) = u.total_tokens {
        usage = usage.with_total_tokens(total);
    }
    if let Some(n) = u.input_tokens_details.and_then(|d| d.cached_tokens) {
        usage = usage.with_cached_input_tokens(n);
    }
    if let Some(n) = u.output_tokens_details.and_then(|d| d.reasoning_tokens) {
        usage = usage.with_reasoning_tokens(n);
    }
    usage
}

/// The error for a response whose status is `failed` (or an `error` stream event):
/// its `error.code` decides the kind.
pub(crate) fn response_error(error: &Value) -> Error {
    let code = error.get("code").and_then(Value::as_str).unwrap_or("");
    let kind = match code {
        // `invalid_prompt`, `invalid_image`, `invalid_image_format`, ...
        c if c.starts_with("invalid_") && c != "invalid_api_key" => {
            ProviderErrorKind::InvalidRequest
        }
        "image_content_policy_violation" => ProviderErrorKind::ContentFiltered,
        _ => stream_error_kind(error),
    };
    let message = error
        .get("message")
        .and_then(Value::as_str)
        .filter(|m| !m.is_empty())
        .map_or_else(|| error.to_string(), str::to_owned);
    let message = if code.is_empty() {
        format!("the response failed: {message}")
    } else {
        format!("the response failed: {message} (code: {code})")
    };
    provider_error(PROVIDER, kind, message)
}

/// The finish reason of a finished response: `completed` is `Stop` (or `ToolCalls` when
/// the model called tools), `incomplete` says why; other statuses are kept verbatim.
pub(crate) fn finish_reason(
    status: Option<&str>,
    incomplete_reason: Option<&str>,
    has_calls: bool,
) -> Option<FinishReason> {
    Some(match status? {
        "completed" if has_calls => FinishReason::ToolCalls,
        "completed" => FinishReason::Stop,
        "incomplete" => match incomplete_reason {
            Some("max_output_tokens") => FinishReason::Length,
            Some("content_filter") => FinishReason::ContentFilter,
            Some(other) => FinishReason::Other(other.to_owned()),
            None => FinishReason::Other("incomplete".to_owned()),
        },
        other => FinishReason::Other(other.to_owned()),
    })
}

/// A reasoning item as a [`ReasoningBlock`]: the summary parts joined by a blank line.
pub(crate) fn reasoning_block(
    id: Option<String>,
    summary: &[super::responses_wire::SummaryPart],
    encrypted: Option<String>,
) -> ReasoningBlock {
    let text = summary
        .iter()
        .filter_map(|p| p.text.as_deref())
        .filter(|t| !t.is_empty())
        .collect::<Vec<_>>()
        .join(SUMMARY_SEPARATOR);
    let mut block = ReasoningBlock::default().with_text(text);
    if let Some(id) = id.filter(|id| !id.is_empty()) {
        block = block.with_id(id);
    }
    if let Some(data) = encrypted.filter(|d| !d.is_empty()) {
        block = block.with_encrypted(data);
    }
    block
}

/// A `response` object as a [`ChatResponse`].
///
/// Status `failed` (or an `error` object) is a typed error; a `refusal` part is an error of
/// kind [`ContentFiltered`](ProviderErrorKind::ContentFiltered) carrying the refusal text.
pub(crate) fn parse_response(response: WireResponse) -> Result<ChatResponse> {
    if let Some(error) = response.error.as_ref().filter(|e| !e.is_null()) {
        return Err(response_error(error));
    }
    if response.status.as_deref() == Some("failed") {
        return Err(response_error(&json!({"message": "no error details"})));
    }
    let mut text = String::new();
    let mut refusal = String::new();
    let mut calls = Vec::new();
    let mut reasoning = Vec::new();
    for item in response.output.unwrap_or_default() {
        match item {
            OutputItem::Message { content, .. } => {
                for part in content.unwrap_or_default() {
                    match part {
                        OutputContent::OutputText { text: Some(t) } => text.push_str(&t),
                        OutputContent::Refusal { refusal: Some(r) } => refusal.push_str(&r),
                        _ => {}
                    }
                }
            }
            OutputItem::FunctionCall {
                id,
                call_id,
                name,
                arguments,
            } => {
                let i = calls.len();
                let name = name
                    .filter(|n| !n.is_empty())
                    .ok_or_else(|| malformed(format!("function call {i} has no name")))?;
                let call_id = call_id
                    .or(id)
                    .filter(|id| !id.is_empty())
                    .unwrap_or_else(|| format!("call_{i}"));
                calls.push(ToolCall::new(call_id, name, arguments_text(arguments)));
            }
            OutputItem::Reasoning {
                id,
                summary,
                encrypted_content,
            } => reasoning.push(reasoning_block(
                id,
                &summary.unwrap_or_default(),
                encrypted_content,
            )),
            OutputItem::Other => {}
        }
    }
    if !refusal.is_empty() {
        return Err(refusal_error(&refusal));
    }
    let reason = finish_reason(
        response.status.as_deref(),
        response
            .incomplete_details
            .as_ref()
            .and_then(|d| d.reason.as_deref()),
        !calls.is_empty(),
    );
    let message = Message::assistant_with_tool_calls(text, calls).with_reasoning(reasoning);
    let mut out = ChatResponse::new(message);
    if let Some(r) = reason {
        out = out.with_finish_reason(r);
    }
    if let Some(u) = response.usage {
        out = out.with_usage(usage(u));
    }
    if let Some(m) = response.model.filter(|m| !m.is_empty()) {
        out = out.with_model(m);
    }
    if let Some(id) = response.id.filter(|id| !id.is_empty()) {
        out = out.with_id(id);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(v: Value) -> Result<ChatResponse> {
        parse_response(serde_json::from_value(v).unwrap())
    }

    #[test]
    fn statuses_map_to_finish_reasons() {
        assert_eq!(
            finish_reason(Some("completed"), None, true),
            Some(FinishReason::ToolCalls)
        );
        assert_eq!(
            finish_reason(Some("incomplete"), Some("content_filter"), false),
            Some(FinishReason::ContentFilter)
        );
        assert_eq!(
            finish_reason(Some("cancelled"), None, false),
            Some(FinishReason::Other("cancelled".into()))
        );
        assert_eq!(finish_reason(None, None, false), None);
    }

    #[test]
    fn sparse_and_unknown_items_parse() {
        let r = parse(json!({"output": [
            {"type": "web_search_call", "id": "ws_1", "status": "completed"},
            {"type": "message", "content": [{"type": "output_text", "text": "hi"}, {"type": "output_audio"}]},
            {"type": "function_call", "name": "f", "arguments": {"a": 1}}
        ]}))
        .unwrap();
        assert_eq!(r.text(), "hi");
        assert_eq!(
            r.tool_calls()[0],
            ToolCall::new("call_0", "f", r#"{"a":1}"#)
        );
        assert_eq!((r.finish_reason, r.usage, r.id), (None, None, None));
        assert!(parse(json!({"output": [{"type": "function_call", "call_id": "c"}]})).is_err());
    }

    #[test]
    fn failures_are_typed() {
        let e = parse(json!({"status": "failed", "error": {"code": "rate_limit_exceeded", "message": "slow down"}}))
            .unwrap_err();
        assert!(e.is_rate_limited(), "{e}");
        let e = parse(
            json!({"status": "failed", "error": {"code": "invalid_prompt", "message": "no"}}),
        )
        .unwrap_err();
        assert_eq!(e.provider_kind(), Some(&ProviderErrorKind::InvalidRequest));
        let e = parse(json!({"status": "failed", "error": null})).unwrap_err();
        assert_eq!(e.provider_kind(), Some(&ProviderErrorKind::Server));
    }

    #[test]
    fn foreign_reasoning_blocks_are_not_sent() {
        let req = ChatRequest::new(vec![
            Message::user("q"),
            Message::assistant("a").with_reasoning(vec![
                ReasoningBlock::thinking("anthropic thoughts", "sig"),
                // Anthropic's redacted thinking: encrypted, but no id: not OpenAI's.
                ReasoningBlock::encrypted("anthropic-redacted-data"),
                ReasoningBlock::encrypted("enc")
                    .with_id("rs_1")
                    .with_text("one\n\ntwo"),
            ]),
            Message::user("q2"),
        ]);
        let options = Options {
            developer_role: true,
            store: false,
            strict_tools: false,
        };
        let body = serde_json::to_value(build_request(&req, "m", false, options).unwrap()).unwrap();
        assert_eq!(
            body["input"][1],
            json!({"type": "reasoning", "id": "rs_1", "encrypted_content": "enc",
                   "summary": [{"type": "summary_text", "text": "one\n\ntwo"}]})
        );
        assert_eq!(body["input"][2]["role"], "assistant");
        assert!(build_request(&req.clone().with_stop(["x"]), "m", false, options).is_err());
    }
}
