//! Catena's side of the side-by-side benchmark (`bash benches/compare/run.sh`): the same
//! workloads, on the same input files, as the peers' runners in `benches/compare/`, printed as
//! one JSON object per line:
//!
//! ```text
//! {"workload": "count_tokens_cl100k", "impl": "catena", "value": 35.2, "unit": "MB/s",
//!  "wall_s": 0.06, "cpu_s": 0.06, "note": "..."}
//! ```
//!
//! `wall_s` and `cpu_s` are the wall-clock and process CPU time (user + system, from
//! `/proc/self/stat`) of the measured part, which runs once and then again until three seconds
//! (one with `CATENA_BENCH_QUICK=1`) have passed, as the peers' runners do. Run it in release:
//!
//! ```text
//! cargo run --release -p catena-benches --example compare -- \
//!     --corpus corpus.txt --vectors vectors.f32 --queries queries.f32 [--dims 384] [--only ID]
//! ```
//!
//! Workloads: `split_recursive_chars` (1000/200), `split_recursive_tokens` (cl100k, 256/32),
//! `count_tokens_cl100k`, `search_single` and `search_batch` (top-10 cosine, exact),
//! `chain_invoke` (prompt → model → parser, p50).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

use catena_chains::LlmChain;
use catena_core::prompt::{ChatPromptTemplate, PromptValues};
use catena_core::splitter::{
    count_tokens, RecursiveCharacterTextSplitter, TextSplitter, TokenEncoding,
};
use catena_core::{
    Chain, ChatModel, ChatRequest, ChatResponse, Document, EmbeddedDocument, Message, ModelInfo,
    SearchRequest, VectorStore,
};
use catena_vectorstores::InMemoryVectorStore;
use serde_json::json;

/// Process CPU time (user + system) in seconds.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which is in parentheses and may hold spaces).
    let rest = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line: indexes 11 and 12 after the name.
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

/// Runs `work`, returning its result with wall and CPU seconds.
fn measure<T>(work: impl FnOnce() -> T) -> (T, f64, f64) {
    let (cpu, wall) = (cpu_seconds(), Instant::now());
    let out = work();
    (out, wall.elapsed().as_secs_f64(), cpu_seconds() - cpu)
}

/// Runs `work` once, then again until `min_seconds()` have passed, as the peers' runners do:
/// returns the last result, the number of runs, and the total wall and process CPU seconds.
fn measure_for<T>(mut work: impl FnMut() -> T) -> (T, usize, f64, f64) {
    let (cpu, start) = (cpu_seconds(), Instant::now());
    let mut runs = 0;
    loop {
        let out = work();
        runs += 1;
        let wall = start.elapsed().as_secs_f64();
        if wall >= min_seconds() {
            return (out, runs, wall, cpu_seconds() - cpu);
        }
    }
}

/// Three seconds per workload; one with `CATENA_BENCH_QUICK=1` (`run.sh --quick`).
fn min_seconds() -> f64 {
    if std::env::var("CATENA_BENCH_QUICK").is_ok_and(|q| q == "1") {
        1.0
    } else {
        3.0
    }
}

fn emit(workload: &str, value: f64, unit: &str, wall: f64, cpu: f64, note: String) {
    println!(
        "{}",
        json!({"workload": workload, "impl": "catena", "value": value, "unit": unit,
               "wall_s": wall, "cpu_s": cpu, "note": note})
    );
}

fn read_f32(path: &str, dims: usize) -> Vec<Vec<f32>> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("reading {path}: {e}"));
    let floats: Vec<f32> = bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    floats.chunks_exact(dims).map(<[f32]>::to_vec).collect()
}

struct Args {
    corpus: Option<String>,
    vectors: Option<String>,
    queries: Option<String>,
    dims: usize,
    only: Option<String>,
}

fn args() -> Args {
    let mut args = Args {
        corpus: None,
        vectors: None,
        queries: None,
        dims: 384,
        only: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--corpus" => args.corpus = Some(value),
            "--vectors" => args.vectors = Some(value),
            "--queries" => args.queries = Some(value),
            "--dims" => args.dims = value.parse().expect("--dims is a number"),
            "--only" => args.only = Some(value),
            other => panic!("unknown flag {other}"),
        }
    }
    args
}

fn main() {
    let args = args();
    let wanted = |id: &str| {
        args.only
            .as_deref()
            .is_none_or(|only| only.split(',').any(|o| o == id))
    };
    if let Some(path) = &args.corpus {
        let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {path}: {e}"));
        splitters(&text, &wanted);
    }
    if let (Some(vectors), Some(queries)) = (&args.vectors, &args.queries) {
        if wanted("search_single") || wanted("search_batch") {
            search(
                &read_f32(vectors, args.dims),
                &read_f32(queries, args.dims),
                &wanted,
            );
        }
    }
    if wanted("chain_invoke") {
        chain_invoke();
    }
}

