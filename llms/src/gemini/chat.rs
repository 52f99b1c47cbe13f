//! The Gemini chat model (`:generateContent`, `:streamGenerateContent?alt=sse`).

use async_trait::async_trait;
use catena_core::{
    ChatModel, ChatRequest, ChatResponse, ChatStream, ContentPart, Error, FinishReason,
    ImageSource, Message, ModelInfo, ProviderErrorKind, ResponseFormat, Result, Role, ToolCall,
    ToolChoice, Usage,
};
use serde_json::{Map, Value};

use super::client::{client_setters, ClientConfig, GeminiClient, GEMINI_MODEL_ENV};
use super::stream::decode_stream;
use super::wire::{
    Blob, Content, FileData, FunctionCall, FunctionCallingConfig, FunctionDeclaration,
    FunctionResponse, GenerateBody, GenerateReply, GenerationConfig, Part, Tool, ToolConfig,
    UsageMetadata,
};
use crate::http::{provider_error, sse_events};

/// The chat model used when none is set.
pub const DEFAULT_CHAT_MODEL: &str = "gemini-2.5-flash";

/// Separates a tool call's id from the model's thought signature inside
/// [`ToolCall::id`]; `~` never occurs in base64.
const SIGNATURE_SEPARATOR: &str = "~ts~";

/// A [`ChatModel`] backed by Gemini: the Gemini API (API key) or Vertex AI (OAuth).
///
/// - System messages become `systemInstruction`; assistant turns are `model` turns; tool
///   results are `functionResponse` parts of a `user` turn (the tool's name is taken from
///   the earlier call with the same id). A result that is a JSON object is sent as the
///   response object; any other result as `{"result": ...}`.
/// - Tool parameters and JSON-schema response formats are sent as full JSON Schema
///   (`parametersJsonSchema`, `responseJsonSchema`), with a root `$schema` key removed.
/// - Images: base64 and `data:` URLs go inline (`inlineData`); other URLs as `fileData`
///   (Gemini API: Files API or YouTube URIs; Vertex AI also `gs://` and `https://`).
/// - Tool calls keep Gemini's `id` when it sends one, else get `call_0`, `call_1`, … in
///   the order of the turn. A thought signature that comes with a call is appended to the
///   id after `~ts~`, so it travels back to Gemini with the call when the conversation
///   goes on, as Gemini 2.5+ thinking models expect.
/// - Thinking parts (`thought: true`) are left out of the answer text.
/// - Prompt caching: [`PromptCache::cached_content`](catena_core::PromptCache::cached_content)
///   is sent as `cachedContent` (the name of a cache created beforehand); cache hits come
///   back as `usageMetadata.cachedContentTokenCount`, reported as
///   [`Usage::cached_input_tokens`](catena_core::Usage::cached_input_tokens).
#[derive(Debug, Clone)]
pub struct GeminiChatModel {
    client: GeminiClient,
    model: String,
}

/// Configures a [`GeminiChatModel`].
#[derive(Debug, Clone, Default)]
#[must_use]
pub struct GeminiChatModelBuilder {
    config: ClientConfig,
    model: Option<String>,
}

impl GeminiChatModelBuilder {
    client_setters!();

    /// The model. Default `gemini-2.5-flash`.
    pub fn model(mut self, model: impl Into<String>) -> Self {
        self.model = Some(model.into());
        self
    }

    /// Builds the model.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] without an API key (Gemini API), with an empty model name,
    /// with both an API key and `vertex`, or when Vertex AI has no token source and no
    /// Application Default Credentials are found.
    pub fn build(self) -> Result<GeminiChatModel> {
        let model = self.model.unwrap_or_else(|| DEFAULT_CHAT_MODEL.to_owned());
        if model.trim().is_empty() {
            return Err(Error::invalid_config("the model name must not be empty"));
        }
        Ok(GeminiChatModel {
            client: self.config.build()?,
            model,
        })
    }
}

impl GeminiChatModel {
    /// Configures a model.
    pub fn builder() -> GeminiChatModelBuilder {
        GeminiChatModelBuilder::default()
    }

