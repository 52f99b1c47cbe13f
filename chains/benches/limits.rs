//! What the production layers cost per call, with a scripted model (no network), so only the
//! framework is measured:
//!
//! - `direct`: the scripted model called directly (the baseline);
//! - `rate_limited`: through a [`RateLimited`] layer whose limits are never reached (requests
//!   and tokens per minute, a concurrency cap), prompt tokens estimated by characters;
//! - `rate_limited_tiktoken`: the same, tokens counted with tiktoken's `o200k_base` (as for
//!   OpenAI models);
//! - `breaker`: through a closed [`CircuitBreaker`];
//! - `production_stack`: breaker → limiter → traced model with a price table (what
//!   docs/models.md builds), no metrics recorder installed.
//!
//! Run with `cargo bench -p catena-chains --bench limits`.

// Benchmarks are test code: a failed setup should stop them loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use catena_chains::{
    BreakerConfig, CircuitBreaker, ClientLimits, RateLimited, RateLimiter, TokenEstimator,
};
use catena_core::test_utils::ScriptedChatModel;
use catena_core::{
    ChatModel, ChatModelExt, ChatRequest, ChatResponse, Message, ModelPrice, PriceTable,
    TokenEncoding, Usage,
};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

fn model() -> ScriptedChatModel {
    ScriptedChatModel::new().with_responder(|_: &ChatRequest| {
        Ok(
            ChatResponse::new(Message::assistant("Paris is the capital of France."))
                .with_model("bench-model")
                .with_usage(Usage::new(40, 8)),
        )
    })
}

fn limiter() -> Arc<RateLimiter> {
    Arc::new(
        RateLimiter::new(
            ClientLimits::new()
                .requests_per_minute(u32::MAX)
                .tokens_per_minute(u32::MAX)
                .max_concurrency(1024),
        )
        .unwrap(),
    )
}

fn benches(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let request = ChatRequest::new(vec![
        Message::system("You are a helpful assistant. Answer in one sentence."),
        Message::user("What is the capital of France? Answer briefly, please."),
    ])
    .with_max_tokens(64);

    let mut group = c.benchmark_group("limits");
    group.throughput(Throughput::Elements(1));
    let mut run = |name: &str, m: Arc<dyn ChatModel>| {
        group.bench_function(name, |b| {
            b.iter(|| rt.block_on(m.generate(black_box(request.clone()))).unwrap());
        });
    };
    run("direct", model().boxed());
    run("rate_limited", RateLimited::new(model(), limiter()).boxed());
    run(
        "rate_limited_tiktoken",
        RateLimited::new(model(), limiter())
            .with_estimator(TokenEstimator::Tiktoken(TokenEncoding::O200kBase))
            .boxed(),
    );
    run(
        "breaker",
        CircuitBreaker::new(model(), BreakerConfig::new()).boxed(),
    );
    let prices = Arc::new(
        PriceTable::new("2026-12-01")
            .unwrap()
            .with_model("bench-model", ModelPrice::new(1.0, 2.0)),
    );
    run(
        "production_stack",
        CircuitBreaker::new(
            RateLimited::new(model().traced().with_prices(prices), limiter()),
            BreakerConfig::new(),
        )
        .boxed(),
    );
    group.finish();
}

criterion_group! {
    name = limit_benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(30);
    targets = benches
}
criterion_main!(limit_benches);
