//! Reranking: the LLM-scored reranker, any reranker as a compressor, and a contextual
//! compression retriever that reranks a first stage's candidates.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use async_trait::async_trait;
use catena_chains::{
    ContextualCompressionRetriever, DocumentCompressor, LlmReranker, RerankCompressor,
    RELEVANCE_SCORE_KEY,
};
use catena_core::test_utils::ScriptedChatModel;
use catena_core::{
    ChatModelExt, ChatResponse, Document, Message, RerankResult, Reranker, Result, Retriever,
};

/// A model that scores a document 9 when it mentions the crab, 2 otherwise, and answers
/// nonsense for documents about nonsense.
fn judge() -> Arc<dyn catena_core::ChatModel> {
    ScriptedChatModel::new()
        .with_responder(|req| {
            let prompt = req.messages[0].text();
            let doc = prompt.split("Document:").nth(1).unwrap_or("");
            let score = if doc.contains("nonsense") {
                "I cannot say"
            } else if doc.contains("crab") {
                "9"
            } else {
                "Relevance: 2/10"
            };
            Ok(ChatResponse::new(Message::assistant(score)))
        })
        .boxed()
}

fn candidates() -> Vec<Document> {
    vec![
        Document::new("Rust has no garbage collector.").with_id("gc"),
        Document::new("pure nonsense").with_id("junk"),
        Document::new("Ferris the crab is Rust's mascot.").with_id("ferris"),
        Document::new("Cargo builds crates.").with_id("cargo"),
    ]
}

#[tokio::test]
async fn the_llm_reranker_puts_what_the_model_rates_highest_first() {
    let reranker = LlmReranker::new(judge()).unwrap().with_concurrency(2);
    let results = reranker
        .rerank("Who is the mascot?", &candidates(), 3)
        .await
        .unwrap();
    assert_eq!(results.len(), 3);
    assert_eq!(results[0], RerankResult::new(2, 9.0));
    assert_eq!(results[1].score, 2.0);
    // The unscorable answer ranks last, so it is cut at top 3.
    assert!(results.iter().all(|r| r.index != 1));
    let all = reranker
        .rerank("Who is the mascot?", &candidates(), 10)
        .await
        .unwrap();
    assert_eq!(all.len(), 4);
    assert!(all[3].score.is_nan() && all[3].index == 1);
    assert!(LlmReranker::new(judge())
        .unwrap()
        .with_prompt("no variables")
        .is_err());
}

#[tokio::test]
async fn the_llm_reranker_asks_nothing_when_nothing_is_wanted() {
    // A model with no script fails every call: top 0 or no documents must not call it.
    let model = Arc::new(ScriptedChatModel::new());
    let reranker = LlmReranker::new(model.clone()).unwrap();
    assert!(reranker
        .rerank("q", &candidates(), 0)
        .await
        .unwrap()
        .is_empty());
    assert!(reranker.rerank("q", &[], 5).await.unwrap().is_empty());
    assert!(model.requests().is_empty());
}

struct Fixed;

#[async_trait]
impl Retriever for Fixed {
    async fn retrieve(&self, _query: &str) -> Result<Vec<Document>> {
        Ok(candidates())
    }
}

#[tokio::test]
async fn a_compression_retriever_reranks_the_candidates_and_reports_scores() {
    let reranker = Arc::new(LlmReranker::new(judge()).unwrap());
    let compressor = RerankCompressor::new(reranker, 2);
    let retriever = ContextualCompressionRetriever::new(Arc::new(Fixed), Arc::new(compressor));
    let hits = retriever
        .retrieve_scored("Who is the mascot?")
        .await
        .unwrap();
    let ids: Vec<&str> = hits
        .iter()
        .map(|h| h.document.id.as_ref().unwrap().as_str())
        .collect();
    assert_eq!(ids[0], "ferris");
    assert_eq!(hits.len(), 2);
    assert_eq!(hits[0].score, 9.0);
    assert_eq!(hits[0].document.metadata[RELEVANCE_SCORE_KEY], 9.0);

    // A minimum score drops the weak ones.
    let strict =
        RerankCompressor::new(Arc::new(LlmReranker::new(judge()).unwrap()), 4).with_min_score(5.0);
    let kept = strict.compress(candidates(), "mascot").await.unwrap();
    assert_eq!(kept.len(), 1);
}

/// A broken reranker that names a document twice and one that does not exist.
struct Broken(Vec<RerankResult>);

#[async_trait]
impl Reranker for Broken {
    async fn rerank(&self, _: &str, _: &[Document], _: usize) -> Result<Vec<RerankResult>> {
        Ok(self.0.clone())
    }
}

#[tokio::test]
async fn a_reranker_that_names_bad_indices_is_an_error_not_a_panic() {
    for bad in [
        vec![RerankResult::new(7, 1.0)],
        vec![RerankResult::new(0, 1.0), RerankResult::new(0, 0.5)],
    ] {
        let c = RerankCompressor::new(Arc::new(Broken(bad)), 2);
        assert!(c.compress(candidates(), "q").await.is_err());
    }
}
