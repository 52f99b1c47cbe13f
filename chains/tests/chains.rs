//! Behaviour of the chains with scripted models: the prompts actually sent, error paths,
//! composition (retry, fallback, timeout, bounded batches) and map-reduce's concurrency bound.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use catena_chains::LlmChain;
use catena_chains::RetrievalQa;
use catena_chains::{batch_bounded, ComposeExt, FallbackList};
use catena_chains::{ConversationTurn, ConversationalRetrieval};
use catena_chains::{SequentialChain, SequentialError, SequentialStep, Values};
use catena_chains::{SqlDatabase, SqlQaChain, SqlRows};
use catena_chains::{SummarizeError, Summarizer};
use catena_core::parser::{JsonOutputParser, ParseError};
use catena_core::prompt::{ChatPromptTemplate, PromptError, PromptTemplate, PromptValues};
use catena_core::test_utils::{DeterministicEmbedder, ScriptedChatModel};
use catena_core::RetryPolicy;
use catena_core::{
    chain_fn, collect_stream, Chain, ChatHistory, ChatModel, ChatModelExt, ChatRequest,
    ChatResponse, Document, EmbeddedDocument, Embedder, Error, InMemoryChatHistory, Message,
    ModelInfo, ProviderError, ProviderErrorKind, Role, SessionId, VectorStore,
    VectorStoreRetriever,
};
use catena_vectorstores::InMemoryVectorStore;
use serde_json::json;

fn server_error() -> Error {
    ProviderError::new(ProviderErrorKind::Server, "overloaded")
        .with_status(503)
        .into()
}

fn auth_error() -> Error {
    ProviderError::new(ProviderErrorKind::Auth, "bad key")
        .with_status(401)
        .into()
}

fn texts(request: &ChatRequest) -> Vec<(Role, String)> {
    request
        .messages
        .iter()
        .map(|m| (m.role, m.text()))
        .collect()
}

fn country_chain(model: Arc<ScriptedChatModel>) -> LlmChain<catena_core::parser::StrOutputParser> {
    let prompt = ChatPromptTemplate::builder()
        .system("You answer in one word.")
        .user("Capital of {country}?")
        .build()
        .unwrap();
    LlmChain::text(prompt, model)
}

fn values(pairs: &[(&str, &str)]) -> PromptValues {
    pairs.iter().map(|(k, v)| (*k, *v)).collect()
}

// ---------------------------------------------------------------------------------------
// LLM chain

#[tokio::test]
async fn llm_chain_sends_the_formatted_prompt_with_options_and_parses() {
    let model = Arc::new(ScriptedChatModel::new().with_text("  Paris.\n"));
    let chain = country_chain(model.clone())
        .with_temperature(0.1)
        .with_max_tokens(16)
        .with_stop(["\n"]);
    let out = chain
        .invoke(values(&[("country", "France")]))
        .await
        .unwrap();
    assert_eq!(out, "Paris.");
    let requests = model.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(
        texts(&requests[0]),
        vec![
            (Role::System, "You answer in one word.".to_string()),
            (Role::User, "Capital of France?".to_string())
        ]
    );
    assert_eq!(requests[0].temperature, Some(0.1));
    assert_eq!(requests[0].max_tokens, Some(16));
    assert_eq!(requests[0].stop, vec!["\n".to_string()]);
}

#[tokio::test]
async fn llm_chain_missing_variable_is_a_prompt_error_and_sends_nothing() {
    let model = Arc::new(ScriptedChatModel::new().with_text("x"));
    let chain = country_chain(model.clone());
    let err = chain.invoke(PromptValues::new()).await.unwrap_err();
    assert!(
        matches!(&err, Error::Prompt(PromptError::MissingVariable(v)) if v == "country"),
        "{err:?}"
    );
    assert!(model.requests().is_empty());
}

