//! The Gemini API client (API key) against a loopback server speaking Gemini's documented
//! wire format (payloads modelled on <https://ai.google.dev/api/generate-content> and
//! <https://ai.google.dev/api/embeddings>).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::time::Duration;

use catena_core::test_utils::{embedder_conformance, ChatModelConformance, DeterministicEmbedder};
use catena_core::RetryPolicy;
use catena_core::{
    collect_stream, ChatChunk, ChatModel, ChatRequest, ContentPart, Embedder, Error, FinishReason,
    Message, ProviderErrorKind, ResponseFormat, ToolCall, ToolChoice, ToolDefinition, Usage,
};
use catena_llms::gemini::{GeminiChatModel, GeminiEmbedder};
use catena_llms::HttpOptions;
use futures::StreamExt;
use serde_json::{json, Value};
use support::{data, fast_http, serve_once};
use wiremock::matchers::{header, method, path, query_param};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

const KEY: &str = "AIzaSy-TEST-SECRET-KEY-0123456789";
const GENERATE: &str = "/v1beta/models/gemini-2.5-flash:generateContent";
const STREAM: &str = "/v1beta/models/gemini-2.5-flash:streamGenerateContent";

fn chat(server: &str) -> GeminiChatModel {
    GeminiChatModel::builder()
        .api_key(KEY)
        .base_url(format!("{server}/v1beta"))
        .http(fast_http())
        .build()
        .unwrap()
}

fn body_of(req: &Request) -> Value {
    serde_json::from_slice(&req.body).unwrap()
}

fn json_reply(body: String) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_raw(body, "application/json")
}

fn sse_reply(body: String) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_raw(body, "text/event-stream")
}

fn weather_tool() -> ToolDefinition {
    ToolDefinition::new(
        "get_current_weather",
        "Get the current weather for a location",
        json!({"$schema": "https://json-schema.org/draft/2020-12/schema", "type": "object",
               "properties": {"location": {"type": "string"}}, "required": ["location"], "additionalProperties": false}),
    )
}

fn time_tool() -> ToolDefinition {
    ToolDefinition::new(
        "get_local_time",
        "Local time in a timezone",
        json!({"type": "object", "properties": {"timezone": {"type": "string"}}}),
    )
}

fn assert_key_only_in_header(req: &Request) {
    assert_eq!(
        req.headers.get("x-goog-api-key").unwrap().to_str().unwrap(),
        KEY
    );
    assert!(
        !req.url.as_str().contains(KEY),
        "the key must never be in the URL: {}",
        req.url
    );
    assert!(req.url.query_pairs().all(|(k, _)| k != "key"));
    assert!(req.headers.get("authorization").is_none());
}

#[tokio::test]
async fn plain_answer_request_body_url_and_key_header() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(GENERATE))
        .and(header("x-goog-api-key", KEY))
        .respond_with(json_reply(data("gemini/generate_text.json")))
        .expect(1)
        .mount(&server)
        .await;
    let req = ChatRequest::new(vec![
        Message::system("Be brief."),
        Message::user("Why is the sky blue?"),
    ])
    .with_temperature(0.2)
    .with_top_p(0.9)
    .with_seed(42)
    .with_max_tokens(64)
    .with_stop(["\n\n"]);
    let r = chat(&server.uri()).generate(req).await.unwrap();
    assert_eq!(
        r.text(),
        "The sky is blue because of Rayleigh scattering.",
        "thought parts are skipped"
    );
    assert_eq!(r.finish_reason, Some(FinishReason::Stop));
    assert_eq!(
        r.usage,
        Some(
            Usage::new(12, 49)
                .with_total_tokens(61)
                .with_cached_input_tokens(4)
                .with_reasoning_tokens(40)
        )
    );
    assert_eq!(r.model.as_deref(), Some("gemini-2.5-flash"));

    let received = &server.received_requests().await.unwrap()[0];
    assert_key_only_in_header(received);
    assert_eq!(
        body_of(received),
        json!({
            "contents": [{"role": "user", "parts": [{"text": "Why is the sky blue?"}]}],
            "systemInstruction": {"parts": [{"text": "Be brief."}]},
            "generationConfig": {"temperature": 0.2, "topP": 0.9, "maxOutputTokens": 64,
                                 "stopSequences": ["\n\n"], "seed": 42}
        })
    );
}

#[tokio::test]
async fn streamed_answer_equals_the_unary_one() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(STREAM))
        .and(query_param("alt", "sse"))
        .respond_with(sse_reply(data("gemini/stream_text.sse")))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(GENERATE))
        .respond_with(json_reply(data("gemini/generate_text.json")))
        .mount(&server)
        .await;
    let model = chat(&server.uri());
    let req = ChatRequest::new(vec![Message::user("Why is the sky blue?")]);
    let mut stream = model.stream(req.clone()).await.unwrap();
    let mut deltas = Vec::new();
    let mut acc = catena_core::StreamAccumulator::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.unwrap();
        if let ChatChunk::TextDelta(t) = &chunk {
            deltas.push(t.clone());
        }
        acc.push(&chunk);
    }
    assert_eq!(
        deltas,
        ["The sky is blue", " because of Rayleigh scattering."]
    );
    let streamed = acc.finish().unwrap();
    let unary = model.generate(req).await.unwrap();
    assert_eq!(streamed, unary);
    let received = &server.received_requests().await.unwrap()[0];
    assert_key_only_in_header(received);
    assert_eq!(received.url.query(), Some("alt=sse"));
}

