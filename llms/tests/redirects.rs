//! Provider clients never follow a redirect: reqwest's default policy drops only
//! `Authorization` on a cross-host hop, so `x-goog-api-key`, Azure's `api-key` and custom
//! headers would reach whatever host a `Location` names. A loopback server answers 307 to a
//! second loopback server that records every request; no credential may arrive there, and the
//! error names the status without quoting the `Location`.
#![cfg(all(feature = "openai", feature = "gemini"))]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use catena_core::{ChatModel, ChatRequest, Embedder, Error, Message};
use catena_llms::gemini::{GeminiChatModel, GeminiEmbedder};
use catena_llms::openai::OpenAiChatModel;
use support::{fast_http, raw_server};
use wiremock::MockServer;

const KEY: &str = "KEY-REDIRECT-SECRET-0123456789";
const CUSTOM: &str = "CUSTOM-HEADER-SECRET-0123456789";
const IN_LOCATION: &str = "LOCATION-SECRET-0123456789";

/// A 307 to `target` (another port: another origin), its body quoting the `Location`.
fn redirect_to(target: &str, status: u16) -> Vec<u8> {
    let location = format!("{target}/collect?sig={IN_LOCATION}");
    let body = format!("<a href=\"{location}\">moved</a>");
    format!(
        "HTTP/1.1 {status} Temporary Redirect\r\nlocation: {location}\r\ncontent-type: text/html\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

fn assert_redirect_error(what: &str, err: &Error, status: u16) {
    let p = err
        .as_provider()
        .unwrap_or_else(|| panic!("{what}: {err:?}"));
    assert_eq!(p.status, Some(status), "{what}: {err:?}");
    assert!(!err.is_retryable(), "{what}: {err:?}");
    let shown = format!("{err} {err:?}");
    assert!(shown.contains(&status.to_string()), "{what}: {shown}");
    assert!(shown.contains("redirect"), "{what}: {shown}");
    for secret in [IN_LOCATION, KEY, CUSTOM, "/collect"] {
        assert!(!shown.contains(secret), "{what} shows {secret}: {shown}");
    }
}

async fn assert_nothing_reached(what: &str, collector: &MockServer) {
    let received = collector.received_requests().await.unwrap_or_default();
    for req in &received {
        let headers = format!("{:?}", req.headers);
        assert!(
            !headers.contains(KEY),
            "{what}: the key reached {}",
            req.url
        );
        assert!(
            !headers.contains(CUSTOM),
            "{what}: a custom header reached {}",
            req.url
        );
    }
    assert!(received.is_empty(), "{what}: the redirect was followed");
}

#[tokio::test]
async fn openai_with_custom_headers_does_not_follow_redirects() {
    for status in [301, 302, 303, 307, 308] {
        let collector = MockServer::start().await;
        let (addr, _) = raw_server(vec![redirect_to(&collector.uri(), status)]).await;
        let model = OpenAiChatModel::builder()
            .model("gpt-4o-mini")
            .api_key(KEY)
            .base_url(format!("http://{addr}/v1"))
            .default_header("x-gateway-key", CUSTOM)
            .http(fast_http())
            .build()
            .unwrap();
        let err = model
            .generate(ChatRequest::new(vec![Message::user("hi")]))
            .await
            .unwrap_err();
        assert_nothing_reached("openai", &collector).await;
        assert_redirect_error("openai", &err, status);
    }
}

#[tokio::test]
async fn azure_api_key_does_not_follow_redirects() {
    let collector = MockServer::start().await;
    let (addr, _) = raw_server(vec![redirect_to(&collector.uri(), 307)]).await;
    let model = OpenAiChatModel::builder()
        .model("gpt-4o-mini")
        .azure(format!("http://{addr}"), "chat", "2024-10-21")
        .api_key(KEY)
        .http(fast_http())
        .build()
        .unwrap();
    let err = model
        .generate(ChatRequest::new(vec![Message::user("hi")]))
        .await
        .unwrap_err();
    assert_nothing_reached("azure", &collector).await;
    assert_redirect_error("azure", &err, 307);
}

#[tokio::test]
async fn gemini_api_key_does_not_follow_redirects() {
    let collector = MockServer::start().await;
    let (addr, _) = raw_server(vec![
        redirect_to(&collector.uri(), 307),
        redirect_to(&collector.uri(), 308),
        redirect_to(&collector.uri(), 307),
    ])
    .await;
    let model = GeminiChatModel::builder()
        .model("gemini-2.5-flash")
        .api_key(KEY)
        .base_url(format!("http://{addr}/v1beta"))
        .http(fast_http())
        .build()
        .unwrap();
    let err = model
        .generate(ChatRequest::new(vec![Message::user("hi")]))
        .await
        .unwrap_err();
    assert_nothing_reached("gemini", &collector).await;
    assert_redirect_error("gemini", &err, 307);
    // Streams start through the same path.
    let err = match model
        .stream(ChatRequest::new(vec![Message::user("hi")]))
        .await
    {
        Ok(_) => panic!("a redirect started a stream"),
        Err(e) => e,
    };
    assert_redirect_error("gemini stream", &err, 308);
    let embedder = GeminiEmbedder::builder()
        .model("gemini-embedding-001")
        .api_key(KEY)
        .base_url(format!("http://{addr}/v1beta"))
        .http(fast_http())
        .build()
        .unwrap();
    let err = embedder.embed_query("hi").await.unwrap_err();
    assert_redirect_error("gemini embed", &err, 307);
    assert_nothing_reached("gemini", &collector).await;
}
