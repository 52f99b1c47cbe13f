//! The caching layers over real components: a scripted chat model and embedders as the inner
//! component, the in-memory stores as storage. Inner calls are counted to prove hits.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use catena_chains::{
    CacheStats, CachedChatModel, CachedEmbedder, ComposeExt, Fallback, SemanticCachedChatModel,
};
use catena_core::test_utils::{DeterministicEmbedder, ScriptedChatModel};
use catena_core::{
    collect_stream, ChatChunk, ChatModel, ChatRequest, Embedder, Embedding, Error, FinishReason,
    InMemorySemanticCacheStore, Message, ModelInfo, ResponseFormat, Result, SemanticCacheStore,
    ToolDefinition,
};
use futures::StreamExt;
use serde_json::json;

#[path = "support/cache.rs"]
mod shared;

use shared::{ask, echo, exact_store, paraphrase_table, strings, BrokenStore, TableEmbedder};

fn stats(hits: u64, misses: u64) -> (u64, u64) {
    (hits, misses)
}

fn hm(s: CacheStats) -> (u64, u64) {
    (s.hits, s.misses)
}

#[tokio::test]
async fn exact_cache_answers_repeats_without_calling_the_model() {
    let inner = echo();
    let model = CachedChatModel::new(Arc::clone(&inner), exact_store());
    let first = model.generate(ask("Capital of France?")).await.unwrap();
    let second = model.generate(ask("Capital of France?")).await.unwrap();
    assert_eq!(first, second);
    assert_eq!(second.text(), "Echo: Capital of France?");
    assert_eq!(inner.requests().len(), 1);
    assert_eq!(hm(model.stats()), stats(1, 1));

    model.generate(ask("Capital of Spain?")).await.unwrap();
    assert_eq!(inner.requests().len(), 2);
    assert_eq!(model.stats().lookups(), 3);
}

#[tokio::test]
async fn anything_that_changes_the_answer_misses() {
    let inner = echo();
    let model = Arc::clone(&inner).with_cache(exact_store());
    let base = ask("Capital of France?");
    let tool = ToolDefinition::new(
        "search",
        "Searches.",
        json!({"type": "object", "properties": {"q": {"type": "string"}}}),
    );
    let variants = vec![
        base.clone(),
        base.clone().with_temperature(0.7),
        base.clone().with_top_p(0.5),
        base.clone().with_max_tokens(10),
        base.clone().with_stop(["\n"]),
        base.clone().with_seed(1),
        base.clone().with_model("another-model"),
        base.clone()
            .with_response_format(ResponseFormat::JsonObject),
        base.clone().with_tools([tool.clone()]),
        base.clone()
            .with_tools([tool])
            .with_tool_choice(catena_core::ToolChoice::None),
        ChatRequest::new(vec![
            Message::system("You are verbose."),
            Message::user("Capital of France?"),
        ]),
        ChatRequest::new(vec![Message::user("Capital of France?")]),
    ];
    let n = variants.len();
    for request in &variants {
        model.generate(request.clone()).await.unwrap();
    }
    assert_eq!(inner.requests().len(), n, "every variant reached the model");
    assert_eq!(hm(model.stats()), stats(0, n as u64));
    // ... and each of them is now cached on its own.
    for request in variants {
        model.generate(request).await.unwrap();
    }
    assert_eq!(inner.requests().len(), n);
    assert_eq!(hm(model.stats()), stats(n as u64, n as u64));
}

#[tokio::test]
async fn exact_entries_expire_after_their_ttl() {
    let inner = echo();
    let model =
        CachedChatModel::new(Arc::clone(&inner), exact_store()).with_ttl(Duration::from_millis(50));
    model.generate(ask("q")).await.unwrap();
    model.generate(ask("q")).await.unwrap();
    assert_eq!(inner.requests().len(), 1);
    tokio::time::sleep(Duration::from_millis(80)).await;
    model.generate(ask("q")).await.unwrap();
    assert_eq!(inner.requests().len(), 2, "the expired entry was not used");
    assert_eq!(hm(model.stats()), stats(1, 2));
}

