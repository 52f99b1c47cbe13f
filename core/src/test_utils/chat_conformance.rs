//! The chat-model conformance suite.

use futures::StreamExt;
use serde_json::json;

use crate::chat::{ChatChunk, ChatModel, ChatRequest, ChatResponse, StreamAccumulator, ToolChoice};
use crate::error::Error;
use crate::message::{FinishReason, Message, Role};
use crate::tool::ToolDefinition;

/// The rules every [`ChatModel`] must follow, run against a live model (or a loopback server
/// speaking a provider's wire format).
///
/// What it sends, so a test server can answer:
/// 1. `[system "You are a test.", user "Say hello."]` with `temperature = 0` and `seed = 1`,
///    once through `generate` and once through `stream`; it expects assistant text and a
///    finish reason. With [`deterministic`](Self::deterministic) both answers must be equal.
/// 2. When [`ModelInfo::supports_tools`](crate::ModelInfo::supports_tools): the tool
///    `get_weather(city: string)` with `tool_choice = get_weather` and the user message
///    "What is the weather in Paris?", through `generate` and `stream`; it expects a call to
///    `get_weather` with an id and JSON-object arguments, and finish reason `ToolCalls`. It
///    then sends the call back with the tool result `"18°C and sunny"` and expects text.
/// 3. An empty message list, which must fail with [`Error::InvalidInput`] before any
///    network traffic.
#[derive(Debug, Clone, Default)]
pub struct ChatModelConformance {
    deterministic: bool,
    skip_tools: bool,
}

impl ChatModelConformance {
    /// The suite with default settings: not deterministic, tools checked when supported.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether `generate` and `stream` must give the same answer to the same request.
    /// Default false.
    #[must_use]
    pub fn deterministic(mut self, yes: bool) -> Self {
        self.deterministic = yes;
        self
    }

    /// Skips the tool-calling checks even if the model reports tool support. Default false.
    #[must_use]
    pub fn skip_tools(mut self, yes: bool) -> Self {
        self.skip_tools = yes;
        self
    }

    /// Runs the suite.
    ///
    /// # Panics
    /// When the model breaks a rule; the message names it.
    pub async fn run(&self, model: &dyn ChatModel) {
        self.check_text(model).await;
        if model.model_info().supports_tools && !self.skip_tools {
            self.check_tools(model).await;
        }
        check_invalid(model).await;
        check_drop_mid_stream(model).await;
    }

    async fn check_text(&self, model: &dyn ChatModel) {
        let req = ChatRequest::new(vec![
            Message::system("You are a test."),
            Message::user("Say hello."),
        ])
        .with_temperature(0.0)
        .with_seed(1);
        let unary = model
            .generate(req.clone())
            .await
            .expect("conformance: generate failed on a plain request");
        check_text_response(&unary, "generate");
        let streamed = collect_checked(model, req).await;
        check_text_response(&streamed, "stream");
        if self.deterministic {
            assert_eq!(
                unary, streamed,
                "conformance: generate and stream must end in the same ChatResponse"
            );
        }
    }

    async fn check_tools(&self, model: &dyn ChatModel) {
        let tool = ToolDefinition::new(
            "get_weather",
            "Current weather for a city.",
            json!({
                "type": "object",
                "properties": {"city": {"type": "string", "description": "City name"}},
                "required": ["city"]
            }),
        );
        let user = Message::user("What is the weather in Paris?");
        let req = ChatRequest::new(vec![user.clone()])
            .with_tools([tool])
            .with_tool_choice(ToolChoice::Tool("get_weather".into()))
            .with_temperature(0.0)
            .with_seed(1);
        let unary = model
            .generate(req.clone())
            .await
            .expect("conformance: generate failed on a tool request");
        check_tool_response(&unary, "generate");
        let streamed = collect_checked(model, req.clone()).await;
        check_tool_response(&streamed, "stream");
        if self.deterministic {
            assert_eq!(
                unary, streamed,
                "conformance: streamed tool calls must assemble to the unary ones"
            );
        }

        let call = unary.tool_calls()[0].clone();
        let mut messages = vec![user, unary.message.clone()];
        messages.push(Message::tool_result(call.id.clone(), "18°C and sunny"));
        let mut follow_up = ChatRequest::new(messages)
            .with_temperature(0.0)
            .with_seed(1);
        follow_up.tools = req.tools.clone();
        let answer = model
            .generate(follow_up)
            .await
            .expect("conformance: generate failed after a tool result");
        assert!(
            !answer.text().trim().is_empty(),
            "conformance: the answer after a tool result must have text"
        );
    }
}

