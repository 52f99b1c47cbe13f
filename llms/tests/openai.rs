//! The OpenAI backend against loopback servers speaking the Chat Completions and Embeddings
//! wire formats: `wiremock` for well-formed exchanges, a raw TCP server for broken streams.
//! Response payloads in `tests/data/openai/` follow the examples of OpenAI's API reference.

#![cfg(feature = "openai")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use catena_core::test_utils::{embedder_conformance, ChatModelConformance};
use catena_core::RetryPolicy;
use catena_core::{
    collect_stream, ChatChunk, ChatModel, ChatRequest, ContentPart, Embedder, Error, FinishReason,
    ImageDetail, Message, ProviderErrorKind, ResponseFormat, ToolCall, ToolChoice, ToolDefinition,
    Usage,
};
use catena_llms::openai::{OpenAiChatModel, OpenAiEmbedder};
use catena_llms::HttpOptions;
use futures::StreamExt;
use serde_json::{json, Value};
use support::{
    chunked_response, close_delimited_response, closed_port, data, data_json, fast_http,
    raw_server, request_body, stalling_server,
};
use wiremock::matchers::{body_json, header, method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

const KEY: &str = "sk-test-key-0000";

fn chat_at(base: &str) -> OpenAiChatModel {
    OpenAiChatModel::builder()
        .api_key(KEY)
        .base_url(format!("{base}/v1"))
        .http(fast_http())
        .build()
        .unwrap()
}

fn chat(server: &MockServer) -> OpenAiChatModel {
    chat_at(&server.uri())
}

fn hello() -> ChatRequest {
    ChatRequest::new(vec![Message::user("Hello!")])
}

fn sse(events: &[Value]) -> String {
    let mut out = String::new();
    for e in events {
        out.push_str(&format!("data: {e}\n\n"));
    }
    out.push_str("data: [DONE]\n\n");
    out
}

fn sse_template(body: impl Into<String>) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_raw(body.into(), "text/event-stream")
}

fn json_template(rel: &str) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(data_json(rel))
}

async fn mount_chat(server: &MockServer, template: impl Respond + 'static) {
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
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
        "Current weather for a city.",
        json!({"type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]}),
    )
}

// ---------------------------------------------------------------- plain and streamed text

#[tokio::test]
async fn plain_answer_sends_the_documented_request_and_parses_the_answer() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .and(header("authorization", "Bearer sk-test-key-0000"))
        .and(header("openai-organization", "org-123"))
        .and(header("openai-project", "proj_456"))
        .and(header("content-type", "application/json"))
        .and(body_json(json!({
            "model": "gpt-4o-mini",
            "messages": [
                {"role": "system", "content": "You are terse."},
                {"role": "user", "content": "Hello!", "name": "ann"}
            ],
            "temperature": 0.2,
            "top_p": 0.9,
            "max_completion_tokens": 64,
            "stop": ["\n\n"],
            "seed": 7
        })))
        .respond_with(
            json_template("openai/chat_completion.json").insert_header("x-request-id", "req_1"),
        )
        .expect(1)
        .mount(&server)
        .await;
    let model = OpenAiChatModel::builder()
        .api_key(KEY)
        .base_url(format!("{}/v1/", server.uri()))
        .organization("org-123")
        .project("proj_456")
        .build()
        .unwrap();
    let req = ChatRequest::new(vec![
        Message::system("You are terse."),
        Message::user("Hello!").with_name("ann"),
    ])
    .with_temperature(0.2)
    .with_top_p(0.9)
    .with_max_tokens(64)
    .with_stop(["\n\n"])
    .with_seed(7);
    let r = model.generate(req).await.unwrap();
    assert_eq!(r.text(), "Hello! How can I assist you today?");
    assert_eq!(r.finish_reason, Some(FinishReason::Stop));
    assert_eq!(r.model.as_deref(), Some("gpt-4o-mini-2024-07-18"));
    assert_eq!(
        r.usage,
        Some(
            Usage::new(19, 10)
                .with_total_tokens(29)
                .with_cached_input_tokens(4)
                .with_reasoning_tokens(2)
        )
    );
    assert!(r.tool_calls().is_empty());
}

#[tokio::test]
async fn streamed_answer_accumulates_to_the_unary_answer() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .and(wiremock::matchers::body_partial_json(
            json!({"stream": true}),
        ))
        .and(header("accept", "text/event-stream"))
        .respond_with(sse_template(data("openai/chat_stream.sse")))
        .mount(&server)
        .await;
    mount_chat(&server, json_template("openai/chat_completion.json")).await;
    let model = chat(&server);
    let unary = model.generate(hello()).await.unwrap();

    let mut stream = model.stream(hello()).await.unwrap();
    let mut chunks = Vec::new();
    while let Some(c) = stream.next().await {
        chunks.push(c.unwrap());
    }
    let texts: Vec<&ChatChunk> = chunks
        .iter()
        .filter(|c| matches!(c, ChatChunk::TextDelta(_)))
        .collect();
    assert_eq!(texts.len(), 3, "{chunks:?}");
    assert!(matches!(chunks.first(), Some(ChatChunk::Model(_))));
    assert_eq!(chunks.last(), Some(&ChatChunk::Finish(FinishReason::Stop)));
    let streamed = collect_stream(Box::pin(futures::stream::iter(chunks.into_iter().map(Ok))))
        .await
        .unwrap();
    assert_eq!(streamed, unary);

    let sent = bodies(&server).await;
    assert_eq!(
        sent[0].get("stream"),
        None,
        "unary requests do not send `stream`"
    );
    assert_eq!(sent[1]["stream"], true);
    assert_eq!(sent[1]["stream_options"], json!({"include_usage": true}));
}

#[tokio::test]
async fn json_answer_to_a_stream_request_is_replayed_as_chunks() {
    let server = MockServer::start().await;
    mount_chat(&server, json_template("openai/chat_completion.json")).await;
    let model = chat(&server);
    let streamed = collect_stream(model.stream(hello()).await.unwrap())
        .await
        .unwrap();
    assert_eq!(streamed, model.generate(hello()).await.unwrap());
}

// ---------------------------------------------------------------- tools

