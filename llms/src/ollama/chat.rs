//! The Ollama chat model (`POST /api/chat`).

use std::collections::VecDeque;

use async_trait::async_trait;
use catena_core::{
    ChatChunk, ChatModel, ChatRequest, ChatResponse, ChatStream, ContentPart, Error, FinishReason,
    ImageSource, Message, ModelInfo, ProviderErrorKind, ResponseFormat, Result, Role,
    StreamAccumulator, ToolCall, ToolChoice, Usage,
};
use futures::stream::BoxStream;
use futures::StreamExt;
use serde_json::Value;

use super::client::{error_hook, host_from_env, OllamaClient, OLLAMA_MODEL_ENV};
use super::wire::{
    ChatBody, ChatReply, Options, WireFunction, WireFunctionCall, WireMessage, WireTool,
    WireToolCall,
};
use crate::http::{ndjson_lines, provider_error, HttpOptions};

const PROVIDER: &str = "ollama";

/// A [`ChatModel`] backed by Ollama's native `/api/chat`.
///
/// Ollama has no `tool_choice`: [`ToolChoice::None`] sends no tools, [`ToolChoice::Tool`]
/// sends only the named tool, and [`ToolChoice::Required`] sends all tools like `Auto`;
/// whether the model then calls one is up to the model (check
/// [`ChatResponse::tool_calls`]). Images must be inline (base64 or a `data:` URL). Tool calls get ids
/// `call_0`, `call_1`, … in the order of the turn, since Ollama sends none.
#[derive(Debug, Clone)]
pub struct OllamaChatModel {
    client: OllamaClient,
    model: String,
    num_ctx: Option<u32>,
}

/// Configures an [`OllamaChatModel`].
#[derive(Debug, Clone, Default)]
#[must_use]
pub struct OllamaChatModelBuilder {
    host: Option<String>,
    model: Option<String>,
    num_ctx: Option<u32>,
    keep_alive: Option<String>,
    http: HttpOptions,
}

impl OllamaChatModelBuilder {
    /// The server: `host:port` or a URL. Default `OLLAMA_HOST`, else
    /// `http://127.0.0.1:11434`.
    pub fn host(mut self, host: impl Into<String>) -> Self {
        self.host = Some(host.into());
        self
    }

    /// The model. Default `llama3.2`.
    pub fn model(mut self, model: impl Into<String>) -> Self {
        self.model = Some(model.into());
        self
    }

    /// The context window to load the model with (`options.num_ctx`). Default: the server's.
    pub fn num_ctx(mut self, tokens: u32) -> Self {
        self.num_ctx = Some(tokens);
        self
    }

    /// How long the server keeps the model loaded (`"5m"`, `"-1"`). Default: the server's.
    pub fn keep_alive(mut self, d: impl Into<String>) -> Self {
        self.keep_alive = Some(d.into());
        self
    }

    /// HTTP settings. Default [`HttpOptions::default`].
    pub fn http(mut self, http: HttpOptions) -> Self {
        self.http = http;
        self
    }

    /// Builds the model.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] for a bad host or an empty model name.
    pub fn build(self) -> Result<OllamaChatModel> {
        let model = self.model.unwrap_or_else(|| "llama3.2".to_owned());
        if model.trim().is_empty() {
            return Err(Error::invalid_config("the model name must not be empty"));
        }
        let host = self.host.unwrap_or_else(host_from_env);
        Ok(OllamaChatModel {
            client: OllamaClient::new(&host, self.http, self.keep_alive)?,
            model,
            num_ctx: self.num_ctx,
        })
    }
}

impl OllamaChatModel {
    /// Configures a model.
    pub fn builder() -> OllamaChatModelBuilder {
        OllamaChatModelBuilder::default()
    }

    /// A model from `OLLAMA_HOST` and `OLLAMA_MODEL` (default `llama3.2`).
    ///
    /// # Errors
    /// As for [`OllamaChatModelBuilder::build`].
    pub fn from_env() -> Result<Self> {
        let mut b = Self::builder();
        if let Ok(m) = std::env::var(OLLAMA_MODEL_ENV) {
            b = b.model(m);
        }
        b.build()
    }

