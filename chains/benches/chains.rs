//! Framework overhead of the chains, with a scripted model (no network):
//!
//! - `model_generate_direct`: the scripted model called directly (the baseline);
//! - `llm_chain_invoke`: one [`LlmChain`] invocation (prompt formatting, request building,
//!   model call, parsing);
//! - `batch_bounded_1000`: 1000 LLM-chain invocations through `batch_bounded` with at most
//!   16 in flight.
//!
//! Run with `cargo bench -p catena-chains --bench chains`.

// Benchmarks are test code: a failed setup should stop them loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use catena_chains::batch_bounded;
use catena_chains::LlmChain;
use catena_core::prompt::{ChatPromptTemplate, PromptValues};
use catena_core::test_utils::ScriptedChatModel;
use catena_core::{Chain, ChatModel, ChatRequest, ChatResponse, Message};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

fn model() -> Arc<ScriptedChatModel> {
    Arc::new(ScriptedChatModel::new().with_responder(|_: &ChatRequest| {
        Ok(ChatResponse::new(Message::assistant(
            "Paris is the capital of France.",
        )))
    }))
}

fn chain(model: Arc<ScriptedChatModel>) -> LlmChain<catena_core::parser::StrOutputParser> {
    let prompt = ChatPromptTemplate::builder()
        .system("You are a helpful assistant. Answer in one sentence.")
        .user("What is the capital of {country}?")
        .build()
        .unwrap();
    LlmChain::text(prompt, model).with_temperature(0.0)
}

fn benches(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let values = PromptValues::new().with("country", "France");

    let mut group = c.benchmark_group("chains");
    group.throughput(Throughput::Elements(1));

    let direct = model();
    let request = chain(direct.clone()).request(&values).unwrap();
    group.bench_function("model_generate_direct", |b| {
        b.iter(|| {
            rt.block_on(direct.generate(black_box(request.clone())))
                .unwrap()
        });
    });

    let llm = chain(model());
    group.bench_function("llm_chain_invoke", |b| {
        b.iter(|| rt.block_on(llm.invoke(black_box(values.clone()))).unwrap());
    });

    group.throughput(Throughput::Elements(1000));
    let llm = chain(model());
    group.bench_function("batch_bounded_1000", |b| {
        b.iter(|| {
            let inputs = vec![values.clone(); 1000];
            let results = rt.block_on(batch_bounded(&llm, inputs, 16));
            assert_eq!(results.len(), 1000);
            results
        });
    });
    group.finish();
}

criterion_group! {
    name = chain_benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(20);
    targets = benches
}
criterion_main!(chain_benches);
