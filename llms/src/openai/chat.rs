//! [`OpenAiChatModel`]: Chat Completions (`POST {base}/chat/completions`).

use std::fmt;

use async_trait::async_trait;
use catena_core::backend::response_to_chunks;
use catena_core::{
    ChatChunk, ChatModel, ChatRequest, ChatResponse, ChatStream, ContentPart, Error, FinishReason,
    ImageDetail, ImageSource, Message, ModelInfo, ProviderErrorKind, ReasoningEffort,
    ResponseFormat, Result, Role, ToolCall, ToolChoice, Usage,
};
use futures::StreamExt;
use serde_json::{json, Value};

use super::client::{process_env, ConnectionConfig, OpenAiClient, MODEL_ENV, PROVIDER};
use super::stream::chat_stream;
use super::wire::{
    ChatCompletion, ChatCompletionRequest, ImageUrl, RequestContent, RequestFunction,
    RequestFunctionCall, RequestMessage, RequestPart, RequestTool, RequestToolCall,
    ResponseToolCall, StreamOptions, WireUsage,
};
use crate::http::{provider_error, rate_limit_info, read_limited};

/// The chat model used when none is set: `gpt-4o-mini`.
pub const DEFAULT_CHAT_MODEL: &str = "gpt-4o-mini";

const PATH: &str = "/chat/completions";

/// An OpenAI chat model (or one served by any OpenAI-compatible server), speaking the Chat
/// Completions API.
///
/// Built with [`OpenAiChatModel::builder`] or [`OpenAiChatModel::from_env`]. Cloning is
/// cheap and shares the connection pool.
///
/// ```no_run
/// use catena_core::{ChatModel, ChatRequest, Message};
/// use catena_llms::openai::OpenAiChatModel;
///
/// # async fn run() -> catena_core::Result<()> {
/// let model = OpenAiChatModel::builder()
///     .api_key("sk-...")
///     .model("gpt-4o")
///     .build()?;
/// let answer = model.generate(ChatRequest::new(vec![Message::user("Hi!")])).await?;
/// println!("{}", answer.text());
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct OpenAiChatModel {
    client: OpenAiClient,
    model: String,
    legacy_max_tokens: bool,
}

impl fmt::Debug for OpenAiChatModel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenAiChatModel")
            .field("model", &self.model)
            .field("client", &self.client)
            .finish()
    }
}

/// Builds an [`OpenAiChatModel`]; see [`OpenAiChatModel::builder`].
#[derive(Clone, Default)]
#[must_use]
pub struct OpenAiChatModelBuilder {
    connection: ConnectionConfig,
    model: Option<String>,
    legacy_max_tokens: bool,
}

impl fmt::Debug for OpenAiChatModelBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenAiChatModelBuilder")
            .field("model", &self.model)
            .field("connection", &self.connection)
            .finish()
    }
}

impl OpenAiChatModelBuilder {
    /// The model id. Default [`DEFAULT_CHAT_MODEL`] (`gpt-4o-mini`).
    /// [`ChatRequest::model`] overrides it per call.
    pub fn model(mut self, model: impl Into<String>) -> Self {
        self.model = Some(model.into());
        self
    }

    super::client::connection_setters!();

    /// Builds the model.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] for a missing key (with OpenAI's own base URL), an invalid
    /// base URL, an empty model id, or values that cannot be HTTP headers.
    pub fn build(self) -> Result<OpenAiChatModel> {
        let model = self.model.unwrap_or_else(|| DEFAULT_CHAT_MODEL.to_owned());
        if model.trim().is_empty() {
            return Err(Error::invalid_config("the OpenAI model id is empty"));
        }
        Ok(OpenAiChatModel {
            client: OpenAiClient::new(self.connection)?,
            model,
            legacy_max_tokens: self.legacy_max_tokens,
        })
    }

    /// Sends the answer-length limit as the legacy `max_tokens` instead of
    /// `max_completion_tokens`, for OpenAI-compatible servers that only read the old field
    /// (older vLLM and llama.cpp servers). Default false.
    pub fn legacy_max_tokens(mut self, yes: bool) -> Self {
        self.legacy_max_tokens = yes;
        self
    }

