//! The shared HTTP transport seen through the provider clients: bounded bodies and stream
//! lines, the whole-request and stream-idle timeouts, which failures are retried and how
//! long the client waits (`Retry-After` over real HTTP), the shared `reqwest::Client`, and
//! hanging up when a stream is dropped.
//!
//! Well-formed exchanges use `wiremock`; silent, stalled and oversized answers use raw TCP
//! servers on 127.0.0.1 (`support`). Timing assertions are lower bounds, or upper bounds
//! of several seconds, so that a slow machine cannot make them fail.

#![cfg(all(feature = "openai", feature = "ollama"))]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use catena_core::RetryPolicy;
use catena_core::{
    ChatChunk, ChatModel, ChatRequest, ChatStream, Embedder, Error, Message, ProviderErrorKind,
};
use catena_llms::ollama::{OllamaChatModel, OllamaEmbedder};
use catena_llms::openai::{OpenAiChatModel, OpenAiEmbedder};
use catena_llms::HttpOptions;
use futures::StreamExt;
use serde_json::{json, Value};
use support::{
    chunked_response, closed_port, data_json, fast_http, fast_retry, raw_server, stalling_server,
};
use tokio::net::TcpListener;
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

const KEY: &str = "sk-transport-test-0000";

fn ollama(base: &str, http: HttpOptions) -> OllamaChatModel {
    OllamaChatModel::builder()
        .host(base)
        .model("llama3.2")
        .http(http)
        .build()
        .unwrap()
}

fn openai(base: &str, http: HttpOptions) -> OpenAiChatModel {
    OpenAiChatModel::builder()
        .api_key(KEY)
        .base_url(format!("{base}/v1"))
        .http(http)
        .build()
        .unwrap()
}

fn hello() -> ChatRequest {
    ChatRequest::new(vec![Message::user("Hello!")])
}

fn kind(e: &Error) -> ProviderErrorKind {
    e.provider_kind()
        .cloned()
        .unwrap_or_else(|| panic!("not a provider error: {e:?}"))
}

/// A complete (non-streamed) Ollama `/api/chat` answer.
fn ollama_reply(text: &str) -> Value {
    json!({
        "model": "llama3.2",
        "created_at": "2023-12-12T14:13:43.416799Z",
        "message": {"role": "assistant", "content": text},
        "done": true,
        "done_reason": "stop",
        "prompt_eval_count": 26,
        "eval_count": 298
    })
}

/// One NDJSON line of an Ollama stream carrying `text`.
fn ndjson_delta(text: &str) -> String {
    format!(
        "{}\n",
        json!({"model": "llama3.2", "created_at": "2023-08-04T08:52:19.385406455-07:00",
            "message": {"role": "assistant", "content": text}, "done": false})
    )
}

fn ndjson_done() -> String {
    format!(
        "{}\n",
        json!({"model": "llama3.2", "message": {"role": "assistant", "content": ""},
            "done": true, "done_reason": "stop", "prompt_eval_count": 26, "eval_count": 290})
    )
}

/// One Chat Completions SSE event carrying `text`.
fn sse_delta(text: &str) -> String {
    format!(
        "data: {}\n\n",
        json!({"id": "c", "object": "chat.completion.chunk", "model": "gpt-4o-mini",
            "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": null}]})
    )
}

const SSE_FINISH: &str = "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n";

/// Response head of a chunked 200 whose body follows as [`http_chunk`]s.
fn chunked_head(content_type: &str) -> String {
    format!("HTTP/1.1 200 OK\r\ncontent-type: {content_type}\r\ntransfer-encoding: chunked\r\n\r\n")
}

fn http_chunk(part: &str) -> String {
    format!("{:x}\r\n{part}\r\n", part.len())
}

/// Every item of `stream` up to and including the first error; checks nothing follows it.
async fn drain(mut stream: ChatStream) -> (Vec<ChatChunk>, Option<Error>) {
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

/// Runs `fut`, failing the test (instead of hanging it) when it takes longer than `secs`.
async fn within<T>(secs: u64, what: &str, fut: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(secs), fut)
        .await
        .unwrap_or_else(|_| panic!("{what}: no result within {secs} s"))
}

/// Accepts connections and never answers; holds them open and counts them.
async fn silent_server() -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&accepted);
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            held.push(socket);
        }
    });
    (addr, accepted)
}

