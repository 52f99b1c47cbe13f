//! Throughput of the text splitters and of token counting over a multi-megabyte real text.
//!
//! The corpus is the reStructuredText source of the Python 3.11 documentation (about 11 MB of
//! prose and code in 497 `.rst.txt` files), shipped by Debian's `python3.11-doc` package.
//! Install it with
//!
//! ```text
//! apt-get install python3.11-doc
//! ```
//!
//! or, without installing, unpack it anywhere and point `CATENA_BENCH_CORPUS` there:
//!
//! ```text
//! apt-get download python3.11-doc && dpkg-deb -x python3.11-doc_*.deb /tmp/pydoc
//! export CATENA_BENCH_CORPUS=/tmp/pydoc/usr/share/doc/python3.11/html/_sources
//! ```
//!
//! `CATENA_BENCH_CORPUS` may name a directory (every `*.txt` file under it is read, in path
//! order, and concatenated) or a single file; it defaults to
//! `/usr/share/doc/python3.11/html/_sources`. When the corpus is missing the benchmarks print
//! how to get it and do nothing.
//!
//! Run with `cargo bench -p catena-benches --bench splitters`. Throughput is reported in bytes
//! of input, so criterion prints MB/s.

// A bench target may stop on a broken setup: the messages say what to fix.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::Duration;

use catena_core::splitter::{
    count_tokens, RecursiveCharacterTextSplitter, TextSplitter, TokenEncoding, TokenTextSplitter,
};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

const CORPUS_ENV: &str = "CATENA_BENCH_CORPUS";
const DEFAULT_CORPUS: &str = "/usr/share/doc/python3.11/html/_sources";

fn collect_txt(dir: &Path, out: &mut Vec<PathBuf>) {
    let entries = std::fs::read_dir(dir).expect("the corpus directory should be readable");
    for entry in entries {
        let path = entry
            .expect("the corpus directory should be readable")
            .path();
        if path.is_dir() {
            collect_txt(&path, out);
        } else if path.extension().is_some_and(|e| e == "txt") {
            out.push(path);
        }
    }
}

/// The corpus text, or `None` (with a message) when it is not there.
fn load_corpus() -> Option<String> {
    let path = std::env::var_os(CORPUS_ENV)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_CORPUS));
    if !path.exists() {
        eprintln!(
            "splitters bench: corpus {} not found; install Debian's python3.11-doc package or \
             set {CORPUS_ENV} (see the doc comment of benches/benches/splitters.rs). Skipping.",
            path.display()
        );
        return None;
    }
    let mut files = Vec::new();
    if path.is_dir() {
        collect_txt(&path, &mut files);
        files.sort();
    } else {
        files.push(path.clone());
    }
    let mut text = String::new();
    for file in &files {
        let bytes = std::fs::read(file).expect("corpus files should be readable");
        text.push_str(&String::from_utf8_lossy(&bytes));
        text.push('\n');
    }
    eprintln!(
        "splitters bench: corpus {} ({} files, {} bytes, {} chars)",
        path.display(),
        files.len(),
        text.len(),
        text.chars().count()
    );
    Some(text)
}

fn bench_splitters(c: &mut Criterion) {
    let Some(corpus) = load_corpus() else {
        return;
    };
    let bytes = corpus.len() as u64;

    let mut group = c.benchmark_group("splitters");
    group.throughput(Throughput::Bytes(bytes));

    let recursive = RecursiveCharacterTextSplitter::builder()
        .chunk_size(1000)
        .chunk_overlap(200)
        .build()
        .expect("valid recursive configuration");
    group.bench_function("recursive_chars_1000_200", |b| {
        b.iter(|| black_box(recursive.split_text(black_box(&corpus))).len())
    });

    for encoding in [TokenEncoding::Cl100kBase, TokenEncoding::O200kBase] {
        // Load the tokenizer before timing.
        count_tokens(encoding, "warm up");
        group.bench_function(format!("count_tokens_{encoding}"), |b| {
            b.iter(|| count_tokens(encoding, black_box(&corpus)))
        });
    }

    let token = TokenTextSplitter::builder()
        .encoding(TokenEncoding::Cl100kBase)
        .chunk_size(512)
        .chunk_overlap(64)
        .build()
        .expect("valid token configuration");
    group.bench_function("token_splitter_cl100k_512_64", |b| {
        b.iter(|| black_box(token.split_text(black_box(&corpus))).len())
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(8));
    targets = bench_splitters
}
criterion_main!(benches);