#[tokio::test]
async fn namespaces_never_share_entries() {
    let inner = echo();
    let store = exact_store();
    let tenant_a =
        CachedChatModel::new(Arc::clone(&inner), Arc::clone(&store)).with_namespace("tenant-a");
    let tenant_b =
        CachedChatModel::new(Arc::clone(&inner), Arc::clone(&store)).with_namespace("tenant-b");
    tenant_a.generate(ask("q")).await.unwrap();
    tenant_b.generate(ask("q")).await.unwrap();
    assert_eq!(
        inner.requests().len(),
        2,
        "tenant-b did not see tenant-a's answer"
    );

    // Another layer on the same store and namespace shares tenant-a's entries.
    let tenant_a_again = CachedChatModel::new(Arc::clone(&inner), store).with_namespace("tenant-a");
    tenant_a_again.generate(ask("q")).await.unwrap();
    assert_eq!(inner.requests().len(), 2);
    assert_eq!(tenant_a_again.stats().hits, 1);
    assert_eq!(tenant_a.namespace(), "tenant-a");
}

async fn stream_text(model: &dyn ChatModel, request: ChatRequest) -> (Vec<ChatChunk>, String) {
    let chunks: Vec<ChatChunk> = model
        .stream(request)
        .await
        .unwrap()
        .map(|c| c.unwrap())
        .collect()
        .await;
    let text = chunks
        .iter()
        .filter_map(|c| match c {
            ChatChunk::TextDelta(t) => Some(t.as_str()),
            _ => None,
        })
        .collect();
    (chunks, text)
}

#[tokio::test]
async fn a_streamed_miss_is_replayed_as_a_stream_on_the_next_call() {
    let inner = echo();
    let model = CachedChatModel::new(Arc::clone(&inner), exact_store());
    let (first_chunks, first) = stream_text(&model, ask("Stream me, please")).await;
    assert!(
        first_chunks
            .iter()
            .filter(|c| matches!(c, ChatChunk::TextDelta(_)))
            .count()
            > 1,
        "the miss streamed through in small deltas"
    );
    let (chunks, replayed) = stream_text(&model, ask("Stream me, please")).await;
    assert_eq!(replayed, first);
    assert_eq!(inner.requests().len(), 1);
    // The replay ends with the usage and the finish reason.
    let n = chunks.len();
    assert!(matches!(chunks[n - 2], ChatChunk::Usage(_)), "{chunks:?}");
    assert_eq!(chunks[n - 1], ChatChunk::Finish(FinishReason::Stop));

    // generate and stream share entries, and end in the same response.
    let unary = model.generate(ask("Stream me, please")).await.unwrap();
    assert_eq!(unary.text(), first);
    let streamed = collect_stream(model.stream(ask("Stream me, please")).await.unwrap())
        .await
        .unwrap();
    assert_eq!(streamed, unary);
    assert_eq!(inner.requests().len(), 1);
    assert_eq!(hm(model.stats()), stats(3, 1));
}

#[tokio::test]
async fn a_stream_cut_midway_is_not_stored() {
    let inner = Arc::new(
        ScriptedChatModel::new()
            .with_interrupted_stream("a partial answer", 2)
            .with_text("the full answer")
            .with_chunk_chars(3),
    );
    let model = CachedChatModel::new(Arc::clone(&inner), exact_store());
    let err = collect_stream(model.stream(ask("q")).await.unwrap())
        .await
        .unwrap_err();
    assert!(err.is_retryable(), "{err}");
    let (_, text) = stream_text(&model, ask("q")).await;
    assert_eq!(text, "the full answer");
    assert_eq!(inner.requests().len(), 2, "the cut stream was not a hit");
    let again = model.generate(ask("q")).await.unwrap();
    assert_eq!(again.text(), "the full answer");
    assert_eq!(inner.requests().len(), 2);
}

#[tokio::test]
async fn a_failed_call_is_not_stored() {
    let inner = Arc::new(
        ScriptedChatModel::new()
            .with_error(Error::other("boom"))
            .with_text("ok"),
    );
    let model = CachedChatModel::new(Arc::clone(&inner), exact_store());
    assert!(model.generate(ask("q")).await.is_err());
    assert_eq!(model.generate(ask("q")).await.unwrap().text(), "ok");
    assert_eq!(model.generate(ask("q")).await.unwrap().text(), "ok");
    assert_eq!(inner.requests().len(), 2);
}

