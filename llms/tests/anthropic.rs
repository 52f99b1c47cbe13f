//! The Anthropic backend against loopback servers speaking the Messages API wire format:
//! `wiremock` for well-formed exchanges, a raw TCP server for broken streams. Response
//! payloads follow the examples of Anthropic's API reference (Messages, Streaming Messages,
//! Extended thinking, Prompt caching, Tool use, Errors).

#![cfg(feature = "anthropic")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::time::Duration;

use catena_core::test_utils::ChatModelConformance;
use catena_core::{
    collect_stream, ChatChunk, ChatModel, ChatRequest, ContentPart, Error, FinishReason, Message,
    PromptCache, ProviderErrorKind, ReasoningBlock, ReasoningEffort, ReasoningOptions,
    ResponseFormat, RetryPolicy, ToolCall, ToolChoice, ToolDefinition, Usage,
};
use catena_llms::anthropic::AnthropicChatModel;
use catena_llms::HttpOptions;
use futures::StreamExt;
use serde_json::{json, Value};
use support::{chunked_response, close_delimited_response, closed_port, fast_http, raw_server};
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

const KEY: &str = "sk-ant-test-key-0000";

fn chat_at(base: &str) -> AnthropicChatModel {
    AnthropicChatModel::builder()
        .api_key(KEY)
        .base_url(base)
        .http(fast_http())
        .build()
        .unwrap()
}

fn chat(server: &MockServer) -> AnthropicChatModel {
    chat_at(&server.uri())
}

fn no_retry(server: &MockServer) -> AnthropicChatModel {
    AnthropicChatModel::builder()
        .api_key(KEY)
        .base_url(server.uri())
        .http(HttpOptions::new().retry(RetryPolicy::none()))
        .build()
        .unwrap()
}

fn hello() -> ChatRequest {
    ChatRequest::new(vec![Message::user("Hello, Claude")])
}

/// A `message` object as the API reference shows it.
fn message(id: &str, content: Value, stop_reason: &str, usage: Value) -> Value {
    json!({
        "id": id,
        "type": "message",
        "role": "assistant",
        "content": content,
        "model": "claude-sonnet-4-6",
        "stop_reason": stop_reason,
        "stop_sequence": null,
        "usage": usage
    })
}

fn text_message(text: &str) -> Value {
    message(
        "msg_013Zva2CMHLNnXjNJJKqJ2EF",
        json!([{"type": "text", "text": text}]),
        "end_turn",
        json!({"input_tokens": 2095, "output_tokens": 503, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}),
    )
}

fn json_ok(body: Value) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(body)
}

/// SSE events as Anthropic sends them: `event: <type>` then `data: <json>`.
fn sse(events: &[Value]) -> String {
    let mut out = String::new();
    for e in events {
        out.push_str(&format!(
            "event: {}\ndata: {e}\n\n",
            e["type"].as_str().unwrap()
        ));
    }
    out
}

fn sse_template(body: impl Into<String>) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_raw(body.into(), "text/event-stream; charset=utf-8")
}

async fn mount(server: &MockServer, template: impl Respond + 'static) {
    Mock::given(method("POST"))
        .and(path("/v1/messages"))
        .respond_with(template)
        .mount(server)
        .await;
}

async fn bodies(server: &MockServer) -> Vec<Value> {
    server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .map(|r| r.body_json::<Value>().unwrap())
        .collect()
}

fn kind(e: &Error) -> ProviderErrorKind {
    e.provider_kind()
        .cloned()
        .unwrap_or_else(|| panic!("not a provider error: {e:?}"))
}

fn weather_tool() -> ToolDefinition {
    ToolDefinition::new(
        "get_weather",
        "Get the current weather in a given location",
        json!({"type": "object", "properties": {"location": {"type": "string", "description": "The city and state, e.g. San Francisco, CA"}}, "required": ["location"]}),
    )
}

fn time_tool() -> ToolDefinition {
    ToolDefinition::new(
        "get_time",
        "Get the current time in a given time zone",
        json!({"type": "object", "properties": {"timezone": {"type": "string"}}, "required": ["timezone"]}),
    )
}

// ---------------------------------------------------------------- unary

#[tokio::test]
async fn unary_chat_sends_the_documented_request_and_parses_the_answer() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/messages"))
        .and(header("x-api-key", KEY))
        .and(header("anthropic-version", "2023-06-01"))
        .and(header("content-type", "application/json"))
        .respond_with(
            json_ok(text_message("Hi! My name is Claude."))
                .insert_header("request-id", "req_018EeWyXxfu5pfWkrYcMdjWG")
                .insert_header("anthropic-ratelimit-requests-limit", "50")
                .insert_header("anthropic-ratelimit-requests-remaining", "49")
                .insert_header("anthropic-ratelimit-requests-reset", "2099-01-01T00:00:00Z")
                .insert_header("anthropic-ratelimit-tokens-limit", "30000")
                .insert_header("anthropic-ratelimit-tokens-remaining", "27000"),
        )
        .mount(&server)
        .await;
    let req = ChatRequest::new(vec![
        Message::system("You are terse."),
        Message::user("Hello, Claude"),
    ])
    .with_temperature(0.2)
    .with_top_p(0.9)
    .with_max_tokens(1024)
    .with_stop(["\n\nHuman:"]);
    let r = chat(&server).generate(req).await.unwrap();
    assert_eq!(r.text(), "Hi! My name is Claude.");
    assert_eq!(r.finish_reason, Some(FinishReason::Stop));
    assert_eq!(r.id.as_deref(), Some("msg_013Zva2CMHLNnXjNJJKqJ2EF"));
    assert_eq!(r.model.as_deref(), Some("claude-sonnet-4-6"));
    assert_eq!(
        r.usage,
        Some(
            Usage::new(2095, 503)
                .with_cached_input_tokens(0)
                .with_cache_creation_input_tokens(0)
        )
    );
    let rl = r.rate_limit.expect("rate-limit headers are read");
    assert_eq!(rl.limit_requests, Some(50));
    assert_eq!(rl.remaining_requests, Some(49));
    assert_eq!(rl.remaining_tokens, Some(27_000));
    assert!(rl.reset_requests.unwrap() > Duration::from_secs(3600));
    assert_eq!(
        bodies(&server).await[0],
        json!({
            "model": "claude-sonnet-4-6",
            "max_tokens": 1024,
            "system": [{"type": "text", "text": "You are terse."}],
            "messages": [{"role": "user", "content": [{"type": "text", "text": "Hello, Claude"}]}],
            "temperature": 0.2,
            "top_p": 0.9,
            "stop_sequences": ["\n\nHuman:"]
        })
    );
}

