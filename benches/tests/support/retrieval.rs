//! The retrieval evaluation over the PostgreSQL manual (benches/data/postgresql-15-docs.jsonl),
//! shared by the quality gate (tests/retrieval_quality.rs) and the full run
//! (examples/retrieval_eval.rs). See docs/retrieval.md.
//!
//! Each numbered section of the manual is split into chunks (600 characters, 80 overlap: the
//! gateway's defaults); each section whose heading is unique in the corpus becomes a query
//! (the heading's text), and the relevant documents are that section's chunks. Nobody here
//! wrote a question or judged a document.

#![allow(dead_code, unreachable_pub)]

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;

use catena_chains::{evaluate_ranking, EvalCase, EvalReport};
use catena_core::splitter::{RecursiveCharacterTextSplitter, TextSplitter};
use catena_core::{
    Document, EmbeddedDocument, Embedder, Fusion, HybridRequest, HybridSearch, Reranker,
    SearchRequest, VectorStore,
};
use catena_vectorstores::InMemoryVectorStore;
use serde::Deserialize;

/// One section of the manual.
#[derive(Debug, Clone, Deserialize)]
pub struct Section {
    pub id: String,
    pub title: String,
    pub page: String,
    pub text: String,
}

/// The corpus file.
pub fn corpus_path() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("data/postgresql-15-docs.jsonl")
}

/// Every section, in file order.
pub fn load_sections() -> Vec<Section> {
    let text = std::fs::read_to_string(corpus_path()).expect("the corpus file");
    text.lines()
        .map(|l| serde_json::from_str(l).expect("a corpus line"))
        .collect()
}

/// Every `step`-th section (all for 1): the fast subset keeps the corpus's spread.
pub fn sample(sections: Vec<Section>, step: usize) -> Vec<Section> {
    sections.into_iter().step_by(step.max(1)).collect()
}

/// The chunks of every section (ids `section-id/n`) and the queries: unique headings with
/// their section's chunk ids.
pub fn build(sections: &[Section]) -> (Vec<Document>, Vec<EvalCase>) {
    let splitter = RecursiveCharacterTextSplitter::builder()
        .chunk_size(600)
        .chunk_overlap(80)
        .build()
        .expect("splitter");
    let mut chunks = Vec::new();
    let mut by_section: HashMap<&str, Vec<String>> = HashMap::new();
    for s in sections {
        for (i, piece) in splitter.split_text(&s.text).into_iter().enumerate() {
            let id = format!("{}/{i}", s.id);
            by_section.entry(&s.id).or_default().push(id.clone());
            chunks.push(
                Document::new(piece)
                    .with_id(id)
                    .with_metadata("section", s.id.as_str()),
            );
        }
    }
    let mut seen: HashMap<String, usize> = HashMap::new();
    for s in sections {
        *seen.entry(s.title.to_lowercase()).or_default() += 1;
    }
    let cases = sections
        .iter()
        .filter(|s| seen[&s.title.to_lowercase()] == 1)
        .filter_map(|s| {
            let relevant = by_section.get(s.id.as_str())?;
            Some(EvalCase::new(s.title.clone(), relevant.clone()))
        })
        .collect();
    (chunks, cases)
}

/// The in-memory store with every chunk embedded.
pub async fn index(embedder: &dyn Embedder, chunks: &[Document]) -> InMemoryVectorStore {
    let store = InMemoryVectorStore::new();
    for batch in chunks.chunks(256) {
        let texts: Vec<String> = batch.iter().map(|d| d.content.clone()).collect();
        let vectors = embedder.embed_documents(&texts).await.expect("embeddings");
        let docs = batch
            .iter()
            .cloned()
            .zip(vectors)
            .map(|(d, v)| EmbeddedDocument::new(d, v))
            .collect();
        store.upsert(docs).await.expect("upsert");
    }
    store
}

fn ids(docs: impl IntoIterator<Item = Document>) -> Vec<String> {
    docs.into_iter()
        .map(|d| d.id.map(|i| i.to_string()).unwrap_or_default())
        .collect()
}

