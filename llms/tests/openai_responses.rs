//! The OpenAI Responses API client against loopback servers speaking its wire format:
//! `wiremock` for well-formed exchanges, a raw TCP server for broken streams. Payloads follow
//! the examples of OpenAI's API reference for `POST /v1/responses` and its streaming events.

#![cfg(feature = "openai")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::time::Duration;

use catena_core::test_utils::ChatModelConformance;
use catena_core::{
    collect_stream, ChatChunk, ChatModel, ChatRequest, ChatResponse, Error, FinishReason, Message,
    PromptCache, ProviderErrorKind, ReasoningBlock, ReasoningEffort, ReasoningOptions,
    ResponseFormat, RetryPolicy, StreamAccumulator, ToolCall, ToolChoice, ToolDefinition, Usage,
};
use catena_llms::openai::OpenAiResponsesModel;
use catena_llms::HttpOptions;
use futures::StreamExt;
use serde_json::{json, Value};
use support::{chunked_response, close_delimited_response, fast_http, raw_server, request_body};
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

const KEY: &str = "sk-test-key-0000";
const PATH: &str = "/v1/responses";

fn model_at(base: &str) -> OpenAiResponsesModel {
    OpenAiResponsesModel::builder()
        .api_key(KEY)
        .base_url(format!("{base}/v1"))
        .http(fast_http())
        .build()
        .unwrap()
}

fn model(server: &MockServer) -> OpenAiResponsesModel {
    model_at(&server.uri())
}

fn kind(e: &Error) -> ProviderErrorKind {
    e.provider_kind()
        .cloned()
        .unwrap_or_else(|| panic!("not a provider error: {e:?}"))
}

async fn mount(server: &MockServer, template: impl Respond + 'static) {
    Mock::given(method("POST"))
        .and(path(PATH))
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

fn json_template(body: &Value) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(body)
}

/// Server-sent events as OpenAI writes them: `event: <type>` then `data: <json>`.
fn sse(events: &[Value]) -> String {
    events
        .iter()
        .map(|e| format!("event: {}\ndata: {e}\n\n", e["type"].as_str().unwrap()))
        .collect()
}

fn sse_template(events: &[Value]) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_raw(sse(events), "text/event-stream")
}

fn weather_tool() -> ToolDefinition {
    ToolDefinition::new(
        "get_current_weather",
        "Get the current weather in a given location",
        json!({
            "type": "object",
            "properties": {
                "location": {"type": "string", "description": "The city and state, e.g. San Francisco, CA"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}
            },
            "required": ["location", "unit"]
        }),
    )
}

/// A `response` object as the reference shows it, with `output` and `usage` given.
fn response_object(id: &str, status: &str, output: Value, usage: Value) -> Value {
    json!({
        "id": id,
        "object": "response",
        "created_at": 1741476542,
        "status": status,
        "error": null,
        "incomplete_details": null,
        "instructions": null,
        "max_output_tokens": null,
        "model": "gpt-4.1-2025-04-14",
        "output": output,
        "parallel_tool_calls": true,
        "previous_response_id": null,
        "reasoning": {"effort": null, "summary": null},
        "store": false,
        "temperature": 1.0,
        "text": {"format": {"type": "text"}},
        "tool_choice": "auto",
        "tools": [],
        "top_p": 1.0,
        "truncation": "disabled",
        "usage": usage,
        "user": null,
        "metadata": {}
    })
}

fn usage_object(input: u64, cached: u64, output: u64, reasoning: u64) -> Value {
    json!({
        "input_tokens": input,
        "input_tokens_details": {"cached_tokens": cached},
        "output_tokens": output,
        "output_tokens_details": {"reasoning_tokens": reasoning},
        "total_tokens": input + output
    })
}

const STORY: &str = "In a peaceful grove beneath a silver moon, a unicorn named Lumina discovered a hidden pool that reflected the stars. As she dipped her horn into the water, the pool began to shimmer, revealing a pathway to a magical realm of endless night skies. Filled with wonder, Lumina whispered a wish for all who dream to find their own hidden magic, and as she glanced back, her hoofprints sparkled like stardust.";

fn story_response() -> Value {
    response_object(
        "resp_67ccd2bed1ec8190b14f964abc0542670bb6a6b452d3795b",
        "completed",
        json!([{
            "type": "message",
            "id": "msg_67ccd2bf17f0819081ff3bb2cf6508e60bb6a6b452d3795b",
            "status": "completed",
            "role": "assistant",
            "content": [{"type": "output_text", "text": STORY, "annotations": []}]
        }]),
        usage_object(36, 0, 87, 0),
    )
}

fn function_call_item(id: &str, call_id: &str, arguments: &str) -> Value {
    json!({
        "type": "function_call",
        "id": id,
        "call_id": call_id,
        "name": "get_current_weather",
        "arguments": arguments,
        "status": "completed"
    })
}

const ENCRYPTED: &str = "gAAAAABoISQ24OyVRYbkYfukAz8sVb-8ni5Q3m3H1PUW0OtuEYMwpBThtMSwCqDETiKAOAeq7vdt2z8_b8O0n4ZEW9AEVqUtdNP4Qm9m7I5K1I3xHOP4_wmo76CGp9NDk_A81tpUKHaj0wJp2AqvXbWN7KxmtMd8pC9cqxzCAJMmOuY=";

fn reasoning_item() -> Value {
    json!({
        "type": "reasoning",
        "id": "rs_6820f383d7c08191846711c5df8233bc0ac5ba57aafcbac7",
        "summary": [
            {"type": "summary_text", "text": "**Checking the weather**\n\nThe user wants Boston's weather; I should call the tool."},
            {"type": "summary_text", "text": "**Choosing units**\n\nCelsius was asked for."}
        ],
        "encrypted_content": ENCRYPTED
    })
}

fn expected_reasoning() -> ReasoningBlock {
    ReasoningBlock::encrypted(ENCRYPTED)
        .with_id("rs_6820f383d7c08191846711c5df8233bc0ac5ba57aafcbac7")
        .with_text("**Checking the weather**\n\nThe user wants Boston's weather; I should call the tool.\n\n**Choosing units**\n\nCelsius was asked for.")
}

