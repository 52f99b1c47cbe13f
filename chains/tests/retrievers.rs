//! Retrievers and retrieval evaluation, with the core test doubles and the in-memory store.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use catena_chains::{evaluate, EvalCase};
use catena_chains::{
    Bm25Retriever, BudgetedRetriever, ContextualCompressionRetriever, EmbeddingsFilter,
    EnsembleRetriever, InMemoryDocStore, LlmFilter, MultiQueryRetriever, ParentDocumentRetriever,
    PARENT_ID_KEY,
};
use catena_core::test_utils::{DeterministicEmbedder, ScriptedChatModel};
use catena_core::{
    ChatResponse, Document, EmbeddedDocument, Embedder, FinishReason, Message,
    RecursiveCharacterTextSplitter, Result, Retriever, Role, TokenEncoding, VectorStore,
    VectorStoreRetriever,
};
use catena_vectorstores::InMemoryVectorStore;

const CORPUS: &[(&str, &str)] = &[
    ("own", "Ownership: every value in Rust has a single owner, and the value is dropped when the owner goes out of scope."),
    ("borrow", "Borrowing lets code use a value through a reference without taking ownership of it."),
    ("life", "Lifetimes describe how long references stay valid so the borrow checker can reject dangling references."),
    ("bread", "Sourdough bread rises slowly because wild yeast ferments the dough over many hours."),
    ("tea", "Green tea should steep in water below boiling to avoid a bitter taste."),
];

fn corpus() -> Vec<Document> {
    CORPUS
        .iter()
        .map(|(id, text)| {
            Document::new(*text)
                .with_id(*id)
                .with_metadata("topic", *id)
        })
        .collect()
}

async fn vector_retriever(k: usize) -> (VectorStoreRetriever, Arc<InMemoryVectorStore>) {
    let embedder = Arc::new(DeterministicEmbedder::new(256));
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
    (
        VectorStoreRetriever::new(embedder, store.clone()).with_k(k),
        store,
    )
}

fn ids(docs: &[Document]) -> Vec<String> {
    docs.iter()
        .map(|d| d.id.as_ref().unwrap().to_string())
        .collect()
}

/// Counts calls, to check fan-out.
struct Counting<R>(R, AtomicUsize);

#[async_trait]
impl<R: Retriever> Retriever for Counting<R> {
    async fn retrieve(&self, query: &str) -> Result<Vec<Document>> {
        self.1.fetch_add(1, Ordering::SeqCst);
        self.0.retrieve(query).await
    }
}

#[tokio::test]
async fn vector_retriever_with_mmr_diversifies() {
    let embedder = Arc::new(DeterministicEmbedder::new(256));
    let store = Arc::new(InMemoryVectorStore::new());
    let texts = [
        "rust borrow checker rules",
        "rust borrow checker rules explained",
        "rust borrow checker rules in depth",
        "rust async runtime basics",
    ];
    let vectors = embedder
        .embed_documents(&texts.map(String::from))
        .await
        .unwrap();
    store
        .upsert(
            texts
                .iter()
                .zip(vectors)
                .enumerate()
                .map(|(i, (t, v))| {
                    EmbeddedDocument::new(Document::new(*t).with_id(format!("d{i}")), v)
                })
                .collect(),
        )
        .await
        .unwrap();
    let plain = VectorStoreRetriever::new(embedder.clone(), store.clone()).with_k(2);
    let mmr = plain.clone().with_mmr(4, 0.2);
    let q = "rust borrow checker rules";
    assert_eq!(ids(&plain.retrieve(q).await.unwrap()), ["d0", "d1"]);
    let diverse = ids(&mmr.retrieve(q).await.unwrap());
    assert_eq!(diverse[0], "d0");
    assert_eq!(
        diverse[1], "d3",
        "MMR picks the least redundant second result"
    );
}

#[tokio::test]
async fn multi_query_asks_for_rephrasings_and_deduplicates() {
    let (base, _) = vector_retriever(2).await;
    let counting = Arc::new(Counting(base, AtomicUsize::new(0)));
    let model = Arc::new(ScriptedChatModel::new().with_text(
        "1. What does borrowing mean?\n2. How do references work?\n\n- What is ownership?",
    ));
    let mq = MultiQueryRetriever::new(model.clone(), counting.clone()).unwrap();
    let docs = mq.retrieve("explain borrowing in rust").await.unwrap();
    assert_eq!(
        counting.1.load(Ordering::SeqCst),
        4,
        "the original plus three rephrasings"
    );
    let got = ids(&docs);
    let unique: std::collections::HashSet<_> = got.iter().collect();
    assert_eq!(unique.len(), got.len(), "no duplicates: {got:?}");
    assert!(
        got.contains(&"borrow".to_string()) && got.contains(&"own".to_string()),
        "{got:?}"
    );
    let sent = model.requests()[0].messages[0].text();
    assert!(sent.contains("generate 3 different versions"), "{sent}");
    assert!(
        sent.ends_with("Original question: explain borrowing in rust"),
        "{sent}"
    );
}

#[tokio::test]
async fn ensemble_fuses_keyword_and_vector_rankings() {
    let (vector, _) = vector_retriever(3).await;
    let bm25 = Bm25Retriever::new(corpus()).with_k(3);
    // "dough" appears only in the bread document: keyword search finds it.
    let keyword_hits = ids(&bm25.retrieve("dough fermentation").await.unwrap());
    assert_eq!(keyword_hits, ["bread"]);
    let ensemble = EnsembleRetriever::new(vec![Arc::new(bm25), Arc::new(vector)])
        .with_weights(vec![0.5, 0.5])
        .with_k(3);
    let fused = ids(&ensemble.retrieve("dough fermentation").await.unwrap());
    assert_eq!(fused[0], "bread", "{fused:?}");
    assert_eq!(fused.len(), 3);
}

