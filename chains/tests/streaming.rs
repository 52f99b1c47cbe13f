//! Streaming composition: every chain streams; prompt → model → parser streams text deltas
//! and partial objects; RAG chains stream sources first, then tokens; the combinators
//! (fallback, retry, branch, parallel, assign, configured) keep streaming or run concurrently.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use catena_chains::runnable::{
    parallel2, parallel3, passthrough, Assign, Branch, ParallelMap, RunConfig, RunnableExt,
};
use catena_chains::{
    ComposeExt, ConversationTurn, ConversationalRetrieval, LlmChain, QaEvent, RetrievalQa, Values,
};
use catena_core::parser::{JsonOutputParser, TypedOutputParser};
use catena_core::prompt::{ChatPromptTemplate, PromptValues};
use catena_core::test_utils::ScriptedChatModel;
use catena_core::{
    chain_fn, Chain, ChainExt, ChainStream, ChatHistory, ChatModelExt, Document, Error,
    InMemoryChatHistory, ProviderError, ProviderErrorKind, Result, Retriever, RetryPolicy,
    ScoredDocument, SessionId,
};
use futures::StreamExt;
use serde::Deserialize;
use serde_json::json;

async fn collect<O>(stream: ChainStream<O>) -> Vec<Result<O>> {
    stream.collect().await
}

fn ok<O: std::fmt::Debug>(items: Vec<Result<O>>) -> Vec<O> {
    items.into_iter().map(|i| i.unwrap()).collect()
}

fn prompt() -> ChatPromptTemplate {
    ChatPromptTemplate::builder()
        .user("Tell me about {topic}.")
        .build()
        .unwrap()
}

fn topic() -> PromptValues {
    PromptValues::new().with("topic", "Rust")
}

fn down() -> Error {
    Error::from(ProviderError::new(ProviderErrorKind::Server, "down"))
}

#[tokio::test]
async fn the_text_chain_streams_deltas_that_add_up_to_the_invoked_answer() {
    let text = "  Rust is a systems language with a borrow checker.\n";
    let model = ScriptedChatModel::new()
        .with_text(text)
        .with_text(text)
        .boxed();
    let chain = LlmChain::text(prompt(), model);
    let deltas = ok(collect(chain.stream(topic()).await.unwrap()).await);
    assert!(deltas.len() > 5, "{deltas:?}");
    let invoked = chain.invoke(topic()).await.unwrap();
    assert_eq!(deltas.concat(), invoked);
    assert_eq!(invoked, text.trim());
}

#[tokio::test]
async fn the_json_chain_streams_growing_partial_objects() {
    let answer = r#"{"name": "Ferris", "tags": ["crab", "mascot"], "age": 9}"#;
    let model = ScriptedChatModel::new().with_text(answer).boxed();
    let chain = LlmChain::new(prompt(), model, JsonOutputParser::new());
    let items = ok(collect(chain.stream(topic()).await.unwrap()).await);
    assert!(items.len() >= 4, "{items:?}");
    assert!(items.contains(&json!({"name": "Ferris"})), "{items:?}");
    assert!(
        items.contains(&json!({"name": "Ferris", "tags": ["crab"]})),
        "{items:?}"
    );
    assert_eq!(
        items.last().unwrap(),
        &serde_json::from_str::<serde_json::Value>(answer).unwrap()
    );
    // Every partial object is a prefix-shaped view: no item repeats its predecessor.
    assert!(items.windows(2).all(|w| w[0] != w[1]));
}

#[derive(Debug, Deserialize, PartialEq, schemars::JsonSchema)]
struct Mascot {
    name: String,
    #[serde(default)]
    tags: Vec<String>,
    age: Option<u32>,
}

