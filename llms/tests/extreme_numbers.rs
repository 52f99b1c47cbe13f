//! Numbers a server sends (waits, lifetimes, indexes) go through checked conversions: no
//! value — NaN, infinities, 1e308, negatives, `u64::MAX`, 400-digit strings — panics the
//! client. Each reply ends as a typed result, and a wait, when one is kept, is positive.
#![cfg(all(feature = "openai", feature = "gemini"))]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::time::{Duration, SystemTime};

use catena_core::{ChatModel, ChatRequest, Message, RetryPolicy};
use catena_llms::gemini::{credentials_from_json, CachedTokenSource, GeminiChatModel, TokenSource};
use catena_llms::openai::OpenAiChatModel;
use catena_llms::HttpOptions;
use serde_json::json;
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

/// Extreme numbers as a server might write them.
fn extremes() -> Vec<String> {
    let mut v: Vec<String> = [
        "NaN",
        "nan",
        "inf",
        "-inf",
        "Infinity",
        "1e308",
        "-1e308",
        "1e309",
        "1e20",
        "1e19",
        "-1",
        "-0",
        "0",
        "0.5",
        "1.5",
        "1e-400",
        "18446744073709551615",
        "18446744073709551616",
        "-9223372036854775808",
        "340282366920938463463374607431768211456",
        "",
        "0x10",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    v.push("9".repeat(400));
    v.push(format!("-{}", "9".repeat(400)));
    v.push(format!("0.{}1", "0".repeat(400)));
    v
}

/// No retries: every reply is seen once, and nothing sleeps on a huge wait.
fn no_retry() -> HttpOptions {
    HttpOptions::new().retry(RetryPolicy::default().with_max_retries(0))
}

fn request() -> ChatRequest {
    ChatRequest::new(vec![Message::user("hi")])
}

#[tokio::test]
async fn retry_after_headers_with_extreme_values_never_panic() {
    for value in extremes() {
        for header in ["retry-after", "retry-after-ms"] {
            let server = MockServer::start().await;
            Mock::given(method("POST"))
                .respond_with(
                    ResponseTemplate::new(429)
                        .insert_header(header, value.as_str())
                        .set_body_json(json!({"error": {"message": "slow down"}})),
                )
                .mount(&server)
                .await;
            let model = OpenAiChatModel::builder()
                .model("gpt-4o-mini")
                .api_key("sk-test")
                .base_url(format!("{}/v1", server.uri()))
                .http(no_retry())
                .build()
                .unwrap();
            let err = model.generate(request()).await.unwrap_err();
            assert!(err.is_rate_limited(), "{header}: {value:?}: {err:?}");
            if let Some(wait) = err.retry_after() {
                assert!(!wait.is_zero(), "{header}: {value:?}");
            }
        }
    }
}

#[tokio::test]
async fn gemini_retry_delays_with_extreme_values_never_panic() {
    for value in extremes() {
        for delay in [format!("{value}s"), value.clone()] {
            let server = MockServer::start().await;
            Mock::given(method("POST"))
                .respond_with(ResponseTemplate::new(429).set_body_json(json!({"error": {
                    "code": 429, "status": "RESOURCE_EXHAUSTED", "message": "quota",
                    "details": [{"@type": "type.googleapis.com/google.rpc.RetryInfo",
                                 "retryDelay": delay}]}})))
                .mount(&server)
                .await;
            let model = GeminiChatModel::builder()
                .api_key("AIza-test")
                .base_url(format!("{}/v1beta", server.uri()))
                .http(no_retry())
                .build()
                .unwrap();
            let err = model.generate(request()).await.unwrap_err();
            assert!(err.is_rate_limited(), "{delay:?}: {err:?}");
            if let Some(wait) = err.retry_after() {
                assert!(!wait.is_zero(), "{delay:?}");
            }
        }
    }
    // The case from the review: Duration::from_secs_f64(1e20) panics.
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(429).set_body_json(json!({"error": {
            "code": 429, "status": "RESOURCE_EXHAUSTED", "message": "quota",
            "details": [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "1e20s"}]}})))
        .mount(&server)
        .await;
    let model = GeminiChatModel::builder()
        .api_key("AIza-test")
        .base_url(format!("{}/v1beta", server.uri()))
        .http(no_retry())
        .build()
        .unwrap();
    let err = model.generate(request()).await.unwrap_err();
    assert_eq!(err.retry_after(), None, "{err:?}");
}

#[tokio::test]
async fn token_endpoints_with_extreme_expires_in_never_panic() {
    let mut raw: Vec<String> = extremes().iter().map(|v| json!(v).to_string()).collect();
    raw.extend(
        [
            "18446744073709551615",
            "1e308",
            "-1",
            "-1e308",
            "3599.9",
            "0",
            "null",
            "[]",
            "{}",
        ]
        .iter()
        .map(|s| (*s).to_owned()),
    );
    raw.push("9".repeat(400));
    for expires_in in raw {
        let tokens = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(200).set_body_raw(
                format!(r#"{{"access_token": "ya29.test", "token_type": "Bearer", "expires_in": {expires_in}}}"#),
                "application/json",
            ))
            .mount(&tokens)
            .await;
        let creds = json!({"type": "authorized_user", "client_id": "id", "client_secret": "secret",
            "refresh_token": "refresh", "token_uri": format!("{}/token", tokens.uri())});
        let source = credentials_from_json(&creds.to_string()).unwrap();
        // A body serde_json cannot read (a 400-digit number) is a typed error; the rest are tokens.
        let Ok(token) = source.token().await else {
            continue;
        };
        if let Some(at) = token.expires_at {
            assert!(
                at <= SystemTime::now() + Duration::from_secs(25 * 60 * 60),
                "{expires_in}: a server's lifetime is capped"
            );
        }
        let cached = CachedTokenSource::new(source);
        cached.token().await.unwrap();
        cached.token().await.unwrap();
    }
}