/// The methods compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method {
    Bm25,
    Dense,
    Hybrid,
    HybridRerank,
}

impl Method {
    pub fn name(self) -> &'static str {
        match self {
            Method::Bm25 => "BM25 (in-memory store, English analyzer)",
            Method::Dense => "dense (all-MiniLM-L6-v2)",
            Method::Hybrid => "hybrid (RRF, k = 60, equal weights)",
            Method::HybridRerank => "hybrid, top candidates reranked",
        }
    }
}

/// Rankings (top 10) for every case with each method; `reranker` enables `HybridRerank`,
/// which reorders hybrid search's top `rerank_depth` candidates.
pub async fn rank_all(
    store: &InMemoryVectorStore,
    embedder: &dyn Embedder,
    reranker: Option<&Arc<dyn Reranker>>,
    cases: &[EvalCase],
    rerank_depth: usize,
) -> HashMap<Method, Vec<Vec<String>>> {
    let questions: Vec<String> = cases.iter().map(|c| c.question.clone()).collect();
    let mut vectors = Vec::with_capacity(questions.len());
    for batch in questions.chunks(256) {
        vectors.extend(
            embedder
                .embed_documents(batch)
                .await
                .expect("query vectors"),
        );
    }
    let mut out: HashMap<Method, Vec<Vec<String>>> = HashMap::new();
    for (case, vector) in cases.iter().zip(vectors) {
        let q = case.question.as_str();
        let bm25 = store.keyword_search(q, 10, None).expect("keyword search");
        out.entry(Method::Bm25)
            .or_default()
            .push(ids(bm25.into_iter().map(|h| h.document)));
        let dense = store
            .search(SearchRequest::new(vector.clone(), 10))
            .await
            .expect("dense search");
        out.entry(Method::Dense)
            .or_default()
            .push(ids(dense.into_iter().map(|h| h.document)));
        let depth = rerank_depth.max(10);
        let hybrid = store
            .hybrid_search(HybridRequest::new(q, vector, depth).with_fusion(Fusion::Rrf))
            .await
            .expect("hybrid search");
        let candidates: Vec<Document> = hybrid.into_iter().map(|h| h.document).collect();
        out.entry(Method::Hybrid)
            .or_default()
            .push(ids(candidates.iter().take(10).cloned()));
        if let Some(reranker) = reranker {
            let results = reranker.rerank(q, &candidates, 10).await.expect("rerank");
            out.entry(Method::HybridRerank).or_default().push(
                results
                    .iter()
                    .filter_map(|r| candidates.get(r.index))
                    .map(|d| d.id.as_ref().map(|i| i.to_string()).unwrap_or_default())
                    .collect(),
            );
        }
    }
    out
}

/// The report of each method at k = 10.
pub fn reports(
    cases: &[EvalCase],
    rankings: &HashMap<Method, Vec<Vec<String>>>,
) -> Vec<(Method, EvalReport)> {
    [
        Method::Bm25,
        Method::Dense,
        Method::Hybrid,
        Method::HybridRerank,
    ]
    .into_iter()
    .filter_map(|m| {
        rankings
            .get(&m)
            .map(|r| (m, evaluate_ranking(cases, r, 10)))
    })
    .collect()
}

/// The table as Markdown.
pub fn table(reports: &[(Method, EvalReport)], queries: usize, chunks: usize) -> String {
    let mut s = format!(
        "{queries} queries over {chunks} chunks\n\n| method | recall@10 | MRR@10 | nDCG@10 |\n| --- | --- | --- | --- |\n"
    );
    for (m, r) in reports {
        s.push_str(&format!(
            "| {} | {:.3} | {:.3} | {:.3} |\n",
            m.name(),
            r.recall_at_k,
            r.mrr,
            r.ndcg_at_k
        ));
    }
    s
}

/// Distinct relevant ids (for sanity checks).
pub fn relevant_total(cases: &[EvalCase]) -> usize {
    cases
        .iter()
        .flat_map(|c| c.relevant.iter())
        .collect::<HashSet<_>>()
        .len()
}