#[tokio::test]
async fn system_and_multi_turn_and_default_max_tokens() {
    let server = MockServer::start().await;
    mount(&server, json_ok(text_message("Paris."))).await;
    let req = ChatRequest::new(vec![
        Message::system("Be brief."),
        Message::system("Answer in English."),
        Message::user("Hello there."),
        Message::assistant("Hi, I'm Claude. How can I help you?"),
        Message::user("Can you explain LLMs in plain English?"),
    ])
    .with_model("claude-opus-4-1");
    let model = AnthropicChatModel::builder()
        .api_key(KEY)
        .base_url(server.uri())
        .max_tokens(777)
        .build()
        .unwrap();
    model.generate(req).await.unwrap();
    assert_eq!(
        bodies(&server).await[0],
        json!({
            "model": "claude-opus-4-1",
            "max_tokens": 777,
            "system": [{"type": "text", "text": "Be brief."}, {"type": "text", "text": "Answer in English."}],
            "messages": [
                {"role": "user", "content": [{"type": "text", "text": "Hello there."}]},
                {"role": "assistant", "content": [{"type": "text", "text": "Hi, I'm Claude. How can I help you?"}]},
                {"role": "user", "content": [{"type": "text", "text": "Can you explain LLMs in plain English?"}]}
            ]
        })
    );
}

#[tokio::test]
async fn images_as_base64_and_url_sources() {
    let server = MockServer::start().await;
    mount(&server, json_ok(text_message("Two ants."))).await;
    let req = ChatRequest::new(vec![Message::user_parts(vec![
        ContentPart::image_base64("image/jpeg", "/9j/4AAQSkZJRg=="),
        ContentPart::image_url("https://upload.wikimedia.org/wikipedia/commons/a/a7/Camponotus_flavomarginatus_ant.jpg"),
        ContentPart::text("Compare these two images."),
    ])]);
    chat(&server).generate(req).await.unwrap();
    assert_eq!(
        bodies(&server).await[0]["messages"][0]["content"],
        json!([
            {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg", "data": "/9j/4AAQSkZJRg=="}},
            {"type": "image", "source": {"type": "url", "url": "https://upload.wikimedia.org/wikipedia/commons/a/a7/Camponotus_flavomarginatus_ant.jpg"}},
            {"type": "text", "text": "Compare these two images."}
        ])
    );
    // Images in a system prompt are refused before any I/O.
    let mut system = Message::system("");
    system.content = vec![ContentPart::image_url("https://x/y.png")];
    let bad = ChatRequest::new(vec![system, Message::user("hi")]);
    assert!(matches!(
        chat(&server).generate(bad).await,
        Err(Error::InvalidInput(_))
    ));
    assert_eq!(server.received_requests().await.unwrap().len(), 1);
}

// ---------------------------------------------------------------- tools

#[tokio::test]
async fn parallel_tool_use_keeps_ids_and_tool_results_round_trip() {
    let server = MockServer::start().await;
    let tool_answer = message(
        "msg_01Aq9w938a90dw8q",
        json!([
            {"type": "text", "text": "I'll check both."},
            {"type": "tool_use", "id": "toolu_01A09q90qw90lq917835lq9", "name": "get_weather", "input": {"location": "San Francisco, CA"}},
            {"type": "tool_use", "id": "toolu_01B09q90qw90lq917835lq0", "name": "get_time", "input": {"timezone": "America/Los_Angeles"}}
        ]),
        "tool_use",
        json!({"input_tokens": 472, "output_tokens": 91}),
    );
    Mock::given(method("POST"))
        .respond_with(json_ok(tool_answer))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    mount(
        &server,
        json_ok(text_message("It is 15°C and 9:41 AM in San Francisco.")),
    )
    .await;
    let model = chat(&server);
    let user = Message::user("What's the weather and time in San Francisco?");
    let req = ChatRequest::new(vec![user.clone()]).with_tools([weather_tool(), time_tool()]);
    let first = model.generate(req.clone()).await.unwrap();
    assert_eq!(first.finish_reason, Some(FinishReason::ToolCalls));
    assert_eq!(first.text(), "I'll check both.");
    assert_eq!(
        first.tool_calls(),
        [
            ToolCall::new(
                "toolu_01A09q90qw90lq917835lq9",
                "get_weather",
                r#"{"location":"San Francisco, CA"}"#
            ),
            ToolCall::new(
                "toolu_01B09q90qw90lq917835lq0",
                "get_time",
                r#"{"timezone":"America/Los_Angeles"}"#
            ),
        ]
    );
    let mut follow = req.clone();
    follow.messages = vec![
        user,
        first.message.clone(),
        Message::tool_result("toolu_01A09q90qw90lq917835lq9", "15 degrees"),
        Message::tool_result("toolu_01B09q90qw90lq917835lq0", "9:41 AM"),
    ];
    let answer = model.generate(follow).await.unwrap();
    assert!(answer.text().contains("15°C"));
    let sent = bodies(&server).await;
    assert_eq!(
        sent[0]["tools"],
        json!([
            {"name": "get_weather", "description": "Get the current weather in a given location",
             "input_schema": {"type": "object", "properties": {"location": {"type": "string", "description": "The city and state, e.g. San Francisco, CA"}}, "required": ["location"]}},
            {"name": "get_time", "description": "Get the current time in a given time zone",
             "input_schema": {"type": "object", "properties": {"timezone": {"type": "string"}}, "required": ["timezone"]}}
        ])
    );
    assert_eq!(
        sent[1]["messages"],
        json!([
            {"role": "user", "content": [{"type": "text", "text": "What's the weather and time in San Francisco?"}]},
            {"role": "assistant", "content": [
                {"type": "text", "text": "I'll check both."},
                {"type": "tool_use", "id": "toolu_01A09q90qw90lq917835lq9", "name": "get_weather", "input": {"location": "San Francisco, CA"}},
                {"type": "tool_use", "id": "toolu_01B09q90qw90lq917835lq0", "name": "get_time", "input": {"timezone": "America/Los_Angeles"}}
            ]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_01A09q90qw90lq917835lq9", "content": "15 degrees"},
                {"type": "tool_result", "tool_use_id": "toolu_01B09q90qw90lq917835lq0", "content": "9:41 AM"}
            ]}
        ])
    );
}