#[tokio::test]
async fn two_function_calls_unary_and_streamed_and_their_results_on_the_wire() {
    let server = MockServer::start().await;
    let reply = data("gemini/generate_function_calls.json");
    let reply_stream = {
        // The same answer as two SSE chunks: one call each, the finish on the second.
        let v: Value = serde_json::from_str(&reply).unwrap();
        let parts = v["candidates"][0]["content"]["parts"]
            .as_array()
            .unwrap()
            .clone();
        let first = json!({"candidates": [{"content": {"role": "model", "parts": [parts[0].clone()]}, "index": 0}],
                           "modelVersion": "gemini-2.5-flash"});
        let second = json!({"candidates": [{"content": {"role": "model", "parts": [parts[1].clone()]}, "finishReason": "STOP", "index": 0}],
                            "usageMetadata": v["usageMetadata"], "modelVersion": "gemini-2.5-flash"});
        format!("data: {first}\r\n\r\ndata: {second}\r\n\r\n")
    };
    Mock::given(method("POST"))
        .and(path(GENERATE))
        .respond_with(json_reply(reply))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(STREAM))
        .respond_with(sse_reply(reply_stream))
        .mount(&server)
        .await;
    let model = chat(&server.uri());
    let req = ChatRequest::new(vec![Message::user("Weather and time in Paris?")])
        .with_tools([weather_tool(), time_tool()]);
    let unary = model.generate(req.clone()).await.unwrap();
    let calls = unary.tool_calls();
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[0].name, "get_current_weather");
    assert_eq!(
        calls[0].id, "call_0~ts~CiQB0e2Kb1Zs",
        "the thought signature rides on the id"
    );
    assert_eq!(
        calls[0].arguments_json().unwrap(),
        json!({"location": "Paris, FR", "unit": "celsius"})
    );
    assert_eq!(
        calls[1],
        ToolCall::new("call_1", "get_local_time", r#"{"timezone":"Europe/Paris"}"#)
    );
    assert_eq!(unary.finish_reason, Some(FinishReason::ToolCalls));
    assert_eq!(unary.text(), "");
    let streamed = collect_stream(model.stream(req.clone()).await.unwrap())
        .await
        .unwrap();
    assert_eq!(streamed, unary, "stream and unary end in the same response");

    let sent = body_of(&server.received_requests().await.unwrap()[0]);
    assert_eq!(
        sent["tools"],
        json!([{"functionDeclarations": [
            {"name": "get_current_weather", "description": "Get the current weather for a location",
             "parametersJsonSchema": {"type": "object", "properties": {"location": {"type": "string"}},
                                      "required": ["location"], "additionalProperties": false}},
            {"name": "get_local_time", "description": "Local time in a timezone",
             "parametersJsonSchema": {"type": "object", "properties": {"timezone": {"type": "string"}}}}
        ]}])
    );
    assert!(
        sent.get("toolConfig").is_none(),
        "no tool choice, no toolConfig"
    );

    // Send the calls back with their results: one `model` turn, then one `user` turn holding
    // both function responses.
    let mut history = vec![
        Message::user("Weather and time in Paris?"),
        unary.message.clone(),
    ];
    history.push(Message::tool_result(
        calls[0].id.clone(),
        r#"{"temperature": 18, "sky": "sunny"}"#,
    ));
    history.push(Message::tool_result(calls[1].id.clone(), "14:05"));
    model
        .generate(ChatRequest::new(history).with_tools([weather_tool(), time_tool()]))
        .await
        .unwrap();
    let sent = body_of(&server.received_requests().await.unwrap()[2]);
    assert_eq!(
        sent["contents"],
        json!([
            {"role": "user", "parts": [{"text": "Weather and time in Paris?"}]},
            {"role": "model", "parts": [
                {"functionCall": {"name": "get_current_weather", "args": {"location": "Paris, FR", "unit": "celsius"}},
                 "thoughtSignature": "CiQB0e2Kb1Zs"},
                {"functionCall": {"name": "get_local_time", "args": {"timezone": "Europe/Paris"}}}
            ]},
            {"role": "user", "parts": [
                {"functionResponse": {"name": "get_current_weather", "response": {"temperature": 18, "sky": "sunny"}}},
                {"functionResponse": {"name": "get_local_time", "response": {"result": "14:05"}}}
            ]}
        ])
    );
}