/// Answers with `responses` in turn (the last one repeated) and records when each request
/// arrived.
#[derive(Clone)]
struct Script {
    responses: Arc<Vec<ResponseTemplate>>,
    seen: Arc<Mutex<Vec<Instant>>>,
}

impl Script {
    fn new(responses: Vec<ResponseTemplate>) -> Self {
        Script {
            responses: Arc::new(responses),
            seen: Arc::default(),
        }
    }

    fn arrivals(&self) -> Vec<Instant> {
        self.seen.lock().unwrap().clone()
    }
}

impl Respond for Script {
    fn respond(&self, _: &Request) -> ResponseTemplate {
        let mut seen = self.seen.lock().unwrap();
        seen.push(Instant::now());
        let i = (seen.len() - 1).min(self.responses.len() - 1);
        self.responses[i].clone()
    }
}

async fn scripted_server(responses: Vec<ResponseTemplate>) -> (MockServer, Script) {
    let server = MockServer::start().await;
    let script = Script::new(responses);
    Mock::given(method("POST"))
        .respond_with(script.clone())
        .mount(&server)
        .await;
    (server, script)
}

// ---------------------------------------------------------------- size bounds

#[tokio::test]
async fn oversized_body_is_malformed_not_buffered() {
    let big = ollama_reply(&"a".repeat(4096));
    let (server, script) =
        scripted_server(vec![ResponseTemplate::new(200).set_body_json(&big)]).await;

    // The same answer is accepted under the default bound: the size is what fails below.
    let ok = ollama(&server.uri(), fast_http())
        .generate(hello())
        .await
        .unwrap();
    assert_eq!(ok.text().len(), 4096);

    let bounded = ollama(&server.uri(), fast_http().max_response_bytes(1024));
    let err = bounded.generate(hello()).await.unwrap_err();
    assert_eq!(kind(&err), ProviderErrorKind::MalformedResponse, "{err}");
    assert!(!err.is_retryable(), "{err:?}");
    assert_eq!(
        script.arrivals().len(),
        2,
        "the oversized answer is not retried"
    );

    // Without a content-length (chunked), the bound applies while reading.
    let body = big.to_string();
    let quarters: Vec<&str> = {
        let q = body.len() / 4;
        vec![
            &body[..q],
            &body[q..2 * q],
            &body[2 * q..3 * q],
            &body[3 * q..],
        ]
    };
    let (addr, raw) = raw_server(vec![chunked_response("application/json", &quarters, true)]).await;
    let err = ollama(
        &format!("http://{addr}"),
        fast_http().max_response_bytes(1024),
    )
    .generate(hello())
    .await
    .unwrap_err();
    assert_eq!(kind(&err), ProviderErrorKind::MalformedResponse, "{err}");
    assert_eq!(raw.await.unwrap().len(), 1);
}

#[tokio::test]
async fn oversized_ndjson_line_is_malformed() {
    let long = ndjson_delta(&"x".repeat(1024));
    assert!(long.len() > 1024);
    let http = || {
        fast_http()
            .max_line_bytes(256)
            .stream_idle_timeout(Duration::from_secs(30))
    };

    // The newline arrives in the same chunk as the long line.
    let first = ndjson_delta("Hel");
    let done = ndjson_done();
    let (addr, _raw) = raw_server(vec![chunked_response(
        "application/x-ndjson",
        &[&first, &long, &done],
        true,
    )])
    .await;
    let model = ollama(&format!("http://{addr}"), http());
    let (chunks, err) = within(5, "complete line", async {
        drain(model.stream(hello()).await.unwrap()).await
    })
    .await;
    assert_eq!(
        texts(&chunks),
        "Hel",
        "the line before the long one is delivered"
    );
    let err = err.expect("an oversized line is an error, not a success");
    assert_eq!(kind(&err), ProviderErrorKind::MalformedResponse, "{err}");

    // The newline never arrives and the server stalls: the bound, not the idle timeout
    // (30 s here), ends the stream.
    let response = format!(
        "{}{}{}",
        chunked_head("application/x-ndjson"),
        http_chunk(&first),
        http_chunk(long.trim_end())
    );
    let (addr, server) = stalling_server(response.into_bytes()).await;
    let model = ollama(&format!("http://{addr}"), http());
    let (chunks, err) = within(5, "unterminated line", async {
        drain(model.stream(hello()).await.unwrap()).await
    })
    .await;
    assert_eq!(texts(&chunks), "Hel");
    let err = err.expect("an oversized line is an error");
    assert_eq!(kind(&err), ProviderErrorKind::MalformedResponse, "{err}");
    within(5, "hang-up after the error", server).await.unwrap();
}