// ---------------------------------------------------------------- unary

#[tokio::test]
async fn unary_text_sends_the_documented_request_and_parses_the_answer() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(PATH))
        .and(header("authorization", "Bearer sk-test-key-0000"))
        .and(header("content-type", "application/json"))
        .respond_with(
            json_template(&story_response())
                .insert_header("x-request-id", "req_1")
                .insert_header("x-ratelimit-limit-requests", "10000")
                .insert_header("x-ratelimit-remaining-requests", "9999")
                .insert_header("x-ratelimit-reset-requests", "6ms")
                .insert_header("x-ratelimit-remaining-tokens", "29920")
                .insert_header("x-ratelimit-reset-tokens", "1m2.5s"),
        )
        .expect(1)
        .mount(&server)
        .await;
    let req = ChatRequest::new(vec![
        Message::system("You are a storyteller."),
        Message::user("Tell me a three sentence bedtime story about a unicorn."),
    ])
    .with_temperature(0.2)
    .with_top_p(0.9)
    .with_max_tokens(256)
    .with_seed(7);
    let r = model(&server).generate(req).await.unwrap();
    assert_eq!(r.text(), STORY);
    assert_eq!(r.finish_reason, Some(FinishReason::Stop));
    assert_eq!(
        r.id.as_deref(),
        Some("resp_67ccd2bed1ec8190b14f964abc0542670bb6a6b452d3795b")
    );
    assert_eq!(r.model.as_deref(), Some("gpt-4.1-2025-04-14"));
    assert_eq!(
        r.usage,
        Some(
            Usage::new(36, 87)
                .with_total_tokens(123)
                .with_cached_input_tokens(0)
                .with_reasoning_tokens(0)
        )
    );
    let rl = r.rate_limit.unwrap();
    assert_eq!(rl.limit_requests, Some(10_000));
    assert_eq!(rl.remaining_requests, Some(9_999));
    assert_eq!(rl.reset_requests, Some(Duration::from_millis(6)));
    assert_eq!(rl.remaining_tokens, Some(29_920));
    assert_eq!(rl.reset_tokens, Some(Duration::from_millis(62_500)));
    assert!(r.message.reasoning.is_empty());
    assert_eq!(
        bodies(&server).await[0],
        json!({
            "model": "gpt-4o-mini",
            "input": [
                {"type": "message", "role": "developer", "content": "You are a storyteller."},
                {"type": "message", "role": "user", "content": "Tell me a three sentence bedtime story about a unicorn."}
            ],
            "store": false,
            "max_output_tokens": 256,
            "temperature": 0.2,
            "top_p": 0.9
        }),
        "no seed: the Responses API has none"
    );
}

#[tokio::test]
async fn system_messages_go_as_developer_or_system() {
    let server = MockServer::start().await;
    mount(&server, json_template(&story_response())).await;
    let req = ChatRequest::new(vec![Message::system("Be brief."), Message::user("Hi")]);
    model(&server).generate(req.clone()).await.unwrap();
    let legacy = OpenAiResponsesModel::builder()
        .base_url(format!("{}/v1", server.uri()))
        .developer_role(false)
        .model("llama-3")
        .build()
        .unwrap();
    legacy.generate(req).await.unwrap();
    let sent = bodies(&server).await;
    assert_eq!(sent[0]["input"][0]["role"], "developer");
    assert_eq!(sent[1]["input"][0]["role"], "system");
    assert_eq!(sent[1]["model"], "llama-3");
    let received = server.received_requests().await.unwrap();
    assert!(
        received[1].headers.get("authorization").is_none(),
        "no key, no header"
    );
}

#[tokio::test]
async fn function_calls_and_their_outputs_round_trip() {
    let server = MockServer::start().await;
    let first = response_object(
        "resp_67ca09c5efe0819096d0511c92b8c890096610f474011cc0",
        "completed",
        json!([function_call_item(
            "fc_67ca09c6bedc8190a7abfec07b1a1332096610f474011cc0",
            "call_unLAR8MvFNptuiZK6K6HCy5k",
            "{\"location\":\"Boston, MA\",\"unit\":\"celsius\"}"
        )]),
        usage_object(291, 0, 23, 0),
    );
    Mock::given(method("POST"))
        .and(path(PATH))
        .respond_with(json_template(&first))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    let answer = response_object(
        "resp_2",
        "completed",
        json!([{"type": "message", "id": "msg_2", "status": "completed", "role": "assistant",
                "content": [{"type": "output_text", "text": "It is 18°C in Boston.", "annotations": []}]}]),
        usage_object(330, 0, 9, 0),
    );
    mount(&server, json_template(&answer)).await;

    let model = model(&server);
    let mut messages = vec![Message::user("What is the weather like in Boston today?")];
    let req = ChatRequest::new(messages.clone())
        .with_tools([weather_tool()])
        .with_tool_choice(ToolChoice::Auto);
    let r = model.generate(req).await.unwrap();
    assert_eq!(r.finish_reason, Some(FinishReason::ToolCalls));
    assert_eq!(
        r.tool_calls(),
        [ToolCall::new(
            "call_unLAR8MvFNptuiZK6K6HCy5k",
            "get_current_weather",
            "{\"location\":\"Boston, MA\",\"unit\":\"celsius\"}"
        )]
    );
    messages.push(r.message.clone());
    messages.push(Message::tool_result(
        "call_unLAR8MvFNptuiZK6K6HCy5k",
        "{\"temperature\": 18}",
    ));
    let r = model
        .generate(ChatRequest::new(messages).with_tools([weather_tool()]))
        .await
        .unwrap();
    assert_eq!(r.text(), "It is 18°C in Boston.");
    assert_eq!(r.finish_reason, Some(FinishReason::Stop));

    let sent = bodies(&server).await;
    let tools = json!([{
        "type": "function",
        "name": "get_current_weather",
        "description": "Get the current weather in a given location",
        "parameters": weather_tool().parameters,
        "strict": false
    }]);
    assert_eq!(sent[0]["tools"], tools);
    assert_eq!(sent[0]["tool_choice"], "auto");
    assert_eq!(
        sent[1]["input"],
        json!([
            {"type": "message", "role": "user", "content": "What is the weather like in Boston today?"},
            {"type": "function_call", "call_id": "call_unLAR8MvFNptuiZK6K6HCy5k",
             "name": "get_current_weather", "arguments": "{\"location\":\"Boston, MA\",\"unit\":\"celsius\"}"},
            {"type": "function_call_output", "call_id": "call_unLAR8MvFNptuiZK6K6HCy5k",
             "output": "{\"temperature\": 18}"}
        ])
    );
    assert!(sent[1].get("tool_choice").is_none());
}

