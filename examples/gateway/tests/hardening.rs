//! Attacks on the gateway that need no valid key, or one key against the others: idle and
//! half-sent connections, slow bodies pinning every slot, guessing keys, endless streams,
//! readiness probes as load. Each runs against a real gateway on loopback over raw TCP.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use catena_core::test_utils::{DeterministicEmbedder, ScriptedChatModel};
use catena_core::{
    ChatChunk, ChatModel, ChatRequest, ChatResponse, ChatStream, Document, DocumentId, Filter,
    InMemoryRecordManager, Message, ModelInfo, Result, ScoredDocument, SearchRequest, UpsertReport,
    VectorStore,
};
use catena_vectorstores::InMemoryVectorStore;
use example_gateway::auth::hash_key;
use example_gateway::config::Config;
use example_gateway::Backends;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

mod support;

const KEY_A: &str = "key-a-secret";
const KEY_B: &str = "key-b-secret";

fn config() -> Config {
    let mut c = Config::default();
    c.auth.api_key_sha256 = vec![hash_key(KEY_A), hash_key(KEY_B)];
    c.limits.requests_per_minute = 6000;
    c.limits.burst = 1000;
    c
}

fn answering() -> Arc<dyn ChatModel> {
    Arc::new(
        ScriptedChatModel::new()
            .with_responder(|_| Ok(ChatResponse::new(Message::assistant("fine")))),
    )
}

/// Reads until the peer closes the connection (or `limit` passes); what was read, and
/// whether it closed.
async fn read_until_closed(stream: &mut TcpStream, limit: Duration) -> (String, bool) {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (String::from_utf8_lossy(&out).into_owned(), true),
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
            Err(_) => return (String::from_utf8_lossy(&out).into_owned(), false),
        }
    }
}

#[tokio::test]
async fn idle_and_half_sent_connections_are_closed_within_the_header_timeout() {
    let mut c = config();
    c.limits.header_read_timeout_secs = 1;
    let g = support::start(c, support::backends(answering(), 64)).await;
    let addr = g.base.trim_start_matches("http://").to_owned();
    let mut idle = Vec::new();
    for _ in 0..500 {
        idle.push(TcpStream::connect(&addr).await.unwrap());
    }
    // One that starts a request and never finishes its headers.
    let mut half = TcpStream::connect(&addr).await.unwrap();
    half.write_all(b"POST /v1/query HTTP/1.1\r\nHost: x\r\nAuthor")
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let (_, closed) = read_until_closed(&mut half, Duration::from_secs(5)).await;
    assert!(closed, "a half-sent request holds its connection");
    for (i, s) in idle.iter_mut().enumerate() {
        let (_, closed) = read_until_closed(s, Duration::from_secs(5)).await;
        assert!(closed, "idle connection {i} still open");
    }
    assert!(started.elapsed() < Duration::from_secs(5));
    // The gateway still serves.
    assert_eq!(g.get("/healthz").send().await.unwrap().status(), 200);
    g.shutdown().await;
}

/// Sends a POST to /v1/query as `key` whose body never arrives whole.
async fn slow_body(addr: &str, key: &str) -> TcpStream {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /v1/query HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\n\
         Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"quest"
    );
    s.write_all(head.as_bytes()).await.unwrap();
    s
}