    fn apply_env(mut self, get: &dyn Fn(&str) -> Option<String>) -> Self {
        self.connection.apply_env(get);
        if let Some(m) = get(MODEL_ENV).filter(|m| !m.trim().is_empty()) {
            self.model = Some(m.trim().to_owned());
        }
        self
    }
}

impl OpenAiChatModel {
    /// A builder with every setting at its default.
    pub fn builder() -> OpenAiChatModelBuilder {
        OpenAiChatModelBuilder::default()
    }

    /// A model configured from the environment: [`API_KEY_ENV`](super::API_KEY_ENV)
    /// (required for `api.openai.com`), [`BASE_URL_ENV`](super::BASE_URL_ENV),
    /// [`ORG_ID_ENV`](super::ORG_ID_ENV), [`PROJECT_ID_ENV`](super::PROJECT_ID_ENV) and
    /// [`MODEL_ENV`](super::MODEL_ENV); unset or empty variables keep the defaults.
    ///
    /// # Errors
    /// As for [`OpenAiChatModelBuilder::build`].
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
impl ChatModel for OpenAiChatModel {
    async fn generate(&self, request: ChatRequest) -> Result<ChatResponse> {
        request.validate()?;
        let model = request.model.as_deref().unwrap_or(&self.model);
        let body = build_request(&request, model, false, self.legacy_max_tokens)?;
        tracing::debug!(provider = PROVIDER, model, "chat completion");
        let (completion, rate_limit): (ChatCompletion, _) =
            self.client.post_json_with_rate_limit(PATH, &body).await?;
        let mut response = parse_completion(completion)?;
        response.rate_limit = rate_limit;
        Ok(response)
    }

    async fn stream(&self, request: ChatRequest) -> Result<ChatStream> {
        request.validate()?;
        let model = request.model.as_deref().unwrap_or(&self.model);
        let body = build_request(&request, model, true, self.legacy_max_tokens)?;
        tracing::debug!(provider = PROVIDER, model, "chat completion stream");
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
            let completion: ChatCompletion = serde_json::from_slice(&bytes).map_err(|e| {
                provider_error(
                    PROVIDER,
                    ProviderErrorKind::MalformedResponse,
                    format!("response is not the expected JSON: {e}"),
                )
            })?;
            let mut completion = parse_completion(completion)?;
            completion.rate_limit = rate_limit;
            let chunks = response_to_chunks(&completion);
            return Ok(Box::pin(futures::stream::iter(chunks.into_iter().map(Ok))));
        }
        let head = futures::stream::iter(rate_limit.map(|r| Ok(ChatChunk::RateLimit(r))));
        Ok(Box::pin(head.chain(chat_stream(response, &self.client))))
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

/// The wire request for `request`. Fails with [`Error::InvalidInput`] for content OpenAI
/// cannot take (images outside user messages, variants added to core later).
pub(crate) fn build_request<'a>(
    request: &'a ChatRequest,
    model: &'a str,
    stream: bool,
    legacy_max_tokens: bool,
) -> Result<ChatCompletionRequest<'a>> {
    let messages = request
        .messages
        .iter()
        .enumerate()
        .map(|(i, m)| message_to_wire(i, m))
        .collect::<Result<Vec<_>>>()?;
    let tools = request
        .tools
        .iter()
        .map(|t| RequestTool {
            kind: "function",
            function: RequestFunction {
                name: &t.name,
                description: &t.description,
                parameters: &t.parameters,
            },
        })
        .collect();
    let tool_choice = match &request.tool_choice {
        None => None,
        Some(ToolChoice::Auto) => Some(json!("auto")),
        Some(ToolChoice::None) => Some(json!("none")),
        Some(ToolChoice::Required) => Some(json!("required")),
        Some(ToolChoice::Tool(name)) => {
            Some(json!({"type": "function", "function": {"name": name}}))
        }
        Some(other) => {
            return Err(Error::invalid_input(format!(
                "OpenAI does not support the tool choice {other:?}"
            )))
        }
    };
    let response_format = match &request.response_format {
        None | Some(ResponseFormat::Text) => None,
        Some(ResponseFormat::JsonObject) => Some(json!({"type": "json_object"})),
        Some(ResponseFormat::JsonSchema {
            name,
            schema,
            strict,
        }) => {
            let mut schema = schema.clone();
            if *strict {
                close_objects(&mut schema);
            }
            Some(json!({
                "type": "json_schema",
                "json_schema": {"name": name, "schema": schema, "strict": strict}
            }))
        }
        Some(other) => {
            return Err(Error::invalid_input(format!(
                "OpenAI does not support the response format {other:?}"
            )))
        }
    };
    Ok(ChatCompletionRequest {
        model,
        messages,
        tools,
        tool_choice,
        response_format,
        temperature: request.temperature,
        top_p: request.top_p,
        max_completion_tokens: request.max_tokens.filter(|_| !legacy_max_tokens),
        max_tokens: request.max_tokens.filter(|_| legacy_max_tokens),
        stop: &request.stop,
        seed: request.seed,
        stream,
        stream_options: stream.then_some(StreamOptions {
            include_usage: true,
        }),
        prompt_cache_key: prompt_cache_key(request),
        parallel_tool_calls: request.parallel_tool_calls,
        service_tier: request.service_tier.as_deref(),
        reasoning_effort: request
            .reasoning
            .and_then(|r| r.effort)
            .map(ReasoningEffort::as_str),
    })
}

