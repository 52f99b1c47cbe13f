//! Client-side limits, circuit breakers and model fallback (catena-chains) in front of real
//! HTTP clients talking to loopback servers that rate-limit and fail on cue.

#![cfg(feature = "openai")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use catena_chains::{
    BreakerConfig, BreakerState, CircuitBreaker, ClientLimits, ModelFallbacks, RateLimited,
    RateLimiter,
};
use catena_core::{
    collect_stream, ChatChunk, ChatModel, ChatModelExt, ChatRequest, Message, ProviderErrorKind,
    RetryPolicy,
};
use catena_llms::openai::OpenAiChatModel;
use catena_llms::HttpOptions;
use futures::StreamExt;
use serde_json::json;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

fn completion(text: &str) -> serde_json::Value {
    json!({
        "id": "chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG",
        "object": "chat.completion",
        "created": 1741570283,
        "model": "gpt-4o-2024-08-06",
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": text, "refusal": null, "annotations": []},
            "logprobs": null,
            "finish_reason": "stop"
        }],
        "usage": {
            "prompt_tokens": 11, "completion_tokens": 3, "total_tokens": 14,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
                "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}
        },
        "service_tier": "default",
        "system_fingerprint": "fp_fc9f1d7035"
    })
}

fn stream_body(text: &str) -> String {
    let mut out = String::new();
    for e in [
        json!({"id":"c1","object":"chat.completion.chunk","created":1,"model":"gpt-4o","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}),
        json!({"id":"c1","object":"chat.completion.chunk","created":1,"model":"gpt-4o","choices":[{"index":0,"delta":{"content":text},"finish_reason":null}]}),
        json!({"id":"c1","object":"chat.completion.chunk","created":1,"model":"gpt-4o","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}),
    ] {
        out.push_str(&format!("data: {e}\n\n"));
    }
    out.push_str("data: [DONE]\n\n");
    out
}

/// The error body OpenAI sends with a 429.
fn rate_limit_error() -> ResponseTemplate {
    ResponseTemplate::new(429)
        .insert_header("retry-after", "1")
        .set_body_json(json!({"error": {
            "message": "Rate limit reached for requests",
            "type": "requests", "param": null, "code": "rate_limit_exceeded"}}))
}

/// Answers 429 to any request beyond `per_second` within the last second (a sliding
/// window, as strict as a provider can be).
struct PerSecondQuota {
    per_second: usize,
    seen: Mutex<VecDeque<Instant>>,
    served_429: AtomicUsize,
    served_ok: AtomicUsize,
}

/// The responder mounted on the server: a handle on the shared quota.
struct QuotaHandle(Arc<PerSecondQuota>);

impl Respond for QuotaHandle {
    fn respond(&self, _: &Request) -> ResponseTemplate {
        let this = &self.0;
        let now = Instant::now();
        let mut seen = this.seen.lock().unwrap();
        while seen
            .front()
            .is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(1))
        {
            seen.pop_front();
        }
        if seen.len() >= this.per_second {
            this.served_429.fetch_add(1, Ordering::SeqCst);
            return rate_limit_error();
        }
        seen.push_back(now);
        this.served_ok.fetch_add(1, Ordering::SeqCst);
        ResponseTemplate::new(200).set_body_json(completion("ok"))
    }
}

fn client(server: &MockServer, retries: u32) -> OpenAiChatModel {
    OpenAiChatModel::builder()
        .api_key("sk-test-resilience")
        .base_url(format!("{}/v1", server.uri()))
        .http(
            HttpOptions::new().retry(
                RetryPolicy::default()
                    .with_max_retries(retries)
                    .with_initial_backoff(Duration::from_millis(10))
                    .with_jitter(false),
            ),
        )
        .build()
        .unwrap()
}

fn hello() -> ChatRequest {
    ChatRequest::new(vec![Message::user("Hello!")])
}

async fn quota_server(per_second: usize) -> (MockServer, Arc<PerSecondQuota>) {
    let server = MockServer::start().await;
    let quota = Arc::new(PerSecondQuota {
        per_second,
        seen: Mutex::new(VecDeque::new()),
        served_429: AtomicUsize::new(0),
        served_ok: AtomicUsize::new(0),
    });
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(QuotaHandle(quota.clone()))
        .mount(&server)
        .await;
    (server, quota)
}

async fn run_concurrently(model: Arc<dyn ChatModel>, calls: usize) -> (usize, usize) {
    let results = futures::future::join_all((0..calls).map(|_| {
        let model = model.clone();
        async move { model.generate(hello()).await }
    }))
    .await;
    let ok = results.iter().filter(|r| r.is_ok()).count();
    let limited = results
        .iter()
        .filter(|r| r.as_ref().is_err_and(|e| e.is_rate_limited()))
        .count();
    (ok, limited)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_concurrent_calls_through_the_limiter_meet_no_429() {
    // Without the layer, the same burst meets the quota (the test can fail).
    let (server, quota) = quota_server(20).await;
    let (ok, limited) = run_concurrently(client(&server, 0).boxed(), 60).await;
    assert!(
        limited > 0 && quota.served_429.load(Ordering::SeqCst) > 0,
        "ok {ok}"
    );

    // Through the layer: 16 requests/s (a margin under the quota, so that a request the
    // loaded machine delays by up to 250 ms cannot bunch up with the next ones), all 200
    // answered, and the server never had to say 429.
    let (server, quota) = quota_server(20).await;
    let limiter = Arc::new(
        RateLimiter::new(
            ClientLimits::new()
                .requests_per_second(16)
                .max_concurrency(64)
                .max_queue_time(Duration::from_secs(30)),
        )
        .unwrap(),
    );
    let model = RateLimited::new(client(&server, 0), limiter).boxed();
    let started = Instant::now();
    let (ok, limited) = run_concurrently(model, 200).await;
    assert_eq!((ok, limited), (200, 0));
    assert_eq!(quota.served_429.load(Ordering::SeqCst), 0);
    assert_eq!(quota.served_ok.load(Ordering::SeqCst), 200);
    // 200 calls at 16/s cannot take less than 199/16 s.
    assert!(
        started.elapsed() >= Duration::from_millis(12_400),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_pauses_every_caller_until_retry_after() {
    // A server whose quota (2/s) is lower than the limiter was told (100/s): the first 429
    // pauses the others for its Retry-After (1 s) instead of letting them all hit it.
    let (server, quota) = quota_server(2).await;
    let limiter = Arc::new(RateLimiter::new(ClientLimits::new().requests_per_second(100)).unwrap());
    let model = RateLimited::new(client(&server, 0), limiter).boxed();
    let mut outcomes = Vec::new();
    for _ in 0..6 {
        outcomes.push(model.generate(hello()).await.is_ok());
    }
    // ok, ok, 429 (pause 1 s), ok, ok, 429: two 429s for six calls, not four.
    assert_eq!(outcomes, vec![true, true, false, true, true, false]);
    assert_eq!(quota.served_429.load(Ordering::SeqCst), 2);
}

/// A provider that fails with 500 while `down`, counting what it is asked.
struct Flaky {
    down: AtomicBool,
    hits: AtomicUsize,
    text: &'static str,
    stream: bool,
}

/// The responder mounted on the server: a handle on the shared state.
struct FlakyHandle(Arc<Flaky>);

impl Respond for FlakyHandle {
    fn respond(&self, _: &Request) -> ResponseTemplate {
        let this = &self.0;
        this.hits.fetch_add(1, Ordering::SeqCst);
        if this.down.load(Ordering::SeqCst) {
            return ResponseTemplate::new(500).set_body_json(json!({"error": {
                "message": "The server had an error while processing your request.",
                "type": "server_error", "param": null, "code": null}}));
        }
        if this.stream {
            ResponseTemplate::new(200).set_body_raw(stream_body(this.text), "text/event-stream")
        } else {
            ResponseTemplate::new(200).set_body_json(completion(this.text))
        }
    }
}

async fn flaky_server(text: &'static str, stream: bool) -> (MockServer, Arc<Flaky>) {
    let server = MockServer::start().await;
    let flaky = Arc::new(Flaky {
        down: AtomicBool::new(false),
        hits: AtomicUsize::new(0),
        text,
        stream,
    });
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(FlakyHandle(flaky.clone()))
        .mount(&server)
        .await;
    (server, flaky)
}

#[tokio::test]
async fn the_breaker_opens_the_fallback_answers_and_a_probe_closes_it() {
    let (primary_server, primary) = flaky_server("primary", false).await;
    let (backup_server, backup) = flaky_server("backup", false).await;
    let breaker = Arc::new(CircuitBreaker::new(
        client(&primary_server, 0),
        BreakerConfig::new()
            .failure_threshold(3)
            .open_for(Duration::from_millis(400)),
    ));
    let models =
        ModelFallbacks::new(vec![breaker.clone(), client(&backup_server, 0).boxed()]).unwrap();

    assert_eq!(models.generate(hello()).await.unwrap().text(), "primary");
    primary.down.store(true, Ordering::SeqCst);
    for _ in 0..3 {
        assert_eq!(models.generate(hello()).await.unwrap().text(), "backup");
    }
    assert_eq!(breaker.state(), BreakerState::Open);
    let hits_when_opened = primary.hits.load(Ordering::SeqCst);
    // While open, the primary is not called at all; the backup answers.
    for _ in 0..5 {
        assert_eq!(models.generate(hello()).await.unwrap().text(), "backup");
    }
    assert_eq!(primary.hits.load(Ordering::SeqCst), hits_when_opened);
    let direct = breaker.generate(hello()).await.unwrap_err();
    assert_eq!(
        direct.provider_kind(),
        Some(&ProviderErrorKind::Unavailable)
    );
    // The provider recovers; after open_for the probe goes through and closes the breaker.
    primary.down.store(false, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(450)).await;
    assert_eq!(models.generate(hello()).await.unwrap().text(), "primary");
    assert_eq!(breaker.state(), BreakerState::Closed);
    assert_eq!(backup.hits.load(Ordering::SeqCst), 8);
}

#[tokio::test]
async fn a_non_retryable_error_does_not_fall_back() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(401).set_body_json(json!({"error": {
            "message": "Incorrect API key provided: sk-test-*****ence.",
            "type": "invalid_request_error", "param": null, "code": "invalid_api_key"}})))
        .mount(&server)
        .await;
    let (backup_server, backup) = flaky_server("backup", false).await;
    let models = ModelFallbacks::new(vec![
        client(&server, 0).boxed(),
        client(&backup_server, 0).boxed(),
    ])
    .unwrap();
    let err = models.generate(hello()).await.unwrap_err();
    assert!(err.is_auth(), "{err}");
    assert_eq!(backup.hits.load(Ordering::SeqCst), 0);
}

/// Serves SSE that stops after `events` data lines without `[DONE]`: a stream that fails
/// before its first token (0 events) or after it (2 events).
struct CutStream {
    events: usize,
}

impl Respond for CutStream {
    fn respond(&self, _: &Request) -> ResponseTemplate {
        let full = stream_body("partial");
        let cut: String = full.split_inclusive("\n\n").take(self.events).collect();
        ResponseTemplate::new(200).set_body_raw(cut, "text/event-stream")
    }
}

#[tokio::test]
async fn a_stream_that_fails_before_its_first_token_falls_back_and_after_it_does_not() {
    let (backup_server, backup) = flaky_server("backup stream", true).await;
    for (events, falls_back) in [(0, true), (1, true), (2, false)] {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(CutStream { events })
            .mount(&server)
            .await;
        let models = ModelFallbacks::new(vec![
            client(&server, 0).boxed(),
            client(&backup_server, 0).boxed(),
        ])
        .unwrap();
        let before = backup.hits.load(Ordering::SeqCst);
        let stream = models.stream(hello()).await;
        if falls_back {
            let answer = collect_stream(stream.unwrap()).await.unwrap();
            assert_eq!(answer.text(), "backup stream", "cut after {events} events");
            assert_eq!(backup.hits.load(Ordering::SeqCst), before + 1);
        } else {
            // The first token ("partial") was out: the error reaches the caller, no switch.
            let chunks: Vec<_> = stream.unwrap().collect().await;
            assert!(chunks
                .iter()
                .any(|c| matches!(c, Ok(ChatChunk::TextDelta(t)) if t == "partial")));
            let last = chunks.last().unwrap().as_ref().unwrap_err();
            assert_eq!(
                last.provider_kind(),
                Some(&ProviderErrorKind::StreamInterrupted)
            );
            assert_eq!(backup.hits.load(Ordering::SeqCst), before);
        }
    }
}