#[tokio::test]
async fn compression_drops_what_the_judges_reject() {
    let (base, _) = vector_retriever(5).await;
    let base = Arc::new(base);
    // Embedding judge: only documents sharing words with the question pass.
    let embedder = Arc::new(DeterministicEmbedder::new(256));
    let by_embedding = ContextualCompressionRetriever::new(
        base.clone(),
        Arc::new(EmbeddingsFilter::new(embedder, 0.15)),
    );
    let kept = ids(&by_embedding
        .retrieve("sourdough bread yeast")
        .await
        .unwrap());
    assert_eq!(kept, ["bread"]);

    // Model judge: says YES only for contexts about tea.
    let model = Arc::new(ScriptedChatModel::new().with_responder(|req| {
        let prompt = req.messages[0].text();
        let context = prompt.split(">>>").nth(1).unwrap_or_default();
        let verdict = if context.contains("tea") { "YES" } else { "NO" };
        Ok(ChatResponse::new(Message::assistant(verdict)).with_finish_reason(FinishReason::Stop))
    }));
    let by_model =
        ContextualCompressionRetriever::new(base, Arc::new(LlmFilter::new(model.clone()).unwrap()));
    let kept = ids(&by_model
        .retrieve("how hot should tea water be?")
        .await
        .unwrap());
    assert_eq!(kept, ["tea"]);
    let requests = model.requests();
    assert_eq!(requests.len(), 5, "one judgement per retrieved document");
    assert!(requests.iter().all(|r| r.messages[0].role == Role::User
        && r.messages[0]
            .text()
            .contains("> Question: how hot should tea water be?")));
}

#[tokio::test]
async fn parent_document_retriever_returns_whole_parents() {
    let embedder = Arc::new(DeterministicEmbedder::new(256));
    let store = Arc::new(InMemoryVectorStore::new());
    let docstore = Arc::new(InMemoryDocStore::new());
    let splitter = Arc::new(
        RecursiveCharacterTextSplitter::builder()
            .chunk_size(60)
            .chunk_overlap(0)
            .build()
            .unwrap(),
    );
    let retriever =
        ParentDocumentRetriever::new(store.clone(), embedder, docstore.clone(), splitter).with_k(1);
    let rust = Document::new(
        CORPUS[..3]
            .iter()
            .map(|(_, t)| *t)
            .collect::<Vec<_>>()
            .join("\n\n"),
    )
    .with_id("rust-guide")
    .with_metadata("source", "rust.md");
    let kitchen = Document::new(
        CORPUS[3..]
            .iter()
            .map(|(_, t)| *t)
            .collect::<Vec<_>>()
            .join("\n\n"),
    )
    .with_metadata("source", "kitchen.md");
    let ids_added = retriever
        .add_documents(vec![rust.clone(), kitchen])
        .await
        .unwrap();
    assert_eq!(ids_added[0].as_str(), "rust-guide");
    assert_eq!(docstore.len(), 2);
    assert!(
        store.count(None).await.unwrap() > 4,
        "children are smaller than parents"
    );
    let hits = retriever
        .retrieve("dangling references and the borrow checker")
        .await
        .unwrap();
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].content, rust.content, "the whole parent comes back");
    assert_eq!(hits[0].source(), Some("rust.md"));
    let any_child = store
        .search(catena_core::SearchRequest::new(vec![1.0; 256], 1))
        .await
        .unwrap();
    assert!(any_child[0].document.metadata.contains_key(PARENT_ID_KEY));
}

#[tokio::test]
async fn budget_trims_the_context() {
    let (base, _) = vector_retriever(5).await;
    let budgeted = BudgetedRetriever::new(Arc::new(base), 40, TokenEncoding::Cl100kBase);
    let docs = budgeted.retrieve("rust ownership borrowing").await.unwrap();
    let total: usize = docs
        .iter()
        .map(|d| catena_core::count_tokens(TokenEncoding::Cl100kBase, &d.content))
        .sum();
    assert!(total <= 40, "{total}");
    assert!(!docs.is_empty() && docs.len() < 5);
}

#[tokio::test]
async fn evaluation_gates_a_retriever() {
    let cases = vec![
        EvalCase::new("who owns a value in rust", ["own"]),
        EvalCase::new("steeping green tea", ["tea"]),
        EvalCase::new("wild yeast dough", ["bread"]),
        EvalCase::new("reference validity and lifetimes", ["life", "borrow"]),
    ];
    let bm25 = Bm25Retriever::new(corpus()).with_k(3);
    let report = evaluate(&bm25, &cases, 3).await.unwrap();
    assert_eq!(report.cases.len(), 4);
    assert!(report.passes(0.6, 0.6, 0.5), "{report:?}");
    // A retriever that returns nothing useful fails the same gate.
    let useless = Bm25Retriever::new(vec![Document::new("nothing relevant here").with_id("z")]);
    let bad = evaluate(&useless, &cases, 3).await.unwrap();
    assert!(!bad.passes(0.6, 0.6, 0.5));
    assert_eq!(bad.recall_at_k, 0.0);
}