/// `prompt_cache_key` from the request's prompt cache key (blank keys are not sent).
pub(crate) fn prompt_cache_key(request: &ChatRequest) -> Option<&str> {
    request
        .prompt_cache
        .as_ref()
        .and_then(|c| c.key.as_deref())
        .filter(|k| !k.trim().is_empty())
}

/// OpenAI's strict mode requires `"additionalProperties": false` on every object schema
/// and every property listed in `required`; `schemars` leaves the first out unless the type
/// denies unknown fields, and omits `Option<T>` fields from `required` (their schema
/// already admits `null`, which is how strict mode expresses "optional"). Sets both where
/// missing (as OpenAI's own SDKs do); schemas that set `additionalProperties` keep it.
pub(crate) fn close_objects(schema: &mut Value) {
    crate::schema::close_objects(schema, true);
}

fn images_not_allowed(index: usize, role: Role) -> Error {
    Error::invalid_input(format!(
        "message {index} ({role}) has an image; OpenAI accepts images only in user messages"
    ))
}

fn message_to_wire(index: usize, m: &Message) -> Result<RequestMessage<'_>> {
    let name = m.name.as_deref();
    let wire = match m.role {
        Role::System => {
            if m.has_images() {
                return Err(images_not_allowed(index, m.role));
            }
            RequestMessage {
                role: "system",
                content: Some(RequestContent::Text(m.text())),
                name,
                tool_calls: Vec::new(),
                tool_call_id: None,
            }
        }
        Role::User => RequestMessage {
            role: "user",
            content: Some(user_content(&m.content)?),
            name,
            tool_calls: Vec::new(),
            tool_call_id: None,
        },
        Role::Assistant => {
            if m.has_images() {
                return Err(images_not_allowed(index, m.role));
            }
            let text = m.text();
            let tool_calls: Vec<_> = m
                .tool_calls
                .iter()
                .map(|c| RequestToolCall {
                    id: &c.id,
                    kind: "function",
                    function: RequestFunctionCall {
                        name: &c.name,
                        arguments: &c.arguments,
                    },
                })
                .collect();
            let content = if text.is_empty() && !tool_calls.is_empty() {
                None
            } else {
                Some(RequestContent::Text(text))
            };
            RequestMessage {
                role: "assistant",
                content,
                name,
                tool_calls,
                tool_call_id: None,
            }
        }
        Role::Tool => {
            if m.has_images() {
                return Err(images_not_allowed(index, m.role));
            }
            RequestMessage {
                role: "tool",
                content: Some(RequestContent::Text(m.text())),
                name: None,
                tool_calls: Vec::new(),
                tool_call_id: m.tool_call_id.as_deref(),
            }
        }
    };
    Ok(wire)
}

