//! The test doubles pass the suites they ship with, and the suites catch broken components.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::panic::AssertUnwindSafe;

use async_trait::async_trait;
use catena_core::test_utils::{
    embedder_conformance, ChatModelConformance, DeterministicEmbedder, ScriptedChatModel,
};
use catena_core::{
    ChatModel, ChatRequest, ChatResponse, Embedder, Embedding, Message, ModelInfo, Result,
};
use futures::FutureExt;

#[tokio::test]
async fn scripted_echo_model_passes_chat_conformance() {
    ChatModelConformance::new()
        .deterministic(true)
        .run(&ScriptedChatModel::echo())
        .await;
}

#[tokio::test]
async fn deterministic_embedder_passes_embedder_conformance() {
    embedder_conformance(&DeterministicEmbedder::new(384)).await;
}

/// An embedder that reverses the order of its batch: the suite must notice.
struct ShuffledEmbedder(DeterministicEmbedder);

#[async_trait]
impl Embedder for ShuffledEmbedder {
    async fn embed_documents(&self, texts: &[String]) -> Result<Vec<Embedding>> {
        let mut v = self.0.embed_documents(texts).await?;
        v.reverse();
        Ok(v)
    }
    fn dimensions(&self) -> usize {
        self.0.dimensions()
    }
}

#[tokio::test]
async fn embedder_suite_catches_lost_order() {
    let outcome = AssertUnwindSafe(embedder_conformance(&ShuffledEmbedder(
        DeterministicEmbedder::new(64),
    )))
    .catch_unwind()
    .await;
    assert!(outcome.is_err(), "a shuffling embedder must fail the suite");
}

/// A model that answers with text even when a tool is required and drops the finish reason.
struct Sloppy;

#[async_trait]
impl ChatModel for Sloppy {
    async fn generate(&self, request: ChatRequest) -> Result<ChatResponse> {
        request.validate()?;
        Ok(ChatResponse::new(Message::assistant("hi")))
    }
    fn model_info(&self) -> ModelInfo {
        ModelInfo::new("sloppy", "sloppy").with_tools(true)
    }
}

#[tokio::test]
async fn chat_suite_catches_a_missing_finish_reason() {
    let outcome = AssertUnwindSafe(ChatModelConformance::new().run(&Sloppy))
        .catch_unwind()
        .await;
    let msg = outcome
        .err()
        .and_then(|p| p.downcast_ref::<String>().cloned())
        .expect("the suite must fail");
    assert!(msg.contains("finish"), "{msg}");
}
