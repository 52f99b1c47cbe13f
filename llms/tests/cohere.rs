//! The Cohere reranker against loopback servers speaking the v2 Rerank wire format: a raw TCP
//! server for the exact bytes of a request, `wiremock` for the exchanges and every error
//! status Cohere documents. `tests/data/cohere/rerank.json` is the response example of
//! Cohere's API reference.

#![cfg(feature = "cohere")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use catena_core::{Document, Error, ProviderErrorKind, Reranker, RetryPolicy};
use catena_llms::cohere::CohereReranker;
use catena_llms::HttpOptions;
use serde_json::{json, Value};
use support::{closed_port, data, fast_http, http_response, raw_server, request_body};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

const KEY: &str = "co-test-key-0123456789";

/// The five documents of Cohere's API reference example.
fn reference_docs() -> Vec<Document> {
    [
        "Carson City is the capital city of the American state of Nevada.",
        "The Commonwealth of the Northern Mariana Islands is a group of islands in the Pacific Ocean. Its capital is Saipan.",
        "Capitalization or capitalisation in English grammar is the use of a capital letter at the start of a word. English usage varies from capitalization in other languages.",
        "Washington, D.C. (also known as simply Washington or D.C., and officially as the District of Columbia) is the capital of the United States. It is a federal district.",
        "Capital punishment has existed in the United States since beforethe United States was a country. As of 2017, capital punishment is legal in 30 of the 50 states.",
    ]
    .into_iter()
    .map(Document::new)
    .collect()
}

const QUERY: &str = "What is the capital of the United States?";

fn reranker_at(base: &str, http: HttpOptions) -> CohereReranker {
    CohereReranker::builder()
        .api_key(KEY)
        .base_url(base)
        .http(http)
        .build()
        .unwrap()
}

fn reranker(server: &MockServer) -> CohereReranker {
    reranker_at(&server.uri(), fast_http())
}

fn kind(e: &Error) -> ProviderErrorKind {
    e.provider_kind()
        .cloned()
        .unwrap_or_else(|| panic!("not a provider error: {e:?}"))
}