#[tokio::test]
async fn llm_chain_propagates_model_and_parse_errors() {
    let model = Arc::new(ScriptedChatModel::new().with_error(auth_error()));
    let err = country_chain(model)
        .invoke(values(&[("country", "France")]))
        .await
        .unwrap_err();
    assert!(err.is_auth());

    let model = Arc::new(ScriptedChatModel::new().with_text("not json"));
    let chain = LlmChain::new(
        PromptTemplate::new("Give JSON about {topic}").unwrap(),
        model,
        JsonOutputParser::new(),
    );
    let err = chain
        .invoke(values(&[("topic", "cats")]))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Parse(ParseError::NoJsonFound | ParseError::InvalidJson(_))
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn llm_chain_fills_format_instructions_from_the_parser() {
    #[derive(serde::Deserialize, schemars::JsonSchema, Debug, PartialEq)]
    struct City {
        name: String,
    }
    let parser = catena_core::parser::TypedOutputParser::<City>::new();
    let instructions = catena_core::OutputParser::format_instructions(&parser).unwrap();
    let model = Arc::new(ScriptedChatModel::new().with_text(r#"{"name": "Paris"}"#));
    let chain = LlmChain::new(
        PromptTemplate::new("{format_instructions}\nCapital of {country}?").unwrap(),
        model.clone(),
        parser,
    );
    assert_eq!(chain.input_variables(), vec!["country".to_string()]);
    let city = chain
        .invoke(values(&[("country", "France")]))
        .await
        .unwrap();
    assert_eq!(
        city,
        City {
            name: "Paris".into()
        }
    );
    assert_eq!(
        model.requests()[0].messages[0].text(),
        format!("{instructions}\nCapital of France?")
    );
}

#[tokio::test]
async fn llm_chain_streams_deltas() {
    let model = Arc::new(ScriptedChatModel::new().with_text("Paris is the capital."));
    let chain = country_chain(model.clone());
    let stream = chain
        .stream_chunks(&values(&[("country", "France")]))
        .await
        .unwrap();
    let response = collect_stream(stream).await.unwrap();
    assert_eq!(response.text(), "Paris is the capital.");
    assert_eq!(model.requests()[0].messages[1].text(), "Capital of France?");
}

// ---------------------------------------------------------------------------------------
// Composition

#[tokio::test(start_paused = true)]
async fn retry_then_success_with_backoff() {
    let model = Arc::new(
        ScriptedChatModel::new()
            .with_error(server_error())
            .with_error(server_error())
            .with_text("Paris"),
    );
    let chain = country_chain(model.clone()).with_retry(
        RetryPolicy::new()
            .with_max_retries(3)
            .with_initial_backoff(Duration::from_secs(1))
            .with_jitter(false),
    );
    let start = tokio::time::Instant::now();
    let out = chain
        .invoke(values(&[("country", "France")]))
        .await
        .unwrap();
    assert_eq!(out, "Paris");
    assert_eq!(model.requests().len(), 3);
    // 1 s then 2 s of (virtual) backoff.
    assert_eq!(start.elapsed(), Duration::from_secs(3));
}

#[tokio::test(start_paused = true)]
async fn retry_gives_up_and_skips_non_retryable_errors() {
    let model = Arc::new(
        ScriptedChatModel::new()
            .with_error(server_error())
            .with_error(server_error()),
    );
    let err = country_chain(model.clone())
        .with_retry(RetryPolicy::new().with_max_retries(1))
        .invoke(values(&[("country", "France")]))
        .await
        .unwrap_err();
    assert!(err.is_retryable());
    assert_eq!(model.requests().len(), 2);

    let model = Arc::new(
        ScriptedChatModel::new()
            .with_error(auth_error())
            .with_text("x"),
    );
    let err = country_chain(model.clone())
        .with_retry(RetryPolicy::new().with_max_retries(3))
        .invoke(values(&[("country", "France")]))
        .await
        .unwrap_err();
    assert!(err.is_auth());
    assert_eq!(model.requests().len(), 1);
}

#[tokio::test]
async fn fallback_is_used_on_retryable_errors_only() {
    let primary = Arc::new(ScriptedChatModel::new().with_error(server_error()));
    let backup = Arc::new(ScriptedChatModel::new().with_text("Paris (backup)"));
    let chain = country_chain(primary.clone()).with_fallback(country_chain(backup.clone()));
    let out = chain
        .invoke(values(&[("country", "France")]))
        .await
        .unwrap();
    assert_eq!(out, "Paris (backup)");
    assert_eq!(primary.requests().len(), 1);
    assert_eq!(backup.requests().len(), 1);
    assert_eq!(texts(&backup.requests()[0]), texts(&primary.requests()[0]));

    let primary = Arc::new(ScriptedChatModel::new().with_error(auth_error()));
    let backup = Arc::new(ScriptedChatModel::new().with_text("unused"));
    let err = country_chain(primary)
        .with_fallback(country_chain(backup.clone()))
        .invoke(values(&[("country", "France")]))
        .await
        .unwrap_err();
    assert!(err.is_auth());
    assert!(backup.requests().is_empty());
}

#[tokio::test]
async fn fallback_list_tries_in_order() {
    let failing: Arc<dyn Chain<u32, u32>> =
        Arc::new(chain_fn(|_: u32| async { Err::<u32, _>(server_error()) }));
    let ok: Arc<dyn Chain<u32, u32>> = Arc::new(chain_fn(|n: u32| async move { Ok(n + 1) }));
    let list = FallbackList::new(vec![failing.clone(), failing, ok]).unwrap();
    assert_eq!(list.invoke(1).await.unwrap(), 2);
    assert!(FallbackList::<u32, u32>::new(vec![]).is_err());
}

#[tokio::test(start_paused = true)]
async fn timeout_fails_slow_calls() {
    let slow = chain_fn(|n: u32| async move {
        tokio::time::sleep(Duration::from_secs(n.into())).await;
        Ok(n)
    });
    let chain = slow.with_timeout(Duration::from_secs(5));
    assert_eq!(chain.invoke(1).await.unwrap(), 1);
    let err = chain.invoke(60).await.unwrap_err();
    assert!(
        matches!(err, Error::Timeout(d) if d == Duration::from_secs(5)),
        "{err:?}"
    );
    assert!(err.is_timeout());
}

/// The decorator on a chat model (moved from `catena-llms`, whose own `Retry` is gone).
#[tokio::test(start_paused = true)]
async fn retry_decorates_chat_models_and_gives_up_on_schedule() {
    use catena_core::{ChatModel, ChatRequest, Message, ProviderError, ProviderErrorKind};
    let unavailable =
        || Error::from(ProviderError::new(ProviderErrorKind::Server, "x").with_status(503));
    let model = ScriptedChatModel::new()
        .with_error(unavailable())
        .with_error(unavailable())
        .with_error(unavailable())
        .with_text("never reached")
        .with_retry(RetryPolicy::default().with_jitter(false));
    let start = tokio::time::Instant::now();
    let e = model
        .generate(ChatRequest::new(vec![Message::user("hi")]))
        .await
        .unwrap_err();
    assert_eq!(e.as_provider().and_then(|p| p.status), Some(503));
    assert_eq!(model.get_ref().requests().len(), 3, "1 attempt + 2 retries");
    assert_eq!(start.elapsed(), Duration::from_millis(1500));
    // The next call gets the queued answer on its first try.
    let ok = model
        .generate(ChatRequest::new(vec![Message::user("hi")]))
        .await
        .unwrap();
    assert_eq!(ok.text(), "never reached");

    let model = ScriptedChatModel::new()
        .with_error(auth_error())
        .with_text("unused")
        .with_retry(RetryPolicy::default());
    assert!(model
        .generate(ChatRequest::new(vec![Message::user("hi")]))
        .await
        .unwrap_err()
        .is_auth());
    assert_eq!(model.get_ref().requests().len(), 1);
}

/// Timeout and fallback decorate chat models too.
#[tokio::test(start_paused = true)]
async fn timeout_and_fallback_decorate_chat_models() {
    use catena_core::{ChatModel, ChatRequest, Message};
    let primary = ScriptedChatModel::new().with_error(server_error());
    let backup = ScriptedChatModel::new().with_text("from the backup");
    let model = primary
        .with_fallback(backup)
        .with_timeout(Duration::from_secs(5));
    let answer = model
        .generate(ChatRequest::new(vec![Message::user("hi")]))
        .await
        .unwrap();
    assert_eq!(answer.text(), "from the backup");
}

#[tokio::test(start_paused = true)]
async fn retry_outside_timeout_retries_slow_calls() {
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    let flaky = chain_fn(move |_: ()| {
        let n = c.fetch_add(1, Ordering::SeqCst);
        async move {
            if n == 0 {
                tokio::time::sleep(Duration::from_secs(60)).await;
            }
            Ok(n)
        }
    });
    let chain = flaky
        .with_timeout(Duration::from_secs(1))
        .with_retry(RetryPolicy::new().with_max_retries(1));
    assert_eq!(chain.invoke(()).await.unwrap(), 1);
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn batch_bounded_keeps_order_and_per_item_errors() {
    let chain = chain_fn(|n: u64| async move {
        // Later items finish first.
        tokio::time::sleep(Duration::from_millis(20 - n * 2)).await;
        if n == 3 {
            Err(Error::invalid_input("three"))
        } else {
            Ok(n * 10)
        }
    });
    let results = batch_bounded(&chain, (0..6).collect(), 4).await;
    assert_eq!(results.len(), 6);
    for (i, r) in results.iter().enumerate() {
        if i == 3 {
            assert!(r.as_ref().unwrap_err().to_string().contains("three"));
        } else {
            assert_eq!(*r.as_ref().unwrap(), i as u64 * 10);
        }
    }
}

#[tokio::test]
async fn batch_bounded_respects_the_bound() {
    let model = Arc::new(TrackingModel::new(ScriptedChatModel::echo()));
    let chain = LlmChain::text(PromptTemplate::new("{n}").unwrap(), model.clone());
    let inputs = (0..20).map(|n| PromptValues::new().with("n", n)).collect();
    let results = batch_bounded(&chain, inputs, 3).await;
    assert_eq!(results[7].as_ref().unwrap(), "Echo: 7");
    assert_eq!(model.max_in_flight(), 3);
}

// ---------------------------------------------------------------------------------------
// Sequential chain

fn synopsis_and_review(model: Arc<ScriptedChatModel>) -> (SequentialStep, SequentialStep) {
    let synopsis = LlmChain::text(
        PromptTemplate::new("Write a synopsis for the play {title} set in {era}.").unwrap(),
        model.clone(),
    );
    let review = LlmChain::text(
        PromptTemplate::new("Review this synopsis: {synopsis}").unwrap(),
        model,
    );
    (
        SequentialStep::llm("synopsis", synopsis, "synopsis"),
        SequentialStep::llm("review", review, "review"),
    )
}

fn input(pairs: &[(&str, &str)]) -> Values {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), json!(v)))
        .collect()
}

#[tokio::test]
async fn sequential_chain_feeds_outputs_to_later_steps() {
    let model = Arc::new(
        ScriptedChatModel::new()
            .with_text("A knight loses a horse.")
            .with_text("Moving."),
    );
    let (synopsis, review) = synopsis_and_review(model.clone());
    let shout = SequentialStep::new(
        "shout",
        ["review"],
        ["loud_review"],
        chain_fn(|v: Values| async move {
            let loud = v["review"].as_str().unwrap_or_default().to_uppercase();
            Ok(Values::from_iter([("loud_review".to_owned(), json!(loud))]))
        }),
    );
    let chain = SequentialChain::builder()
        .input_keys(["title", "era"])
        .step(synopsis)
        .step(review)
        .step(shout)
        .build()
        .unwrap();
    let out = chain
        .invoke(input(&[("title", "The Horse"), ("era", "1400")]))
        .await
        .unwrap();
    assert_eq!(out["synopsis"], "A knight loses a horse.");
    assert_eq!(out["review"], "Moving.");
    assert_eq!(out["loud_review"], "MOVING.");
    assert_eq!(out["title"], "The Horse");
    let requests = model.requests();
    assert_eq!(
        requests[0].messages[0].text(),
        "Write a synopsis for the play The Horse set in 1400."
    );
    assert_eq!(
        requests[1].messages[0].text(),
        "Review this synopsis: A knight loses a horse."
    );

    // Selected outputs only.
    let model = Arc::new(ScriptedChatModel::new().with_text("s").with_text("r"));
    let (synopsis, review) = synopsis_and_review(model);
    let chain = SequentialChain::builder()
        .step(synopsis)
        .step(review)
        .output_keys(["review"])
        .build()
        .unwrap();
    let out = chain
        .run(input(&[("title", "T"), ("era", "E")]))
        .await
        .unwrap();
    assert_eq!(out, input(&[("review", "r")]));
}

#[tokio::test]
async fn sequential_chain_reports_missing_variables_at_build_and_run_time() {
    let model = Arc::new(ScriptedChatModel::new().with_text("s"));
    let (synopsis, review) = synopsis_and_review(model.clone());
    // Build time: `era` is not declared.
    let err = SequentialChain::builder()
        .input_keys(["title"])
        .step(synopsis.clone())
        .step(review.clone())
        .build()
        .unwrap_err();
    assert!(
        matches!(&err, SequentialError::MissingVariable { step, variable } if step == "synopsis" && variable == "era"),
        "{err:?}"
    );
    assert!(err.to_string().contains("`synopsis`") && err.to_string().contains("`era`"));

    // Steps in the wrong order.
    let err = SequentialChain::builder()
        .input_keys(["title", "era"])
        .step(review.clone())
        .step(synopsis.clone())
        .build()
        .unwrap_err();
    assert!(
        matches!(&err, SequentialError::MissingVariable { step, variable } if step == "review" && variable == "synopsis")
    );

    // Run time, when inputs are not declared.
    let chain = SequentialChain::builder()
        .step(synopsis)
        .step(review)
        .build()
        .unwrap();
    let err = chain.run(input(&[("title", "T")])).await.unwrap_err();
    assert!(
        matches!(&err, SequentialError::MissingVariable { step, variable } if step == "synopsis" && variable == "era")
    );
    assert!(model.requests().is_empty());
    // Through the `Chain` trait: an `Error` whose source is the typed error.
    let err = chain.invoke(input(&[("title", "T")])).await.unwrap_err();
    let typed = std::error::Error::source(&err)
        .and_then(|s| s.downcast_ref::<SequentialError>())
        .unwrap();
    assert!(matches!(typed, SequentialError::MissingVariable { .. }));
}

#[tokio::test]
async fn sequential_chain_step_errors() {
    let model = Arc::new(ScriptedChatModel::new().with_error(server_error()));
    let (synopsis, _) = synopsis_and_review(model);
    let chain = SequentialChain::builder().step(synopsis).build().unwrap();
    let err = chain
        .run(input(&[("title", "T"), ("era", "E")]))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, SequentialError::Step { step, source } if step == "synopsis" && source.is_retryable())
    );
    // The model's own error comes out of `invoke`, so retry and fallback still work.
    let model = Arc::new(ScriptedChatModel::new().with_error(server_error()));
    let (synopsis, _) = synopsis_and_review(model);
    let chain = SequentialChain::builder().step(synopsis).build().unwrap();
    let err = chain
        .invoke(input(&[("title", "T"), ("era", "E")]))
        .await
        .unwrap_err();
    assert!(err.is_retryable());

    let forgetful = SequentialStep::new(
        "forgetful",
        ["a"],
        ["b"],
        chain_fn(|_: Values| async { Ok(Values::new()) }),
    );
    let chain = SequentialChain::builder().step(forgetful).build().unwrap();
    let err = chain.run(input(&[("a", "1")])).await.unwrap_err();
    assert!(
        matches!(&err, SequentialError::MissingOutput { step, key } if step == "forgetful" && key == "b")
    );
    assert!(matches!(
        SequentialChain::builder().build(),
        Err(SequentialError::NoSteps)
    ));
}