    /// A Gemini API model with the key from `GEMINI_API_KEY` (else `GOOGLE_API_KEY`) and
    /// the model from `GEMINI_MODEL` (default `gemini-2.5-flash`).
    ///
    /// # Errors
    /// As for [`GeminiChatModelBuilder::build`].
    pub fn from_env() -> Result<Self> {
        let mut b = Self::builder();
        if let Some(key) = ClientConfig::api_key_from_env() {
            b = b.api_key(key);
        }
        if let Ok(m) = std::env::var(GEMINI_MODEL_ENV) {
            b = b.model(m);
        }
        b.build()
    }

    /// A Vertex AI model in `GOOGLE_CLOUD_PROJECT` and `GOOGLE_CLOUD_LOCATION` (default
    /// `us-central1`), authenticated by Application Default Credentials, with the model
    /// from `GEMINI_MODEL`.
    ///
    /// # Errors
    /// As for [`GeminiChatModelBuilder::build`], and when the project is not set.
    pub fn vertex_from_env() -> Result<Self> {
        let (project, location) = ClientConfig::vertex_from_env()?;
        let mut b = Self::builder().vertex(project, location);
        if let Ok(m) = std::env::var(GEMINI_MODEL_ENV) {
            b = b.model(m);
        }
        b.build()
    }

    fn model_for<'a>(&'a self, req: &'a ChatRequest) -> &'a str {
        req.model.as_deref().unwrap_or(&self.model)
    }

    fn body(&self, req: &ChatRequest) -> Result<GenerateBody> {
        req.validate()?;
        let (system_instruction, contents) = to_contents(&req.messages)?;
        let tools = if req.tools.is_empty() {
            Vec::new()
        } else {
            vec![Tool {
                function_declarations: req
                    .tools
                    .iter()
                    .map(|t| FunctionDeclaration {
                        name: t.name.clone(),
                        description: t.description.clone(),
                        parameters_json_schema: (!t.parameters.is_null())
                            .then(|| clean_schema(&t.parameters)),
                    })
                    .collect(),
            }]
        };
        let tool_config = match &req.tool_choice {
            None => None,
            Some(choice) => {
                let (mode, allowed) = match choice {
                    ToolChoice::None => ("NONE", Vec::new()),
                    ToolChoice::Required => ("ANY", Vec::new()),
                    ToolChoice::Tool(name) => ("ANY", vec![name.clone()]),
                    _ => ("AUTO", Vec::new()),
                };
                Some(ToolConfig {
                    function_calling_config: FunctionCallingConfig {
                        mode,
                        allowed_function_names: allowed,
                    },
                })
            }
        };
        let seed = req
            .seed
            .map(|s| {
                i32::try_from(s).map_err(|_| {
                    Error::invalid_input(format!("Gemini seeds are 32-bit; {s} is too large"))
                })
            })
            .transpose()?;
        let (response_mime_type, response_json_schema) = match &req.response_format {
            Some(ResponseFormat::JsonObject) => (Some("application/json"), None),
            Some(ResponseFormat::JsonSchema { schema, .. }) => {
                (Some("application/json"), Some(clean_schema(schema)))
            }
            _ => (None, None),
        };
        Ok(GenerateBody {
            contents,
            system_instruction,
            tools,
            tool_config,
            generation_config: GenerationConfig {
                temperature: req.temperature,
                top_p: req.top_p,
                max_output_tokens: req.max_tokens,
                stop_sequences: req.stop.clone(),
                seed,
                response_mime_type,
                response_json_schema,
            },
            cached_content: req
                .prompt_cache
                .as_ref()
                .and_then(|c| c.cached_content.clone())
                .filter(|name| !name.trim().is_empty()),
        })
    }
}

/// A JSON Schema as Gemini takes it: the root `$schema` key (which schema generators add
/// and Gemini rejects) removed.
pub(crate) fn clean_schema(schema: &Value) -> Value {
    let mut schema = schema.clone();
    if let Value::Object(map) = &mut schema {
        map.remove("$schema");
    }
    schema
}

