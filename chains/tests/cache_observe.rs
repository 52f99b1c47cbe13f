//! The caching layers' spans and metrics. This test runs alone in its own process: tracing
//! decides once per callsite whether anyone wants its spans, and a test thread registering the
//! `cache` span at the very moment this test installs the first subscriber of the process could
//! store "nobody" over this test's interest (the flake of CI at f83d3cf, no `cache` spans seen).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::sync::Arc;

use catena_chains::{CachedChatModel, CachedEmbedder, ComposeExt, SemanticCachedChatModel};
use catena_core::test_utils::{DeterministicEmbedder, SpanRecorder};
use catena_core::{ChatModel, Embedder, InMemorySemanticCacheStore};

#[path = "support/cache.rs"]
mod shared;

use shared::{ask, echo, exact_store, paraphrase_table, strings, BrokenStore};

mod observe {
    use std::collections::BTreeMap;
    use std::sync::{Arc, Mutex};

    use metrics::{
        Counter, CounterFn, Gauge, Histogram, Key, KeyName, Metadata, SharedString, Unit,
    };
    /// A metrics recorder keeping counter totals by `name{label=value,…}`.
    #[derive(Clone, Default)]
    pub(crate) struct Counters(pub(crate) Arc<Mutex<BTreeMap<String, u64>>>);

    struct Handle {
        name: String,
        totals: Counters,
    }

    impl CounterFn for Handle {
        fn increment(&self, value: u64) {
            *self
                .totals
                .0
                .lock()
                .unwrap()
                .entry(self.name.clone())
                .or_default() += value;
        }
        fn absolute(&self, value: u64) {
            self.totals
                .0
                .lock()
                .unwrap()
                .insert(self.name.clone(), value);
        }
    }

    impl metrics::Recorder for Counters {
        fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
            let mut labels: Vec<String> = key
                .labels()
                .map(|l| format!("{}={}", l.key(), l.value()))
                .collect();
            labels.sort();
            let name = format!("{}{{{}}}", key.name(), labels.join(","));
            Counter::from_arc(Arc::new(Handle {
                name,
                totals: self.clone(),
            }))
        }
        fn register_gauge(&self, _: &Key, _: &Metadata<'_>) -> Gauge {
            Gauge::noop()
        }
        fn register_histogram(&self, _: &Key, _: &Metadata<'_>) -> Histogram {
            Histogram::noop()
        }
    }
}

#[test]
fn hits_and_misses_show_in_spans_and_metrics() {
    let spans = SpanRecorder::default();
    let counters = observe::Counters::default();
    tracing::subscriber::with_default(spans.clone(), || {
        metrics::with_local_recorder(&counters, || {
            futures::executor::block_on(async {
                let exact = echo().with_cache(exact_store()).with_namespace("t1");
                exact.generate(ask("q")).await.unwrap();
                exact.generate(ask("q")).await.unwrap();

                let semantic = SemanticCachedChatModel::new(
                    echo(),
                    paraphrase_table(),
                    Arc::new(InMemorySemanticCacheStore::new(10)),
                )
                .with_threshold(0.9)
                .unwrap();
                semantic
                    .generate(ask("What is the capital of France?"))
                    .await
                    .unwrap();
                semantic
                    .generate(ask("Tell me France's capital city"))
                    .await
                    .unwrap();

                let embedder =
                    CachedEmbedder::new(DeterministicEmbedder::new(8), exact_store(), "m");
                embedder
                    .embed_documents(&strings(&["a", "b"]))
                    .await
                    .unwrap();
                embedder
                    .embed_documents(&strings(&["a", "c"]))
                    .await
                    .unwrap();

                let broken = CachedChatModel::new(echo(), Arc::new(BrokenStore));
                broken.generate(ask("q")).await.unwrap();
            });
        });
    });

    let totals = counters.0.lock().unwrap().clone();
    let expected: BTreeMap<String, u64> = [
        ("catena_cache_lookups_total{cache=embeddings,result=hit}", 1),
        (
            "catena_cache_lookups_total{cache=embeddings,result=miss}",
            3,
        ),
        (
            "catena_cache_lookups_total{cache=llm_exact,result=error}",
            1,
        ),
        ("catena_cache_lookups_total{cache=llm_exact,result=hit}", 1),
        ("catena_cache_lookups_total{cache=llm_exact,result=miss}", 1),
        (
            "catena_cache_lookups_total{cache=llm_semantic,result=hit}",
            1,
        ),
        (
            "catena_cache_lookups_total{cache=llm_semantic,result=miss}",
            1,
        ),
        ("catena_cache_write_errors_total{cache=llm_exact}", 1),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    assert_eq!(totals, expected);

    let cache = spans.named("cache");
    let summary: Vec<(&str, &str)> = cache
        .iter()
        .map(|f| (f["cache.kind"].as_str(), f["cache.hit"].as_str()))
        .collect();
    assert_eq!(
        summary,
        vec![
            ("llm_exact", "false"),
            ("llm_exact", "true"),
            ("llm_semantic", "false"),
            ("llm_semantic", "true"),
            ("embeddings", "false"),
            ("embeddings", "false"),
            ("llm_exact", "false"),
        ]
    );
    assert_eq!(cache[0]["cache.namespace"], "t1");
    assert!(cache[3]["cache.similarity"].parse::<f32>().unwrap() > 0.9);
    assert_eq!(
        (
            cache[5]["cache.hits"].as_str(),
            cache[5]["cache.misses"].as_str()
        ),
        ("1", "1")
    );
}