#[tokio::test]
async fn tool_choice_variants_and_disable_parallel_tool_use() {
    let server = MockServer::start().await;
    mount(&server, json_ok(text_message("ok"))).await;
    let model = chat(&server);
    let base = hello().with_tools([weather_tool()]);
    let cases = [
        (
            base.clone().with_tool_choice(ToolChoice::Auto),
            json!({"type": "auto"}),
        ),
        (
            base.clone().with_tool_choice(ToolChoice::None),
            json!({"type": "none"}),
        ),
        (
            base.clone().with_tool_choice(ToolChoice::Required),
            json!({"type": "any"}),
        ),
        (
            base.clone()
                .with_tool_choice(ToolChoice::Tool("get_weather".into())),
            json!({"type": "tool", "name": "get_weather"}),
        ),
        (
            base.clone()
                .with_tool_choice(ToolChoice::Required)
                .with_parallel_tool_calls(false),
            json!({"type": "any", "disable_parallel_tool_use": true}),
        ),
        (
            base.clone()
                .with_tool_choice(ToolChoice::Tool("get_weather".into()))
                .with_parallel_tool_calls(false),
            json!({"type": "tool", "name": "get_weather", "disable_parallel_tool_use": true}),
        ),
        (
            base.clone().with_parallel_tool_calls(false),
            json!({"type": "auto", "disable_parallel_tool_use": true}),
        ),
    ];
    for (req, _) in &cases {
        model.generate(req.clone()).await.unwrap();
    }
    model
        .generate(base.clone().with_parallel_tool_calls(true))
        .await
        .unwrap();
    let sent = bodies(&server).await;
    for (i, (_, expected)) in cases.iter().enumerate() {
        assert_eq!(&sent[i]["tool_choice"], expected, "case {i}");
    }
    assert!(sent[cases.len()].get("tool_choice").is_none());
}

#[tokio::test]
async fn structured_output_uses_output_config_format() {
    #[derive(schemars::JsonSchema, serde::Deserialize)]
    #[allow(dead_code)]
    struct Contact {
        name: String,
        email: String,
        plan: Option<String>,
    }
    let server = MockServer::start().await;
    mount(
        &server,
        json_ok(text_message(
            r#"{"name":"John Smith","email":"john@example.com","plan":"Enterprise"}"#,
        )),
    )
    .await;
    let req = ChatRequest::new(vec![Message::user(
        "Extract: John Smith (john@example.com) wants the Enterprise plan.",
    )])
    .with_response_format(ResponseFormat::json_schema_for::<Contact>());
    let r = chat(&server).generate(req).await.unwrap();
    let parsed: Value = serde_json::from_str(&r.text()).unwrap();
    assert_eq!(parsed["email"], "john@example.com");
    let sent = &bodies(&server).await[0];
    let format = &sent["output_config"]["format"];
    assert_eq!(format["type"], "json_schema");
    assert_eq!(format["schema"]["additionalProperties"], false);
    assert_eq!(format["schema"]["properties"]["email"]["type"], "string");
    assert!(sent.get("tools").is_none() && sent.get("tool_choice").is_none());
    // No schema-less JSON mode on Anthropic: refused before any I/O.
    let err = chat(&server)
        .generate(hello().with_response_format(ResponseFormat::JsonObject))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidInput(_)), "{err:?}");
    assert_eq!(server.received_requests().await.unwrap().len(), 1);
}

// ---------------------------------------------------------------- extended thinking

const SIGNATURE: &str =
    "WaUjzkypQ2mUEVM36O2TxuC06KN8xyfbJwyem2dw3URve/op91XWHOEBLLqIOMfFG/UvLEczmEsUjavL";
const REDACTED: &str = "EmwKAhgBEgy3va3pzix/LafPsn4aDFIT2Xlxh0L5L8rLVyIwxtE3rAFBa8cr3qpP";

#[tokio::test]
async fn thinking_blocks_are_kept_and_sent_back_first_with_signatures() {
    let server = MockServer::start().await;
    let first = message(
        "msg_01Thinking",
        json!([
            {"type": "thinking", "thinking": "The user wants the weather in Paris. I should call get_weather.", "signature": SIGNATURE},
            {"type": "redacted_thinking", "data": REDACTED},
            {"type": "text", "text": "Let me check."},
            {"type": "tool_use", "id": "toolu_01CswdEQBMshySk6Y9DFKrfq", "name": "get_weather", "input": {"location": "Paris"}}
        ]),
        "tool_use",
        json!({"input_tokens": 1200, "output_tokens": 410}),
    );
    Mock::given(method("POST"))
        .respond_with(json_ok(first))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    mount(
        &server,
        json_ok(text_message("It is 18°C and sunny in Paris.")),
    )
    .await;
    let model = chat(&server);
    let user = Message::user("What's the weather in Paris?");
    let req = ChatRequest::new(vec![user.clone()])
        .with_tools([weather_tool()])
        .with_max_tokens(16_000)
        .with_reasoning(ReasoningOptions::budget(10_000));
    let r = model.generate(req.clone()).await.unwrap();
    assert_eq!(
        r.message.reasoning,
        vec![
            ReasoningBlock::thinking(
                "The user wants the weather in Paris. I should call get_weather.",
                SIGNATURE
            ),
            ReasoningBlock::encrypted(REDACTED),
        ]
    );
    let mut next = req.clone();
    next.messages = vec![
        user,
        r.message.clone(),
        Message::tool_result("toolu_01CswdEQBMshySk6Y9DFKrfq", "18°C and sunny"),
    ];
    model.generate(next).await.unwrap();
    let sent = bodies(&server).await;
    assert_eq!(
        sent[0]["thinking"],
        json!({"type": "enabled", "budget_tokens": 10000})
    );
    assert_eq!(sent[0]["max_tokens"], 16000);
    assert_eq!(
        sent[1]["messages"][1],
        json!({"role": "assistant", "content": [
            {"type": "thinking", "thinking": "The user wants the weather in Paris. I should call get_weather.", "signature": SIGNATURE},
            {"type": "redacted_thinking", "data": REDACTED},
            {"type": "text", "text": "Let me check."},
            {"type": "tool_use", "id": "toolu_01CswdEQBMshySk6Y9DFKrfq", "name": "get_weather", "input": {"location": "Paris"}}
        ]})
    );
}

