//! The full retrieval evaluation over the PostgreSQL manual: every section, every unique
//! heading as a query (see docs/retrieval.md). Prints the Markdown table.
//!
//! ```text
//! eval "$(bash scripts/models.sh fetch)"
//! cargo run --release -p catena-benches --example retrieval_eval -- \
//!     [--reranker none|cross|llm] [--step N] [--depth N]
//! ```
//!
//! `--reranker cross` (the default when `CATENA_RERANK_MODEL` is set) reranks with the
//! cross-encoder in that directory; `llm` asks the local chat model (`CATENA_CHAT_MODEL`) for a
//! 0-10 relevance score per candidate.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../tests/support/retrieval.rs"]
mod retrieval;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use catena_chains::LlmReranker;
use catena_core::Reranker;
use catena_llms::local::{CrossEncoderReranker, LocalChatModel, LocalEmbedder, Truncation};
use retrieval::{build, index, load_sections, rank_all, reports, sample, table};

fn model_dir(var: &str) -> PathBuf {
    std::env::var_os(var)
        .map(PathBuf::from)
        .unwrap_or_else(|| panic!("{var} is not set: run eval \"$(bash scripts/models.sh fetch)\""))
}

fn arg<T: std::str::FromStr>(args: &[String], name: &str) -> Option<T> {
    let i = args.iter().position(|a| a == name)?;
    args.get(i + 1)?.parse().ok()
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let step: usize = arg(&args, "--step").unwrap_or(1);
    let depth: usize = arg(&args, "--depth").unwrap_or(20);
    let which: String = arg(&args, "--reranker").unwrap_or_else(|| {
        if std::env::var_os("CATENA_RERANK_MODEL").is_some() {
            "cross".into()
        } else {
            "none".into()
        }
    });
    let sections = sample(load_sections(), step);
    let (chunks, cases) = build(&sections);
    let embedder = LocalEmbedder::builder(model_dir("CATENA_EMBED_MODEL"))
        .truncation(Truncation::Truncate)
        .build()
        .unwrap();
    let started = Instant::now();
    let store = index(&embedder, &chunks).await;
    eprintln!(
        "indexed {} chunks in {:.1} s",
        chunks.len(),
        started.elapsed().as_secs_f64()
    );
    let reranker: Option<Arc<dyn Reranker>> = match which.as_str() {
        "none" => None,
        "cross" => Some(Arc::new(
            CrossEncoderReranker::from_dir(model_dir("CATENA_RERANK_MODEL")).unwrap(),
        )),
        "llm" => {
            let model = LocalChatModel::load(model_dir("CATENA_CHAT_MODEL")).unwrap();
            Some(Arc::new(LlmReranker::new(Arc::new(model)).unwrap()))
        }
        other => panic!("unknown reranker {other}: none, cross or llm"),
    };
    let started = Instant::now();
    let rankings = rank_all(&store, &embedder, reranker.as_ref(), &cases, depth).await;
    eprintln!(
        "ranked {} queries in {:.1} s",
        cases.len(),
        started.elapsed().as_secs_f64()
    );
    println!(
        "{}",
        table(&reports(&cases, &rankings), cases.len(), chunks.len())
    );
}