#[tokio::test]
async fn semantic_cache_answers_near_prompts_and_not_far_ones() {
    let inner = echo();
    let embedder = paraphrase_table();
    let model = SemanticCachedChatModel::new(
        Arc::clone(&inner),
        Arc::clone(&embedder),
        Arc::new(InMemorySemanticCacheStore::new(100)),
    )
    .with_threshold(0.95)
    .unwrap();
    let original = model
        .generate(ask("What is the capital of France?"))
        .await
        .unwrap();
    let paraphrase = model
        .generate(ask("Tell me France's capital city"))
        .await
        .unwrap();
    assert_eq!(paraphrase, original, "the paraphrase got the stored answer");
    assert_eq!(inner.requests().len(), 1);

    let other = model
        .generate(ask("What is the capital of Spain?"))
        .await
        .unwrap();
    assert_eq!(other.text(), "Echo: What is the capital of Spain?");
    model.generate(ask("How do I bake bread?")).await.unwrap();
    assert_eq!(inner.requests().len(), 3);
    assert_eq!(hm(model.stats()), stats(1, 3));

    // A lower threshold lets the 0.6-similar question hit (on a fresh store, the nearest
    // entry answers: France's, at 0.6 — bread's is at 0).
    let loose = SemanticCachedChatModel::new(
        Arc::clone(&inner),
        Arc::clone(&embedder),
        Arc::new(InMemorySemanticCacheStore::new(100)),
    )
    .with_threshold(0.5)
    .unwrap();
    loose
        .generate(ask("What is the capital of France?"))
        .await
        .unwrap();
    let hit = loose
        .generate(ask("What is the capital of Spain?"))
        .await
        .unwrap();
    assert_eq!(hit.text(), "Echo: What is the capital of France?");
}

#[tokio::test]
async fn semantic_cache_needs_the_rest_of_the_request_to_match() {
    let inner = echo();
    let model = SemanticCachedChatModel::new(
        Arc::clone(&inner),
        paraphrase_table(),
        Arc::new(InMemorySemanticCacheStore::new(100)),
    )
    .with_threshold(0.9)
    .unwrap()
    .with_namespace("tenant-a");
    let q = "What is the capital of France?";
    let p = "Tell me France's capital city";
    model.generate(ask(q)).await.unwrap();
    let misses = [
        ask(p).with_temperature(1.0),
        ChatRequest::new(vec![Message::system("Answer in French."), Message::user(p)]),
        ChatRequest::new(vec![Message::user(p)]),
        ask(p).with_model("another-model"),
        ask(p).with_max_tokens(5),
    ];
    for request in misses {
        model.generate(request).await.unwrap();
    }
    assert_eq!(inner.requests().len(), 6);
    assert_eq!(hm(model.stats()), stats(0, 6));

    // Requests with tools, or not ending in a user message, pass straight through.
    let tool = ToolDefinition::new("search", "Searches.", json!({"type": "object"}));
    model
        .generate(ask(q).with_tools([tool.clone()]))
        .await
        .unwrap();
    model.generate(ask(q).with_tools([tool])).await.unwrap();
    let ends_with_assistant = ChatRequest::new(vec![Message::user(q), Message::assistant("Par")]);
    model.generate(ends_with_assistant.clone()).await.unwrap();
    model.generate(ends_with_assistant).await.unwrap();
    assert_eq!(inner.requests().len(), 10);
    assert_eq!(model.stats().lookups(), 6, "no lookup for these requests");

    // Another tenant never sees tenant-a's answers.
    let tenant_b = SemanticCachedChatModel::new(
        Arc::clone(&inner),
        paraphrase_table(),
        Arc::new(InMemorySemanticCacheStore::new(100)),
    )
    .with_namespace("tenant-b");
    tenant_b.generate(ask(q)).await.unwrap();
    assert_eq!(tenant_b.stats().misses, 1);
}