#[tokio::test]
async fn redacted_thinking_alone_round_trips_and_unsigned_reasoning_is_not_sent() {
    let server = MockServer::start().await;
    mount(
        &server,
        json_ok(message(
            "msg_01Redacted",
            json!([{"type": "redacted_thinking", "data": REDACTED}, {"type": "text", "text": "Done."}]),
            "end_turn",
            json!({"input_tokens": 10, "output_tokens": 20}),
        )),
    )
    .await;
    let model = chat(&server);
    let req = hello().with_reasoning(ReasoningOptions::effort(ReasoningEffort::Low));
    let r = model.generate(req).await.unwrap();
    assert_eq!(
        r.message.reasoning,
        vec![ReasoningBlock::encrypted(REDACTED)]
    );
    // Another provider's summary (no signature) is left out; the redacted block goes back.
    let mut turn = r.message.clone();
    turn.reasoning
        .insert(0, ReasoningBlock::default().with_text("an OpenAI summary"));
    let next = ChatRequest::new(vec![Message::user("Hello"), turn, Message::user("Again")]);
    model.generate(next).await.unwrap();
    let sent = bodies(&server).await;
    assert_eq!(
        sent[0]["thinking"],
        json!({"type": "enabled", "budget_tokens": 1024})
    );
    assert_eq!(
        sent[0]["max_tokens"], 4096,
        "the default already exceeds 1024"
    );
    assert_eq!(
        sent[1]["messages"][1]["content"],
        json!([{"type": "redacted_thinking", "data": REDACTED}, {"type": "text", "text": "Done."}])
    );
}

// ---------------------------------------------------------------- prompt caching

fn count_breakpoints(v: &Value) -> usize {
    v.to_string().matches("\"cache_control\"").count()
}

#[tokio::test]
async fn cache_control_placement_automatic_manual_ttl_and_limit() {
    let server = MockServer::start().await;
    mount(&server, json_ok(text_message("ok"))).await;
    let model = chat(&server);
    let eph = json!({"type": "ephemeral"});

    // Automatic: last tool, last system block, last message.
    let auto = ChatRequest::new(vec![
        Message::system("Long stable instructions."),
        Message::system("More instructions."),
        Message::user("first"),
        Message::assistant("reply"),
        Message::user("second"),
    ])
    .with_tools([weather_tool(), time_tool()])
    .with_prompt_cache(PromptCache::automatic());
    model.generate(auto.clone()).await.unwrap();

    // Manual: only the marked messages (a system one and a user one).
    let manual = ChatRequest::new(vec![
        Message::system("Long stable instructions.").with_cache_breakpoint(),
        Message::user_parts(vec![
            ContentPart::text("Here is a long document."),
            ContentPart::text("And its appendix."),
        ])
        .with_cache_breakpoint(),
        Message::assistant("Read it."),
        Message::user("Summarise."),
    ])
    .with_tools([weather_tool()])
    .with_prompt_cache(PromptCache::manual());
    model.generate(manual).await.unwrap();

    // One hour.
    model
        .generate(
            auto.clone()
                .with_prompt_cache(PromptCache::automatic().with_ttl(Duration::from_secs(3600))),
        )
        .await
        .unwrap();

    // Too many: automatic (3) plus five marked messages; only the last four are sent.
    let mut many = vec![Message::system("sys")];
    for i in 0..5 {
        many.push(Message::user(format!("q{i}")).with_cache_breakpoint());
        many.push(Message::assistant(format!("a{i}")));
    }
    many.push(Message::user("final"));
    let many = ChatRequest::new(many)
        .with_tools([weather_tool()])
        .with_prompt_cache(PromptCache::automatic());
    model.generate(many).await.unwrap();

    // A breakpoint on a tool result marks the tool_result block.
    let tool_turn = ChatRequest::new(vec![
        Message::user("weather?"),
        Message::assistant_with_tool_calls("", vec![ToolCall::new("toolu_1", "get_weather", "{}")]),
        Message::tool_result("toolu_1", "sunny").with_cache_breakpoint(),
    ]);
    model.generate(tool_turn).await.unwrap();

    let sent = bodies(&server).await;
    let a = &sent[0];
    assert!(a["tools"][0].get("cache_control").is_none());
    assert_eq!(a["tools"][1]["cache_control"], eph);
    assert!(a["system"][0].get("cache_control").is_none());
    assert_eq!(a["system"][1]["cache_control"], eph);
    assert_eq!(a["messages"][2]["content"][0]["cache_control"], eph);
    assert_eq!(count_breakpoints(a), 3);

    let m = &sent[1];
    assert!(m["tools"][0].get("cache_control").is_none());
    assert_eq!(m["system"][0]["cache_control"], eph);
    assert!(m["messages"][0]["content"][0]
        .get("cache_control")
        .is_none());
    assert_eq!(m["messages"][0]["content"][1]["cache_control"], eph);
    assert_eq!(count_breakpoints(m), 2);

    let h = &sent[2];
    let hour = json!({"type": "ephemeral", "ttl": "1h"});
    assert_eq!(h["tools"][1]["cache_control"], hour);
    assert_eq!(h["system"][1]["cache_control"], hour);
    assert_eq!(h["messages"][2]["content"][0]["cache_control"], hour);

    let l = &sent[3];
    assert_eq!(count_breakpoints(l), 4, "{l}");
    assert!(
        l["tools"][0].get("cache_control").is_none(),
        "earliest dropped"
    );
    assert!(
        l["system"][0].get("cache_control").is_none(),
        "earliest dropped"
    );
    let msgs = l["messages"].as_array().unwrap();
    for i in [4, 6, 8, 10] {
        assert_eq!(msgs[i]["content"][0]["cache_control"], eph, "message {i}");
    }

    let t = &sent[4];
    assert_eq!(
        t["messages"][2]["content"][0],
        json!({"type": "tool_result", "tool_use_id": "toolu_1", "content": "sunny", "cache_control": eph})
    );
}

#[tokio::test]
async fn usage_counts_cache_writes_and_reads_in_the_input() {
    let server = MockServer::start().await;
    mount(
        &server,
        json_ok(message(
            "msg_01Cache",
            json!([{"type": "text", "text": "Summary."}]),
            "end_turn",
            json!({"input_tokens": 21, "cache_creation_input_tokens": 188086, "cache_read_input_tokens": 1500,
                   "cache_creation": {"ephemeral_5m_input_tokens": 188086, "ephemeral_1h_input_tokens": 0},
                   "output_tokens": 393, "service_tier": "standard"}),
        )),
    )
    .await;
    let r = chat(&server).generate(hello()).await.unwrap();
    let u = r.usage.unwrap();
    assert_eq!(u.input_tokens, 21 + 188_086 + 1500);
    assert_eq!(u.output_tokens, 393);
    assert_eq!(u.total_tokens, 21 + 188_086 + 1500 + 393);
    assert_eq!(u.cached_input_tokens, Some(1500));
    assert_eq!(u.cache_creation_input_tokens, Some(188_086));
}