#[tokio::test]
async fn oversized_sse_line_and_endless_event_are_malformed() {
    let http = || {
        fast_http()
            .max_line_bytes(256)
            .stream_idle_timeout(Duration::from_secs(30))
    };

    // One `data:` line of 1 KiB, in the same chunk as its newline.
    let first = sse_delta("Hi");
    let long = format!("data: {}\n\n", "y".repeat(1024));
    let (addr, _raw) = raw_server(vec![chunked_response(
        "text/event-stream",
        &[&first, &long, SSE_FINISH],
        true,
    )])
    .await;
    let model = openai(&format!("http://{addr}"), http());
    let (chunks, err) = within(5, "long SSE line", async {
        drain(model.stream(hello()).await.unwrap()).await
    })
    .await;
    assert_eq!(texts(&chunks), "Hi");
    let err = err.expect("an oversized line is an error");
    assert_eq!(kind(&err), ProviderErrorKind::MalformedResponse, "{err}");

    // Endless short `data:` lines without the blank line that ends an event: each line is
    // well under the bound, the event is not.
    let line = format!("data: {}\n", "z".repeat(50));
    let endless: String = line.repeat(40);
    let response = format!(
        "{}{}{}",
        chunked_head("text/event-stream"),
        http_chunk(&first),
        http_chunk(&endless)
    );
    let (addr, server) = stalling_server(response.into_bytes()).await;
    let model = openai(&format!("http://{addr}"), http());
    let (chunks, err) = within(5, "endless event", async {
        drain(model.stream(hello()).await.unwrap()).await
    })
    .await;
    assert_eq!(texts(&chunks), "Hi");
    let err = err.expect("an endless event is an error");
    assert_eq!(kind(&err), ProviderErrorKind::MalformedResponse, "{err}");
    within(5, "hang-up after the error", server).await.unwrap();
}

// ---------------------------------------------------------------- timeouts

#[tokio::test]
async fn unanswered_request_times_out() {
    let (addr, accepted) = silent_server().await;
    let base = format!("http://{addr}");
    let http = HttpOptions::new()
        .timeout(Duration::from_millis(300))
        .retry(RetryPolicy::none());
    let model = ollama(&base, http.clone());

    let start = Instant::now();
    let err = within(5, "generate", model.generate(hello()))
        .await
        .unwrap_err();
    let took = start.elapsed();
    assert!(err.is_timeout(), "{err:?}");
    assert_eq!(kind(&err), ProviderErrorKind::Timeout);
    assert!(
        took >= Duration::from_millis(250),
        "gave up early: {took:?}"
    );
    assert_eq!(accepted.load(Ordering::SeqCst), 1, "no retries");

    // A stream whose response headers never come fails in `stream()` the same way.
    let err = within(5, "stream", model.stream(hello()))
        .await
        .err()
        .expect("no headers, no stream");
    assert!(err.is_timeout(), "{err:?}");
    assert_eq!(accepted.load(Ordering::SeqCst), 2);

    // The embedder too.
    let embedder = OllamaEmbedder::builder()
        .host(&base)
        .model("nomic-embed-text")
        .http(http)
        .build()
        .unwrap();
    let err = within(5, "embed", embedder.embed_query("x"))
        .await
        .unwrap_err();
    assert!(err.is_timeout(), "{err:?}");

    // A timeout is retryable: with two retries there are three connections.
    let (addr, accepted) = silent_server().await;
    let model = ollama(
        &format!("http://{addr}"),
        HttpOptions::new()
            .timeout(Duration::from_millis(300))
            .retry(fast_retry().with_max_retries(2)),
    );
    let err = within(10, "generate with retries", model.generate(hello()))
        .await
        .unwrap_err();
    assert!(err.is_timeout(), "{err:?}");
    assert_eq!(accepted.load(Ordering::SeqCst), 3, "1 attempt + 2 retries");
}