#[tokio::test]
async fn parallel_tool_calls_keep_their_call_ids() {
    let server = MockServer::start().await;
    let body = response_object(
        "resp_par",
        "completed",
        json!([
            {"type": "message", "id": "msg_p", "status": "completed", "role": "assistant",
             "content": [{"type": "output_text", "text": "Checking both.", "annotations": []}]},
            function_call_item("fc_1", "call_boston", "{\"location\":\"Boston, MA\",\"unit\":\"celsius\"}"),
            function_call_item("fc_2", "call_paris", "{\"location\":\"Paris\",\"unit\":\"celsius\"}")
        ]),
        usage_object(100, 0, 40, 0),
    );
    mount(&server, json_template(&body)).await;
    let req = ChatRequest::new(vec![Message::user("Weather in Boston and Paris?")])
        .with_tools([weather_tool()])
        .with_tool_choice(ToolChoice::Tool("get_current_weather".into()))
        .with_parallel_tool_calls(true);
    let r = model(&server).generate(req).await.unwrap();
    let ids: Vec<&str> = r.tool_calls().iter().map(|c| c.id.as_str()).collect();
    assert_eq!(ids, ["call_boston", "call_paris"]);
    assert_eq!(r.text(), "Checking both.");
    assert_eq!(r.finish_reason, Some(FinishReason::ToolCalls));
    let sent = &bodies(&server).await[0];
    assert_eq!(sent["parallel_tool_calls"], true);
    assert_eq!(
        sent["tool_choice"],
        json!({"type": "function", "name": "get_current_weather"})
    );
    // The assistant turn goes back as text, then one function_call per call, in order.
    let next = ChatRequest::new(vec![
        Message::user("Weather in Boston and Paris?"),
        r.message.clone(),
        Message::tool_result("call_boston", "18"),
        Message::tool_result("call_paris", "21"),
    ]);
    mount(&server, json_template(&story_response())).await;
    model(&server).generate(next).await.unwrap();
    let input = &bodies(&server).await[1]["input"];
    assert_eq!(
        input[1],
        json!({"type": "message", "role": "assistant",
               "content": [{"type": "output_text", "text": "Checking both.", "annotations": []}]})
    );
    let kinds: Vec<&str> = input
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "message",
            "message",
            "function_call",
            "function_call",
            "function_call_output",
            "function_call_output"
        ]
    );
    assert_eq!(input[3]["call_id"], "call_paris");
    assert_eq!(input[5]["call_id"], "call_paris");
}

#[tokio::test]
async fn reasoning_items_with_encrypted_content_go_back_on_the_next_turn() {
    let server = MockServer::start().await;
    let first = response_object(
        "resp_r1",
        "completed",
        json!([
            reasoning_item(),
            function_call_item(
                "fc_1",
                "call_b",
                "{\"location\":\"Boston, MA\",\"unit\":\"celsius\"}"
            )
        ]),
        usage_object(120, 0, 340, 320),
    );
    Mock::given(method("POST"))
        .and(path(PATH))
        .respond_with(json_template(&first))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    mount(&server, json_template(&story_response())).await;
    let model = model(&server);
    let effort = ReasoningOptions::effort(ReasoningEffort::High);
    let q = Message::user("Weather in Boston?");
    let r = model
        .generate(
            ChatRequest::new(vec![q.clone()])
                .with_tools([weather_tool()])
                .with_reasoning(effort),
        )
        .await
        .unwrap();
    assert_eq!(r.message.reasoning, [expected_reasoning()]);
    assert_eq!(r.usage.unwrap().reasoning_tokens, Some(320));
    assert_eq!(r.tool_calls()[0].id, "call_b");

    let next = ChatRequest::new(vec![
        q,
        r.message.clone(),
        Message::tool_result("call_b", "18"),
    ])
    .with_tools([weather_tool()])
    .with_reasoning(effort);
    model.generate(next).await.unwrap();
    let sent = bodies(&server).await;
    for body in &sent {
        assert_eq!(
            body["reasoning"],
            json!({"effort": "high", "summary": "auto"})
        );
        assert_eq!(body["include"], json!(["reasoning.encrypted_content"]));
        assert_eq!(body["store"], false);
    }
    assert_eq!(
        sent[1]["input"],
        json!([
            {"type": "message", "role": "user", "content": "Weather in Boston?"},
            {"type": "reasoning", "id": "rs_6820f383d7c08191846711c5df8233bc0ac5ba57aafcbac7",
             "summary": [{"type": "summary_text", "text": expected_reasoning().text}],
             "encrypted_content": ENCRYPTED},
            {"type": "function_call", "call_id": "call_b", "name": "get_current_weather",
             "arguments": "{\"location\":\"Boston, MA\",\"unit\":\"celsius\"}"},
            {"type": "function_call_output", "call_id": "call_b", "output": "18"}
        ])
    );
}

