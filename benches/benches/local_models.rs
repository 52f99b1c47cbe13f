//! In-process local models (catena-llms feature `local`) on this machine's CPU.
//!
//! Needs the model files: `eval "$(bash scripts/models.sh fetch)"`, then
//! `cargo bench -p catena-benches --bench local_models`. `CANDLE_NUM_THREADS` sets candle's
//! thread count (default: the physical cores).
//!
//! - `embed/batch32_64tok`: all-MiniLM-L6-v2, 32 sentences of ~64 tokens per call (throughput
//!   in sentences/s);
//! - `chat/decode_64`: SmolLM2-135M, 64 new tokens after a short prompt, greedy (tokens/s;
//!   includes the prompt pass), with re-quantization to Q8_0 (the default) and without;
//! - `chat/first_token`: time from request to the first streamed text delta;
//! - peak RSS (VmHWM) printed at the end.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;
use std::time::Duration;

use catena_core::{ChatChunk, ChatModel, ChatRequest, Embedder, Message};
use catena_llms::local::{LocalChatModel, LocalEmbedder, Requantize};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use futures::StreamExt;

fn model_path(var: &str, default: &str) -> PathBuf {
    let path = std::env::var_os(var).map(PathBuf::from).unwrap_or_else(|| {
        let home = std::env::var_os("HOME").expect("HOME");
        PathBuf::from(home)
            .join(".cache/catena/models")
            .join(default)
    });
    assert!(
        path.exists(),
        "{} missing: run eval \"$(bash scripts/models.sh fetch)\"",
        path.display()
    );
    path
}

/// 32 distinct sentences of about 64 word pieces each.
fn sentences() -> Vec<String> {
    let topics = [
        "vector databases",
        "tokenizers",
        "gRPC services",
        "rate limiting",
        "embeddings",
        "chat templates",
        "stream parsing",
        "retrieval",
        "load shedding",
        "tracing",
        "PostgreSQL",
        "Qdrant",
        "cosine similarity",
        "batching",
        "quantization",
        "SIMD",
    ];
    (0..32)
        .map(|i| {
            let t = topics[i % topics.len()];
            format!(
                "Sentence {i} explains how {t} behave under load: a service receives many \
                 concurrent requests, measures their latency at the fiftieth and ninety-ninth \
                 percentiles, and keeps memory bounded while it splits, embeds and indexes \
                 documents about {t} for later retrieval by a language model."
            )
        })
        .collect()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap()
}

fn bench_embed(c: &mut Criterion) {
    let rt = runtime();
    let embedder =
        LocalEmbedder::load(model_path("CATENA_EMBED_MODEL", "all-MiniLM-L6-v2")).unwrap();
    let batch = sentences();
    let tokens: Vec<usize> = batch
        .iter()
        .map(|s| embedder.count_tokens(s).unwrap())
        .collect();
    eprintln!(
        "embed batch: 32 sentences, {}..{} tokens each",
        tokens.iter().min().unwrap(),
        tokens.iter().max().unwrap()
    );
    let mut g = c.benchmark_group("embed");
    g.sample_size(10).measurement_time(Duration::from_secs(10));
    g.throughput(Throughput::Elements(batch.len() as u64));
    g.bench_function("batch32_64tok", |b| {
        b.iter(|| rt.block_on(embedder.embed_documents(&batch)).unwrap())
    });
    g.finish();
}

fn prompt() -> ChatRequest {
    ChatRequest::new(vec![Message::user(
        "Write a short paragraph about why the sky is blue.",
    )])
}

fn bench_chat(c: &mut Criterion) {
    let rt = runtime();
    let path = model_path("CATENA_CHAT_MODEL", "SmolLM2-135M-Instruct.Q4_1.gguf");
    for (label, requantize) in [("q8_0", Requantize::Auto), ("q4_1", Requantize::Off)] {
        let model = LocalChatModel::builder(&path)
            .requantize(requantize)
            .build()
            .unwrap();
        // Fix the answer length: max_tokens 64 and a check that it was reached.
        let request = prompt().with_max_tokens(64);
        let probe = rt.block_on(model.generate(request.clone())).unwrap();
        let produced = probe.usage.unwrap().output_tokens;
        let mut g = c.benchmark_group("chat");
        g.sample_size(10).measurement_time(Duration::from_secs(15));
        g.throughput(Throughput::Elements(produced));
        g.bench_function(format!("decode_64/{label}"), |b| {
            b.iter(|| rt.block_on(model.generate(request.clone())).unwrap())
        });
        g.throughput(Throughput::Elements(1));
        g.bench_function(format!("first_token/{label}"), |b| {
            b.iter(|| {
                rt.block_on(async {
                    let mut s = model.stream(request.clone()).await.unwrap();
                    while let Some(chunk) = s.next().await {
                        if matches!(chunk.unwrap(), ChatChunk::TextDelta(_)) {
                            break;
                        }
                    }
                })
            })
        });
        g.finish();
    }
}

fn report_rss(_: &mut Criterion) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    for line in status.lines() {
        if line.starts_with("VmHWM") || line.starts_with("VmRSS") {
            eprintln!("{line}");
        }
    }
}

criterion_group!(benches, bench_embed, bench_chat, report_rss);
criterion_main!(benches);