#[tokio::test]
async fn one_tool_call() {
    let server = MockServer::start().await;
    mount_chat(&server, json_template("openai/tool_call.json")).await;
    let tool = ToolDefinition::new(
        "get_current_weather",
        "Get the current weather in a given location",
        json!({"type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]}),
    );
    let req = ChatRequest::new(vec![Message::user(
        "What's the weather like in Boston today?",
    )])
    .with_tools([tool])
    .with_tool_choice(ToolChoice::Auto);
    let r = chat(&server).generate(req).await.unwrap();
    assert_eq!(r.finish_reason, Some(FinishReason::ToolCalls));
    assert_eq!(r.text(), "");
    let call = &r.tool_calls()[0];
    assert_eq!(
        (call.id.as_str(), call.name.as_str()),
        ("call_abc123", "get_current_weather")
    );
    assert_eq!(call.arguments_json().unwrap()["location"], "Boston, MA");
    assert_eq!(r.usage.unwrap().reasoning_tokens, Some(0));
    assert_eq!(r.usage.unwrap().cached_input_tokens, None);

    let sent = &bodies(&server).await[0];
    assert_eq!(
        sent["tools"],
        json!([{
            "type": "function",
            "function": {
                "name": "get_current_weather",
                "description": "Get the current weather in a given location",
                "parameters": {"type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]}
            }
        }])
    );
    assert_eq!(sent["tool_choice"], "auto");
}

#[tokio::test]
async fn parallel_tool_calls_unary_and_streamed_agree() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .and(wiremock::matchers::body_partial_json(
            json!({"stream": true}),
        ))
        .respond_with(sse_template(data("openai/parallel_tool_calls.sse")))
        .mount(&server)
        .await;
    mount_chat(&server, json_template("openai/parallel_tool_calls.json")).await;
    let model = chat(&server);
    let req = ChatRequest::new(vec![Message::user("Weather in Paris and Bogotá?")])
        .with_tools([weather_tool()]);
    let unary = model.generate(req.clone()).await.unwrap();
    let calls = unary.tool_calls();
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[0].id, "call_S3aNvBf7ZkLXpm2Zx4bbIqYy");
    assert_eq!(
        calls[1].arguments_json().unwrap()["location"],
        "Bogotá, Colombia"
    );

    let mut stream = model.stream(req).await.unwrap();
    let mut arg_deltas = 0;
    let mut chunks = Vec::new();
    while let Some(c) = stream.next().await {
        let c = c.unwrap();
        if matches!(&c, ChatChunk::ToolCallDelta { arguments_delta, .. } if !arguments_delta.is_empty())
        {
            arg_deltas += 1;
        }
        chunks.push(c);
    }
    assert_eq!(arg_deltas, 4, "arguments arrive split across deltas");
    let streamed = collect_stream(Box::pin(futures::stream::iter(chunks.into_iter().map(Ok))))
        .await
        .unwrap();
    assert_eq!(streamed, unary);
}

#[tokio::test]
async fn tool_choice_variants_in_the_body() {
    let server = MockServer::start().await;
    mount_chat(&server, json_template("openai/chat_completion.json")).await;
    let model = chat(&server);
    for choice in [
        ToolChoice::Auto,
        ToolChoice::None,
        ToolChoice::Required,
        ToolChoice::Tool("get_weather".into()),
    ] {
        let req = hello()
            .with_tools([weather_tool()])
            .with_tool_choice(choice);
        model.generate(req).await.unwrap();
    }
    model
        .generate(hello().with_tools([weather_tool()]))
        .await
        .unwrap();
    let sent = bodies(&server).await;
    let choices: Vec<Value> = sent
        .iter()
        .map(|b| b.get("tool_choice").cloned().unwrap_or(Value::Null))
        .collect();
    assert_eq!(
        choices,
        vec![
            json!("auto"),
            json!("none"),
            json!("required"),
            json!({"type": "function", "function": {"name": "get_weather"}}),
            Value::Null,
        ]
    );
}

#[tokio::test]
async fn tool_round_trip_messages_in_the_body() {
    let server = MockServer::start().await;
    mount_chat(&server, json_template("openai/chat_completion.json")).await;
    let history = vec![
        Message::user("Weather in Paris?"),
        Message::assistant_with_tool_calls(
            "",
            vec![ToolCall::new(
                "call_1",
                "get_weather",
                r#"{"location":"Paris"}"#,
            )],
        ),
        Message::tool_result("call_1", "18°C and sunny"),
    ];
    chat(&server)
        .generate(ChatRequest::new(history).with_tools([weather_tool()]))
        .await
        .unwrap();
    let sent = &bodies(&server).await[0];
    assert_eq!(
        sent["messages"],
        json!([
            {"role": "user", "content": "Weather in Paris?"},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"location\":\"Paris\"}"}}
            ]},
            {"role": "tool", "content": "18°C and sunny", "tool_call_id": "call_1"}
        ])
    );
}

// ---------------------------------------------------------------- structured output, images

#[derive(Debug, PartialEq, serde::Deserialize, schemars::JsonSchema)]
struct CalendarEvent {
    name: String,
    date: String,
    participants: Vec<String>,
}

#[tokio::test]
async fn structured_output_from_a_schemars_type() {
    let server = MockServer::start().await;
    mount_chat(&server, json_template("openai/structured_output.json")).await;
    let req = ChatRequest::new(vec![
        Message::system("Extract the event information."),
        Message::user("Alice and Bob are going to a science fair on Friday."),
    ])
    .with_response_format(ResponseFormat::json_schema_for::<CalendarEvent>());
    let r = chat(&server).generate(req).await.unwrap();
    let event: CalendarEvent = serde_json::from_str(&r.text()).unwrap();
    assert_eq!(
        event,
        CalendarEvent {
            name: "Science Fair".into(),
            date: "Friday".into(),
            participants: vec!["Alice".into(), "Bob".into()],
        }
    );
    let sent = &bodies(&server).await[0];
    let format = &sent["response_format"];
    assert_eq!(format["type"], "json_schema");
    assert_eq!(format["json_schema"]["name"], "CalendarEvent");
    assert_eq!(format["json_schema"]["strict"], true);
    let schema = &format["json_schema"]["schema"];
    assert_eq!(schema["properties"]["participants"]["type"], "array");
    assert_eq!(
        schema["additionalProperties"], false,
        "strict mode needs closed objects"
    );

    let req = hello().with_response_format(ResponseFormat::JsonObject);
    chat(&server).generate(req).await.unwrap();
    let sent = &bodies(&server).await[1];
    assert_eq!(sent["response_format"], json!({"type": "json_object"}));

    // Strict mode needs every property in `required`; optional fields stay nullable.
    #[derive(schemars::JsonSchema)]
    #[allow(dead_code)]
    struct WithOptional {
        title: String,
        note: Option<String>,
    }
    let req = hello().with_response_format(ResponseFormat::json_schema_for::<WithOptional>());
    chat(&server).generate(req).await.unwrap();
    let schema = &bodies(&server).await[2]["response_format"]["json_schema"]["schema"];
    let mut required: Vec<&str> = schema["required"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    required.sort_unstable();
    assert_eq!(required, ["note", "title"], "{schema}");
    assert!(schema["properties"]["note"]["type"]
        .as_array()
        .is_some_and(|t| t.contains(&json!("null"))));
}

#[tokio::test]
async fn refusal_is_a_content_filtered_error() {
    let server = MockServer::start().await;
    mount_chat(&server, json_template("openai/refusal.json")).await;
    let err = chat(&server).generate(hello()).await.unwrap_err();
    assert_eq!(kind(&err), ProviderErrorKind::ContentFiltered);
    assert!(err.to_string().contains("I cannot assist"), "{err}");
}

#[tokio::test]
async fn image_input_body() {
    let server = MockServer::start().await;
    mount_chat(&server, json_template("openai/chat_completion.json")).await;
    let msg = Message::user_parts(vec![
        ContentPart::text("What is in these images?"),
        ContentPart::Image {
            source: catena_core::ImageSource::Url {
                url: "https://example.com/cat.png".into(),
            },
            detail: Some(ImageDetail::High),
        },
        ContentPart::image_base64("image/png", "iVBORw0KGgo="),
    ]);
    chat(&server)
        .generate(ChatRequest::new(vec![msg]))
        .await
        .unwrap();
    let sent = &bodies(&server).await[0];
    assert_eq!(
        sent["messages"][0],
        json!({"role": "user", "content": [
            {"type": "text", "text": "What is in these images?"},
            {"type": "image_url", "image_url": {"url": "https://example.com/cat.png", "detail": "high"}},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}
        ]})
    );
}

