//! API keys never appear in logs, traces, `Debug` output or error messages — even when a
//! server echoes them back in error bodies and the client retries (and logs) along the way.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use catena_core::RetryPolicy;
use catena_core::{ChatModel, ChatRequest, Embedder, Message};
use catena_llms::gemini::{GeminiChatModel, GeminiEmbedder};
use catena_llms::openai::{OpenAiChatModel, OpenAiEmbedder};
use catena_llms::HttpOptions;
use serde_json::json;
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

const OPENAI_KEY: &str = "sk-proj-LEAKCHECK-0123456789abcdefghij";
const GEMINI_KEY: &str = "AIzaSy-LEAKCHECK-9876543210zyxwvu";

/// Collects everything the tracing subscriber writes.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn assert_no_key(what: &str, text: &str, key: &str) {
    let bytes = key.as_bytes();
    for w in bytes.windows(8) {
        let piece = std::str::from_utf8(w).unwrap();
        assert!(
            !text.contains(piece),
            "{what} contains `{piece}` of the key:\n{text}"
        );
    }
}

/// Answers every request with an error whose body echoes the credentials it received.
fn echo_credentials(req: &Request) -> ResponseTemplate {
    let auth = req
        .headers
        .get("authorization")
        .or_else(|| req.headers.get("x-goog-api-key"))
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let status = match req.body.len() % 3 {
        0 => 429,
        1 => 503,
        _ => 401,
    };
    ResponseTemplate::new(status).set_body_json(json!({
        "error": {"message": format!("rejected credentials {auth}"), "code": status,
                  "status": "UNAVAILABLE", "type": "server_error"}
    }))
}

#[tokio::test]
async fn keys_stay_out_of_logs_errors_and_debug_output() {
    let captured = Captured::default();
    let sink = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || sink.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let server = MockServer::start().await;
    Mock::given(wiremock::matchers::any())
        .respond_with(echo_credentials)
        .mount(&server)
        .await;
    let http = || {
        HttpOptions::new().retry(
            RetryPolicy::default()
                .with_max_retries(2)
                .with_initial_backoff(Duration::from_millis(1))
                .with_jitter(false),
        )
    };

    let mut shown = String::new();
    let openai = OpenAiChatModel::builder()
        .api_key(OPENAI_KEY)
        .base_url(server.uri())
        .http(http())
        .build()
        .unwrap();
    let openai_embed = OpenAiEmbedder::builder()
        .api_key(OPENAI_KEY)
        .base_url(server.uri())
        .http(http())
        .build()
        .unwrap();
    let gemini = GeminiChatModel::builder()
        .api_key(GEMINI_KEY)
        .base_url(server.uri())
        .http(http())
        .build()
        .unwrap();
    let gemini_embed = GeminiEmbedder::builder()
        .api_key(GEMINI_KEY)
        .base_url(server.uri())
        .http(http())
        .build()
        .unwrap();
    shown.push_str(&format!(
        "{openai:?}\n{openai_embed:?}\n{gemini:?}\n{gemini_embed:?}\n"
    ));

    for question in ["a", "bb", "ccc"] {
        let req = ChatRequest::new(vec![Message::user(question)]);
        for model in [&openai as &dyn ChatModel, &gemini] {
            let e = model.generate(req.clone()).await.unwrap_err();
            shown.push_str(&format!("{e}\n{e:?}\n"));
            match model.stream(req.clone()).await {
                Err(e) => shown.push_str(&format!("{e}\n{e:?}\n")),
                Ok(_) => panic!("an error response must not start a stream"),
            }
        }
        for embedder in [&openai_embed as &dyn Embedder, &gemini_embed] {
            let e = embedder.embed_query(question).await.unwrap_err();
            shown.push_str(&format!("{e}\n{e:?}\n"));
        }
    }
    assert!(
        server.received_requests().await.unwrap().len() > 12,
        "retries happened, so retry logging ran"
    );
    assert!(
        shown.contains("rejected credentials"),
        "the echo reached the errors: {shown}"
    );

    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(logs.contains("retrying"), "retries were logged:\n{logs}");
    for key in [OPENAI_KEY, GEMINI_KEY] {
        assert_no_key("errors and Debug output", &shown, key);
        assert_no_key("logs", &logs, key);
    }
}