#[tokio::test]
async fn semantic_namespaces_on_one_store_are_isolated_and_streams_replay() {
    let inner = echo();
    let store: Arc<dyn SemanticCacheStore> = Arc::new(InMemorySemanticCacheStore::new(100));
    let layer = |ns: &str| {
        Arc::clone(&inner)
            .with_semantic_cache(paraphrase_table(), Arc::clone(&store))
            .with_threshold(0.9)
            .unwrap()
            .with_namespace(ns)
    };
    let (a, b) = (layer("a"), layer("b"));
    let (_, first) = stream_text(&a, ask("What is the capital of France?")).await;
    let (chunks, replay) = stream_text(&a, ask("Tell me France's capital city")).await;
    assert_eq!(replay, first);
    assert_eq!(
        chunks.last(),
        Some(&ChatChunk::Finish(FinishReason::Stop)),
        "{chunks:?}"
    );
    assert_eq!(inner.requests().len(), 1);
    b.generate(ask("Tell me France's capital city"))
        .await
        .unwrap();
    assert_eq!(inner.requests().len(), 2);
}

#[tokio::test]
async fn semantic_entries_expire() {
    let inner = echo();
    let model = SemanticCachedChatModel::new(
        Arc::clone(&inner),
        paraphrase_table(),
        Arc::new(InMemorySemanticCacheStore::new(100)),
    )
    .with_threshold(0.9)
    .unwrap()
    .with_ttl(Duration::from_millis(50));
    model
        .generate(ask("What is the capital of France?"))
        .await
        .unwrap();
    model
        .generate(ask("Tell me France's capital city"))
        .await
        .unwrap();
    assert_eq!(inner.requests().len(), 1);
    tokio::time::sleep(Duration::from_millis(80)).await;
    model
        .generate(ask("Tell me France's capital city"))
        .await
        .unwrap();
    assert_eq!(inner.requests().len(), 2);
}

/// A deterministic embedder that records every batch it is asked for.
#[derive(Debug)]
struct CountingEmbedder {
    inner: DeterministicEmbedder,
    batches: Mutex<Vec<Vec<String>>>,
    queries: Mutex<Vec<String>>,
}

impl CountingEmbedder {
    fn new() -> Arc<Self> {
        Arc::new(CountingEmbedder {
            inner: DeterministicEmbedder::new(16),
            batches: Mutex::new(Vec::new()),
            queries: Mutex::new(Vec::new()),
        })
    }
}

#[async_trait]
impl Embedder for CountingEmbedder {
    async fn embed_documents(&self, texts: &[String]) -> Result<Vec<Embedding>> {
        self.batches.lock().unwrap().push(texts.to_vec());
        self.inner.embed_documents(texts).await
    }

    async fn embed_query(&self, text: &str) -> Result<Embedding> {
        self.queries.lock().unwrap().push(text.to_owned());
        // Queries get their own vectors, as with providers that embed them differently.
        let mut v = self.inner.embed_query(text).await?;
        v.reverse();
        Ok(v)
    }

    fn dimensions(&self) -> usize {
        self.inner.dimensions()
    }
}

#[tokio::test]
async fn embeddings_cache_embeds_only_misses_in_one_batch_and_keeps_order() {
    let inner = CountingEmbedder::new();
    let reference = DeterministicEmbedder::new(16);
    let embedder = Arc::clone(&inner).with_embedding_cache(exact_store(), "hash-16");

    let first = embedder
        .embed_documents(&strings(&["a cat", "a dog"]))
        .await
        .unwrap();
    assert_eq!(
        first,
        vec![reference.embed("a cat"), reference.embed("a dog")]
    );

    let texts = strings(&["a fox", "a dog", "a fox", "a cat", "an owl"]);
    let vectors = embedder.embed_documents(&texts).await.unwrap();
    let expected: Vec<Embedding> = texts.iter().map(|t| reference.embed(t)).collect();
    assert_eq!(vectors, expected, "one vector per text, in input order");
    assert_eq!(
        *inner.batches.lock().unwrap(),
        vec![strings(&["a cat", "a dog"]), strings(&["a fox", "an owl"])],
        "only the misses, each once, in one batch"
    );
    // Per text: 2 misses, then 2 hits ("a dog", "a cat") and 3 misses.
    assert_eq!(hm(embedder.stats()), stats(2, 5));

    // All hits: the inner embedder is not called at all.
    embedder.embed_documents(&texts).await.unwrap();
    assert_eq!(inner.batches.lock().unwrap().len(), 2);
    assert!(embedder.embed_documents(&[]).await.unwrap().is_empty());

    // Queries are keyed apart from documents.
    let q = embedder.embed_query("a cat").await.unwrap();
    assert_ne!(q, reference.embed("a cat"));
    assert_eq!(embedder.embed_query("a cat").await.unwrap(), q);
    assert_eq!(*inner.queries.lock().unwrap(), strings(&["a cat"]));
    assert_eq!(embedder.dimensions(), 16);
}

