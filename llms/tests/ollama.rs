//! The Ollama client against a loopback server speaking Ollama's documented wire format
//! (payloads from <https://github.com/ollama/ollama/blob/main/docs/api.md>).
#![cfg(feature = "ollama")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::time::Duration;

use catena_core::test_utils::{embedder_conformance, ChatModelConformance};
use catena_core::RetryPolicy;
use catena_core::{
    collect_stream, ChatModel, ChatRequest, ContentPart, Embedder, Error, FinishReason, Message,
    ProviderErrorKind, ResponseFormat, ToolCall, ToolChoice, ToolDefinition, Usage,
};
use catena_llms::ollama::{OllamaChatModel, OllamaEmbedder};
use catena_llms::HttpOptions;
use serde_json::{json, Value};
use support::{data, fast_http, serve_once};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

fn chat(server: &str) -> OllamaChatModel {
    OllamaChatModel::builder()
        .host(server)
        .model("llama3.2")
        .http(fast_http())
        .build()
        .unwrap()
}

fn weather_tool() -> ToolDefinition {
    ToolDefinition::new(
        "get_current_weather",
        "Get the current weather for a location",
        json!({"type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]}),
    )
}

fn body_of(req: &Request) -> Value {
    serde_json::from_slice(&req.body).unwrap()
}

#[tokio::test]
async fn plain_answer_and_request_body() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/api/chat"))
        .respond_with(
            ResponseTemplate::new(200).set_body_raw(data("ollama/chat.json"), "application/json"),
        )
        .expect(1)
        .mount(&server)
        .await;
    let req = ChatRequest::new(vec![Message::system("Be brief."), Message::user("Hi")])
        .with_temperature(0.2)
        .with_top_p(0.9)
        .with_seed(42)
        .with_max_tokens(64)
        .with_stop(["\n\n"]);
    let r = chat(&server.uri()).generate(req).await.unwrap();
    assert_eq!(r.text(), "Hello! How are you today?");
    assert_eq!(r.finish_reason, Some(FinishReason::Stop));
    assert_eq!(r.usage, Some(Usage::new(26, 298)));
    assert_eq!(r.model.as_deref(), Some("llama3.2"));

    let sent = body_of(&server.received_requests().await.unwrap()[0]);
    assert_eq!(
        sent,
        json!({
            "model": "llama3.2",
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "Hi"}
            ],
            "options": {"temperature": 0.2, "top_p": 0.9, "seed": 42, "num_predict": 64, "stop": ["\n\n"]},
            "stream": false
        })
    );
}

#[tokio::test]
async fn streamed_answer_matches_the_unary_one() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/api/chat"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_raw(data("ollama/chat_stream.ndjson"), "application/x-ndjson"),
        )
        .mount(&server)
        .await;
    let model = chat(&server.uri());
    let streamed = collect_stream(
        model
            .stream(ChatRequest::new(vec![Message::user(
                "Why is the sky blue?",
            )]))
            .await
            .unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(streamed.text(), "The sky is blue.");
    assert_eq!(streamed.usage, Some(Usage::new(26, 282)));
    assert_eq!(streamed.finish_reason, Some(FinishReason::Stop));
    assert_eq!(streamed.model.as_deref(), Some("llama3.2"));
    let sent = body_of(&server.received_requests().await.unwrap()[0]);
    assert_eq!(sent["stream"], true);
}