// ---------------------------------------------------------------------------------------
// Retrieval QA and conversational retrieval

async fn retriever(docs: &[&str], k: usize) -> Arc<VectorStoreRetriever> {
    let embedder = Arc::new(DeterministicEmbedder::new(64));
    let store = Arc::new(InMemoryVectorStore::new());
    let mut embedded = Vec::new();
    for (i, d) in docs.iter().enumerate() {
        let e = embedder.embed_query(d).await.unwrap();
        embedded.push(EmbeddedDocument::new(
            Document::new(*d).with_id(format!("doc-{i}")),
            e,
        ));
    }
    store.upsert(embedded).await.unwrap();
    Arc::new(VectorStoreRetriever::new(embedder, store).with_k(k))
}

const DOCS: &[&str] = &[
    "Rust was first released in 2015.",
    "Ferris the crab is the Rust mascot.",
    "Python was created by Guido van Rossum.",
];

#[tokio::test]
async fn retrieval_qa_stuffs_documents_into_the_default_prompt() {
    let retriever = retriever(DOCS, 2).await;
    let expected_sources =
        catena_core::Retriever::retrieve(retriever.as_ref(), "When was Rust first released?")
            .await
            .unwrap();
    let model = Arc::new(ScriptedChatModel::new().with_text(" In 2015. "));
    let qa = RetrievalQa::builder(retriever, model.clone())
        .build()
        .unwrap();
    let out = qa
        .invoke("When was Rust first released?".to_string())
        .await
        .unwrap();
    assert_eq!(out.answer, "In 2015.");
    assert_eq!(out.sources, expected_sources);
    assert_eq!(out.sources.len(), 2);
    assert_eq!(out.sources[0].content, DOCS[0]);
    let context = format!("{}\n\n{}", out.sources[0].content, out.sources[1].content);
    let requests = model.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(
        texts(&requests[0]),
        vec![(
            Role::User,
            format!(
                "Use the following pieces of context to answer the question at the end. \
                 If you don't know the answer, just say that you don't know, don't try to make up an answer.\n\n\
                 {context}\n\nQuestion: When was Rust first released?\nHelpful Answer:"
            )
        )]
    );
}

