//! A load-test target, not a server to deploy: the gateway on loopback with a **stub** chat
//! model that answers after a fixed delay (default 50 ms), the deterministic test embedder, and
//! an in-memory store with a few documents, so a load generator measures the gateway itself.
//!
//! ```text
//! cargo run --release -p example-gateway --example load_target -- [ADDR] [DELAY_MS]
//! wrk -t2 -c64 -d20s -s examples/gateway/load/query.lua http://ADDR/v1/query
//! ```
//!
//! The API key is `load-test-key`; rate limits are set high enough not to interfere (they are
//! still checked: with `CATENA_REDIS_URL` set, in that Redis, as replicas sharing it do).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use catena_core::test_utils::DeterministicEmbedder;
use catena_core::InMemoryRecordManager;
use catena_core::{ChatModel, ChatRequest, ChatResponse, Message, ModelInfo, Result, Usage};
use catena_vectorstores::InMemoryVectorStore;
use example_gateway::auth::hash_key;
use example_gateway::config::Config;
use example_gateway::{Backends, Gateway};

struct Stub(Duration);

#[async_trait]
impl ChatModel for Stub {
    async fn generate(&self, _: ChatRequest) -> Result<ChatResponse> {
        tokio::time::sleep(self.0).await;
        Ok(ChatResponse::new(Message::assistant("A stub answer.")).with_usage(Usage::new(50, 4)))
    }
    fn model_info(&self) -> ModelInfo {
        ModelInfo::new("stub", "stub-50ms")
    }
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let addr = args
        .first()
        .cloned()
        .unwrap_or_else(|| "127.0.0.1:8090".into());
    let delay: u64 = args.get(1).and_then(|d| d.parse().ok()).unwrap_or(50);
    let mut config = Config::default();
    config.auth.api_key_sha256 = vec![hash_key("load-test-key")];
    config.limits.requests_per_minute = 10_000_000;
    config.limits.burst = 1_000_000;
    config.limits.max_concurrent_requests = 1024;
    config.limits.max_concurrent_per_key = 1024;
    if let Ok(url) = std::env::var("CATENA_REDIS_URL") {
        config.limits.redis_url = Some(example_gateway::config::SecretUrl(url));
    }
    let backends = Backends {
        embedder: Arc::new(DeterministicEmbedder::new(384)),
        chat: Arc::new(Stub(Duration::from_millis(delay))),
        store: Arc::new(InMemoryVectorStore::new()),
        records: Arc::new(InMemoryRecordManager::new()),
        chunk_tokens: None,
        description: "load target".into(),
    };
    let gateway = Gateway::new(config, backends).unwrap();
    let listener = tokio::net::TcpListener::bind(&addr).await.unwrap();
    eprintln!(
        "load target on http://{} (stub model {delay} ms)",
        listener.local_addr().unwrap()
    );
    gateway
        .serve(listener, async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
        .unwrap();
}