    fn body<'a>(&'a self, req: &'a ChatRequest, stream: bool) -> Result<ChatBody<'a>> {
        req.validate()?;
        let tools = match &req.tool_choice {
            Some(ToolChoice::None) => Vec::new(),
            Some(ToolChoice::Tool(name)) => req.tools.iter().filter(|t| &t.name == name).collect(),
            _ => req.tools.iter().collect(),
        };
        let format = match &req.response_format {
            Some(ResponseFormat::JsonObject) => Some(Value::String("json".into())),
            Some(ResponseFormat::JsonSchema { schema, .. }) => Some(schema.clone()),
            _ => None,
        };
        Ok(ChatBody {
            model: req.model.as_deref().unwrap_or(&self.model),
            messages: to_wire_messages(&req.messages)?,
            tools: tools
                .into_iter()
                .map(|t| WireTool {
                    kind: "function",
                    function: WireFunction {
                        name: t.name.clone(),
                        description: t.description.clone(),
                        parameters: t.parameters.clone(),
                    },
                })
                .collect(),
            format,
            options: Options {
                temperature: req.temperature,
                top_p: req.top_p,
                seed: req.seed,
                num_predict: req.max_tokens,
                stop: req.stop.clone(),
                num_ctx: self.num_ctx,
            },
            stream,
            keep_alive: self.client.keep_alive.as_deref(),
        })
    }
}

fn image_data(part: &ContentPart) -> Result<Option<String>> {
    let ContentPart::Image { source, .. } = part else {
        return Ok(None);
    };
    match source {
        ImageSource::Base64 { data, .. } => Ok(Some(data.clone())),
        ImageSource::Url { url } => match url
            .strip_prefix("data:")
            .and_then(|r| r.split_once(";base64,"))
        {
            Some((_, data)) => Ok(Some(data.to_owned())),
            None => Err(Error::invalid_input(
                "Ollama takes inline images only (base64 or a data: URL), not remote URLs",
            )),
        },
        _ => Err(Error::invalid_input("unsupported image source for Ollama")),
    }
}

fn to_wire_messages(messages: &[Message]) -> Result<Vec<WireMessage>> {
    let mut out = Vec::with_capacity(messages.len());
    for (i, m) in messages.iter().enumerate() {
        let mut images = Vec::new();
        for part in &m.content {
            if let Some(data) = image_data(part)? {
                images.push(data);
            }
        }
        let mut tool_calls = Vec::with_capacity(m.tool_calls.len());
        for c in &m.tool_calls {
            let arguments = c.arguments_json().map_err(|e| {
                Error::invalid_input(format!("message {i}: tool call `{}`: {e}", c.name))
            })?;
            tool_calls.push(WireToolCall {
                function: WireFunctionCall {
                    name: c.name.clone(),
                    arguments,
                },
            });
        }
        // Ollama matches tool results by tool name: find the call this result answers.
        let tool_name = match (&m.role, &m.tool_call_id) {
            (Role::Tool, Some(id)) => messages[..i]
                .iter()
                .rev()
                .flat_map(|p| p.tool_calls.iter())
                .find(|c| &c.id == id)
                .map(|c| c.name.clone()),
            _ => None,
        };
        out.push(WireMessage {
            role: m.role.as_str().to_owned(),
            content: m.text(),
            images,
            tool_calls,
            tool_name,
        });
    }
    Ok(out)
}

fn finish_reason(done_reason: Option<&str>, has_tool_calls: bool) -> FinishReason {
    match done_reason {
        Some("length") => FinishReason::Length,
        _ if has_tool_calls => FinishReason::ToolCalls,
        None | Some("stop") => FinishReason::Stop,
        Some(other) => FinishReason::Other(other.to_owned()),
    }
}

fn wire_tool_calls(calls: &[WireToolCall], first_index: usize) -> Vec<ToolCall> {
    calls
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let args = match &c.function.arguments {
                Value::Null => "{}".to_owned(),
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            ToolCall::new(
                format!("call_{}", first_index + i),
                c.function.name.clone(),
                args,
            )
        })
        .collect()
}

fn usage(reply: &ChatReply) -> Option<Usage> {
    match (reply.prompt_eval_count, reply.eval_count) {
        (None, None) => None,
        (i, o) => Some(Usage::new(i.unwrap_or(0), o.unwrap_or(0))),
    }
}

fn mid_stream_error(message: &str) -> Error {
    let (kind, _) = error_hook(0, &serde_json::json!({ "error": message }));
    provider_error(PROVIDER, kind.unwrap_or(ProviderErrorKind::Server), message)
}

#[async_trait]
impl ChatModel for OllamaChatModel {
    async fn generate(&self, request: ChatRequest) -> Result<ChatResponse> {
        let body = self.body(&request, false)?;
        let url = self.client.url("/api/chat");
        let reply: ChatReply = self
            .client
            .transport
            .json(|| self.client.transport.client.post(&url).json(&body))
            .await?;
        if let Some(e) = &reply.error {
            return Err(mid_stream_error(e));
        }
        let message = reply.message.as_ref().ok_or_else(|| {
            provider_error(
                PROVIDER,
                ProviderErrorKind::MalformedResponse,
                "reply has no message",
            )
        })?;
        let calls = wire_tool_calls(&message.tool_calls, 0);
        let mut response = ChatResponse::new(Message::assistant_with_tool_calls(
            message.content.clone(),
            calls,
        ))
        .with_finish_reason(finish_reason(
            reply.done_reason.as_deref(),
            !message.tool_calls.is_empty(),
        ));
        if let Some(u) = usage(&reply) {
            response = response.with_usage(u);
        }
        if let Some(m) = &reply.model {
            response = response.with_model(m.clone());
        }
        Ok(response)
    }