#[tokio::test]
async fn invalid_requests_fail_before_any_io() {
    let server = MockServer::start().await;
    mount_chat(&server, json_template("openai/chat_completion.json")).await;
    let model = chat(&server);
    let mut system_with_image = Message::system("look");
    system_with_image
        .content
        .push(ContentPart::image_url("https://example.com/x.png"));
    for req in [
        ChatRequest::new(vec![]),
        hello().with_temperature(5.0),
        hello().with_tool_choice(ToolChoice::Tool("nope".into())),
        ChatRequest::new(vec![system_with_image]),
    ] {
        assert!(
            matches!(
                model.generate(req.clone()).await,
                Err(Error::InvalidInput(_))
            ),
            "{req:?}"
        );
        assert!(matches!(
            model.stream(req).await,
            Err(Error::InvalidInput(_))
        ));
    }
    assert!(server.received_requests().await.unwrap().is_empty());
}

#[tokio::test]
async fn model_override_and_info() {
    let server = MockServer::start().await;
    mount_chat(&server, json_template("openai/chat_completion.json")).await;
    let model = chat(&server);
    model.generate(hello().with_model("gpt-4.1")).await.unwrap();
    assert_eq!(bodies(&server).await[0]["model"], "gpt-4.1");
    let info = model.model_info();
    assert_eq!(
        (info.provider.as_str(), info.model.as_str()),
        ("openai", "gpt-4o-mini")
    );
    assert!(
        info.supports_tools
            && info.supports_json_schema
            && info.supports_images
            && info.supports_streaming
    );

    // Older compatible servers read only the legacy `max_tokens` field.
    model.generate(hello().with_max_tokens(7)).await.unwrap();
    let sent = &bodies(&server).await[1];
    assert_eq!(
        (
            sent["max_completion_tokens"].clone(),
            sent.get("max_tokens")
        ),
        (json!(7), None)
    );
    let legacy = OpenAiChatModel::builder()
        .base_url(format!("{}/v1", server.uri()))
        .legacy_max_tokens(true)
        .build()
        .unwrap();
    legacy.generate(hello().with_max_tokens(7)).await.unwrap();
    let sent = &bodies(&server).await[2];
    assert_eq!(
        (
            sent["max_tokens"].clone(),
            sent.get("max_completion_tokens")
        ),
        (json!(7), None)
    );
}

#[tokio::test]
async fn sparse_compatible_server_answers_parse() {
    let server = MockServer::start().await;
    // What some compatible servers send: no usage, no model, no finish reason, object args.
    mount_chat(
        &server,
        ResponseTemplate::new(200).set_body_json(json!({
            "choices": [{"message": {"role": "assistant", "content": "ok",
                "tool_calls": [{"function": {"name": "f", "arguments": {"a": 1}}}]}}]
        })),
    )
    .await;
    let r = chat(&server).generate(hello()).await.unwrap();
    assert_eq!(r.text(), "ok");
    assert_eq!(
        r.tool_calls()[0],
        ToolCall::new("call_0", "f", r#"{"a":1}"#)
    );
    assert_eq!((r.finish_reason, r.usage, r.model), (None, None, None));
}

// ---------------------------------------------------------------- embeddings

fn vector_for(text: &str, dims: usize) -> Vec<f32> {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    (0..dims)
        .map(|_| {
            h = h
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            ((h >> 40) as f32 / (1u64 << 24) as f32) - 0.5 + 1e-3
        })
        .collect()
}

/// Deterministic vectors per text, returned in reverse index order.
struct EmbeddingResponder {
    dims: usize,
}

impl Respond for EmbeddingResponder {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        let body: Value = req.body_json().unwrap();
        let inputs = body["input"].as_array().unwrap();
        let mut data: Vec<Value> = inputs
            .iter()
            .enumerate()
            .map(|(i, t)| json!({"object": "embedding", "index": i, "embedding": vector_for(t.as_str().unwrap(), self.dims)}))
            .collect();
        data.reverse();
        ResponseTemplate::new(200).set_body_json(json!({
            "object": "list", "data": data, "model": body["model"],
            "usage": {"prompt_tokens": 8, "total_tokens": 8}
        }))
    }
}

fn embedder(server: &MockServer, batch: usize) -> OpenAiEmbedder {
    OpenAiEmbedder::builder()
        .api_key(KEY)
        .base_url(format!("{}/v1", server.uri()))
        .dimensions(Some(16))
        .batch_size(batch)
        .http(fast_http())
        .build()
        .unwrap()
}

#[tokio::test]
async fn embeddings_are_batched_and_reordered() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/embeddings"))
        .and(header("authorization", "Bearer sk-test-key-0000"))
        .respond_with(EmbeddingResponder { dims: 16 })
        .expect(3)
        .mount(&server)
        .await;
    let e = embedder(&server, 2);
    let texts: Vec<String> = ["a", "b", "c", "d", "e"].map(String::from).to_vec();
    let vectors = e.embed_documents(&texts).await.unwrap();
    let expected: Vec<Vec<f32>> = texts.iter().map(|t| vector_for(t, 16)).collect();
    assert_eq!(vectors, expected);
    assert_eq!(e.dimensions(), 16);
    let sent = bodies(&server).await;
    assert_eq!(
        sent[0],
        json!({"model": "text-embedding-3-small", "input": ["a", "b"], "encoding_format": "float", "dimensions": 16})
    );
    assert_eq!(sent[2]["input"], json!(["e"]));
}

#[tokio::test]
async fn embeddings_documented_payload_and_edge_cases() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/embeddings"))
        .and(body_json(json!({"model": "my-model", "input": ["The food was delicious and the waiter..."], "encoding_format": "float", "dimensions": 3})))
        .respond_with(json_template("openai/embeddings.json"))
        .mount(&server)
        .await;
    let e = OpenAiEmbedder::builder()
        .api_key(KEY)
        .base_url(format!("{}/v1", server.uri()))
        .model("my-model")
        .dimensions(Some(3))
        .build()
        .unwrap();
    let v = e
        .embed_query("The food was delicious and the waiter...")
        .await
        .unwrap();
    assert_eq!(v, vec![0.002_306_425_5, -0.009_327_292, -0.002_884_222_2]);
    // Empty input: no request.
    assert!(e.embed_documents(&[]).await.unwrap().is_empty());
    assert_eq!(server.received_requests().await.unwrap().len(), 1);
}