#[tokio::test]
async fn retrieval_qa_custom_prompt_is_checked_and_used() {
    let retriever = retriever(DOCS, 1).await;
    let model = Arc::new(ScriptedChatModel::new().with_text("Ferris"));
    let bad = RetrievalQa::builder(retriever.clone(), model.clone())
        .prompt(PromptTemplate::new("{question} only").unwrap())
        .build()
        .unwrap_err();
    assert!(matches!(bad, Error::InvalidConfig(_)), "{bad:?}");

    let prompt = ChatPromptTemplate::builder()
        .system("Context:\n{context}")
        .user("{question}")
        .build()
        .unwrap();
    let qa = RetrievalQa::builder(retriever, model.clone())
        .prompt(prompt)
        .request(ChatRequest::default().with_temperature(0.0))
        .build()
        .unwrap();
    let out = qa.invoke("Who is the Rust mascot?".into()).await.unwrap();
    assert_eq!(out.answer, "Ferris");
    let req = &model.requests()[0];
    assert_eq!(
        texts(req),
        vec![
            (Role::System, format!("Context:\n{}", DOCS[1])),
            (Role::User, "Who is the Rust mascot?".to_string())
        ]
    );
    assert_eq!(req.temperature, Some(0.0));
}

#[tokio::test]
async fn retrieval_qa_propagates_model_errors() {
    let model = Arc::new(ScriptedChatModel::new().with_error(server_error()));
    let qa = RetrievalQa::builder(retriever(DOCS, 1).await, model)
        .build()
        .unwrap();
    assert!(qa.invoke("q".into()).await.unwrap_err().is_retryable());
}