    async fn stream(&self, request: ChatRequest) -> Result<ChatStream> {
        let body = self.body(&request, true)?;
        let url = self.client.url("/api/chat");
        let transport = &self.client.transport;
        let response = transport
            .start_stream(|| transport.client.post(&url).json(&body))
            .await?;
        let lines = ndjson_lines(
            response,
            PROVIDER,
            transport.options.stream_idle_timeout,
            transport.options.max_line_bytes,
        );
        Ok(decode_stream(lines))
    }

    fn model_info(&self) -> ModelInfo {
        ModelInfo::new(PROVIDER, self.model.clone())
            .with_tools(true)
            .with_json_schema(true)
            .with_images(true)
            .with_streaming(true)
    }
}

struct Decoder {
    lines: BoxStream<'static, Result<String>>,
    pending: VecDeque<Result<ChatChunk>>,
    partial: StreamAccumulator,
    tool_calls: usize,
    model_sent: bool,
    finished: bool,
}

impl Decoder {
    fn push(&mut self, chunk: ChatChunk) {
        self.partial.push(&chunk);
        self.pending.push_back(Ok(chunk));
    }

    fn interrupted(&mut self, why: &str) {
        let text = self.partial.text().to_owned();
        self.pending.push_back(Err(provider_error(
            PROVIDER,
            ProviderErrorKind::StreamInterrupted,
            format!("{why}; partial answer so far: {text:?}"),
        )));
        self.finished = true;
    }

    fn on_line(&mut self, line: &str) {
        let reply: ChatReply = match serde_json::from_str(line) {
            Ok(r) => r,
            Err(e) => {
                let partial = self.partial.text().to_owned();
                self.pending.push_back(Err(provider_error(
                    PROVIDER,
                    ProviderErrorKind::MalformedResponse,
                    format!(
                        "stream line is not valid JSON: {e}; partial answer so far: {partial:?}"
                    ),
                )));
                self.finished = true;
                return;
            }
        };
        if let Some(e) = &reply.error {
            let partial = self.partial.text().to_owned();
            self.pending.push_back(Err(mid_stream_error(&format!(
                "{e}; partial answer so far: {partial:?}"
            ))));
            self.finished = true;
            return;
        }
        if let (false, Some(m)) = (self.model_sent, &reply.model) {
            self.model_sent = true;
            self.push(ChatChunk::Model(m.clone()));
        }
        let mut has_calls = self.tool_calls > 0;
        if let Some(msg) = &reply.message {
            if !msg.content.is_empty() {
                self.push(ChatChunk::TextDelta(msg.content.clone()));
            }
            for call in wire_tool_calls(&msg.tool_calls, self.tool_calls) {
                let index = self.tool_calls;
                self.tool_calls += 1;
                has_calls = true;
                self.push(ChatChunk::ToolCallDelta {
                    index,
                    id: Some(call.id),
                    name: Some(call.name),
                    arguments_delta: call.arguments,
                });
            }
        }
        if reply.done {
            if let Some(u) = usage(&reply) {
                self.push(ChatChunk::Usage(u));
            }
            self.push(ChatChunk::Finish(finish_reason(
                reply.done_reason.as_deref(),
                has_calls,
            )));
            self.finished = true;
        }
    }
}

pub(crate) fn decode_stream(lines: BoxStream<'static, Result<String>>) -> ChatStream {
    let decoder = Decoder {
        lines,
        pending: VecDeque::new(),
        partial: StreamAccumulator::new(),
        tool_calls: 0,
        model_sent: false,
        finished: false,
    };
    Box::pin(futures::stream::unfold(decoder, |mut d| async move {
        loop {
            if let Some(item) = d.pending.pop_front() {
                return Some((item, d));
            }
            if d.finished {
                return None;
            }
            match d.lines.next().await {
                Some(Ok(line)) => d.on_line(&line),
                Some(Err(e)) => {
                    let partial = d.partial.text().to_owned();
                    let e = match e {
                        Error::Provider(mut p) => {
                            p.message =
                                format!("{}; partial answer so far: {partial:?}", p.message);
                            Error::Provider(p)
                        }
                        other => other,
                    };
                    d.pending.push_back(Err(e));
                    d.finished = true;
                }
                None => d.interrupted("the stream ended without `done: true`"),
            }
        }
    }))
}