async fn collect_checked(model: &dyn ChatModel, req: ChatRequest) -> ChatResponse {
    let mut stream = model
        .stream(req)
        .await
        .expect("conformance: stream failed to start");
    let mut acc = StreamAccumulator::new();
    let mut after_finish = 0usize;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.expect("conformance: stream yielded an error");
        if acc.is_finished()
            && matches!(
                chunk,
                ChatChunk::TextDelta(_) | ChatChunk::ToolCallDelta { .. }
            )
        {
            after_finish += 1;
        }
        acc.push(&chunk);
    }
    assert_eq!(
        after_finish, 0,
        "conformance: content arrived after the finish chunk"
    );
    assert!(
        acc.is_finished(),
        "conformance: a stream must end with a Finish chunk"
    );
    acc.finish()
        .expect("conformance: streamed chunks must assemble")
}

fn check_text_response(r: &ChatResponse, via: &str) {
    assert_eq!(
        r.message.role,
        Role::Assistant,
        "conformance ({via}): answer role"
    );
    assert!(
        !r.text().trim().is_empty(),
        "conformance ({via}): answer has no text"
    );
    assert!(
        r.tool_calls().is_empty(),
        "conformance ({via}): no tools were offered, yet the answer calls one"
    );
    assert!(
        r.finish_reason.is_some(),
        "conformance ({via}): finish reason missing"
    );
    if let Some(u) = r.usage {
        assert!(
            u.total_tokens >= u.output_tokens,
            "conformance ({via}): usage total below output"
        );
    }
}

fn check_tool_response(r: &ChatResponse, via: &str) {
    assert_eq!(r.message.role, Role::Assistant, "conformance ({via}): role");
    let calls = r.tool_calls();
    assert!(
        !calls.is_empty(),
        "conformance ({via}): expected a tool call"
    );
    for c in calls {
        assert_eq!(c.name, "get_weather", "conformance ({via}): tool name");
        assert!(!c.id.is_empty(), "conformance ({via}): tool call id empty");
        let args = c
            .arguments_json()
            .expect("conformance: tool arguments must be JSON");
        assert!(
            args.is_object(),
            "conformance ({via}): arguments must be an object"
        );
    }
    assert_eq!(
        r.finish_reason,
        Some(FinishReason::ToolCalls),
        "conformance ({via}): finish reason after a tool call"
    );
}

async fn check_invalid(model: &dyn ChatModel) {
    let err = model
        .generate(ChatRequest::new(vec![]))
        .await
        .expect_err("conformance: an empty request must fail");
    assert!(
        matches!(err, Error::InvalidInput(_)),
        "conformance: an empty request must be InvalidInput, got {err:?}"
    );
    assert!(
        model.stream(ChatRequest::new(vec![])).await.is_err(),
        "conformance: an empty streamed request must fail"
    );
}

async fn check_drop_mid_stream(model: &dyn ChatModel) {
    let req = ChatRequest::new(vec![Message::user("Count to twenty.")]);
    let mut stream = model.stream(req).await.expect("conformance: stream failed");
    let first = stream.next().await;
    assert!(
        first.is_some(),
        "conformance: a stream must yield at least one item"
    );
    drop(stream);
}