fn http_status(e: &Error) -> Option<u16> {
    match e {
        Error::Provider(p) => p.status,
        _ => None,
    }
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

async fn mount(server: &MockServer, template: impl Respond + 'static) {
    Mock::given(method("POST"))
        .and(path("/v2/rerank"))
        .respond_with(template)
        .mount(server)
        .await;
}

fn indexes(results: &[catena_core::RerankResult]) -> Vec<usize> {
    results.iter().map(|r| r.index).collect()
}

// ------------------------------------------------------------------------- the wire format

#[tokio::test]
async fn documented_request_bytes_and_response() {
    let response = http_response(200, "application/json", &data("cohere/rerank.json"));
    let (addr, server) = raw_server(vec![response]).await;
    let reranker = reranker_at(&format!("http://{addr}/"), fast_http());
    let results = reranker.rerank(QUERY, &reference_docs(), 3).await.unwrap();
    assert_eq!(indexes(&results), vec![3, 4, 0]);
    assert_eq!(results[0].score, 0.999071);
    assert_eq!(results[2].score, 0.32713068);

    let requests = server.await.unwrap();
    assert_eq!(requests.len(), 1);
    let raw = String::from_utf8(requests[0].clone()).unwrap();
    let head = raw.split("\r\n\r\n").next().unwrap().to_ascii_lowercase();
    assert!(head.starts_with("post /v2/rerank http/1.1\r\n"), "{head}");
    assert!(head.contains(&format!(
        "\r\nauthorization: bearer {}\r\n",
        KEY.to_ascii_lowercase()
    )));
    assert!(
        head.contains("\r\ncontent-type: application/json\r\n"),
        "{head}"
    );
    assert!(head.contains("\r\naccept: application/json\r\n"), "{head}");
    let docs: Vec<String> = reference_docs()
        .iter()
        .map(|d| serde_json::to_string(&d.content).unwrap())
        .collect();
    let expected = format!(
        r#"{{"model":"rerank-v3.5","query":"What is the capital of the United States?","documents":[{}],"top_n":3}}"#,
        docs.join(",")
    );
    assert_eq!(
        std::str::from_utf8(request_body(&requests[0])).unwrap(),
        expected
    );
}

#[tokio::test]
async fn model_and_max_tokens_per_doc_are_sent() {
    let server = MockServer::start().await;
    mount(
        &server,
        ResponseTemplate::new(200)
            .set_body_json(json!({"results": [{"index": 0, "relevance_score": 0.5}]})),
    )
    .await;
    let reranker = CohereReranker::builder()
        .api_key(KEY)
        .base_url(server.uri())
        .model("rerank-multilingual-v3.0")
        .max_tokens_per_doc(512)
        .build()
        .unwrap();
    assert_eq!(reranker.model(), "rerank-multilingual-v3.0");
    let results = reranker
        .rerank("q", &[Document::new("d")], 5)
        .await
        .unwrap();
    assert_eq!(indexes(&results), vec![0]);
    assert_eq!(
        bodies(&server).await,
        vec![json!({
            "model": "rerank-multilingual-v3.0",
            "query": "q",
            "documents": ["d"],
            "top_n": 1,
            "max_tokens_per_doc": 512
        })]
    );
}

#[tokio::test]
async fn top_n_is_capped_sent_and_honoured() {
    let server = MockServer::start().await;
    // A server that ignores top_n and scores every document, unsorted.
    mount(
        &server,
        ResponseTemplate::new(200).set_body_json(json!({"id": "x", "results": [
            {"index": 0, "relevance_score": 0.1},
            {"index": 2, "relevance_score": 0.9},
            {"index": 1, "relevance_score": 0.5}
        ]})),
    )
    .await;
    let docs = [Document::new("a"), Document::new("b"), Document::new("c")];
    let r = reranker(&server);
    let results = r.rerank("q", &docs, 2).await.unwrap();
    assert_eq!(indexes(&results), vec![2, 1]);
    let results = r.rerank("q", &docs, 10).await.unwrap();
    assert_eq!(indexes(&results), vec![2, 1, 0]);
    let sent: Vec<Value> = bodies(&server)
        .await
        .iter()
        .map(|b| b["top_n"].clone())
        .collect();
    assert_eq!(sent, vec![json!(2), json!(3)]);
}

#[tokio::test]
async fn empty_input_and_zero_top_n_send_nothing() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(500))
        .expect(0)
        .mount(&server)
        .await;
    let r = reranker(&server);
    assert!(r.rerank("q", &[], 3).await.unwrap().is_empty());
    assert!(r
        .rerank("q", &[Document::new("d")], 0)
        .await
        .unwrap()
        .is_empty());
}

/// Scores each document by the number in its text, answering only the top_n asked for.
struct ByNumber;

impl Respond for ByNumber {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        let body: Value = req.body_json().unwrap();
        let top_n = body["top_n"].as_u64().unwrap() as usize;
        let mut scored: Vec<(usize, f64)> = body["documents"]
            .as_array()
            .unwrap()
            .iter()
            .enumerate()
            .map(|(i, d)| (i, d.as_str().unwrap().parse::<f64>().unwrap() / 100.0))
            .collect();
        scored.sort_by(|a, b| b.1.partial_cmp(&a.1).unwrap());
        scored.truncate(top_n);
        let results: Vec<Value> = scored
            .iter()
            .map(|(i, s)| json!({"index": i, "relevance_score": s}))
            .collect();
        ResponseTemplate::new(200).set_body_json(json!({"id": "b", "results": results}))
    }
}