#[tokio::test]
async fn gemini_call_ids_round_trip() {
    let server = MockServer::start().await;
    let reply = json!({"candidates": [{"content": {"role": "model", "parts": [
        {"functionCall": {"id": "fc-7f3a", "name": "get_current_weather", "args": {"location": "Oslo"}}}]}, "finishReason": "STOP"}]});
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(reply))
        .mount(&server)
        .await;
    let model = chat(&server.uri());
    let first = model
        .generate(ChatRequest::new(vec![Message::user("Oslo?")]).with_tools([weather_tool()]))
        .await
        .unwrap();
    assert_eq!(first.tool_calls()[0].id, "fc-7f3a");
    let history = vec![
        Message::user("Oslo?"),
        first.message.clone(),
        Message::tool_result("fc-7f3a", "-3 degrees"),
    ];
    model.generate(ChatRequest::new(history)).await.unwrap();
    let sent = body_of(&server.received_requests().await.unwrap()[1]);
    assert_eq!(
        sent["contents"][1]["parts"][0]["functionCall"]["id"],
        "fc-7f3a"
    );
    assert_eq!(
        sent["contents"][2]["parts"][0]["functionResponse"],
        json!({"id": "fc-7f3a", "name": "get_current_weather", "response": {"result": "-3 degrees"}})
    );

    // A result for a call that is not in the history cannot be named: no request is sent.
    let orphan = ChatRequest::new(vec![Message::user("x"), Message::tool_result("nope", "y")]);
    assert!(matches!(
        model.generate(orphan).await.unwrap_err(),
        Error::InvalidInput(_)
    ));
    assert_eq!(server.received_requests().await.unwrap().len(), 2);
}

#[tokio::test]
async fn tool_config_modes_in_the_body() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(json_reply(data("gemini/generate_text.json")))
        .mount(&server)
        .await;
    let model = chat(&server.uri());
    let base =
        ChatRequest::new(vec![Message::user("hi")]).with_tools([weather_tool(), time_tool()]);
    let cases = [
        (ToolChoice::Auto, json!({"mode": "AUTO"})),
        (ToolChoice::None, json!({"mode": "NONE"})),
        (ToolChoice::Required, json!({"mode": "ANY"})),
        (
            ToolChoice::Tool("get_local_time".into()),
            json!({"mode": "ANY", "allowedFunctionNames": ["get_local_time"]}),
        ),
    ];
    for (i, (choice, expected)) in cases.into_iter().enumerate() {
        model
            .generate(base.clone().with_tool_choice(choice))
            .await
            .unwrap();
        let sent = body_of(&server.received_requests().await.unwrap()[i]);
        assert_eq!(
            sent["toolConfig"],
            json!({"functionCallingConfig": expected})
        );
        assert_eq!(
            sent["tools"][0]["functionDeclarations"]
                .as_array()
                .unwrap()
                .len(),
            2
        );
    }
}

#[tokio::test]
async fn structured_output_round_trip() {
    #[derive(Debug, PartialEq, serde::Deserialize, schemars::JsonSchema)]
    struct CityInfo {
        city: String,
        population: u64,
    }
    let server = MockServer::start().await;
    let answer = json!({"candidates": [{"content": {"role": "model", "parts": [{"text": "{\"city\": \"Paris\", \"population\": 2102650}"}]},
                        "finishReason": "STOP"}], "modelVersion": "gemini-2.5-flash"});
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(answer))
        .mount(&server)
        .await;
    let model = chat(&server.uri());
    let req = ChatRequest::new(vec![Message::user("Tell me about Paris.")])
        .with_response_format(ResponseFormat::json_schema_for::<CityInfo>());
    let r = model.generate(req).await.unwrap();
    let parsed: CityInfo = serde_json::from_str(&r.text()).unwrap();
    assert_eq!(
        parsed,
        CityInfo {
            city: "Paris".into(),
            population: 2_102_650
        }
    );
    let sent = body_of(&server.received_requests().await.unwrap()[0]);
    let config = &sent["generationConfig"];
    assert_eq!(config["responseMimeType"], "application/json");
    let ResponseFormat::JsonSchema { schema, .. } = ResponseFormat::json_schema_for::<CityInfo>()
    else {
        unreachable!()
    };
    assert_eq!(config["responseJsonSchema"], schema);
    assert_eq!(
        config["responseJsonSchema"]["properties"]["population"]["type"],
        "integer"
    );

    model
        .generate(
            ChatRequest::new(vec![Message::user("JSON please")])
                .with_response_format(ResponseFormat::JsonObject),
        )
        .await
        .unwrap();
    let sent = body_of(&server.received_requests().await.unwrap()[1]);
    assert_eq!(
        sent["generationConfig"],
        json!({"responseMimeType": "application/json"})
    );
}