// ---------------------------------------------------------------- streaming

/// A recorded-style transcript using every event and delta type: thinking with its
/// signature, text, a `citations_delta` (ignored), two tool calls whose input arrives in
/// many pieces, pings, an event type from the future, cumulative usage.
fn full_transcript() -> String {
    let mut events = vec![
        json!({"type": "message_start", "message": {"id": "msg_014p7gG3wDgGV9EUtLvnow3U", "type": "message", "role": "assistant", "model": "claude-sonnet-4-6", "content": [], "stop_reason": null, "stop_sequence": null,
            "usage": {"input_tokens": 472, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 2048, "output_tokens": 2}}}),
        json!({"type": "content_block_start", "index": 0, "content_block": {"type": "thinking", "thinking": "", "signature": ""}}),
        json!({"type": "ping"}),
        json!({"type": "content_block_delta", "index": 0, "delta": {"type": "thinking_delta", "thinking": "I need to find "}}),
        json!({"type": "content_block_delta", "index": 0, "delta": {"type": "thinking_delta", "thinking": "the weather and time."}}),
        json!({"type": "content_block_delta", "index": 0, "delta": {"type": "signature_delta", "signature": SIGNATURE}}),
        json!({"type": "content_block_stop", "index": 0}),
        json!({"type": "content_block_start", "index": 1, "content_block": {"type": "text", "text": ""}}),
        json!({"type": "content_block_delta", "index": 1, "delta": {"type": "text_delta", "text": "Okay, let's check "}}),
        json!({"type": "content_block_delta", "index": 1, "delta": {"type": "citations_delta", "citation": {"type": "char_location", "cited_text": "x", "document_index": 0, "start_char_index": 0, "end_char_index": 1}}}),
        json!({"type": "content_block_delta", "index": 1, "delta": {"type": "text_delta", "text": "both."}}),
        json!({"type": "content_block_stop", "index": 1}),
        json!({"type": "content_block_start", "index": 2, "content_block": {"type": "tool_use", "id": "toolu_01T1x1fJ34qAmk2tNTrN7Up6", "name": "get_weather", "input": {}}}),
    ];
    let json1 = r#"{"location": "San Francisco, CA", "unit": "fahrenheit"}"#;
    for piece in json1.as_bytes().chunks(7) {
        events.push(json!({"type": "content_block_delta", "index": 2, "delta": {"type": "input_json_delta", "partial_json": std::str::from_utf8(piece).unwrap()}}));
    }
    events.push(json!({"type": "content_block_stop", "index": 2}));
    events.push(json!({"type": "ping"}));
    events.push(json!({"type": "content_block_start", "index": 3, "content_block": {"type": "tool_use", "id": "toolu_01B2", "name": "get_time", "input": {}}}));
    events.push(json!({"type": "content_block_delta", "index": 3, "delta": {"type": "input_json_delta", "partial_json": ""}}));
    events.push(json!({"type": "content_block_delta", "index": 3, "delta": {"type": "input_json_delta", "partial_json": "{\"timezone\": \"America/Los_Angeles\"}"}}));
    events.push(json!({"type": "content_block_stop", "index": 3}));
    events.push(json!({"type": "some_future_event", "payload": {"x": 1}}));
    events.push(json!({"type": "message_delta", "delta": {"stop_reason": "tool_use", "stop_sequence": null}, "usage": {"output_tokens": 89}}));
    events.push(json!({"type": "message_stop"}));
    sse(&events)
}

#[tokio::test]
async fn streaming_decodes_every_event_type() {
    let server = MockServer::start().await;
    mount(
        &server,
        sse_template(full_transcript())
            .insert_header("anthropic-ratelimit-requests-remaining", "7")
            .insert_header("request-id", "req_stream"),
    )
    .await;
    let req = hello().with_tools([weather_tool(), time_tool()]);
    let mut stream = chat(&server).stream(req).await.unwrap();
    let mut chunks = Vec::new();
    while let Some(c) = stream.next().await {
        chunks.push(c.unwrap());
    }
    assert!(matches!(&chunks[0], ChatChunk::RateLimit(r) if r.remaining_requests == Some(7)));
    assert_eq!(
        chunks[1],
        ChatChunk::ResponseId("msg_014p7gG3wDgGV9EUtLvnow3U".into())
    );
    assert_eq!(chunks[2], ChatChunk::Model("claude-sonnet-4-6".into()));
    assert_eq!(
        chunks.last(),
        Some(&ChatChunk::Finish(FinishReason::ToolCalls))
    );
    let tool_deltas: Vec<(usize, Option<&str>, Option<&str>)> = chunks
        .iter()
        .filter_map(|c| match c {
            ChatChunk::ToolCallDelta {
                index, id, name, ..
            } => Some((*index, id.as_deref(), name.as_deref())),
            _ => None,
        })
        .collect();
    assert_eq!(
        tool_deltas[0],
        (
            0,
            Some("toolu_01T1x1fJ34qAmk2tNTrN7Up6"),
            Some("get_weather")
        )
    );
    assert!(
        tool_deltas.len() > 8,
        "input_json_delta pieces arrive one by one"
    );
    assert!(tool_deltas[1..]
        .iter()
        .all(|(_, id, name)| id.is_none() == name.is_none()));
    assert!(chunks.iter().any(|c| matches!(c, ChatChunk::ReasoningDelta { index: 0, signature: Some(s), .. } if s == SIGNATURE)));
    let usages: Vec<&Usage> = chunks
        .iter()
        .filter_map(|c| match c {
            ChatChunk::Usage(u) => Some(u),
            _ => None,
        })
        .collect();
    assert_eq!(usages.len(), 2, "message_start and message_delta");

    let mut acc = catena_core::StreamAccumulator::new();
    for c in &chunks {
        acc.push(c);
    }
    let r = acc.finish().unwrap();
    assert_eq!(r.text(), "Okay, let's check both.");
    assert_eq!(
        r.message.reasoning,
        vec![ReasoningBlock::thinking(
            "I need to find the weather and time.",
            SIGNATURE
        )]
    );
    assert_eq!(
        r.tool_calls(),
        [
            ToolCall::new(
                "toolu_01T1x1fJ34qAmk2tNTrN7Up6",
                "get_weather",
                r#"{"location": "San Francisco, CA", "unit": "fahrenheit"}"#
            ),
            ToolCall::new(
                "toolu_01B2",
                "get_time",
                r#"{"timezone": "America/Los_Angeles"}"#
            ),
        ]
    );
    assert_eq!(
        r.usage,
        Some(
            Usage::new(472 + 2048, 89)
                .with_cached_input_tokens(2048)
                .with_cache_creation_input_tokens(0)
        )
    );
    assert_eq!(r.id.as_deref(), Some("msg_014p7gG3wDgGV9EUtLvnow3U"));
    assert_eq!(r.rate_limit.unwrap().remaining_requests, Some(7));
    let sent = &bodies(&server).await[0];
    assert_eq!(sent["stream"], true);
    assert_eq!(
        server.received_requests().await.unwrap()[0].headers["accept"],
        "text/event-stream"
    );
}

