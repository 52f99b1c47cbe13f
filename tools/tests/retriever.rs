//! `RetrieverTool` over a real vector store and over a small keyword retriever.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use async_trait::async_trait;
use catena_core::test_utils::DeterministicEmbedder;
use catena_core::{
    Document, EmbeddedDocument, Embedder, Error, Retriever, Tool, ToolError, TypedTool,
    VectorStore, VectorStoreRetriever,
};
use catena_tools::{RetrievedDocument, RetrieverTool};
use catena_vectorstores::InMemoryVectorStore;
use serde_json::json;

/// Ranks documents by how many query words they contain (a tiny BM25 stand-in).
struct Keyword(Vec<Document>);

#[async_trait]
impl Retriever for Keyword {
    async fn retrieve(&self, query: &str) -> catena_core::Result<Vec<Document>> {
        let words: Vec<String> = query.split_whitespace().map(str::to_lowercase).collect();
        let mut scored: Vec<(usize, &Document)> = self
            .0
            .iter()
            .map(|d| {
                let text = d.content.to_lowercase();
                (
                    words.iter().filter(|w| text.contains(w.as_str())).count(),
                    d,
                )
            })
            .filter(|(s, _)| *s > 0)
            .collect();
        scored.sort_by_key(|s| std::cmp::Reverse(s.0));
        Ok(scored.into_iter().map(|(_, d)| d.clone()).collect())
    }
}

struct Broken;

#[async_trait]
impl Retriever for Broken {
    async fn retrieve(&self, _query: &str) -> catena_core::Result<Vec<Document>> {
        Err(Error::other("index offline"))
    }
}

fn corpus() -> Vec<Document> {
    vec![
        Document::new("Rust ownership: each value has one owner.")
            .with_metadata("source", "own.md"),
        Document::new("Borrowing in Rust lets you reference a value without owning it.")
            .with_metadata("source", "borrow.md"),
        Document::new("Pasta should be cooked in salted water."),
    ]
}

#[tokio::test]
async fn keyword_retriever_as_a_tool() {
    let tool = RetrieverTool::new(
        "search_docs",
        "Searches the Rust notes.",
        Arc::new(Keyword(corpus())),
    )
    .into_tool();
    assert_eq!(tool.name(), "search_docs");
    assert_eq!(tool.description(), "Searches the Rust notes.");
    assert_eq!(tool.parameters()["required"], json!(["query"]));
    assert!(tool.parameters()["properties"]["query"]["description"].is_string());

    let out = tool
        .call(json!({"query": "rust borrowing value"}))
        .await
        .unwrap();
    let docs = out.content.as_array().unwrap();
    assert_eq!(docs.len(), 2);
    assert_eq!(docs[0]["source"], "borrow.md");
    assert_eq!(docs[1]["source"], "own.md");
    assert!(docs[0].get("truncated").is_none());

    let out = tool.call(json!({"query": "pasta"})).await.unwrap();
    assert_eq!(out.content[0]["source"], serde_json::Value::Null);

    let out = tool.call(json!({"query": "quantum"})).await.unwrap();
    assert_eq!(out.content, json!([]));
}

#[tokio::test]
async fn caps_and_errors() {
    let tool = RetrieverTool::new("s", "d", Arc::new(Keyword(corpus()))).with_max_documents(1);
    let docs = tool.search("rust borrowing").await.unwrap();
    assert_eq!(docs.len(), 1);

    let tool = RetrieverTool::new("s", "d", Arc::new(Keyword(corpus()))).with_max_chars(50);
    let docs = tool.search("rust borrowing value").await.unwrap();
    assert_eq!(docs.len(), 1, "{docs:?}");
    assert!(docs[0].truncated);
    assert_eq!(docs[0].content.chars().count(), 50);

    // Multi-byte text is cut on character boundaries.
    let uni = vec![Document::new("ünïcödé ".repeat(20))];
    let tool = RetrieverTool::new("s", "d", Arc::new(Keyword(uni))).with_max_chars(7);
    let docs: Vec<RetrievedDocument> = tool.search("ünïcödé").await.unwrap();
    assert_eq!(docs[0].content, "ünïcödé");

    let tool = RetrieverTool::new("s", "d", Arc::new(Keyword(corpus()))).into_tool();
    assert!(matches!(
        tool.call(json!({"query": "  "})).await,
        Err(ToolError::InvalidArguments(_))
    ));
    match tool.call(json!({"q": "rust"})).await {
        Err(ToolError::InvalidArguments(m)) => assert!(m.contains("query"), "{m}"),
        other => panic!("{other:?}"),
    }
    let broken = RetrieverTool::new("s", "d", Arc::new(Broken)).into_tool();
    match broken.call(json!({"query": "rust"})).await {
        Err(ToolError::Execution(m)) => assert!(m.contains("index offline"), "{m}"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn vector_store_retriever_as_a_tool() {
    let embedder = Arc::new(DeterministicEmbedder::new(64));
    let store = Arc::new(InMemoryVectorStore::new());
    let docs = corpus();
    let texts: Vec<String> = docs.iter().map(|d| d.content.clone()).collect();
    let vectors = embedder.embed_documents(&texts).await.unwrap();
    store
        .upsert(
            docs.into_iter()
                .zip(vectors)
                .map(|(d, v)| EmbeddedDocument::new(d, v))
                .collect(),
        )
        .await
        .unwrap();
    let retriever = VectorStoreRetriever::new(embedder, store).with_k(2);
    let tool = RetrieverTool::new("search", "Searches notes.", Arc::new(retriever)).into_tool();
    let out = tool
        .call(json!({"query": "pasta cooked in salted water"}))
        .await
        .unwrap();
    let docs = out.content.as_array().unwrap();
    assert_eq!(docs.len(), 2);
    assert_eq!(
        docs[0]["content"],
        "Pasta should be cooked in salted water."
    );
}