fn guess_mime(url: &str) -> Option<String> {
    let path = url.split(['?', '#']).next().unwrap_or(url).to_lowercase();
    let ext = path.rsplit('.').next()?;
    let mime = match ext {
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "webp" => "image/webp",
        "gif" => "image/gif",
        "heic" => "image/heic",
        "heif" => "image/heif",
        _ => return None,
    };
    Some(mime.to_owned())
}

fn content_part(part: &ContentPart) -> Result<Part> {
    match part {
        ContentPart::Text { text } => Ok(Part {
            text: Some(text.clone()),
            ..Part::default()
        }),
        ContentPart::Image { source, .. } => match source {
            ImageSource::Base64 { media_type, data } => Ok(Part {
                inline_data: Some(Blob {
                    mime_type: media_type.clone(),
                    data: data.clone(),
                }),
                ..Part::default()
            }),
            ImageSource::Url { url } => {
                if let Some((mime, data)) = url
                    .strip_prefix("data:")
                    .and_then(|r| r.split_once(";base64,"))
                {
                    return Ok(Part {
                        inline_data: Some(Blob {
                            mime_type: mime.to_owned(),
                            data: data.to_owned(),
                        }),
                        ..Part::default()
                    });
                }
                Ok(Part {
                    file_data: Some(FileData {
                        mime_type: guess_mime(url),
                        file_uri: url.clone(),
                    }),
                    ..Part::default()
                })
            }
            _ => Err(Error::invalid_input("unsupported image source for Gemini")),
        },
        _ => Err(Error::invalid_input("unsupported content part for Gemini")),
    }
}

/// Splits a [`ToolCall::id`] into the id Gemini sent (none for our `call_N` ids) and the
/// thought signature carried after [`SIGNATURE_SEPARATOR`].
fn split_call_id(id: &str) -> (Option<&str>, Option<&str>) {
    let (base, signature) = match id.split_once(SIGNATURE_SEPARATOR) {
        Some((b, s)) => (b, Some(s)),
        None => (id, None),
    };
    let synthetic = base
        .strip_prefix("call_")
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
    let base = (!synthetic && !base.is_empty()).then_some(base);
    (base, signature)
}

/// The [`ToolCall::id`] for a call Gemini sent.
fn join_call_id(id: Option<&str>, index: usize, signature: Option<&str>) -> String {
    let base = id
        .filter(|i| !i.is_empty())
        .map_or_else(|| format!("call_{index}"), str::to_owned);
    match signature {
        Some(s) if !s.is_empty() => format!("{base}{SIGNATURE_SEPARATOR}{s}"),
        _ => base,
    }
}

fn tool_response(text: &str) -> Value {
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(map)) => Value::Object(map),
        Ok(other) => Value::Object(Map::from_iter([("result".to_owned(), other)])),
        Err(_) => Value::Object(Map::from_iter([(
            "result".to_owned(),
            Value::String(text.to_owned()),
        )])),
    }
}