#[tokio::test]
async fn images_go_inline_or_as_file_data() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(json_reply(data("gemini/generate_text.json")))
        .mount(&server)
        .await;
    let msg = Message::user_parts(vec![
        ContentPart::text("What is in these pictures?"),
        ContentPart::image_base64("image/png", "iVBORw0KGgo="),
        ContentPart::image_url("data:image/jpeg;base64,/9j/4AAQ"),
        ContentPart::image_url(
            "https://generativelanguage.googleapis.com/v1beta/files/abc-123.jpg",
        ),
    ]);
    chat(&server.uri())
        .generate(ChatRequest::new(vec![msg]))
        .await
        .unwrap();
    let sent = body_of(&server.received_requests().await.unwrap()[0]);
    assert_eq!(
        sent["contents"][0]["parts"],
        json!([
            {"text": "What is in these pictures?"},
            {"inlineData": {"mimeType": "image/png", "data": "iVBORw0KGgo="}},
            {"inlineData": {"mimeType": "image/jpeg", "data": "/9j/4AAQ"}},
            {"fileData": {"mimeType": "image/jpeg", "fileUri": "https://generativelanguage.googleapis.com/v1beta/files/abc-123.jpg"}}
        ])
    );
}

fn embed_values(text: &str) -> Vec<f32> {
    let mut v = DeterministicEmbedder::new(16).embed(text);
    v[0] += 0.01; // never all zeros
    v
}

/// Answers `:batchEmbedContents` and `:embedContent` with deterministic vectors.
struct EmbedServer;

impl Respond for EmbedServer {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        let body = body_of(req);
        if req.url.path().ends_with(":batchEmbedContents") {
            let requests = body["requests"].as_array().unwrap();
            assert!(
                requests.len() <= 100,
                "the Gemini API takes at most 100 requests per batch"
            );
            let embeddings: Vec<Value> = requests
                .iter()
                .map(|r| json!({"values": embed_values(r["content"]["parts"][0]["text"].as_str().unwrap())}))
                .collect();
            ResponseTemplate::new(200).set_body_json(json!({"embeddings": embeddings}))
        } else {
            let v = embed_values(body["content"]["parts"][0]["text"].as_str().unwrap());
            ResponseTemplate::new(200).set_body_json(json!({"embedding": {"values": v}}))
        }
    }
}

fn embedder(server: &str) -> GeminiEmbedder {
    GeminiEmbedder::builder()
        .api_key(KEY)
        .base_url(format!("{server}/v1beta"))
        .output_dimensionality(16)
        .http(fast_http())
        .build()
        .unwrap()
}

#[tokio::test]
async fn embeddings_are_batched_in_order_with_task_types() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(EmbedServer)
        .mount(&server)
        .await;
    let e = embedder(&server.uri());
    let texts: Vec<String> = (0..250).map(|i| format!("text number {i}")).collect();
    let vectors = e.embed_documents(&texts).await.unwrap();
    assert_eq!(vectors.len(), 250);
    for i in [0, 99, 100, 199, 200, 249] {
        assert_eq!(
            vectors[i],
            embed_values(&texts[i]),
            "vector {i} out of order"
        );
    }
    let reqs = server.received_requests().await.unwrap();
    assert_eq!(reqs.len(), 3);
    let sizes: Vec<usize> = reqs
        .iter()
        .map(|r| body_of(r)["requests"].as_array().unwrap().len())
        .collect();
    assert_eq!(sizes, [100, 100, 50]);
    assert_eq!(
        reqs[0].url.path(),
        "/v1beta/models/gemini-embedding-001:batchEmbedContents"
    );
    assert_key_only_in_header(&reqs[0]);
    assert_eq!(
        body_of(&reqs[0])["requests"][0],
        json!({"model": "models/gemini-embedding-001", "content": {"parts": [{"text": "text number 0"}]},
               "taskType": "RETRIEVAL_DOCUMENT", "outputDimensionality": 16})
    );

    let q = e.embed_query("where is the cat?").await.unwrap();
    assert_eq!(q, embed_values("where is the cat?"));
    let reqs = server.received_requests().await.unwrap();
    assert_eq!(
        reqs[3].url.path(),
        "/v1beta/models/gemini-embedding-001:embedContent"
    );
    assert_eq!(
        body_of(&reqs[3]),
        json!({"content": {"parts": [{"text": "where is the cat?"}]}, "taskType": "RETRIEVAL_QUERY", "outputDimensionality": 16})
    );
    assert!(e.embed_documents(&[]).await.unwrap().is_empty());
    assert_eq!(
        server.received_requests().await.unwrap().len(),
        4,
        "no request for no input"
    );

    // Known models need no dimensions; unknown ones do; wrong sizes are caught.
    let default = GeminiEmbedder::builder().api_key(KEY).build().unwrap();
    assert_eq!(default.dimensions(), 3072);
    assert_eq!(
        GeminiEmbedder::builder()
            .api_key(KEY)
            .model("text-embedding-004")
            .build()
            .unwrap()
            .dimensions(),
        768
    );
    assert!(matches!(
        GeminiEmbedder::builder()
            .api_key(KEY)
            .model("mystery")
            .build()
            .unwrap_err(),
        Error::InvalidConfig(_)
    ));
    assert!(matches!(
        GeminiEmbedder::builder()
            .api_key(KEY)
            .batch_size(101)
            .build()
            .unwrap_err(),
        Error::InvalidConfig(_)
    ));
    let wrong = GeminiEmbedder::builder()
        .api_key(KEY)
        .base_url(format!("{}/v1beta", server.uri()))
        .output_dimensionality(8)
        .build()
        .unwrap();
    let err = wrong.embed_documents(&["x".to_string()]).await.unwrap_err();
    assert_eq!(
        err.provider_kind(),
        Some(&ProviderErrorKind::MalformedResponse)
    );
}