#[tokio::test]
async fn one_key_pinning_slow_bodies_leaves_other_tenants_unaffected() {
    let mut c = config();
    c.limits.max_concurrent_requests = 8;
    c.limits.max_concurrent_per_key = 4;
    c.limits.body_read_timeout_secs = 2;
    let g = support::start(c, support::backends(answering(), 64)).await;
    let addr = g.base.trim_start_matches("http://").to_owned();
    let mut pinned = Vec::new();
    for _ in 0..8 {
        pinned.push(slow_body(&addr, KEY_A).await);
    }
    // Key A gets its 4 slots; the rest are refused at once instead of taking the others'.
    let mut refused = 0;
    let mut waiting = Vec::new();
    let first_reads = futures::future::join_all(pinned.into_iter().map(|mut s| async move {
        let (text, _) = read_until_closed(&mut s, Duration::from_millis(500)).await;
        (s, text)
    }))
    .await;
    for (s, text) in first_reads {
        if text.starts_with("HTTP/1.1 429") {
            refused += 1;
        } else {
            assert!(text.is_empty(), "{text}");
            waiting.push(s);
        }
    }
    assert_eq!(refused, 4);
    // Another tenant is served meanwhile.
    let res = g
        .post("/v1/query", KEY_B)
        .json(&serde_json::json!({ "question": "still there?" }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    // The slow bodies end with 408 at the body-read timeout.
    for mut s in waiting {
        let (text, _) = read_until_closed(&mut s, Duration::from_secs(5)).await;
        assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    }
    g.shutdown().await;
}

#[tokio::test]
async fn failed_authentications_are_throttled_per_address() {
    let mut c = config();
    c.limits.auth_failures_per_minute = 5;
    let g = support::start(c, support::backends(answering(), 64)).await;
    let body = serde_json::json!({ "question": "hi" });
    for i in 0..5 {
        let res = g
            .post("/v1/query", &format!("guess-{i}"))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 401);
    }
    // Past the limit the address gets 429, and its credentials are no longer even checked.
    for key in ["guess-6", KEY_A] {
        let res = g.post("/v1/query", key).json(&body).send().await.unwrap();
        assert_eq!(res.status(), 429, "{key}");
        assert!(res.headers().contains_key("retry-after"));
    }
    // Probes need no key and are not throttled.
    assert_eq!(g.get("/healthz").send().await.unwrap().status(), 200);
    g.shutdown().await;
}

/// A model whose stream never ends: a token every 50 ms.
struct Endless;

#[async_trait]
impl ChatModel for Endless {
    async fn generate(&self, _: ChatRequest) -> Result<ChatResponse> {
        Ok(ChatResponse::new(Message::assistant("x")))
    }
    async fn stream(&self, _: ChatRequest) -> Result<ChatStream> {
        Ok(Box::pin(futures::stream::unfold((), |()| async {
            tokio::time::sleep(Duration::from_millis(50)).await;
            Some((Ok(ChatChunk::TextDelta("x".into())), ()))
        })))
    }
    fn model_info(&self) -> ModelInfo {
        ModelInfo::new("test", "endless").with_streaming(true)
    }
}

#[tokio::test]
async fn a_stream_that_never_ends_is_ended_at_its_longest_duration() {
    let mut c = config();
    c.limits.stream_max_secs = 1;
    let g = support::start(c, support::backends(Arc::new(Endless), 64)).await;
    let started = std::time::Instant::now();
    let res = g
        .post("/v1/query", KEY_A)
        .json(&serde_json::json!({ "question": "go on forever", "stream": true }))
        .send()
        .await
        .unwrap();
    let text = tokio::time::timeout(Duration::from_secs(10), res.text())
        .await
        .expect("the stream ends")
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(text.contains("event: token"), "{text}");
    assert!(text.contains("\"type\":\"max_duration\""), "{text}");
    g.shutdown().await;
}

/// The in-memory store, counting `count` calls (what `/readyz` asks of the store).
struct CountingStore(InMemoryVectorStore, AtomicUsize);

#[async_trait]
impl VectorStore for CountingStore {
    async fn upsert(&self, d: Vec<catena_core::EmbeddedDocument>) -> Result<UpsertReport> {
        self.0.upsert(d).await
    }
    async fn search(&self, r: SearchRequest) -> Result<Vec<ScoredDocument>> {
        self.0.search(r).await
    }
    async fn delete(&self, ids: &[DocumentId]) -> Result<usize> {
        self.0.delete(ids).await
    }
    async fn delete_by_filter(&self, f: &Filter) -> Result<usize> {
        self.0.delete_by_filter(f).await
    }
    async fn get(&self, ids: &[DocumentId]) -> Result<Vec<Document>> {
        self.0.get(ids).await
    }
    async fn count(&self, f: Option<&Filter>) -> Result<usize> {
        self.1.fetch_add(1, Ordering::SeqCst);
        self.0.count(f).await
    }
}

#[tokio::test]
async fn readiness_probes_do_not_become_load_on_the_store() {
    let store = Arc::new(CountingStore(
        InMemoryVectorStore::new(),
        AtomicUsize::new(0),
    ));
    let backends = Backends {
        embedder: Arc::new(DeterministicEmbedder::new(64)),
        chat: answering(),
        store: store.clone(),
        records: Arc::new(InMemoryRecordManager::new()),
        chunk_tokens: None,
        description: "test".into(),
    };
    let g = support::start(config(), backends).await;
    let probes = (0..200).map(|_| async { g.get("/readyz").send().await.unwrap().status() });
    for status in futures::future::join_all(probes).await {
        assert_eq!(status, 200);
    }
    assert_eq!(
        store.1.load(Ordering::SeqCst),
        1,
        "one store check for 200 probes"
    );
    g.shutdown().await;
}

/// A problem's body, its request id and its `x-request-id` header.
async fn problem_of(res: reqwest::Response) -> (u16, serde_json::Value, String) {
    let status = res.status().as_u16();
    let header = res.headers()["x-request-id"].to_str().unwrap().to_owned();
    let body: serde_json::Value = res.json().await.unwrap();
    (status, body, header)
}

#[tokio::test]
async fn problem_details_name_the_request_never_the_internal_error() {
    // The embedded store persists under a directory whose name an attacker must not learn;
    // it becomes unwritable after start-up, so the next ingest fails with an i/o error
    // naming the path.
    let dir = tempfile::tempdir().unwrap();
    let private = dir.path().join("private-volume-7f3a");
    std::fs::create_dir(&private).unwrap();
    let store = InMemoryVectorStore::builder()
        .persist_to(private.join("vectors.json"))
        .build()
        .unwrap();
    // The model fails the way a provider does: its message names the account and host.
    let chat = ScriptedChatModel::new().with_error(catena_core::Error::from(
        catena_core::ProviderError::new(
            catena_core::ProviderErrorKind::Transport,
            "upstream llm-internal.corp.example:8443 rejected org-SECRETORG",
        ),
    ));
    let backends = Backends {
        store: Arc::new(store),
        ..support::backends(Arc::new(chat), 16)
    };
    let gateway = support::start(config(), backends).await;
    std::fs::remove_dir_all(&private).unwrap();
    std::fs::write(&private, b"not a directory").unwrap();

    let res = gateway
        .post("/v1/documents", KEY_A)
        .json(&serde_json::json!({ "documents": [{ "source": "a.md", "content": "Some text." }] }))
        .send()
        .await
        .unwrap();
    let (status, body, header) = problem_of(res).await;
    assert_eq!(status, 502, "{body}");
    let text = body.to_string();
    assert!(!text.contains("private-volume"), "{text}");
    assert!(!text.contains(&dir.path().display().to_string()), "{text}");
    assert_eq!(body["request_id"], header.as_str(), "{text}");
    assert!(header.starts_with("req-"), "{header}");

    // The model's failure, on the plain and on the streamed path.
    std::fs::remove_file(&private).unwrap();
    std::fs::create_dir(&private).unwrap();
    let res = gateway
        .post("/v1/query", KEY_A)
        .json(&serde_json::json!({ "question": "anything?" }))
        .send()
        .await
        .unwrap();
    let (status, body, header) = problem_of(res).await;
    assert_eq!(status, 502, "{body}");
    let text = body.to_string();
    assert!(
        !text.contains("SECRETORG") && !text.contains("corp.example"),
        "{text}"
    );
    assert_eq!(body["request_id"], header.as_str());

    // Every response carries a request id, each one different.
    let a = gateway.get("/healthz").send().await.unwrap();
    let b = gateway.get("/healthz").send().await.unwrap();
    assert_ne!(a.headers()["x-request-id"], b.headers()["x-request-id"]);
    gateway.shutdown().await;
}

/// A model that answers after 200 ms reporting 100 + 100 tokens, and remembers each
/// request's `max_tokens`.
#[derive(Default)]
struct Slow(std::sync::Mutex<Vec<Option<u32>>>);

#[async_trait]
impl ChatModel for Slow {
    async fn generate(&self, r: ChatRequest) -> Result<ChatResponse> {
        self.0.lock().unwrap().push(r.max_tokens);
        tokio::time::sleep(Duration::from_millis(200)).await;
        Ok(ChatResponse::new(Message::assistant("slowly"))
            .with_usage(catena_core::Usage::new(100, 100)))
    }
    async fn stream(&self, r: ChatRequest) -> Result<ChatStream> {
        let answer = self.generate(r).await?;
        Ok(Box::pin(futures::stream::iter([
            Ok(ChatChunk::TextDelta(answer.message.text())),
            Ok(ChatChunk::Usage(answer.usage.unwrap_or_default())),
        ])))
    }
    fn model_info(&self) -> ModelInfo {
        ModelInfo::new("test", "slow").with_streaming(true)
    }
}

fn budgeted(tokens: u64) -> Config {
    let mut c = config();
    c.limits.token_budget = Some(tokens);
    c
}

#[tokio::test]
async fn a_burst_of_concurrent_requests_cannot_overspend_a_budget() {
    // Each question reserves its prompt (~50 tokens here, no context) and the longest answer
    // (256): 1,000 tokens pay for three such reservations and part of a fourth, never for
    // twenty.
    let model = Arc::new(Slow::default());
    let g = support::start(budgeted(1_000), support::backends(model.clone(), 64)).await;
    let body = serde_json::json!({ "question": "How slow is this model?" });
    let answers =
        futures::future::join_all((0..20).map(|_| g.post("/v1/query", KEY_A).json(&body).send()))
            .await;
    let statuses: Vec<u16> = answers
        .iter()
        .map(|r| r.as_ref().unwrap().status().as_u16())
        .collect();
    let passed = statuses.iter().filter(|s| **s == 200).count();
    assert!((1..=4).contains(&passed), "{statuses:?}");
    assert_eq!(
        passed + statuses.iter().filter(|s| **s == 429).count(),
        20,
        "{statuses:?}"
    );
    // A smaller reservation bounds the answer: the last admitted call was told so.
    let asked = model.0.lock().unwrap().clone();
    assert!(
        asked.iter().all(|m| m.is_some_and(|m| m <= 256)),
        "{asked:?}"
    );
    // Settled with the reported usage (200 each), the rest comes back for later requests.
    let after = g.post("/v1/query", KEY_A).json(&body).send().await.unwrap();
    assert_eq!(
        after.status(),
        200,
        "settled reservations returned what was not used"
    );
    // Another key has its own budget.
    let other = g.post("/v1/query", KEY_B).json(&body).send().await.unwrap();
    assert_eq!(other.status(), 200);
    g.shutdown().await;
}

#[tokio::test]
async fn a_client_that_leaves_a_stream_early_pays_for_what_it_reserved() {
    // The endless model never reports usage; the client reads one token and goes away.
    let g = support::start(budgeted(500), support::backends(Arc::new(Endless), 64)).await;
    let body = serde_json::json!({ "question": "go on forever", "stream": true });
    let mut res = g.post("/v1/query", KEY_A).json(&body).send().await.unwrap();
    assert_eq!(res.status(), 200);
    while let Some(chunk) = res.chunk().await.unwrap() {
        if String::from_utf8_lossy(&chunk).contains("event: token") {
            break;
        }
    }
    drop(res);
    // The reservation (prompt + 256) was charged when the stream was dropped: what is left
    // cannot pay for another prompt.
    let mut status = 0;
    for _ in 0..50 {
        let res = g
            .post("/v1/query", KEY_A)
            .json(&serde_json::json!({ "question": "go on forever" }))
            .send()
            .await
            .unwrap();
        status = res.status().as_u16();
        if status == 429 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(status, 429, "leaving early must not make the call free");
    g.shutdown().await;
}

#[tokio::test]
async fn ingest_counts_embedding_tokens_against_the_budget() {
    let g = support::start(budgeted(100), support::backends(answering(), 64)).await;
    // ~250 tokens of text: more than the key's whole budget.
    let big = "Embedding costs tokens too. ".repeat(36);
    let res = g
        .post("/v1/documents", KEY_A)
        .json(&serde_json::json!({ "documents": [{ "source": "big.md", "content": big }] }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 429);
    // Nothing was half-ingested: a small document still fits and is all there is.
    let res = g
        .post("/v1/documents", KEY_A)
        .json(&serde_json::json!({ "documents": [{ "source": "small.md", "content": "Small." }] }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let report: serde_json::Value = res.json().await.unwrap();
    assert_eq!(report["added"], 1, "{report}");
    g.shutdown().await;
}