#[tokio::test]
async fn conversational_retrieval_condenses_with_history() {
    let history = Arc::new(InMemoryChatHistory::new());
    let model = Arc::new(
        ScriptedChatModel::new()
            .with_text("Ferris the crab.")
            .with_text("When was the language whose mascot is Ferris released?")
            .with_text("In 2015.")
            .with_text("Guido van Rossum."),
    );
    let chain =
        ConversationalRetrieval::builder(retriever(DOCS, 1).await, model.clone(), history.clone())
            .build()
            .unwrap();
    let session = SessionId::new("conv-1");

    let first = chain
        .invoke(ConversationTurn::new(
            session.clone(),
            "Who is the Rust mascot?",
        ))
        .await
        .unwrap();
    // Empty history: no condense call.
    assert_eq!(model.requests().len(), 1);
    assert_eq!(first.standalone_question, "Who is the Rust mascot?");
    assert_eq!(first.sources[0].content, DOCS[1]);

    let second = chain
        .invoke(ConversationTurn::new(
            session.clone(),
            "When was it released?",
        ))
        .await
        .unwrap();
    assert_eq!(
        second.standalone_question,
        "When was the language whose mascot is Ferris released?"
    );
    assert_eq!(second.answer, "In 2015.");
    let requests = model.requests();
    assert_eq!(requests.len(), 3);
    assert_eq!(
        requests[1].messages[0].text(),
        "Given the following conversation and a follow up question, rephrase the follow up question \
         to be a standalone question, in its original language.\n\n\
         Chat History:\nHuman: Who is the Rust mascot?\nAssistant: Ferris the crab.\n\
         Follow Up Input: When was it released?\nStandalone question:"
    );
    let answer_prompt = requests[2].messages[0].text();
    assert!(answer_prompt.contains(&format!(
        "{}\n\nQuestion: When was the language whose mascot is Ferris released?",
        second.sources[0].content
    )));

    // History holds both turns, with the user's own words.
    let stored = history.messages(&session).await.unwrap();
    let stored: Vec<(Role, String)> = stored.iter().map(|m| (m.role, m.text())).collect();
    assert_eq!(
        stored,
        vec![
            (Role::User, "Who is the Rust mascot?".to_string()),
            (Role::Assistant, "Ferris the crab.".to_string()),
            (Role::User, "When was it released?".to_string()),
            (Role::Assistant, "In 2015.".to_string()),
        ]
    );
    // Sessions are separate: a new session is not condensed.
    chain
        .invoke(ConversationTurn::new("other", "Who created Python?"))
        .await
        .unwrap();
    assert_eq!(model.requests().len(), 4);
    assert!(model.requests()[3].messages[0]
        .text()
        .starts_with("Use the following"));
}

