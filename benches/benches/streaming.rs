//! What streaming costs per chain step: `invoke` against `Chain::stream` (collected) for a
//! function step, a pipe of eight of them, and prompt → model → parser with a model that
//! streams its answer in 4-character deltas (the text parser yields deltas, the JSON parser
//! re-parses the growing object after every delta).
//!
//! Run with `cargo bench -p catena-benches --bench streaming`. The model is the scripted test
//! double (no network, no inference), so the figures are the framework's own overhead.

// A bench target may stop on a broken setup: the messages say what to fix.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::hint::black_box;
use std::sync::Arc;

use catena_chains::LlmChain;
use catena_core::parser::{JsonOutputParser, StrOutputParser};
use catena_core::prompt::{ChatPromptTemplate, PromptValues};
use catena_core::test_utils::ScriptedChatModel;
use catena_core::{chain_fn, Chain, ChainExt, ChatResponse, Message};
use criterion::{criterion_group, criterion_main, Criterion};
use futures::StreamExt;

const ANSWER: &str = "Rust is a systems programming language with ownership, borrowing and \
    lifetimes checked at compile time, zero-cost abstractions, fearless concurrency, a \
    package manager called Cargo and a friendly compiler.";

fn json_answer() -> String {
    serde_json::json!({
        "name": "Ferris",
        "kind": "crab",
        "traits": ["safe", "fast", "productive"],
        "summary": ANSWER,
    })
    .to_string()
}

fn model(answer: String) -> Arc<ScriptedChatModel> {
    Arc::new(
        ScriptedChatModel::new()
            .with_responder(move |_| Ok(ChatResponse::new(Message::assistant(answer.clone())))),
    )
}

fn prompt() -> ChatPromptTemplate {
    ChatPromptTemplate::builder()
        .user("Tell me about {topic}.")
        .build()
        .unwrap()
}

async fn collect<O>(stream: catena_core::ChainStream<O>) -> usize {
    stream.map(|i| i.unwrap()).count().await
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();

    let step = chain_fn(|s: String| async move { Ok(s) });
    let mut g = c.benchmark_group("function step");
    g.bench_function("invoke", |b| {
        b.to_async(&rt)
            .iter(|| async { black_box(step.invoke("x".to_string()).await.unwrap()) })
    });
    g.bench_function("stream", |b| {
        b.to_async(&rt).iter(|| async {
            black_box(collect(step.stream("x".to_string()).await.unwrap()).await)
        })
    });
    g.finish();

    let f = || chain_fn(|s: String| async move { Ok(s) });
    let eight = f()
        .pipe(f())
        .pipe(f())
        .pipe(f())
        .pipe(f())
        .pipe(f())
        .pipe(f())
        .pipe(f());
    let mut g = c.benchmark_group("pipe of 8 function steps");
    g.bench_function("invoke", |b| {
        b.to_async(&rt)
            .iter(|| async { black_box(eight.invoke("x".to_string()).await.unwrap()) })
    });
    g.bench_function("stream", |b| {
        b.to_async(&rt).iter(|| async {
            black_box(collect(eight.stream("x".to_string()).await.unwrap()).await)
        })
    });
    g.finish();

    let values = PromptValues::new().with("topic", "Rust");
    let text = LlmChain::new(prompt(), model(ANSWER.to_string()), StrOutputParser::new());
    let mut g = c.benchmark_group("prompt, model, text parser");
    g.bench_function("invoke", |b| {
        b.to_async(&rt)
            .iter(|| async { black_box(text.invoke(values.clone()).await.unwrap()) })
    });
    g.bench_function("stream", |b| {
        b.to_async(&rt).iter(|| async {
            black_box(collect(Chain::stream(&text, values.clone()).await.unwrap()).await)
        })
    });
    g.finish();

    let json = LlmChain::new(prompt(), model(json_answer()), JsonOutputParser::new());
    let mut g = c.benchmark_group("prompt, model, JSON parser");
    g.bench_function("invoke", |b| {
        b.to_async(&rt)
            .iter(|| async { black_box(json.invoke(values.clone()).await.unwrap()) })
    });
    g.bench_function("stream", |b| {
        b.to_async(&rt).iter(|| async {
            black_box(collect(Chain::stream(&json, values.clone()).await.unwrap()).await)
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