#[tokio::test]
async fn streamed_text_equals_the_unary_answer() {
    let server = MockServer::start().await;
    let events = [
        json!({"type": "message_start", "message": {"id": "msg_013Zva2CMHLNnXjNJJKqJ2EF", "type": "message", "role": "assistant", "model": "claude-sonnet-4-6", "content": [], "stop_reason": null, "stop_sequence": null, "usage": {"input_tokens": 2095, "output_tokens": 1, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}}}),
        json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
        json!({"type": "ping"}),
        json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hi! My name "}}),
        json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "is Claude."}}),
        json!({"type": "content_block_stop", "index": 0}),
        json!({"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": null}, "usage": {"output_tokens": 503}}),
        json!({"type": "message_stop"}),
    ];
    Mock::given(method("POST"))
        .respond_with(sse_template(sse(&events)))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    mount(&server, json_ok(text_message("Hi! My name is Claude."))).await;
    let model = chat(&server);
    let streamed = collect_stream(model.stream(hello()).await.unwrap())
        .await
        .unwrap();
    let unary = model.generate(hello()).await.unwrap();
    assert_eq!(streamed, unary);
}

async fn drain(model: &AnthropicChatModel) -> (Vec<ChatChunk>, Option<Error>) {
    let mut stream = model.stream(hello()).await.unwrap();
    let mut chunks = Vec::new();
    while let Some(item) = stream.next().await {
        match item {
            Ok(c) => chunks.push(c),
            Err(e) => {
                assert!(stream.next().await.is_none(), "nothing follows an error");
                return (chunks, Some(e));
            }
        }
    }
    (chunks, None)
}

fn texts(chunks: &[ChatChunk]) -> String {
    chunks
        .iter()
        .filter_map(|c| match c {
            ChatChunk::TextDelta(t) => Some(t.as_str()),
            _ => None,
        })
        .collect()
}

fn start_and_text(text: &str) -> Vec<Value> {
    vec![
        json!({"type": "message_start", "message": {"id": "msg_cut", "type": "message", "role": "assistant", "model": "claude-sonnet-4-6", "content": [], "stop_reason": null, "stop_sequence": null, "usage": {"input_tokens": 5, "output_tokens": 1}}}),
        json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
        json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": text}}),
    ]
}

#[tokio::test]
async fn stream_cut_before_message_stop_is_interrupted() {
    let events = start_and_text("Hello wor");
    let a = sse(&events[..2]);
    let b = sse(&events[2..]);
    let mut done = events.clone();
    done.push(json!({"type": "content_block_stop", "index": 0}));
    done.push(json!({"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": null}, "usage": {"output_tokens": 3}}));
    let clean = sse(&done);
    let (addr, _server) = raw_server(vec![
        chunked_response("text/event-stream", &[&a, &b], false),
        close_delimited_response("text/event-stream", &clean),
    ])
    .await;
    let model = chat_at(&format!("http://{addr}"));
    // Cut mid-body.
    let (chunks, err) = drain(&model).await;
    assert_eq!(texts(&chunks), "Hello wor");
    let err = err.expect("a cut stream ends with an error");
    assert_eq!(kind(&err), ProviderErrorKind::StreamInterrupted, "{err}");
    assert!(err.to_string().contains("Hello wor"), "{err}");
    assert!(err.is_retryable());
    // Closed cleanly after message_delta but before message_stop: no Finish, an error.
    let (chunks, err) = drain(&model).await;
    assert!(!chunks.iter().any(|c| matches!(c, ChatChunk::Finish(_))));
    assert_eq!(kind(&err.unwrap()), ProviderErrorKind::StreamInterrupted);
}

#[tokio::test]
async fn overloaded_error_event_mid_stream_is_a_typed_retryable_error() {
    let server = MockServer::start().await;
    let mut events = start_and_text("Partial answer");
    events.push(
        json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}),
    );
    events.push(json!({"type": "message_stop"}));
    mount(&server, sse_template(sse(&events))).await;
    let (chunks, err) = drain(&chat(&server)).await;
    assert_eq!(texts(&chunks), "Partial answer");
    let err = err.unwrap();
    assert_eq!(kind(&err), ProviderErrorKind::Server);
    assert!(err.is_retryable());
    assert_eq!(err.as_provider().unwrap().status, Some(529));
    assert!(err.to_string().contains("Overloaded"), "{err}");
    assert!(err.to_string().contains("Partial answer"), "{err}");
}

#[tokio::test]
async fn malformed_stream_event_is_malformed_response() {
    let server = MockServer::start().await;
    let mut body = sse(&start_and_text("a"));
    body.push_str("event: content_block_delta\ndata: {not json\n\n");
    mount(&server, sse_template(body)).await;
    let (_, err) = drain(&chat(&server)).await;
    assert_eq!(kind(&err.unwrap()), ProviderErrorKind::MalformedResponse);
}

// ---------------------------------------------------------------- HTTP errors and retries

fn error_body(kind: &str, message: &str) -> Value {
    json!({"type": "error", "error": {"type": kind, "message": message}, "request_id": "req_011CSHoEeqs5C35K2UUqR7Fy"})
}

