//! Rust peers for Catena's side-by-side benchmarks (benches/compare/README.md): the
//! `text-splitter` crate (characters and cl100k tokens) and `tiktoken-rs` token counting.
//!
//! ```text
//! rust-peers --corpus F [--quick] [--expect-tokens N]
//! ```
//!
//! Prints one JSON object per line on stdout (the protocol in benches/compare/README.md);
//! everything else goes to stderr.

use std::time::{Duration, Instant};

use text_splitter::{ChunkConfig, TextSplitter};
use tiktoken_rs::cl100k_base_singleton;

/// Process CPU time (user + system, all threads) in seconds, from /proc/self/stat fields 14 and
/// 15 (clock ticks; `_SC_CLK_TCK` is 100 on Linux).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // The command name (field 2) may contain spaces: split after its closing parenthesis, where
    // field 3 starts.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // Field n (1-based) is at index n - 3 here.
    (ticks(14 - 3) + ticks(15 - 3)) / 100.0
}

fn json_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn emit(workload: &str, imp: &str, value: f64, unit: &str, wall: f64, cpu: f64, note: &str) {
    println!(
        "{{\"workload\": {}, \"impl\": {}, \"value\": {value:.6}, \"unit\": {}, \"wall_s\": {wall:.6}, \"cpu_s\": {cpu:.6}, \"note\": {}}}",
        json_str(workload),
        json_str(imp),
        json_str(unit),
        json_str(note)
    );
}

/// Runs `f` once, then again until `min` has passed; returns (runs, wall s, cpu s, last result).
fn measure<T>(min: Duration, mut f: impl FnMut() -> T) -> (u32, f64, f64, T) {
    let (c0, t0) = (cpu_seconds(), Instant::now());
    let mut runs = 0;
    loop {
        let out = std::hint::black_box(f());
        runs += 1;
        if t0.elapsed() >= min {
            return (runs, t0.elapsed().as_secs_f64(), cpu_seconds() - c0, out);
        }
    }
}

/// The longest prefix of `s` of at most `n` bytes that ends on a character boundary.
fn prefix(s: &str, n: usize) -> &str {
    let mut end = n.min(s.len());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

fn main() {
    let mut args = std::env::args().skip(1);
    let (mut corpus_path, mut quick, mut expect) = (None, false, None::<usize>);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--corpus" => corpus_path = args.next(),
            "--quick" => quick = true,
            "--expect-tokens" => expect = args.next().and_then(|n| n.parse().ok()),
            // Accepted for a uniform command line; the Rust peers have no vector workloads.
            "--vectors" | "--queries" => {
                args.next();
            }
            other => {
                eprintln!("rust-peers: unknown argument {other}");
                std::process::exit(2);
            }
        }
    }
    let Some(corpus_path) = corpus_path else {
        eprintln!("usage: rust-peers --corpus FILE [--quick] [--expect-tokens N]");
        std::process::exit(2);
    };
    let corpus = match std::fs::read_to_string(&corpus_path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("rust-peers: reading {corpus_path}: {e}");
            std::process::exit(1);
        }
    };
    let mb = corpus.len() as f64 / 1e6;
    let min = Duration::from_secs_f64(if quick { 1.0 } else { 3.0 });
    let warm = prefix(&corpus, 100_000);
    let ver = "text-splitter 0.33.1";

    // 1. Characters, capacity 1000, overlap 200.
    let splitter = TextSplitter::new(
        ChunkConfig::new(1000)
            .with_overlap(200)
            .expect("overlap < capacity"),
    );
    let _ = splitter.chunks(warm).count();
    let (runs, wall, cpu, chunks) = measure(min, || splitter.chunks(&corpus).count());
    emit(
        "split_recursive_chars",
        "text-splitter-rs",
        mb * f64::from(runs) / wall,
        "MB/s",
        wall,
        cpu,
        &format!(
            "{ver}, ChunkConfig::new(1000).with_overlap(200), chars; chunks={chunks}; {runs} runs"
        ),
    );

    // 2. cl100k tokens, capacity 256, overlap 32.
    let bpe = cl100k_base_singleton();
    let splitter = TextSplitter::new(
        ChunkConfig::new(256)
            .with_overlap(32)
            .expect("overlap < capacity")
            .with_sizer(bpe),
    );
    let _ = splitter.chunks(warm).count();
    let (runs, wall, cpu, chunks) = measure(min, || splitter.chunks(&corpus).count());
    emit(
        "split_recursive_tokens",
        "text-splitter-rs",
        mb * f64::from(runs) / wall,
        "MB/s",
        wall,
        cpu,
        &format!("{ver} + tiktoken-rs 0.12.1, cl100k 256/32; chunks={chunks}; {runs} runs"),
    );

    // 3. Count cl100k tokens (encode_ordinary: special-token text counts as ordinary text).
    let _ = bpe.encode_ordinary(warm).len();
    let (runs, wall, cpu, tokens) = measure(min, || bpe.encode_ordinary(&corpus).len());
    let check = match expect {
        Some(n) if n == tokens => "= tiktoken-py".to_string(),
        Some(n) => format!("MISMATCH: tiktoken-py counts {n}"),
        None => "tiktoken-py count not available".to_string(),
    };
    emit(
        "count_tokens_cl100k",
        "tiktoken-rs",
        mb * f64::from(runs) / wall,
        "MB/s",
        wall,
        cpu,
        &format!("tiktoken-rs 0.12.1 encode_ordinary; tokens={tokens} ({check}); {runs} runs"),
    );
}