/// Converts the conversation into `systemInstruction` and `contents`.
pub(crate) fn to_contents(messages: &[Message]) -> Result<(Option<Content>, Vec<Content>)> {
    let mut system = Vec::new();
    let mut contents: Vec<Content> = Vec::with_capacity(messages.len());
    let mut last_was_tool = false;
    for (i, m) in messages.iter().enumerate() {
        let is_tool = m.role == Role::Tool;
        match m.role {
            Role::System => {
                let text = m.text();
                if !text.is_empty() {
                    system.push(Part {
                        text: Some(text),
                        ..Part::default()
                    });
                }
            }
            Role::User => {
                let parts = m
                    .content
                    .iter()
                    .map(content_part)
                    .collect::<Result<Vec<_>>>()?;
                contents.push(Content {
                    role: Some("user".into()),
                    parts,
                });
            }
            Role::Assistant => {
                let mut parts = Vec::new();
                let text = m.text();
                if !text.is_empty() {
                    parts.push(Part {
                        text: Some(text),
                        ..Part::default()
                    });
                }
                for c in &m.tool_calls {
                    let args = c.arguments_json().map_err(|e| {
                        Error::invalid_input(format!("message {i}: tool call `{}`: {e}", c.name))
                    })?;
                    let args = match args {
                        Value::Null => Value::Object(Map::new()),
                        Value::Object(o) => Value::Object(o),
                        _ => {
                            return Err(Error::invalid_input(format!(
                                "message {i}: tool call `{}`: Gemini needs arguments that are a JSON object",
                                c.name
                            )))
                        }
                    };
                    let (id, signature) = split_call_id(&c.id);
                    parts.push(Part {
                        function_call: Some(FunctionCall {
                            id: id.map(str::to_owned),
                            name: c.name.clone(),
                            args,
                        }),
                        thought_signature: signature.map(str::to_owned),
                        ..Part::default()
                    });
                }
                if parts.is_empty() {
                    continue;
                }
                contents.push(Content {
                    role: Some("model".into()),
                    parts,
                });
            }
            Role::Tool => {
                let call_id = m.tool_call_id.as_deref().unwrap_or("");
                let name = messages[..i]
                    .iter()
                    .rev()
                    .flat_map(|p| p.tool_calls.iter())
                    .find(|c| c.id == call_id)
                    .map(|c| c.name.clone())
                    .or_else(|| m.name.clone())
                    .ok_or_else(|| {
                        Error::invalid_input(format!(
                            "message {i}: no earlier tool call has id `{call_id}`, so its tool name is unknown"
                        ))
                    })?;
                let part = Part {
                    function_response: Some(FunctionResponse {
                        id: split_call_id(call_id).0.map(str::to_owned),
                        name,
                        response: tool_response(&m.text()),
                    }),
                    ..Part::default()
                };
                match contents.last_mut() {
                    // Consecutive tool results answer one turn: one content.
                    Some(last) if last_was_tool => last.parts.push(part),
                    _ => contents.push(Content {
                        role: Some("user".into()),
                        parts: vec![part],
                    }),
                }
            }
        }
        last_was_tool = is_tool;
    }
    let system = (!system.is_empty()).then_some(Content {
        role: None,
        parts: system,
    });
    Ok((system, contents))
}

/// The answer text of some parts: text parts, not thoughts.
pub(crate) fn parts_text(parts: &[Part]) -> String {
    parts
        .iter()
        .filter(|p| p.thought != Some(true))
        .filter_map(|p| p.text.as_deref())
        .collect()
}

/// The function calls among some parts, numbered from `first_index`.
pub(crate) fn parts_calls(parts: &[Part], first_index: usize) -> Vec<ToolCall> {
    parts
        .iter()
        .filter_map(|p| {
            p.function_call
                .as_ref()
                .map(|c| (c, p.thought_signature.as_deref()))
        })
        .enumerate()
        .map(|(i, (c, signature))| {
            let args = match &c.args {
                Value::Null => "{}".to_owned(),
                other => other.to_string(),
            };
            ToolCall::new(
                join_call_id(c.id.as_deref(), first_index + i, signature),
                c.name.clone(),
                args,
            )
        })
        .collect()
}

/// Maps Gemini's `finishReason`.
pub(crate) fn finish_reason(reason: &str, has_calls: bool) -> FinishReason {
    match reason {
        "STOP" if has_calls => FinishReason::ToolCalls,
        "STOP" => FinishReason::Stop,
        "MAX_TOKENS" => FinishReason::Length,
        "SAFETY" | "PROHIBITED_CONTENT" | "BLOCKLIST" | "SPII" | "IMAGE_SAFETY" => {
            FinishReason::ContentFilter
        }
        other => FinishReason::Other(other.to_owned()),
    }
}

/// Maps `usageMetadata`; thinking tokens count as output (and as reasoning).
pub(crate) fn usage(meta: &UsageMetadata) -> Usage {
    let input = meta.prompt_token_count.unwrap_or(0);
    let thoughts = meta.thoughts_token_count.unwrap_or(0);
    let output = meta
        .candidates_token_count
        .unwrap_or(0)
        .saturating_add(thoughts);
    let mut u = Usage::new(input, output);
    if let Some(total) = meta.total_token_count {
        u = u.with_total_tokens(total);
    }
    if let Some(cached) = meta.cached_content_token_count {
        u = u.with_cached_input_tokens(cached);
    }
    if let Some(t) = meta.thoughts_token_count {
        u = u.with_reasoning_tokens(t);
    }
    u
}