fn splitters(text: &str, wanted: &dyn Fn(&str) -> bool) {
    let mb = text.len() as f64 / 1e6;
    if wanted("split_recursive_chars") {
        let splitter = RecursiveCharacterTextSplitter::builder()
            .chunk_size(1000)
            .chunk_overlap(200)
            .build()
            .unwrap();
        black_box(splitter.split_text(text));
        let (chunks, runs, wall, cpu) = measure_for(|| splitter.split_text(black_box(text)));
        let note = format!("{} chunks, {runs} runs", chunks.len());
        emit(
            "split_recursive_chars",
            runs as f64 * mb / wall,
            "MB/s",
            wall,
            cpu,
            note,
        );
    }
    if wanted("split_recursive_tokens") {
        let splitter = RecursiveCharacterTextSplitter::builder()
            .token_length(TokenEncoding::Cl100kBase)
            .chunk_size(256)
            .chunk_overlap(32)
            .build()
            .unwrap();
        black_box(count_tokens(
            TokenEncoding::Cl100kBase,
            "warm up the tables",
        ));
        let (chunks, runs, wall, cpu) = measure_for(|| splitter.split_text(black_box(text)));
        let note = format!("{} chunks, {runs} runs", chunks.len());
        emit(
            "split_recursive_tokens",
            runs as f64 * mb / wall,
            "MB/s",
            wall,
            cpu,
            note,
        );
    }
    if wanted("count_tokens_cl100k") {
        black_box(count_tokens(
            TokenEncoding::Cl100kBase,
            "warm up the tables",
        ));
        let (count, runs, wall, cpu) =
            measure_for(|| count_tokens(TokenEncoding::Cl100kBase, black_box(text)));
        let note = format!("tokens={count}, {runs} runs");
        emit(
            "count_tokens_cl100k",
            runs as f64 * mb / wall,
            "MB/s",
            wall,
            cpu,
            note,
        );
    }
}

fn search(vectors: &[Vec<f32>], queries: &[Vec<f32>], wanted: &dyn Fn(&str) -> bool) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let store = InMemoryVectorStore::new();
    for (batch_no, batch) in vectors.chunks(10_000).enumerate() {
        let docs = batch
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let id = format!("v{}", batch_no * 10_000 + i);
                EmbeddedDocument::new(Document::new(id.clone()).with_id(id), v.clone())
            })
            .collect();
        rt.block_on(store.upsert(docs)).unwrap();
    }
    let size = format!(
        "{} x {}",
        vectors.len(),
        vectors.first().map_or(0, Vec::len)
    );
    const K: usize = 10;
    if wanted("search_single") {
        let (_, wall, cpu) = measure(|| {
            for q in queries {
                black_box(
                    rt.block_on(store.search(SearchRequest::new(q.clone(), K)))
                        .unwrap(),
                );
            }
        });
        let note = format!(
            "{size}, {} queries one at a time, exact cosine",
            queries.len()
        );
        emit(
            "search_single",
            queries.len() as f64 / wall,
            "queries/s",
            wall,
            cpu,
            note,
        );
    }
    if wanted("search_batch") {
        let batch: Vec<SearchRequest> = queries
            .iter()
            .map(|q| SearchRequest::new(q.clone(), K))
            .collect();
        let (_, runs, wall, cpu) = measure_for(|| black_box(store.search_batch(&batch).unwrap()));
        let note = format!(
            "{size}, {} queries in one search_batch, exact cosine, {runs} runs",
            batch.len()
        );
        let rate = (runs * batch.len()) as f64 / wall;
        emit("search_batch", rate, "queries/s", wall, cpu, note);
    }
}

/// A model that answers "ok" at once, like LangChain's `FakeListChatModel(responses=["ok"])`:
/// the measured time is the framework's.
struct Fixed;

#[async_trait::async_trait]
impl ChatModel for Fixed {
    async fn generate(&self, _: ChatRequest) -> catena_core::Result<ChatResponse> {
        Ok(ChatResponse::new(Message::assistant("ok")))
    }
    fn model_info(&self) -> ModelInfo {
        ModelInfo::new("fixed", "fixed")
    }
}

fn chain_invoke() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let model = Arc::new(Fixed);
    let prompt = ChatPromptTemplate::builder()
        .system("You are terse.")
        .user("{question}")
        .build()
        .unwrap();
    let chain = LlmChain::text(prompt, model);
    let values = PromptValues::new().with("question", "What is the capital of France?");
    for _ in 0..2_000 {
        black_box(rt.block_on(chain.invoke(values.clone())).unwrap());
    }
    const N: usize = 20_000;
    let mut times = Vec::with_capacity(N);
    let (_, wall, cpu) = measure(|| {
        for _ in 0..N {
            let start = Instant::now();
            black_box(
                rt.block_on(chain.invoke(black_box(values.clone())))
                    .unwrap(),
            );
            times.push(start.elapsed().as_secs_f64() * 1e6);
        }
    });
    times.sort_by(f64::total_cmp);
    let p50 = times[N / 2];
    let p99 = times[N * 99 / 100];
    let note = format!("{N} sequential invokes, p99 {p99:.2} µs");
    emit("chain_invoke", p50, "µs p50", wall, cpu, note);
}