#[tokio::test]
async fn short_embedding_batches_are_malformed() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"embeddings": [{"values": embed_values("a")}]})),
        )
        .mount(&server)
        .await;
    let err = embedder(&server.uri())
        .embed_documents(&["a".into(), "b".into()])
        .await
        .unwrap_err();
    assert_eq!(
        err.provider_kind(),
        Some(&ProviderErrorKind::MalformedResponse)
    );
    assert!(err.to_string().contains("sent 2 texts, got 1"), "{err}");
}

async fn one_error(status: u16, body: Value) -> (Error, usize) {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(status).set_body_json(body))
        .mount(&server)
        .await;
    let e = chat(&server.uri())
        .generate(ChatRequest::new(vec![Message::user("x")]))
        .await
        .unwrap_err();
    (e, server.received_requests().await.unwrap().len())
}

#[tokio::test]
async fn invalid_key_is_an_auth_error() {
    let body: Value = serde_json::from_str(&data("gemini/error_api_key_invalid.json")).unwrap();
    let (e, requests) = one_error(400, body).await;
    let p = e.as_provider().unwrap();
    assert_eq!(p.kind, ProviderErrorKind::Auth);
    assert_eq!(p.status, Some(400));
    assert_eq!(p.provider.as_deref(), Some("gemini"));
    assert!(
        p.message.contains("API key not valid") && p.message.contains("API_KEY_INVALID"),
        "{p}"
    );
    assert_eq!(requests, 1, "auth errors are not retried");
}

#[tokio::test]
async fn other_classified_errors() {
    let (e, requests) = one_error(404, json!({"error": {"code": 404, "status": "NOT_FOUND",
        "message": "models/gemini-9 is not found for API version v1beta, or is not supported for generateContent."}})).await;
    assert_eq!(e.provider_kind(), Some(&ProviderErrorKind::ModelNotFound));
    assert!(e.to_string().contains("is not found"), "{e}");
    assert_eq!(requests, 1);
    let (e, _) = one_error(
        403,
        json!({"error": {"code": 403, "status": "PERMISSION_DENIED",
        "message": "Method doesn't allow unregistered callers."}}),
    )
    .await;
    assert!(e.is_permission_denied(), "{e}");
    let (e, _) = one_error(400, json!({"error": {"code": 400, "status": "INVALID_ARGUMENT",
        "message": "The input token count (1200000) exceeds the maximum number of tokens allowed (1048576)."}})).await;
    assert_eq!(
        e.provider_kind(),
        Some(&ProviderErrorKind::ContextLengthExceeded)
    );
    let (e, _) = one_error(400, json!({"error": {"code": 400, "status": "INVALID_ARGUMENT", "message": "Invalid JSON payload received."}})).await;
    assert_eq!(e.provider_kind(), Some(&ProviderErrorKind::InvalidRequest));
}

#[tokio::test]
async fn rate_limit_with_retry_after_then_success() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("retry-after", "0")
                .set_body_raw(
                    data("gemini/error_resource_exhausted.json"),
                    "application/json",
                ),
        )
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(json_reply(data("gemini/generate_text.json")))
        .mount(&server)
        .await;
    let r = chat(&server.uri())
        .generate(ChatRequest::new(vec![Message::user("x")]))
        .await
        .unwrap();
    assert!(r.text().contains("Rayleigh"));
    assert_eq!(server.received_requests().await.unwrap().len(), 2);
}

#[tokio::test]
async fn retry_info_delay_is_read_when_there_is_no_retry_after_header() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(429).set_body_json(json!({"error": {"code": 429, "status": "RESOURCE_EXHAUSTED",
            "message": "Quota exceeded.", "details": [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "13s"}]}})))
        .mount(&server)
        .await;
    let model = GeminiChatModel::builder()
        .api_key(KEY)
        .base_url(format!("{}/v1beta", server.uri()))
        .http(HttpOptions::new().retry(RetryPolicy::none()))
        .build()
        .unwrap();
    let e = model
        .generate(ChatRequest::new(vec![Message::user("x")]))
        .await
        .unwrap_err();
    assert!(e.is_rate_limited());
    assert_eq!(e.retry_after(), Some(Duration::from_secs(13)));

    // And the retry loop waits for it: "0.02s" then success.
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(429).set_body_json(json!({"error": {"code": 429, "status": "RESOURCE_EXHAUSTED",
            "message": "Quota exceeded.", "details": [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "0.02s"}]}})))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(json_reply(data("gemini/generate_text.json")))
        .mount(&server)
        .await;
    let slow_backoff = HttpOptions::new()
        .retry(RetryPolicy::default().with_initial_backoff(Duration::from_secs(30)));
    let model = GeminiChatModel::builder()
        .api_key(KEY)
        .base_url(format!("{}/v1beta", server.uri()))
        .http(slow_backoff)
        .build()
        .unwrap();
    let started = std::time::Instant::now();
    model
        .generate(ChatRequest::new(vec![Message::user("x")]))
        .await
        .unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "RetryInfo replaces the 30 s backoff"
    );
}

