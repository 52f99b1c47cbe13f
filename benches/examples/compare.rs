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
//!     --corpus corpus.txt --vectors vectors.f32 --queries queries.f32 [--dims 384] [--only ID] \
//!     [--passages passages.jsonl --embed-model DIR --chat-model FILE.gguf]
//! ```
//!
//! Workloads: `split_recursive_chars` (1000/200), `split_recursive_tokens` (cl100k, 256/32),
//! `count_tokens_cl100k`, `search_single` and `search_batch` (top-10 cosine, exact),
//! `search_single_int8` (the same over int8 codes with exact re-scoring, and its recall),
//! `chain_invoke` (prompt → model → parser, p50); with the model flags, the in-process models:
//! `embed_minilm` (all-MiniLM-L6-v2 over the passages, batches of 32) and `decode_smollm2`
//! (SmolLM2-135M-Instruct, greedy, tokens per second after the first; the prompt is
//! [`DECODE_PROMPT`]). With `--embeddings-out FILE` the passages' vectors are written there
//! (little-endian f32) for the Python runner to compare with sentence-transformers'.
//! `CATENA_BENCH_EMBED_BATCH` overrides the embedding batch size (32) for experiments.
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
    Chain, ChatChunk, ChatModel, ChatRequest, ChatResponse, Document, EmbeddedDocument, Embedder,
    Message, ModelInfo, SearchRequest, VectorStore,
};
use catena_llms::local::{LocalChatModel, LocalEmbedder, Truncation};
use catena_vectorstores::{InMemoryVectorStore, Quantization};
use futures::StreamExt;
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
    passages: Option<String>,
    embed_model: Option<String>,
    chat_model: Option<String>,
    embeddings_out: Option<String>,
}

fn args() -> Args {
    let mut args = Args {
        corpus: None,
        vectors: None,
        queries: None,
        dims: 384,
        only: None,
        passages: None,
        embed_model: None,
        chat_model: None,
        embeddings_out: None,
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
            "--passages" => args.passages = Some(value),
            "--embed-model" => args.embed_model = Some(value),
            "--chat-model" => args.chat_model = Some(value),
            "--embeddings-out" => args.embeddings_out = Some(value),
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
        if wanted("search_single") || wanted("search_batch") || wanted("search_single_int8") {
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
    if let (Some(passages), Some(model)) = (&args.passages, &args.embed_model) {
        if wanted("embed_minilm") {
            embed(passages, model, args.embeddings_out.as_deref());
        }
    }
    if let Some(model) = &args.chat_model {
        if wanted("decode_smollm2") {
            decode(model);
        }
    }
}

/// The passages file: one JSON string per line.
fn read_passages(path: &str) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("reading {path}: {e}"))
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str::<String>(l).expect("a JSON string per line"))
        .collect()
}

fn embed(passages: &str, model: &str, out: Option<&str>) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let texts = read_passages(passages);
    // Truncated at the model's 256 tokens as sentence-transformers does (a few passages of
    // SQL or code are longer).
    let batch: usize = std::env::var("CATENA_BENCH_EMBED_BATCH")
        .ok()
        .and_then(|b| b.parse().ok())
        .unwrap_or(32);
    let embedder = LocalEmbedder::builder(model)
        .batch_size(batch)
        .truncation(Truncation::Truncate)
        .build()
        .unwrap();
    let tokens: usize = texts
        .iter()
        .map(|t| embedder.count_tokens(t).unwrap().min(embedder.max_length()))
        .sum();
    black_box(
        rt.block_on(embedder.embed_documents(&texts[..32.min(texts.len())]))
            .unwrap(),
    );
    let (vectors, runs, wall, cpu) = measure_for(|| {
        rt.block_on(embedder.embed_documents(black_box(&texts)))
            .unwrap()
    });
    if let Some(out) = out {
        let bytes: Vec<u8> = vectors
            .iter()
            .flatten()
            .flat_map(|x| x.to_le_bytes())
            .collect();
        std::fs::write(out, bytes).unwrap_or_else(|e| panic!("writing {out}: {e}"));
    }
    let note = format!(
        "{} passages ({:.0} tokens each on average, cut at {}), batch {batch}, {runs} runs, {} threads",
        texts.len(),
        tokens as f64 / texts.len() as f64,
        embedder.max_length(),
        candle_threads()
    );
    emit(
        "embed_minilm",
        (runs * texts.len()) as f64 / wall,
        "passages/s",
        wall,
        cpu,
        note,
    );
}

