//! A load-test target, not a server to deploy: the gateway on loopback with a **stub** chat
//! model that answers after a fixed delay (default 50 ms), the deterministic test embedder, and
//! an in-memory store, so a load generator measures the gateway itself. With `CHUNKS`, the store
//! first gets that many chunks of real text (the PostgreSQL manual sections in
//! `benches/data/postgresql-15-docs.jsonl`, split 1000/200 and repeated as often as needed), so
//! every query searches a store of realistic size.
//!
//! ```text
//! cargo run --release -p example-gateway --example load_target -- [ADDR] [DELAY_MS] [CHUNKS] [HNSW_MIN_ROWS]
//! wrk -t2 -c64 -d20s -s examples/gateway/load/query.lua http://ADDR/v1/query
//! ```
//!
//! The API key is `load-test-key`; rate limits are set high enough not to interfere (they are
//! still checked: with `CATENA_REDIS_URL` set, in that Redis, as replicas sharing it do).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use catena_core::splitter::{RecursiveCharacterTextSplitter, TextSplitter};
use catena_core::test_utils::DeterministicEmbedder;
use catena_core::InMemoryRecordManager;
use catena_core::{
    ChatModel, ChatRequest, ChatResponse, Document, EmbeddedDocument, Message, ModelInfo, Result,
    Usage, VectorStore,
};
use catena_vectorstores::{HnswConfig, InMemoryVectorStore};
use example_gateway::auth::hash_key;
use example_gateway::auth::TENANT_METADATA_KEY;
use example_gateway::config::{Config, KeyConfig};
use example_gateway::{Backends, Gateway};

/// The tenant of the load-test key: every stored chunk is this tenant's.
const TENANT: &str = "load";

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
    let chunks: usize = args.get(2).and_then(|d| d.parse().ok()).unwrap_or(0);
    let hnsw_min_rows: Option<usize> = args.get(3).and_then(|d| d.parse().ok());
    let mut config = Config::default();
    config.auth.keys = vec![KeyConfig::new(hash_key("load-test-key"), TENANT)];
    config.limits.requests_per_minute = 10_000_000;
    config.limits.burst = 1_000_000;
    config.limits.max_concurrent_requests = 1024;
    config.limits.max_concurrent_per_key = 1024;
    if let Ok(url) = std::env::var("CATENA_REDIS_URL") {
        config.limits.redis_url = Some(example_gateway::config::SecretUrl(url));
    }
    let embedder = DeterministicEmbedder::new(384);
    // The gateway's embedded store: exact scans, an HNSW graph from `rag.hnsw_min_rows`,
    // vectors in `rag.vector_precision` (f16).
    let min_rows = hnsw_min_rows.unwrap_or(config.rag.hnsw_min_rows);
    let store = InMemoryVectorStore::builder()
        .precision(config.rag.vector_precision)
        .hnsw(HnswConfig::new().min_rows(min_rows))
        .build()
        .unwrap();
    fill(&store, &embedder, chunks).await;
    store.prepare_index();
    let backends = Backends {
        embedder: Arc::new(embedder),
        chat: Arc::new(Stub(Duration::from_millis(delay))),
        store: Arc::new(store),
        records: Arc::new(InMemoryRecordManager::new()),
        chunk_tokens: None,
        description: "load target".into(),
    };
    let gateway = Gateway::new(config, backends).unwrap();
    let listener = tokio::net::TcpListener::bind(&addr).await.unwrap();
    eprintln!(
        "load target on http://{} (stub model {delay} ms, {} chunks)",
        listener.local_addr().unwrap(),
        chunks
    );
    gateway
        .serve(listener, async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
        .unwrap();
}

/// Stores `chunks` chunks of the PostgreSQL manual (repeated, each copy marked) in `store`.
async fn fill(store: &InMemoryVectorStore, embedder: &DeterministicEmbedder, chunks: usize) {
    if chunks == 0 {
        return;
    }
    let corpus = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../benches/data/postgresql-15-docs.jsonl"
    );
    let raw = std::fs::read_to_string(corpus).unwrap();
    let splitter = RecursiveCharacterTextSplitter::builder()
        .chunk_size(1000)
        .chunk_overlap(200)
        .build()
        .unwrap();
    let pieces: Vec<String> = raw
        .lines()
        .flat_map(|line| {
            let section: serde_json::Value = serde_json::from_str(line).unwrap();
            splitter.split_text(section["text"].as_str().unwrap_or_default())
        })
        .collect();
    let mut batch = Vec::new();
    for n in 0..chunks {
        let text = format!("{} (copy {})", pieces[n % pieces.len()], n / pieces.len());
        let vector = embedder.embed(&text);
        batch.push(EmbeddedDocument::new(
            Document::new(text)
                .with_id(format!("chunk-{n}"))
                .with_metadata(TENANT_METADATA_KEY, TENANT),
            vector,
        ));
        if batch.len() == 1000 || n + 1 == chunks {
            store.upsert(std::mem::take(&mut batch)).await.unwrap();
        }
    }
}