#[tokio::test]
async fn server_error_then_success_takes_exactly_two_requests() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(500).set_body_json(json!({"error": {"code": 500, "status": "INTERNAL", "message": "An internal error has occurred."}})))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(json_reply(data("gemini/generate_text.json")))
        .mount(&server)
        .await;
    chat(&server.uri())
        .generate(ChatRequest::new(vec![Message::user("x")]))
        .await
        .unwrap();
    assert_eq!(server.received_requests().await.unwrap().len(), 2);
}

#[tokio::test]
async fn persistent_unavailability_gives_up_after_three_attempts() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(503).set_body_json(json!({"error": {"code": 503, "status": "UNAVAILABLE", "message": "The model is overloaded. Please try again later."}})))
        .mount(&server)
        .await;
    let e = chat(&server.uri())
        .generate(ChatRequest::new(vec![Message::user("x")]))
        .await
        .unwrap_err();
    let p = e.as_provider().unwrap();
    assert_eq!(p.kind, ProviderErrorKind::Server);
    assert_eq!(p.status, Some(503));
    assert!(p.message.contains("overloaded"), "{p}");
    assert_eq!(
        server.received_requests().await.unwrap().len(),
        3,
        "1 attempt + 2 retries"
    );
    // Streams retry the same way until their headers arrive.
    let _ = chat(&server.uri())
        .stream(ChatRequest::new(vec![Message::user("x")]))
        .await
        .err()
        .unwrap();
    assert_eq!(server.received_requests().await.unwrap().len(), 6);
}

#[tokio::test]
async fn malformed_json_is_a_typed_error() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(GENERATE))
        .respond_with(
            ResponseTemplate::new(200).set_body_raw("{\"candidates\": [", "application/json"),
        )
        .mount(&server)
        .await;
    Mock::given(method("POST")).and(path(STREAM))
        .respond_with(sse_reply("data: {\"candidates\": [{\"content\": {\"parts\": [{\"text\": \"Hi\"}]}}]}\n\ndata: {not json\n\n".into()))
        .mount(&server)
        .await;
    let model = chat(&server.uri());
    let e = model
        .generate(ChatRequest::new(vec![Message::user("x")]))
        .await
        .unwrap_err();
    assert_eq!(
        e.provider_kind(),
        Some(&ProviderErrorKind::MalformedResponse)
    );
    let e = collect_stream(
        model
            .stream(ChatRequest::new(vec![Message::user("x")]))
            .await
            .unwrap(),
    )
    .await
    .unwrap_err();
    assert_eq!(
        e.provider_kind(),
        Some(&ProviderErrorKind::MalformedResponse)
    );
}

#[tokio::test]
async fn blocked_prompt_is_content_filtered() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(GENERATE))
        .respond_with(json_reply(data("gemini/prompt_blocked.json")))
        .mount(&server)
        .await;
    let blocked: Value = serde_json::from_str(&data("gemini/prompt_blocked.json")).unwrap();
    Mock::given(method("POST"))
        .and(path(STREAM))
        .respond_with(sse_reply(format!("data: {blocked}\n\n")))
        .mount(&server)
        .await;
    let model = chat(&server.uri());
    let e = model
        .generate(ChatRequest::new(vec![Message::user("x")]))
        .await
        .unwrap_err();
    assert_eq!(e.provider_kind(), Some(&ProviderErrorKind::ContentFiltered));
    assert!(e.to_string().contains("PROHIBITED_CONTENT"), "{e}");
    let e = collect_stream(
        model
            .stream(ChatRequest::new(vec![Message::user("x")]))
            .await
            .unwrap(),
    )
    .await
    .unwrap_err();
    assert_eq!(e.provider_kind(), Some(&ProviderErrorKind::ContentFiltered));

    // A candidate stopped by safety is an answer with a content-filter finish, and
    // unknown reasons are kept verbatim.
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"candidates": [
            {"content": {"role": "model", "parts": [{"text": "Once upon"}]}, "finishReason": "RECITATION"}]})))
        .mount(&server)
        .await;
    let r = chat(&server.uri())
        .generate(ChatRequest::new(vec![Message::user("x")]))
        .await
        .unwrap();
    assert_eq!(
        r.finish_reason,
        Some(FinishReason::Other("RECITATION".into()))
    );
}

fn raw_chat(host: &str) -> GeminiChatModel {
    GeminiChatModel::builder()
        .api_key(KEY)
        .base_url(host)
        .http(fast_http())
        .build()
        .unwrap()
}