#[tokio::test]
async fn each_http_error_type_is_classified() {
    let cases: [(u16, &str, &str, ProviderErrorKind); 9] = [
        (
            400,
            "invalid_request_error",
            "messages: roles must alternate",
            ProviderErrorKind::InvalidRequest,
        ),
        (
            400,
            "invalid_request_error",
            "prompt is too long: 215343 tokens > 200000 maximum",
            ProviderErrorKind::ContextLengthExceeded,
        ),
        (
            401,
            "authentication_error",
            "invalid x-api-key",
            ProviderErrorKind::Auth,
        ),
        (
            403,
            "permission_error",
            "Your API key does not have permission to use the specified resource.",
            ProviderErrorKind::PermissionDenied,
        ),
        (
            404,
            "not_found_error",
            "model: claude-nope",
            ProviderErrorKind::ModelNotFound,
        ),
        (
            413,
            "request_too_large",
            "Request exceeds the maximum allowed number of bytes.",
            ProviderErrorKind::InvalidRequest,
        ),
        (
            429,
            "rate_limit_error",
            "Number of request tokens has exceeded your per-minute rate limit",
            ProviderErrorKind::RateLimited,
        ),
        (
            500,
            "api_error",
            "Internal server error",
            ProviderErrorKind::Server,
        ),
        (
            529,
            "overloaded_error",
            "Overloaded",
            ProviderErrorKind::Server,
        ),
    ];
    for (status, type_, msg, expected) in cases {
        let server = MockServer::start().await;
        let mut template = ResponseTemplate::new(status)
            .set_body_json(error_body(type_, msg))
            .insert_header("request-id", "req_011CSHoEeqs5C35K2UUqR7Fy");
        if matches!(status, 429 | 529) {
            template = template.insert_header("retry-after", "17");
        }
        mount(&server, template).await;
        let err = no_retry(&server).generate(hello()).await.unwrap_err();
        assert_eq!(kind(&err), expected, "{status} {type_}: {err}");
        let p = err.as_provider().unwrap();
        assert_eq!(p.status, Some(status));
        assert_eq!(
            p.request_id.as_deref(),
            Some("req_011CSHoEeqs5C35K2UUqR7Fy")
        );
        assert!(p.message.contains(msg) && p.message.contains(type_), "{p}");
        assert_eq!(
            err.is_retryable(),
            matches!(status, 429 | 500 | 529),
            "{status}"
        );
        if matches!(status, 429 | 529) {
            assert_eq!(err.retry_after(), Some(Duration::from_secs(17)), "{status}");
        }
        // The same from `stream()`.
        let err = no_retry(&server).stream(hello()).await.err().unwrap();
        assert_eq!(kind(&err), expected, "stream {status}");
    }
}

#[tokio::test]
async fn overloaded_529_is_retried_by_the_policy_and_honours_retry_after() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(529)
                .set_body_json(error_body("overloaded_error", "Overloaded"))
                .insert_header("retry-after", "1"),
        )
        .up_to_n_times(1)
        .mount(&server)
        .await;
    mount(&server, json_ok(text_message("Hi! My name is Claude."))).await;
    let start = std::time::Instant::now();
    let r = chat(&server).generate(hello()).await.unwrap();
    assert!(start.elapsed() >= Duration::from_secs(1), "waited as told");
    assert_eq!(r.text(), "Hi! My name is Claude.");
    assert_eq!(server.received_requests().await.unwrap().len(), 2);

    // Streams are retried until their headers arrive.
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(529).set_body_json(error_body("overloaded_error", "Overloaded")),
        )
        .up_to_n_times(2)
        .mount(&server)
        .await;
    let mut events = start_and_text("Hi");
    events.push(json!({"type": "content_block_stop", "index": 0}));
    events.push(json!({"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 2}}));
    events.push(json!({"type": "message_stop"}));
    mount(&server, sse_template(sse(&events))).await;
    let r = collect_stream(chat(&server).stream(hello()).await.unwrap())
        .await
        .unwrap();
    assert_eq!(r.text(), "Hi");
    assert_eq!(server.received_requests().await.unwrap().len(), 3);

    // Persistent overload: 1 attempt + 2 retries, then the typed error.
    let server = MockServer::start().await;
    mount(
        &server,
        ResponseTemplate::new(529).set_body_json(error_body("overloaded_error", "Overloaded")),
    )
    .await;
    let err = chat(&server).generate(hello()).await.unwrap_err();
    assert_eq!(kind(&err), ProviderErrorKind::Server);
    assert_eq!(err.as_provider().unwrap().status, Some(529));
    assert_eq!(server.received_requests().await.unwrap().len(), 3);
}

#[tokio::test]
async fn malformed_json_body_is_malformed_response() {
    let server = MockServer::start().await;
    mount(
        &server,
        ResponseTemplate::new(200)
            .set_body_raw("{\"id\": \"msg_1\", \"content\": ", "application/json"),
    )
    .await;
    let err = no_retry(&server).generate(hello()).await.unwrap_err();
    assert_eq!(kind(&err), ProviderErrorKind::MalformedResponse);
}

#[tokio::test]
async fn invalid_requests_fail_before_any_io() {
    let server = MockServer::start().await;
    mount(&server, json_ok(text_message("x"))).await;
    let model = chat(&server);
    assert!(matches!(
        model.generate(ChatRequest::new(vec![])).await,
        Err(Error::InvalidInput(_))
    ));
    let bad_args = ChatRequest::new(vec![
        Message::user("hi"),
        Message::assistant_with_tool_calls("", vec![ToolCall::new("t", "f", "{not json")]),
        Message::tool_result("t", "r"),
    ]);
    assert!(matches!(
        model.generate(bad_args).await,
        Err(Error::InvalidInput(_))
    ));
    let small = hello()
        .with_max_tokens(100)
        .with_reasoning(ReasoningOptions::budget(2048));
    assert!(matches!(
        model.generate(small).await,
        Err(Error::InvalidInput(_))
    ));
    assert!(server.received_requests().await.unwrap().is_empty());
}

#[tokio::test]
async fn builder_rules_and_model_info() {
    assert!(matches!(
        AnthropicChatModel::builder().build(),
        Err(Error::InvalidConfig(_))
    ));
    assert!(
        AnthropicChatModel::builder()
            .base_url("http://127.0.0.1:9/")
            .build()
            .is_ok(),
        "gateways may go without a key"
    );
    assert!(matches!(
        AnthropicChatModel::builder()
            .api_key(KEY)
            .model(" ")
            .build(),
        Err(Error::InvalidConfig(_))
    ));
    let m = AnthropicChatModel::builder().api_key(KEY).build().unwrap();
    assert_eq!(m.model(), catena_llms::anthropic::DEFAULT_CHAT_MODEL);
    assert_eq!(m.base_url(), "https://api.anthropic.com");
    let info = m.model_info();
    assert!(info.supports_tools && info.supports_images && info.supports_streaming);
    assert!(info.supports_json_schema);
    assert_eq!(info.provider, "anthropic");

    // Extra headers (e.g. `anthropic-beta`) go on every request.
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(header("anthropic-beta", "context-1m-2025-08-07"))
        .respond_with(json_ok(text_message("ok")))
        .mount(&server)
        .await;
    AnthropicChatModel::builder()
        .api_key(KEY)
        .base_url(server.uri())
        .default_header("anthropic-beta", "context-1m-2025-08-07")
        .build()
        .unwrap()
        .generate(hello())
        .await
        .unwrap();
}

// ---------------------------------------------------------------- chat conformance

/// Answers what the conformance suite sends: a `get_weather` call when `tool_choice` names
/// it, text otherwise (including after a tool result); SSE when `stream` is set.
struct ConformanceResponder;

impl Respond for ConformanceResponder {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        let body: Value = req.body_json().unwrap();
        let stream = body["stream"] == true;
        let wants_tool = body["tool_choice"]["name"] == "get_weather";
        let last = body["messages"].as_array().unwrap().last().unwrap().clone();
        let after_tool = last["content"][0]["type"] == "tool_result";
        let text = if after_tool {
            "It is 18°C and sunny in Paris."
        } else {
            "Hello there!"
        };
        let usage = json!({"input_tokens": 12, "output_tokens": 5, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0});
        let start = json!({"type": "message_start", "message": {"id": "msg_conf", "type": "message", "role": "assistant", "model": "claude-sonnet-4-6", "content": [], "stop_reason": null, "stop_sequence": null,
            "usage": {"input_tokens": 12, "output_tokens": 1, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}}});
        let stop = |reason: &str| {
            vec![
                json!({"type": "message_delta", "delta": {"stop_reason": reason, "stop_sequence": null}, "usage": {"output_tokens": 5}}),
                json!({"type": "message_stop"}),
            ]
        };
        if wants_tool {
            if stream {
                let mut events = vec![
                    start,
                    json!({"type": "content_block_start", "index": 0, "content_block": {"type": "tool_use", "id": "toolu_conf", "name": "get_weather", "input": {}}}),
                    json!({"type": "content_block_delta", "index": 0, "delta": {"type": "input_json_delta", "partial_json": "{\"city\":"}}),
                    json!({"type": "ping"}),
                    json!({"type": "content_block_delta", "index": 0, "delta": {"type": "input_json_delta", "partial_json": "\"Paris\"}"}}),
                    json!({"type": "content_block_stop", "index": 0}),
                ];
                events.extend(stop("tool_use"));
                return sse_template(sse(&events));
            }
            return json_ok(message(
                "msg_conf",
                json!([{"type": "tool_use", "id": "toolu_conf", "name": "get_weather", "input": {"city": "Paris"}}]),
                "tool_use",
                usage,
            ));
        }
        if stream {
            let (a, b) = text.split_at(5);
            let mut events = vec![
                start,
                json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
                json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": a}}),
                json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": b}}),
                json!({"type": "content_block_stop", "index": 0}),
            ];
            events.extend(stop("end_turn"));
            return sse_template(sse(&events));
        }
        json_ok(message(
            "msg_conf",
            json!([{"type": "text", "text": text}]),
            "end_turn",
            usage,
        ))
    }
}

#[tokio::test]
async fn chat_conformance_suite() {
    let server = MockServer::start().await;
    mount(&server, ConformanceResponder).await;
    ChatModelConformance::new()
        .deterministic(true)
        .run(&chat(&server))
        .await;
}

// ---------------------------------------------------------------- secrets

const SECRET: &str = "sk-ant-api03-SECRETKEY-1234567890abcdef";

fn assert_no_secret(what: &str, text: &str) {
    for w in SECRET.as_bytes().windows(8) {
        let w = std::str::from_utf8(w).unwrap();
        assert!(!text.contains(w), "{what} leaks `{w}`: {text}");
    }
}

/// Echoes the `x-api-key` header back, as a careless proxy might.
struct EchoKey {
    status: u16,
    json: bool,
}

impl Respond for EchoKey {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        let key = req.headers["x-api-key"].to_str().unwrap().to_owned();
        if self.json {
            ResponseTemplate::new(self.status)
                .set_body_json(error_body(
                    "authentication_error",
                    &format!("invalid x-api-key: {key}"),
                ))
                .insert_header("request-id", format!("req_1 {key}").as_str())
        } else {
            // Long enough that the fallback message (500 chars) cuts inside the key.
            let pad = "x".repeat(500 - "Bad header: sk-ant-api03-SECRET".len());
            ResponseTemplate::new(self.status)
                .set_body_string(format!("{pad}Bad header: {key} (and again: {key})"))
        }
    }
}