#[tokio::test]
async fn embeddings_wrong_count_or_length_is_malformed() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/embeddings"))
        .respond_with(json_template("openai/embeddings.json"))
        .mount(&server)
        .await;
    let e3 = OpenAiEmbedder::builder()
        .api_key(KEY)
        .base_url(format!("{}/v1", server.uri()))
        .dimensions(Some(3))
        .build()
        .unwrap();
    let err = e3
        .embed_documents(&["x".to_string(), "y".to_string()])
        .await
        .unwrap_err();
    assert_eq!(kind(&err), ProviderErrorKind::MalformedResponse);
    assert!(
        err.to_string().contains("sent 2 texts, received 1"),
        "{err}"
    );
    let e16 = embedder(&server, 10);
    let err = e16.embed_documents(&["x".to_string()]).await.unwrap_err();
    assert_eq!(kind(&err), ProviderErrorKind::MalformedResponse);
    assert!(matches!(
        e16.embed_documents(&[String::new()]).await,
        Err(Error::InvalidInput(_))
    ));
}

#[tokio::test]
async fn embedder_builder_rules() {
    let e = OpenAiEmbedder::builder().api_key(KEY).build().unwrap();
    assert_eq!(
        (e.model(), e.dimensions()),
        ("text-embedding-3-small", 1536)
    );
    let e = OpenAiEmbedder::builder()
        .api_key(KEY)
        .model("text-embedding-3-large")
        .build()
        .unwrap();
    assert_eq!(e.dimensions(), 3072);
    // A model whose length is not known builds; the length is learned later.
    let unknown = OpenAiEmbedder::builder()
        .api_key(KEY)
        .model("nomic-embed-text")
        .build()
        .unwrap();
    assert_eq!(unknown.dimensions(), 0);
    for bad in [
        OpenAiEmbedder::builder().api_key(KEY).batch_size(0),
        OpenAiEmbedder::builder().api_key(KEY).dimensions(Some(0)),
        OpenAiEmbedder::builder(),
    ] {
        assert!(matches!(bad.build(), Err(Error::InvalidConfig(_))));
    }
    let local = OpenAiEmbedder::builder()
        .base_url("http://localhost:11434/v1")
        .model("nomic-embed-text")
        .dimensions(Some(768))
        .build()
        .unwrap();
    assert_eq!(local.dimensions(), 768);
}

#[tokio::test]
async fn embedder_conformance_suite() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/embeddings"))
        .respond_with(EmbeddingResponder { dims: 16 })
        .mount(&server)
        .await;
    embedder_conformance(&embedder(&server, 64)).await;
}

// ---------------------------------------------------------------- chat conformance

/// Answers what the conformance suite sends: a `get_weather` call when `tool_choice` names
/// it, text otherwise (including after a tool result); SSE when `stream` is set.
struct ConformanceResponder;

impl Respond for ConformanceResponder {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        let body: Value = req.body_json().unwrap();
        let stream = body["stream"] == true;
        let wants_tool = body["tool_choice"]["function"]["name"] == "get_weather";
        let after_tool = body["messages"].as_array().unwrap().last().unwrap()["role"] == "tool";
        let text = if after_tool {
            "It is 18°C and sunny in Paris."
        } else {
            "Hello there!"
        };
        let usage = json!({"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17});
        let base = json!({"id": "chatcmpl-c", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o-mini"});
        let with = |choices: Value, usage: Value| {
            let mut v = base.clone();
            v["choices"] = choices;
            v["usage"] = usage;
            v
        };
        if wants_tool {
            if stream {
                return sse_template(sse(&[
                    with(
                        json!([{"index": 0, "delta": {"role": "assistant", "tool_calls": [{"index": 0, "id": "call_w", "type": "function", "function": {"name": "get_weather", "arguments": ""}}]}}]),
                        Value::Null,
                    ),
                    with(
                        json!([{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": "{\"city\":"}}]}}]),
                        Value::Null,
                    ),
                    with(
                        json!([{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": "\"Paris\"}"}}]}}]),
                        Value::Null,
                    ),
                    with(
                        json!([{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]),
                        Value::Null,
                    ),
                    with(json!([]), usage),
                ]));
            }
            return ResponseTemplate::new(200).set_body_json(json!({
                "model": "gpt-4o-mini",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": null, "tool_calls": [
                    {"id": "call_w", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}
                ]}, "finish_reason": "tool_calls"}],
                "usage": usage
            }));
        }
        if stream {
            let (a, b) = text.split_at(5);
            return sse_template(sse(&[
                with(
                    json!([{"index": 0, "delta": {"role": "assistant", "content": ""}}]),
                    Value::Null,
                ),
                with(json!([{"index": 0, "delta": {"content": a}}]), Value::Null),
                with(json!([{"index": 0, "delta": {"content": b}}]), Value::Null),
                with(
                    json!([{"index": 0, "delta": {}, "finish_reason": "stop"}]),
                    Value::Null,
                ),
                with(json!([]), usage),
            ]));
        }
        ResponseTemplate::new(200).set_body_json(json!({
            "model": "gpt-4o-mini",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": usage
        }))
    }
}

#[tokio::test]
async fn chat_conformance_suite() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(ConformanceResponder)
        .mount(&server)
        .await;
    ChatModelConformance::new()
        .deterministic(true)
        .run(&chat(&server))
        .await;
}

// ---------------------------------------------------------------- HTTP errors and retries

#[tokio::test]
async fn unauthorized_is_auth_and_not_retried() {
    let server = MockServer::start().await;
    mount_chat(
        &server,
        ResponseTemplate::new(401)
            .set_body_json(data_json("openai/error_401.json"))
            .insert_header("x-request-id", "req_401"),
    )
    .await;
    let err = chat(&server).generate(hello()).await.unwrap_err();
    assert!(err.is_auth(), "{err:?}");
    let p = err.as_provider().unwrap();
    assert_eq!(p.status, Some(401));
    assert_eq!(p.request_id.as_deref(), Some("req_401"));
    assert!(
        p.message.contains("Incorrect API key") && p.message.contains("code: invalid_api_key"),
        "{p}"
    );
    assert_eq!(server.received_requests().await.unwrap().len(), 1);
    // The same on a stream: the error comes from `stream()` itself.
    assert!(chat(&server).stream(hello()).await.err().unwrap().is_auth());
}