/// An image as OpenAI takes it: a URL (base64 images as `data:` URLs) and a detail level.
pub(crate) fn image_url(
    source: &ImageSource,
    detail: Option<ImageDetail>,
) -> Result<(String, Option<&'static str>)> {
    let url = match source {
        ImageSource::Url { url } => url.clone(),
        ImageSource::Base64 { media_type, data } => format!("data:{media_type};base64,{data}"),
        other => {
            return Err(Error::invalid_input(format!(
                "OpenAI does not support the image source {other:?}"
            )))
        }
    };
    let detail = detail.map(|d| match d {
        ImageDetail::Auto => "auto",
        ImageDetail::Low => "low",
        ImageDetail::High => "high",
    });
    Ok((url, detail))
}

/// A string when the content is text only, else an array of parts.
fn user_content(parts: &[ContentPart]) -> Result<RequestContent> {
    if parts.len() <= 1 && parts.iter().all(|p| p.as_text().is_some()) {
        return Ok(RequestContent::Text(
            parts.iter().filter_map(ContentPart::as_text).collect(),
        ));
    }
    parts
        .iter()
        .map(|p| match p {
            ContentPart::Text { text } => Ok(RequestPart::Text { text: text.clone() }),
            ContentPart::Image { source, detail } => {
                let (url, detail) = image_url(source, *detail)?;
                Ok(RequestPart::ImageUrl {
                    image_url: ImageUrl { url, detail },
                })
            }
            other => Err(Error::invalid_input(format!(
                "OpenAI does not support the content part {other:?}"
            ))),
        })
        .collect::<Result<Vec<_>>>()
        .map(RequestContent::Parts)
}

// ---------------------------------------------------------------- response

/// OpenAI's `finish_reason`, with unknown values kept verbatim.
pub(crate) fn finish_reason(s: &str) -> FinishReason {
    match s {
        "stop" => FinishReason::Stop,
        "length" => FinishReason::Length,
        "tool_calls" | "function_call" => FinishReason::ToolCalls,
        "content_filter" => FinishReason::ContentFilter,
        other => FinishReason::Other(other.to_owned()),
    }
}

pub(crate) fn usage(u: WireUsage) -> Usage {
    let input = u.prompt_tokens.unwrap_or(0);
    let output = u.completion_tokens.unwrap_or(0);
    let mut usage = Usage::new(input, output);
    if let Some(total) = u.total_tokens {
        usage = usage.with_total_tokens(total);
    }
    if let Some(n) = u.prompt_tokens_details.and_then(|d| d.cached_tokens) {
        usage = usage.with_cached_input_tokens(n);
    }
    if let Some(n) = u.completion_tokens_details.and_then(|d| d.reasoning_tokens) {
        usage = usage.with_reasoning_tokens(n);
    }
    usage
}

/// Tool-call arguments as JSON text, whether the server sent a string or an object.
pub(crate) fn arguments_text(arguments: Option<Value>) -> String {
    match arguments {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s,
        Some(other) => other.to_string(),
    }
}

/// The error for a refusal: the model declined, typically under structured outputs.
pub(crate) fn refusal_error(refusal: &str) -> Error {
    provider_error(
        PROVIDER,
        ProviderErrorKind::ContentFiltered,
        format!("the model refused: {refusal}"),
    )
}

fn malformed(message: impl Into<String>) -> Error {
    provider_error(PROVIDER, ProviderErrorKind::MalformedResponse, message)
}

fn content_text(content: Option<Value>) -> Result<String> {
    match content {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(s)) => Ok(s),
        Some(Value::Array(parts)) => Ok(parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect()),
        Some(other) => Err(malformed(format!(
            "message content is neither text nor parts: {other}"
        ))),
    }
}

fn tool_call(i: usize, call: ResponseToolCall) -> Result<ToolCall> {
    let function = call
        .function
        .ok_or_else(|| malformed(format!("tool call {i} has no function")))?;
    let name = function
        .name
        .filter(|n| !n.is_empty())
        .ok_or_else(|| malformed(format!("tool call {i} has no name")))?;
    let id = call
        .id
        .filter(|id| !id.is_empty())
        .unwrap_or_else(|| format!("call_{i}"));
    Ok(ToolCall::new(id, name, arguments_text(function.arguments)))
}