#[tokio::test]
async fn stored_conversations_continue_from_the_previous_response() {
    let server = MockServer::start().await;
    mount(&server, json_template(&story_response())).await;
    let stored = OpenAiResponsesModel::builder()
        .api_key(KEY)
        .base_url(format!("{}/v1", server.uri()))
        .store(true)
        .build()
        .unwrap();
    let first = stored
        .generate(ChatRequest::new(vec![Message::user(
            "Tell me a three sentence bedtime story about a unicorn.",
        )]))
        .await
        .unwrap();
    let id = first.id.unwrap();
    let req = ChatRequest::new(vec![Message::user(
        "What is your favorite color from the story?",
    )])
    .with_previous_response_id(&id)
    .with_reasoning(ReasoningOptions::effort(ReasoningEffort::Minimal));
    stored.generate(req).await.unwrap();
    let sent = &bodies(&server).await[1];
    assert_eq!(
        sent,
        &json!({
            "model": "gpt-4o-mini",
            "input": [{"type": "message", "role": "user", "content": "What is your favorite color from the story?"}],
            "previous_response_id": "resp_67ccd2bed1ec8190b14f964abc0542670bb6a6b452d3795b",
            "reasoning": {"effort": "minimal", "summary": "auto"},
            "store": true
        }),
        "stored responses need no encrypted reasoning"
    );
}

#[derive(serde::Deserialize, schemars::JsonSchema)]
#[allow(dead_code)]
struct Event {
    name: String,
    date: String,
    participants: Vec<String>,
}