#[tokio::test]
async fn missing_model_and_long_prompt_are_classified() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(wiremock::matchers::body_partial_json(
            json!({"model": "gpt-9-turbo"}),
        ))
        .respond_with(
            ResponseTemplate::new(404).set_body_json(data_json("openai/error_404_model.json")),
        )
        .mount(&server)
        .await;
    mount_chat(
        &server,
        ResponseTemplate::new(400).set_body_json(data_json("openai/error_context_length.json")),
    )
    .await;
    let model = chat(&server);
    let err = model
        .generate(hello().with_model("gpt-9-turbo"))
        .await
        .unwrap_err();
    assert_eq!(kind(&err), ProviderErrorKind::ModelNotFound);
    assert!(err.to_string().contains("gpt-9-turbo"), "{err}");
    let err = model.generate(hello()).await.unwrap_err();
    assert_eq!(kind(&err), ProviderErrorKind::ContextLengthExceeded);
    assert!(!err.is_retryable());
}

async fn rate_limited_error(header_name: &str, value: &str) -> Error {
    let server = MockServer::start().await;
    mount_chat(
        &server,
        ResponseTemplate::new(429)
            .set_body_json(data_json("openai/error_429.json"))
            .insert_header(header_name, value),
    )
    .await;
    let model = OpenAiChatModel::builder()
        .api_key(KEY)
        .base_url(format!("{}/v1", server.uri()))
        .http(HttpOptions::new().retry(RetryPolicy::none()))
        .build()
        .unwrap();
    let err = model.generate(hello()).await.unwrap_err();
    assert!(err.is_rate_limited(), "{err:?}");
    assert_eq!(server.received_requests().await.unwrap().len(), 1);
    err
}

#[tokio::test]
async fn rate_limit_retry_after_forms() {
    let e = rate_limited_error("retry-after-ms", "1500").await;
    assert_eq!(e.retry_after(), Some(Duration::from_millis(1500)));
    assert!(e.to_string().contains("Rate limit reached"), "{e}");
    let e = rate_limited_error("retry-after", "7").await;
    assert_eq!(e.retry_after(), Some(Duration::from_secs(7)));
    let date = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(120));
    let e = rate_limited_error("retry-after", &date).await;
    let d = e.retry_after().unwrap();
    assert!(
        d > Duration::from_secs(100) && d <= Duration::from_secs(120),
        "{d:?}"
    );
}

#[tokio::test]
async fn rate_limit_then_success_waits_as_told() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(429)
                .set_body_json(data_json("openai/error_429.json"))
                .insert_header("retry-after-ms", "50"),
        )
        .up_to_n_times(1)
        .mount(&server)
        .await;
    mount_chat(&server, json_template("openai/chat_completion.json")).await;
    let start = Instant::now();
    let r = chat(&server).generate(hello()).await.unwrap();
    assert!(start.elapsed() >= Duration::from_millis(50));
    assert_eq!(r.text(), "Hello! How can I assist you today?");
    assert_eq!(server.received_requests().await.unwrap().len(), 2);
}

#[tokio::test]
async fn server_error_then_success_is_two_requests() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(500).set_body_json(data_json("openai/error_500.json")))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    mount_chat(&server, json_template("openai/chat_completion.json")).await;
    let r = chat(&server).generate(hello()).await.unwrap();
    assert_eq!(r.finish_reason, Some(FinishReason::Stop));
    assert_eq!(server.received_requests().await.unwrap().len(), 2);
}

/// Answers 503 and records when each attempt arrived.
#[derive(Clone, Default)]
struct Unavailable(Arc<Mutex<Vec<Instant>>>);

impl Respond for Unavailable {
    fn respond(&self, _: &Request) -> ResponseTemplate {
        self.0.lock().unwrap().push(Instant::now());
        ResponseTemplate::new(503).set_body_string("upstream unavailable")
    }
}

/// A paused clock cannot drive this test: the transport's timeouts would fire while the real
/// loopback I/O is pending. The backoff schedule itself is unit-tested in `retry.rs`; here
/// the default policy (jitter off) runs in real time: 3 attempts, 0.5 s then 1 s apart.
#[tokio::test]
async fn persistent_unavailable_is_three_attempts_on_schedule() {
    let server = MockServer::start().await;
    let arrivals = Unavailable::default();
    mount_chat(&server, arrivals.clone()).await;
    let model = OpenAiChatModel::builder()
        .api_key(KEY)
        .base_url(format!("{}/v1", server.uri()))
        .http(HttpOptions::new().retry(RetryPolicy::default().with_jitter(false)))
        .build()
        .unwrap();
    let err = model.generate(hello()).await.unwrap_err();
    assert_eq!(kind(&err), ProviderErrorKind::Server);
    assert_eq!(err.as_provider().unwrap().status, Some(503));
    assert!(err.to_string().contains("upstream unavailable"), "{err}");
    let t = arrivals.0.lock().unwrap().clone();
    assert_eq!(t.len(), 3, "1 attempt + 2 retries");
    let (g1, g2) = (t[1] - t[0], t[2] - t[1]);
    assert!(
        g1 >= Duration::from_millis(500) && g1 < Duration::from_millis(1000),
        "{g1:?}"
    );
    assert!(
        g2 >= Duration::from_millis(1000) && g2 < Duration::from_millis(2000),
        "{g2:?}"
    );
}

/// A `Retry` decorator around a client whose transport retries too: the attempts are what the
/// outer policy says (1 + 3), never the product of the layers (3 × 4 = 12).
#[tokio::test]
async fn retry_decorator_over_a_retrying_transport_does_not_multiply_attempts() {
    use catena_chains::ComposeExt;
    let server = MockServer::start().await;
    let arrivals = Unavailable::default();
    mount_chat(&server, arrivals.clone()).await;
    let model = chat(&server).with_retry(
        RetryPolicy::default()
            .with_max_retries(3)
            .with_initial_backoff(Duration::from_millis(10))
            .with_jitter(false),
    );
    let err = model.generate(hello()).await.unwrap_err();
    assert_eq!(err.as_provider().unwrap().status, Some(503));
    assert_eq!(arrivals.0.lock().unwrap().len(), 4, "1 attempt + 3 retries");

    // Without the decorator the transport's own policy (2 retries) applies.
    let arrivals = Unavailable::default();
    server.reset().await;
    mount_chat(&server, arrivals.clone()).await;
    let _ = chat(&server).generate(hello()).await.unwrap_err();
    assert_eq!(arrivals.0.lock().unwrap().len(), 3);
}

#[tokio::test]
async fn malformed_json_body_is_malformed_response() {
    let server = MockServer::start().await;
    mount_chat(
        &server,
        ResponseTemplate::new(200).set_body_raw("{\"choices\": [", "application/json"),
    )
    .await;
    let err = chat(&server).generate(hello()).await.unwrap_err();
    assert_eq!(kind(&err), ProviderErrorKind::MalformedResponse);
    assert_eq!(
        server.received_requests().await.unwrap().len(),
        1,
        "not retried"
    );
    let server = MockServer::start().await;
    mount_chat(
        &server,
        ResponseTemplate::new(200).set_body_json(json!({"choices": []})),
    )
    .await;
    let err = chat(&server).generate(hello()).await.unwrap_err();
    assert_eq!(kind(&err), ProviderErrorKind::MalformedResponse);
}