#[tokio::test]
async fn embeddings_cache_keys_by_model_and_namespace() {
    let inner = CountingEmbedder::new();
    let store = exact_store();
    let texts = strings(&["x"]);
    let a = CachedEmbedder::new(Arc::clone(&inner), Arc::clone(&store), "model-a");
    let b = CachedEmbedder::new(Arc::clone(&inner), Arc::clone(&store), "model-b");
    let a2 = CachedEmbedder::new(Arc::clone(&inner), Arc::clone(&store), "model-a")
        .with_namespace("tenant-2");
    a.embed_documents(&texts).await.unwrap();
    b.embed_documents(&texts).await.unwrap();
    a2.embed_documents(&texts).await.unwrap();
    assert_eq!(inner.batches.lock().unwrap().len(), 3);
    CachedEmbedder::new(Arc::clone(&inner), store, "model-a")
        .with_ttl(None)
        .embed_documents(&texts)
        .await
        .unwrap();
    assert_eq!(inner.batches.lock().unwrap().len(), 3);
}

#[tokio::test]
async fn a_failing_store_never_fails_the_call() {
    let inner = echo();
    let exact = CachedChatModel::new(Arc::clone(&inner), Arc::new(BrokenStore));
    assert_eq!(exact.generate(ask("q")).await.unwrap().text(), "Echo: q");
    let (_, text) = stream_text(&exact, ask("q")).await;
    assert_eq!(text, "Echo: q");
    let s = exact.stats();
    assert_eq!((s.hits, s.misses, s.errors, s.write_errors), (0, 0, 2, 2));

    let semantic = SemanticCachedChatModel::new(
        Arc::clone(&inner),
        paraphrase_table(),
        Arc::new(BrokenStore),
    );
    semantic
        .generate(ask("What is the capital of France?"))
        .await
        .unwrap();
    let s = semantic.stats();
    assert_eq!((s.errors, s.write_errors), (1, 1));

    // An embedder failure in the semantic layer is a lookup error too, not a failed call.
    let unknown = SemanticCachedChatModel::new(
        Arc::clone(&inner),
        paraphrase_table(),
        Arc::new(InMemorySemanticCacheStore::new(10)),
    );
    unknown.generate(ask("not in the table")).await.unwrap();
    assert_eq!(unknown.stats().errors, 1);

    let embedder = CachedEmbedder::new(DeterministicEmbedder::new(8), Arc::new(BrokenStore), "m");
    let vectors = embedder
        .embed_documents(&strings(&["a", "b"]))
        .await
        .unwrap();
    assert_eq!(vectors.len(), 2);
    let s = embedder.stats();
    assert_eq!((s.errors, s.write_errors), (2, 1));
    assert_eq!(inner.requests().len(), 4);
}

// --- what a cached answer is keyed by --------------------------------------------------------

/// A scripted model reporting `model` as its id, answering `text`.
fn named(model: &str, text: &str) -> Arc<ScriptedChatModel> {
    Arc::new(
        ScriptedChatModel::new()
            .with_model_info(ModelInfo::new("scripted", model))
            .with_text(text),
    )
}

/// A primary model that fails once (retryably), then answers; and its fallback.
fn primary_and_fallback() -> (Arc<ScriptedChatModel>, Arc<ScriptedChatModel>) {
    let primary = Arc::new(
        ScriptedChatModel::new()
            .with_model_info(ModelInfo::new("scripted", "primary-model"))
            .with_error(Error::Timeout(Duration::from_secs(1)))
            .with_text("primary answer")
            .with_text("primary answer"),
    );
    let fallback = named("fallback-model", "fallback answer");
    (primary, fallback)
}