#[tokio::test]
async fn typed_structured_output_streams_partial_values_and_reports_mismatches() {
    let answer = r#"{"name": "Ferris", "tags": ["crab"], "age": 9}"#;
    let model = ScriptedChatModel::new()
        .with_text(answer)
        .with_text(r#"{"name": 7}"#)
        .boxed();
    let chain = LlmChain::new(prompt(), model, TypedOutputParser::<Mascot>::new());
    let items = ok(collect(chain.stream(topic()).await.unwrap()).await);
    // Values appear once `name` (required) is there, and grow.
    let first = &items.first().unwrap().name;
    assert!(
        first.len() < 6 && "Ferris".starts_with(first.as_str()),
        "{first}"
    );
    assert_eq!(
        items.last().unwrap(),
        &Mascot {
            name: "Ferris".into(),
            tags: vec!["crab".into()],
            age: Some(9)
        }
    );
    // A wrong type never becomes a partial value; the end reports the mismatch.
    let items = collect(chain.stream(topic()).await.unwrap()).await;
    assert_eq!(items.len(), 1);
    let err = items.into_iter().next().unwrap().unwrap_err();
    assert!(err.to_string().contains("name"), "{err}");
}

#[tokio::test]
async fn a_stream_that_breaks_midway_ends_with_the_error() {
    let model = ScriptedChatModel::new()
        .with_interrupted_stream("one two three four five six", 2)
        .boxed();
    let chain = LlmChain::text(prompt(), model);
    let items = collect(chain.stream(topic()).await.unwrap()).await;
    assert!(items.len() >= 2);
    assert!(items[..items.len() - 1].iter().all(Result::is_ok));
    assert!(items.last().unwrap().is_err());
}

/// A retriever that returns fixed documents and counts calls.
struct Fixed(Vec<Document>, Mutex<u32>);

#[async_trait]
impl Retriever for Fixed {
    async fn retrieve(&self, _query: &str) -> Result<Vec<Document>> {
        *self.1.lock().unwrap() += 1;
        Ok(self.0.clone())
    }
    async fn retrieve_scored(&self, query: &str) -> Result<Vec<ScoredDocument>> {
        Ok(self
            .retrieve(query)
            .await?
            .into_iter()
            .enumerate()
            .map(|(i, d)| ScoredDocument::new(d, 1.0 / (i as f32 + 1.0)))
            .collect())
    }
}

fn docs() -> Arc<Fixed> {
    Arc::new(Fixed(
        vec![
            Document::new("Ferris is the Rust mascot.").with_id("a"),
            Document::new("Ferris is orange.").with_id("b"),
        ],
        Mutex::new(0),
    ))
}

#[tokio::test]
async fn retrieval_qa_streams_sources_first_then_tokens() {
    let answer = "Ferris, an orange crab, is the mascot.";
    let model = ScriptedChatModel::new()
        .with_text(answer)
        .with_text(answer)
        .with_text(answer)
        .boxed();
    let qa = RetrievalQa::builder(docs(), model).build().unwrap();

    let events = ok(collect(qa.stream_events("Who is Ferris?").await.unwrap()).await);
    match &events[0] {
        QaEvent::Sources(s) => {
            assert_eq!(s.len(), 2);
            assert_eq!(s[0].score, 1.0);
        }
        other => panic!("sources must come first, got {other:?}"),
    }
    let tokens: String = events
        .iter()
        .filter_map(|e| match e {
            QaEvent::Token(t) => Some(t.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(tokens, answer);
    assert!(
        events
            .iter()
            .filter(|e| matches!(e, QaEvent::Token(_)))
            .count()
            > 3
    );
    assert!(matches!(
        events.last(),
        Some(QaEvent::Finish(_)) | Some(QaEvent::Usage(_))
    ));

    // Through the Chain trait: the first chunk carries the sources, the rest the answer.
    let chunks = ok(collect(qa.stream("Who is Ferris?".into()).await.unwrap()).await);
    assert_eq!(chunks[0].sources.len(), 2);
    assert!(chunks[0].answer.is_empty());
    assert!(chunks[1..].iter().all(|c| c.sources.is_empty()));
    let streamed: String = chunks.iter().map(|c| c.answer.as_str()).collect();
    assert_eq!(
        streamed,
        qa.invoke("Who is Ferris?".into()).await.unwrap().answer
    );
}

#[tokio::test]
async fn a_prepared_answer_shows_its_request_and_takes_a_token_cap() {
    let model = ScriptedChatModel::new().with_text("Orange.").boxed();
    let qa = RetrievalQa::builder(docs(), model).build().unwrap();
    let prepared = qa.prepare("What colour is Ferris?").await.unwrap();
    assert_eq!(prepared.sources().len(), 2);
    let prompt_text = prepared.request().messages[0].text();
    assert!(prompt_text.contains("Ferris is orange.") && prompt_text.contains("What colour"));
    let prepared = prepared.with_max_tokens(7);
    assert_eq!(prepared.request().max_tokens, Some(7));
    let (response, sources) = prepared.generate().await.unwrap();
    assert_eq!(response.text(), "Orange.");
    assert_eq!(sources.len(), 2);
}

#[tokio::test]
async fn the_conversational_chain_streams_and_records_the_turn_only_when_it_completes() {
    let history = Arc::new(InMemoryChatHistory::new());
    let model = ScriptedChatModel::new()
        .with_text("Ferris is the mascot.")
        .with_text("What colour is Ferris?")
        .with_interrupted_stream("It is orange, like a crab.", 2)
        .with_text("What colour is Ferris?")
        .with_text("Orange.")
        .boxed();
    let chain = ConversationalRetrieval::builder(docs(), model, history.clone())
        .build()
        .unwrap();
    let session = SessionId::new("s");
    let first = ok(collect(
        chain
            .stream(ConversationTurn::new(session.clone(), "Who is Ferris?"))
            .await
            .unwrap(),
    )
    .await);
    assert_eq!(first[0].sources.len(), 2);
    assert_eq!(first[0].standalone_question, "Who is Ferris?");
    let text: String = first.iter().map(|c| c.answer.as_str()).collect();
    assert_eq!(text, "Ferris is the mascot.");
    assert_eq!(history.messages(&session).await.unwrap().len(), 2);

    // The answer breaks midway: the stream ends with the error and nothing is recorded.
    let broken = collect(
        chain
            .stream(ConversationTurn::new(session.clone(), "What colour is it?"))
            .await
            .unwrap(),
    )
    .await;
    assert!(broken.last().unwrap().is_err());
    assert_eq!(history.messages(&session).await.unwrap().len(), 2);

    let again = ok(collect(
        chain
            .stream(ConversationTurn::new(session.clone(), "What colour is it?"))
            .await
            .unwrap(),
    )
    .await);
    assert_eq!(again[0].standalone_question, "What colour is Ferris?");
    assert_eq!(history.messages(&session).await.unwrap().len(), 4);
}

#[tokio::test]
async fn fallbacks_and_retries_act_before_the_first_item_only() {
    // The primary fails before streaming anything: the fallback streams.
    let primary = LlmChain::text(
        prompt(),
        ScriptedChatModel::new().with_error(down()).boxed(),
    );
    let backup = LlmChain::text(
        prompt(),
        ScriptedChatModel::new().with_text("backup answer").boxed(),
    );
    let chain = primary.with_fallback(backup);
    let text: String = ok(collect(chain.stream(topic()).await.unwrap()).await).concat();
    assert_eq!(text, "backup answer");

    // A retry re-runs a stream that failed at the start.
    let model = ScriptedChatModel::new()
        .with_error(down())
        .with_text("second try")
        .boxed();
    let chain = LlmChain::text(prompt(), model)
        .with_retry(RetryPolicy::new().with_initial_backoff(Duration::from_millis(1)));
    let text: String = ok(collect(chain.stream(topic()).await.unwrap()).await).concat();
    assert_eq!(text, "second try");

    // Once items are out, a failure is the stream's, not a reason to switch.
    let primary = LlmChain::text(
        prompt(),
        ScriptedChatModel::new()
            .with_interrupted_stream("partial answer that breaks", 2)
            .boxed(),
    );
    let backup = LlmChain::text(
        prompt(),
        ScriptedChatModel::new().with_text("never").boxed(),
    );
    let items = collect(primary.with_fallback(backup).stream(topic()).await.unwrap()).await;
    assert!(items.first().unwrap().is_ok());
    assert!(items.last().unwrap().is_err());
}

#[tokio::test]
async fn a_branch_streams_the_chain_it_picks() {
    let short = LlmChain::text(
        prompt(),
        ScriptedChatModel::new().with_text("short one").boxed(),
    );
    let long = LlmChain::text(
        prompt(),
        ScriptedChatModel::new()
            .with_text("a much longer answer")
            .boxed(),
    );
    let branch = Branch::new(short).when(
        |v: &PromptValues| {
            v.get("topic")
                .and_then(|t| t.as_text())
                .is_some_and(|t| t.contains("long"))
        },
        long,
    );
    let picked = ok(collect(
        branch
            .stream(PromptValues::new().with("topic", "a long story"))
            .await
            .unwrap(),
    )
    .await);
    assert!(picked.len() > 1);
    assert_eq!(picked.concat(), "a much longer answer");
    assert_eq!(branch.invoke(topic()).await.unwrap(), "short one");
}

#[tokio::test]
async fn parallel_steps_run_at_the_same_time() {
    // Each branch waits for the other at a barrier: run one after the other, they would
    // never get past it.
    let barrier = Arc::new(tokio::sync::Barrier::new(3));
    let meet = |out: &'static str| {
        let b = Arc::clone(&barrier);
        chain_fn(move |_: u32| {
            let b = Arc::clone(&b);
            async move {
                b.wait().await;
                Ok(out.to_string())
            }
        })
    };
    let fan = parallel3(meet("a"), meet("b"), meet("c"));
    let out = tokio::time::timeout(Duration::from_secs(5), fan.invoke(1))
        .await
        .expect("the branches ran concurrently")
        .unwrap();
    assert_eq!(out, ("a".into(), "b".into(), "c".into()));

    let map = ParallelMap::new()
        .branch("same", passthrough::<u32>())
        .branch("double", chain_fn(|n: u32| async move { Ok(n * 2) }));
    assert_eq!(
        map.invoke(21).await.unwrap(),
        BTreeMap::from([("double".to_string(), 42), ("same".to_string(), 21)])
    );

    let failing = parallel2(
        chain_fn(|_: u32| async move { Err::<u32, _>(Error::invalid_input("bad")) }),
        passthrough::<u32>(),
    );
    assert!(failing.invoke(1).await.is_err());
}

#[tokio::test]
async fn assign_adds_fields_computed_from_the_input() {
    let assign = Assign::new()
        .field(
            "shout",
            chain_fn(
                |v: Values| async move { Ok(v["text"].as_str().unwrap_or("").to_uppercase()) },
            ),
        )
        .field(
            "n",
            chain_fn(|v: Values| async move { Ok(v["text"].as_str().unwrap_or("").len()) }),
        );
    let mut input = Values::new();
    input.insert("text".into(), json!("hi"));
    input.insert("keep".into(), json!(true));
    let out = assign.invoke(input).await.unwrap();
    assert_eq!(
        serde_json::Value::Object(out),
        json!({"text": "hi", "keep": true, "shout": "HI", "n": 2})
    );
}

/// Records the fields of `chain.run` spans.
#[derive(Clone, Default)]
struct Spans(Arc<Mutex<Vec<BTreeMap<String, String>>>>);

struct Visit<'a>(&'a mut BTreeMap<String, String>);

impl tracing::field::Visit for Visit<'_> {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.0
            .insert(field.name().to_string(), format!("{value:?}"));
    }
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        self.0.insert(field.name().to_string(), value.to_string());
    }
}