#[tokio::test]
async fn stalled_stream_times_out_after_the_delivered_chunk() {
    let response = format!(
        "{}{}",
        chunked_head("application/x-ndjson"),
        http_chunk(&ndjson_delta("Hel"))
    );
    let (addr, server) = stalling_server(response.into_bytes()).await;
    let model = ollama(
        &format!("http://{addr}"),
        HttpOptions::new()
            .stream_idle_timeout(Duration::from_millis(200))
            .retry(fast_retry()),
    );
    let start = Instant::now();
    let (chunks, err) = within(5, "stalled stream", async {
        drain(model.stream(hello()).await.unwrap()).await
    })
    .await;
    assert_eq!(texts(&chunks), "Hel");
    let err = err.expect("a stalled stream is an error, not a success");
    assert!(err.is_timeout(), "{err:?}");
    assert!(
        err.to_string().contains("Hel"),
        "carries the partial answer: {err}"
    );
    assert!(start.elapsed() >= Duration::from_millis(200));
    within(5, "hang-up after the timeout", server)
        .await
        .unwrap();
}

// ---------------------------------------------------------------- what is retried

#[tokio::test]
async fn connection_refused_is_a_retried_transport_error() {
    let base = format!("http://{}", closed_port());
    let once = ollama(&base, HttpOptions::new().retry(RetryPolicy::none()));
    let err = once.generate(hello()).await.unwrap_err();
    assert_eq!(kind(&err), ProviderErrorKind::Transport, "{err:?}");
    assert!(err.is_retryable());
    assert!(RetryPolicy::default().should_retry(&err));

    // Two retries, 100 ms then 200 ms apart: the call cannot fail before 300 ms.
    let retried = ollama(
        &base,
        HttpOptions::new().retry(
            RetryPolicy::default()
                .with_max_retries(2)
                .with_initial_backoff(Duration::from_millis(100))
                .with_jitter(false),
        ),
    );
    let start = Instant::now();
    let err = within(10, "refused with retries", retried.generate(hello()))
        .await
        .unwrap_err();
    assert_eq!(kind(&err), ProviderErrorKind::Transport, "{err:?}");
    let took = start.elapsed();
    assert!(took >= Duration::from_millis(300), "not retried: {took:?}");
}

/// How many requests one failing call makes when every answer has `status`.
async fn attempts_for(status: u16, stream: bool) -> (Error, usize) {
    let (server, script) = scripted_server(vec![ResponseTemplate::new(status)
        .set_body_json(json!({"error": {"message": format!("status {status}"), "type": "test", "param": null, "code": null}}))])
    .await;
    let model = openai(
        &server.uri(),
        HttpOptions::new().retry(fast_retry().with_max_retries(2)),
    );
    let err = if stream {
        model.stream(hello()).await.err().unwrap()
    } else {
        model.generate(hello()).await.unwrap_err()
    };
    (err, script.arrivals().len())
}

#[tokio::test]
async fn http_408_and_409_are_retried_400_is_not() {
    let (err, n) = attempts_for(408, false).await;
    assert_eq!(n, 3, "408 is retried: {err}");
    assert_eq!(err.as_provider().unwrap().status, Some(408));
    let (err, n) = attempts_for(409, false).await;
    assert_eq!(n, 3, "409 is retried: {err}");
    assert_eq!(err.as_provider().unwrap().status, Some(409));
    let (err, n) = attempts_for(409, true).await;
    assert_eq!(n, 3, "409 on a stream's start is retried: {err}");
    let (err, n) = attempts_for(400, false).await;
    assert_eq!(n, 1, "400 is not retried: {err}");
    assert_eq!(kind(&err), ProviderErrorKind::InvalidRequest);
    let (err, n) = attempts_for(400, true).await;
    assert_eq!(n, 1, "400 on a stream's start is not retried: {err}");
}

// ---------------------------------------------------------------- Retry-After over HTTP

fn gap(script: &Script) -> Duration {
    let t = script.arrivals();
    assert_eq!(t.len(), 2, "one rate-limited attempt, then the answer");
    t[1] - t[0]
}

#[tokio::test]
async fn retry_after_seconds_is_honoured() {
    let (server, script) = scripted_server(vec![
        ResponseTemplate::new(429)
            .insert_header("retry-after", "1")
            .set_body_json(json!({"error": "too many requests"})),
        ResponseTemplate::new(200).set_body_json(ollama_reply("Hello! How are you today?")),
    ])
    .await;
    let r = within(
        10,
        "generate",
        ollama(&server.uri(), fast_http()).generate(hello()),
    )
    .await
    .unwrap();
    assert_eq!(r.text(), "Hello! How are you today?");
    let g = gap(&script);
    assert!(g >= Duration::from_millis(950), "waited only {g:?}");
}