#[tokio::test]
async fn a_fallback_answer_is_not_stored_under_the_primary_model() {
    let (primary, fallback) = primary_and_fallback();
    let model = CachedChatModel::new(
        Fallback::new(Arc::clone(&primary), Arc::clone(&fallback)),
        exact_store(),
    );
    let first = model.generate(ask("q")).await.unwrap();
    assert_eq!(first.text(), "fallback answer");
    let second = model.generate(ask("q")).await.unwrap();
    assert_eq!(
        second.text(),
        "primary answer",
        "the fallback's answer was not served as the primary's"
    );
    assert_eq!(primary.requests().len(), 2);
    // The primary's own answer is cached as usual.
    assert_eq!(
        model.generate(ask("q")).await.unwrap().text(),
        "primary answer"
    );
    assert_eq!(primary.requests().len(), 2);
    assert_eq!(hm(model.stats()), stats(1, 2));

    // The same through `stream`: the fallback's stream reports its model too.
    let (primary, fallback) = primary_and_fallback();
    let model = CachedChatModel::new(Fallback::new(Arc::clone(&primary), fallback), exact_store());
    let (_, text) = stream_text(&model, ask("q")).await;
    assert_eq!(text, "fallback answer");
    let (_, text) = stream_text(&model, ask("q")).await;
    assert_eq!(text, "primary answer");
}

#[tokio::test]
async fn a_fallback_answer_is_not_stored_by_the_semantic_cache() {
    let (primary, fallback) = primary_and_fallback();
    let model = SemanticCachedChatModel::new(
        Fallback::new(Arc::clone(&primary), fallback),
        paraphrase_table(),
        Arc::new(InMemorySemanticCacheStore::new(100)),
    );
    let q = "What is the capital of France?";
    assert_eq!(
        model.generate(ask(q)).await.unwrap().text(),
        "fallback answer"
    );
    assert_eq!(
        model.generate(ask(q)).await.unwrap().text(),
        "primary answer"
    );
    assert_eq!(
        model.generate(ask(q)).await.unwrap().text(),
        "primary answer"
    );
    assert_eq!(primary.requests().len(), 2);
}

#[tokio::test]
async fn a_dated_model_version_is_still_the_requested_model() {
    // Providers report the snapshot behind an alias ("gpt-4o" answers as
    // "gpt-4o-2024-08-06"): that answer is the requested model's and is stored.
    let inner = Arc::new(
        ScriptedChatModel::new()
            .with_model_info(ModelInfo::new("openai", "gpt-4o"))
            .with_response(
                catena_core::ChatResponse::new(Message::assistant("dated"))
                    .with_finish_reason(FinishReason::Stop)
                    .with_model("gpt-4o-2024-08-06"),
            )
            .with_response(
                catena_core::ChatResponse::new(Message::assistant("mini"))
                    .with_finish_reason(FinishReason::Stop)
                    .with_model("gpt-4o-mini"),
            ),
    );
    let model = CachedChatModel::new(Arc::clone(&inner), exact_store());
    model.generate(ask("q")).await.unwrap();
    assert_eq!(model.generate(ask("q")).await.unwrap().text(), "dated");
    assert_eq!(inner.requests().len(), 1);
    // Another model of the same family is another model: not stored.
    model.generate(ask("other")).await.unwrap();
    assert!(
        model.generate(ask("other")).await.is_err(),
        "script spent: a miss"
    );
}