// ---------------------------------------------------------------- broken streams

fn text_event(text: &str) -> String {
    format!(
        "data: {}\n\n",
        json!({"id": "c", "object": "chat.completion.chunk", "model": "gpt-4o-mini",
            "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": null}]})
    )
}

const FINISH_EVENT: &str =
    "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n";

async fn drain(model: &OpenAiChatModel) -> (Vec<ChatChunk>, Option<Error>) {
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

#[tokio::test]
async fn stream_cut_mid_way_is_interrupted_with_the_partial_text() {
    let (a, b) = (text_event("Hel"), text_event("lo wor"));
    let (addr, server) = raw_server(vec![chunked_response(
        "text/event-stream",
        &[&a, &b],
        false,
    )])
    .await;
    let model = chat_at(&format!("http://{addr}"));
    let (chunks, err) = drain(&model).await;
    assert_eq!(texts(&chunks), "Hello wor");
    let err = err.expect("a cut stream ends with an error");
    assert_eq!(kind(&err), ProviderErrorKind::StreamInterrupted, "{err}");
    assert!(err.to_string().contains("Hello wor"), "{err}");
    assert!(err.is_retryable());
    let requests = server.await.unwrap();
    let body: Value = serde_json::from_slice(request_body(&requests[0])).unwrap();
    assert_eq!(body["stream"], true);
}

#[tokio::test]
async fn stream_closed_cleanly_without_done_is_interrupted() {
    let body = format!("{}{}{FINISH_EVENT}", text_event("Hel"), text_event("lo"));
    let (addr, _server) = raw_server(vec![
        close_delimited_response("text/event-stream", &body),
        chunked_response("text/event-stream", &[&text_event("Hi")], true),
    ])
    .await;
    let model = chat_at(&format!("http://{addr}"));
    let (chunks, err) = drain(&model).await;
    assert_eq!(texts(&chunks), "Hello");
    assert!(
        !chunks.iter().any(|c| matches!(c, ChatChunk::Finish(_))),
        "no Finish without [DONE]"
    );
    let err = err.unwrap();
    assert_eq!(kind(&err), ProviderErrorKind::StreamInterrupted);
    assert!(err.to_string().contains("Hello"), "{err}");
    // A properly terminated body without `[DONE]` or finish reason: the same.
    let (chunks, err) = drain(&model).await;
    assert_eq!(texts(&chunks), "Hi");
    assert_eq!(kind(&err.unwrap()), ProviderErrorKind::StreamInterrupted);
}

#[tokio::test]
async fn silent_stream_times_out_and_dropping_hangs_up() {
    let head =
        "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n";
    let event = text_event("Hi");
    let response = format!("{head}{:x}\r\n{event}\r\n", event.len()).into_bytes();
    let (addr, server) = stalling_server(response.clone()).await;
    let model = OpenAiChatModel::builder()
        .api_key(KEY)
        .base_url(format!("http://{addr}/v1"))
        .http(HttpOptions::new().stream_idle_timeout(Duration::from_millis(200)))
        .build()
        .unwrap();
    let (chunks, err) = drain(&model).await;
    assert_eq!(texts(&chunks), "Hi");
    let err = err.unwrap();
    assert!(err.is_timeout(), "{err:?}");
    assert!(err.to_string().contains("\"Hi\""), "{err}");
    tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .unwrap()
        .unwrap();

    // Dropping a live stream closes the connection.
    let (addr, server) = stalling_server(response).await;
    let mut stream = chat_at(&format!("http://{addr}"))
        .stream(hello())
        .await
        .unwrap();
    assert!(stream.next().await.unwrap().is_ok());
    drop(stream);
    tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .expect("the server saw the hang-up")
        .unwrap();
}

#[tokio::test]
async fn error_event_mid_stream_follows_the_delivered_deltas() {
    let server = MockServer::start().await;
    let body = format!(
        "{}data: {}\n\n",
        text_event("Partial answer"),
        json!({"error": {"message": "The server had an error while processing your request.", "type": "server_error", "param": null, "code": null}})
    );
    mount_chat(&server, sse_template(body)).await;
    let (chunks, err) = drain(&chat(&server)).await;
    assert_eq!(texts(&chunks), "Partial answer");
    let err = err.unwrap();
    assert_eq!(kind(&err), ProviderErrorKind::Server);
    assert!(err.to_string().contains("server had an error"), "{err}");
}

#[tokio::test]
async fn malformed_stream_event_is_malformed_response() {
    let server = MockServer::start().await;
    mount_chat(
        &server,
        sse_template(format!("{}data: {{not json\n\n", text_event("a"))),
    )
    .await;
    let (chunks, err) = drain(&chat(&server)).await;
    assert_eq!(texts(&chunks), "a");
    assert_eq!(kind(&err.unwrap()), ProviderErrorKind::MalformedResponse);
}

// ---------------------------------------------------------------- configuration, secrets

#[tokio::test]
async fn builder_rules() {
    assert!(matches!(
        OpenAiChatModel::builder().build(),
        Err(Error::InvalidConfig(_))
    ));
    assert!(matches!(
        OpenAiChatModel::builder().api_key("").build(),
        Err(Error::InvalidConfig(_))
    ));
    assert!(matches!(
        OpenAiChatModel::builder()
            .api_key(KEY)
            .base_url("localhost:8000")
            .build(),
        Err(Error::InvalidConfig(_))
    ));
    assert!(matches!(
        OpenAiChatModel::builder().api_key(KEY).model(" ").build(),
        Err(Error::InvalidConfig(_))
    ));
    let m = OpenAiChatModel::builder().api_key(KEY).build().unwrap();
    assert_eq!(
        (m.model(), m.base_url()),
        ("gpt-4o-mini", "https://api.openai.com/v1")
    );

    // A local server needs no key, and then no Authorization header is sent.
    let server = MockServer::start().await;
    mount_chat(&server, json_template("openai/chat_completion.json")).await;
    let local = OpenAiChatModel::builder()
        .base_url(format!("{}/v1", server.uri()))
        .model("llama3.2")
        .build()
        .unwrap();
    local.generate(hello()).await.unwrap();
    let req = &server.received_requests().await.unwrap()[0];
    assert!(req.headers.get("authorization").is_none());
    assert!(req.headers.get("openai-organization").is_none());
}

const SECRET: &str = "sk-test-SECRETKEY-1234567890abcdef";

fn assert_no_secret(what: &str, text: &str) {
    let bytes = SECRET.as_bytes();
    for w in bytes.windows(8) {
        let w = std::str::from_utf8(w).unwrap();
        assert!(!text.contains(w), "{what} leaks `{w}`: {text}");
    }
}

/// Echoes the Authorization header back, as a careless proxy might.
struct EchoAuth {
    status: u16,
    json: bool,
}

impl Respond for EchoAuth {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        let auth = req
            .headers
            .get("authorization")
            .unwrap()
            .to_str()
            .unwrap()
            .to_owned();
        if self.json {
            ResponseTemplate::new(self.status)
                .set_body_json(json!({"error": {"message": format!("Invalid Authorization header: {auth}"), "type": "invalid_request_error", "code": "invalid_api_key"}}))
        } else {
            // Long enough that the fallback message (500 chars) cuts inside the key.
            let pad = "x".repeat(500 - "Bad header: Bearer sk-test-SECRET".len());
            ResponseTemplate::new(self.status)
                .set_body_string(format!("{pad}Bad header: {auth} (and again: {auth})"))
        }
    }
}