#[tokio::test]
async fn more_documents_than_one_request_takes_are_batched_and_merged() {
    let server = MockServer::start().await;
    mount(&server, ByNumber).await;
    let r = CohereReranker::builder()
        .api_key(KEY)
        .base_url(server.uri())
        .max_documents_per_request(2)
        .http(fast_http())
        .build()
        .unwrap();
    let docs: Vec<Document> = ["10", "70", "30", "90", "50"]
        .into_iter()
        .map(Document::new)
        .collect();
    let results = r.rerank("q", &docs, 3).await.unwrap();
    assert_eq!(indexes(&results), vec![3, 1, 4]);
    assert_eq!(results[0].score, 0.9);
    let sent = bodies(&server).await;
    assert_eq!(sent.len(), 3);
    assert_eq!(sent[0]["documents"], json!(["10", "70"]));
    assert_eq!(sent[2]["documents"], json!(["50"]));
    assert_eq!(sent[2]["top_n"], json!(1));
}

// ------------------------------------------------------------------------- malformed answers

async fn answer(body: &str) -> Error {
    let server = MockServer::start().await;
    mount(
        &server,
        ResponseTemplate::new(200).set_body_raw(body.to_owned(), "application/json"),
    )
    .await;
    let docs = [Document::new("a"), Document::new("b")];
    reranker(&server).rerank("q", &docs, 2).await.unwrap_err()
}