#[tokio::test]
async fn stream_cut_mid_way_carries_the_partial_answer() {
    let event = "data: {\"candidates\":[{\"content\":{\"role\":\"model\",\"parts\":[{\"text\":\"The sky\"}]}}]}\n\n";
    let response = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n\
         {:x}\r\n{event}\r\n40\r\ndata: {{\"candidates\":[{{\"content\":{{\"parts\":[{{\"text\":\" is",
        event.len()
    );
    let host = serve_once(Box::leak(response.into_bytes().into_boxed_slice())).await;
    let e = collect_stream(
        raw_chat(&host)
            .stream(ChatRequest::new(vec![Message::user("x")]))
            .await
            .unwrap(),
    )
    .await
    .unwrap_err();
    let p = e.as_provider().unwrap();
    assert_eq!(p.kind, ProviderErrorKind::StreamInterrupted, "{e}");
    assert!(p.message.contains("The sky"), "{e}");
}

#[tokio::test]
async fn stream_without_finish_reason_is_an_error_not_a_success() {
    let host = serve_once(
        b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n\
          data: {\"candidates\":[{\"content\":{\"role\":\"model\",\"parts\":[{\"text\":\"Half an\"}]}}]}\n\n\
          data: {\"candidates\":[{\"content\":{\"role\":\"model\",\"parts\":[{\"text\":\" answer\"}]}}]}\n\n",
    )
    .await;
    let e = collect_stream(
        raw_chat(&host)
            .stream(ChatRequest::new(vec![Message::user("x")]))
            .await
            .unwrap(),
    )
    .await
    .unwrap_err();
    assert_eq!(
        e.provider_kind(),
        Some(&ProviderErrorKind::StreamInterrupted)
    );
    assert!(e.to_string().contains("Half an answer"), "{e}");
}

#[tokio::test]
async fn error_event_mid_stream_follows_the_delivered_deltas() {
    let host = serve_once(
        b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n\
          data: {\"candidates\":[{\"content\":{\"role\":\"model\",\"parts\":[{\"text\":\"Par\"}]}}]}\n\n\
          data: {\"error\":{\"code\":503,\"message\":\"The model is overloaded.\",\"status\":\"UNAVAILABLE\"}}\n\n",
    )
    .await;
    let items: Vec<_> = raw_chat(&host)
        .stream(ChatRequest::new(vec![Message::user("x")]))
        .await
        .unwrap()
        .collect()
        .await;
    let texts: Vec<_> = items
        .iter()
        .filter_map(|i| match i {
            Ok(ChatChunk::TextDelta(t)) => Some(t.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(texts, ["Par"]);
    let last = items.last().unwrap().as_ref().unwrap_err();
    let p = last.as_provider().unwrap();
    assert_eq!(p.kind, ProviderErrorKind::Server);
    assert_eq!(p.status, Some(503));
    assert!(p.message.contains("overloaded"), "{last}");
}

fn assert_no_key_fragment(what: &str, text: &str) {
    for i in 0..=KEY.len() - 8 {
        let fragment = &KEY[i..i + 8];
        assert!(
            !text.contains(fragment),
            "{what} leaks `{fragment}`: {text}"
        );
    }
}

#[tokio::test]
async fn the_key_never_leaks() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({"error": {"code": 400, "status": "INVALID_ARGUMENT",
            "message": format!("API key not valid: {KEY}. Please pass a valid API key."),
            "details": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID"}]}})))
        .mount(&server)
        .await;
    let model = chat(&server.uri());
    assert_no_key_fragment("the model's Debug", &format!("{model:?}"));
    let mut errors = vec![model
        .generate(ChatRequest::new(vec![Message::user("x")]))
        .await
        .unwrap_err()];
    errors.push(
        model
            .stream(ChatRequest::new(vec![Message::user("x")]))
            .await
            .err()
            .unwrap(),
    );
    let e = embedder(&server.uri());
    assert_no_key_fragment("the embedder's Debug", &format!("{e:?}"));
    errors.push(e.embed_query("x").await.unwrap_err());
    // A connection failure, a timeout and a 401 without a body.
    let refused = raw_chat("http://127.0.0.1:9");
    errors.push(
        refused
            .generate(ChatRequest::new(vec![Message::user("x")]))
            .await
            .unwrap_err(),
    );
    let silent = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(401))
        .mount(&silent)
        .await;
    errors.push(
        chat(&silent.uri())
            .generate(ChatRequest::new(vec![Message::user("x")]))
            .await
            .unwrap_err(),
    );
    for e in &errors {
        assert_no_key_fragment("an error's Display", &format!("{e}"));
        assert_no_key_fragment("an error's Debug", &format!("{e:?}"));
    }
    assert!(errors[0].is_auth() && errors[1].is_auth() && errors[4].is_auth());
    assert!(
        errors[0].to_string().contains("<redacted>"),
        "{}",
        errors[0]
    );
}

#[tokio::test]
async fn invalid_requests_fail_before_any_traffic() {
    let server = MockServer::start().await;
    let model = chat(&server.uri());
    assert!(matches!(
        model.generate(ChatRequest::new(vec![])).await.unwrap_err(),
        Error::InvalidInput(_)
    ));
    let big_seed = ChatRequest::new(vec![Message::user("x")]).with_seed(u64::MAX);
    assert!(matches!(
        model.generate(big_seed).await.unwrap_err(),
        Error::InvalidInput(_)
    ));
    assert!(server.received_requests().await.unwrap().is_empty());
    assert!(matches!(
        GeminiChatModel::builder().build().unwrap_err(),
        Error::InvalidConfig(_)
    ));
    assert!(matches!(
        GeminiChatModel::builder()
            .api_key(KEY)
            .vertex("p", "us-central1")
            .build()
            .unwrap_err(),
        Error::InvalidConfig(_)
    ));
    let info = model.model_info();
    assert_eq!(
        (info.provider.as_str(), info.model.as_str()),
        ("gemini", "gemini-2.5-flash")
    );
    assert!(
        info.supports_tools
            && info.supports_json_schema
            && info.supports_images
            && info.supports_streaming
    );
}

/// Answers the conformance suite's requests the way Gemini would: a `get_weather` call
/// when `toolConfig` forces one, text after a function response, text otherwise; SSE for
/// `:streamGenerateContent`.
struct ConformanceServer;

impl Respond for ConformanceServer {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        let body = body_of(req);
        let last = body["contents"].as_array().unwrap().last().unwrap().clone();
        let parts = if last["parts"][0].get("functionResponse").is_some() {
            let result = last["parts"][0]["functionResponse"]["response"]["result"]
                .as_str()
                .unwrap()
                .to_owned();
            json!([{"text": format!("It is {result} in Paris.")}])
        } else if body["toolConfig"]["functionCallingConfig"]["mode"] == "ANY" {
            json!([{"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}}])
        } else {
            json!([{"text": "Hello there, friend."}])
        };
        let usage =
            json!({"promptTokenCount": 10, "candidatesTokenCount": 5, "totalTokenCount": 15});
        if req.url.path().contains(":streamGenerateContent") {
            let (first, second) = match parts[0]["text"].as_str() {
                Some(t) => {
                    let (a, b) = t.split_at(t.len() / 2);
                    (json!([{"text": a}]), json!([{"text": b}]))
                }
                None => (parts.clone(), json!([])),
            };
            let c1 = json!({"candidates": [{"content": {"role": "model", "parts": first}, "index": 0}],
                            "usageMetadata": {"promptTokenCount": 10, "totalTokenCount": 10}, "modelVersion": "gemini-test"});
            let c2 = json!({"candidates": [{"content": {"role": "model", "parts": second}, "finishReason": "STOP", "index": 0}],
                            "usageMetadata": usage, "modelVersion": "gemini-test"});
            sse_reply(format!("data: {c1}\n\ndata: {c2}\n\n"))
        } else {
            ResponseTemplate::new(200).set_body_json(json!({"candidates": [{"content": {"role": "model", "parts": parts},
                "finishReason": "STOP", "index": 0}], "usageMetadata": usage, "modelVersion": "gemini-test"}))
        }
    }
}

#[tokio::test]
async fn chat_conformance() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ConformanceServer)
        .mount(&server)
        .await;
    ChatModelConformance::new()
        .deterministic(true)
        .run(&chat(&server.uri()))
        .await;
}

#[tokio::test]
async fn embedder_conformance_suite() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(EmbedServer)
        .mount(&server)
        .await;
    embedder_conformance(&embedder(&server.uri())).await;
}

#[tokio::test]
async fn cached_content_is_sent_and_cached_tokens_are_reported_unary_and_streamed() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(GENERATE))
        .respond_with(json_reply(data("gemini/generate_text.json")))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(STREAM))
        .respond_with(sse_reply(data("gemini/stream_text.sse")))
        .mount(&server)
        .await;
    let model = chat(&server.uri());
    let req = ChatRequest::new(vec![Message::user("Why is the sky blue?")]).with_prompt_cache(
        catena_core::PromptCache::manual()
            .with_cached_content("cachedContents/abc123")
            .with_key("ignored-by-gemini"),
    );
    let unary = model.generate(req.clone()).await.unwrap();
    let streamed = collect_stream(model.stream(req).await.unwrap())
        .await
        .unwrap();
    for r in [&unary, &streamed] {
        assert_eq!(r.usage.unwrap().cached_input_tokens, Some(4));
    }
    let received = server.received_requests().await.unwrap();
    assert_eq!(received.len(), 2);
    for r in &received {
        let body = body_of(r);
        assert_eq!(body["cachedContent"], "cachedContents/abc123");
        assert!(body.get("promptCacheKey").is_none() && body.get("prompt_cache_key").is_none());
    }
    // Without a cache name nothing is sent.
    let _ = model
        .generate(ChatRequest::new(vec![Message::user("hi")]))
        .await
        .unwrap();
    let last = server.received_requests().await.unwrap().pop().unwrap();
    assert!(body_of(&last).get("cachedContent").is_none());
}