#[tokio::test]
async fn several_tool_calls_unary_and_streamed() {
    let server = MockServer::start().await;
    let reply = data("ollama/chat_tool_call.json");
    Mock::given(method("POST"))
        .and(path("/api/chat"))
        .respond_with(move |req: &Request| {
            if body_of(req)["stream"] == true {
                let v: Value = serde_json::from_str(&reply).unwrap();
                let mut first = v.clone();
                first["done"] = json!(false);
                first.as_object_mut().unwrap().remove("done_reason");
                let last = json!({"model": "llama3.2", "message": {"role": "assistant", "content": ""},
                    "done": true, "done_reason": "stop", "prompt_eval_count": 122, "eval_count": 33});
                ResponseTemplate::new(200).set_body_raw(format!("{first}\n{last}\n"), "application/x-ndjson")
            } else {
                ResponseTemplate::new(200).set_body_raw(reply.clone(), "application/json")
            }
        })
        .mount(&server)
        .await;
    let model = chat(&server.uri());
    let req = ChatRequest::new(vec![Message::user("Weather and time in Paris?")])
        .with_tools([weather_tool()]);
    let unary = model.generate(req.clone()).await.unwrap();
    let calls = unary.tool_calls();
    assert_eq!(calls.len(), 2);
    assert_eq!(
        calls[0],
        ToolCall::new(
            "call_0",
            "get_current_weather",
            r#"{"format":"celsius","location":"Paris, FR"}"#
        )
    );
    assert_eq!(calls[1].id, "call_1");
    assert_eq!(
        calls[1].arguments_json().unwrap(),
        json!({"timezone": "Europe/Paris"})
    );
    assert_eq!(unary.finish_reason, Some(FinishReason::ToolCalls));
    let streamed = collect_stream(model.stream(req).await.unwrap())
        .await
        .unwrap();
    assert_eq!(streamed, unary, "stream and unary end in the same response");

    let sent = body_of(&server.received_requests().await.unwrap()[0]);
    assert_eq!(
        sent["tools"],
        json!([{"type": "function", "function": {"name": "get_current_weather",
            "description": "Get the current weather for a location",
            "parameters": {"type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]}}}])
    );
}

#[tokio::test]
async fn tool_results_images_tool_choice_and_format_on_the_wire() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(200).set_body_raw(data("ollama/chat.json"), "application/json"),
        )
        .mount(&server)
        .await;
    let model = chat(&server.uri());
    let other = ToolDefinition::new("other", "unused", json!({"type": "object"}));
    let history = vec![
        Message::user_parts(vec![
            ContentPart::text("What is in this picture?"),
            ContentPart::image_base64("image/png", "iVBORw0KGgo="),
            ContentPart::image_url("data:image/jpeg;base64,/9j/4AAQ"),
        ]),
        Message::assistant_with_tool_calls(
            "",
            vec![ToolCall::new(
                "call_0",
                "get_current_weather",
                r#"{"location":"Paris"}"#,
            )],
        ),
        Message::tool_result("call_0", "18 degrees"),
    ];
    #[derive(schemars::JsonSchema)]
    #[allow(dead_code)]
    struct Answer {
        summary: String,
    }
    let req = ChatRequest::new(history)
        .with_tools([weather_tool(), other])
        .with_tool_choice(ToolChoice::Tool("get_current_weather".into()))
        .with_response_format(ResponseFormat::json_schema_for::<Answer>());
    model.generate(req.clone()).await.unwrap();
    let sent = body_of(&server.received_requests().await.unwrap()[0]);
    assert_eq!(
        sent["messages"][0]["images"],
        json!(["iVBORw0KGgo=", "/9j/4AAQ"])
    );
    assert_eq!(
        sent["messages"][1]["tool_calls"],
        json!([{"function": {"name": "get_current_weather", "arguments": {"location": "Paris"}}}])
    );
    assert_eq!(
        sent["messages"][2],
        json!({"role": "tool", "content": "18 degrees", "tool_name": "get_current_weather"})
    );
    let tools = sent["tools"].as_array().unwrap();
    assert_eq!(tools.len(), 1, "a named tool choice sends only that tool");
    assert_eq!(sent["format"]["properties"]["summary"]["type"], "string");

    model
        .generate(
            req.clone()
                .with_tool_choice(ToolChoice::None)
                .with_response_format(ResponseFormat::JsonObject),
        )
        .await
        .unwrap();
    let sent = body_of(&server.received_requests().await.unwrap()[1]);
    assert!(
        sent.get("tools").is_none(),
        "tool choice none sends no tools"
    );
    assert_eq!(sent["format"], "json");

    // Remote image URLs cannot be sent to Ollama: a typed error, and no request.
    let bad = ChatRequest::new(vec![Message::user_parts(vec![ContentPart::image_url(
        "https://example.com/a.png",
    )])]);
    assert!(matches!(
        model.generate(bad).await.unwrap_err(),
        Error::InvalidInput(_)
    ));
    assert_eq!(server.received_requests().await.unwrap().len(), 2);
}

#[tokio::test]
async fn errors_are_typed() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(404)
                .set_body_json(json!({"error": "model \"nope\" not found, try pulling it first"})),
        )
        .expect(1)
        .mount(&server)
        .await;
    let e = chat(&server.uri())
        .generate(ChatRequest::new(vec![Message::user("x")]))
        .await
        .unwrap_err();
    let p = e.as_provider().unwrap();
    assert_eq!(p.kind, ProviderErrorKind::ModelNotFound);
    assert_eq!(p.status, Some(404));
    assert!(p.message.contains("try pulling it"), "{p}");
}

#[tokio::test]
async fn rate_limit_then_success_honours_retry_after() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("retry-after-ms", "20")
                .set_body_json(json!({"error": "busy"})),
        )
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(200).set_body_raw(data("ollama/chat.json"), "application/json"),
        )
        .mount(&server)
        .await;
    let r = chat(&server.uri())
        .generate(ChatRequest::new(vec![Message::user("x")]))
        .await
        .unwrap();
    assert_eq!(r.text(), "Hello! How are you today?");
    assert_eq!(server.received_requests().await.unwrap().len(), 2);
}