#[tokio::test]
async fn indexes_out_of_range_or_twice_are_malformed() {
    for (body, says) in [
        (
            r#"{"results": [{"index": 2, "relevance_score": 0.9}]}"#,
            "document 2 of 2",
        ),
        (
            r#"{"results": [{"index": 1, "relevance_score": 0.9}, {"index": 1, "relevance_score": 0.8}]}"#,
            "twice",
        ),
        (
            r#"{"results": [{"index": -1, "relevance_score": 0.9}]}"#,
            "expected JSON",
        ),
        (r#"{"results": [{"index": 0}]}"#, "expected JSON"),
        (r#"{"id": "no results"}"#, "expected JSON"),
        ("<html>gateway</html>", "expected JSON"),
    ] {
        let e = answer(body).await;
        assert_eq!(
            kind(&e),
            ProviderErrorKind::MalformedResponse,
            "{body}: {e}"
        );
        assert!(!e.is_retryable());
        assert!(e.to_string().contains(says), "{body}: {e}");
    }
}

// ------------------------------------------------------------------------- errors

/// Counts requests and answers them from a script, the last answer repeating.
#[derive(Clone)]
struct Script {
    answers: Arc<Vec<ResponseTemplate>>,
    calls: Arc<AtomicUsize>,
}

impl Script {
    fn new(answers: Vec<ResponseTemplate>) -> Self {
        Script {
            answers: Arc::new(answers),
            calls: Arc::new(AtomicUsize::new(0)),
        }
    }

    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

impl Respond for Script {
    fn respond(&self, _: &Request) -> ResponseTemplate {
        let n = self.calls.fetch_add(1, Ordering::SeqCst);
        self.answers[n.min(self.answers.len() - 1)].clone()
    }
}

fn error(status: u16, message: &str) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_json(json!({"id": "e-1", "message": message}))
}

fn ok() -> ResponseTemplate {
    ResponseTemplate::new(200)
        .set_body_json(json!({"results": [{"index": 0, "relevance_score": 0.7}]}))
}

/// One rerank call against `answers`; the error (if any) and the number of requests made.
async fn call(
    answers: Vec<ResponseTemplate>,
) -> (Result<Vec<catena_core::RerankResult>, Error>, usize) {
    let server = MockServer::start().await;
    let script = Script::new(answers);
    mount(&server, script.clone()).await;
    let result = reranker(&server)
        .rerank("q", &[Document::new("d")], 1)
        .await;
    (result, script.calls())
}

#[tokio::test]
async fn documented_client_errors_are_typed_and_not_retried() {
    for (status, message, expected) in [
        (
            400,
            "invalid request: query must not be empty or be only whitespace",
            ProviderErrorKind::InvalidRequest,
        ),
        (
            400,
            "too many tokens: size limit exceeded by 11326 tokens.",
            ProviderErrorKind::ContextLengthExceeded,
        ),
        (401, "invalid api token", ProviderErrorKind::Auth),
        (
            402,
            "Please add or update your payment method",
            ProviderErrorKind::Other("payment required".into()),
        ),
        (
            404,
            "model 'rerank-v9' not found, make sure the correct model ID was used",
            ProviderErrorKind::ModelNotFound,
        ),
        (404, "Not Found", ProviderErrorKind::InvalidRequest),
        (422, "unprocessable", ProviderErrorKind::InvalidRequest),
        (501, "not implemented", ProviderErrorKind::InvalidRequest),
    ] {
        let (result, calls) = call(vec![error(status, message), ok()]).await;
        let e = result.unwrap_err();
        assert_eq!(kind(&e), expected, "{status} {message}");
        assert_eq!(http_status(&e), Some(status));
        assert!(!e.is_retryable(), "{status}");
        assert_eq!(calls, 1, "{status} must not be retried");
        assert!(
            e.to_string().contains(&message[..message.len().min(10)]),
            "{e}"
        );
    }
}

#[tokio::test]
async fn rate_limits_and_server_errors_are_retried_then_succeed() {
    for first in [
        error(
            429,
            "You are using a Trial key, which is limited to 10 API calls / minute.",
        )
        .insert_header("retry-after", "0.05"),
        error(499, "request cancelled"),
        error(500, "internal server error"),
        error(503, "service unavailable"),
        error(504, "gateway timeout"),
    ] {
        let (result, calls) = call(vec![first, ok()]).await;
        assert_eq!(indexes(&result.unwrap()), vec![0]);
        assert_eq!(calls, 2);
    }
}

#[tokio::test]
async fn rate_limit_carries_retry_after_when_retries_are_spent() {
    let server = MockServer::start().await;
    mount(
        &server,
        error(
            429,
            "You are using a Trial key, which is limited to 10 API calls / minute.",
        )
        .insert_header("retry-after", "7"),
    )
    .await;
    let r = reranker_at(&server.uri(), HttpOptions::new().retry(RetryPolicy::none()));
    let e = r.rerank("q", &[Document::new("d")], 1).await.unwrap_err();
    assert_eq!(kind(&e), ProviderErrorKind::RateLimited);
    assert_eq!(e.retry_after(), Some(Duration::from_secs(7)));
    assert!(e.is_retryable());
    assert!(e.to_string().contains("Trial key"), "{e}");
}

#[tokio::test]
async fn persistent_unavailability_gives_up_after_the_retries() {
    let (result, calls) = call(vec![error(503, "service unavailable")]).await;
    let e = result.unwrap_err();
    assert_eq!(kind(&e), ProviderErrorKind::Server);
    assert_eq!(http_status(&e), Some(503));
    assert_eq!(calls, 3, "one try and the policy's two retries");
}

#[tokio::test]
async fn connection_refused_is_a_transport_error() {
    let r = reranker_at(
        &format!("http://{}", closed_port()),
        HttpOptions::new().retry(RetryPolicy::none()),
    );
    let e = r.rerank("q", &[Document::new("d")], 1).await.unwrap_err();
    assert_eq!(kind(&e), ProviderErrorKind::Transport);
}

#[tokio::test]
async fn the_key_never_appears_in_errors_or_debug_output() {
    let server = MockServer::start().await;
    mount(
        &server,
        error(401, &format!("invalid api token: Bearer {KEY}")).insert_header("x-request-id", KEY),
    )
    .await;
    let r = reranker(&server);
    let e = r.rerank("q", &[Document::new("d")], 1).await.unwrap_err();
    assert_eq!(kind(&e), ProviderErrorKind::Auth);
    for text in [e.to_string(), format!("{e:?}"), format!("{r:?}")] {
        assert!(!text.contains("0123456789"), "{text}");
    }
    assert!(format!("{r:?}").contains("<redacted>"));
}