impl<S> tracing_subscriber::Layer<S> for Spans
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    fn on_new_span(
        &self,
        attrs: &tracing::span::Attributes<'_>,
        id: &tracing::span::Id,
        ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        let mut fields = BTreeMap::new();
        attrs.record(&mut Visit(&mut fields));
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(fields);
        }
    }
    fn on_record(
        &self,
        id: &tracing::span::Id,
        values: &tracing::span::Record<'_>,
        ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        if let Some(span) = ctx.span(id) {
            if let Some(fields) = span.extensions_mut().get_mut::<BTreeMap<String, String>>() {
                values.record(&mut Visit(fields));
            }
        }
    }
    fn on_close(&self, id: tracing::span::Id, ctx: tracing_subscriber::layer::Context<'_, S>) {
        if let Some(span) = ctx.span(&id) {
            if span.name() == "chain.run" {
                if let Some(fields) = span.extensions().get::<BTreeMap<String, String>>() {
                    self.0.lock().unwrap().push(fields.clone());
                }
            }
        }
    }
}

#[tokio::test]
async fn with_config_runs_in_a_span_with_its_name_tags_metadata_and_outcome() {
    use tracing_subscriber::layer::SubscriberExt;
    let spans = Spans::default();
    let _guard =
        tracing::subscriber::set_default(tracing_subscriber::registry().with(spans.clone()));

    let model = ScriptedChatModel::new()
        .with_text("a streamed answer")
        .with_error(Error::invalid_input("nope"))
        .boxed();
    let chain = LlmChain::text(prompt(), model).with_config(
        RunConfig::new("explain")
            .with_tag("docs")
            .with_tag("v2")
            .with_metadata("tenant", "acme"),
    );
    let items = ok(collect(chain.stream(topic()).await.unwrap()).await);
    assert_eq!(items.concat(), "a streamed answer");
    assert!(chain.invoke(topic()).await.is_err());

    let recorded = spans.0.lock().unwrap().clone();
    assert_eq!(recorded.len(), 2, "{recorded:?}");
    let streamed = &recorded[0];
    assert_eq!(streamed["run_name"], "explain");
    assert_eq!(streamed["tags"], "docs,v2");
    assert_eq!(streamed["metadata"], r#"{"tenant":"acme"}"#);
    assert_eq!(streamed["mode"], "stream");
    assert_eq!(streamed["outcome"], "ok");
    assert_eq!(streamed["items"], items.len().to_string());
    assert_eq!(recorded[1]["mode"], "invoke");
    assert_eq!(recorded[1]["outcome"], "error");
}

#[tokio::test]
async fn a_pipe_streams_its_last_step_and_boxed_chains_keep_streaming() {
    let model = ScriptedChatModel::new()
        .with_text("piped answer here")
        .boxed();
    let to_values = chain_fn(|t: String| async move { Ok(PromptValues::new().with("topic", t)) });
    let chain = to_values.pipe(LlmChain::text(prompt(), model)).boxed();
    let items = ok(collect(chain.stream("Rust".into()).await.unwrap()).await);
    assert!(items.len() > 1, "{items:?}");
    assert_eq!(items.concat(), "piped answer here");
}