#[tokio::test]
async fn malformed_body_is_a_typed_error() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(200).set_body_raw("{\"message\": {", "application/json"),
        )
        .mount(&server)
        .await;
    let e = chat(&server.uri())
        .generate(ChatRequest::new(vec![Message::user("x")]))
        .await
        .unwrap_err();
    assert_eq!(
        e.provider_kind(),
        Some(&ProviderErrorKind::MalformedResponse)
    );
}

#[tokio::test]
async fn stream_cut_mid_way_carries_the_partial_answer() {
    // A chunked body whose second chunk is cut off before its end.
    let line = "{\"model\":\"m\",\"message\":{\"content\":\"The sky\"},\"done\":false}\n";
    let response = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/x-ndjson\r\ntransfer-encoding: chunked\r\n\r\n\
         {:x}\r\n{line}\r\n40\r\n{{\"model\":\"m\",\"message\":{{\"content\":\" is",
        line.len()
    );
    let host = serve_once(Box::leak(response.into_bytes().into_boxed_slice())).await;
    let e = collect_stream(
        chat(&host)
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
async fn stream_without_done_is_an_error_not_a_success() {
    let host = serve_once(
        b"HTTP/1.1 200 OK\r\ncontent-type: application/x-ndjson\r\nconnection: close\r\n\r\n\
          {\"model\":\"m\",\"message\":{\"content\":\"Half an\"},\"done\":false}\n",
    )
    .await;
    let e = collect_stream(
        chat(&host)
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
    assert!(e.to_string().contains("Half an"), "{e}");
}

#[tokio::test]
async fn error_line_mid_stream_follows_the_delivered_deltas() {
    use futures::StreamExt;
    let host = serve_once(
        b"HTTP/1.1 200 OK\r\ncontent-type: application/x-ndjson\r\nconnection: close\r\n\r\n\
          {\"model\":\"m\",\"message\":{\"content\":\"Par\"},\"done\":false}\n\
          {\"error\":\"an error was encountered while running the model: out of memory\"}\n",
    )
    .await;
    let items: Vec<_> = chat(&host)
        .stream(ChatRequest::new(vec![Message::user("x")]))
        .await
        .unwrap()
        .collect()
        .await;
    let texts: Vec<_> = items
        .iter()
        .filter_map(|i| match i {
            Ok(catena_core::ChatChunk::TextDelta(t)) => Some(t.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(texts, ["Par"]);
    let last = items.last().unwrap().as_ref().unwrap_err();
    assert!(last.to_string().contains("out of memory"), "{last}");
}

#[tokio::test]
async fn embeddings_are_batched_in_order_and_checked() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/api/embed"))
        .respond_with(|req: &Request| {
            let body = body_of(req);
            let vecs: Vec<Vec<f32>> = body["input"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| {
                    let n = t.as_str().unwrap().len() as f32;
                    vec![n, 1.0, 0.5]
                })
                .collect();
            ResponseTemplate::new(200)
                .set_body_json(json!({"model": "all-minilm", "embeddings": vecs}))
        })
        .mount(&server)
        .await;
    let e = OllamaEmbedder::builder()
        .host(server.uri())
        .model("custom")
        .dimensions(3)
        .batch_size(2)
        .http(fast_http())
        .build()
        .unwrap();
    let texts: Vec<String> = ["a", "bb", "ccc", "dddd", "eeeee"]
        .map(String::from)
        .to_vec();
    let v = e.embed_documents(&texts).await.unwrap();
    assert_eq!(
        v.iter().map(|x| x[0]).collect::<Vec<_>>(),
        [1.0, 2.0, 3.0, 4.0, 5.0]
    );
    let reqs = server.received_requests().await.unwrap();
    assert_eq!(reqs.len(), 3);
    assert_eq!(
        body_of(&reqs[0]),
        json!({"model": "custom", "input": ["a", "bb"], "dimensions": 3})
    );
    assert!(e.embed_documents(&[]).await.unwrap().is_empty());
    assert_eq!(
        server.received_requests().await.unwrap().len(),
        3,
        "no request for no input"
    );

    // A model that answers with the wrong size is caught.
    let wrong = OllamaEmbedder::builder()
        .host(server.uri())
        .model("custom")
        .dimensions(4)
        .http(fast_http())
        .build()
        .unwrap();
    let err = wrong.embed_query("x").await.unwrap_err();
    assert_eq!(
        err.provider_kind(),
        Some(&ProviderErrorKind::MalformedResponse)
    );
    // An unknown model without dimensions is a configuration error.
    assert!(matches!(
        OllamaEmbedder::builder()
            .model("mystery")
            .build()
            .unwrap_err(),
        Error::InvalidConfig(_)
    ));
    assert_eq!(
        OllamaEmbedder::builder()
            .model("nomic-embed-text:latest")
            .build()
            .unwrap()
            .dimensions(),
        768
    );
}

/// Answers the conformance suite's requests the way a tool-capable Ollama model would.
struct ConformanceServer;

impl Respond for ConformanceServer {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        let body = body_of(req);
        let messages = body["messages"].as_array().unwrap();
        let last = messages.last().unwrap();
        let message = if last["role"] == "tool" {
            json!({"role": "assistant", "content": format!("It is {}.", last["content"].as_str().unwrap())})
        } else if body.get("tools").is_some() {
            json!({"role": "assistant", "content": "", "tool_calls": [{"function": {"name": "get_weather", "arguments": {"city": "Paris"}}}]})
        } else {
            json!({"role": "assistant", "content": "Hello there, friend."})
        };
        if body["stream"] == true {
            let content = message["content"].as_str().unwrap().to_owned();
            let (a, b) = content.split_at(content.len() / 2);
            let mut first = json!({"model": "m", "message": {"role": "assistant", "content": a}, "done": false});
            if let Some(tc) = message.get("tool_calls") {
                first["message"]["tool_calls"] = tc.clone();
            }
            let second = json!({"model": "m", "message": {"role": "assistant", "content": b}, "done": false});
            let done = json!({"model": "m", "message": {"role": "assistant", "content": ""}, "done": true, "done_reason": "stop", "prompt_eval_count": 10, "eval_count": 5});
            ResponseTemplate::new(200).set_body_raw(
                format!("{first}\n{second}\n{done}\n"),
                "application/x-ndjson",
            )
        } else {
            ResponseTemplate::new(200)
                .set_body_json(json!({"model": "m", "message": message, "done": true,
                "done_reason": "stop", "prompt_eval_count": 10, "eval_count": 5}))
        }
    }
}

#[tokio::test]
async fn chat_conformance() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/api/chat"))
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
        .and(path("/api/embed"))
        .respond_with(|req: &Request| {
            let embedder = catena_core::test_utils::DeterministicEmbedder::new(16);
            let vecs: Vec<Vec<f32>> = body_of(req)["input"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| {
                    let mut v = embedder.embed(t.as_str().unwrap());
                    v[0] += 0.01; // never all zeros
                    v
                })
                .collect();
            ResponseTemplate::new(200).set_body_json(json!({"embeddings": vecs}))
        })
        .mount(&server)
        .await;
    let e = OllamaEmbedder::builder()
        .host(server.uri())
        .model("custom")
        .dimensions(16)
        .batch_size(100)
        .build()
        .unwrap();
    embedder_conformance(&e).await;
}

// ---------------------------------------------------------------- errors, retries, streams

use std::sync::{Arc, Mutex};
use std::time::Instant;

use catena_core::parser::{OutputParser, TypedOutputParser};
use catena_core::ChatChunk;

fn hello() -> ChatRequest {
    ChatRequest::new(vec![Message::user("Hello!")])
}

/// Answers with `responses` in turn (the last one repeated), recording when each request
/// arrived.
#[derive(Clone)]
struct Sequence {
    responses: Arc<Vec<ResponseTemplate>>,
    arrivals: Arc<Mutex<Vec<Instant>>>,
}

impl Sequence {
    async fn mount(responses: Vec<ResponseTemplate>) -> (MockServer, Sequence) {
        let server = MockServer::start().await;
        let seq = Sequence {
            responses: Arc::new(responses),
            arrivals: Arc::default(),
        };
        Mock::given(method("POST"))
            .respond_with(seq.clone())
            .mount(&server)
            .await;
        (server, seq)
    }

    fn arrivals(&self) -> Vec<Instant> {
        self.arrivals.lock().unwrap().clone()
    }
}

impl Respond for Sequence {
    fn respond(&self, _: &Request) -> ResponseTemplate {
        let mut arrivals = self.arrivals.lock().unwrap();
        arrivals.push(Instant::now());
        let i = (arrivals.len() - 1).min(self.responses.len() - 1);
        self.responses[i].clone()
    }
}

#[tokio::test]
async fn unauthorized_is_auth_and_not_retried() {
    // What an Ollama server behind an authenticating proxy (or ollama.com) answers.
    let (server, seq) = Sequence::mount(vec![
        ResponseTemplate::new(401).set_body_json(json!({"error": "unauthorized"}))
    ])
    .await;
    let model = chat(&server.uri());
    let e = model.generate(hello()).await.unwrap_err();
    assert!(e.is_auth(), "{e:?}");
    let p = e.as_provider().unwrap();
    assert_eq!(p.status, Some(401));
    assert_eq!(p.provider.as_deref(), Some("ollama"));
    assert!(p.message.contains("unauthorized"), "{p}");
    assert!(!e.is_retryable());
    assert_eq!(seq.arrivals().len(), 1, "401 is not retried");
    // The same on a stream: `stream()` itself fails, once.
    let e = model.stream(hello()).await.err().unwrap();
    assert!(e.is_auth(), "{e:?}");
    assert_eq!(seq.arrivals().len(), 2);
}

#[tokio::test]
async fn server_error_then_success_is_two_requests() {
    let (server, seq) = Sequence::mount(vec![
        ResponseTemplate::new(500)
            .set_body_json(json!({"error": "llama runner process has terminated"})),
        ResponseTemplate::new(200).set_body_raw(data("ollama/chat.json"), "application/json"),
    ])
    .await;
    let r = chat(&server.uri()).generate(hello()).await.unwrap();
    assert_eq!(r.text(), "Hello! How are you today?");
    assert_eq!(seq.arrivals().len(), 2);
}

#[tokio::test]
async fn persistent_unavailable_is_three_attempts() {
    let (server, seq) = Sequence::mount(vec![ResponseTemplate::new(503).set_body_json(
        json!({"error": "server busy, please try again.  maximum pending requests exceeded"}),
    )])
    .await;
    let model = OllamaChatModel::builder()
        .host(server.uri())
        .http(
            HttpOptions::new().retry(
                RetryPolicy::default()
                    .with_initial_backoff(Duration::from_millis(50))
                    .with_jitter(false),
            ),
        )
        .build()
        .unwrap();
    let e = model.generate(hello()).await.unwrap_err();
    let p = e.as_provider().unwrap();
    assert_eq!(p.kind, ProviderErrorKind::Server);
    assert_eq!(p.status, Some(503));
    assert!(p.message.contains("server busy"), "{p}");
    let t = seq.arrivals();
    assert_eq!(t.len(), 3, "1 attempt + 2 retries");
    // Backoff 50 ms, then 100 ms (lower bounds only: a busy machine may be slower).
    assert!(
        t[1] - t[0] >= Duration::from_millis(50),
        "{:?}",
        t[1] - t[0]
    );
    assert!(
        t[2] - t[1] >= Duration::from_millis(100),
        "{:?}",
        t[2] - t[1]
    );

    // A stream's start is retried the same way.
    let e = model.stream(hello()).await.err().unwrap();
    assert_eq!(e.as_provider().unwrap().status, Some(503));
    assert_eq!(seq.arrivals().len(), 6);
}

#[tokio::test]
async fn malformed_json_line_mid_stream_follows_the_delivered_delta() {
    use futures::StreamExt;
    let host = serve_once(
        b"HTTP/1.1 200 OK\r\ncontent-type: application/x-ndjson\r\nconnection: close\r\n\r\n\
          {\"model\":\"m\",\"message\":{\"role\":\"assistant\",\"content\":\"The sky is\"},\"done\":false}\n\
          {\"model\":\"m\",\"message\":{\"role\":\"assistant\",\"content\":\n\
          {\"model\":\"m\",\"message\":{\"role\":\"assistant\",\"content\":\"\"},\"done\":true,\"done_reason\":\"stop\"}\n",
    )
    .await;
    let items: Vec<_> = chat(&host).stream(hello()).await.unwrap().collect().await;
    let texts: Vec<_> = items
        .iter()
        .filter_map(|i| match i {
            Ok(ChatChunk::TextDelta(t)) => Some(t.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(
        texts,
        ["The sky is"],
        "the delta before the bad line is delivered"
    );
    let last = items
        .last()
        .unwrap()
        .as_ref()
        .expect_err("the stream ends with the error, not with `done`");
    assert_eq!(
        last.provider_kind(),
        Some(&ProviderErrorKind::MalformedResponse),
        "{last:?}"
    );
    assert!(
        last.to_string().contains("The sky is"),
        "the error carries the partial answer: {last}"
    );
}

/// What the structured-output tests ask for.
#[derive(Debug, PartialEq, serde::Deserialize, schemars::JsonSchema)]
struct Country {
    name: String,
    capital: String,
    languages: Vec<String>,
}

#[tokio::test]
async fn structured_output_parses_into_a_rust_type() {
    // As in Ollama's "structured outputs" example: the JSON comes as the message text.
    let answer = r#"{"name": "Canada", "capital": "Ottawa", "languages": ["English", "French"]}"#;
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/api/chat"))
        .respond_with(move |req: &Request| {
            if body_of(req)["stream"] == true {
                let (a, b) = answer.split_at(20);
                let line = |t: &str| json!({"model": "llama3.1", "message": {"role": "assistant", "content": t}, "done": false}).to_string();
                let done = json!({"model": "llama3.1", "message": {"role": "assistant", "content": ""}, "done": true, "done_reason": "stop"});
                ResponseTemplate::new(200).set_body_raw(
                    format!("{}\n{}\n{done}\n", line(a), line(b)),
                    "application/x-ndjson",
                )
            } else {
                ResponseTemplate::new(200).set_body_json(json!({
                    "model": "llama3.1",
                    "created_at": "2024-12-06T00:48:09.983619Z",
                    "message": {"role": "assistant", "content": answer},
                    "done_reason": "stop",
                    "done": true,
                    "prompt_eval_count": 32,
                    "eval_count": 37
                }))
            }
        })
        .mount(&server)
        .await;
    let parser = TypedOutputParser::<Country>::new();
    let req = ChatRequest::new(vec![Message::user("Tell me about Canada.")])
        .with_response_format(ResponseFormat::json_schema_for::<Country>());
    let model = chat(&server.uri());
    let expected = Country {
        name: "Canada".into(),
        capital: "Ottawa".into(),
        languages: vec!["English".into(), "French".into()],
    };

    let r = model.generate(req.clone()).await.unwrap();
    assert_eq!(parser.parse(&r.text()).unwrap(), expected);
    let streamed = collect_stream(model.stream(req).await.unwrap())
        .await
        .unwrap();
    assert_eq!(parser.parse(&streamed.text()).unwrap(), expected);

    // The schema went out as `format`, as Ollama documents it.
    let sent = body_of(&server.received_requests().await.unwrap()[0]);
    assert_eq!(sent["format"]["type"], "object");
    let mut required: Vec<&str> = sent["format"]["required"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    required.sort_unstable();
    assert_eq!(required, ["capital", "languages", "name"]);
    assert_eq!(sent["format"]["properties"]["languages"]["type"], "array");
}

/// Sets environment variables for one test and restores them afterwards, even on panic.
struct EnvGuard(Vec<(&'static str, Option<std::ffi::OsString>)>);

impl EnvGuard {
    fn set(vars: &[(&'static str, &str)]) -> Self {
        let saved = vars
            .iter()
            .map(|(k, _)| (*k, std::env::var_os(k)))
            .collect();
        for (k, v) in vars {
            std::env::set_var(k, v);
        }
        EnvGuard(saved)
    }
}

impl Drop for EnvGuard {
    fn drop(&mut self) {
        for (k, v) in &self.0 {
            match v {
                Some(v) => std::env::set_var(k, v),
                None => std::env::remove_var(k),
            }
        }
    }
}

/// The only test that touches `OLLAMA_*` variables (the environment is process-wide).
#[tokio::test]
async fn from_env_honours_ollama_host() {
    use catena_llms::ollama::{OLLAMA_EMBED_MODEL_ENV, OLLAMA_HOST_ENV, OLLAMA_MODEL_ENV};
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/api/chat"))
        .respond_with(
            ResponseTemplate::new(200).set_body_raw(data("ollama/chat.json"), "application/json"),
        )
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/api/embed"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"model": "all-minilm", "embeddings": [vec![0.5f32; 384]]})),
        )
        .mount(&server)
        .await;
    // `host:port` without a scheme, as `OLLAMA_HOST` is usually written.
    let host = server.address().to_string();
    let (chat_model, embedder) = {
        let _env = EnvGuard::set(&[
            (OLLAMA_HOST_ENV, &host),
            (OLLAMA_MODEL_ENV, "qwen2.5:7b"),
            (OLLAMA_EMBED_MODEL_ENV, "all-minilm"),
        ]);
        (
            OllamaChatModel::from_env().unwrap(),
            OllamaEmbedder::from_env().unwrap(),
        )
    };
    let r = chat_model.generate(hello()).await.unwrap();
    assert_eq!(r.text(), "Hello! How are you today?");
    assert_eq!(chat_model.model_info().model, "qwen2.5:7b");
    assert_eq!(embedder.embed_query("x").await.unwrap().len(), 384);
    let received = server.received_requests().await.unwrap();
    assert_eq!(received.len(), 2, "both clients talked to OLLAMA_HOST");
    assert_eq!(body_of(&received[0])["model"], "qwen2.5:7b");
    assert_eq!(body_of(&received[1])["model"], "all-minilm");
}