/// The error for a prompt Gemini refused to answer, if `reply` is one.
pub(crate) fn blocked_prompt(provider: &str, reply: &GenerateReply) -> Option<Error> {
    if !reply.candidates.is_empty() {
        return None;
    }
    let feedback = reply.prompt_feedback.as_ref()?;
    let reason = feedback.block_reason.as_deref()?;
    let mut message = format!("the prompt was blocked: {reason}");
    if let Some(m) = &feedback.block_reason_message {
        message.push_str(&format!(" ({m})"));
    }
    Some(provider_error(
        provider,
        ProviderErrorKind::ContentFiltered,
        message,
    ))
}

pub(crate) fn to_response(provider: &str, reply: GenerateReply) -> Result<ChatResponse> {
    if let Some(e) = blocked_prompt(provider, &reply) {
        return Err(e);
    }
    let candidate = reply.candidates.first().ok_or_else(|| {
        provider_error(
            provider,
            ProviderErrorKind::MalformedResponse,
            "the reply has no candidates",
        )
    })?;
    let parts = candidate.content.as_ref().map_or(&[][..], |c| &c.parts[..]);
    let calls = parts_calls(parts, 0);
    let has_calls = !calls.is_empty();
    let mut response =
        ChatResponse::new(Message::assistant_with_tool_calls(parts_text(parts), calls));
    if let Some(r) = &candidate.finish_reason {
        response = response.with_finish_reason(finish_reason(r, has_calls));
    }
    if let Some(u) = &reply.usage_metadata {
        response = response.with_usage(usage(u));
    }
    if let Some(m) = &reply.model_version {
        response = response.with_model(m.clone());
    }
    Ok(response)
}

#[async_trait]
impl ChatModel for GeminiChatModel {
    async fn generate(&self, request: ChatRequest) -> Result<ChatResponse> {
        let body = self.body(&request)?;
        let url = self.client.url(self.model_for(&request), "generateContent");
        let reply: GenerateReply = self.client.post_json(&url, &body).await?;
        to_response(self.client.provider(), reply)
    }

    async fn stream(&self, request: ChatRequest) -> Result<ChatStream> {
        let body = self.body(&request)?;
        let url = self
            .client
            .url(self.model_for(&request), "streamGenerateContent?alt=sse");
        let response = self.client.post_stream(&url, &body).await?;
        let options = &self.client.transport.options;
        let provider = self.client.provider();
        let events = sse_events(
            response,
            provider,
            options.stream_idle_timeout,
            options.max_line_bytes,
        );
        Ok(decode_stream(events, provider))
    }

    fn model_info(&self) -> ModelInfo {
        ModelInfo::new(self.client.provider(), self.model.clone())
            .with_tools(true)
            .with_json_schema(true)
            .with_images(true)
            .with_streaming(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn call_ids_carry_signatures_and_drop_synthetic_ids() {
        assert_eq!(split_call_id("call_0"), (None, None));
        assert_eq!(split_call_id("abc"), (Some("abc"), None));
        let id = join_call_id(None, 2, Some("c2ln"));
        assert_eq!(id, "call_2~ts~c2ln");
        assert_eq!(split_call_id(&id), (None, Some("c2ln")));
        assert_eq!(split_call_id("call_x~ts~s"), (Some("call_x"), Some("s")));
    }

    #[test]
    fn finish_reasons() {
        assert_eq!(finish_reason("STOP", true), FinishReason::ToolCalls);
        assert_eq!(finish_reason("MAX_TOKENS", false), FinishReason::Length);
        assert_eq!(finish_reason("SPII", false), FinishReason::ContentFilter);
        assert_eq!(
            finish_reason("RECITATION", false),
            FinishReason::Other("RECITATION".into())
        );
    }
}