#[tokio::test]
async fn the_key_never_appears_in_errors_or_debug_output() {
    let mut outputs: Vec<(String, String)> = Vec::new();
    let build = |base: String| {
        OpenAiChatModel::builder()
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

    // 401 echoing the header, as JSON and as text cut mid-key.
    for json in [true, false] {
        let server = MockServer::start().await;
        mount_chat(&server, EchoAuth { status: 401, json }).await;
        let model = build(format!("{}/v1", server.uri()));
        let e = model.generate(hello()).await.unwrap_err();
        assert!(e.is_auth());
        assert!(e.to_string().contains("<redacted>"), "{e}");
        record("401 echo", &e);
        let e = model.stream(hello()).await.err().unwrap();
        record("401 echo (stream)", &e);
    }
    // An error event mid-stream echoing the key.
    let server = MockServer::start().await;
    mount_chat(
        &server,
        sse_template(format!(
            "{}data: {}\n\n",
            text_event("x"),
            json!({"error": {"message": format!("bad key {SECRET}")}})
        )),
    )
    .await;
    let (_, e) = drain(&build(format!("{}/v1", server.uri()))).await;
    record("stream error event", &e.unwrap());
    // Transport error to a closed port.
    let model = build(format!("http://{}/v1", closed_port()));
    let e = model.generate(hello()).await.unwrap_err();
    assert_eq!(kind(&e), ProviderErrorKind::Transport);
    record("transport", &e);
    // Malformed response.
    let server = MockServer::start().await;
    mount_chat(
        &server,
        ResponseTemplate::new(200).set_body_raw("{oops", "application/json"),
    )
    .await;
    let model = build(format!("{}/v1", server.uri()));
    record("malformed", &model.generate(hello()).await.unwrap_err());

    outputs.push(("model Debug".into(), format!("{model:?}")));
    let builder = OpenAiChatModel::builder().api_key(SECRET);
    outputs.push(("builder Debug".into(), format!("{builder:?}")));
    let embedder = OpenAiEmbedder::builder().api_key(SECRET).build().unwrap();
    outputs.push(("embedder Debug".into(), format!("{embedder:?}")));
    for (what, text) in &outputs {
        assert_no_secret(what, text);
    }
}

#[tokio::test]
async fn azure_deployments_and_gateway_headers() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/openai/deployments/my-gpt/chat/completions"))
        .and(wiremock::matchers::query_param("api-version", "2024-10-21"))
        .and(header("api-key", "azure-secret-key-123456"))
        .and(header("x-gateway-token", "gw-1"))
        .respond_with(json_template("openai/chat_completion.json"))
        .expect(1)
        .mount(&server)
        .await;
    let model = OpenAiChatModel::builder()
        .api_key("azure-secret-key-123456")
        .azure(server.uri(), "my-gpt", "2024-10-21")
        .default_header("x-gateway-token", "gw-1")
        .http(fast_http())
        .build()
        .unwrap();
    model.generate(hello()).await.unwrap();
    let req = &server.received_requests().await.unwrap()[0];
    assert!(
        req.headers.get("authorization").is_none(),
        "Azure takes the key in `api-key`, not a bearer token"
    );
    let shown = format!("{model:?}");
    assert!(
        !shown.contains("azure-secret") && !shown.contains("gw-1"),
        "{shown}"
    );

    assert!(matches!(
        OpenAiChatModel::builder()
            .api_key("k")
            .base_url(server.uri())
            .default_header("bad header", "x")
            .build()
            .unwrap_err(),
        Error::InvalidConfig(_)
    ));
}

#[tokio::test]
async fn embeddings_respect_openai_token_limits() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/embeddings"))
        .respond_with(|req: &Request| {
            let body: Value = serde_json::from_slice(&req.body).unwrap();
            let data: Vec<Value> = body["input"]
                .as_array()
                .unwrap()
                .iter()
                .enumerate()
                .map(|(i, _)| json!({"object": "embedding", "index": i, "embedding": [0.5, 0.5, 0.5]}))
                .collect();
            ResponseTemplate::new(200).set_body_json(json!({"object": "list", "data": data,
                "model": "text-embedding-3-small", "usage": {"prompt_tokens": 1, "total_tokens": 1}}))
        })
        .mount(&server)
        .await;
    let embedder = OpenAiEmbedder::builder()
        .api_key("sk-test")
        .base_url(server.uri())
        .model("text-embedding-3-small")
        .dimensions(Some(3))
        .max_request_tokens(10_000)
        .http(fast_http())
        .build()
        .unwrap();
    // " word" is one cl100k token: 4,000 tokens per text, so two texts fit a 10k request.
    let text = " word".repeat(4_000);
    let texts = vec![text.clone(), text.clone(), text.clone(), "short".to_owned()];
    let vectors = embedder.embed_documents(&texts).await.unwrap();
    assert_eq!(vectors.len(), 4);
    let sizes: Vec<usize> = server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .map(|r| {
            serde_json::from_slice::<Value>(&r.body).unwrap()["input"]
                .as_array()
                .unwrap()
                .len()
        })
        .collect();
    assert_eq!(sizes, [2, 2], "split by tokens, not only by count");

    // One input over the model's limit is refused before anything is sent, not truncated.
    let too_long = vec![" word".repeat(9_000)];
    let err = embedder.embed_documents(&too_long).await.unwrap_err();
    assert!(
        matches!(err, Error::InvalidInput(ref m) if m.contains("9000 tokens")),
        "{err}"
    );
    assert_eq!(server.received_requests().await.unwrap().len(), 2);
}

// ---------------------------------------------------------------- unknown embedding models

fn local_embedder(server: &MockServer) -> OpenAiEmbedder {
    OpenAiEmbedder::builder()
        .base_url(format!("{}/v1", server.uri()))
        .model("nomic-embed-text-v1.5")
        .http(fast_http())
        .build()
        .unwrap()
}