#[tokio::test]
async fn structured_output_goes_in_text_format() {
    let server = MockServer::start().await;
    let answer =
        "{\"name\":\"Science Fair\",\"date\":\"Friday\",\"participants\":[\"Alice\",\"Bob\"]}";
    let body = response_object(
        "resp_s",
        "completed",
        json!([{"type": "message", "id": "msg_s", "status": "completed", "role": "assistant",
                "content": [{"type": "output_text", "text": answer, "annotations": []}]}]),
        usage_object(50, 0, 20, 0),
    );
    mount(&server, json_template(&body)).await;
    let req = ChatRequest::new(vec![
        Message::system("Extract the event information."),
        Message::user("Alice and Bob are going to a science fair on Friday."),
    ])
    .with_response_format(ResponseFormat::json_schema_for::<Event>());
    let r = model(&server).generate(req).await.unwrap();
    let event: Event = serde_json::from_str(&r.text()).unwrap();
    assert_eq!(event.participants, ["Alice", "Bob"]);
    let format = &bodies(&server).await[0]["text"]["format"];
    assert_eq!(format["type"], "json_schema");
    assert_eq!(format["name"], "Event");
    assert_eq!(format["strict"], true);
    assert_eq!(format["schema"]["additionalProperties"], false);
    let mut required: Vec<&str> = format["schema"]["required"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    required.sort_unstable();
    assert_eq!(required, ["date", "name", "participants"]);
    // JSON mode.
    model(&server)
        .generate(
            ChatRequest::new(vec![Message::user("JSON please")])
                .with_response_format(ResponseFormat::JsonObject),
        )
        .await
        .unwrap();
    assert_eq!(
        bodies(&server).await[1]["text"],
        json!({"format": {"type": "json_object"}})
    );
}

#[tokio::test]
async fn request_options_and_cache_usage() {
    let server = MockServer::start().await;
    let body = response_object(
        "resp_c",
        "completed",
        json!([{"type": "message", "id": "msg_c", "status": "completed", "role": "assistant",
                "content": [{"type": "output_text", "text": "Cached.", "annotations": []}]}]),
        usage_object(2006, 1920, 300, 256),
    );
    mount(&server, json_template(&body)).await;
    let req = ChatRequest::new(vec![Message::user("Summarise the manual.")])
        .with_prompt_cache(PromptCache::manual().with_key("tenant-42"))
        .with_service_tier("flex")
        .with_parallel_tool_calls(false)
        .with_reasoning(ReasoningOptions::effort(ReasoningEffort::Low));
    let r = model(&server).generate(req).await.unwrap();
    let usage = r.usage.unwrap();
    assert_eq!(usage.input_tokens, 2006);
    assert_eq!(usage.cached_input_tokens, Some(1920));
    assert_eq!(usage.output_tokens, 300);
    assert_eq!(usage.reasoning_tokens, Some(256));
    assert_eq!(usage.total_tokens, 2306);
    let sent = &bodies(&server).await[0];
    assert_eq!(sent["prompt_cache_key"], "tenant-42");
    assert_eq!(sent["service_tier"], "flex");
    assert_eq!(sent["parallel_tool_calls"], false);
    assert_eq!(
        sent["reasoning"],
        json!({"effort": "low", "summary": "auto"})
    );
    assert_eq!(sent["include"], json!(["reasoning.encrypted_content"]));
}

#[tokio::test]
async fn incomplete_responses_finish_with_length_or_content_filter() {
    let server = MockServer::start().await;
    let mut body = response_object(
        "resp_i",
        "incomplete",
        json!([{"type": "message", "id": "msg_i", "status": "incomplete", "role": "assistant",
                "content": [{"type": "output_text", "text": "Once upon a", "annotations": []}]}]),
        usage_object(36, 0, 3, 0),
    );
    body["incomplete_details"] = json!({"reason": "max_output_tokens"});
    Mock::given(method("POST"))
        .and(path(PATH))
        .respond_with(json_template(&body))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    body["incomplete_details"] = json!({"reason": "content_filter"});
    mount(&server, json_template(&body)).await;
    let req = ChatRequest::new(vec![Message::user("A story")]).with_max_tokens(3);
    let r = model(&server).generate(req.clone()).await.unwrap();
    assert_eq!(r.text(), "Once upon a");
    assert_eq!(r.finish_reason, Some(FinishReason::Length));
    let r = model(&server).generate(req).await.unwrap();
    assert_eq!(r.finish_reason, Some(FinishReason::ContentFilter));
}

#[tokio::test]
async fn failed_status_and_refusals_are_typed_errors() {
    let server = MockServer::start().await;
    let mut failed = response_object("resp_f", "failed", json!([]), Value::Null);
    failed["error"] =
        json!({"code": "server_error", "message": "The model failed to generate a response."});
    Mock::given(method("POST"))
        .and(path(PATH))
        .respond_with(json_template(&failed))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    let refusal = response_object(
        "resp_x",
        "completed",
        json!([{"type": "message", "id": "msg_x", "status": "completed", "role": "assistant",
                "content": [{"type": "refusal", "refusal": "I'm sorry, I cannot assist with that request."}]}]),
        usage_object(10, 0, 10, 0),
    );
    mount(&server, json_template(&refusal)).await;
    let model = OpenAiResponsesModel::builder()
        .api_key(KEY)
        .base_url(format!("{}/v1", server.uri()))
        .http(HttpOptions::new().retry(RetryPolicy::none()))
        .build()
        .unwrap();
    let req = ChatRequest::new(vec![Message::user("hi")]);
    let err = model.generate(req.clone()).await.unwrap_err();
    assert_eq!(kind(&err), ProviderErrorKind::Server);
    assert!(
        err.to_string()
            .contains("The model failed to generate a response.")
            && err.to_string().contains("server_error"),
        "{err}"
    );
    let err = model.generate(req).await.unwrap_err();
    assert_eq!(kind(&err), ProviderErrorKind::ContentFiltered);
    assert!(err.to_string().contains("cannot assist"), "{err}");
}

#[tokio::test]
async fn rate_limited_with_retry_after_and_headroom_headers() {
    let server = MockServer::start().await;
    mount(
        &server,
        ResponseTemplate::new(429)
            .set_body_json(json!({"error": {
                "message": "Rate limit reached for gpt-4.1 in organization org-123 on tokens per min (TPM): Limit 30000, Used 29980, Requested 120. Please try again in 200ms.",
                "type": "tokens", "param": null, "code": "rate_limit_exceeded"}}))
            .insert_header("retry-after", "2")
            .insert_header("x-ratelimit-limit-tokens", "30000")
            .insert_header("x-ratelimit-remaining-tokens", "0")
            .insert_header("x-ratelimit-reset-tokens", "200ms")
            .insert_header("x-request-id", "req_429"),
    )
    .await;
    let model = OpenAiResponsesModel::builder()
        .api_key(KEY)
        .base_url(format!("{}/v1", server.uri()))
        .http(HttpOptions::new().retry(RetryPolicy::none()))
        .build()
        .unwrap();
    let err = model
        .generate(ChatRequest::new(vec![Message::user("hi")]))
        .await
        .unwrap_err();
    assert!(err.is_rate_limited(), "{err:?}");
    assert!(err.is_retryable());
    assert_eq!(err.retry_after(), Some(Duration::from_secs(2)));
    let p = err.as_provider().unwrap();
    assert_eq!(p.status, Some(429));
    assert_eq!(p.request_id.as_deref(), Some("req_429"));
    assert!(p.message.contains("Rate limit reached"), "{p}");
    // The stream call fails the same way, before any chunk.
    let err = model
        .stream(ChatRequest::new(vec![Message::user("hi")]))
        .await
        .err()
        .unwrap();
    assert!(err.is_rate_limited());
    assert_eq!(server.received_requests().await.unwrap().len(), 2);
}

#[tokio::test]
async fn invalid_requests_fail_before_any_io() {
    let server = MockServer::start().await;
    let model = model(&server);
    let stop = ChatRequest::new(vec![Message::user("hi")]).with_stop(["\n"]);
    assert!(matches!(
        model.generate(stop.clone()).await,
        Err(Error::InvalidInput(_))
    ));
    assert!(matches!(
        model.stream(stop).await,
        Err(Error::InvalidInput(_))
    ));
    assert!(matches!(
        model.generate(ChatRequest::new(vec![])).await,
        Err(Error::InvalidInput(_))
    ));
    assert!(server.received_requests().await.unwrap().is_empty());
    assert!(matches!(
        OpenAiResponsesModel::builder().build(),
        Err(Error::InvalidConfig(_))
    ));
    assert!(matches!(
        OpenAiResponsesModel::builder()
            .api_key(KEY)
            .model(" ")
            .build(),
        Err(Error::InvalidConfig(_))
    ));
    let debug = format!("{:?}", OpenAiResponsesModel::builder().api_key(KEY));
    assert!(!debug.contains(KEY), "{debug}");
}

// ---------------------------------------------------------------- streaming

/// The events of a streamed answer with a reasoning item (two summary parts), text and two
/// tool calls with split arguments, ending with `response.completed` whose `response` is
/// [`streamed_final`].
fn transcript() -> Vec<Value> {
    let id = "resp_67c9fdcecf488190bdd9a0409de3a1ec07b8b0ad4e5eb654";
    let mut created = response_object(id, "in_progress", json!([]), Value::Null);
    created["model"] = json!("o4-mini-2025-04-16");
    let rs = "rs_6820f383d7c08191846711c5df8233bc0ac5ba57aafcbac7";
    let reasoning_added = json!({"type": "reasoning", "id": rs, "summary": []});
    let msg_added = json!({"type": "message", "id": "msg_1", "status": "in_progress", "role": "assistant", "content": []});
    let fc_added = |id: &str, call_id: &str| json!({"type": "function_call", "id": id, "call_id": call_id, "name": "get_current_weather", "arguments": "", "status": "in_progress"});
    let summary1 =
        "**Checking the weather**\n\nThe user wants Boston's weather; I should call the tool.";
    let (s1a, s1b) = summary1.split_at(24);
    let summary2 = "**Choosing units**\n\nCelsius was asked for.";
    vec![
        json!({"type": "response.created", "response": created, "sequence_number": 0}),
        json!({"type": "response.in_progress", "response": created, "sequence_number": 1}),
        json!({"type": "response.output_item.added", "output_index": 0, "item": reasoning_added, "sequence_number": 2}),
        json!({"type": "response.reasoning_summary_part.added", "item_id": rs, "output_index": 0, "summary_index": 0, "part": {"type": "summary_text", "text": ""}, "sequence_number": 3}),
        json!({"type": "response.reasoning_summary_text.delta", "item_id": rs, "output_index": 0, "summary_index": 0, "delta": s1a, "sequence_number": 4}),
        json!({"type": "response.reasoning_summary_text.delta", "item_id": rs, "output_index": 0, "summary_index": 0, "delta": s1b, "sequence_number": 5}),
        json!({"type": "response.reasoning_summary_text.done", "item_id": rs, "output_index": 0, "summary_index": 0, "text": summary1, "sequence_number": 6}),
        json!({"type": "response.reasoning_summary_part.done", "item_id": rs, "output_index": 0, "summary_index": 0, "part": {"type": "summary_text", "text": summary1}, "sequence_number": 7}),
        json!({"type": "response.reasoning_summary_part.added", "item_id": rs, "output_index": 0, "summary_index": 1, "part": {"type": "summary_text", "text": ""}, "sequence_number": 8}),
        json!({"type": "response.reasoning_summary_text.delta", "item_id": rs, "output_index": 0, "summary_index": 1, "delta": summary2, "sequence_number": 9}),
        json!({"type": "response.reasoning_summary_text.done", "item_id": rs, "output_index": 0, "summary_index": 1, "text": summary2, "sequence_number": 10}),
        json!({"type": "response.output_item.done", "output_index": 0, "item": reasoning_item(), "sequence_number": 11}),
        json!({"type": "response.output_item.added", "output_index": 1, "item": msg_added, "sequence_number": 12}),
        json!({"type": "response.content_part.added", "item_id": "msg_1", "output_index": 1, "content_index": 0, "part": {"type": "output_text", "text": "", "annotations": []}, "sequence_number": 13}),
        json!({"type": "response.output_text.delta", "item_id": "msg_1", "output_index": 1, "content_index": 0, "delta": "Checking ", "logprobs": [], "sequence_number": 14}),
        json!({"type": "response.output_text.delta", "item_id": "msg_1", "output_index": 1, "content_index": 0, "delta": "both.", "logprobs": [], "sequence_number": 15}),
        json!({"type": "response.output_text.done", "item_id": "msg_1", "output_index": 1, "content_index": 0, "text": "Checking both.", "logprobs": [], "sequence_number": 16}),
        json!({"type": "response.content_part.done", "item_id": "msg_1", "output_index": 1, "content_index": 0, "part": {"type": "output_text", "text": "Checking both.", "annotations": []}, "sequence_number": 17}),
        json!({"type": "response.output_item.done", "output_index": 1, "item": {"type": "message", "id": "msg_1", "status": "completed", "role": "assistant", "content": [{"type": "output_text", "text": "Checking both.", "annotations": []}]}, "sequence_number": 18}),
        json!({"type": "response.output_item.added", "output_index": 2, "item": fc_added("fc_1", "call_boston"), "sequence_number": 19}),
        json!({"type": "response.function_call_arguments.delta", "item_id": "fc_1", "output_index": 2, "delta": "{\"location\":", "sequence_number": 20}),
        json!({"type": "response.function_call_arguments.delta", "item_id": "fc_1", "output_index": 2, "delta": "\"Boston, MA\",\"unit\":\"celsius\"}", "sequence_number": 21}),
        json!({"type": "response.function_call_arguments.done", "item_id": "fc_1", "output_index": 2, "arguments": "{\"location\":\"Boston, MA\",\"unit\":\"celsius\"}", "sequence_number": 22}),
        json!({"type": "response.output_item.done", "output_index": 2, "item": function_call_item("fc_1", "call_boston", "{\"location\":\"Boston, MA\",\"unit\":\"celsius\"}"), "sequence_number": 23}),
        json!({"type": "response.output_item.added", "output_index": 3, "item": fc_added("fc_2", "call_paris"), "sequence_number": 24}),
        json!({"type": "response.function_call_arguments.delta", "item_id": "fc_2", "output_index": 3, "delta": "{\"location\":\"Paris\",", "sequence_number": 25}),
        json!({"type": "response.some_future_event", "item_id": "fc_2", "output_index": 3, "delta": {"what": "ever"}, "sequence_number": 26}),
        json!({"type": "response.function_call_arguments.delta", "item_id": "fc_2", "output_index": 3, "delta": "\"unit\":\"celsius\"}", "sequence_number": 27}),
        json!({"type": "response.function_call_arguments.done", "item_id": "fc_2", "output_index": 3, "arguments": "{\"location\":\"Paris\",\"unit\":\"celsius\"}", "sequence_number": 28}),
        json!({"type": "response.output_item.done", "output_index": 3, "item": function_call_item("fc_2", "call_paris", "{\"location\":\"Paris\",\"unit\":\"celsius\"}"), "sequence_number": 29}),
        json!({"type": "response.completed", "response": streamed_final(), "sequence_number": 30}),
    ]
}

/// The `response` of the transcript's `response.completed` (also served as the unary answer).
fn streamed_final() -> Value {
    let mut r = response_object(
        "resp_67c9fdcecf488190bdd9a0409de3a1ec07b8b0ad4e5eb654",
        "completed",
        json!([
            reasoning_item(),
            {"type": "message", "id": "msg_1", "status": "completed", "role": "assistant",
             "content": [{"type": "output_text", "text": "Checking both.", "annotations": []}]},
            function_call_item("fc_1", "call_boston", "{\"location\":\"Boston, MA\",\"unit\":\"celsius\"}"),
            function_call_item("fc_2", "call_paris", "{\"location\":\"Paris\",\"unit\":\"celsius\"}")
        ]),
        usage_object(320, 128, 410, 352),
    );
    r["model"] = json!("o4-mini-2025-04-16");
    r
}

#[tokio::test]
async fn streamed_transcript_gives_every_chunk_and_the_unary_answer() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(PATH))
        .and(wiremock::matchers::body_partial_json(
            json!({"stream": true}),
        ))
        .respond_with(
            sse_template(&transcript()).insert_header("x-ratelimit-remaining-requests", "41"),
        )
        .mount(&server)
        .await;
    mount(
        &server,
        json_template(&streamed_final()).insert_header("x-ratelimit-remaining-requests", "41"),
    )
    .await;
    let model = model(&server);
    let req = ChatRequest::new(vec![Message::user("Weather in Boston and Paris?")])
        .with_tools([weather_tool()])
        .with_reasoning(ReasoningOptions::effort(ReasoningEffort::Medium));
    let mut stream = model.stream(req.clone()).await.unwrap();
    let mut chunks = Vec::new();
    let mut acc = StreamAccumulator::new();
    while let Some(c) = stream.next().await {
        let c = c.unwrap();
        acc.push(&c);
        chunks.push(c);
    }
    let streamed = acc.finish().unwrap();

    // Headroom and identity come first.
    assert!(matches!(&chunks[0], ChatChunk::RateLimit(r) if r.remaining_requests == Some(41)));
    assert_eq!(
        chunks[1],
        ChatChunk::ResponseId("resp_67c9fdcecf488190bdd9a0409de3a1ec07b8b0ad4e5eb654".into())
    );
    assert_eq!(chunks[2], ChatChunk::Model("o4-mini-2025-04-16".into()));
    let reasoning_text: String = chunks
        .iter()
        .filter_map(|c| match c {
            ChatChunk::ReasoningDelta { index: 0, text, .. } => Some(text.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(reasoning_text, expected_reasoning().text);
    assert!(chunks.iter().any(|c| matches!(
        c,
        ChatChunk::ReasoningDelta { encrypted: Some(e), .. } if e == ENCRYPTED
    )));
    let texts: Vec<&str> = chunks
        .iter()
        .filter_map(|c| match c {
            ChatChunk::TextDelta(t) => Some(t.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(texts, ["Checking ", "both."]);
    let calls: Vec<(usize, Option<&str>, Option<&str>, &str)> = chunks
        .iter()
        .filter_map(|c| match c {
            ChatChunk::ToolCallDelta {
                index,
                id,
                name,
                arguments_delta,
            } => Some((
                *index,
                id.as_deref(),
                name.as_deref(),
                arguments_delta.as_str(),
            )),
            _ => None,
        })
        .collect();
    assert_eq!(
        calls,
        [
            (0, Some("call_boston"), Some("get_current_weather"), ""),
            (0, None, None, "{\"location\":"),
            (0, None, None, "\"Boston, MA\",\"unit\":\"celsius\"}"),
            (1, Some("call_paris"), Some("get_current_weather"), ""),
            (1, None, None, "{\"location\":\"Paris\","),
            (1, None, None, "\"unit\":\"celsius\"}"),
        ]
    );
    let n = chunks.len();
    assert_eq!(
        chunks[n - 2],
        ChatChunk::Usage(
            Usage::new(320, 410)
                .with_cached_input_tokens(128)
                .with_reasoning_tokens(352)
        )
    );
    assert_eq!(chunks[n - 1], ChatChunk::Finish(FinishReason::ToolCalls));
    assert_eq!(
        chunks
            .iter()
            .filter(|c| matches!(c, ChatChunk::Finish(_)))
            .count(),
        1
    );

    let unary = model.generate(req).await.unwrap();
    assert_eq!(streamed, unary, "streamed and unary answers are the same");
    assert_eq!(unary.message.reasoning, [expected_reasoning()]);
    let sent = bodies(&server).await;
    assert_eq!(sent[0]["stream"], true);
    assert!(sent[1].get("stream").is_none());
}

#[tokio::test]
async fn streamed_incomplete_finishes_with_length() {
    let server = MockServer::start().await;
    let mut done = response_object("resp_i", "incomplete", json!([]), usage_object(36, 0, 3, 0));
    done["incomplete_details"] = json!({"reason": "max_output_tokens"});
    let created = response_object("resp_i", "in_progress", json!([]), Value::Null);
    mount(
        &server,
        sse_template(&[
            json!({"type": "response.created", "response": created, "sequence_number": 0}),
            json!({"type": "response.output_item.added", "output_index": 0, "item": {"type": "message", "id": "msg_i", "status": "in_progress", "role": "assistant", "content": []}, "sequence_number": 1}),
            json!({"type": "response.output_text.delta", "item_id": "msg_i", "output_index": 0, "content_index": 0, "delta": "Once upon a", "sequence_number": 2}),
            json!({"type": "response.incomplete", "response": done, "sequence_number": 3}),
        ]),
    )
    .await;
    let r = collect_stream(
        model(&server)
            .stream(ChatRequest::new(vec![Message::user("A story")]).with_max_tokens(3))
            .await
            .unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(r.text(), "Once upon a");
    assert_eq!(r.finish_reason, Some(FinishReason::Length));
    assert_eq!(r.id.as_deref(), Some("resp_i"));
}

async fn drain(model: &OpenAiResponsesModel) -> (Vec<ChatChunk>, Option<Error>) {
    let mut stream = model
        .stream(ChatRequest::new(vec![Message::user("Hello!")]))
        .await
        .unwrap();
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

fn text_of(chunks: &[ChatChunk]) -> String {
    chunks
        .iter()
        .filter_map(|c| match c {
            ChatChunk::TextDelta(t) => Some(t.as_str()),
            _ => None,
        })
        .collect()
}

fn delta_event(text: &str, seq: u64) -> String {
    sse(&[
        json!({"type": "response.output_text.delta", "item_id": "msg_1", "output_index": 0, "content_index": 0, "delta": text, "sequence_number": seq}),
    ])
}

#[tokio::test]
async fn a_stream_cut_before_completion_is_interrupted() {
    let created = sse(&[
        json!({"type": "response.created", "response": response_object("resp_cut", "in_progress", json!([]), Value::Null), "sequence_number": 0}),
    ]);
    let (a, b) = (delta_event("Hel", 1), delta_event("lo wor", 2));
    let (addr, server) = raw_server(vec![
        chunked_response("text/event-stream", &[&created, &a, &b], false),
        close_delimited_response("text/event-stream", &format!("{created}{a}")),
    ])
    .await;
    let model = model_at(&format!("http://{addr}"));
    let (chunks, err) = drain(&model).await;
    assert_eq!(text_of(&chunks), "Hello wor");
    assert!(!chunks.iter().any(|c| matches!(c, ChatChunk::Finish(_))));
    let err = err.expect("a cut stream ends with an error");
    assert_eq!(kind(&err), ProviderErrorKind::StreamInterrupted, "{err}");
    assert!(err.to_string().contains("Hello wor"), "{err}");
    assert!(err.is_retryable());
    // A body that ends cleanly without `response.completed`: the same.
    let (chunks, err) = drain(&model).await;
    assert_eq!(text_of(&chunks), "Hel");
    let err = err.unwrap();
    assert_eq!(kind(&err), ProviderErrorKind::StreamInterrupted);
    assert!(err.to_string().contains("response.completed"), "{err}");
    let requests = server.await.unwrap();
    let body: Value = serde_json::from_slice(request_body(&requests[0])).unwrap();
    assert_eq!(body["stream"], true);
}

#[tokio::test]
async fn response_failed_and_error_events_are_typed_errors() {
    let server = MockServer::start().await;
    let mut failed = response_object("resp_f", "failed", json!([]), Value::Null);
    failed["error"] =
        json!({"code": "server_error", "message": "The model failed to generate a response."});
    Mock::given(method("POST"))
        .and(path(PATH))
        .respond_with(sse_template(&[
            json!({"type": "response.created", "response": response_object("resp_f", "in_progress", json!([]), Value::Null), "sequence_number": 0}),
            json!({"type": "response.output_text.delta", "item_id": "msg_1", "output_index": 0, "content_index": 0, "delta": "Par", "sequence_number": 1}),
            json!({"type": "response.failed", "response": failed, "sequence_number": 2}),
        ]))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    mount(
        &server,
        sse_template(&[
            json!({"type": "error", "code": "rate_limit_exceeded", "message": "Rate limit reached for requests", "param": null, "sequence_number": 1}),
        ]),
    )
    .await;
    let model = model(&server);
    let (chunks, err) = drain(&model).await;
    assert_eq!(text_of(&chunks), "Par");
    let err = err.unwrap();
    assert_eq!(kind(&err), ProviderErrorKind::Server);
    assert!(
        err.to_string().contains("failed to generate") && err.to_string().contains("\"Par\""),
        "{err}"
    );
    let (_, err) = drain(&model).await;
    let err = err.unwrap();
    assert!(err.is_rate_limited(), "{err}");
    assert!(err.to_string().contains("Rate limit reached"), "{err}");
}

// ---------------------------------------------------------------- conformance

/// Answers what the conformance suite sends: a `get_weather` call when `tool_choice` names
/// it, text otherwise (including after a tool result); events when `stream` is set.
struct ConformanceResponder;

impl Respond for ConformanceResponder {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        let body: Value = req.body_json().unwrap();
        let stream = body["stream"] == true;
        let wants_tool = body["tool_choice"]["name"] == "get_weather";
        let after_tool =
            body["input"].as_array().unwrap().last().unwrap()["type"] == "function_call_output";
        let text = if after_tool {
            "It is 18°C and sunny in Paris."
        } else {
            "Hello there!"
        };
        let usage = usage_object(12, 0, 5, 0);
        let (output, item) = if wants_tool {
            let item = json!({"type": "function_call", "id": "fc_w", "call_id": "call_w", "name": "get_weather", "arguments": "{\"city\":\"Paris\"}", "status": "completed"});
            (json!([item.clone()]), item)
        } else {
            let item = json!({"type": "message", "id": "msg_c", "status": "completed", "role": "assistant",
                              "content": [{"type": "output_text", "text": text, "annotations": []}]});
            (json!([item.clone()]), item)
        };
        let done = response_object("resp_conf", "completed", output, usage);
        if !stream {
            return json_template(&done);
        }
        let created = response_object("resp_conf", "in_progress", json!([]), Value::Null);
        let mut events =
            vec![json!({"type": "response.created", "response": created, "sequence_number": 0})];
        if wants_tool {
            events.extend([
                json!({"type": "response.output_item.added", "output_index": 0, "item": {"type": "function_call", "id": "fc_w", "call_id": "call_w", "name": "get_weather", "arguments": "", "status": "in_progress"}, "sequence_number": 1}),
                json!({"type": "response.function_call_arguments.delta", "item_id": "fc_w", "output_index": 0, "delta": "{\"city\":", "sequence_number": 2}),
                json!({"type": "response.function_call_arguments.delta", "item_id": "fc_w", "output_index": 0, "delta": "\"Paris\"}", "sequence_number": 3}),
            ]);
        } else {
            let (a, b) = text.split_at(5);
            events.extend([
                json!({"type": "response.output_item.added", "output_index": 0, "item": {"type": "message", "id": "msg_c", "status": "in_progress", "role": "assistant", "content": []}, "sequence_number": 1}),
                json!({"type": "response.output_text.delta", "item_id": "msg_c", "output_index": 0, "content_index": 0, "delta": a, "sequence_number": 2}),
                json!({"type": "response.output_text.delta", "item_id": "msg_c", "output_index": 0, "content_index": 0, "delta": b, "sequence_number": 3}),
            ]);
        }
        events.push(json!({"type": "response.output_item.done", "output_index": 0, "item": item, "sequence_number": 4}));
        events.push(json!({"type": "response.completed", "response": done, "sequence_number": 5}));
        sse_template(&events)
    }
}

#[tokio::test]
async fn chat_conformance_suite() {
    let server = MockServer::start().await;
    mount(&server, ConformanceResponder).await;
    ChatModelConformance::new()
        .deterministic(true)
        .run(&model(&server))
        .await;
}

#[tokio::test]
async fn a_json_answer_to_a_stream_request_is_replayed_as_chunks() {
    let server = MockServer::start().await;
    mount(&server, json_template(&streamed_final())).await;
    let model = model(&server);
    let req = ChatRequest::new(vec![Message::user("Weather in Boston and Paris?")]);
    let streamed: ChatResponse = collect_stream(model.stream(req.clone()).await.unwrap())
        .await
        .unwrap();
    assert_eq!(streamed, model.generate(req).await.unwrap());
    assert_eq!(streamed.message.reasoning, [expected_reasoning()]);
}