#[tokio::test]
async fn conversational_retrieval_does_not_store_failed_turns() {
    let history = Arc::new(InMemoryChatHistory::new());
    let model = Arc::new(ScriptedChatModel::new().with_error(auth_error()));
    let chain = ConversationalRetrieval::builder(retriever(DOCS, 1).await, model, history.clone())
        .build()
        .unwrap();
    let err = chain
        .invoke(ConversationTurn::new("s", "Who?"))
        .await
        .unwrap_err();
    assert!(err.is_auth());
    assert!(history.messages(&"s".into()).await.unwrap().is_empty());
}

// ---------------------------------------------------------------------------------------
// Summarization

/// Wraps a model, sleeping a little in each call and recording the most calls in flight.
struct TrackingModel {
    inner: ScriptedChatModel,
    in_flight: AtomicUsize,
    max: AtomicUsize,
}

impl TrackingModel {
    fn new(inner: ScriptedChatModel) -> Self {
        TrackingModel {
            inner,
            in_flight: AtomicUsize::new(0),
            max: AtomicUsize::new(0),
        }
    }
    fn max_in_flight(&self) -> usize {
        self.max.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl ChatModel for TrackingModel {
    async fn generate(&self, request: ChatRequest) -> catena_core::Result<ChatResponse> {
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.max.fetch_max(now, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(10)).await;
        let out = self.inner.generate(request).await;
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        out
    }
    fn model_info(&self) -> ModelInfo {
        self.inner.model_info()
    }
}

fn docs(n: usize) -> Vec<Document> {
    (0..n)
        .map(|i| Document::new(format!("document number {i}")))
        .collect()
}

#[tokio::test]
async fn stuff_summarizes_in_one_call() {
    let model = Arc::new(ScriptedChatModel::new().with_text("Both."));
    let out = Summarizer::stuff(model.clone())
        .invoke(docs(2))
        .await
        .unwrap();
    assert_eq!(out, "Both.");
    assert_eq!(
        texts(&model.requests()[0]),
        vec![(
            Role::User,
            "Write a concise summary of the following:\n\n\n\"document number 0\n\ndocument number 1\"\n\n\nCONCISE SUMMARY:"
                .to_string()
        )]
    );
    let err = Summarizer::stuff(model).invoke(vec![]).await.unwrap_err();
    assert!(matches!(err, Error::InvalidInput(_)));
}

#[tokio::test]
async fn map_reduce_bounds_concurrency_and_combines_in_order() {
    let scripted = ScriptedChatModel::new().with_responder(|req: &ChatRequest| {
        let text = req.messages[0].text();
        let answer = if let Some(i) = text.split("document number ").nth(1) {
            format!("s{}", &i[..1])
        } else {
            "final".to_string()
        };
        Ok(ChatResponse::new(Message::assistant(answer)))
    });
    let model = Arc::new(TrackingModel::new(scripted));
    let out = Summarizer::map_reduce(model.clone())
        .with_max_concurrency(3)
        .invoke(docs(8))
        .await
        .unwrap();
    assert_eq!(out, "final");
    assert_eq!(model.max_in_flight(), 3);
    let requests = model.inner.requests();
    assert_eq!(requests.len(), 9);
    assert_eq!(
        requests[8].messages[0].text(),
        "Write a concise summary of the following:\n\n\n\"s0\n\ns1\n\ns2\n\ns3\n\ns4\n\ns5\n\ns6\n\ns7\"\n\n\nCONCISE SUMMARY:"
    );
}

#[tokio::test]
async fn map_reduce_collapses_summaries_over_the_token_budget() {
    // Each map summary is ~10 tokens; the budget fits two of them, so 4 summaries collapse
    // into 2 groups, whose 2 summaries ("short") fit and are combined.
    let model = Arc::new(
        ScriptedChatModel::new().with_responder(|req: &ChatRequest| {
            let text = req.messages[0].text();
            let answer = if text.contains("document number") {
                "alpha beta gamma delta epsilon zeta eta theta iota kappa"
            } else if text.contains("alpha") {
                "short"
            } else {
                "final"
            };
            Ok(ChatResponse::new(Message::assistant(answer)))
        }),
    );
    let out = Summarizer::map_reduce(model.clone())
        .with_token_budget(25)
        .invoke(docs(4))
        .await
        .unwrap();
    assert_eq!(out, "final");
    let requests = model.requests();
    // 4 map + 2 collapse + 1 combine.
    assert_eq!(requests.len(), 7);
    let long = "alpha beta gamma delta epsilon zeta eta theta iota kappa";
    assert_eq!(
        requests[4].messages[0].text(),
        format!("Write a concise summary of the following:\n\n\n\"{long}\n\n{long}\"\n\n\nCONCISE SUMMARY:")
    );
    assert!(requests[6].messages[0]
        .text()
        .contains("\"short\n\nshort\""));
}

#[tokio::test]
async fn map_reduce_stops_at_the_collapse_depth() {
    let model = Arc::new(ScriptedChatModel::new().with_responder(|_: &ChatRequest| {
        Ok(ChatResponse::new(Message::assistant(
            "this summary never gets any shorter than it is now",
        )))
    }));
    let err = Summarizer::map_reduce(model.clone())
        .with_token_budget(5)
        .with_max_collapse_depth(2)
        .invoke(docs(3))
        .await
        .unwrap_err();
    let typed = std::error::Error::source(&err)
        .and_then(|s| s.downcast_ref::<SummarizeError>())
        .unwrap();
    assert!(
        matches!(
            typed,
            SummarizeError::CollapseDepthExceeded {
                depth: 2,
                budget: 5,
                ..
            }
        ),
        "{typed:?}"
    );
    // 3 map + 3 collapse + 3 collapse, then it gives up.
    assert_eq!(model.requests().len(), 9);
}

#[tokio::test]
async fn refine_iterates_documents() {
    let model = Arc::new(
        ScriptedChatModel::new()
            .with_text("S1")
            .with_text("S2")
            .with_text("S3"),
    );
    let out = Summarizer::refine(model.clone())
        .invoke(docs(3))
        .await
        .unwrap();
    assert_eq!(out, "S3");
    let requests = model.requests();
    assert_eq!(requests.len(), 3);
    assert!(requests[0].messages[0]
        .text()
        .contains("\"document number 0\""));
    assert_eq!(
        requests[1].messages[0].text(),
        "Your job is to produce a final summary.\n\
         We have provided an existing summary up to a certain point: S1\n\
         We have the opportunity to refine the existing summary (only if needed) with some more context below.\n\
         ------------\ndocument number 1\n------------\n\
         Given the new context, refine the original summary.\n\
         If the context isn't useful, return the original summary."
    );
    assert!(requests[2].messages[0]
        .text()
        .contains("certain point: S2\n"));
}

#[tokio::test]
async fn summarizer_prompts_are_checked() {
    let model = ScriptedChatModel::new().boxed();
    assert!(Summarizer::map_reduce(model.clone())
        .with_prompt(PromptTemplate::new("{doc}").unwrap())
        .is_err());
    assert!(Summarizer::refine(model)
        .with_refine_prompt(PromptTemplate::new("{existing_answer} + {text}").unwrap())
        .is_ok());
}

// ---------------------------------------------------------------------------------------
// SQL QA over a fake database

#[derive(Debug, Default)]
struct FakeDb {
    ran: std::sync::Mutex<Vec<String>>,
}

#[async_trait]
impl SqlDatabase for FakeDb {
    fn dialect(&self) -> &str {
        "PostgreSQL"
    }
    async fn table_info(&self) -> catena_core::Result<String> {
        Ok("CREATE TABLE cities (\n  name text,\n  population bigint\n);".into())
    }
    async fn run_read_only(&self, sql: &str) -> catena_core::Result<SqlRows> {
        self.ran.lock().unwrap().push(sql.to_owned());
        Ok(SqlRows::new(
            vec!["name".into(), "population".into()],
            vec![vec![json!("Paris"), json!(2_100_000)]],
        ))
    }
}

#[tokio::test]
async fn sql_chain_writes_runs_and_answers() {
    let db = Arc::new(FakeDb::default());
    let model = Arc::new(
        ScriptedChatModel::new()
            .with_text(
                "```sql\nSELECT name, population FROM cities ORDER BY population DESC LIMIT 1\n```",
            )
            .with_text("Paris, with 2.1 million people."),
    );
    let chain = SqlQaChain::builder(db.clone(), model.clone())
        .top_k(5)
        .build()
        .unwrap();
    let out = chain
        .invoke("Which city is the largest?".into())
        .await
        .unwrap();
    let sql = "SELECT name, population FROM cities ORDER BY population DESC LIMIT 1";
    assert_eq!(out.sql, sql);
    assert_eq!(*db.ran.lock().unwrap(), vec![sql.to_string()]);
    assert_eq!(out.rows.rows[0][0], json!("Paris"));
    assert_eq!(out.answer, "Paris, with 2.1 million people.");
    assert_eq!(out.question, "Which city is the largest?");
    let requests = model.requests();
    let query_prompt = requests[0].messages[0].text();
    assert!(query_prompt.starts_with("You are a PostgreSQL expert."));
    assert!(query_prompt.contains("return at most 5 rows"));
    assert!(query_prompt.contains("CREATE TABLE cities (\n  name text,\n  population bigint\n);"));
    assert!(query_prompt.ends_with("Question: Which city is the largest?\nSQLQuery:"));
    assert_eq!(
        requests[1].messages[0].text(),
        format!(
            "Given the following user question, the SQL query that was run and its result, answer the question.\n\n\
             Question: Which city is the largest?\nSQLQuery: {sql}\nSQLResult:\nname | population\nParis | 2100000\nAnswer:"
        )
    );
}

#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
struct City {
    name: String,
    population: u64,
}

#[tokio::test]
async fn structured_output_sends_the_schema_and_refuses_models_that_cannot_enforce_it() {
    let prompt = PromptTemplate::new("The largest city of {country}?").unwrap();
    let enforcing = Arc::new(
        ScriptedChatModel::new()
            .with_model_info(ModelInfo::new("hosted", "m").with_json_schema(true))
            .with_text(r#"{"name": "Tokyo", "population": 14000000}"#),
    );
    let chain = LlmChain::structured::<City>(prompt.clone(), enforcing.clone()).unwrap();
    let city = chain
        .invoke(PromptValues::new().with("country", "Japan"))
        .await
        .unwrap();
    assert_eq!((city.name.as_str(), city.population), ("Tokyo", 14_000_000));
    let sent = &enforcing.requests()[0];
    match &sent.response_format {
        Some(catena_core::ResponseFormat::JsonSchema { name, schema, .. }) => {
            assert_eq!(name, "City");
            assert_eq!(schema["properties"]["population"]["type"], "integer");
        }
        other => panic!("no JSON schema sent: {other:?}"),
    }

    let loose = Arc::new(ScriptedChatModel::new().with_model_info(ModelInfo::new("local", "tiny")));
    let err = LlmChain::structured::<City>(prompt, loose.clone()).unwrap_err();
    assert!(matches!(err, Error::InvalidConfig(_)), "{err:?}");
    assert!(err.to_string().contains("tiny"), "{err}");
    assert!(err.to_string().contains("TypedOutputParser"), "{err}");
    assert!(loose.requests().is_empty());
}

#[tokio::test]
async fn qa_chains_take_max_tokens_and_temperature_directly() {
    let embedder = Arc::new(DeterministicEmbedder::new(32));
    let store = Arc::new(InMemoryVectorStore::new());
    let retriever = Arc::new(VectorStoreRetriever::new(embedder, store));
    let model = Arc::new(ScriptedChatModel::new().with_text("a").with_text("b"));
    let qa = RetrievalQa::builder(retriever.clone(), model.clone())
        .max_tokens(77)
        .temperature(0.25)
        .build()
        .unwrap();
    qa.invoke("q?".to_owned()).await.unwrap();
    let history = Arc::new(InMemoryChatHistory::new());
    let conversational = ConversationalRetrieval::builder(retriever, model.clone(), history)
        .max_tokens(33)
        .temperature(0.5)
        .build()
        .unwrap();
    conversational
        .invoke(ConversationTurn::new("s1", "q?"))
        .await
        .unwrap();
    let sent = model.requests();
    assert_eq!(
        (sent[0].max_tokens, sent[0].temperature),
        (Some(77), Some(0.25))
    );
    assert_eq!(
        (sent[1].max_tokens, sent[1].temperature),
        (Some(33), Some(0.5))
    );
}

#[tokio::test]
async fn load_async_reads_a_directory_on_the_blocking_pool() {
    use catena_chains::AsyncDocumentLoader;
    use catena_core::loader::DirectoryLoader;
    let dir = tempfile::tempdir().unwrap();
    for i in 0..50 {
        std::fs::write(
            dir.path().join(format!("{i}.md")),
            format!("# Doc {i}\n\nText {i}."),
        )
        .unwrap();
    }
    std::fs::write(dir.path().join("skip.bin"), [0u8, 1, 2]).unwrap();
    let loader = DirectoryLoader::builder(dir.path())
        .include("**/*.md")
        .build()
        .unwrap();
    let docs = loader.load_async().await.unwrap();
    assert_eq!(docs.len(), 50);
    assert!(docs
        .iter()
        .all(|d| d.source().is_some_and(|s| s.ends_with(".md"))));
    // The same loader, shared as a trait object, loads the same documents.
    let shared: Arc<dyn catena_core::DocumentLoader> = Arc::new(loader);
    assert_eq!(shared.load_async().await.unwrap(), docs);

    let missing = DirectoryLoader::builder(dir.path().join("nope")).build();
    if let Ok(missing) = missing {
        assert!(missing.load_async().await.is_err());
    }
}
