//! Entry points for the cargo-fuzz targets in `fuzz/` (feature `fuzzing`): the crate-private
//! decoders that read what a server sends, reachable without a network. Not a stable API.
//!
//! Bodies come in as a [`reqwest::Response`] the caller builds (from an `http::Response`
//! with a chunked body), so chunk boundaries fall where the fuzzer puts them.

use std::cell::RefCell;
use std::sync::OnceLock;

use catena_core::{ChatChunk, ChatResponse, Error, Result};
use futures::StreamExt;
use reqwest::header::HeaderMap;

use crate::http::{error_from_parts, ErrorHook, HttpOptions};
use crate::{gemini, ollama, openai, ApiKey};

/// The key the fuzzed clients hold, so the redaction paths run too.
pub const SECRET: &str = "sk-fuzz-0123456789abcdef";

thread_local! {
    static RUNTIME: RefCell<Option<tokio::runtime::Runtime>> = const { RefCell::new(None) };
}

/// Drives `fut` on a current-thread runtime with a timer (the stream decoders' idle timeout).
fn block_on<F: std::future::Future>(fut: F) -> F::Output {
    RUNTIME.with(|cell| {
        let mut slot = cell.borrow_mut();
        let rt = slot.get_or_insert_with(|| {
            tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .build()
                .unwrap_or_else(|e| unreachable!("a current-thread runtime builds: {e}"))
        });
        rt.block_on(fut)
    })
}

/// One decoded server-sent event: `(event, data)`, or the error's text.
pub type SseItem = std::result::Result<(Option<String>, String), String>;

/// The SSE events of `response`, lines bounded by `max_line` bytes.
pub fn sse_events(response: reqwest::Response, max_line: usize) -> Vec<SseItem> {
    let idle = HttpOptions::default().stream_idle_timeout;
    let events = crate::http::sse_events(response, "fuzz", idle, max_line);
    block_on(events.collect::<Vec<_>>())
        .into_iter()
        .map(|e| e.map(|e| (e.event, e.data)).map_err(|e| e.to_string()))
        .collect()
}

/// The non-empty NDJSON lines of `response`, bounded by `max_line` bytes.
pub fn ndjson_lines(
    response: reqwest::Response,
    max_line: usize,
) -> Vec<std::result::Result<String, String>> {
    let idle = HttpOptions::default().stream_idle_timeout;
    let lines = crate::http::ndjson_lines(response, "fuzz", idle, max_line);
    block_on(lines.collect::<Vec<_>>())
        .into_iter()
        .map(|l| l.map_err(|e| e.to_string()))
        .collect()
}

fn openai_client() -> &'static openai::OpenAiClient {
    static CLIENT: OnceLock<openai::OpenAiClient> = OnceLock::new();
    CLIENT.get_or_init(|| {
        let config = openai::ConnectionConfig {
            api_key: Some(ApiKey::from(SECRET)),
            base_url: "http://127.0.0.1:9/v1".to_owned(),
            ..openai::ConnectionConfig::default()
        };
        openai::OpenAiClient::new(config)
            .unwrap_or_else(|e| unreachable!("the fuzzing client is valid: {e}"))
    })
}

/// The chunks of an OpenAI Chat Completions SSE stream.
pub fn openai_stream(response: reqwest::Response) -> Vec<Result<ChatChunk>> {
    block_on(openai::chat_stream(response, openai_client()).collect::<Vec<_>>())
}

/// An OpenAI unary Chat Completions body, parsed as `generate` does.
///
/// # Errors
/// Whatever the parser reports (malformed JSON included).
pub fn openai_completion(body: &[u8]) -> Result<ChatResponse> {
    let completion: openai::ChatCompletion =
        serde_json::from_slice(body).map_err(|e| Error::invalid_input(e.to_string()))?;
    openai::parse_completion(completion)
}

/// The chunks of a Gemini `streamGenerateContent?alt=sse` stream.
pub fn gemini_stream(response: reqwest::Response) -> Vec<Result<ChatChunk>> {
    let idle = HttpOptions::default().stream_idle_timeout;
    let max_line = HttpOptions::default().max_line_bytes;
    let events = crate::http::sse_events(response, "gemini", idle, max_line);
    block_on(gemini::decode_stream(events, "gemini").collect::<Vec<_>>())
}

/// A Gemini unary `generateContent` body, parsed as `generate` does.
///
/// # Errors
/// Whatever the parser reports (malformed JSON included).
pub fn gemini_reply(body: &[u8]) -> Result<ChatResponse> {
    let reply: gemini::GenerateReply =
        serde_json::from_slice(body).map_err(|e| Error::invalid_input(e.to_string()))?;
    gemini::to_response("gemini", reply)
}

/// The chunks of an Ollama `/api/chat` NDJSON stream (a unary reply is the one-line case).
pub fn ollama_stream(response: reqwest::Response) -> Vec<Result<ChatChunk>> {
    let idle = HttpOptions::default().stream_idle_timeout;
    let max_line = HttpOptions::default().max_line_bytes;
    let lines = crate::http::ndjson_lines(response, "ollama", idle, max_line);
    block_on(ollama::decode_stream(lines).collect::<Vec<_>>())
}

/// Which provider's error classification [`error_response`] applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provider {
    /// OpenAI (and compatible servers).
    OpenAi,
    /// Gemini (API key and Vertex AI).
    Gemini,
    /// Ollama.
    Ollama,
}

/// The error a non-2xx response becomes, as the transport builds it for `provider`.
pub fn error_response(provider: Provider, status: u16, headers: &HeaderMap, body: &[u8]) -> Error {
    let key = ApiKey::from(SECRET);
    let (name, hook): (&str, ErrorHook) = match provider {
        Provider::OpenAi => ("openai", |s, b| openai::openai_error_hook(s, b).into()),
        Provider::Gemini => ("gemini", gemini::error_hook),
        Provider::Ollama => ("ollama", |s, b| ollama::error_hook(s, b).into()),
    };
    let err = error_from_parts(name, status, headers, body, hook, Some(&key));
    match provider {
        Provider::Gemini => gemini::finish_error(err, &[SECRET]),
        _ => err,
    }
}