/// The first choice of a completion as a [`ChatResponse`].
///
/// A non-empty `refusal` becomes an error of kind
/// [`ContentFiltered`](ProviderErrorKind::ContentFiltered) carrying the refusal text, so a
/// caller expecting structured output never parses a refusal as an answer.
pub(crate) fn parse_completion(completion: ChatCompletion) -> Result<ChatResponse> {
    let mut choices = completion.choices.unwrap_or_default();
    let position = choices
        .iter()
        .position(|c| c.index.unwrap_or(0) == 0)
        .ok_or_else(|| malformed("the response has no choices"))?;
    let choice = choices.swap_remove(position);
    let message = choice.message.unwrap_or_default();
    if let Some(refusal) = message.refusal.as_deref().filter(|r| !r.is_empty()) {
        return Err(refusal_error(refusal));
    }
    let text = content_text(message.content)?;
    let calls = message
        .tool_calls
        .unwrap_or_default()
        .into_iter()
        .enumerate()
        .map(|(i, c)| tool_call(i, c))
        .collect::<Result<Vec<_>>>()?;
    let mut response = ChatResponse::new(Message::assistant_with_tool_calls(text, calls));
    if let Some(r) = choice.finish_reason.as_deref() {
        response = response.with_finish_reason(finish_reason(r));
    }
    if let Some(u) = completion.usage {
        response = response.with_usage(usage(u));
    }
    if let Some(m) = completion.model.filter(|m| !m.is_empty()) {
        response = response.with_model(m);
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strict_schemas_close_every_object() {
        let mut s = json!({
            "type": "object",
            "properties": {
                "a": {"type": "object", "properties": {"x": {"type": "integer"}}},
                "b": {"type": "array", "items": {"$ref": "#/$defs/B"}},
                "c": {"anyOf": [{"type": "object", "properties": {}}, {"type": "null"}]},
                "d": {"type": "object", "additionalProperties": {"type": "string"}}
            },
            "$defs": {"B": {"type": ["object", "null"], "properties": {"y": {"type": "string"}}}}
        });
        close_objects(&mut s);
        assert_eq!(s["additionalProperties"], false);
        assert_eq!(s["properties"]["a"]["additionalProperties"], false);
        assert_eq!(
            s["properties"]["c"]["anyOf"][0]["additionalProperties"],
            false
        );
        assert_eq!(
            s["properties"]["d"]["additionalProperties"]["type"],
            "string"
        );
        assert_eq!(s["$defs"]["B"]["additionalProperties"], false);
        assert!(s["properties"]["b"]["items"]
            .get("additionalProperties")
            .is_none());
    }

    #[test]
    fn env_sets_the_model() {
        let get = |name: &str| match name {
            "OPENAI_API_KEY" => Some("sk-from-env".to_owned()),
            "OPENAI_MODEL" => Some("gpt-4.1".to_owned()),
            _ => None,
        };
        let m = OpenAiChatModel::builder().apply_env(&get).build().unwrap();
        assert_eq!(m.model(), "gpt-4.1");
        let m = OpenAiChatModel::builder()
            .apply_env(&|_: &str| None)
            .api_key("k")
            .build()
            .unwrap();
        assert_eq!(m.model(), DEFAULT_CHAT_MODEL);
    }

    #[test]
    fn finish_reasons_map_or_are_kept() {
        assert_eq!(finish_reason("function_call"), FinishReason::ToolCalls);
        assert_eq!(finish_reason("abort"), FinishReason::Other("abort".into()));
    }

    #[test]
    fn sparse_completion_parses() {
        let c: ChatCompletion =
            serde_json::from_value(json!({"choices": [{"message": {"content": "hi"}}]})).unwrap();
        let r = parse_completion(c).unwrap();
        assert_eq!(r.text(), "hi");
        assert_eq!((r.finish_reason, r.usage, r.model), (None, None, None));
        let c: ChatCompletion = serde_json::from_value(json!({"choices": null})).unwrap();
        assert!(parse_completion(c).is_err());
    }
}