#[tokio::test]
async fn the_key_never_appears_in_errors_or_debug_output() {
    let mut outputs: Vec<(String, String)> = Vec::new();
    let build = |base: String| {
        AnthropicChatModel::builder()
            .api_key(SECRET)
            .base_url(base)
            .http(HttpOptions::new().retry(RetryPolicy::none()))
            .build()
            .unwrap()
    };
    let mut record = |what: &str, e: &Error| {
        outputs.push((format!("{what} Display"), format!("{e}")));
        outputs.push((format!("{what} Debug"), format!("{e:?}")));
    };
    for (status, json) in [(401, true), (401, false), (529, true)] {
        let server = MockServer::start().await;
        mount(&server, EchoKey { status, json }).await;
        let model = build(server.uri());
        let e = model.generate(hello()).await.unwrap_err();
        assert!(e.to_string().contains("<redacted>"), "{e}");
        record(&format!("{status} echo"), &e);
        let e = model.stream(hello()).await.err().unwrap();
        record(&format!("{status} echo (stream)"), &e);
    }
    // An error event mid-stream echoing the key.
    let server = MockServer::start().await;
    let mut events = start_and_text("x");
    events.push(json!({"type": "error", "error": {"type": "api_error", "message": format!("bad key {SECRET}")}}));
    mount(&server, sse_template(sse(&events))).await;
    let (_, e) = drain(&build(server.uri())).await;
    record("stream error event", &e.unwrap());
    // Transport error to a closed port.
    let model = build(format!("http://{}", closed_port()));
    let e = model.generate(hello()).await.unwrap_err();
    assert_eq!(kind(&e), ProviderErrorKind::Transport);
    record("transport", &e);
    // Malformed response.
    let server = MockServer::start().await;
    mount(
        &server,
        ResponseTemplate::new(200).set_body_raw("{oops", "application/json"),
    )
    .await;
    let model = build(server.uri());
    record("malformed", &model.generate(hello()).await.unwrap_err());
    outputs.push(("model Debug".into(), format!("{model:?}")));
    let builder = AnthropicChatModel::builder().api_key(SECRET);
    outputs.push(("builder Debug".into(), format!("{builder:?}")));
    for (what, text) in &outputs {
        assert_no_secret(what, text);
    }
}