/// The decode workload's prompt, the same in the Python runner (a request that a small model
/// answers at length).
pub const DECODE_PROMPT: &str =
    "Write a long, detailed essay about the history of relational databases.";

/// candle's thread count as it sizes its pool (`CANDLE_NUM_THREADS`, else the cores).
fn candle_threads() -> usize {
    std::env::var("CANDLE_NUM_THREADS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from))
}

fn decode(model: &str) {
    const MAX_TOKENS: u32 = 128;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let chat = LocalChatModel::load(model).unwrap();
    let request = ChatRequest::new(vec![Message::user(DECODE_PROMPT)])
        .with_max_tokens(MAX_TOKENS)
        .with_temperature(0.0);
    // One generation: (seconds to the first delta, seconds from the first delta to the end,
    // output tokens, prompt tokens).
    let once = || {
        rt.block_on(async {
            let start = Instant::now();
            let mut stream = chat.stream(request.clone()).await.unwrap();
            let (mut first, mut usage) = (None, None);
            while let Some(chunk) = stream.next().await {
                match chunk.unwrap() {
                    ChatChunk::TextDelta(_) if first.is_none() => first = Some(start.elapsed()),
                    ChatChunk::Usage(u) => usage = Some(u),
                    _ => {}
                }
            }
            let total = start.elapsed().as_secs_f64();
            let first = first.expect("a text delta").as_secs_f64();
            let usage = usage.expect("usage");
            (
                first,
                total - first,
                usage.output_tokens,
                usage.input_tokens,
            )
        })
    };
    black_box(once());
    let (mut ttft, mut after, mut tokens, mut runs) = (0.0, 0.0, 0u64, 0);
    let mut prompt_tokens = 0;
    let (_, _, wall, cpu) = measure_for(|| {
        let (first, rest, out, input) = once();
        ttft += first;
        after += rest;
        tokens += out.saturating_sub(1);
        prompt_tokens = input;
        runs += 1;
    });
    let note = format!(
        "{} prompt tokens, {:.0} output tokens per run (max {MAX_TOKENS}), greedy; first token \
         {:.1} ms; {runs} runs, {} threads; the prompt's products on the weights re-quantized \
         to Q8_0 at load, each token's on the file's Q4_1 blocks",
        prompt_tokens,
        (tokens as f64 / runs as f64) + 1.0,
        1000.0 * ttft / runs as f64,
        candle_threads()
    );
    emit(
        "decode_smollm2",
        tokens as f64 / after,
        "tokens/s",
        wall,
        cpu,
        note,
    );
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
    let int8 = InMemoryVectorStore::builder()
        .quantization(Quantization::int8())
        .build()
        .unwrap();
    for (batch_no, batch) in vectors.chunks(10_000).enumerate() {
        let docs = batch
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let id = format!("v{}", batch_no * 10_000 + i);
                EmbeddedDocument::new(Document::new(id.clone()).with_id(id), v.clone())
            })
            .collect::<Vec<_>>();
        if wanted("search_single_int8") {
            rt.block_on(int8.upsert(docs.clone())).unwrap();
        }
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
    if wanted("search_single_int8") {
        let exact = store
            .search_batch(
                &queries
                    .iter()
                    .map(|q| SearchRequest::new(q.clone(), K))
                    .collect::<Vec<_>>(),
            )
            .unwrap();
        let mut found = 0;
        for (q, want) in queries.iter().zip(&exact) {
            let got = rt
                .block_on(int8.search(SearchRequest::new(q.clone(), K)))
                .unwrap();
            found += got
                .iter()
                .filter(|h| want.iter().any(|w| w.document.id == h.document.id))
                .count();
        }
        let recall = found as f64 / (K * queries.len()) as f64;
        let (_, wall, cpu) = measure(|| {
            for q in queries {
                black_box(
                    rt.block_on(int8.search(SearchRequest::new(q.clone(), K)))
                        .unwrap(),
                );
            }
        });
        let note = format!(
            "{size}, {} queries one at a time, int8 scan + exact re-scoring of 80 candidates, recall@10 {recall:.4} against exact",
            queries.len()
        );
        emit(
            "search_single_int8",
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