#[tokio::test]
async fn retry_after_http_date_is_honoured() {
    let when = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(2));
    let (server, script) = scripted_server(vec![
        ResponseTemplate::new(429)
            .insert_header("retry-after", when.as_str())
            .set_body_json(data_json("openai/error_429.json")),
        ResponseTemplate::new(200).set_body_json(data_json("openai/chat_completion.json")),
    ])
    .await;
    let r = within(
        10,
        "generate",
        openai(&server.uri(), fast_http()).generate(hello()),
    )
    .await
    .unwrap();
    assert_eq!(r.text(), "Hello! How can I assist you today?");
    // The date has one-second resolution: two seconds ahead is more than one from now.
    let g = gap(&script);
    assert!(g >= Duration::from_millis(900), "waited only {g:?}");
}

#[tokio::test]
async fn retry_after_beyond_the_cap_is_capped() {
    let (server, script) = scripted_server(vec![
        ResponseTemplate::new(429)
            .insert_header("retry-after", "3600")
            .set_body_json(data_json("openai/error_429.json")),
        ResponseTemplate::new(200).set_body_json(data_json("openai/chat_completion.json")),
    ])
    .await;
    let model = openai(
        &server.uri(),
        HttpOptions::new().retry(fast_retry().with_max_retry_after(Duration::from_millis(200))),
    );
    within(10, "generate", model.generate(hello()))
        .await
        .unwrap();
    let g = gap(&script);
    assert!(
        g >= Duration::from_millis(190),
        "the capped wait is still a wait, not the 10 ms backoff: {g:?}"
    );
    assert!(g < Duration::from_secs(5), "not capped: {g:?}");
}

// ---------------------------------------------------------------- shared client

#[tokio::test]
async fn a_shared_client_is_used() {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        "x-shared-client",
        reqwest::header::HeaderValue::from_static("yes"),
    );
    // The workspace's reqwest carries no crypto provider: a client the caller builds needs
    // one installed (or `tls_backend_preconfigured`).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::builder()
        .default_headers(headers)
        .build()
        .unwrap();

    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(wiremock::matchers::path("/api/chat"))
        .respond_with(ResponseTemplate::new(200).set_body_json(ollama_reply("Hi")))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(wiremock::matchers::path("/v1/embeddings"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "object": "list",
            "data": [{"object": "embedding", "index": 0, "embedding": [0.1, 0.2, 0.3]}],
            "model": "text-embedding-3-small",
            "usage": {"prompt_tokens": 1, "total_tokens": 1}
        })))
        .mount(&server)
        .await;

    let chat = ollama(&server.uri(), fast_http().client(client.clone()));
    assert_eq!(chat.generate(hello()).await.unwrap().text(), "Hi");
    let embedder = OpenAiEmbedder::builder()
        .api_key(KEY)
        .base_url(format!("{}/v1", server.uri()))
        .model("text-embedding-3-small")
        .dimensions(Some(3))
        .http(fast_http().client(client))
        .build()
        .unwrap();
    assert_eq!(embedder.embed_query("x").await.unwrap().len(), 3);

    let received = server.received_requests().await.unwrap();
    assert_eq!(received.len(), 2);
    for r in &received {
        assert_eq!(
            r.headers.get("x-shared-client").map(|v| v.as_bytes()),
            Some(&b"yes"[..]),
            "{} was sent without the shared client's header",
            r.url
        );
    }
}

// ---------------------------------------------------------------- hanging up

#[tokio::test]
async fn dropping_an_ollama_stream_hangs_up() {
    let response = format!(
        "{}{}",
        chunked_head("application/x-ndjson"),
        http_chunk(&ndjson_delta("The sky"))
    );
    let (addr, server) = stalling_server(response.into_bytes()).await;
    let mut stream = ollama(&format!("http://{addr}"), fast_http())
        .stream(hello())
        .await
        .unwrap();
    let mut got = String::new();
    while got.is_empty() {
        match within(5, "first delta", stream.next()).await {
            Some(Ok(ChatChunk::TextDelta(t))) => got = t,
            Some(Ok(_)) => {}
            other => panic!("expected a delta, got {other:?}"),
        }
    }
    assert_eq!(got, "The sky");
    assert!(
        !server.is_finished(),
        "the connection is open while the stream is"
    );
    drop(stream);
    within(5, "the server saw the hang-up", server)
        .await
        .unwrap();
}