#[tokio::test]
async fn an_unknown_model_learns_its_dimension_from_the_first_response() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/embeddings"))
        .respond_with(EmbeddingResponder { dims: 16 })
        .up_to_n_times(2)
        .mount(&server)
        .await;
    let e = local_embedder(&server);
    let clone = e.clone();
    assert_eq!(e.dimensions(), 0, "unknown until the first response");
    assert_eq!(e.probe_dimensions().await.unwrap(), 16);
    assert_eq!(
        (e.dimensions(), clone.dimensions()),
        (16, 16),
        "clones share it"
    );
    assert_eq!(e.probe_dimensions().await.unwrap(), 16, "no second probe");
    let v = clone.embed_query("llama").await.unwrap();
    assert_eq!(v, vector_for("llama", 16));
    let sent = bodies(&server).await;
    assert_eq!(sent.len(), 2);
    assert!(sent[0].get("dimensions").is_none(), "nothing asked for");
    // Once learned, a vector of another length is an error.
    Mock::given(method("POST"))
        .and(path("/v1/embeddings"))
        .respond_with(EmbeddingResponder { dims: 8 })
        .mount(&server)
        .await;
    let err = e.embed_query("shorter").await.unwrap_err();
    assert_eq!(kind(&err), ProviderErrorKind::MalformedResponse);
    assert!(
        err.to_string().contains("has 8 dimensions, expected 16"),
        "{err}"
    );
}

#[tokio::test]
async fn a_response_of_mixed_lengths_is_refused_and_teaches_nothing() {
    // Before: the length was learned from the first item, so one malformed response (item
    // 0 of length 3) fixed a wrong length for every later call of every clone.
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/embeddings"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "object": "list",
            "data": [
                {"object": "embedding", "index": 0, "embedding": [0.1, 0.2, 0.3]},
                {"object": "embedding", "index": 1, "embedding": [0.1, 0.2, 0.3, 0.4]}
            ],
            "model": "local-model",
            "usage": {"prompt_tokens": 2, "total_tokens": 2}
        })))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/embeddings"))
        .respond_with(EmbeddingResponder { dims: 16 })
        .mount(&server)
        .await;
    let e = local_embedder(&server);
    let err = e
        .embed_documents(&["a".to_owned(), "b".to_owned()])
        .await
        .unwrap_err();
    assert_eq!(kind(&err), ProviderErrorKind::MalformedResponse);
    assert_eq!(e.dimensions(), 0, "nothing learned from a bad response");
    assert_eq!(
        e.embed_query("llama").await.unwrap(),
        vector_for("llama", 16)
    );
    assert_eq!(e.dimensions(), 16);
}

#[tokio::test]
async fn an_unknown_model_passes_the_conformance_suite_once_probed() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/embeddings"))
        .respond_with(EmbeddingResponder { dims: 24 })
        .mount(&server)
        .await;
    let e = local_embedder(&server);
    e.probe_dimensions().await.unwrap();
    embedder_conformance(&e).await;
}

#[tokio::test]
async fn per_token_vectors_get_an_error_that_says_so() {
    let server = MockServer::start().await;
    // llama.cpp's server with `--pooling none`: one vector per token of each input.
    Mock::given(method("POST"))
        .and(path("/v1/embeddings"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "model": "nomic-embed-text-v1.5",
            "object": "list",
            "usage": {"prompt_tokens": 3, "total_tokens": 3},
            "data": [{"embedding": [[0.011, -0.023, 0.031], [0.007, 0.002, -0.015], [0.019, -0.004, 0.008]],
                      "index": 0, "object": "embedding"}]
        })))
        .mount(&server)
        .await;
    let err = local_embedder(&server)
        .embed_query("hello world")
        .await
        .unwrap_err();
    assert_eq!(kind(&err), ProviderErrorKind::MalformedResponse);
    let text = err.to_string();
    assert!(
        text.contains("the server returned one vector per token (pooling none?)")
            && text.contains("use a pooled embedding model or --pooling mean"),
        "{text}"
    );
    assert!(!err.is_retryable());
}

// ---------------------------------------------------------------- request options

#[tokio::test]
async fn prompt_cache_key_and_request_options_are_sent_and_headroom_read() {
    let server = MockServer::start().await;
    mount_chat(
        &server,
        json_template("openai/chat_completion.json")
            .insert_header("x-ratelimit-remaining-requests", "59")
            .insert_header("x-ratelimit-reset-tokens", "20ms"),
    )
    .await;
    let req = hello()
        .with_prompt_cache(catena_core::PromptCache::automatic().with_key("tenant-42"))
        .with_parallel_tool_calls(false)
        .with_service_tier("priority")
        .with_reasoning(catena_core::ReasoningOptions::effort(
            catena_core::ReasoningEffort::Minimal,
        ));
    let r = chat(&server).generate(req).await.unwrap();
    let rl = r.rate_limit.unwrap();
    assert_eq!(rl.remaining_requests, Some(59));
    assert_eq!(rl.reset_tokens, Some(Duration::from_millis(20)));
    let sent = &bodies(&server).await[0];
    assert_eq!(sent["prompt_cache_key"], "tenant-42");
    assert_eq!(sent["parallel_tool_calls"], false);
    assert_eq!(sent["service_tier"], "priority");
    assert_eq!(sent["reasoning_effort"], "minimal");
    // None of them is sent unless set.
    chat(&server).generate(hello()).await.unwrap();
    let sent = &bodies(&server).await[1];
    for field in [
        "prompt_cache_key",
        "parallel_tool_calls",
        "service_tier",
        "reasoning_effort",
    ] {
        assert!(sent.get(field).is_none(), "{field}");
    }
}

#[tokio::test]
async fn cached_prompt_tokens_are_reported_unary_and_streamed() {
    let server = MockServer::start().await;
    let usage = json!({"prompt_tokens": 2006, "completion_tokens": 300, "total_tokens": 2306,
        "prompt_tokens_details": {"cached_tokens": 1920, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
            "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}});
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .and(wiremock::matchers::body_partial_json(json!({"stream": true})))
        .respond_with(
            sse_template(sse(&[
                json!({"id": "c", "object": "chat.completion.chunk", "model": "gpt-4o-mini",
                       "choices": [{"index": 0, "delta": {"content": "ok"}, "finish_reason": "stop"}]}),
                json!({"id": "c", "object": "chat.completion.chunk", "model": "gpt-4o-mini",
                       "choices": [], "usage": usage}),
            ]))
            .insert_header("x-ratelimit-remaining-tokens", "1000"),
        )
        .mount(&server)
        .await;
    mount_chat(
        &server,
        ResponseTemplate::new(200)
            .set_body_json(json!({"id": "c", "object": "chat.completion", "model": "gpt-4o-mini",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
                "usage": usage}))
            .insert_header("x-ratelimit-remaining-tokens", "1000"),
    )
    .await;
    let model = chat(&server);
    let unary = model.generate(hello()).await.unwrap();
    let streamed = collect_stream(model.stream(hello()).await.unwrap())
        .await
        .unwrap();
    assert_eq!(unary.usage.unwrap().cached_input_tokens, Some(1920));
    assert_eq!(unary.rate_limit.unwrap().remaining_tokens, Some(1000));
    assert_eq!(streamed, unary);
}