#[tokio::test]
async fn a_model_identity_keeps_deployments_apart() {
    // Two deployments serving the same model id (another base URL, another fine-tune
    // behind one name) on one store.
    let store = exact_store();
    let eu = named("same-model", "from eu");
    let us = named("same-model", "from us");
    let eu_model = CachedChatModel::new(Arc::clone(&eu), Arc::clone(&store))
        .with_model_identity("https://eu.example/v1");
    let us_model =
        CachedChatModel::new(Arc::clone(&us), store).with_model_identity("https://us.example/v1");
    assert_eq!(eu_model.generate(ask("q")).await.unwrap().text(), "from eu");
    assert_eq!(us_model.generate(ask("q")).await.unwrap().text(), "from us");
    assert_eq!(us.requests().len(), 1);

    let store: Arc<dyn SemanticCacheStore> = Arc::new(InMemorySemanticCacheStore::new(10));
    let semantic = |inner: &Arc<ScriptedChatModel>, identity: &str| {
        SemanticCachedChatModel::new(Arc::clone(inner), paraphrase_table(), Arc::clone(&store))
            .with_model_identity(identity)
    };
    let eu = named("same-model", "from eu");
    let us = named("same-model", "from us");
    let q = "What is the capital of France?";
    assert_eq!(
        semantic(&eu, "eu").generate(ask(q)).await.unwrap().text(),
        "from eu"
    );
    assert_eq!(
        semantic(&us, "us").generate(ask(q)).await.unwrap().text(),
        "from us"
    );
}

/// Embeds through a table, with another type than [`TableEmbedder`].
#[derive(Debug)]
struct OtherEmbedder(TableEmbedder);

#[async_trait]
impl Embedder for OtherEmbedder {
    async fn embed_documents(&self, texts: &[String]) -> Result<Vec<Embedding>> {
        self.0.embed_documents(texts).await
    }

    fn dimensions(&self) -> usize {
        self.0.dimensions()
    }
}

#[tokio::test]
async fn the_semantic_scope_includes_the_embedder() {
    let inner = echo();
    let store: Arc<dyn SemanticCacheStore> = Arc::new(InMemorySemanticCacheStore::new(100));
    let france = "What is the capital of France?";
    let bread = "How do I bake bread?";
    let first =
        SemanticCachedChatModel::new(Arc::clone(&inner), paraphrase_table(), Arc::clone(&store));
    first.generate(ask(france)).await.unwrap();
    // Another embedder of the same dimensions puts an unrelated prompt where the first
    // one put France.
    let other = SemanticCachedChatModel::new(
        Arc::clone(&inner),
        OtherEmbedder(TableEmbedder::default().with(bread, vec![1.0, 0.0, 0.0])),
        Arc::clone(&store),
    );
    let answer = other.generate(ask(bread)).await.unwrap();
    assert_eq!(answer.text(), format!("Echo: {bread}"), "no false hit");
    assert_eq!(inner.requests().len(), 2);
}

#[tokio::test]
async fn embedders_of_one_type_are_told_apart_by_their_ids() {
    let inner = echo();
    let store: Arc<dyn SemanticCacheStore> = Arc::new(InMemorySemanticCacheStore::new(100));
    let bread = "How do I bake bread?";
    // Two embedders of the same type but different models: told apart by their ids.
    let table = |v: Vec<f32>| Arc::new(TableEmbedder::default().with(bread, v));
    let with_id = |id: &str, v: Vec<f32>| {
        SemanticCachedChatModel::new(Arc::clone(&inner), table(v), Arc::clone(&store))
            .with_embedder_id(id)
    };
    with_id("model-a", vec![0.0, 1.0, 0.0])
        .generate(ask(bread))
        .await
        .unwrap();
    let b = with_id("model-b", vec![0.0, 1.0, 0.0]);
    b.generate(ask(bread)).await.unwrap();
    assert_eq!(b.stats().hits, 0);
    assert_eq!(inner.requests().len(), 2);
    // ... and the same id shares entries.
    let a_again = with_id("model-a", vec![0.0, 1.0, 0.0]);
    a_again.generate(ask(bread)).await.unwrap();
    assert_eq!(a_again.stats().hits, 1);
}

#[test]
fn the_similarity_threshold_is_validated() {
    let layer = || {
        SemanticCachedChatModel::new(
            echo(),
            paraphrase_table(),
            Arc::new(InMemorySemanticCacheStore::new(10)),
        )
    };
    for bad in [
        -1.0,
        0.0,
        -0.5,
        1.5,
        f32::NAN,
        f32::INFINITY,
        f32::NEG_INFINITY,
    ] {
        let err = layer().with_threshold(bad).unwrap_err();
        assert!(matches!(err, Error::InvalidConfig(_)), "{bad}: {err}");
    }
    for good in [0.01, 0.5, 0.95, 1.0] {
        assert_eq!(layer().with_threshold(good).unwrap().threshold(), good);
    }
}
